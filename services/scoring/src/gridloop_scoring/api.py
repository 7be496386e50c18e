"""REST for 评价考核: measures, rankings, drill-down to the cases behind a number, per-person
flags, CSV exports; publishing on request, rule-set previews over history, and rebuild.

Who is calling: `Authorization: Bearer <jwt>`, or `X-User: <user id>` while `AUTH_MODE=dev`.
Anyone signed in reads the scores of departments and areas (they are published anyway);
per-person numbers are personal (evaluators and admins read everyone's, anyone else their
own), and so are the cases behind a number (evaluators, admins and the unit itself);
evaluators (考评) publish and preview rule changes; admins rebuild. Periods are named by
`period` (day, week, month, quarter, year) and any local `date` inside it (default: today in
the city's time zone).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from gridloop_city.models import RuleSet
from gridloop_contracts.base import Day
from gridloop_runtime import access
from gridloop_runtime.auth import CurrentPrincipal, Principal, require
from gridloop_runtime.commands import Refusal, run_command
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, runtime_of
from pydantic import BaseModel, ConfigDict, Field

from . import bulletin, reports
from . import repository as repo
from .context import Scoring
from .domain import measures as m
from .domain.measures import AreaLevel, SubjectKind
from .domain.periods import Period, PeriodKind, period_of, period_of_date
from .domain.rules import Scored, check_rule_set
from .handlers import Handlers
from .replay import rebuild

router = APIRouter(tags=["scoring"], route_class=JSONRoute)
Evaluator = Annotated[Principal, Depends(require("evaluator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
PeriodQ = Annotated[PeriodKind, Query(description="day, week, month, quarter or year")]
DateQ = Annotated[Day | None, Query(description="a local date inside the period")]
LevelQ = Annotated[AreaLevel | None, Query(description="areas: cell … district")]


def handlers_of(rt: Runtime) -> Handlers:
    handlers: Handlers = rt.state
    return handlers


def scoring_of(request: Request) -> tuple[Runtime, Scoring]:
    rt = runtime_of(request)
    return rt, handlers_of(rt).ctx


def the_period(rt: Runtime, s: Scoring, kind: PeriodKind, day: dt.date | None) -> Period:
    if day is None:
        return period_of(kind, rt.clock.now(), s.tz)
    return period_of_date(kind, day, s.tz)


def own_person(who: Principal, kind: SubjectKind, subject: str | None) -> str | None:
    """The person whose numbers a caller may read: per-person numbers are personal records,
    evaluators (and admins) read everyone's, anyone else only their own."""
    if kind != "person" or who.has("evaluator"):
        return subject
    if subject not in (None, who.user_id):
        raise access.forbidden(
            "per-person numbers are personal: only evaluators read another person's",
            field="subject",
        )
    return who.user_id


def may_drill_down(who: Principal, kind: SubjectKind, subject: str) -> bool:
    """Who reads the cases behind a number: evaluators and admins, and the unit itself — a
    department its own, a person their own, an area head (grid head) the areas within their
    territory."""
    if who.has("evaluator"):
        return True
    if kind == "department":
        return "department" in who.roles and who.dept == subject
    if kind == "person":
        return who.user_id == subject
    if kind in ("category", "channel"):
        return False
    return "grid-head" in who.roles and who.covers(subject)


def period_view(p: Period) -> dict[str, Any]:
    return {"kind": p.kind, "start": p.start, "end": p.end}


def scored_view(s: Scoring, rs: RuleSet, level: AreaLevel | None, r: Scored) -> dict[str, Any]:
    return {
        "rank": r.rank,
        "subject_code": r.subject_code,
        "subject_name": s.subject_name(rs.subject, r.subject_code, level),
        "score": r.score,
        "grade": r.grade,
        "terms": [
            {"measure": t.measure, "kind": t.kind, "value": t.value, "points": round(t.points, 4)}
            for t in r.terms
        ],
        "measures": dict(r.measures),
    }


def csv_response(header: Sequence[str], rows: Iterable[Sequence[Any]], name: str) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    # A BOM so that spreadsheet programs read the Chinese names as UTF-8.
    return Response(
        "\ufeff" + buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- catalogue ----------------------------------------------------------------------------
@router.get("/catalogue")
async def catalogue(_: CurrentPrincipal) -> dict[str, Any]:
    """Every measure: its label (Chinese) and `label_en`, and for counts the timestamp that
    decides its period."""
    return {
        kind: {
            "counted": [
                {
                    "name": c.name,
                    "label": c.label,
                    "label_en": m.ENGLISH.get(c.name),
                    "decided_by": c.decided_by,
                }
                for c in m.COUNTED[kind]
            ],
            "rates": [
                {
                    "name": r.name,
                    "label": r.label,
                    "label_en": m.ENGLISH.get(r.name),
                    "numerator": list(r.numerator),
                    "denominator": r.denominator,
                    "complement": r.complement,
                }
                for r in m.RATES[kind]
            ],
            "distributions": [
                {
                    "name": d.name,
                    "label": d.label,
                    "label_en": m.ENGLISH.get(d.name),
                    "decided_by": d.decided_by,
                    "statistics": list(d.names()),
                }
                for d in m.DISTRIBUTIONS[kind]
            ],
        }
        for kind in m.SUBJECT_KINDS
    }


@router.get("/rule-sets")
async def rule_sets(request: Request, _: CurrentPrincipal) -> dict[str, Any]:
    """The configured rule sets (scoring.yaml), grades and per-person limits in force, and
    since when which rules were (`history`: a closed period ranks with those of its end)."""
    rt, s = scoring_of(request)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        history = await repo.rule_history(conn)
    return {**s.config.model_dump(mode="json"), "version": s.version, "history": history}


# -- measures -----------------------------------------------------------------------------
async def _measures(
    request: Request,
    subject_kind: SubjectKind,
    period: PeriodKind,
    date: dt.date | None,
    level: AreaLevel | None,
    subject: str | None,
) -> tuple[Period, AreaLevel | None, list[reports.MeasureRow]]:
    rt, s = scoring_of(request)
    p = the_period(rt, s, period, date)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await reports.measures(conn, s, subject_kind, p, level=level, subject=subject)
    return p, reports.level_for(subject_kind, level), rows


@router.get("/measures")
async def get_measures(
    request: Request,
    who: CurrentPrincipal,
    subject_kind: SubjectKind,
    period: PeriodQ = "month",
    date: DateQ = None,
    level: LevelQ = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """Counts and rates of every subject of a kind with any activity in the period (of
    people: only the caller's own, unless an evaluator asks)."""
    subject = own_person(who, subject_kind, subject)
    p, level_, rows = await _measures(request, subject_kind, period, date, level, subject)
    return {
        "period": period_view(p),
        "subject_kind": subject_kind,
        "level": level_,
        "rows": [
            {"subject_code": r.subject_code, "subject_name": r.subject_name, "measures": r.measures}
            for r in rows
        ],
    }


@router.get("/measures.csv")
async def get_measures_csv(
    request: Request,
    who: CurrentPrincipal,
    subject_kind: SubjectKind,
    period: PeriodQ = "month",
    date: DateQ = None,
    level: LevelQ = None,
    subject: str | None = None,
) -> Response:
    subject = own_person(who, subject_kind, subject)
    p, _level, rows = await _measures(request, subject_kind, period, date, level, subject)
    names = list(m.output_names(subject_kind))
    return csv_response(
        ["period_start", "subject_code", "subject_name", *names],
        (
            [p.start.date().isoformat(), r.subject_code, r.subject_name]
            + [r.measures.get(n) for n in names]
            for r in rows
        ),
        f"measures-{subject_kind}-{p.key.replace(':', '-')}.csv",
    )


@router.get("/steps")
async def get_steps(
    request: Request,
    _: CurrentPrincipal,
    period: PeriodQ = "day",
    date: DateQ = None,
) -> dict[str, Any]:
    """The loop's time per step over the district (受理, 派遣, 签收, 处置, 核查): how many,
    mean, median and 90th percentile in hours, for the period (default today)."""
    rt, s = scoring_of(request)
    p = the_period(rt, s, period, date)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await reports.steps(conn, s, p)
    return {"period": period_view(p), "steps": rows}


# -- rankings ----------------------------------------------------------------------------
async def _ranking(
    request: Request,
    who: Principal,
    code: str,
    period: PeriodKind,
    date: dt.date | None,
    level: AreaLevel | None,
) -> tuple[Period, AreaLevel | None, list[Scored], Scoring, RuleSet]:
    rt, current = scoring_of(request)
    p = the_period(rt, current, period, date)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        # a closed period ranks with the rules in force at its end
        s = await reports.in_force(conn, current, p, rt.clock.now())
        rs = reports.rule_set_in(s, current, code)
        level_, ranked = await reports.ranking(conn, s, rs, p, level)
    mine = own_person(who, rs.subject, None)
    if mine is not None:  # a ranking of people: the caller's own row only
        ranked = [r for r in ranked if r.subject_code == mine]
    return p, level_, ranked, s, rs


@router.get("/rankings")
async def get_rankings(
    request: Request,
    who: CurrentPrincipal,
    rule_set: str,
    period: PeriodQ = "month",
    date: DateQ = None,
    level: LevelQ = None,
) -> dict[str, Any]:
    """考核排名: composite scores of a rule set, ranked, with each rule's points (a closed
    period: with the rules in force at its end; `POST /rankings/preview` recomputes it with
    any rule set)."""
    p, level_, ranked, s, rs = await _ranking(request, who, rule_set, period, date, level)
    return {
        "period": period_view(p),
        "rule_set": rs.code,
        "subject_kind": rs.subject,
        "level": level_,
        "rows": [scored_view(s, rs, level_, r) for r in ranked],
    }


@router.get("/rankings.csv")
async def get_rankings_csv(
    request: Request,
    who: CurrentPrincipal,
    rule_set: str,
    period: PeriodQ = "month",
    date: DateQ = None,
    level: LevelQ = None,
) -> Response:
    p, level_, ranked, s, rs = await _ranking(request, who, rule_set, period, date, level)
    names = list(m.output_names(rs.subject))
    return csv_response(
        ["period_start", "rank", "subject_code", "subject_name", "score", "grade", *names],
        (
            [
                p.start.date().isoformat(),
                r.rank,
                r.subject_code,
                s.subject_name(rs.subject, r.subject_code, level_),
                r.score,
                r.grade,
            ]
            + [r.measures.get(n) for n in names]
            for r in ranked
        ),
        f"ranking-{rs.code}-{p.key.replace(':', '-')}.csv",
    )


class Preview(BaseModel):
    """A rule set to try on history without changing the configuration."""

    model_config = ConfigDict(extra="forbid")

    rule_set: RuleSet
    period: PeriodKind = "month"
    date: Day | None = None
    level: AreaLevel | None = None


@router.post("/rankings/preview")
async def preview_ranking(request: Request, body: Preview, _: Evaluator) -> dict[str, Any]:
    """A changed rule set applied to any past period: scores are computed from the measures,
    so a rule change needs no replay."""
    problems = check_rule_set(body.rule_set)
    if problems:
        field, _sep, reason = problems[0].partition(": ")
        raise Refusal(reason, field=f"rule_set.{field}", code="unknown-measure", status=422)
    rt, s = scoring_of(request)
    p = the_period(rt, s, body.period, body.date)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        level_, ranked = await reports.ranking(conn, s, body.rule_set, p, body.level)
    rs = body.rule_set
    return {
        "period": period_view(p),
        "rule_set": rs.code,
        "subject_kind": rs.subject,
        "level": level_,
        "rows": [scored_view(s, rs, level_, r) for r in ranked],
    }


# -- drill-down --------------------------------------------------------------------------
@router.get("/drilldown")
async def get_drilldown(
    request: Request,
    who: CurrentPrincipal,
    subject_kind: SubjectKind,
    subject: str,
    measure: str,
    period: PeriodQ = "month",
    date: DateQ = None,
    level: LevelQ = None,
) -> dict[str, Any]:
    """The cases behind one number (a rate: the cases of its numerator and denominator), for
    evaluators, admins and the unit itself: a department its own numbers, a person their own,
    a grid head the areas within their territory."""
    if not may_drill_down(who, subject_kind, subject):
        raise access.forbidden(
            f"the cases behind {subject_kind} {subject}'s numbers are for evaluators and the "
            f"{subject_kind} itself",
            field="subject",
        )
    rt, s = scoring_of(request)
    p = the_period(rt, s, period, date)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        out = await reports.drilldown(conn, s, subject_kind, subject, measure, p, level)
    return {"period": period_view(p), **out}


@router.get("/drilldown.csv")
async def get_drilldown_csv(
    request: Request,
    who: CurrentPrincipal,
    subject_kind: SubjectKind,
    subject: str,
    measure: str,
    period: PeriodQ = "month",
    date: DateQ = None,
    level: LevelQ = None,
) -> Response:
    out = await get_drilldown(request, who, subject_kind, subject, measure, period, date, level)
    rows = [
        [part["measure"], i["case_id"], i["at"].isoformat(), i["value"]]
        for part in out["parts"]
        for i in part["items"]
    ]
    return csv_response(
        ["measure", "case_id", "at", "value"], rows, f"cases-{subject}-{measure}.csv"
    )


# -- 通报 ---------------------------------------------------------------------------------
async def _bulletin(
    request: Request, period: PeriodKind, date: dt.date | None
) -> bulletin.Bulletin:
    rt, s = scoring_of(request)
    p = the_period(rt, s, period, date)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        out = await reports.bulletin(conn, await reports.in_force(conn, s, p, rt.clock.now()), p)
    return replace(out, generated_at=rt.clock.now().astimezone(s.tz))


@router.get("/bulletin")
async def get_bulletin(
    request: Request, _: Evaluator, period: PeriodQ = "month", date: DateQ = None
) -> dict[str, Any]:
    """通报: the period's rankings of departments and sub-districts with their measures, and
    the cases with the most marks against a department (evaluators)."""
    return bulletin.as_dict(await _bulletin(request, period, date))


@router.get("/bulletin.csv")
async def get_bulletin_csv(
    request: Request, _: Evaluator, period: PeriodQ = "month", date: DateQ = None
) -> Response:
    b = await _bulletin(request, period, date)
    name = f"bulletin-{b.period_kind}-{b.start.date().isoformat()}.csv"
    return Response(
        "\ufeff" + bulletin.to_csv(b),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/bulletin.html")
async def get_bulletin_html(
    request: Request, _: Evaluator, period: PeriodQ = "month", date: DateQ = None
) -> Response:
    """The bulletin as a printable page (A4 landscape; the browser prints it to PDF)."""
    b = await _bulletin(request, period, date)
    return Response(bulletin.to_html(b), media_type="text/html; charset=utf-8")


# -- published bulletins (通报发布) --------------------------------------------------------
@router.get("/bulletins")
async def list_bulletins(
    request: Request,
    _: Evaluator,
    period: PeriodKind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The bulletins generated at the ends of months and quarters (newest first), each with
    the links to download it (evaluators, admins)."""
    rt, _s = scoring_of(request)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await repo.bulletins(conn, period, limit)
    return {
        "rows": [
            {**r, "links": _links(r["period_kind"], r["period_start"].astimezone(_s.tz).date())}
            for r in rows
        ]
    }


def _links(kind: str, start: dt.date) -> dict[str, str]:
    base = f"/bulletins/{kind}/{start.isoformat()}"
    return {"html": f"{base}.html", "csv": f"{base}.csv", "data_json": base}


async def _stored(request: Request, kind: PeriodKind, start: dt.date, what: str) -> Any:
    rt, s = scoring_of(request)
    p = period_of_date(kind, start, s.tz)
    found = None
    if p.start.date() == start:
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            found = await repo.bulletin_document(conn, kind, p.start, what)
    if found is None:
        raise Refusal(
            f"no bulletin of the {kind} starting {start.isoformat()} has been published",
            field="start",
            code="not-found",
            status=404,
        )
    return found


@router.get("/bulletins/{kind}/{start}.html")
async def published_bulletin_html(
    request: Request, _: Evaluator, kind: PeriodKind, start: Day
) -> Response:
    """A published bulletin as its printable page, as it was generated at the period's end."""
    page = await _stored(request, kind, start, "html")
    return Response(page, media_type="text/html; charset=utf-8")


@router.get("/bulletins/{kind}/{start}.csv")
async def published_bulletin_csv(
    request: Request, _: Evaluator, kind: PeriodKind, start: Day
) -> Response:
    text = await _stored(request, kind, start, "csv")
    name = f"bulletin-{kind}-{start.isoformat()}.csv"
    return Response(
        "\ufeff" + text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/bulletins/{kind}/{start}")
async def published_bulletin(
    request: Request, _: Evaluator, kind: PeriodKind, start: Day
) -> dict[str, Any]:
    body: dict[str, Any] = await _stored(request, kind, start, "body")
    return body


# -- people ------------------------------------------------------------------------------
@router.get("/people/flags")
async def people_flags(
    request: Request,
    who: CurrentPrincipal,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    flagged_only: bool = False,
) -> dict[str, Any]:
    """Seed 003's per-person counters of a year (missed first responses, dissatisfied ratings,
    half-year satisfaction) against the limits in scoring.yaml. Personal records: evaluators
    (and admins) see everyone's, anyone else only their own row."""
    rt, s = scoring_of(request)
    everyone = who.has("evaluator")
    y = year or rt.clock.now().astimezone(s.tz).year
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await reports.people_year(conn, s, y)
    return {
        "year": y,
        "limits": s.config.people.model_dump(),
        "rows": [
            {
                "person": r.person,
                "name": s.subject_name("person", r.person, None),
                "missed_first_responses": r.missed_first_responses,
                "dissatisfied": r.dissatisfied,
                "satisfaction_h1": r.satisfaction[0],
                "satisfaction_h2": r.satisfaction[1],
                "flags": list(r.flags),
            }
            for r in rows
            if (r.flags or not flagged_only) and (everyone or r.person == who.user_id)
        ],
    }


# -- publishing and rebuild ----------------------------------------------------------------
class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: PeriodKind
    date: Day | None = None
    command_id: str | None = Field(
        None, min_length=1, max_length=128, description="resend-safe: same id, same answer"
    )


@router.get("/publications")
async def list_publications(
    request: Request,
    _: CurrentPrincipal,
    period: PeriodKind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """What was published (newest period first), with the published rows."""
    rt, _s = scoring_of(request)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await repo.publications(conn, period, limit)
    return {"rows": rows}


@router.post("/publish")
async def publish_now(request: Request, body: PublishRequest, _: Evaluator) -> dict[str, Any]:
    """Publish (again) a period's rankings now, e.g. after late events changed it."""
    rt, s = scoring_of(request)
    p = the_period(rt, s, body.period, body.date)
    assert rt.uow is not None

    async def publish(work: Work) -> dict[str, Any]:
        published = await handlers_of(rt).publish(work, p)
        return {"period": {"kind": p.kind, "start": p.start.isoformat()}, "published": published}

    return await run_command(rt.uow, body.command_id, "publish", publish)


@router.post("/admin/rebuild", tags=["operations"])
async def rebuild_projection(request: Request, _: Admin, apply: bool = False) -> dict[str, Any]:
    """重建: replay the CASES stream into a fresh projection and compare it with the live one;
    `apply=true` replaces the live projection with it."""
    rt, s = scoring_of(request)
    assert rt.pool is not None and rt.js is not None
    report = await rebuild(rt.pool, rt.js, s.fold, apply=apply, batch=s.settings.replay_batch)
    return report.as_dict()
