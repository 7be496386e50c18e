"""待办: how a task looks in the department's inbox — deadline countdown, overdue, what's next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gridloop_city import WorkingCalendar

from .tasks import Task

InboxState = Literal["open", "closed", "all"]
Stage = Literal["to_sign", "in_progress", "awaiting_verification"]
Sort = Literal["deadline", "-deadline", "dispatched_at", "-dispatched_at", "urgency", "-ended_at"]


@dataclass(frozen=True)
class Countdown:
    """Time left to the deadline, in clock time and in working time (the deadline counts
    working time, so "3 h" on a Friday evening is really Monday)."""

    remaining_s: int
    remaining_working_s: int
    overdue: bool
    overdue_by_s: int
    # the deadline was counted over days the official calendar does not know yet (the
    # statutory rule decided them): it may move once that year's arrangement is entered
    provisional: bool = False

    @classmethod
    def of(cls, task: Task, now: datetime, calendar: WorkingCalendar) -> Countdown:
        overdue = task.overdue(now)
        # A reported result stops the clock: what counts is when it was reported.
        at = task.handled_at or task.ended_at or now
        remaining = (task.deadline - at).total_seconds()
        working = calendar.working_time_between(at, task.deadline).total_seconds()
        return cls(
            remaining_s=int(remaining),
            remaining_working_s=int(working),
            overdue=overdue,
            overdue_by_s=int(-remaining) if overdue and remaining < 0 else 0,
            provisional=calendar.provisional(task.dispatched_at, task.deadline),
        )
