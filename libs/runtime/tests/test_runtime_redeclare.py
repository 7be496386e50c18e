"""A durable consumer removed behind the service's back (an operator's mistake, a server that
lost it without a reconnect the client noticed) is declared again and work goes on."""

from __future__ import annotations

import asyncpg
import nats
from gridloop_runtime.testing import running, settings_for, wait_for

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
