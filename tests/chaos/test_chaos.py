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
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import asyncpg
import nats
import pytest
from gridloop_city import load_city
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for

from .load import (
    ROOT,
    SCHEMAS,
    Counts,
    Planned,
    chase_the_silent,
    department,
    duplicates_by,
    fault_schedule,
    inject,
    outbox_ids,
    plan,
    read_stream,
    send_all,
    supervisors,
    timer_firing,
)

REPORTS = int(os.environ.get("CHAOS_REPORTS", "300"))
SEED = int(os.environ.get("CHAOS_SEED", "20261123"))
RATE = 5.0  # reports per second
# A working week and more: every silent department's task goes overdue and up the ladder.
CLOCK_JUMP = timedelta(days=8)


async def outcome_problems(conn: asyncpg.Connection, reports: list[Planned]) -> list[str]:
    """What is not (yet) as the scripts say; empty when every report reached its end."""
    got = {
        (r["source"], r["external_id"]): r
        for r in await conn.fetch(
            "SELECT r.source, r.external_id, r.case_id, r.outcome, c.status, c.ever_overdue "
            "FROM intake.reports r JOIN intake.cases c USING (case_id)"
        )
    }
    rejected = Counter(
        (r["source"], r["external_id"])
        for r in await conn.fetch("SELECT source, external_id FROM intake.rejections")
    )
    problems: list[str] = []
    scenes: dict[str, list[Any]] = defaultdict(list)
    for p in reports:
        key = (p.source, p.external_id)
        row = got.get(key)
        places = (1 if row else 0) + rejected[key]
        if places != 1:
            problems.append(f"{p.external_id} is in {places} cases/rejections")
            continue
        if p.script == "rejected":
            if not rejected[key]:
                problems.append(f"{p.external_id} should be rejected, is in a case")
            continue
        if row is None:
            problems.append(f"{p.external_id} ({p.script}) was rejected")
            continue
        if p.script == "closed" and row["status"] != "closed":
            problems.append(f"{p.external_id}: {row['case_id']} is {row['status']}, not closed")
        elif p.script == "overdue" and (not row["ever_overdue"] or row["status"] == "closed"):
            problems.append(f"{p.external_id}: {row['case_id']} is not overdue ({row['status']})")
        elif p.group is not None:
            scenes[p.group].append(row)
    for group, rows in scenes.items():
        cases = {r["case_id"] for r in rows}
        outcomes = sorted(r["outcome"] for r in rows)
        status = {r["status"] for r in rows}
        if len(rows) != 3 or len(cases) != 1 or outcomes != ["merged", "merged", "new"]:
            problems.append(f"scene {group}: cases {cases}, outcomes {outcomes}")
        elif status != {"pending_confirmation"}:
            problems.append(f"scene {group}: {cases} is {status}, not pending_confirmation")
    return problems


async def unsent(conn: asyncpg.Connection) -> int:
    total = 0
    for schema in SCHEMAS:
        total += await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL")
    return int(total)


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
    stop = asyncio.Event()
    kit_log: list[str] = []
    helpers = [
        asyncio.create_task(department(stack, "sanitation", stop, kit_log)),
        asyncio.create_task(supervisors(stack, stop, counts)),
    ]
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

        async def settled() -> bool:
            return not await outcome_problems(conn, reports) and not await unsent(conn)

        try:
            _: bool = await wait_for(
                settled, timeout=200, interval=1.0, what="every report at its end"
            )
        except AssertionError:
            problems = await outcome_problems(conn, reports)
            print(f"load and faults took {loaded - started:.0f}s; faults {dict(counts.faults)}")
            for schema in SCHEMAS:
                dead = await conn.fetch(
                    f"SELECT consumer, error, count(*) AS n FROM {schema}.dead_letters "
                    "GROUP BY 1, 2"
                )
                print(schema, "dead letters:", [dict(r) for r in dead])
            for problem in problems[:3]:
                case_id = problem.split(": ")[1].split(" ")[0] if ": " in problem else ""
                for sql in (
                    "SELECT * FROM dispatch.tasks WHERE case_id = $1",
                    "SELECT * FROM handling.tasks WHERE case_id = $1",
                    "SELECT * FROM handling.task_log WHERE case_id = $1",
                    "SELECT * FROM handling.parked_commands WHERE case_id = $1",
                    "SELECT * FROM handling.timers WHERE payload->>'case_id' = $1 "
                    "OR key LIKE 'parked:%'",
                    "SELECT seq, type, occurred_at, status FROM intake.timeline "
                    "WHERE case_id = $1 ORDER BY seq",
                ):
                    print(sql, [dict(r) for r in await conn.fetch(sql, case_id)][:20])
            raise AssertionError(
                f"{len(problems)} reports not where their script says: {problems[:10]}"
                f"\nunsent outbox rows: {await unsent(conn)}\nkit: {kit_log[-10:]}"
            ) from None
    finally:
        stop.set()
        await asyncio.gather(*helpers, return_exceptions=True)
    assert conn is not None
    try:
        summary = await judge(stack, conn, reports, counts)
    finally:
        await conn.close()
    summary["seconds"] = round(time.monotonic() - started)
    summary["load_and_faults_s"] = round(loaded - started)
    with capsys.disabled():
        print("\nchaos: " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)


async def judge(
    stack: Stack, conn: asyncpg.Connection, reports: list[Planned], counts: Counts
) -> dict[str, Any]:
    """The checks after the run, against the streams and every service's tables."""
    assert stack.nats_url
    nc = await nats.connect(stack.nats_servers)
    js = nc.jetstream()
    try:
        cases_stream = await read_stream(js, "CASES")
        feed = await read_stream(js, "DISPATCH")
        notify = await read_stream(js, "NOTIFY")
        scores = await read_stream(js, "SCORES")
    finally:
        await nc.close()
    on_bus = Counter(m.headers.get("ce-id") for m in cases_stream + feed + notify + scores)

    # nothing lost: every event any service recorded is on the bus
    recorded = 0
    lost: list[str] = []
    for schema in SCHEMAS:
        ids, not_sent = await outbox_ids(conn, schema)
        assert not_sent == 0, f"{schema} has {not_sent} unsent outbox rows"
        recorded += len(ids)
        lost += [f"{schema}:{i}" for i in ids if i not in on_bus]
    assert not lost, f"{len(lost)} recorded events never reached the bus: {lost[:10]}"
    # nothing duplicated on the lifecycle stream
    duplicated = {i: n for i, n in on_bus.items() if n > 1}
    assert not duplicated, f"events on the bus more than once: {list(duplicated.items())[:10]}"
    # no message parked as undeliverable anywhere
    dead = {s: await conn.fetchval(f"SELECT count(*) FROM {s}.dead_letters") for s in SCHEMAS}
    assert not any(dead.values()), f"dead letters: {dead}"

    # no department got a task twice under two ids, and each dispatch reached it once
    assigned = [m for m in feed if m.subject.endswith(".assigned")]
    twice = duplicates_by(assigned, lambda m: (m.subject, m.data["case"]["task_id"]))
    assert not twice, f"a task sent to its department under two ids: {twice}"
    tasks_by_case: dict[str, set[str]] = defaultdict(set)
    for m in assigned:
        tasks_by_case[m.data["case"]["case_id"]].add(m.data["case"]["task_id"])
    dispatched = defaultdict(set)
    for r in await conn.fetch("SELECT case_id, task_id FROM dispatch.tasks"):
        dispatched[r["case_id"]].add(r["task_id"])
    assert dict(tasks_by_case) == dict(dispatched), "department feed and dispatch disagree"
    handling = defaultdict(set)
    for r in await conn.fetch("SELECT case_id, task_id FROM handling.tasks"):
        handling[r["case_id"]].add(r["task_id"])
    assert dict(handling) == dict(dispatched), "handling's tasks and dispatch's disagree"
    closed_cases = {
        r["case_id"]
        for r in await conn.fetch(
            "SELECT case_id FROM intake.reports WHERE external_id = ANY($1::text[])",
            [p.external_id for p in reports if p.script == "closed"],
        )
    }
    more = {c: t for c, t in dispatched.items() if c in closed_cases and len(t) != 1}
    assert not more, f"cases passed first time with more than one task: {more}"

    # no timer fired twice: one reminder / overdue / escalation per task, stage and level
    firings = [timer_firing(m) for m in cases_stream]
    fired = Counter(f[0].split(".")[2] for f in firings if f is not None)
    assert fired["overdue"] and fired["escalated"], f"the clock jump chased nothing: {fired}"
    twice_fired = duplicates_by(cases_stream, timer_firing)
    assert not twice_fired, f"timers that fired twice: {twice_fired}"
    feed_timers = duplicates_by(
        [m for m in feed if not m.subject.endswith((".assigned", ".answer"))],
        lambda m: (m.subject, m.data["case"]["task_id"], m.data.get("stage"), m.data.get("level")),
    )
    assert not feed_timers, f"a department chased twice for one deadline: {feed_timers}"

    outcomes = Counter(
        r["outcome"]
        for r in await conn.fetch(
            "SELECT outcome FROM intake.reports WHERE external_id = ANY($1::text[])",
            [p.external_id for p in reports],
        )
    )
    rejections = await conn.fetchval(
        "SELECT count(*) FROM intake.rejections WHERE external_id = ANY($1::text[])",
        [p.external_id for p in reports],
    )
    return {
        "reports_sent": len(reports),
        "sent_over": dict(counts.sent),
        "send_retries": dict(counts.retries),
        "cases": outcomes["new"],
        "rejections": rejections,
        "merges": outcomes["merged"],
        "closed": len(closed_cases),
        "events_on_CASES": len(cases_stream),
        "events_recorded": recorded,
        "department_tasks": len(assigned),
        "timer_events": dict(fired),
        "faults": dict(counts.faults),
        "faults_total": sum(counts.faults.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
    }
