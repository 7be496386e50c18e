"""A replica that stops, and a command that loses to a concurrent transaction, on a real web
server, PostgreSQL and NATS: the client is told to retry (503 + Retry-After, or the command
simply runs again), never a bare 500.

- SIGTERM begins the web server's graceful stop: from then on every answer closes its
  connection, so a client's kept-alive connection cannot keep bringing requests to the going
  replica; a request still running when the grace (SHUTDOWN_GRACE_S) runs out is cancelled
  and answered 503 with Retry-After (it was a plain 500: seen once in the rolling upgrade).
- A command whose transaction PostgreSQL undid for a deadlock runs again and succeeds; so
  does an event, at once and spending no delivery."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter
from gridloop_contracts import Envelope
from gridloop_devkit.devstack import free_port
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_runtime.commands import run_command
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, ServiceDefinition, http_server

from .test_runtime_bus import echo_definition, record_ping
from .test_runtime_faults import publish_pings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(entered: asyncio.Event) -> ServiceDefinition:
    router = APIRouter(route_class=JSONRoute)

    @router.get("/quick")
    async def quick() -> dict[str, bool]:
        return {"ok": True}

    @router.get("/long")
    async def long() -> dict[str, bool]:
        entered.set()
        await asyncio.Event().wait()  # runs until the web server cancels it
        return {"ok": True}

    return ServiceDefinition(name="echo", migrations_dir=MIGRATIONS, routers=[router])


async def test_a_stopping_replica_closes_connections_and_answers_a_cut_request_503(
    database_url: str, nats_url: str
) -> None:
    settings = settings_for(
        "echo", database_url, nats_url, shutdown_grace_s=1, http_host="127.0.0.1"
    )
    entered = asyncio.Event()
    rt = Runtime(settings, definition(entered))
    port = free_port()
    server = http_server(rt, port=port)
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout=60, what="the web server listens")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            before = await client.get("/quick")
            assert before.status_code == 200
            assert before.headers.get("connection") != "close"

            # As for a connection the graceful stop did not see (accepted as the listener
            # closed): the stop has begun, this connection is still served, and its answer
            # closes it, so the client's next request goes to another replica.
            rt.draining = True
            during = await client.get("/quick")
            assert during.status_code == 200 and during.json() == {"ok": True}
            assert during.headers["connection"] == "close"
            rt.draining = False

            # A request still running when the grace runs out is cancelled: 503, not 500.
            cut = asyncio.create_task(client.get("/long"))
            await asyncio.wait_for(entered.wait(), timeout=30)
            server.should_exit = True
            answer = await asyncio.wait_for(cut, timeout=30)
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.headers["connection"] == "close"
            assert answer.json()["detail"][0]["code"] == "unavailable"
        await asyncio.wait_for(serving, timeout=30)
        assert rt.draining, "the graceful stop tells the runtime"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)


async def test_a_command_undone_for_a_deadlock_runs_again(database_url: str, nats_url: str) -> None:
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition(asyncio.Event())) as rt:
        assert rt.pool is not None and rt.uow is not None
        async with rt.pool.acquire() as conn:
            await conn.execute("CREATE TABLE pair (id text PRIMARY KEY, v int NOT NULL)")
            await conn.execute("INSERT INTO pair VALUES ('a', 0), ('b', 0)")
        other = await asyncpg.connect(database_url, server_settings={"search_path": rt.schema})
        attempts = 0
        holds_a, holds_b = asyncio.Event(), asyncio.Event()

        async def fn(work: Work) -> dict[str, Any]:
            """Takes a, then b; on its first run the other transaction holds b and then
            waits for a: a deadlock, in which this one is undone."""
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                await holds_b.wait()
            await work.conn.execute("UPDATE pair SET v = v + 1 WHERE id = 'a'")
            if attempts == 1:
                holds_a.set()
            await work.conn.execute("UPDATE pair SET v = v + 1 WHERE id = 'b'")
            return {"attempts": attempts}

        async def rival() -> None:
            async with other.transaction():
                # PostgreSQL undoes the transaction whose deadlock check finds the cycle;
                # this one checks late, so that is the command, which waits first
                await other.execute("SET LOCAL deadlock_timeout = '60s'")
                await other.execute("UPDATE pair SET v = v + 10 WHERE id = 'b'")
                holds_b.set()
                await holds_a.wait()
                mine = await other.fetchval("SELECT pg_backend_pid()")

                async def command_waits_for_b() -> bool:
                    waiting = await other.fetchval(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                        "ON a.pid = l.pid WHERE NOT l.granted AND a.pid <> $1 "
                        "AND a.datname = current_database()",
                        mine,
                    )
                    return bool(waiting)

                await wait_for(command_waits_for_b, timeout=30, what="the command waits for b")
                await other.execute("UPDATE pair SET v = v + 10 WHERE id = 'a'")

        try:
            answer, _ = await asyncio.gather(
                run_command(rt.uow, "deadlocked-1", "bump", fn), rival()
            )
        finally:
            await other.close()
        assert answer == {"attempts": 2}
        async with rt.pool.acquire() as conn:
            rows = {r["id"]: r["v"] for r in await conn.fetch("SELECT id, v FROM pair")}
            stored = await conn.fetchval(
                "SELECT answer FROM commands WHERE command_id = 'deadlocked-1'"
            )
        assert rows == {"a": 11, "b": 11}  # each change once: the undone run left nothing
        assert dict(stored) == {"attempts": 2}


async def test_an_event_undone_for_a_conflict_runs_again_spending_no_delivery(
    database_url: str, nats_url: str
) -> None:
    """One delivery allowed: an event whose transaction PostgreSQL undoes (as it does one side
    of a deadlock or a serialization failure) in its batch and again on its own is handled
    on the next try, not parked as dead."""
    tries = 0

    async def undone_twice(work: Work, env: Envelope) -> None:
        nonlocal tries
        tries += 1
        if tries <= 2:  # the batch, then the event on its own
            raise asyncpg.exceptions.SerializationError(
                "could not serialize access due to concurrent update"
            )
        await record_ping(work, env)

    settings = settings_for("echo", database_url, nats_url, consumer_max_deliver=1)
    spec = ConsumerSpec("echo-pings", "CASES", ["case.pinged"], handler=undone_twice)
    async with running(settings, echo_definition(consumers=[spec])) as rt:
        assert rt.pool is not None
        pool = rt.pool
        await publish_pings(nats_url, "C-CONFLICT", 1)

        async def handled() -> bool:
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT count(*) FROM seen"))

        await wait_for(handled, timeout=30, what="the event handled")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
            assert await conn.fetchval("SELECT value FROM counter") == 1
        assert tries == 3


@pytest.fixture(autouse=True)
def dev_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
