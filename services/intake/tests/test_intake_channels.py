"""Every channel into the one pipeline, against a real NATS and PostgreSQL: NATS reports in
both CloudEvents modes, idempotent resends, every rejection reason, duplicates merged by
distance and time, part codes, the entry list, and the REST channel for people."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gridloop_contracts import Envelope, Location, to_binary
from gridloop_contracts.inbound import DetectionV1, Reporter, ReportV1
from gridloop_devkit.testing import wait_for

if TYPE_CHECKING:
    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CASE_REPORTED = "gridloop.case.reported.v1"
CASE_ACCEPTED = "gridloop.case.accepted.v1"
CASE_ACCEPTED_AT_ONCE = "gridloop.case.accepted.v2"
CASE_MERGED = "gridloop.case.merged.v1"
CASE_REJECTED = "gridloop.case.rejected.v1"
CONFIRMATION = "gridloop.case.confirmation_requested.v1"
STATUS = "gridloop.case.status.v1"
REJECTED = "gridloop.report.rejected.v1"

P_A = Location(lat=39.9000, lon=116.4003)  # cell 1101010010010030
P_30M = Location(lat=39.9000, lon=116.40065)  # ~30 m east of P_A
P_200M = Location(lat=39.9000, lon=116.4027)  # ~200 m east
ENTRY_LISTED = Location(lat=39.8955, lon=116.4073)  # cell 1101010020010001


def report(external_id: str, **kw: object) -> ReportV1:
    values: dict[str, object] = {
        "external_id": external_id,
        "description": "人行道上堆着垃圾",
        "reported_at": T0,
        "location": P_A,
        "category_code": "E0104",
    }
    values.update(kw)
    return ReportV1.model_validate(values)


async def test_hotline_report_in_both_modes_is_one_case_per_external_id(intake: Harness) -> None:
    cases = await intake.tap("CASES", "case.>")
    notify = await intake.tap("NOTIFY", "notify.12345")
    reporter = Reporter(name="张三丰", phone="13812345678")
    first = report("call-1", reporter=reporter)
    await intake.publish("intake.hotline.12345", first)
    # The same call again: structured mode, a new CloudEvent id — still the same report.
    await intake.publish("intake.hotline.12345", first, structured=True)
    await intake.publish("intake.hotline.12345", first)
    # Another call in structured mode, a different problem far away.
    await intake.publish(
        "intake.hotline.12345",
        report("call-2", location=P_200M, category_code="E0201"),
        structured=True,
    )
    reported = await cases.wait(CASE_REPORTED, 2)
    assert sorted(e.data["external_id"] for e in reported) == ["call-1", "call-2"]
    # Hotline reports are confirmed on site first (intake.yaml confirmation_channels).
    asked = await cases.wait(CONFIRMATION, 2)
    case_id = await intake.case_of("12345", "call-1")
    assert {e.data["case_id"] for e in asked} == {case_id, await intake.case_of("12345", "call-2")}
    assert case_id.startswith("110101-20261123-")
    status = await notify.wait(STATUS, 2, status="pending_confirmation")
    assert {s.data["external_id"] for s in status} == {"call-1", "call-2"}

    # Three sends of call-1, one report row; the resends changed nothing.
    assert await intake.value("SELECT count(*) FROM reports") == 2
    assert await intake.value("SELECT count(*) FROM cases") == 2
    await cases.poll()
    assert len(cases.of(CASE_REPORTED)) == 2

    # Privacy: the event carries the masked reporter and a reference; intake keeps the rest.
    event = cases.of(CASE_REPORTED, external_id="call-1")[0]
    assert event.data["reporter"]["phone"] == "138****5678"
    assert event.data["reporter"]["name"] == "张**"
    assert "13812345678" not in str(event.data) and "三丰" not in str(event.data)
    ref = event.data["reporter"]["ref"]
    row = (await intake.fetch("SELECT name, phone FROM reporters WHERE ref = $1", ref))[0]
    assert (row["name"], row["phone"]) == ("张三丰", "13812345678")
    # Each case records cell, community and sub-district.
    where = (await intake.fetch("SELECT * FROM cases WHERE case_id = $1", case_id))[0]
    assert (where["cell_code"], where["community_code"], where["subdistrict_code"]) == (
        "1101010010010030",
        "110101001001",
        "110101001",
    )


async def test_every_rejection_reason_is_answered_and_kept(intake: Harness) -> None:
    notify = await intake.tap("NOTIFY", "notify.>")
    js = intake.js
    # Not a CloudEvent at all: plain JSON, and bytes that are not JSON.
    await js.publish("intake.hotline.12345", b'{"description": "no envelope"}')
    await js.publish(
        "intake.hotline.12345",
        b"\xff not json",
        headers={
            "ce-specversion": "1.0",
            "ce-id": "x-1",
            "ce-source": "/hotline/12345",
            "ce-type": ReportV1.type_name,
            "content-type": "application/json",
        },
    )
    bad_data: list[tuple[dict[str, Any], str]] = [
        (
            {"external_id": "v-1", "reported_at": T0.isoformat(), "location": P_A.model_dump()},
            "data.description",
        ),
        (
            {"external_id": "v-2", "description": "x", "reported_at": T0.isoformat()},
            "data.location",
        ),
        (
            {"external_id": "v-3", "description": "x", "reported_at": "yesterday", "address": "a"},
            "data.reported_at",
        ),
    ]
    for data, _ in bad_data:
        env = Envelope(
            type=ReportV1.type_name, source="/hotline/12345", data=data, id=str(data["external_id"])
        )
        headers, body = to_binary(env)
        await js.publish("intake.hotline.12345", body, headers=headers)
    rules = [
        ("intake.hotline.99999", report("r-src"), "source"),  # unknown source
        ("intake.patrol.12345", report("r-chan"), "source"),  # a hotline source on patrol
        (
            "intake.hotline.12345",
            report("r-out", location=Location(lat=39.9, lon=116.3)),
            "data.location",
        ),
        (
            "intake.hotline.12345",
            report("r-part", location=None, part_code="0000"),
            "data.part_code",
        ),
        (
            "intake.hotline.12345",
            report("r-addr", location=None, address="火星路1号"),
            "data.address",
        ),
        ("intake.hotline.12345", report("r-cat", category_code="X9999"), "data.category_code"),
        (
            "intake.patrol.patrol-app",
            report("r-user", reporter_user_id="op-01"),
            "data.reporter_user_id",
        ),
    ]
    for subject, event, _ in rules:
        await intake.publish(subject, event)
    detection = DetectionV1(
        external_id="d-1",
        camera_id="cam-nowhere",
        category_code="E0104",
        confidence=0.9,
        detected_at=T0,
    )
    await intake.publish("intake.hotline.12345", detection)  # a detection on a hotline subject
    await intake.publish("intake.video.video-ai", detection)  # unknown camera, no location
    bad_phone = {**report("r-phone").model_dump(mode="json"), "reporter": {"phone": "call me"}}
    env = Envelope(type=ReportV1.type_name, source="/hotline/12345", data=bad_phone)
    headers, body = to_binary(env)
    await js.publish("intake.hotline.12345", body, headers=headers)

    expected = 2 + len(bad_data) + len(rules) + 3
    rejected = await notify.wait(REJECTED, expected)
    fields = [e.data["errors"][0]["field"] for e in rejected]
    for _, field in bad_data:
        assert field in fields
    for _, _, field in rules:
        assert field in fields
    assert "type" in fields and "data.camera_id" in fields and "data.reporter.phone" in fields
    by_external = {e.data.get("external_id"): e for e in rejected}
    assert "out-of-district" in by_external["r-out"].data["errors"][0]["reason"]
    # Each answer went to the sender's own notify subject, unknown sources included.
    subjects = {s for s, env in notify.seen if env.type == REJECTED}
    assert subjects == {"notify.12345", "notify.99999", "notify.patrol-app", "notify.video-ai"}
    # Nothing silently lost: every one is kept for operators, and none became a case.
    assert await intake.value("SELECT count(*) FROM rejections") == expected
    assert await intake.value("SELECT count(*) FROM cases") == 0
    kept = await intake.fetch("SELECT body FROM rejections WHERE message_id = 'x-1'")
    assert bytes(kept[0]["body"]) == b"\xff not json"
    async with intake.client() as http:
        r = await http.get("/rejections", headers=intake.headers("op-01", "operator"))
        assert r.status_code == 200 and len(r.json()) == expected
        r = await http.get("/rejections", headers=intake.headers("disp-01", "dispatcher"))
        assert r.status_code == 403

    # A corrected resend of a rejected report is taken: rejections do not burn the id.
    await intake.publish("intake.hotline.12345", report("r-out"))
    assert await intake.case_of("12345", "r-out")


async def test_duplicates_merge_by_distance_and_time_and_all_reporters_hear(
    intake: Harness,
) -> None:
    cases = await intake.tap("CASES", "case.>")
    notify = await intake.tap("NOTIFY", "notify.web")
    await intake.publish("intake.web.web", report("w-1"))
    first = await intake.case_of("web", "w-1")
    await intake.publish(
        "intake.web.web", report("w-2", location=P_30M, reported_at=T0 + timedelta(hours=2))
    )
    merged = await cases.wait(CASE_MERGED)
    assert merged[0].data["case_id"] == first and merged[0].data["external_id"] == "w-2"
    assert 25 < merged[0].data["distance_m"] < 35
    told = await notify.wait(STATUS, external_id="w-2", status="merged")
    assert told[0].data["case_id"] == first

    # Too far, too late, another category: separate cases.
    await intake.publish("intake.web.web", report("w-far", location=P_200M))
    await intake.publish("intake.web.web", report("w-late", reported_at=T0 + timedelta(hours=73)))
    await intake.publish("intake.web.web", report("w-other", category_code="E0201"))
    for ext in ("w-far", "w-late", "w-other"):
        assert await intake.case_of("web", ext) != first
    assert await intake.value("SELECT count(*) FROM cases") == 4
    row = (await intake.fetch("SELECT reports, targets FROM cases WHERE case_id = $1", first))[0]
    assert row["reports"] == 2 and [t[1] for t in row["targets"]] == ["w-1", "w-2"]

    # Every reporter of the case hears of its progress.
    from gridloop_contracts import cases as ev

    await intake.upstream(
        ev.CaseDispatched(
            case_id=first,
            occurred_at=T0,
            dept="sanitation",
            task_id="t-1",
            deadline=T0 + timedelta(hours=4),
        )
    )
    dispatched = await notify.wait(STATUS, 2, status="dispatched")
    assert {s.data["external_id"] for s in dispatched} == {"w-1", "w-2"}


async def test_part_code_and_entry_list(intake: Harness) -> None:
    cases = await intake.tap("CASES", "case.>")
    part = next(p for p in intake_parts(intake) if p.category_code == "P0101")
    # A trusted supervisor's patrol report of a manhole cover by its code: accepted at once,
    # placed at the part, owned by the part's department.
    await intake.publish(
        "intake.patrol.patrol-app",
        report(
            "p-1",
            location=None,
            part_code=part.code,
            category_code=None,
            reporter_user_id="sup-001",
        ),
    )
    # accepted as it came in: the acceptance (v2) carries the 上报
    accepted = (await cases.wait(CASE_ACCEPTED_AT_ONCE))[0].data
    assert accepted["report"]["part_code"] == part.code
    assert accepted["category_code"] == "P0101" and accepted["auto"] is True
    assert accepted["part_owner_dept"] == part.owner_dept
    assert accepted["cell_code"] == part.cell_code
    assert accepted["location"] == {"lat": part.lat, "lon": part.lon}
    # An untrusted supervisor's report of the same category elsewhere waits for an operator.
    other = next(
        p for p in intake_parts(intake) if p.category_code == "P0101" and p.code != part.code
    )
    await intake.publish(
        "intake.patrol.patrol-app",
        report(
            "p-2",
            location=None,
            part_code=other.code,
            category_code=None,
            reporter_user_id="sup-002",
        ),
    )
    queued = await intake.case_of("patrol-app", "p-2")
    assert (
        await intake.value("SELECT status FROM cases WHERE case_id = $1", queued)
        == "pending_acceptance"
    )
    # 准入清单: the cell takes E0104 but not E0101 (私搭乱建).
    await intake.publish(
        "intake.web.web", report("e-1", location=ENTRY_LISTED, category_code="E0101")
    )
    rejected = (await cases.wait(CASE_REJECTED))[0].data
    assert rejected["reason_code"] == "not-in-entry-list"
    assert rejected["cell_code"] == "1101010020010001"


def intake_parts(intake: Harness) -> list:  # type: ignore[type-arg]
    state = intake.rt.state[0]
    return list(state.city.parts.values())


async def test_rest_reports_from_patrol_app_and_hotline_operators(intake: Harness) -> None:
    supervisor = intake.headers("sup-001", "supervisor")
    operator = intake.headers("op-01", "operator")
    body = {
        "external_id": "app-1",
        "description": "井盖缺失",
        "location": P_A.model_dump(),
        "category_code": "P0101",
        "attachments": [{"url": "https://photos.example/1.jpg", "kind": "photo"}],
    }
    async with intake.client() as http:
        r = await http.post("/reports", json=body, headers=supervisor)
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["outcome"] == "new" and first["status"] == "accepted"  # sup-001 is trusted
        r = await http.get(f"/reports/{first['report_id']}", headers=operator)
        assert r.status_code == 200 and r.json()["case_id"] == first["case_id"]
        assert r.json()["outcome"] == "new"
        assert (await http.get("/reports/nope", headers=operator)).status_code == 404
        again = await http.post("/reports", json=body, headers=supervisor)
        assert again.status_code == 200 and again.json()["case_id"] == first["case_id"]
        assert again.json()["outcome"] == "duplicate"

        call = {
            "description": "有人反映井盖丢了",
            "location": P_30M.model_dump(),
            "category_code": "P0101",
            "reporter": {"name": "李四", "phone": "13900001111"},
        }
        r = await http.post("/reports", json=call, headers=operator)
        assert r.status_code == 201 and r.json()["outcome"] == "merged"
        assert r.json()["case_id"] == first["case_id"]

        # Bad input names the field: 422 from validation, 422 from the rules.
        r = await http.post("/reports", json={"description": "x"}, headers=operator)
        assert r.status_code == 422 and "location" in r.text
        r = await http.post(
            "/reports",
            json={**call, "location": {"lat": 39.9, "lon": 116.3}},
            headers=operator,
        )
        assert r.status_code == 422
        assert r.json()["detail"][0] == {
            "code": "out-of-district",
            "reason": r.json()["detail"][0]["reason"],
            "field": "location",
        }
        r = await http.post("/reports", json={**call, "part_code": "nope"}, headers=operator)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "part_code"
        # Roles: a dispatcher files nothing; an operator cannot file patrol reports.
        r = await http.post("/reports", json=call, headers=intake.headers("disp-01", "dispatcher"))
        assert r.status_code == 403
        r = await http.post("/reports", json={**call, "channel": "patrol"}, headers=operator)
        assert r.status_code == 403
        r = await http.post("/reports", json=call)
        assert r.status_code == 401

        # The case file shows both reports, masked; the raw phone only to operators.
        r = await http.get(f"/cases/{first['case_id']}", headers=operator)
        assert r.status_code == 200
        case = r.json()
        assert case["reports"] == 2 and case["status"] == "accepted"
        assert [t["type"] for t in case["timeline"]][:3] == [
            "gridloop.case.reported.v1",
            "gridloop.case.accepted.v2",
            "gridloop.case.merged.v1",
        ]
        assert "13900001111" not in r.text
        r = await http.get(f"/cases/{first['case_id']}/reporters", headers=operator)
        assert [p["phone"] for p in r.json()] == [None, "13900001111"]
        r = await http.get(
            f"/cases/{first['case_id']}/reporters", headers=intake.headers("eval-01", "evaluator")
        )
        assert r.status_code == 403

        # Five copies of one call at the same moment: one report, four duplicates.
        burst = {**call, "external_id": "burst-1", "location": P_200M.model_dump()}
        answers = await asyncio.gather(
            *(http.post("/reports", json=burst, headers=operator) for _ in range(5))
        )
        assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
        assert len({a.json()["case_id"] for a in answers}) == 1

    async def reported() -> bool:
        count: int = await intake.value("SELECT count(*) FROM reports")
        return count == 3

    await wait_for(reported)
