"""The audit trail: who did what, when and from where, for every command a service takes or
refuses and every refused read of protected data, in the append-only `audit_log` table of
the service's schema.

An accepted command is recorded in the transaction of its effect (the command runner in
commands.py does it), so the trail and the state never disagree. A refused command is
recorded in its own small transaction. The origin of an HTTP request (client address, user
agent, request id, the authenticated caller, the route) is carried in a context variable set
by `AuditMiddleware` and filled in by the authenticator; bus commands are recorded as coming
from `nats:<subject>`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from gridloop_contracts.problems import Refusal
from starlette.types import ASGIApp, Receive, Scope, Send

from . import tracing
from .db import unnest_args, unnest_upsert
from .writes import Writes, gathered

if TYPE_CHECKING:
    from .db import Conn
    from .outbox import Work

Outcome = Literal["accepted", "refused", "replayed"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Origin:
    """Where the command being served comes from, and who sent it (once authenticated)."""

    where: str
    method: str = ""
    route: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    dept: str | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    # set once a refusal of this request was recorded, so it is recorded once
    refusal_recorded: bool = False

    @property
    def command(self) -> str:
        return f"{self.method} {self.route}" if self.route else self.method or "unknown"


_origin: ContextVar[Origin | None] = ContextVar("gridloop_audit_origin", default=None)


def current_origin() -> Origin | None:
    return _origin.get()


def set_caller(
    user_id: str | None,
    roles: Iterable[str],
    dept: str | None,
    path_params: dict[str, Any],
    route: str | None,
) -> None:
    """Called by the authenticator: the caller and route of the current HTTP request."""
    origin = _origin.get()
    if origin is not None:
        origin.route = route
        origin.user_id = user_id
        origin.roles = tuple(sorted(roles))
        origin.dept = dept
        origin.path_params = {k: str(v) for k, v in path_params.items()}


class AuditMiddleware:
    """Sets the request's origin (client address, user agent, request id) for the audit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        origin = Origin(
            where=f"http:{client[0] if client else 'unknown'}",
            method=scope.get("method", ""),
            user_agent=headers.get("user-agent"),
            request_id=headers.get("x-request-id"),
        )
        token = _origin.set(origin)
        try:
            await self.app(scope, receive, send)
        finally:
            _origin.reset(token)


def route_of(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


_COLUMNS = (
    "at",
    "user_id",
    "roles",
    "dept",
    "command",
    "command_id",
    "case_id",
    "task_id",
    "target",
    "outcome",
    "code",
    "field",
    "reason",
    "status",
    "origin",
    "user_agent",
    "request_id",
    "trace_id",
)
_TYPES = {"at": "timestamptz", "roles": "text[]", "target": "jsonb", "status": "int"}
_INSERT_MANY = unnest_upsert("audit_log", _COLUMNS, _TYPES, ordered=True)
_INSERT = """INSERT INTO audit_log (at, user_id, roles, dept, command, command_id, case_id,
    task_id, target, outcome, code, field, reason, status, origin, user_agent, request_id,
    trace_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"""


# An accepted command's answer stored (for resends) and its audit entry, two pieces of one
# statement (writes.py): the entry is written only when the answer is (a concurrent resend
# that stored it first wins), with the command id the answer's piece returns.
_ANSWER = """INSERT INTO commands (command_id, kind, answer) VALUES ($1, $2, $3)
ON CONFLICT (command_id) DO NOTHING RETURNING command_id"""
# Several answers at once ($1 ids, $2 kinds, $3 answers as JSON text): a group's
# (record_answers), and handling's bus commands of a batch.
STORE_ANSWERS = """INSERT INTO commands (command_id, kind, answer)
SELECT u.k, u.kind, u.a::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, kind, a)
ON CONFLICT (command_id) DO NOTHING RETURNING command_id"""
_INSERT_ANSWERED = """INSERT INTO audit_log (at, user_id, roles, dept, command, command_id,
    case_id, task_id, target, outcome, code, field, reason, status, origin, user_agent,
    request_id, trace_id)
SELECT $1::timestamptz, $2::text, $3::text[], $4::text, $5::text, command_id, $6::text,
    $7::text, $8::jsonb, $9::text, $10::text, $11::text, $12::text, $13::int, $14::text,
    $15::text, $16::text, $17::text
FROM answered RETURNING id"""


def _entry(
    *,
    at: datetime,
    command: str,
    outcome: Outcome,
    command_id: str | None = None,
    case_id: str | None = None,
    task_id: str | None = None,
    code: str | None = None,
    field: str | None = None,
    reason: str | None = None,
    status: int | None = None,
    subject: str | None = None,
    user_id: str | None = None,
    roles: Iterable[str] = (),
    dept: str | None = None,
) -> tuple[Any, ...]:
    """The audit row's values in `_INSERT`'s order (see `record`)."""
    origin = _origin.get()
    trace_id = tracing.current_trace_id()
    if origin is not None:
        where, user_agent, request_id = origin.where, origin.user_agent, origin.request_id
        params = origin.path_params
        if origin.user_id is not None:
            user_id, roles, dept = origin.user_id, origin.roles, origin.dept
        case_id = case_id or params.get("case_id")
        task_id = task_id or params.get("task_id")
    else:
        where = f"nats:{subject}" if subject else "internal"
        user_agent, request_id, params = None, None, {}
    return (
        at,
        user_id,
        sorted(roles),
        dept,
        command,
        command_id,
        case_id,
        task_id,
        params,
        outcome,
        code,
        field,
        reason[:2000] if reason else reason,
        status,
        where,
        user_agent,
        request_id or trace_id,
        trace_id,
    )


async def record(
    conn: Conn,
    *,
    at: datetime,
    command: str,
    outcome: Outcome,
    command_id: str | None = None,
    case_id: str | None = None,
    task_id: str | None = None,
    code: str | None = None,
    field: str | None = None,
    reason: str | None = None,
    status: int | None = None,
    subject: str | None = None,
    user_id: str | None = None,
    roles: Iterable[str] = (),
    dept: str | None = None,
) -> None:
    """Append one entry. Who and from where come from the current HTTP request when there is
    one; otherwise from the arguments (a bus command names its sender) and `subject`."""
    values = _entry(
        at=at,
        command=command,
        outcome=outcome,
        command_id=command_id,
        case_id=case_id,
        task_id=task_id,
        code=code,
        field=field,
        reason=reason,
        status=status,
        subject=subject,
        user_id=user_id,
        roles=roles,
        dept=dept,
    )
    await conn.execute(_INSERT, *values)


async def record_many(
    conn: Conn, entries: Sequence[Mapping[str, Any]], writes: Writes | None = None
) -> None:
    """Append several entries (each `record`'s keyword arguments) with one statement, in
    their order; with `writes`, gathered there (a piece of the unit of work's one write)."""
    if not entries:
        return
    rows = [_entry(**e) for e in entries]
    async with gathered(conn, writes) as out:
        out.add(_INSERT_MANY, *unnest_args(_COLUMNS, _TYPES, rows))


class AnswerTaken(Exception):
    """Another transaction stored an answer for the command id first (raised at the unit of
    work's write, which undoes the transaction)."""


def _answer_stored(returned: tuple[Any, ...]) -> None:
    if not returned[0]:
        raise AnswerTaken


def answered_entry(work: Work, command: str, command_id: str, **fields: Any) -> tuple[Any, ...]:
    """The audit entry of an accepted command, from the current request (or `fields`)."""
    fields.setdefault("subject", work.subject)
    return _entry(
        at=work.now(), command=command, outcome="accepted", command_id=command_id, **fields
    )


def record_answered(work: Work, command: str, command_id: str, answer: Any, **fields: Any) -> None:
    """An accepted command: its answer stored under `command_id` and its entry appended, one
    piece of the unit of work's one write (`Work.writes`). When another transaction stored an
    answer for that id first, nothing is written: that write raises `AnswerTaken`."""
    values = answered_entry(work, command, command_id, **fields)
    work.writes.add(_ANSWER, command_id, command, answer, name="answered")
    entry = values[:5] + values[6:]  # the command id comes from the stored answer
    work.writes.add(_INSERT_ANSWERED, *entry, returns=("count(*)",), check=_answer_stored)


def record_answers(work: Work, answers: Sequence[tuple[str, str, Any, tuple[Any, ...]]]) -> None:
    """Several accepted commands of one unit of work (a group, casework.CaseCommands), each
    (command id, kind, answer as JSON values, `answered_entry`): the answers stored and the
    entries appended, two pieces of the unit of work's one write. When another transaction
    stored an answer for any of the ids first, that write raises `AnswerTaken`, which undoes
    them all."""
    if not answers:
        return
    expected = len(answers)

    def all_stored(returned: tuple[Any, ...]) -> None:
        if returned[0] != expected:
            raise AnswerTaken

    work.writes.add(
        STORE_ANSWERS,
        [a[0] for a in answers],
        [a[1] for a in answers],
        [orjson.dumps(a[2]).decode() for a in answers],
        returns=("count(*)",),
        check=all_stored,
    )
    work.writes.add(_INSERT_MANY, *unnest_args(_COLUMNS, _TYPES, [a[3] for a in answers]))


async def record_work(work: Work, command: str, outcome: Outcome, **fields: Any) -> None:
    """`record` in the unit of work's transaction, at the runtime clock, from its subject:
    one piece of its one write (`Work.writes`)."""
    fields.setdefault("subject", work.subject)
    work.writes.add(_INSERT, *_entry(at=work.now(), command=command, outcome=outcome, **fields))


def mark_refusal_recorded() -> None:
    origin = _origin.get()
    if origin is not None:
        origin.refusal_recorded = True


class RefusedRead(Refusal):
    """A read of protected data (a case, its tasks, the cases behind a score) that the caller
    may not make. The caller gets `reason` with `code` and `status` — for a case out of reach
    404, as if it did not exist, so an id is never confirmed; the audit trail records who tried,
    the route, `audit_code` and `why`. Reads that are allowed record nothing."""

    def __init__(
        self,
        reason: str,
        *,
        why: str,
        field: str | None = None,
        code: str = "not-found",
        status: int = 404,
        audit_code: str | None = None,
        case_id: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(reason, field=field, code=code, status=status)
        self.why = why
        self.audit_code = audit_code or code
        self.case_id = case_id
        self.task_id = task_id


def refusal_needs_record(read: bool = False) -> Origin | None:
    """The origin of the current request when it is a command (or, with `read`, a read of
    protected data) whose refusal nobody recorded."""
    origin = _origin.get()
    if origin is None or origin.refusal_recorded:
        return None
    if origin.method in SAFE_METHODS and not read:
        return None
    return origin
