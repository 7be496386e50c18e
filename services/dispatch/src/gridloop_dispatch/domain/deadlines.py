"""期限: deadlines in working time — the category's standard, the community rules (seed 003),
the sign-in time (签收), the reminder point (催办) and the escalation ladder (督办).

Everything here is data from `calendar.yaml` and `categories.yaml` counted on the
`WorkingCalendar`; nothing is a constant in code except which department kinds are
"community level" (the units seed 003's limits are written for).

Emergencies (categories with `emergency: true`, or a limit in plain `hours`) run on the clock:
a gas leak at 23:00 does not wait for office hours, so its sign-in time, reminder and ladder
are counted in clock time too (a working day on the ladder becomes 24 clock hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gridloop_city import Category, Duration, WorkingCalendar
from gridloop_city.models import CalendarConfig, EscalationLevel

# Units that answer to seed 003's 社区限时办结制度 (community 1, sub-district office 2, with
# other units 3 working days, never more than 5).
COMMUNITY_LEVEL_KINDS = frozenset({"community", "subdistrict-office"})


@dataclass(frozen=True)
class Rung:
    """One step of the escalation ladder: who the case goes to, and when."""

    level: int
    to: str
    at: datetime


def runs_on_clock(category: Category | None, urgency: str) -> bool:
    """Whether a task's clock ignores office hours (emergencies, limits in plain hours)."""
    if category is None:
        return False
    return category.emergency or category.limit(urgency).unit == "hours"


def clock_equivalent(duration: Duration) -> Duration:
    """The same duration as plain hours: a working hour is an hour, a working day 24 hours."""
    if duration.unit == "working_days":
        return Duration(amount=duration.amount * 24, unit="hours")
    return Duration(amount=duration.amount, unit="hours")


class Deadlines:
    """The deadline arithmetic of one city: its calendar and its chase configuration."""

    def __init__(self, calendar: WorkingCalendar, config: CalendarConfig) -> None:
        self.calendar = calendar
        self.config = config
        self.levels = tuple(sorted(r.level for r in config.escalation))

    def add(self, start: datetime, duration: Duration, on_clock: bool = False) -> datetime:
        if on_clock:
            duration = clock_equivalent(duration)
        return self.calendar.add_duration(start, duration)

    # -- the handling deadline ------------------------------------------------------
    def community_limit(self, dept_kind: str | None, multi_unit: bool) -> Duration | None:
        """Seed 003's limit for a community-level unit, None for other units."""
        if dept_kind not in COMMUNITY_LEVEL_KINDS:
            return None
        rules = self.config.community_rules
        if multi_unit:
            return rules.multi_unit
        return rules.community if dept_kind == "community" else rules.subdistrict

    def deadline(
        self,
        start: datetime,
        category: Category,
        urgency: str,
        dept_kind: str | None,
        multi_unit: bool,
    ) -> datetime:
        """The category's standard (normal or urgent); for a community-level unit the
        community rule too, whichever is stricter: the rules tighten, never loosen."""
        due = self.calendar.add_duration(start, category.limit(urgency))
        rule = self.community_limit(dept_kind, multi_unit)
        if rule is not None:
            due = min(due, self.calendar.add_duration(start, rule))
        return due

    def cap(self, start: datetime, dept_kind: str | None) -> datetime | None:
        """最迟不超过5个工作日: the latest any deadline (extensions too) of a community-level
        unit may be, counted from when the task was given; None for other units."""
        if dept_kind not in COMMUNITY_LEVEL_KINDS:
            return None
        return self.calendar.add_duration(start, self.config.community_rules.cap)

    # -- sign-in, reminder, ladder -------------------------------------------------
    def sign_in_due(self, start: datetime, deadline: datetime, on_clock: bool) -> datetime:
        """签收 by the configured timeout, and never later than the deadline itself."""
        return min(self.add(start, self.config.sign_in_timeout, on_clock), deadline)

    def remind_at(self, start: datetime, deadline: datetime, on_clock: bool) -> datetime | None:
        """催办 at `reminder_fraction` of the allowed time (working time unless on the clock);
        None when the window is too short to hold a reminder."""
        if deadline <= start:
            return None
        fraction = self.config.reminder_fraction
        if on_clock:
            at = start + (deadline - start) * fraction
        else:
            at = self.calendar.fraction_point(start, deadline, fraction)
        return at if start < at < deadline else None

    def ladder(self, deadline: datetime, on_clock: bool, above: int = 0) -> list[Rung]:
        """督办: each configured level after the deadline, above the level already reached."""
        return [
            Rung(r.level, r.to, self.add(deadline, r.after, on_clock))
            for r in sorted(self.config.escalation, key=lambda r: r.level)
            if r.level > above
        ]

    def queue_rung(self, level: int) -> EscalationLevel | None:
        """待派遣催办: the queue's chase level (`queue_chase`), None past its top."""
        for r in self.config.queue_chase:
            if r.level == level:
                return r
        return None

    def rung(self, level: int) -> str:
        """Who a level escalates to."""
        for r in self.config.escalation:
            if r.level == level:
                return r.to
        raise KeyError(f"no escalation level {level}")

    def emergency_rung(self) -> tuple[int, str]:
        """突发事件立即督办: the level an emergency is escalated to at once — the ladder's level
        whose role is `emergency_escalation_to`, else level 1 with that role."""
        to = self.config.emergency_escalation_to
        for r in sorted(self.config.escalation, key=lambda r: r.level):
            if r.to == to:
                return r.level, to
        return 1, to

    def working_time_left(self, now: datetime, deadline: datetime) -> timedelta:
        return self.calendar.working_time_between(now, deadline)
