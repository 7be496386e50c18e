"""Taking a report (every channel shares it): locate, classify, fold or merge into an open
case (the duplicate search runs over the other cases), or open a new one under the day's
number. What that does to the one case is a rule of the case file (domain/rules.py), applied
to its state here and saved by the store. Nothing here knows whether the input came over
REST, Open311 or NATS."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import structlog
from gridloop_contracts import CaseStatus
from gridloop_runtime.outbox import Work
from gridloop_runtime.step import Step

from . import repository as repo
from .context import Intake
from .domain import duplicates
from .domain.case import CaseFile
from .domain.case_ids import format_case_id, local_day
from .domain.inbound import IncomingReport
from .domain.placement import place
from .domain.problems import Problem, Refused
from .metrics import REPORTS_IN
from .store import CASEFILE, CaseFileStore

log = structlog.get_logger(__name__)

OutcomeKind = Literal["new", "merged", "folded", "duplicate"]
T = TypeVar("T")


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


async def on_case(
    work: Work, store: CaseFileStore, case_id: str, rule: Callable[[CaseFile, Step], T]
) -> T:
    """A rule on one case inside an open unit of work: load (locked), apply, save."""
    states = await store.load(work.conn, [case_id])
    answer = rule(states[case_id], work)
    await store.save(work.conn, [states[case_id]])
    return answer


# -- taking a report ---------------------------------------------------------------------------
async def take_report(work: Work, intake: Intake, report: IncomingReport) -> Outcome:
    """A report from any channel becomes exactly one case (new, merged or folded) or a
    refusal naming the field. The same (source, external_id) again answers the first outcome."""
    conn = work.conn
    city = intake.city
    REPORTS_IN.labels(report.channel).inc()
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
    rules = intake.rules

    if category is not None:
        await repo.lock_category(conn, category.code)
        if report.camera_id is not None:
            scene = await repo.camera_scene(conn, report.camera_id, category.code)
            if scene is not None and duplicates.folds_into(
                scene[1], report.reported_at, source.cooldown_minutes
            ):
                # The camera still sees the same scene: one more detection, nothing sent.
                state = (await CASEFILE.load(conn, [scene[0]]))[scene[0]]
                rules.fold(state, work, report, report_id=report_id, data=data)
                await CASEFILE.save(conn, [state])
                await repo.see_scene(
                    conn, report.camera_id, category.code, scene[0], report.reported_at
                )
                assert state.case is not None
                case = state.case
                return Outcome(
                    report_id, case.case_id, "folded", case.case_status, case.status_notes
                )
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
            notes = await on_case(
                work,
                CASEFILE,
                match.case_id,
                lambda state, step: rules.merge(
                    state, step, report, report_id=report_id, match=match, data=data
                ),
            )
            if report.camera_id is not None:
                await repo.see_scene(
                    conn, report.camera_id, category.code, match.case_id, report.reported_at
                )
            return Outcome(report_id, match.case_id, "merged", CaseStatus.MERGED, notes)

    # A new case, numbered: the day's counter is the one queue every opener shares.
    day = local_day(work.now(), city.district.timezone)
    case_id = format_case_id(city.district.code, day, await repo.next_case_number(conn, day))
    state = CaseFile(case_id)
    move = rules.open(
        state,
        work,
        report,
        report_id=report_id,
        placement=placement,
        category_code=category_code,
        data=data,
    )
    await CASEFILE.save(conn, [state])
    if report.camera_id is not None and category_code is not None:
        await repo.see_scene(conn, report.camera_id, category_code, case_id, report.reported_at)
    log.info("case opened", case_id=case_id, status=move.status.value)
    return Outcome(report_id, case_id, "new", move.status, move.notes)


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
        "files": [f.model_dump(mode="json", exclude_none=True) for f in report.files],
        "camera_id": report.camera_id,
        "confidence": report.confidence,
    }
    return {k: v for k, v in out.items() if v not in (None, [])}
