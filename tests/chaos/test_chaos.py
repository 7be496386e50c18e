"""Chaos: a steady stream of reports through the whole loop while every service is killed -9 at
seeded random moments and restarted, nats-server is restarted and PostgreSQL is restarted.

Afterwards every report is in exactly one case or one rejection, every case reached the state
its script says, no department got a task twice under two ids, no timer fired twice, and every
event any service recorded is on the bus: nothing lost, nothing duplicated. The counts checked
are printed (`CHAOS_REPORTS` and `CHAOS_SEED` change the size and the schedule)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import timedelta

import asyncpg
import pytest
from gridloop_city import load_city
from gridloop_devkit.launcher import Stack

from .judgement import judge, settle
from .load import (
    ROOT,
    Counts,
    People,
    chase_the_silent,
    fault_schedule,
    inject,
    plan,
    send_all,
)

REPORTS = int(os.environ.get("CHAOS_REPORTS", "300"))
SEED = int(os.environ.get("CHAOS_SEED", "20261123"))
RATE = 5.0  # reports per second
# A working week and more: every silent department's task goes overdue and up the ladder.
CLOCK_JUMP = timedelta(days=8)


@pytest.mark.timeout(540)
async def test_the_loop_survives_kills_and_restarts(
    chaos_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = chaos_stack
    started = time.monotonic()
    city = load_city(ROOT / "data" / "demo-city")
    rng = random.Random(SEED)
    reports = plan(city, rng, REPORTS, f"chaos{SEED}")
    counts = Counts()
    people = People.start(stack, counts)
    half_sent = asyncio.Event()

    def progress(sent: int) -> None:
        if sent >= len(reports) // 2:
            half_sent.set()

    faults = fault_schedule(rng)
    send_s = len(reports) / RATE
    # spread the faults over the sending, each restart taking a few seconds of its own
    gap = (0.3 * send_s / len(faults), 0.8 * send_s / len(faults))
    conn: asyncpg.Connection | None = None
    try:
        await asyncio.gather(
            send_all(stack, reports, RATE, counts, progress),
            inject(stack, faults, rng, counts, gap),
            chase_the_silent(stack, reports, half_sent, CLOCK_JUMP),
        )
        loaded = time.monotonic()
        assert not counts.http_refused, counts.http_refused[:5]
        assert stack.database_url
        conn = await asyncpg.connect(stack.database_url)

        await settle(
            conn,
            reports,
            timeout=200,
            more=f"load and faults took {loaded - started:.0f}s; faults {dict(counts.faults)}"
            f"\nkit: {people.kit_log[-10:]}",
        )
    finally:
        await people.leave()
    assert conn is not None
    try:
        summary = await judge(stack, conn, reports, counts)
    finally:
        await conn.close()
    summary["seconds"] = round(time.monotonic() - started)
    summary["load_and_faults_s"] = round(loaded - started)
    with capsys.disabled():
        print("\nchaos: " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
