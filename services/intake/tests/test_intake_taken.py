"""Reports taken over REST and Open311 are kept on the INTAKE stream (`intake.taken.<source>`,
`ReportTakenV1`) in the transaction that took them: the reports consumer passes over them, and
takes one again only when the database no longer has it (restored to an earlier moment)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from gridloop_contracts import AttachmentRef, Envelope, Location, to_binary
from gridloop_contracts.inbound import Reporter, ReportTakenV1
from gridloop_devkit.testing import consumed_past
from gridloop_intake.domain.inbound import IncomingReport

from .conftest import Harness

P_A = Location(lat=39.9000, lon=116.4003)  # cell 1101010010010030
INTAKE_SOURCE = "/gridloop/intake"
LOST_PHOTO = AttachmentRef(
    attachment_id="att-lost-1",
    sha256="0" * 64,
    content_type="image/jpeg",
    kind="photo",
    size=1234,
)


def test_a_report_kept_as_taken_is_the_report_again() -> None:
    report = IncomingReport(
        channel="web",
        source="web",
        external_id=None,
        description="路灯不亮",
        reported_at=datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
        location=P_A,
        address="东四北大街120号",
        category_code="P0401",
        urgency="urgent",
        reporter=Reporter(name="王五", phone="13800000000"),
        reporter_email="wang@example.org",
        reporter_lang="en",
        files=(LOST_PHOTO,),
        attributes={"LAMPS": 3},
    )
    assert IncomingReport.from_taken(report.taken()) == report
    # every field a report over REST or Open311 can have is kept (a detection's are not)
    kept = set(ReportTakenV1.model_fields)
    assert {f.name for f in dataclasses.fields(IncomingReport)} - kept == {
        "camera_id",
        "confidence",
    }
    # the contract's JSON carries it whole
    again = ReportTakenV1.model_validate(report.taken().model_dump(mode="json"))
    assert IncomingReport.from_taken(again) == report


async def _passed(intake: Harness, subject: str) -> None:
    await consumed_past(intake.js, "INTAKE", "intake-reports", subject)


async def test_a_rest_report_is_kept_on_the_bus_and_not_taken_twice(intake: Harness) -> None:
    tap = await intake.tap("INTAKE", "intake.taken.>")
    body = {
        "external_id": "app-kept-1",
        "description": "井盖缺失",
        "location": P_A.model_dump(),
        "category_code": "P0101",
    }
    async with intake.client() as http:
        r = await http.post("/reports", json=body, headers=intake.headers("sup-001", "supervisor"))
        assert r.status_code == 201, r.text
        first = r.json()
        # the same external_id again changed nothing: nothing more is kept
        again = await http.post(
            "/reports", json=body, headers=intake.headers("sup-001", "supervisor")
        )
        assert again.json()["outcome"] == "duplicate"
        # a call without an id of its own: only the mark keeps it from being taken twice
        call = {"description": "路灯不亮", "location": P_A.model_dump(), "category_code": "P0401"}
        r = await http.post("/reports", json=call, headers=intake.headers("op-01", "operator"))
        assert r.status_code == 201, r.text
        second = r.json()
    [call_kept] = await tap.wait(ReportTakenV1, subject="intake.taken.12345")
    assert call_kept.data["channel"] == "hotline" and "external_id" not in call_kept.data
    [kept] = await tap.wait(ReportTakenV1, subject="intake.taken.patrol-app")
    assert kept.source == INTAKE_SOURCE
    assert kept.data["external_id"] == "app-kept-1" and kept.data["channel"] == "patrol"
    assert kept.data["reporter_user_id"] == "sup-001"
    await _passed(intake, "intake.taken.patrol-app")
    await _passed(intake, "intake.taken.12345")
    assert len(tap.of(ReportTakenV1)) == 2
    rows = await intake.fetch("SELECT report_id, case_id FROM reports")
    assert {(r["report_id"], r["case_id"]) for r in rows} == {
        (first["report_id"], first["case_id"]),
        (second["report_id"], second["case_id"]),
    }
    assert len(rows) == 2


async def _publish_taken(intake: Harness, taken: ReportTakenV1, source: str) -> Envelope:
    env = Envelope.of(taken, source=source, time=intake.clock.now())
    headers, body = to_binary(env)
    await intake.js.publish(f"intake.taken.{taken.source}", body, headers=headers)
    return env


async def test_a_kept_report_the_database_does_not_have_is_taken_again(intake: Harness) -> None:
    """As after a restore: the message is on the bus, no row says it was taken."""
    lost = ReportTakenV1(
        channel="patrol",
        source="patrol-app",
        external_id="app-lost-1",
        description="道路破损",
        reported_at=intake.clock.now(),
        location=P_A,
        category_code="P0101",
        reporter_user_id="sup-001",
        # uploaded after the restore point: its row is gone, the report still names it
        files=[LOST_PHOTO],
    )
    # the same on intake.taken from anyone but intake is not believed
    forged = ReportTakenV1(**{**lost.model_dump(), "external_id": "app-forged-1"})
    await _publish_taken(intake, forged, "/integrator/patrol-app")
    await _publish_taken(intake, lost, INTAKE_SOURCE)

    case_id = await intake.case_of("patrol-app", "app-lost-1")
    await _passed(intake, "intake.taken.patrol-app")
    data = await intake.value(
        "SELECT data FROM reports WHERE source = 'patrol-app' AND external_id = 'app-lost-1'"
    )
    report = json.loads(data) if isinstance(data, str) else data
    assert report["reporter_user_id"] == "sup-001"
    assert [f["attachment_id"] for f in report["files"]] == ["att-lost-1"]
    # sup-001 is trusted: accepted, as when it came over REST
    assert await intake.value("SELECT status FROM cases WHERE case_id = $1", case_id) == "accepted"
    assert (
        await intake.value("SELECT count(*) FROM reports WHERE external_id = 'app-forged-1'") == 0
    )
    assert await intake.value("SELECT count(*) FROM rejections") == 0
    assert await intake.value("SELECT count(*) FROM reports") == 1


async def test_an_open311_request_is_kept_with_what_the_resident_gave(intake: Harness) -> None:
    tap = await intake.tap("INTAKE", "intake.taken.>")
    async with intake.client() as http:
        r = await http.post(
            "/open311/v2/requests.json",
            data={
                "api_key": "demo-open311-key",
                "service_code": "E0104",
                "lat": "39.9000",
                "long": "116.4003",
                "description": "小区门口暴露垃圾",
                "first_name": "三",
                "last_name": "张",
                "phone": "13812345678",
                "email": "zhang@example.com",
            },
        )
        assert r.status_code == 201, r.text
    [kept] = await tap.wait(ReportTakenV1, source=INTAKE_SOURCE)
    taken = IncomingReport.from_taken(ReportTakenV1.model_validate(kept.data))
    assert (taken.channel, taken.category_code) == ("web", "E0104")
    assert taken.reporter_email == "zhang@example.com"
    assert taken.reporter is not None and taken.reporter.phone == "13812345678"
    await _passed(intake, f"intake.taken.{taken.source}")
    assert await intake.value("SELECT count(*) FROM reports") == 1
