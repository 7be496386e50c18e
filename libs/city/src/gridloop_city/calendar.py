"""Working time on the Chinese official calendar: deadlines, reminders, durations.

Working days follow `chinese_calendar` (statutory holidays and swapped working weekends,
调休) plus the city's own `extra_holidays` / `extra_workdays` from calendar.yaml. For a year
`chinese_calendar` does not know yet (it knows each year once the State Council publishes
the arrangement, usually in November of the year before), the calendar **falls back to the
statutory rule** (`statutory.py`: Monday–Friday minus the statutory holidays — 元旦, 春节,
清明, 劳动节, 端午, 中秋, 国庆 — minus `extra_holidays`, plus `extra_workdays`), logs a warning
once per such year, and `is_official(day)` answers False unless the city declared the year
entered (`known_through`), so callers can say that a deadline is provisional (`provisional`).

How far ahead the calendar is official (`horizon`) is watched by every service that computes
deadlines (gridloop_runtime.calendarwatch: a metric, a warning log, GET /admin/calendar),
months before it runs out.

Working hours are the city's office hours in the city's time zone (demo: Beijing government
hours 09:00–12:00 and 13:30–18:00, i.e. 7.5 working hours a working day).

Rules (documented because deadlines are evidence):

- `working_hours`: count only time inside working periods, starting from `start` (a start
  outside working time counts from the next opening). A deadline that falls exactly on the
  end of a period stays there (12:00, not 13:30).
- `working_days`: N working days = N × the length of one working day, counted in working
  time. A case dispatched Tuesday 10:00 with one working day is due Wednesday 10:00; one
  dispatched before opening (07:00) is due at closing time (18:00) the same day; one
  dispatched after closing (19:00), at closing time on the next working day. Fractions
  work the same way (0.5 working days = 3 h 45 min of working time).
- `hours`: plain clock hours, day and night, holidays included (emergencies).

All instants are timezone-aware; results are in the city's zone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import chinese_calendar

from .models import CalendarConfig, Duration
from .statutory import is_statutory_workday, lunar_holidays_known

log = logging.getLogger(__name__)

_MAX_DAYS = 3700  # ten years of days: a bound, never reached by real limits


def _parse_hm(text: str) -> dt.time:
    h, m = text.split(":")
    return dt.time(int(h), int(m))


class WorkingCalendar:
    """Working-time arithmetic for one city (see the module docstring for the rules)."""

    def __init__(
        self,
        periods: list[tuple[dt.time, dt.time]],
        *,
        timezone: str = "Asia/Shanghai",
        extra_holidays: set[dt.date] | None = None,
        extra_workdays: set[dt.date] | None = None,
        known_through: dt.date | None = None,
    ) -> None:
        periods = sorted(periods)
        if not periods or any(a >= b for a, b in periods):
            raise ValueError(
                "working periods must be non-empty (start, end) pairs with start < end"
            )
        if any(periods[i][1] > periods[i + 1][0] for i in range(len(periods) - 1)):
            raise ValueError("working periods overlap")
        self.periods = periods
        self.tz = ZoneInfo(timezone)
        self.extra_holidays = frozenset(extra_holidays or ())
        self.extra_workdays = frozenset(extra_workdays or ())
        self.known_through = known_through
        self.day_length = sum(
            (
                dt.datetime.combine(dt.date.min, b) - dt.datetime.combine(dt.date.min, a)
                for a, b in self.periods
            ),
            dt.timedelta(0),
        )
        self._days: dict[dt.date, tuple[bool, bool]] = {}
        self._warned: set[int] = set()

    @classmethod
    def from_config(cls, cfg: CalendarConfig) -> WorkingCalendar:
        """The calendar calendar.yaml describes."""
        return cls(
            [(_parse_hm(a), _parse_hm(b)) for a, b in cfg.working_hours],
            timezone=cfg.timezone,
            extra_holidays=set(cfg.extra_holidays),
            extra_workdays=set(cfg.extra_workdays),
            known_through=cfg.known_through,
        )

    # -- days -------------------------------------------------------------------------------
    def is_workday(self, day: dt.date) -> bool:
        """工作日: on the official calendar (with 调休), or by the statutory rule where it is
        unknown."""
        return self._day(day)[0]

    def is_official(self, day: dt.date) -> bool:
        """Whether `day` is covered by chinese_calendar's official data or the city's own
        extra days (False: the Monday–Friday fallback decided)."""
        return self._day(day)[1]

    def known_until(self, start: dt.date, days: int = 400) -> dt.date | None:
        """The last day of the run of official days from `start` (looking `days` ahead), or
        None when `start` itself is not official."""
        last = None
        day = start
        for _ in range(days):
            if not self.is_official(day):
                break
            last = day
            day += dt.timedelta(days=1)
        return last

    def provisional(self, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether working time from `start` to `end` (a deadline) crossed a day the official
        calendar does not know: the result followed the statutory rule and may move once the
        State Council's arrangement for that year is entered."""
        a = _aware(start, "start").astimezone(self.tz).date()
        b = _aware(end, "end").astimezone(self.tz).date()
        day = min(a, b)
        while day <= max(a, b):
            if not self.is_official(day):
                return True
            day += dt.timedelta(days=1)
        return False

    def horizon(self, today: dt.date, alarm_days: int, *, look: int = 1100) -> Horizon:
        """How far ahead from `today` the calendar is official (see `Horizon`)."""
        last = self.known_until(today, look)
        if last is None:  # today already past it: find where it ended
            day = today - dt.timedelta(days=1)
            for _ in range(look):
                if self.is_official(day):
                    last = day
                    break
                day -= dt.timedelta(days=1)
        left = (last - today).days if last is not None else -look
        return Horizon(today, last, left, alarm_days)

    def _day(self, day: dt.date) -> tuple[bool, bool]:
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = self._classify(day)
        return known

    def _classify(self, day: dt.date) -> tuple[bool, bool]:
        if day in self.extra_workdays:
            return True, True
        if day in self.extra_holidays:
            return False, True
        try:
            return bool(chinese_calendar.is_workday(day)), True
        except NotImplementedError:
            if self.known_through is not None and day <= self.known_through:
                # the city entered this year's arrangement itself: the rest is the statutory rule
                return is_statutory_workday(day), True
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "chinese_calendar has no official calendar for %s: working days follow the "
                    "statutory rule (Monday-Friday minus the statutory holidays%s) and "
                    "calendar.yaml's extra days; deadlines are provisional",
                    day.year,
                    "" if lunar_holidays_known(day.year) else "; the lunar ones are not known",
                )
            return is_statutory_workday(day), False

    def _windows(self, day: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        if self.is_workday(day):
            for a, b in self.periods:
                yield (
                    dt.datetime.combine(day, a, tzinfo=self.tz),
                    dt.datetime.combine(day, b, tzinfo=self.tz),
                )

    def is_working_time(self, at: dt.datetime) -> bool:
        """Whether `at` lies inside a working period (start inclusive, end exclusive)."""
        local = _aware(at, "at").astimezone(self.tz)
        return any(a <= local < b for a, b in self._windows(local.date()))

    def next_working_instant(self, at: dt.datetime) -> dt.datetime:
        """`at` itself inside working time, else the next opening."""
        local = _aware(at, "at").astimezone(self.tz)
        day = local.date()
        for _ in range(_MAX_DAYS):
            for a, b in self._windows(day):
                if local < b:
                    return max(a, local)
            day += dt.timedelta(days=1)
        raise ValueError("no working time within ten years")

    # -- arithmetic -------------------------------------------------------------------------
    def add(self, start: dt.datetime, amount: float, unit: str) -> dt.datetime:
        """The instant `amount` `unit`s (working_hours, working_days or hours) after `start`."""
        _aware(start, "start")
        if amount < 0:
            raise ValueError("amount must not be negative")
        if unit == "hours":
            return (start + dt.timedelta(hours=amount)).astimezone(self.tz)
        if unit == "working_hours":
            return self.add_working(start, dt.timedelta(hours=amount))
        if unit == "working_days":
            if amount == 0:
                return start.astimezone(self.tz)
            return self.add_working(start, self.day_length * amount)
        raise ValueError(f"unknown unit {unit!r}")

    def add_duration(self, start: dt.datetime, duration: Duration) -> dt.datetime:
        """The deadline `duration` after `start` (e.g. a category's limit)."""
        return self.add(start, duration.amount, duration.unit)

    def add_working(self, start: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        """`amount` of working time after `start`; zero returns `start` unchanged."""
        local = _aware(start, "start").astimezone(self.tz)
        remaining = amount
        if remaining <= dt.timedelta(0):
            return local
        day = local.date()
        for _ in range(_MAX_DAYS):
            for a, b in self._windows(day):
                begin = max(a, local)
                if begin >= b:
                    continue
                available = b - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += dt.timedelta(days=1)
        raise ValueError("deadline too far in the future")

    def working_time_between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        """Working time inside [a, b) (zero if b <= a)."""
        a = _aware(a, "a").astimezone(self.tz)
        b = _aware(b, "b").astimezone(self.tz)
        total = dt.timedelta(0)
        if b <= a:
            return total
        day = a.date()
        while day <= b.date():
            for s, e in self._windows(day):
                lo, hi = max(s, a), min(e, b)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total

    def fraction_point(
        self, start: dt.datetime, deadline: dt.datetime, fraction: float
    ) -> dt.datetime:
        """The instant at `fraction` of the allowed time (e.g. the 75% reminder, 催办), counted
        in working time; in clock time when the window holds no working time (an emergency at
        night)."""
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        total = self.working_time_between(start, deadline)
        if total <= dt.timedelta(0):
            return (start + (deadline - start) * fraction).astimezone(self.tz)
        return self.add_working(start, total * fraction)


@dataclass(frozen=True)
class Horizon:
    """How far ahead the working calendar is official, seen on `today`.

    `last_known` is the last day of the unbroken run of official days (chinese_calendar's
    years, the city's `known_through`); `days_left` counts the days after `today` up to it
    (negative: it ended that many days ago). The alarm is on when fewer than `alarm_days`
    are left: months ahead, so the next year's arrangement is entered before a deadline
    falls into it."""

    today: dt.date
    last_known: dt.date | None
    days_left: int
    alarm_days: int

    @property
    def alarm(self) -> bool:
        return self.days_left < self.alarm_days

    def message(self) -> str:
        if not self.alarm:
            return f"the working calendar is official through {self.last_known}"
        year = (self.last_known + dt.timedelta(days=1)).year if self.last_known else "next"
        return (
            f"the working calendar is official only through {self.last_known} "
            f"({self.days_left} days left, alarm at {self.alarm_days}): deadlines after it are "
            f"provisional (statutory rule); enter the State Council's {year} arrangement in "
            "calendar.yaml (extra_holidays, extra_workdays, known_through) and release the "
            "city's data, or upgrade chinese-calendar once it knows that year"
        )


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value
