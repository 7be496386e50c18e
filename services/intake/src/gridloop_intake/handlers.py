"""What happens on each message and command intake takes — the one table to read first.

Bus (INTAKE stream, `intake.<channel>.<source>`):
  gridloop.report.v1     → take the report (locate, classify, merge, open, decide 立案)
  gridloop.detection.v1  → the same, plus the camera's cooldown fold and the confidence review
  gridloop.rating.v1     → case.rated (the hotline's call-back)
  anything malformed     → gridloop.report.rejected.v1 on notify.<source>, kept in `rejections`
Bus (CASES stream, every `case.*`):
  every event            → the case file (timeline, status, notify.<source>), 结单归档 on close
  case.confirmed         → the acceptance rules again (核实 done)
Commands (REST, Open311):
  submit_report, accept, reject, review, request_confirmation, rate
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from gridloop_contracts import (
    Actor,
    Envelope,
    EnvelopeError,
    FieldError,
    validation_errors,
)
from gridloop_contracts import cases as ev
from gridloop_contracts.base import model_for
from gridloop_contracts.inbound import DetectionV1, RatingV1, ReportRejectedV1, ReportV1
from gridloop_runtime.auth import Principal
from gridloop_runtime.consumer import Permanent
from gridloop_runtime.outbox import Work
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from . import casework
from . import repository as repo
from .casework import Outcome
from .context import Intake
from .domain import acceptance
from .domain.inbound import (
    Channel,
    IncomingReport,
    check_sender,
    check_subject,
    source_of,
)
from .domain.problems import Problem, Refused

log = structlog.get_logger(__name__)

# Problems about the message's envelope keep their names; the rest are fields of its data.
_ENVELOPE_FIELDS = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "body", "data", "data_base64"}
)

InboundHandler = Callable[[Work, Envelope, Channel, str], Awaitable[None]]
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
    """Bound to the service's state; `inbound` and `case_events` are the bus tables."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.inbound: dict[str, InboundHandler] = {
            ReportV1.type_name: self.on_report,
            DetectionV1.type_name: self.on_detection,
            RatingV1.type_name: self.on_rating,
        }

    # -- INTAKE stream -----------------------------------------------------------------------
    async def on_inbound(self, work: Work, env: Envelope) -> None:
        subject = work.subject or ""
        checked = check_subject(subject)
        if isinstance(checked, Problem):
            await self.reject_message(work, subject=subject, env=env, problems=[checked])
            return
        channel, source = checked
        problem = check_sender(channel, source, self.intake.city.source(source), env.type)
        if problem is not None:
            await self.reject_message(work, subject=subject, env=env, problems=[problem])
            return
        try:
            await self.inbound[env.type](work, env, channel, source)
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

    async def on_report(self, work: Work, env: Envelope, channel: Channel, source: str) -> None:
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
        await casework.take_report(work, self.intake, incoming)

    async def on_detection(self, work: Work, env: Envelope, channel: Channel, source: str) -> None:
        det = _parse(DetectionV1, env.data)
        name = self.intake.category_name(det.category_code)
        incoming = IncomingReport.from_detection(det, source=source, category_name=name)
        await casework.take_report(work, self.intake, incoming)

    async def on_rating(self, work: Work, env: Envelope, channel: Channel, source: str) -> None:
        rating = _parse(RatingV1, env.data)
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
        await casework.rate(
            work,
            self.intake,
            case_id,
            rating=rating.rating,
            comment=rating.comment,
            via=f"{channel}:{source}",
            actor=Actor(id=source, role=channel),
            rated_at=rating.rated_at,
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

    # -- CASES stream ---------------------------------------------------------------------------
    async def on_case_event(self, work: Work, env: Envelope) -> None:
        if env.source == work.source:
            return  # intake's own events entered the case file when they were emitted
        try:
            model = model_for(env.type)
        except KeyError:
            log.info("unknown case event type skipped", type=env.type)
            return
        if not issubclass(model, ev.CaseEvent):
            return
        try:
            event = model.model_validate(env.data)
        except ValidationError as exc:
            raise Permanent(f"{env.type} does not match its contract: {exc}") from exc
        await casework.record(work, self.intake, env, event)

    # -- commands (REST and Open311) -------------------------------------------------------------
    async def submit_report(self, work: Work, report: IncomingReport) -> Outcome:
        return await casework.take_report(work, self.intake, report)

    async def accept(
        self,
        work: Work,
        case_id: str,
        who: Principal,
        *,
        category_code: str | None,
        urgency: str | None,
        note: str | None,
    ) -> dict[str, Any]:
        """立案 by an operator (or the shift leader's approval where configured)."""
        city = self.intake.city
        case = await _pending(work, case_id)
        code = category_code or case.category_code
        if code is None:
            raise Refused(Problem("category_code", "a category is needed to accept", "required"))
        category = city.category(code)
        if category is None:
            raise Refused(Problem("category_code", f"unknown category {code!r}", "unknown"))
        cell = city.cell(case.cell_code)
        assert cell is not None
        if not acceptance.on_entry_list(code, cell):
            raise Refused(
                Problem(
                    "category_code",
                    f"{code} is not on the entry list of cell {cell.code}",
                    "not-in-entry-list",
                    409,
                )
            )
        columns: dict[str, Any] = {"category_code": code, "urgency": urgency or case.urgency}
        proposal = {"action": "accept", **columns, "note": note}
        return await self._decide(work, case, who, proposal, columns)

    async def reject(
        self, work: Work, case_id: str, who: Principal, *, reason_code: str, reason: str | None
    ) -> dict[str, Any]:
        """不予立案 with a reason code from intake.yaml."""
        reasons = {r.code: r for r in self.intake.city.intake.reject_reasons}
        if reason_code not in reasons:
            raise Refused(
                Problem(
                    "reason_code",
                    f"unknown reason code {reason_code!r}; one of {sorted(reasons)}",
                    "unknown",
                )
            )
        case = await _pending(work, case_id, also_confirmation=True)
        text = reason or reasons[reason_code].zh
        proposal = {"action": "reject", "reason_code": reason_code, "reason": text}
        return await self._decide(work, case, who, proposal, {})

    async def _decide(
        self,
        work: Work,
        case: repo.CaseRow,
        who: Principal,
        proposal: dict[str, Any],
        columns: dict[str, Any],
    ) -> dict[str, Any]:
        code = columns.get("category_code", case.category_code)
        if acceptance.needs_review(code, self.intake.city.intake) and not who.has("shift-leader"):
            # 值班长审核: the operator's decision waits for the shift leader.
            now = work.now()
            proposal = {**proposal, "by": who.user_id, "at": now.isoformat()}
            await repo.update_case(
                work.conn,
                case.case_id,
                at=now,
                columns={"proposal": proposal, "queue_reason": acceptance.QUEUE_LEADER_REVIEW},
            )
            await repo.add_entries(
                work.conn,
                [
                    repo.Entry(
                        case_id=case.case_id,
                        type="intake.proposed",
                        occurred_at=now,
                        summary=f"受理员 {who.user_id} 提议{_verb(proposal)}，待值班长审核",
                        data=proposal,
                        actor=_actor(who).model_dump(exclude_none=True),
                    )
                ],
                now,
            )
            return {
                "case_id": case.case_id,
                "status": case.status,
                "awaiting": "shift-leader",
                "proposal": proposal,
            }
        updated = await self._execute(work, case, proposal, _actor(who), columns)
        return {"case_id": updated.case_id, "status": updated.status}

    async def _execute(
        self,
        work: Work,
        case: repo.CaseRow,
        proposal: dict[str, Any],
        actor: Actor,
        columns: dict[str, Any],
        approved_by: str | None = None,
    ) -> repo.CaseRow:
        if proposal["action"] == "accept":
            decision = acceptance.Decision(
                "accept", proposal.get("note") or "受理员立案", "operator"
            )
        else:
            decision = acceptance.Decision("reject", proposal["reason"], proposal["reason_code"])
        return await casework.advance(
            work,
            self.intake,
            case,
            decision,
            actor=actor,
            auto=False,
            columns=columns,
            approved_by=approved_by,
        )

    async def review(
        self, work: Work, case_id: str, who: Principal, *, approve: bool, note: str | None
    ) -> dict[str, Any]:
        """值班长审核: carry out the operator's proposal, or send the case back to the queue."""
        case = await _pending(work, case_id, also_confirmation=True)
        if not case.proposal:
            raise Refused(
                Problem("case_id", f"case {case_id} has no decision to review", "no-proposal", 409)
            )
        proposal = dict(case.proposal)
        operator = Actor(id=str(proposal.get("by", "")), role="operator")
        if approve:
            columns = {
                k: proposal[k] for k in ("category_code", "urgency") if proposal.get(k) is not None
            }
            updated = await self._execute(
                work, case, proposal, operator, columns, approved_by=who.user_id
            )
            return {"case_id": case_id, "status": updated.status, "approved": True}
        now = work.now()
        await repo.update_case(
            work.conn,
            case_id,
            at=now,
            columns={"proposal": None, "queue_reason": acceptance.QUEUE_REVIEW_DECLINED},
        )
        await repo.add_entries(
            work.conn,
            [
                repo.Entry(
                    case_id=case_id,
                    type="intake.review_declined",
                    occurred_at=now,
                    summary=f"值班长 {who.user_id} 未同意{_verb(proposal)}：{note or ''}".rstrip(
                        "："
                    ),
                    data={"proposal": proposal, "note": note},
                    actor=_actor(who).model_dump(exclude_none=True),
                )
            ],
            now,
        )
        return {"case_id": case_id, "status": case.status, "approved": False}

    async def request_confirmation(
        self, work: Work, case_id: str, who: Principal, *, reason: str | None
    ) -> dict[str, Any]:
        """An operator sends a supervisor to look before deciding (核实)."""
        case = await _pending(work, case_id)
        decision = acceptance.Decision(
            "confirm", reason or f"受理员 {who.user_id} 要求现场核实", "confirmation"
        )
        updated = await casework.advance(
            work, self.intake, case, decision, actor=_actor(who), auto=False
        )
        return {"case_id": case_id, "status": updated.status}

    async def rate(
        self, work: Work, case_id: str, who: Actor, *, rating: Any, comment: str | None, via: str
    ) -> dict[str, Any]:
        updated = await casework.rate(
            work, self.intake, case_id, rating=rating, comment=comment, via=via, actor=who
        )
        return {"case_id": case_id, "rating": updated.rating}


async def _pending(work: Work, case_id: str, *, also_confirmation: bool = False) -> repo.CaseRow:
    case = await repo.get_case(work.conn, case_id, for_update=True)
    if case is None:
        raise Refused(Problem("case_id", f"no case {case_id!r}", "not-found", 404))
    allowed = {"pending_acceptance"} | ({"pending_confirmation"} if also_confirmation else set())
    if case.status not in allowed:
        raise Refused(
            Problem(
                "case_id",
                f"case {case_id} is {case.status}, not waiting for a decision",
                "not-pending",
                409,
            )
        )
    return case


def _actor(who: Principal) -> Actor:
    role = "shift-leader" if "shift-leader" in who.roles else "operator"
    return Actor(id=who.user_id, role=role, name=who.name or None)


def _verb(proposal: dict[str, Any]) -> str:
    if proposal.get("action") == "accept":
        return f"立案（{proposal.get('category_code')}）"
    return f"不予立案（{proposal.get('reason_code')}）"


def _json_bytes(data: Any) -> bytes:
    import orjson

    try:
        return orjson.dumps(data)
    except TypeError:
        return repr(data).encode()
