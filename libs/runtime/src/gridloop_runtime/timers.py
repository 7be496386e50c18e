"""Timers as rows: deadlines, reminders and escalations with a due time.

Due timers are claimed with `FOR UPDATE SKIP LOCKED` inside the unit of work that handles
them, so any number of replicas share them, none fires twice, and a timer that fell due
while every replica was down fires when one comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from . import metrics, tracing
from .db import Conn
from .outbox import UnitOfWorkFactory, Work
from .step import Timer as Timer
from .waits import wait_set

if TYPE_CHECKING:
    from .casework import Rules

RETRY_DELAY = timedelta(seconds=30)

log = structlog.get_logger(__name__)


TimerHandler = Callable[[Work, Timer], Awaitable[None]]

# Due by $1 (now), of the kinds $2, neither fired nor cancelled (the partial index `timers_due`).
_DUE = "due_at <= $1 AND fired_at IS NULL AND cancelled_at IS NULL AND kind = ANY($2)"
_ANY_DUE = f"SELECT EXISTS (SELECT 1 FROM timers WHERE {_DUE})"
_CLAIM_DUE = (
    f"SELECT id, kind, key, due_at, payload FROM timers WHERE {_DUE} "
    "ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED"
)


async def schedule(
    conn: Conn,
    kind: str,
    key: str,
    due_at: datetime,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Set (or move) the timer (kind, key). A fired or cancelled timer is re-armed."""
    await conn.execute(
        "INSERT INTO timers (kind, key, due_at, payload) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (kind, key) DO UPDATE SET due_at = EXCLUDED.due_at, "
        "payload = EXCLUDED.payload, fired_at = NULL, cancelled_at = NULL",
        kind,
        key,
        due_at,
        dict(payload or {}),
    )


class TimerRunner:
    """Fires due timers through their kind's handler, one unit of work per timer."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        handlers: Mapping[str, TimerHandler],
        *,
        service: str,
        poll_s: float = 0.5,
        batch: int = 100,
        rules: Rules[Any] | None = None,
        settle: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.uow = uow
        self.handlers = dict(handlers)
        self.rules = rules
        # Awaited before each round: what the service's consumers hold (`ConsumerSpec.urgent`)
        # is handled first, so a deadline is judged on every event that came before it.
        self.settle = settle
        self.service = service
        self.poll_s = poll_s
        self.batch = batch

    async def fire_due(self) -> int:
        """Fire everything due now (by the injected clock); returns how many fired."""
        if self.settle is not None:
            await self.settle()
        if not await self._any_due():
            return 0
        fired = 0
        while self.handlers:
            n = await self._fire_some()
            fired += n
            if n < self.batch:
                break
        while self.rules is not None and self.rules.timers:
            n = await self._fire_rules()
            fired += n
            if n < self.batch:
                break
        return fired

    async def _any_due(self) -> bool:
        """Whether any timer of this runner's kinds is due: one statement outside a
        transaction, so a round that finds nothing (most rounds) costs one round trip, not a
        transaction's three for each kind of timer."""
        kinds = list(self.handlers) + (list(self.rules.timers) if self.rules is not None else [])
        if not kinds:
            return False
        return bool(await self.uow.pool.fetchval(_ANY_DUE, self.uow.clock.now(), kinds))

    async def _fire_rules(self) -> int:
        """Due timers of the handler table: a batch in one transaction (casework.py); if the
        batch fails, one timer per transaction, and a failing one is tried again later."""
        from .casework import apply_timers

        assert self.rules is not None
        rules = self.rules
        now = self.uow.clock.now()
        kw: dict[str, Any] = {"source": self.uow.source, "clock": self.uow.clock}
        pool = self.uow.pool
        async with pool.acquire() as conn:
            async with conn.transaction():
                due = await _claim_due(conn, now, list(rules.timers), self.batch)
                try:
                    async with conn.transaction():
                        written = await apply_timers(conn, rules, due, **kw)
                    failed = False
                except Exception:
                    log.warning("timer batch failed, firing one by one", timers=len(due))
                    failed = True
            if not failed:
                self.uow.committed(written)
        if failed:
            for timer in due:
                await self._fire_rule_alone(timer)
        for t in due:
            metrics.TIMERS_FIRED.labels(self.service, t.kind).inc()
        return len(due)

    async def _fire_rule_alone(self, timer: Timer) -> None:
        from .casework import apply_timers

        assert self.rules is not None
        now = self.uow.clock.now()
        async with self.uow.pool.acquire() as conn:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "SELECT id FROM timers WHERE id = $1 AND fired_at IS NULL "
                    "AND cancelled_at IS NULL FOR UPDATE SKIP LOCKED",
                    timer.id,
                )
                if row is None:
                    return
                try:
                    async with conn.transaction():
                        written = await apply_timers(
                            conn, self.rules, [timer], source=self.uow.source, clock=self.uow.clock
                        )
                except Exception as exc:
                    log.exception("timer handler failed", kind=timer.kind, key=timer.key)
                    written = []
                    await conn.execute(
                        "UPDATE timers SET due_at = $2, payload = payload || $3 WHERE id = $1",
                        timer.id,
                        now + RETRY_DELAY,
                        {"last_error": repr(exc)[:500]},
                    )
            self.uow.committed(written)

    async def _fire_some(self) -> int:
        now = self.uow.clock.now()
        fired = 0
        async with self.uow() as work:
            for timer in await _claim_due(work.conn, now, list(self.handlers), self.batch):
                mark = work.mark()
                try:
                    async with work.conn.transaction():  # a savepoint: a failing timer is retried
                        with tracing.timer_span(timer.kind, timer.payload):
                            await self.handlers[timer.kind](work, timer)
                except Exception as exc:
                    log.exception("timer handler failed", kind=timer.kind, key=timer.key)
                    work.rollback_to(mark)
                    await work.conn.execute(
                        "UPDATE timers SET due_at = $2, payload = payload || $3 WHERE id = $1",
                        timer.id,
                        now + RETRY_DELAY,
                        {"last_error": repr(exc)[:500]},
                    )
                    continue
                await work.conn.execute(
                    "UPDATE timers SET fired_at = $2 WHERE id = $1", timer.id, now
                )
                metrics.TIMERS_FIRED.labels(self.service, timer.kind).inc()
                fired += 1
        return fired

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.fire_due()
            except Exception as exc:
                log.warning("timer round failed", error=str(exc))
            await wait_set(stop, self.poll_s)


async def _claim_due(conn: Conn, now: datetime, kinds: list[str], limit: int) -> list[Timer]:
    rows = await conn.fetch(_CLAIM_DUE, now, kinds, limit)
    return [Timer(r["id"], r["kind"], r["key"], r["due_at"], r["payload"]) for r in rows]
