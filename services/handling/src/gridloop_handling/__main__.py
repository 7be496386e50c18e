"""Entry point: `python -m gridloop_handling`."""

from gridloop_runtime.service import serve

from .bootstrap import build

if __name__ == "__main__":
    serve(build)
