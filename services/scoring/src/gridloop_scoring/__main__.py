"""Entry point: `python -m gridloop_scoring`."""

from gridloop_runtime.service import serve

from .bootstrap import build

if __name__ == "__main__":
    serve(build)
