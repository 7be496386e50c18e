"""CPU time of the processes under measurement, per closed loop: one place for `make bench`
(bench/loop.py) and `make profile` (bench/profile.py).

The system's cost (`cpu_ms_per_closed_loop`) is the services, nats-server and PostgreSQL with
its backends; the load generator and the simulated actors (department kit, supervisors) are
measured beside it and never added to it."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

# The names cpu_times is given for what is not the system under measurement.
LOAD = "load"
ACTORS = "actors"
NOT_SYSTEM = frozenset({LOAD, ACTORS})


def cpus() -> int:
    """The CPUs this process may run on."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def _own(times: Any) -> tuple[float, float]:
    return float(times.user + times.system), float(times.system)


def _with_reaped(times: Any) -> tuple[float, float]:
    """Its own CPU and that of its children that have exited and were waited for (Linux
    adds a reaped child's own children times to it as well); (all of it, the kernel's)."""
    kernel = times.system + times.children_system
    return float(times.user + times.children_user + kernel), float(kernel)


def cpu_times(
    pids: Mapping[str, int], *, alone: Collection[str] = ()
) -> dict[str, tuple[float, float]]:
    """(user+system, system) CPU seconds of each process and all its descendants: the living
    ones and those that exited and were reaped (a PostgreSQL backend whose connection closed
    counts through the postmaster's children times), so a difference of two readings is
    what the tree used in between, and how much of it ran in the kernel (system calls:
    socket I/O, fsync). The names in `alone` count the process alone (the load process,
    whose children are the services, nats-server and PostgreSQL themselves)."""
    out: dict[str, tuple[float, float]] = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            if name in alone:
                out[name] = _own(root.cpu_times())
                continue
            total = kernel = 0.0
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t, k = _with_reaped(p.cpu_times())
                    total += t
                    kernel += k
            out[name] = (total, kernel)
        except psutil.Error:
            out[name] = (0.0, 0.0)
    return out


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine was busy (every process, not just ours): all but idle,
    I/O wait and time stolen by the hypervisor, summed over the CPUs."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0) + getattr(t, "steal", 0.0)
    # guest time is already inside user (and guest_nice inside nice) on Linux
    total = sum(getattr(t, f) for f in t._fields if f not in ("guest", "guest_nice"))
    return float(total - idle)


@dataclass
class CpuWindow:
    """CPU of named processes between `start()` and `stop()`."""

    pids: Mapping[str, int]
    alone: Collection[str] = (LOAD,)
    used: dict[str, float] = field(default_factory=dict)
    # of `used`, the seconds in the kernel (system time)
    kernel: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    machine_busy: float = 0.0
    _t0: float = 0.0
    _cpu0: dict[str, tuple[float, float]] = field(default_factory=dict)
    _busy0: float = 0.0

    def start(self) -> None:
        self._cpu0 = cpu_times(self.pids, alone=self.alone)
        self._busy0 = machine_busy_seconds()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self._t0
        cpu1 = cpu_times(self.pids, alone=self.alone)
        self.machine_busy = machine_busy_seconds() - self._busy0
        zero = (0.0, 0.0)
        self.used = {name: cpu1[name][0] - self._cpu0.get(name, zero)[0] for name in self.pids}
        self.kernel = {name: cpu1[name][1] - self._cpu0.get(name, zero)[1] for name in self.pids}

    def kernel_pct(self, name: str) -> float:
        """The share of a process's CPU in the window that ran in the kernel."""
        used = self.used.get(name, 0.0)
        return round(100 * self.kernel.get(name, 0.0) / used, 1) if used > 0 else 0.0

    def system(self) -> list[str]:
        """The processes of the system under measurement (not the load, not the actors)."""
        return [name for name in self.pids if name not in NOT_SYSTEM]

    def per_closed_loop(self, loops: int, cpus: int) -> dict[str, Any]:
        """The result keys: milliseconds of CPU per closed loop, the system's total and per
        process, the load's and the actors' apart, and how busy the machine was."""
        n = max(loops, 1)

        def ms(seconds: float) -> float:
            return round(1000 * seconds / n, 1)

        system = self.system()
        capacity = max(self.elapsed * cpus, 1e-9)
        ours = sum(self.used.values())
        sys_s = sum(self.used[k] for k in system)
        out: dict[str, Any] = {
            "cpu_ms_per_closed_loop": ms(sys_s),
            "cpu_ms_per_closed_loop_by_process": {k: ms(self.used[k]) for k in system},
            "cpu_kernel_pct_by_process": {k: self.kernel_pct(k) for k in system},
        }
        if LOAD in self.used:
            out["load_cpu_ms_per_closed_loop"] = ms(self.used[LOAD])
        if ACTORS in self.used:
            out["actors_cpu_ms_per_closed_loop"] = ms(self.used[ACTORS])
        out["loop_cpu_pct_of_machine"] = {
            "system": round(100 * sum(self.used[k] for k in system) / capacity, 1),
            "load_and_actors": round(
                100 * (ours - sum(self.used[k] for k in system)) / capacity, 1
            ),
            "everything_else": round(100 * max(self.machine_busy - ours, 0.0) / capacity, 1),
        }
        return out

    def lines(self, loops: int, names: Iterable[str] | None = None) -> list[str]:
        """Per process: ms per closed loop, share of one CPU over the window and the share of
        its CPU in the kernel; then the system's total (load and actors excluded)."""
        n, elapsed = max(loops, 1), max(self.elapsed, 1e-9)
        rows = [
            f"  {name:10s} {1000 * self.used[name] / n:7.1f} ms  "
            f"{100 * self.used[name] / elapsed:5.1f}%  kernel {self.kernel_pct(name):4.0f}%"
            for name in (names or self.pids)
        ]
        total = sum(self.used[k] for k in self.system())
        rows.append(
            f"  {'total':10s} {1000 * total / n:7.1f} ms  {100 * total / elapsed:5.1f}%"
            "  = cpu_ms_per_closed_loop (services + nats + postgres; load and actors excluded)"
        )
        return rows
