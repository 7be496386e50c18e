"""The bus losing things without a word: a durable consumer removed behind the service's back
is declared again, and a publish whose acknowledgement never comes (sent just before the
server died) fails its batch in time instead of holding the outbox relay for ever."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import nats
import pytest
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_runtime.outbox import Committed, publish_rows

from .test_runtime_bus import echo_definition
from .test_runtime_faults import _fetch_is, publish_pings


async def test_a_deleted_consumer_is_declared_again(database_url: str, nats_url: str) -> None:
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition()):
        conn = await asyncpg.connect(database_url)
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            count = "SELECT count(*) FROM echo.seen"
            await publish_pings(nats_url, "C-GONE", 2)
            await wait_for(lambda: _fetch_is(conn, count, 2), timeout=15, what="2 pings")
            reconnects = nc.stats["reconnects"]
            assert await js.delete_consumer("CASES", "echo-pings")
            await publish_pings(nats_url, "C-GONE", 3, start=2)
            await wait_for(lambda: _fetch_is(conn, count, 5), timeout=30, what="3 more pings")
            info = await js.consumer_info("CASES", "echo-pings")
            assert info.num_pending == 0 and nc.stats["reconnects"] == reconnects
        finally:
            await nc.close()
            await conn.close()


async def test_a_publish_never_acknowledged_fails_the_batch_in_time(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        # someone listens on the subject, no stream stores it: no acknowledgement ever comes
        heard: list[Any] = []

        async def hear(msg: Any) -> None:
            heard.append(msg)

        await nc.subscribe("limbo.lost", cb=hear)
        rows = [Committed(1, "limbo.lost", {"Nats-Msg-Id": "m-1"}, b"{}")]
        # it gives up (rather than waiting for ever): the guard is far above its 0.5 s
        with pytest.raises(RuntimeError, match="1 of 1 outbox rows not acknowledged"):
            await asyncio.wait_for(publish_rows(js, rows, ack_timeout_s=0.5), timeout=60)
        await wait_for(lambda: heard, timeout=5, what="the message on the wire")
        # the abandoned wait gave its publish slot back: the next batch goes out normally
        await js.add_stream(name="LIMBO", subjects=["limbo.kept"])
        kept = [Committed(2, "limbo.kept", {"Nats-Msg-Id": "m-2"}, b"{}")]
        await publish_rows(js, kept, ack_timeout_s=5)
        assert (await js.stream_info("LIMBO")).state.messages == 1
        assert not js._publish_async_futures
    finally:
        await nc.close()
