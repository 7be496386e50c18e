"""The dispatch rules without I/O: a case file, a message, a Step on a fake clock; what the rule
did to the file, the events it emitted and the timers it asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from gridloop_city import WorkingCalendar, load_city
from gridloop_contracts import Event
from gridloop_contracts import cases as ev
from gridloop_contracts.department import RecallOvertaken
from gridloop_contracts.problems import Refusal
from gridloop_dispatch.domain import chasing
from gridloop_dispatch.domain.casefile import CaseFile, CaseState, Task, TaskStatus
from gridloop_dispatch.domain.deadlines import Deadlines
from gridloop_dispatch.domain.rules import DispatchRules, Units
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.step import Step, Timer

BJ = ZoneInfo("Asia/Shanghai")
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
MON = datetime(2026, 11, 23, 10, tzinfo=BJ)  # a working Monday, 10:00
CELL = "1101010010010001"
CID = "110101-20261123-000001"


def bj(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=BJ)


@pytest.fixture(scope="module")
def rules() -> DispatchRules:
    city = load_city(DEMO_CITY)
    return DispatchRules(city, Deadlines(WorkingCalendar.from_config(city.calendar), city.calendar))


class Dispatcher:
    user_id = "disp-01"
    name = "调度员"

    def covers(self, *codes: str | None) -> bool:
        return True


class Ticking(FakeClock):
    """A clock one microsecond later at every read, as a live one is."""

    def now(self) -> datetime:
        return self.advance(timedelta(microseconds=1))


def step_at(when: datetime) -> Step:
    return Step(source="/gridloop/dispatch", clock=FakeClock(when))


def types(step: Step) -> list[str]:
    return [f"{subject} {env.type}" for subject, env in step.pending]


def emitted(step: Step, model: type[Event]) -> list[dict[str, Any]]:
    return [env.data for _, env in step.pending if env.type == model.type_name]


def accepted(category: str = "E0102", **extra: Any) -> ev.CaseAccepted:
    return ev.CaseAccepted(
        case_id=CID,
        occurred_at=MON,
        category_code=category,
        cell_code=CELL,
        description="人行道上堆放垃圾",
        **extra,
    )


def dispatched(rules: DispatchRules, category: str = "E0102") -> CaseFile:
    f = CaseFile(CID)
    rules.on_accepted(f, accepted(category), step_at(MON))
    return f


def chase(f: CaseFile, step: Step, n: int = 0) -> Timer:
    """The chase timer the last dispatch asked for, as the runner hands it to the rule."""
    [op] = [o for o in step.timer_ops if o.op == "set"][n:]
    assert op.due_at is not None
    return Timer(1, op.kind or "", op.key, op.due_at, op.payload)


# -- dispatch ------------------------------------------------------------------------------
def test_acceptance_dispatches_once_with_one_chase_timer(rules: DispatchRules) -> None:
    f = CaseFile(CID)
    step = step_at(MON)
    rules.on_accepted(f, accepted(), step)
    assert f.case is not None and f.case.state == CaseState.DISPATCHED
    [task] = f.tasks
    assert (task.task_id, task.dept, task.deadline) == (
        f"{CID}-T1",
        "sanitation",
        bj(2026, 11, 24, 10),
    )
    assert types(step) == [
        "case.dispatched gridloop.case.dispatched.v1",
        "dispatch.sanitation.assigned gridloop.dispatch.assigned.v1",
    ]
    # ONE timer row for the whole ladder, due at its first step (sign-in by 12:00)
    [op] = step.timer_ops
    assert (op.op, op.kind, op.key, op.due_at) == (
        "set",
        "chase",
        f"{CID}-T1#1",
        bj(2026, 11, 23, 12),
    )
    assert op.payload == {"case_id": CID, "task_id": f"{CID}-T1", "gen": 1, "step": "sign_in"}

    again = step_at(MON)
    rules.on_accepted(f, accepted(), again)
    assert again.pending == [] and again.timer_ops == [] and len(f.tasks) == 1


def test_an_unroutable_case_goes_to_the_queue_said_and_chased(rules: DispatchRules) -> None:
    f = CaseFile(CID)
    step = step_at(MON)
    rules.on_accepted(f, accepted("E0602"), step)  # no routing rule for E0602
    assert f.case is not None and f.case.queued and f.case.state == CaseState.QUEUED
    assert f.tasks == []
    assert types(step) == ["case.queued gridloop.case.queued.v1"]
    [queued] = emitted(step, ev.CaseQueued)
    assert queued["reason_code"] == "unroutable" and queued["reason"] == f.case.queue_reason
    # chased 30 minutes after it was queued (calendar.yaml queue_chase, clock time)
    [op] = step.timer_ops
    assert (op.kind, op.key, op.due_at) == (
        "queue-chase",
        f"{CID}-Q@{MON.isoformat()}",
        MON + timedelta(minutes=30),
    )
    assert op.payload == {"case_id": CID, "queued_at": MON.isoformat(), "level": 1}


def test_a_case_left_in_the_queue_is_chased_to_the_dispatcher_then_the_shift_leader(
    rules: DispatchRules,
) -> None:
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted("E0602"), first)
    timer = chase(f, first)
    fired = step_at(MON + timedelta(minutes=31))
    rules.on_queue_chase(f, timer, fired)
    [c1] = emitted(fired, ev.CaseQueueChased)
    assert (c1["level"], c1["to_role"], c1["occurred_at"]) == (
        1,
        "dispatcher",
        (MON + timedelta(minutes=30)).isoformat(),
    )
    assert f.case is not None and f.case.queue_chase_level == 1
    timer2 = chase(f, fired)
    assert timer2.due_at == MON + timedelta(hours=2) and timer2.payload["level"] == 2
    rules.on_queue_chase(f, timer, step_at(MON + timedelta(minutes=40)))  # level 1 again
    again = step_at(MON + timedelta(hours=2))
    rules.on_queue_chase(f, timer2, again)
    [c2] = emitted(again, ev.CaseQueueChased)
    assert (c2["level"], c2["to_role"]) == (2, "shift-leader")
    assert again.timer_ops == []  # the top of the ladder
    # placed by a dispatcher, a timer of the old wait fires into nothing
    placed = step_at(MON + timedelta(hours=3))
    rules.dispatch(f, placed, Dispatcher(), Units("sanitation"))
    late = step_at(MON + timedelta(hours=4))
    rules.on_queue_chase(f, timer2, late)
    assert late.pending == [] and late.timer_ops == []


def test_a_dispatcher_or_shift_leader_chases_the_department_by_hand(rules: DispatchRules) -> None:
    f = dispatched(rules)
    step = step_at(MON + timedelta(minutes=20))
    [task] = rules.remind(f, step, Dispatcher(), "dispatcher", "请尽快签收")
    assert task.manual_reminders == 1 and task.reminded_at is None  # the automatic one stays
    assert types(step) == [
        "case.reminded gridloop.case.reminded.v1",
        "dispatch.sanitation.reminder gridloop.dispatch.reminder.v1",
    ]
    [r] = emitted(step, ev.CaseReminded)
    assert r["manual"] is True and r["stage"] == "sign_in" and r["note"] == "请尽快签收"
    assert r["actor"]["role"] == "dispatcher" and r["dept"] == "sanitation"
    feed = step.pending[1][1].data
    assert feed["stage"] == "sign_in" and "人工催办" in feed["note"]
    task.sign(MON + timedelta(minutes=30))
    later = step_at(MON + timedelta(hours=1))
    rules.remind(f, later, Dispatcher(), "shift-leader", "处置进度如何")
    [r2] = emitted(later, ev.CaseReminded)
    assert r2["stage"] == "handling" and r2["actor"]["role"] == "shift-leader"
    assert task.manual_reminders == 2
    rules.on_handled(
        f,
        ev.CaseHandled(
            case_id=CID,
            occurred_at=MON,
            dept="sanitation",
            task_id=task.task_id,
            result="ok",
            completed_at=MON,
        ),
        step_at(MON + timedelta(hours=2)),
    )
    with pytest.raises(Refusal) as err:
        rules.remind(f, step_at(MON + timedelta(hours=3)), Dispatcher(), "dispatcher", "再催")
    assert err.value.code == "nothing-active"


def test_an_emergency_is_escalated_at_dispatch_and_chased_above_that_level(
    rules: DispatchRules,
) -> None:
    night = bj(2026, 11, 28, 23)
    f = CaseFile(CID)
    step = step_at(night)
    rules.on_accepted(f, accepted("E0401"), step)
    [task] = f.tasks
    assert (task.escalation_level, task.escalated_at) == (3, night)
    assert f.case is not None and f.case.emergency_escalated_at == night
    [esc] = emitted(step, ev.CaseEscalated)
    assert (esc["level"], esc["to_role"]) == (3, "subdistrict-leader")  # past the grid head
    assert esc["to_user_ids"] == []
    parties = {s for s, e in step.pending if e.type == "gridloop.dispatch.escalated.v1"}
    assert parties == {
        "dispatch.gas.escalated",
        "dispatch.fire.escalated",
        "dispatch.emergency.escalated",
    }
    # the ladder goes on above level 3 only
    assert [p.kind for p in chasing.plan(task, rules.deadlines, True)][-1:] == ["escalate:4"]
    assert "escalate:3" not in [p.kind for p in chasing.plan(task, rules.deadlines, True)]

    # a second task of the same emergency is not escalated again, only marked
    later = step_at(night + timedelta(minutes=5))
    rules.on_returned(
        f,
        ev.CaseReturned(
            case_id=CID, occurred_at=night, dept="gas", task_id=task.task_id, reason="非本单位"
        ),
        later,
    )
    assert f.case.queued  # no other candidate
    rules.dispatch(f, later, Dispatcher(), Units("fire"))
    assert [d["kind"] for d in emitted(later, ev.CaseDispatched)] == ["manual"]
    assert emitted(later, ev.CaseEscalated) == []
    assert [t.escalation_level for t in f.tasks] == [3, 3]


# -- returns ---------------------------------------------------------------------------------
def test_a_return_goes_to_the_next_candidate(rules: DispatchRules) -> None:
    f = dispatched(rules, "E0504")  # street-001, then urban-mgmt
    step = step_at(MON + timedelta(hours=1))
    first = f.tasks[0]
    rules.on_returned(
        f,
        ev.CaseReturned(
            case_id=CID, occurred_at=step.now(), dept=first.dept, task_id=first.task_id, reason="x"
        ),
        step,
    )
    assert [(t.dept, t.status) for t in f.tasks] == [
        ("street-001", TaskStatus.RETURNED),
        ("urban-mgmt", TaskStatus.OPEN),
    ]
    [d] = emitted(step, ev.CaseDispatched)
    assert d["kind"] == "redispatch" and "street-001" in d["reason"]
    assert [o.key for o in step.timer_ops] == [f"{CID}-T2#1"]


def test_a_returned_part_of_a_split_case_always_goes_to_the_queue(rules: DispatchRules) -> None:
    f = dispatched(rules, "E0504")
    step = step_at(MON + timedelta(minutes=30))
    rules.split(f, step, Dispatcher(), [Units("sanitation"), Units("urban-mgmt")], "分别处置")
    assert [(t.kind, t.status) for t in f.tasks] == [
        ("initial", TaskStatus.RECALLED),
        ("split", TaskStatus.OPEN),
        ("split", TaskStatus.OPEN),
    ]
    part = f.tasks[1]
    back = step_at(MON + timedelta(hours=1))
    rules.on_returned(
        f,
        ev.CaseReturned(
            case_id=CID, occurred_at=back.now(), dept=part.dept, task_id=part.task_id, reason="x"
        ),
        back,
    )
    # another candidate exists (routing would find one), but a dispatcher cut this part
    assert emitted(back, ev.CaseDispatched) == []
    assert [o.kind for o in back.timer_ops] == ["queue-chase"]  # the queue's chase only
    assert emitted(back, ev.CaseQueued)[0]["reason_code"] == "returned"
    assert f.case is not None and f.case.queued and "sanitation" in (f.case.queue_reason or "")
    assert f.case.state == CaseState.DISPATCHED  # the other part goes on
    assert len(f.tasks) == 3


# -- rework ----------------------------------------------------------------------------------
def handled(rules: DispatchRules, f: CaseFile, at: datetime) -> None:
    rules.on_handled(f, handled_event(f, at), step_at(at))


def handled_event(f: CaseFile, at: datetime, n: int = 0, **extra: Any) -> ev.CaseHandled:
    """The department's result for its `n`-th task, taken by handling at `at`."""
    task = f.tasks[n]
    return ev.CaseHandled(
        case_id=CID,
        occurred_at=at,
        dept=task.dept,
        task_id=task.task_id,
        result="已清理",
        completed_at=at,
        **extra,
    )


def signed_event(f: CaseFile, at: datetime, n: int = 0, **extra: Any) -> ev.CaseSigned:
    """The department's signature for its `n`-th task, taken by handling at `at`."""
    task = f.tasks[n]
    return ev.CaseSigned(case_id=CID, occurred_at=at, dept=task.dept, task_id=task.task_id, **extra)


def ask_extension(
    rules: DispatchRules,
    f: CaseFile,
    at: datetime,
    request_id: str,
    proposed: datetime,
    reason: str = "需协调物业",
) -> None:
    """The department asks to move its first task's deadline (延期申请), heard at `at`."""
    task = f.tasks[0]
    rules.on_extension_requested(
        f,
        ev.CaseExtensionRequested(
            case_id=CID,
            occurred_at=at,
            dept=task.dept,
            task_id=task.task_id,
            reason=reason,
            proposed_deadline=proposed,
            request_id=request_id,
        ),
        step_at(at),
    )


def reworked(new_deadline: datetime | None = None) -> ev.CaseReworked:
    return ev.CaseReworked(
        case_id=CID,
        occurred_at=MON,
        dept="sanitation",
        task_id=f"{CID}-T1",
        count=1,
        reason="仍有垃圾残留",
        new_deadline=new_deadline,
    )


def test_rework_takes_the_new_deadline_if_it_is_still_ahead(rules: DispatchRules) -> None:
    f = dispatched(rules)
    handled(rules, f, bj(2026, 11, 23, 11))
    step = step_at(bj(2026, 11, 23, 13))
    rules.on_reworked(f, reworked(bj(2026, 11, 25, 9)), step)
    task = f.tasks[0]
    assert (task.status, task.deadline, task.gen, task.kind) == (
        TaskStatus.OPEN,
        bj(2026, 11, 25, 9),
        2,
        "rework",
    )
    [op] = step.timer_ops
    assert (op.kind, op.key) == (
        "chase",
        f"{CID}-T1#2",
    )  # a new row: the old one fires into nothing
    assert [s for s, _ in step.pending] == ["case.dispatched", "dispatch.sanitation.rework"]


def test_after_a_rework_the_department_signs_again_by_its_sign_in_time(
    rules: DispatchRules,
) -> None:
    f = dispatched(rules)
    task = f.tasks[0]
    task.sign(bj(2026, 11, 23, 10, 30))
    handled(rules, f, bj(2026, 11, 23, 11))
    step = step_at(bj(2026, 11, 23, 13))
    rules.on_reworked(f, reworked(bj(2026, 11, 25, 9)), step)
    # two working hours from 13:00 (office reopens 13:30): 15:30, told with the rework dispatch
    due = bj(2026, 11, 23, 15, 30)
    assert (task.status, task.signed_at, task.sign_in_due) == (TaskStatus.OPEN, None, due)
    [d] = emitted(step, ev.CaseDispatched)
    assert d["kind"] == "rework" and d["sign_in_due"] == due.isoformat()
    # the chase starts at the sign-in step; unsigned by then, it is overdue at sign-in
    timer = chase(f, step)
    assert (timer.due_at, timer.payload["step"]) == (due, "sign_in")
    missed = step_at(due + timedelta(minutes=1))
    rules.on_chase(f, timer, missed)
    [o] = emitted(missed, ev.CaseOverdue)
    assert o["stage"] == "sign_in" and task.sign_in_overdue_at == due
    # signing for the rework round is recorded again
    rules.on_signed(
        f,
        signed_event(f, bj(2026, 11, 23, 15, 30)),
        step_at(bj(2026, 11, 23, 15, 30)),
    )
    assert task.status == TaskStatus.SIGNED and task.signed_at == bj(2026, 11, 23, 15, 30)


def test_rework_else_takes_the_categorys_deadline(rules: DispatchRules) -> None:
    f = dispatched(rules)
    handled(rules, f, bj(2026, 11, 23, 11))
    rules.on_reworked(f, reworked(bj(2026, 11, 23, 12)), step_at(bj(2026, 11, 23, 13)))
    # One working day from Mon 13:00: 4.5 h that afternoon, 3 h on Tuesday → Tue 12:00.
    assert f.tasks[0].deadline == bj(2026, 11, 24, 12)


def test_rework_else_keeps_the_length_of_the_window(rules: DispatchRules) -> None:
    f = dispatched(rules)
    assert f.case is not None
    f.case.category_code = "X9999"  # a category this city no longer has
    task = f.tasks[0]
    window = task.deadline - task.window_start
    at = bj(2026, 11, 23, 13)
    rules.on_reworked(f, reworked(), step_at(at))
    assert task.deadline == at + window


def test_rework_reopens_a_closed_case(rules: DispatchRules) -> None:
    f = dispatched(rules)
    rules.on_closed(
        f,
        ev.CaseClosed(case_id=CID, occurred_at=MON, closed_by="sup-001", on_time=True),
        step_at(MON),
    )
    assert f.case is not None and f.case.closed and f.tasks[0].status == TaskStatus.CLOSED
    rules.on_reworked(f, reworked(), step_at(bj(2026, 11, 23, 13)))
    assert f.case.state == CaseState.DISPATCHED and f.case.closed_at is None


# -- the chase timer -------------------------------------------------------------------------
def test_the_chase_timer_moves_up_the_ladder_one_row_each_step_once(rules: DispatchRules) -> None:
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted(), first)
    timer = chase(f, first)
    ladder = [
        (bj(2026, 11, 23, 12), ["case.overdue"], bj(2026, 11, 23, 17, 7, 30), "remind"),
        (bj(2026, 11, 23, 17, 7, 30), ["case.reminded"], bj(2026, 11, 24, 10), "overdue"),
        (
            bj(2026, 11, 24, 10),
            ["case.overdue", "case.escalated"],
            bj(2026, 11, 24, 15, 15),
            "escalate:2",
        ),
        # the cell's grid head, half a working day after the deadline
        (bj(2026, 11, 24, 15, 15), ["case.escalated"], bj(2026, 11, 25, 10), "escalate:3"),
        (bj(2026, 11, 25, 10), ["case.escalated"], bj(2026, 11, 27, 10), "escalate:4"),
        (bj(2026, 11, 27, 10), ["case.escalated"], None, None),
    ]
    for when, events, next_due, next_step in ladder:
        assert timer.due_at == when
        step = step_at(when)
        rules.on_chase(f, timer, step)
        assert [s for s, _ in step.pending if s.startswith("case.")] == events
        if next_due is None:
            assert step.timer_ops == []
        else:
            [op] = step.timer_ops  # the same row, set again for the next step
            assert (op.kind, op.key, op.due_at, op.payload["step"]) == (
                "chase",
                timer.key,
                next_due,
                next_step,
            )
            timer = Timer(1, "chase", op.key, next_due, op.payload)
    task = f.tasks[0]
    assert (task.escalation_level, task.overdue_at, task.reminded_at is not None) == (
        4,
        bj(2026, 11, 24, 10),
        True,
    )
    # fired again (a second runner, a retry): nothing happens twice
    again = step_at(bj(2026, 12, 31))
    rules.on_chase(f, timer, again)
    assert again.pending == [] and again.timer_ops == []


def test_a_late_chase_timer_does_every_step_due_in_order(rules: DispatchRules) -> None:
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted(), first)
    step = step_at(bj(2026, 12, 3, 10))  # down for ten days
    rules.on_chase(f, chase(f, first), step)
    data = [
        (env.type.split(".")[2], env.data.get("stage") or env.data.get("level"))
        for s, env in step.pending
        if s.startswith("case.")
    ]
    assert data == [
        ("overdue", "sign_in"),
        ("reminded", "handling"),
        ("overdue", "handling"),
        ("escalated", 1),
        ("escalated", 2),
        ("escalated", 3),
        ("escalated", 4),
    ]
    escalations = emitted(step, ev.CaseEscalated)
    occurred = [at for at in (e["occurred_at"] for e in escalations)]
    assert [datetime.fromisoformat(str(o)) for o in occurred] == [
        bj(2026, 11, 24, 10),
        bj(2026, 11, 24, 15, 15),
        bj(2026, 11, 25, 10),
        bj(2026, 11, 27, 10),
    ]
    # the grid-head rung names the grid head of the case's cell; the others name a role
    assert [(e["to_role"], e["to_user_ids"]) for e in escalations] == [
        ("dispatcher", []),
        ("grid-head", ["gh-0010010001"]),
        ("subdistrict-leader", []),
        ("efficiency-office", []),
    ]
    assert "网格长 gh-0010010001" in escalations[1]["reason"]
    assert step.timer_ops == []


def test_a_signed_task_skips_the_sign_in_step(rules: DispatchRules) -> None:
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted(), first)
    task = f.tasks[0]
    sign = step_at(MON + timedelta(minutes=5))
    rules.on_signed(
        f,
        signed_event(f, sign.now()),
        sign,
    )
    assert task.status == TaskStatus.SIGNED and sign.timer_ops == []  # the row is left alone
    step = step_at(bj(2026, 11, 23, 12))
    rules.on_chase(f, chase(f, first), step)
    assert step.pending == []
    [op] = step.timer_ops
    assert (op.due_at, op.payload["step"]) == (bj(2026, 11, 23, 17, 7, 30), "remind")


def test_the_chase_timer_of_an_ended_task_or_old_deadline_does_nothing(
    rules: DispatchRules,
) -> None:
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted(), first)
    timer = chase(f, first)
    handled(rules, f, MON + timedelta(minutes=30))
    step = step_at(bj(2026, 12, 3))
    rules.on_chase(f, timer, step)
    assert step.pending == [] and step.timer_ops == []
    rules.on_reworked(f, reworked(), step_at(bj(2026, 11, 23, 13)))  # gen 2
    stale = step_at(bj(2026, 11, 23, 13, 30))
    rules.on_chase(f, timer, stale)  # gen 1's row
    assert stale.pending == [] and stale.timer_ops == []


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("sign_in", "case.overdue"),
        ("remind", "case.reminded"),
        ("overdue", "case.overdue"),
        ("escalate:1", "case.escalated"),
        ("escalate:3", "case.escalated"),
    ],
)
def test_a_one_step_row_of_the_old_ladder_fires_its_step_once(
    rules: DispatchRules, kind: str, event: str
) -> None:
    f = dispatched(rules)
    payload = {"case_id": CID, "task_id": f"{CID}-T1", "gen": 1}
    if kind.startswith("escalate"):
        payload["level"] = int(kind.split(":")[1])
    old = Timer(7, kind, f"{CID}-T1#1", bj(2026, 11, 23, 12), payload)
    step = step_at(bj(2026, 11, 30))
    rules.on_legacy_step(f, old, step)
    assert [s for s, _ in step.pending if s.startswith("case.")] == [event]
    assert step.timer_ops == []
    again = step_at(bj(2026, 11, 30))
    rules.on_legacy_step(f, old, again)
    assert again.pending == []
    # and the step is off the task's ladder (a new chase row would not do it again)
    assert kind not in [p.kind for p in chasing.plan(f.tasks[0], rules.deadlines, False)]


# -- commands --------------------------------------------------------------------------------
def test_a_granted_extension_moves_the_deadline_to_a_new_chase_row(rules: DispatchRules) -> None:
    f = dispatched(rules)
    task = f.tasks[0]
    ask_extension(rules, f, MON + timedelta(hours=1), "X-1", bj(2026, 11, 25, 18))
    assert [x.status for x in f.extensions] == ["pending"]
    step = step_at(MON + timedelta(hours=2))
    request = rules.decide_extension(
        f, step, "X-1", Dispatcher(), granted=True, new_deadline=None, reason=None
    )
    assert request.status == "granted" and task.deadline == bj(2026, 11, 25, 18) and task.gen == 2
    [op] = step.timer_ops
    # still unsigned: the sign-in step of the first deadline is the next one
    assert (op.key, op.due_at, op.payload["step"]) == (
        f"{CID}-T1#2",
        bj(2026, 11, 23, 12),
        "sign_in",
    )
    assert [s for s, _ in step.pending] == ["case.extension_decided"]


def test_ending_a_task_makes_its_pending_requests_moot(rules: DispatchRules) -> None:
    f = dispatched(rules)
    task = f.tasks[0]
    ask_extension(rules, f, MON, "X-2", bj(2026, 11, 25, 18), reason="r")
    step = step_at(datetime(2026, 11, 23, 3, tzinfo=UTC))
    rules.recall(f, step, Dispatcher(), "统一改派")
    assert f.case is not None and f.case.queued and task.status == TaskStatus.RECALLED
    assert [s for s, _ in step.pending] == [
        "case.recalled",
        "dispatch.sanitation.recalled",
        "case.queued",
    ]
    assert emitted(step, ev.CaseQueued)[0]["reason_code"] == "recalled"
    assert [(x.status, x.decision_reason) for x in f.extensions] == [("moot", "已撤回 / recalled")]


def test_a_result_that_crossed_the_recall_overtakes_it(rules: DispatchRules) -> None:
    """The department reported its result (handling took it) while the dispatcher recalled
    the task: the result stands, the case leaves the queue (case.unqueued) for verification,
    and the queue's chase finds nothing to chase."""
    f = dispatched(rules)
    task = f.tasks[0]
    # a live clock moves between two reads within one step
    recall = Step(source="/gridloop/dispatch", clock=Ticking(MON + timedelta(minutes=10)))
    rules.recall(f, recall, Dispatcher(), "统一改派")
    assert f.case is not None and f.case.queued
    [queue_chase] = [o for o in recall.timer_ops if o.op == "set" and o.kind == "queue-chase"]

    crossed = step_at(MON + timedelta(minutes=10, seconds=1))
    rules.on_handled(f, handled_event(f, MON + timedelta(minutes=9)), crossed)
    assert task.status == TaskStatus.HANDLED and task.handled_at == MON + timedelta(minutes=9)
    assert (task.ended_at, task.end_reason) == (None, None)
    assert not f.case.queued and f.case.state == CaseState.HANDLED
    [out] = emitted(crossed, ev.CaseUnqueued)
    assert (out["task_id"], out["dept"], out["reason_code"]) == (
        task.task_id,
        "sanitation",
        "recall-overtaken",
    )
    [recalled] = emitted(recall, ev.CaseRecalled)
    assert out["recalled_at"] == recalled["occurred_at"]
    assert [s for s, _ in crossed.pending] == [
        "dispatch.sanitation.recall_overtaken",
        "case.unqueued",
    ]
    # the department, which heard `recalled` after it sent its result, hears that it stands
    [told] = [RecallOvertaken.model_validate(d) for d in emitted(crossed, RecallOvertaken)]
    assert (told.recalled_at, told.completed_at) == (
        ev.CaseRecalled.model_validate(recalled).occurred_at,
        MON + timedelta(minutes=9),
    )
    assert (told.dept, told.case.task_id) == ("sanitation", task.task_id)

    # the queue's chase timer, when it comes, is moot
    assert queue_chase.due_at is not None
    timer = Timer(1, "queue-chase", queue_chase.key, queue_chase.due_at, queue_chase.payload)
    late = step_at(queue_chase.due_at)
    rules.on_queue_chase(f, timer, late)
    assert late.pending == []

    # the same event again (a redelivery) changes nothing
    again = step_at(MON + timedelta(minutes=11))
    rules.on_handled(f, handled_event(f, MON + timedelta(minutes=9)), again)
    assert again.pending == [] and task.status == TaskStatus.HANDLED


def test_a_crossed_result_leaves_a_case_placed_again_meanwhile_where_it_is(
    rules: DispatchRules,
) -> None:
    """Recalled and placed by hand with another unit before the first one's result came in:
    the first task counts as handled, the case stays with the unit now holding it."""
    f = dispatched(rules)
    first = f.tasks[0]
    rules.recall(f, step_at(MON + timedelta(minutes=10)), Dispatcher(), "统一改派")
    rules.dispatch(f, step_at(MON + timedelta(minutes=11)), Dispatcher(), Units(dept="street-001"))
    crossed = step_at(MON + timedelta(minutes=12))
    rules.on_handled(f, handled_event(f, MON + timedelta(minutes=9)), crossed)
    assert first.status == TaskStatus.HANDLED
    assert f.case is not None and f.case.state == CaseState.DISPATCHED and not f.case.queued
    assert emitted(crossed, ev.CaseUnqueued) == []
    # the first unit still hears that its result stands (verification decides on it)
    assert [s for s, _ in crossed.pending] == ["dispatch.sanitation.recall_overtaken"]


# -- community level (seed 003: 社区限时办结) ------------------------------------------------
def test_a_neighbour_dispute_goes_to_the_communitys_committee_for_one_working_day(
    rules: DispatchRules,
) -> None:
    """E0601 allows 3 working days, but the demo routes it to the residents' committee of the
    community it happens in, a community-level unit: 1 working day (seed 003), and 2 for the
    street office when the committee returns it."""
    f = dispatched(rules, "E0601")
    [task] = f.tasks
    assert rules.city.cells[CELL].community_code == "110101001001"
    assert rules.city.departments[task.dept].kind == "community"
    assert (task.dept, task.deadline) == ("comm-001001", bj(2026, 11, 24, 10))

    # returned as not theirs: the street office of the sub-district is the next candidate
    back = step_at(MON + timedelta(hours=1))
    rules.on_returned(
        f,
        ev.CaseReturned(
            case_id=CID,
            occurred_at=back.now(),
            dept=task.dept,
            task_id=task.task_id,
            reason="涉及多户，需街道协调",
        ),
        back,
    )
    redispatched = f.tasks[-1]
    assert rules.city.departments[redispatched.dept].kind == "subdistrict-office"
    assert (redispatched.dept, redispatched.deadline) == ("street-001", bj(2026, 11, 25, 11))


def test_a_community_committee_gets_no_extension_past_five_working_days(
    rules: DispatchRules,
) -> None:
    f = dispatched(rules, "E0601")
    task = f.tasks[0]
    for n, proposed in enumerate((bj(2026, 12, 1, 10), bj(2026, 11, 30, 10)), start=1):
        ask_extension(rules, f, MON + timedelta(hours=1), f"X-{n}", proposed, "当事人外出")
    decide = step_at(MON + timedelta(hours=2))
    # Monday 10:00 + 5 working days = next Monday 10:00; a day later is refused …
    with pytest.raises(Refusal) as refused:
        rules.decide_extension(
            f, decide, "X-1", Dispatcher(), granted=True, new_deadline=None, reason=None
        )
    assert refused.value.code == "beyond-limit"
    # … the cap itself is granted
    granted = rules.decide_extension(
        f, decide, "X-2", Dispatcher(), granted=True, new_deadline=None, reason=None
    )
    assert granted.status == "granted" and task.deadline == bj(2026, 11, 30, 10)


def test_a_grid_head_rung_names_the_grid_heads_of_the_cases_cell(rules: DispatchRules) -> None:
    from gridloop_dispatch.domain.rules import escalation_addressees

    city = rules.city
    assert escalation_addressees(city, "grid-head", CELL) == ("gh-0010010001",)
    assert escalation_addressees(city, "grid-head", "1101010020010003") == ("gh-0020010001",)
    # a rung to a role names nobody; a cell the data gives no grid head: nobody, said so
    assert escalation_addressees(city, "subdistrict-leader", CELL) == ()
    assert escalation_addressees(city, "grid-head", "1101010010010003") == ()
    assert escalation_addressees(city, "grid-head", None) == ()


# -- 超期撤回: an on-time answer that reached dispatch after the judgement ---------------------
def fire_chase_until(rules: DispatchRules, f: CaseFile, timer: Timer, until: datetime) -> Timer:
    """Fire the task's chase row at each of its steps up to `until`; the row as set again."""
    while timer.due_at <= until:
        step = step_at(timer.due_at)
        rules.on_chase(f, timer, step)
        ops = [o for o in step.timer_ops if o.op == "set"]
        if not ops:
            break
        [op] = ops
        assert op.due_at is not None
        timer = Timer(1, "chase", op.key, op.due_at, op.payload)
    return timer


def chased_until(rules: DispatchRules, until: datetime) -> tuple[CaseFile, Task]:
    """A case dispatched on Monday 10:00 (deadline Tuesday 10:00), its task chased up to
    `until`: the file and the task."""
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted(), first)
    fire_chase_until(rules, f, chase(f, first), until)
    return f, f.tasks[0]


def test_a_signature_taken_in_time_withdraws_the_sign_in_overdue_judged_before_it_came(
    rules: DispatchRules,
) -> None:
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted(), first)
    task = f.tasks[0]
    due = bj(2026, 11, 23, 12)
    judged = step_at(due)
    rules.on_chase(f, chase(f, first), judged)
    assert [o["stage"] for o in emitted(judged, ev.CaseOverdue)] == ["sign_in"]
    # handling took the signature two seconds before the deadline; dispatch hears it after
    taken = due - timedelta(seconds=2)
    late = step_at(due + timedelta(seconds=5))
    rules.on_signed(
        f,
        signed_event(f, taken, sign_in_due=due, on_time=True),
        late,
    )
    assert types(late) == [
        "case.overdue_withdrawn gridloop.case.overdue_withdrawn.v1",
        "dispatch.sanitation.overdue_withdrawn gridloop.dispatch.overdue_withdrawn.v1",
    ]
    [w] = emitted(late, ev.CaseOverdueWithdrawn)
    assert (w["stage"], w["dept"], w["task_id"], w["escalation_levels"]) == (
        "sign_in",
        "sanitation",
        task.task_id,
        [],
    )
    assert [datetime.fromisoformat(w[k]) for k in ("deadline", "overdue_at", "answered_at")] == [
        due,
        due,
        taken,
    ]
    [notice] = [env.data for s, env in late.pending if s.startswith("dispatch.")]
    assert notice["stage"] == "sign_in" and "撤回" in notice["note"]
    assert task.status == TaskStatus.SIGNED and task.sign_in_overdue_at is None


def test_a_late_signature_leaves_the_sign_in_overdue_standing(rules: DispatchRules) -> None:
    f = CaseFile(CID)
    first = step_at(MON)
    rules.on_accepted(f, accepted(), first)
    task = f.tasks[0]
    due = bj(2026, 11, 23, 12)
    rules.on_chase(f, chase(f, first), step_at(due))
    late = step_at(due + timedelta(minutes=5))
    rules.on_signed(
        f,
        signed_event(f, late.now(), sign_in_due=due, on_time=False),
        late,
    )
    assert late.pending == [] and task.sign_in_overdue_at == due


def test_a_result_taken_in_time_withdraws_the_overdue_and_the_escalations_after_it(
    rules: DispatchRules,
) -> None:
    deadline = bj(2026, 11, 24, 10)
    # the ladder ran to level 2 (the grid head, half a working day later)
    f, task = chased_until(rules, bj(2026, 11, 24, 15, 15))
    assert (task.overdue_at, task.escalation_level) == (deadline, 2)
    taken = deadline - timedelta(minutes=1)
    late = step_at(bj(2026, 11, 24, 15, 20))  # handling's outbox stuck for hours
    rules.on_handled(f, handled_event(f, taken, deadline=deadline, on_time=True), late)
    [w] = emitted(late, ev.CaseOverdueWithdrawn)
    assert (w["stage"], w["escalation_levels"]) == ("handling", [1, 2])
    assert datetime.fromisoformat(w["overdue_at"]) == deadline
    notices = [s for s, _ in late.pending if s.endswith(".overdue_withdrawn")]
    assert notices == ["case.overdue_withdrawn", "dispatch.sanitation.overdue_withdrawn"]
    assert (task.status, task.overdue_at, task.escalation_level, task.escalated_at) == (
        TaskStatus.HANDLED,
        None,
        0,
        None,
    )


def test_a_late_result_leaves_the_overdue_standing(rules: DispatchRules) -> None:
    deadline = bj(2026, 11, 24, 10)
    f, task = chased_until(rules, deadline)
    at = deadline + timedelta(minutes=1)
    late = step_at(at)
    rules.on_handled(f, handled_event(f, at, deadline=deadline, on_time=False), late)
    assert emitted(late, ev.CaseOverdueWithdrawn) == []
    assert (task.status, task.overdue_at, task.escalation_level) == (
        TaskStatus.HANDLED,
        deadline,
        1,
    )


def test_a_result_in_time_without_an_overdue_withdraws_nothing(rules: DispatchRules) -> None:
    f = dispatched(rules)
    at = bj(2026, 11, 23, 16)
    step = step_at(at)
    rules.on_handled(f, handled_event(f, at), step)
    assert emitted(step, ev.CaseOverdueWithdrawn) == []
    assert not [s for s, _ in step.pending if s.startswith("dispatch.")]


def test_a_result_taken_in_time_withdraws_the_overdue_an_extension_granted_since_replaced(
    rules: DispatchRules,
) -> None:
    """The deadline passed and was judged (超期, 督办 level 1) while the department's result,
    taken by handling a minute before it, was on its way; a dispatcher granted the pending
    extension meanwhile. The result withdraws the overdue of the deadline it met, the 督办
    with it; the extension stands."""
    deadline = bj(2026, 11, 24, 10)
    # the request, made at 09:00, reached dispatch after the judgement
    f, task = chased_until(rules, deadline)
    ask_extension(rules, f, bj(2026, 11, 24, 9), "X-1", bj(2026, 11, 25, 10))
    assert (task.overdue_at, task.escalation_level) == (deadline, 1)
    grant = step_at(deadline + timedelta(minutes=20))
    rules.decide_extension(
        f, grant, "X-1", Dispatcher(), granted=True, new_deadline=None, reason=None
    )
    assert (task.deadline, task.overdue_at, task.escalation_level) == (
        bj(2026, 11, 25, 10),
        None,
        1,
    )
    taken = deadline - timedelta(minutes=1)
    late = step_at(deadline + timedelta(minutes=25))
    rules.on_handled(f, handled_event(f, taken, deadline=deadline, on_time=True), late)
    [w] = emitted(late, ev.CaseOverdueWithdrawn)
    assert (w["stage"], w["escalation_levels"]) == ("handling", [1])
    assert [datetime.fromisoformat(w[k]) for k in ("deadline", "overdue_at", "answered_at")] == [
        deadline,
        deadline,
        taken,
    ]
    notices = [s for s, _ in late.pending if s.endswith(".overdue_withdrawn")]
    assert notices == ["case.overdue_withdrawn", "dispatch.sanitation.overdue_withdrawn"]
    # the department's notice: the task as it stands (the new deadline), the old one named
    [notice] = [env.data for s, env in late.pending if s.startswith("dispatch.")]
    assert datetime.fromisoformat(notice["case"]["deadline"]) == bj(2026, 11, 25, 10)
    assert "2026-11-24 10:00" in notice["note"] and "督办 1" in notice["note"]
    assert (task.status, task.escalation_level, task.replaced_deadline, task.extensions) == (
        TaskStatus.HANDLED,
        0,
        None,
        1,
    )


def test_a_result_taken_after_the_replaced_deadline_withdraws_nothing(
    rules: DispatchRules,
) -> None:
    deadline = bj(2026, 11, 24, 10)
    f, task = chased_until(rules, deadline)
    task.extend(deadline + timedelta(minutes=20), bj(2026, 11, 25, 10))
    # handling heard of the extension: on time against the new deadline, late for the old
    taken = deadline + timedelta(minutes=30)
    late = step_at(taken + timedelta(seconds=1))
    rules.on_handled(f, handled_event(f, taken, deadline=bj(2026, 11, 25, 10), on_time=True), late)
    assert emitted(late, ev.CaseOverdueWithdrawn) == []
    assert (task.escalation_level, task.replaced_deadline) == (1, deadline)
