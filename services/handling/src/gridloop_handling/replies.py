"""Direct replies: answers to NATS commands that named a `replyto` subject, sent after commit.

Core NATS publishing is not transactional, so the answer is written as a row with the
command's effect (`Writes.add_direct`); once the transaction has committed, the process's
publisher sends it and deletes the row (gridloop_runtime.outbox.Publisher). A process killed
in between leaves the row: this sweeper, in every replica, sends the rows older than
`OUTBOX_SWEEP_GRACE_S` every `OUTBOX_POLL_S` and deletes them. A crash between publish and
delete sends a reply twice, never zero times; the same answer always also goes on
`dispatch.<dept>.answer` through the outbox.
"""

from __future__ import annotations

import asyncio

import structlog
from gridloop_runtime.service import Runtime
from gridloop_runtime.waits import wait_set

from . import repository as repo

log = structlog.get_logger(__name__)

BATCH = 256


async def relay_replies(rt: Runtime, stop: asyncio.Event) -> None:
    """Background task of the service: sweep until stopped, surviving lost connections."""
    poll = max(rt.settings.outbox_poll_s, 0.05)
    while not stop.is_set():
        try:
            while await send_batch(rt) == BATCH:
                pass
        except Exception as exc:
            log.warning("reply sweeper failed; trying again", error=repr(exc))
        await wait_set(stop, poll)


async def send_batch(rt: Runtime) -> int:
    """Publish up to BATCH replies left unsent; rows are deleted only once NATS has them."""
    assert rt.pool is not None and rt.nc is not None
    async with rt.pool.acquire() as conn, conn.transaction():
        rows = await repo.take_replies(conn, BATCH, rt.settings.outbox_sweep_grace_s)
        if not rows:
            return 0
        for r in rows:
            await rt.nc.publish(r["subject"], bytes(r["body"]), headers=dict(r["headers"]))
        await rt.nc.flush(timeout=5)
        await repo.drop_replies(conn, [r["id"] for r in rows])
    log.info("replies left unsent were sent", replies=len(rows))
    return len(rows)
