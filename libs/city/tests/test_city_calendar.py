"""Working-time arithmetic against hand-computed cases on the 2026 and 2027 calendars.

Office hours 09:00–12:00 and 13:30–18:00 (7.5 h a working day), Asia/Shanghai.
2026 (State Council arrangement, in chinese_calendar): New Year 1–3 Jan, Sunday 4 Jan worked;
Spring Festival 15–23 Feb, Saturdays 14 and 28 Feb worked; Qingming 4–6 Apr; Labour Day
1–5 May, Saturday 9 May worked; Dragon Boat 19–21 Jun; Mid-Autumn 25–27 Sep; National Day
1–7 Oct, Sunday 20 Sep and Saturday 10 Oct worked. 2027 is not published yet: the statutory
rule decides it (Monday–Friday minus the statutory holidays), provisionally."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gridloop_city import Duration, WorkingCalendar, load_city

ROOT = Path(__file__).resolve().parents[3] / "data" / "demo-city"
CST = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar.from_config(load_city(ROOT).calendar)


def t(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=CST)


@pytest.mark.parametrize(
    ("start", "amount", "unit", "due", "why"),
    [
        # ordinary weeks (Tuesday 24 Nov 2026)
        (t(2026, 11, 24, 10), 4, "working_hours", t(2026, 11, 24, 15, 30), "lunch break skipped"),
        (t(2026, 11, 24, 11), 2, "working_hours", t(2026, 11, 24, 14, 30), "across lunch"),
        (t(2026, 11, 24, 12, 30), 1, "working_hours", t(2026, 11, 24, 14, 30), "from lunch"),
        (t(2026, 11, 24, 10), 2, "working_hours", t(2026, 11, 24, 12), "ends at a break"),
        (t(2026, 11, 24, 17, 30), 1, "working_hours", t(2026, 11, 25, 9, 30), "overnight"),
        (t(2026, 11, 24, 22), 1, "working_hours", t(2026, 11, 25, 10), "reported at night"),
        (t(2026, 11, 27, 16), 4, "working_hours", t(2026, 11, 30, 11), "over a weekend"),
        (t(2026, 11, 29, 15), 1, "working_hours", t(2026, 11, 30, 10), "reported on Sunday"),
        (t(2026, 11, 24, 7), 1, "working_days", t(2026, 11, 24, 18), "before opening"),
        (t(2026, 11, 24, 10), 1, "working_days", t(2026, 11, 25, 10), "one working day"),
        (t(2026, 11, 24, 19), 1, "working_days", t(2026, 11, 25, 18), "after closing"),
        (t(2026, 11, 24, 9), 0.5, "working_days", t(2026, 11, 24, 14, 15), "half a day"),
        (t(2026, 11, 23, 9), 5, "working_days", t(2026, 11, 27, 18), "the 5-day cap"),
        (t(2026, 11, 27, 16), 2, "working_days", t(2026, 12, 1, 16), "days over a weekend"),
        (t(2026, 11, 28, 3), 2, "hours", t(2026, 11, 28, 5), "emergency: clock hours"),
        (t(2026, 11, 28, 22), 4, "hours", t(2026, 11, 29, 2), "clock hours overnight"),
        (t(2026, 11, 24, 10), 0, "working_hours", t(2026, 11, 24, 10), "nothing to add"),
        # 2026 official calendar
        (t(2025, 12, 31, 17), 2, "working_hours", t(2026, 1, 4, 10), "New Year, Sunday 01-04"),
        (t(2026, 2, 13, 17), 3, "working_days", t(2026, 2, 25, 17), "Spring Festival, Sat 02-14"),
        (t(2026, 2, 27, 17), 2, "working_hours", t(2026, 2, 28, 10), "swapped Saturday 02-28"),
        (t(2026, 4, 3, 17), 2, "working_hours", t(2026, 4, 7, 10), "Qingming 04-04..06"),
        (t(2026, 4, 30, 17), 2, "working_hours", t(2026, 5, 6, 10), "Labour Day 05-01..05"),
        (t(2026, 5, 8, 17), 2, "working_hours", t(2026, 5, 9, 10), "swapped Saturday 05-09"),
        (t(2026, 6, 18, 17), 2, "working_hours", t(2026, 6, 22, 10), "Dragon Boat 06-19"),
        (t(2026, 9, 18, 17), 2, "working_hours", t(2026, 9, 20, 10), "swapped Sunday 09-20"),
        (t(2026, 9, 24, 17), 2, "working_hours", t(2026, 9, 28, 10), "Mid-Autumn 09-25"),
        (t(2026, 9, 30, 17), 1, "working_days", t(2026, 10, 8, 17), "Golden Week"),
        (t(2026, 9, 30, 10), 2, "working_days", t(2026, 10, 9, 10), "Golden Week, two days"),
        (t(2026, 10, 9, 17), 2, "working_hours", t(2026, 10, 10, 10), "swapped Saturday 10-10"),
        # 2027: statutory days from calendar.yaml, Monday-Friday otherwise
        (t(2026, 12, 31, 17), 2, "working_hours", t(2027, 1, 4, 10), "New Year 2027"),
        (t(2027, 2, 4, 16), 1, "working_days", t(2027, 2, 9, 16), "Spring Festival 2027"),
        (t(2027, 3, 5, 17), 2, "working_hours", t(2027, 3, 8, 10), "2027 weekend fallback"),
        (t(2027, 9, 14, 17), 2, "working_hours", t(2027, 9, 16, 10), "Mid-Autumn 2027"),
        (
            t(2027, 9, 30, 17),
            2,
            "working_hours",
            t(2027, 10, 4, 10),
            "2027: statutory 10-01..03 only",
        ),
    ],
)
def test_deadline(
    cal: WorkingCalendar, start: dt.datetime, amount: float, unit: str, due: dt.datetime, why: str
) -> None:
    got = cal.add(start, amount, unit)
    assert got == due, why
    assert got.tzinfo == CST


def test_other_time_zones_in_city_zone_out(cal: WorkingCalendar) -> None:
    start = dt.datetime(2026, 11, 24, 2, tzinfo=dt.UTC)  # 10:00 in Beijing
    due = cal.add(start, 4, "working_hours")
    assert due == t(2026, 11, 24, 15, 30) and due.utcoffset() == dt.timedelta(hours=8)
    assert cal.add_duration(start, Duration(amount=1, unit="working_days")) == t(2026, 11, 25, 10)


def test_working_time_between(cal: WorkingCalendar) -> None:
    assert cal.working_time_between(t(2026, 11, 27, 16), t(2026, 11, 30, 11)) == dt.timedelta(
        hours=4
    )
    assert cal.working_time_between(t(2026, 11, 24, 11), t(2026, 11, 24, 14)) == dt.timedelta(
        hours=1, minutes=30
    )
    # Spring Festival 2026: Fri 13, Sat 14 (worked) and Tue 24 Feb
    assert cal.working_time_between(t(2026, 2, 13, 9), t(2026, 2, 25, 9)) == dt.timedelta(
        hours=22.5
    )
    assert cal.working_time_between(t(2026, 9, 30, 18), t(2026, 10, 8, 9)) == dt.timedelta(0)
    assert cal.working_time_between(t(2026, 11, 30, 11), t(2026, 11, 27, 16)) == dt.timedelta(0)


def test_reminder_point(cal: WorkingCalendar) -> None:
    start, due = t(2026, 11, 27, 16), t(2026, 11, 30, 11)
    assert cal.fraction_point(start, due, 0.75) == t(2026, 11, 30, 10)
    # one working day from Tuesday 10:00: 75% of 7.5 h = 5 h 37 min 30 s of working time
    day_due = cal.add(t(2026, 11, 24, 10), 1, "working_days")
    assert cal.fraction_point(t(2026, 11, 24, 10), day_due, 0.75) == t(2026, 11, 24, 17, 7, 30)
    assert cal.fraction_point(start, due, 0) == start
    with pytest.raises(ValueError, match="fraction"):
        cal.fraction_point(start, due, 1.5)


def test_reminder_in_clock_time_when_no_working_time(cal: WorkingCalendar) -> None:
    # An emergency raised on a Saturday night: its reminder cannot wait for Monday.
    start = t(2026, 11, 28, 22)
    assert cal.fraction_point(start, start + dt.timedelta(hours=2), 0.75) == t(2026, 11, 28, 23, 30)


def test_official_days(cal: WorkingCalendar) -> None:
    assert not cal.is_workday(dt.date(2026, 10, 1))
    assert cal.is_workday(dt.date(2026, 10, 10))  # a Saturday, swapped
    assert cal.is_workday(dt.date(2026, 1, 4))  # a Sunday, swapped
    assert not cal.is_workday(dt.date(2026, 2, 16))  # Spring Festival
    assert cal.is_workday(dt.date(2026, 2, 14))  # a Saturday, swapped
    assert cal.is_official(dt.date(2026, 6, 1))
    assert not cal.is_workday(dt.date(2027, 2, 8))  # 2027 statutory holiday (春节, 初三)
    assert not cal.is_official(dt.date(2027, 2, 8))  # … by the statutory rule, provisionally
    assert cal.day_length == dt.timedelta(hours=7.5)


def test_fallback_outside_the_known_years_is_said(
    cal: WorkingCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = WorkingCalendar(cal.periods, timezone="Asia/Shanghai")
    with caplog.at_level(logging.WARNING, logger="gridloop_city.calendar"):
        assert not fresh.is_workday(dt.date(2031, 3, 8))  # a Saturday
        assert fresh.is_workday(dt.date(2031, 3, 10))  # a Monday
        assert not fresh.is_workday(dt.date(2031, 10, 1))  # National Day, a Wednesday: statutory
        assert fresh.is_workday(dt.date(2031, 10, 8))  # no bridge days without the arrangement
    assert not fresh.is_official(dt.date(2031, 3, 10))
    warnings = [r for r in caplog.records if "2031" in r.getMessage()]
    assert len(warnings) == 1 and "statutory rule" in warnings[0].getMessage()


def test_working_instants(cal: WorkingCalendar) -> None:
    assert cal.is_working_time(t(2026, 11, 24, 11, 59))
    assert not cal.is_working_time(t(2026, 11, 24, 12))
    assert cal.is_working_time(t(2026, 11, 24, 13, 30))
    assert not cal.is_working_time(t(2026, 11, 28, 10))  # Saturday
    assert cal.is_working_time(t(2026, 10, 10, 10))  # swapped Saturday
    assert cal.next_working_instant(t(2026, 11, 24, 12, 15)) == t(2026, 11, 24, 13, 30)
    assert cal.next_working_instant(t(2026, 11, 27, 18, 30)) == t(2026, 11, 30, 9)
    assert cal.next_working_instant(t(2026, 9, 30, 18)) == t(2026, 10, 8, 9)
    assert cal.next_working_instant(t(2026, 11, 24, 10)) == t(2026, 11, 24, 10)


def test_bad_input_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="aware"):
        cal.add(dt.datetime(2026, 11, 24, 10), 1, "working_hours")
    with pytest.raises(ValueError, match="aware"):
        cal.working_time_between(dt.datetime(2026, 11, 24, 10), t(2026, 11, 24, 11))
    with pytest.raises(ValueError, match="negative"):
        cal.add(t(2026, 11, 24, 10), -1, "working_hours")
    with pytest.raises(ValueError, match="unknown unit"):
        cal.add(t(2026, 11, 24, 10), 1, "fortnights")
    with pytest.raises(ValueError, match="overlap"):
        WorkingCalendar([(dt.time(9), dt.time(13)), (dt.time(12), dt.time(18))])
    with pytest.raises(ValueError, match="start < end"):
        WorkingCalendar([(dt.time(18), dt.time(9))])


# -- past the official calendar: the statutory rule, provisionally --------------------------


def test_2027_follows_the_statutory_rule_provisionally(cal: WorkingCalendar) -> None:
    assert not cal.is_workday(dt.date(2027, 1, 1))  # 元旦, a Friday
    assert not cal.is_workday(dt.date(2027, 1, 2))  # a Saturday
    assert cal.is_workday(dt.date(2027, 1, 4))  # a Monday
    assert cal.is_workday(dt.date(2027, 5, 3))  # Monday 3 May: no bridge day known yet
    for day in (dt.date(2027, 1, 1), dt.date(2027, 1, 2), dt.date(2027, 1, 4)):
        assert not cal.is_official(day)
    # a deadline that reaches into 2027 is provisional; one inside 2026 is not
    due = cal.add(t(2026, 12, 31, 15), 1, "working_days")
    assert due == t(2027, 1, 4, 15)
    assert cal.provisional(t(2026, 12, 31, 15), due)
    assert not cal.provisional(t(2026, 12, 28, 15), cal.add(t(2026, 12, 28, 15), 1, "working_days"))


def test_the_statutory_holidays_are_the_official_ones_where_both_are_known() -> None:
    import chinese_calendar
    from gridloop_city.statutory import qingming, statutory_holidays

    for year in (2025, 2026):  # the 2024 rules: 13 days
        days = statutory_holidays(year)
        assert len(days) == 13
        assert all(chinese_calendar.is_holiday(d) for d in days), year
    for year in range(2008, 2027):  # 清明 a holiday since 2008: the formula's day each year
        detail = chinese_calendar.get_holiday_detail(qingming(year))
        assert detail[0] and "Tomb" in str(detail[1]), year


def test_the_lunar_holidays_of_2027_come_from_the_lunar_calendar() -> None:
    from gridloop_city.statutory import statutory_holidays

    days = statutory_holidays(2027)
    assert [d for d, n in days.items() if n == "春节"] == [
        dt.date(2027, 2, 6),
        dt.date(2027, 2, 7),
        dt.date(2027, 2, 8),
        dt.date(2027, 2, 5),  # 除夕
    ]
    assert days[dt.date(2027, 4, 5)] == "清明节"
    assert days[dt.date(2027, 6, 9)] == "端午节"
    assert days[dt.date(2027, 9, 15)] == "中秋节"
    # beyond the lunar library's years only the fixed-date holidays are known
    assert sorted(statutory_holidays(2101)) == [
        dt.date(2101, 1, 1),
        dt.date(2101, 5, 1),
        dt.date(2101, 5, 2),
        dt.date(2101, 10, 1),
        dt.date(2101, 10, 2),
        dt.date(2101, 10, 3),
    ]


def test_days_left_count_to_the_last_official_day(cal: WorkingCalendar) -> None:
    h = cal.horizon(dt.date(2026, 12, 2), 90)
    assert h.last_known == dt.date(2026, 12, 31) and h.days_left == 29
    assert cal.horizon(dt.date(2026, 12, 31), 90).days_left == 0
    past = cal.horizon(dt.date(2027, 1, 10), 90)  # already past it: negative
    assert past.last_known == dt.date(2026, 12, 31) and past.days_left == -10
    declared = WorkingCalendar(cal.periods, known_through=dt.date(2027, 12, 31))
    assert declared.horizon(dt.date(2026, 12, 2), 90).days_left == 394


def test_the_alarm_sounds_months_ahead_at_the_threshold(cal: WorkingCalendar) -> None:
    # 90 days before 31 Dec 2026 is 2 Oct: on with fewer than 90 left, off with 90
    assert cal.horizon(dt.date(2026, 10, 2), 90).days_left == 90
    assert not cal.horizon(dt.date(2026, 10, 2), 90).alarm
    on = cal.horizon(dt.date(2026, 10, 3), 90)
    assert on.days_left == 89 and on.alarm
    assert "2027 arrangement" in on.message() and "provisional" in on.message()
    assert not cal.horizon(dt.date(2026, 10, 3), 30).alarm  # the threshold is a setting
