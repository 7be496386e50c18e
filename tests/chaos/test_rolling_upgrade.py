"""A rolling upgrade rehearsed on the production shape (3 NATS nodes, two replicas of every
service): under a steady stream of reports from the channels, every replica of every service
is replaced one by one as Kubernetes would (SIGTERM, the graceful stop, then a new process;
the next one once it is ready). Nothing is lost or doubled (the chaos suite's judgement), and
no client that honours Retry-After ever sees a 5xx without one: a replica going away either
finishes a request or refuses the connection, and the client asks the next replica (the load
balancer's part)."""

from __future__ import annotations

import asyncio
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
    SCHEMAS,
    Counts,
    Pace,
    People,
    chase_the_silent,
    plan,
    send_all,
)

REPORTS = 160
SEED = 20261203
RATE = 2.0  # reports per second while replicas are replaced
RATE_AFTER = 6.0
CLOCK_JUMP = timedelta(days=8)


@pytest.mark.timeout(1200)
async def test_replicas_replaced_one_by_one_under_load(
    cluster_chaos_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = cluster_chaos_stack
    started = time.monotonic()
    rng = random.Random(SEED)
    reports = plan(load_city(ROOT / "data" / "demo-city"), rng, REPORTS, f"rolling{SEED}")
    # every report over REST comes to intake while its replicas are replaced
    for p in reports:
        if p.script == "closed" and rng.random() < 0.5:
            p.via = "http"
    counts = Counts()
    people = People.start(stack, counts)
    warmed, half_sent, rolled = asyncio.Event(), asyncio.Event(), asyncio.Event()
    replaced: dict[str, float] = {}
    pace = Pace(len(reports), rolled, RATE, RATE_AFTER)

    def progress(sent: int) -> None:
        pace.progress(sent)
        if sent >= 10:
            warmed.set()
        if sent >= len(reports) // 2:
            half_sent.set()

    async def roll() -> None:
        """One replica at a time: stop (SIGTERM), start, wait until it is ready."""
        await warmed.wait()
        try:
            for service in SCHEMAS:
                for instance in stack.instances(service):
                    begin = time.monotonic()
                    await asyncio.to_thread(stack.stop_service, instance)
                    await asyncio.to_thread(stack.start_service, instance)
                    await asyncio.to_thread(stack.wait_ready, 120, (instance,))
                    replaced[instance] = round(time.monotonic() - begin, 1)
                    counts.faults["replaced"] += 1
        finally:
            rolled.set()

    conn: asyncpg.Connection | None = None
    try:
        await asyncio.gather(
            send_all(stack, reports, pace, counts, progress),
            roll(),
            chase_the_silent(stack, reports, half_sent, CLOCK_JUMP),
        )
        assert pace.sent_when_over, "the plan ran out before the last replica was replaced"
        assert not counts.http_refused, counts.http_refused[:5]
        assert stack.database_url
        conn = await asyncpg.connect(stack.database_url)

        await settle(conn, reports, timeout=180, more=f"kit: {people.kit_log[-10:]}")
    finally:
        await people.leave()
    assert conn is not None
    try:
        summary = await judge(stack, conn, reports, counts)
    finally:
        await conn.close()
    # no 5xx without Retry-After to the reporting clients or the supervisors
    assert not counts.http_server_errors, counts.http_server_errors[:10]
    summary["http_5xx_without_retry_after"] = len(counts.http_server_errors)
    summary["http_with_retry_after"] = dict(counts.http_retry_after)
    summary["sent_before_roll_ended"] = pace.sent_when_over
    summary["replaced_s"] = replaced
    summary["seconds"] = round(time.monotonic() - started)
    with capsys.disabled():
        print("\nrolling upgrade: " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
