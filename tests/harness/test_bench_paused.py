"""bench/paused.py (not a package: loaded from its file): the services off the report's path
stopped while a window is measured (`make profile --pause`, the bench's path-alone window),
and let go when it ends, or a little before its given length."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from gridloop_devkit.testing import load_module, wait_for

paused = load_module(Path(__file__).resolve().parents[2] / "bench" / "paused.py", "bench_paused")


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def stopped(p: psutil.Process) -> bool:
    return bool(p.status() == psutil.STATUS_STOPPED)


# A signal takes effect a moment after it is sent: each state is waited for.
async def until_stopped(p: psutil.Process) -> None:
    await wait_for(lambda: stopped(p), timeout=10, what="stopped")


async def until_running(p: psutil.Process) -> None:
    await wait_for(lambda: not stopped(p), timeout=10, what="let go")


async def test_stopped_while_the_window_lasts_and_let_go_after(sleeper: psutil.Process) -> None:
    window = paused.Paused([sleeper.pid])
    async with window.during():
        await until_stopped(sleeper)
    await until_running(sleeper)
    assert window.ended >= window.started > 0


async def test_a_window_of_a_given_length_lets_go_before_it_ends(sleeper: psutil.Process) -> None:
    window = paused.Paused([sleeper.pid])
    async with window.during(window.RESUME_BEFORE_END_S + 0.2):
        # stopped, then let go inside the window (stopping is the test above's)
        await wait_for(lambda: window.ended > window.started, timeout=10, what="let go early")
        await until_running(sleeper)
    await until_running(sleeper)


async def test_let_go_when_the_window_fails(sleeper: psutil.Process) -> None:
    with pytest.raises(RuntimeError):
        async with paused.Paused([sleeper.pid]).during():
            await until_stopped(sleeper)
            raise RuntimeError("the measurement failed")
    await until_running(sleeper)
