"""The steps every channel shares: take a report (locate, classify, fold or merge, open a
case, decide 立案), move a case on an operator's or supervisor's word, and keep the case file
and the reporters' sources up to date. Handlers and routes call these; nothing here knows
whether the input came over REST, Open311 or NATS."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from gridloop_contracts import Actor, CaseStatus, Envelope, Location, MaskedReporter
from gridloop_contracts import cases as ev
from gridloop_contracts.inbound import CaseStatusV1
from gridloop_runtime.outbox import Work

from . import repository as repo
from .context import Intake
from .domain import acceptance, casefile, duplicates, privacy
from .domain.case_ids import format_case_id, local_day
from .domain.inbound import IncomingReport
from .domain.placement import Placement, place
from .domain.problems import Problem, Refused
from .repository import CaseRow, Entry

log = structlog.get_logger(__name__)

SYSTEM = Actor(id="intake", role="system", name="受理规则 / intake rules")

OutcomeKind = Literal["new", "merged", "folded", "duplicate"]


@dataclass(frozen=True)
class Outcome:
    """What became of a report: the case it opened or joined, and where that case stands."""

    report_id: str
    case_id: str
    outcome: OutcomeKind
    status: CaseStatus
    status_notes: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "case_id": self.case_id,
            "outcome": self.outcome,
            "status": self.status.value,
            "status_notes": self.status_notes,
        }


def new_report_id() -> str:
    return "r" + uuid.uuid4().hex[:20]


def dims(case: CaseRow) -> dict[str, Any]:
    """The dimensions every case event carries (docs/flow.md)."""
    return {
        "case_id": case.case_id,
        "category_code": case.category_code,
        "cell_code": case.cell_code,
        "community_code": case.community_code,
        "subdistrict_code": case.subdistrict_code,
    }


def _location(case: CaseRow) -> Location:
    return Location(lat=case.lat, lon=case.lon)


def _reporter(case: CaseRow) -> MaskedReporter | None:
    return MaskedReporter.model_validate(case.reporter) if case.reporter else None


# -- the case file -------------------------------------------------------------------------------
def emit(work: Work, intake: Intake, event: ev.CaseEvent) -> Entry:
    """Publish one of intake's own case events (through the outbox) and return its timeline
    entry; intake's consumer skips its own events, so this is where they enter the file."""
    env = work.emit(event)
    return entry_for(env, event, casefile.change_for(event, intake.dept_name).status)


def entry_for(env: Envelope, event: ev.CaseEvent, status: CaseStatus | None) -> Entry:
    return Entry(
        case_id=event.case_id,
        type=event.type_name,
        occurred_at=event.occurred_at,
        summary=casefile.summary(event),
        data=event.to_json_dict(),
        event_id=env.id,
        actor=event.actor.model_dump(exclude_none=True) if event.actor else None,
        status=status.value if status else None,
    )


def tell(
    work: Work,
    case_id: str,
    targets: Sequence[Sequence[str]],
    status: CaseStatus,
    notes: str | None,
    at: datetime,
) -> None:
    """进度回告: the new status to the source of every report on the case."""
    for source, external_id in targets:
        work.emit(
            CaseStatusV1(
                external_id=external_id or None,
                case_id=case_id,
                status=status,
                status_notes=notes,
                updated_at=at,
            ),
            subject=f"notify.{source}",
            case_id=case_id,
        )


# -- taking a report ---------------------------------------------------------------------------
async def take_report(work: Work, intake: Intake, report: IncomingReport) -> Outcome:
    """A report from any channel becomes exactly one case (new, merged or folded) or a
    refusal naming the field. The same (source, external_id) again answers the first outcome."""
    conn = work.conn
    city = intake.city
    if report.external_id is not None:
        seen = await repo.find_report(conn, report.source, report.external_id)
        if seen is not None:
            return Outcome(
                seen["report_id"],
                seen["case_id"],
                "duplicate",
                CaseStatus(seen["status"]),
                seen["status_notes"],
            )
    source = city.source(report.source)
    if source is None:
        raise Refused(Problem("source", f"unknown source {report.source!r}", "unknown-source"))
    placement = place(
        city,
        location=report.location,
        address=report.address,
        part_code=report.part_code,
        camera_id=report.camera_id,
    )
    if isinstance(placement, Problem):
        raise Refused(placement)
    if report.camera_id is not None:
        camera = city.camera(report.camera_id)
        if camera is not None and camera.source != report.source:
            raise Refused(
                Problem(
                    "camera_id",
                    f"camera {report.camera_id!r} belongs to source {camera.source!r}",
                    "wrong-camera",
                )
            )
    category_code = report.category_code or (
        placement.part.category_code if placement.part else None
    )
    category = city.category(category_code) if category_code else None
    if category_code is not None and category is None:
        raise Refused(
            Problem("category_code", f"unknown category {category_code!r}", "not-city-management")
        )
    report_id = new_report_id()
    data = _report_data(report)

    if category is not None:
        await repo.lock_category(conn, category.code)
        if report.camera_id is not None:
            scene = await repo.camera_scene(conn, report.camera_id, category.code)
            if scene is not None and duplicates.folds_into(
                scene[1], report.reported_at, source.cooldown_minutes
            ):
                return await _fold(work, report, report_id, scene[0], category.code, data)
        rule = city.intake.duplicate
        lo, hi = duplicates.window(report.reported_at, rule)
        candidates = await repo.open_cases_near(
            conn,
            category.code,
            duplicates.search_box(placement.lon, placement.lat, rule.distance_m),
            lo,
            hi,
        )
        match = duplicates.find_duplicate(
            candidates,
            lon=placement.lon,
            lat=placement.lat,
            reported_at=report.reported_at,
            rule=rule,
            part_code=placement.part.code if placement.part else None,
        )
        if match is not None:
            return await _merge(work, intake, report, report_id, match, category.code, data)
    return await _open(work, intake, report, report_id, placement, category_code, data)


def _report_data(report: IncomingReport) -> dict[str, Any]:
    """The report as kept with the case: everything but who the reporter is."""
    out: dict[str, Any] = {
        "channel": report.channel,
        "source": report.source,
        "external_id": report.external_id,
        "description": report.description,
        "reported_at": report.reported_at.isoformat(),
        "location": report.location.model_dump() if report.location else None,
        "address": report.address,
        "part_code": report.part_code,
        "category_code": report.category_code,
        "urgency": report.urgency,
        "reporter_user_id": report.reporter_user_id,
        "attachments": [a.model_dump(mode="json") for a in report.attachments],
        "camera_id": report.camera_id,
        "confidence": report.confidence,
    }
    return {k: v for k, v in out.items() if v not in (None, [])}


async def _keep_reporter(
    work: Work, report: IncomingReport, report_id: str
) -> MaskedReporter | None:
    """The identity stays in `reporters`; the case and its events get the masked form."""
    r = report.reporter
    if r is None or not (r.name or r.phone or report.reporter_email):
        return None
    ref = "rp-" + report_id
    await repo.insert_reporter(
        work.conn,
        ref=ref,
        report_id=report_id,
        name=r.name,
        phone=r.phone,
        email=report.reporter_email,
        at=work.now(),
    )
    return privacy.masked(ref, r.name, r.phone)


async def _fold(
    work: Work,
    report: IncomingReport,
    report_id: str,
    case_id: str,
    category_code: str,
    data: dict[str, Any],
) -> Outcome:
    """The camera still sees the same scene: one more detection on the case, nothing sent."""
    assert report.camera_id is not None
    await repo.insert_report(
        work.conn,
        report_id=report_id,
        source=report.source,
        external_id=report.external_id,
        channel=report.channel,
        case_id=case_id,
        outcome="folded",
        reported_at=report.reported_at,
        received_at=work.now(),
        camera_id=report.camera_id,
        confidence=report.confidence,
        data=data,
    )
    await repo.see_scene(work.conn, report.camera_id, category_code, case_id, report.reported_at)
    await repo.fold_detection(work.conn, case_id)
    case = await repo.get_case(work.conn, case_id)
    assert case is not None
    return Outcome(report_id, case_id, "folded", case.case_status, case.status_notes)


async def _merge(
    work: Work,
    intake: Intake,
    report: IncomingReport,
    report_id: str,
    match: duplicates.Match,
    category_code: str,
    data: dict[str, Any],
) -> Outcome:
    """合并: the report joins the open case; its sender is told now and on every change."""
    now = work.now()
    reporter = await _keep_reporter(work, report, report_id)
    await repo.insert_report(
        work.conn,
        report_id=report_id,
        source=report.source,
        external_id=report.external_id,
        channel=report.channel,
        case_id=match.case_id,
        outcome="merged",
        reported_at=report.reported_at,
        received_at=now,
        camera_id=report.camera_id,
        confidence=report.confidence,
        data=data,
    )
    # Folded detections add no target (below): a camera hears of its first detection only.
    target = [report.source, report.external_id or ""]
    case = await repo.add_reporter(work.conn, match.case_id, target)
    assert case is not None
    if report.camera_id is not None:
        await repo.see_scene(
            work.conn, report.camera_id, category_code, case.case_id, report.reported_at
        )
    event = ev.CaseMerged(
        **dims(case),
        occurred_at=now,
        actor=SYSTEM,
        report_id=report_id,
        source=report.source,
        external_id=report.external_id,
        channel=report.channel,
        reporter=reporter,
        reporter_user_id=report.reporter_user_id,
        distance_m=match.distance_m,
    )
    await repo.add_entries(work.conn, [emit(work, intake, event)], now)
    notes = casefile.merged_notes(case.case_id, case.case_status, case.status_notes)
    tell(work, case.case_id, [target], CaseStatus.MERGED, notes, now)
    return Outcome(report_id, case.case_id, "merged", CaseStatus.MERGED, notes)


async def _open(
    work: Work,
    intake: Intake,
    report: IncomingReport,
    report_id: str,
    placement: Placement,
    category_code: str | None,
    data: dict[str, Any],
) -> Outcome:
    """A new case: numbered, reported, and decided on at once where the rules allow."""
    conn = work.conn
    city = intake.city
    now = work.now()
    day = local_day(now, city.district.timezone)
    case_id = format_case_id(city.district.code, day, await repo.next_case_number(conn, day))
    reporter = await _keep_reporter(work, report, report_id)
    cell = placement.cell
    case = CaseRow(
        case_id=case_id,
        status=CaseStatus.RECEIVED.value,
        status_notes=None,
        channel=report.channel,
        source=report.source,
        external_id=report.external_id,
        report_id=report_id,
        category_code=category_code,
        urgency=report.urgency,
        description=report.description,
        cell_code=cell.code,
        community_code=cell.community_code,
        subdistrict_code=cell.subdistrict_code,
        lon=placement.lon,
        lat=placement.lat,
        located_by=placement.located_by,
        address=placement.address,
        part_code=placement.part.code if placement.part else None,
        part_owner_dept=placement.part.owner_dept if placement.part else None,
        camera_id=report.camera_id,
        confidence=report.confidence,
        reporter=reporter.model_dump(exclude_none=True) if reporter else None,
        reporter_user_id=report.reporter_user_id,
        attachments=[a.model_dump(mode="json") for a in report.attachments],
        reported_at=report.reported_at,
        received_at=now,
        updated_at=now,
        detections=1 if report.camera_id else 0,
        targets=[[report.source, report.external_id or ""]],
    )
    reported = ev.CaseReported(
        **dims(case),
        occurred_at=now,
        actor=SYSTEM,
        report_id=report_id,
        channel=report.channel,
        source=report.source,
        external_id=report.external_id,
        description=report.description,
        location=placement.location,
        address=placement.address,
        part_code=case.part_code,
        urgency=report.urgency,
        reporter=reporter,
        reporter_user_id=report.reporter_user_id,
        attachments=list(report.attachments),
        reported_at=report.reported_at,
        confidence=report.confidence,
    )
    entries = [emit(work, intake, reported)]
    decision = acceptance.decide(_facts(intake, case), city.intake)
    step = _step(work, intake, case, decision, actor=SYSTEM, auto=True)
    entries.extend(step.entries)
    case = dataclasses.replace(
        case, status=step.status.value, status_notes=step.notes, **step.columns
    )
    await repo.insert_case(conn, case)
    await repo.insert_report(
        conn,
        report_id=report_id,
        source=report.source,
        external_id=report.external_id,
        channel=report.channel,
        case_id=case_id,
        outcome="new",
        reported_at=report.reported_at,
        received_at=now,
        camera_id=report.camera_id,
        confidence=report.confidence,
        data=data,
    )
    if report.camera_id is not None and category_code is not None:
        await repo.see_scene(conn, report.camera_id, category_code, case_id, report.reported_at)
    await repo.add_entries(conn, entries, now)
    tell(work, case_id, case.targets or [], step.status, step.notes, now)
    log.info("case opened", case_id=case_id, decision=decision.action, code=decision.code)
    return Outcome(report_id, case_id, "new", step.status, step.notes)


def _facts(intake: Intake, case: CaseRow, confirmed: bool | None = None) -> acceptance.Facts:
    city = intake.city
    source = city.source(case.source)
    cell = city.cell(case.cell_code)
    assert source is not None and cell is not None
    return acceptance.Facts(
        channel=case.channel,  # type: ignore[arg-type]
        category=city.category(case.category_code) if case.category_code else None,
        cell=cell,
        source=source,
        reporter=city.user(case.reporter_user_id) if case.reporter_user_id else None,
        confidence=case.confidence,
        confirmed=confirmed,
    )


# -- moving a case on --------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """What a decision does: events to publish (as timeline entries), the status after, the
    reporter's notes and the columns to set."""

    entries: list[Entry]
    status: CaseStatus
    notes: str
    columns: dict[str, Any]


def _step(
    work: Work,
    intake: Intake,
    case: CaseRow,
    decision: acceptance.Decision,
    *,
    actor: Actor,
    auto: bool,
    approved_by: str | None = None,
) -> Step:
    now = work.now()
    base = dims(case)
    if decision.action == "accept":
        assert case.category_code is not None
        accepted = ev.CaseAccepted(
            **{**base, "category_code": case.category_code},
            occurred_at=now,
            actor=actor,
            urgency=case.urgency,
            description=case.description,
            location=_location(case),
            address=case.address,
            part_code=case.part_code,
            part_owner_dept=case.part_owner_dept,
            channel=case.channel,
            source=case.source,
            reporter=_reporter(case),
            attachments=case.attachments,
            auto=auto,
            reported_at=case.reported_at,
            reporter_user_id=case.reporter_user_id,
        )
        change = casefile.change_for(accepted, intake.dept_name)
        notes = change.notes or ""
        if approved_by:
            notes += f"（值班长 {approved_by} 审核）"
        return Step(
            [emit(work, intake, accepted)],
            CaseStatus.ACCEPTED,
            notes,
            {"accepted_at": now, "queue_reason": None, "proposal": None},
        )
    if decision.action == "confirm":
        # The supervisor's time to confirm, on the working calendar (calendar.yaml).
        due = intake.calendar.add_duration(now, intake.city.calendar.confirmation.limit)
        asked = ev.CaseConfirmationRequested(
            **base,
            occurred_at=now,
            actor=actor,
            reason=decision.reason,
            description=case.description,
            location=_location(case),
            address=case.address,
            due=due,
        )
        change = casefile.change_for(asked, intake.dept_name)
        return Step(
            [emit(work, intake, asked)],
            CaseStatus.PENDING_CONFIRMATION,
            change.notes or "",
            {"queue_reason": None, "proposal": None},
        )
    if decision.action == "reject":
        rejected = ev.CaseRejected(
            **base,
            occurred_at=now,
            actor=actor,
            reason_code=decision.code,
            reason=decision.reason,
        )
        change = casefile.change_for(rejected, intake.dept_name)
        return Step(
            [emit(work, intake, rejected)],
            CaseStatus.REJECTED,
            change.notes or "",
            {"queue_reason": None, "proposal": None},
        )
    # queue: no bus event (nothing changes for the other services), a timeline line only.
    notes = f"待受理员立案：{decision.reason} / awaiting an operator"
    entry = Entry(
        case_id=case.case_id,
        type="intake.queued",
        occurred_at=now,
        summary=f"进入待立案队列 ({decision.code}): {decision.reason}",
        data={"queue_reason": decision.code, "reason": decision.reason},
        actor=actor.model_dump(exclude_none=True),
        status=CaseStatus.PENDING_ACCEPTANCE.value,
    )
    return Step(
        [entry],
        CaseStatus.PENDING_ACCEPTANCE,
        notes,
        {"queue_reason": decision.code, "proposal": None},
    )


async def advance(
    work: Work,
    intake: Intake,
    case: CaseRow,
    decision: acceptance.Decision,
    *,
    actor: Actor,
    auto: bool,
    columns: dict[str, Any] | None = None,
    approved_by: str | None = None,
) -> CaseRow:
    """Apply a decision to a case already on file: events, status, timeline, reporters told."""
    if columns:
        case = dataclasses.replace(case, **columns)
    step = _step(work, intake, case, decision, actor=actor, auto=auto, approved_by=approved_by)
    now = work.now()
    updated = await repo.update_case(
        work.conn,
        case.case_id,
        at=now,
        status=step.status.value,
        notes=step.notes,
        columns={**(columns or {}), **step.columns},
    )
    assert updated is not None
    await repo.add_entries(work.conn, step.entries, now)
    tell(work, case.case_id, updated.targets or [], step.status, step.notes, now)
    return updated


async def on_confirmed(work: Work, intake: Intake, event: ev.CaseConfirmed) -> None:
    """核实结果: confirmed → the acceptance rules again (now with the supervisor's word);
    not found on site → 不予立案."""
    case = await repo.get_case(work.conn, event.case_id, for_update=True)
    if case is None or case.case_status != CaseStatus.PENDING_CONFIRMATION:
        return  # late or repeated: the case has moved on
    decision = acceptance.decide(
        _facts(intake, case, confirmed=event.confirmed), intake.city.intake
    )
    actor = Actor(id=event.supervisor_id, role="supervisor")
    await advance(work, intake, case, decision, actor=actor, auto=True)


async def record(work: Work, intake: Intake, env: Envelope, event: ev.CaseEvent) -> None:
    """Another service's case event into the case file; the reporters hear of status changes."""
    now = work.now()
    change = casefile.change_for(event, intake.dept_name)
    case = await repo.get_case(work.conn, event.case_id, for_update=True)
    status = change.status
    if case is not None and status is not None and not casefile.may_move(case.case_status, status):
        log.info("status change ignored", case_id=case.case_id, now=case.status, to=status)
        status = None
    entry = entry_for(env, event, status)
    if case is None:
        # Not (yet) ours: keep the line so the file is complete when the case shows up.
        await repo.add_entries(work.conn, [entry], now)
        return
    updated = await repo.update_case(
        work.conn,
        case.case_id,
        at=now,
        status=status.value if status else None,
        notes=change.notes if status else None,
        columns=change.columns,
    )
    assert updated is not None
    await repo.add_entries(work.conn, [entry], now)
    if status is not None:
        tell(work, case.case_id, updated.targets or [], status, change.notes, now)
    if isinstance(event, ev.CaseClosed) and status is not None:
        await repo.archive(work.conn, case.case_id, event.occurred_at)
    elif isinstance(event, ev.CaseConfirmed):
        await on_confirmed(work, intake, event)


# -- ratings -------------------------------------------------------------------------------------
async def rate(
    work: Work,
    intake: Intake,
    case_id: str,
    *,
    rating: Literal["satisfied", "basically_satisfied", "dissatisfied"],
    comment: str | None,
    via: str,
    actor: Actor,
    rated_at: datetime | None = None,
) -> CaseRow:
    """满意度评价: once per closing, only after closing."""
    case = await repo.get_case(work.conn, case_id, for_update=True)
    if case is None:
        raise Refused(Problem("case_id", f"no case {case_id!r}", "not-found", 404))
    if case.case_status != CaseStatus.CLOSED or case.closed_at is None:
        raise Refused(
            Problem("case_id", f"case {case_id} is {case.status}, not closed", "not-closed", 409)
        )
    now = work.now()
    if not await repo.add_rating(
        work.conn,
        case_id=case_id,
        closed_at=case.closed_at,
        rating=rating,
        comment=comment,
        via=via,
        at=now,
    ):
        raise Refused(Problem("rating", f"case {case_id} is already rated", "already-rated", 409))
    rated = ev.CaseRated(
        **dims(case),
        occurred_at=rated_at or now,
        actor=actor,
        rating=rating,
        comment=comment,
        source=case.source,
        dept=case.dept,
    )
    entry = emit(work, intake, rated)
    updated = await repo.update_case(work.conn, case_id, at=now, columns={"rating": rating})
    assert updated is not None
    await repo.add_entries(work.conn, [entry], now)
    if case.archived:
        await work.conn.execute(
            "UPDATE archive SET case_data = case_data || jsonb_build_object('rating', $2::text) "
            "WHERE case_id = $1",
            case_id,
            rating,
        )
    return updated
