"""The bench's reference monolith (bench/monolith.py): the loop the issue's targets are set
against, measured on the same servers as the system. Run as the bench runs it, in processes
of its own, on servers it starts (`python -m bench.monolith`), with short windows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_monolith_closes_loops_and_times_each_report_to_its_department() -> None:
    rate, seconds = 20, 2
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.monolith",
            "--seconds",
            "2",
            "--rate",
            str(rate),
            "--rate-seconds",
            str(seconds),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["closed_loops_per_s"] > 0
    assert result["cpu_ms_per_closed_loop"] > 0
    key = f"at_{rate}rps"
    # every measured report heard, each timed: the percentiles are of all of them, in order
    assert result[f"reports_heard_{key}"] == f"{rate * seconds} of {rate * seconds}"
    p50, p95, p99 = (result[f"p{q}_report_to_department_ms_{key}"] for q in (50, 95, 99))
    assert 0 < p50 <= p95 <= p99
    assert result[f"cpu_ms_per_closed_loop_{key}"] > 0
