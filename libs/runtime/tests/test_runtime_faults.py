"""Runtime behaviour under faults: a consumer waits out a PostgreSQL restart without spending
deliveries, and a service recreates its streams and consumers when nats-server comes back
without its store."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import nats
import pytest
from gridloop_contracts import Envelope, to_binary
from gridloop_devkit.devstack import LocalNats, LocalPostgres, free_port
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_runtime.consumer import ConsumerSpec

from .test_runtime_bus import Pinged, echo_definition, record_ping


async def publish_pings(url: str, case_id: str, n: int, start: int = 0) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for i in range(start, start + n):
            headers, body = to_binary(
                Envelope.of(Pinged(case_id=case_id, n=i), source="/gridloop/t")
            )
            await js.publish("case.pinged", body, headers=headers)
    finally:
        await nc.close()


@pytest.mark.parametrize("ordered", [False, True])
async def test_consumer_waits_out_a_database_restart(
    work_dir: Path, nats_url: str, ordered: bool
) -> None:
    """An unordered consumer holds the messages in hand until the database answers; an
    ordered one (its lead is a lock in the database) stands by and leads again after. Either
    way no delivery is spent and nothing is handled twice."""
    pg = LocalPostgres(work_dir / f"pg-restart-{ordered}", port=free_port(), durable=False).start()
    try:
        url = pg.create_database("faults")
        # Two deliveries only: without waiting for the database, every message would be
        # spent (and parked as dead) long before PostgreSQL is back.
        settings = settings_for(
            "echo", url, nats_url, consumer_max_deliver=2, consumer_retry_delay_s=0.05
        )
        spec = ConsumerSpec(
            "echo-pings", "CASES", ["case.pinged"], handler=record_ping, ordered=ordered
        )
        async with running(settings, echo_definition(consumers=[spec])) as rt:
            assert rt.pool is not None
            pg.stop()
            await publish_pings(nats_url, "C-PG", 20)

            async def tried() -> bool:
                info = await rt.js.consumer_info("CASES", "echo-pings")  # type: ignore[union-attr]
                return int(info.num_ack_pending or 0) > 0

            if not ordered:
                await wait_for(tried, timeout=10, what="the consumer holding messages")
            await asyncio.sleep(3)  # the outage: many retry delays long
            pg.start()

            async def seen() -> int:
                async with rt.pool.acquire() as conn:  # type: ignore[union-attr]
                    return int(await conn.fetchval("SELECT count(*) FROM seen"))

            await wait_for(lambda: _equals(seen, 20), timeout=60, what="all 20 handled")
            async with rt.pool.acquire() as conn:
                assert await conn.fetchval("SELECT value FROM counter") == 20
                assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
    finally:
        pg.stop()


async def _equals(f: object, want: int) -> bool:
    return await f() == want  # type: ignore[operator,no-any-return]


async def test_streams_and_consumers_come_back_after_the_store_is_lost(
    work_dir: Path, database_url: str
) -> None:
    server = LocalNats(work_dir / "nats-wiped").start()
    try:
        settings = settings_for("echo", database_url, server.url)
        async with running(settings, echo_definition()) as rt:
            await publish_pings(server.url, "C-WIPE", 3)
            conn = await asyncpg.connect(database_url)
            try:
                count = "SELECT count(*) FROM echo.seen"
                await wait_for(lambda: _fetch_is(conn, count, 3), timeout=15, what="3 pings")
                server.stop(kill=True)
                shutil.rmtree(server.store_dir / "js")
                server.start()
                # the runtime declares its streams and its durable consumer again on reconnect
                nc = await nats.connect(server.url)
                try:
                    js = nc.jetstream()

                    async def back() -> bool:
                        try:
                            await js.consumer_info("CASES", "echo-pings")
                        except Exception:
                            return False
                        return True

                    await wait_for(back, timeout=30, what="the stream and consumer declared again")
                finally:
                    await nc.close()
                await publish_pings(server.url, "C-WIPE", 2, start=3)
                await wait_for(lambda: _fetch_is(conn, count, 5), timeout=30, what="2 more pings")
                assert rt.started
            finally:
                await conn.close()
    finally:
        server.stop()


async def _fetch_is(conn: asyncpg.Connection, sql: str, want: int) -> bool:
    return int(await conn.fetchval(sql)) == want
