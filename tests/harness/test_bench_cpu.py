"""The benchmark's CPU accounting (bench/cpu.py, not a package: loaded from its file): a
window tells each process's CPU and how much of it ran in the kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from gridloop_devkit.testing import load_module

ROOT = Path(__file__).resolve().parents[2]
CPU_SECONDS = 1.0


# A fresh process starts, says it is ready, and at a word from the test works until it has
# used CPU_SECONDS, says so, and waits to be let go. The window measures that process, not
# this long-lived one: Linux splits a process's CPU into user and kernel time in proportion
# to its ticks over its whole life, so a short window in a test worker that has run user code
# for a minute reads a kernel share far below the true one (seen: 27 % for reading
# /dev/zero). And the window opens only once the interpreter has started: its start-up is
# user time, and on a busy machine it was as long as the work itself (seen: 50 %).
_WORKER = """
import sys, time
spin = sys.argv[1] == "spin"
zeros = open("/dev/zero", "rb", buffering=0)
buffer = bytearray(1 << 20)
print("ready", flush=True)
sys.stdin.readline()
start = time.process_time()
while time.process_time() - start < float(sys.argv[2]):
    if spin:
        sum(i * i for i in range(10_000))
    else:
        zeros.readinto(buffer)  # the kernel fills a MiB at each call
print("done", flush=True)
sys.stdin.read()
"""


def _window_over(cpu: Any, kind: str) -> Any:
    """A CpuWindow over a fresh process that spins (`spin`) or reads /dev/zero (`read`)."""
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, kind, str(CPU_SECONDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert worker.stdout.readline().strip() == "ready"
        window = cpu.CpuWindow({"worker": worker.pid}, alone=("worker",))
        window.start()
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline().strip() == "done"
        window.stop()
    finally:
        worker.stdin.close()
        worker.wait(timeout=60)
    return window


def test_a_window_tells_how_much_of_a_process_cpu_ran_in_the_kernel() -> None:
    cpu = load_module(ROOT / "bench" / "cpu.py", "bench_cpu")

    spinning = _window_over(cpu, "spin")
    assert spinning.used["worker"] >= CPU_SECONDS * 0.8
    assert spinning.kernel_pct("worker") < 50

    reading = _window_over(cpu, "read")
    assert reading.kernel_pct("worker") > 50
    per_loop = reading.per_closed_loop(10, 1)
    assert per_loop["cpu_kernel_pct_by_process"] == {"worker": reading.kernel_pct("worker")}
