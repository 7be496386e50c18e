"""催办与督办: the chase steps a task still needs for its current deadline, and its one timer.

Steps: `sign_in` (签收超时), `remind` (催办, at the configured fraction of the window),
`overdue` (超期, at the deadline) and `escalate:<level>` (督办 ladder after it). A task has ONE
timer row per deadline, of kind `chase`, keyed by the task and its deadline generation
(`<case>-T<n>#<gen>`) and due at the earliest step still needed; when it fires, the steps due
by then happen and the same row is set again for the next one. A new deadline (rework,
extension) gets a new key; the row of an old one finds its generation stale and does nothing.

Databases written before the single row may still hold one row per step (kinds `sign_in`,
`remind`, `overdue`, `escalate:<n>`, same key and payload): those still fire, once each, and
act only if the task still needs their step (`LEGACY_KINDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .casefile import Task
from .deadlines import Deadlines

SIGN_IN, REMIND, OVERDUE, ESCALATE = "sign_in", "remind", "overdue", "escalate"
CHASE = "chase"


def escalate_kind(level: int) -> str:
    return f"{ESCALATE}:{level}"


def kinds(levels: tuple[int, ...]) -> list[str]:
    """Every step of the chase, for a ladder of these levels (the kinds of the one-row-per-step
    timers of earlier versions, still fired where a database holds them)."""
    return [SIGN_IN, REMIND, OVERDUE, *(escalate_kind(level) for level in levels)]


@dataclass(frozen=True)
class PlannedTimer:
    kind: str
    key: str
    due: datetime
    payload: dict[str, object]


def plan(
    task: Task, deadlines: Deadlines, on_clock: bool, *, ladder: bool = True
) -> list[PlannedTimer]:
    """The timers of a task's current deadline that have not happened yet (`ladder=False`:
    without the 督办 rungs)."""
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
    for rung in (
        deadlines.ladder(task.deadline, on_clock, above=task.escalation_level) if ladder else ()
    ):
        out.append(
            PlannedTimer(escalate_kind(rung.level), key, rung.at, {**base, "level": rung.level})
        )
    return out


def next_step(task: Task, deadlines: Deadlines, on_clock: bool) -> PlannedTimer | None:
    """The earliest step the task still needs (the first of the plan on equal times). The
    督办 rungs come at or after the deadline (no level's `after` is negative) and after the
    overdue step in the plan, so they are worked out (on the calendar, one by one) only once
    the task is overdue."""
    steps = plan(task, deadlines, on_clock, ladder=task.overdue_at is not None)
    return min(steps, key=lambda p: p.due) if steps else None


def chase_timer(task: Task, deadlines: Deadlines, on_clock: bool) -> PlannedTimer | None:
    """The task's one chase timer: kind `chase`, due at its next step (named in the payload)."""
    step = next_step(task, deadlines, on_clock)
    if step is None:
        return None
    payload = {k: v for k, v in step.payload.items() if k != "level"}
    return PlannedTimer(CHASE, step.key, step.due, {**payload, "step": step.kind})
