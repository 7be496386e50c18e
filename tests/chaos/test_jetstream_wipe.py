"""PostgreSQL is the record: the JetStream store is deleted in the middle of a run, the
services recreate their streams and consumers on reconnect, integrators resend what got no
answer, the operator re-publishes every service's outbox for the time range, and every
projection (intake's cases, dispatch's, handling's tasks, verify's, scoring's facts)
converges with nothing lost."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from gridloop_city import load_city
from gridloop_devkit.devstack import LocalNats
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for

from .judgement import outcome_problems
from .load import ROOT, SCHEMAS, Counts, People, plan, send_all

REPORTS = 120
RATE = 6.0


def wipe_jetstream(stack: Stack) -> None:
    """kill -9 nats-server, delete its JetStream store, start it again on the same port."""
    assert isinstance(stack.nats, LocalNats)  # one server (tests/chaos/conftest.py)
    stack.nats.stop(kill=True)
    shutil.rmtree(stack.nats.store_dir / "js")
    stack.nats.start()
    stack.wait_ready(90)


async def projections_disagree(conn: asyncpg.Connection) -> list[str]:
    """Cases intake holds closed that another service's projection does not."""
    closed = [
        r["case_id"]
        for r in await conn.fetch("SELECT case_id FROM intake.cases WHERE status = 'closed'")
    ]
    checks = {
        "dispatch": "SELECT case_id FROM dispatch.cases WHERE state = 'closed'",
        "verify": "SELECT case_id FROM verify.cases WHERE stage = 'closed'",
        "handling": "SELECT case_id FROM handling.tasks GROUP BY case_id "
        "HAVING bool_and(state IN ('closed', 'superseded'))",
        "scoring": "SELECT DISTINCT case_id FROM scoring.facts WHERE type = 'closed'",
    }
    out = []
    for service, sql in checks.items():
        have = {r["case_id"] for r in await conn.fetch(sql)}
        missing = [c for c in closed if c not in have]
        if missing:
            out.append(f"{service} misses {len(missing)} closed cases, e.g. {missing[:3]}")
    return out


@pytest.mark.timeout(300)
async def test_a_lost_jetstream_store_is_recovered_from_the_outboxes(
    chaos_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = chaos_stack
    since = datetime.now(UTC) - timedelta(minutes=1)
    city = load_city(ROOT / "data" / "demo-city")
    reports = [p for p in plan(city, random.Random(7), REPORTS, "wipe") if p.script != "overdue"]
    counts = Counts()
    people = People.start(stack, counts)
    wiped = asyncio.Event()

    def progress(sent: int) -> None:
        if sent == len(reports) // 2:
            wiped.set()

    assert stack.database_url
    conn = await asyncpg.connect(stack.database_url)
    try:
        sending = asyncio.create_task(send_all(stack, reports, RATE, counts, progress))
        await wiped.wait()
        await asyncio.to_thread(wipe_jetstream, stack)
        await sending
        # Integrators resend what got no answer (the same ids: safe): reports the bus
        # acknowledged and then lost with its store exist nowhere else.
        known = {
            r["external_id"]
            for r in await conn.fetch(
                "SELECT external_id FROM intake.reports UNION "
                "SELECT external_id FROM intake.rejections"
            )
        }
        resent = [p for p in reports if p.external_id not in known]
        await send_all(stack, resent, 50.0, counts, lambda _: None)
        # The operator's recovery: every service re-publishes its outbox for the range.
        until = datetime.now(UTC) + timedelta(minutes=1)
        republished = {}
        async with httpx.AsyncClient(timeout=60) as http:
            for name in SCHEMAS:
                r = await http.post(
                    stack.url(name) + "/admin/outbox/republish",
                    json={"since": since.isoformat(), "until": until.isoformat()},
                    headers={"X-User": "admin"},
                )
                assert r.status_code == 200, (name, r.status_code, r.text)
                republished[name] = r.json()["republished"]
        # scoring publishes only at period ends (its timers), so it may have nothing yet
        assert all(republished[s] for s in SCHEMAS if s != "scoring"), republished

        async def converged() -> bool:
            return not await outcome_problems(conn, reports) and not await projections_disagree(
                conn
            )

        started = time.monotonic()
        try:
            _: bool = await wait_for(converged, timeout=120, interval=1.0, what="convergence")
        except AssertionError:
            problems = await outcome_problems(conn, reports)
            raise AssertionError(
                f"not converged: {len(problems)} reports, e.g. {problems[:10]}; "
                f"{await projections_disagree(conn)}"
            ) from None
        closed = await conn.fetchval("SELECT count(*) FROM intake.cases WHERE status = 'closed'")
        dead = {s: await conn.fetchval(f"SELECT count(*) FROM {s}.dead_letters") for s in SCHEMAS}
        assert not any(dead.values()), f"dead letters: {dead}"
    finally:
        await people.leave()
        await conn.close()
    with capsys.disabled():
        print(
            f"\njetstream wipe: reports_sent={len(reports)} resent_after_wipe={len(resent)} "
            f"republished={republished} closed={closed} "
            f"converged_in_s={time.monotonic() - started:.0f} lost=0",
            flush=True,
        )
