"""The case file: every lifecycle event on the timeline, every status change to the report's
source, search within the caller's territory, 结单归档 and similar past cases, ratings,
on-site confirmation (核实) and the operators' acceptance desk with the shift leader's review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gridloop_contracts import Location
from gridloop_contracts import cases as ev
from gridloop_contracts.inbound import RatingV1, ReportV1
from gridloop_devkit.testing import wait_for

if TYPE_CHECKING:
    from gridloop_city import City

    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
P_A = Location(lat=39.9000, lon=116.4003)
P_NEAR = Location(lat=39.9002, lon=116.4010)  # ~60 m away: not a duplicate, but nearby
STATUS = "gridloop.case.status.v1"


def report(external_id: str, **kw: Any) -> ReportV1:
    values: dict[str, Any] = {
        "external_id": external_id,
        "description": "垃圾桶破损",
        "reported_at": T0,
        "location": P_A,
        "category_code": "P0301",
        "reporter_user_id": "sup-001",
    }
    values.update(kw)
    return ReportV1.model_validate(values)


def dims(case_id: str, at: datetime, **kw: Any) -> dict[str, Any]:
    return {"case_id": case_id, "occurred_at": at, "dept": "sanitation", "task_id": "t-1", **kw}


async def run_loop(intake: Harness, case_id: str, at: datetime, *, overdue: bool = False) -> None:
    """The other services' part of the loop, as they would publish it."""
    deadline = at + timedelta(hours=4)
    await intake.upstream(ev.CaseDispatched(**dims(case_id, at, deadline=deadline)))
    await intake.upstream(ev.CaseSigned(**dims(case_id, at + timedelta(minutes=5))), "handling")
    if overdue:
        await intake.upstream(ev.CaseOverdue(**dims(case_id, deadline, deadline=deadline)))
        return
    await intake.upstream(
        ev.CaseHandled(
            **dims(case_id, at + timedelta(hours=1)),
            result="已更换垃圾桶",
            completed_at=at + timedelta(hours=1),
        ),
        "handling",
    )
    await intake.upstream(
        ev.CaseVerificationAssigned(
            **dims(case_id, at + timedelta(hours=1)),
            supervisor_id="sup-001",
            due=at + timedelta(hours=3),
        ),
        "verify",
    )
    await intake.upstream(
        ev.CaseVerified(
            **dims(case_id, at + timedelta(hours=2)), passed=True, supervisor_id="sup-001"
        ),
        "verify",
    )
    await intake.upstream(
        ev.CaseClosed(**dims(case_id, at + timedelta(hours=2)), closed_by="sup-001", on_time=True),
        "verify",
    )


async def test_the_whole_loop_on_file_told_to_the_source_and_archived(
    intake: Harness, city: City
) -> None:
    notify = await intake.tap("NOTIFY", "notify.patrol-app")
    await intake.publish("intake.patrol.patrol-app", report("p-1"))
    case_id = await intake.case_of("patrol-app", "p-1")
    await notify.wait(STATUS, status="accepted")
    await run_loop(intake, case_id, T0)
    told = await notify.wait(STATUS, status="closed")
    assert told[0].data["external_id"] == "p-1" and told[0].data["case_id"] == case_id
    statuses = [e.data["status"] for e in notify.of(STATUS)]
    assert statuses == ["accepted", "closed"]  # the patrol app's `notify` in the city's sources

    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        case = (await http.get(f"/cases/{case_id}", headers=operator)).json()
        assert case["status"] == "closed" and case["archived"] is True
        assert case["dept"] == "sanitation" and case["on_time"] is True
        assert case["reporter_user_id"] == "sup-001"
        assert case["reporter_user_name"] == city.users["sup-001"].name
        types = [t["type"].split(".")[2] for t in case["timeline"]]
        assert types == [
            "reported", "accepted", "dispatched", "signed", "handled",
            "verification_assigned", "verified", "closed",
        ]  # fmt: skip
        assert (
            case["timeline"][2]["actor"] is None and case["timeline"][0]["actor"]["id"] == "intake"
        )
        archive = (await http.get(f"/archive/{case_id}", headers=operator)).json()
        assert len(archive["timeline"]) == 8 and archive["timeline"][-1]["status"] == "closed"

        # Rating after closing, once; the rating is a case event with the department on it
        # (v2: seed 002's levels A–D; a v1 value is taken and mapped: satisfied is B).
        cases = await intake.tap("CASES", "case.rated")
        bad = await http.post(f"/cases/{case_id}/rating", json={"rating": "E"}, headers=operator)
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "rating"
        r = await http.post(
            f"/cases/{case_id}/rating", json={"rating": "satisfied"}, headers=operator
        )
        assert r.status_code == 200, r.text
        again = await http.post(
            f"/cases/{case_id}/rating", json={"rating": "dissatisfied"}, headers=operator
        )
        assert again.status_code == 409 and again.json()["detail"][0]["code"] == "already-rated"
        rated = (await cases.wait("gridloop.case.rated.v2"))[0]
        assert rated.data["level"] == "B" and rated.data["dept"] == "sanitation"
        assert rated.data["via"] == "rest"

        # A second case of the same kind nearby, once closed, finds the first as similar.
        await intake.publish("intake.patrol.patrol-app", report("p-2", location=P_NEAR))
        second = await intake.case_of("patrol-app", "p-2")
        assert second != case_id
        similar = (await http.get(f"/cases/{second}/similar", headers=operator)).json()
        assert [s["case_id"] for s in similar] == [case_id]
        assert similar[0]["rating"] == "B"

        # Late events do not reopen a closed case; a reopening does.
        await intake.upstream(
            ev.CaseProgress(**dims(case_id, T0 + timedelta(hours=3)), note="补记")
        )
        await intake.upstream(
            ev.CaseReopened(**dims(case_id, T0 + timedelta(hours=4)), reason="群众不满意"), "verify"
        )
        reopened = await notify.wait(STATUS, status="reworking")
        assert reopened[0].data["case_id"] == case_id
        case = (await http.get(f"/cases/{case_id}", headers=operator)).json()
        assert case["status"] == "reworking" and case["archived"] is False
        assert "in_progress" not in [e.data["status"] for e in notify.of(STATUS)]


async def test_search_filters_and_territories(intake: Harness) -> None:
    await intake.publish("intake.patrol.patrol-app", report("s-1"))
    await intake.publish(
        "intake.patrol.patrol-app", report("s-2", location=Location(lat=39.92152, lon=116.3999))
    )
    one = await intake.case_of("patrol-app", "s-1")
    two = await intake.case_of("patrol-app", "s-2")
    await run_loop(intake, one, T0, overdue=True)

    async def overdue() -> bool:
        return bool(await intake.value("SELECT overdue FROM cases WHERE case_id = $1", one))

    await wait_for(overdue)
    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:

        async def ids(query: str, headers: dict[str, str] = operator) -> list[str]:
            r = await http.get(f"/cases?{query}", headers=headers)
            assert r.status_code == 200, r.text
            return sorted(c["case_id"] for c in r.json()["cases"])

        assert await ids("") == sorted([one, two])
        assert await ids("overdue=true") == [one]
        assert await ids("status=signed") == [one]
        assert await ids("status=accepted,signed") == sorted([one, two])
        assert await ids("dept=sanitation") == [one]
        assert await ids("category=P0301&cell=1101010010010030") == [one]
        assert await ids("subdistrict=110101005") == [two]
        assert await ids("from=2026-11-23T00:00:00Z&to=2026-11-24T00:00:00Z") == sorted([one, two])
        assert await ids("from=2026-11-24T00:00:00Z") == []
        assert await ids("q=破损") == sorted([one, two])
        assert await ids("open=false") == []
        # A department sees its own cases; a grid head only their community.
        sanitation = intake.headers("sanitation-ops", "department", dept="sanitation")
        assert await ids("", sanitation) == [one]
        water = intake.headers("water-ops", "department", dept="water")
        assert await ids("", water) == []
        r = await http.get(f"/cases/{one}", headers=water)
        assert r.status_code == 404
        head = intake.auth
        from gridloop_runtime.auth import issue_token

        token = issue_token(head, user_id="gh", roles=["grid-head"], territory=["110101005"])
        grid_head = {"Authorization": f"Bearer {token}"}
        assert await ids("", grid_head) == [two]
        r = await http.get("/cases", headers=intake.headers("x", "reporter"))
        assert r.status_code == 403

        # A case out of reach is answered as an unknown id, in every read of it, and the
        # attempt is on the audit trail (who, which case, why); a report does not name its case.
        hidden = await http.get(f"/cases/{one}", headers=grid_head)
        unknown = await http.get("/cases/C20261123-9999", headers=grid_head)
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json() == {
            "detail": [{"code": "not-found", "reason": f"no case {one!r}", "field": "case_id"}]
        }
        for path in (f"/cases/{one}/timeline", f"/cases/{one}/similar", f"/archive/{one}"):
            assert (await http.get(path, headers=grid_head)).status_code == 404, path
        report_id = await intake.value("SELECT report_id FROM reports WHERE case_id = $1", one)
        r = await http.get(f"/reports/{report_id}", headers=grid_head)
        assert r.status_code == 404 and one not in r.text
        trail = await intake.fetch(
            "SELECT user_id, case_id, command, code, status, reason FROM audit_log "
            "WHERE outcome = 'refused' AND user_id = 'gh' ORDER BY id"
        )
        assert [(t["case_id"], t["command"]) for t in trail] == [
            (one, "GET /cases/{case_id}"),
            (one, "GET /cases/{case_id}/timeline"),
            (one, "GET /cases/{case_id}/similar"),
            (one, "GET /archive/{case_id}"),
            (one, "GET /reports/{report_id}"),
        ]
        assert {(t["code"], t["status"]) for t in trail} == {("out-of-reach", 404)}
        assert "110101005" in trail[0]["reason"]
        # the other refused reads above too; nothing of allowed reads, nor of unknown ids
        reads = await intake.fetch(
            "SELECT user_id, code FROM audit_log WHERE command LIKE 'GET %' AND user_id <> 'gh'"
        )
        assert sorted(tuple(r) for r in reads) == [
            ("water-ops", "out-of-reach"),
            ("x", "forbidden"),
        ]

        # A token without a territory claim reaches no territory: not the whole district.
        nowhere = intake.headers("op-02", "operator", territory=None)
        assert await ids("", nowhere) == []
        assert (await http.get(f"/cases/{two}", headers=nowhere)).status_code == 404
        assert (await http.get("/queue", headers=nowhere)).json()["total"] == 0


async def test_confirmation_on_site_before_acceptance(intake: Harness) -> None:
    cases = await intake.tap("CASES", "case.>")
    notify = await intake.tap("NOTIFY", "notify.12345")
    hotline = {"category_code": "E0104", "reporter_user_id": None}
    await intake.publish("intake.hotline.12345", report("h-1", **hotline))
    await intake.publish(
        "intake.hotline.12345",
        report("h-2", location=Location(lat=39.92152, lon=116.3999), **hotline),
    )
    one = await intake.case_of("12345", "h-1")
    two = await intake.case_of("12345", "h-2")
    asked = await cases.wait("gridloop.case.confirmation_requested.v1", 2)
    # Two working hours to confirm (calendar.yaml), counted on the working calendar.
    assert datetime.fromisoformat(asked[0].data["due"]) == T0 + timedelta(hours=2)
    await intake.upstream(
        ev.CaseConfirmed(case_id=one, occurred_at=T0, confirmed=True, supervisor_id="sup-001"),
        "verify",
    )
    await intake.upstream(
        ev.CaseConfirmed(case_id=two, occurred_at=T0, confirmed=False, supervisor_id="sup-002"),
        "verify",
    )
    accepted = (await cases.wait("gridloop.case.accepted.v1"))[0].data
    assert accepted["case_id"] == one and accepted["actor"]["id"] == "sup-001"
    rejected = (await cases.wait("gridloop.case.rejected.v1"))[0].data
    assert rejected["case_id"] == two and rejected["reason_code"] == "not-confirmed"
    await notify.wait(STATUS, external_id="h-1", status="accepted")
    await notify.wait(STATUS, external_id="h-2", status="rejected")
    # A repeated confirmation changes nothing.
    await intake.upstream(
        ev.CaseConfirmed(case_id=two, occurred_at=T0, confirmed=True, supervisor_id="sup-002"),
        "verify",
    )
    await intake.upstream(ev.CaseProgress(**dims(one, T0), note="marker"))
    await notify.wait(STATUS, external_id="h-1", status="in_progress")
    assert len(cases.of("gridloop.case.accepted.v1")) == 1

    # The hotline's call-back rating arrives on its intake subject once the case is closed.
    rating = RatingV1(external_id="h-1", rating="dissatisfied", comment="没修好", rated_at=T0)
    await intake.publish("intake.hotline.12345", rating)
    refused = await notify.wait("gridloop.report.rejected.v1")
    assert "not closed" in refused[0].data["errors"][0]["reason"]
    await intake.upstream(
        ev.CaseClosed(**dims(one, T0), closed_by="sup-001", on_time=True), "verify"
    )
    await notify.wait(STATUS, external_id="h-1", status="closed")
    await intake.publish("intake.hotline.12345", rating)
    rated = (await cases.wait("gridloop.case.rated.v2"))[0].data
    assert rated["case_id"] == one and rated["level"] == "D"  # v1's dissatisfied
    assert rated["source"] == "12345"


async def test_operators_accept_and_reject_with_the_shift_leaders_review(intake: Harness) -> None:
    cases = await intake.tap("CASES", "case.>")
    web = {"reporter_user_id": None}
    await intake.publish("intake.web.web", report("q-1", category_code=None, **web))
    await intake.publish(
        "intake.web.web",
        report("q-2", category_code="E0101", location=Location(lat=39.92152, lon=116.3999), **web),
    )
    await intake.publish(
        "intake.web.web",
        report(
            "q-3", category_code="E0201", location=Location(lat=39.934047, lon=116.426086), **web
        ),
    )
    no_category = await intake.case_of("web", "q-1")
    reviewed = await intake.case_of("web", "q-2")
    plain = await intake.case_of("web", "q-3")
    # 私搭乱建 is confirmed on site first, then decided by people (shift leader review).
    await cases.wait("gridloop.case.confirmation_requested.v1")
    await intake.upstream(
        ev.CaseConfirmed(case_id=reviewed, occurred_at=T0, confirmed=True, supervisor_id="sup-003"),
        "verify",
    )

    async def queued() -> bool:
        status = await intake.value("SELECT status FROM cases WHERE case_id = $1", reviewed)
        return bool(status == "pending_acceptance")

    await wait_for(queued)
    operator = intake.headers("op-01", "operator")
    leader = intake.headers("lead-01", "shift-leader", "operator")
    async with intake.client() as http:
        queue = (await http.get("/queue", headers=operator)).json()
        assert [c["case_id"] for c in queue["cases"]] == [no_category, reviewed, plain]
        assert queue["cases"][0]["queue_reason"] == "category-needed"
        r = await http.get("/queue", headers=intake.headers("disp-01", "dispatcher"))
        assert r.status_code == 403

        # Accepting needs a category, a known one, and one the cell takes.
        r = await http.post(f"/cases/{no_category}/accept", json={}, headers=operator)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "category_code"
        r = await http.post(
            f"/cases/{no_category}/accept", json={"category_code": "Z1"}, headers=operator
        )
        assert r.status_code == 422
        r = await http.post(
            f"/cases/{no_category}/accept",
            json={"category_code": "P0301", "urgency": "urgent", "command_id": "cmd-1"},
            headers=operator,
        )
        assert r.status_code == 200 and r.json()["status"] == "accepted"
        again = await http.post(
            f"/cases/{no_category}/accept",
            json={"category_code": "P0301", "command_id": "cmd-1"},
            headers=operator,
        )
        assert again.json() == r.json()  # the same command: the first answer, nothing new
        r = await http.post(
            f"/cases/{no_category}/accept", json={"category_code": "P0301"}, headers=operator
        )
        assert r.status_code == 409 and r.json()["detail"][0]["code"] == "not-pending"

        # Rejecting needs a configured reason code.
        r = await http.post(f"/cases/{plain}/reject", json={"reason_code": "meh"}, headers=operator)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "reason_code"
        r = await http.post(
            f"/cases/{plain}/reject", json={"reason_code": "not-city-management"}, headers=operator
        )
        assert r.status_code == 200 and r.json()["status"] == "rejected"

        # 私搭乱建 is decided with the shift leader: the operator proposes, the leader decides.
        r = await http.post(
            f"/cases/{reviewed}/reject",
            json={"reason_code": "insufficient-information"},
            headers=operator,
        )
        assert r.json()["awaiting"] == "shift-leader"
        queue = (await http.get("/queue?reason=leader-review", headers=leader)).json()
        assert [c["case_id"] for c in queue["cases"]] == [reviewed]
        r = await http.post(f"/cases/{reviewed}/review", json={"approve": False}, headers=operator)
        assert r.status_code == 403
        r = await http.post(
            f"/cases/{reviewed}/review", json={"approve": False, "note": "再看看"}, headers=leader
        )
        assert r.json()["approved"] is False
        r = await http.post(
            f"/cases/{reviewed}/accept", json={"note": "确有违建"}, headers=operator
        )
        assert r.json()["awaiting"] == "shift-leader"
        r = await http.post(f"/cases/{reviewed}/review", json={"approve": True}, headers=leader)
        assert r.status_code == 200 and r.json()["status"] == "accepted"
        r = await http.post(f"/cases/{reviewed}/review", json={"approve": True}, headers=leader)
        assert r.status_code == 409

        timeline = (await http.get(f"/cases/{reviewed}/timeline", headers=operator)).json()
        kinds = [t["type"] for t in timeline]
        assert kinds == [
            "gridloop.case.reported.v1",
            "gridloop.case.confirmation_requested.v1",
            "gridloop.case.confirmed.v1",
            "intake.queued",
            "intake.proposed",
            "intake.review_declined",
            "intake.proposed",
            "gridloop.case.accepted.v1",
        ]
        reasons = (await http.get("/reject-reasons", headers=operator)).json()
        assert "not-in-entry-list" in [r["code"] for r in reasons]

    accepted = {e.data["case_id"]: e.data for e in await cases.wait("gridloop.case.accepted.v1", 2)}
    assert accepted[no_category]["category_code"] == "P0301"
    assert accepted[no_category]["urgency"] == "urgent" and accepted[no_category]["auto"] is False
    assert accepted[reviewed]["actor"]["id"] == "op-01"
    rejected = (await cases.wait("gridloop.case.rejected.v1"))[0].data
    assert (rejected["case_id"], rejected["reason_code"]) == (plain, "not-city-management")


async def test_a_withdrawn_overdue_and_its_escalation_are_void_in_the_case_file(
    intake: Harness,
) -> None:
    """超期撤回: dispatch judged the deadline passed (超期, a 督办 naming the grid head) while
    the department's on-time result was on its way, then withdrew both. The case is not
    overdue and never was; its timeline says why; the grid head of a case sent back to the
    department is not told of the withdrawn 督办. A genuine overdue in the rework round
    counts again."""
    from gridloop_runtime.auth import issue_token

    await intake.publish("intake.patrol.patrol-app", report("w-1"))
    case_id = await intake.case_of("patrol-app", "w-1")
    await run_loop(intake, case_id, T0, overdue=True)
    deadline = T0 + timedelta(hours=4)
    await intake.upstream(
        ev.CaseEscalated(
            **dims(case_id, deadline + timedelta(minutes=30), deadline=deadline),
            level=1,
            to_role="grid-head",
            reason="超期未处置，督办至grid-head · 网格长 gh",
            to_user_ids=["gh"],
        )
    )

    async def flags() -> tuple[bool, bool, int]:
        [row] = await intake.fetch(
            "SELECT overdue, ever_overdue, overdue_count FROM cases WHERE case_id = $1", case_id
        )
        return (row["overdue"], row["ever_overdue"], row["overdue_count"])

    async def lines(kind: str) -> int:
        n: int = await intake.value(
            "SELECT count(*) FROM timeline WHERE case_id = $1 AND type = $2",
            case_id,
            f"gridloop.case.{kind}.v1",
        )
        return n

    await wait_for(lambda: lines("escalated"), what="the escalation on file")
    assert await flags() == (True, True, 1)
    answered = deadline - timedelta(minutes=5)
    await intake.upstream(
        ev.CaseHandled(**dims(case_id, answered), result="已更换垃圾桶", completed_at=answered),
        "handling",
    )
    await intake.upstream(
        ev.CaseOverdueWithdrawn(
            **dims(case_id, deadline + timedelta(hours=1), deadline=deadline),
            stage="handling",
            overdue_at=deadline,
            answered_at=answered,
            escalation_levels=[1],
        )
    )
    await wait_for(lambda: lines("overdue_withdrawn"), what="the withdrawal on file")
    assert await flags() == (False, False, 0)
    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        r = await http.get("/cases?overdue=true", headers=operator)
        assert r.status_code == 200 and r.json()["cases"] == []
        case = (await http.get(f"/cases/{case_id}", headers=operator)).json()
        assert (case["status"], case["overdue"], case["ever_overdue"]) == ("handled", False, False)
        line = case["timeline"][-1]
        assert line["type"] == "gridloop.case.overdue_withdrawn.v1"
        assert line["summary"].startswith("超期撤回：处置结果已于 2026-11-23 13:55 在期限前反馈")
        assert line["note"] == line["summary"]  # not made from the event's own summary

        # sent back: on the grid head's list, without the 督办 withdrawn
        await intake.upstream(
            ev.CaseReworked(**dims(case_id, deadline + timedelta(hours=2)), count=1, reason="未净"),
            "verify",
        )
        cell = await intake.value("SELECT cell_code FROM cases WHERE case_id = $1", case_id)
        token = issue_token(intake.auth, user_id="gh", roles=["grid-head"], territory=[cell])
        head = {"Authorization": f"Bearer {token}"}

        async def sent_back() -> dict[str, Any] | None:
            rows = (await http.get("/grid-head/queue", headers=head)).json()
            found: dict[str, Any] | None = rows[0] if rows else None
            return found

        item = await wait_for(sent_back, what="the case on the grid head's list")
        assert (item["why"], item["escalated_to_me"]) == ("sent_back", None)

    # the rework round overdue in earnest: overdue, and ever was
    late = deadline + timedelta(days=1)
    await intake.upstream(ev.CaseOverdue(**dims(case_id, late, deadline=late)))

    async def overdue_again() -> bool:
        return await flags() == (True, True, 1)

    await wait_for(overdue_again, what="the rework round's overdue")


async def test_the_grid_heads_queue_the_heat_map_and_the_manual_queue(intake: Harness) -> None:
    """A resident's hotline report in one cell is overdue, a patrol report in another waits
    in the manual dispatch queue: the case file says 待人工派遣; the grid head of the first
    cell sees the overdue case with the resident to call back, a grid head elsewhere does
    not; the heat map counts each cell's open cases within the caller's reach."""
    from gridloop_runtime.auth import issue_token

    await intake.publish(
        "intake.hotline.12345",
        report(
            "g-1",
            category_code="E0106",
            reporter_user_id=None,
            reporter={"name": "李四", "phone": "13911112222"},
        ),
    )
    await intake.publish(
        "intake.patrol.patrol-app",
        report("g-2", location=Location(lat=39.92152, lon=116.3999)),
    )
    late = await intake.case_of("12345", "g-1")
    waiting = await intake.case_of("patrol-app", "g-2")
    await run_loop(intake, late, T0, overdue=True)
    await intake.upstream(ev.CaseQueued(case_id=waiting, occurred_at=T0, reason="无匹配的派遣规则"))

    async def settled() -> bool:
        rows = await intake.fetch(
            "SELECT case_id, overdue, status, status_notes FROM cases "
            "WHERE case_id = ANY($1::text[])",
            [late, waiting],
        )
        by = {r["case_id"]: r for r in rows}
        return bool(by[late]["overdue"]) and by[waiting]["status"] == "manual_dispatch"

    await wait_for(settled)
    notes = await intake.value("SELECT status_notes FROM cases WHERE case_id = $1", waiting)
    assert notes.startswith("待人工派遣：无匹配的派遣规则")
    cell = await intake.value("SELECT cell_code FROM cases WHERE case_id = $1", late)

    def head(territory: list[str]) -> dict[str, str]:
        token = issue_token(intake.auth, user_id="gh", roles=["grid-head"], territory=territory)
        return {"Authorization": f"Bearer {token}"}

    async with intake.client() as http:
        r = await http.get("/grid-head/queue", headers=head([cell]))
        assert r.status_code == 200, r.text
        [item] = r.json()
        assert (item["case_id"], item["why"]) == (late, "overdue")
        assert item["call_back"] == [{"name": "李四", "phone": "13911112222", "channel": "hotline"}]
        assert item["escalated_to_me"] is None
        # the ladder's grid-head rung names this grid head (dispatch, calendar.yaml): it shows
        await intake.upstream(
            ev.CaseEscalated(
                case_id=late,
                occurred_at=T0 + timedelta(days=1),
                dept="sanitation",
                level=2,
                to_role="grid-head",
                reason="超期未处置，督办至grid-head · 网格长 gh",
                to_user_ids=["gh"],
            )
        )

        async def escalated_to_me() -> dict[str, Any] | None:
            [row] = (await http.get("/grid-head/queue", headers=head([cell]))).json()
            found: dict[str, Any] | None = row["escalated_to_me"]
            return found

        mine_now: dict[str, Any] = await wait_for(escalated_to_me, what="the escalation heard")
        assert mine_now["level"] == 2 and "网格长 gh" in mine_now["reason"]
        assert (await http.get("/grid-head/queue", headers=head(["110101005"]))).json() == []
        operator = intake.headers("op-01", "operator")
        r = await http.get("/grid-head/queue", headers=operator)
        assert r.status_code == 403
        r = await http.get("/stats/open-by-cell", headers=operator)
        assert r.status_code == 200, r.text
        heat = r.json()
        assert heat["cells"][cell] == {"open": 1, "overdue": 1}
        assert heat["open"] == 2 and heat["overdue"] == 1
        mine = (await http.get("/stats/open-by-cell", headers=head([cell]))).json()
        assert mine["cells"] == {cell: {"open": 1, "overdue": 1}}
