"""Working-time arithmetic against hand-computed cases on the 2026 and 2027 calendars.

Office hours 09:00–12:00 and 13:30–18:00 (7.5 h a working day), Asia/Shanghai."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gridloop_city import WorkingCalendar, load_city

ROOT = Path(__file__).resolve().parents[3] / "data" / "demo-city"
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar.from_config(load_city(ROOT).calendar)


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CST)


@pytest.mark.parametrize(
    ("start", "amount", "unit", "due", "why"),
    [
        (t(2026, 11, 24, 10), 4, "working_hours", t(2026, 11, 24, 15, 30), "lunch break skipped"),
        (t(2026, 11, 24, 11), 2, "working_hours", t(2026, 11, 24, 14, 30), "across lunch"),
        (t(2026, 11, 24, 17, 30), 1, "working_hours", t(2026, 11, 25, 9, 30), "overnight"),
        (t(2026, 11, 27, 16), 4, "working_hours", t(2026, 11, 30, 11), "over a weekend"),
        (t(2026, 11, 24, 7), 1, "working_days", t(2026, 11, 24, 18), "before opening"),
        (t(2026, 11, 24, 10), 1, "working_days", t(2026, 11, 25, 10), "one working day"),
        (t(2026, 9, 30, 17), 1, "working_days", t(2026, 10, 8, 17), "Golden Week"),
        (t(2026, 10, 9, 17), 2, "working_hours", t(2026, 10, 10, 10), "swapped Saturday 10-10"),
        (
            t(2026, 2, 13, 17),
            3,
            "working_days",
            t(2026, 2, 25, 17),
            "Spring Festival + swapped 02-14",
        ),
        (t(2026, 4, 30, 17), 2, "working_hours", t(2026, 5, 6, 10), "Labour Day"),
        (t(2026, 9, 24, 17), 2, "working_hours", t(2026, 9, 28, 10), "Mid-Autumn 09-25"),
        (t(2026, 11, 28, 3), 2, "hours", t(2026, 11, 28, 5), "emergency: clock hours"),
        (t(2026, 12, 31, 17), 2, "working_hours", t(2027, 1, 4, 10), "New Year 2027"),
        (t(2027, 2, 4, 16), 1, "working_days", t(2027, 2, 9, 16), "Spring Festival 2027"),
        (t(2027, 9, 14, 17), 2, "working_hours", t(2027, 9, 16, 10), "Mid-Autumn 2027"),
    ],
)
def test_deadline(
    cal: WorkingCalendar, start: dt.datetime, amount: float, unit: str, due: dt.datetime, why: str
) -> None:
    assert cal.add(start, amount, unit) == due, why


def test_working_time_between_and_reminder_point(cal: WorkingCalendar) -> None:
    start, due = t(2026, 11, 27, 16), t(2026, 11, 30, 11)
    assert cal.working_time_between(start, due) == dt.timedelta(hours=4)
    assert cal.fraction_point(start, due, 0.75) == t(2026, 11, 30, 10)
    assert cal.working_time_between(due, start) == dt.timedelta(0)


def test_reminder_in_clock_time_when_no_working_time(cal: WorkingCalendar) -> None:
    # An emergency raised on a Saturday night: its reminder cannot wait for Monday.
    start = t(2026, 11, 28, 22)
    assert cal.fraction_point(start, start + dt.timedelta(hours=2), 0.75) == t(2026, 11, 28, 23, 30)


def test_official_days(cal: WorkingCalendar) -> None:
    assert not cal.is_workday(dt.date(2026, 10, 1))
    assert cal.is_workday(dt.date(2026, 10, 10))  # a Saturday, swapped
    assert cal.is_workday(dt.date(2026, 1, 4))  # a Sunday, swapped
    assert not cal.is_workday(dt.date(2027, 2, 8))  # configured 2027 holiday
    assert not cal.is_workday(dt.date(2027, 3, 6))  # a Saturday, fallback Mon–Fri
    assert cal.day_length == dt.timedelta(hours=7.5)


def test_naive_start_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="aware"):
        cal.add(dt.datetime(2026, 11, 24, 10), 1, "working_hours")
