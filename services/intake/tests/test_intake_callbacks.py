"""回访: closed Open311 and hotline cases whose reporter has not rated after N days are on the
operators' call-back worklist with the phone to call; a try reached records the reporter's
rating; K tries not reached close the call-back as not reached. Each conclusion is
case.called_back on the bus."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gridloop_devkit.testing import wait_for

from .test_intake_casefile import T0, run_loop

if TYPE_CHECKING:
    from .conftest import Harness

OPERATOR = ("op-01", "operator")


async def closed_web_case(intake: Harness, description: str) -> str:
    form = {
        "api_key": "demo-open311-key",
        "service_code": "E0104",
        "lat": "39.9000",
        "long": "116.4003",
        "description": description,
        "first_name": "四",
        "last_name": "李",
        "phone": "13900001111",
    }
    async with intake.client() as http:
        r = await http.post("/open311/v2/requests.json", data=form)
        assert r.status_code == 201, r.text
        case_id: str = r.json()[0]["service_request_id"]
        r = await http.post(f"/cases/{case_id}/accept", json={}, headers=intake.headers(*OPERATOR))
        assert r.status_code == 200, r.text
    await run_loop(intake, case_id, T0)

    async def closed() -> bool:
        status = await intake.value("SELECT status FROM cases WHERE case_id = $1", case_id)
        return bool(status == "closed")

    await wait_for(closed, timeout=10, what=f"{case_id} closed")
    return case_id


async def worklist(intake: Harness) -> list[dict[str, Any]]:
    async with intake.client() as http:
        r = await http.get("/callbacks", headers=intake.headers(*OPERATOR))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()
    return items


async def call(intake: Harness, case_id: str, **body: Any) -> dict[str, Any]:
    async with intake.client() as http:
        r = await http.post(
            f"/cases/{case_id}/callback", json=body, headers=intake.headers(*OPERATOR)
        )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def test_the_call_back_worklist_reached_or_not_reached_after_three_tries(
    intake: Harness,
) -> None:
    cases = await intake.tap("CASES", "case.>")
    one = await closed_web_case(intake, "人行道上有暴露垃圾")
    two = await closed_web_case(intake, "绿地里有积存垃圾渣土")
    assert await worklist(intake) == []  # not yet N days after closing
    intake.clock.advance(timedelta(days=4))
    items = {i["case_id"]: i for i in await worklist(intake)}
    assert set(items) == {one, two}
    assert items[one]["reporters"][0]["phone"] == "13900001111"
    assert items[one]["reporters"][0]["name"] == "李四"
    assert (items[one]["tries"], items[one]["max_tries"]) == (0, 3)

    # not reached twice: still on the list; the third time ends it as not reached
    assert (await call(intake, one, reached=False, note="无人接听"))["outcome"] is None
    await call(intake, one, reached=False)
    assert {i["case_id"]: i["tries"] for i in await worklist(intake)}[one] == 2
    third = await call(intake, one, reached=False, note="关机")
    assert third == {"case_id": one, "tries": 3, "outcome": "not_reached", "concluded": True}

    # reached: the reporter's level and words are their rating of the closing
    reached = await call(intake, two, reached=True, rating="C", comment="处理得慢了些")
    assert reached["outcome"] == "reached"
    assert await worklist(intake) == []

    [not_reached] = await cases.wait("gridloop.case.called_back.v1", case_id=one)
    assert (not_reached.data["reached"], not_reached.data["tries"]) == (False, 3)
    await cases.wait("gridloop.case.called_back.v1", case_id=two, reached=True)
    [rated] = await cases.wait("gridloop.case.rated.v2", case_id=two)
    assert (rated.data["level"], rated.data["via"]) == ("C", "callback")
    assert rated.data["comment"] == "处理得慢了些"

    # over is over
    async with intake.client() as http:
        again = await http.post(
            f"/cases/{one}/callback", json={"reached": True}, headers=intake.headers(*OPERATOR)
        )
        assert again.status_code == 409 and again.json()["detail"][0]["code"] == "callback-over"
        case = (await http.get(f"/cases/{one}", headers=intake.headers(*OPERATOR))).json()
        tries = [t for t in case["timeline"] if t["type"] == "intake.callback"]
        assert [t["data"]["try"] for t in tries] == [1, 2, 3]
        assert "未联系上" in tries[-1]["summary"]
        # a department may not call back
        r = await http.get("/callbacks", headers=intake.headers("s", "department", dept="x"))
        assert r.status_code == 403
