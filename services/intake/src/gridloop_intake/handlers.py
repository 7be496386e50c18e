"""What happens on each message and command intake takes — the one table to read first.

Bus (INTAKE stream, `intake.<channel>.<source>`; a handler: the duplicate search and the
day's case number are shared by all cases, casework.py):
  gridloop.report.v1     → take the report (locate, classify, merge, open, decide 立案)
  gridloop.detection.v1  → the same, plus the camera's cooldown fold and the confidence review
  gridloop.rating.v2     → case.rated (v2: levels A–D; the hotline's call-back)
  gridloop.rating.v1     → the same, its three ratings taken as B, C, D
  anything malformed     → gridloop.report.rejected.v1 on notify.<source>, kept in `rejections`
Bus (INTAKE stream, `intake.taken.<source>`: what intake took over REST and Open311, kept for
a database restore, `casework.keep_taken`):
  gridloop.report.taken.v1 → passed over (the transaction that took it marked it taken);
                           after a restore, taken again as it was taken then
Bus (CASES stream; the handler table `case_file_rules`, pure rules of domain/rules.py applied
a batch at a time; the events intake emits itself are not consumed, they enter the file as
intake emits them):
  every other service's case event
                         → a timeline line; the status and the columns search reads, the
                           reporters' sources told (case.status on notify.<source>)
  case.closed            → and 结单归档 (the archive: the case and its timeline at closing);
                           v2 carrying the verdict that closed it: the verdict's line first
  case.confirmed         → and the acceptance rules again (核实 done: accept, queue, reject)
  case.reopened          → and out of the archive's reach (archived = false), rework
  case.overdue           → (stage handling) overdue and ever_overdue, one more standing overdue
  case.overdue_withdrawn → (超期撤回) a line saying so; stage handling: overdue false, one
                           standing overdue fewer, ever_overdue while any still stands
Commands on one case (REST; `run_case_command` over the same rules and store):
  accept, reject, review, request_confirmation (the desk), rate (also Open311 and the bus)
Commands over all cases: submit_report (REST, Open311) takes a report like the bus does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from gridloop_contracts import Actor, Envelope, EnvelopeError, FieldError, validation_errors
from gridloop_contracts import cases as ev
from gridloop_contracts.envelope import control_characters, nul_in, storable
from gridloop_contracts.inbound import (
    DetectionV1,
    RatingV1,
    RatingV2,
    ReportRejectedV1,
    ReportTakenV1,
    ReportV1,
)
from gridloop_runtime import evidence
from gridloop_runtime.casework import Rules
from gridloop_runtime.outbox import Work
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from . import casework
from . import repository as repo
from .casework import ReportBatch
from .context import Intake
from .domain.case import CaseFile
from .domain.inbound import (
    Channel,
    IncomingReport,
    check_ce_source,
    check_sender,
    check_subject,
    source_of,
)
from .domain.problems import Problem, Refused
from .domain.rules import CaseRules
from .store import CASEFILE, RATINGS

log = structlog.get_logger(__name__)

# Where intake keeps the reports it took over REST and Open311 (`subjects.intake_taken`).
TAKEN_PREFIX = "intake.taken."

# Problems about the message's envelope keep their names; the rest are fields of its data.
_ENVELOPE_FIELDS = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "body", "data", "data_base64"}
)

InboundHandler = Callable[[Work, Envelope, Channel, str, ReportBatch], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


class Malformed(Exception):
    """The message's data does not match its contract model."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = errors


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(field=e["field"], reason=e["reason"]) for e in validation_errors(exc)]
        raise Malformed(errors) from exc


def message_field(field: str | None) -> str:
    if not field:
        return "data"
    return field if field in _ENVELOPE_FIELDS or field.startswith("data") else f"data.{field}"


class Handlers:
    """The INTAKE stream's handler, bound to the service's state; `inbound` is its table."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.inbound: dict[str, InboundHandler] = {
            ReportV1.type_name: self.on_report,
            DetectionV1.type_name: self.on_detection,
            RatingV1.type_name: self.on_rating,
            RatingV2.type_name: self.on_rating,
        }

    # -- INTAKE stream -----------------------------------------------------------------------
    async def on_inbound(self, work: Work, env: Envelope, batch: ReportBatch) -> None:
        """One message of the INTAKE stream; the reports of a batch share `batch` (written
        by the caller when the batch is done)."""
        subject = work.subject or ""
        if subject.startswith(TAKEN_PREFIX):
            await self.on_taken(work, env, batch)
            return
        checked = check_subject(subject)
        if isinstance(checked, Problem):
            await self.reject_message(work, subject=subject, env=env, problems=[checked])
            return
        channel, source = checked
        unfit = control_characters(env)
        if unfit is not None:
            error = FieldError(field=unfit.field, reason=unfit.reason)
            await self.reject_message(work, subject=subject, env=env, errors=[error])
            return
        problem = (
            check_sender(channel, source, self.intake.city.source(source), env.type)
            or check_ce_source(source, env.source)
            or _no_nul(env.data)
        )
        if problem is not None:
            await self.reject_message(work, subject=subject, env=env, problems=[problem])
            return
        try:
            await self.inbound[env.type](work, env, channel, source, batch)
        except Refused as refused:
            await self.reject_message(
                work, subject=subject, env=env, problems=list(refused.problems)
            )
        except Malformed as bad:
            await self.reject_message(work, subject=subject, env=env, errors=bad.errors)

    async def on_invalid(self, work: Work, msg: Msg, err: EnvelopeError) -> None:
        """Not a CloudEvent at all: answered and kept all the same."""
        source = source_of(msg.subject)
        checked = check_subject(msg.subject)
        headers = dict(msg.headers or {})
        await self._keep_and_answer(
            work,
            subject=msg.subject,
            source=source,
            channel=None if isinstance(checked, Problem) else checked[0],
            message_id=headers.get("ce-id") or headers.get("Nats-Msg-Id"),
            external_id=None,
            ce_type=headers.get("ce-type"),
            errors=[FieldError(field=err.field, reason=err.reason)],
            headers=headers,
            body=bytes(msg.data),
        )

    async def on_report(
        self, work: Work, env: Envelope, channel: Channel, source: str, batch: ReportBatch
    ) -> None:
        report = _parse(ReportV1, env.data)
        if report.reporter_user_id is not None:
            user = self.intake.city.user(report.reporter_user_id)
            if user is None or "supervisor" not in user.roles:
                raise Refused(
                    Problem(
                        "reporter_user_id",
                        f"{report.reporter_user_id!r} is not a supervisor",
                        "unknown-user",
                    )
                )
        incoming = IncomingReport.from_report(report, channel=channel, source=source)
        await casework.take_report(work, self.intake, incoming, batch)

    async def on_taken(self, work: Work, env: Envelope, batch: ReportBatch) -> None:
        """A report this service took over REST or Open311, back from the INTAKE stream. As
        a rule the transaction that took it also marked it taken, and it never reaches here;
        it does after the database was restored to a moment before it: taken again as it
        was taken then (its photos tied to the case where their upload's row is still there)."""
        if env.type != ReportTakenV1.type_name or env.source != work.source:
            # only intake publishes here (NATS permissions): this came some other way
            log.warning("not intake's own report on intake.taken", source=env.source, type=env.type)
            return
        incoming = IncomingReport.from_taken(_parse(ReportTakenV1, env.data))
        try:
            outcome = await casework.take_report(work, self.intake, incoming, batch)
        except Refused as refused:
            # taken once, refused now: the city's data changed since (a category, a cell)
            log.error(
                "a report taken before the restore is refused now",
                source=incoming.source,
                external_id=incoming.external_id,
                problems=[p.reason for p in refused.problems],
            )
            raise
        if outcome.outcome != "duplicate":
            await evidence.bind(
                work.conn, incoming.files, outcome.case_id, work.now(), strict=False
            )

    async def on_detection(
        self, work: Work, env: Envelope, channel: Channel, source: str, batch: ReportBatch
    ) -> None:
        det = _parse(DetectionV1, env.data)
        name = self.intake.category_name(det.category_code)
        incoming = IncomingReport.from_detection(det, source=source, category_name=name)
        await casework.take_report(work, self.intake, incoming, batch)

    async def on_rating(
        self, work: Work, env: Envelope, channel: Channel, source: str, batch: ReportBatch
    ) -> None:
        # the rating's rule reads and writes its case itself: the batch's reports first
        await batch.save(work.conn)
        batch.forget()
        rating: RatingV1 | RatingV2
        level: str
        if env.type == RatingV2.type_name:
            rating = _parse(RatingV2, env.data)
            level = rating.level
        else:
            rating = _parse(RatingV1, env.data)
            level = rating.rating
        case_id = rating.case_id
        if case_id is None:
            assert rating.external_id is not None
            seen = await repo.find_report(work.conn, source, rating.external_id)
            if seen is None:
                raise Refused(
                    Problem(
                        "external_id",
                        f"no report {rating.external_id!r} from {source}",
                        "not-found",
                        404,
                    )
                )
            case_id = seen["case_id"]
        who = Actor(id=source, role=channel)
        await casework.on_case(
            work,
            RATINGS,
            case_id,
            lambda state, step: self.intake.rules.rate(
                state,
                step,
                who,
                rating=level,
                comment=rating.comment,
                via=f"{channel}:{source}",
                rated_at=rating.rated_at,
            ),
        )

    async def reject_message(
        self,
        work: Work,
        *,
        subject: str,
        env: Envelope,
        problems: list[Problem] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        errors = list(errors or []) + [
            FieldError(field=message_field(p.field), reason=f"{p.reason} ({p.code})")
            for p in problems or []
        ]
        checked = check_subject(subject)
        data = env.data if isinstance(env.data, dict) else {}
        external_id = data.get("external_id")
        await self._keep_and_answer(
            work,
            subject=subject,
            source=source_of(subject),
            channel=None if isinstance(checked, Problem) else checked[0],
            message_id=env.id,
            external_id=external_id if isinstance(external_id, str) else None,
            ce_type=env.type,
            errors=errors,
            headers={"ce-id": env.id, "ce-source": env.source, "ce-type": env.type},
            body=_json_bytes(env.data),
        )

    async def _keep_and_answer(
        self,
        work: Work,
        *,
        subject: str,
        source: str,
        channel: str | None,
        message_id: str | None,
        external_id: str | None,
        ce_type: str | None,
        errors: list[FieldError],
        headers: dict[str, str] | None,
        body: bytes | None,
    ) -> None:
        # Kept as sent, except U+0000, which no text column takes.
        message_id = storable(message_id) if message_id is not None else None
        external_id = storable(external_id) if external_id is not None else None
        ce_type = storable(ce_type) if ce_type is not None else None
        if headers is not None:
            headers = {storable(k): storable(v) for k, v in headers.items()}
        errors = [
            e.model_copy(update={"field": storable(e.field), "reason": storable(e.reason)})
            for e in errors
        ]
        now = work.now()
        await repo.add_rejection(
            work.conn,
            at=now,
            subject=subject,
            source=source,
            channel=channel,
            message_id=message_id,
            external_id=external_id,
            type=ce_type,
            errors=[e.model_dump() for e in errors],
            headers=headers,
            body=body,
        )
        work.emit(
            ReportRejectedV1(
                external_id=external_id,
                source=source,
                message_id=message_id,
                errors=errors,
                received_at=now,
            ),
            subject=f"notify.{source}",
        )
        log.info("message rejected", subject=subject, errors=[e.field for e in errors])


# The events the case file takes from the other services (intake's own enter it as emitted).
CASE_FILE_EVENTS: tuple[type[ev.CaseEvent], ...] = (
    ev.CaseConfirmed,
    ev.CaseQueued,
    ev.CaseQueueChased,
    ev.CaseDispatched,
    ev.CaseRecalled,
    ev.CaseUnqueued,
    ev.CaseSupervised,
    ev.CaseSigned,
    ev.CaseReturned,
    ev.CaseExtensionRequested,
    ev.CaseExtensionDecided,
    ev.CaseProgress,
    ev.CaseHandled,
    ev.CaseReminded,
    ev.CaseOverdue,
    ev.CaseOverdueWithdrawn,
    ev.CaseEscalated,
    ev.CaseVerificationAssigned,
    ev.CaseVerified,
    ev.CaseVerifiedV2,
    ev.CaseReworked,
    ev.CaseClosed,
    ev.CaseClosedV2,
    ev.CaseReopened,
)


def case_file_rules(rules: CaseRules) -> Rules[CaseFile]:
    """The CASES handler table: every event of another service goes into the case file."""
    return Rules(store=CASEFILE, events={model: rules.record for model in CASE_FILE_EVENTS})


def _no_nul(data: Any) -> Problem | None:
    where = nul_in(data)
    if where is None:
        return None
    return Problem(where, "contains U+0000 (NUL), which is not text", "invalid-text")


def _json_bytes(data: Any) -> bytes:
    import orjson

    try:
        return orjson.dumps(data)
    except TypeError:
        return repr(data).encode()
