"""Case numbers (案卷编号): `<district>-<YYYYMMDD>-<NNNNNN>`, e.g. `110101-20261123-000123`.

The date is the day the case was opened in the city's time zone; the number counts that day's
cases from 1 (a per-day sequence kept in PostgreSQL). Six digits hold 999,999 cases a day;
beyond that the number simply grows wider and stays unique."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

CASE_ID = re.compile(r"^\d{6}-\d{8}-\d{6,}$")


def local_day(at: datetime, timezone: str) -> date:
    """The calendar day of `at` in the city's time zone (a case opened at 23:30 UTC on the
    22nd is a case of the 23rd in Beijing)."""
    return at.astimezone(ZoneInfo(timezone)).date()


def format_case_id(district_code: str, day: date, number: int) -> str:
    if number < 1:
        raise ValueError("case numbers start at 1")
    return f"{district_code}-{day:%Y%m%d}-{number:06d}"


def is_case_id(text: str) -> bool:
    return bool(CASE_ID.fullmatch(text))
