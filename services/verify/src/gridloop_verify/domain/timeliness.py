"""时限: when a verification or confirmation task is due, when to remind, what is on time."""

from __future__ import annotations

from datetime import datetime

from gridloop_city import Duration, WorkingCalendar


def task_due(
    calendar: WorkingCalendar,
    assigned_at: datetime,
    limit: Duration,
    requested: datetime | None = None,
) -> datetime:
    """The task's deadline: the one the requester set (intake's 核实 `due`) when it is later
    than now, else the stage's limit on the working calendar (calendar.yaml)."""
    if requested is not None and requested > assigned_at:
        return requested
    return calendar.add_duration(assigned_at, limit)


def reminder_at(
    calendar: WorkingCalendar, assigned_at: datetime, due: datetime, fraction: float
) -> datetime | None:
    """催办 at `fraction` of the allowed working time; None when there is no time to remind in."""
    if due <= assigned_at:
        return None
    at = calendar.fraction_point(assigned_at, due, fraction)
    return at if assigned_at < at < due else None


def on_time(at: datetime, deadline: datetime | None) -> bool:
    """Done by the deadline (inclusive). No known deadline counts as on time: lateness must
    be proven by a deadline somebody set, never assumed."""
    return deadline is None or at <= deadline
