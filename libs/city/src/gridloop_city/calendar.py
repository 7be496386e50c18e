"""Working time on the Chinese official calendar: deadlines, reminders, durations.

Working days follow `chinese_calendar` (statutory holidays and swapped working weekends,
调休) plus the city's own `extra_holidays` / `extra_workdays`; for a year the library does
not know yet, Monday–Friday minus the configured holidays. Working hours are the city's
office hours (e.g. 09:00–12:00 and 13:30–18:00) in the city's time zone.

Rules (documented because deadlines are evidence):
- `working_hours`: count only time inside working periods, from the start.
- `working_days`: N working days = N × the length of one working day of working time. A case
  dispatched Tuesday 10:00 with one working day is due Wednesday 10:00; one dispatched before
  opening (07:00) is due at closing time the same day; after closing, at closing next day.
- `hours`: plain clock hours (emergencies do not wait for office hours).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

from .models import CalendarConfig, Duration


def _parse_hm(text: str) -> dt.time:
    h, m = text.split(":")
    return dt.time(int(h), int(m))


class WorkingCalendar:
    def __init__(
        self,
        periods: list[tuple[dt.time, dt.time]],
        *,
        timezone: str = "Asia/Shanghai",
        extra_holidays: set[dt.date] | None = None,
        extra_workdays: set[dt.date] | None = None,
    ) -> None:
        if not periods or any(a >= b for a, b in periods):
            raise ValueError(
                "working periods must be non-empty (start, end) pairs with start < end"
            )
        self.periods = sorted(periods)
        self.tz = ZoneInfo(timezone)
        self.extra_holidays = extra_holidays or set()
        self.extra_workdays = extra_workdays or set()
        self.day_length = sum(
            (
                dt.datetime.combine(dt.date.min, b) - dt.datetime.combine(dt.date.min, a)
                for a, b in self.periods
            ),
            dt.timedelta(0),
        )
        self._is_workday = lru_cache(maxsize=4096)(self._workday)

    @classmethod
    def from_config(cls, cfg: CalendarConfig) -> WorkingCalendar:
        return cls(
            [(_parse_hm(a), _parse_hm(b)) for a, b in cfg.working_hours],
            timezone=cfg.timezone,
            extra_holidays={dt.date.fromisoformat(d) for d in cfg.extra_holidays},
            extra_workdays={dt.date.fromisoformat(d) for d in cfg.extra_workdays},
        )

    # -- days -------------------------------------------------------------------------
    def is_workday(self, day: dt.date) -> bool:
        return bool(self._is_workday(day))

    def _workday(self, day: dt.date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def _windows(self, day: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        if self.is_workday(day):
            for a, b in self.periods:
                yield (
                    dt.datetime.combine(day, a, tzinfo=self.tz),
                    dt.datetime.combine(day, b, tzinfo=self.tz),
                )

    # -- arithmetic -------------------------------------------------------------------
    def add(self, start: dt.datetime, amount: float, unit: str) -> dt.datetime:
        """The instant `amount` `unit`s after `start` (aware in, aware out, in the city's zone)."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if unit == "hours":
            return (start + dt.timedelta(hours=amount)).astimezone(self.tz)
        if unit == "working_hours":
            return self.add_working(start, dt.timedelta(hours=amount))
        if unit == "working_days":
            return self.add_working(start, self.day_length * amount)
        raise ValueError(f"unknown unit {unit!r}")

    def add_duration(self, start: dt.datetime, duration: Duration) -> dt.datetime:
        return self.add(start, duration.amount, duration.unit)

    def add_working(self, start: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        local = start.astimezone(self.tz)
        remaining = amount
        if remaining <= dt.timedelta(0):
            return local
        day = local.date()
        for _ in range(3700):  # ten years of days: a bound, never reached by real limits
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
        a, b = a.astimezone(self.tz), b.astimezone(self.tz)
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
        """The instant at `fraction` of the allowed time (e.g. the 75% reminder, 催办), counted in
        working time; in clock time when the window holds no working time (emergencies)."""
        total = self.working_time_between(start, deadline)
        if total <= dt.timedelta(0):
            return (start + (deadline - start) * fraction).astimezone(self.tz)
        return self.add_working(start, total * fraction)
