"""What happens on each event, timer and command verify takes — the one table to read first.

Bus (CASES stream, durable `verify-cases`):
  case.handled                → 核查任务 to the cell's supervisor (the backup when the primary
                                is absent): case.verification_assigned; reminder + overdue timers
  case.confirmation_requested → 核实任务 the same way (purpose=confirmation)
  case.accepted / rejected    → open 核实 tasks are settled elsewhere: cancelled
  case.dispatched             → remember the department, its task and deadline (按期结案)
  case.extension_decided      → a granted extension moves that deadline
  case.recalled               → open 核查 tasks cancelled
  case.closed (by others)     → every open task cancelled
  case.rated                  → dissatisfied, where configured: case.reopened + case.reworked
Timers:
  verify-reminder             → case.reminded  (stage verification|confirmation, 催办)
  verify-overdue              → case.overdue   (stage verification|confirmation, 超期)
  verify-absence              → an absence begins: the absent supervisor's tasks go to the backup
Commands (REST, `api.py`):
  verify   → case.verified, then case.closed | (shift leader's approval) | case.reworked
             (+ case.escalated at the Nth failure)
  confirm  → case.confirmed
  approve  → case.closed | case.reworked
  assign, add_absence, end_absence → case.verification_assigned for tasks that change hands

In the verification events `task_id`, `dept` and `deadline` are the department's task and its
deadline, copied forward (flow.md); in case.reminded / case.overdue of a verification stage
`deadline` is the verification task's own due time, the deadline in question.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import structlog
from gridloop_contracts import Actor, Attachment, Envelope, Location
from gridloop_contracts import cases as ev
from gridloop_runtime import timers
from gridloop_runtime.commands import Refusal
from gridloop_runtime.consumer import Permanent
from gridloop_runtime.outbox import Work
from gridloop_runtime.timers import Timer
from pydantic import ValidationError

from . import repository as repo
from .context import Verify
from .domain import roster, timeliness
from .domain.casefile import Case, Outcome
from .domain.tasks import Purpose, Task, TaskStatus, check_may_act, check_shift_leader

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=ev.CaseEvent)
CaseHandler = Callable[[Work, Envelope], Awaitable[None]]

SYSTEM = Actor(id="verify", role="system")
REMINDER, OVERDUE, ABSENCE = "verify-reminder", "verify-overdue", "verify-absence"


def parse(env: Envelope, model: type[E]) -> E:
    """The event's data as its contract model; invalid data can never succeed: DLQ at once."""
    try:
        return model.model_validate(env.data)
    except ValidationError as exc:
        raise Permanent(f"{env.type} {env.id}: {exc}") from exc


class Caller:
    """Who sends a command: id, roles and name (from the runtime's authenticated principal)."""

    def __init__(self, user_id: str, roles: Iterable[str], name: str = "") -> None:
        self.user_id = user_id
        self.roles = frozenset(roles)
        self.name = name

    def actor(self, role: str) -> Actor:
        return Actor(id=self.user_id, role=role, name=self.name or None)


class Handlers:
    def __init__(self, verify: Verify) -> None:
        self.ctx = verify
        self.city = verify.city
        self.calendar = verify.calendar
        self.policy = verify.policy
        consumed: list[tuple[type[ev.CaseEvent], CaseHandler]] = [
            (ev.CaseHandled, self.on_handled),
            (ev.CaseConfirmationRequested, self.on_confirmation_requested),
            (ev.CaseAccepted, self.on_accepted),
            (ev.CaseRejected, self.on_rejected),
            (ev.CaseDispatched, self.on_dispatched),
            (ev.CaseExtensionDecided, self.on_extension_decided),
            (ev.CaseRecalled, self.on_recalled),
            (ev.CaseClosed, self.on_closed),
            (ev.CaseRated, self.on_rated),
        ]
        self.events: dict[str, CaseHandler] = {m.type_name: h for m, h in consumed}
        # The consumer's filter: only these subjects reach verify (no inbox row per event we
        # would ignore).
        self.subjects = sorted(f"case.{m.subject_token}" for m, _ in consumed)
        self.timers: dict[str, Callable[[Work, Timer], Awaitable[None]]] = {
            REMINDER: self.on_reminder_due,
            OVERDUE: self.on_overdue,
            ABSENCE: self.on_absence_begins,
        }

    async def on_case_event(self, work: Work, env: Envelope) -> None:
        handler = self.events.get(env.type)
        if handler is not None:
            await handler(work, env)

    # -- events ----------------------------------------------------------------------
    async def on_handled(self, work: Work, env: Envelope) -> None:
        """处置反馈 → 核查任务."""
        e = parse(env, ev.CaseHandled)
        case = await repo.case_for_event(work.conn, e.case_id)
        _absorb(case, e)
        case.dept = e.dept or case.dept
        case.dept_task_id = e.task_id or case.dept_task_id
        case.deadline = e.deadline or case.deadline
        case.result = e.result
        case.evidence = [a.model_dump(mode="json") for a in e.evidence]
        if not case.result_reported():
            log.info("result for a closed case ignored", case_id=e.case_id)
            return
        superseded = await self._cancel_open(work, case.case_id, "verification", "superseded")
        now = work.now()
        limit = self.city.calendar.verification
        task = await self._open_task(
            work,
            case,
            "verification",
            due=timeliness.task_due(self.calendar, now, limit.limit),
            fraction=limit.reminder_fraction,
        )
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [*superseded, task])

    async def on_confirmation_requested(self, work: Work, env: Envelope) -> None:
        """核实: intake asks for an on-site look before acceptance."""
        e = parse(env, ev.CaseConfirmationRequested)
        case = await repo.case_for_event(work.conn, e.case_id)
        _absorb(case, e)
        case.description = e.description or case.description
        case.address = e.address or case.address
        if e.location is not None:
            case.location = e.location.model_dump()
        superseded = await self._cancel_open(work, case.case_id, "confirmation", "superseded")
        now = work.now()
        limit = self.city.calendar.confirmation
        task = await self._open_task(
            work,
            case,
            "confirmation",
            due=timeliness.task_due(self.calendar, now, limit.limit, e.due),
            fraction=limit.reminder_fraction,
            reason=e.reason,
        )
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [*superseded, task])

    async def on_accepted(self, work: Work, env: Envelope) -> None:
        """立案: remember where and what (the supervisor needs it on site); a pending 核实 is
        moot now."""
        e = parse(env, ev.CaseAccepted)
        case = await repo.case_for_event(work.conn, e.case_id)
        _absorb(case, e)
        case.urgency = e.urgency
        case.description = e.description
        case.address = e.address or case.address
        if e.location is not None:
            case.location = e.location.model_dump()
        cancelled = await self._cancel_open(work, case.case_id, "confirmation", "accepted")
        await repo.save_case(work.conn, case, work.now())
        await repo.save_tasks(work.conn, cancelled)

    async def on_rejected(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseRejected)
        cancelled = await self._cancel_open(work, e.case_id, "confirmation", "rejected")
        await repo.save_tasks(work.conn, cancelled)

    async def on_dispatched(self, work: Work, env: Envelope) -> None:
        """派遣: the department, its task and the deadline 按期结案 is judged against."""
        e = parse(env, ev.CaseDispatched)
        case = await repo.case_for_event(work.conn, e.case_id)
        _absorb(case, e)
        case.dept = e.dept
        case.dept_task_id = e.task_id
        case.deadline = e.deadline
        case.urgency = e.urgency
        await repo.save_case(work.conn, case, work.now())

    async def on_extension_decided(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseExtensionDecided)
        if not e.granted or e.new_deadline is None:
            return
        case = await repo.get_case(work.conn, e.case_id, for_update=True)
        if case is None:
            return
        case.deadline = e.new_deadline
        await repo.save_case(work.conn, case, work.now())

    async def on_recalled(self, work: Work, env: Envelope) -> None:
        """撤回: nothing left to verify until the department reports a new result."""
        e = parse(env, ev.CaseRecalled)
        case = await repo.get_case(work.conn, e.case_id, for_update=True)
        if case is None:
            return
        cancelled = await self._cancel_open(work, case.case_id, "verification", "recalled")
        case.recalled()
        await repo.save_case(work.conn, case, work.now())
        await repo.save_tasks(work.conn, cancelled)

    async def on_closed(self, work: Work, env: Envelope) -> None:
        """结案 elsewhere: every open task is moot. Our own closings were applied when made."""
        if env.source == work.source:
            return
        e = parse(env, ev.CaseClosed)
        case = await repo.case_for_event(work.conn, e.case_id)
        _absorb(case, e)
        cancelled = await self._cancel_open(work, case.case_id, None, "closed")
        case.closed_elsewhere(e.occurred_at, e.closed_by)
        await repo.save_case(work.conn, case, work.now())
        await repo.save_tasks(work.conn, cancelled)

    async def on_rated(self, work: Work, env: Envelope) -> None:
        """满意度评价: 不满意 → 重新打开 + 返工 where configured (scoring folds the rating)."""
        e = parse(env, ev.CaseRated)
        case = await repo.get_case(work.conn, e.case_id, for_update=True)
        if case is None:
            return
        count = case.rated(rating=e.rating, policy=self.policy)
        if count is None:
            return
        reason = "市民评价不满意 / the reporter was dissatisfied" + (
            f": {e.comment}" if e.comment else ""
        )
        now = work.now()
        work.emit(ev.CaseReopened(**case.task_dims(), occurred_at=now, actor=SYSTEM, reason=reason))
        work.emit(
            ev.CaseReworked(
                **case.task_dims(), occurred_at=now, actor=SYSTEM, count=count, reason=reason
            )
        )
        await repo.save_case(work.conn, case, now)

    # -- timers ----------------------------------------------------------------------
    async def on_reminder_due(self, work: Work, timer: Timer) -> None:
        """催办: remind the supervisor before the task's due time."""
        found = await self._timer_task(work, timer)
        if found is None:
            return
        task, case = found
        now = work.now()
        task.reminded_at = now
        work.emit(
            ev.CaseReminded(
                **{**case.task_dims(), "deadline": task.due},
                occurred_at=now,
                actor=SYSTEM,
                stage=task.stage,
                level=1,
                supervisor_id=task.supervisor_id,
            )
        )
        await repo.save_tasks(work.conn, [task])

    async def on_overdue(self, work: Work, timer: Timer) -> None:
        """超期: the task's due time passed unanswered (按时核查率 counts it)."""
        found = await self._timer_task(work, timer)
        if found is None:
            return
        task, case = found
        task.overdue_at = task.due
        work.emit(
            ev.CaseOverdue(
                **{**case.task_dims(), "deadline": task.due},
                occurred_at=task.due,
                actor=SYSTEM,
                stage=task.stage,
                supervisor_id=task.supervisor_id,
            )
        )
        await repo.save_tasks(work.conn, [task])

    async def on_absence_begins(self, work: Work, timer: Timer) -> None:
        await self.hand_over(work, [str(timer.payload["user_id"])])

    async def _timer_task(self, work: Work, timer: Timer) -> tuple[Task, Case] | None:
        task = await repo.get_task(work.conn, str(timer.payload["task_id"]), for_update=True)
        if task is None or not task.is_open:
            return None
        case = await repo.get_case(work.conn, task.case_id)
        assert case is not None  # tasks reference their case
        return task, case

    # -- commands --------------------------------------------------------------------
    async def verify(
        self,
        work: Work,
        task_id: str,
        who: Caller,
        *,
        passed: bool,
        notes: str | None,
        photos: list[Attachment],
        position: Location | None,
    ) -> dict[str, Any]:
        """核查: the supervisor's verdict on the department's result."""
        task, case = await self._task_for_command(work, task_id, who)
        if passed and self.policy.require_photo_on_pass and not photos:
            raise Refusal(
                "a passed verification needs at least one photo of the site",
                field="photos",
                code="photo-required",
                status=422,
            )
        if not passed and not (notes and notes.strip()):
            raise Refusal(
                "say what is still wrong: the department reworks from these notes",
                field="notes",
                code="notes-required",
                status=422,
            )
        now = work.now()
        on_time = task.submit(
            purpose="verification",
            by=who.user_id,
            at=now,
            outcome=TaskStatus.PASSED if passed else TaskStatus.FAILED,
            notes=notes,
            photos=[p.model_dump(mode="json") for p in photos],
            position=position.model_dump() if position else None,
        )
        outcome = case.verdict(
            passed=passed,
            supervisor_id=who.user_id,
            requires_approval=self.ctx.requires_approval(case.category_code),
            policy=self.policy,
        )
        actor = who.actor("supervisor")
        work.emit(
            ev.CaseVerified(
                **case.task_dims(),
                occurred_at=now,
                actor=actor,
                passed=passed,
                supervisor_id=who.user_id,
                notes=notes,
                photos=photos,
                position=position,
                on_time=on_time,
                failures=case.failures,
            )
        )
        self._follow(work, case, outcome, actor, now, reason=notes or "")
        await timers.cancel(work.conn, task.timer_key())
        await repo.save_case(work.conn, case, now)
        await repo.save_tasks(work.conn, [task])
        return {**task_view(task, case), "outcome": outcome.kind}

    async def approve(
        self, work: Work, case_id: str, who: Caller, *, approved: bool, notes: str | None
    ) -> dict[str, Any]:
        """值班长审批结案."""
        check_shift_leader(who.roles, "approve closing a case")
        case = await repo.get_case(work.conn, case_id, for_update=True)
        if case is None:
            raise Refusal(
                f"no case {case_id!r} here", field="case_id", code="not-found", status=404
            )
        if not approved and not (notes and notes.strip()):
            raise Refusal(
                "say why closing is refused: the department reworks from these notes",
                field="notes",
                code="notes-required",
                status=422,
            )
        outcome = case.approval(approved=approved, approver=who.user_id)
        now = work.now()
        reason = notes or ""
        if not approved:
            reason = f"值班长未批准结案 / closing refused by the shift leader: {notes}"
        self._follow(work, case, outcome, who.actor("shift-leader"), now, reason=reason)
        await repo.save_case(work.conn, case, now)
        return {**case_view(case), "outcome": outcome.kind}

    async def confirm(
        self,
        work: Work,
        task_id: str,
        who: Caller,
        *,
        confirmed: bool,
        notes: str | None,
        photos: list[Attachment],
        position: Location | None,
    ) -> dict[str, Any]:
        """核实: the problem is there (confirmed) or not (refuted); intake decides 立案."""
        task, case = await self._task_for_command(work, task_id, who)
        now = work.now()
        on_time = task.submit(
            purpose="confirmation",
            by=who.user_id,
            at=now,
            outcome=TaskStatus.CONFIRMED if confirmed else TaskStatus.REFUTED,
            notes=notes,
            photos=[p.model_dump(mode="json") for p in photos],
            position=position.model_dump() if position else None,
        )
        work.emit(
            ev.CaseConfirmed(
                **case.dims(),
                occurred_at=now,
                actor=who.actor("supervisor"),
                confirmed=confirmed,
                supervisor_id=who.user_id,
                notes=notes,
                photos=photos,
                on_time=on_time,
                position=position,
            )
        )
        await timers.cancel(work.conn, task.timer_key())
        await repo.save_tasks(work.conn, [task])
        return task_view(task, case)

    async def assign(
        self, work: Work, task_id: str, who: Caller, *, supervisor_id: str
    ) -> dict[str, Any]:
        """值班长 hands an open task to a supervisor (nobody present, or a better fit)."""
        check_shift_leader(who.roles, "assign verification tasks")
        if not self.ctx.is_supervisor(supervisor_id):
            raise Refusal(
                f"{supervisor_id!r} is not a supervisor (users.yaml)",
                field="supervisor_id",
                code="not-a-supervisor",
                status=422,
            )
        task = await repo.get_task(work.conn, task_id, for_update=True)
        if task is None:
            raise Refusal(f"no task {task_id!r}", field="task_id", code="not-found", status=404)
        if not task.is_open:
            raise Refusal(
                f"task {task_id} is already {task.status}", field="task_id", code="task-closed"
            )
        case = await repo.get_case(work.conn, task.case_id)
        assert case is not None
        task.reassign(supervisor_id, backup_used=supervisor_id != task.primary_id)
        self._emit_assigned(work, case, task, who.actor("shift-leader"))
        await repo.save_tasks(work.conn, [task])
        return task_view(task, case)

    async def add_absence(
        self,
        work: Work,
        who: Caller,
        *,
        user_id: str,
        starts_at: datetime,
        ends_at: datetime,
        reason: str | None,
    ) -> dict[str, Any]:
        """请假: while absent, the supervisor's cells go to their backups (AB 角)."""
        check_shift_leader(who.roles, "record absences")
        if not self.ctx.is_supervisor(user_id):
            raise Refusal(
                f"{user_id!r} is not a supervisor (users.yaml)",
                field="user_id",
                code="not-a-supervisor",
                status=422,
            )
        if ends_at <= starts_at:
            raise Refusal("must be after starts_at", field="ends_at", code="invalid", status=422)
        now = work.now()
        absence = await repo.add_absence(
            work.conn,
            user_id=user_id,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            set_by=who.user_id,
            at=now,
        )
        moved: list[str] = []
        if absence.covers(now):
            moved = await self.hand_over(work, [user_id])
        elif starts_at > now:
            await timers.schedule(
                work.conn, ABSENCE, f"absence:{absence.id}", starts_at, {"user_id": user_id}
            )
        return {**absence_view(absence), "tasks_handed_over": moved}

    async def end_absence(self, work: Work, who: Caller, absence_id: int) -> dict[str, Any]:
        check_shift_leader(who.roles, "record absences")
        absence = await repo.end_absence(work.conn, absence_id, work.now())
        if absence is None:
            raise Refusal(
                f"no absence {absence_id}", field="absence_id", code="not-found", status=404
            )
        await timers.cancel(work.conn, f"absence:{absence_id}")
        return absence_view(absence)

    async def hand_over(self, work: Work, user_ids: list[str]) -> list[str]:
        """AB 角: the open tasks of supervisors who are absent now go to the present one of
        their cell's pair; returns the task ids that changed hands."""
        now = work.now()
        tasks: list[Task] = []
        for user_id in user_ids:
            tasks += await repo.open_tasks_of_supervisor(work.conn, user_id)
        if not tasks:
            return []
        cases = await repo.cases_by_id(work.conn, sorted({t.case_id for t in tasks}))
        pairs = {t.task_id: self.ctx.supervisors_of(cases[t.case_id].cell_code) for t in tasks}
        people = {p for pair in pairs.values() for p in roster.members(pair)} | set(user_ids)
        absent = await repo.absent_among(work.conn, people, now)
        moved: list[Task] = []
        for task in tasks:
            new = roster.cover(task.supervisor_id, pairs[task.task_id], absent)
            if new is None or new.supervisor_id is None:
                continue
            task.reassign(new.supervisor_id, backup_used=new.backup_used)
            self._emit_assigned(work, cases[task.case_id], task, SYSTEM)
            moved.append(task)
        await repo.save_tasks(work.conn, moved)
        return [t.task_id for t in moved]

    # -- the pieces ------------------------------------------------------------------
    async def _open_task(
        self,
        work: Work,
        case: Case,
        purpose: Purpose,
        *,
        due: datetime,
        fraction: float,
        reason: str | None = None,
    ) -> Task:
        """A new task for the cell's present supervisor, with its reminder and overdue
        timers; announced at once unless nobody is present (then the shift leader assigns)."""
        now = work.now()
        pair = self.ctx.supervisors_of(case.cell_code)
        absent = await repo.absent_among(work.conn, roster.members(pair), now)
        chosen = roster.assign(pair, absent)
        task = Task(
            task_id=case.next_task_id(purpose),
            case_id=case.case_id,
            purpose=purpose,
            assigned_at=now,
            due=due,
            supervisor_id=chosen.supervisor_id,
            primary_id=chosen.primary,
            backup_id=chosen.backup,
            backup_used=chosen.backup_used,
            reason=reason,
        )
        payload = {"task_id": task.task_id}
        remind = timeliness.reminder_at(self.calendar, now, due, fraction)
        if remind is not None:
            await timers.schedule(work.conn, REMINDER, task.timer_key(), remind, payload)
        await timers.schedule(work.conn, OVERDUE, task.timer_key(), due, payload)
        if chosen.unassigned:
            log.warning("no supervisor present for a task", task_id=task.task_id)
        else:
            self._emit_assigned(work, case, task, SYSTEM)
        return task

    def _emit_assigned(self, work: Work, case: Case, task: Task, actor: Actor) -> None:
        assert task.supervisor_id is not None
        dims = case.task_dims() if task.purpose == "verification" else case.dims()
        work.emit(
            ev.CaseVerificationAssigned(
                **dims,
                occurred_at=work.now(),
                actor=actor,
                supervisor_id=task.supervisor_id,
                backup_used=task.backup_used,
                due=task.due,
                purpose=task.purpose,
            )
        )

    async def _cancel_open(
        self, work: Work, case_id: str, purpose: Purpose | None, reason: str
    ) -> list[Task]:
        """Cancel a case's open tasks (of one purpose, or all) and their timers; the caller
        saves the returned tasks."""
        tasks = await repo.open_tasks_of_case(work.conn, case_id, purpose)
        for task in tasks:
            task.cancel(reason)
            await timers.cancel(work.conn, task.timer_key())
        return tasks

    async def _task_for_command(self, work: Work, task_id: str, who: Caller) -> tuple[Task, Case]:
        task = await repo.get_task(work.conn, task_id, for_update=True)
        if task is None:
            raise Refusal(f"no task {task_id!r}", field="task_id", code="not-found", status=404)
        case = await repo.get_case(work.conn, task.case_id, for_update=True)
        assert case is not None
        pair = self.ctx.supervisors_of(case.cell_code)
        check_may_act(who.user_id, who.roles, task, roster.members(pair))
        return task, case

    def _follow(
        self, work: Work, case: Case, outcome: Outcome, actor: Actor, now: datetime, reason: str
    ) -> None:
        """The events after a verdict or an approval: 结案, or 返工 (and 督办)."""
        if outcome.close:
            assert outcome.closed_by is not None
            on_time = case.close(now, outcome.closed_by, outcome.approved_by)
            work.emit(
                ev.CaseClosed(
                    **case.task_dims(),
                    occurred_at=now,
                    actor=actor,
                    closed_by=outcome.closed_by,
                    approved_by=outcome.approved_by,
                    on_time=on_time,
                    reworks=case.reworks,
                )
            )
        if outcome.rework_count is not None:
            work.emit(
                ev.CaseReworked(
                    **case.task_dims(),
                    occurred_at=now,
                    actor=actor,
                    count=outcome.rework_count,
                    reason=reason,
                )
            )
        if outcome.escalation_level is not None:
            work.emit(
                ev.CaseEscalated(
                    **case.task_dims(),
                    occurred_at=now,
                    actor=SYSTEM,
                    level=outcome.escalation_level,
                    to_role=self.policy.escalate_to,
                    reason=f"核查{case.failures}次未通过 / failed verification {case.failures}"
                    " times",
                )
            )


def _absorb(case: Case, e: ev.CaseEvent) -> None:
    """Copy the dimensions an event knows forward into the projection."""
    for name in ("category_code", "cell_code", "community_code", "subdistrict_code"):
        value = getattr(e, name)
        if value is not None:
            setattr(case, name, value)


# -- views (REST answers) -----------------------------------------------------------------
def case_view(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "stage": str(case.stage),
        "category_code": case.category_code,
        "cell_code": case.cell_code,
        "dept": case.dept,
        "deadline": case.deadline,
        "failures": case.failures,
        "reworks": case.reworks,
        "reopenings": case.reopenings,
        "passed_by": case.passed_by,
        "closed_at": case.closed_at,
        "closed_by": case.closed_by,
        "approved_by": case.approved_by,
    }


def task_view(task: Task, case: Case) -> dict[str, Any]:
    """A task as the supervisor's handheld shows it: what to check, where, by when."""
    return {
        "task_id": task.task_id,
        "case_id": task.case_id,
        "purpose": task.purpose,
        "status": str(task.status),
        "supervisor_id": task.supervisor_id,
        "backup_used": task.backup_used,
        "assigned_at": task.assigned_at,
        "due": task.due,
        "overdue": task.overdue_at is not None,
        "reason": task.reason,
        "submitted_by": task.submitted_by,
        "submitted_at": task.submitted_at,
        "on_time": task.on_time,
        "notes": task.notes,
        "photos": task.photos,
        "position": task.position,
        "case": {
            "category_code": case.category_code,
            "cell_code": case.cell_code,
            "description": case.description,
            "address": case.address,
            "location": case.location,
            "dept": case.dept,
            "result": case.result,
            "evidence": case.evidence,
            "stage": str(case.stage),
            "failures": case.failures,
        },
    }


def absence_view(a: repo.Absence) -> dict[str, Any]:
    return {
        "id": a.id,
        "user_id": a.user_id,
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "reason": a.reason,
        "set_by": a.set_by,
    }
