"""What happens on each event, timer and command scoring takes — the one table to read first.

Bus (CASES stream, durable `scoring-cases`, every `case.>`), the handler table `rules`
below, a batch in one transaction (`store.py`):
  every case.* event  → its fact, once per event id (`domain.case.record`); the batch's facts
                        are written with one statement, and the cases whose items they
                        change are re-folded at once, writing only the items that changed
                        (`store.py`; which facts change items: `domain.case.effect`)
  unknown case.* types are ignored (the same way in `rebuild`); data that breaks the
  contract goes to the DLQ at once.
Timers (`handlers.py`: one publication covers every case):
  scoring-publish     → a period's end (+ SCORING_PUBLISH_GRACE_S): every rule set ranked
                        (areas at each SCORING_PUBLISH_AREA_LEVELS level), one
                        gridloop.score.published.v1 each on `score.published`; at a
                        month's or a quarter's end (SCORING_BULLETIN_PERIODS) also its 通报:
                        generated, stored once (`bulletins`, keyed by period: a second
                        replica or a restart does nothing) and announced as
                        gridloop.score.bulletin_published.v1 with its links; the next
                        period's timer is set
Commands (REST, `api.py`; none is about one case):
  publish             → the same, now, for any period (after late events changed it)
  rebuild             → `replay.rebuild`: the CASES stream into a fresh projection
Background:
  `projection.py`     → cases an older version marked in `dirty_cases`, folded
Start-up:
  the current period's publish timer of every kind with scores or a bulletin, if never set
"""

from __future__ import annotations

from gridloop_contracts.base import Event
from gridloop_runtime.casework import EventRule, Rules

from .domain.case import CaseFacts, record
from .domain.facts import ALL_VERSIONS
from .domain.fold import FoldContext
from .store import FactStore

# Every case event the fold knows is kept; the consumer still takes every `case.>` subject.
SUBJECTS = ["case.>"]


def rules(ctx: FoldContext) -> Rules[CaseFacts]:
    events: dict[type[Event], EventRule[CaseFacts]] = {model: record for model in ALL_VERSIONS}
    return Rules(store=FactStore(ctx), events=events)
