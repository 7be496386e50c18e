"""The benchmark's CPU accounting (bench/cpu.py, not a package: loaded from its file): a
window tells each process's CPU and how much of it ran in the kernel."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from gridloop_devkit.testing import load_module

ROOT = Path(__file__).resolve().parents[2]
CPU_SECONDS = 0.3


def _until_used(work: Callable[[], object]) -> None:
    """Run `work` until this process has used CPU_SECONDS more of CPU."""
    start = time.process_time()
    while time.process_time() - start < CPU_SECONDS:
        work()


def test_a_window_tells_how_much_of_a_process_cpu_ran_in_the_kernel() -> None:
    cpu = load_module(ROOT / "bench" / "cpu.py", "bench_cpu")
    me = {"tests": os.getpid()}

    spinning = cpu.CpuWindow(me, alone=("tests",))
    spinning.start()
    _until_used(lambda: sum(i * i for i in range(10_000)))
    spinning.stop()
    assert spinning.used["tests"] >= CPU_SECONDS * 0.8
    assert spinning.kernel_pct("tests") < 50

    zeros = os.open("/dev/zero", os.O_RDONLY)
    try:
        reading = cpu.CpuWindow(me, alone=("tests",))
        reading.start()
        _until_used(lambda: os.read(zeros, 1 << 20))  # the kernel fills a MiB at each call
        reading.stop()
    finally:
        os.close(zeros)
    assert reading.kernel_pct("tests") > 50
    per_loop = reading.per_closed_loop(10, 1)
    assert per_loop["cpu_kernel_pct_by_process"] == {"tests": reading.kernel_pct("tests")}
