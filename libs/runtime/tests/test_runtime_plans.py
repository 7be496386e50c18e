"""The plans a service's statements run on, on a real PostgreSQL: its connections cost a page
read out of order as for data in memory (db.RANDOM_PAGE_COST), and a command and a
consumer's batches run on the plans kept for any parameters (outbox.GENERIC_PLANS, the
lead's connection), which then look rows up by key."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from gridloop_contracts import Envelope, Event, to_binary
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_runtime import db
from gridloop_runtime.clock import SystemClock
from gridloop_runtime.commands import run_command
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.outbox import GENERIC_PLANS, UnitOfWorkFactory, Work
from gridloop_runtime.service import ServiceDefinition


class PlansPing(Event):
    """A test-only case event (deliberately not registered in the contracts)."""

    type_name: ClassVar[str] = "gridloop.case.plansping.v1"
    subject_token: ClassVar[str] = "plansping"
    case_id: str


# a case with its tasks, loaded and locked as verify loads the cases a command touches
LOAD = (
    "SELECT c.case_id, c.stage, t.task_id, t.status FROM cases c "
    "LEFT JOIN tasks t ON t.case_id = c.case_id WHERE c.case_id = ANY($1::text[]) "
    "ORDER BY c.case_id, t.task_id FOR UPDATE OF c"
)


async def _fill(conn: db.Conn) -> None:
    """Tables of the size a young system has: 2,000 cases with a task each, analysed."""
    await conn.execute(
        "DROP TABLE IF EXISTS tasks; DROP TABLE IF EXISTS cases; "
        "CREATE TABLE cases (case_id text PRIMARY KEY, stage text NOT NULL); "
        "CREATE TABLE tasks (task_id text PRIMARY KEY, case_id text NOT NULL, "
        "status text NOT NULL); CREATE INDEX tasks_by_case ON tasks (case_id); "
        "INSERT INTO cases SELECT 'C-' || g, 'open' FROM generate_series(1, 2000) g; "
        "INSERT INTO tasks SELECT 'T-' || g, 'C-' || g, 'open' FROM generate_series(1, 2000) g; "
        "ANALYZE cases; ANALYZE tasks"
    )


async def _kept_plan(conn: db.Conn) -> str:
    """The plan PostgreSQL keeps for the load, for any parameters."""
    async with conn.transaction():
        await conn.execute(GENERIC_PLANS)
        await conn.execute("DEALLOCATE ALL")  # asyncpg's own prepared statements stay its own
        await conn.execute(f"PREPARE load(text[]) AS {LOAD}")
        rows = await conn.fetch("EXPLAIN EXECUTE load(ARRAY['C-17'])")
        await conn.execute("DEALLOCATE load")
    return "\n".join(r[0] for r in rows)


async def test_service_connections_look_rows_up_by_key_on_a_kept_plan(database_url: str) -> None:
    pool = await db.create_pool(database_url, "planstest", min_size=1, max_size=1)
    spinning = await db.create_pool(
        database_url, "planstest", min_size=1, max_size=1, random_page_cost=4.0
    )
    lead = await db.connect(database_url, "planstest")
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE SCHEMA IF NOT EXISTS planstest")
            await _fill(conn)
            assert await conn.fetchval("SHOW random_page_cost") == str(db.RANDOM_PAGE_COST)
            plan = await _kept_plan(conn)
        # both tables probed by key, for the ten or so cases a kept plan is made for
        assert "Seq Scan" not in plan and "Hash" not in plan, plan
        assert "tasks_by_case" in plan, plan
        # the lead's connection of its own (consumer.py) is set up the same way
        assert await lead.fetchval("SHOW random_page_cost") == str(db.RANDOM_PAGE_COST)
        # PostgreSQL's default cost, for disks that seek: the kept plan reads the tasks whole
        async with spinning.acquire() as conn:
            assert "Seq Scan on tasks" in await _kept_plan(conn)
    finally:
        await lead.close()
        await spinning.close()
        await pool.close()


async def test_a_command_and_only_it_runs_on_kept_plans(database_url: str) -> None:
    schema = "planscmd"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=1)
    uow = UnitOfWorkFactory(pool, schema=schema, source="/test", clock=SystemClock())
    seen: list[str] = []

    async def probe(work: Work) -> dict[str, Any]:
        seen.append(await work.conn.fetchval("SHOW plan_cache_mode"))
        return {"ok": True}

    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
        assert await run_command(uow, "cmd-1", "probe", probe) == {"ok": True}
        async with uow() as work:  # any other unit of work: plans as PostgreSQL chooses
            seen.append(await work.conn.fetchval("SHOW plan_cache_mode"))
        async with pool.acquire() as conn:  # the pool's one connection, back from the command
            seen.append(await conn.fetchval("SHOW plan_cache_mode"))
        assert seen == ["force_generic_plan", "auto", "auto"]
    finally:
        await pool.close()


@pytest.mark.parametrize(("setting", "expected"), [(True, "force_generic_plan"), (False, "auto")])
async def test_a_consumers_batches_run_on_kept_plans_unless_turned_off(
    database_url: str, nats_url: str, setting: bool, expected: str
) -> None:
    """The lead's connection, where an ordered consumer's batches run, asks for the kept
    plans (`DB_CONSUMER_GENERIC_PLANS`); the pool's connections, where the API's reads run,
    do not."""
    seen: list[str] = []

    async def probe(work: Work, env: Envelope) -> None:
        seen.append(await work.conn.fetchval("SHOW plan_cache_mode"))

    definition = ServiceDefinition(
        name="plansconsumer",
        migrations_dir=None,
        consumers=[ConsumerSpec("plans-pings", "CASES", ["case.plansping"], probe)],
    )
    settings = settings_for(
        "plansconsumer", database_url, nats_url, db_consumer_generic_plans=setting
    )
    async with running(settings, definition) as rt:
        assert rt.js is not None and rt.pool is not None
        env = Envelope.of(PlansPing(case_id="C-1"), source="/gridloop/test")
        headers, body = to_binary(env)
        await rt.js.publish("case.plansping", body, headers=headers)
        await wait_for(lambda: len(seen) == 1, what="the ping handled")
        async with rt.pool.acquire() as conn:
            pooled = await conn.fetchval("SHOW plan_cache_mode")
    assert seen == [expected]
    assert pooled == "auto"
