"""REST for the supervision side: supervisors list their tasks and submit verdicts (核查) and
confirmations (核实); the shift leader (值班长) approves closings, assigns unstaffed tasks and
records absences.

Who is calling: `Authorization: Bearer <jwt>` (roles from the token), or, while
`AUTH_MODE=dev` (as `make run` starts the services), the header `X-User: <user id>` naming a
user of the city's `users.yaml`, whose roles are taken from there. Only the task's supervisor
or the other supervisor of the cell (AB 角) may verify or confirm; departments and dispatchers
are refused with 403 and a reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from gridloop_contracts import Attachment, AttachmentRef, Location
from gridloop_contracts.base import Instant
from gridloop_contracts.problems import Refusal
from gridloop_runtime import access, commands, evidence
from gridloop_runtime.auth import CurrentPrincipal, Principal
from gridloop_runtime.casework import CommandRule
from gridloop_runtime.commands import CommandBody
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, runtime_of
from gridloop_runtime.step import Step
from pydantic import Field, HttpUrl

from . import repository as repo
from .domain.casefile import Case
from .domain.rules import Caller, case_of_task
from .domain.state import CaseState
from .domain.tasks import Task, TaskStatus
from .domain.views import absence_view, case_view, task_view
from .handlers import VerifyService

router = APIRouter(tags=["verify"], route_class=JSONRoute)

# Who sees every task in their territory (the supervisors see their own).
OVERSEERS = frozenset({"shift-leader", "admin", "evaluator"})
# Who reads a case's verification record in their territory: the overseers and the grid heads
# (their cells). Supervisors read the cases they verify — the task's supervisor and the cell's
# AB 角, exactly those who may act on it; departments and the command centre read none.
READERS = OVERSEERS | {"grid-head"}


def check_reader(p: Principal) -> None:
    """Refuse (403, audited) a caller whose role reads no verification record at all."""
    if not (p.has(*READERS) or "supervisor" in p.roles):
        raise access.forbidden(
            f"role {sorted(p.roles)} may not read the supervision centre's records; "
            "departments follow their cases through handling, the command centre through dispatch"
        )


def may_read(rt: Runtime, p: Principal, case: Case, tasks: list[Task]) -> bool:
    """Whether `p` may read this case and these of its tasks (gridloop_runtime.access)."""
    people: set[str | None] = set()
    if "supervisor" in p.roles:
        people.update(service_of(rt).ctx.supervisors_of(case.cell_code) or ())
        people.update(t.supervisor_id for t in tasks)
    return access.may_read(p, READERS, cell_code=case.cell_code, people=people)


async def may_read_case(rt: Runtime, who: Principal, case_id: str) -> bool:
    """Whether `who` reads this case's verification record (and so its site photos)."""
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        case = await repo.get_case(conn, case_id)
        tasks = await repo.tasks_of_case(conn, case_id) if case is not None else []
    return case is not None and may_read(rt, who, case, tasks)


def site_evidence(service: VerifyService) -> evidence.Evidence:
    """Site photos: uploaded here by supervisors for verifications."""
    return evidence.Evidence(
        service.ctx.settings,
        uploaders=frozenset({"supervisor"}),
        may_read_case=may_read_case,
        timezone=ZoneInfo(service.ctx.city.district.timezone),
    )


def overseen(p: Principal, rule: CommandRule[CaseState]) -> CommandRule[CaseState]:
    """The shift leader's `rule`, on the cases of their territory only: elsewhere a case is
    answered as one that does not exist, as its reads. (Other callers are refused by the
    rule itself, by role.)"""

    def checked(state: CaseState, step: Step) -> dict[str, Any]:
        cell = state.case.cell_code
        if (
            state.known
            and p.has("shift-leader")
            and not access.may_read(p, OVERSEERS, cell_code=cell)
        ):
            raise access.out_of_reach("case", state.case.case_id, p)
        return rule(state, step)

    return checked


def service_of(rt: Runtime) -> VerifyService:
    service: VerifyService = rt.state
    return service


def caller(p: Principal) -> Caller:
    return Caller(p.user_id, p.roles, p.name)


async def run_command(
    rt: Runtime,
    command_id: str | None,
    kind: str,
    fn: Callable[[Work], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """One transaction; a repeated `command_id` gets the first answer and changes nothing."""
    assert rt.uow is not None
    return await commands.run_command(rt.uow, command_id, kind, fn)


async def run_on_case(
    rt: Runtime,
    command_id: str | None,
    kind: str,
    case_id: str,
    rule: CommandRule[CaseState],
    task_id: str | None = None,
) -> dict[str, Any]:
    """A command on one case: its state loaded (no absences: these rules never assign by
    presence), the pure rule applied, saved; idempotent and audited as `run_command`."""
    group = service_of(rt).commands
    assert group is not None
    return await group.run(case_id, rule, command_id=command_id, kind=kind, task_id=task_id)


async def read(rt: Runtime, fn: Callable[[Work], Awaitable[Any]]) -> Any:
    assert rt.uow is not None
    async with rt.uow() as work:
        return await fn(work)


# -- bodies -------------------------------------------------------------------------------
Command = CommandBody


class OnSite(Command):
    notes: str | None = Field(None, max_length=2000)
    photos: list[HttpUrl] = Field(default_factory=list, max_length=20)
    attachment_ids: list[Annotated[str, Field(pattern=r"^a[0-9a-f]{24}$")]] = Field(
        default_factory=list,
        max_length=evidence.MAX_IDS,
        description="site photos uploaded first (POST /attachments) by the caller",
    )
    position: Location | None = Field(None, description="where the supervisor stood (WGS-84)")

    def attachments(self) -> list[Attachment]:
        return [Attachment(url=u, kind="photo") for u in self.photos]


class VerificationIn(OnSite):
    passed: bool = Field(description="核查通过 (true) or 不通过 (false: rework)")
    falsified: bool = Field(
        False,
        description="弄虚作假: the reported result is false (not done, photos of another place); "
        "only with passed=false, notes and at least one photo as evidence",
    )


class ConfirmationIn(OnSite):
    confirmed: bool = Field(description="核实属实 (true) or 不属实 (false)")


class ApprovalIn(Command):
    approved: bool
    notes: str | None = Field(None, max_length=2000)
    falsified: bool = Field(
        False,
        description="弄虚作假 found in the evidence: refuse (approved=false) with notes and at "
        "least one photo; counted as a falsified result against the department",
    )
    photos: list[HttpUrl] = Field(default_factory=list, max_length=20)


class AssignIn(Command):
    supervisor_id: str = Field(min_length=1, max_length=64)


class AbsenceIn(Command):
    user_id: str = Field(min_length=1, max_length=64)
    starts_at: Instant
    ends_at: Instant
    reason: str | None = Field(None, max_length=500)


# -- supervisors --------------------------------------------------------------------------
@router.get("/tasks")
async def list_tasks(
    request: Request,
    principal: CurrentPrincipal,
    status: Annotated[Literal["open", "done", "all"], Query()] = "open",
    purpose: Annotated[Literal["verification", "confirmation"] | None, Query()] = None,
    supervisor_id: Annotated[str | None, Query(max_length=64)] = None,
    unassigned: Annotated[bool, Query(description="only tasks nobody holds")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """My tasks (a supervisor), or anybody's (shift leader, evaluator), soonest due first."""
    if not principal.roles & OVERSEERS:
        if "supervisor" not in principal.roles:
            raise access.forbidden(
                "only supervisors and the supervision centre list verification tasks"
            )
        if supervisor_id not in (None, principal.user_id) or unassigned:
            raise access.forbidden("a supervisor lists only their own tasks", field="supervisor_id")
        supervisor_id = principal.user_id
    # the overseers list the tasks of their territory; a supervisor their own, wherever
    cells = (
        access.Reach.of(principal, OVERSEERS).cell_patterns()
        if principal.roles & OVERSEERS
        else None
    )
    statuses: list[str] = {
        "open": [str(TaskStatus.OPEN)],
        "done": [str(s) for s in TaskStatus if s != TaskStatus.OPEN],
        "all": [str(s) for s in TaskStatus],
    }[status]

    async def fetch(work: Work) -> list[repo.TaskListing]:
        return await repo.list_tasks(
            work.conn,
            supervisor_id=supervisor_id,
            statuses=statuses,
            purpose=purpose,
            unassigned=unassigned,
            limit=limit,
            cells=cells,
        )

    listed: list[repo.TaskListing] = await read(runtime_of(request), fetch)
    return [task_view(x.task, x.case) for x in listed]


@router.get("/tasks/{task_id}")
async def get_task(task_id: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """A task with its case, for its supervisor, the cell's AB 角 and the overseers."""
    rt = runtime_of(request)
    check_reader(principal)

    async def fetch(work: Work) -> dict[str, Any]:
        task = await repo.get_task(work.conn, task_id)
        if task is None:
            raise access.unknown("task", task_id, field="task_id")
        case = await repo.get_case(work.conn, task.case_id)
        assert case is not None
        if not may_read(rt, principal, case, [task]):
            raise access.out_of_reach(
                "task", task_id, principal, field="task_id", case_id=case.case_id, task_id=task_id
            )
        return task_view(task, case)

    answer: dict[str, Any] = await read(rt, fetch)
    return answer


@router.post("/tasks/{task_id}/verification")
async def submit_verification(
    task_id: str, body: VerificationIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """核查: pass closes the case (or sends it to the shift leader where the category needs
    approval); fail sends it back to the department for rework, and the Nth failure escalates."""
    rules = service_of(rt := runtime_of(request)).rules
    return await on_site(
        rt,
        principal,
        body,
        task_id,
        "verification",
        lambda state, step, files: rules.verify(
            state,
            step,
            task_id,
            caller(principal),
            passed=body.passed,
            notes=body.notes,
            photos=body.attachments(),
            position=body.position,
            files=files,
            falsified=body.falsified,
        ),
    )


async def on_site(
    rt: Runtime,
    principal: Principal,
    body: OnSite,
    task_id: str,
    kind: str,
    rule: Callable[[CaseState, Step, Sequence[AttachmentRef]], dict[str, Any]],
) -> dict[str, Any]:
    """A verdict from the site on one case, with the site photos it names: the caller's own
    uploads (else 422 naming attachment_ids.<i>), flagged when taken far from where the
    supervisor says they stood, tied to the case in the same transaction."""
    service = service_of(rt)
    case_id = case_of_task(task_id)
    if not body.attachment_ids:  # no uploads to claim: a command on the case, in a group
        return await run_on_case(
            rt, body.command_id, kind, case_id, lambda state, step: rule(state, step, ()), task_id
        )
    near = (body.position.lat, body.position.lon) if body.position else None

    async def apply(work: Work) -> dict[str, Any]:
        refs = await evidence.claim(
            work.conn, body.attachment_ids, principal, service.ctx.settings, near=near
        )
        states = await service.store.lean.load(work.conn, [case_id])
        answer = rule(states[case_id], work, refs)
        await service.store.lean.save(work.conn, [states[case_id]], work.writes)
        await evidence.bind(work.conn, refs, case_id, work.now())
        return answer

    assert rt.uow is not None
    return await commands.run_command(
        rt.uow, body.command_id, kind, apply, case_id=case_id, task_id=task_id
    )


@router.post("/tasks/{task_id}/confirmation")
async def submit_confirmation(
    task_id: str, body: ConfirmationIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """核实: whether the reported problem is really there; intake then accepts or rejects."""
    rules = service_of(rt := runtime_of(request)).rules
    return await on_site(
        rt,
        principal,
        body,
        task_id,
        "confirmation",
        lambda state, step, files: rules.confirm(
            state,
            step,
            task_id,
            caller(principal),
            confirmed=body.confirmed,
            notes=body.notes,
            photos=body.attachments(),
            position=body.position,
            files=files,
        ),
    )


# -- the shift leader ---------------------------------------------------------------------
@router.post("/tasks/{task_id}/assign")
async def assign_task(
    task_id: str, body: AssignIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Hand an open task to a supervisor (when nobody of the cell is present)."""
    rules = service_of(rt := runtime_of(request)).rules
    return await run_on_case(
        rt,
        body.command_id,
        "assign",
        case_of_task(task_id),
        overseen(
            principal,
            lambda state, step: rules.assign(
                state, step, task_id, caller(principal), supervisor_id=body.supervisor_id
            ),
        ),
        task_id,
    )


@router.get("/approvals")
async def list_approvals(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Cases whose verification passed and whose category needs the shift leader to close."""
    if not principal.roles & OVERSEERS:
        raise access.forbidden("only the supervision centre sees the approval queue")

    cells = access.Reach.of(principal, OVERSEERS).cell_patterns()

    async def fetch(work: Work) -> list[dict[str, Any]]:
        return [case_view(c) for c in await repo.awaiting_approval(work.conn, limit, cells=cells)]

    answer: list[dict[str, Any]] = await read(runtime_of(request), fetch)
    return answer


@router.post("/cases/{case_id}/approval")
async def approve_closing(
    case_id: str, body: ApprovalIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """值班长审批结案: approve closes; refuse (with notes) sends the case back for rework."""
    rules = service_of(rt := runtime_of(request)).rules
    return await run_on_case(
        rt,
        body.command_id,
        "approval",
        case_id,
        overseen(
            principal,
            lambda state, step: rules.approve(
                state,
                step,
                caller(principal),
                approved=body.approved,
                notes=body.notes,
                falsified=body.falsified,
                photos=[Attachment(url=u, kind="photo") for u in body.photos],
            ),
        ),
    )


@router.get("/cases/{case_id}")
async def get_case(case_id: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """The verification history of a case: every task and its verdict, with the case's place,
    result and evidence — for the overseers and grid heads of its territory and its own
    supervisors; to anyone else a case that does not exist."""
    check_reader(principal)
    rt = runtime_of(request)

    async def fetch(work: Work) -> dict[str, Any]:
        case = await repo.get_case(work.conn, case_id)
        if case is None:
            raise access.unknown("case", case_id)
        tasks = await repo.tasks_of_case(work.conn, case_id)
        if not may_read(rt, principal, case, tasks):
            raise access.out_of_reach("case", case_id, principal)
        return {**case_view(case), "tasks": [task_view(t, case) for t in tasks]}

    answer: dict[str, Any] = await read(rt, fetch)
    return answer


@router.get("/absences")
async def list_absences(
    request: Request,
    principal: CurrentPrincipal,
    current: Annotated[bool, Query(description="only absences not yet over")] = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    if not principal.roles & OVERSEERS:
        raise Refusal(
            "only the supervision centre reads absences",
            field="Authorization",
            code="forbidden",
            status=403,
        )
    rt = runtime_of(request)

    async def fetch(work: Work) -> list[dict[str, Any]]:
        at: datetime | None = work.now() if current else None
        return [
            absence_view(a) for a in await repo.list_absences(work.conn, current_at=at, limit=limit)
        ]

    answer: list[dict[str, Any]] = await read(rt, fetch)
    return answer


@router.post("/absences", status_code=201)
async def add_absence(
    body: AbsenceIn, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """请假: while it lasts, the supervisor's tasks go to the cell's backup (AB 角); open tasks
    move at once when it has begun, else when it begins."""
    rt = runtime_of(request)
    h = service_of(rt)
    return await run_command(
        rt,
        body.command_id,
        "absence",
        lambda work: h.add_absence(
            work,
            caller(principal),
            user_id=body.user_id,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            reason=body.reason,
        ),
    )


@router.delete("/absences/{absence_id}")
async def end_absence(
    absence_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """End an absence now (one not begun yet is dropped). Tasks already handed over stay."""
    rt = runtime_of(request)
    h = service_of(rt)
    return await run_command(
        rt, None, "end-absence", lambda work: h.end_absence(work, caller(principal), absence_id)
    )
