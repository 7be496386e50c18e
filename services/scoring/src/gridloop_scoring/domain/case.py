"""One case as a batch of CASES events reaches scoring, and the pure decisions of the live
projection: which new facts can change a case's items, and what to write when they do.

Scoring keeps every case event as a fact and a case's items as the fold of all its facts
(`fold.py`). The consumer's rule only records the batch's new facts (`record`); the store
writes them with one statement and re-folds only the cases where an item can have changed:

- `effect`, from the event type alone: a type the fold reads can change items ("fold");
  any other type can only move them to another area, through its area fields ("area"), or,
  without area fields, changes nothing ("none");
- `needs_fold`: whether a case's newly stored facts change its items, given the items
  stored (an "area" fact only when its area differs from the one the items carry);
- `diff`: the stored rows to delete and the items to insert so that the case's rows equal
  its new fold: only what changed is written, and the numbers stay those of a full re-fold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from gridloop_contracts.cases import CaseEvent
from gridloop_runtime.step import Step

from .facts import Fact, fact_of
from .fold import AREA_FIELDS, FOLDED_TYPES, Item

Effect = Literal["fold", "area", "none"]
K = TypeVar("K")


@dataclass
class CaseFacts:
    """A case's facts that arrived in this batch (each event id once, in arrival order)."""

    case_id: str
    new: dict[str, Fact] = field(default_factory=dict)

    def add(self, fact: Fact) -> None:
        self.new.setdefault(fact.event_id, fact)

    @property
    def facts(self) -> list[Fact]:
        return list(self.new.values())

    @property
    def may_change_items(self) -> bool:
        """Whether any new fact may change the items (the case is then locked and looked at)."""
        return any(effect(f) != "none" for f in self.new.values())


def record(state: CaseFacts, event: CaseEvent, step: Step) -> None:
    """Every case event: kept as a fact, once per event id (`<ce-source>|<ce-id>`)."""
    env = step.trigger
    if env is None:
        raise ValueError("a case event is recorded from the envelope it came in")
    state.add(fact_of(env.source, env.id, event))


def effect(fact: Fact) -> Effect:
    """What a fact can do to its case's items, from its type (and whether it names an area)."""
    if fact.type in FOLDED_TYPES:
        return "fold"
    if any(fact.data.get(k) for k in AREA_FIELDS):
        return "area"
    return "none"


def area_changes(fact: Fact, stored: Sequence[Item]) -> bool:
    """Whether a fact of a type the fold does not read can change the items: its area fields
    decide the case's area only if they differ from the area the items carry (the case's
    last seen: the cell as the area items' subject, the community and sub-district on every
    item), wherever the fact falls in the case's order.

    No items: nothing an area could move (every item that depends on the cell, `missed` and
    the responsible persons' ratings, comes with an area item). Items but no area item: the
    cell is not known from them, so fold to be sure."""
    if not stored:
        return False
    area = next((i for i in stored if i.subject_kind == "area"), None)
    if area is None:
        return True
    cell, community, subdistrict = (fact.data.get(k) for k in AREA_FIELDS)
    return bool(
        (cell and cell != area.subject_code)
        or (community and community != area.community_code)
        or (subdistrict and subdistrict != area.subdistrict_code)
    )


def needs_fold(facts: Iterable[Fact], stored: Sequence[Item]) -> bool:
    """Whether a case's newly stored facts change the items stored for it."""
    for f in facts:
        e = effect(f)
        if e == "fold" or (e == "area" and area_changes(f, stored)):
            return True
    return False


def diff(stored: Sequence[tuple[K, Item]], folded: Iterable[Item]) -> tuple[list[K], list[Item]]:
    """The stored rows (by their key) to delete and the items to insert so that the stored
    rows become exactly `folded`, counted as a multiset (an item may occur twice)."""
    wanted = Counter(folded)
    drop: list[K] = []
    for key, item in stored:
        if wanted[item] > 0:
            wanted[item] -= 1
        else:
            drop.append(key)
    return drop, list(wanted.elements())
