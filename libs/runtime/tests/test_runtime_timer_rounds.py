"""A timer round first asks whether anything is due and claims only then: the question must
miss nothing the claim would fire. What is due is judged by the runner's clock and its kinds
only: another service's timer kind, or one due later, does not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridloop_runtime import db
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.outbox import UnitOfWorkFactory, Work
from gridloop_runtime.timers import Timer, TimerRunner, schedule

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def test_a_round_fires_only_what_is_due_of_its_own_kinds(database_url: str) -> None:
    schema = "timerrounds"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=2)
    clock = FakeClock(T0)
    uow = UnitOfWorkFactory(pool, schema=schema, source="/test", clock=clock)
    fired: list[str] = []

    async def remind(work: Work, timer: Timer) -> None:
        fired.append(timer.key)

    runner = TimerRunner(uow, {"remind": remind}, service="test")
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
            # nothing at all
            assert await runner.fire_due() == 0
            await schedule(conn, "remind", "later", T0 + timedelta(hours=1))
            # due now, but a kind this runner does not fire
            await schedule(conn, "escalate", "not-ours", T0 - timedelta(minutes=1))
        assert await runner.fire_due() == 0
        assert fired == []

        clock.advance(timedelta(hours=1))  # exactly due
        assert await runner.fire_due() == 1
        assert fired == ["later"]
        assert await runner.fire_due() == 0  # fired once
        async with pool.acquire() as conn:
            rows = {
                r["key"]: r["fired_at"]
                for r in await conn.fetch("SELECT key, fired_at FROM timers ORDER BY key")
            }
        assert rows == {"later": T0 + timedelta(hours=1), "not-ours": None}
    finally:
        await pool.close()
