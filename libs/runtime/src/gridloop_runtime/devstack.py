"""Moved to `gridloop_devkit.devstack`: the development kit (local servers, the launcher, the
test harness) is no production dependency of the runtime. This name keeps imports made
before the move working when the kit is installed."""

import sys

from gridloop_devkit import devstack as _moved

sys.modules[__name__] = _moved
