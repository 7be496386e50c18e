"""The scoring rules on hand-built event histories: periods, the fold (every measure), rates,
composite scores, rankings and per-person flags — answers worked out by hand in each test."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from gridloop_city.models import (
    Grade,
    PeopleThresholds,
    RuleSet,
    ScoringConfig,
    ScoringRule,
)
from gridloop_contracts import Actor, Envelope, to_binary
from gridloop_contracts import cases as ev
from gridloop_scoring.context import rules_digest, rules_json
from gridloop_scoring.domain import measures as m
from gridloop_scoring.domain.facts import (
    Fact,
    fact_from,
    fact_from_data,
    fact_from_json,
    fact_of,
    type_of,
)
from gridloop_scoring.domain.fold import FoldContext, Item, fold_all, fold_case, totals
from gridloop_scoring.domain.measures import Rate, with_rates
from gridloop_scoring.domain.people import person_year, satisfaction_score
from gridloop_scoring.domain.periods import period_of, period_of_date
from gridloop_scoring.domain.rules import check_rule_set, rank, score, term
from hypothesis import given, settings
from hypothesis import strategies as st

CST = ZoneInfo("Asia/Shanghai")
# Monday 23 November 2026, 10:00 in Beijing.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CELL, COMMUNITY, SUBDISTRICT = "1101010010010001", "110101001001", "110101001"
CELL2, COMMUNITY2, SUBDISTRICT2 = "1101010020010001", "110101002001", "110101002"
SUP, BACKUP, OTHER_SUP, HEAD = "sup-001", "sup-002", "sup-003", "gh-0010010001"
CTX = FoldContext(
    cells={CELL: (COMMUNITY, SUBDISTRICT), CELL2: (COMMUNITY2, SUBDISTRICT2)},
    roster={CELL: (SUP, BACKUP), CELL2: (OTHER_SUP, "sup-004")},
    grid_heads={CELL: (HEAD,)},
)
OPERATOR = Actor(id="op-01", role="operator")

_DEFAULTS: dict[type[ev.CaseEvent], dict[str, Any]] = {
    ev.CaseReported: {"report_id": "R-1", "channel": "hotline", "source": "hotline-12345"},
    ev.CaseMerged: {"report_id": "R-2", "channel": "hotline", "source": "hotline-12345"},
    ev.CaseAccepted: {"category_code": "E0102", "cell_code": CELL, "description": "垃圾"},
    ev.CaseAcceptedV2: {"category_code": "E0102", "cell_code": CELL, "description": "垃圾"},
    ev.CaseRejected: {"reason_code": "not-public-space", "reason": "非公共区域"},
    ev.CaseDispatched: {"dept": "sanitation", "task_id": "T-1"},
    ev.CaseSigned: {"dept": "sanitation", "task_id": "T-1"},
    ev.CaseReturned: {"dept": "sanitation", "task_id": "T-1", "reason": "不属本单位"},
    ev.CaseRecalled: {"dept": "sanitation", "task_id": "T-1", "reason": "派错"},
    ev.CaseExtensionRequested: {"dept": "sanitation", "reason": "需要设备"},
    ev.CaseExtensionDecided: {"dept": "sanitation"},
    ev.CaseHandled: {"dept": "sanitation", "task_id": "T-1", "result": "已清运"},
    ev.CaseOverdue: {"dept": "sanitation"},
    ev.CaseEscalated: {"level": 1, "to_role": "dispatcher", "reason": "超期"},
    ev.CaseVerificationAssigned: {"supervisor_id": SUP},
    ev.CaseVerified: {"supervisor_id": SUP},
    ev.CaseConfirmed: {"supervisor_id": SUP},
    ev.CaseReworked: {"count": 1, "reason": "仍有垃圾"},
    ev.CaseClosed: {"closed_by": SUP},
    ev.CaseClosedV2: {"closed_by": SUP},
    ev.CaseVerifiedV2: {"supervisor_id": SUP},
    ev.CaseRated: {},
    ev.CaseOverdueWithdrawn: {"dept": "sanitation", "task_id": "T-1", "stage": "handling"},
}


class History:
    """A case's events as facts, in the order written (tests shuffle them)."""

    def __init__(self, case_id: str = "C-1", cell: str = CELL) -> None:
        self.case_id = case_id
        self.cell = cell
        self.facts: list[Fact] = []

    def add(self, model: type[ev.CaseEvent], at: datetime, **data: Any) -> History:
        fields: dict[str, Any] = {**_DEFAULTS.get(model, {}), **data}
        if model in (ev.CaseReported, ev.CaseAccepted):
            fields.setdefault("description", "垃圾")
        if model is ev.CaseReported:
            fields.setdefault("reported_at", at)
        if model is ev.CaseDispatched:
            fields.setdefault("deadline", at + timedelta(days=1))
        if model is ev.CaseHandled:
            fields.setdefault("completed_at", at)
        if model is ev.CaseVerificationAssigned:
            fields.setdefault("due", at + timedelta(hours=4))
        if model is ev.CaseExtensionRequested:
            fields.setdefault("proposed_deadline", at + timedelta(days=3))
        cell = self.cell
        dims = {
            "case_id": self.case_id,
            "cell_code": cell,
            "community_code": CTX.cells[cell][0],
            "subdistrict_code": CTX.cells[cell][1],
        }
        event = model(**{**dims, **fields, "occurred_at": at})
        self.facts.append(fact_of("/test", f"{self.case_id}-{len(self.facts)}", event))
        return self


def counted(items: list[Item]) -> Counter[tuple[str, str, str]]:
    return Counter((i.subject_kind, i.subject_code, i.measure) for i in items)


def at(items: list[Item], kind: str, code: str, measure: str) -> list[datetime]:
    return sorted(
        i.at for i in items if (i.subject_kind, i.subject_code, i.measure) == (kind, code, measure)
    )


def happy_path(case_id: str = "C-1", reporter: str | None = SUP) -> History:
    """Reported on patrol → accepted → dispatched → signed → handled → verified → closed →
    rated satisfied: every step on time, one hour apart."""
    h = History(case_id)
    hour = timedelta(hours=1)
    h.add(ev.CaseReported, T0, channel="patrol", source="patrol-app", reporter_user_id=reporter)
    h.add(ev.CaseAccepted, T0 + hour, actor=OPERATOR)
    h.add(
        ev.CaseDispatched,
        T0 + 2 * hour,
        deadline=T0 + 10 * hour,
        sign_in_due=T0 + 3 * hour,
    )
    h.add(ev.CaseSigned, T0 + 2.5 * hour)
    h.add(ev.CaseHandled, T0 + 5 * hour)
    h.add(ev.CaseVerificationAssigned, T0 + 5 * hour, due=T0 + 9 * hour)
    h.add(ev.CaseVerified, T0 + 6 * hour, passed=True)
    h.add(ev.CaseClosed, T0 + 6 * hour, on_time=True)
    h.add(ev.CaseRated, T0 + 30 * hour, rating="satisfied")
    return h


# -- periods ------------------------------------------------------------------------------
def test_periods_follow_the_beijing_calendar() -> None:
    # 2026-12-31 16:30 UTC is already 2027-01-01 00:30 in Beijing.
    instant = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    assert period_of("day", instant, CST).start == datetime(2027, 1, 1, tzinfo=CST)
    assert period_of("year", instant, CST).start == datetime(2027, 1, 1, tzinfo=CST)
    assert period_of("quarter", instant, CST).end == datetime(2027, 4, 1, tzinfo=CST)
    # 30 minutes earlier it is still 2026 there.
    assert period_of("year", instant - timedelta(hours=1), CST).start.year == 2026


def test_weeks_start_on_monday_and_periods_chain() -> None:
    sunday = date(2026, 11, 29)
    week = period_of_date("week", sunday, CST)
    assert week.start == datetime(2026, 11, 23, tzinfo=CST)
    assert week.end == datetime(2026, 11, 30, tzinfo=CST)
    assert week.next().start == week.end
    q4 = period_of_date("quarter", date(2026, 11, 23), CST)
    assert (q4.start, q4.end) == (
        datetime(2026, 10, 1, tzinfo=CST),
        datetime(2027, 1, 1, tzinfo=CST),
    )
    assert q4.next().key == "quarter:2027-01-01"
    month = period_of_date("month", date(2026, 12, 5), CST)
    assert month.next().start == datetime(2027, 1, 1, tzinfo=CST)
    assert period_of_date("day", date(2026, 11, 23), CST).contains(T0)
    with pytest.raises(ValueError, match="period must be one of"):
        period_of_date("fortnight", sunday, CST)  # type: ignore[arg-type]


# -- the fold: a whole case ------------------------------------------------------------------
def test_a_case_on_time_end_to_end_counts_once_in_every_measure() -> None:
    items = fold_case(happy_path().facts, CTX)
    dept = {m for (k, c, m) in counted(items) if k == "department" and c == "sanitation"}
    assert dept == {
        "dispatched",
        "to_handle",
        "signed",
        "signed_on_time",
        "handled",
        "handled_on_time",
        "rated",
        "satisfied",
        "sign_hours",
        "handling_hours",
    }
    area = {m for (k, c, m) in counted(items) if k == "area"}
    assert area == {
        "reported",
        "accepted",
        "closed",
        "closed_on_time",
        "rated",
        "satisfied",
        "discovered",  # the cell's supervisor found it on patrol
        "dispatches",
        "accept_hours",
        "dispatch_hours",
    }
    people = {(c, m) for (k, c, m) in counted(items) if k == "person"}
    assert people == {
        (SUP, "reports"),
        (SUP, "valid_reports"),  # reported by the cell's own supervisor: nothing missed
        (SUP, "cell_cases"),
        (SUP, "verification_tasks"),
        (SUP, "verifications"),
        (SUP, "verifications_on_time"),
        (SUP, "verify_hours"),
        (SUP, "rated"),
        (SUP, "satisfied"),
        (HEAD, "rated"),
        (HEAD, "satisfied"),
        ("op-01", "decisions"),
        ("op-01", "accepted_cases"),
    }
    assert {(c, m) for (k, c, m) in counted(items) if k == "category"} == {
        ("E0102", "handling_hours")
    }
    # the case's flow under its channel (the wall screen's counts)
    assert {(c, m) for (k, c, m) in counted(items) if k == "channel"} == {
        ("patrol", "reported"),
        ("patrol", "accepted"),
        ("patrol", "dispatched"),
        ("patrol", "closed"),
    }
    assert all(n == 1 for n in counted(items).values())
    # The durations, in hours: report → acceptance 1, acceptance → dispatch 1, dispatch →
    # signature 0.5, dispatch → result 3, verification task → verdict 1.
    durations = {
        (i.subject_kind, i.measure): i.value for i in items if i.measure.endswith("_hours")
    }
    assert durations == {
        ("area", "accept_hours"): 1.0,
        ("area", "dispatch_hours"): 1.0,
        ("department", "sign_hours"): 0.5,
        ("department", "handling_hours"): 3.0,
        ("category", "handling_hours"): 3.0,
        ("person", "verify_hours"): 1.0,
    }
    # Every item carries the case's area, whichever subject it counts for.
    assert {(i.community_code, i.subdistrict_code) for i in items} == {(COMMUNITY, SUBDISTRICT)}
    # The deciding instants: the handling counts when handled, the closure when closed.
    assert at(items, "department", "sanitation", "handled") == [T0 + timedelta(hours=5)]
    assert at(items, "department", "sanitation", "to_handle") == [T0 + timedelta(hours=2)]
    assert at(items, "area", CELL, "closed") == [T0 + timedelta(hours=6)]


def test_duplicates_and_any_arrival_order_give_the_same_items() -> None:
    facts = happy_path().facts
    expected = sorted(fold_case(facts, CTX))
    rng = random.Random(7)
    for _ in range(20):
        shuffled = facts + rng.sample(facts, 4)  # four events delivered twice
        rng.shuffle(shuffled)
        assert sorted(fold_case(shuffled, CTX)) == expected


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_property_permutations_with_redeliveries_change_nothing(data: st.DataObject) -> None:
    facts = happy_path().facts + rework_history().facts
    expected = sorted(fold_all(facts, CTX))
    redelivered = data.draw(st.lists(st.sampled_from(facts), max_size=10))
    order = data.draw(st.permutations(facts + redelivered))
    assert sorted(fold_all(order, CTX)) == expected


# -- departments -----------------------------------------------------------------------------
def test_a_late_result_is_handled_not_on_time_and_overdue_when_it_came() -> None:
    h = History()
    h.add(ev.CaseAccepted, T0)
    h.add(ev.CaseDispatched, T0, deadline=T0 + timedelta(hours=4))
    late = T0 + timedelta(hours=6)
    h.add(ev.CaseHandled, late)  # no on_time from the emitter: judged against the deadline
    items = fold_case(h.facts, CTX)
    c = counted(items)
    assert c[("department", "sanitation", "handled")] == 1
    assert c[("department", "sanitation", "handled_on_time")] == 0
    assert at(items, "department", "sanitation", "overdue") == [late]


def test_the_overdue_event_decides_when_the_department_was_overdue() -> None:
    h = History()
    h.add(ev.CaseDispatched, T0, deadline=T0 + timedelta(hours=4))
    h.add(ev.CaseOverdue, T0 + timedelta(hours=4), stage="handling", dept="sanitation")
    h.add(ev.CaseOverdue, T0 + timedelta(hours=8), stage="handling", dept="sanitation")
    h.add(ev.CaseHandled, T0 + timedelta(hours=9), on_time=False)
    items = fold_case(h.facts, CTX)
    # Counted once, at the first overdue, not again when the late result came.
    assert at(items, "department", "sanitation", "overdue") == [T0 + timedelta(hours=4)]


def test_a_granted_extension_moves_the_deadline_the_result_is_judged_by() -> None:
    h = History()
    h.add(ev.CaseDispatched, T0, deadline=T0 + timedelta(hours=4))
    h.add(ev.CaseExtensionRequested, T0 + timedelta(hours=1))
    h.add(ev.CaseExtensionDecided, T0 + timedelta(hours=2), granted=False)
    h.add(ev.CaseExtensionRequested, T0 + timedelta(hours=2, minutes=30))
    h.add(
        ev.CaseExtensionDecided,
        T0 + timedelta(hours=3),
        granted=True,
        new_deadline=T0 + timedelta(hours=10),
    )
    h.add(ev.CaseHandled, T0 + timedelta(hours=8))  # after the first deadline, before the new
    c = counted(fold_case(h.facts, CTX))
    assert c[("department", "sanitation", "extension_requests")] == 2
    assert c[("department", "sanitation", "extensions")] == 1  # the refused one is not
    assert c[("department", "sanitation", "handled_on_time")] == 1
    assert c[("department", "sanitation", "overdue")] == 0


def test_a_returned_task_is_not_the_departments_to_handle_but_the_next_ones() -> None:
    h = History()
    h.add(ev.CaseDispatched, T0, dept="water", task_id="T-1")
    h.add(ev.CaseSigned, T0 + timedelta(minutes=10), dept="water", on_time=True)
    h.add(ev.CaseReturned, T0 + timedelta(minutes=30), dept="water")
    h.add(ev.CaseDispatched, T0 + timedelta(hours=1), dept="sanitation", task_id="T-2")
    h.add(ev.CaseHandled, T0 + timedelta(hours=3), dept="sanitation", task_id="T-2")
    c = counted(fold_case(h.facts, CTX))
    assert c[("department", "water", "dispatched")] == 1
    assert c[("department", "water", "returned")] == 1
    assert c[("department", "water", "to_handle")] == 0
    assert c[("department", "water", "signed_on_time")] == 1
    assert c[("department", "sanitation", "to_handle")] == 1
    assert c[("department", "sanitation", "handled_on_time")] == 1


def test_a_recalled_task_is_not_to_handle_unless_dispatched_again() -> None:
    h = History()
    h.add(ev.CaseDispatched, T0)
    h.add(ev.CaseRecalled, T0 + timedelta(minutes=5))
    assert counted(fold_case(h.facts, CTX))[("department", "sanitation", "to_handle")] == 0
    h.add(ev.CaseDispatched, T0 + timedelta(minutes=20), kind="manual")
    items = fold_case(h.facts, CTX)
    # Back with the department: counted once, at its first dispatch.
    assert at(items, "department", "sanitation", "to_handle") == [T0]


def test_a_recall_the_result_overtook_leaves_the_task_to_handle_and_ends_the_wait() -> None:
    """case.unqueued: the department's result crossed the recall. Its task is counted as
    to handle (and handled); the case's wait in the queue ends without a manual dispatch, so
    a later manual dispatch (another round) does not count those hours."""
    h = History()
    h.add(ev.CaseDispatched, T0)
    h.add(ev.CaseRecalled, T0 + timedelta(minutes=5))
    h.add(ev.CaseQueued, T0 + timedelta(minutes=5), reason="撤回", reason_code="recalled")
    h.add(ev.CaseHandled, T0 + timedelta(minutes=4))
    h.add(
        ev.CaseUnqueued,
        T0 + timedelta(minutes=6),
        dept="sanitation",
        task_id="T-1",
        reason="撤回作废",
        recalled_at=T0 + timedelta(minutes=5),
    )
    c = counted(fold_case(h.facts, CTX))
    assert c[("department", "sanitation", "to_handle")] == 1
    assert c[("department", "sanitation", "handled_on_time")] == 1
    h.add(
        ev.CaseDispatched,
        T0 + timedelta(hours=5),
        dept="water",
        task_id="T-2",
        kind="manual",
        actor={"id": "disp-01", "role": "dispatcher"},
    )
    items = fold_case(h.facts, CTX)
    assert not [i for i in items if i.measure == "queue_hours"]


def rework_history() -> History:
    """Handled, failed verification twice (the second falsified), reworked, passed."""
    h = History("C-RW", CELL2)
    h.add(ev.CaseAccepted, T0, cell_code=CELL2)
    h.add(ev.CaseDispatched, T0, task_id="T-9", deadline=T0 + timedelta(hours=8))
    h.add(ev.CaseHandled, T0 + timedelta(hours=1), task_id="T-9")
    h.add(ev.CaseVerified, T0 + timedelta(hours=2), passed=False, supervisor_id=OTHER_SUP)
    h.add(
        ev.CaseReworked,
        T0 + timedelta(hours=2),
        dept="sanitation",
        new_deadline=T0 + timedelta(hours=30),
    )
    h.add(ev.CaseHandled, T0 + timedelta(hours=3), task_id="T-9")
    h.add(
        ev.CaseVerified,
        T0 + timedelta(hours=4),
        passed=False,
        falsified=True,
        supervisor_id=OTHER_SUP,
    )
    h.add(ev.CaseReworked, T0 + timedelta(hours=4), dept="sanitation", count=2)
    h.add(ev.CaseHandled, T0 + timedelta(hours=20), task_id="T-9")
    h.add(ev.CaseVerified, T0 + timedelta(hours=21), passed=True, supervisor_id=OTHER_SUP)
    h.add(ev.CaseClosed, T0 + timedelta(hours=21), on_time=False, reworks=2)
    return h


def test_rework_counts_against_the_department_once_and_each_failure_against_the_area() -> None:
    items = fold_case(rework_history().facts, CTX)
    c = counted(items)
    assert c[("department", "sanitation", "handled")] == 1  # the first result only
    assert c[("department", "sanitation", "handled_on_time")] == 1
    assert at(items, "department", "sanitation", "reworked") == [T0 + timedelta(hours=2)]
    assert c[("area", CELL2, "failed_verifications")] == 2
    assert c[("area", CELL2, "falsifications")] == 1
    assert c[("area", CELL2, "closed")] == 1 and c[("area", CELL2, "closed_on_time")] == 0
    assert c[("person", OTHER_SUP, "verifications")] == 3


def test_escalations_count_for_the_named_department() -> None:
    h = History()
    h.add(ev.CaseDispatched, T0)
    h.add(ev.CaseEscalated, T0 + timedelta(days=1), dept="sanitation")
    h.add(ev.CaseEscalated, T0 + timedelta(days=2), dept="sanitation", level=2)
    h.add(ev.CaseEscalated, T0 + timedelta(days=2), level=3)  # no department named: no one
    assert counted(fold_case(h.facts, CTX))[("department", "sanitation", "escalations")] == 2


# 超期撤回: dispatch judged a deadline passed while the department's on-time answer was on its
# way (handling's outbox, the bus), and withdraws that overdue and the 督办 it brought.
DISPATCH = Actor(id="dispatch", role="system")
DEADLINE = T0 + timedelta(hours=4)
SECOND = timedelta(seconds=1)


def overdue_then_on_time(*, withdrawn: bool) -> History:
    """Dispatched with a 4-hour deadline; judged overdue at it and escalated (level 1) at
    once; the result, taken by handling 5 s before the deadline (on time), reaches dispatch
    after it — which then withdraws the overdue and its escalation (when `withdrawn`)."""
    h = History()
    h.add(ev.CaseReported, T0)
    h.add(ev.CaseAccepted, T0)
    h.add(ev.CaseDispatched, T0, deadline=DEADLINE, sign_in_due=T0 + timedelta(hours=1))
    h.add(ev.CaseSigned, T0 + timedelta(minutes=10))
    h.add(ev.CaseOverdue, DEADLINE, stage="handling", task_id="T-1", deadline=DEADLINE)
    h.add(ev.CaseEscalated, DEADLINE, dept="sanitation", task_id="T-1")
    answered = DEADLINE - 5 * SECOND
    h.add(ev.CaseHandled, answered, completed_at=answered, deadline=DEADLINE, on_time=True)
    if withdrawn:
        h.add(
            ev.CaseOverdueWithdrawn,
            DEADLINE + 40 * SECOND,
            actor=DISPATCH,
            deadline=DEADLINE,
            overdue_at=DEADLINE,
            answered_at=answered,
            escalation_levels=[1],
        )
    return h


def test_a_withdrawn_overdue_and_its_escalations_are_not_counted() -> None:
    items = fold_case(overdue_then_on_time(withdrawn=True).facts, CTX)
    c = counted(items)
    assert c[("department", "sanitation", "overdue")] == 0
    assert c[("department", "sanitation", "escalations")] == 0
    assert c[("department", "sanitation", "handled")] == 1
    assert at(items, "department", "sanitation", "handled_on_time") == [DEADLINE - 5 * SECOND]
    assert c[("channel", "hotline", "overdue")] == 0  # nor the case's, on the wall screen


def test_without_the_withdrawal_the_overdue_and_its_escalation_count() -> None:
    items = fold_case(overdue_then_on_time(withdrawn=False).facts, CTX)
    assert at(items, "department", "sanitation", "overdue") == [DEADLINE]
    assert at(items, "department", "sanitation", "escalations") == [DEADLINE]
    assert at(items, "channel", "hotline", "overdue") == [DEADLINE]
    assert counted(items)[("department", "sanitation", "handled_on_time")] == 1


def overdue_extended_then_withdrawn() -> History:
    """Overdue at the first deadline and escalated (a real overdue); extended; escalated
    again before the new deadline; judged overdue at the new deadline and escalated twice,
    though the result was on time: that overdue and its two escalations are withdrawn."""
    h = History()
    hour = timedelta(hours=1)
    later = T0 + 24 * hour
    h.add(ev.CaseReported, T0)
    h.add(ev.CaseAccepted, T0)
    h.add(ev.CaseDispatched, T0, deadline=DEADLINE)
    h.add(ev.CaseOverdue, DEADLINE, stage="handling", deadline=DEADLINE)
    h.add(ev.CaseEscalated, DEADLINE, dept="sanitation")
    h.add(ev.CaseExtensionRequested, DEADLINE + hour, proposed_deadline=later)
    h.add(ev.CaseExtensionDecided, DEADLINE + 2 * hour, granted=True, new_deadline=later)
    h.add(ev.CaseEscalated, DEADLINE + 3 * hour, dept="sanitation", level=2)
    h.add(ev.CaseOverdue, later, stage="handling", deadline=later)
    h.add(ev.CaseEscalated, later, dept="sanitation", deadline=later)
    h.add(ev.CaseEscalated, later + 10 * SECOND, dept="sanitation", level=2, deadline=later)
    answered = later - SECOND
    h.add(ev.CaseHandled, answered, completed_at=answered, deadline=later, on_time=True)
    h.add(
        ev.CaseOverdueWithdrawn,
        later + 30 * SECOND,
        actor=DISPATCH,
        deadline=later,
        overdue_at=later,
        answered_at=answered,
        escalation_levels=[1, 2],
    )
    return h


def test_escalations_before_the_withdrawn_overdue_stay() -> None:
    items = fold_case(overdue_extended_then_withdrawn().facts, CTX)
    # The first overdue was real: it stays, and so do the escalations before the withdrawn
    # one's time; the two at and after it go with it.
    assert at(items, "department", "sanitation", "overdue") == [DEADLINE]
    assert at(items, "department", "sanitation", "escalations") == [
        DEADLINE,
        DEADLINE + timedelta(hours=3),
    ]
    assert counted(items)[("department", "sanitation", "handled_on_time")] == 1


def sign_in_withdrawn(*, withdrawn: bool) -> History:
    """签收超时 judged at the sign-in due while the on-time signature was on its way; the
    handling overdue and escalation after it stand."""
    h = overdue_then_on_time(withdrawn=False)
    due = T0 + timedelta(hours=1)
    h.add(ev.CaseOverdue, due, stage="sign_in", deadline=due)
    if withdrawn:
        h.add(
            ev.CaseOverdueWithdrawn,
            due + 20 * SECOND,
            actor=DISPATCH,
            stage="sign_in",
            deadline=due,
            overdue_at=due,
            answered_at=T0 + timedelta(minutes=10),
        )
    return h


def test_a_withdrawn_sign_in_overdue_changes_no_item() -> None:
    items = fold_case(sign_in_withdrawn(withdrawn=True).facts, CTX)
    assert sorted(items) == sorted(fold_case(sign_in_withdrawn(withdrawn=False).facts, CTX))
    c = counted(items)
    assert c[("department", "sanitation", "signed_on_time")] == 1
    assert c[("department", "sanitation", "overdue")] == 1
    assert c[("department", "sanitation", "escalations")] == 1


@pytest.mark.parametrize(
    "history",
    [
        overdue_then_on_time(withdrawn=True),
        overdue_extended_then_withdrawn(),
        sign_in_withdrawn(withdrawn=True),
    ],
    ids=["withdrawn", "extended", "sign-in"],
)
def test_a_withdrawal_folds_the_same_in_any_order_and_from_the_stream(history: History) -> None:
    facts = history.facts
    expected = sorted(fold_case(facts, CTX))
    rng = random.Random(11)
    for _ in range(30):
        shuffled = facts + rng.sample(facts, 3)
        rng.shuffle(shuffled)
        assert sorted(fold_case(shuffled, CTX)) == expected
    # The replay reads the withdrawal's times as JSON strings (quick check) or as the
    # model's datetimes (validated): the same items.
    bodies = [(f, orjson.dumps(dict(f.data))) for f in facts]
    assert {type_of(f) for f, _ in bodies if f.type == "overdue_withdrawn"} == {
        ev.CaseOverdueWithdrawn.type_name
    }
    quick = [fact_from_data(f.event_id, type_of(f), orjson.loads(b)) for f, b in bodies]
    strict = [fact_from_json("/test", f.event_id, type_of(f), b) for f, b in bodies]
    assert all(quick) and all(strict)
    assert sorted(fold_case([f for f in quick if f], CTX)) == expected
    assert sorted(fold_case([f for f in strict if f], CTX)) == expected


def test_sign_in_timeliness_is_judged_against_the_sign_in_due() -> None:
    h = History()
    h.add(ev.CaseDispatched, T0, sign_in_due=T0 + timedelta(hours=1))
    h.add(ev.CaseSigned, T0 + timedelta(hours=2))
    c = counted(fold_case(h.facts, CTX))
    assert c[("department", "sanitation", "signed")] == 1
    assert c[("department", "sanitation", "signed_on_time")] == 0


# -- areas ---------------------------------------------------------------------------------
def test_a_rejected_report_and_merged_reports_count_for_the_area() -> None:
    h = History()
    h.add(ev.CaseReported, T0)
    h.add(ev.CaseMerged, T0 + timedelta(minutes=5))
    h.add(ev.CaseMerged, T0 + timedelta(minutes=9), report_id="R-3")
    h.add(ev.CaseRejected, T0 + timedelta(minutes=30), actor=OPERATOR)
    c = counted(fold_case(h.facts, CTX))
    assert c[("area", CELL, "reported")] == 1
    assert c[("area", CELL, "merged")] == 2
    assert c[("area", CELL, "rejected")] == 1
    assert c[("area", CELL, "accepted")] == 0
    assert c[("person", "op-01", "rejected_cases")] == 1
    assert c[("person", "op-01", "decisions")] == 1


def test_a_case_counts_in_the_cell_it_was_accepted_in() -> None:
    # Reported without a cell (address not yet located); accepted in CELL2.
    h = History("C-LOC", CELL2)
    h.facts.append(
        fact_of(
            "/test",
            "loc-0",
            ev.CaseReported(
                case_id="C-LOC",
                occurred_at=T0,
                report_id="R",
                channel="web",
                source="web",
                description="d",
                reported_at=T0,
            ),
        )
    )
    h.add(ev.CaseAccepted, T0 + timedelta(hours=1), cell_code=CELL2)
    items = fold_case(h.facts, CTX)
    assert {
        (i.subject_code, i.community_code, i.subdistrict_code)
        for i in items
        if i.subject_kind == "area"
    } == {(CELL2, COMMUNITY2, SUBDISTRICT2)}
    # … and the cell's supervisor missed it (a resident reported it first).
    assert counted(items)[("person", OTHER_SUP, "missed")] == 1


def test_auto_accepted_cases_are_nobodys_decision() -> None:
    h = History()
    h.add(ev.CaseAccepted, T0, auto=True, actor=Actor(id="intake", role="system"))
    assert not [
        i
        for i in fold_case(h.facts, CTX)
        if i.subject_kind == "person" and i.measure == "decisions"
    ]


# -- people ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "reporter", "missed"),
    [
        ("hotline", None, True),  # a resident was first
        ("patrol", SUP, False),  # the cell's own supervisor
        ("patrol", BACKUP, False),  # the AB backup covers the cell too
        ("patrol", OTHER_SUP, True),  # a supervisor of another cell found it
        ("video", None, True),
    ],
)
def test_problems_first_reported_by_someone_else_are_missed_by_the_cells_supervisor(
    channel: str, reporter: str | None, missed: bool
) -> None:
    h = History()
    h.add(ev.CaseReported, T0, channel=channel, source="src", reporter_user_id=reporter)
    h.add(
        ev.CaseMerged,
        T0 + timedelta(minutes=1),
        channel="patrol",
        source="patrol-app",
        reporter_user_id=SUP,
    )
    h.add(ev.CaseAccepted, T0 + timedelta(hours=1))
    items = fold_case(h.facts, CTX)
    c = counted(items)
    assert c[("person", SUP, "missed")] == (1 if missed else 0)
    if missed:
        assert at(items, "person", SUP, "missed") == [T0 + timedelta(hours=1)]
    # The supervisor's later report is a report, not a valid one (the case was someone's).
    expected_reports = 2 if reporter == SUP else 1
    assert c[("person", SUP, "reports")] == expected_reports


def test_a_supervisors_report_is_valid_in_its_own_period_once_accepted() -> None:
    h = History()
    evening = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 on 30 Nov in Beijing
    h.add(ev.CaseReported, evening, channel="patrol", source="p", reporter_user_id=SUP)
    h.add(ev.CaseAccepted, evening + timedelta(hours=1))  # 00:30 on 1 Dec
    items = fold_case(h.facts, CTX)
    nov = period_of_date("month", date(2026, 11, 1), CST)
    dec = nov.next()
    # The report and its validity land in November (the report's period), the acceptance
    # in December: November's valid report rate is 1/1.
    assert totals(items, "person", nov.start, nov.end)[SUP] == {
        "reports": 1.0,
        "valid_reports": 1.0,
    }
    # (found by the cell's supervisor: discovered; an hour from report to acceptance)
    assert totals(items, "area", dec.start, dec.end)[CELL] == {
        "accepted": 1.0,
        "discovered": 1.0,
        "accept_hours": 1.0,
    }
    rejected = History("C-2")
    rejected.add(ev.CaseReported, T0, channel="patrol", source="p", reporter_user_id=SUP)
    rejected.add(ev.CaseRejected, T0 + timedelta(hours=1))
    c = counted(fold_case(rejected.facts, CTX))
    assert c[("person", SUP, "reports")] == 1 and c[("person", SUP, "valid_reports")] == 0


def test_confirmation_and_verification_timeliness_per_supervisor() -> None:
    h = History()
    h.add(ev.CaseVerificationAssigned, T0, purpose="confirmation", due=T0 + timedelta(hours=2))
    h.add(ev.CaseConfirmed, T0 + timedelta(hours=3), confirmed=True)  # late by the due time
    h.add(ev.CaseVerificationAssigned, T0 + timedelta(hours=5), due=T0 + timedelta(hours=9))
    h.add(ev.CaseOverdue, T0 + timedelta(hours=9), stage="verification", supervisor_id=SUP)
    h.add(
        ev.CaseVerificationAssigned,
        T0 + timedelta(hours=9),
        supervisor_id=BACKUP,
        due=T0 + timedelta(hours=13),
    )
    h.add(
        ev.CaseVerified, T0 + timedelta(hours=10), supervisor_id=BACKUP, passed=True, on_time=True
    )
    c = counted(fold_case(h.facts, CTX))
    assert c[("person", SUP, "confirmation_tasks")] == 1
    assert c[("person", SUP, "confirmations")] == 1
    assert c[("person", SUP, "confirmations_on_time")] == 0
    assert c[("person", SUP, "verification_tasks")] == 1
    assert c[("person", SUP, "verifications")] == 0
    assert c[("person", SUP, "missed_first_responses")] == 1
    assert c[("person", BACKUP, "verifications_on_time")] == 1


def test_ratings_count_for_the_department_that_handled_the_area_and_who_answers_for_it() -> None:
    h = History()
    h.add(ev.CaseDispatched, T0)
    h.add(ev.CaseHandled, T0 + timedelta(hours=1))
    h.add(ev.CaseRated, T0 + timedelta(days=1), rating="dissatisfied")
    h.add(ev.CaseRated, T0 + timedelta(days=3), rating="basically_satisfied")
    h.add(ev.CaseRatedV2, T0 + timedelta(days=5), level="A", comment="很好")
    c = counted(fold_case(h.facts, CTX))
    for subject in (
        ("department", "sanitation"),
        ("area", CELL),
        ("person", SUP),
        ("person", HEAD),
    ):
        assert c[(*subject, "rated")] == 3
        assert c[(*subject, "dissatisfied")] == 1  # v1 dissatisfied: D
        assert c[(*subject, "fair")] == 1  # v1 basically_satisfied: C
        assert c[(*subject, "very_satisfied")] == 1  # v2 A
    assert c[("person", BACKUP, "rated")] == 0


# -- periods of a case that crosses a boundary ----------------------------------------------
def test_a_case_crossing_a_month_is_counted_by_each_deciding_event() -> None:
    h = History()
    jan31 = datetime(2027, 1, 31, 15, 0, tzinfo=UTC)  # 23:00 on 31 January in Beijing
    h.add(ev.CaseAccepted, jan31 - timedelta(hours=1))
    h.add(ev.CaseDispatched, jan31, deadline=jan31 + timedelta(days=2))
    h.add(ev.CaseHandled, jan31 + timedelta(hours=2))  # 01:00 on 1 February
    h.add(ev.CaseClosed, jan31 + timedelta(hours=3), on_time=True)
    items = fold_case(h.facts, CTX)
    jan = period_of_date("month", date(2027, 1, 1), CST)
    feb = jan.next()
    assert totals(items, "department", jan.start, jan.end)["sanitation"] == {
        "dispatched": 1.0,
        "to_handle": 1.0,
    }
    assert totals(items, "department", feb.start, feb.end)["sanitation"] == {
        "handled": 1.0,
        "handled_on_time": 1.0,
        "handling_hours": 2.0,  # one occasion of two hours, in the period of the result
    }
    assert totals(items, "area", jan.start, jan.end, level="subdistrict") == {
        SUBDISTRICT: {"accepted": 1.0, "dispatches": 1.0, "dispatch_hours": 1.0}
    }
    assert totals(items, "area", feb.start, feb.end, level="district", district="110101") == {
        "110101": {"closed": 1.0, "closed_on_time": 1.0}
    }


def test_a_late_event_lands_in_the_period_it_happened() -> None:
    h = happy_path()
    before = fold_case(h.facts, CTX)
    # A rating from two months later, and a merged report from last month arriving today.
    h.add(ev.CaseRated, T0 + timedelta(days=60), rating="dissatisfied")
    h.add(ev.CaseMerged, T0 - timedelta(days=30))
    after = fold_case(h.facts, CTX)
    oct_ = period_of_date("month", date(2026, 10, 1), CST)
    nov = oct_.next()
    assert totals(after, "area", oct_.start, oct_.end) == {CELL: {"merged": 1.0}}
    # November is unchanged by either.
    assert totals(after, "area", nov.start, nov.end) == totals(before, "area", nov.start, nov.end)


# -- measures ----------------------------------------------------------------------------------
def test_rates_of_a_period() -> None:
    counts = {
        "dispatched": 10.0,
        "to_handle": 8.0,
        "handled": 6.0,
        "handled_on_time": 3.0,
        "reworked": 2.0,
        "signed_on_time": 9.0,
        "rated": 4.0,
        "very_satisfied": 1.0,
        "satisfied": 2.0,
        "fair": 1.0,
    }
    r = with_rates("department", counts)
    assert r["handling_rate"] == 6 / 8
    assert r["on_time_rate"] == 3 / 6
    assert r["rework_rate"] == 2 / 6
    assert r["sign_in_on_time_rate"] == 9 / 10
    assert r["satisfaction_rate"] == 3 / 4  # A and B of the ratings
    assert r["overdue"] == 0.0  # every count is present, 0 when absent
    empty = with_rates("area", {})
    assert empty["closure_rate"] is None and empty["accepted"] == 0.0


def test_a_rate_whose_parts_fall_in_different_periods_is_capped_at_one() -> None:
    # December closes November's backlog: 5 closed of 2 accepted this month.
    assert (
        Rate("closure_rate", "结案率", ("closed",), "accepted").of({"closed": 5.0, "accepted": 2.0})
        == 1.0
    )


# -- rules --------------------------------------------------------------------------------------
GRADES = (
    Grade(grade="优", min=90),
    Grade(grade="良", min=80),
    Grade(grade="中", min=70),
    Grade(grade="较差", min=60),
    Grade(grade="差", min=0),
)
JINHUA = RuleSet(
    code="jinhua",
    name="金华式区域考核",
    subject="area",
    rules=(
        ScoringRule(
            measure="on_time_closure_rate",
            kind="threshold",
            at_least=0.7,
            points=50,
            per_point_below=1,
        ),
        ScoringRule(
            measure="closure_rate", kind="threshold", at_least=0.9, points=20, per_point_below=1
        ),
        ScoringRule(
            measure="failed_verifications", kind="deduction", each=0.2, from_count=3, each_after=0.5
        ),
        ScoringRule(measure="falsifications", kind="deduction", each=1.0),
        ScoringRule(measure="satisfaction_rate", kind="weighted", weight=30),
    ),
)
LIMITS = PeopleThresholds(
    missed_first_responses_per_year=4, dissatisfied_per_year=4, half_year_satisfaction_min=80
)
CONFIG = ScoringConfig(grades=GRADES, rule_sets=(JINHUA,), people=LIMITS)


def test_jinhua_score_worked_by_hand() -> None:
    measures = {
        "on_time_closure_rate": 0.65,  # 5 points short of 70%: 50 − 5 = 45
        "closure_rate": 0.95,  # ≥ 90%: 20
        "failed_verifications": 4.0,  # 0.2 + 0.2, then from the 3rd 0.5 + 0.5: −1.4
        "falsifications": 1.0,  # −1
        "satisfaction_rate": 0.8,  # 0.8 × 30 = 24
    }
    total, terms = score(JINHUA, measures)
    assert [round(t.points, 4) for t in terms] == [45.0, 20.0, -1.4, -1.0, 24.0]
    assert total == pytest.approx(86.6)
    assert CONFIG.grade(total) == "良"


def test_rule_kinds_at_their_edges() -> None:
    threshold = JINHUA.rules[0]
    assert term(threshold, 0.7) == 50  # exactly at the threshold earns it
    assert term(threshold, 0.0) == 0  # 70 points short: never below 0
    assert term(threshold, None) == 50  # nothing to close: nothing lost
    no_slope = ScoringRule(measure="closure_rate", kind="threshold", at_least=0.9, points=20)
    assert term(no_slope, 0.89) == 0
    deduction = JINHUA.rules[2]
    assert term(deduction, 0) == 0
    assert term(deduction, 2) == pytest.approx(-0.4)
    assert term(deduction, 3) == pytest.approx(-0.9)
    inverse = ScoringRule(measure="rework_rate", kind="weighted_inverse", weight=15)
    assert term(inverse, 0.2) == pytest.approx(12.0)
    assert term(inverse, None) == 15


def test_ranking_shares_ranks_on_equal_scores() -> None:
    subjects: dict[str, dict[str, float | None]] = {
        "110101002": {"on_time_closure_rate": 1.0, "closure_rate": 1.0, "satisfaction_rate": 1.0},
        "110101001": {"on_time_closure_rate": 1.0, "closure_rate": 1.0, "satisfaction_rate": 1.0},
        "110101003": {"on_time_closure_rate": 0.5, "closure_rate": 0.5, "satisfaction_rate": 0.5},
        "110101004": {
            "on_time_closure_rate": 1.0,
            "closure_rate": 1.0,
            "satisfaction_rate": 1.0,
            "failed_verifications": 1.0,
        },
    }
    ranked = rank(JINHUA, CONFIG, subjects)
    assert [(r.subject_code, r.rank, r.score, r.grade) for r in ranked] == [
        ("110101001", 1, 100.0, "优"),
        ("110101002", 1, 100.0, "优"),
        ("110101004", 3, 99.8, "优"),
        # 50 − 20 = 30, 20 − 40 → 0, 0.5 × 30 = 15
        ("110101003", 4, 45.0, "差"),
    ]


def test_a_rule_on_an_unknown_measure_is_named() -> None:
    bad = RuleSet(
        code="x",
        name="x",
        subject="department",
        rules=(ScoringRule(measure="closure_rate", kind="weighted", weight=1),),
    )
    assert check_rule_set(bad) == [
        "rules[0].measure: 'closure_rate' is not a department measure of scoring"
    ]
    assert check_rule_set(JINHUA) == []


# -- people (seed 003) ----------------------------------------------------------------------------
def test_people_over_the_yearly_limits_are_flagged() -> None:
    year = {"missed_first_responses": 5.0, "dissatisfied": 4.0}
    h1 = {"rated": 10.0, "very_satisfied": 1.0, "satisfied": 6.0, "fair": 1.0}  # A+B 70 < 80
    h2 = {"rated": 5.0, "satisfied": 4.0}  # 80: not under
    p = person_year(SUP, year, (h1, h2), LIMITS)
    assert p.satisfaction == (70.0, 80.0)
    # More than 4 missed first responses; exactly 4 dissatisfied is not more than 4.
    assert p.flags == ("missed_first_responses", "satisfaction_h1")
    assert person_year(SUP, {}, ({}, {}), LIMITS).flags == ()
    assert satisfaction_score({}) is None


# -- facts ----------------------------------------------------------------------------------------
def test_facts_are_keyed_by_source_and_id_and_unknown_types_are_not_scored() -> None:
    event = ev.CaseClosed(case_id="C-1", occurred_at=T0, closed_by=SUP, on_time=True)
    fact = fact_from("/gridloop/verify", "e-1", event.type_name, event.to_json_dict())
    assert fact is not None and fact.event_id == "/gridloop/verify|e-1"
    assert fact.type == "closed" and fact.occurred_at == T0
    assert fact_from("/x", "e-2", "gridloop.case.pinged.v1", {"case_id": "C"}) is None
    with pytest.raises(ValueError, match="closed_by"):
        fact_from("/x", "e-3", event.type_name, {"case_id": "C", "occurred_at": T0.isoformat()})


def test_the_replays_fast_path_folds_to_the_same_items_as_stored_facts() -> None:
    """Replay validates the JSON body straight into the model and folds the model's fields;
    the live projection folds the JSON it stored. Same items."""
    stored = happy_path().facts + rework_history().facts
    fast = []
    for f in stored:
        event = next(m for m in ev.CASE_EVENTS if m.subject_token == f.type).model_validate(f.data)
        headers, body = to_binary(Envelope.of(event, source="/test", id=f.event_id.split("|")[1]))
        fact = fact_from_json(headers["ce-source"], headers["ce-id"], headers["ce-type"], body)
        assert fact is not None and fact.event_id == f.event_id
        fast.append(fact)
    assert sorted(fold_all(fast, CTX)) == sorted(fold_all(stored, CTX))
    # The operator of the acceptance is found in either shape.
    assert ("person", "op-01", "decisions") in counted(fold_all(fast, CTX))


def test_a_levels_rule_weighs_each_satisfaction_level_by_the_rule_sets_worth() -> None:
    # 2 × A (1.0) + 1 × B (0.8) + 1 × C (0.5) + 1 × D (0) = 3.3 over 5 ratings = 0.66;
    # × weight 15 = 9.9. With no rating the rule earns its full weight.
    rule = ScoringRule(
        measure="rated",
        kind="levels",
        weight=15,
        levels={"A": 1.0, "B": 0.8, "C": 0.5, "D": 0.0},
    )
    rs = RuleSet(code="sat", name="满意度", subject="department", rules=(rule,))
    counts = {"rated": 5.0, "very_satisfied": 2.0, "satisfied": 1.0, "fair": 1.0}
    total, (t,) = score(rs, with_rates("department", {**counts, "dissatisfied": 1.0}))
    assert t.value == pytest.approx(0.66) and total == pytest.approx(9.9)
    assert score(rs, with_rates("department", {}))[0] == 15
    with pytest.raises(ValueError):
        ScoringRule(measure="satisfaction_rate", kind="levels", weight=1, levels=rule.levels)


def test_the_call_back_reached_rate_by_hand() -> None:
    # Four call-backs concluded in November in one cell, handled by sanitation: reached,
    # not reached (after the allowed tries), reached, reached → 3 / 4 = 0.75.
    items: list[Item] = []
    for n, reached in enumerate((True, False, True, True)):
        h = History(f"CB-{n}")
        h.add(ev.CaseDispatched, T0)
        h.add(ev.CaseHandled, T0 + timedelta(hours=1))
        h.add(
            ev.CaseCalledBack,
            T0 + timedelta(days=4),
            reached=reached,
            tries=1 if reached else 3,
            closed_at=T0 + timedelta(hours=2),
        )
        items += fold_case(h.facts, CTX)
    nov = period_of_date("month", date(2026, 11, 1), CST)
    dept = totals(items, "department", nov.start, nov.end)["sanitation"]
    area = totals(items, "area", nov.start, nov.end)[CELL]
    assert (dept["callbacks"], dept["callbacks_reached"]) == (4.0, 3.0)
    assert (area["callbacks"], area["callbacks_reached"]) == (4.0, 3.0)
    assert with_rates("department", dept)["callback_reached_rate"] == 0.75
    assert with_rates("area", area)["callback_reached_rate"] == 0.75
    assert with_rates("area", {})["callback_reached_rate"] is None  # none concluded


# -- 通报 at period ends -------------------------------------------------------------------
BEIJING = ZoneInfo("Asia/Shanghai")


def _closed_at(kind: Any, instant: datetime) -> Any:
    """The period of `kind` that has just closed when the city's clock reads `instant`."""
    from gridloop_scoring.domain.periods import period_of as of

    now = of(kind, instant, BEIJING)
    return of(kind, now.start - timedelta(microseconds=1), BEIJING)


def test_a_month_end_in_beijing_closes_the_month_and_calls_for_its_bulletin() -> None:
    from gridloop_scoring.domain.periods import at_period_end

    # 1 December 00:00 in Beijing is 30 November 16:00 UTC: November is closed …
    month = _closed_at("month", datetime(2026, 11, 30, 16, 0, tzinfo=UTC))
    assert (month.key, month.end) == ("month:2026-11-01", datetime(2026, 12, 1, tzinfo=BEIJING))
    duty = at_period_end(month, ("day", "month"))
    assert (duty.scores, duty.bulletin) == (True, True)
    # … one second earlier it is still November in Beijing (and 30 November in UTC too)
    still = period_of("month", datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC), BEIJING)
    assert still.key == "month:2026-11-01"
    # a day or a week never has a bulletin; a month without scores still has one
    day = period_of_date("day", date(2026, 11, 30), BEIJING)
    assert at_period_end(day, ("day",)).bulletin is False
    assert at_period_end(month, ("day",)).bulletin is True


def test_a_quarter_end_closes_the_quarter_and_its_last_month_each_with_a_bulletin() -> None:
    from gridloop_scoring.domain.periods import at_period_end

    # 1 October 00:00 in Beijing = 30 September 16:00 UTC: Q3 and September close together
    at = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    quarter, month = _closed_at("quarter", at), _closed_at("month", at)
    assert (quarter.key, month.key) == ("quarter:2026-07-01", "month:2026-09-01")
    assert quarter.end == month.end == at
    assert at_period_end(quarter, ()).bulletin and at_period_end(month, ()).bulletin
    # a month inside a quarter closes alone
    assert _closed_at("quarter", datetime(2026, 8, 31, 16, 0, tzinfo=UTC)).key == (
        "quarter:2026-04-01"
    )


def test_the_year_end_in_beijing_closes_december_q4_and_the_year_before_utc_does() -> None:
    from gridloop_scoring.domain.periods import at_period_end, timed_kinds

    at = datetime(2026, 12, 31, 16, 0, tzinfo=UTC)  # 1 January 2027 00:00 in Beijing
    closed = {k: _closed_at(k, at) for k in ("month", "quarter", "year")}
    assert {k: p.key for k, p in closed.items()} == {
        "month": "month:2026-12-01",
        "quarter": "quarter:2026-10-01",
        "year": "year:2026-01-01",
    }
    assert all(p.end == at for p in closed.values())
    duties = {k: at_period_end(p, ("day", "year")).bulletin for k, p in closed.items()}
    assert duties == {"month": True, "quarter": True, "year": False}  # the year: scores only
    assert at_period_end(closed["year"], ("year",), ("month", "quarter", "year")).bulletin
    # the periods that need a timer at their end: those with scores or a bulletin
    assert timed_kinds(("day",), ("month", "quarter")) == ("day", "month", "quarter")
    assert timed_kinds((), ()) == ()


# -- v2 events carrying another: case.accepted with its 上报, case.closed with its 核查 ---------
def _carried(v2: bool) -> list[Fact]:
    """A supervisor's patrol report accepted as it came in, handled, passed and closed at
    once, rated: with each pair of events at one instant published as two v1 events, or as
    one v2 event carrying the first (case.accepted v2 its report, case.closed v2 its verdict)."""
    h = History("C-9")
    hour = timedelta(hours=1)
    report = {"channel": "patrol", "source": "patrol-app", "reporter_user_id": SUP}
    accepted = {**report, "auto": True, "reported_at": T0}
    verdict = {"passed": True, "on_time": True, "actor": Actor(id=SUP, role="supervisor")}
    closed = {"on_time": True, "task_id": "T-1", "dept": "sanitation"}
    if v2:
        carried = History("C-9").add(ev.CaseReported, T0, **report).facts[0]
        h.add(ev.CaseAcceptedV2, T0, **accepted, report=ev.CaseReported(**carried.data))
    else:
        h.add(ev.CaseReported, T0, **report)
        h.add(ev.CaseAccepted, T0, **accepted)
    h.add(ev.CaseDispatched, T0 + hour, deadline=T0 + 10 * hour, sign_in_due=T0 + 2 * hour)
    h.add(ev.CaseSigned, T0 + 1.5 * hour)
    h.add(ev.CaseHandled, T0 + 4 * hour)
    h.add(ev.CaseVerificationAssigned, T0 + 4 * hour, due=T0 + 9 * hour)
    if v2:
        inner = History("C-9").add(ev.CaseVerifiedV2, T0 + 5 * hour, **verdict).facts[0]
        h.add(ev.CaseClosedV2, T0 + 5 * hour, **closed, verdict=ev.CaseVerifiedV2(**inner.data))
    else:
        h.add(ev.CaseVerifiedV2, T0 + 5 * hour, **verdict)
        h.add(ev.CaseClosed, T0 + 5 * hour, **closed)
    h.add(ev.CaseRated, T0 + 30 * hour, rating="satisfied")
    return h.facts


def test_an_event_carrying_another_folds_as_both() -> None:
    """The same items from case.accepted v2 with its report and case.closed v2 with its
    verdict as from the four v1 events — live (the model dumped), and in a replay from the
    stream's JSON (checked quickly, or validated in full)."""
    expected = sorted(fold_case(_carried(v2=False), CTX))
    for measure in (("person", SUP, "reports"), ("channel", "patrol", "reported")):
        assert measure in counted(expected)
    assert ("person", SUP, "verifications") in counted(expected)
    live = _carried(v2=True)
    assert {"reported", "verified"}.isdisjoint(f.type for f in live)
    assert sorted(fold_case(live, CTX)) == expected
    bodies = [(f, orjson.dumps(dict(f.data))) for f in live]
    quick = [fact_from_data(f.event_id, type_of(f), orjson.loads(b)) for f, b in bodies]
    strict = [fact_from_json("/test", f.event_id, type_of(f), b) for f, b in bodies]
    assert all(quick) and all(strict)
    assert sorted(fold_case([f for f in quick if f], CTX)) == expected
    assert sorted(fold_case([f for f in strict if f], CTX)) == expected


def test_every_measure_has_its_name_in_english() -> None:
    """The catalogue gives each measure's label in Chinese and in English (label_en)."""
    names = {
        x.name
        for table in (m.COUNTED, m.RATES, m.DISTRIBUTIONS)
        for measures in table.values()
        for x in measures
    }
    assert names - set(m.ENGLISH) == set()
    assert set(m.ENGLISH) - names == set()  # none left of a measure that went
    assert all(label.strip() for label in m.ENGLISH.values())


def test_a_rule_sets_english_name_enters_the_digest_only_where_given() -> None:
    """Rules recorded before rule sets had an English name keep their digest (no new version
    in force at an upgrade that changed nothing); a name given is part of the rules."""
    recorded = CONFIG.model_dump(mode="json")
    for rule_set in recorded["rule_sets"]:
        del rule_set["name_en"]  # what the release before it recorded
    assert rules_json(CONFIG) == recorded
    before = hashlib.sha256(json.dumps(recorded, sort_keys=True, ensure_ascii=False).encode())
    assert rules_digest(CONFIG) == "sha256:" + before.hexdigest()
    named = CONFIG.model_copy(
        update={"rule_sets": (JINHUA.model_copy(update={"name_en": "Jinhua-style"}),)}
    )
    assert rules_json(named)["rule_sets"][0]["name_en"] == "Jinhua-style"
    assert rules_digest(named) != rules_digest(CONFIG)
    # read back from rule_versions, either is the rule set it was
    assert ScoringConfig.model_validate(rules_json(named)) == named
    assert ScoringConfig.model_validate(rules_json(CONFIG)) == CONFIG
