"""催办与督办: which chase timers a task needs for its current deadline.

Timer kinds: `sign_in` (签收超时), `remind` (催办, at the configured fraction of the window),
`overdue` (超期, at the deadline) and `escalate:<level>` (督办 ladder after it). Each timer is
keyed by the task and its deadline generation (`<case>-T<n>#<gen>`), so a new deadline gets new
rows and a timer of an old one finds its generation stale and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .casefile import Task
from .deadlines import Deadlines

SIGN_IN, REMIND, OVERDUE, ESCALATE = "sign_in", "remind", "overdue", "escalate"


def escalate_kind(level: int) -> str:
    return f"{ESCALATE}:{level}"


def kinds(levels: tuple[int, ...]) -> list[str]:
    """Every timer kind dispatch handles, for a ladder of these levels."""
    return [SIGN_IN, REMIND, OVERDUE, *(escalate_kind(level) for level in levels)]


@dataclass(frozen=True)
class PlannedTimer:
    kind: str
    key: str
    due: datetime
    payload: dict[str, object]


def plan(task: Task, deadlines: Deadlines, on_clock: bool) -> list[PlannedTimer]:
    """The timers of a task's current deadline that have not happened yet."""
    if not task.active:
        return []
    key = task.timer_key()
    base: dict[str, object] = {"case_id": task.case_id, "task_id": task.task_id, "gen": task.gen}
    out: list[PlannedTimer] = []
    if task.sign_in_due is not None and task.signed_at is None and task.sign_in_overdue_at is None:
        out.append(PlannedTimer(SIGN_IN, key, task.sign_in_due, base))
    if task.reminded_at is None:
        at = deadlines.remind_at(task.window_start, task.deadline, on_clock)
        if at is not None:
            out.append(PlannedTimer(REMIND, key, at, base))
    if task.overdue_at is None:
        out.append(PlannedTimer(OVERDUE, key, task.deadline, base))
    for rung in deadlines.ladder(task.deadline, on_clock, above=task.escalation_level):
        out.append(
            PlannedTimer(escalate_kind(rung.level), key, rung.at, {**base, "level": rung.level})
        )
    return out
