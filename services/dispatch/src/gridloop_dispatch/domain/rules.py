"""The dispatch rules: what each event, chase timer and dispatcher's command does to one case.

Pure: a rule takes the case's `CaseFile`, the message and a `Step`, changes the file in memory,
emits events and asks for timers; it reads and writes nothing else. The table that maps events,
timer kinds and commands to these rules is `gridloop_dispatch.table`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import structlog
from gridloop_city import Category, City, WorkingCalendar
from gridloop_city.models import GRID_HEAD_RUNG
from gridloop_contracts import Actor, Attachment, Location, MaskedReporter, subjects
from gridloop_contracts import cases as ev
from gridloop_contracts.department import (
    CaseSummary,
    DepartmentMessage,
    RecallOvertaken,
    TaskAssigned,
    TaskEscalated,
    TaskOverdue,
    TaskOverdueWithdrawn,
    TaskRecalled,
    TaskReminder,
    TaskRework,
)
from gridloop_contracts.problems import Refusal
from gridloop_runtime.step import Step, Timer

from . import chasing, privacy, routing
from .casefile import (
    NO_TASK,
    Case,
    CaseFile,
    CaseState,
    DispatchKind,
    Extension,
    Task,
    TaskStatus,
    check_extension,
    check_open,
)
from .deadlines import Deadlines, runs_on_clock
from .routing import Assignment, Unroutable

log = structlog.get_logger(__name__)

SYSTEM = Actor(id="dispatch", role="system")
LISTED_SUPERVISION = "listed-supervision"
QUEUE_CHASE = "queue-chase"
QueueCode = Literal["unroutable", "returned", "recalled", "no-task"]


class Caller(Protocol):
    """Who sends a command (gridloop_runtime.auth.Principal is one)."""

    @property
    def user_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    def covers(self, *codes: str | None) -> bool: ...


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


class DispatchRules:
    """The rules of one city: its routing, calendar and chase configuration."""

    def __init__(self, city: City, deadlines: Deadlines) -> None:
        self.city = city
        self.deadlines = deadlines
        self.tz = ZoneInfo(city.calendar.timezone)
        self.legacy_kinds = chasing.kinds(deadlines.levels)

    def use_city(self, city: City) -> None:
        """Live reload: from the next message on, route and time with this version of the
        city. One synchronous step; tasks already given keep their unit and deadline."""
        calendar = WorkingCalendar.from_config(city.calendar)
        deadlines = Deadlines(calendar, city.calendar)
        tz = ZoneInfo(city.calendar.timezone)
        self.city, self.deadlines, self.tz = city, deadlines, tz
        self.legacy_kinds = chasing.kinds(deadlines.levels)

    # -- the city -------------------------------------------------------------------
    def category(self, code: str) -> Category | None:
        return self.city.category(code)

    def dept_kind(self, dept: str) -> str | None:
        d = self.city.department(dept)
        return d.kind if d else None

    def dept_name(self, dept: str) -> str:
        d = self.city.department(dept)
        return d.name if d else dept

    def on_clock(self, case: Case) -> bool:
        return runs_on_clock(self.city.category(case.category_code), case.urgency)

    # -- events ----------------------------------------------------------------------
    def on_accepted(self, f: CaseFile, e: ev.CaseAccepted, step: Step) -> None:
        """立案 → 派遣 (or the manual queue)."""
        if f.case is not None:
            return  # accepted once; a second acceptance of the same case changes nothing
        now = step.now()
        case = f.case = self._case_from(e)
        found = routing.route(
            self.city,
            case.category_code,
            case.cell_code,
            routing.part_owner(self.city, case.part_code, case.part_owner_dept),
        )
        if isinstance(found, Unroutable):
            self._queue(step, case, found.reason, "unroutable", now)
        else:
            f.tasks.append(self._dispatch(step, case, found, kind="initial", actor=SYSTEM))
        self._settle(step, f, case, now)

    def on_signed(self, f: CaseFile, e: ev.CaseSigned, step: Step) -> None:
        """签收: the sign-in clock stops (the chase timer skips the step when it comes). A
        签收超时 judged while this on-time signature was on its way is withdrawn."""
        found = self._event_task(f, e)
        if found is None:
            return
        case, task = found
        due = task.sign_in_due
        if not task.sign(e.occurred_at) or due is None:
            return
        overdue_at = task.withdraw_sign_in_overdue(_answered_in_time(e.on_time, e.occurred_at, due))
        if overdue_at is not None:
            note = (
                f"签收超时通知撤回：已于 {self._local(e.occurred_at)} 按时签收"
                " / the sign-in overdue notice is void: signed in time"
            )
            self._withdraw(step, case, task, "sign_in", due, overdue_at, e.occurred_at, (), note)

    def on_handled(self, f: CaseFile, e: ev.CaseHandled, step: Step) -> None:
        """处置反馈: the department is done with this task until verification says otherwise."""
        found = self._event_task(f, e)
        if found is None:
            return
        case, task = found
        if task.status == TaskStatus.RECALLED:
            self._recall_overtaken(f, step, case, task, e)
            return
        if not task.report_handled(e.completed_at):
            return
        withdrawals = task.withdraw_overdue(
            _answered_in_time(e.on_time, e.occurred_at, task.deadline), e.occurred_at
        )
        for w in withdrawals:
            note = (
                f"超期通知撤回：处置结果已于 {self._local(e.occurred_at)} 在期限"
                f"（{self._local(w.deadline)}）内反馈 / the overdue notice is void: the result"
                " came in time"
            )
            if w.levels:
                note += f"（督办 {', '.join(str(n) for n in w.levels)} 级一并撤回 / with its 督办）"
            self._withdraw(
                step,
                case,
                task,
                "handling",
                w.deadline,
                w.overdue_at,
                e.occurred_at,
                w.levels,
                note,
            )
        f.settle_extensions([task], "已处置 / handled")
        self._settle(step, f, case, step.now())

    def _withdraw(
        self,
        step: Step,
        case: Case,
        task: Task,
        stage: Literal["sign_in", "handling"],
        deadline: datetime,
        overdue_at: datetime,
        answered_at: datetime,
        levels: tuple[int, ...],
        note: str,
    ) -> None:
        """超期撤回: the judgement of a passed deadline (and the 督办 it brought) is void; the
        units told of it hear so (the responsible unit for 签收超时, every party for 超期)."""
        now = step.now()
        step.emit(
            ev.CaseOverdueWithdrawn(
                **{**self._task_dims(case, task), "deadline": deadline},
                occurred_at=now,
                actor=SYSTEM,
                stage=stage,
                overdue_at=overdue_at,
                answered_at=answered_at,
                escalation_levels=list(levels),
            )
        )
        self._feed(
            step,
            case,
            task,
            lambda dept, summary: TaskOverdueWithdrawn(
                dept=dept, case=summary, sent_at=now, stage=stage, note=note
            ),
            TaskOverdueWithdrawn.subject_token,
            depts=[task.dept] if stage == "sign_in" else None,
        )

    def _recall_overtaken(
        self, f: CaseFile, step: Step, case: Case, task: Task, e: ev.CaseHandled
    ) -> None:
        """The department's result crossed the recall: handling took it before it heard of
        the recall (it refuses a recalled task's commands after), and verification checks it
        now. The result stands — the task counts as handled, and the case leaves the queue
        its recall put it in (case.unqueued), unless a dispatcher placed it again meanwhile."""
        if case.closed or task.ended_at is None:
            return
        recalled_at = task.ended_at
        task.overtake_recall(e.completed_at)
        now = step.now()
        # the department heard `recalled` after it sent its result: its result stands
        self._feed(
            step,
            case,
            task,
            lambda dept, summary: RecallOvertaken(
                dept=dept,
                case=summary,
                sent_at=now,
                recalled_at=recalled_at,
                completed_at=e.completed_at,
                note="处置结果先于撤回送达，撤回作废，结果待核查 / your result crossed the recall: "
                "it stands and goes to verification",
            ),
            RecallOvertaken.subject_token,
        )
        if case.queued_at == recalled_at and not any(t.active for t in f.tasks):
            case.unqueue()
            step.emit(
                ev.CaseUnqueued(
                    **self._task_dims(case, task),
                    occurred_at=now,
                    actor=SYSTEM,
                    reason=f"{self.dept_name(task.dept)}的处置结果先于撤回送达，撤回作废，待核查 "
                    f"/ the result of {task.dept} crossed the recall: verification's turn",
                    recalled_at=recalled_at,
                )
            )
        self._settle(step, f, case, now)

    def on_returned(self, f: CaseFile, e: ev.CaseReturned, step: Step) -> None:
        """退回: re-route to the next candidate, or the manual queue with the reason; a returned
        part of a split case always goes to the queue."""
        found = self._event_task(f, e)
        if found is None:
            return
        case, task = found
        if not task.active:
            return
        now = step.now()
        task.end(TaskStatus.RETURNED, e.occurred_at, e.reason)
        f.settle_extensions([task], "已退回 / returned")
        case.returned(task.dept)
        why = f"{self.dept_name(task.dept)}退回：{e.reason} / returned by {task.dept}"
        if task.kind == "split":
            # A part of a split case was cut by a dispatcher: a dispatcher places it again.
            self._queue(step, case, why, "returned", now)
        else:
            busy = {t.dept for t in f.tasks if t.active}
            nxt = routing.route(
                self.city,
                case.category_code,
                case.cell_code,
                routing.part_owner(self.city, case.part_code, case.part_owner_dept),
                exclude=[*case.returned_by, *busy],
            )
            if isinstance(nxt, Unroutable):
                self._queue(step, case, f"{why}；{nxt.reason}", "returned", now)
            else:
                f.tasks.append(
                    self._dispatch(step, case, nxt, kind="redispatch", actor=SYSTEM, reason=why)
                )
        self._settle(step, f, case, now)

    def on_extension_requested(self, f: CaseFile, e: ev.CaseExtensionRequested, step: Step) -> None:
        """延期申请: kept for a dispatcher to grant or refuse."""
        found = self._event_task(f, e)
        if found is None:
            return
        _, task = found
        request_id = e.request_id or (step.trigger.id if step.trigger else None)
        if request_id is None or f.extension(request_id) is not None:
            return  # asked once: the same request again changes nothing
        f.extensions.append(
            Extension(
                request_id=request_id,
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
        )

    def on_reworked(self, f: CaseFile, e: ev.CaseReworked, step: Step) -> None:
        """返工: back to the same department with a new deadline and a fresh ladder."""
        case = f.case
        if case is None:
            log.warning("rework of a case dispatch never saw", case_id=e.case_id)
            return
        task = _find(f.tasks, e.task_id, e.dept, prefer_active=False)
        if task is None:
            log.warning("rework without a task to send back", case_id=e.case_id)
            return
        now = step.now()
        deadline = self.rework_deadline(case, task, e.new_deadline, now)
        # The department signs for the rework round again, chased like a first dispatch.
        sign_in_due = self.deadlines.sign_in_due(now, deadline, self.on_clock(case))
        task.rework(now, deadline, e.count, sign_in_due)
        if case.closed:  # reopened after a dissatisfied rating
            case.state = CaseState.DISPATCHED
            case.closed_at = None
        step.emit(
            ev.CaseDispatched(
                **self._task_dims(case, task),
                occurred_at=now,
                actor=SYSTEM,
                co_handlers=list(task.co_handlers),
                lead=task.lead,
                sign_in_due=task.sign_in_due,
                kind="rework",
                urgency=case.urgency,
                reason=e.reason,
            )
        )
        self._feed(
            step,
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
        self._chase(step, case, task)
        self._settle(step, f, case, now)

    def rework_deadline(
        self, case: Case, task: Task, new_deadline: datetime | None, now: datetime
    ) -> datetime:
        """The deadline of a rework: the one verification set if it is still ahead, else the
        category's standard from now, else a window as long as the task's last one."""
        if new_deadline is not None and new_deadline > now:
            return new_deadline
        category = self.category(case.category_code)
        if category is not None:
            return self.deadlines.deadline(
                now, category, case.urgency, self.dept_kind(task.dept), bool(task.co_handlers)
            )
        return now + (task.deadline - task.window_start)

    def on_closed(self, f: CaseFile, e: ev.CaseClosed, step: Step) -> None:
        """结案: nothing is chased any more (the chase timers find the tasks ended)."""
        case = f.case
        if case is None or case.closed:
            return
        open_ = (TaskStatus.OPEN, TaskStatus.SIGNED, TaskStatus.HANDLED)
        for t in f.tasks:
            if t.status in open_:
                t.end(TaskStatus.CLOSED, e.occurred_at, "结案 / closed")
        f.settle_extensions(f.tasks, "已结案 / closed")
        case.close(e.occurred_at)

    # -- timers ----------------------------------------------------------------------
    def on_chase(self, f: CaseFile, timer: Timer, step: Step) -> None:
        """A task's chase timer: every step due by now happens (once: the task records it),
        then the same timer is set for the next step, if any."""
        found = self._timer_task(f, timer)
        if found is None:
            return
        case, task = found
        on_clock = self.on_clock(case)
        now = step.now()
        for planned in sorted(chasing.plan(task, self.deadlines, on_clock), key=lambda p: p.due):
            if planned.due > now:
                break
            self._chase_step(step, case, task, planned.kind, planned.due)
        self._chase(step, case, task)

    def on_legacy_step(self, f: CaseFile, timer: Timer, step: Step) -> None:
        """A one-step timer row of an earlier version (sign_in, remind, overdue,
        escalate:<n>): its step happens if the task still needs it."""
        found = self._timer_task(f, timer)
        if found is not None:
            self._chase_step(step, found[0], found[1], timer.kind, timer.due_at)

    def on_queue_chase(self, f: CaseFile, timer: Timer, step: Step) -> None:
        """待派遣催办: the case still waits in the manual queue since the same moment: this
        level of the queue's ladder happens (once), and the next level's timer is set."""
        case = f.case
        level = int(timer.payload["level"])
        queued_at = datetime.fromisoformat(str(timer.payload["queued_at"]))
        rung = self.deadlines.queue_rung(level)
        if case is None or rung is None or not case.chase_queue(level, queued_at):
            return
        waited = self._local(queued_at)
        step.emit(
            ev.CaseQueueChased(
                **case.dims(),
                occurred_at=timer.due_at,
                actor=SYSTEM,
                level=level,
                to_role=rung.to,
                queued_at=queued_at,
                reason=f"{waited} 起待人工派遣，催办{rung.to}：{case.queue_reason or ''} "
                f"/ waiting for manual dispatch since {queued_at.isoformat()}",
            )
        )
        self._chase_queue(step, case, level + 1)

    def _chase_step(self, step: Step, case: Case, task: Task, kind: str, due: datetime) -> None:
        if kind == chasing.SIGN_IN:
            self._sign_in_missed(step, case, task, due)
        elif kind == chasing.REMIND:
            self._remind(step, case, task, due)
        elif kind == chasing.OVERDUE:
            self._overdue(step, case, task)
        else:
            self._escalate(step, case, task, int(kind.partition(":")[2]), due)

    def _sign_in_missed(self, step: Step, case: Case, task: Task, due: datetime) -> None:
        """签收超时: the department has not signed for its task."""
        if task.sign_in_due is None or not task.miss_sign_in(due):
            return
        now = step.now()
        step.emit(
            ev.CaseOverdue(
                **{**self._task_dims(case, task), "deadline": task.sign_in_due},
                occurred_at=due,
                actor=SYSTEM,
                stage="sign_in",
            )
        )
        note = f"签收超时（应于 {self._local(task.sign_in_due)} 前签收）/ not signed for"
        self._feed(
            step,
            case,
            task,
            lambda dept, summary: TaskOverdue(
                dept=dept, case=summary, sent_at=now, stage="sign_in", note=note
            ),
            "overdue",
            depts=[task.dept],
        )

    def _remind(self, step: Step, case: Case, task: Task, due: datetime) -> None:
        """催办: the deadline is near."""
        now = step.now()
        if not task.remind(now):
            return
        step.emit(
            ev.CaseReminded(
                **self._task_dims(case, task),
                occurred_at=due,
                actor=SYSTEM,
                stage="handling",
                level=1,
            )
        )
        note = f"催办：请于 {self._local(task.deadline)} 前处置完毕 / due soon"
        self._feed(
            step,
            case,
            task,
            lambda dept, summary: TaskReminder(
                dept=dept, case=summary, sent_at=now, stage="handling", note=note
            ),
            "reminder",
        )

    def _overdue(self, step: Step, case: Case, task: Task) -> None:
        """超期: the deadline passed without a result."""
        if not task.fall_overdue(task.deadline):
            return
        now = step.now()
        step.emit(
            ev.CaseOverdue(
                **self._task_dims(case, task),
                occurred_at=task.deadline,
                actor=SYSTEM,
                stage="handling",
            )
        )
        note = f"已超期（期限 {self._local(task.deadline)}）/ overdue"
        self._feed(
            step,
            case,
            task,
            lambda dept, summary: TaskOverdue(
                dept=dept, case=summary, sent_at=now, stage="handling", note=note
            ),
            "overdue",
        )

    def _escalate(self, step: Step, case: Case, task: Task, level: int, due: datetime) -> None:
        """督办: one step up the ladder (calendar.yaml `escalation`)."""
        to = self.deadlines.rung(level)
        if not task.escalate(level, due):
            return
        reason = f"超期未处置，督办至{to} / overdue since {task.deadline.isoformat()}"
        people = escalation_addressees(self.city, to, case.cell_code)
        if to == GRID_HEAD_RUNG:
            reason += (
                f" · 网格长 {', '.join(people)}"
                if people
                else f" · no grid head answers for cell {case.cell_code}"
            )
        self._escalated(step, case, task, level, to, reason, due)

    # -- commands (REST; each on one case) --------------------------------------------
    def dispatch(self, f: CaseFile, step: Step, who: Caller, units: Units) -> None:
        """人工派遣: a dispatcher places a case waiting in the manual queue."""
        case = self._case_for_command(f, who)
        if not case.queued:
            raise Refusal(
                f"case {case.case_id} is not waiting in the manual queue: redispatch or split it",
                field="case_id",
                code="not-queued",
            )
        now = step.now()
        self._check_units(units, "", now)
        task = self._dispatch(
            step,
            case,
            units.assignment(),
            kind="manual",
            actor=_actor(who),
            deadline=units.deadline,
            note=units.note,
            reason=case.queue_reason,
        )
        case.unqueue()
        f.tasks.append(task)
        self._settle(step, f, case, now)

    def redispatch(
        self,
        f: CaseFile,
        step: Step,
        who: Caller,
        units: Units,
        reason: str,
        task_id: str | None = None,
    ) -> None:
        """改派: the task (or every active task) is recalled and the case goes to `units`."""
        case = self._case_for_command(f, who)
        now = step.now()
        self._check_units(units, "", now)
        targets = self._targets(f.tasks, task_id)
        actor = _actor(who)
        self._recall(f, step, case, targets, actor, f"改派 / redispatched: {reason}")
        task = self._dispatch(
            step,
            case,
            units.assignment(),
            kind="redispatch",
            actor=actor,
            deadline=units.deadline,
            note=units.note,
            reason=reason,
        )
        case.unqueue()
        f.tasks.append(task)
        self._settle(step, f, case, now)

    def split(
        self, f: CaseFile, step: Step, who: Caller, parts: Sequence[Units], reason: str
    ) -> None:
        """拆分: one case, several tasks for several units, each with its own deadline."""
        case = self._case_for_command(f, who)
        now = step.now()
        depts = [p.dept for p in parts]
        for i, part in enumerate(parts):
            self._check_units(part, f"tasks.{i}.", now)
            if part.dept in depts[:i]:
                raise Refusal(
                    f"{part.dept!r} has a part already: give it one task",
                    field=f"tasks.{i}.dept",
                    code="duplicate-dept",
                    status=422,
                )
        actor = _actor(who)
        targets = [t for t in f.tasks if t.active]
        self._recall(f, step, case, targets, actor, f"拆分 / split: {reason}")
        for p in parts:
            f.tasks.append(
                self._dispatch(
                    step,
                    case,
                    p.assignment(),
                    kind="split",
                    actor=actor,
                    deadline=p.deadline,
                    note=p.note,
                    reason=reason,
                )
            )
        case.unqueue()
        self._settle(step, f, case, now)

    def recall(
        self, f: CaseFile, step: Step, who: Caller, reason: str, task_id: str | None = None
    ) -> None:
        """撤回: the command centre takes the task back; the case waits in the queue."""
        case = self._case_for_command(f, who)
        targets = self._targets(f.tasks, task_id)
        if not targets:
            raise Refusal(
                f"no department holds case {case.case_id}: nothing to recall",
                field="case_id",
                code="nothing-active",
            )
        now = step.now()
        # one moment for the recall and the queueing: a result that crossed the recall finds
        # the queueing its recall made by it (the step's clock moves between two reads)
        self._recall(f, step, case, targets, _actor(who), reason, now)
        self._queue(step, case, f"指挥中心撤回：{reason} / recalled", "recalled", now)
        self._settle(step, f, case, now)

    def remind(
        self,
        f: CaseFile,
        step: Step,
        who: Caller,
        role: Literal["dispatcher", "shift-leader", "grid-head"],
        note: str,
        task_id: str | None = None,
    ) -> list[Task]:
        """人工催办: a dispatcher or shift leader chases the department holding the task (or
        every active task) now: case.reminded (manual, stage sign_in before signing, else
        handling) and dispatch.<dept>.reminder, recorded on the task like the automatic one
        and counted the same way in scoring."""
        case = self._case_for_command(f, who)
        targets = self._targets(f.tasks, task_id)
        if not targets:
            raise Refusal(
                f"no department holds case {case.case_id}: nobody to chase",
                field="case_id",
                code="nothing-active",
            )
        now = step.now()
        actor = Actor(id=who.user_id, role=role, name=who.name or None)
        for task in targets:
            task.manual_reminders += 1
            stage: Literal["sign_in", "handling"] = (
                "sign_in" if task.signed_at is None and task.sign_in_due else "handling"
            )
            step.emit(
                ev.CaseReminded(
                    **self._task_dims(case, task),
                    occurred_at=now,
                    actor=actor,
                    stage=stage,
                    level=1,
                    manual=True,
                    note=note,
                )
            )
            text = f"人工催办：{note}（期限 {self._local(task.deadline)}）/ chased by {who.user_id}"
            self._feed(step, case, task, _reminder(now, stage, text), "reminder")
        return targets

    def supervise(self, f: CaseFile, step: Step, who: Caller, reason: str) -> None:
        """挂牌督办: the case is put under listed supervision; its departments are told."""
        case = self._case_for_command(f, who)
        now = step.now()
        case.supervise(now, reason, who.user_id)
        active = [t for t in f.tasks if t.active]
        step.emit(
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
            self._feed(step, case, task, notice(task.escalation_level), "escalated")

    def decide_extension(
        self,
        f: CaseFile,
        step: Step,
        request_id: str,
        who: Caller,
        *,
        granted: bool,
        new_deadline: datetime | None,
        reason: str | None,
    ) -> Extension:
        """延期审批: granted moves the deadline (and its reminder, overdue and ladder)."""
        request = f.extension(request_id)
        if request is None:
            raise missing_extension(request_id)
        case = self._case_for_command(f, who)
        if request.status != "pending":
            raise Refusal(
                f"extension request {request_id} is {request.status} already",
                field="request_id",
                code="decided",
            )
        task = f.task(request.task_id)
        assert task is not None  # requests reference their task
        now = step.now()
        if granted:
            deadline = new_deadline or request.proposed_deadline
            cap = self.deadlines.cap(task.dispatched_at, self.dept_kind(task.dept))
            check_extension(task, deadline, now, cap)
            task.extend(now, deadline)
            self._chase(step, case, task)
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
        step.emit(
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
        return request

    # -- reading ---------------------------------------------------------------------
    def pending_chase(self, case: Case, tasks: Iterable[Task]) -> list[dict[str, Any]]:
        """The chase steps still to come for each active task, soonest first."""
        on_clock = self.on_clock(case)
        steps = [p for t in tasks for p in chasing.plan(t, self.deadlines, on_clock)]
        steps.sort(key=lambda p: p.due)
        return [{"kind": p.kind, "task_id": p.payload["task_id"], "due_at": p.due} for p in steps]

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

    def _dispatch(
        self,
        step: Step,
        case: Case,
        a: Assignment,
        *,
        kind: DispatchKind,
        actor: Actor,
        deadline: datetime | None = None,
        note: str | None = None,
        reason: str | None = None,
    ) -> Task:
        """派遣 one task: its deadline, case.dispatched, the department feed, its chase timer;
        an emergency is escalated at once."""
        now = step.now()
        category = self.category(case.category_code)
        on_clock = self.on_clock(case)
        if deadline is None:
            if category is None:
                raise Refusal(
                    f"category {case.category_code} has no standard here: give a deadline",
                    field="deadline",
                    code="deadline-required",
                    status=422,
                )
            deadline = self.deadlines.deadline(
                now, category, case.urgency, self.dept_kind(a.dept), bool(a.co_handlers)
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
        step.emit(
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
            step,
            case,
            task,
            lambda dept, summary: TaskAssigned(dept=dept, case=summary, sent_at=now, note=note),
            "assigned",
        )
        if category is not None and category.emergency:
            self.escalate_emergency(step, case, task)
        self._chase(step, case, task)
        return task

    def escalate_emergency(self, step: Step, case: Case, task: Task) -> None:
        """突发事件: escalated at once, once per case; the ladder goes on above that level."""
        now = step.now()
        level, to = self.deadlines.emergency_rung()
        task.escalation_level = level
        task.escalated_at = now
        if case.emergency_escalated_at is None:
            case.emergency_escalated_at = now
            reason = f"突发事件，立即督办至{to} / emergency: escalated at once"
            self._escalated(step, case, task, level, to, reason, now)

    def _escalated(
        self,
        step: Step,
        case: Case,
        task: Task,
        level: int,
        to: str,
        reason: str,
        at: datetime,
    ) -> None:
        now = step.now()
        step.emit(
            ev.CaseEscalated(
                **self._task_dims(case, task),
                occurred_at=at,
                actor=SYSTEM,
                level=level,
                to_role=to,
                reason=reason,
                to_user_ids=list(escalation_addressees(self.city, to, case.cell_code)),
            )
        )
        self._feed(
            step,
            case,
            task,
            lambda dept, summary: TaskEscalated(
                dept=dept, case=summary, sent_at=now, level=level, to_role=to, note=reason
            ),
            "escalated",
        )

    def _recall(
        self,
        f: CaseFile,
        step: Step,
        case: Case,
        targets: list[Task],
        actor: Actor,
        reason: str,
        now: datetime | None = None,
    ) -> None:
        """撤回 these tasks at `now` (default: the step's clock): case.recalled and
        dispatch.<dept>.recalled for each."""
        now = now or step.now()
        for task in targets:
            task.end(TaskStatus.RECALLED, now, reason)
            step.emit(
                ev.CaseRecalled(
                    **self._task_dims(case, task), occurred_at=now, actor=actor, reason=reason
                )
            )
            self._feed(
                step,
                case,
                task,
                lambda dept, summary: TaskRecalled(
                    dept=dept, case=summary, sent_at=now, reason=reason, note=reason
                ),
                "recalled",
            )
        f.settle_extensions(targets, "已撤回 / recalled")

    def _queue(self, step: Step, case: Case, reason: str, code: QueueCode, now: datetime) -> None:
        """待人工派遣: the case waits for a dispatcher — said on the bus (case.queued, with the
        reason and routing's suggestions) and chased while it waits."""
        case.to_queue(reason, now)
        suggestions = routing.candidates(
            self.city,
            case.category_code,
            case.cell_code,
            routing.part_owner(self.city, case.part_code, case.part_owner_dept),
        )
        step.emit(
            ev.CaseQueued(
                **case.dims(),
                occurred_at=now,
                actor=SYSTEM,
                reason=reason,
                reason_code=code,
                suggestions=[a.dept for a in suggestions if a.dept not in case.returned_by],
                returned_by=list(case.returned_by),
            )
        )
        self._chase_queue(step, case, 1)

    def _settle(self, step: Step, f: CaseFile, case: Case, now: datetime) -> None:
        """The case's state from its tasks; a case left with no department and no reason to
        wait goes to the queue, said like any other queueing."""
        before = case.queued_at
        case.settle(f.tasks, now)
        if before is None and case.queued_at is not None:
            reason = case.queue_reason or NO_TASK
            case.queued_at = None
            self._queue(step, case, reason, "no-task", now)

    def _chase_queue(self, step: Step, case: Case, level: int) -> None:
        """The queue's chase timer for a level, counted from when the case was queued (one
        row per queueing: the key carries the moment, so a later queueing never meets it)."""
        rung = self.deadlines.queue_rung(level)
        if rung is None or case.queued_at is None:
            return
        at = case.queued_at.isoformat()
        step.schedule(
            QUEUE_CHASE,
            f"{case.case_id}-Q@{at}",
            self.deadlines.add(case.queued_at, rung.after),
            {"case_id": case.case_id, "queued_at": at, "level": level},
        )

    def _chase(self, step: Step, case: Case, task: Task) -> None:
        """Set the task's one chase timer at its next step (nothing when none is left)."""
        timer = chasing.chase_timer(task, self.deadlines, self.on_clock(case))
        if timer is not None:
            step.schedule(timer.kind, timer.key, timer.due, timer.payload)

    def _feed(
        self,
        step: Step,
        case: Case,
        task: Task,
        build: Callable[[str, CaseSummary], DepartmentMessage],
        token: str,
        depts: Iterable[str] | None = None,
    ) -> None:
        """The department feed: one message per party on dispatch.<dept>.<token>."""
        for dept in depts if depts is not None else task.parties():
            step.emit(
                build(dept, self._summary(case, task, dept)),
                subject=subjects.dispatch(dept, token),
                case_id=case.case_id,
            )

    def _summary(self, case: Case, task: Task, dept: str) -> CaseSummary:
        """Everything a department needs to act without calling back; the reporter masked."""
        category = self.category(case.category_code)
        role = task.role_of(dept)
        name = category.name if category else case.category_code
        when = self._local(task.deadline)
        if role == "co-handler":
            todo = f"协助{self.dept_name(task.lead or task.dept)}处置{name}，{when}前反馈协办情况"
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
        cap = self.deadlines.cap(now, self.dept_kind(dept))
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

    def _event_task(self, f: CaseFile, e: ev.CaseEvent) -> tuple[Case, Task] | None:
        """The case and the task a department event is about."""
        if f.case is None:
            log.warning(
                "event for a case dispatch never saw", case_id=e.case_id, type=type(e).__name__
            )
            return None
        task = _find(
            f.tasks, getattr(e, "task_id", None), getattr(e, "dept", None), prefer_active=True
        )
        if task is None:
            log.warning("event for no task of ours", case_id=e.case_id, type=type(e).__name__)
            return None
        return f.case, task

    def _timer_task(self, f: CaseFile, timer: Timer) -> tuple[Case, Task] | None:
        """The case and the timer's task, if the timer is still about its deadline."""
        case = f.case
        if case is None or case.closed:
            return None
        task = f.task(str(timer.payload["task_id"]))
        if task is None or task.gen != int(timer.payload["gen"]) or not task.active:
            return None  # a deadline since replaced, or a task that ended
        return case, task

    def _case_for_command(self, f: CaseFile, who: Caller) -> Case:
        case = f.case
        if case is None:
            raise Refusal(
                f"no case {f.case_id!r} here", field="case_id", code="not-found", status=404
            )
        check_territory(who, case)
        check_open(case)
        return case


def missing_extension(request_id: str) -> Refusal:
    return Refusal(
        f"no extension request {request_id!r}",
        field="request_id",
        code="not-found",
        status=404,
    )


def check_territory(who: Caller, case: Case) -> None:
    if not who.covers(case.cell_code, case.community_code, case.subdistrict_code):
        raise Refusal(
            f"case {case.case_id} is outside your territory",
            field="Authorization",
            code="out-of-territory",
            status=403,
        )


def _reminder(
    now: datetime, stage: Literal["sign_in", "handling"], note: str
) -> Callable[[str, CaseSummary], DepartmentMessage]:
    def build(dept: str, summary: CaseSummary) -> DepartmentMessage:
        return TaskReminder(dept=dept, case=summary, sent_at=now, stage=stage, note=note)

    return build


def _actor(who: Caller) -> Actor:
    return Actor(id=who.user_id, role="dispatcher", name=who.name or None)


def _answered_in_time(on_time: bool | None, taken_at: datetime, due: datetime) -> bool:
    """Whether the department answered by `due`: as handling judged it (`on_time`, by when it
    took the answer), else by the event's own time."""
    return on_time if on_time is not None else taken_at <= due


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


def escalation_addressees(city: City, to: str, cell_code: str | None) -> tuple[str, ...]:
    """Who a rung names by user id: the grid heads of the case's cell for a `grid-head` rung
    (calendar.yaml `escalation`, users.yaml territories); nobody for a rung to a role."""
    if to != GRID_HEAD_RUNG or not cell_code:
        return ()
    return city.grid_heads_of(cell_code)
