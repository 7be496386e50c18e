"""Operator endpoints every service has: the dead-letter queue (list, replay), the outbox
as a re-publishable log (re-publish a time range after the bus lost messages), the audit
trail of the service's commands, and — where the service computes deadlines — how far ahead
its working calendar is official (calendarwatch)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from gridloop_contracts.base import Instant
from pydantic import BaseModel

from . import audit, calendarwatch
from .auth import Principal, require
from .commands import Refusal
from .inputs import JSONRoute
from .outbox import republish

router = APIRouter(prefix="/admin", tags=["operations"], route_class=JSONRoute)
Admin = Annotated[Principal, Depends(require("admin"))]
AuditReader = Annotated[Principal, Depends(require("admin", "evaluator"))]


class DeadLetter(BaseModel):
    id: int
    consumer: str
    subject: str
    event_id: str | None
    error: str
    deliveries: int
    created_at: datetime
    replayed_at: datetime | None
    headers: dict[str, Any]
    body: str


def _rt(request: Request) -> Any:
    return request.app.state.runtime


@router.get("/calendar", response_model=calendarwatch.CalendarStatus)
async def calendar_status(request: Request, _: Admin) -> calendarwatch.CalendarStatus:
    """How many days ahead the working calendar is official, and whether the alarm is on
    (fewer than CALENDAR_ALARM_DAYS); 404 where the service computes no deadlines."""
    status = calendarwatch.check(_rt(request))
    if status is None:
        raise Refusal(
            "this service computes no deadlines", field="service", code="not-found", status=404
        )
    return status


@router.get("/dlq", response_model=list[DeadLetter])
async def list_dead_letters(
    request: Request,
    _: Admin,
    pending_only: bool = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetter]:
    """Messages this service could not process, with their errors (newest first)."""
    rt = _rt(request)
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM dead_letters WHERE ($1 = false OR replayed_at IS NULL) "
            "ORDER BY id DESC LIMIT $2",
            pending_only,
            limit,
        )
    return [
        DeadLetter(
            **{k: r[k] for k in DeadLetter.model_fields if k != "body"},
            body=bytes(r["body"]).decode("utf-8", "replace"),
        )
        for r in rows
    ]


@router.post("/dlq/{dead_letter_id}/replay")
async def replay_dead_letter(
    request: Request, dead_letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)], _: Admin
) -> dict[str, Any]:
    """Publish the original message again to its subject (after the cause was fixed). The
    consumers' inboxes make this safe: it is handled once."""
    rt = _rt(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT * FROM dead_letters WHERE id = $1 FOR UPDATE", dead_letter_id
        )
        if row is None:
            raise Refusal(
                f"no dead letter {dead_letter_id}",
                field="dead_letter_id",
                code="not-found",
                status=404,
            )
        headers = {k: v for k, v in dict(row["headers"]).items() if k.lower() != "nats-msg-id"}
        # A fresh message id: JetStream would drop the original one inside its duplicate window.
        headers["Nats-Msg-Id"] = f"replay-{dead_letter_id}-{row['event_id'] or ''}"
        await rt.js.publish(row["subject"], bytes(row["body"]), headers=headers)
        await conn.execute(
            "UPDATE dead_letters SET replayed_at = now() WHERE id = $1", dead_letter_id
        )
        await audit.record(conn, at=rt.clock.now(), command="dlq.replay", outcome="accepted")
    return {"replayed": dead_letter_id, "subject": row["subject"]}


class RepublishRequest(BaseModel):
    since: Instant
    until: Instant


@router.post("/outbox/republish")
async def republish_outbox(request: Request, body: RepublishRequest, _: Admin) -> dict[str, int]:
    """Re-publish every event this service recorded in [since, until): the recovery after the
    bus lost acknowledged messages. Consumers are idempotent, so this is always safe."""
    if body.until <= body.since:
        raise Refusal("until must be after since", field="until", code="bad-range", status=422)
    rt = _rt(request)
    n = await republish(rt.pool, rt.js, body.since, body.until)
    async with rt.pool.acquire() as conn:
        await audit.record(
            conn,
            at=rt.clock.now(),
            command="outbox.republish",
            outcome="accepted",
            reason=f"{n} events from {body.since.isoformat()} until {body.until.isoformat()}",
        )
    return {"republished": n}


class AuditEntry(BaseModel):
    id: int
    at: datetime
    user_id: str | None
    roles: list[str]
    dept: str | None
    command: str
    command_id: str | None
    case_id: str | None
    task_id: str | None
    target: dict[str, Any]
    outcome: str
    code: str | None
    field: str | None
    reason: str | None
    status: int | None
    origin: str
    user_agent: str | None
    request_id: str | None
    trace_id: str | None


@router.get("/audit", response_model=list[AuditEntry])
async def read_audit(
    request: Request,
    _: AuditReader,
    case_id: Annotated[str | None, Query(max_length=128)] = None,
    user: Annotated[str | None, Query(max_length=128)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    """The audit trail of this service's commands, accepted and refused (newest first): who
    (user, roles), what (command, case, task, outcome and reason), when (the service clock)
    and from where (client address or bus subject, user agent, request id)."""
    if since is not None and until is not None and until <= since:
        raise Refusal("until must be after since", field="until", code="bad-range", status=422)
    rt = _rt(request)
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR case_id = $1) "
            "AND ($2::text IS NULL OR user_id = $2) "
            "AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4) "
            "ORDER BY id DESC LIMIT $5",
            case_id,
            user,
            since,
            until,
            limit,
        )
    return [AuditEntry(**{k: r[k] for k in AuditEntry.model_fields}) for r in rows]
