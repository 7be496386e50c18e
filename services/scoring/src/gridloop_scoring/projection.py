"""The live projection: folds the cases whose facts changed into items, in batches.

The consumer only records facts and marks their cases (one statement per event); this loop
re-folds each marked case from all of its facts with the pure `fold_case`, so late and
out-of-order events simply re-fold the case, and the items always equal what `rebuild`
computes from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import asyncpg
import structlog
from gridloop_runtime.db import Conn

from . import repository as repo
from .domain.facts import Fact
from .domain.fold import FoldContext, Item, fold_case

log = structlog.get_logger(__name__)


def fold_facts(facts: Iterable[Fact], ctx: FoldContext) -> list[Item]:
    """Group facts by case and fold each case."""
    by_case: dict[str, list[Fact]] = {}
    for f in facts:
        by_case.setdefault(f.case_id, []).append(f)
    items: list[Item] = []
    for case_facts in by_case.values():
        items.extend(fold_case(case_facts, ctx))
    return items


async def fold_pending(conn: Conn, ctx: FoldContext, limit: int) -> int:
    """Inside the caller's transaction: fold up to `limit` changed cases; returns how many."""
    case_ids = await repo.claim_dirty(conn, limit)
    if case_ids:
        items = fold_facts(await repo.facts_of(conn, case_ids), ctx)
        await repo.replace_items(conn, case_ids, items)
    return len(case_ids)


class Projection:
    def __init__(self, ctx: FoldContext, *, batch: int = 500, poll_s: float = 0.5) -> None:
        self.ctx = ctx
        self.batch = batch
        self.poll_s = poll_s
        self.folded = 0
        self._wake = asyncio.Event()

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def fold_all_dirty(self, pool: asyncpg.Pool) -> int:
        """Fold every changed case, one batch per transaction."""
        total = 0
        while True:
            async with pool.acquire() as conn, conn.transaction():
                n = await fold_pending(conn, self.ctx, self.batch)
            total += n
            self.folded += n
            if n < self.batch:
                return total

    async def run(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Fold whenever woken (NOTIFY from the consumer's commits) or every `poll_s`."""
        listener = await pool.acquire()
        try:
            await listener.add_listener(repo.NOTIFY_CHANNEL, self.wake)
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.fold_all_dirty(pool)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("fold failed; retrying", error=str(exc))
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {waiter, stopper}, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED
                )
                for fut in (waiter, stopper):
                    fut.cancel()
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(repo.NOTIFY_CHANNEL, self.wake)
            await pool.release(listener)
