"""读模型: the measures, rankings, drill-downs and per-person flags of a period, composed from
the items (repository) and the rules (domain). Used by the REST API and by publishing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gridloop_city.models import RuleSet, ScoringConfig
from gridloop_runtime.commands import Refusal
from gridloop_runtime.db import Conn

from . import repository as repo
from .bulletin import MARKS, Bulletin, Ranked, WorstCase
from .context import Scoring, rules_digest
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


_PARSED: dict[str, ScoringConfig] = {}  # rules read back from rule_versions, by digest


async def in_force(conn: Conn, s: Scoring, period: Period, now: dt.datetime) -> Scoring:
    """The state ranking `period` with the rules in force at its end: a period closed before
    a new version was taken is not re-scored by it (open periods: the rules in force now)."""
    if period.end > now:
        return s
    found = await repo.rules_in_force(conn, period.end)
    if found is None:
        return s
    digest, rules = found
    if digest == rules_digest(s.config):
        return s
    config = _PARSED.get(digest)
    if config is None:
        config = _PARSED[digest] = ScoringConfig.model_validate(rules)
    return s.with_rules(config)


def rule_set_in(s: Scoring, current: Scoring, code: str) -> RuleSet:
    """The rule set `code` of the rules `s` ranks with; one only a later version has is taken
    from the current rules; 404 when neither has it."""
    rs = s.rule_set(code) or current.rule_set(code)
    if rs is None:
        known = ", ".join(r.code for r in current.config.rule_sets)
        raise Refusal(
            f"no rule set {code!r} (known: {known})",
            field="rule_set",
            code="not-found",
            status=404,
        )
    return rs


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
    vals = await _values(conn, s, kind, period, level, subject)
    return [
        MeasureRow(code, s.subject_name(kind, code, level), m.with_rates(kind, c, vals.get(code)))
        for code, c in sorted(counts.items())
    ]


async def _values(
    conn: Conn,
    s: Scoring,
    kind: SubjectKind,
    period: Period,
    level: AreaLevel | None,
    subject: str | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Each subject's distribution values of the period (durations), for their statistics."""
    names = [d.name for d in m.DISTRIBUTIONS[kind]]
    return await repo.values(
        conn,
        kind,
        period.start,
        period.end,
        names,
        level=level,
        district=s.district,
        subject=subject,
    )


async def steps(conn: Conn, s: Scoring, period: Period) -> list[dict[str, Any]]:
    """The loop's time per step over the whole district in the period (count, mean, median,
    90th percentile, hours): each step's distribution over every subject of its kind."""
    out = []
    for step, kind, name in m.STEPS:
        pooled = await repo.values(
            conn, kind, period.start, period.end, [name], district=s.district, pooled=True
        )
        d = m.distribution_of(kind, name)
        assert d is not None
        stats = d.of(pooled.get("", {}).get(name, ()))
        out.append(
            {
                "step": step,
                "measure": name,
                "label": d.label,
                **{k.removeprefix(f"{name}_"): v for k, v in stats.items()},
            }
        )
    return out


async def ranking(
    conn: Conn, s: Scoring, rule_set: RuleSet, period: Period, level: AreaLevel | None = None
) -> tuple[AreaLevel | None, list[Scored]]:
    """Every subject with any count in the period, scored by `rule_set` and ranked."""
    kind: SubjectKind = rule_set.subject
    level = level_for(kind, level)
    counts = await repo.totals(
        conn, kind, period.start, period.end, level=level, district=s.district
    )
    vals = await _values(conn, s, kind, period, level)
    codes: Iterable[str] = counts
    if kind == "person" and rule_set.roles:
        # 岗位考核: everyone holding the rule set's roles, active in the period or not
        wanted = set(rule_set.roles)
        codes = [u.id for u in s.city.users.values() if wanted & set(u.roles)]
    subjects = {code: m.with_rates(kind, counts.get(code, {}), vals.get(code)) for code in codes}
    return level, rank(rule_set, s.config, subjects)


def measures_behind(kind: SubjectKind, measure: str) -> tuple[str, ...]:
    """The counted measures a number is made of: itself, or a rate's parts."""
    if measure in m.counted_names(kind):
        return (measure,)
    d = m.distribution_of(kind, measure)
    if d is not None:
        return (d.name,)
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
    vals = {p: [x["value"] for x in xs] for p, xs in by_measure.items()}
    if measure in counts and m.distribution_of(kind, measure) is None:
        value = counts[measure]
    else:  # a rate, or a distribution's statistic (its own name: how many occasions)
        derived = m.with_rates(kind, counts, vals)
        value = derived.get(measure, derived.get(f"{measure}_count"))
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


async def bulletin(conn: Conn, s: Scoring, period: Period, worst: int = 10) -> Bulletin:
    """通报 of a period: the first department rule set's ranking, the first area rule set's
    ranking of the sub-districts, and the cases with the most marks against a department."""
    departments: list[Ranked] = []
    subdistricts: list[Ranked] = []
    tables: tuple[tuple[SubjectKind, list[Ranked], AreaLevel | None], ...] = (
        ("department", departments, None),
        ("area", subdistricts, "subdistrict"),
    )
    for kind, out, level in tables:
        rule_set = next((r for r in s.config.rule_sets if r.subject == kind), None)
        if rule_set is None:
            continue
        level_, ranked = await ranking(conn, s, rule_set, period, level)
        out.extend(
            Ranked(
                r.rank,
                r.subject_code,
                s.subject_name(rule_set.subject, r.subject_code, level_) or r.subject_code,
                r.score,
                r.grade,
                dict(r.measures),
            )
            for r in ranked
        )
    rows = await repo.worst_cases(conn, period.start, period.end, list(MARKS), worst)
    cases = [
        WorstCase(
            r["case_id"],
            r["dept"],
            s.subject_name("department", r["dept"], None) or r["dept"],
            {k: int(v) for k, v in sorted(r["marks"].items(), key=lambda kv: -int(kv[1]))},
        )
        for r in rows
    ]
    return Bulletin(
        district=s.city.district.name,
        period_kind=period.kind,
        start=period.start,
        end=period.end,
        generated_at=dt.datetime.now(s.tz),
        departments=departments,
        subdistricts=subdistricts,
        worst=cases,
    )
