"""The verify rules: what each event, timer and command does to one case, in memory.

A rule is `rule(state, message, step)`: it changes the `CaseState` (state.py), `step.emit`s
the events it causes and asks for timers with `step.schedule` / `step.cancel`. No I/O: the
runtime loads the states of a batch, applies the rules in stream order and saves once
(gridloop_runtime.casework); the table of which rule answers what is in `handlers.py`.
A command rule returns the REST answer and may raise `Refusal`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

import structlog
from gridloop_city import WorkingCalendar
from gridloop_city.models import StageLimit
from gridloop_contracts import Actor, Attachment, AttachmentRef, Location
from gridloop_contracts import cases as ev
from gridloop_contracts.common import level_of
from gridloop_contracts.problems import Refusal
from gridloop_runtime.step import Step, Timer

from . import roster, timeliness
from .casefile import Case, Outcome, Stage
from .policy import Policy
from .state import CaseState
from .tasks import (
    Purpose,
    Task,
    TaskStatus,
    check_falsification,
    check_may_act,
    check_may_mark_falsified,
    check_shift_leader,
)
from .views import case_view, task_view

log = structlog.get_logger(__name__)

SYSTEM = Actor(id="verify", role="system")
REMINDER, OVERDUE, ABSENCE = "verify-reminder", "verify-overdue", "verify-absence"


class Place(Protocol):
    """What the rules know of the city: its calendar and roster, and the service's policy
    (`context.Verify`)."""

    @property
    def calendar(self) -> WorkingCalendar: ...

    @property
    def policy(self) -> Policy: ...

    def stage_limit(self, purpose: Purpose) -> StageLimit: ...

    def supervisors_of(self, cell_code: str | None) -> tuple[str, str] | None: ...

    def requires_approval(self, category_code: str | None) -> bool: ...

    def is_supervisor(self, user_id: str) -> bool: ...


class Caller:
    """Who sends a command: id, roles and name (from the runtime's authenticated principal)."""

    def __init__(self, user_id: str, roles: Iterable[str], name: str = "") -> None:
        self.user_id = user_id
        self.roles = frozenset(roles)
        self.name = name

    def actor(self, role: str) -> Actor:
        return Actor(id=self.user_id, role=role, name=self.name or None)


def case_of_task(task_id: str) -> str:
    """Task ids are `<case>:V<n>` / `<case>:C<n>` (Case.next_task_id): the case they belong
    to, without a read."""
    return task_id.rsplit(":", 1)[0]


def timer_case(timer: Timer) -> str:
    """The case of a reminder or overdue timer: its key is the task's `timer_key`."""
    return case_of_task(str(timer.payload.get("task_id") or timer.key.rstrip("#")))


class VerifyRules:
    def __init__(self, place: Place) -> None:
        self.place = place
        self.policy = place.policy

    @property
    def calendar(self) -> WorkingCalendar:
        # read through the place each time: a new version of the city swaps it there
        return self.place.calendar

    # -- events ----------------------------------------------------------------------
    def on_handled(self, state: CaseState, e: ev.CaseHandled, step: Step) -> None:
        """处置反馈 → 核查任务 (a late or repeated result after closing changes nothing)."""
        if state.case.stage == Stage.CLOSED:
            log.info("result for a closed case ignored", case_id=e.case_id)
            return
        case = state.adopt()
        _absorb(case, e)
        case.dept = e.dept or case.dept
        case.dept_task_id = e.task_id or case.dept_task_id
        case.deadline = e.deadline or case.deadline
        case.result = e.result
        case.evidence = [a.model_dump(mode="json") for a in e.evidence]
        case.result_reported()
        self._cancel_open(state, step, "verification", "superseded")
        limit = self.place.stage_limit("verification")
        due = timeliness.task_due(self.calendar, step.now(), limit.limit)
        self._open_task(state, step, "verification", due=due, fraction=limit.reminder_fraction)

    def on_confirmation_requested(
        self, state: CaseState, e: ev.CaseConfirmationRequested, step: Step
    ) -> None:
        """核实: intake asks for an on-site look before acceptance."""
        case = state.adopt()
        _absorb(case, e)
        case.description = e.description or case.description
        case.address = e.address or case.address
        if e.location is not None:
            case.location = e.location.model_dump()
        self._cancel_open(state, step, "confirmation", "superseded")
        limit = self.place.stage_limit("confirmation")
        due = timeliness.task_due(self.calendar, step.now(), limit.limit, e.due)
        self._open_task(
            state,
            step,
            "confirmation",
            due=due,
            fraction=limit.reminder_fraction,
            reason=e.reason,
        )

    def on_accepted(self, state: CaseState, e: ev.CaseAccepted, step: Step) -> None:
        """立案: remember where and what (the supervisor needs it on site); a pending 核实 is
        moot now."""
        case = state.adopt()
        _absorb(case, e)
        case.urgency = e.urgency
        case.description = e.description
        case.address = e.address or case.address
        if e.location is not None:
            case.location = e.location.model_dump()
        self._cancel_open(state, step, "confirmation", "accepted")

    def on_rejected(self, state: CaseState, e: ev.CaseRejected, step: Step) -> None:
        self._cancel_open(state, step, "confirmation", "rejected")

    def on_extension_decided(
        self, state: CaseState, e: ev.CaseExtensionDecided, step: Step
    ) -> None:
        if e.granted and e.new_deadline is not None and state.known:
            state.case.deadline = e.new_deadline

    def on_recalled(self, state: CaseState, e: ev.CaseRecalled, step: Step) -> None:
        """撤回: nothing left to verify until the department reports a new result."""
        if not state.known:
            return
        self._cancel_open(state, step, "verification", "recalled")
        state.case.recalled()

    def on_closed(self, state: CaseState, e: ev.CaseClosed, step: Step) -> None:
        """结案 elsewhere: every open task is moot. Our own closings were applied when made."""
        if step.trigger is not None and step.trigger.source == step.source:
            return
        case = state.adopt()
        _absorb(case, e)
        self._cancel_open(state, step, None, "closed")
        case.closed_elsewhere(e.occurred_at, e.closed_by)

    def on_rated(self, state: CaseState, e: ev.CaseRated | ev.CaseRatedV2, step: Step) -> None:
        """满意度评价: D 不满意 → 重新打开 + 返工 where configured (scoring folds the rating);
        v1's ratings read as their levels (dissatisfied is D)."""
        if not state.known:
            return
        case = state.case
        level = e.level if isinstance(e, ev.CaseRatedV2) else level_of(e.rating)
        count = case.rated(level=level, policy=self.policy)
        if count is None:
            return
        reason = "市民评价不满意 / the reporter was dissatisfied" + (
            f": {e.comment}" if e.comment else ""
        )
        now = step.now()
        step.emit(ev.CaseReopened(**case.task_dims(), occurred_at=now, actor=SYSTEM, reason=reason))
        step.emit(
            ev.CaseReworked(
                **case.task_dims(), occurred_at=now, actor=SYSTEM, count=count, reason=reason
            )
        )

    # -- timers ----------------------------------------------------------------------
    def on_reminder_due(self, state: CaseState, timer: Timer, step: Step) -> None:
        """催办: remind the supervisor before the task's due time."""
        task = _timer_task(state, timer)
        if task is None:
            return
        now = step.now()
        task.reminded_at = now
        step.emit(
            ev.CaseReminded(
                **{**state.case.task_dims(), "deadline": task.due},
                occurred_at=now,
                actor=SYSTEM,
                stage=task.stage,
                level=1,
                supervisor_id=task.supervisor_id,
            )
        )

    def on_overdue(self, state: CaseState, timer: Timer, step: Step) -> None:
        """超期: the task's due time passed unanswered (按时核查率 counts it)."""
        task = _timer_task(state, timer)
        if task is None:
            return
        task.overdue_at = task.due
        step.emit(
            ev.CaseOverdue(
                **{**state.case.task_dims(), "deadline": task.due},
                occurred_at=task.due,
                actor=SYSTEM,
                stage=task.stage,
                supervisor_id=task.supervisor_id,
            )
        )

    # -- commands --------------------------------------------------------------------
    def verify(
        self,
        state: CaseState,
        step: Step,
        task_id: str,
        who: Caller,
        *,
        passed: bool,
        notes: str | None,
        photos: list[Attachment],
        position: Location | None,
        falsified: bool = False,
        files: Sequence[AttachmentRef] = (),
    ) -> dict[str, Any]:
        """核查: the supervisor's verdict on the department's result; `falsified` (弄虚作假):
        the result reported is false, shown by the notes and photos. Its photos: links, and
        photos uploaded here (`files`, carried by reference)."""
        task = self._task_for_command(state, task_id, who)
        case = state.case
        if falsified:
            check_falsification(passed=passed, notes=notes, photos=[*photos, *files])
        if passed and self.policy.require_photo_on_pass and not photos and not files:
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
        now = step.now()
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
            requires_approval=self.place.requires_approval(case.category_code),
            policy=self.policy,
        )
        actor = who.actor("supervisor")
        task.falsified = falsified
        verdict = ev.CaseVerifiedV2(
            **case.task_dims(),
            occurred_at=now,
            actor=actor,
            passed=passed,
            supervisor_id=who.user_id,
            notes=notes,
            photos=photos,
            files=list(files) or None,
            position=position,
            on_time=on_time,
            failures=case.failures,
            **self._falsification(case, falsified, notes, photos, who, "supervisor"),
        )
        if outcome.close and self.policy.closed_v2:  # closed by it: case.closed v2 carries it
            self._follow(step, case, outcome, actor, now, reason=notes or "", verdict=verdict)
        else:
            step.emit(verdict)
            self._follow(step, case, outcome, actor, now, reason=notes or "")
        step.cancel(task.timer_key())
        return {**task_view(task, case), "outcome": outcome.kind}

    def approve(
        self,
        state: CaseState,
        step: Step,
        who: Caller,
        *,
        approved: bool,
        notes: str | None,
        falsified: bool = False,
        photos: Sequence[Attachment] = (),
    ) -> dict[str, Any]:
        """值班长审批结案; refused with `falsified` (弄虚作假 found in the evidence), the refusal
        is the shift leader's verdict on the result: case.verified (v2, falsified) + rework."""
        check_shift_leader(who.roles, "approve closing a case")
        case = state.case
        if not state.known:
            raise Refusal(
                f"no case {case.case_id!r} here", field="case_id", code="not-found", status=404
            )
        if falsified:
            check_may_mark_falsified(who.roles)
            check_falsification(passed=approved, notes=notes, photos=photos, field="approved")
        if not approved and not (notes and notes.strip()):
            raise Refusal(
                "say why closing is refused: the department reworks from these notes",
                field="notes",
                code="notes-required",
                status=422,
            )
        verifier = case.passed_by
        outcome = case.approval(approved=approved, approver=who.user_id)
        reason = notes or ""
        actor = who.actor("shift-leader")
        if not approved:
            reason = f"值班长未批准结案 / closing refused by the shift leader: {notes}"
        if falsified:
            reason = f"弄虚作假：{notes} / falsified result"
            step.emit(
                ev.CaseVerifiedV2(
                    **case.task_dims(),
                    occurred_at=step.now(),
                    actor=actor,
                    passed=False,
                    supervisor_id=verifier or who.user_id,
                    notes=notes,
                    photos=list(photos),
                    failures=case.failures,
                    **self._falsification(case, True, notes, photos, who, "shift-leader"),
                )
            )
        self._follow(step, case, outcome, actor, step.now(), reason=reason)
        return {**case_view(case), "outcome": outcome.kind}

    def confirm(
        self,
        state: CaseState,
        step: Step,
        task_id: str,
        who: Caller,
        *,
        confirmed: bool,
        notes: str | None,
        photos: list[Attachment],
        position: Location | None,
        files: Sequence[AttachmentRef] = (),
    ) -> dict[str, Any]:
        """核实: the problem is there (confirmed) or not (refuted); intake decides 立案."""
        task = self._task_for_command(state, task_id, who)
        case = state.case
        now = step.now()
        on_time = task.submit(
            purpose="confirmation",
            by=who.user_id,
            at=now,
            outcome=TaskStatus.CONFIRMED if confirmed else TaskStatus.REFUTED,
            notes=notes,
            photos=[p.model_dump(mode="json") for p in photos],
            position=position.model_dump() if position else None,
        )
        step.emit(
            ev.CaseConfirmed(
                **case.dims(),
                occurred_at=now,
                actor=who.actor("supervisor"),
                confirmed=confirmed,
                supervisor_id=who.user_id,
                notes=notes,
                photos=photos,
                files=list(files) or None,
                on_time=on_time,
                position=position,
            )
        )
        step.cancel(task.timer_key())
        return task_view(task, case)

    def assign(
        self, state: CaseState, step: Step, task_id: str, who: Caller, *, supervisor_id: str
    ) -> dict[str, Any]:
        """值班长 hands an open task to a supervisor (nobody present, or a better fit)."""
        check_shift_leader(who.roles, "assign verification tasks")
        if not self.place.is_supervisor(supervisor_id):
            raise Refusal(
                f"{supervisor_id!r} is not a supervisor (users.yaml)",
                field="supervisor_id",
                code="not-a-supervisor",
                status=422,
            )
        task = _task(state, task_id)
        if not task.is_open:
            raise Refusal(
                f"task {task_id} is already {task.status}", field="task_id", code="task-closed"
            )
        task.reassign(supervisor_id, backup_used=supervisor_id != task.primary_id)
        self._emit_assigned(step, state.case, task, who.actor("shift-leader"))
        return task_view(task, state.case)

    def hand_over(self, state: CaseState, step: Step, user_ids: Sequence[str]) -> list[str]:
        """AB 角: the open tasks of the case held by supervisors who are absent now go to the
        present one of the cell's pair; returns the task ids that changed hands."""
        away = set(user_ids)
        tasks = [t for t in state.open_tasks() if t.supervisor_id in away]
        if not tasks:
            return []
        pair = self.place.supervisors_of(state.case.cell_code)
        absent = state.absences.absent_at(step.now())
        moved: list[str] = []
        for task in tasks:
            new = roster.cover(task.supervisor_id, pair, absent)
            if new is None or new.supervisor_id is None:
                continue
            task.reassign(new.supervisor_id, backup_used=new.backup_used)
            self._emit_assigned(step, state.case, task, SYSTEM)
            moved.append(task.task_id)
        return moved

    # -- the pieces ------------------------------------------------------------------
    @staticmethod
    def _falsification(
        case: Case,
        falsified: bool,
        notes: str | None,
        photos: Sequence[Attachment],
        who: Caller,
        role: Literal["supervisor", "shift-leader"],
    ) -> dict[str, Any]:
        """The falsification fields of a verdict (counted on the case when it is one)."""
        if not falsified:
            return {"falsified": False}
        case.falsifications += 1
        return {
            "falsified": True,
            "falsification": ev.Falsification(
                notes=notes or "", evidence=list(photos), marked_by=who.user_id, role=role
            ),
        }

    def _open_task(
        self,
        state: CaseState,
        step: Step,
        purpose: Purpose,
        *,
        due: datetime,
        fraction: float,
        reason: str | None = None,
    ) -> Task:
        """A new task for the cell's present supervisor, with its reminder and overdue
        timers; announced at once unless nobody is present (then the shift leader assigns)."""
        now = step.now()
        case = state.case
        chosen = roster.assign(
            self.place.supervisors_of(case.cell_code), state.absences.absent_at(now)
        )
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
        state.add_task(task)
        payload = {"task_id": task.task_id}
        remind = timeliness.reminder_at(self.calendar, now, due, fraction)
        if remind is not None:
            step.schedule(REMINDER, task.timer_key(), remind, payload)
        step.schedule(OVERDUE, task.timer_key(), due, payload)
        if chosen.unassigned:
            log.warning("no supervisor present for a task", task_id=task.task_id)
        else:
            self._emit_assigned(step, case, task, SYSTEM)
        return task

    def _emit_assigned(self, step: Step, case: Case, task: Task, actor: Actor) -> None:
        assert task.supervisor_id is not None
        dims = case.task_dims() if task.purpose == "verification" else case.dims()
        step.emit(
            ev.CaseVerificationAssigned(
                **dims,
                occurred_at=step.now(),
                actor=actor,
                supervisor_id=task.supervisor_id,
                backup_used=task.backup_used,
                due=task.due,
                purpose=task.purpose,
                verification_task_id=task.task_id,
            )
        )

    @staticmethod
    def _cancel_open(state: CaseState, step: Step, purpose: Purpose | None, reason: str) -> None:
        """Cancel the case's open tasks (of one purpose, or all) and their timers."""
        for task in state.open_tasks(purpose):
            task.cancel(reason)
            step.cancel(task.timer_key())

    def _task_for_command(self, state: CaseState, task_id: str, who: Caller) -> Task:
        task = _task(state, task_id)
        pair = self.place.supervisors_of(state.case.cell_code)
        check_may_act(who.user_id, who.roles, task, roster.members(pair))
        return task

    def _follow(
        self,
        step: Step,
        case: Case,
        outcome: Outcome,
        actor: Actor,
        now: datetime,
        reason: str,
        verdict: ev.CaseVerifiedV2 | None = None,
    ) -> None:
        """The events after a verdict or an approval: 结案 (v2, carrying `verdict`, the
        verdict that closed it, when there is one), or 返工 (and 督办)."""
        if outcome.close:
            assert outcome.closed_by is not None
            on_time = case.close(now, outcome.closed_by, outcome.approved_by)
            closed = dict(
                **case.task_dims(),
                occurred_at=now,
                actor=actor,
                closed_by=outcome.closed_by,
                approved_by=outcome.approved_by,
                on_time=on_time,
                reworks=case.reworks,
            )
            step.emit(
                ev.CaseClosed(**closed)
                if verdict is None
                else ev.CaseClosedV2(**closed, verdict=verdict)
            )
        if outcome.rework_count is not None:
            step.emit(
                ev.CaseReworked(
                    **case.task_dims(),
                    occurred_at=now,
                    actor=actor,
                    count=outcome.rework_count,
                    reason=reason,
                )
            )
        if outcome.escalation_level is not None:
            step.emit(
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


def _task(state: CaseState, task_id: str) -> Task:
    task = state.tasks.get(task_id)
    if task is None:
        raise Refusal(f"no task {task_id!r}", field="task_id", code="not-found", status=404)
    return task


def _timer_task(state: CaseState, timer: Timer) -> Task | None:
    task = state.tasks.get(str(timer.payload["task_id"]))
    return task if task is not None and task.is_open else None
