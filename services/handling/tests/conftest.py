"""Fixtures for the handling tests: a running handling on a real NATS and PostgreSQL, the
upstream events other services would publish, taps on what handling publishes, a
department's NATS client and REST callers with roles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from gridloop_contracts import Attachment, Envelope, Event, Location
from gridloop_contracts import cases as ev
from gridloop_contracts.department import CommandAnswerV1
from gridloop_devkit.testing import (
    EventTap,
    http_client,
    publish_case_event,
    service_running,
    settings_for,
    wait_for,
)
from gridloop_handling.bootstrap import definition
from gridloop_handling.settings import HandlingSettings
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.service import Runtime
from nats.aio.client import Client

# Monday 23 November 2026, 10:00 in Beijing: a working day, inside office hours.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(days=1)
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
CELL, COMMUNITY, SUBDISTRICT = "1101010010010001", "110101001001", "110101001"
PHOTO = "https://evidence.example.org/report/1.jpg"
DONE = "https://evidence.example.org/done/1.jpg"


class Harness:
    """A running handling, taps on CASES and DISPATCH, and the people and systems using it."""

    def __init__(self, rt: Runtime, clock: FakeClock, nc: Client) -> None:
        self.rt = rt
        self.clock = clock
        self.nc = nc
        self.js = nc.jetstream()
        self.cases = EventTap(self.js, ("CASES", "case.>"))
        self.feed = EventTap(self.js, ("DISPATCH", "dispatch.>"))
        self.http: httpx.AsyncClient | None = None
        self._n = 0

    # -- upstream events (as intake and dispatch publish them) --------------------------
    async def upstream(self, event: ev.CaseEvent, service: str = "dispatch") -> None:
        await publish_case_event(self.js, event, service, at=self.clock.now())

    def dims(self, case_id: str, category: str = "E0102") -> dict[str, Any]:
        return {
            "case_id": case_id,
            "category_code": category,
            "cell_code": CELL,
            "community_code": COMMUNITY,
            "subdistrict_code": SUBDISTRICT,
        }

    async def accepted(self, case_id: str, category: str = "E0102", **kw: Any) -> None:
        values: dict[str, Any] = {
            "occurred_at": self.clock.now(),
            "description": "东华门大街12号门前垃圾堆放",
            "address": "东城区东华门大街12号",
            "location": Location(lat=39.9142, lon=116.3975),
            "attachments": [Attachment(url=PHOTO)],
            "urgency": "normal",
        }
        values.update(kw)
        await self.upstream(ev.CaseAccepted(**self.dims(case_id, category), **values), "intake")

    async def dispatched(
        self,
        case_id: str,
        dept: str = "sanitation",
        *,
        task_id: str | None = None,
        category: str = "E0102",
        deadline: datetime = DEADLINE,
        **kw: Any,
    ) -> str:
        task_id = task_id or f"T-{case_id}"
        await self.upstream(
            ev.CaseDispatched(
                **self.dims(case_id, category),
                occurred_at=self.clock.now(),
                dept=dept,
                task_id=task_id,
                deadline=deadline,
                **kw,
            )
        )
        return task_id

    async def new_case(self, case_id: str, dept: str = "sanitation", **kw: Any) -> str:
        """Accepted and dispatched, and in the department's inbox."""
        await self.accepted(case_id, kw.pop("category", "E0102"))
        task_id = await self.dispatched(case_id, dept, **kw)
        await self.in_inbox(dept, case_id)
        return task_id

    # -- what handling publishes -------------------------------------------------------
    def emitted(self, model: type[Event], **data: Any) -> list[Envelope]:
        return self.cases.of(model, source="/gridloop/handling", **data)

    async def wait(self, model: type[Event], n: int = 1, **data: Any) -> list[Envelope]:
        return await self.cases.wait(model, n, source="/gridloop/handling", **data)

    def answers(self, dept: str, command_id: str) -> list[CommandAnswerV1]:
        answers = self.feed.of(None, subject=f"dispatch.{dept}.answer", command_id=command_id)
        return [CommandAnswerV1.model_validate(e.data) for e in answers]

    async def answer(self, dept: str, command_id: str, n: int = 1) -> CommandAnswerV1:
        """The (n-th) answer on dispatch.<dept>.answer to a command."""
        subject = f"dispatch.{dept}.answer"
        found = await self.feed.wait(None, n, subject=subject, command_id=command_id)
        return CommandAnswerV1.model_validate(found[n - 1].data)

    # -- a department's own system over NATS -----------------------------------------------
    async def command(
        self,
        action: str,
        dept: str,
        case_id: str,
        *,
        by: str = "dept-system",
        command_id: str | None = None,
        subject_dept: str | None = None,
        replyto: str | None = None,
        answerfeed: str | None = None,
        type_action: str | None = None,
        **data: Any,
    ) -> str:
        """Publish a command on handling.<dept>.<action> as a department's system would;
        returns its command id."""
        self._n += 1
        command_id = command_id or f"cmd-{self._n}"
        payload = {"command_id": command_id, "case_id": case_id, "dept": dept, "by": by, **data}
        headers = {
            "ce-specversion": "1.0",
            "ce-id": f"ev-{self._n}-{command_id}",
            "ce-source": f"/departments/{dept}",
            "ce-type": f"gridloop.handling.{type_action or action}.v1",
            "ce-time": self.clock.now().isoformat(),
            "content-type": "application/json",
        }
        if replyto:
            headers["ce-replyto"] = replyto
        if answerfeed is not None:
            headers["ce-answerfeed"] = answerfeed
        subject = f"handling.{subject_dept or dept}.{action}"
        await self.js.publish(subject, orjson.dumps(payload, default=str), headers=headers)
        return command_id

    # -- REST --------------------------------------------------------------------------------
    async def call(
        self, method: str, path: str, user: str | None, json: Any = None, **params: Any
    ) -> httpx.Response:
        assert self.http is not None
        headers = {"X-User": user} if user else {}
        return await self.http.request(method, path, headers=headers, json=json, params=params)

    async def rest(
        self, action: str, dept: str, case_id: str, user: str | None = None, **body: Any
    ) -> httpx.Response:
        """POST /departments/{dept}/cases/{case_id}/{action} as `user` (default: the dept's)."""
        return await self.call(
            "POST",
            f"/departments/{dept}/cases/{case_id}/{action}",
            user or f"{dept}-ops",
            json=orjson.loads(orjson.dumps(body, default=str)),
        )

    async def inbox(self, dept: str, user: str | None = None, **params: Any) -> dict[str, Any]:
        r = await self.call("GET", f"/departments/{dept}/cases", user or f"{dept}-ops", **params)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    async def in_inbox(self, dept: str, case_id: str, **params: Any) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            for item in (await self.inbox(dept, **params))["items"]:
                if item["case_id"] == case_id:
                    return dict(item)
            return None

        # `found`'s dict[str, Any] makes wait_for's overloads ambiguous to mypy (it answers Any)
        item: dict[str, Any] = await wait_for(
            found, timeout=10, what=f"{case_id} in {dept}'s inbox"
        )
        assert item is not None
        return item

    async def task(self, dept: str, case_id: str) -> dict[str, Any]:
        r = await self.call("GET", f"/departments/{dept}/cases/{case_id}", f"{dept}-ops")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


@asynccontextmanager
async def started(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> AsyncIterator[Harness]:
    # X-User is honoured in dev mode only (as `make run` starts the services).
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for(
        "handling", database_url, nats_url, HandlingSettings, city_data_dir=str(DEMO_CITY), **extra
    )
    assert isinstance(settings, HandlingSettings)
    clock = FakeClock(T0)
    async with service_running(settings, definition, nats_url, clock=clock) as (rt, nc):
        h = Harness(rt, clock, nc)
        await h.cases.open()
        await h.feed.open()
        async with http_client(rt) as client:
            h.http = client
            yield h


@pytest.fixture
async def handling(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    async with started(database_url, nats_url, monkeypatch) as h:
        yield h


@pytest.fixture
async def handling_s3(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, s3_settings: dict[str, str]
) -> AsyncIterator[Harness]:
    """Handling with the session's object store (a bucket of its own) for uploads."""
    async with started(database_url, nats_url, monkeypatch, **s3_settings) as h:
        yield h


@pytest.fixture
def start_handling(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractAsyncContextManager[Harness]]:
    """Start handling (again) on the test's database and NATS: `async with start_handling():`."""
    return lambda **extra: started(database_url, nats_url, monkeypatch, **extra)
