"""The sweep of the live projection: cases marked in `dirty_cases` are re-folded.

The CASES consumer re-folds the cases its facts change in the transaction that stores them
(`store.py`), so it marks nothing. Marks come only from what an older version of the service
left (it marked cases for a separate fold and woke it by NOTIFY); this sweep folds them once
at start and then every `fold_poll_s`, and publishing and `rebuild` fold them first. Either
way a case is folded with the same pure `fold_case` from all of its facts, so the items
always equal what `rebuild` computes from the stream.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from gridloop_runtime.db import Conn
from gridloop_runtime.waits import wait_set

from . import repository as repo
from .domain.fold import FoldContext
from .store import refold

log = structlog.get_logger(__name__)


async def fold_pending(conn: Conn, ctx: FoldContext, limit: int) -> int:
    """Inside the caller's transaction: fold up to `limit` marked cases; returns how many."""
    case_ids = await repo.claim_dirty(conn, limit)
    if case_ids:
        await repo.lock_cases(conn, case_ids)
        await refold(conn, ctx, case_ids)
    return len(case_ids)


class Projection:
    def __init__(self, ctx: FoldContext, *, batch: int = 500, poll_s: float = 0.5) -> None:
        self.ctx = ctx
        self.batch = batch
        self.poll_s = poll_s

    async def fold_all_dirty(self, pool: asyncpg.Pool) -> int:
        """Fold every marked case, one batch per transaction."""
        total = 0
        while True:
            async with pool.acquire() as conn, conn.transaction():
                n = await fold_pending(conn, self.ctx, self.batch)
            total += n
            if n < self.batch:
                return total

    async def run(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Sweep now and every `poll_s` until told to stop."""
        while not stop.is_set():
            try:
                await self.fold_all_dirty(pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("fold failed; retrying", error=str(exc))
            await wait_set(stop, self.poll_s)
