"""The consumer's `CaseStore`: a batch's facts written with one statement, and the items of
only the cases they change re-folded and written as a difference.

`load` reads nothing (a rule only adds facts: `domain/case.py`). `save`:
1. inserts the batch's facts (`unnest`, each event id once) and, in the same statement,
   locks the cases whose items a new fact may change (its type is one the fold reads, or it
   names an area);
2. reads the stored items of the cases with such a fact actually inserted, and with them the
   facts of those with a fact of a type the fold reads;
3. re-folds, from all their facts, the cases whose items change (`needs_fold`: an area fact
   only when its area differs from the items');
4. deletes the stored rows the new fold lacks and inserts the items it adds (`diff`).
The items stay exactly the fold of each case's facts, what `rebuild` computes from the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gridloop_runtime.db import Conn
from gridloop_runtime.writes import Writes

from . import repository as repo
from .domain.case import CaseFacts, diff, effect, needs_fold
from .domain.facts import Fact
from .domain.fold import FoldContext, fold_case


def _decides(facts: Sequence[Fact]) -> bool:
    return any(effect(f) == "fold" for f in facts)


class FactStore:
    def __init__(self, ctx: FoldContext) -> None:
        self.ctx = ctx

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, CaseFacts]:
        return {case_id: CaseFacts(case_id) for case_id in case_ids}

    async def save(
        self, conn: Conn, states: Sequence[CaseFacts], writes: Writes | None = None
    ) -> None:
        # Not gathered (`writes` unused): which items to re-fold is read between the writes.
        facts = [f for s in states for f in s.facts]
        if not facts:
            return
        watched = [s.case_id for s in states if s.may_change_items]
        inserted = await repo.record_facts(conn, facts, lock=watched)
        new: dict[str, list[Fact]] = {}
        for f in facts:
            if f.event_id in inserted and effect(f) != "none":
                new.setdefault(f.case_id, []).append(f)
        if new:
            await refold(conn, self.ctx, list(new), new)


async def refold(
    conn: Conn,
    ctx: FoldContext,
    case_ids: Sequence[str],
    new: Mapping[str, Sequence[Fact]] | None = None,
) -> int:
    """Inside the caller's transaction, the cases locked: bring the cases' items to the fold
    of their facts, writing only the difference; with `new` (the facts just stored), only
    the cases whose items these facts change. Returns how many cases were folded."""
    # The facts of the cases a type the fold reads has changed are read with the items; the
    # facts of a case only its area may have moved, once that is known.
    first = set(case_ids) if new is None else {c for c in case_ids if _decides(new[c])}
    stored, facts = await repo.items_and_facts(conn, case_ids, sorted(first))
    if new is not None:
        case_ids = [c for c in case_ids if needs_fold(new[c], [i for _, i in stored.get(c, ())])]
        if not case_ids:
            return 0
        later = [c for c in case_ids if c not in first]
        if later:
            facts += await repo.facts_of(conn, later)
    by_case: dict[str, list[Fact]] = {c: [] for c in case_ids}
    for f in facts:
        if f.case_id in by_case:
            by_case[f.case_id].append(f)
    drop: list[object] = []
    add = []
    for case_id, case_facts in by_case.items():
        gone, more = diff(stored.get(case_id, []), fold_case(case_facts, ctx))
        drop += gone
        add += more
    await repo.change_items(conn, drop, add)
    return len(case_ids)
