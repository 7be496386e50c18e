"""Dispatch against a real nats-server and PostgreSQL: a running dispatch (or two, or one
restarted), upstream events published as intake, handling and verify would, taps on CASES and
on the department feed, and the command centre's people on the REST API."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
import yaml
from gridloop_city.versions import digest, release
from gridloop_contracts import Attachment, Envelope, MaskedReporter, to_binary
from gridloop_contracts import cases as ev
from gridloop_devkit.testing import (
    EventTap,
    holding,
    http_client,
    publish_case_event,
    running,
    settings_for,
    wait_for,
)
from gridloop_dispatch import repository as repo
from gridloop_dispatch.bootstrap import definition
from gridloop_dispatch.domain import chasing
from gridloop_dispatch.settings import DispatchSettings
from gridloop_runtime.auth import AuthSettings, issue_token
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.livecity import announce
from gridloop_runtime.outbox import unsent_count
from gridloop_runtime.service import Runtime
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

BJ = ZoneInfo("Asia/Shanghai")
# Monday 23 November 2026, 10:00 in Beijing: a working day, inside office hours.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
# A cell of sub-district 001 (东华门) and one of 002 (景山).
CELL, COMMUNITY, SUBDISTRICT = "1101010010010001", "110101001001", "110101001"
CELL_002 = "1101010020010001"
WATER_COVER = "1101010101000001"  # P0101 上水井盖, registered to `water`
DISPATCHER, LEAD, EVALUATOR = "disp-01", "lead-01", "eval-01"
PHOTO = "https://evidence.example.org/site/1.jpg"


def bj(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """A Beijing wall-clock time."""
    return datetime(y, mo, d, h, mi, s, tzinfo=BJ)


def at(value: Any) -> datetime:
    """A timestamp from an event's JSON data."""
    return datetime.fromisoformat(str(value))


class Harness:
    """Running dispatch runtimes sharing one database, a clock, taps on what they publish, and
    the people who call them."""

    def __init__(self, rts: list[Runtime], clock: FakeClock, js: JetStreamContext) -> None:
        self.rts = rts
        self.clock = clock
        self.js = js
        self.tap = EventTap(js, ("CASES", "case.>"), ("DISPATCH", "dispatch.>"))
        self._http: httpx.AsyncClient | None = None

    @property
    def rt(self) -> Runtime:
        return self.rts[0]

    async def open(self) -> None:
        await self.tap.open()

    # -- the bus --------------------------------------------------------------------
    @property
    def seen(self) -> list[tuple[str, Envelope]]:
        """Everything read off CASES and DISPATCH, as (subject, envelope)."""
        return self.tap.seen

    async def poll(self) -> None:
        await self.tap.poll()

    def emitted(self, model: type[ev.CaseEvent], **data: Any) -> list[Envelope]:
        """What dispatch published of a case event type, matching `data` (JSON values)."""
        return self.tap.of(model, source="/gridloop/dispatch", **data)

    def feed(self, dept: str, token: str, case_id: str | None = None) -> list[Envelope]:
        """What dispatch told a department on dispatch.<dept>.<token>."""
        on_subject = self.tap.of(None, subject=f"dispatch.{dept}.{token}")
        return [e for e in on_subject if case_id is None or e.data["case"]["case_id"] == case_id]

    async def wait(self, model: type[ev.CaseEvent], n: int = 1, **data: Any) -> list[Envelope]:
        return await self.tap.wait(model, n, timeout=15, source="/gridloop/dispatch", **data)

    async def wait_feed(self, dept: str, token: str, case_id: str, n: int = 1) -> list[Envelope]:
        async def enough() -> list[Envelope] | None:
            await self.poll()
            found = self.feed(dept, token, case_id)
            return found if len(found) >= n else None

        found = await wait_for(enough, timeout=15, what=f"{n} × dispatch.{dept}.{token}")
        assert found is not None
        return found

    async def settle(self) -> None:
        """Fire what is due on every runtime, wait for the outbox to drain, read the taps."""
        for rt in self.rts:
            assert rt.timer_runner is not None
            await rt.timer_runner.fire_due()

        async def drained() -> bool:
            assert self.rt.pool is not None
            async with self.rt.pool.acquire() as conn:
                return bool(await conn.fetchval(unsent_count()) == 0)

        await wait_for(drained, timeout=10, what="the outbox to drain")
        await self.poll()

    async def upstream(self, event: ev.CaseEvent, service: str, id: str | None = None) -> Envelope:
        """Publish a case event as another service would."""
        return await publish_case_event(self.js, event, service, at=self.clock.now(), id=id)

    async def accept(
        self,
        case_id: str,
        category: str = "E0102",
        cell: str = CELL,
        **extra: Any,
    ) -> Envelope:
        """立案 as intake announces it."""
        values: dict[str, Any] = {
            "case_id": case_id,
            "occurred_at": self.clock.now(),
            "category_code": category,
            "cell_code": cell,
            "description": "人行道上堆放垃圾",
            "address": "东城区东华门大街1号",
            "channel": "hotline",
            "source": "hotline-12345",
            "reporter": MaskedReporter(ref="R-1", name="张*", phone="138****5678"),
            "attachments": [Attachment(url=PHOTO)],
        }
        values.update(extra)
        return await self.upstream(ev.CaseAccepted(**values), "intake")

    async def dispatched(self, case_id: str, n: int = 1) -> dict[str, Any]:
        """The latest case.dispatched of a case, once there are `n`."""
        found = await self.wait(ev.CaseDispatched, n, case_id=case_id)
        data: dict[str, Any] = found[-1].data
        return data

    def department_event(
        self, model: type[ev.CaseEvent], task: dict[str, Any], **extra: Any
    ) -> Any:
        return model(
            case_id=task["case_id"],
            occurred_at=self.clock.now(),
            dept=task["dept"],
            task_id=task["task_id"],
            **extra,
        )

    def handled_in_time(self, task: dict[str, Any], taken_at: datetime) -> ev.CaseHandled:
        """The result of the task `task`, taken by handling at `taken_at`, by its deadline."""
        handled: ev.CaseHandled = self.department_event(
            ev.CaseHandled,
            task,
            deadline=at(task["deadline"]),
            result="已清理",
            completed_at=taken_at,
            on_time=True,
        ).model_copy(update={"occurred_at": taken_at})
        return handled

    # -- REST -----------------------------------------------------------------------
    async def call(
        self, method: str, path: str, user: str | None = DISPATCHER, json: Any = None, **params: Any
    ) -> httpx.Response:
        assert self._http is not None
        headers = {"X-User": user} if user else {}
        return await self._http.request(method, path, headers=headers, json=json, params=params)

    async def case(self, case_id: str) -> dict[str, Any]:
        r = await self.call("GET", f"/cases/{case_id}")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


def dispatch_settings(database_url: str, nats_url: str, **extra: Any) -> DispatchSettings:
    settings = settings_for(
        "dispatch", database_url, nats_url, DispatchSettings, city_data_dir=str(DEMO_CITY), **extra
    )
    assert isinstance(settings, DispatchSettings)
    return settings


@asynccontextmanager
async def started(
    database_url: str,
    nats_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    clock: FakeClock | None = None,
    instances: int = 1,
    **extra: Any,
) -> AsyncIterator[Harness]:
    """`instances` dispatch runtimes on one database (replicas), with taps and HTTP."""
    monkeypatch.setenv("AUTH_MODE", "dev")  # X-User is honoured in dev mode only
    clock = clock or FakeClock(T0)
    nc = await nats.connect(nats_url)
    try:
        async with _runtimes(database_url, nats_url, clock, instances, **extra) as rts:
            h = Harness(rts, clock, nc.jetstream())
            await h.open()
            async with http_client(rts[0]) as client:
                h._http = client
                yield h
    finally:
        await nc.close()


@asynccontextmanager
async def _runtimes(
    database_url: str, nats_url: str, clock: FakeClock, n: int, **extra: Any
) -> AsyncIterator[list[Runtime]]:
    settings = dispatch_settings(database_url, nats_url, **extra)
    definition_, state = definition(settings)
    async with running(settings, definition_, clock=clock, state=state) as rt:
        if n == 1:
            yield [rt]
        else:
            async with _runtimes(database_url, nats_url, clock, n - 1, **extra) as others:
                yield [rt, *others]


@pytest.fixture
async def dispatch(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    async with started(database_url, nats_url, monkeypatch) as h:
        yield h


def case_id(n: int) -> str:
    return f"110101-20261123-{n:06d}"


# -- routing ------------------------------------------------------------------------------
async def test_a_case_goes_to_the_unit_of_its_category_and_territory(dispatch: Harness) -> None:
    clear = MaskedReporter(ref="R-9", name="王小明", phone="13912345678")
    await dispatch.accept(case_id(1), "E0102", reporter=clear)
    await dispatch.accept(case_id(2), "E0504", CELL)
    await dispatch.accept(case_id(3), "E0504", CELL_002)

    first = await dispatch.dispatched(case_id(1))
    assert (first["dept"], first["kind"], first["task_id"]) == (
        "sanitation",
        "initial",
        f"{case_id(1)}-T1",
    )
    # E0102: one working day from Mon 10:00 → Tue 10:00; sign in within 2 working hours.
    assert at(first["deadline"]) == bj(2026, 11, 24, 10)
    assert at(first["sign_in_due"]) == bj(2026, 11, 23, 12)
    assert (first["cell_code"], first["community_code"], first["subdistrict_code"]) == (
        CELL,
        COMMUNITY,
        SUBDISTRICT,
    )
    # 街面秩序 E0504 goes to the sub-district office of the cell, 4 working hours → 15:30.
    second = await dispatch.dispatched(case_id(2))
    third = await dispatch.dispatched(case_id(3))
    assert second["dept"] == "street-001" and third["dept"] == "street-002"
    assert at(second["deadline"]) == bj(2026, 11, 23, 15, 30)

    [assigned] = await dispatch.wait_feed("sanitation", "assigned", case_id(1))
    summary = assigned.data["case"]
    assert assigned.type == "gridloop.dispatch.assigned.v1" and assigned.subject == case_id(1)
    assert summary["reporter"] == {"ref": "R-9", "name": "王**", "phone": "139****5678"}
    assert summary["category_name"] and summary["closing_standard"]
    assert summary["role"] == "sole" and summary["description"] == "人行道上堆放垃圾"
    assert summary["attachments"] == [{"url": PHOTO, "kind": "photo"}]
    assert at(summary["deadline"]) == bj(2026, 11, 24, 10)
    ours = [e.data for _, e in dispatch.seen if e.source == "/gridloop/dispatch"]
    assert ours and "13912345678" not in str(ours)


async def test_co_handlers_and_the_lead_hear_of_the_task(dispatch: Harness) -> None:
    await dispatch.accept(case_id(4), "E0101")
    d = await dispatch.dispatched(case_id(4))
    assert (d["dept"], d["co_handlers"], d["lead"]) == ("urban-mgmt", ["housing"], "urban-mgmt")
    [lead] = await dispatch.wait_feed("urban-mgmt", "assigned", case_id(4))
    [co] = await dispatch.wait_feed("housing", "assigned", case_id(4))
    assert lead.data["case"]["role"] == "lead" and co.data["case"]["role"] == "co-handler"
    assert co.data["case"]["lead"] == "urban-mgmt" and "协助" in co.data["case"]["what_to_do"]


async def test_a_part_case_goes_to_the_parts_registered_owner(dispatch: Harness) -> None:
    # The routing rule for P0101 says `water`; the part's registered owner wins.
    await dispatch.accept(
        case_id(5), "P0101", CELL, part_code=WATER_COVER, part_owner_dept="housing"
    )
    # Intake did not state the owner: the city's parts register answers.
    await dispatch.accept(case_id(6), "P0101", CELL_002, part_code=WATER_COVER)
    # An event next to a part is not the part owner's business.
    await dispatch.accept(
        case_id(7), "E0102", CELL, part_code=WATER_COVER, part_owner_dept="housing"
    )
    assert (await dispatch.dispatched(case_id(5)))["dept"] == "housing"
    assert (await dispatch.dispatched(case_id(6)))["dept"] == "water"
    assert (await dispatch.dispatched(case_id(7)))["dept"] == "sanitation"
    [msg] = await dispatch.wait_feed("housing", "assigned", case_id(5))
    assert msg.data["case"]["part_code"] == WATER_COVER


async def test_an_unroutable_case_waits_in_the_queue_until_a_dispatcher_places_it(
    dispatch: Harness,
) -> None:
    cid = case_id(8)
    await dispatch.accept(cid, "E0602")  # no routing rule for E0602

    async def queued() -> list[dict[str, Any]]:
        r = await dispatch.call("GET", "/queue")
        assert r.status_code == 200, r.text
        return [c for c in r.json() if c["case_id"] == cid]

    [waiting] = await wait_for(queued, what="the case in the manual queue")
    assert waiting["state"] == "queued" and "E0602" in waiting["queue_reason"]
    await dispatch.settle()
    assert dispatch.emitted(ev.CaseDispatched, case_id=cid) == []

    body = {"dept": "street-001", "note": "请核查后处置", "command_id": "cmd-manual-1"}
    r = await dispatch.call("POST", f"/cases/{cid}/dispatch", "sanitation-ops", json=body)
    assert r.status_code == 403 and r.json()["detail"][0]["code"] == "forbidden"
    r = await dispatch.call("POST", f"/cases/{cid}/dispatch", json={**body, "dept": "nobody"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "dept"
    bad = {**body, "co_handlers": ["street-001"]}
    r = await dispatch.call("POST", f"/cases/{cid}/dispatch", json=bad)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "co_handlers.0"
    r = await dispatch.call("POST", f"/cases/{cid}/dispatch", json={**body, "dept": "Bad Code"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "dept"

    # Sent twice at once (a client retry racing the first send), then once more later.
    r, racing = await asyncio.gather(
        dispatch.call("POST", f"/cases/{cid}/dispatch", json=body),
        dispatch.call("POST", f"/cases/{cid}/dispatch", json=body),
    )
    assert r.status_code == 200, r.text
    assert racing.status_code == 200 and racing.json() == r.json()
    again = await dispatch.call("POST", f"/cases/{cid}/dispatch", json=body)
    assert again.status_code == 200 and again.json() == r.json()
    [task] = r.json()["tasks"]
    assert (task["dept"], task["kind"], task["dispatched_by"]) == (
        "street-001",
        "manual",
        DISPATCHER,
    )

    d = await dispatch.dispatched(cid)
    assert d["kind"] == "manual" and d["actor"]["id"] == DISPATCHER
    # E0602 allows 3 working days; a sub-district office has 2 (seed 003): Wed 10:00.
    assert at(d["deadline"]) == bj(2026, 11, 25, 10)
    await dispatch.settle()
    assert len(dispatch.emitted(ev.CaseDispatched, case_id=cid)) == 1
    assert await queued() == []
    r = await dispatch.call("POST", f"/cases/{cid}/dispatch", json={**body, "command_id": "cmd-2"})
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "not-queued"


async def test_a_neighbour_dispute_reaches_the_communitys_committee_for_one_working_day(
    dispatch: Harness,
) -> None:
    """Seed 003 on the bus: E0601 (3 working days by its standard) goes to the residents'
    committee of the cell's community, a community-level unit held to 1 working day."""
    cid = case_id(11)
    await dispatch.accept(cid, "E0601", CELL)
    d = await dispatch.dispatched(cid)
    assert (d["dept"], d["community_code"]) == ("comm-001001", COMMUNITY)
    assert at(d["deadline"]) == bj(2026, 11, 24, 10)
    [assigned] = await dispatch.wait_feed("comm-001001", "assigned", cid)
    assert assigned.data["case"]["category_code"] == "E0601"


async def test_a_case_left_in_the_queue_is_said_on_the_bus_and_chased_up_its_ladder(
    dispatch: Harness,
) -> None:
    cid = case_id(40)
    start = dispatch.clock.now()
    await dispatch.accept(cid, "E0602")  # no routing rule for E0602
    [queued] = await dispatch.wait(ev.CaseQueued, case_id=cid)
    assert queued.data["reason_code"] == "unroutable" and "E0602" in queued.data["reason"]
    assert queued.data["cell_code"] == CELL
    dispatch.clock.set(start + timedelta(minutes=31))
    await dispatch.settle()
    [first] = await dispatch.wait(ev.CaseQueueChased, case_id=cid)
    assert (first.data["level"], first.data["to_role"]) == (1, "dispatcher")
    dispatch.clock.set(start + timedelta(hours=2, minutes=1))
    await dispatch.settle()
    await dispatch.wait(ev.CaseQueueChased, n=2, case_id=cid)
    assert [e.data["to_role"] for e in dispatch.emitted(ev.CaseQueueChased, case_id=cid)] == [
        "dispatcher",
        "shift-leader",
    ]
    r = await dispatch.call("GET", "/queue")
    [waiting] = [c for c in r.json() if c["case_id"] == cid]
    assert waiting["queue_chase_level"] == 2
    r = await dispatch.call("POST", f"/cases/{cid}/dispatch", json={"dept": "street-001"})
    assert r.status_code == 200 and r.json()["queue_chase_level"] == 0, r.text
    dispatch.clock.set(start + timedelta(hours=5))
    await dispatch.settle()
    assert len(dispatch.emitted(ev.CaseQueueChased, case_id=cid)) == 2  # nothing more


async def test_dispatchers_and_the_shift_leader_chase_a_department_by_hand(
    dispatch: Harness,
) -> None:
    cid = case_id(41)
    await dispatch.accept(cid, "E0102")
    d = await dispatch.dispatched(cid)
    path = f"/cases/{cid}/reminder"
    for user, status in (("sanitation-ops", 403), (EVALUATOR, 403)):
        r = await dispatch.call("POST", path, user, json={"note": "请尽快处置"})
        assert r.status_code == status and r.json()["detail"][0]["code"] == "forbidden"
    r = await dispatch.call("POST", path, json={"note": "  "})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "note"
    body = {"note": "请尽快签收", "command_id": "remind-1"}
    r = await dispatch.call("POST", path, json=body)
    assert r.status_code == 200 and r.json()["tasks"][0]["manual_reminders"] == 1, r.text
    again = await dispatch.call("POST", path, json=body)  # the same command: once
    assert again.json() == r.json()
    r = await dispatch.call("POST", path, LEAD, json={"note": "值班长催办"})
    assert r.status_code == 200 and r.json()["tasks"][0]["manual_reminders"] == 2, r.text
    chased = await dispatch.wait(ev.CaseReminded, n=2, case_id=cid, manual=True)
    assert [(e.data["actor"]["role"], e.data["stage"]) for e in chased] == [
        ("dispatcher", "sign_in"),
        ("shift-leader", "sign_in"),
    ]
    assert all(e.data["task_id"] == d["task_id"] for e in chased)
    feed = await dispatch.wait_feed("sanitation", "reminder", cid, n=2)
    assert "值班长催办" in feed[-1].data["note"]
    # the grid head of the case's cell chases too; a grid head elsewhere cannot find it
    r = await dispatch.call("POST", path, "gh-0020010001", json={"note": "网格长催办"})
    assert r.status_code == 404, r.text
    r = await dispatch.call("POST", path, "gh-0010010001", json={"note": "网格长催办"})
    assert r.status_code == 200 and r.json()["tasks"][0]["manual_reminders"] == 3, r.text
    [by_head] = await dispatch.wait(ev.CaseReminded, case_id=cid, manual=True, note="网格长催办")
    assert by_head.data["actor"]["role"] == "grid-head"


async def test_the_command_centre_reads_and_acts_within_its_territory(dispatch: Harness) -> None:
    """A dispatcher of another sub-district (or with no territory in the token) sees none of
    a case: not in the queue, 404 as for an unknown id when read or acted on; the attempts
    are audited."""
    cid = case_id(9)
    await dispatch.accept(cid, "E0602")  # no routing rule: it waits in the manual queue

    async def queued() -> bool:
        return any(c["case_id"] == cid for c in (await dispatch.call("GET", "/queue")).json())

    await wait_for(queued, what="the case in the manual queue")
    assert dispatch._http is not None

    def bearer(user: str, territory: list[str] | None) -> dict[str, str]:
        token = issue_token(AuthSettings(), user_id=user, roles=["dispatcher"], territory=territory)
        return {"Authorization": f"Bearer {token}"}

    here = bearer("disp-here", [SUBDISTRICT])
    r = await dispatch._http.get("/queue", headers=here)
    assert [c["case_id"] for c in r.json()] == [cid]
    assert (await dispatch._http.get(f"/cases/{cid}", headers=here)).status_code == 200
    unknown = await dispatch._http.get("/cases/110101-20261123-999999", headers=here)
    for user, territory in (("disp-far", ["110101002"]), ("disp-none", None)):
        headers = bearer(user, territory)
        assert (await dispatch._http.get("/queue", headers=headers)).json() == []
        r = await dispatch._http.get("/board", params={"view": "supervised"}, headers=headers)
        assert r.json() == []
        r = await dispatch._http.get(f"/cases/{cid}", headers=headers)
        assert r.status_code == 404
        # the very answer an unknown id gets, but for the id
        assert r.json()["detail"][0] == {
            **unknown.json()["detail"][0],
            "reason": f"no case {cid!r}",
        }
        r = await dispatch._http.post(
            f"/cases/{cid}/dispatch", json={"dept": "street-001"}, headers=headers
        )
        assert r.status_code == 404 and r.json()["detail"][0]["code"] == "not-found"
    await dispatch.settle()
    assert dispatch.emitted(ev.CaseDispatched, case_id=cid) == []

    assert dispatch.rt.pool is not None
    async with dispatch.rt.pool.acquire() as conn:
        trail = await conn.fetch(
            "SELECT user_id, command, code, status FROM audit_log "
            "WHERE outcome = 'refused' AND case_id = $1 ORDER BY id",
            cid,
        )
    assert [tuple(t) for t in trail] == [
        (user, command, "out-of-reach", 404)
        for user in ("disp-far", "disp-none")
        for command in ("GET /cases/{case_id}", "dispatch")
    ]


# -- the loop: return, extension, rework ---------------------------------------------------
async def test_a_returned_case_goes_to_the_next_candidate_then_to_the_queue(
    dispatch: Harness,
) -> None:
    cid = case_id(9)
    await dispatch.accept(cid, "E0504")
    first = await dispatch.dispatched(cid)
    assert first["dept"] == "street-001"
    await dispatch.upstream(
        dispatch.department_event(ev.CaseReturned, first, reason="非本街道职责"), "handling"
    )
    second = await dispatch.dispatched(cid, 2)
    assert (second["dept"], second["kind"]) == ("urban-mgmt", "redispatch")
    assert "非本街道职责" in second["reason"] and second["task_id"] == f"{cid}-T2"
    await dispatch.wait_feed("urban-mgmt", "assigned", cid)

    await dispatch.upstream(
        dispatch.department_event(ev.CaseReturned, second, reason="应由街道处置"), "handling"
    )

    async def queued() -> dict[str, Any] | None:
        case = await dispatch.case(cid)
        return case if case["queued"] else None

    case = await wait_for(queued, what="the case back in the queue")
    assert case["state"] == "queued" and "应由街道处置" in case["queue_reason"]
    assert case["returned_by"] == ["street-001", "urban-mgmt"]
    assert [t["status"] for t in case["tasks"]] == ["returned", "returned"]
    assert case["pending_timers"] == []
    await dispatch.settle()
    assert len(dispatch.emitted(ev.CaseDispatched, case_id=cid)) == 2


async def ask_extension(
    h: Harness, d: dict[str, Any], request_id: str, proposed: datetime, reason: str = "需协调物业"
) -> None:
    """The department asks to move the deadline of the task `d` (延期申请); dispatch has it
    once its extensions list it."""
    cid = d["case_id"]
    await h.upstream(
        h.department_event(
            ev.CaseExtensionRequested,
            d,
            reason=reason,
            proposed_deadline=proposed,
            request_id=request_id,
        ),
        "handling",
    )

    async def listed() -> bool:
        r = await h.call("GET", "/extensions", case_id=cid)
        return r.status_code == 200 and request_id in [x["request_id"] for x in r.json()]

    await wait_for(listed, what=f"the extension request {request_id}")


async def test_an_extension_is_refused_or_granted_and_moves_the_deadline(
    dispatch: Harness,
) -> None:
    cid = case_id(10)
    await dispatch.accept(cid, "E0102")
    d = await dispatch.dispatched(cid)
    proposed = bj(2026, 11, 25, 18)
    await dispatch.upstream(
        dispatch.department_event(
            ev.CaseExtensionRequested,
            d,
            reason="需协调物业",
            proposed_deadline=proposed,
            request_id="X-1",
        ),
        "handling",
    )

    async def pending() -> list[dict[str, Any]]:
        r = await dispatch.call("GET", "/extensions")
        assert r.status_code == 200, r.text
        return [x for x in r.json() if x["case_id"] == cid]

    [request] = await wait_for(pending, what="the pending extension request")
    assert request["request_id"] == "X-1" and at(request["current_deadline"]) == at(d["deadline"])

    r = await dispatch.call("POST", "/extensions/X-1/decision", json={"granted": False})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "reason"
    r = await dispatch.call(
        "POST", "/extensions/X-1/decision", json={"granted": False, "reason": "时限内可完成"}
    )
    assert r.status_code == 200 and r.json()["status"] == "refused"
    [refused] = await dispatch.wait(ev.CaseExtensionDecided, case_id=cid)
    assert refused.data["granted"] is False and refused.data["request_id"] == "X-1"
    assert at(refused.data["deadline"]) == bj(2026, 11, 24, 10)

    await ask_extension(dispatch, d, "X-2", proposed, "需协调物业，材料未到")
    r = await dispatch.call("POST", "/extensions/X-2/decision", json={"granted": True})
    assert r.status_code == 200 and at(r.json()["new_deadline"]) == proposed
    r = await dispatch.call("POST", "/extensions/X-2/decision", json={"granted": True})
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "decided"
    granted = await dispatch.wait(ev.CaseExtensionDecided, case_id=cid, granted=True)
    assert at(granted[0].data["new_deadline"]) == proposed
    case = await dispatch.case(cid)
    assert at(case["tasks"][0]["deadline"]) == proposed
    overdue = [t for t in case["pending_timers"] if t["kind"] == "overdue"]
    assert [at(t["due_at"]) for t in overdue] == [proposed]

    # The old deadline passes quietly; the new one does not.
    dispatch.clock.set(bj(2026, 11, 24, 10, 30))
    await dispatch.settle()
    assert dispatch.emitted(ev.CaseOverdue, case_id=cid, stage="handling") == []
    dispatch.clock.set(proposed)
    await dispatch.settle()
    [late] = await dispatch.wait(ev.CaseOverdue, case_id=cid, stage="handling")
    assert at(late.data["deadline"]) == proposed


async def test_a_community_level_unit_gets_no_more_than_five_working_days(
    dispatch: Harness,
) -> None:
    cid = case_id(11)
    await dispatch.accept(cid, "E0504")  # street-001, dispatched Mon 10:00
    d = await dispatch.dispatched(cid)
    await ask_extension(dispatch, d, "X-CAP", bj(2026, 12, 1, 10), "需多部门会商")
    r = await dispatch.call("POST", "/extensions/X-CAP/decision", json={"granted": True})
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "beyond-limit"
    ok = {"granted": True, "new_deadline": bj(2026, 11, 30, 10).isoformat()}
    r = await dispatch.call("POST", "/extensions/X-CAP/decision", json=ok)
    assert r.status_code == 200, r.text


async def test_a_failed_verification_goes_back_to_the_same_department(dispatch: Harness) -> None:
    cid = case_id(12)
    await dispatch.accept(cid, "E0102")
    d = await dispatch.dispatched(cid)
    await dispatch.upstream(dispatch.department_event(ev.CaseSigned, d), "handling")
    dispatch.clock.set(bj(2026, 11, 23, 11))
    await dispatch.upstream(
        dispatch.department_event(
            ev.CaseHandled, d, result="已清运", completed_at=dispatch.clock.now()
        ),
        "handling",
    )

    async def handled() -> bool:
        state: str = (await dispatch.case(cid))["state"]
        return state == "handled"

    await wait_for(handled, what="the task handled")
    assert (await dispatch.case(cid))["pending_timers"] == []

    dispatch.clock.set(bj(2026, 11, 23, 13))
    await dispatch.upstream(
        dispatch.department_event(ev.CaseReworked, d, count=1, reason="仍有垃圾残留"), "verify"
    )
    again = await dispatch.dispatched(cid, 2)
    assert (again["kind"], again["dept"], again["task_id"]) == (
        "rework",
        "sanitation",
        d["task_id"],
    )
    # One working day from Mon 13:00: 4.5 h that afternoon, 3 h on Tuesday → Tue 12:00.
    assert at(again["deadline"]) == bj(2026, 11, 24, 12)
    # The department signs for the rework round again: two working hours, from 13:30.
    assert at(again["sign_in_due"]) == bj(2026, 11, 23, 15, 30)
    [rework] = await dispatch.wait_feed("sanitation", "rework", cid)
    assert rework.data["count"] == 1 and rework.data["reason"] == "仍有垃圾残留"

    dispatch.clock.set(bj(2026, 11, 24, 12))
    await dispatch.settle()
    [late] = await dispatch.wait(ev.CaseOverdue, case_id=cid, stage="handling")
    assert at(late.data["deadline"]) == bj(2026, 11, 24, 12)
    # Signed before the rework, not after it: the rework round's sign-in is chased too.
    [unsigned] = dispatch.emitted(ev.CaseOverdue, case_id=cid, stage="sign_in")
    assert at(unsigned.data["deadline"]) == bj(2026, 11, 23, 15, 30)


async def test_a_signature_held_a_moment_counts_before_the_sign_in_deadline_is_judged(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dispatch holds a case.signed a moment (CONSUMER_PATIENT_LINGER_S, ten seconds here)
    to take it with others; a timer round past the sign-in deadline first waits for what is
    held, so a department that signed a minute early is not told it did not sign."""
    async with started(database_url, nats_url, monkeypatch, consumer_patient_linger_s=10) as h:
        cid = case_id(41)
        await h.accept(cid, "E0102")
        d = await h.dispatched(cid)
        assert at(d["sign_in_due"]) == bj(2026, 11, 23, 12)
        h.clock.set(bj(2026, 11, 23, 11, 59))
        await h.upstream(h.department_event(ev.CaseSigned, d), "handling")
        await wait_for(lambda: holding(h.rt.consumers[0]), what="the signature held")
        h.clock.set(bj(2026, 11, 23, 12, 1))
        await h.settle()
        assert h.emitted(ev.CaseOverdue, case_id=cid, stage="sign_in") == []
        assert h.feed("sanitation", "overdue", cid) == []
        [task] = (await h.case(cid))["tasks"]
        assert task["signed_at"] is not None and not task["sign_in_overdue"]


async def test_an_answer_in_time_that_comes_after_the_judgement_withdraws_it(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handling took the signature, and later the result, before their deadlines, but they
    reached dispatch only after it had judged the deadlines passed (handling's outbox held
    them): each judgement is withdrawn on the bus, to the department, and in dispatch's view,
    with the 督办 the overdue brought."""
    async with started(database_url, nats_url, monkeypatch) as h:
        cid = case_id(44)
        await h.accept(cid, "E0102")
        d = await h.dispatched(cid)
        due = bj(2026, 11, 23, 12)
        h.clock.set(due)
        await h.settle()
        await h.wait(ev.CaseOverdue, case_id=cid, stage="sign_in")
        signed = h.department_event(ev.CaseSigned, d, sign_in_due=due, on_time=True).model_copy(
            update={"occurred_at": due - timedelta(seconds=3)}
        )
        await h.upstream(signed, "handling")
        [w] = await h.wait(ev.CaseOverdueWithdrawn, case_id=cid, stage="sign_in")
        assert at(w.data["answered_at"]) == due - timedelta(seconds=3)
        [notice] = await h.wait_feed("sanitation", "overdue_withdrawn", cid)
        assert notice.data["stage"] == "sign_in"
        [task] = (await h.case(cid))["tasks"]
        assert task["signed_at"] is not None and not task["sign_in_overdue"]

        deadline = at(d["deadline"])
        h.clock.set(deadline)
        await h.settle()
        await h.wait(ev.CaseEscalated, case_id=cid, level=1)
        await h.upstream(h.handled_in_time(d, deadline - timedelta(minutes=1)), "handling")
        [w] = await h.wait(ev.CaseOverdueWithdrawn, case_id=cid, stage="handling")
        assert w.data["escalation_levels"] == [1] and at(w.data["overdue_at"]) == deadline
        await h.wait_feed("sanitation", "overdue_withdrawn", cid, n=2)
        [task] = (await h.case(cid))["tasks"]
        assert (task["overdue"], task["escalation_level"]) == (False, 0)


async def test_an_overdue_an_extension_replaced_is_withdrawn_by_a_result_taken_in_time(
    dispatch: Harness,
) -> None:
    """The deadline passed and was judged, with its 督办, and a dispatcher then granted the
    department's pending extension; the result handling took before the deadline came after
    both. The overdue of the deadline it met is withdrawn (kept aside in the task's row
    across the extension), its 督办 with it; the extension stands."""
    h = dispatch
    cid = case_id(45)
    await h.accept(cid, "E0102")
    d = await h.dispatched(cid)
    deadline = at(d["deadline"])
    await ask_extension(h, d, "X-45", bj(2026, 11, 25, 18))
    h.clock.set(deadline)
    await h.settle()
    await h.wait(ev.CaseEscalated, case_id=cid, level=1)
    h.clock.set(deadline + timedelta(minutes=20))
    r = await h.call("POST", "/extensions/X-45/decision", json={"granted": True})
    assert r.status_code == 200, r.text
    await h.wait(ev.CaseExtensionDecided, case_id=cid, granted=True)
    await h.upstream(h.handled_in_time(d, deadline - timedelta(minutes=1)), "handling")
    [w] = await h.wait(ev.CaseOverdueWithdrawn, case_id=cid, stage="handling")
    assert w.data["escalation_levels"] == [1]
    assert at(w.data["deadline"]) == deadline and at(w.data["overdue_at"]) == deadline
    await h.wait_feed("sanitation", "overdue_withdrawn", cid)
    [task] = (await h.case(cid))["tasks"]
    assert (task["overdue"], task["escalation_level"]) == (False, 0)
    assert at(task["deadline"]) == bj(2026, 11, 25, 18)


# -- the command centre: split, recall, redispatch, 挂牌督办 --------------------------------
async def test_a_case_is_split_into_tasks_and_a_part_is_recalled(dispatch: Harness) -> None:
    cid = case_id(13)
    await dispatch.accept(cid, "E0101")
    first = await dispatch.dispatched(cid)

    parts = [{"dept": "sanitation", "note": "清运垃圾"}, {"dept": "housing", "note": "拆除违建"}]
    r = await dispatch.call("POST", f"/cases/{cid}/split", json={"tasks": parts[:1], "reason": "x"})
    assert r.status_code == 422
    dup = {"tasks": [parts[0], parts[0]], "reason": "分别处置"}
    r = await dispatch.call("POST", f"/cases/{cid}/split", json=dup)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "tasks.1.dept"
    late = {"dept": "street-001", "deadline": bj(2026, 12, 1, 10).isoformat()}
    over_cap = {"tasks": [parts[0], late], "reason": "分别处置"}
    r = await dispatch.call("POST", f"/cases/{cid}/split", json=over_cap)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "tasks.1.deadline"
    r = await dispatch.call(
        "POST", f"/cases/{cid}/split", json={"tasks": parts, "reason": "分别处置"}
    )
    assert r.status_code == 200, r.text

    [recalled] = await dispatch.wait(ev.CaseRecalled, case_id=cid)
    assert recalled.data["task_id"] == first["task_id"]
    await dispatch.wait_feed("urban-mgmt", "recalled", cid)
    await dispatch.wait_feed("housing", "recalled", cid)  # it was co-handling the first task
    split = await dispatch.wait(ev.CaseDispatched, 2, case_id=cid, kind="split")
    assert sorted(s.data["dept"] for s in split) == ["housing", "sanitation"]
    [to_sanitation] = await dispatch.wait_feed("sanitation", "assigned", cid)
    assert "清运垃圾" in to_sanitation.data["case"]["what_to_do"]

    housing_task = next(s.data["task_id"] for s in split if s.data["dept"] == "housing")
    body = {"reason": "违建另案处理", "task_id": housing_task}
    r = await dispatch.call("POST", f"/cases/{cid}/recall", json=body)
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["queued"] and case["state"] == "dispatched"  # the sanitation part goes on
    assert {t["dept"]: t["status"] for t in case["tasks"][1:]} == {
        "sanitation": "open",
        "housing": "recalled",
    }
    await dispatch.wait(ev.CaseRecalled, 2, case_id=cid)
    r = await dispatch.call("POST", f"/cases/{cid}/recall", json=body)
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "task-ended"
    # Recalling the last part leaves the case with the dispatchers, not with nobody.
    r = await dispatch.call("POST", f"/cases/{cid}/recall", json={"reason": "统一改派"})
    assert r.status_code == 200 and r.json()["state"] == "queued"
    await dispatch.wait_feed("sanitation", "recalled", cid)
    r = await dispatch.call("POST", f"/cases/{cid}/recall", json={"reason": "统一改派"})
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "nothing-active"
    assert (await dispatch.case(cid))["pending_timers"] == []


async def test_a_result_that_crossed_the_recall_takes_the_case_out_of_the_queue(
    dispatch: Harness,
) -> None:
    """The department reported its result while the dispatcher recalled the task (handling
    took it before it heard of the recall): case.unqueued, the queue no longer lists the case,
    the task is handled, and the department hears that its result stands."""
    cid = case_id(43)
    await dispatch.accept(cid, "E0102")
    d = await dispatch.dispatched(cid)
    result = dispatch.department_event(
        ev.CaseHandled, d, result="已清运", completed_at=dispatch.clock.now()
    )
    dispatch.clock.set(bj(2026, 11, 23, 10, 30))
    r = await dispatch.call("POST", f"/cases/{cid}/recall", json={"reason": "统一改派"})
    assert r.status_code == 200 and r.json()["state"] == "queued"
    queue = await dispatch.call("GET", "/queue")
    assert cid in [c["case_id"] for c in queue.json()]

    await dispatch.upstream(result, "handling")
    [out] = await dispatch.wait(ev.CaseUnqueued, case_id=cid)
    assert (out.data["task_id"], out.data["reason_code"]) == (d["task_id"], "recall-overtaken")
    # the department heard `recalled` after its result; it hears now that the result stands
    await dispatch.wait_feed("sanitation", "recalled", cid)
    [stands] = await dispatch.wait_feed("sanitation", "recall_overtaken", cid)
    assert stands.data["case"]["task_id"] == d["task_id"]
    case = await dispatch.case(cid)
    assert (case["state"], case["queued"]) == ("handled", False)
    assert [t["status"] for t in case["tasks"]] == ["handled"]
    assert cid not in [c["case_id"] for c in (await dispatch.call("GET", "/queue")).json()]


async def test_a_dispatcher_redispatches_to_another_unit(dispatch: Harness) -> None:
    cid = case_id(14)
    await dispatch.accept(cid, "E0102")
    first = await dispatch.dispatched(cid)
    r = await dispatch.call("POST", f"/cases/{cid}/redispatch", json={"dept": "urban-mgmt"})
    assert r.status_code == 422
    body = {"dept": "urban-mgmt", "reason": "涉及占道经营", "co_handlers": ["sanitation"]}
    r = await dispatch.call("POST", f"/cases/{cid}/redispatch", json=body)
    assert r.status_code == 200, r.text
    [recalled] = await dispatch.wait(ev.CaseRecalled, case_id=cid)
    assert recalled.data["task_id"] == first["task_id"]
    second = await dispatch.dispatched(cid, 2)
    assert (second["dept"], second["kind"], second["co_handlers"]) == (
        "urban-mgmt",
        "redispatch",
        ["sanitation"],
    )
    await dispatch.wait_feed("sanitation", "recalled", cid)
    before, now = await dispatch.wait_feed("sanitation", "assigned", cid, 2)
    assert before.data["case"]["role"] == "sole"
    assert now.data["case"]["role"] == "co-handler" and "lead" not in now.data["case"]


async def test_listed_supervision(dispatch: Harness) -> None:
    cid = case_id(15)
    await dispatch.accept(cid, "E0102")
    await dispatch.dispatched(cid)
    r = await dispatch.call("POST", f"/cases/{cid}/supervision", json={"reason": "群众反映强烈"})
    assert r.status_code == 200 and r.json()["supervised"] is True
    [sup] = await dispatch.wait(ev.CaseSupervised, case_id=cid)
    assert sup.data["reason"] == "群众反映强烈" and sup.data["dept"] == "sanitation"
    [notice] = await dispatch.wait_feed("sanitation", "escalated", cid)
    assert notice.data["to_role"] == "listed-supervision"
    r = await dispatch.call("POST", f"/cases/{cid}/supervision", json={"reason": "again"})
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "already-supervised"
    r = await dispatch.call("GET", "/board", view="supervised")
    assert [c["case_id"] for c in r.json()] == [cid]
    r = await dispatch.call("GET", "/board", "sanitation-ops")
    assert r.status_code == 403


# -- timers -------------------------------------------------------------------------------
def chase_counts(h: Harness, cid: str) -> dict[str, int]:
    """How many of each chase event dispatch published for a case."""
    out = {
        "sign_in": len(h.emitted(ev.CaseOverdue, case_id=cid, stage="sign_in")),
        "reminded": len(h.emitted(ev.CaseReminded, case_id=cid)),
        "overdue": len(h.emitted(ev.CaseOverdue, case_id=cid, stage="handling")),
    }
    for level in (1, 2, 3, 4):
        out[f"escalated:{level}"] = len(h.emitted(ev.CaseEscalated, case_id=cid, level=level))
    return out


ONCE_EACH = {
    "sign_in": 1,
    "reminded": 1,
    "overdue": 1,
    "escalated:1": 1,
    "escalated:2": 1,
    "escalated:3": 1,
    "escalated:4": 1,
}


async def test_reminder_overdue_and_each_escalation_fire_exactly_once(dispatch: Harness) -> None:
    cid, closed = case_id(16), case_id(17)
    await dispatch.accept(cid, "E0102")
    await dispatch.accept(closed, "E0102")
    d = await dispatch.dispatched(cid)
    await dispatch.dispatched(closed)
    await dispatch.upstream(
        ev.CaseClosed(case_id=closed, occurred_at=T0, closed_by="sup-001", on_time=True), "verify"
    )

    async def closed_here() -> bool:
        state: str = (await dispatch.case(closed))["state"]
        return state == "closed"

    await wait_for(closed_here, what="the closed case")
    assert (await dispatch.case(closed))["pending_timers"] == []

    # (when, what falls due then): overdue and the first rung share the deadline.
    steps: list[tuple[datetime, list[tuple[str, type[ev.CaseEvent], dict[str, Any]]]]] = [
        (bj(2026, 11, 23, 12), [("sign_in", ev.CaseOverdue, {"stage": "sign_in"})]),
        (bj(2026, 11, 23, 17, 7, 30), [("reminded", ev.CaseReminded, {})]),
        (
            bj(2026, 11, 24, 10),
            [
                ("overdue", ev.CaseOverdue, {"stage": "handling"}),
                ("escalated:1", ev.CaseEscalated, {"level": 1}),
            ],
        ),
        (bj(2026, 11, 24, 15, 15), [("escalated:2", ev.CaseEscalated, {"level": 2})]),
        (bj(2026, 11, 25, 10), [("escalated:3", ev.CaseEscalated, {"level": 3})]),
        (bj(2026, 11, 27, 10), [("escalated:4", ev.CaseEscalated, {"level": 4})]),
    ]
    for when, due in steps:
        dispatch.clock.set(when - timedelta(seconds=1))
        await dispatch.settle()
        for name, _, _ in due:
            assert chase_counts(dispatch, cid)[name] == 0, f"{name} before its time"
        dispatch.clock.set(when)
        await dispatch.settle()
        for _, model, data in due:
            [fired] = await dispatch.wait(model, case_id=cid, **data)
            assert fired.data["task_id"] == d["task_id"]

    esc = dispatch.emitted(ev.CaseEscalated, case_id=cid)
    assert [(e.data["to_role"], e.data["to_user_ids"]) for e in esc] == [
        ("dispatcher", []),
        ("grid-head", ["gh-0010010001"]),  # the grid head of the case's cell
        ("subdistrict-leader", []),
        ("efficiency-office", []),
    ]
    assert at(esc[3].data["occurred_at"]) == bj(2026, 11, 27, 10)
    assert [m.data["stage"] for m in dispatch.feed("sanitation", "overdue", cid)] == [
        "sign_in",
        "handling",
    ]
    assert len(dispatch.feed("sanitation", "reminder", cid)) == 1
    assert [m.data["level"] for m in dispatch.feed("sanitation", "escalated", cid)] == [1, 2, 3, 4]

    dispatch.clock.set(bj(2027, 1, 31, 10))
    await dispatch.settle()
    await dispatch.settle()
    assert chase_counts(dispatch, cid) == ONCE_EACH
    assert set(chase_counts(dispatch, closed).values()) == {0}
    r = await dispatch.call("GET", "/board", EVALUATOR)
    [row] = r.json()
    assert (row["case_id"], row["escalation_level"], row["overdue"]) == (cid, 4, True)


async def test_an_emergency_is_escalated_at_once_and_chased_on_the_clock(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    night = FakeClock(bj(2026, 11, 28, 23))  # Saturday 23:00
    async with started(database_url, nats_url, monkeypatch, clock=night) as h:
        cid = case_id(18)
        await h.accept(cid, "E0401", urgency="normal")
        d = await h.dispatched(cid)
        assert (d["dept"], d["co_handlers"]) == ("gas", ["fire", "emergency"])
        assert at(d["deadline"]) == bj(2026, 11, 29, 1)  # 2 clock hours
        [esc] = await h.wait(ev.CaseEscalated, case_id=cid)
        assert (esc.data["level"], esc.data["to_role"]) == (3, "subdistrict-leader")
        for dept in ("gas", "fire", "emergency"):
            await h.wait_feed(dept, "escalated", cid)

        night.set(bj(2026, 11, 29, 0, 30))  # 75% of two clock hours
        await h.settle()
        await h.wait(ev.CaseReminded, case_id=cid)
        night.set(bj(2026, 11, 29, 1))
        await h.settle()
        await h.wait(ev.CaseOverdue, case_id=cid, stage="handling")
        night.set(bj(2026, 12, 2, 1) - timedelta(seconds=1))
        await h.settle()
        assert len(h.emitted(ev.CaseEscalated, case_id=cid)) == 1
        night.set(bj(2026, 12, 2, 1))  # level 4: three days on the clock, over a weekend
        await h.settle()
        await h.wait(ev.CaseEscalated, case_id=cid, level=4)
        await h.settle()
        assert [e.data["level"] for e in h.emitted(ev.CaseEscalated, case_id=cid)] == [3, 4]


async def test_timers_that_fell_due_while_dispatch_was_down_fire_once_on_restart(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(T0)
    cid = case_id(19)
    async with started(database_url, nats_url, monkeypatch, clock=clock) as h:
        await h.accept(cid, "E0102")
        await h.dispatched(cid)
        seen = h.seen
    # Down for ten days: everything falls due meanwhile.
    clock.set(bj(2026, 12, 3, 10))
    async with started(database_url, nats_url, monkeypatch, clock=clock) as h:
        h.tap.seen = [*seen]  # the tap is new; keep what the first run saw

        async def all_fired() -> bool:
            await h.poll()
            return chase_counts(h, cid) == ONCE_EACH

        await wait_for(all_fired, timeout=15, what="every chase event after the restart")
        await h.settle()
        assert chase_counts(h, cid) == ONCE_EACH
        assert (await h.case(cid))["pending_timers"] == []


async def test_two_dispatch_instances_fire_each_timer_once(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with started(database_url, nats_url, monkeypatch, instances=2) as h:
        ids = [case_id(100 + n) for n in range(12)]
        for cid in ids:
            await h.accept(cid, "E0102")
        for cid in ids:
            await h.dispatched(cid)
        h.clock.set(bj(2026, 12, 3, 10))

        async def all_fired() -> bool:
            await h.poll()
            return all(chase_counts(h, cid) == ONCE_EACH for cid in ids)

        await wait_for(all_fired, timeout=20, what="every chase event of every case")
        await asyncio.gather(*(rt.timer_runner.fire_due() for rt in h.rts if rt.timer_runner))
        await h.settle()
        for cid in ids:
            assert chase_counts(h, cid) == ONCE_EACH, cid
            assert len(h.emitted(ev.CaseDispatched, case_id=cid)) == 1
        assert len({e.id for _, e in h.seen}) == len(h.seen)


async def test_a_redelivered_acceptance_dispatches_once(dispatch: Harness) -> None:
    cid = case_id(20)
    env = await dispatch.accept(cid, "E0102")
    headers, body = to_binary(env)
    await dispatch.js.publish("case.accepted", body, headers={**headers, "Nats-Msg-Id": "other"})
    await dispatch.accept(cid, "E0102")  # a second acceptance of the same case
    await dispatch.dispatched(cid)
    marker = case_id(21)
    await dispatch.accept(marker, "E0102")
    await dispatch.dispatched(marker)
    await dispatch.settle()
    assert len(dispatch.emitted(ev.CaseDispatched, case_id=cid)) == 1
    assert len(dispatch.feed("sanitation", "assigned", cid)) == 1


async def test_ladder_rows_of_the_previous_version_fire_once_each(dispatch: Harness) -> None:
    """A database written by the version that kept one timer row per chase step: its pending
    rows still fire, each step once, at its time."""
    cid = case_id(22)
    await dispatch.accept(cid, "E0102")
    await dispatch.dispatched(cid)
    assert dispatch.rt.pool is not None
    rules = dispatch.rt.state.rules
    async with dispatch.rt.pool.acquire() as conn:
        [task] = await repo.tasks_of_case(conn, cid)
        # as the previous version left it: the whole ladder as rows, no chase row
        await conn.execute("DELETE FROM timers WHERE key = $1", task.timer_key())
        await conn.executemany(
            "INSERT INTO timers (kind, key, due_at, payload) VALUES ($1, $2, $3, $4)",
            [(p.kind, p.key, p.due, p.payload) for p in chasing.plan(task, rules.deadlines, False)],
        )
    dispatch.clock.set(bj(2026, 11, 23, 12) - timedelta(seconds=1))
    await dispatch.settle()
    assert chase_counts(dispatch, cid)["sign_in"] == 0
    dispatch.clock.set(bj(2026, 11, 23, 12))
    await dispatch.settle()
    await dispatch.wait(ev.CaseOverdue, case_id=cid, stage="sign_in")
    dispatch.clock.set(bj(2026, 12, 3, 10))
    await dispatch.settle()
    await dispatch.settle()
    assert chase_counts(dispatch, cid) == ONCE_EACH
    assert (await dispatch.case(cid))["pending_timers"] == []
    async with dispatch.rt.pool.acquire() as conn:
        left = await conn.fetchval(
            "SELECT count(*) FROM timers WHERE key LIKE $1 || '%' AND fired_at IS NULL "
            "AND cancelled_at IS NULL",
            cid,
        )
    assert left == 0


# -- live reload of the city (city.updated) --------------------------------------------------
def routed_elsewhere(src: Path, dst: Path, dept: str) -> Path:
    """A copy of the demo city whose cityscape events (E01*) go to `dept`."""
    shutil.copytree(src, dst)
    routing = yaml.safe_load((dst / "routing.yaml").read_text(encoding="utf-8"))
    for rule in routing["rules"]:
        if rule["category"] == "E01*" and rule["territory"] == "*":
            rule["dept"] = dept
    (dst / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True), "utf-8")
    return dst


async def test_a_new_version_of_the_city_routes_new_cases_live_and_a_bad_one_is_refused(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Routing changes mid-run without a restart: the case in flight keeps its unit, the next
    case follows the new rule; a version that fails validation is refused and the one in force
    stays."""
    root = tmp_path / "versions"
    release(DEMO_CITY, root, "v1")
    async with started(
        database_url, nats_url, monkeypatch, city_versions_dir=str(root)
    ) as dispatch:
        rules = dispatch.rts[0].state.rules
        await dispatch.accept(case_id(31), "E0102")
        before = await dispatch.dispatched(case_id(31))
        assert before["dept"] == "sanitation"

        v2 = routed_elsewhere(DEMO_CITY, tmp_path / "v2", "urban-mgmt")
        nc = await nats.connect(nats_url)
        try:
            await announce(nc, "v2", release(v2, root, "v2"))

            def swapped() -> bool:
                route = rules.city.route("E0102", CELL)
                return route is not None and route.dept == "urban-mgmt"

            await wait_for(swapped, what="dispatch on city version v2")
            await dispatch.accept(case_id(32), "E0102")
            after = await dispatch.dispatched(case_id(32))
            assert after["dept"] == "urban-mgmt"
            # the case in flight keeps the unit and deadline it was dispatched with
            first = await dispatch.case(case_id(31))
            assert [(t["dept"], at(t["deadline"])) for t in first["tasks"]] == [
                ("sanitation", at(before["deadline"]))
            ]
            assert len(dispatch.emitted(ev.CaseDispatched, case_id=case_id(31))) == 1

            def refusals() -> float:
                labels = {"service": "dispatch", "outcome": "refused"}
                return REGISTRY.get_sample_value("gridloop_city_reloads_total", labels) or 0.0

            refused_before = refusals()
            # v3 names a department that does not exist: put in place by hand, past the
            # tool's validation, it is refused when announced, and v2 stays
            v3 = routed_elsewhere(DEMO_CITY, root / "v3", "no-such-dept")
            await announce(nc, "v3", digest(v3))
            # v2's files under another digest than they have: refused too
            shutil.copytree(v2, root / "v2b")
            await announce(nc, "v2b", "sha256:" + "0" * 64)
            await wait_for(
                lambda: refusals() >= refused_before + 2, what="the two bad versions refused"
            )
            assert rules.city.route("E0102", CELL).dept == "urban-mgmt"
        finally:
            await nc.close()
        await dispatch.accept(case_id(33), "E0102")
        assert (await dispatch.dispatched(case_id(33)))["dept"] == "urban-mgmt"


# -- the working calendar's horizon (gridloop_runtime.calendarwatch) -------------------------
def calendar_entered(src: Path, dst: Path, through: str) -> Path:
    """A copy of the demo city that says it entered the next year's arrangement itself."""
    shutil.copytree(src, dst)
    cal = yaml.safe_load((dst / "calendar.yaml").read_text(encoding="utf-8"))
    cal["known_through"] = through
    (dst / "calendar.yaml").write_text(yaml.safe_dump(cal, allow_unicode=True), "utf-8")
    return dst


async def test_the_calendars_days_left_are_exported_and_the_alarm_clears_when_entered(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On 2 December 2026 the official calendar (chinese_calendar) ends 29 days ahead: below
    the 90-day alarm, on /metrics and on the admin endpoint; once a version entering 2027 is
    live, the same process says 394 days and the alarm is off."""
    root = tmp_path / "versions"
    release(DEMO_CITY, root, "v1")
    december = FakeClock(bj(2026, 12, 2, 10))
    async with started(
        database_url, nats_url, monkeypatch, clock=december, city_versions_dir=str(root)
    ) as dispatch:

        async def exported() -> str | None:
            text = (await dispatch.call("GET", "/metrics", None)).text
            return text if 'gridloop_calendar_days_left{service="dispatch"}' in text else None

        metrics = await wait_for(exported, what="the calendar gauge on /metrics")
        assert 'gridloop_calendar_days_left{service="dispatch"} 29.0' in metrics
        assert 'gridloop_calendar_alarm{service="dispatch"} 1.0' in metrics
        r = await dispatch.call("GET", "/admin/calendar", "admin")
        assert r.status_code == 200, r.text
        status = r.json()
        assert (status["last_known"], status["days_left"], status["alarm"]) == (
            "2026-12-31",
            29,
            True,
        )
        assert "2027 arrangement" in status["message"]
        assert (await dispatch.call("GET", "/admin/calendar", DISPATCHER)).status_code == 403

        v2 = calendar_entered(DEMO_CITY, tmp_path / "v2", "2027-12-31")
        nc = await nats.connect(nats_url)
        try:
            await announce(nc, "v2", release(v2, root, "v2"))
        finally:
            await nc.close()

        async def entered() -> dict[str, Any] | None:
            body: dict[str, Any] = (await dispatch.call("GET", "/admin/calendar", "admin")).json()
            return body if body["days_left"] > 29 else None

        after = await wait_for(entered, what="the calendar of version v2")
        assert (after["last_known"], after["days_left"], after["alarm"]) == (
            "2027-12-31",
            394,
            False,
        )
        assert REGISTRY.get_sample_value("gridloop_calendar_alarm", {"service": "dispatch"}) == 0


async def test_a_deadline_counted_into_a_year_not_yet_entered_is_provisional(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dispatched on the last afternoon of 2026, a deadline that runs into 2027 follows the
    statutory rule (元旦 off) and says it is provisional; one inside 2026 does not."""
    new_years_eve = FakeClock(bj(2026, 12, 31, 17, 30))
    async with started(database_url, nats_url, monkeypatch, clock=new_years_eve) as dispatch:
        await dispatch.accept(case_id(41), "E0102")
        late = await dispatch.dispatched(case_id(41))
        assert at(late["deadline"]) >= bj(2027, 1, 4, 9)  # Friday 1 January is 元旦
        [task] = (await dispatch.case(case_id(41)))["tasks"]
        assert task["deadline_provisional"] is True

        dispatch.clock.set(bj(2026, 12, 28, 9))
        await dispatch.accept(case_id(42), "E0102")
        early = await dispatch.dispatched(case_id(42))
        assert at(early["deadline"]) < bj(2027, 1, 1)
        [task] = (await dispatch.case(case_id(42)))["tasks"]
        assert task["deadline_provisional"] is False
