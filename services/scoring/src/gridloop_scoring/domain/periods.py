"""考核周期: day, week, month, quarter and year in the city's time zone (Asia/Shanghai)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, get_args

PeriodKind = Literal["day", "week", "month", "quarter", "year"]
PERIOD_KINDS: tuple[PeriodKind, ...] = get_args(PeriodKind)


@dataclass(frozen=True)
class Period:
    """A half-open interval [start, end) of one kind, both instants in the city's zone."""

    kind: PeriodKind
    start: dt.datetime
    end: dt.datetime

    @property
    def key(self) -> str:
        """A stable name, e.g. `month:2026-11-01` (the local start date)."""
        return f"{self.kind}:{self.start.date().isoformat()}"

    def contains(self, instant: dt.datetime) -> bool:
        return self.start <= instant < self.end

    def next(self) -> Period:
        assert self.start.tzinfo is not None
        return period_of_date(self.kind, self.end.date(), self.start.tzinfo)


def _first_day(kind: PeriodKind, day: dt.date) -> dt.date:
    if kind == "day":
        return day
    if kind == "week":  # ISO weeks start on Monday, as Chinese offices count them
        return day - dt.timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return dt.date(day.year, 1, 1)


def _after(kind: PeriodKind, first: dt.date) -> dt.date:
    if kind == "day":
        return first + dt.timedelta(days=1)
    if kind == "week":
        return first + dt.timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[kind]
    m = first.month - 1 + months
    return dt.date(first.year + m // 12, m % 12 + 1, 1)


def _midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz)


def period_of_date(kind: PeriodKind, day: dt.date, tz: dt.tzinfo) -> Period:
    """The period of `kind` that contains the local calendar day `day`."""
    if kind not in PERIOD_KINDS:
        raise ValueError(f"period must be one of {', '.join(PERIOD_KINDS)}, not {kind!r}")
    first = _first_day(kind, day)
    return Period(kind, _midnight(first, tz), _midnight(_after(kind, first), tz))


def period_of(kind: PeriodKind, instant: dt.datetime, tz: dt.tzinfo) -> Period:
    """The period of `kind` that contains `instant` (aware), judged on the local calendar."""
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return period_of_date(kind, instant.astimezone(tz).date(), tz)


def half_years(year: int, tz: dt.tzinfo) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
    """The two half-years of seed 003's satisfaction survey (上半年, 下半年)."""
    jan, jul, nxt = (
        _midnight(dt.date(y, m, 1), tz) for y, m in ((year, 1), (year, 7), (year + 1, 1))
    )
    return ((jan, jul), (jul, nxt))


#: The periods a bulletin (通报) is published for by default: monthly and quarterly.
BULLETIN_KINDS: tuple[PeriodKind, ...] = ("month", "quarter")


@dataclass(frozen=True)
class PeriodEnd:
    """What a period's end calls for: its scores published, its bulletin generated."""

    period: Period
    scores: bool
    bulletin: bool


def at_period_end(
    closed: Period,
    score_kinds: tuple[PeriodKind, ...],
    bulletin_kinds: tuple[PeriodKind, ...] = BULLETIN_KINDS,
) -> PeriodEnd:
    """The duties of a period that has just closed (its timer fired): scores for the kinds
    published (`SCORING_PUBLISH_PERIODS`), a bulletin for the bulletin's kinds
    (`SCORING_BULLETIN_PERIODS`). Both are of the closed period, never the one now open."""
    return PeriodEnd(closed, closed.kind in score_kinds, closed.kind in bulletin_kinds)


def timed_kinds(
    score_kinds: tuple[PeriodKind, ...], bulletin_kinds: tuple[PeriodKind, ...]
) -> tuple[PeriodKind, ...]:
    """The kinds whose ends need a timer: those with scores or a bulletin to publish."""
    return tuple(k for k in PERIOD_KINDS if k in score_kinds or k in bulletin_kinds)
