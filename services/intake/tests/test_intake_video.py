"""Video analytics: a scene seen a thousand times is one case; doubtful detections go to a
person first, never straight to a department."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gridloop_contracts import cases as ev
from gridloop_contracts.inbound import DetectionV1
from gridloop_devkit.testing import wait_for

if TYPE_CHECKING:
    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CAMERA = "cam-0001"


def detection(
    n: int, *, at: datetime, confidence: float = 0.9, category: str = "E0104"
) -> DetectionV1:
    return DetectionV1(
        external_id=f"det-{n}",
        camera_id=CAMERA,
        category_code=category,
        confidence=confidence,
        detected_at=at,
        snapshot_url=f"https://video.example/{n}.jpg",
    )


async def test_a_thousand_detections_of_one_scene_are_one_case(intake: Harness) -> None:
    cases = await intake.tap("CASES", "case.>")
    notify = await intake.tap("NOTIFY", "notify.video-ai")
    # Every 30 s for eight hours and more: far beyond the 30-minute cooldown in total, but
    # never 30 minutes apart, so the scene stays one case.
    for n in range(1000):
        await intake.publish(
            "intake.video.video-ai", detection(n, at=T0 + timedelta(seconds=30 * n))
        )

    async def all_taken() -> bool:
        count: int = await intake.value("SELECT count(*) FROM reports")
        return count == 1000

    await wait_for(all_taken, timeout=30, what="1,000 detections taken")
    assert await intake.value("SELECT count(*) FROM cases") == 1
    row = (await intake.fetch("SELECT case_id, status, detections FROM cases"))[0]
    assert row["detections"] == 1000
    # Confidence 0.9 on a detectable category: accepted by rule, once.
    assert row["status"] == "accepted"
    # accepted as it came in: one acceptance carrying the 上报, no case.reported of its own
    await cases.wait("gridloop.case.accepted.v2")
    await cases.poll()
    assert len(cases.of("gridloop.case.accepted.v2")) == 1
    assert len(cases.of("gridloop.case.reported.v1")) == 0
    assert len(cases.of("gridloop.case.merged.v1")) == 0
    outcomes = await intake.fetch("SELECT outcome, count(*) AS n FROM reports GROUP BY outcome")
    assert {r["outcome"]: r["n"] for r in outcomes} == {"new": 1, "folded": 999}
    # The camera hears about its case once per status change, not once per frame.
    await notify.wait("gridloop.case.status.v1", status="accepted")
    assert len(notify.of("gridloop.case.status.v1")) == 1

    # After the cooldown the same spot is still the same open problem: merged, not new.
    late = T0 + timedelta(seconds=30 * 999, minutes=45)
    await intake.publish("intake.video.video-ai", detection(2000, at=late))
    merged = await cases.wait("gridloop.case.merged.v1")
    assert merged[0].data["case_id"] == row["case_id"] and merged[0].data["channel"] == "video"
    # ... and the camera's next frames fold into it again.
    await intake.publish("intake.video.video-ai", detection(2001, at=late + timedelta(minutes=1)))
    assert await intake.case_of("video-ai", "det-2001") == row["case_id"]
    assert await intake.value("SELECT count(*) FROM cases") == 1

    # Once the case is closed, the scene seen again is a new case.
    await intake.upstream(
        ev.CaseClosed(case_id=row["case_id"], occurred_at=late, closed_by="sup-007", on_time=True),
        service="verify",
    )

    async def closed() -> bool:
        status: str | None = await intake.value(
            "SELECT status FROM cases WHERE case_id = $1", row["case_id"]
        )
        return status == "closed"

    await wait_for(closed)
    await intake.publish("intake.video.video-ai", detection(3000, at=late + timedelta(minutes=2)))
    assert await intake.case_of("video-ai", "det-3000") != row["case_id"]


async def test_doubtful_detections_wait_for_an_operator(intake: Harness) -> None:
    cases = await intake.tap("CASES", "case.>")
    await intake.publish("intake.video.video-ai", detection(1, at=T0, confidence=0.3))
    case_id = await intake.case_of("video-ai", "det-1")
    await cases.wait("gridloop.case.reported.v1")
    case = (
        await intake.fetch("SELECT status, queue_reason FROM cases WHERE case_id = $1", case_id)
    )[0]
    assert (case["status"], case["queue_reason"]) == ("pending_acceptance", "low-confidence")
    # Repeated doubtful frames fold into the waiting case and still accept nothing.
    for n in range(2, 12):
        await intake.publish(
            "intake.video.video-ai", detection(n, at=T0 + timedelta(minutes=n), confidence=0.4)
        )
    assert await intake.case_of("video-ai", "det-11") == case_id
    await cases.poll()
    assert cases.of("gridloop.case.accepted.v1") == []

    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        queue = (await http.get("/queue?reason=low-confidence", headers=operator)).json()
        assert [c["case_id"] for c in queue["cases"]] == [case_id]
        assert queue["cases"][0]["detections"] == 11
        r = await http.post(f"/cases/{case_id}/accept", json={}, headers=operator)
        assert r.status_code == 200, r.text
    accepted = (await cases.wait("gridloop.case.accepted.v1"))[0]
    assert accepted.data["auto"] is False and accepted.data["actor"]["id"] == "op-01"

    # A sure detection of a category cameras are not trusted with also waits.
    await intake.publish(
        "intake.video.video-ai", detection(99, at=T0, confidence=0.99, category="E0505")
    )
    other = await intake.case_of("video-ai", "det-99")
    assert (
        await intake.value("SELECT status FROM cases WHERE case_id = $1", other)
        == "pending_acceptance"
    )
