"""The residents' public case page (公众查询): a public case's status and its steps in public
terms, without a login, the coordinates rounded, nothing of who did what; an internal case is
not there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridloop_devkit.testing import wait_for
from gridloop_intake.domain.publicview import public_timeline, step_of

from .conftest import T0, Harness
from .test_intake_casefile import run_loop

POINT = {"lat": "39.900123", "long": "116.400345"}


def test_only_the_steps_a_resident_is_told_of_are_public() -> None:
    assert step_of("gridloop.case.accepted.v1") == "accepted"
    assert step_of("gridloop.case.rated.v2") == "rated"
    internal_steps = ("reminded", "escalated", "overdue", "overdue_withdrawn", "returned")
    for internal in (*internal_steps, "queued", "called_back"):
        assert step_of(f"gridloop.case.{internal}.v1") is None
    assert step_of("queue") is None and step_of("gridloop.report.v1") is None


def test_a_step_repeated_across_internal_steps_is_shown_once() -> None:
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    lines = [
        {"type": f"gridloop.case.{t}.v1", "occurred_at": at + timedelta(minutes=i)}
        for i, t in enumerate(
            ["reported", "accepted", "dispatched", "returned", "dispatched", "signed", "reminded"]
        )
    ]
    steps = public_timeline(lines)
    assert [s.step for s in steps] == ["reported", "accepted", "dispatched", "signed"]
    assert steps[2].at == at + timedelta(minutes=2)


async def test_a_public_case_shows_its_steps_and_a_rounded_point_without_a_login(
    intake: Harness,
) -> None:
    form = {
        "api_key": "demo-open311-key",
        "service_code": "E0104",
        "description": "人行道上有暴露垃圾",
        "email": "li@example.org",
        "first_name": "四",
        "last_name": "李",
        "phone": "13800000000",
        **POINT,
    }
    async with intake.client() as http:
        r = await http.post("/open311/v2/requests.json", data=form)
        assert r.status_code == 201, r.text
        case_id = r.json()[0]["service_request_id"]
        r = await http.post(
            f"/cases/{case_id}/accept", json={}, headers=intake.headers("op-01", "operator")
        )
        assert r.status_code == 200, r.text
    await run_loop(intake, case_id, T0)

    async with intake.client() as http:

        async def closed() -> dict[str, object] | None:
            got = (await http.get(f"/public/cases/{case_id}")).json()
            return dict(got) if got.get("status") == "closed" else None

        page = await wait_for(closed, timeout=15, what="the case closed")
        assert page["open"] is False and page["rated"] is False
        assert page["lat"] == 39.9 and page["lon"] == 116.4  # 3 decimals: about 100 m
        steps = [s["step"] for s in page["steps"]]  # type: ignore[attr-defined]
        assert steps[:2] == ["reported", "accepted"] and steps[-1] == "closed", steps
        text = str(page)
        for private in ("li@example.org", "13800000000", "李", "op-01", "sup-001", "已更换"):
            assert private not in text, private

        # an internal case (the hotline's, not marked public) is not there, as one unknown
        hotline = {
            "channel": "hotline",
            "external_id": "h-public-1",
            "description": "井盖缺失",
            "category_code": "E0101",
            "location": {"lat": 39.9, "lon": 116.4003},
        }
        r = await http.post("/reports", json=hotline, headers=intake.headers("op-01", "operator"))
        assert r.status_code == 201, r.text
        internal = r.json()["case_id"]
        for unknown in (internal, "no-such-case"):
            r = await http.get(f"/public/cases/{unknown}")
            assert r.status_code == 404 and r.json()["detail"][0]["field"] == "case_id"
