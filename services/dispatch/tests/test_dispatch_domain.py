"""The dispatch rules without I/O: routing, the task's life, the chase plan, privacy."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gridloop_city import City, WorkingCalendar, load_city
from gridloop_contracts import MaskedReporter
from gridloop_dispatch.domain import chasing, privacy, routing
from gridloop_dispatch.domain.casefile import (
    Case,
    CaseState,
    Task,
    TaskStatus,
    Withdrawn,
    check_extension,
    check_open,
)
from gridloop_dispatch.domain.deadlines import Deadlines
from gridloop_dispatch.domain.routing import Assignment, Unroutable
from gridloop_runtime.commands import Refusal

BJ = ZoneInfo("Asia/Shanghai")
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
MON = datetime(2026, 11, 23, 10, tzinfo=BJ)
# Cells of sub-districts 001 (东华门) and 002 (景山).
CELL_001, CELL_002 = "1101010010010001", "1101010020010001"
WATER_COVER = "1101010101000001"  # a P0101 上水井盖 registered to `water`


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(DEMO_CITY)


@pytest.fixture(scope="module")
def dl(city: City) -> Deadlines:
    return Deadlines(WorkingCalendar.from_config(city.calendar), city.calendar)


def task(**kw: object) -> Task:
    values: dict[str, object] = {
        "task_id": "C1-T1",
        "case_id": "C1",
        "dept": "sanitation",
        "kind": "initial",
        "dispatched_at": MON,
        "deadline": MON + timedelta(days=1),
        "window_start": MON,
        "sign_in_due": MON + timedelta(hours=2),
    }
    values.update(kw)
    return Task(**values)  # type: ignore[arg-type]


# -- routing ------------------------------------------------------------------------------
def test_category_routes_to_its_unit(city: City) -> None:
    assert routing.route(city, "E0102", CELL_001) == Assignment("sanitation")


def test_territory_picks_the_sub_district_office(city: City) -> None:
    a = routing.route(city, "E0504", CELL_001)
    b = routing.route(city, "E0504", CELL_002)
    assert isinstance(a, Assignment) and a.dept == "street-001"
    assert isinstance(b, Assignment) and b.dept == "street-002"


def test_co_handlers_and_lead_come_from_the_rule(city: City) -> None:
    a = routing.route(city, "E0101", CELL_001)
    assert a == Assignment("urban-mgmt", ("housing",), "urban-mgmt", "routing")


def test_a_part_owner_wins_over_the_routing_rule(city: City) -> None:
    cell = city.parts[WATER_COVER].cell_code
    owned = routing.route(city, "P0101", cell, part_owner_dept="housing")
    assert owned == Assignment("housing", basis="part-owner")
    # Without a stated owner the register answers; an event category ignores owners.
    assert routing.part_owner(city, WATER_COVER, None) == "water"
    assert routing.part_owner(city, WATER_COVER, "housing") == "housing"
    assert routing.part_owner(city, "no-such-part", None) is None
    event = routing.route(city, "E0102", cell, part_owner_dept="housing")
    assert isinstance(event, Assignment) and event.dept == "sanitation"


def test_a_return_moves_to_the_next_candidate_then_nowhere(city: City) -> None:
    first = routing.route(city, "E0504", CELL_001, exclude=["street-001"])
    assert isinstance(first, Assignment)
    assert (first.dept, first.basis) == ("urban-mgmt", "candidate")
    none_left = routing.route(city, "E0504", CELL_001, exclude=["street-001", "urban-mgmt"])
    assert isinstance(none_left, Unroutable) and "退回" in none_left.reason
    owner_returned = routing.route(city, "P0101", CELL_001, "housing", exclude=["housing"])
    assert isinstance(owner_returned, Assignment) and owner_returned.dept == "water"


def test_a_returned_co_handler_is_not_asked_again(city: City) -> None:
    a = routing.route(city, "E0101", CELL_001, exclude=["housing"])
    assert a == Assignment("urban-mgmt", (), "urban-mgmt", "routing")


@pytest.mark.parametrize(
    ("category", "cell", "why"),
    [
        ("E0602", CELL_001, "no routing rule"),
        ("E9999", CELL_001, "unknown category"),
        ("E0102", "9999999999999999", "unknown cell"),
    ],
)
def test_unroutable_cases_say_why(city: City, category: str, cell: str, why: str) -> None:
    found = routing.route(city, category, cell)
    assert isinstance(found, Unroutable), why
    assert category in found.reason or cell in found.reason


def test_a_dispatchers_choice_of_units_is_checked(city: City) -> None:
    assert routing.check_units(city, "sanitation", ["housing"], "sanitation") is None
    assert routing.check_units(city, "nobody", [], None) == "dept: unknown department 'nobody'"
    problem = routing.check_units(city, "sanitation", ["housing", "nobody"], None)
    assert problem is not None and problem.startswith("co_handlers.1:")
    problem = routing.check_units(city, "sanitation", ["sanitation"], None)
    assert problem is not None and problem.startswith("co_handlers.0:")
    problem = routing.check_units(city, "sanitation", ["housing", "housing"], None)
    assert problem is not None and problem.startswith("co_handlers.1:")
    problem = routing.check_units(city, "sanitation", ["housing"], "water")
    assert problem is not None and problem.startswith("lead:")


def test_candidates_list_every_unit_once_best_first(city: City) -> None:
    found = routing.candidates(city, "P0101", CELL_001, "water")
    assert [(a.dept, a.basis) for a in found] == [
        ("water", "part-owner"),
        ("urban-mgmt", "candidate"),
    ]
    event = routing.candidates(city, "E0504", CELL_001, "water")
    assert [a.dept for a in event] == ["street-001", "urban-mgmt"]


# -- a task's life ------------------------------------------------------------------------
def test_sign_in_happens_once_and_only_on_an_active_task() -> None:
    t = task()
    assert t.sign(MON) and t.status == TaskStatus.SIGNED
    assert not t.sign(MON + timedelta(hours=1))
    ended = task(status=TaskStatus.RECALLED)
    assert not ended.sign(MON)


def test_each_chase_step_happens_once() -> None:
    t = task()
    assert t.remind(MON) and not t.remind(MON)
    assert t.miss_sign_in(MON) and not t.miss_sign_in(MON)
    assert t.fall_overdue(MON) and not t.fall_overdue(MON)
    assert t.escalate(1, MON) and not t.escalate(1, MON)
    assert t.escalate(3, MON) and not t.escalate(2, MON)
    assert t.escalation_level == 3


def test_a_signed_task_never_misses_its_sign_in() -> None:
    t = task()
    t.sign(MON)
    assert not t.miss_sign_in(MON + timedelta(hours=3))


def test_nothing_is_chased_on_an_ended_task() -> None:
    t = task()
    t.report_handled(MON)
    assert not (t.remind(MON) or t.fall_overdue(MON) or t.escalate(1, MON))


def test_rework_restarts_the_period_with_a_new_generation() -> None:
    t = task()
    t.sign(MON)
    t.fall_overdue(MON)
    t.escalate(2, MON)
    t.report_handled(MON)
    later = MON + timedelta(days=2)
    t.rework(later, later + timedelta(days=1), count=1, sign_in_due=later + timedelta(hours=2))
    # the department signs for the rework round again
    assert t.status == TaskStatus.OPEN and t.kind == "rework" and t.signed_at is None
    assert (t.gen, t.reworks, t.escalation_level) == (2, 1, 0)
    assert t.overdue_at is None and t.handled_at is None
    assert t.sign_in_due == later + timedelta(hours=2)
    assert t.timer_key() == "C1-T1#2" and t.timer_key(1) == "C1-T1#1"


def test_an_extension_keeps_the_escalations_reached() -> None:
    t = task()
    t.remind(MON)
    t.fall_overdue(MON)
    t.escalate(1, MON)
    new = MON + timedelta(days=3)
    t.extend(MON + timedelta(days=1), new)
    assert t.deadline == new and t.gen == 2 and t.extensions == 1
    assert t.reminded_at is None and t.overdue_at is None and t.escalation_level == 1


def test_parties_and_roles() -> None:
    sole = task()
    assert sole.parties() == ["sanitation"] and sole.role_of("sanitation") == "sole"
    joint = task(dept="gas", co_handlers=("fire", "emergency"), lead="gas")
    assert joint.parties() == ["gas", "fire", "emergency"]
    assert joint.role_of("gas") == "lead" and joint.role_of("fire") == "co-handler"
    led_by_other = task(dept="roads", co_handlers=("drainage",), lead="drainage")
    assert led_by_other.role_of("drainage") == "lead"
    assert led_by_other.role_of("roads") == "co-handler"


def test_extension_rules() -> None:
    t = task()
    cap = MON + timedelta(days=7)
    check_extension(t, MON + timedelta(days=2), MON, cap)
    with pytest.raises(Refusal) as err:
        check_extension(t, t.deadline, MON, cap)
    assert (err.value.field, err.value.status) == ("new_deadline", 422)
    with pytest.raises(Refusal) as err:
        check_extension(t, MON + timedelta(days=8), MON, cap)
    assert err.value.code == "beyond-limit"
    t.report_handled(MON)
    with pytest.raises(Refusal) as err:
        check_extension(t, MON + timedelta(days=2), MON, None)
    assert err.value.code == "task-ended"


# -- the case -----------------------------------------------------------------------------
def state_of(case: Case) -> CaseState:
    """`case.state` read afresh: mypy keeps the narrowing of an `assert case.state == ...`
    across the calls that change the state, and would take the next assert for impossible."""
    return case.state


def test_the_case_state_follows_its_tasks() -> None:
    case = Case("C1", "E0102", CELL_001, MON)
    case.settle([], MON)
    assert state_of(case) == CaseState.QUEUED and case.queued  # never nowhere
    t1, t2 = task(), task(task_id="C1-T2", dept="housing")
    case.unqueue()
    case.settle([t1, t2], MON)
    assert state_of(case) == CaseState.DISPATCHED
    t1.report_handled(MON)
    t2.end(TaskStatus.RETURNED, MON, "not ours")
    case.to_queue("housing returned its part", MON)
    case.settle([t1, t2], MON)
    assert state_of(case) == CaseState.QUEUED
    case.unqueue()
    case.settle([t1, t2], MON)
    assert state_of(case) == CaseState.HANDLED
    case.close(MON)
    case.settle([task()], MON)
    assert state_of(case) == CaseState.CLOSED
    with pytest.raises(Refusal):
        check_open(case)


def test_task_ids_count_per_case_and_listed_supervision_is_once() -> None:
    case = Case("110101-20261123-000001", "E0102", CELL_001, MON)
    assert case.next_task_id() == "110101-20261123-000001-T1"
    assert case.next_task_id() == "110101-20261123-000001-T2"
    case.supervise(MON, "群众反映强烈", "disp-01")
    with pytest.raises(Refusal) as err:
        case.supervise(MON, "again", "disp-01")
    assert err.value.code == "already-supervised"


# -- the chase plan -----------------------------------------------------------------------
def test_a_new_task_plans_sign_in_reminder_overdue_and_the_ladder(dl: Deadlines) -> None:
    deadline = datetime(2026, 11, 24, 10, tzinfo=BJ)  # E0102: one working day from Mon 10:00
    t = task(deadline=deadline, sign_in_due=datetime(2026, 11, 23, 12, tzinfo=BJ))
    plan = {p.kind: p for p in chasing.plan(t, dl, on_clock=False)}
    assert list(plan) == [
        "sign_in",
        "remind",
        "overdue",
        "escalate:1",
        "escalate:2",
        "escalate:3",
        "escalate:4",
    ]
    assert plan["sign_in"].due == datetime(2026, 11, 23, 12, tzinfo=BJ)
    # 75% of 7.5 working hours = 5 h 37.5 min from 10:00, over lunch: 17:07:30.
    assert plan["remind"].due == datetime(2026, 11, 23, 17, 7, 30, tzinfo=BJ)
    assert plan["overdue"].due == deadline == plan["escalate:1"].due
    # the grid head half a working day after the deadline (3.75 h: 10:00-12:00, 13:30-15:15)
    assert plan["escalate:2"].due == datetime(2026, 11, 24, 15, 15, tzinfo=BJ)
    assert plan["escalate:3"].due == datetime(2026, 11, 25, 10, tzinfo=BJ)
    assert plan["escalate:4"].due == datetime(2026, 11, 27, 10, tzinfo=BJ)
    assert {p.key for p in plan.values()} == {"C1-T1#1"}
    assert plan["escalate:2"].payload == {"case_id": "C1", "task_id": "C1-T1", "gen": 1, "level": 2}


@pytest.mark.parametrize("on_clock", [False, True])
def test_the_next_step_is_the_earliest_of_the_whole_plan(dl: Deadlines, on_clock: bool) -> None:
    """The next step is found without the ladder until the task is overdue: in every state a
    task passes through, it is the earliest step of the whole plan (the first on a tie)."""
    deadline = datetime(2026, 11, 24, 10, tzinfo=BJ)
    seen = []

    def check(t: Task) -> None:
        whole = chasing.plan(t, dl, on_clock)
        expected = min(whole, key=lambda p: p.due) if whole else None
        assert chasing.next_step(t, dl, on_clock) == expected
        seen.append(expected.kind if expected else None)

    t = task(deadline=deadline, sign_in_due=datetime(2026, 11, 23, 12, tzinfo=BJ))
    check(t)
    t.sign(MON)
    check(t)
    t.remind(MON)
    check(t)
    t.escalate(2, MON)  # supervised before the deadline: the overdue step still comes first
    check(t)
    t.fall_overdue(MON)
    check(t)
    t.escalate(3, MON)
    check(t)
    t.escalate(4, MON)
    check(t)
    assert seen == ["sign_in", "remind", "overdue", "overdue", "escalate:3", "escalate:4", None]


def test_the_plan_leaves_out_what_happened(dl: Deadlines) -> None:
    t = task(deadline=datetime(2026, 11, 24, 10, tzinfo=BJ))
    t.sign(MON)
    t.remind(MON)
    t.escalate(2, MON)
    assert [p.kind for p in chasing.plan(t, dl, False)] == ["overdue", "escalate:3", "escalate:4"]
    t.report_handled(MON)
    assert chasing.plan(t, dl, False) == []
    assert chasing.kinds((1, 2, 3))[-1] == "escalate:3"


# -- privacy ------------------------------------------------------------------------------
def test_the_feed_never_carries_a_clear_phone_number_or_name() -> None:
    clear = MaskedReporter(ref="R-1", name="张三丰", phone="13812345678")
    out = privacy.masked(clear)
    assert out == MaskedReporter(ref="R-1", name="张**", phone="138****5678")
    assert privacy.masked(out) == out  # already masked stays as it is
    assert privacy.mask_phone("12345") == "***45"
    assert privacy.mask_phone("") is None and privacy.mask_name("  ") is None
    assert privacy.masked(None) is None


def overdue_state(t: Task) -> tuple[datetime | None, int | None, int]:
    return (t.overdue_at, t.overdue_level, t.escalation_level)


def test_a_withdrawn_overdue_takes_back_only_the_levels_reached_after_it() -> None:
    # overdue at the first deadline and escalated once; extended (the level stands); overdue
    # again at the new deadline and escalated to 3; the on-time result takes back 2 and 3
    t = task()
    d1 = t.deadline
    assert t.fall_overdue(d1) and t.escalate(1, d1)
    t.extend(d1 + timedelta(hours=1), d1 + timedelta(days=1))
    assert overdue_state(t) == (None, None, 1)
    d2 = t.deadline
    assert t.fall_overdue(d2) and t.overdue_level == 1
    assert t.escalate(2, d2) and t.escalate(3, d2 + timedelta(hours=4))
    taken = d2 - timedelta(minutes=1)
    t.report_handled(taken)
    assert t.withdraw_overdue(True, taken) == [Withdrawn(d2, d2, (2, 3))]
    assert overdue_state(t) == (None, None, 1)
    assert t.withdraw_overdue(True, taken) == []  # once


def test_nothing_is_withdrawn_for_a_late_result_or_without_an_overdue() -> None:
    t = task()
    assert t.withdraw_overdue(True, t.deadline) == []
    assert t.fall_overdue(t.deadline) and t.escalate(1, t.deadline)
    assert t.withdraw_overdue(False, t.deadline + timedelta(seconds=1)) == []
    assert (t.overdue_at, t.escalation_level) == (t.deadline, 1)
    assert t.withdraw_sign_in_overdue(signed_on_time=True) is None  # no 签收超时 judged
    assert t.miss_sign_in(MON) and t.withdraw_sign_in_overdue(signed_on_time=False) is None
    assert t.withdraw_sign_in_overdue(signed_on_time=True) == MON
    assert t.sign_in_overdue_at is None


def test_an_overdue_judged_by_an_earlier_release_withdraws_its_whole_ladder_unless_extended() -> (
    None
):
    # a row written before the level was recorded: overdue_level is None
    due = MON + timedelta(days=1)
    t = task(overdue_at=due, escalation_level=2)
    assert t.withdraw_overdue(True, MON) == [Withdrawn(due, due, (1, 2))]
    assert t.escalation_level == 0
    extended = task(overdue_at=due, escalation_level=2, extensions=1)
    assert extended.withdraw_overdue(True, MON) == [Withdrawn(due, due, ())]
    assert (extended.overdue_at, extended.escalation_level) == (None, 2)


def test_an_extension_keeps_the_overdue_it_replaces_for_a_result_taken_by_its_deadline() -> None:
    # D1 passed and was judged with one 督办; the extension to D2 was granted while the
    # result, taken before D1, was still on its way: both are withdrawn, the later first
    t = task()
    d1 = t.deadline
    assert t.fall_overdue(d1) and t.escalate(1, d1)
    t.extend(d1 + timedelta(minutes=30), d1 + timedelta(days=1))
    assert (t.replaced_deadline, t.replaced_overdue_level) == (d1, 0)
    taken = d1 - timedelta(seconds=3)
    t.report_handled(taken)
    assert t.withdraw_overdue(True, taken) == [Withdrawn(d1, d1, (1,))]
    assert (t.escalation_level, t.escalated_at, t.replaced_deadline) == (0, None, None)
    assert t.withdraw_overdue(True, taken) == []  # once


def test_a_result_taken_after_the_replaced_deadline_leaves_its_overdue_standing() -> None:
    t = task()
    d1 = t.deadline
    assert t.fall_overdue(d1) and t.escalate(1, d1)
    t.extend(d1 + timedelta(hours=1), d1 + timedelta(days=1))
    d2 = t.deadline
    # overdue again at D2 and escalated to 2; the result, taken between D1 and D2, was on time
    # for D2 only: D2's overdue and level 2 go, D1's and level 1 stand
    assert t.fall_overdue(d2) and t.escalate(2, d2)
    taken = d1 + timedelta(hours=2)
    assert t.withdraw_overdue(True, taken) == [Withdrawn(d2, d2, (2,))]
    assert (t.escalation_level, t.replaced_deadline) == (1, d1)
    # taken before D1 instead: both, the later first, each with its own levels
    t2 = task()
    assert t2.fall_overdue(d1) and t2.escalate(1, d1)
    t2.extend(d1 + timedelta(hours=1), d2)
    assert t2.fall_overdue(d2) and t2.escalate(2, d2)
    early = d1 - timedelta(minutes=1)
    assert t2.withdraw_overdue(True, early) == [
        Withdrawn(d2, d2, (2,)),
        Withdrawn(d1, d1, (1,)),
    ]
    assert t2.escalation_level == 0
    # a late result (handling judged it so) withdraws neither
    t3 = task()
    assert t3.fall_overdue(d1)
    t3.extend(d1 + timedelta(hours=1), d2)
    assert t3.fall_overdue(d2)
    assert t3.withdraw_overdue(False, d2 + timedelta(hours=1)) == []
    assert (t3.overdue_at, t3.replaced_deadline) == (d2, d1)


def test_an_extension_before_any_overdue_or_a_rework_keeps_nothing_aside() -> None:
    t = task()
    d1 = t.deadline
    t.extend(d1 - timedelta(hours=1), d1 + timedelta(days=1))
    assert t.replaced_deadline is None
    assert t.fall_overdue(t.deadline)
    t.extend(t.deadline + timedelta(hours=1), t.deadline + timedelta(days=1))
    assert t.replaced_deadline is not None
    t.rework(t.deadline, t.deadline + timedelta(days=2), 1, None)
    assert (t.replaced_deadline, t.replaced_overdue_level) == (None, None)
