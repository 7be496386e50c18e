"""The consumer's pure rule and the live projection's decisions, without I/O: a case event is
kept as a fact; which new facts can change a case's items (decided from the event type, and
for the types the fold does not read, from their area); and the difference written instead
of all the items. The spec: after any split of a case's facts into "stored" and "new",
stored items + `diff` = the fold of all facts, and `needs_fold` is never wrong when it says
no."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gridloop_contracts import Actor, Envelope
from gridloop_contracts import cases as ev
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.step import Step
from gridloop_scoring.domain.case import CaseFacts, diff, effect, needs_fold, record
from gridloop_scoring.domain.facts import Fact, fact_of
from gridloop_scoring.domain.fold import FOLDED_TYPES, FoldContext, Item, fold_case

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CELL, COMMUNITY, SUBDISTRICT = "1101010010010001", "110101001001", "110101001"
CELL2, COMMUNITY2, SUBDISTRICT2 = "1101010020010001", "110101002001", "110101002"
CTX = FoldContext(
    cells={CELL: (COMMUNITY, SUBDISTRICT), CELL2: (COMMUNITY2, SUBDISTRICT2)},
    roster={CELL: ("sup-001", "sup-002"), CELL2: ("sup-020", "sup-021")},
    grid_heads={CELL: ("gh-1",)},
)
OPERATOR = Actor(id="op-01", role="operator")
AREA = {"cell_code": CELL, "community_code": COMMUNITY, "subdistrict_code": SUBDISTRICT}
TASK = {"dept": "sanitation", "task_id": "T-1", "deadline": T0 + 6 * HOUR}
# The event types the fold does not read, with their required fields.
OTHERS: dict[type[ev.CaseEvent], dict[str, Any]] = {
    ev.CaseConfirmationRequested: {"reason": "核实"},
    ev.CaseSupervised: {"reason": "挂牌督办", "dept": "sanitation"},
    ev.CaseProgress: {**TASK, "note": "在处理"},
    ev.CaseQueueChased: {"level": 1, "to_role": "dispatcher", "queued_at": T0, "reason": "待派遣"},
    ev.CaseReopened: {**TASK, "reason": "市民不满意"},
}


def fact(n: int, event: ev.CaseEvent) -> Fact:
    return fact_of("/test", f"e-{n}", event)


def lifecycle(case_id: str = "C-1", area: dict[str, str] | None = None) -> list[Fact]:
    """A case through every kind of step: reported, accepted, dispatched, signed, extended,
    overdue, handled, failed and passed verification, reworked, closed, rated."""
    d: dict[str, Any] = {"case_id": case_id, **(AREA if area is None else area)}
    task: dict[str, Any] = {**d, **TASK}
    events: list[ev.CaseEvent] = [
        ev.CaseReported(
            **d,
            occurred_at=T0,
            report_id="R-1",
            channel="patrol",
            source="patrol-app",
            reporter_user_id="sup-003",
            description="垃圾",
            reported_at=T0,
        ),
        ev.CaseAccepted(
            **{**d, "cell_code": d.get("cell_code") or CELL},
            occurred_at=T0 + 0.5 * HOUR,
            actor=OPERATOR,
            category_code="E0102",
            description="垃圾",
        ),
        ev.CaseDispatched(**task, occurred_at=T0 + HOUR, sign_in_due=T0 + 2 * HOUR),
        ev.CaseSigned(**task, occurred_at=T0 + 1.5 * HOUR),
        ev.CaseExtensionRequested(
            **task, occurred_at=T0 + 2 * HOUR, reason="x", proposed_deadline=T0 + 30 * HOUR
        ),
        ev.CaseExtensionDecided(
            **task, occurred_at=T0 + 3 * HOUR, granted=True, new_deadline=T0 + 30 * HOUR
        ),
        ev.CaseOverdue(**task, occurred_at=T0 + 4 * HOUR),
        ev.CaseHandled(**task, occurred_at=T0 + 5 * HOUR, result="ok", completed_at=T0 + 5 * HOUR),
        ev.CaseVerificationAssigned(
            **task, occurred_at=T0 + 5 * HOUR, supervisor_id="sup-001", due=T0 + 6 * HOUR
        ),
        ev.CaseVerified(**task, occurred_at=T0 + 7 * HOUR, passed=False, supervisor_id="sup-001"),
        ev.CaseReworked(**task, occurred_at=T0 + 7 * HOUR, count=1, reason="x"),
        ev.CaseHandled(**task, occurred_at=T0 + 9 * HOUR, result="ok", completed_at=T0 + 9 * HOUR),
        ev.CaseVerified(**task, occurred_at=T0 + 10 * HOUR, passed=True, supervisor_id="sup-001"),
        ev.CaseClosed(**task, occurred_at=T0 + 10 * HOUR, closed_by="sup-001", on_time=False),
        ev.CaseRated(**d, occurred_at=T0 + 12 * HOUR, rating="dissatisfied"),
    ]
    return [fact(n, e) for n, e in enumerate(events)]


def other(model: type[ev.CaseEvent], n: int, at: datetime, **area: str) -> Fact:
    return fact(1000 + n, model(case_id="C-1", occurred_at=at, **area, **OTHERS[model]))


def same(a: list[Item], b: list[Item]) -> bool:
    return Counter(a) == Counter(b)


def applied(stored: list[Item], new: list[Item]) -> list[Item]:
    """What the store leaves: the stored rows less `drop`, plus `add`."""
    drop, add = diff(list(enumerate(stored)), new)
    gone = set(drop)
    return [i for n, i in enumerate(stored) if n not in gone] + add


# -- the rule ------------------------------------------------------------------------------
def test_a_case_event_is_kept_as_its_fact_once_per_event_id() -> None:
    event = ev.CaseClosed(
        case_id="C-1", occurred_at=T0, closed_by="sup-001", on_time=True, **AREA, **TASK
    )
    env = Envelope.of(event, source="/gridloop/verify", id="v-1")
    step = Step(source="/gridloop/scoring", clock=FakeClock(T0), trigger=env)
    state = CaseFacts("C-1")
    record(state, event, step)
    record(state, event, step)  # the same envelope again in one batch
    [kept] = state.facts
    assert kept == fact_of("/gridloop/verify", "v-1", event)
    assert kept.event_id == "/gridloop/verify|v-1" and kept.type == "closed"
    assert state.may_change_items
    assert step.pending == [] and step.timer_ops == []  # a projection emits nothing


def test_a_rule_without_its_envelope_is_refused() -> None:
    event = ev.CaseRated(case_id="C-1", occurred_at=T0, rating="satisfied")
    with pytest.raises(ValueError):
        record(CaseFacts("C-1"), event, Step(source="/x", clock=FakeClock(T0)))


# -- which facts can change items -----------------------------------------------------------
def test_the_types_the_fold_reads_decide_and_the_others_only_through_their_area() -> None:
    tokens = {m.subject_token for m in ev.CASE_EVENTS}
    assert FOLDED_TYPES.issubset(tokens)
    assert tokens - FOLDED_TYPES == {m.subject_token for m in OTHERS}
    for f in lifecycle():
        assert effect(f) == "fold"
    for n, model in enumerate(OTHERS):
        assert effect(other(model, n, T0)) == "none"
        assert effect(other(model, n, T0, cell_code=CELL)) == "area"
        state = CaseFacts("C-1")
        state.add(other(model, n, T0))
        assert not state.may_change_items


@pytest.mark.parametrize("model", list(OTHERS))
def test_a_type_the_fold_does_not_read_changes_nothing_in_its_own_area(
    model: type[ev.CaseEvent],
) -> None:
    facts = lifecycle()
    stored = fold_case(facts, CTX)
    for n, at in enumerate((T0 - HOUR, T0 + 6 * HOUR, T0 + 48 * HOUR)):  # first, among, last
        for area in ({}, AREA, {"cell_code": CELL}, {"community_code": COMMUNITY}):
            f = other(model, n, at, **area)
            assert not needs_fold([f], stored)
            assert same(fold_case([*facts, f], CTX), stored)


@pytest.mark.parametrize(
    "area", [{"cell_code": CELL2}, {"community_code": COMMUNITY2}, {"subdistrict_code": "x"}]
)
def test_another_area_is_folded_when_it_may_move_the_items(area: dict[str, str]) -> None:
    facts = lifecycle()
    stored = fold_case(facts, CTX)
    last = other(ev.CaseProgress, 0, T0 + 48 * HOUR, **area)
    assert needs_fold([last], stored)
    moved = fold_case([*facts, last], CTX)
    assert not same(moved, stored)  # the last area seen is the case's
    assert same(applied(stored, moved), moved)
    # Not the last: the fold says nothing moved, the check folds anyway (never wrong).
    first = other(ev.CaseProgress, 1, T0 - HOUR, **area)
    assert needs_fold([first], stored)
    assert same(fold_case([*facts, first], CTX), stored)


def test_without_items_an_area_moves_nothing_and_without_an_area_item_it_is_folded() -> None:
    f = other(ev.CaseProgress, 0, T0, cell_code=CELL2)
    assert not needs_fold([f], [])
    assert fold_case([f], CTX) == []
    # Only a person's items (a passed verification): the cell is not known from them.
    verified = fact(
        0,
        ev.CaseVerified(
            case_id="C-1", occurred_at=T0, passed=True, supervisor_id="sup-001", **TASK
        ),
    )
    stored = fold_case([verified], CTX)
    assert stored and all(i.subject_kind == "person" for i in stored)
    assert needs_fold([f], stored)
    assert not same(fold_case([verified, f], CTX), stored)  # the cell's community now shows


def test_a_case_without_an_area_is_moved_by_the_first_area_named() -> None:
    facts = lifecycle(area={})
    stored = fold_case(facts, CTX)
    f = other(ev.CaseSupervised, 0, T0 + 48 * HOUR, community_code=COMMUNITY2)
    assert needs_fold([f], stored)
    assert same(applied(stored, fold_case([*facts, f], CTX)), fold_case([*facts, f], CTX))


# -- the difference written -------------------------------------------------------------------
def test_the_difference_keeps_what_stays_and_counts_repeated_items() -> None:
    items = fold_case(lifecycle(), CTX)
    assert diff(list(enumerate(items)), items) == ([], [])
    a, b = items[0], items[1]
    drop, add = diff([("x", a), ("y", a), ("z", b)], [a, b, b])
    assert (drop, add) == (["y"], [b])
    drop, add = diff([("x", a)], [])
    assert (drop, add) == (["x"], [])
    assert diff([], [a, a]) == ([], [a, a])


def test_any_split_into_stored_and_new_facts_gives_the_full_fold() -> None:
    """The live path in miniature, a batch at a time in any arrival order: the items the
    store leaves are always the fold of every fact so far, whatever it skipped."""
    rng = random.Random(5)
    for _ in range(60):
        facts = lifecycle() + [
            other(m, n, T0 + rng.uniform(-2, 14) * HOUR, **rng.choice(({}, AREA)))
            for n, m in enumerate(rng.sample(list(OTHERS), 3))
        ]
        if rng.random() < 0.3:
            facts.append(other(ev.CaseProgress, 9, T0 + 20 * HOUR, cell_code=CELL2))
        rng.shuffle(facts)
        stored: list[Item] = []
        kept: list[Fact] = []
        while len(kept) < len(facts):
            batch = facts[len(kept) : len(kept) + rng.randint(1, 4)]
            kept += batch
            if needs_fold(batch, stored):
                stored = applied(stored, fold_case(kept, CTX))
            else:
                assert same(fold_case(kept, CTX), stored)
        assert same(stored, fold_case(facts, CTX))
