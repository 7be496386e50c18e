"""Operators see dead letters and replay them; the outbox re-publishes a time range."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from gridloop_contracts import Envelope, Event, to_binary
from gridloop_devkit.testing import http_client, running, settings_for, wait_for
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import ServiceDefinition

MIGRATIONS = Path(__file__).parent / "sql"
ADMIN = {"X-User": "admin"}


class Pinged(Event):
    type_name: ClassVar[str] = "gridloop.case.pinged.v1"
    subject_token: ClassVar[str] = "pinged"
    case_id: str
    n: int = 0


class Principal:
    def __init__(self, roles: tuple[str, ...]) -> None:
        self.roles, self.name, self.dept, self.territory = roles, "", None, ("*",)


def definition(broken: dict[str, bool]) -> ServiceDefinition:
    async def handle(work: Work, env: Envelope) -> None:
        if broken["yes"]:
            raise RuntimeError("the database of record is read-only today")
        await work.conn.execute(
            "INSERT INTO seen (event_id, n) VALUES ($1, $2)", env.id, env.data["n"]
        )

    from gridloop_runtime.auth import lookup_from

    return ServiceDefinition(
        name="echo",
        migrations_dir=MIGRATIONS,
        consumers=[ConsumerSpec("echo-pings", "CASES", ["case.pinged"], handle)],
        users=lookup_from({"admin": Principal(("admin",)), "op": Principal(("operator",))}),
    )


async def test_dead_letter_is_listed_and_replayed(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
    broken = {"yes": True}
    settings = settings_for("echo", database_url, nats_url, consumer_max_deliver=2)
    async with running(settings, definition(broken)) as rt, http_client(rt) as client:
        assert rt.js is not None
        h, b = to_binary(Envelope.of(Pinged(case_id="C-1", n=7), source="/gridloop/test"))
        await rt.js.publish("case.pinged", b, headers=h)

        async def listed() -> Any:  # the JSON list, or None while the API refuses
            r = await client.get("/admin/dlq", headers=ADMIN)
            return r.json() if r.status_code == 200 else None

        letters = await wait_for(listed, timeout=15, what="the dead letter")
        assert letters[0]["subject"] == "case.pinged" and "read-only" in letters[0]["error"]
        assert (await client.get("/admin/dlq", headers={"X-User": "op"})).status_code == 403

        broken["yes"] = False  # the cause is fixed
        r = await client.post(f"/admin/dlq/{letters[0]['id']}/replay", headers=ADMIN)
        assert r.status_code == 200, r.text

        async def handled() -> int | None:
            assert rt.pool is not None
            async with rt.pool.acquire() as conn:
                n: int | None = await conn.fetchval("SELECT n FROM seen")
                return n

        assert await wait_for(handled, what="the replayed event handled") == 7
        assert await listed() == []


async def test_outbox_republishes_a_time_range(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition({"yes": False})) as rt, http_client(rt) as client:
        assert rt.uow is not None and rt.js is not None
        async with rt.uow() as work:
            for n in range(5):
                work.emit(Pinged(case_id=f"C-{n}", n=n))

        async def stream_count() -> int:
            assert rt.js is not None
            return (await rt.js.stream_info("CASES")).state.messages

        await wait_for(lambda: _eq(stream_count, 5), what="five events published")
        await rt.js.purge_stream("CASES")  # the bus lost them
        now = datetime.now(UTC)
        body = {
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": (now + timedelta(minutes=1)).isoformat(),
        }
        r = await client.post("/admin/outbox/republish", json=body, headers=ADMIN)
        assert r.status_code == 200 and r.json() == {"republished": 5}
        await wait_for(lambda: _eq(stream_count, 5), what="the events back on the bus")
        bad = await client.post(
            "/admin/outbox/republish", json={**body, "until": body["since"]}, headers=ADMIN
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "until"


async def _eq(fn: Callable[[], Awaitable[object]], expected: object) -> bool:
    return (await fn()) == expected
