"""读模型: the measures, rankings, drill-downs and per-person flags of a period, composed from
the items (repository) and the rules (domain). Used by the REST API and by publishing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gridloop_city.models import RuleSet
from gridloop_runtime.commands import Refusal
from gridloop_runtime.db import Conn

from . import repository as repo
from .context import Scoring
from .domain import measures as m
from .domain.measures import AreaLevel, SubjectKind
from .domain.people import PersonYear, person_year
from .domain.periods import Period, half_years
from .domain.rules import Scored, rank


@dataclass(frozen=True)
class MeasureRow:
    subject_code: str
    subject_name: str | None
    measures: dict[str, float | None]


def level_for(kind: SubjectKind, level: AreaLevel | None) -> AreaLevel | None:
    """Areas are read at a level (sub-district unless asked); other subjects have none."""
    if kind != "area":
        return None
    return level or "subdistrict"


async def measures(
    conn: Conn,
    s: Scoring,
    kind: SubjectKind,
    period: Period,
    *,
    level: AreaLevel | None = None,
    subject: str | None = None,
) -> list[MeasureRow]:
    level = level_for(kind, level)
    counts = await repo.totals(
        conn, kind, period.start, period.end, level=level, district=s.district, subject=subject
    )
    return [
        MeasureRow(code, s.subject_name(kind, code, level), m.with_rates(kind, c))
        for code, c in sorted(counts.items())
    ]


async def ranking(
    conn: Conn, s: Scoring, rule_set: RuleSet, period: Period, level: AreaLevel | None = None
) -> tuple[AreaLevel | None, list[Scored]]:
    """Every subject with any count in the period, scored by `rule_set` and ranked."""
    kind: SubjectKind = rule_set.subject
    level = level_for(kind, level)
    counts = await repo.totals(
        conn, kind, period.start, period.end, level=level, district=s.district
    )
    subjects = {code: m.with_rates(kind, c) for code, c in counts.items()}
    return level, rank(rule_set, s.config, subjects)


def measures_behind(kind: SubjectKind, measure: str) -> tuple[str, ...]:
    """The counted measures a number is made of: itself, or a rate's parts."""
    if measure in m.counted_names(kind):
        return (measure,)
    r = m.rate(kind, measure)
    if r is None:
        raise Refusal(
            f"{measure!r} is not a {kind} measure (see GET /catalogue)",
            field="measure",
            code="unknown-measure",
            status=422,
        )
    return (*r.numerator, r.denominator)


async def drilldown(
    conn: Conn,
    s: Scoring,
    kind: SubjectKind,
    subject: str,
    measure: str,
    period: Period,
    level: AreaLevel | None = None,
) -> dict[str, Any]:
    """The cases behind one number: every item counted, grouped by counted measure."""
    parts = measures_behind(kind, measure)
    level = level_for(kind, level)
    rows = await repo.drilldown(
        conn, kind, subject, parts, period.start, period.end, level=level, district=s.district
    )
    by_measure: dict[str, list[dict[str, Any]]] = {p: [] for p in parts}
    for r in rows:
        by_measure[r["measure"]].append(
            {"case_id": r["case_id"], "at": r["at"], "value": r["value"]}
        )
    counts = {p: sum(x["value"] for x in xs) for p, xs in by_measure.items()}
    value = counts[measure] if measure in counts else m.with_rates(kind, counts)[measure]
    return {
        "subject_kind": kind,
        "subject_code": subject,
        "subject_name": s.subject_name(kind, subject, level),
        "level": level,
        "measure": measure,
        "value": value,
        "parts": [
            {
                "measure": p,
                "count": counts[p],
                "case_ids": sorted({x["case_id"] for x in by_measure[p]}),
                "items": by_measure[p],
            }
            for p in parts
        ],
    }


async def people_year(conn: Conn, s: Scoring, year: int) -> list[PersonYear]:
    """Seed 003's counters for every person with any in the year, flags included."""
    start = dt.datetime(year, 1, 1, tzinfo=s.tz)
    end = dt.datetime(year + 1, 1, 1, tzinfo=s.tz)
    wanted = ("missed_first_responses", "dissatisfied", "rated", "very_satisfied", "satisfied")
    whole = await repo.totals(conn, "person", start, end, measures=wanted)
    halves = [
        await repo.totals(conn, "person", a, b, measures=wanted) for a, b in half_years(year, s.tz)
    ]
    limits = s.config.people
    return [
        person_year(p, whole[p], (halves[0].get(p, {}), halves[1].get(p, {})), limits)
        for p in sorted(whole)
    ]
