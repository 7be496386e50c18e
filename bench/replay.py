"""Scoring replay over a million events: generated case lifecycles published straight into
the CASES stream of a nats-server of its own, then `python -m gridloop_scoring rebuild
--apply` into a fresh scoring database, timed end to end (reading the stream, folding,
writing the projection) with the rebuild process's peak RSS.

That nats-server runs JetStream without `sync_interval: always`: the measurement is of the
replay, which only reads, not of durable publishing (the output says so).

On its own: `python -m bench.replay [--events N] [--keep]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from gridloop_city import load_city
from gridloop_contracts.subjects import STREAMS
from gridloop_devkit.devstack import LocalNats, LocalPostgres
from gridloop_runtime import bus

from .events import CityDims, generate, publish

ROOT = Path(__file__).resolve().parent.parent
CITY = ROOT / "data" / "demo-city"


async def fill(nats_url: str, events: int) -> dict[str, Any]:
    """Publish `events` generated events into CASES (pipelined; done when the stream holds
    them all)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, [s for s in STREAMS if s.name == "CASES"])
        t0 = time.perf_counter()
        sent = await publish(nc, generate(CityDims(load_city(CITY)), events))
        end = time.monotonic() + 120
        while True:
            info = await js.stream_info("CASES")
            if int(info.state.messages or 0) >= sent or time.monotonic() > end:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - t0
    finally:
        await nc.close()
    return {
        "published": sent,
        "in_stream": int(info.state.messages or 0),
        "publish_seconds": round(elapsed, 1),
        "publish_per_s": round(sent / elapsed) if elapsed else None,
    }


def run_rebuild(env: dict[str, str], work: Path, timeout: float = 600) -> dict[str, Any]:
    """`python -m gridloop_scoring rebuild --apply` as its own process: its report, the wall
    time and its peak RSS (from the kernel's accounting of the waited-for child)."""
    out_path = work / "rebuild.out"
    with out_path.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridloop_scoring", "rebuild", "--apply"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text(errors="replace")
    report: dict[str, Any] = {}
    start = ("\n" + text).rfind("\n{")
    if start >= 0:
        try:
            report = json.loads(text[start:])
        except json.JSONDecodeError:
            report = {}
    return {
        "exit_code": proc.returncode,
        "seconds": elapsed,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "report": report,
        "output_tail": None if report else text[-2000:],
    }


async def measure(work: Path, pg: LocalPostgres, events: int) -> dict[str, Any]:
    """The replay phase: its own nats-server, a fresh database in `pg`."""
    server = LocalNats(work / "replay-nats", log_file=work / "replay-nats.log").start()
    try:
        filled = await fill(server.url, events)
        db_url = pg.create_database("scoring_replay")
        env = dict(os.environ)
        env.update(
            {
                "SERVICE_NAME": "scoring",
                "NATS_URL": server.url,
                "DATABASE_URL": db_url,
                "CITY_DATA_DIR": str(CITY),
                "LOG_LEVEL": "WARNING",
            }
        )
        r = run_rebuild(env, work)
    finally:
        server.stop()
    report = r["report"]
    read = report.get("events_read") or 0
    out: dict[str, Any] = {
        "scoring_replay_events": read or None,
        "scoring_replay_seconds": round(r["seconds"], 1),
        "scoring_replay_events_per_s": round(read / r["seconds"]) if read else None,
        "scoring_replay_events_per_s_fold_only": report.get("fold_events_per_second"),
        "scoring_replay_rss_mb": r["peak_rss_mb"],
        "scoring_replay_detail": {
            "nats_sync_always": False,
            "note": "separate nats-server for this phase, JetStream without sync_interval: "
            "always (the replay only reads); the rate is the whole rebuild process: start-up, "
            "reading the stream, folding, writing facts and items by COPY, swapping in",
            **filled,
            "exit_code": r["exit_code"],
            "rebuild": {
                k: report.get(k)
                for k in (
                    "events_read",
                    "facts",
                    "cases",
                    "items",
                    "duplicates",
                    "invalid",
                    "validated",
                    "buckets",
                    "applied",
                    "read_seconds",
                    "fold_seconds",
                    "seconds",
                    "read_events_per_second",
                    "events_per_second",
                )
            },
        },
    }
    if r["output_tail"]:
        out["scoring_replay_detail"]["output_tail"] = r["output_tail"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="Measure the scoring replay on its own.")
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridloop-replay-bench-"))
    pg = LocalPostgres(work / "pg", durable=False, log_file=work / "pg.log").start()
    try:
        result = asyncio.run(measure(work, pg, args.events))
    finally:
        pg.stop()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
