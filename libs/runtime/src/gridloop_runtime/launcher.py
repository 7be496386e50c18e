"""Moved to `gridloop_devkit.launcher`: the development kit (local servers, the launcher, the
test harness) is no production dependency of the runtime. This name keeps imports made
before the move working when the kit is installed."""

import sys

from gridloop_devkit import launcher as _moved

if __name__ == "__main__":
    raise SystemExit(_moved.main())
sys.modules[__name__] = _moved
