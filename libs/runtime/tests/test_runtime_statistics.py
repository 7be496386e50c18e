"""The service's tables' planner statistics on a real PostgreSQL: a timers table that grew from
empty since its last analysis is analysed, and cancelling a case's timers then looks its key up
instead of walking every pending timer."""

from __future__ import annotations

import asyncpg
from gridloop_devkit.testing import wait_for
from gridloop_runtime import db, statistics
from gridloop_runtime.outbox import cancel_statement

# the statement a unit of work writes its timer cancels with (outbox.py)
CANCEL_PLAN = "EXPLAIN " + cancel_statement(arms=False)


async def _cancel_plan(conn: db.Conn) -> str:
    rows = await conn.fetch(CANCEL_PLAN, ["chase"], ["case-17"])
    return "\n".join(r[0] for r in rows)


async def test_a_table_grown_since_its_analysis_is_analysed_and_timers_are_found_by_key(
    database_url: str,
) -> None:
    schema = "statstest"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
            await conn.execute("ANALYZE timers")  # analysed while empty, as at a fresh start
            await conn.execute(
                "INSERT INTO timers (kind, key, due_at) SELECT 'chase', 'case-' || g, "
                "now() + interval '1 day' FROM generate_series(1, 20000) g"
            )
            # what the planner believes before: the table is (nearly) empty, so it walks
            # the pending timers in due order and filters them by key
            assert "Index Cond: (key = c.key)" not in await _cancel_plan(conn)

        # the cumulative statistics reach pg_stat_user_tables within a second or so
        analysed = await wait_for(
            lambda: statistics.analyse_stale(pool, schema),
            timeout=20,
            interval=0.2,
            what="the grown timers table analysed",
        )
        assert "timers" in analysed
        async with pool.acquire() as conn:
            assert "Index Cond: (key = c.key)" in await _cancel_plan(conn)
        # current now: nothing more to analyse
        assert "timers" not in await statistics.analyse_stale(pool, schema)
    finally:
        await pool.close()


async def test_one_replica_analyses_a_schema_at_a_time(database_url: str) -> None:
    schema = "statslock"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=2)
    other = await asyncpg.connect(database_url)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
        await other.execute("BEGIN")
        assert await other.fetchval(
            "SELECT pg_try_advisory_xact_lock($1)", db.lock_key(f"analyse:{schema}")
        )
        assert await statistics.analyse_stale(pool, schema) == []
        await other.execute("COMMIT")
    finally:
        await other.close()
        await pool.close()


async def test_payload_columns_are_not_analysed(database_url: str) -> None:
    """ANALYZE keeps statistics of the outbox's columns queries filter on, none of the
    events' bodies and headers (007_payload_statistics.sql): reading them was most of its
    time."""
    schema = "statspayload"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
            await conn.execute(
                "INSERT INTO outbox (event_id, subject, headers, body) SELECT 'e-' || g, "
                "'case.x', jsonb_build_object('ce-id', 'e-' || g), convert_to(repeat('x', g), "
                "'UTF8') FROM generate_series(1, 500) g"
            )
            await conn.execute("ANALYZE outbox")
            analysed = {
                r["attname"]
                for r in await conn.fetch(
                    "SELECT attname FROM pg_stats WHERE schemaname = $1 AND tablename = 'outbox'",
                    schema,
                )
            }
        assert {"seq", "event_id", "subject", "created_at"} <= analysed
        assert not analysed & {"headers", "body"}
    finally:
        await pool.close()


def test_rounds_are_spread_a_quarter_either_side_of_the_setting() -> None:
    """Services started together drift apart instead of analysing at the same moment."""
    assert statistics.next_round_in(30, lambda low, high: low) == 22.5
    assert statistics.next_round_in(30, lambda low, high: high) == 37.5
    drawn = {statistics.next_round_in(30) for _ in range(200)}
    assert all(22.5 <= d <= 37.5 for d in drawn)
    assert len(drawn) > 100  # drawn afresh each round
