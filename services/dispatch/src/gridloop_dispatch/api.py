"""REST for the command centre (指挥中心): the manual dispatch queue, dispatch, re-dispatch,
split, recall, listed supervision (挂牌督办), extension decisions (延期审批) and the overdue /
escalated board.

Who is calling: `Authorization: Bearer <jwt>` (roles from the token), or, while
`AUTH_MODE=dev` (as `make run` starts the services), the header `X-User: <user id>` naming a
user of the city's `users.yaml`. Dispatchers (and admins) act; the shift leader and evaluators
read; departments follow their tasks through handling and the `dispatch.<dept>.>` feed and
are refused here with 403. Every command takes an optional `command_id`: sent again, it gets
the first answer and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from gridloop_contracts.base import Instant
from gridloop_contracts.common import NonBlank
from gridloop_runtime import access, commands
from gridloop_runtime.auth import CurrentPrincipal, Principal
from gridloop_runtime.casework import run_case_command
from gridloop_runtime.commands import CommandBody, Refusal
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, runtime_of
from gridloop_runtime.step import Step
from pydantic import BaseModel, ConfigDict, Field

from . import repository as repo
from .domain import routing
from .domain.casefile import CaseFile
from .domain.rules import Units, missing_extension
from .table import Dispatching
from .views import case_view, extension_view, task_view

router = APIRouter(tags=["dispatch"], route_class=JSONRoute)

READERS = frozenset({"dispatcher", "shift-leader", "evaluator", "admin"})
Dept = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]


def dispatching(rt: Runtime) -> Dispatching:
    state: Dispatching = rt.state
    return state


# Who may chase a department by hand (人工催办): the dispatchers, the shift leader, and the
# grid heads for the cases of their cells (seed 003: past the limit the grid head chases).
CHASERS = ("dispatcher", "shift-leader", "grid-head")


def check_dispatcher(who: Principal, allowed: tuple[str, ...] = ("dispatcher",)) -> None:
    if not who.has(*allowed):
        raise Refusal(
            "only the command centre's dispatchers dispatch, recall, supervise and decide "
            "extensions; dispatchers and the shift leader chase (催办)",
            field="Authorization",
            code="forbidden",
            status=403,
        )


async def on_case(
    rt: Runtime,
    who: Principal,
    case_id: str,
    command_id: str | None,
    kind: str,
    rule: Callable[[CaseFile, Step], Any],
    answer: Callable[[CaseFile, Any], dict[str, Any]] | None = None,
    request_id: str | None = None,
    allowed: tuple[str, ...] = ("dispatcher",),
) -> dict[str, Any]:
    """A dispatcher's command on one case: its rule over the case file (the store's, as the
    events'), idempotent on `command_id` (gridloop_runtime.casework.run_case_command). A case
    outside the dispatcher's territory is answered as one that does not exist, as its reads."""
    check_dispatcher(who, allowed)
    assert rt.uow is not None

    readers = READERS | frozenset(allowed)

    def apply(f: CaseFile, step: Step) -> dict[str, Any]:
        if f.case is not None and not access.may_read(who, readers, cell_code=f.case.cell_code):
            if request_id is not None:  # name the request, not its case
                raise access.out_of_reach(
                    "extension request", request_id, who, field="request_id", case_id=case_id
                )
            raise access.out_of_reach("case", case_id, who)
        f.updated_at = step.now()
        outcome = rule(f, step)
        if answer is not None:
            return answer(f, outcome)
        assert f.case is not None  # the rule refused a case it does not know
        return case_view(f.case, f.tasks)

    return await run_case_command(
        rt.uow, dispatching(rt).store, case_id, apply, command_id=command_id, kind=kind
    )


def reach(who: Principal) -> access.Reach:
    """The cases the caller reads here: the command centre's, within its territory."""
    if not who.roles & READERS:
        raise access.forbidden(
            "only the command centre reads dispatch records; departments follow their tasks "
            "through handling and the dispatch.<dept> feed"
        )
    return access.Reach.of(who, READERS)


async def read(rt: Runtime, who: Principal, fn: Callable[[Work], Awaitable[Any]]) -> Any:
    reach(who)
    assert rt.uow is not None
    async with rt.uow() as work:
        return await fn(work)


# -- bodies -------------------------------------------------------------------------------
Command = CommandBody


class UnitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dept: Dept = Field(description="责任单位: the responsible unit (departments.yaml code)")
    co_handlers: list[Dept] = Field(default_factory=list, max_length=10, description="协办单位")
    lead: Dept | None = Field(None, description="牵头单位: the responsible unit or a co-handler")
    deadline: Instant | None = Field(
        None, description="override the category's standard (else computed on the calendar)"
    )
    note: str | None = Field(None, max_length=1000, description="what this unit is to do")

    def units(self) -> Units:
        return Units(self.dept, tuple(self.co_handlers), self.lead, self.deadline, self.note)


class DispatchIn(Command, UnitsIn):
    pass


class RedispatchIn(Command, UnitsIn):
    reason: NonBlank = Field(min_length=2, max_length=1000)
    task_id: str | None = Field(None, description="the task to replace; default every active one")


class SplitIn(Command):
    tasks: list[UnitsIn] = Field(min_length=2, max_length=20)
    reason: NonBlank = Field(min_length=2, max_length=1000)


class RecallIn(Command):
    reason: NonBlank = Field(min_length=2, max_length=1000)
    task_id: str | None = Field(None, description="the task to recall; default every active one")


class SuperviseIn(Command):
    reason: NonBlank = Field(min_length=2, max_length=1000)


class ReminderIn(Command):
    note: NonBlank = Field(
        min_length=2, max_length=1000, description="催办: what the department is told"
    )
    task_id: str | None = Field(None, description="the task to chase; default every active one")


class DecisionIn(Command):
    granted: bool
    new_deadline: Instant | None = Field(
        None, description="granted: the new deadline (default the one the department proposed)"
    )
    reason: str | None = Field(None, max_length=1000, description="required when refused")


# -- reading ------------------------------------------------------------------------------
@router.get("/queue")
async def manual_queue(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """待人工派遣: cases no rule could place (or returned by every candidate, or recalled),
    oldest first, with why and the units routing would suggest."""
    rt = runtime_of(request)
    city = dispatching(rt).rules.city
    cells = reach(principal).cell_patterns()

    async def fetch(work: Work) -> list[dict[str, Any]]:
        cases = await repo.queued_cases(work.conn, limit, cells=cells)
        tasks = await repo.tasks_of_cases(work.conn, [c.case_id for c in cases])
        out = []
        for c in cases:
            found = routing.candidates(
                city,
                c.category_code,
                c.cell_code,
                routing.part_owner(city, c.part_code, c.part_owner_dept),
            )
            view = case_view(c, tasks.get(c.case_id, []))
            view["suggestions"] = [a.dept for a in found if a.dept not in c.returned_by]
            out.append(view)
        return out

    answer: list[dict[str, Any]] = await read(rt, principal, fetch)
    return answer


@router.get("/cases/{case_id}")
async def get_case(case_id: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """A case as the command centre sees it: every task (who held it, from when to when), its
    extension requests and the chase steps still to come."""
    rt = runtime_of(request)
    rules = dispatching(rt).rules

    async def fetch(work: Work) -> dict[str, Any]:
        case = await repo.get_case(work.conn, case_id)
        if case is None:
            raise access.unknown("case", case_id)
        if not access.may_read(principal, READERS, cell_code=case.cell_code):
            raise access.out_of_reach("case", case_id, principal)
        tasks = await repo.tasks_of_case(work.conn, case_id)
        extensions = await repo.list_extensions(work.conn, status=None, case_id=case_id, limit=1000)
        return {
            **case_view(case, tasks, rules.deadlines.calendar),
            "extensions": [extension_view(x) for x in extensions],
            "pending_timers": rules.pending_chase(case, tasks),
        }

    answer: dict[str, Any] = await read(rt, principal, fetch)
    return answer


@router.get("/board")
async def board(
    request: Request,
    principal: CurrentPrincipal,
    view: Annotated[
        Literal["late", "overdue", "escalated", "active", "supervised"], Query()
    ] = "late",
    dept: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """超期 / 督办 board: active tasks that are overdue or escalated (highest level first),
    every active task, or the cases under listed supervision."""
    rt = runtime_of(request)
    cells = reach(principal).cell_patterns()

    async def fetch(work: Work) -> list[dict[str, Any]]:
        if view == "supervised":
            cases = await repo.supervised_cases(work.conn, limit, cells=cells)
            tasks = await repo.tasks_of_cases(work.conn, [c.case_id for c in cases])
            return [case_view(c, tasks.get(c.case_id, [])) for c in cases]
        rows = await repo.board(work.conn, view=view, dept=dept, limit=limit, cells=cells)
        return [
            {
                **task_view(r.task),
                "category_code": r.case.category_code,
                "cell_code": r.case.cell_code,
                "description": r.case.description,
                "supervised": r.case.supervised_at is not None,
            }
            for r in rows
        ]

    answer: list[dict[str, Any]] = await read(rt, principal, fetch)
    return answer


@router.get("/extensions")
async def extensions(
    request: Request,
    principal: CurrentPrincipal,
    status: Annotated[Literal["pending", "granted", "refused", "moot", "all"], Query()] = "pending",
    case_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """延期申请: pending requests (oldest first) for a dispatcher to grant or refuse."""
    cells = reach(principal).cell_patterns()

    async def fetch(work: Work) -> list[dict[str, Any]]:
        found = await repo.list_extensions(
            work.conn,
            status=None if status == "all" else status,
            case_id=case_id,
            limit=limit,
            cells=cells,
        )
        return [extension_view(x) for x in found]

    answer: list[dict[str, Any]] = await read(runtime_of(request), principal, fetch)
    return answer


# -- commands -----------------------------------------------------------------------------
@router.post("/cases/{case_id}/dispatch")
async def dispatch(
    case_id: str, body: DispatchIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """人工派遣: place a case from the manual queue (case.dispatched kind=manual)."""
    rt = runtime_of(request)
    rules = dispatching(rt).rules
    return await on_case(
        rt,
        principal,
        case_id,
        body.command_id,
        "dispatch",
        lambda f, step: rules.dispatch(f, step, principal, body.units()),
    )


@router.post("/cases/{case_id}/redispatch")
async def redispatch(
    case_id: str, body: RedispatchIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """改派: recall the task (or every active task) and dispatch to another unit."""
    rt = runtime_of(request)
    rules = dispatching(rt).rules
    return await on_case(
        rt,
        principal,
        case_id,
        body.command_id,
        "redispatch",
        lambda f, step: rules.redispatch(
            f, step, principal, body.units(), body.reason, body.task_id
        ),
    )


@router.post("/cases/{case_id}/split")
async def split(
    case_id: str, body: SplitIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """拆分: one task per unit (active tasks are recalled first), each with its deadline."""
    rt = runtime_of(request)
    rules = dispatching(rt).rules
    return await on_case(
        rt,
        principal,
        case_id,
        body.command_id,
        "split",
        lambda f, step: rules.split(
            f, step, principal, [t.units() for t in body.tasks], body.reason
        ),
    )


@router.post("/cases/{case_id}/recall")
async def recall(
    case_id: str, body: RecallIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """撤回: take the task back; the case waits in the manual queue."""
    rt = runtime_of(request)
    rules = dispatching(rt).rules
    return await on_case(
        rt,
        principal,
        case_id,
        body.command_id,
        "recall",
        lambda f, step: rules.recall(f, step, principal, body.reason, body.task_id),
    )


@router.post("/cases/{case_id}/reminder")
async def remind(
    case_id: str, body: ReminderIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """人工催办: a dispatcher, the shift leader, or a grid head (their cells) chases the
    department holding the case now (case.reminded with manual=true +
    dispatch.<dept>.reminder)."""
    rt = runtime_of(request)
    rules = dispatching(rt).rules
    role: Literal["dispatcher", "shift-leader", "grid-head"] = (
        "dispatcher"
        if principal.has("dispatcher")
        else "shift-leader"
        if principal.has("shift-leader")
        else "grid-head"
    )
    return await on_case(
        rt,
        principal,
        case_id,
        body.command_id,
        "reminder",
        lambda f, step: rules.remind(f, step, principal, role, body.note, body.task_id),
        allowed=CHASERS,
    )


@router.post("/cases/{case_id}/supervision")
async def supervise(
    case_id: str, body: SuperviseIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """挂牌督办: put the case under listed supervision (case.supervised)."""
    rt = runtime_of(request)
    rules = dispatching(rt).rules
    return await on_case(
        rt,
        principal,
        case_id,
        body.command_id,
        "supervise",
        lambda f, step: rules.supervise(f, step, principal, body.reason),
    )


@router.post("/extensions/{request_id}/decision")
async def decide_extension(
    request_id: str, body: DecisionIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """延期审批: grant (the deadline and its timers move) or refuse (a reason is required)."""
    rt = runtime_of(request)
    check_dispatcher(principal)
    assert rt.uow is not None and rt.pool is not None
    async with rt.pool.acquire() as conn:
        case_id = await repo.case_of_extension(conn, request_id)
    if case_id is None:  # refused (and audited) as a command, as any other refusal

        async def missing(_: Work) -> dict[str, Any]:
            raise missing_extension(request_id)

        return await commands.run_command(rt.uow, body.command_id, "extension", missing)
    rules = dispatching(rt).rules
    return await on_case(
        rt,
        principal,
        case_id,
        body.command_id,
        "extension",
        lambda f, step: rules.decide_extension(
            f,
            step,
            request_id,
            principal,
            granted=body.granted,
            new_deadline=body.new_deadline,
            reason=body.reason,
        ),
        answer=lambda _, request: extension_view(request),
        request_id=request_id,
    )
