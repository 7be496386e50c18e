"""`make bench`: bring everything up, measure in one run, print one JSON object.

Absolute numbers drift on shared machines, so every figure is also given as a ratio to the
raw speed of the same bus and database measured in the same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gridloop_city import load_city
from gridloop_devkit.devstack import LocalNats, LocalPostgres

from . import baseline, monolith
from .cpu import cpus

ROOT = Path(__file__).resolve().parent.parent

RESULTS = Path(__file__).resolve().parent / "results"


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": cpus(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "config": {"nats_sync_always": args.durable, "postgres_fsync": args.durable},
        "city_locate_per_s": round(
            baseline.city_locate_rate(load_city(ROOT / "data" / "demo-city"))
        ),
    }
    nats = LocalNats(work / "nats", sync_always=args.durable, log_file=work / "nats.log").start()
    pg = LocalPostgres(work / "pg", durable=args.durable, log_file=work / "pg.log").start()
    try:
        db_url = pg.create_database("bench")
        out["baseline_jetstream_publish_per_s"] = round(
            await baseline.jetstream_publish_rate(nats.url, args.baseline_messages)
        )
        out["baseline_pg_commit_per_s"] = round(
            await baseline.pg_commit_rate(db_url, args.baseline_seconds)
        )

        async def reference(db: str) -> dict[str, Any]:
            """The reference monolith's loop on these servers (bench/monolith.py)."""
            assert nats.proc is not None and pg.proc is not None
            try:
                mono = await monolith.measure(
                    pg.create_database(db),
                    nats.url,
                    {"nats": nats.proc.pid, "postgres": pg.proc.pid},
                    seconds=args.monolith_seconds,
                    rate_seconds=args.monolith_rate_seconds,
                )
            finally:
                # the system's phases share this PostgreSQL: nothing of the reference's is
                # left in it (its workers have exited, the drop ends any session still open)
                pg.drop_database(db)
            # the lifecycle target (≥ 0.5 × the raw publish rate) read for the reference
            if mono.get("closed_loops_per_s"):
                mono["lifecycle_events_to_jetstream_publish"] = round(
                    mono["closed_loops_per_s"]
                    * mono["events_per_closed_loop"]
                    / (out["baseline_jetstream_publish_per_s"] or 1),
                    3,
                )
            return mono

        if args.monolith and args.only is None:
            out["baseline_monolith"] = await reference("monolith")
        try:
            from . import loop
        except ImportError:
            out["note"] = "service measurements not available yet"
        else:
            if args.only != "cluster":
                out.update(await loop.run(args, work, nats, pg, out))
                if args.monolith and args.only is None and args.monolith_after:
                    # the reference again, the system's phases between its two runs: the
                    # ratios to their mean show how far the machine moved within the run
                    after = await reference("monolith_after")
                    out["baseline_monolith_after"] = after
                    out["ratios_to_monolith_before_and_after"] = loop.to_monolith(
                        out, bracketed(out["baseline_monolith"], after)
                    )
            if args.cluster and args.only in (None, "cluster"):
                from . import cluster

                out.update(await cluster.run(args, work, pg))
                out.setdefault("ratios", {})["closed_loops_cluster_to_pg_commits"] = round(
                    out["closed_loops_per_s_cluster"] / (out["baseline_pg_commit_per_s"] or 1), 4
                )
    finally:
        nats.stop()
        pg.stop()
    return out


def bracketed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """The reference's figures as the mean of its runs before and after the system's."""
    return {
        key: (before[key] + after[key]) / 2
        for key, value in before.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and isinstance(after.get(key), int | float)
    }


def main() -> int:
    # A kill (SIGTERM) unwinds like Ctrl-C, so the servers and services it started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description="Measure gridloop end to end on this machine.")
    p.add_argument(
        "--durable",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fsync on (production-like)",
    )
    p.add_argument("--baseline-messages", type=int, default=50_000)
    p.add_argument("--baseline-seconds", type=float, default=5.0)
    p.add_argument(
        "--monolith",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the reference monolith's loop on the same servers first (baseline_monolith)",
    )
    p.add_argument(
        "--monolith-after",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the reference again after the system's loop (baseline_monolith_after) and the "
        "ratios to the mean of both",
    )
    p.add_argument("--monolith-seconds", type=float, default=20.0, help="its saturation window")
    p.add_argument(
        "--monolith-rate-seconds", type=float, default=30.0, help="its 50 reports/s window"
    )
    p.add_argument("--loop-seconds", type=float, default=60.0, help="sustained closed-loop phase")
    p.add_argument(
        "--warmup-seconds", type=float, default=20.0, help="closed loops before measuring"
    )
    p.add_argument(
        "--in-flight", type=int, default=400, help="open cases kept in the closed-loop phase"
    )
    p.add_argument(
        "--latency-windows",
        type=int,
        default=3,
        help="windows of 500 reports (10 s) measured at 50 reports/s, back to back",
    )
    p.add_argument(
        "--path-alone-reports",
        type=int,
        default=500,
        help="reports sent at 50/s with handling, verify and scoring stopped: the report's path "
        "without the rest of the loop (0: skip it)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    p.add_argument("--burst", type=int, default=5000, help="reports in the NATS intake burst")
    p.add_argument(
        "--replay-events",
        type=int,
        default=1_000_000,
        help="events generated for the scoring replay measurement (0: skip it)",
    )
    p.add_argument(
        "--cluster",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the closed loop again on 3 NATS nodes and 2 replicas of every service "
        "(closed_loops_per_s_cluster); --no-cluster skips it",
    )
    p.add_argument("--cluster-seconds", type=float, default=30.0, help="its measured window")
    p.add_argument("--cluster-warmup-seconds", type=float, default=10.0, help="its warm-up")
    p.add_argument(
        "--only",
        choices=("closed_loop", "cluster"),
        help="only this phase (with the baselines, for the ratios); printed, not kept in "
        "results/latest.json",
    )
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gridloop-bench-"))
    try:
        result = asyncio.run(measure(args, tmp))
    finally:
        if args.keep:
            print(f"work directory kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.only is None:  # a partial run does not replace the last whole one
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "latest.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
