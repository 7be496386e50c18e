"""Direct replies: answers to NATS commands that named a `replyto` subject, sent after commit.

Core NATS publishing is not transactional, so the answer is written as a row with the
command's effect; this relay publishes committed rows (woken by the NOTIFY that commits with
them) and deletes them. A crash between publish and delete sends a reply twice, never zero
times; the same answer always also goes on `dispatch.<dept>.answer` through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from gridloop_runtime.db import Conn
from gridloop_runtime.service import Runtime

from . import repository as repo

log = structlog.get_logger(__name__)

BATCH = 256


async def relay_replies(rt: Runtime, stop: asyncio.Event) -> None:
    """Background task of the service: run until stopped, surviving lost connections."""
    while not stop.is_set():
        try:
            await _run(rt, stop)
        except Exception as exc:
            log.warning("reply relay failed; restarting", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def _run(rt: Runtime, stop: asyncio.Event) -> None:
    assert rt.pool is not None
    wake = asyncio.Event()

    def on_notify(*_: object) -> None:
        wake.set()

    listener: Conn = await rt.pool.acquire()
    try:
        await listener.add_listener(repo.REPLIES_CHANNEL, on_notify)
        poll = max(rt.settings.outbox_poll_s, 0.05)
        while not stop.is_set():
            wake.clear()
            if await send_batch(rt) == BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll)
        await send_batch(rt)
    finally:
        with contextlib.suppress(Exception):
            await listener.remove_listener(repo.REPLIES_CHANNEL, on_notify)
        await rt.pool.release(listener)  # type: ignore[arg-type]


async def send_batch(rt: Runtime) -> int:
    """Publish up to BATCH committed replies; rows are deleted only once NATS has them."""
    assert rt.pool is not None and rt.nc is not None
    async with rt.pool.acquire() as conn, conn.transaction():
        rows = await repo.take_replies(conn, BATCH)
        if not rows:
            return 0
        for r in rows:
            await rt.nc.publish(r["subject"], bytes(r["body"]), headers=dict(r["headers"]))
        await rt.nc.flush(timeout=5)
        await repo.drop_replies(conn, [r["id"] for r in rows])
    return len(rows)
