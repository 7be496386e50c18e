"""What happens on each event, timer and command dispatch takes — the one table to read first.

Bus (CASES stream, durable `dispatch-cases`):
  case.accepted            → 派遣: the part's owner, else the routing rule's unit (category ×
                             territory), with a deadline on the working calendar:
                             case.dispatched (kind=initial) + dispatch.<dept>.assigned to every
                             party; unroutable → the manual dispatch queue (待人工派遣), with why.
                             Emergencies are escalated at once (case.escalated).
  case.signed              → 签收: the sign-in timer is cancelled
  case.returned            → 退回: the next candidate unit (case.dispatched kind=redispatch) or
                             the manual queue with the reason; a returned part of a split case
                             always goes to the queue
  case.extension_requested → 延期申请: pending until a dispatcher decides (REST)
  case.handled             → 处置反馈: the task's chase timers are cancelled
  case.reworked            → 返工: the same department, a new deadline: case.dispatched
                             (kind=rework) + dispatch.<dept>.rework
  case.closed              → 结案: every timer of the case is cancelled
Timers (rows, claimed FOR UPDATE SKIP LOCKED by the runtime):
  sign_in                  → case.overdue (stage=sign_in) + dispatch.<dept>.overdue
  remind                   → 催办: case.reminded + dispatch.<dept>.reminder
  overdue                  → 超期: case.overdue + dispatch.<dept>.overdue
  escalate:<level>         → 督办: case.escalated + dispatch.<dept>.escalated (calendar.yaml ladder)
Commands (REST, `api.py`; dispatchers):
  dispatch (from the queue, kind=manual), redispatch, split, recall (→ case.recalled +
  dispatch.<dept>.recalled, the case back to the queue), supervise (挂牌督办 → case.supervised),
  decide_extension (→ case.extension_decided; granted moves the deadline and its timers)

Locks: every handler takes the case row first (FOR UPDATE); chase timers of a new deadline are
new rows and old ones are cancelled with SKIP LOCKED, so a handler never waits for a timer row
a runner holds, and a runner's handler that waits for the case sees the change and does
nothing. Each chase step fires at most once: the task records it (reminded_at, overdue_at,
escalation_level) under that lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from gridloop_contracts import Actor, Attachment, Envelope, Location, MaskedReporter, subjects
from gridloop_contracts import cases as ev
from gridloop_contracts.department import (
    CaseSummary,
    DepartmentMessage,
    TaskAssigned,
    TaskEscalated,
    TaskOverdue,
    TaskRecalled,
    TaskReminder,
    TaskRework,
)
from gridloop_runtime.auth import Principal
from gridloop_runtime.commands import Refusal
from gridloop_runtime.consumer import Permanent
from gridloop_runtime.outbox import Work
from gridloop_runtime.timers import Timer
from pydantic import ValidationError

from . import repository as repo
from .context import Dispatch
from .domain import chasing, privacy, routing
from .domain.casefile import (
    Case,
    CaseState,
    DispatchKind,
    Task,
    TaskStatus,
    check_extension,
    check_open,
)
from .domain.routing import Assignment, Unroutable
from .views import case_view, extension_view

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=ev.CaseEvent)
CaseHandler = Callable[[Work, Envelope], Awaitable[None]]
TimerHandler = Callable[[Work, Timer], Awaitable[None]]

SYSTEM = Actor(id="dispatch", role="system")
LISTED_SUPERVISION = "listed-supervision"


def parse(env: Envelope, model: type[E]) -> E:
    """The event's data as its contract model; invalid data can never succeed: DLQ at once."""
    try:
        return model.model_validate(env.data)
    except ValidationError as exc:
        raise Permanent(f"{env.type} {env.id}: {exc}") from exc


@dataclass(frozen=True)
class Units:
    """A dispatcher's choice: the responsible unit, co-handlers, lead, optional deadline."""

    dept: str
    co_handlers: tuple[str, ...] = ()
    lead: str | None = None
    deadline: datetime | None = None
    note: str | None = None

    def assignment(self) -> Assignment:
        return Assignment(self.dept, self.co_handlers, self.lead, "routing")


class Handlers:
    def __init__(self, ctx: Dispatch) -> None:
        self.ctx = ctx
        self.city = ctx.city
        self.deadlines = ctx.deadlines
        self.tz = ZoneInfo(ctx.city.calendar.timezone)
        consumed: list[tuple[type[ev.CaseEvent], CaseHandler]] = [
            (ev.CaseAccepted, self.on_accepted),
            (ev.CaseSigned, self.on_signed),
            (ev.CaseReturned, self.on_returned),
            (ev.CaseExtensionRequested, self.on_extension_requested),
            (ev.CaseHandled, self.on_handled),
            (ev.CaseReworked, self.on_reworked),
            (ev.CaseClosed, self.on_closed),
        ]
        self.events: dict[str, CaseHandler] = {m.type_name: h for m, h in consumed}
        # The consumer's filter: only these subjects reach dispatch.
        self.subjects = sorted(f"case.{m.subject_token}" for m, _ in consumed)
        self.kinds = chasing.kinds(self.deadlines.levels)
        self.timers: dict[str, TimerHandler] = {
            chasing.SIGN_IN: self.on_sign_in_due,
            chasing.REMIND: self.on_remind_due,
            chasing.OVERDUE: self.on_overdue,
            **{
                chasing.escalate_kind(level): self.on_escalation_due
                for level in self.deadlines.levels
            },
        }

    async def on_case_event(self, work: Work, env: Envelope) -> None:
        handler = self.events.get(env.type)
        if handler is not None:
            await handler(work, env)

    # -- events ----------------------------------------------------------------------
    async def on_accepted(self, work: Work, env: Envelope) -> None:
        """立案 → 派遣 (or the manual queue)."""
        e = parse(env, ev.CaseAccepted)
        now = work.now()
        case = self._case_from(e)
        if not await repo.claim_case(work.conn, case, now):
            return  # accepted once; a second acceptance of the same case changes nothing
        found = routing.route(
            self.city,
            case.category_code,
            case.cell_code,
            routing.part_owner(self.city, case.part_code, case.part_owner_dept),
        )
        tasks: list[Task] = []
        if isinstance(found, Unroutable):
            case.to_queue(found.reason, now)
        else:
            tasks.append(await self._dispatch(work, case, found, kind="initial", actor=SYSTEM))
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, tasks)

    async def on_signed(self, work: Work, env: Envelope) -> None:
        """签收: the sign-in clock stops."""
        e = parse(env, ev.CaseSigned)
        found = await self._event_task(work, e)
        if found is None:
            return
        _, task, _ = found
        if task.sign(e.occurred_at):
            await repo.cancel(work.conn, [task.timer_key()], [chasing.SIGN_IN])
            await repo.save_tasks(work.conn, [task])

    async def on_handled(self, work: Work, env: Envelope) -> None:
        """处置反馈: the department is done with this task until verification says otherwise."""
        e = parse(env, ev.CaseHandled)
        found = await self._event_task(work, e)
        if found is None:
            return
        case, task, tasks = found
        if not task.report_handled(e.completed_at):
            return
        now = work.now()
        await self._stop_chasing(work, [task])
        await repo.settle_extensions(work.conn, [task.task_id], "已处置 / handled")
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [task])

    async def on_returned(self, work: Work, env: Envelope) -> None:
        """退回: re-route to the next candidate, or the manual queue with the reason."""
        e = parse(env, ev.CaseReturned)
        found = await self._event_task(work, e)
        if found is None:
            return
        case, task, tasks = found
        if not task.active:
            return
        now = work.now()
        await self._stop_chasing(work, [task])
        task.end(TaskStatus.RETURNED, e.occurred_at, e.reason)
        await repo.settle_extensions(work.conn, [task.task_id], "已退回 / returned")
        case.returned(task.dept)
        why = f"{self.ctx.dept_name(task.dept)}退回：{e.reason} / returned by {task.dept}"
        changed = [task]
        if task.kind == "split":
            # A part of a split case was cut by a dispatcher: a dispatcher places it again.
            case.to_queue(why, now)
        else:
            busy = {t.dept for t in tasks if t.active}
            nxt = routing.route(
                self.city,
                case.category_code,
                case.cell_code,
                routing.part_owner(self.city, case.part_code, case.part_owner_dept),
                exclude=[*case.returned_by, *busy],
            )
            if isinstance(nxt, Unroutable):
                case.to_queue(f"{why}；{nxt.reason}", now)
            else:
                new = await self._dispatch(
                    work, case, nxt, kind="redispatch", actor=SYSTEM, reason=why
                )
                tasks.append(new)
                changed.append(new)
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, changed)

    async def on_extension_requested(self, work: Work, env: Envelope) -> None:
        """延期申请: kept for a dispatcher to grant or refuse."""
        e = parse(env, ev.CaseExtensionRequested)
        found = await self._event_task(work, e)
        if found is None:
            return
        _, task, _ = found
        request = repo.Extension(
            request_id=e.request_id or env.id,
            case_id=task.case_id,
            task_id=task.task_id,
            dept=task.dept,
            reason=e.reason,
            proposed_deadline=e.proposed_deadline,
            current_deadline=task.deadline,
            requested_at=e.occurred_at,
            requested_by=e.actor.id if e.actor else None,
            status="pending" if task.active else "moot",
        )
        await repo.add_extension(work.conn, request)

    async def on_reworked(self, work: Work, env: Envelope) -> None:
        """返工: back to the same department with a new deadline and a fresh ladder."""
        e = parse(env, ev.CaseReworked)
        case = await repo.get_case(work.conn, e.case_id, for_update=True)
        if case is None:
            log.warning("rework of a case dispatch never saw", case_id=e.case_id)
            return
        tasks = await repo.tasks_of_case(work.conn, case.case_id)
        task = _find(tasks, e.task_id, e.dept, prefer_active=False)
        if task is None:
            log.warning("rework without a task to send back", case_id=e.case_id)
            return
        now = work.now()
        category = self.ctx.category(case.category_code)
        if e.new_deadline is not None and e.new_deadline > now:
            deadline = e.new_deadline
        elif category is not None:
            deadline = self.deadlines.deadline(
                now,
                category,
                case.urgency,
                self.ctx.dept_kind(task.dept),
                bool(task.co_handlers),
            )
        else:
            deadline = now + (task.deadline - task.window_start)
        await self._stop_chasing(work, [task])
        task.rework(now, deadline, e.count)
        if case.closed:  # reopened after a dissatisfied rating
            case.state = CaseState.DISPATCHED
            case.closed_at = None
        dims = self._task_dims(case, task)
        work.emit(
            ev.CaseDispatched(
                **dims,
                occurred_at=now,
                actor=SYSTEM,
                co_handlers=list(task.co_handlers),
                lead=task.lead,
                kind="rework",
                urgency=case.urgency,
                reason=e.reason,
            )
        )
        self._feed(
            work,
            case,
            task,
            lambda dept, summary: TaskRework(
                dept=dept,
                case=summary,
                sent_at=now,
                count=task.reworks,
                reason=e.reason,
                note=f"核查未通过，第{task.reworks}次返工 / rework #{task.reworks}",
            ),
            "rework",
        )
        await repo.schedule(work.conn, self._plan(case, task))
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [task])

    async def on_closed(self, work: Work, env: Envelope) -> None:
        """结案: nothing is chased any more."""
        e = parse(env, ev.CaseClosed)
        case = await repo.get_case(work.conn, e.case_id, for_update=True)
        if case is None or case.closed:
            return
        tasks = await repo.tasks_of_case(work.conn, case.case_id)
        await self._stop_chasing(work, tasks)
        ended = [
            t for t in tasks if t.status in (TaskStatus.OPEN, TaskStatus.SIGNED, TaskStatus.HANDLED)
        ]
        for t in ended:
            t.end(TaskStatus.CLOSED, e.occurred_at, "结案 / closed")
        await repo.settle_extensions(work.conn, [t.task_id for t in tasks], "已结案 / closed")
        case.close(e.occurred_at)
        await repo.save_case(work.conn, case, work.now())
        await repo.save_tasks(work.conn, ended)

    # -- timers ----------------------------------------------------------------------
    async def on_sign_in_due(self, work: Work, timer: Timer) -> None:
        """签收超时: the department has not signed for its task."""
        found = await self._timer_task(work, timer)
        if found is None:
            return
        case, task = found
        assert task.sign_in_due is not None
        if not task.miss_sign_in(timer.due_at):
            return
        now = work.now()
        work.emit(
            ev.CaseOverdue(
                **{**self._task_dims(case, task), "deadline": task.sign_in_due},
                occurred_at=timer.due_at,
                actor=SYSTEM,
                stage="sign_in",
            )
        )
        self._feed(
            work,
            case,
            task,
            lambda dept, summary: TaskOverdue(
                dept=dept,
                case=summary,
                sent_at=now,
                stage="sign_in",
                note=f"签收超时（应于 {self._local(task.sign_in_due)} 前签收）/ not signed for",
            ),
            "overdue",
            depts=[task.dept],
        )
        await repo.save_tasks(work.conn, [task])

    async def on_remind_due(self, work: Work, timer: Timer) -> None:
        """催办: the deadline is near."""
        found = await self._timer_task(work, timer)
        if found is None:
            return
        case, task = found
        now = work.now()
        if not task.remind(now):
            return
        work.emit(
            ev.CaseReminded(
                **self._task_dims(case, task),
                occurred_at=timer.due_at,
                actor=SYSTEM,
                stage="handling",
                level=1,
            )
        )
        self._feed(
            work,
            case,
            task,
            lambda dept, summary: TaskReminder(
                dept=dept,
                case=summary,
                sent_at=now,
                stage="handling",
                note=f"催办：请于 {self._local(task.deadline)} 前处置完毕 / due soon",
            ),
            "reminder",
        )
        await repo.save_tasks(work.conn, [task])

    async def on_overdue(self, work: Work, timer: Timer) -> None:
        """超期: the deadline passed without a result."""
        found = await self._timer_task(work, timer)
        if found is None:
            return
        case, task = found
        if not task.fall_overdue(task.deadline):
            return
        now = work.now()
        work.emit(
            ev.CaseOverdue(
                **self._task_dims(case, task),
                occurred_at=task.deadline,
                actor=SYSTEM,
                stage="handling",
            )
        )
        self._feed(
            work,
            case,
            task,
            lambda dept, summary: TaskOverdue(
                dept=dept,
                case=summary,
                sent_at=now,
                stage="handling",
                note=f"已超期（期限 {self._local(task.deadline)}）/ overdue",
            ),
            "overdue",
        )
        await repo.save_tasks(work.conn, [task])

    async def on_escalation_due(self, work: Work, timer: Timer) -> None:
        """督办: one step up the ladder (calendar.yaml `escalation`)."""
        found = await self._timer_task(work, timer)
        if found is None:
            return
        case, task = found
        level = int(timer.payload["level"])
        to = self.deadlines.rung(level)
        if not task.escalate(level, timer.due_at):
            return
        reason = f"超期未处置，督办至{to} / overdue since {task.deadline.isoformat()}"
        self._escalated(work, case, task, level, to, reason, timer.due_at)
        await repo.save_tasks(work.conn, [task])

    # -- commands --------------------------------------------------------------------
    async def dispatch(
        self, work: Work, case_id: str, who: Principal, units: Units
    ) -> dict[str, Any]:
        """人工派遣: a dispatcher places a case waiting in the manual queue."""
        case, tasks = await self._case_for_command(work, case_id, who)
        if not case.queued:
            raise Refusal(
                f"case {case_id} is not waiting in the manual queue: redispatch or split it",
                field="case_id",
                code="not-queued",
            )
        self._check_units(units, "", work.now())
        now = work.now()
        task = await self._dispatch(
            work,
            case,
            units.assignment(),
            kind="manual",
            actor=_actor(who),
            deadline=units.deadline,
            note=units.note,
            reason=case.queue_reason,
        )
        case.unqueue()
        tasks.append(task)
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [task])
        return case_view(case, tasks)

    async def redispatch(
        self,
        work: Work,
        case_id: str,
        who: Principal,
        units: Units,
        reason: str,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """改派: the task (or every active task) is recalled and the case goes to `units`."""
        case, tasks = await self._case_for_command(work, case_id, who)
        self._check_units(units, "", work.now())
        targets = self._targets(tasks, task_id)
        now = work.now()
        actor = _actor(who)
        await self._recall(work, case, targets, actor, f"改派 / redispatched: {reason}")
        task = await self._dispatch(
            work,
            case,
            units.assignment(),
            kind="redispatch",
            actor=actor,
            deadline=units.deadline,
            note=units.note,
            reason=reason,
        )
        case.unqueue()
        tasks.append(task)
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [*targets, task])
        return case_view(case, tasks)

    async def split(
        self, work: Work, case_id: str, who: Principal, parts: Sequence[Units], reason: str
    ) -> dict[str, Any]:
        """拆分: one case, several tasks for several units, each with its own deadline."""
        case, tasks = await self._case_for_command(work, case_id, who)
        depts = [p.dept for p in parts]
        for i, part in enumerate(parts):
            self._check_units(part, f"tasks.{i}.", work.now())
            if part.dept in depts[:i]:
                raise Refusal(
                    f"{part.dept!r} has a part already: give it one task",
                    field=f"tasks.{i}.dept",
                    code="duplicate-dept",
                    status=422,
                )
        targets = [t for t in tasks if t.active]
        now = work.now()
        actor = _actor(who)
        await self._recall(work, case, targets, actor, f"拆分 / split: {reason}")
        new = [
            await self._dispatch(
                work,
                case,
                p.assignment(),
                kind="split",
                actor=actor,
                deadline=p.deadline,
                note=p.note,
                reason=reason,
            )
            for p in parts
        ]
        case.unqueue()
        tasks.extend(new)
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [*targets, *new])
        return case_view(case, tasks)

    async def recall(
        self, work: Work, case_id: str, who: Principal, reason: str, task_id: str | None = None
    ) -> dict[str, Any]:
        """撤回: the command centre takes the task back; the case waits in the queue."""
        case, tasks = await self._case_for_command(work, case_id, who)
        targets = self._targets(tasks, task_id)
        if not targets:
            raise Refusal(
                f"no department holds case {case_id}: nothing to recall",
                field="case_id",
                code="nothing-active",
            )
        now = work.now()
        await self._recall(work, case, targets, _actor(who), reason)
        case.to_queue(f"指挥中心撤回：{reason} / recalled", now)
        case.settle(tasks, now)
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, targets)
        return case_view(case, tasks)

    async def supervise(
        self, work: Work, case_id: str, who: Principal, reason: str
    ) -> dict[str, Any]:
        """挂牌督办: the case is put under listed supervision; its departments are told."""
        case, tasks = await self._case_for_command(work, case_id, who)
        now = work.now()
        case.supervise(now, reason, who.user_id)
        active = [t for t in tasks if t.active]
        work.emit(
            ev.CaseSupervised(
                **case.dims(),
                occurred_at=now,
                actor=_actor(who),
                reason=reason,
                dept=active[0].dept if active else None,
            )
        )

        def notice(level: int) -> Callable[[str, CaseSummary], DepartmentMessage]:
            def build(dept: str, summary: CaseSummary) -> DepartmentMessage:
                return TaskEscalated(
                    dept=dept,
                    case=summary,
                    sent_at=now,
                    level=level,
                    to_role=LISTED_SUPERVISION,
                    note=f"挂牌督办：{reason} / under listed supervision",
                )

            return build

        for task in active:
            self._feed(work, case, task, notice(task.escalation_level), "escalated")
        await repo.save_case(work.conn, case, now)
        return case_view(case, tasks)

    async def decide_extension(
        self,
        work: Work,
        request_id: str,
        who: Principal,
        *,
        granted: bool,
        new_deadline: datetime | None,
        reason: str | None,
    ) -> dict[str, Any]:
        """延期审批: granted moves the deadline (and its reminder, overdue and ladder)."""
        request = await repo.get_extension(work.conn, request_id)
        if request is None:
            raise Refusal(
                f"no extension request {request_id!r}",
                field="request_id",
                code="not-found",
                status=404,
            )
        case, tasks = await self._case_for_command(work, request.case_id, who)
        if request.status != "pending":
            raise Refusal(
                f"extension request {request_id} is {request.status} already",
                field="request_id",
                code="decided",
            )
        task = _find(tasks, request.task_id, None, prefer_active=False)
        assert task is not None  # requests reference their task
        now = work.now()
        if granted:
            deadline = new_deadline or request.proposed_deadline
            cap = self.deadlines.cap(task.dispatched_at, self.ctx.dept_kind(task.dept))
            check_extension(task, deadline, now, cap)
            await self._stop_chasing(work, [task])
            task.extend(now, deadline)
            await repo.schedule(work.conn, self._plan(case, task))
        elif not (reason and reason.strip()):
            raise Refusal(
                "say why the extension is refused: the department reads it",
                field="reason",
                code="reason-required",
                status=422,
            )
        request.status = "granted" if granted else "refused"
        request.decided_at = now
        request.decided_by = who.user_id
        request.new_deadline = task.deadline if granted else None
        request.decision_reason = reason
        work.emit(
            ev.CaseExtensionDecided(
                **self._task_dims(case, task),
                occurred_at=now,
                actor=_actor(who),
                granted=granted,
                new_deadline=request.new_deadline,
                reason=reason,
                request_id=request.request_id,
            )
        )
        await repo.save_extension(work.conn, request)
        await repo.save_tasks(work.conn, [task])
        return extension_view(request)

    # -- the pieces ------------------------------------------------------------------
    def _case_from(self, e: ev.CaseAccepted) -> Case:
        cell = self.city.cell(e.cell_code)
        reporter = privacy.masked(e.reporter)
        return Case(
            case_id=e.case_id,
            category_code=e.category_code,
            cell_code=e.cell_code,
            accepted_at=e.occurred_at,
            community_code=e.community_code or (cell.community_code if cell else None),
            subdistrict_code=e.subdistrict_code or (cell.subdistrict_code if cell else None),
            urgency=e.urgency,
            description=e.description,
            address=e.address,
            location=e.location.model_dump() if e.location else None,
            part_code=e.part_code,
            part_owner_dept=e.part_owner_dept,
            reporter=reporter.model_dump(exclude_none=True) if reporter else None,
            attachments=[a.model_dump(mode="json") for a in e.attachments],
            channel=e.channel,
            source=e.source,
        )

    async def _dispatch(
        self,
        work: Work,
        case: Case,
        a: Assignment,
        *,
        kind: DispatchKind,
        actor: Actor,
        deadline: datetime | None = None,
        note: str | None = None,
        reason: str | None = None,
    ) -> Task:
        """派遣 one task: its deadline, case.dispatched, the department feed, its timers."""
        now = work.now()
        category = self.ctx.category(case.category_code)
        on_clock = self.ctx.on_clock(case.category_code, case.urgency)
        dept_kind = self.ctx.dept_kind(a.dept)
        if deadline is None:
            if category is None:
                raise Refusal(
                    f"category {case.category_code} has no standard here: give a deadline",
                    field="deadline",
                    code="deadline-required",
                    status=422,
                )
            deadline = self.deadlines.deadline(
                now, category, case.urgency, dept_kind, bool(a.co_handlers)
            )
        else:
            self._check_deadline(a.dept, deadline, now, "deadline")
        task = Task(
            task_id=case.next_task_id(),
            case_id=case.case_id,
            dept=a.dept,
            kind=kind,
            dispatched_at=now,
            deadline=deadline,
            window_start=now,
            co_handlers=a.co_handlers,
            lead=a.lead,
            dispatched_by=actor.id,
            sign_in_due=self.deadlines.sign_in_due(now, deadline, on_clock),
            note=note,
            reason=reason,
        )
        work.emit(
            ev.CaseDispatched(
                **self._task_dims(case, task),
                occurred_at=now,
                actor=actor,
                co_handlers=list(task.co_handlers),
                lead=task.lead,
                sign_in_due=task.sign_in_due,
                kind=kind,
                urgency=case.urgency,
                reason=reason,
            )
        )
        self._feed(
            work,
            case,
            task,
            lambda dept, summary: TaskAssigned(dept=dept, case=summary, sent_at=now, note=note),
            "assigned",
        )
        if category is not None and category.emergency:
            # 突发事件: escalated at once, once per case; the ladder goes on above that level.
            level, to = self.deadlines.emergency_rung()
            task.escalation_level = level
            task.escalated_at = now
            if case.emergency_escalated_at is None:
                case.emergency_escalated_at = now
                reason_ = f"突发事件，立即督办至{to} / emergency: escalated at once"
                self._escalated(work, case, task, level, to, reason_, now)
        await repo.schedule(work.conn, self._plan(case, task))
        return task

    def _escalated(
        self,
        work: Work,
        case: Case,
        task: Task,
        level: int,
        to: str,
        reason: str,
        at: datetime,
    ) -> None:
        now = work.now()
        work.emit(
            ev.CaseEscalated(
                **self._task_dims(case, task),
                occurred_at=at,
                actor=SYSTEM,
                level=level,
                to_role=to,
                reason=reason,
            )
        )
        self._feed(
            work,
            case,
            task,
            lambda dept, summary: TaskEscalated(
                dept=dept, case=summary, sent_at=now, level=level, to_role=to, note=reason
            ),
            "escalated",
        )

    async def _recall(
        self, work: Work, case: Case, targets: list[Task], actor: Actor, reason: str
    ) -> None:
        """撤回 these tasks: case.recalled and dispatch.<dept>.recalled for each."""
        now = work.now()
        await self._stop_chasing(work, targets)
        for task in targets:
            task.end(TaskStatus.RECALLED, now, reason)
            work.emit(
                ev.CaseRecalled(
                    **self._task_dims(case, task), occurred_at=now, actor=actor, reason=reason
                )
            )
            self._feed(
                work,
                case,
                task,
                lambda dept, summary: TaskRecalled(
                    dept=dept, case=summary, sent_at=now, reason=reason, note=reason
                ),
                "recalled",
            )
        await repo.settle_extensions(work.conn, [t.task_id for t in targets], "已撤回 / recalled")

    def _plan(self, case: Case, task: Task) -> list[chasing.PlannedTimer]:
        return chasing.plan(
            task, self.deadlines, self.ctx.on_clock(case.category_code, case.urgency)
        )

    async def _stop_chasing(self, work: Work, tasks: Iterable[Task]) -> None:
        await repo.cancel(work.conn, [t.timer_key() for t in tasks], self.kinds)

    def _feed(
        self,
        work: Work,
        case: Case,
        task: Task,
        build: Callable[[str, CaseSummary], DepartmentMessage],
        token: str,
        depts: Iterable[str] | None = None,
    ) -> None:
        """The department feed: one message per party on dispatch.<dept>.<token>."""
        for dept in depts if depts is not None else task.parties():
            work.emit(
                build(dept, self._summary(case, task, dept)),
                subject=subjects.dispatch(dept, token),
                case_id=case.case_id,
            )

    def _summary(self, case: Case, task: Task, dept: str) -> CaseSummary:
        """Everything a department needs to act without calling back; the reporter masked."""
        category = self.ctx.category(case.category_code)
        role = task.role_of(dept)
        name = category.name if category else case.category_code
        when = self._local(task.deadline)
        if role == "co-handler":
            todo = (
                f"协助{self.ctx.dept_name(task.lead or task.dept)}处置{name}，{when}前反馈协办情况"
            )
        else:
            todo = f"{name}：请于 {when} 前按结案标准处置并反馈结果"
        if task.note:
            todo += f"（{task.note}）"
        return CaseSummary(
            case_id=case.case_id,
            task_id=task.task_id,
            category_code=case.category_code,
            category_name=category.name if category else None,
            description=case.description,
            location=Location.model_validate(case.location) if case.location else None,
            address=case.address,
            part_code=case.part_code,
            cell_code=case.cell_code,
            community_code=case.community_code,
            subdistrict_code=case.subdistrict_code,
            urgency=case.urgency,
            attachments=[Attachment.model_validate(a) for a in case.attachments],
            reporter=privacy.masked(MaskedReporter.model_validate(case.reporter))
            if case.reporter
            else None,
            deadline=task.deadline,
            sign_in_due=task.sign_in_due,
            role=role,
            lead=task.lead,
            co_handlers=list(task.co_handlers),
            closing_standard=category.closing_standard if category else None,
            what_to_do=todo,
        )

    def _task_dims(self, case: Case, task: Task) -> dict[str, Any]:
        return {
            **case.dims(),
            "dept": task.dept,
            "task_id": task.task_id,
            "deadline": task.deadline,
        }

    def _local(self, at: datetime | None) -> str:
        return at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if at else ""

    def _check_units(self, units: Units, prefix: str, now: datetime) -> None:
        problem = routing.check_units(self.city, units.dept, units.co_handlers, units.lead)
        if problem is not None:
            fld, _, reason = problem.partition(": ")
            raise Refusal(reason, field=f"{prefix}{fld}", code="bad-unit", status=422)
        if units.deadline is not None:
            self._check_deadline(units.dept, units.deadline, now, f"{prefix}deadline")

    def _check_deadline(self, dept: str, deadline: datetime, now: datetime, field: str) -> None:
        """A dispatcher's own deadline: in the future, and within seed 003's five working days
        for a community-level unit."""
        cap = self.deadlines.cap(now, self.ctx.dept_kind(dept))
        if deadline <= now or (cap is not None and deadline > cap):
            raise Refusal(
                "the deadline must be in the future"
                + (f" and no later than {cap.isoformat()} (最迟5个工作日)" if cap else ""),
                field=field,
                code="bad-deadline",
                status=422,
            )

    def _targets(self, tasks: list[Task], task_id: str | None) -> list[Task]:
        if task_id is None:
            return [t for t in tasks if t.active]
        task = _find(tasks, task_id, None, prefer_active=False)
        if task is None:
            raise Refusal(
                f"no task {task_id!r} on this case", field="task_id", code="not-found", status=404
            )
        if not task.active:
            raise Refusal(f"task {task_id} is {task.status}", field="task_id", code="task-ended")
        return [task]

    async def _event_task(
        self, work: Work, e: ev.CaseEvent
    ) -> tuple[Case, Task, list[Task]] | None:
        """The case (locked) and the task a department event is about."""
        case = await repo.get_case(work.conn, e.case_id, for_update=True)
        if case is None:
            log.warning(
                "event for a case dispatch never saw", case_id=e.case_id, type=type(e).__name__
            )
            return None
        tasks = await repo.tasks_of_case(work.conn, case.case_id)
        task = _find(
            tasks, getattr(e, "task_id", None), getattr(e, "dept", None), prefer_active=True
        )
        if task is None:
            log.warning("event for no task of ours", case_id=e.case_id, type=type(e).__name__)
            return None
        return case, task, tasks

    async def _timer_task(self, work: Work, timer: Timer) -> tuple[Case, Task] | None:
        """The case (locked) and the timer's task, if the timer is still about its deadline."""
        case = await repo.get_case(work.conn, str(timer.payload["case_id"]), for_update=True)
        if case is None or case.closed:
            return None
        task = await repo.get_task(work.conn, str(timer.payload["task_id"]))
        if task is None or task.gen != int(timer.payload["gen"]) or not task.active:
            return None  # a deadline since replaced, or a task that ended
        return case, task

    async def _case_for_command(
        self, work: Work, case_id: str, who: Principal
    ) -> tuple[Case, list[Task]]:
        case = await repo.get_case(work.conn, case_id, for_update=True)
        if case is None:
            raise Refusal(
                f"no case {case_id!r} here", field="case_id", code="not-found", status=404
            )
        check_territory(who, case)
        check_open(case)
        return case, await repo.tasks_of_case(work.conn, case_id)


def _actor(who: Principal) -> Actor:
    return Actor(id=who.user_id, role="dispatcher", name=who.name or None)


def _find(
    tasks: list[Task], task_id: str | None, dept: str | None, *, prefer_active: bool
) -> Task | None:
    """A task by id; else the latest (active first, when preferred) of the department."""
    if task_id:
        for t in tasks:
            if t.task_id == task_id:
                return t
        return None
    mine = [t for t in tasks if dept is None or t.dept == dept]
    if prefer_active and any(t.active for t in mine):
        mine = [t for t in mine if t.active]
    return mine[-1] if mine else None


def check_dispatcher(who: Principal) -> None:
    if not who.has("dispatcher"):
        raise Refusal(
            "only the command centre's dispatchers dispatch, recall, supervise and decide "
            "extensions",
            field="Authorization",
            code="forbidden",
            status=403,
        )


def check_territory(who: Principal, case: Case) -> None:
    if not who.covers(case.cell_code, case.community_code, case.subdistrict_code):
        raise Refusal(
            f"case {case.case_id} is outside your territory",
            field="Authorization",
            code="out-of-territory",
            status=403,
        )
