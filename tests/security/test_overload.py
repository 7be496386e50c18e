"""Overload against a running intake on a real PostgreSQL and NATS: a burst beyond a client's
token bucket gets 429 with Retry-After and the bucket refills; requests beyond the in-flight
cap and reports arriving while the database pool is exhausted get 503 with Retry-After; the
report path keeps taking reports while the bus is down (the outbox holds them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gridloop_devkit.devstack import LocalNats
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.settings import IntakeSettings
from gridloop_runtime.outbox import unsent_count
from gridloop_runtime.service import Runtime

DEMO_CITY = Path(__file__).resolve().parents[2] / "data" / "demo-city"
OPEN311 = "/open311/v2"
KEY = "demo-open311-key"
OPERATOR = {"X-User": "op-01"}


@asynccontextmanager
async def intake(
    database_url: str, nats_url: str, **limits: Any
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    settings = settings_for(
        "intake", database_url, nats_url, IntakeSettings, city_data_dir=str(DEMO_CITY), **limits
    )
    assert isinstance(settings, IntakeSettings)
    definition_, state = definition(settings)
    async with running(settings, definition_, state=state) as rt:
        transport = httpx.ASGITransport(app=rt.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield rt, client


def report(n: int) -> dict[str, Any]:
    return {
        "description": f"井盖缺失 {n}",
        "address": "东城区朝阳门内大街13号",
        "category_code": "P0101",
        "external_id": f"overload-{n}",
        "channel": "hotline",
    }


@pytest.fixture(autouse=True)
def dev_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")


def assert_retry_after(r: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert int(r.headers["Retry-After"]) >= 1
    body: dict[str, Any] = r.json()
    assert body["detail"][0]["field"] == field
    return body


async def test_a_burst_beyond_a_users_bucket_gets_429_and_the_bucket_refills(
    database_url: str, nats_url: str
) -> None:
    # a slow refill (a token every 4 s), so the burst is spent before a token comes back even
    # when the machine is busy
    limits = {"rate_limit_client_per_s": 0.25, "rate_limit_client_burst": 3}
    async with intake(database_url, nats_url, **limits) as (_, client):
        answers = [await client.get("/queue", headers=OPERATOR) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200]
        refused = await client.get("/queue", headers=OPERATOR)
        body = assert_retry_after(refused, 429, "RATE_LIMIT_CLIENT")
        assert body["detail"][0]["code"] == "rate-limited"
        assert body["limit"] == {
            "name": "RATE_LIMIT_CLIENT",
            "per_s": 0.25,
            "burst": 3,
            "key": "user:op-01",
        }
        # another user has a bucket of their own
        assert (await client.get("/queue", headers={"X-User": "op-02"})).status_code == 200
        # health is never limited
        assert (await client.get("/healthz", headers=OPERATOR)).status_code == 200

        async def refilled() -> bool:
            return (await client.get("/queue", headers=OPERATOR)).status_code == 200

        await wait_for(refilled, timeout=20, interval=0.2, what="the bucket refilled")
        # one token came back, not the whole burst
        assert (await client.get("/queue", headers=OPERATOR)).status_code == 429


async def test_anonymous_callers_are_limited_by_address_and_api_keys_by_key(
    database_url: str, nats_url: str
) -> None:
    limits = {
        "rate_limit_public_per_s": 0.5,
        "rate_limit_public_burst": 2,
        "rate_limit_client_per_s": 0.5,
        "rate_limit_client_burst": 3,
    }
    async with intake(database_url, nats_url, **limits) as (_, client):
        public = [(await client.get(f"{OPEN311}/services.json")).status_code for _ in range(3)]
        assert public == [200, 200, 429]
        refused = await client.get(f"{OPEN311}/services.json")
        body = assert_retry_after(refused, 429, "RATE_LIMIT_PUBLIC")
        assert body["limit"]["key"] == "addr:127.0.0.1"
        assert int(refused.headers["Retry-After"]) == 2  # one token at 0.5/s
        # a wrong key is an anonymous caller; a valid key draws on its own bucket
        wrong = await client.get(f"{OPEN311}/services.json", params={"api_key": "guess"})
        assert wrong.status_code == 429
        keyed = [
            (await client.get(f"{OPEN311}/services.json", params={"api_key": KEY})).status_code
            for _ in range(2)
        ]
        assert keyed == [200, 200]
        # the key in a form body counts against the same bucket as in the query string
        posted = await client.post(
            f"{OPEN311}/requests.json",
            data={
                "api_key": KEY,
                "service_code": "P0101",
                "address_string": "东城区朝阳门内大街13号",
            },
        )
        assert posted.status_code == 201, posted.text
        over = await client.post(
            f"{OPEN311}/requests.json",
            data={
                "api_key": KEY,
                "service_code": "P0101",
                "address_string": "东城区朝阳门内大街13号",
            },
        )
        assert assert_retry_after(over, 429, "RATE_LIMIT_CLIENT")["limit"]["key"] == "key:web"


@asynccontextmanager
async def pool_exhausted(rt: Runtime) -> AsyncIterator[None]:
    """Hold every connection of the service's pool."""
    assert rt.pool is not None
    held = []
    try:
        # every connection the service's own background work (a timer round) does not hold
        # this moment: taken until none is left idle and the pool may open no more (a timed-out
        # acquire alone could be a connection still being opened on a busy machine)
        while True:
            try:
                held.append(await rt.pool.acquire(timeout=0.3))
            except TimeoutError:
                if rt.pool.get_size() >= rt.pool.get_max_size() and not rt.pool.get_idle_size():
                    break
        yield
    finally:
        for conn in held:
            await rt.pool.release(conn)


async def test_reports_get_503_while_the_pool_is_exhausted_and_beyond_the_in_flight_cap(
    database_url: str, nats_url: str
) -> None:
    limits = {"db_pool_max": 3, "db_acquire_timeout_s": 0.3, "http_max_in_flight": 1}
    async with intake(database_url, nats_url, **limits) as (rt, client):
        async with pool_exhausted(rt):
            busy = await client.post("/reports", json=report(1), headers=OPERATOR)
            assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1
            assert busy.json()["unavailable"] == "database"
            assert busy.json()["detail"][0]["code"] == "unavailable"
        ok = await client.post("/reports", json=report(1), headers=OPERATOR)
        assert ok.status_code == 201, ok.text

    # the in-flight cap: one request waits for a connection, the next is answered at once
    limits = {"db_pool_max": 3, "db_acquire_timeout_s": 10, "http_max_in_flight": 1}
    async with intake(database_url, nats_url, **limits) as (rt, client):
        limiter = client._transport.app.state.limiter  # type: ignore[attr-defined]
        async with pool_exhausted(rt):
            first = asyncio.create_task(client.post("/reports", json=report(2), headers=OPERATOR))
            await wait_for(lambda: limiter.in_flight == 1, what="the first request in flight")
            second = await client.post("/reports", json=report(3), headers=OPERATOR)
            body = assert_retry_after(second, 503, "HTTP_MAX_IN_FLIGHT")
            assert body["detail"][0]["code"] == "overloaded"
            assert (await client.get("/healthz")).status_code == 200  # never capped
        assert (await first).status_code == 201
        assert limiter.in_flight == 0
        assert (await client.post("/reports", json=report(3), headers=OPERATOR)).status_code == 201


async def test_reports_are_taken_while_the_bus_is_down(
    database_url: str, nats_server: LocalNats
) -> None:
    """The report path writes the case and its events in one transaction; the outbox relay
    publishes them when the bus is back, so a bus outage is not the reporter's problem. An
    operator command that needs the bus at once (replaying a dead letter) answers 503."""
    async with intake(database_url, nats_server.url) as (rt, client):
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            letter = await conn.fetchval(
                "INSERT INTO dead_letters (consumer, subject, event_id, headers, body, error, "
                "deliveries) VALUES ('c', 'intake.hotline.12345', 'e1', '{}', '\\x7b7d', 'x', 5) "
                "RETURNING id"
            )
        nats_server.stop()
        r = await client.post("/reports", json=report(4), headers=OPERATOR)
        assert r.status_code == 201, r.text
        async with rt.pool.acquire() as conn:
            unsent = await conn.fetchval(unsent_count())
        assert unsent >= 1
        replay = await client.post(f"/admin/dlq/{letter}/replay", headers={"X-User": "admin"})
        assert replay.status_code == 503, replay.text
        assert replay.json()["unavailable"] == "bus" and "Retry-After" in replay.headers
        nats_server.start()

        async def relayed() -> bool:
            async with rt.pool.acquire() as conn:  # type: ignore[union-attr]
                n: int = await conn.fetchval(unsent_count())
            return n == 0

        await wait_for(relayed, timeout=30, what="the outbox relayed after the bus came back")
