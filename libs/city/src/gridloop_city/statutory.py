"""The statutory holidays (法定节假日) of a year, for years the official calendar does not know.

By 全国年节及纪念日放假办法 as revised in 2024 (in force from 2025), every citizen has 13 days:

- 元旦 1 January; 劳动节 1–2 May; 国庆节 1–3 October (fixed dates);
- 春节 the lunar New Year's Eve and the 1st–3rd of the first lunar month; 端午节 the 5th of the
  5th lunar month; 中秋节 the 15th of the 8th lunar month (lunar dates, from `lunardate`,
  which knows 1900–2099);
- 清明节 the day of the 清明 solar term (4 or 5 April: the 21st-century formula, checked
  against chinese_calendar's years in the tests).

What this cannot know is the State Council's yearly arrangement: the bridge days around a
holiday and the weekends swapped to working days (调休) are published each November for the
next year. A deadline computed from these days alone is therefore *provisional*
(`WorkingCalendar.is_official` is False for such days).
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from lunardate import LunarDate

FIXED: tuple[tuple[int, int, str], ...] = (
    (1, 1, "元旦"),
    (5, 1, "劳动节"),
    (5, 2, "劳动节"),
    (10, 1, "国庆节"),
    (10, 2, "国庆节"),
    (10, 3, "国庆节"),
)

# (lunar month, lunar day, name): the days after the lunar New Year's Eve
LUNAR: tuple[tuple[int, int, str], ...] = (
    (1, 1, "春节"),
    (1, 2, "春节"),
    (1, 3, "春节"),
    (5, 5, "端午节"),
    (8, 15, "中秋节"),
)


def qingming(year: int) -> dt.date:
    """The day of the 清明 solar term: [Y × 0.2422 + 4.81] − [Y / 4] April (Y = year − 2000),
    valid for 2001–2099."""
    y = year % 100
    return dt.date(year, 4, int(y * 0.2422 + 4.81) - y // 4)


@cache
def statutory_holidays(year: int) -> dict[dt.date, str]:
    """The statutory holidays of `year` (2025 or later, the 2024 rules) by name; the lunar and
    solar-term ones only where they can be computed (years 2001–2099)."""
    days = {dt.date(year, m, d): name for m, d, name in FIXED}
    if 2001 <= year <= 2099:
        days[qingming(year)] = "清明节"
        for month, day, name in LUNAR:
            days[LunarDate(year, month, day).to_solar_date()] = name
        # 除夕: the day before the first of the first lunar month
        days[LunarDate(year, 1, 1).to_solar_date() - dt.timedelta(days=1)] = "春节"
    return days


def lunar_holidays_known(year: int) -> bool:
    """Whether `statutory_holidays(year)` includes the lunar and solar-term holidays."""
    return 2001 <= year <= 2099


def is_statutory_workday(day: dt.date) -> bool:
    """Monday–Friday and not a statutory holiday (the rule for a year without an arrangement)."""
    return day.weekday() < 5 and day not in statutory_holidays(day.year)
