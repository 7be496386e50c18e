"""The plans a service's statements run on, on a real PostgreSQL: its connections cost a page
read out of order as for data in memory (db.RANDOM_PAGE_COST), a command runs on the plans
kept for any parameters (outbox.GENERIC_PLANS), which then look rows up by key, and the timer
cancel of a unit of work looks its keys up on any plan."""

from __future__ import annotations

from typing import Any

from gridloop_runtime import db
from gridloop_runtime.clock import SystemClock
from gridloop_runtime.commands import run_command
from gridloop_runtime.outbox import GENERIC_PLANS, UnitOfWorkFactory, Work, cancel_statement

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


async def test_a_timer_cancel_looks_its_keys_up_on_any_plan(database_url: str) -> None:
    """3,600 timers, 300 of them pending, analysed: the cancel of one task's timers probes the
    key index, whether planned for its one key or kept for any (with the arms of the same
    statement or without); it used to hash every pending timer on the kept plan."""
    schema = "planstimers"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
            await conn.execute(
                "INSERT INTO timers (kind, key, due_at, cancelled_at) SELECT 'verify-due', "
                "'task-' || g, now() + g * interval '1 s', CASE WHEN g <= 3300 THEN now() END "
                "FROM generate_series(1, 3600) g; ANALYZE timers"
            )
            for arms in (False, True):
                args = "ARRAY[NULL]::text[], ARRAY['task-3500']" + (
                    ", ARRAY['verify-due'], ARRAY['task-1']" if arms else ""
                )
                types = "text[], text[]" + (", text[], text[]" if arms else "")
                for mode in ("auto", "force_generic_plan"):
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                        await conn.execute(f"PREPARE cancel({types}) AS {cancel_statement(arms)}")
                        rows = await conn.fetch(f"EXPLAIN EXECUTE cancel({args})")
                        await conn.execute("DEALLOCATE cancel")
                    plan = "\n".join(r[0] for r in rows)
                    # each key probed (its index condition takes the key from outside), no
                    # pending timer walked in due order or read whole
                    assert "Index Cond: (key = c.key)" in plan, (arms, mode, plan)
                    assert "timers_open_key" in plan, (arms, mode, plan)
                    assert "timers_due" not in plan, (arms, mode, plan)
                    assert "Seq Scan on timers" not in plan, (arms, mode, plan)
            # and it cancels: the pending timer of that key, no other
            await conn.execute(cancel_statement(False), [None], ["task-3500"])
            cancelled = await conn.fetch(
                "SELECT key FROM timers WHERE cancelled_at IS NOT NULL "
                "AND substr(key, 6)::int > 3300"
            )
            assert [r["key"] for r in cancelled] == ["task-3500"]
    finally:
        await pool.close()
