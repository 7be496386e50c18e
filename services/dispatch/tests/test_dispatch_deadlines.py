"""Deadline arithmetic against hand-computed cases on the 2026 and 2027 official calendars.

Working hours (calendar.yaml): 09:00–12:00 and 13:30–18:00 in Asia/Shanghai, 7.5 hours a day.
2026 follows the State Council's notice (chinese-calendar): New Year 1–3 Jan with Sun 4 Jan
worked; Spring Festival 15–23 Feb with Sat 14 and Sat 28 Feb worked; Labour Day 1–5 May with
Sat 9 May worked; National Day 1–7 Oct with Sun 20 Sep and Sat 10 Oct worked.
2027 is not published by the State Council yet (chinese-calendar 1.11 stops at 2026): the
city's calendar.yaml lists the statutory days (New Year, Spring Festival 5–8 Feb, Qingming
5 Apr, Labour Day, Dragon Boat 9 Jun, Mid-Autumn 15 Sep, National Day 1–3 Oct) and takes
bridge days and swapped working days when they are published (`extra_workdays`).
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gridloop_city import City, Duration, WorkingCalendar, load_city
from gridloop_dispatch.domain.deadlines import Deadlines, clock_equivalent, runs_on_clock

BJ = ZoneInfo("Asia/Shanghai")
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"


def bj(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=BJ)


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(DEMO_CITY)


@pytest.fixture(scope="module")
def dl(city: City) -> Deadlines:
    return Deadlines(WorkingCalendar.from_config(city.calendar), city.calendar)


def wh(n: float) -> Duration:
    return Duration(amount=n, unit="working_hours")


def wd(n: float) -> Duration:
    return Duration(amount=n, unit="working_days")


# -- 2026: hours, lunch, overnight, weekends ------------------------------------------------
@pytest.mark.parametrize(
    ("start", "limit", "due", "why"),
    [
        (bj(2026, 11, 23, 11), wh(2), bj(2026, 11, 23, 14, 30), "over the lunch break"),
        (bj(2026, 11, 23, 12, 30), wh(1), bj(2026, 11, 23, 14, 30), "starting in the lunch break"),
        (bj(2026, 11, 23, 17), wh(2), bj(2026, 11, 24, 10), "overnight"),
        (bj(2026, 11, 23, 20), wh(1), bj(2026, 11, 24, 10), "after closing"),
        (bj(2026, 11, 27, 16), wh(4), bj(2026, 11, 30, 11), "over a weekend"),
        (bj(2026, 11, 28, 10), wh(1), bj(2026, 11, 30, 10), "reported on a Saturday"),
        (bj(2026, 11, 24, 10), wd(1), bj(2026, 11, 25, 10), "one working day"),
        (bj(2026, 11, 24, 7), wd(1), bj(2026, 11, 24, 18), "before opening: closing time"),
        (bj(2026, 11, 23, 20), wd(1), bj(2026, 11, 24, 18), "after closing: closing next day"),
        (bj(2026, 11, 23, 10), wd(3), bj(2026, 11, 26, 10), "three working days"),
        (bj(2026, 11, 26, 10), wd(3), bj(2026, 12, 1, 10), "three working days over a weekend"),
    ],
)
def test_working_time_on_ordinary_days(
    dl: Deadlines, start: datetime, limit: Duration, due: datetime, why: str
) -> None:
    assert dl.add(start, limit) == due, why


# -- 2026: holidays and swapped working days ----------------------------------------------
@pytest.mark.parametrize(
    ("start", "limit", "due", "why"),
    [
        # Golden Week: Wed 30 Sep 10:00 + 7.5 h = 6.5 h that day, 1 h on Thu 8 Oct.
        (bj(2026, 9, 30, 10), wd(1), bj(2026, 10, 8, 10), "Golden Week"),
        (bj(2026, 9, 30, 16), wh(4), bj(2026, 10, 8, 11), "Golden Week in hours"),
        # Swapped working days (调休): Sat 10 Oct and Sun 20 Sep are working days.
        (bj(2026, 10, 9, 17), wh(2), bj(2026, 10, 10, 10), "swapped Saturday 10 Oct"),
        (bj(2026, 9, 19, 14), wh(1), bj(2026, 9, 20, 10), "swapped Sunday 20 Sep"),
        (bj(2026, 5, 8, 17), wh(2), bj(2026, 5, 9, 10), "swapped Saturday 9 May"),
        # Labour Day: Thu 30 Apr 17:00, 1 h left that day; 1–5 May off; Wed 6 May 10:00.
        (bj(2026, 4, 30, 17), wh(2), bj(2026, 5, 6, 10), "Labour Day"),
        # Spring Festival: Fri 13 Feb 6.5 h, Sat 14 Feb (worked) 7.5 h, 15–23 Feb off.
        (bj(2026, 2, 13, 10), wd(2), bj(2026, 2, 24, 10), "Spring Festival"),
        (bj(2026, 2, 13, 17), wh(2), bj(2026, 2, 14, 10), "swapped Saturday 14 Feb"),
        # New Year: Wed 31 Dec 2025 2 h; 1–3 Jan off; Sun 4 Jan is a working day.
        (bj(2025, 12, 31, 16), wh(4), bj(2026, 1, 4, 11), "New Year with Sunday worked"),
        # Qingming: Fri 3 Apr 17:00, Sat–Mon 4–6 Apr off, Tue 7 Apr.
        (bj(2026, 4, 3, 17), wh(2), bj(2026, 4, 7, 10), "Qingming"),
    ],
)
def test_working_time_over_the_2026_official_calendar(
    dl: Deadlines, start: datetime, limit: Duration, due: datetime, why: str
) -> None:
    assert dl.add(start, limit) == due, why


def test_plain_hours_ignore_office_hours_and_holidays(dl: Deadlines) -> None:
    # A gas leak at 23:00 on a National Day holiday: two clock hours.
    assert dl.add(bj(2026, 10, 3, 23), Duration(amount=2, unit="hours")) == bj(2026, 10, 4, 1)


# -- 2027 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "limit", "due", "why"),
    [
        # Thu 31 Dec 2026 15:00: 3 h; Fri 1 Jan 2027 off; weekend; Mon 4 Jan 09–12, 13:30–15:00.
        (bj(2026, 12, 31, 15), wd(1), bj(2027, 1, 4, 15), "New Year 2027"),
        # Thu 4 Feb 16:00: 2 h; Fri 5 – Mon 8 Feb off; Tue 9 Feb 3 h + 2.5 h = 16:00.
        (bj(2027, 2, 4, 16), wd(1), bj(2027, 2, 9, 16), "Spring Festival 2027"),
        (bj(2027, 4, 2, 17), wh(2), bj(2027, 4, 6, 10), "Qingming 2027 (Mon 5 Apr)"),
        (bj(2027, 6, 8, 17), wh(2), bj(2027, 6, 10, 10), "Dragon Boat 2027 (Wed 9 Jun)"),
        (bj(2027, 9, 14, 17), wh(2), bj(2027, 9, 16, 10), "Mid-Autumn 2027 (Wed 15 Sep)"),
        # Thu 30 Sep 16:00: 2 h; Fri 1 Oct off, weekend; the statutory days only are known.
        (bj(2027, 9, 30, 16), wh(4), bj(2027, 10, 4, 11), "National Day 2027"),
        (bj(2027, 3, 12, 16), wd(2), bj(2027, 3, 16, 16), "an ordinary 2027 week"),
    ],
)
def test_working_time_on_the_2027_statutory_calendar(
    dl: Deadlines, start: datetime, limit: Duration, due: datetime, why: str
) -> None:
    assert dl.add(start, limit) == due, why


def test_a_published_2027_swapped_working_day_is_configuration(city: City) -> None:
    """When the State Council publishes 2027's 调休, calendar.yaml's extra_workdays carries it."""
    swapped = city.calendar.model_copy(update={"extra_workdays": (dt.date(2027, 2, 20),)})
    with_swap = Deadlines(WorkingCalendar.from_config(swapped), swapped)
    without = Deadlines(WorkingCalendar.from_config(city.calendar), city.calendar)
    start = bj(2027, 2, 19, 17)
    assert with_swap.add(start, wh(2)) == bj(2027, 2, 20, 10)
    assert without.add(start, wh(2)) == bj(2027, 2, 22, 10)


# -- handling deadlines: category standard and the community rules (seed 003) -------------
MON = bj(2026, 11, 23, 10)


def test_category_standard_normal_and_urgent(city: City, dl: Deadlines) -> None:
    e0102 = city.categories["E0102"]  # 1 working day, urgent 4 working hours
    assert dl.deadline(MON, e0102, "normal", "bureau", False) == bj(2026, 11, 24, 10)
    assert dl.deadline(MON, e0102, "urgent", "bureau", False) == bj(2026, 11, 23, 15, 30)


def test_community_rules_tighten_a_sub_district_offices_deadline(city: City, dl: Deadlines) -> None:
    e0601 = city.categories["E0601"]  # 3 working days by the category
    # A bureau gets the category's 3 days: Thu 10:00.
    assert dl.deadline(MON, e0601, "normal", "bureau", False) == bj(2026, 11, 26, 10)
    # 街道办 2 days: Wed 10:00; with co-handlers (需其他单位协办) 3 days: Thu 10:00.
    assert dl.deadline(MON, e0601, "normal", "subdistrict-office", False) == bj(2026, 11, 25, 10)
    assert dl.deadline(MON, e0601, "normal", "subdistrict-office", True) == bj(2026, 11, 26, 10)
    # 社区 1 day: Tue 10:00.
    assert dl.deadline(MON, e0601, "normal", "community", False) == bj(2026, 11, 24, 10)
    # A stricter category standard stays: E0504 4 working hours → 15:30.
    e0504 = city.categories["E0504"]
    assert dl.deadline(MON, e0504, "normal", "subdistrict-office", False) == bj(
        2026, 11, 23, 15, 30
    )


def test_community_level_deadlines_are_capped_at_five_working_days(dl: Deadlines) -> None:
    assert dl.cap(MON, "subdistrict-office") == bj(2026, 11, 30, 10)
    assert dl.cap(MON, "community") == bj(2026, 11, 30, 10)
    assert dl.cap(MON, "bureau") is None and dl.cap(MON, "utility") is None
    # Over Golden Week only working days count, the swapped Saturday 10 Oct among them:
    # 6.5 h on 30 Sep, then 8, 9, 10 and 12 Oct (30 h), and the last hour on Tue 13 Oct.
    assert dl.cap(bj(2026, 9, 30, 10), "subdistrict-office") == bj(2026, 10, 13, 10)


# -- sign-in, reminder, ladder ------------------------------------------------------------
def test_sign_in_due_after_the_timeout_and_never_after_the_deadline(dl: Deadlines) -> None:
    assert dl.sign_in_due(MON, bj(2026, 11, 24, 10), False) == bj(2026, 11, 23, 12)
    assert dl.sign_in_due(bj(2026, 11, 23, 17), bj(2026, 11, 25, 10), False) == bj(2026, 11, 24, 10)
    assert dl.sign_in_due(MON, bj(2026, 11, 23, 11), False) == bj(2026, 11, 23, 11)
    # An emergency at night is signed for on the clock: 2 hours, capped by a 1-hour deadline.
    assert dl.sign_in_due(bj(2026, 11, 28, 23), bj(2026, 11, 29, 0), True) == bj(2026, 11, 29, 0)
    assert dl.sign_in_due(bj(2026, 11, 28, 23), bj(2026, 11, 29, 5), True) == bj(2026, 11, 29, 1)


def test_reminder_at_three_quarters_of_the_working_window(dl: Deadlines) -> None:
    # 10:00 → 15:30 is 4 working hours; 3 of them end at 14:30 (lunch skipped).
    assert dl.remind_at(MON, bj(2026, 11, 23, 15, 30), False) == bj(2026, 11, 23, 14, 30)
    # Mon 17:00 → Tue 12:00 holds 4 working hours; 3 end at Tue 11:00, not at 3/4 of the clock.
    assert dl.remind_at(bj(2026, 11, 23, 17), bj(2026, 11, 24, 12), False) == bj(2026, 11, 24, 11)
    # Over Golden Week: Wed 30 Sep 10:00 → Thu 8 Oct 10:00 (7.5 h): 5 h 37.5 min → 17:07:30.
    assert dl.remind_at(bj(2026, 9, 30, 10), bj(2026, 10, 8, 10), False) == bj(
        2026, 9, 30, 17, 7, 30
    )
    # On the clock: 23:00 → 01:00, reminded at 00:30.
    assert dl.remind_at(bj(2026, 11, 28, 23), bj(2026, 11, 29, 1), True) == bj(2026, 11, 29, 0, 30)
    assert dl.remind_at(MON, MON, False) is None


def test_escalation_ladder_after_the_deadline(dl: Deadlines) -> None:
    deadline = bj(2026, 11, 25, 10)  # Wed
    rungs = dl.ladder(deadline, False)
    assert [(r.level, r.to, r.at) for r in rungs] == [
        (1, "dispatcher", bj(2026, 11, 25, 10)),
        # half a working day (3.75 h): 10:00-12:00 and 13:30-15:15
        (2, "grid-head", bj(2026, 11, 25, 15, 15)),
        (3, "subdistrict-leader", bj(2026, 11, 26, 10)),
        (4, "efficiency-office", bj(2026, 11, 30, 10)),  # 3 working days: Thu, Fri, Mon
    ]
    assert [r.level for r in dl.ladder(deadline, False, above=1)] == [2, 3, 4]
    assert dl.ladder(deadline, False, above=4) == []
    # Before Golden Week the ladder waits for working days: Wed 30 Sep → Thu 8 Oct.
    assert dl.ladder(bj(2026, 9, 30, 10), False)[2].at == bj(2026, 10, 8, 10)


def test_emergencies_run_on_the_clock_and_escalate_to_the_configured_rung(
    city: City, dl: Deadlines
) -> None:
    gas = city.categories["E0401"]
    assert runs_on_clock(gas, "normal") and not runs_on_clock(city.categories["E0102"], "normal")
    assert clock_equivalent(wd(1)) == Duration(amount=24, unit="hours")
    deadline = bj(2026, 10, 4, 1)
    assert [r.at for r in dl.ladder(deadline, True)] == [
        deadline,
        deadline + timedelta(hours=12),
        deadline + timedelta(hours=24),
        deadline + timedelta(hours=72),
    ]
    # an emergency goes straight to the sub-district leader, past the grid head
    assert dl.emergency_rung() == (3, "subdistrict-leader")


def test_a_rung_role_not_on_the_ladder_escalates_at_level_one(city: City) -> None:
    cfg = city.calendar.model_copy(update={"emergency_escalation_to": "district-mayor"})
    assert Deadlines(WorkingCalendar.from_config(cfg), cfg).emergency_rung() == (
        1,
        "district-mayor",
    )


def test_the_calendar_knows_its_years(dl: Deadlines) -> None:
    cal = dl.calendar
    assert not cal.is_workday(dt.date(2026, 10, 1)) and cal.is_workday(dt.date(2026, 10, 10))
    assert not cal.is_workday(dt.date(2027, 2, 8)) and cal.is_workday(dt.date(2027, 2, 9))
