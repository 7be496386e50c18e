"""Fixtures for the intake tests: the demo city, a running intake on a real NATS and
PostgreSQL, taps on the streams it writes to, and people with roles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from gridloop_city import City
from gridloop_contracts import Envelope, Event, to_binary, to_structured
from gridloop_contracts.envelope import STRUCTURED
from gridloop_devkit.testing import EventTap, http_client, running, settings_for, wait_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.context import Intake
from gridloop_intake.settings import IntakeSettings
from gridloop_runtime.auth import AuthSettings, issue_token
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.service import Runtime
from nats.js import JetStreamContext

# Monday 23 November 2026, 10:00 in Beijing: a working day, inside office hours.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"


@pytest.fixture(scope="session")
def intake_state() -> Intake:
    return Intake.load(IntakeSettings(CITY_DATA_DIR=str(DEMO_CITY)))


@pytest.fixture(scope="session")
def city(intake_state: Intake) -> City:
    return intake_state.city


class Harness:
    """A running intake with a bus connection, taps and HTTP helpers."""

    def __init__(self, rt: Runtime, clock: FakeClock, js: JetStreamContext) -> None:
        self.rt = rt
        self.clock = clock
        self.js = js
        self.auth = AuthSettings()

    async def tap(self, stream: str, subject: str) -> EventTap:
        return await EventTap(self.js, (stream, subject)).open()

    async def publish(
        self,
        subject: str,
        event: Event,
        *,
        structured: bool = False,
        id: str | None = None,
        source: str | None = None,
        case_id: str | None = None,
    ) -> Envelope:
        # An integrator's CloudEvents source ends with its source code (the subject's last
        # token): `/integrator/12345` on intake.hotline.12345.
        source = source or f"/integrator/{subject.rsplit('.', 1)[-1]}"
        env = Envelope.of(event, source=source, id=id, time=self.clock.now(), subject=case_id)
        if structured:
            await self.js.publish(subject, to_structured(env), headers={"content-type": STRUCTURED})
        else:
            headers, body = to_binary(env)
            await self.js.publish(subject, body, headers=headers)
        return env

    async def upstream(self, event: Any, service: str = "dispatch") -> Envelope:
        """A case event as another service would publish it."""
        return await self.publish(
            f"case.{event.subject_token}",
            event,
            source=f"/gridloop/{service}",
            case_id=event.case_id,
        )

    def headers(
        self,
        user_id: str,
        *roles: str,
        dept: str | None = None,
        territory: tuple[str, ...] | None = ("*",),
    ) -> dict[str, str]:
        """A bearer token; the whole district unless `territory` says otherwise (None: a
        token without the claim)."""
        token = issue_token(self.auth, user_id=user_id, roles=roles, dept=dept, territory=territory)
        return {"Authorization": f"Bearer {token}"}

    def client(self) -> Any:
        return http_client(self.rt)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        assert self.rt.pool is not None
        async with self.rt.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def value(self, sql: str, *args: Any) -> Any:
        assert self.rt.pool is not None
        async with self.rt.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def case_of(self, source: str, external_id: str, timeout: float = 10.0) -> str:
        async def found() -> str | None:
            v: str | None = await self.value(
                "SELECT case_id FROM reports WHERE source = $1 AND external_id = $2",
                source,
                external_id,
            )
            return v

        case_id = await wait_for(found, timeout=timeout, what=f"report {source}/{external_id}")
        assert case_id is not None
        return case_id


@pytest.fixture
async def intake(
    database_url: str, nats_url: str, intake_state: Intake, s3_settings: dict[str, str]
) -> AsyncIterator[Harness]:
    settings = settings_for(
        "intake",
        database_url,
        nats_url,
        IntakeSettings,
        city_data_dir=str(DEMO_CITY),
        **s3_settings,
    )
    assert isinstance(settings, IntakeSettings)
    definition_, state = definition(settings)
    clock = FakeClock(T0)
    nc = await nats.connect(nats_url)
    try:
        async with running(settings, definition_, clock=clock, state=state) as rt:
            yield Harness(rt, clock, nc.jetstream())
    finally:
        await nc.close()


@pytest.fixture
def at() -> Callable[..., datetime]:
    def when(**delta: float) -> datetime:
        return T0 + timedelta(**delta)

    return when


__all__ = ["T0", "Harness", "httpx"]
