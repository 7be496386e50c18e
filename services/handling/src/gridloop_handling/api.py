"""REST for departments (处置反馈): the inbox, one case, and the five commands — the same
validation and execution as the NATS commands on `handling.<dept>.<action>`.

Who is calling: `Authorization: Bearer <jwt>` (roles and `dept` from the token), or, while
`AUTH_MODE=dev`, the header `X-User: <user id>` naming a user of the city's `users.yaml`.
A department's staff (role `department`) read and act only on their own department's
cases; the command centre and evaluators (dispatcher, shift-leader, evaluator, admin) may
read any inbox but act on none (separation of duties).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse
from gridloop_contracts import Attachment
from gridloop_contracts.base import Instant
from gridloop_contracts.common import NonBlank
from gridloop_contracts.department import (
    DepartmentCommand,
    ExtensionCommand,
    HandledCommand,
    ProgressCommand,
    ReturnCommand,
    SignCommand,
)
from gridloop_contracts.problems import Refusal
from gridloop_runtime import access, evidence
from gridloop_runtime.auth import CurrentPrincipal, Principal
from gridloop_runtime.commands import run_command
from gridloop_runtime.evidence import MAX_IDS
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, runtime_of
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import repository as repo
from .domain import commands as cmds
from .domain.inbox import InboxState, Sort, Stage
from .domain.tasks import task_for
from .handlers import Service, keep_taken
from .views import task_view

router = APIRouter(tags=["handling"], route_class=JSONRoute)

# Who may read any department's inbox (the command centre, evaluators).
READERS = frozenset({"dispatcher", "shift-leader", "evaluator", "admin"})

Dept = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]+$", max_length=64)]
CaseId = Annotated[str, Path(min_length=1, max_length=128)]


def service_of(rt: Runtime) -> Service:
    service: Service = rt.state
    return service


def _known(h: Service, dept: str) -> None:
    if not h.ctx.is_department(dept):
        raise Refusal(
            f"unknown department {dept!r} (departments.yaml)",
            field="dept",
            code="unknown-department",
            status=404,
        )


def check_reader(h: Service, p: Principal, dept: str) -> access.Reach:
    """Who reads a department's inbox, and how much of it: its own staff all of it, the
    command centre and evaluators the cases in their territory (gridloop_runtime.access)."""
    _known(h, dept)
    if "department" in p.roles and p.dept == dept:
        return access.Reach(None, dept=dept)
    if p.roles & READERS:
        return access.Reach.of(p, READERS)
    if "department" in p.roles:
        raise access.forbidden(
            f"you are staff of {p.dept!r}: a department sees only its own cases",
            field="dept",
            code="wrong-department",
        )
    raise access.forbidden(f"roles {sorted(p.roles)} may not read a department's inbox")


async def may_read_case(rt: Runtime, who: Principal, case_id: str) -> bool:
    """Who reads a case's results (and their photos): the staff of a department with a
    task on it, and the command centre and evaluators within their territory."""
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        tasks = await repo.tasks_of_case(conn, case_id)
        case = await repo.get_case(conn, case_id) if tasks else None
    depts = [t.dept for t in tasks]
    if not tasks:
        return False
    if "department" in who.roles and who.dept in depts:
        return True
    return bool(who.roles & READERS) and access.Reach.of(who, READERS).sees(
        (case or {}).get("cell_code"), depts
    )


def result_evidence(h: Service) -> evidence.Evidence:
    """After photos: uploaded here by department staff for a result."""
    return evidence.Evidence(
        h.ctx.settings,
        uploaders=frozenset({"department"}),
        may_read_case=may_read_case,
        timezone=ZoneInfo(h.ctx.city.district.timezone),
    )


def check_actor(h: Service, p: Principal, dept: str) -> None:
    _known(h, dept)
    if "department" not in p.roles:
        raise Refusal(
            f"only a department's own staff act on its cases (role department); you have "
            f"{sorted(p.roles)}",
            field="Authorization",
            code="forbidden",
            status=403,
        )
    if p.dept != dept:
        raise Refusal(
            f"you are staff of {p.dept!r}: a department acts only on its own cases",
            field="dept",
            code="wrong-department",
            status=403,
        )


# -- bodies -------------------------------------------------------------------------------
class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_id: str | None = Field(
        None, min_length=1, max_length=128, description="resend-safe: same id, same answer"
    )
    task_id: str | None = Field(None, min_length=1, max_length=128)


class ReturnIn(CommandIn):
    reason: NonBlank = Field(min_length=2, max_length=1000, description="why it is not ours (退回)")


class ExtensionIn(CommandIn):
    reason: NonBlank = Field(min_length=2, max_length=1000)
    proposed_deadline: Instant


class ProgressIn(CommandIn):
    note: NonBlank = Field(min_length=1, max_length=2000)
    evidence: list[Attachment] = Field(default_factory=list, max_length=20)


class ResultIn(CommandIn):
    result: NonBlank = Field(min_length=1, max_length=2000, description="what was done (处置结果)")
    evidence: list[Attachment] = Field(default_factory=list, max_length=20)
    attachment_ids: list[Annotated[str, Field(pattern=r"^a[0-9a-f]{24}$")]] = Field(
        default_factory=list,
        max_length=MAX_IDS,
        description="after photos uploaded first (POST /attachments) by the caller",
    )
    completed_at: Instant | None = Field(None, description="when the work was done; now")


async def _execute(
    request: Request,
    principal: Principal,
    dept: str,
    case_id: str,
    model: type[DepartmentCommand],
    body: CommandIn | None,
    attachment_ids: Sequence[str] = (),
    **fields: Any,
) -> JSONResponse:
    rt = runtime_of(request)
    h = service_of(rt)
    check_actor(h, principal, dept)
    assert rt.uow is not None
    values: dict[str, Any] = {
        # Without an id the command is not resend-safe: each call is a new command.
        "command_id": (body.command_id if body else None) or str(uuid.uuid4()),
        "task_id": body.task_id if body else None,
        "case_id": case_id,
        "dept": dept,
        "by": principal.user_id,
        **fields,
    }
    if model is HandledCommand and values.get("completed_at") is None:
        values["completed_at"] = rt.clock.now()
    try:
        cmd = model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise Refusal(
            err["msg"],
            field=".".join(str(p) for p in err["loc"]),
            code="invalid",
            status=422,
        ) from exc
    ran: list[dict[str, Any]] = []

    async def apply(work: Work) -> dict[str, Any]:
        # the photos named are the caller's uploads (422 naming attachment_ids.<i> else),
        # tied to the case in the command's transaction
        settings = h.ctx.settings
        refs = await evidence.claim(work.conn, attachment_ids, principal, settings)
        states = await h.store.load(work.conn, [case_id])
        done = h.rules.execute(
            states[case_id], cmd, work, by_name=principal.name or None, files=refs
        )
        assert done is not None  # REST never parks
        # kept on the bus, so that a database restored to an earlier moment runs it again
        keep_taken(work, cmd, by_name=principal.name or None, files=refs)
        await h.store.save(work.conn, [states[case_id]], work.writes)
        await evidence.bind(work.conn, refs, case_id, work.now())
        ran.append(done.stored)
        return ran[-1]

    stored = await run_command(
        rt.uow,
        cmds.command_key(dept, cmd.command_id),
        cmd.subject_token,
        apply,
        case_id=case_id,
    )
    # Not what this call produced: the stored answer of the first command with this id.
    replay = not ran or stored is not ran[-1]
    if replay and not cmds.same_command(stored.get("fingerprint"), cmd):
        raise cmds.duplicate(cmd)
    # A command first sent over NATS kept its answer without the task: the task as it stands.
    task = stored["task"] if "task" in stored else await _task_now(rt, dept, case_id)
    content = {**stored["answer"], "task": task}
    return JSONResponse(content, headers={"Idempotent-Replay": "true"} if replay else None)


async def _task_now(rt: Runtime, dept: str, case_id: str) -> dict[str, Any] | None:
    """The department's task on the case as it stands, as a command's answer shows it."""
    h = service_of(rt)
    assert rt.uow is not None
    async with rt.uow() as work:
        tasks = await repo.tasks_of_case(work.conn, case_id)
        task = task_for(tasks, dept)
        case = await repo.get_case(work.conn, case_id) if task is not None else None
        now = work.now()
    if task is None:
        return None
    return task_view(task, case, now=now, calendar=h.ctx.calendar, city=h.ctx.city)


# -- the inbox ----------------------------------------------------------------------------
@router.get("/departments/{dept}/cases")
async def inbox(
    request: Request,
    principal: CurrentPrincipal,
    dept: Dept,
    state: Annotated[InboxState, Query(description="open (default), closed: history")] = "open",
    stage: Annotated[Stage | None, Query()] = None,
    urgency: Annotated[str | None, Query(pattern="^(normal|urgent)$")] = None,
    overdue: Annotated[bool | None, Query()] = None,
    role: Annotated[str | None, Query(pattern="^(sole|lead|co-handler)$")] = None,
    category_code: Annotated[str | None, Query(max_length=16, description="code or prefix")] = None,
    cell_code: Annotated[str | None, Query(max_length=32, description="code or prefix")] = None,
    subdistrict_code: Annotated[str | None, Query(max_length=16)] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="text in description/address")
    ] = None,
    sort: Annotated[Sort | None, Query(description="default: deadline; closed: -ended_at")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    """待办 / 已办: a department's cases with deadline countdown, overdue flag, urgency,
    location and the report's evidence; filter and sort; `state=closed` is the history."""
    rt = runtime_of(request)
    h = service_of(rt)
    reach = check_reader(h, principal, dept)
    assert rt.uow is not None
    async with rt.uow() as work:
        now = work.now()
        query = repo.InboxQuery(
            dept=dept,
            cells=reach.cell_patterns(),
            now=now,
            state=state,
            stage=stage,
            urgency=urgency,
            overdue=overdue,
            role=role,
            category_code=category_code,
            cell_code=cell_code,
            subdistrict_code=subdistrict_code,
            text=q,
            sort=sort or ("-ended_at" if state == "closed" else "deadline"),
            limit=limit,
            offset=offset,
        )
        rows, total = await repo.inbox(work.conn, query)
    items = [task_view(t, c, now=now, calendar=h.ctx.calendar, city=h.ctx.city) for t, c in rows]
    return {"dept": dept, "now": now, "total": total, "items": items}


@router.get("/departments/{dept}/summary")
async def summary(request: Request, principal: CurrentPrincipal, dept: Dept) -> dict[str, Any]:
    """The inbox's counters: to sign, in progress, awaiting verification, overdue, ended."""
    rt = runtime_of(request)
    h = service_of(rt)
    reach = check_reader(h, principal, dept)
    assert rt.uow is not None
    async with rt.uow() as work:
        counts = await repo.summary(work.conn, dept, work.now(), cells=reach.cell_patterns())
    return {"dept": dept, **counts}


@router.get("/departments/{dept}/cases/{case_id}")
async def one_case(
    request: Request, principal: CurrentPrincipal, dept: Dept, case_id: CaseId
) -> dict[str, Any]:
    """The department's task on a case, with the case and every step so far."""
    rt = runtime_of(request)
    h = service_of(rt)
    reach = check_reader(h, principal, dept)
    # out of the caller's reach, a case is answered exactly as one never dispatched here
    missing = f"no case {case_id!r} has been dispatched to {dept!r}"
    assert rt.uow is not None
    async with rt.uow() as work:
        tasks = await repo.tasks_of_case(work.conn, case_id)
        task = task_for(tasks, dept)
        if task is not None:
            case = await repo.get_case(work.conn, case_id)
            if not reach.sees((case or {}).get("cell_code"), [t.dept for t in tasks]):
                raise access.out_of_reach("case", case_id, principal, reason=missing)
            mine = [t.task_id for t in tasks if t.dept == dept]
            history = await repo.history(work.conn, mine)
            now = work.now()
    if task is None:
        raise Refusal(missing, field="case_id", code="not-found", status=404)
    return task_view(task, case, now=now, calendar=h.ctx.calendar, city=h.ctx.city, history=history)


# -- commands -----------------------------------------------------------------------------
@router.post("/departments/{dept}/cases/{case_id}/sign")
async def sign(
    request: Request,
    principal: CurrentPrincipal,
    dept: Dept,
    case_id: CaseId,
    body: Annotated[CommandIn | None, Body()] = None,
) -> JSONResponse:
    """签收: sign for the task."""
    return await _execute(request, principal, dept, case_id, SignCommand, body)


@router.post("/departments/{dept}/cases/{case_id}/return")
async def return_case(
    request: Request, principal: CurrentPrincipal, dept: Dept, case_id: CaseId, body: ReturnIn
) -> JSONResponse:
    """退回: not ours, with the reason; the command centre re-routes it (lead unit only)."""
    return await _execute(
        request, principal, dept, case_id, ReturnCommand, body, reason=body.reason
    )


@router.post("/departments/{dept}/cases/{case_id}/extension")
async def extension(
    request: Request, principal: CurrentPrincipal, dept: Dept, case_id: CaseId, body: ExtensionIn
) -> JSONResponse:
    """延期申请: ask the dispatcher for a later deadline (after sign-in, lead unit only)."""
    return await _execute(
        request,
        principal,
        dept,
        case_id,
        ExtensionCommand,
        body,
        reason=body.reason,
        proposed_deadline=body.proposed_deadline,
    )


@router.post("/departments/{dept}/cases/{case_id}/progress")
async def progress(
    request: Request, principal: CurrentPrincipal, dept: Dept, case_id: CaseId, body: ProgressIn
) -> JSONResponse:
    """处置进展: a progress note; from a co-handling unit, its contribution to the result."""
    return await _execute(
        request,
        principal,
        dept,
        case_id,
        ProgressCommand,
        body,
        note=body.note,
        evidence=body.evidence,
    )


@router.post("/departments/{dept}/cases/{case_id}/result")
async def result(
    request: Request, principal: CurrentPrincipal, dept: Dept, case_id: CaseId, body: ResultIn
) -> JSONResponse:
    """处置反馈: the result with evidence and the time of completion (after sign-in, lead unit
    only); verification (核查) follows."""
    return await _execute(
        request,
        principal,
        dept,
        case_id,
        HandledCommand,
        body,
        body.attachment_ids,
        result=body.result,
        evidence=body.evidence,
        completed_at=body.completed_at,
    )
