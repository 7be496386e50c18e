"""The verify rules without I/O: roster (AB 角), timeliness, verdicts, approvals, ratings,
task life and who may act."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime, timedelta

import pytest
from gridloop_city import Duration, WorkingCalendar
from gridloop_runtime.commands import Refusal
from gridloop_verify.domain import roster, timeliness
from gridloop_verify.domain.casefile import Case, Stage
from gridloop_verify.domain.policy import Policy, matches, parse_patterns
from gridloop_verify.domain.tasks import Task, TaskStatus, check_may_act, check_shift_leader

# Monday 23 November 2026, 10:00 in Beijing.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CAL = WorkingCalendar([(dt.time(9), dt.time(12)), (dt.time(13, 30), dt.time(18))])
POLICY = Policy(escalate_after=3, reopen_categories=("E01*",))


def verifying(**kw: object) -> Case:
    case = Case(case_id="C1", category_code="E0102", dept="sanitation", **kw)  # type: ignore[arg-type]
    assert case.result_reported()
    return case


def task(**kw: object) -> Task:
    values: dict[str, object] = {
        "task_id": "C1:V1",
        "case_id": "C1",
        "purpose": "verification",
        "assigned_at": T0,
        "due": T0 + timedelta(hours=4),
        "supervisor_id": "sup-001",
    }
    values.update(kw)
    return Task(**values)  # type: ignore[arg-type]


# -- roster -------------------------------------------------------------------------------
def test_primary_takes_the_task_when_present() -> None:
    a = roster.assign(("sup-001", "sup-002"), absent=set())
    assert (a.supervisor_id, a.backup_used, a.unassigned) == ("sup-001", False, False)


def test_backup_takes_the_task_when_primary_absent() -> None:
    a = roster.assign(("sup-001", "sup-002"), absent={"sup-001"})
    assert (a.supervisor_id, a.backup_used, a.primary) == ("sup-002", True, "sup-001")


def test_nobody_present_leaves_the_task_to_the_shift_leader() -> None:
    a = roster.assign(("sup-001", "sup-002"), absent={"sup-001", "sup-002"})
    assert a.unassigned and not a.backup_used
    assert roster.assign(None, absent=set()).unassigned


def test_only_the_backup_absent_changes_nothing() -> None:
    assert roster.assign(("sup-001", "sup-002"), absent={"sup-002"}).supervisor_id == "sup-001"


def test_cover_moves_a_task_from_an_absent_holder_to_the_present_one() -> None:
    pair = ("sup-001", "sup-002")
    moved = roster.cover("sup-001", pair, {"sup-001"})
    assert moved is not None and moved.supervisor_id == "sup-002" and moved.backup_used
    # Back from the backup to the primary when the backup is the one away.
    back = roster.cover("sup-002", pair, {"sup-002"})
    assert back is not None and back.supervisor_id == "sup-001" and not back.backup_used


def test_cover_keeps_a_present_holder_and_never_moves_to_nobody() -> None:
    pair = ("sup-001", "sup-002")
    assert roster.cover("sup-001", pair, set()) is None
    assert roster.cover("sup-001", pair, {"sup-001", "sup-002"}) is None
    assert roster.cover("sup-009", None, {"sup-009"}) is None


def test_cover_staffs_an_unassigned_task_when_someone_is_back() -> None:
    moved = roster.cover(None, ("sup-001", "sup-002"), {"sup-001"})
    assert moved is not None and moved.supervisor_id == "sup-002"


def test_members_of_a_pair() -> None:
    assert roster.members(("a", "b")) == {"a", "b"}
    assert roster.members(None) == frozenset()


# -- timeliness ---------------------------------------------------------------------------
def test_verification_due_counts_working_hours_across_lunch() -> None:
    due = timeliness.task_due(CAL, T0, Duration(amount=4, unit="working_hours"))
    # 10:00–12:00 is 2 h, then 13:30 + 2 h = 15:30 Beijing.
    assert due == datetime(2026, 11, 23, 15, 30, tzinfo=CAL.tz)


def test_due_skips_the_weekend() -> None:
    friday_5pm = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 17:00 Beijing
    due = timeliness.task_due(CAL, friday_5pm, Duration(amount=4, unit="working_hours"))
    assert due == datetime(2026, 11, 30, 12, 0, tzinfo=CAL.tz)  # Monday noon


def test_requested_due_wins_only_when_in_the_future() -> None:
    limit = Duration(amount=2, unit="working_hours")
    later = T0 + timedelta(days=2)
    assert timeliness.task_due(CAL, T0, limit, later) == later
    assert timeliness.task_due(CAL, T0, limit, T0 - timedelta(hours=1)) == CAL.add_duration(
        T0, limit
    )


def test_reminder_at_three_quarters_of_working_time() -> None:
    due = timeliness.task_due(CAL, T0, Duration(amount=4, unit="working_hours"))
    at = timeliness.reminder_at(CAL, T0, due, 0.75)
    assert at == datetime(2026, 11, 23, 14, 30, tzinfo=CAL.tz)  # 3 working hours in


def test_no_reminder_without_time_to_remind_in() -> None:
    assert timeliness.reminder_at(CAL, T0, T0, 0.75) is None
    assert timeliness.reminder_at(CAL, T0, T0 - timedelta(minutes=5), 0.75) is None


def test_on_time_is_inclusive_and_unknown_deadline_is_on_time() -> None:
    assert timeliness.on_time(T0, T0)
    assert not timeliness.on_time(T0 + timedelta(seconds=1), T0)
    assert timeliness.on_time(T0, None)


# -- policy -------------------------------------------------------------------------------
def test_patterns_parse_and_match() -> None:
    pats = parse_patterns(" E01*, P0101 ,,")
    assert pats == ("E01*", "P0101")
    assert matches(pats, "E0102") and matches(pats, "P0101")
    assert not matches(pats, "P0102") and not matches(pats, None)
    assert matches(("*",), None)
    assert not matches((), "E0102")


def test_escalation_level_starts_at_the_nth_failure() -> None:
    p = Policy(escalate_after=3)
    assert [p.escalation_level(n) for n in range(1, 6)] == [None, None, 1, 2, 3]
    with pytest.raises(ValueError):
        Policy(escalate_after=0)


# -- verdicts -----------------------------------------------------------------------------
def stage_of(case: Case) -> Stage:
    """`case.stage` read afresh: mypy keeps the narrowing of an `assert case.stage == ...`
    across the calls that change the stage, and would take the next assert for impossible."""
    return case.stage


def test_a_result_opens_verification_but_not_on_a_closed_case() -> None:
    case = Case(case_id="C1")
    assert case.result_reported() and stage_of(case) == Stage.VERIFYING
    case.close(T0, "sup-001")
    assert not case.result_reported() and stage_of(case) == Stage.CLOSED


def test_pass_closes() -> None:
    case = verifying()
    out = case.verdict(passed=True, supervisor_id="sup-001", requires_approval=False, policy=POLICY)
    assert out.close and out.closed_by == "sup-001" and out.kind == "closed"
    assert out.rework_count is None and out.escalation_level is None


def test_pass_waits_for_the_shift_leader_where_the_category_says_so() -> None:
    case = verifying()
    out = case.verdict(passed=True, supervisor_id="sup-001", requires_approval=True, policy=POLICY)
    assert out.await_approval and not out.close
    assert case.stage == Stage.AWAITING_APPROVAL and case.passed_by == "sup-001"


def test_fail_reworks_and_counts() -> None:
    case = verifying()
    out = case.verdict(
        passed=False, supervisor_id="sup-001", requires_approval=False, policy=POLICY
    )
    assert out.rework_count == 1 and out.kind == "reworked" and out.escalation_level is None
    assert case.stage == Stage.REWORKING and case.failures == 1


def test_the_nth_failure_escalates_and_later_ones_climb() -> None:
    case = verifying()
    levels = []
    for _ in range(4):
        case.result_reported()
        out = case.verdict(
            passed=False, supervisor_id="sup-001", requires_approval=False, policy=POLICY
        )
        levels.append(out.escalation_level)
    assert levels == [None, None, 1, 2]
    assert case.failures == 4 and case.reworks == 4


def test_no_verdict_unless_verifying() -> None:
    case = Case(case_id="C1")
    with pytest.raises(Refusal) as err:
        case.verdict(passed=True, supervisor_id="s", requires_approval=False, policy=POLICY)
    assert err.value.code == "not-verifying" and err.value.status == 409


def test_closing_on_time_is_judged_against_the_department_deadline() -> None:
    case = verifying(deadline=T0)
    assert case.close(T0, "sup-001") is True
    late = verifying(deadline=T0)
    assert late.close(T0 + timedelta(minutes=1), "sup-001") is False
    assert late.closed_at == T0 + timedelta(minutes=1) and late.stage == Stage.CLOSED


# -- approvals ----------------------------------------------------------------------------
def awaiting() -> Case:
    case = verifying()
    case.verdict(passed=True, supervisor_id="sup-001", requires_approval=True, policy=POLICY)
    return case


def test_approval_closes_in_the_verifiers_name() -> None:
    out = awaiting().approval(approved=True, approver="lead-01")
    assert out.close and out.closed_by == "sup-001" and out.approved_by == "lead-01"


def test_refused_approval_reworks() -> None:
    case = awaiting()
    out = case.approval(approved=False, approver="lead-01")
    assert out.rework_count == 1 and case.stage == Stage.REWORKING and case.failures == 0


def test_the_verifier_may_not_approve_their_own_pass() -> None:
    with pytest.raises(Refusal) as err:
        awaiting().approval(approved=True, approver="sup-001")
    assert err.value.status == 403 and err.value.code == "separation-of-duties"


def test_no_approval_unless_awaiting_one() -> None:
    with pytest.raises(Refusal) as err:
        verifying().approval(approved=True, approver="lead-01")
    assert err.value.code == "not-awaiting-approval"


# -- ratings and recalls -----------------------------------------------------------------
def closed(category: str = "E0102") -> Case:
    case = verifying()
    case.category_code = category
    case.close(T0, "sup-001")
    return case


def test_dissatisfied_reopens_where_configured() -> None:
    case = closed()
    assert case.rated(level="D", policy=POLICY) == 1
    assert case.stage == Stage.REWORKING and case.reopenings == 1 and case.closed_at is None


def test_dissatisfied_elsewhere_or_satisfied_changes_nothing() -> None:
    assert closed("P0101").rated(level="D", policy=POLICY) is None
    assert closed().rated(level="C", policy=POLICY) is None
    assert closed().rated(level="D", policy=Policy()) is None
    assert verifying().rated(level="D", policy=POLICY) is None


def test_recall_waits_for_a_new_result_but_never_reopens() -> None:
    case = verifying()
    case.recalled()
    assert case.stage == Stage.WAITING
    done = closed()
    done.recalled()
    assert done.stage == Stage.CLOSED


def test_closed_elsewhere_keeps_our_own_closing() -> None:
    case = closed()
    case.closed_elsewhere(T0 + timedelta(hours=1), "someone")
    assert case.closed_by == "sup-001" and case.closed_at == T0


def test_task_ids_are_per_case_and_purpose() -> None:
    case = Case(case_id="C9")
    assert case.next_task_id("confirmation") == "C9:C1"
    assert case.next_task_id("verification") == "C9:V2"


def test_events_carry_the_department_task_forward() -> None:
    case = verifying(dept_task_id="T-1", deadline=T0)
    dims = case.task_dims()
    assert dims["dept"] == "sanitation" and dims["task_id"] == "T-1" and dims["deadline"] == T0


# -- tasks --------------------------------------------------------------------------------
def submit(t: Task, **kw: object) -> bool:
    values: dict[str, object] = {
        "purpose": "verification",
        "by": "sup-001",
        "at": T0 + timedelta(hours=1),
        "outcome": TaskStatus.PASSED,
        "notes": None,
        "photos": [],
        "position": None,
    }
    values.update(kw)
    return t.submit(**values)  # type: ignore[arg-type]


def test_submit_on_time_and_late() -> None:
    assert submit(task()) is True
    late = task()
    assert submit(late, at=late.due + timedelta(seconds=1)) is False
    assert late.status == TaskStatus.PASSED and late.submitted_by == "sup-001"


def test_a_task_answers_once() -> None:
    t = task()
    submit(t)
    with pytest.raises(Refusal) as err:
        submit(t)
    assert err.value.code == "task-closed" and err.value.status == 409


def test_a_confirmation_task_takes_no_verdict() -> None:
    with pytest.raises(Refusal) as err:
        submit(task(purpose="confirmation"))
    assert err.value.code == "wrong-purpose"


def test_cancel_only_open_tasks() -> None:
    t = task()
    assert t.cancel("closed") and t.status == TaskStatus.CANCELLED
    assert not t.cancel("again")
    assert t.timer_key() == "C1:V1#"


# -- who may act --------------------------------------------------------------------------
PAIR = {"sup-001", "sup-002"}


def test_the_assigned_supervisor_and_the_backup_may_act() -> None:
    check_may_act("sup-001", {"supervisor"}, task(), PAIR)
    check_may_act("sup-002", {"supervisor"}, task(), PAIR)
    # A shift leader's manual assignment outside the pair counts too.
    check_may_act("sup-077", {"supervisor"}, task(supervisor_id="sup-077"), PAIR)


@pytest.mark.parametrize(
    ("user", "roles", "code"),
    [
        ("sanitation-ops", {"department"}, "separation-of-duties"),
        ("sup-001", {"supervisor", "department"}, "separation-of-duties"),
        ("disp-01", {"dispatcher"}, "forbidden"),
        ("op-01", {"operator"}, "forbidden"),
        ("admin", {"admin"}, "forbidden"),
        ("sup-003", {"supervisor"}, "not-assigned"),
    ],
)
def test_everybody_else_is_refused(user: str, roles: set[str], code: str) -> None:
    with pytest.raises(Refusal) as err:
        check_may_act(user, roles, task(), PAIR)
    assert err.value.status == 403 and err.value.code == code
    assert err.value.field == "Authorization"


def test_dispatcher_refusal_names_the_command_centre() -> None:
    with pytest.raises(Refusal) as err:
        check_may_act("disp-01", {"dispatcher"}, task(), PAIR)
    assert "dispatcher" in err.value.reason


def test_shift_leader_check() -> None:
    check_shift_leader({"shift-leader", "operator"}, "approve")
    check_shift_leader({"admin"}, "approve")
    for roles in ({"supervisor"}, {"department"}, {"dispatcher"}):
        with pytest.raises(Refusal) as err:
            check_shift_leader(roles, "approve")
        assert err.value.status == 403
