"""REST for people: the patrol app and hotline operators file reports; operators work the
acceptance queue (待立案); everybody with a role searches the case file within their territory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from gridloop_contracts import Actor, Attachment, Location
from gridloop_contracts.base import Instant
from gridloop_contracts.common import LevelIn, NonBlank, Urgency
from gridloop_contracts.inbound import Reporter, SentAt
from gridloop_runtime import access, evidence
from gridloop_runtime.auth import CurrentPrincipal, Principal, require
from gridloop_runtime.casework import run_case_command
from gridloop_runtime.commands import CommandBody, Refusal, run_command
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, runtime_of
from gridloop_runtime.step import Step
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import repository as repo
from .casework import Outcome, keep_taken, take_report
from .context import Intake
from .domain import callbacks, casefile, duplicates, similar
from .domain.case import CaseFile, CaseRow
from .domain.inbound import IncomingReport
from .domain.problems import Refused
from .domain.rules import Operator
from .store import CASEFILE, RATINGS, CaseFileStore

router = APIRouter(tags=["intake"], route_class=JSONRoute)

OPERATORS = ("operator", "shift-leader")
# An attachment's id as POST /attachments answers it.
AttachmentIdIn = Annotated[str, Field(pattern=r"^a[0-9a-f]{24}$")]
READERS = ("operator", "shift-leader", "dispatcher", "evaluator", "grid-head", "supervisor")


def intake_of(rt: Runtime) -> Intake:
    """The service's state is (Intake, Handlers) (bootstrap.py); routes need the first."""
    intake: Intake = rt.state[0]
    return intake


def refusal(refused: Refused) -> Refusal:
    p = refused.problems[0]
    extra: dict[str, Any] = {}
    if len(refused.problems) > 1:
        extra["more"] = [
            {"code": q.code, "reason": q.reason, "field": q.field} for q in refused.problems[1:]
        ]
    return Refusal(p.reason, field=p.field, code=p.code, status=p.status, extra=extra)


async def case_command(
    rt: Runtime,
    case_id: str,
    command_id: str | None,
    kind: str,
    rule: Callable[[CaseFile, Step], dict[str, Any]],
    store: CaseFileStore = CASEFILE,
    *,
    who: Principal | None = None,
) -> dict[str, Any]:
    """A command on one case: its state loaded, the pure rule, saved, in one transaction; a
    repeated `command_id` gets the first answer and changes nothing. With `who`, a caller who
    may not read the case is answered as if it did not exist (`visible_case`) first."""
    if who is not None:
        await visible_case(rt, who, case_id)

    def translated(state: CaseFile, step: Step) -> dict[str, Any]:
        try:
            return rule(state, step)
        except Refused as refused:
            raise refusal(refused) from None

    assert rt.uow is not None
    return await run_case_command(
        rt.uow, store, case_id, translated, command_id=command_id, kind=kind
    )


def operator(who: Principal) -> Operator:
    return Operator(who.user_id, frozenset(who.roles), who.name or None)


async def take(
    rt: Runtime,
    report: IncomingReport,
    who: Principal | None = None,
    attachment_ids: Sequence[str] = (),
) -> Outcome:
    """Take a report in its own transaction. Two copies sent at the same moment both pass
    the idempotency check; the unique index stops the second, which is then answered as the
    duplicate it is. The attachments it names (uploaded by `who`) become the evidence of the
    case it opens or joins, in the same transaction."""
    assert rt.uow is not None
    settings = intake_of(rt).settings
    near = (report.location.lat, report.location.lon) if report.location else None
    for attempt in (1, 2):
        try:
            async with rt.uow() as work:
                if attachment_ids and who is not None:
                    refs = await evidence.claim(work.conn, attachment_ids, who, settings, near=near)
                    report = dataclasses.replace(report, files=tuple(refs))
                outcome = await take_report(work, intake_of(rt), report)
                if outcome.outcome != "duplicate":
                    await evidence.bind(work.conn, report.files, outcome.case_id, work.now())
                keep_taken(work, report, outcome)
                return outcome
        except asyncpg.UniqueViolationError:
            if attempt == 2 or report.external_id is None:
                raise
    raise AssertionError("unreachable")


# -- views ------------------------------------------------------------------------------------
def case_view(intake: Intake, case: CaseRow) -> dict[str, Any]:
    """A case as people see it: the reporter only masked, the notify targets not at all."""
    return {
        "case_id": case.case_id,
        "status": case.status,
        "status_notes": case.status_notes,
        "category_code": case.category_code,
        "category_name": intake.category_name(case.category_code),
        "urgency": case.urgency,
        "description": case.description,
        "channel": case.channel,
        "source": case.source,
        "cell_code": case.cell_code,
        "community_code": case.community_code,
        "subdistrict_code": case.subdistrict_code,
        "location": {"lat": case.lat, "lon": case.lon},
        "located_by": case.located_by,
        "address": case.address,
        "part_code": case.part_code,
        "part_owner_dept": case.part_owner_dept,
        "camera_id": case.camera_id,
        "confidence": case.confidence,
        "reporter": case.reporter,
        "reporter_user_id": case.reporter_user_id,
        # the supervisor who reported it on patrol, by their name in users.yaml
        "reporter_user_name": intake.user_name(case.reporter_user_id),
        "attachments": case.attachments,
        # photos and voice notes in gridloop's store (GET /attachments/{id}, /thumbnail)
        "files": case.files,
        "reported_at": case.reported_at,
        "received_at": case.received_at,
        "updated_at": case.updated_at,
        "queue_reason": case.queue_reason,
        "proposal": case.proposal,
        "accepted_at": case.accepted_at,
        "dept": case.dept,
        "dept_name": intake.dept_name(case.dept) if case.dept else None,
        "deadline": case.deadline,
        "overdue": case.overdue,
        "ever_overdue": case.ever_overdue,
        "reworks": case.reworks,
        "closed_at": case.closed_at,
        "on_time": case.on_time,
        "archived": case.archived,
        "rating": case.rating,
        "reports": case.reports,
        "detections": case.detections,
        # Open311's public list: the operator's decision (None: none yet) and its effect
        "public": case.public,
        "listed_publicly": case.listed_publicly,
    }


def scope(who: Principal) -> access.Reach:
    """The part of the case file the caller reads (gridloop_runtime.access): the command side,
    grid heads and supervisors their territory, a department its own cases."""
    return access.list_reach(who, READERS, departments=True)


async def may_read_case(rt: Runtime, who: Principal, case_id: str) -> bool:
    """Whether `who` reads this case's file (and so its photos: gridloop_runtime.evidence)."""
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        case = await repo.get_case(conn, case_id)
    return case is not None and may_see(who, case)


def case_evidence(intake: Intake) -> evidence.Evidence:
    """Photos and voice notes: uploaded here by supervisors and operators for reports, and
    read here by whoever reads the case file — every photo the timeline names, whichever
    service took it."""
    return evidence.Evidence(
        intake.settings,
        uploaders=frozenset({"supervisor", *OPERATORS}),
        may_read_case=may_read_case,
        find_on_cases=repo.files_on_cases,
        timezone=ZoneInfo(intake.city.district.timezone),
    )


def may_see(who: Principal, case: CaseRow) -> bool:
    return access.may_read(
        who, READERS, cell_code=case.cell_code, depts=(case.dept,), departments=True
    )


async def visible_case(
    rt: Runtime, who: Principal, case_id: str, *, report_id: str | None = None
) -> CaseRow:
    """The case, for a caller who may read it (the commands on it check the same); to anyone
    else it is answered as if it did not exist, and the attempt is audited. Read through a
    report (`report_id`), the answer names the report, never its case."""
    scope(who)  # a caller of no reading role is refused as such (403)
    what, key, field = (
        ("report", report_id, "report_id") if report_id else ("case", case_id, "case_id")
    )
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        case = await repo.get_case(conn, case_id)
    if case is None:
        raise Refusal(f"no {what} {key!r}", field, "not-found", 404)
    if not may_see(who, case):
        raise access.out_of_reach(what, key, who, field=field, case_id=case_id)
    return case


# -- reports ------------------------------------------------------------------------------------
class ReportIn(BaseModel):
    """A report typed by a hotline operator or sent by a supervisor's patrol app (上报)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["hotline", "patrol"] | None = Field(
        None, description="default: patrol for supervisors, hotline for operators"
    )
    source: str | None = Field(None, description="sources.yaml code; default per channel")
    external_id: NonBlank | None = Field(
        None, min_length=1, max_length=128, description="the sender's id: resending is safe"
    )
    description: NonBlank = Field(min_length=1, max_length=2000)
    reported_at: SentAt | None = None
    location: Location | None = None
    address: NonBlank | None = Field(None, min_length=1, max_length=256)
    part_code: str | None = Field(None, min_length=1, max_length=64)
    category_code: str | None = Field(None, min_length=1, max_length=32)
    urgency: Urgency = "normal"
    reporter: Reporter | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    attachment_ids: list[AttachmentIdIn] = Field(
        default_factory=list,
        max_length=evidence.MAX_IDS,
        description="photos and voice notes uploaded first (POST /attachments) by the caller",
    )

    @model_validator(mode="after")
    def _somewhere(self) -> ReportIn:
        if self.location is None and self.address is None and self.part_code is None:
            raise ValueError("location: one of location, address or part_code is required")
        return self


@router.post("/reports", status_code=201)
async def submit_report(
    body: ReportIn,
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(require("supervisor", *OPERATORS))],
) -> dict[str, Any]:
    """File a report. Answers the case it opened or joined (201), or the first answer again
    for a repeated `external_id` (200)."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    channel = body.channel or ("hotline" if who.has(*OPERATORS) else "patrol")
    if channel == "patrol" and "supervisor" not in who.roles:
        raise Refusal("patrol reports come from supervisors", "channel", "forbidden", 403)
    if channel == "hotline" and not who.has(*OPERATORS):
        raise Refusal("hotline reports are entered by operators", "channel", "forbidden", 403)
    default = (
        intake.settings.hotline_source if channel == "hotline" else intake.settings.patrol_source
    )
    source_code = body.source or default
    source = intake.city.source(source_code)
    if source is None or source.channel != channel:
        raise Refusal(f"{source_code!r} is not a {channel} source", "source", "unknown-source", 422)
    assert rt.uow is not None
    report = IncomingReport(
        channel=channel,
        source=source_code,
        external_id=body.external_id,
        description=body.description,
        reported_at=body.reported_at or rt.clock.now(),
        location=body.location,
        address=body.address,
        part_code=body.part_code,
        category_code=body.category_code,
        urgency=body.urgency,
        reporter=body.reporter,
        reporter_user_id=who.user_id if channel == "patrol" else None,
        attachments=tuple(body.attachments),
    )
    try:
        outcome = await take(rt, report, who, body.attachment_ids)
    except Refused as refused:
        raise refusal(refused) from None
    if outcome.outcome == "duplicate":
        response.status_code = 200
    return outcome.as_dict()


class FilesIn(BaseModel):
    """Photos or voice notes for a report already sent (补充证据)."""

    model_config = ConfigDict(extra="forbid")

    command_id: str | None = Field(
        None, min_length=1, max_length=128, description="resend-safe: same id, same answer"
    )
    attachment_ids: list[AttachmentIdIn] = Field(min_length=1, max_length=evidence.MAX_IDS)


@router.post("/reports/{report_id}/attachments")
async def add_report_files(
    report_id: str,
    body: FilesIn,
    request: Request,
    who: Annotated[Principal, Depends(require("supervisor", *OPERATORS))],
) -> dict[str, Any]:
    """Add photos to a report that was sent without them (the evidence store was down, or
    they were taken later): by whoever sent the report, or an operator. The case's file and
    the bus hear `case.evidence_added`."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        row = await repo.report_by_id(conn, report_id)
        sender = await repo.report_sender(conn, report_id)
    if row is None:
        raise Refusal(f"no report {report_id!r}", "report_id", "not-found", 404)
    case = await visible_case(rt, who, row["case_id"], report_id=report_id)
    if sender != who.user_id and not who.has(*OPERATORS):
        raise Refusal("only who sent the report adds to it", "report_id", "forbidden", 403)
    actor = Actor(id=who.user_id, role=sorted(who.roles)[0], name=who.name or None)

    async def apply(work: Work) -> dict[str, Any]:
        refs = await evidence.claim(
            work.conn, body.attachment_ids, who, intake.settings, near=(case.lat, case.lon)
        )
        state = (await CASEFILE.load(work.conn, [case.case_id]))[case.case_id]
        intake.rules.add_files(state, work, report_id, refs, actor)
        await CASEFILE.save(work.conn, [state])
        await evidence.bind(work.conn, refs, case.case_id, work.now())
        return {
            "report_id": report_id,
            "case_id": case.case_id,
            "files": [r.model_dump(mode="json", exclude_none=True) for r in refs],
        }

    assert rt.uow is not None
    return await run_command(
        rt.uow, body.command_id, "add-report-files", apply, case_id=case.case_id
    )


@router.get("/reports/{report_id}")
async def get_report(report_id: str, request: Request, who: CurrentPrincipal) -> dict[str, Any]:
    """Where a report went (the Open311 token points here too)."""
    rt = runtime_of(request)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        row = await repo.report_by_id(conn, report_id)
    if row is None:
        raise Refusal(f"no report {report_id!r}", "report_id", "not-found", 404)
    await visible_case(rt, who, row["case_id"], report_id=report_id)
    return dict(row)


# -- the case file ---------------------------------------------------------------------------------
def _codes(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


@router.get("/cases")
async def search_cases(
    request: Request,
    who: CurrentPrincipal,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    category: Annotated[str | None, Query(description="comma-separated category codes")] = None,
    cell: str | None = None,
    community: str | None = None,
    subdistrict: str | None = None,
    dept: str | None = None,
    reported_from: Annotated[Instant | None, Query(alias="from")] = None,
    reported_to: Annotated[Instant | None, Query(alias="to")] = None,
    overdue: bool | None = None,
    archived: bool | None = None,
    open: bool | None = None,
    q: Annotated[str | None, Query(max_length=100, description="text in the description")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    """Search the case file (案卷查询) by status, category, place, department, date, overdue."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    reach = scope(who)
    query = repo.CaseQuery(
        statuses=_codes(status),
        categories=_codes(category),
        cell=cell,
        community=community,
        subdistrict=subdistrict,
        dept=dept,
        reported_from=reported_from,
        reported_to=reported_to,
        overdue=overdue,
        archived=archived,
        open=open,
        text=q,
        territory=reach.prefixes,
        only_dept=reach.dept,
        limit=limit,
        offset=offset,
    )
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows, total = await repo.search(conn, query)
    return {"total": total, "cases": [case_view(intake, c) for c in rows]}


@router.get("/grid-head/queue")
async def grid_head_queue(
    request: Request,
    who: Annotated[Principal, Depends(require("grid-head"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """网格长 的待办: the open cases of the grid head's cells that are overdue or sent back
    (返工 / reopened after a dissatisfied rating), most overdue first, each with the residents
    who reported it to call back (seed 003: past the limit the grid head chases and tells the
    reporter where it stands; the chase is dispatch's `POST /cases/{id}/reminder`), and
    `escalated_to_me` where the escalation ladder's grid-head rung named this grid head (its
    level, when, why)."""
    reach = scope(who)
    rt = runtime_of(request)
    intake = intake_of(rt)
    query = repo.CaseQuery(open=True, territory=reach.prefixes, limit=limit, attention=True)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows, _total = await repo.search(conn, query)
        people = await repo.reporters_of_cases(conn, [c.case_id for c in rows])
        mine = await repo.escalations_to(conn, [c.case_id for c in rows], who.user_id)
    residents: dict[str, list[dict[str, Any]]] = {}
    for r in people:
        residents.setdefault(r["case_id"], []).append(
            {"name": r["name"], "phone": r["phone"], "channel": r["channel"]}
        )
    return [
        {
            **case_view(intake, c),
            "why": "overdue" if c.overdue else "sent_back",
            "call_back": residents.get(c.case_id, []),
            # 督办 on the ladder's grid-head rung, naming this grid head (calendar.yaml)
            "escalated_to_me": mine.get(c.case_id),
        }
        for c in rows
    ]


@router.get("/stats/open-by-cell")
async def open_by_cell(request: Request, who: CurrentPrincipal) -> dict[str, Any]:
    """热力图: how many open cases (and overdue ones) each cell holds now, within the caller's
    reach — the command centre's wall screen draws it over the cells."""
    reach = scope(who)
    rt = runtime_of(request)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await repo.open_by_cell(conn, territory=reach.prefixes, dept=reach.dept)
    return {
        "cells": {r["cell_code"]: {"open": r["open"], "overdue": r["overdue"]} for r in rows},
        "open": sum(r["open"] for r in rows),
        "overdue": sum(r["overdue"] for r in rows),
    }


@router.get("/cases/{case_id}")
async def get_case(case_id: str, request: Request, who: CurrentPrincipal) -> dict[str, Any]:
    """A case with its whole timeline: who did what, when (案卷详情)."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    case = await visible_case(rt, who, case_id)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        lines = await repo.timeline(conn, case_id)
    return {**case_view(intake, case), "timeline": [timeline_line(r) for r in lines]}


def timeline_line(row: asyncpg.Record) -> dict[str, Any]:
    """A line of a case's timeline as stored, with `note`: what it says beyond the event's
    own summary (casefile.note), for a reader whose language names the event by its type."""
    return {**dict(row), "note": casefile.note(row["type"], row["summary"])}


@router.get("/cases/{case_id}/timeline")
async def get_timeline(
    case_id: str, request: Request, who: CurrentPrincipal
) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    await visible_case(rt, who, case_id)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        return [timeline_line(r) for r in await repo.timeline(conn, case_id)]


@router.get("/cases/{case_id}/reporters")
async def get_reporters(
    case_id: str,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> list[dict[str, Any]]:
    """Everybody who reported the case, with name and phone: for the call-back (回访) only,
    so operators only; nothing else in the system holds these."""
    rt = runtime_of(request)
    await visible_case(rt, who, case_id)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        return [dict(r) for r in await repo.reporters_of(conn, case_id)]


class SimilarCase(BaseModel):
    """A closed case like the one asked about, and how it was solved (类案参考)."""

    case_id: str
    score: float = Field(description="0–1: text, nearness and category, weighted")
    text_similarity: float = Field(description="0–1: the descriptions' shared words (Dice)")
    distance_m: float
    same_category: bool
    category_code: str | None
    category_name: str
    description: str | None
    cell_code: str
    location: Location
    dept: str | None = Field(description="the department that handled it")
    dept_name: str | None
    result: str | None = Field(description="the department's reported result (处置结果)")
    status_notes: str | None = Field(description="the note at closing")
    reported_at: datetime | None
    closed_at: datetime
    took_s: float | None = Field(description="reported → closed, in seconds")
    on_time: bool | None
    rating: str | None


async def find_similar(
    rt: Runtime, intake: Intake, who: Principal, case: CaseRow, limit: int
) -> list[SimilarCase]:
    """The closed cases most like `case` within the caller's reach: candidates by category
    or shared terms near it (repository), ranked by the pure score (domain/similar.py)."""
    settings = intake.settings
    segmenter = intake.segmenter
    probe_terms = (await segmenter.terms([case.description]))[0]
    box = duplicates.search_box(case.lon, case.lat, settings.similar_radius_m)
    reach = scope(who)  # the past cases shown are within the caller's reach too
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await repo.similar_candidates(
            conn,
            case.category_code,
            similar.tsquery(probe_terms),
            box,
            case.case_id,
            settings.similar_candidates,
            territory=reach.prefixes,
            only_dept=reach.dept,
        )
    # Cases closed a moment ago may not be indexed yet (or were cut by a tokenizer no longer
    # in force): their words are found here.
    pending = [r for r in rows if r["terms"] is None or not segmenter.current(r["terms_by"])]
    found = await segmenter.terms([r["description"] or "" for r in pending]) if pending else []
    late = {r["case_id"]: t for r, t in zip(pending, found, strict=True)}
    by_id = {r["case_id"]: r for r in rows}
    matches = similar.rank(
        similar.Probe(case.case_id, case.category_code, case.lon, case.lat, frozenset(probe_terms)),
        (
            similar.PastCase(
                r["case_id"],
                r["category_code"],
                r["lon"],
                r["lat"],
                frozenset(late[r["case_id"]] if r["case_id"] in late else r["terms"]),
                r["reported_at"],
                r["closed_at"],
            )
            for r in rows
        ),
        radius_m=settings.similar_radius_m,
        limit=limit,
        weights=similar.Weights(
            settings.similar_weight_text,
            settings.similar_weight_distance,
            settings.similar_weight_category,
        ),
    )
    out = []
    for m in matches:
        r = by_id[m.case.case_id]
        out.append(
            SimilarCase(
                case_id=r["case_id"],
                score=m.score,
                text_similarity=m.text,
                distance_m=m.distance_m,
                same_category=m.same_category,
                category_code=r["category_code"],
                category_name=intake.category_name(r["category_code"]),
                description=r["description"],
                cell_code=r["cell_code"],
                location=Location(lat=r["lat"], lon=r["lon"]),
                dept=r["dept"],
                dept_name=intake.dept_name(r["dept"]) if r["dept"] else None,
                result=r["result"],
                status_notes=r["status_notes"],
                reported_at=r["reported_at"],
                closed_at=r["closed_at"],
                took_s=m.took_s,
                on_time=r["on_time"],
                rating=r["rating"],
            )
        )
    return out


@router.get("/cases/{case_id}/similar")
async def similar_cases(
    case_id: str,
    request: Request,
    who: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[SimilarCase]:
    """类案参考: the closed cases most like this one — same category, nearby
    (INTAKE_SIMILAR_RADIUS_M), similar description — with who solved them, how, and how
    long it took; only those within the caller's reach."""
    rt = runtime_of(request)
    case = await visible_case(rt, who, case_id)
    return await find_similar(rt, intake_of(rt), who, case, limit)


@router.get("/archive/{case_id}")
async def get_archived(case_id: str, request: Request, who: CurrentPrincipal) -> dict[str, Any]:
    """结单归档: the closed case and its timeline as they stood at closing."""
    rt = runtime_of(request)
    await visible_case(rt, who, case_id)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        row = await repo.archived(conn, case_id)
    if row is None:
        raise Refusal(f"case {case_id} is not archived", "case_id", "not-found", 404)
    return dict(row)


# -- the acceptance desk ---------------------------------------------------------------------------
@router.get("/queue")
async def acceptance_queue(
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
    reason: Annotated[str | None, Query(description="comma-separated queue reasons")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    """待立案: cases waiting for an operator, oldest first; `leader-review` ones for the
    shift leader."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    query = repo.CaseQuery(
        queue=True,
        queue_reasons=_codes(reason),
        territory=scope(who).prefixes,
        limit=limit,
        offset=offset,
        oldest_first=True,
    )
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows, total = await repo.search(conn, query)
    return {"total": total, "cases": [case_view(intake, c) for c in rows]}


@router.get("/reject-reasons")
async def reject_reasons(request: Request, who: CurrentPrincipal) -> list[dict[str, str]]:
    intake = intake_of(runtime_of(request))
    return [r.model_dump() for r in intake.city.intake.reject_reasons]


Command = CommandBody


class AcceptIn(Command):
    category_code: str | None = Field(None, description="required when the report had none")
    urgency: Urgency | None = None
    note: str | None = Field(None, max_length=1000)


class RejectIn(Command):
    reason_code: str = Field(description="a code of intake.yaml reject_reasons")
    reason: str | None = Field(None, max_length=1000)


class ReviewIn(Command):
    approve: bool
    note: str | None = Field(None, max_length=1000)


class ConfirmIn(Command):
    reason: str | None = Field(None, max_length=1000)


class RatingIn(Command):
    rating: LevelIn = Field(
        description="A 非常满意, B 满意, C 一般, D 不满意 (seed 002); the v1 values "
        "satisfied, basically_satisfied, dissatisfied are taken as B, C, D"
    )
    comment: str | None = Field(None, max_length=1000)


class PublicIn(Command):
    public: bool = Field(description="true: Open311's public list shows the case; false: not")
    note: str | None = Field(None, max_length=1000, description="why, for the case file")


@router.post("/cases/{case_id}/accept")
async def accept_case(
    case_id: str,
    body: AcceptIn,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> dict[str, Any]:
    """立案. On categories the city has the shift leader review, an operator's decision
    waits for the leader (`awaiting: shift-leader`)."""
    rt = runtime_of(request)
    return await case_command(
        rt,
        case_id,
        body.command_id,
        "accept",
        lambda state, step: intake_of(rt).rules.accept(
            state,
            step,
            operator(who),
            category_code=body.category_code,
            urgency=body.urgency,
            note=body.note,
        ),
        who=who,
    )


@router.post("/cases/{case_id}/reject")
async def reject_case(
    case_id: str,
    body: RejectIn,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> dict[str, Any]:
    """不予立案 with a reason code (GET /reject-reasons)."""
    rt = runtime_of(request)
    return await case_command(
        rt,
        case_id,
        body.command_id,
        "reject",
        lambda state, step: intake_of(rt).rules.reject(
            state, step, operator(who), reason_code=body.reason_code, reason=body.reason
        ),
        who=who,
    )


@router.post("/cases/{case_id}/review")
async def review_case(
    case_id: str,
    body: ReviewIn,
    request: Request,
    who: Annotated[Principal, Depends(require("shift-leader"))],
) -> dict[str, Any]:
    """值班长审核: approve the operator's proposal, or send the case back to the queue."""
    rt = runtime_of(request)
    return await case_command(
        rt,
        case_id,
        body.command_id,
        "review",
        lambda state, step: intake_of(rt).rules.review(
            state, step, operator(who), approve=body.approve, note=body.note
        ),
        who=who,
    )


@router.post("/cases/{case_id}/request-confirmation")
async def request_confirmation(
    case_id: str,
    body: ConfirmIn,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> dict[str, Any]:
    """核实: have the cell's supervisor look on site before deciding."""
    rt = runtime_of(request)
    return await case_command(
        rt,
        case_id,
        body.command_id,
        "request-confirmation",
        lambda state, step: intake_of(rt).rules.request_confirmation(
            state, step, operator(who), reason=body.reason
        ),
        who=who,
    )


@router.post("/cases/{case_id}/public")
async def set_public(
    case_id: str,
    body: PublicIn,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> dict[str, Any]:
    """公开 or not: whether Open311's public list shows the case. By default it shows the
    cases that came in through public channels (Open311, the web); an operator lists a case
    from another channel, or takes a public one off. Audited, and on the case's timeline."""
    rt = runtime_of(request)
    return await case_command(
        rt,
        case_id,
        body.command_id,
        "public",
        lambda state, step: intake_of(rt).rules.set_public(
            state, step, operator(who), public=body.public, note=body.note
        ),
        who=who,
    )


@router.post("/cases/{case_id}/rating")
async def rate_case(
    case_id: str,
    body: RatingIn,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> dict[str, Any]:
    """满意度评价 from the call-back (回访), entered by an operator after closing."""
    rt = runtime_of(request)
    actor = Actor(id=who.user_id, role="operator", name=who.name or None)
    return await case_command(
        rt,
        case_id,
        body.command_id,
        "rating",
        lambda state, step: intake_of(rt).rules.rate(
            state, step, actor, rating=body.rating, comment=body.comment, via="rest"
        ),
        store=RATINGS,
        who=who,
    )


# -- the call-back worklist (回访) ----------------------------------------------------------------
@router.get("/callbacks")
async def callback_worklist(
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """回访: closed hotline and Open311 cases whose reporter has not rated
    `INTAKE_CALLBACK_AFTER_DAYS` after closing, oldest first, with the reporters to call
    (name, phone, e-mail) and the tries so far."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    before = rt.clock.now() - timedelta(days=intake.settings.callback_after_days)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await repo.callback_worklist(
            conn, closed_before=before, territory=scope(who).prefixes, limit=limit
        )
    return [
        {
            **dict(r),
            "attempts": r["attempts"] or [],
            "category_name": intake.category_name(r["category_code"]),
            "dept_name": intake.dept_name(r["dept"]) if r["dept"] else None,
            "max_tries": intake.settings.callback_max_tries,
        }
        for r in rows
    ]


class CallbackIn(Command):
    reached: bool = Field(description="whether the reporter was reached on this try")
    rating: LevelIn | None = Field(
        None, description="reached: the reporter's level A 非常满意, B 满意, C 一般, D 不满意"
    )
    comment: str | None = Field(None, max_length=1000, description="the reporter's words")
    note: str | None = Field(None, max_length=1000, description="the operator's note")


@router.post("/cases/{case_id}/callback")
async def call_back(
    case_id: str,
    body: CallbackIn,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> dict[str, Any]:
    """回访 one try: reached (with the reporter's rating and comment, recorded as their
    rating of the closing) or not; the `INTAKE_CALLBACK_MAX_TRIES`-th try not reached closes
    the call-back as not reached. Each conclusion is `case.called_back` (scoring counts it)."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    await visible_case(rt, who, case_id)
    actor = Actor(id=who.user_id, role="operator", name=who.name or None)

    async def apply(work: Work) -> dict[str, Any]:
        state = (await RATINGS.load(work.conn, [case_id]))[case_id]
        case = state.case
        if case is None or case.closed_at is None:
            raise Refusal(f"case {case_id} is not closed", "case_id", "not-closed", 409)
        cb = await repo.load_callback(work.conn, case_id, case.closed_at)
        try:
            done = callbacks.record_try(
                cb,
                case,
                work,
                actor,
                reached=body.reached,
                note=body.note,
                max_tries=intake.settings.callback_max_tries,
            )
            if body.reached and body.rating is not None:
                intake.rules.rate(
                    state, work, actor, rating=body.rating, comment=body.comment, via="callback"
                )
        except Refused as refused:
            raise refusal(refused) from None
        now = work.now()
        state.add(callbacks.timeline_entry(case, cb, actor, now))
        await RATINGS.save(work.conn, [state])
        await repo.save_callback(work.conn, cb, now)
        return {
            "case_id": case_id,
            "tries": cb.tries,
            "outcome": cb.outcome,
            "concluded": done is not None,
        }

    assert rt.uow is not None
    return await run_command(rt.uow, body.command_id, "callback", apply, case_id=case_id)


@router.get("/rejections")
async def list_rejections(
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> list[dict[str, Any]]:
    """Messages intake could not take (拒收), as kept: what was wrong and where it came from."""
    rt = runtime_of(request)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows = await repo.rejections(conn, source=source, limit=limit, offset=offset)
    return [dict(r) for r in rows]
