"""The end of a chaos run judged: every report at the end its script says, and then nothing
lost and nothing duplicated on the bus or in any service's tables (shared by the single-node
chaos, the cluster chaos and the rolling upgrade)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import asyncpg
import nats
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import read_stream, wait_for
from gridloop_runtime.outbox import unsent_count

from .load import SCHEMAS, Counts, Planned, duplicates_by, outbox_ids, timer_firing


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
        total += await conn.fetchval(unsent_count(schema))
    return int(total)


# what is printed about a report that did not reach its end, to tell why
_CASE_DETAIL = (
    "SELECT * FROM dispatch.tasks WHERE case_id = $1",
    "SELECT * FROM handling.tasks WHERE case_id = $1",
    "SELECT * FROM handling.task_log WHERE case_id = $1",
    "SELECT * FROM handling.parked_commands WHERE case_id = $1",
    "SELECT * FROM handling.timers WHERE payload->>'case_id' = $1 OR key LIKE 'parked:%'",
    "SELECT seq, type, occurred_at, status FROM intake.timeline WHERE case_id = $1 ORDER BY seq",
)


async def settle(
    conn: asyncpg.Connection, reports: list[Planned], timeout: float, more: str = ""
) -> None:
    """Wait until every report is at its end and every outbox row sent; else fail saying
    which reports are not, with the dead letters and the first cases' rows printed."""

    async def settled() -> bool:
        return not await outcome_problems(conn, reports) and not await unsent(conn)

    try:
        await wait_for(settled, timeout=timeout, interval=1.0, what="every report at its end")
    except AssertionError:
        problems = await outcome_problems(conn, reports)
        for schema in SCHEMAS:
            dead = await conn.fetch(
                f"SELECT consumer, error, count(*) AS n FROM {schema}.dead_letters GROUP BY 1, 2"
            )
            print(schema, "dead letters:", [dict(r) for r in dead])
        for problem in problems[:3]:
            case_id = problem.split(": ")[1].split(" ")[0] if ": " in problem else ""
            for sql in _CASE_DETAIL:
                print(sql, [dict(r) for r in await conn.fetch(sql, case_id)][:20])
        raise AssertionError(
            f"{len(problems)} reports not where their script says: {problems[:10]}"
            f"\nunsent outbox rows: {await unsent(conn)}\n{more}"
        ) from None


async def judge(
    stack: Stack,
    conn: asyncpg.Connection,
    reports: list[Planned],
    counts: Counts,
    *,
    chased: bool = True,
) -> dict[str, Any]:
    """The checks after the run, against the streams and every service's tables; `chased`:
    the run moved the clock past deadlines, so the chase ladder must have fired."""
    assert stack.nats_url
    nc = await nats.connect(stack.nats_servers)
    js = nc.jetstream()
    try:
        cases_stream = await read_stream(js, "CASES")
        feed = await read_stream(js, "DISPATCH")
        notify = await read_stream(js, "NOTIFY")
        scores = await read_stream(js, "SCORES")
        # what intake and handling took over REST, kept on INTAKE and HANDLING
        taken = await read_stream(js, "INTAKE", "intake.taken.>")
        taken += await read_stream(js, "HANDLING", "handling._taken.>")
    finally:
        await nc.close()
    on_bus = Counter(m.headers.get("ce-id") for m in cases_stream + feed + notify + scores + taken)

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
    # every command of the department working over REST was taken
    refused = counts.department_refused
    assert not refused, f"the REST department's commands refused: {refused[:5]}"

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
    assert not chased or (fired["overdue"] and fired["escalated"]), (
        f"the clock jump chased nothing: {fired}"
    )
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
        "department_commands_over_rest": len(counts.department_answered),
        "timer_events": dict(fired),
        "faults": dict(counts.faults),
        "faults_total": sum(counts.faults.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
    }
