"""The end-to-end tests' clients on a running stack: the services' REST APIs (each call to
the next replica in turn), the integrators' bus, what they heard back, and the department kits
answering for their departments. Shared by the end-to-end modules."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
from gridloop_city import City
from gridloop_contracts import Envelope, to_binary, to_structured
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import load_module, wait_for
from nats.aio.client import Client

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "services" / "handling" / "examples" / "department_system.py"


class Loop:
    """Clients for the running system, and what integrators heard back."""

    def __init__(self, stack: Stack, nc: Client, city: City) -> None:
        self.stack, self.nc, self.js, self.city = stack, nc, nc.jetstream(), city
        self.http = httpx.AsyncClient(timeout=10)
        self.heard: dict[str, list[dict[str, Any]]] = {}
        self.replicas = {name: itertools.cycle(stack.urls(name)) for name in stack.services}

    def url(self, service: str, path: str) -> str:
        """The next replica of the service, in turn."""
        return next(self.replicas[service]) + path

    async def get(self, service: str, path: str, user: str = "admin", **params: Any) -> Any:
        r = await self.http.get(self.url(service, path), headers={"X-User": user}, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    async def post(self, service: str, path: str, body: dict[str, Any], user: str) -> Any:
        r = await self.http.post(self.url(service, path), headers={"X-User": user}, json=body)
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r.json()

    async def publish(self, subject: str, event: Any, structured: bool = False) -> None:
        # An integrator's source ends with its own code (the subject's last token).
        env = Envelope.of(event, source=f"/integrator/{subject.rsplit('.', 1)[-1]}")
        if structured:
            await self.js.publish(
                subject,
                to_structured(env),
                headers={"content-type": "application/cloudevents+json"},
            )
        else:
            headers, body = to_binary(env)
            await self.js.publish(subject, body, headers=headers)

    async def case_of(self, external_id: str) -> str:
        async def found() -> str | None:
            for msg in self.heard.get(external_id, []):
                if msg.get("case_id"):
                    return str(msg["case_id"])
            return None

        return await wait_for(found, timeout=30, what=f"a case for {external_id}")

    async def told(self, external_id: str, status: str) -> None:
        """Wait until the last notice the integrator heard for its report says `status`: a
        notice is published after the commit whose status intake's API already shows."""

        def last_heard() -> bool:
            heard = self.heard.get(external_id, [])
            return bool(heard) and heard[-1].get("status") == status

        await wait_for(last_heard, timeout=30, what=f"{external_id} told {status}")

    async def status(self, case_id: str) -> str:
        return str((await self.get("intake", f"/cases/{case_id}", "op-01"))["status"])

    async def wait_status(self, case_id: str, *wanted: str, timeout: float = 45) -> str:
        async def reached() -> str | None:
            s = await self.status(case_id)
            return s if s in wanted else None

        return await wait_for(reached, timeout=timeout, what=f"{case_id} to be {wanted}")

    async def timeline(self, case_id: str) -> list[str]:
        data = await self.get("intake", f"/cases/{case_id}/timeline", "op-01")
        items = data["timeline"] if isinstance(data, dict) else data
        # gridloop.case.<token>.v1 → <token>
        return [str(i.get("type") or i.get("event")).split(".")[-2] for i in items]

    async def task(self, case_id: str, purpose: str) -> dict[str, Any]:
        async def open_task() -> dict[str, Any] | None:
            for t in await self.get("verify", "/tasks", "admin", status="open", purpose=purpose):
                if t["case_id"] == case_id and t["supervisor_id"]:
                    return dict(t)
            return None

        return await wait_for(open_task, timeout=45, what=f"a {purpose} task for {case_id}")

    async def verify(self, case_id: str, passed: bool, **extra: Any) -> None:
        """The open verification task's supervisor gives the verdict (`extra`: more of the
        body, e.g. position, falsified)."""
        t = await self.task(case_id, "verification")
        body = {
            "passed": passed,
            "notes": "现场核查",
            "photos": ["https://evidence.example.org/v.jpg"],
            **extra,
        }
        await self.post("verify", f"/tasks/{t['task_id']}/verification", body, t["supervisor_id"])

    async def lines(self, case_id: str) -> list[dict[str, Any]]:
        """The case file's timeline: each event with its type, occurred_at and data."""
        data = await self.get("intake", f"/cases/{case_id}/timeline", "op-01")
        items: list[dict[str, Any]] = data["timeline"] if isinstance(data, dict) else data
        return items

    async def confirm(self, case_id: str) -> None:
        t = await self.task(case_id, "confirmation")
        await self.post(
            "verify", f"/tasks/{t['task_id']}/confirmation", {"confirmed": True}, t["supervisor_id"]
        )


def trusted_supervisor_cells(city: City) -> list[tuple[str, str]]:
    """(supervisor, cell) of each cell whose primary supervisor is trusted (their reports are
    accepted at once) and which has no entry list, in cell order."""
    return [
        (a.primary, cell)
        for cell, a in sorted(city.supervisors.items())
        if city.users[a.primary].trusted and city.cells[cell].entry_list is None
    ]


def trusted_supervisor_cell(city: City) -> tuple[str, str]:
    cells = trusted_supervisor_cells(city)
    assert cells, "the demo city has no trusted supervisor"
    return cells[0]


def centre(city: City, cell: str) -> dict[str, float]:
    part = next(p for p in city.parts.values() if p.cell_code == cell)
    return {"lat": part.lat, "lon": part.lon}


def now() -> datetime:
    return datetime.now(UTC)


def city_today(city: City) -> str:
    """Today in the city's own time zone: the day scoring's "day" periods count in (after 16:00
    UTC it is already tomorrow in Beijing)."""
    return datetime.now(ZoneInfo(city.district.timezone)).date().isoformat()


async def patrol_report(loop: Loop, tag: str, description: str) -> tuple[str, str]:
    """A trusted supervisor's patrol report in their cell over NATS: (external id, case id)."""
    supervisor, cell = trusted_supervisor_cell(loop.city)
    ext = f"{tag}-{uuid.uuid4().hex[:8]}"
    report = ReportV1(
        external_id=ext,
        description=description,
        reported_at=now(),
        location=centre(loop.city, cell),
        category_code="E0104",
        reporter_user_id=supervisor,
    )
    await loop.publish("intake.patrol.patrol-app", report)
    return ext, await loop.case_of(ext)


@contextlib.asynccontextmanager
async def open_loop(stack: Stack, city: City) -> AsyncIterator[Loop]:
    """Clients on a running stack, with the department kits answering their departments
    (sanitation and urban-mgmt handle, traffic-police returns, housing asks for more time)
    until the context ends."""
    assert stack.nats_url
    nc = await nats.connect(stack.nats_servers)
    lp = Loop(stack, nc, city)

    async def heard(msg: Any) -> None:
        data = json.loads(msg.data)
        if data.get("external_id"):
            lp.heard.setdefault(data["external_id"], []).append(data)

    await nc.subscribe("notify.>", cb=heard)
    kit = load_module(KIT, "department_system")
    stop = asyncio.Event()
    quiet = lambda _: None  # noqa: E731
    departments = {
        "sanitation": "handle",
        "urban-mgmt": "handle",
        "traffic-police": "return",
        "housing": "extension",
    }
    kits = [
        asyncio.create_task(kit.run(stack.nats_url, dept, behaviour=b, stop=stop, say=quiet))
        for dept, b in departments.items()
    ]
    try:
        yield lp
    finally:
        stop.set()
        _, running = await asyncio.wait(kits, timeout=30)
        for k in running:  # a kit that did not stop in time is not this module's result
            k.cancel()
        await lp.http.aclose()
        await nc.close()
