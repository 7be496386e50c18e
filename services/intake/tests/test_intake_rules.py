"""The case file's rules without I/O: a state, an event or a command, a Step; what changed,
what was emitted, what the store would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gridloop_city.models import CASE_STATUSES, Source
from gridloop_contracts import Actor, CaseStatus, Envelope, Location
from gridloop_contracts import cases as ev
from gridloop_contracts.inbound import Reporter
from gridloop_intake.context import Intake
from gridloop_intake.domain.case import CaseFile, CaseRow
from gridloop_intake.domain.duplicates import Match
from gridloop_intake.domain.inbound import IncomingReport
from gridloop_intake.domain.placement import Placement, place
from gridloop_intake.domain.problems import Refused
from gridloop_intake.domain.rules import CaseRules, Move, Operator
from gridloop_intake.handlers import CASE_FILE_EVENTS, case_file_rules
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.step import Step
from pydantic import ValidationError

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CASE = "110101-20261123-000001"
CELL = "1101010010010030"
ENTRY_LISTED_CELL = "1101010020010001"
STATUS = "gridloop.case.status.v1"


@pytest.fixture
def rules(intake_state: Intake) -> CaseRules:
    return intake_state.rules


def step(at: datetime = T0) -> Step:
    return Step(source="/gridloop/intake", clock=FakeClock(at))


def from_service(s: Step, event: ev.CaseEvent, service: str = "dispatch") -> Step:
    s.trigger = Envelope.of(event, source=f"/gridloop/{service}", subject=event.case_id)
    return s


def a_case(rules: CaseRules, status: CaseStatus, **kw: Any) -> CaseFile:
    cell = rules.city.cell(kw.pop("cell_code", CELL))
    assert cell is not None
    values: dict[str, Any] = {
        "case_id": CASE,
        "status": status.value,
        "status_notes": None,
        "channel": "patrol",
        "source": "patrol-app",
        "external_id": "p-1",
        "report_id": "r-1",
        "category_code": "P0301",
        "urgency": "normal",
        "description": "垃圾桶破损",
        "cell_code": cell.code,
        "community_code": cell.community_code,
        "subdistrict_code": cell.subdistrict_code,
        "lon": 116.4003,
        "lat": 39.9,
        "located_by": "coordinates",
        "address": None,
        "part_code": None,
        "part_owner_dept": None,
        "camera_id": None,
        "confidence": None,
        "reporter": None,
        "reporter_user_id": "sup-001",
        "attachments": [],
        "reported_at": T0,
        "received_at": T0,
        "updated_at": T0,
        "targets": [["patrol-app", "p-1"]],
    }
    values.update(kw)
    return CaseFile(CASE, CaseRow(**values))


def told(s: Step) -> list[dict[str, Any]]:
    return [env.data for subject, env in s.pending if env.type == STATUS]


def emitted(s: Step) -> list[str]:
    return [env.type for _, env in s.pending if env.type != STATUS]


def task(**kw: Any) -> dict[str, Any]:
    return {"case_id": CASE, "occurred_at": T0, "dept": "sanitation", "task_id": "t-1", **kw}


# -- the handler table ---------------------------------------------------------------------------
def test_the_table_takes_every_case_event_but_intakes_own(rules: CaseRules) -> None:
    table = case_file_rules(rules)
    own = {
        ev.CaseReported,
        ev.CaseMerged,
        ev.CaseConfirmationRequested,
        ev.CaseAccepted,
        ev.CaseAcceptedV2,
        ev.CaseRejected,
        ev.CaseRated,
        ev.CaseRatedV2,
        ev.CaseCalledBack,
        ev.CaseEvidenceAdded,
    }
    every = {m for m in vars(ev).values() if isinstance(m, type) and issubclass(m, ev.CaseEvent)}
    taken = set(CASE_FILE_EVENTS)
    assert taken == {m for m in every - own if "subject_token" in vars(m)}
    assert "case.dispatched" in table.subjects and "case.accepted" not in table.subjects


# -- events of the other services ------------------------------------------------------------------
def test_a_dispatch_moves_the_status_sets_the_columns_and_tells_the_source(
    rules: CaseRules,
) -> None:
    state = a_case(rules, CaseStatus.ACCEPTED)
    deadline = T0 + timedelta(hours=4)
    event = ev.CaseDispatched(**task(deadline=deadline))
    s = from_service(step(T0 + timedelta(minutes=1)), event)
    rules.record(state, event, s)
    case = state.case
    assert case is not None and state.changed and not state.new
    assert case.status == "dispatched" and case.dept == "sanitation" and case.deadline == deadline
    assert case.updated_at == T0 + timedelta(minutes=1)
    assert case.status_notes is not None and "区环境卫生服务中心" in case.status_notes
    [entry] = state.entries
    assert s.trigger is not None and entry.event_id == s.trigger.id
    assert (entry.type, entry.status) == ("gridloop.case.dispatched.v1", "dispatched")
    assert told(s) == []  # the patrol app hears a report's fate and closing, not a dispatch
    assert s.timer_ops == []


def test_each_source_hears_the_statuses_it_asked_for_and_a_hotline_every_change(
    rules: CaseRules,
) -> None:
    state = a_case(rules, CaseStatus.ACCEPTED, targets=[["patrol-app", "p-1"], ["12345", "h-1"]])
    event = ev.CaseDispatched(**task(deadline=T0 + timedelta(hours=4)))
    s = from_service(step(T0 + timedelta(minutes=1)), event)
    rules.record(state, event, s)
    [notice] = told(s)
    assert notice["external_id"] == "h-1" and notice["status"] == "dispatched"
    assert s.pending[0][0] == "notify.12345"

    closed = ev.CaseClosed(**task(), closed_by="sup-001", on_time=True)
    s = from_service(step(T0 + timedelta(hours=2)), closed, "verify")
    rules.record(state, closed, s)
    assert sorted(subject for subject, _ in s.pending if subject.startswith("notify.")) == [
        "notify.12345",
        "notify.patrol-app",
    ]


def test_a_source_asking_for_an_unknown_status_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="unknown status finished"):
        Source(code="x", name="x", channel="hotline", notify=("closed", "finished"))
    assert Source(code="y", name="y", channel="hotline").told("signed")


def test_the_city_knows_every_case_status_by_name() -> None:
    assert set(CASE_STATUSES) == {s.value for s in CaseStatus}


def test_an_event_before_the_case_is_on_file_is_kept_on_the_timeline(rules: CaseRules) -> None:
    state = CaseFile(CASE)
    event = ev.CaseSigned(**task())
    s = from_service(step(), event, "handling")
    rules.record(state, event, s)
    assert state.case is None and not state.changed and len(state.entries) == 1
    assert state.entries[0].status == "signed" and s.pending == []
    assert state.dirty


def test_a_late_event_does_not_reopen_a_closed_case(rules: CaseRules) -> None:
    state = a_case(rules, CaseStatus.CLOSED, closed_at=T0)
    event = ev.CaseProgress(**task(), note="补记")
    s = from_service(step(), event, "handling")
    rules.record(state, event, s)
    assert state.case is not None and state.case.status == "closed"
    assert state.entries[0].status is None and told(s) == []


def overdue_withdrawn(
    stage: str = "handling", levels: tuple[int, ...] = (), **kw: Any
) -> ev.CaseOverdueWithdrawn:
    """超期撤回 as dispatch sends it: the overdue judged at the deadline, the answer taken by
    handling five minutes before it."""
    deadline = T0 + timedelta(hours=4)
    return ev.CaseOverdueWithdrawn(
        **task(occurred_at=deadline + timedelta(minutes=1), deadline=deadline, **kw),
        stage=stage,
        overdue_at=deadline,
        answered_at=deadline - timedelta(minutes=5),
        escalation_levels=list(levels),
    )


def record(rules: CaseRules, state: CaseFile, *events: ev.CaseEvent) -> Step:
    """These events of dispatch into the case file, one step each; the last step."""
    s = step()
    for event in events:
        s = from_service(step(event.occurred_at), event)
        rules.record(state, event, s)
    return s


def test_a_withdrawn_overdue_leaves_the_case_never_overdue(rules: CaseRules) -> None:
    state = a_case(rules, CaseStatus.SIGNED, dept="sanitation")
    deadline = T0 + timedelta(hours=4)
    record(rules, state, ev.CaseOverdue(**task(occurred_at=deadline, deadline=deadline)))
    case = state.case
    assert case is not None and case.overdue and case.ever_overdue and case.overdue_count == 1
    s = record(rules, state, overdue_withdrawn(levels=(1, 2)))
    assert (case.overdue, case.ever_overdue, case.overdue_count) == (False, False, 0)
    assert case.status == "signed" and told(s) == []  # nothing the reporter hears of
    line = state.entries[-1]
    assert (line.type, line.status) == ("gridloop.case.overdue_withdrawn.v1", None)
    assert line.summary == (
        "超期撤回：处置结果已于 2026-11-23 13:55 在期限前反馈 / overdue withdrawn: the result "
        "came in time（督办 1、2 级一并撤回 / escalation levels 1, 2 withdrawn with it）"
    )
    assert line.data["escalation_levels"] == [1, 2]


def test_an_earlier_overdue_still_stands_after_a_withdrawal(rules: CaseRules) -> None:
    """Overdue in the first round, reworked; the second round's overdue is withdrawn: the case
    was overdue all the same, and is not overdue now."""
    state = a_case(rules, CaseStatus.SIGNED, dept="sanitation")
    first = T0 + timedelta(hours=1)
    record(
        rules,
        state,
        ev.CaseOverdue(**task(occurred_at=first, deadline=first)),
        ev.CaseHandled(**task(), result="已更换", completed_at=first + timedelta(hours=1)),
        ev.CaseReworked(**task(), count=1, reason="未清理干净"),
        ev.CaseOverdue(**task(occurred_at=T0 + timedelta(hours=4))),
        overdue_withdrawn(),
    )
    case = state.case
    assert case is not None and case.status == "reworking"
    assert (case.overdue, case.ever_overdue, case.overdue_count) == (False, True, 1)


def test_a_row_of_the_previous_release_counts_its_overdue(rules: CaseRules) -> None:
    """A case marked overdue before the count was kept stands as one overdue: withdrawing
    it clears the mark, withdrawing one of a later overdue does not."""
    state = a_case(rules, CaseStatus.SIGNED, overdue=True, ever_overdue=True)
    record(rules, state, overdue_withdrawn())
    case = state.case
    assert case is not None and (case.overdue, case.ever_overdue) == (False, False)
    state = a_case(rules, CaseStatus.SIGNED, ever_overdue=True)
    record(rules, state, ev.CaseOverdue(**task()), overdue_withdrawn())
    case = state.case
    assert case is not None and (case.ever_overdue, case.overdue_count) == (True, 1)


def test_a_withdrawn_sign_in_overdue_changes_no_flag(rules: CaseRules) -> None:
    state = a_case(rules, CaseStatus.DISPATCHED, overdue=True, ever_overdue=True, overdue_count=1)
    s = record(
        rules,
        state,
        ev.CaseOverdue(**task(), stage="sign_in"),
        overdue_withdrawn("sign_in"),
    )
    case = state.case
    assert case is not None and case.status == "dispatched" and told(s) == []
    assert (case.overdue, case.ever_overdue, case.overdue_count) == (True, True, 1)
    assert state.entries[-1].summary == (
        "签收超时撤回：已于 2026-11-23 13:55 按时签收 / sign-in overdue withdrawn: signed in time"
    )


def test_closing_archives_the_case_as_it_stood_with_this_batchs_lines(rules: CaseRules) -> None:
    state = a_case(rules, CaseStatus.VERIFYING, dept="sanitation")
    verified = ev.CaseVerified(**task(), passed=True, supervisor_id="sup-001")
    rules.record(state, verified, from_service(step(), verified, "verify"))
    closed = ev.CaseClosed(**task(), closed_by="sup-001", on_time=True)
    s = from_service(step(T0 + timedelta(hours=1)), closed, "verify")
    rules.record(state, closed, s)
    case, snap = state.case, state.snapshot
    assert case is not None and snap is not None
    assert case.status == "closed" and case.archived and case.closed_at == T0 and case.on_time
    assert snap.closed_at == T0 and snap.case["status"] == "closed"
    assert snap.case["archived"] is False and "targets" not in snap.case
    assert [r["type"] for r in snap.recent] == [
        "gridloop.case.verified.v1",
        "gridloop.case.closed.v1",
    ]
    assert told(s)[0]["status"] == "closed"
    # reopened: out of the archive's reach, rework
    reopened = ev.CaseReopened(**task(), reason="群众不满意")
    rules.record(state, reopened, from_service(step(), reopened, "verify"))
    assert case.status == "reworking" and case.archived is False and case.closed_at is None


def test_a_confirmation_on_site_decides_again(rules: CaseRules) -> None:
    hotline = {"channel": "hotline", "source": "12345", "reporter_user_id": None}
    yes = a_case(rules, CaseStatus.PENDING_CONFIRMATION, category_code="E0104", **hotline)
    event = ev.CaseConfirmed(case_id=CASE, occurred_at=T0, confirmed=True, supervisor_id="sup-1")
    s = from_service(step(), event, "verify")
    rules.record(yes, event, s)
    assert yes.case is not None and yes.case.status == "accepted"
    assert emitted(s) == ["gridloop.case.accepted.v1"]
    accepted = s.pending[0][1].data
    assert accepted["actor"]["id"] == "sup-1" and accepted["auto"] is True
    assert [e.type for e in yes.entries] == [
        "gridloop.case.confirmed.v1",
        "gridloop.case.accepted.v1",
    ]
    assert [n["status"] for n in told(s)] == ["accepted"]

    no = a_case(rules, CaseStatus.PENDING_CONFIRMATION, category_code="E0104", **hotline)
    event = ev.CaseConfirmed(case_id=CASE, occurred_at=T0, confirmed=False, supervisor_id="sup-2")
    s = from_service(step(), event, "verify")
    rules.record(no, event, s)
    assert no.case is not None and no.case.status == "rejected"
    assert s.pending[0][1].data["reason_code"] == "not-confirmed"

    # a repeated confirmation finds the case moved on: a timeline line, nothing else
    s = from_service(step(), event, "verify")
    rules.record(no, event, s)
    assert no.case.status == "rejected" and s.pending == []


# -- the acceptance desk ---------------------------------------------------------------------------
OPERATOR = Operator("op-01", frozenset({"operator"}))
LEADER = Operator("lead-01", frozenset({"shift-leader", "operator"}))


def test_accepting_needs_a_pending_case_and_a_known_category(rules: CaseRules) -> None:
    with pytest.raises(Refused) as refused:
        rules.accept(CaseFile(CASE), step(), OPERATOR, category_code=None, urgency=None, note=None)
    assert refused.value.problems[0].status == 404
    state = a_case(rules, CaseStatus.ACCEPTED)
    with pytest.raises(Refused) as refused:
        rules.accept(state, step(), OPERATOR, category_code=None, urgency=None, note=None)
    assert refused.value.problems[0].code == "not-pending"
    state = a_case(rules, CaseStatus.PENDING_ACCEPTANCE, category_code=None)
    with pytest.raises(Refused) as refused:
        rules.accept(state, step(), OPERATOR, category_code=None, urgency=None, note=None)
    assert refused.value.problems[0].field == "category_code"
    assert not state.dirty

    s = step()
    answer = rules.accept(state, s, OPERATOR, category_code="P0301", urgency="urgent", note=None)
    assert answer == {"case_id": CASE, "status": "accepted"}
    assert state.case is not None and state.case.category_code == "P0301"
    accepted = s.pending[0][1].data
    assert accepted["urgency"] == "urgent" and accepted["auto"] is False
    assert accepted["actor"] == {"id": "op-01", "role": "operator"}


def test_the_shift_leader_reviews_what_an_operator_proposes(rules: CaseRules) -> None:
    state = a_case(
        rules, CaseStatus.PENDING_ACCEPTANCE, category_code="E0101", queue_reason="operator"
    )
    s = step()
    answer = rules.reject(state, s, OPERATOR, reason_code="insufficient-information", reason=None)
    assert answer["awaiting"] == "shift-leader" and s.pending == []
    case = state.case
    assert case is not None and case.queue_reason == "leader-review"
    assert case.proposal is not None and case.proposal["by"] == "op-01"
    assert [e.type for e in state.entries] == ["intake.proposed"]

    s = step()
    answer = rules.review(state, s, LEADER, approve=True, note=None)
    assert answer == {"case_id": CASE, "status": "rejected", "approved": True}
    assert case.proposal is None and case.queue_reason is None
    rejected = s.pending[0][1].data
    assert rejected["reason_code"] == "insufficient-information"
    assert rejected["actor"]["id"] == "op-01"
    assert "值班长 lead-01 审核" not in (case.status_notes or "")
    with pytest.raises(Refused):
        rules.review(state, step(), LEADER, approve=True, note=None)


def test_an_operator_may_ask_for_a_confirmation_on_site(rules: CaseRules) -> None:
    state = a_case(rules, CaseStatus.PENDING_ACCEPTANCE)
    s = step()
    rules.request_confirmation(state, s, OPERATOR, reason=None)
    assert state.case is not None and state.case.status == "pending_confirmation"
    asked = s.pending[0][1].data
    assert asked["reason"] == "受理员 op-01 要求现场核实"
    assert datetime.fromisoformat(asked["due"]) == T0 + timedelta(hours=2)


# -- ratings ---------------------------------------------------------------------------------------
def test_a_rating_once_per_closing_after_closing(rules: CaseRules) -> None:
    who = Actor(id="op-01", role="operator")
    open_case = a_case(rules, CaseStatus.DISPATCHED)
    open_case.rated = set()
    with pytest.raises(Refused) as refused:
        rules.rate(open_case, step(), who, rating="satisfied", comment=None, via="rest")
    assert refused.value.problems[0].code == "not-closed"

    state = a_case(rules, CaseStatus.CLOSED, closed_at=T0, archived=True, dept="sanitation")
    state.rated = set()
    s = step(T0 + timedelta(days=1))
    answer = rules.rate(state, s, who, rating="satisfied", comment="好", via="rest")
    assert answer == {"case_id": CASE, "rating": "B"}  # a v1 rating, mapped to its level
    [row] = state.ratings
    assert (row.closed_at, row.rating, row.via) == (T0, "B", "rest")
    assert state.archive_rating == "B" and state.case is not None
    assert state.case.rating == "B"
    env = s.pending[0][1]
    assert env.type == "gridloop.case.rated.v2"
    assert env.data["dept"] == "sanitation" and env.data["source"] == "patrol-app"
    assert (env.data["level"], env.data["comment"]) == ("B", "好")
    with pytest.raises(Refused) as refused:
        rules.rate(state, step(), who, rating="D", comment=None, via="rest")
    assert refused.value.problems[0].code == "already-rated"
    with pytest.raises(Refused) as refused:
        rules.rate(a_case(rules, CaseStatus.CLOSED, closed_at=T0), step(), who, rating="X",
                   comment=None, via="rest")  # fmt: skip
    assert refused.value.problems[0].field == "rating"


# -- new reports -----------------------------------------------------------------------------------
def a_report(**kw: Any) -> IncomingReport:
    values: dict[str, Any] = {
        "channel": "patrol",
        "source": "patrol-app",
        "external_id": "p-9",
        "description": "垃圾桶破损",
        "reported_at": T0,
        "location": Location(lat=39.9, lon=116.4003),
        "category_code": "P0301",
        "reporter_user_id": "sup-001",
    }
    values.update(kw)
    return IncomingReport(**values)


def opened(
    rules: CaseRules, report: IncomingReport, report_id: str = "r-9"
) -> tuple[CaseFile, Step, Move]:
    """A new case opened by `report` at its location (category P0301)."""
    placement = place(rules.city, location=report.location)
    assert isinstance(placement, Placement)
    state = CaseFile(CASE)
    s = step()
    move = rules.open(
        state, s, report, report_id=report_id, placement=placement, category_code="P0301", data={}
    )
    return state, s, move


def test_a_trusted_supervisors_report_opens_an_accepted_case(rules: CaseRules) -> None:
    report = a_report(reporter=Reporter(name="张三丰", phone="13812345678"))
    state, s, move = opened(rules, report)
    assert move.status == CaseStatus.ACCEPTED and state.new
    case = state.case
    assert case is not None and case.status == "accepted" and case.accepted_at == T0
    assert case.reporter == {"ref": "rp-r-9", "name": "张**", "phone": "138****5678"}
    # 上报 and 立案 at once: one event, the acceptance carrying its report (v2); two lines
    assert emitted(s) == ["gridloop.case.accepted.v2"]
    [accepted] = [env for _, env in s.pending if env.type == "gridloop.case.accepted.v2"]
    assert accepted.data["report"]["report_id"] == "r-9"
    assert accepted.data["report"]["reporter"] == {
        "ref": "rp-r-9",
        "name": "张**",
        "phone": "138****5678",
    }
    assert [n["status"] for n in told(s)] == ["accepted"]
    assert [r.outcome for r in state.reports] == ["new"]
    assert state.reporters[0].phone == "13812345678"
    assert [e.status for e in state.entries] == ["received", "accepted"]
    assert [e.type for e in state.entries] == [
        "gridloop.case.reported.v1",
        "gridloop.case.accepted.v2",
    ]
    assert [e.event_id for e in state.entries] == [f"{accepted.id}#reported", accepted.id]
    assert "report" not in state.entries[1].data


def test_without_accepted_v2_the_report_then_the_acceptance(rules: CaseRules) -> None:
    """INTAKE_ACCEPTED_V2=false (a rollout from consumers that do not read v2): case.reported
    and case.accepted v1, as before v2."""
    v1 = CaseRules(rules.city, rules.calendar, accepted_v2=False)
    _, s, move = opened(v1, a_report())
    assert move.status == CaseStatus.ACCEPTED
    assert emitted(s) == ["gridloop.case.reported.v1", "gridloop.case.accepted.v1"]


def test_a_report_not_accepted_at_once_is_published_as_reported_first(rules: CaseRules) -> None:
    """An untrusted report waits for an operator: its 上报 is a case.reported of its own,
    and the acceptance later is v1."""
    report = a_report(reporter_user_id=None, channel="hotline", source="12345")
    _, s, move = opened(rules, report, "r-11")
    assert move.status != CaseStatus.ACCEPTED
    assert emitted(s)[0] == "gridloop.case.reported.v1"
    assert "gridloop.case.accepted.v2" not in emitted(s)


def test_a_repeat_joins_the_open_case_and_a_camera_folds(rules: CaseRules) -> None:
    state = a_case(rules, CaseStatus.DISPATCHED, status_notes="已派遣")
    s = step()
    notes = rules.merge(
        state,
        s,
        a_report(source="12345", channel="hotline", external_id="h-9"),
        report_id="r-10",
        match=Match(CASE, 12.5),
        data={},
    )
    case = state.case
    assert case is not None and case.reports == 2 and case.status == "dispatched"
    assert case.targets == [["patrol-app", "p-1"], ["12345", "h-9"]]
    assert "已派遣" in notes
    assert emitted(s) == ["gridloop.case.merged.v1"]
    [notice] = told(s)
    assert notice["external_id"] == "h-9" and notice["status"] == "merged"
    assert s.pending[1][0] == "notify.12345"

    s = step()
    rules.fold(state, s, a_report(camera_id="cam-1"), report_id="r-11", data={})
    assert case.detections == 1 and s.pending == [] and state.reports[-1].outcome == "folded"
