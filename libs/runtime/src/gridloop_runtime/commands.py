"""Idempotent commands and refusals: one shape for REST and bus commands in every service.

`Refusal` lives in `gridloop_contracts.problems` (no imports, for pure domain code) and is
re-exported here.

A command carries a `command_id`; its outcome is stored in the same transaction as its
effect, so sending it again returns the first answer and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from gridloop_contracts.problems import Refusal as Refusal
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from . import audit
from .db import Conn, again_on_conflict
from .inputs import public_errors
from .outbox import UnitOfWorkFactory, Work


def install_refusal_handler(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> JSONResponse:
        await _audit_refusal(request, exc)
        return JSONResponse({"detail": [exc.as_error()], **exc.extra}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A command whose request does not match its contract is refused before any code
        of the service runs: audited too (who tried what), with the first field named. The
        answer never echoes the input and its texts are made encodable (inputs.py): what
        the sender made up (NaN, a lone surrogate, an unknown key) must not break it."""
        errors = public_errors(exc.errors())
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")[:200] or None
        reason = str(first.get("msg", "invalid request"))
        await _audit_refusal(request, Refusal(reason, field=where, code="invalid", status=422))
        return JSONResponse({"detail": errors}, status_code=422)


async def _audit_refusal(request: Request, exc: Refusal) -> None:
    """A command refused before (or outside) the command runner — no token, wrong role, a
    rule of the service — is audited here, in its own transaction; so is a refused read of
    protected data (audit.RefusedRead), with the reason the caller was not told."""
    read = exc if isinstance(exc, audit.RefusedRead) else None
    origin = audit.refusal_needs_record(read=read is not None)
    runtime: Any = getattr(request.app.state, "runtime", None)
    pool = getattr(runtime, "pool", None)
    if origin is None or pool is None:
        return
    if origin.route is None:
        origin.route = audit.route_of(request.scope)
        origin.path_params = {k: str(v) for k, v in request.path_params.items()}
    async with pool.acquire() as conn:
        await audit.record(
            conn,
            at=runtime.clock.now(),
            command=origin.command,
            outcome="refused",
            case_id=read.case_id if read else None,
            task_id=read.task_id if read else None,
            code=read.audit_code if read else exc.code,
            field=exc.field,
            reason=read.why if read else exc.reason,
            status=exc.status,
        )
    origin.refusal_recorded = True


async def seen_command(conn: Conn, command_id: str) -> dict[str, Any] | None:
    """The stored answer of a command already executed, or None."""
    row = await conn.fetchrow("SELECT answer FROM commands WHERE command_id = $1", command_id)
    return None if row is None else dict(row["answer"])


async def seen_commands(conn: Conn, command_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored answers of those of these commands already executed, in one statement."""
    rows = await conn.fetch(
        "SELECT command_id, answer FROM commands WHERE command_id = ANY($1::text[])",
        list(command_ids),
    )
    return {r["command_id"]: dict(r["answer"]) for r in rows}


class CommandBody(BaseModel):
    """The body every REST command shares: the sender's id makes it safe to resend."""

    model_config = ConfigDict(extra="forbid")

    command_id: str | None = Field(
        None, min_length=1, max_length=128, description="resend-safe: same id, same answer"
    )


async def run_command(
    uow: UnitOfWorkFactory,
    command_id: str | None,
    kind: str,
    fn: Callable[[Work], Awaitable[dict[str, Any]]],
    *,
    case_id: str | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    """Run a command in one transaction; a repeated `command_id` gets the first answer and
    changes nothing. A resend racing the first send (another replica, a client retry) gets
    the answer the first one got, whichever transaction commits first. A transaction that
    PostgreSQL undid for a concurrent one runs again (`CONFLICT_ATTEMPTS`).

    Every run is audited (audit.py): an accepted command in the transaction of its effect, a refused
    one in a transaction of its own, a resend as replayed. `case_id` and `task_id` default to
    the request's path parameters of those names."""
    # the last attempt's conflict: 503 with Retry-After (limits.DATABASE_BUSY)
    return await again_on_conflict(
        lambda: _run_once(uow, command_id, kind, fn, case_id, task_id),
        "command",
        command=kind,
        command_id=command_id,
    )


async def _run_once(
    uow: UnitOfWorkFactory,
    command_id: str | None,
    kind: str,
    fn: Callable[[Work], Awaitable[dict[str, Any]]],
    case_id: str | None,
    task_id: str | None,
) -> dict[str, Any]:
    ids: dict[str, Any] = {"command_id": command_id, "case_id": case_id, "task_id": task_id}
    try:
        # No look-up of the id first: a resend runs like a first send until its answer is
        # stored, where the id is found taken (or its rules refuse what the first send already
        # did) and its transaction is undone; it then gets the stored answer. A first send, by
        # far the common case, saves the round trip.
        # The answer and the entry go with the command's writes, in one statement; if the
        # same command ran meanwhile, that statement raises `AnswerTaken` and ours is undone.
        async with uow(generic_plans=True) as work:
            answer = await fn(work)
            if not command_id:
                await audit.record_work(work, kind, "accepted", **ids)
            else:
                audit.record_answered(
                    work,
                    kind,
                    command_id,
                    to_jsonable_python(answer),
                    case_id=case_id,
                    task_id=task_id,
                )
            return answer
    except (audit.AnswerTaken, Refusal) as exc:
        if command_id:
            async with uow() as work:
                first = await seen_command(work.conn, command_id)
                if first is not None:
                    await audit.record_work(work, kind, "replayed", **ids)
            if first is not None:
                return first
        if isinstance(exc, audit.AnswerTaken):
            raise RuntimeError("command answer vanished") from exc
        # a case out of the caller's reach: the caller is told "not found", the trail why
        hidden = exc if isinstance(exc, audit.RefusedRead) else None
        async with uow() as work:
            await audit.record_work(
                work,
                kind,
                "refused",
                code=hidden.audit_code if hidden else exc.code,
                field=exc.field,
                reason=hidden.why if hidden else exc.reason,
                status=exc.status,
                **ids,
            )
        audit.mark_refusal_recorded()
        raise
