"""The verify rules without I/O: a case's state, an event, timer or command, and a `Step`;
what changed, what was emitted (`step.pending`) and which timers were asked for
(`step.timer_ops`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gridloop_city import Duration, WorkingCalendar
from gridloop_city.models import StageLimit
from gridloop_contracts import Attachment, Envelope
from gridloop_contracts import cases as ev
from gridloop_contracts.problems import Refusal
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.step import Step, Timer, TimerOp
from gridloop_verify.domain.absences import Absences
from gridloop_verify.domain.casefile import Case, Stage
from gridloop_verify.domain.policy import Policy
from gridloop_verify.domain.rules import (
    OVERDUE,
    REMINDER,
    Caller,
    VerifyRules,
    case_of_task,
    timer_case,
)
from gridloop_verify.domain.state import CaseState
from gridloop_verify.domain.tasks import Purpose, Task, TaskStatus

# Monday 23 November 2026, 10:00 in Beijing: a working day, inside office hours.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CAL = WorkingCalendar([(dt.time(9), dt.time(12)), (dt.time(13, 30), dt.time(18))])
CELL = "CELL-1"
SUP, BACKUP, OTHER = "sup-001", "sup-002", "sup-003"
LEAD = Caller("lead-01", ["shift-leader"])
PHOTO = Attachment(url="https://evidence.example.org/1.jpg", kind="photo")
SOURCE = "/gridloop/verify"


@dataclass
class Place:
    """The city as the rules see it: one cell with its pair, one category needing approval."""

    calendar: WorkingCalendar = CAL
    policy: Policy = field(default_factory=lambda: Policy(reopen_categories=("E01*",)))

    def stage_limit(self, purpose: Purpose) -> StageLimit:
        hours = 4 if purpose == "verification" else 2
        return StageLimit(limit=Duration(amount=hours, unit="working_hours"))

    def supervisors_of(self, cell_code: str | None) -> tuple[str, str] | None:
        return (SUP, BACKUP) if cell_code == CELL else None

    def requires_approval(self, category_code: str | None) -> bool:
        return category_code == "E0101"

    def is_supervisor(self, user_id: str) -> bool:
        return user_id.startswith("sup-")


RULES = VerifyRules(Place())


def step(at: datetime = T0, trigger: Envelope | None = None) -> Step:
    return Step(source=SOURCE, clock=FakeClock(at), trigger=trigger)


def fresh(case_id: str = "C1", *away: str) -> CaseState:
    """A case verify has not seen, with `away` absent all day."""
    absences = Absences.of((u, T0 - timedelta(hours=1), T0 + timedelta(days=1)) for u in away)
    return CaseState.loaded(None, case_id, [], absences)


def emitted(s: Step) -> list[tuple[str, str, dict[str, Any]]]:
    return [(subject, env.type, env.data) for subject, env in s.pending]


def types(s: Step) -> list[str]:
    return [env.type for _, env in s.pending]


def dims(case_id: str = "C1", category: str = "E0102") -> dict[str, Any]:
    return {"case_id": case_id, "category_code": category, "cell_code": CELL}


def handled(case_id: str = "C1", category: str = "E0102") -> ev.CaseHandled:
    return ev.CaseHandled(
        **dims(case_id, category),
        occurred_at=T0,
        dept="sanitation",
        task_id=f"T-{case_id}",
        deadline=T0 + timedelta(days=2),
        result="垃圾已清运",
        evidence=[PHOTO],
        completed_at=T0,
    )


def verifying(category: str = "E0102", *away: str) -> CaseState:
    """A case whose result awaits verification (task C1:V1), as loaded: clean."""
    state = fresh("C1", *away)
    RULES.on_handled(state, handled(category=category), step())
    state.clean()
    return state


def verdict(
    state: CaseState, s: Step, passed: bool, who: Caller | None = None, **kw: Any
) -> dict[str, Any]:
    """The verdict on task C1:V1 (by its supervisor, with a photo, notes when failing)."""
    values: dict[str, Any] = {
        "passed": passed,
        "notes": None if passed else "仍有垃圾残留",
        "photos": [PHOTO],
        "position": None,
    }
    values.update(kw)
    return RULES.verify(state, s, "C1:V1", who or Caller(SUP, ["supervisor"]), **values)


# -- a result opens a verification task ---------------------------------------------------
def test_a_result_opens_a_task_for_the_cells_primary_with_its_timers() -> None:
    state, s = fresh(), step()
    RULES.on_handled(state, handled(), s)
    assert state.known and state.case.stage == Stage.VERIFYING
    assert state.case.dept_task_id == "T-C1" and state.case.result == "垃圾已清运"
    [task] = state.tasks.values()
    assert (task.task_id, task.supervisor_id, task.backup_used) == ("C1:V1", SUP, False)
    # 4 working hours from 10:00, over the lunch break: 15:30 Beijing; reminded at 14:30.
    assert task.due == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    assert s.timer_ops == [
        TimerOp(
            "set",
            REMINDER,
            "C1:V1#",
            datetime(2026, 11, 23, 6, 30, tzinfo=UTC),
            {"task_id": "C1:V1"},
        ),
        TimerOp("set", OVERDUE, "C1:V1#", task.due, {"task_id": "C1:V1"}),
    ]
    [(subject, type_, data)] = emitted(s)
    assert subject == "case.verification_assigned"
    assert type_ == ev.CaseVerificationAssigned.type_name
    assert data["supervisor_id"] == SUP and data["purpose"] == "verification"
    assert data["dept"] == "sanitation" and data["task_id"] == "T-C1"
    # the supervisor's own task travels too: the handheld answers it without a listing
    assert data["verification_task_id"] == "C1:V1"
    # The store writes the new case and the new task.
    assert state.case_changed() and state.changed_tasks() == [task]


def test_the_backup_takes_a_new_task_while_the_primary_is_away() -> None:
    state, s = fresh("C1", SUP), step()
    RULES.on_handled(state, handled(), s)
    [task] = state.tasks.values()
    assert task.supervisor_id == BACKUP and task.backup_used
    assert emitted(s)[0][2]["backup_used"] is True


def test_with_both_away_the_task_waits_unannounced_for_the_shift_leader() -> None:
    state, s = fresh("C1", SUP, BACKUP), step()
    RULES.on_handled(state, handled(), s)
    [task] = state.tasks.values()
    assert task.supervisor_id is None and task.is_open
    assert s.pending == [] and [op.kind for op in s.timer_ops] == [REMINDER, OVERDUE]


def test_a_new_result_supersedes_the_open_task() -> None:
    state, s = verifying(), step(T0 + timedelta(hours=1))
    RULES.on_handled(state, handled(), s)
    v1, v2 = state.tasks["C1:V1"], state.tasks["C1:V2"]
    assert v1.status == TaskStatus.CANCELLED and v1.cancel_reason == "superseded"
    assert v2.is_open
    assert s.timer_ops[0] == TimerOp("cancel", None, "C1:V1#")
    assert {op.key for op in s.timer_ops[1:]} == {"C1:V2#"}
    assert state.changed_tasks() == [v1, v2]


def test_a_result_after_closing_changes_nothing() -> None:
    state = verifying()
    state.case.close(T0, SUP)
    state.clean()
    s = step()
    RULES.on_handled(state, handled(), s)
    assert s.pending == [] and s.timer_ops == []
    assert not state.case_changed() and state.changed_tasks() == []


# -- confirmation -------------------------------------------------------------------------
def test_a_confirmation_request_takes_the_requested_due_and_acceptance_cancels_it() -> None:
    state, s = fresh(), step()
    due = T0 + timedelta(hours=3)
    RULES.on_confirmation_requested(
        state,
        ev.CaseConfirmationRequested(
            **dims(), occurred_at=T0, reason="需现场核实", address="东四北大街120号", due=due
        ),
        s,
    )
    [task] = state.tasks.values()
    assert task.task_id == "C1:C1" and task.due == due and task.reason == "需现场核实"
    assert state.case.address == "东四北大街120号"
    [(_, _, data)] = emitted(s)
    assert data["purpose"] == "confirmation" and "dept" not in data

    accepted = step()
    RULES.on_accepted(
        state,
        ev.CaseAccepted(
            case_id="C1",
            occurred_at=T0,
            category_code="E0102",
            cell_code=CELL,
            description="积存垃圾",
        ),
        accepted,
    )
    assert task.status == TaskStatus.CANCELLED and task.cancel_reason == "accepted"
    assert state.case.description == "积存垃圾"
    assert accepted.timer_ops == [TimerOp("cancel", None, "C1:C1#")] and accepted.pending == []


def test_a_rejection_cancels_an_open_confirmation() -> None:
    state = fresh()
    RULES.on_confirmation_requested(
        state, ev.CaseConfirmationRequested(**dims(), occurred_at=T0, reason="核实"), step()
    )
    RULES.on_rejected(
        state,
        ev.CaseRejected(case_id="C1", occurred_at=T0, reason_code="fake", reason="不属实"),
        step(),
    )
    assert state.tasks["C1:C1"].cancel_reason == "rejected"


# -- what only moves the projection -------------------------------------------------------
def test_the_result_names_the_department_deadline_and_an_extension_moves_it() -> None:
    state = verifying()
    assert state.case.dept == "sanitation" and state.case.dept_task_id == "T-C1"
    assert state.case.deadline == T0 + timedelta(days=2)
    later = T0 + timedelta(days=3)
    decided = {"case_id": "C1", "occurred_at": T0, "new_deadline": later}
    RULES.on_extension_decided(state, ev.CaseExtensionDecided(**decided, granted=False), step())
    assert state.case.deadline == T0 + timedelta(days=2)
    RULES.on_extension_decided(state, ev.CaseExtensionDecided(**decided, granted=True), step())
    assert state.case.deadline == later


def test_events_about_a_case_verify_never_saw_keep_nothing() -> None:
    state = fresh()
    at = {"case_id": "C1", "occurred_at": T0}
    RULES.on_extension_decided(
        state, ev.CaseExtensionDecided(**at, granted=True, new_deadline=T0), step()
    )
    RULES.on_recalled(state, ev.CaseRecalled(**at, reason="派遣错误"), step())
    RULES.on_rated(state, ev.CaseRated(**at, rating="dissatisfied"), step())
    assert not state.known and not state.case_changed() and state.changed_tasks() == []


def test_a_recall_cancels_the_verification_and_waits_for_a_new_result() -> None:
    state, s = verifying(), step()
    RULES.on_recalled(state, ev.CaseRecalled(**dims(), occurred_at=T0, reason="派遣错误"), s)
    assert state.case.stage == Stage.WAITING
    assert state.tasks["C1:V1"].cancel_reason == "recalled"
    assert s.timer_ops == [TimerOp("cancel", None, "C1:V1#")]


def test_closing_elsewhere_cancels_every_open_task_but_our_own_closing_is_ignored() -> None:
    closed = ev.CaseClosed(**dims(), occurred_at=T0, closed_by="lead-01", on_time=True)
    ours = verifying()
    RULES.on_closed(ours, closed, step(trigger=Envelope.of(closed, source=SOURCE)))
    assert ours.tasks["C1:V1"].is_open and not ours.case_changed()

    state = verifying()
    s = step(trigger=Envelope.of(closed, source="/gridloop/intake"))
    RULES.on_closed(state, closed, s)
    assert state.case.stage == Stage.CLOSED and state.case.closed_by == "lead-01"
    assert state.tasks["C1:V1"].cancel_reason == "closed"
    assert s.timer_ops == [TimerOp("cancel", None, "C1:V1#")]


def test_a_dissatisfied_rating_reopens_where_configured() -> None:
    state = verifying()
    state.case.close(T0, SUP)
    s = step()
    rated = ev.CaseRated(**dims(), occurred_at=T0, rating="dissatisfied", comment="还有味道")
    RULES.on_rated(state, rated, s)
    assert types(s) == [ev.CaseReopened.type_name, ev.CaseReworked.type_name]
    assert s.pending[1][1].data["count"] == 1 and "还有味道" in s.pending[1][1].data["reason"]
    assert state.case.stage == Stage.REWORKING and state.case.reopenings == 1

    other = verifying("P0101")
    other.case.close(T0, SUP)
    quiet = step()
    RULES.on_rated(other, rated, quiet)
    assert quiet.pending == [] and other.case.stage == Stage.CLOSED


def test_a_level_d_rating_reopens_and_c_does_not() -> None:
    state = verifying()
    state.case.close(T0, SUP)
    fair = step()
    RULES.on_rated(state, ev.CaseRatedV2(**dims(), occurred_at=T0, level="C"), fair)
    assert fair.pending == [] and state.case.stage == Stage.CLOSED
    s = step()
    RULES.on_rated(state, ev.CaseRatedV2(**dims(), occurred_at=T0, level="D", comment="没修"), s)
    assert types(s) == [ev.CaseReopened.type_name, ev.CaseReworked.type_name]
    assert "没修" in s.pending[0][1].data["reason"]


# -- timers -------------------------------------------------------------------------------
def timer(kind: str, task_id: str = "C1:V1") -> Timer:
    return Timer(1, kind, f"{task_id}#", T0, {"task_id": task_id})


def test_timers_belong_to_the_case_of_their_task() -> None:
    assert timer_case(timer(REMINDER, "C:1:V12")) == "C:1"
    assert case_of_task("C1:C3") == "C1" and case_of_task("nope") == "nope"


def test_the_reminder_and_the_overdue_name_the_tasks_own_due() -> None:
    state = verifying()
    task = state.tasks["C1:V1"]
    at = T0 + timedelta(hours=3)
    s = step(at)
    RULES.on_reminder_due(state, timer(REMINDER), s)
    [(_, _, reminded)] = emitted(s)
    assert reminded["stage"] == "verification" and reminded["supervisor_id"] == SUP
    assert datetime.fromisoformat(reminded["deadline"]) == task.due
    assert task.reminded_at == at

    s = step(task.due + timedelta(minutes=1))
    RULES.on_overdue(state, timer(OVERDUE), s)
    [(_, type_, overdue)] = emitted(s)
    assert type_ == ev.CaseOverdue.type_name
    assert datetime.fromisoformat(overdue["occurred_at"]) == task.due
    assert task.overdue_at == task.due and state.changed_tasks() == [task]


def test_timers_of_an_answered_or_unknown_task_do_nothing() -> None:
    state = verifying()
    state.tasks["C1:V1"].cancel("closed")
    state.clean()
    s = step()
    RULES.on_reminder_due(state, timer(REMINDER), s)
    RULES.on_overdue(state, timer(OVERDUE, "C1:V9"), s)
    assert s.pending == [] and state.changed_tasks() == []


# -- commands -----------------------------------------------------------------------------
def test_a_pass_closes_and_cancels_the_tasks_timers() -> None:
    state = verifying()
    s = step(T0 + timedelta(hours=1))
    answer = verdict(state, s, True)
    assert answer["outcome"] == "closed" and answer["status"] == "passed"
    # closed at once: one case.closed v2 carrying the verdict, no case.verified of its own
    assert types(s) == [ev.CaseClosedV2.type_name]
    closed = s.pending[0][1].data
    assert closed["closed_by"] == SUP and closed["on_time"] is True and closed["task_id"] == "T-C1"
    assert closed["verdict"]["passed"] is True and closed["verdict"]["supervisor_id"] == SUP
    assert closed["verdict"]["task_id"] == "T-C1"
    assert s.timer_ops == [TimerOp("cancel", None, "C1:V1#")]
    assert state.case.stage == Stage.CLOSED and state.case_changed()
    assert state.changed_tasks() == [state.tasks["C1:V1"]]


def test_without_closed_v2_a_pass_publishes_the_verdict_then_the_closing() -> None:
    """VERIFY_CLOSED_V2=false (a rollout from consumers that do not read v2): case.verified
    and case.closed v1, as before v2."""
    rules = VerifyRules(Place(policy=Policy(closed_v2=False)))
    state = verifying()
    s = step(T0 + timedelta(hours=1))
    values: dict[str, Any] = {"passed": True, "notes": None, "photos": [PHOTO], "position": None}
    answer = rules.verify(state, s, "C1:V1", Caller(SUP, ["supervisor"]), **values)
    assert answer["outcome"] == "closed"
    assert types(s) == [ev.CaseVerifiedV2.type_name, ev.CaseClosed.type_name]
    assert "verdict" not in s.pending[1][1].data


def test_a_pass_in_a_category_needing_approval_waits_and_the_shift_leader_closes() -> None:
    state = verifying("E0101")
    s = step()
    assert verdict(state, s, True)["outcome"] == "awaiting_approval"
    assert types(s) == [ev.CaseVerifiedV2.type_name]
    with pytest.raises(Refusal) as err:
        RULES.approve(state, step(), Caller(SUP, ["supervisor"]), approved=True, notes=None)
    assert err.value.status == 403
    approved = step()
    answer = RULES.approve(state, approved, LEAD, approved=True, notes=None)
    assert answer["outcome"] == "closed"
    [(_, _, closed)] = emitted(approved)
    assert closed["approved_by"] == "lead-01" and closed["closed_by"] == SUP


def test_no_approval_of_a_case_verify_never_saw() -> None:
    with pytest.raises(Refusal) as err:
        RULES.approve(fresh(), step(), LEAD, approved=True, notes=None)
    assert err.value.status == 404 and err.value.code == "not-found"


def test_failures_rework_and_the_third_escalates() -> None:
    state = verifying()
    for n in (1, 2, 3):
        if n > 1:
            RULES.on_handled(state, handled(), step())
        s = step()
        answer = RULES.verify(
            state,
            s,
            f"C1:V{n}",
            Caller(SUP, ["supervisor"]),
            passed=False,
            notes="仍有垃圾残留",
            photos=[],
            position=None,
        )
        expected = [ev.CaseVerifiedV2.type_name, ev.CaseReworked.type_name]
        if n == 3:
            expected.append(ev.CaseEscalated.type_name)
        assert types(s) == expected
        assert answer["outcome"] == ("escalated" if n == 3 else "reworked")
    assert state.case.failures == 3 and state.case.stage == Stage.REWORKING


def test_a_verdict_is_refused_without_its_evidence_or_by_the_wrong_person() -> None:
    state = verifying()
    cases: list[tuple[bool, dict[str, Any], str]] = [
        (False, {"notes": "  "}, "notes-required"),
        (True, {"photos": []}, "photo-required"),
        (True, {"who": Caller(OTHER, ["supervisor"])}, "not-assigned"),
        (True, {"who": Caller("sanitation-ops", ["department"])}, "separation-of-duties"),
    ]
    for passed, kw, code in cases:
        s = step()
        with pytest.raises(Refusal) as err:
            verdict(state, s, passed, **kw)
        assert err.value.code == code
        assert s.pending == []
    assert state.tasks["C1:V1"].is_open
    with pytest.raises(Refusal) as err:
        RULES.verify(
            state,
            step(),
            "C1:V7",
            Caller(SUP, ["supervisor"]),
            passed=True,
            notes=None,
            photos=[PHOTO],
            position=None,
        )
    assert err.value.status == 404


def test_a_supervisor_marks_a_falsified_result_with_evidence_and_it_is_counted() -> None:
    state = verifying()
    s = step()
    answer = verdict(state, s, False, notes="反馈照片非本处，垃圾未清运", falsified=True)
    assert answer["outcome"] == "reworked" and answer["falsified"] is True
    assert types(s) == [ev.CaseVerifiedV2.type_name, ev.CaseReworked.type_name]
    data = s.pending[0][1].data
    assert data["falsified"] is True and data["passed"] is False
    assert data["falsification"] == {
        "notes": "反馈照片非本处，垃圾未清运",
        "evidence": [{"url": str(PHOTO.url), "kind": "photo"}],
        "marked_by": SUP,
        "role": "supervisor",
    }
    assert state.case.falsifications == 1 and state.tasks["C1:V1"].falsified


def test_an_ordinary_verdict_says_it_is_not_falsified() -> None:
    state = verifying()
    s = step()
    verdict(state, s, False)
    data = s.pending[0][1].data
    assert data["falsified"] is False and "falsification" not in data
    assert state.case.falsifications == 0


def test_falsified_needs_a_failed_verdict_notes_and_a_photo() -> None:
    state = verifying()
    cases: list[tuple[bool, dict[str, Any], str, str]] = [
        (True, {}, "falsified-passed", "passed"),
        (False, {"photos": []}, "evidence-required", "photos"),
        (False, {"notes": " "}, "notes-required", "notes"),
    ]
    for passed, kw, code, field_ in cases:
        s = step()
        with pytest.raises(Refusal) as err:
            verdict(state, s, passed, falsified=True, **kw)
        assert (err.value.code, err.value.field, err.value.status) == (code, field_, 422)
        assert s.pending == []
    assert state.tasks["C1:V1"].is_open and state.case.falsifications == 0


def test_the_shift_leader_refuses_closing_as_falsified_and_the_verdict_is_recorded() -> None:
    state = verifying("E0101")
    assert verdict(state, step(), True)["outcome"] == "awaiting_approval"
    s = step()
    answer = RULES.approve(
        state, s, LEAD, approved=False, notes="照片与现场不符", falsified=True, photos=[PHOTO]
    )
    assert answer["outcome"] == "reworked" and answer["falsifications"] == 1
    assert types(s) == [ev.CaseVerifiedV2.type_name, ev.CaseReworked.type_name]
    v = s.pending[0][1].data
    # the verdict is the shift leader's review of the supervisor's pass
    assert v["falsified"] is True and v["passed"] is False and v["supervisor_id"] == SUP
    assert v["actor"]["role"] == "shift-leader" and v["falsification"]["marked_by"] == "lead-01"
    assert v["falsification"]["role"] == "shift-leader"
    assert "弄虚作假" in s.pending[1][1].data["reason"]


def test_only_supervisors_and_shift_leaders_mark_falsified() -> None:
    state = verifying("E0101")
    verdict(state, step(), True)
    admin = Caller("admin", ["admin"])
    cases: list[tuple[Caller, dict[str, Any], str, int]] = [
        (admin, {"approved": False, "notes": "假", "photos": [PHOTO]}, "forbidden", 403),
        (LEAD, {"approved": True, "notes": "假", "photos": [PHOTO]}, "falsified-passed", 422),
        (LEAD, {"approved": False, "notes": "假", "photos": []}, "evidence-required", 422),
    ]
    for who, kw, code, status in cases:
        s = step()
        with pytest.raises(Refusal) as err:
            RULES.approve(state, s, who, falsified=True, **kw)
        assert (err.value.code, err.value.status) == (code, status)
        assert s.pending == []
    assert state.case.stage == Stage.AWAITING_APPROVAL and state.case.falsifications == 0
    # a department never reaches the verdict at all
    with pytest.raises(Refusal) as err:
        verdict(
            verifying(),
            step(),
            False,
            who=Caller("sanitation-ops", ["department"]),
            falsified=True,
        )
    assert err.value.code == "separation-of-duties"


def test_the_backup_confirms_a_confirmation_task() -> None:
    state = fresh()
    RULES.on_confirmation_requested(
        state, ev.CaseConfirmationRequested(**dims(), occurred_at=T0, reason="核实"), step()
    )
    s = step()
    answer = RULES.confirm(
        state,
        s,
        "C1:C1",
        Caller(BACKUP, ["supervisor"]),
        confirmed=False,
        notes="现场未发现",
        photos=[],
        position=None,
    )
    assert answer["status"] == "refuted"
    [(_, _, data)] = emitted(s)
    assert data["confirmed"] is False and data["supervisor_id"] == BACKUP
    assert s.timer_ops == [TimerOp("cancel", None, "C1:C1#")]


def test_the_shift_leader_assigns_an_unstaffed_task() -> None:
    state = verifying("E0102", SUP, BACKUP)
    with pytest.raises(Refusal) as err:
        RULES.assign(state, step(), "C1:V1", LEAD, supervisor_id="sanitation-ops")
    assert err.value.field == "supervisor_id"
    s = step()
    answer = RULES.assign(state, s, "C1:V1", LEAD, supervisor_id=OTHER)
    assert answer["supervisor_id"] == OTHER and answer["backup_used"] is True
    [(_, _, data)] = emitted(s)
    assert data["supervisor_id"] == OTHER and data["actor"]["role"] == "shift-leader"


def test_an_absence_hands_the_absent_holders_tasks_to_the_backup() -> None:
    state = verifying()
    state.absences = Absences.of([(SUP, T0, T0 + timedelta(days=1))])
    s = step()
    assert RULES.hand_over(state, s, [SUP]) == ["C1:V1"]
    assert state.tasks["C1:V1"].supervisor_id == BACKUP
    [(_, _, data)] = emitted(s)
    assert data["supervisor_id"] == BACKUP and data["backup_used"] is True
    # Nobody else absent, nothing held by them: nothing moves.
    assert RULES.hand_over(state, step(), [OTHER]) == []


# -- the state ----------------------------------------------------------------------------
def test_a_loaded_state_is_clean_until_a_rule_changes_it() -> None:
    case = Case(case_id="C1", stage=Stage.VERIFYING, cell_code=CELL)
    task = Task("C1:V1", "C1", "verification", T0, T0 + timedelta(hours=4), supervisor_id=SUP)
    state = CaseState.loaded(case, "C1", [task], Absences())
    assert state.known and not state.case_changed() and state.changed_tasks() == []
    task.photos = [{"url": "x"}]
    assert state.changed_tasks() == [task] and not state.case_changed()
    with pytest.raises(RuntimeError):
        CaseState.loaded(None, "C2", [], Absences(loaded=False)).absences.absent_at(T0)
