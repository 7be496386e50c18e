"""The handling rules without I/O: task life, who may do what when, command keys and answers,
the inbox countdown."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gridloop_city import WorkingCalendar, load_city
from gridloop_contracts import CaseStatus
from gridloop_contracts.department import (
    HandledCommand,
    ReturnCommand,
    SignCommand,
)
from gridloop_handling.domain import commands as cmds
from gridloop_handling.domain.inbox import Countdown
from gridloop_handling.domain.tasks import (
    Task,
    TaskState,
    addressed,
    co_task_id,
    task_for,
    team,
    units_of,
)
from gridloop_runtime.commands import Refusal

# Monday 23 November 2026, 10:00 in Beijing (02:00 UTC): a working day.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(days=1)
SKEW = timedelta(minutes=5)
PHOTO = {"url": "https://evidence.example.org/done.jpg", "kind": "photo"}
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"


def make(
    task_id: str = "T1",
    dept: str = "sanitation",
    role: str = "sole",
    lead: str | None = None,
    group: str | None = None,
    state: TaskState = TaskState.DISPATCHED,
    **kw: Any,
) -> Task:
    return Task(
        task_id=task_id,
        case_id="C1",
        dept=dept,
        role=role,  # type: ignore[arg-type]
        group_id=group or task_id,
        lead=lead or dept,
        deadline=kw.pop("deadline", DEADLINE),
        dispatched_at=kw.pop("dispatched_at", T0),
        state=state,
        **kw,
    )


def refusal(fn: Any, *args: Any, **kwargs: Any) -> Refusal:
    with pytest.raises(Refusal) as info:
        fn(*args, **kwargs)
    return info.value


def handle(task: Task, now: datetime = T0 + timedelta(hours=2), **kw: Any) -> bool:
    args: dict[str, Any] = {
        "result": "清运完毕",
        "evidence": [PHOTO],
        "completed_at": now - timedelta(minutes=10),
        "require_evidence": True,
        "clock_skew": SKEW,
    }
    args.update(kw)
    return task.handle(now, "ops-1", **args)


# -- who gets a task ------------------------------------------------------------------------
def test_a_single_unit_is_the_sole_handler() -> None:
    assert [(u.task_id, u.dept, u.role) for u in units_of("T1", "water", [], None)] == [
        ("T1", "water", "sole")
    ]


def test_co_handlers_get_their_own_tasks_under_the_lead() -> None:
    units = units_of("T1", "gas", ["fire", "emergency"], "gas")
    assert [(u.task_id, u.dept, u.role) for u in units] == [
        ("T1", "gas", "lead"),
        (co_task_id("T1", "fire"), "fire", "co-handler"),
        (co_task_id("T1", "emergency"), "emergency", "co-handler"),
    ]


def test_without_a_named_lead_the_responsible_unit_leads() -> None:
    roles = {u.dept: u.role for u in units_of("T1", "roads", ["drainage"], None)}
    assert roles == {"roads": "lead", "drainage": "co-handler"}


def test_a_dispatch_naming_another_lead_is_a_co_handlers_own_task() -> None:
    units = units_of("T2", "fire", ["gas"], "gas")
    assert [(u.task_id, u.dept, u.role) for u in units] == [("T2", "fire", "co-handler")]


def test_duplicate_co_handlers_and_the_lead_among_them_count_once() -> None:
    units = units_of("T1", "gas", ["gas", "fire", "fire"], None)
    assert [u.dept for u in units] == ["gas", "fire"]


# -- 签收 -----------------------------------------------------------------------------------
def test_sign_in_time_is_recorded_and_judged_against_the_sign_in_due() -> None:
    task = make(sign_in_due=T0 + timedelta(hours=2))
    task.sign(T0 + timedelta(hours=1), "ops-1")
    assert task.state == TaskState.SIGNED
    assert (task.signed_by, task.sign_on_time) == ("ops-1", True)
    late = make(sign_in_due=T0 + timedelta(hours=2))
    late.sign(T0 + timedelta(hours=3), "ops-1")
    assert late.sign_on_time is False


def test_signing_twice_is_refused_naming_who_signed() -> None:
    task = make()
    task.sign(T0, "ops-1")
    r = refusal(task.sign, T0, "ops-2")
    assert (r.code, r.status) == ("already-signed", 409)
    assert "ops-1" in r.reason


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (TaskState.CLOSED, "case-closed"),
        (TaskState.RECALLED, "task-recalled"),
        (TaskState.RETURNED, "task-returned"),
        (TaskState.SUPERSEDED, "task-superseded"),
    ],
)
def test_every_command_on_an_ended_task_is_refused_with_how_it_ended(
    state: TaskState, code: str
) -> None:
    attempts = [
        lambda t: t.sign(T0, "x"),
        lambda t: t.return_(T0, "x", "不是我们的"),
        lambda t: t.request_extension(T0, "x", "需要更多时间", DEADLINE + timedelta(days=1), "r"),
        lambda t: t.add_progress(T0),
        lambda t: handle(t),
    ]
    for attempt in attempts:
        task = make(state=state, ended_at=T0, end_reason="why")
        r = refusal(attempt, task)
        assert (r.code, r.status) == (code, 409)


def test_a_department_acts_only_on_its_own_task() -> None:
    r = refusal(make(dept="water").check_department, "roads")
    assert (r.code, r.status, r.field) == ("wrong-department", 403, "dept")
    make(dept="water").check_department("water")


# -- 处置反馈 -------------------------------------------------------------------------------
def test_a_result_cannot_come_before_sign_in() -> None:
    r = refusal(handle, make())
    assert (r.code, r.status) == ("not-signed", 409)
    assert "sign" in r.reason


def test_a_result_records_what_when_and_whether_reported_on_time() -> None:
    task = make()
    task.sign(T0, "ops-1")
    completed = T0 + timedelta(hours=1)
    assert handle(task, T0 + timedelta(hours=2), completed_at=completed) is True
    assert task.state == TaskState.HANDLED
    assert (task.result, task.evidence, task.completed_at) == ("清运完毕", [PHOTO], completed)
    late = make()
    late.sign(T0, "ops-1")
    # Completed "before the deadline" by the department's word, reported after it: late.
    assert handle(late, DEADLINE + timedelta(hours=1), completed_at=DEADLINE) is False
    assert late.overdue(DEADLINE + timedelta(hours=1))


def test_a_result_needs_evidence_when_configured() -> None:
    task = make()
    task.sign(T0, "ops-1")
    r = refusal(handle, task, evidence=[])
    assert (r.field, r.status, r.code) == ("evidence", 422, "evidence-required")
    assert handle(task, evidence=[], require_evidence=False) is True


def test_completion_time_must_be_plausible() -> None:
    task = make()
    task.sign(T0, "ops-1")
    now = T0 + timedelta(hours=2)
    future = refusal(handle, task, now, completed_at=now + SKEW + timedelta(seconds=1))
    assert (future.field, future.status) == ("completed_at", 422)
    before = refusal(handle, task, now, completed_at=T0 - timedelta(minutes=1))
    assert before.field == "completed_at" and "dispatched" in before.reason
    # A clock a little ahead of ours is tolerated.
    assert handle(task, now, completed_at=now + SKEW) is True


def test_a_second_result_is_refused_while_verification_is_pending() -> None:
    task = make()
    task.sign(T0, "ops-1")
    handle(task)
    for attempt in (
        lambda: handle(task),
        lambda: task.sign(T0, "x"),
        lambda: task.add_progress(T0),
    ):
        assert refusal(attempt).code == "already-handled"


# -- co-handling ----------------------------------------------------------------------------
def test_only_the_lead_reports_returns_or_asks_for_time() -> None:
    co = make("T1~fire", "fire", "co-handler", lead="gas", group="T1")
    co.sign(T0, "fire-ops")
    for attempt in (
        lambda: handle(co),
        lambda: co.return_(T0, "fire-ops", "不归我们"),
        lambda: co.request_extension(T0, "fire-ops", "需要时间", DEADLINE + timedelta(days=1), "r"),
    ):
        r = refusal(attempt)
        assert (r.code, r.field) == ("lead-only", "dept")
        assert "gas" in r.reason


def test_a_co_handlers_progress_is_a_contribution_after_sign_in() -> None:
    co = make("T1~fire", "fire", "co-handler", lead="gas", group="T1")
    assert refusal(co.add_progress, T0).code == "not-signed"
    co.sign(T0, "fire-ops")
    assert co.add_progress(T0) is True
    lead = make("T1", "gas", "lead", co_handlers=("fire",))
    lead.sign(T0, "gas-ops")
    assert lead.add_progress(T0) is False
    assert lead.progress_notes == 1


def test_the_leads_result_ends_the_co_handlers_part() -> None:
    co = make("T1~fire", "fire", "co-handler", lead="gas", group="T1")
    co.sign(T0, "fire-ops")
    assert co.group_handled(T0 + timedelta(hours=1)) is True
    assert co.state == TaskState.HANDLED and co.stage() == "awaiting_verification"
    assert make("T1", "gas", "lead").group_handled(T0) is False


def test_team_finds_co_handlers_by_dispatch_or_by_named_lead() -> None:
    lead = make("T1", "gas", "lead")
    same_dispatch = make("T1~fire", "fire", "co-handler", lead="gas", group="T1")
    own_dispatch = make("T9", "emergency", "co-handler", lead="gas", group="T9")
    other = make("T5", "water", "sole")
    assert team([lead, same_dispatch, own_dispatch, other], lead) == [same_dispatch, own_dispatch]


def test_events_address_a_task_its_department_or_the_whole_case() -> None:
    lead = make("T1", "gas", "lead")
    co = make("T1~fire", "fire", "co-handler", lead="gas", group="T1")
    split = make("T2", "water", "sole")
    tasks = [lead, co, split]
    assert addressed(tasks, "T1", None) == [lead, co]
    assert addressed(tasks, "T2", "water") == [split]
    assert addressed(tasks, None, "gas") == [lead, co]
    assert addressed(tasks, None, "fire") == [co]
    assert addressed(tasks, None, None) == tasks
    assert addressed(tasks, "T404", None) == []


def test_a_command_finds_the_named_then_the_open_then_the_last_task() -> None:
    old = make("T1", "roads", state=TaskState.RETURNED, ended_at=T0)
    new = make("T3", "roads", dispatched_at=T0 + timedelta(hours=1))
    assert task_for([old, new], "roads") is new
    assert task_for([old, new], "roads", "T1") is old
    assert task_for([old], "roads") is old
    assert task_for([old, new], "water") is None


# -- 退回 / 延期 ---------------------------------------------------------------------------
def test_return_ends_the_task_with_the_reason_before_or_after_sign_in() -> None:
    task = make()
    task.return_(T0, "ops-1", "属于供水")
    assert task.state == TaskState.RETURNED and "属于供水" in (task.end_reason or "")
    signed = make()
    signed.sign(T0, "ops-1")
    signed.return_(T0, "ops-1", "属于供水")
    assert signed.ended_at == T0


def test_extension_needs_sign_in_a_later_deadline_and_none_pending() -> None:
    task = make()
    later = DEADLINE + timedelta(days=2)
    assert refusal(task.request_extension, T0, "x", "雨天", later, "r1").code == "not-signed"
    task.sign(T0, "ops-1")
    early = refusal(task.request_extension, T0, "x", "雨天", DEADLINE, "r1")
    assert (early.field, early.status) == ("proposed_deadline", 422)
    ext = task.request_extension(T0, "ops-1", "雨天施工困难", later, "r1")
    assert (ext.request_id, task.extension) == ("r1", ext)
    again = refusal(task.request_extension, T0, "x", "雨天", later, "r2")
    assert again.code == "extension-pending" and "r1" in again.reason


def test_an_overdue_task_may_ask_only_for_a_future_deadline() -> None:
    task = make()
    task.sign(T0, "ops-1")
    now = DEADLINE + timedelta(hours=5)
    r = refusal(task.request_extension, now, "x", "雨天", DEADLINE + timedelta(hours=1), "r1")
    assert (r.field, r.status) == ("proposed_deadline", 422)


def test_a_granted_extension_moves_the_deadline_a_refused_one_only_clears() -> None:
    task = make()
    task.sign(T0, "ops-1")
    later = DEADLINE + timedelta(days=2)
    task.request_extension(T0, "ops-1", "雨天", later, "r1")
    assert task.extension_decided("r1", False, None) is True
    assert (task.extension, task.deadline) == (None, DEADLINE)
    task.request_extension(T0, "ops-1", "雨天", later, "r2")
    assert task.extension_decided("other-request", True, later) is True
    assert task.extension is not None  # another request's decision leaves ours pending
    assert (task.deadline, task.extensions_granted) == (later, 1)


# -- what others decide ---------------------------------------------------------------------
def test_rework_sends_a_handled_or_closed_task_back_to_sign_in() -> None:
    task = make()
    task.sign(T0, "ops-1")
    handle(task)
    new_deadline = DEADLINE + timedelta(days=1)
    assert task.rework(T0 + timedelta(hours=5), 1, new_deadline) is True
    assert (task.state, task.round, task.reworks, task.deadline) == (
        TaskState.DISPATCHED,
        2,
        1,
        new_deadline,
    )
    assert task.result is None and task.signed_at is None
    closed = make(state=TaskState.CLOSED)
    assert closed.rework(T0, 2, None) is True and closed.reworks == 2
    assert make().rework(T0, 1, None) is False


def rework_terms(deadline: datetime) -> dict[str, Any]:
    """A sole task's terms in dispatch's rework dispatch (`Task.redispatch`)."""
    return {
        "role": "sole",
        "group_id": "T1",
        "lead": "sanitation",
        "co_handlers": (),
        "kind": "rework",
        "deadline": deadline,
        "sign_in_due": None,
        "urgency": "normal",
    }


def test_a_rework_dispatch_counts_once_whether_or_not_reworked_came_first() -> None:
    terms = rework_terms(DEADLINE + timedelta(days=1))
    reworked_first = make(state=TaskState.HANDLED)
    reworked_first.rework(T0, 1, None)
    reworked_first.redispatch(now=T0, **terms)
    dispatch_only = make(state=TaskState.HANDLED)
    dispatch_only.redispatch(now=T0, **terms)
    for task in (reworked_first, dispatch_only):
        assert (task.reworks, task.round, task.state) == (1, 2, TaskState.DISPATCHED)
        assert task.deadline == DEADLINE + timedelta(days=1)


def test_a_rework_dispatch_after_the_department_reported_the_round_keeps_its_result() -> None:
    """case.reworked, then the department signs and reports the new round, then dispatch's
    rework dispatch comes: new terms, no second rework, the result stays."""
    terms = rework_terms(DEADLINE + timedelta(days=2))
    task = make()
    task.sign(T0, "ops-1")
    handle(task)
    task.rework(T0 + timedelta(hours=3), 1, DEADLINE + timedelta(days=1))
    task.sign(T0 + timedelta(hours=4), "ops-1")
    assert handle(task, T0 + timedelta(hours=5), result="已彻底清理")
    task.redispatch(now=T0 + timedelta(hours=6), **terms)
    assert (task.state, task.reworks, task.round) == (TaskState.HANDLED, 1, 2)
    assert (task.result, task.deadline) == ("已彻底清理", DEADLINE + timedelta(days=2))
    # The next failed verification counts again, and so does a rework dispatch without it.
    task.rework(T0 + timedelta(hours=7), 2, None)
    task.redispatch(now=T0 + timedelta(hours=7), **terms)
    assert (task.state, task.reworks, task.round) == (TaskState.DISPATCHED, 2, 3)
    task.sign(T0 + timedelta(hours=8), "ops-1")
    handle(task, T0 + timedelta(hours=9))
    task.redispatch(now=T0 + timedelta(hours=10), **terms)
    assert (task.state, task.reworks, task.round) == (TaskState.DISPATCHED, 3, 4)


def test_a_redispatch_keeps_a_signed_task_signed() -> None:
    task = make()
    task.sign(T0, "ops-1")
    task.redispatch(
        now=T0,
        role="lead",
        group_id="T1",
        lead="sanitation",
        co_handlers=("urban-mgmt",),
        kind="manual",
        deadline=DEADLINE + timedelta(hours=3),
        sign_in_due=None,
        urgency="urgent",
    )
    assert (task.state, task.role, task.urgency) == (TaskState.SIGNED, "lead", "urgent")


def test_recall_close_and_supersede_end_only_open_tasks() -> None:
    ends: tuple[Callable[[Task], bool], ...] = (
        lambda t: t.recall(T0, "派错了"),
        lambda t: t.close(T0),
        lambda t: t.supersede(T0, "newer task"),
    )
    for end in ends:
        task = make()
        assert end(task) is True and not task.is_open and task.ended_at == T0
        assert end(task) is False
    handled = make()
    handled.sign(T0, "x")
    handle(handled)
    assert handled.close(T0 + timedelta(days=1)) and handled.state == TaskState.CLOSED


# -- the inbox ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar.from_config(load_city(DEMO_CITY).calendar)


def test_countdown_in_clock_and_working_time(calendar: WorkingCalendar) -> None:
    # Friday 27 November 2026 17:00 Beijing → deadline Monday 30 November 10:00 Beijing.
    friday = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    task = make(dispatched_at=friday, deadline=datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    c = Countdown.of(task, friday, calendar)
    assert c.remaining_s == 65 * 3600
    assert c.remaining_working_s == 2 * 3600  # Friday 17–18 and Monday 09–10
    assert (c.overdue, c.overdue_by_s) == (False, 0)
    assert not c.provisional


def test_a_deadline_counted_into_an_unpublished_year_is_provisional(
    calendar: WorkingCalendar,
) -> None:
    # Thursday 31 December 2026 15:00 Beijing, one working day: 元旦 (Friday) and the weekend
    # are off by the statutory rule, so Monday 4 January 2027 15:00 — until 2027 is entered.
    start = datetime(2026, 12, 31, 7, 0, tzinfo=UTC)
    deadline = calendar.add(start, 1, "working_days")
    assert deadline == datetime(2027, 1, 4, 7, 0, tzinfo=UTC)
    c = Countdown.of(make(dispatched_at=start, deadline=deadline), start, calendar)
    assert c.provisional and c.remaining_working_s == int(7.5 * 3600)


def test_overdue_by_is_measured_to_now_or_to_the_report(calendar: WorkingCalendar) -> None:
    task = make()
    c = Countdown.of(task, DEADLINE + timedelta(hours=3), calendar)
    assert (c.overdue, c.overdue_by_s, c.remaining_working_s) == (True, 3 * 3600, 0)
    task.sign(T0, "x")
    handle(task, DEADLINE + timedelta(hours=1), completed_at=DEADLINE)
    late = Countdown.of(task, DEADLINE + timedelta(days=3), calendar)
    assert (late.overdue, late.overdue_by_s) == (True, 3600)


def test_the_stage_says_what_to_do_next() -> None:
    task = make()
    assert task.stage() == "to_sign"
    task.sign(T0, "x")
    assert task.stage() == "in_progress"
    task.recall(T0, "x")
    assert task.stage() == "ended"


# -- commands and answers -------------------------------------------------------------------
def sign_cmd(**kw: Any) -> SignCommand:
    values = {"command_id": "c1", "case_id": "C1", "dept": "roads", "by": "roads-ops"}
    values.update(kw)
    return SignCommand.model_validate(values)


def test_command_keys_are_scoped_by_department() -> None:
    assert cmds.command_key("roads", "1") != cmds.command_key("water", "1")


def test_the_fingerprint_is_what_the_command_asks_not_who_sent_it() -> None:
    assert cmds.fingerprint(sign_cmd()) == cmds.fingerprint(sign_cmd(by="someone-else"))
    assert cmds.fingerprint(sign_cmd()) == cmds.fingerprint(sign_cmd(command_id="c2"))
    assert cmds.fingerprint(sign_cmd()) != cmds.fingerprint(sign_cmd(case_id="C2"))
    ret = ReturnCommand(command_id="c1", case_id="C1", dept="roads", by="x", reason="不是我们的")
    other = ret.model_copy(update={"reason": "属于供水集团"})
    assert cmds.fingerprint(ret) != cmds.fingerprint(sign_cmd())
    assert cmds.fingerprint(ret) != cmds.fingerprint(other)


def test_status_follows_the_task() -> None:
    task = make()
    assert cmds.status_of(task) == CaseStatus.DISPATCHED
    task.sign(T0, "x")
    assert cmds.status_of(task) == CaseStatus.SIGNED
    task.add_progress(T0)
    assert cmds.status_of(task) == CaseStatus.IN_PROGRESS
    handle(task)
    assert cmds.status_of(task) == CaseStatus.HANDLED
    assert cmds.status_of(make(state=TaskState.RECALLED)) == CaseStatus.RECALLED


def test_answers_carry_the_command_and_each_error_with_field_and_code() -> None:
    task = make(dept="roads")
    ok = cmds.accepted(sign_cmd(), task)
    assert (ok.accepted, ok.command_id, ok.action, ok.dept) == (True, "c1", "signed", "roads")
    r = Refusal("sign first", field="case_id", code="not-signed")
    no = cmds.refused(
        command_id="c2",
        dept="roads",
        case_id="C1",
        action="handled",
        errors=cmds.refusal_errors(r, "data."),
        status="dispatched",
    )
    assert no.accepted is False and no.status == CaseStatus.DISPATCHED
    assert [(e.field, e.code) for e in no.errors] == [("data.case_id", "not-signed")]
    assert cmds.refusal_errors(Refusal("bad"), "data.")[0]["field"] == "data"


def test_duplicate_refusal_names_the_command_id() -> None:
    r = cmds.duplicate(sign_cmd())
    assert (r.field, r.code, r.status) == ("command_id", "duplicate-command", 409)


def test_a_result_is_the_same_command_whatever_time_it_says_and_not_another_result() -> None:
    """The fingerprint that tells a resend from another command under the same id leaves out
    a result's time (a REST result without one is timed as it is taken, a resend anew); one
    stored by an earlier release, which covered the time, still knows its resend."""
    at = datetime(2026, 12, 7, 10, tzinfo=UTC)

    def result(text: str, completed_at: datetime) -> HandledCommand:
        return HandledCommand(
            command_id="r1",
            case_id="C1",
            dept="roads",
            by="roads-ops",
            result=text,
            completed_at=completed_at,
        )

    first = result("已修复", at)
    stored = cmds.fingerprint(first)
    assert cmds.same_command(stored, result("已修复", at + timedelta(minutes=5)))
    assert not cmds.same_command(stored, result("未修复", at))
    assert not cmds.same_command(stored, sign_cmd())
    # as a release before 2026-12-07 stored it: the time inside the digest
    legacy = cmds.fingerprint(first, frozenset({"command_id", "by", "task_id"}))
    assert legacy != stored
    assert cmds.same_command(legacy, result("已修复", at))
    assert not cmds.same_command(legacy, result("未修复", at))
    assert not cmds.same_command(None, first)
