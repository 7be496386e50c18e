"""The whole loop with all five services as separate processes on a real NATS and PostgreSQL:
reports from every channel travel to closed and scored, with simulated departments (the
integration kit) and supervisors, including a return, an extension, a rework and an overdue
escalation.

It runs in the production shape: two replicas of every service sharing their durable
consumers, timers and outboxes, and every HTTP call goes to the next replica in turn, so a
case's commands land on both processes of a service."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from gridloop_city import City, load_city
from gridloop_contracts.inbound import DetectionV1, ReportV1
from gridloop_devkit.launcher import SERVICES, Stack
from gridloop_devkit.testing import load_module, wait_for
from gridloop_runtime.bus import read_stored

from .conftest import move_clock
from .loop import (
    ROOT,
    Loop,
    centre,
    city_today,
    now,
    open_loop,
    patrol_report,
    trusted_supervisor_cell,
    trusted_supervisor_cells,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
REPLICAS = 2


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def loop(stack: Stack, city: City) -> AsyncIterator[Loop]:
    async with open_loop(stack, city) as lp:
        yield lp


async def test_patrol_report_runs_the_whole_loop_to_closed_and_scored(loop: Loop) -> None:
    # scoring's days are the city's (Beijing) days; the case may cross midnight while it runs
    first_day = city_today(loop.city)
    ext, case_id = await patrol_report(loop, "patrol", "人行道暴露垃圾")
    # auto-accepted (trusted supervisor) → dispatched → the sanitation kit signs and handles
    await loop.wait_status(case_id, "handled", "verifying")
    await loop.verify(case_id, passed=True)
    await loop.wait_status(case_id, "closed")
    kinds = await loop.timeline(case_id)
    for step in ("reported", "accepted", "dispatched", "signed", "handled", "verified", "closed"):
        assert step in kinds, (step, kinds)
    await loop.told(ext, "closed")

    async def in_the_department_day(measure: str) -> bool:
        for day in sorted({first_day, city_today(loop.city)}):
            rows = await loop.get(
                "scoring",
                "/drilldown",
                "eval-01",
                subject_kind="department",
                subject="sanitation",
                measure=measure,
                period="day",
                date=day,
            )
            if case_id in json.dumps(rows["parts"]):
                return True
        return False

    await wait_for(
        lambda: in_the_department_day("handled"),
        timeout=30,
        what="the closed case in the department's scores",
    )

    # the reporter's rating (回访) reaches scoring as the department's satisfaction
    await loop.post(
        "intake", f"/cases/{case_id}/rating", {"rating": "satisfied", "comment": "很及时"}, "op-01"
    )
    await wait_for(
        lambda: in_the_department_day("satisfied"),
        timeout=30,
        what="the rating in the department's satisfaction",
    )


async def test_the_bench_supervisors_pass_a_verification_on_its_notice(loop: Loop) -> None:
    """`make bench`'s simulated supervisors (bench/actors.py), on both replicas of verify:
    told of the task by its notice, they pass it with one verdict and the case closes."""
    # by its path, as the department kit: the bench is not a package the tests install
    supervisors = load_module(ROOT / "bench" / "actors.py", "bench_actors").supervisors

    # before the module moves the clock (the kits' results would then predate their tasks);
    # a cell of its own: a report beside an open case there would be merged into it
    supervisor, cell = trusted_supervisor_cells(loop.city)[-1]
    assert cell != trusted_supervisor_cell(loop.city)[1]
    ext = f"bench-supervisors-{uuid.uuid4().hex[:8]}"
    report = ReportV1(
        external_id=ext,
        description="人行道暴露垃圾",
        reported_at=now(),
        location=centre(loop.city, cell),
        category_code="E0104",
        reporter_user_id=supervisor,
    )
    stop = asyncio.Event()
    counter = {"verified": 0}
    urls = ",".join(loop.stack.urls("verify"))
    working = asyncio.create_task(supervisors(urls, stop, counter, loop.nc))
    try:
        await loop.publish("intake.patrol.patrol-app", report)
        case_id = await loop.case_of(ext)
        await loop.wait_status(case_id, "closed")
    finally:
        stop.set()
        await asyncio.wait_for(working, 15)
    assert counter["verified"] >= 1, counter
    assert not [k for k in counter if k.endswith("errors")], counter
    assert "verified" in await loop.timeline(case_id)


async def test_hotline_report_is_confirmed_on_site_then_closed(loop: Loop) -> None:
    addr = next(iter(loop.city.addresses.values()))
    ext = f"12345-{uuid.uuid4().hex[:8]}"
    report = ReportV1(
        external_id=ext,
        description="门前乱堆物料",
        reported_at=now(),
        address=addr.address,
        category_code="E0106",
        reporter={"name": "张三", "phone": "13812345678"},
    )
    await loop.publish("intake.hotline.12345", report, structured=True)
    case_id = await loop.case_of(ext)
    await loop.wait_status(case_id, "pending_confirmation")
    await loop.confirm(case_id)
    await loop.wait_status(case_id, "handled", "verifying")
    # the first result fails verification: rework goes back to the same department
    await loop.verify(case_id, passed=False)
    await loop.wait_status(case_id, "reworking", "dispatched", "signed", "handled", "verifying")

    async def verified_again() -> bool:
        for t in await loop.get("verify", "/tasks", "admin", status="open", purpose="verification"):
            if t["case_id"] == case_id:
                return True
        return False

    await wait_for(verified_again, timeout=45, what="a second verification task after rework")
    await loop.verify(case_id, passed=True)
    await loop.wait_status(case_id, "closed")
    kinds = await loop.timeline(case_id)
    assert "confirmation_requested" in kinds and "confirmed" in kinds and "reworked" in kinds
    # the hotline heard every step, with the reporter masked everywhere outside intake
    await loop.told(ext, "closed")
    case = await loop.get("dispatch", f"/cases/{case_id}", "disp-01")
    assert "13812345678" not in json.dumps(case)


async def test_open311_request_accepted_by_an_operator_and_extended(loop: Loop) -> None:
    cell = next(
        c
        for c in sorted(loop.city.cells)
        if loop.city.cells[c].entry_list is None and c.endswith("0021")
    )
    where = centre(loop.city, cell)
    form = {
        "api_key": "demo-open311-key",
        "service_code": "E0302",
        "lat": str(where["lat"]),
        "long": str(where["lon"]),
        "description": "施工围挡占用人行道",
    }
    r = await loop.http.post(loop.url("intake", "/open311/v2/requests.json"), data=form)
    assert r.status_code in (200, 201), r.text
    case_id = r.json()[0]["service_request_id"]
    await loop.wait_status(case_id, "pending_acceptance")
    await loop.post("intake", f"/cases/{case_id}/accept", {}, "op-01")

    # the housing kit signs and asks for one more day; the dispatcher grants it
    async def request() -> dict[str, Any] | None:
        pending = await loop.get("dispatch", "/extensions", "disp-01", case_id=case_id)
        return pending[0] if pending else None

    ext = await wait_for(request, timeout=45, what="the extension request")
    await loop.post(
        "dispatch", f"/extensions/{ext['request_id']}/decision", {"granted": True}, "disp-01"
    )

    async def moved() -> bool:
        case = await loop.get("intake", f"/cases/{case_id}", "op-01")
        return (
            "extension_decided" in await loop.timeline(case_id) and case.get("deadline") is not None
        )

    await wait_for(moved, timeout=30, what="the granted extension in the case file")
    r = await loop.http.get(loop.url("intake", f"/open311/v2/requests/{case_id}.xml"))
    assert r.status_code == 200 and f"<service_request_id>{case_id}</service_request_id>" in r.text


async def test_video_detection_returned_by_the_wrong_unit_is_rerouted(loop: Loop) -> None:
    cam = loop.city.cameras["cam-0002"]
    ext = f"cam-{uuid.uuid4().hex[:8]}"
    det = DetectionV1(
        external_id=ext,
        camera_id=cam.camera_id,
        category_code="E0503",
        confidence=0.95,
        detected_at=now(),
    )
    await loop.publish("intake.video.video-ai", det)
    case_id = await loop.case_of(ext)

    async def rerouted() -> bool:
        r = await loop.http.get(
            loop.url("dispatch", f"/cases/{case_id}"), headers={"X-User": "disp-01"}
        )
        if r.status_code == 404:  # intake has the case, dispatch has not heard of it yet
            return False
        assert r.status_code == 200, r.text
        return "urban-mgmt" in r.text and "returned" in r.text

    # traffic-police returns it as not theirs; dispatch re-routes to the next candidate,
    # whose system handles it
    await wait_for(rerouted, timeout=45, what="the return re-routed")
    await loop.wait_status(case_id, "handled", "verifying")
    await loop.verify(case_id, passed=True)
    await loop.wait_status(case_id, "closed")
    assert "returned" in await loop.timeline(case_id)


async def test_a_silent_department_is_chased_and_escalated(loop: Loop) -> None:
    supervisor, _ = trusted_supervisor_cell(loop.city)
    part = next(
        p
        for p in sorted(loop.city.parts.values(), key=lambda p: p.code)
        if p.category_code == "P0401"
    )
    ext = f"patrol-{uuid.uuid4().hex[:8]}"
    report = ReportV1(
        external_id=ext,
        description="行道树倾斜",
        reported_at=now(),
        part_code=part.code,
        reporter_user_id=supervisor,
    )
    await loop.publish("intake.patrol.patrol-app", report)
    case_id = await loop.case_of(ext)
    await loop.wait_status(case_id, "dispatched")
    case = await loop.get("dispatch", f"/cases/{case_id}", "disp-01")
    assert part.owner_dept in json.dumps(case)  # the part's owner got it
    # nobody at greening answers: move every service's clock a working week on
    move_clock(loop.stack, 8 * 24 * 3600)

    async def escalated() -> bool:
        kinds = await loop.timeline(case_id)
        return "overdue" in kinds and "escalated" in kinds

    await wait_for(escalated, timeout=45, what="overdue and escalation in the case file")


async def test_each_ordered_consumer_is_led_by_exactly_one_replica(loop: Loop) -> None:
    """Two processes of every service ran the loop above; each ordered durable consumer was
    consumed by one of them at a time (the other stands by), so a case's events took effect
    in stream order."""
    assert loop.stack.replicas == REPLICAS

    async def leads() -> dict[tuple[str, str], list[str]] | None:
        led: dict[tuple[str, str], list[str]] = {}
        for name in SERVICES:
            for instance in loop.stack.instances(name):
                r = await loop.http.get(loop.stack.url(instance) + "/metrics")
                assert r.status_code == 200, (instance, r.status_code)
                for m in re.finditer(
                    r'^gridloop_consumer_leading\{consumer="([^"]+)",service="([^"]+)"\} (\S+)$',
                    r.text,
                    re.MULTILINE,
                ):
                    consumer, service, value = m.groups()
                    led.setdefault((service, consumer), [])
                    if float(value) == 1:
                        led[(service, consumer)].append(instance)
        every_service = {service for service, _ in led} == set(SERVICES)
        one_each = all(len(v) == 1 for v in led.values())
        return led if led and every_service and one_each else None

    led = await wait_for(leads, timeout=30, interval=0.5, what="one lead per ordered consumer")
    # the leads are spread over whichever replica took the lock first; each is one process
    assert all(len(replicas) == 1 for replicas in led.values()), led


async def test_the_replicas_take_a_command_once_and_fire_each_timer_once(loop: Loop) -> None:
    """The same command sent to both replicas of intake at once takes effect once and both
    get its answer; over the whole module (the silent department's chase included), no timer
    of any replica fired twice: each reminder, overdue and escalation is on CASES once."""
    ext, case_id = await patrol_report(loop, "twice", "井盖缺失")
    body = {"public": True, "command_id": f"public-{ext}", "note": "两个副本同时收到"}
    first, second = await asyncio.gather(
        *(
            loop.http.post(f"{url}/cases/{case_id}/public", json=body, headers={"X-User": "op-01"})
            for url in loop.stack.urls("intake")[:2]
        )
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json()
    lines = await loop.get("intake", f"/cases/{case_id}/timeline", "op-01")
    items = lines["timeline"] if isinstance(lines, dict) else lines
    assert [i["type"] for i in items].count("intake.publicity") == 1, items

    fired: dict[tuple[Any, ...], set[str]] = {}
    for m in await read_stored(loop.js, "CASES", lambda m: m, subject="case.>"):
        headers = m.headers or {}
        kind = headers.get("ce-type", "")
        if kind.split(".")[2:3] in (["reminded"], ["overdue"], ["escalated"]):
            d = json.loads(m.data)
            key = (kind, d.get("case_id"), d.get("task_id"), d.get("stage"), d.get("level"))
            fired.setdefault(key, set()).add(headers.get("ce-id", ""))
    assert any(k[0].endswith(".escalated.v1") for k in fired), "the module chased nobody"
    twice = {k: ids for k, ids in fired.items() if len(ids) > 1}
    assert not twice, twice
