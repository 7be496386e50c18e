"""案卷与任务: dispatch's view of a case and of the tasks it gave departments, and every change
a task may go through (签收, 退回, 处置, 返工, 延期, 撤回, 结案, 催办, 超期, 督办), its extension
requests, and `CaseFile`: all of it for one case, the state the rules change.

A task is one department's assignment on a case: the responsible unit, its co-handlers and
lead, and one deadline at a time. `gen` counts the deadlines a task has had (dispatch,
rework, extension): chase timers carry the generation they were set for, so a timer set for an
earlier deadline can never fire for the current one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from gridloop_contracts.problems import Refusal

Urgency = Literal["normal", "urgent"]
DispatchKind = Literal["initial", "redispatch", "rework", "split", "manual"]
Role = Literal["sole", "lead", "co-handler"]


class CaseState(StrEnum):
    QUEUED = "queued"  # 待人工派遣: waits for a dispatcher
    DISPATCHED = "dispatched"  # a department holds it
    HANDLED = "handled"  # every task reported its result: verification's turn
    CLOSED = "closed"  # 结案


class TaskStatus(StrEnum):
    OPEN = "open"  # 已派遣, not signed for yet
    SIGNED = "signed"  # 已签收
    HANDLED = "handled"  # 已处置: result reported
    RETURNED = "returned"  # 退回
    RECALLED = "recalled"  # 撤回
    CLOSED = "closed"  # the case closed


ACTIVE = frozenset({TaskStatus.OPEN, TaskStatus.SIGNED})
NO_TASK = "无在办任务 / no department holds the case"


class Withdrawn(NamedTuple):
    """An overdue withdrawn (超期撤回): the deadline it was judged at, when, and the 督办 levels
    withdrawn with it (lowest first)."""

    deadline: datetime
    overdue_at: datetime
    levels: tuple[int, ...]


@dataclass
class Task:
    task_id: str
    case_id: str
    dept: str
    kind: DispatchKind
    dispatched_at: datetime
    deadline: datetime
    # When the current deadline was set (dispatch, rework, extension): the 催办 window's start.
    window_start: datetime
    co_handlers: tuple[str, ...] = ()
    lead: str | None = None
    status: TaskStatus = TaskStatus.OPEN
    dispatched_by: str = "dispatch"
    sign_in_due: datetime | None = None
    gen: int = 1
    signed_at: datetime | None = None
    handled_at: datetime | None = None
    reminded_at: datetime | None = None
    overdue_at: datetime | None = None
    sign_in_overdue_at: datetime | None = None
    escalation_level: int = 0
    escalated_at: datetime | None = None
    # the 督办 level reached before the current deadline's overdue (None: no overdue, or one
    # judged by a release that did not record it)
    overdue_level: int | None = None
    # The overdue of a deadline an extension replaced: that deadline (an overdue is judged at
    # the deadline itself) and the 督办 level reached before it. A result handling took by
    # that deadline (on its way while the deadline passed and the extension was granted)
    # withdraws it too.
    replaced_deadline: datetime | None = None
    replaced_overdue_level: int | None = None
    reworks: int = 0
    extensions: int = 0
    note: str | None = None
    reason: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    manual_reminders: int = 0  # 人工催办 by a dispatcher or shift leader

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def timer_key(self, gen: int | None = None) -> str:
        """The key of this task's chase timers for one deadline (prefixed by the case id, as
        task ids are)."""
        return f"{self.task_id}#{self.gen if gen is None else gen}"

    def parties(self) -> list[str]:
        """Every unit that hears about the task: responsible unit, co-handlers, the lead."""
        out = [self.dept, *self.co_handlers]
        if self.lead and self.lead not in out:
            out.append(self.lead)
        return out

    def role_of(self, dept: str) -> Role:
        if not self.co_handlers and self.lead in (None, self.dept):
            return "sole"
        return "lead" if dept == (self.lead or self.dept) else "co-handler"

    # -- the department's side ------------------------------------------------------
    def sign(self, at: datetime) -> bool:
        """签收; False when there is nothing to sign (ended, or signed already)."""
        if not self.active or self.signed_at is not None:
            return False
        self.signed_at = at
        self.status = TaskStatus.SIGNED
        return True

    def report_handled(self, at: datetime) -> bool:
        if not self.active:
            return False
        self.handled_at = at
        self.status = TaskStatus.HANDLED
        return True

    def overtake_recall(self, handled_at: datetime) -> None:
        """The result reported before the recall reached handling stands: handled, not
        recalled."""
        self.status = TaskStatus.HANDLED
        self.handled_at = handled_at
        self.ended_at = None
        self.end_reason = None

    def end(self, status: TaskStatus, at: datetime, reason: str | None) -> None:
        """退回 / 撤回 / 结案: the task is over; its timers are cancelled by the caller."""
        self.status = status
        self.ended_at = at
        self.end_reason = reason

    # -- new deadlines --------------------------------------------------------------
    def rework(
        self, at: datetime, deadline: datetime, count: int, sign_in_due: datetime | None
    ) -> None:
        """返工: back to the same department with a new deadline, and a fresh ladder (a new
        period of handling, counted against the department in scoring). The department signs
        for the rework round again (签收), by `sign_in_due`, chased like a first dispatch."""
        self.kind = "rework"
        self.status = TaskStatus.OPEN
        self.dispatched_at = at
        self.window_start = at
        self.deadline = deadline
        self.sign_in_due = sign_in_due
        self.signed_at = None
        self.sign_in_overdue_at = None
        self.handled_at = None
        self.ended_at = None
        self.end_reason = None
        self.reminded_at = None
        self.overdue_at = None
        self.overdue_level = None
        self.replaced_deadline = self.replaced_overdue_level = None
        self.escalation_level = 0
        self.escalated_at = None
        self.reworks = max(count, self.reworks + 1)
        self.gen += 1

    def extend(self, at: datetime, deadline: datetime) -> None:
        """延期: the deadline moves; a new reminder and overdue may come, but the escalation
        levels already reached stand (the ladder continues, it does not restart). An overdue
        judged at the deadline it replaces is kept aside, to be withdrawn should a result taken
        by that deadline still come (the latest such; an earlier one kept aside stands)."""
        if self.overdue_at is not None:
            self.replaced_deadline = self.deadline
            self.replaced_overdue_level = self._level_before_overdue()
        self.deadline = deadline
        self.window_start = at
        self.reminded_at = None
        self.overdue_at = None
        self.overdue_level = None
        self.extensions += 1
        self.gen += 1

    # -- the chase (each returns False when it already happened: fire exactly once) --
    def remind(self, at: datetime) -> bool:
        if not self.active or self.reminded_at is not None:
            return False
        self.reminded_at = at
        return True

    def miss_sign_in(self, at: datetime) -> bool:
        if not self.active or self.signed_at is not None or self.sign_in_overdue_at is not None:
            return False
        self.sign_in_overdue_at = at
        return True

    def fall_overdue(self, at: datetime) -> bool:
        if not self.active or self.overdue_at is not None:
            return False
        self.overdue_at = at
        self.overdue_level = self.escalation_level
        return True

    # -- 超期撤回: the answer was on time, it only came after the judgement -------------
    def withdraw_sign_in_overdue(self, signed_on_time: bool) -> datetime | None:
        """The signature handling took by the sign-in deadline reached dispatch after it had
        judged 签收超时: that judgement is withdrawn. Returns its time; None when there is none
        to withdraw."""
        judged = self.sign_in_overdue_at
        if judged is None or not signed_on_time:
            return None
        self.sign_in_overdue_at = None
        return judged

    def withdraw_overdue(self, handled_on_time: bool, taken_at: datetime) -> list[Withdrawn]:
        """The result handling took by the deadline (`handled_on_time`, at `taken_at`) reached
        dispatch after it had judged the deadline passed (超期): the overdue is withdrawn, and
        with it the 督办 levels the ladder reached after it (levels reached before it stand, as
        after an extension). An overdue judged at a deadline an extension then replaced is
        withdrawn too when the result was taken by that deadline, after the current one. Returns
        what was withdrawn, latest first; empty when nothing was."""
        out: list[Withdrawn] = []
        if self.overdue_at is not None and handled_on_time:
            judged = self.overdue_at
            levels = self._take_back(self._level_before_overdue())
            self.overdue_at = None
            self.overdue_level = None
            out.append(Withdrawn(self.deadline, judged, levels))
        replaced = self.replaced_deadline
        if self.overdue_at is None and replaced is not None and taken_at <= replaced:
            levels = self._take_back(self.replaced_overdue_level or 0)
            self.replaced_deadline = self.replaced_overdue_level = None
            out.append(Withdrawn(replaced, replaced, levels))
        return out

    def _level_before_overdue(self) -> int:
        """The 督办 level reached before the current deadline's overdue; for one judged by an
        earlier release that did not record it: all of the ladder is this deadline's, unless
        the deadline was extended."""
        if self.overdue_level is not None:
            return self.overdue_level
        return self.escalation_level if self.extensions else 0

    def _take_back(self, before: int) -> tuple[int, ...]:
        """The 督办 levels above `before`, withdrawn (lowest first)."""
        levels = tuple(range(before + 1, self.escalation_level + 1))
        if levels:
            self.escalation_level = before
            if before == 0:
                self.escalated_at = None
        return levels

    def escalate(self, level: int, at: datetime) -> bool:
        if not self.active or self.escalation_level >= level:
            return False
        self.escalation_level = level
        self.escalated_at = at
        return True


def check_extension(
    task: Task, new_deadline: datetime, now: datetime, cap: datetime | None
) -> None:
    """Whether a new deadline may be granted; a Refusal names what is wrong."""
    if not task.active:
        raise Refusal(
            f"task {task.task_id} is {task.status}: nothing to extend",
            field="request_id",
            code="task-ended",
        )
    if new_deadline <= task.deadline or new_deadline <= now:
        raise Refusal(
            "an extension must move the deadline later (and into the future)",
            field="new_deadline",
            code="not-later",
            status=422,
        )
    if cap is not None and new_deadline > cap:
        raise Refusal(
            "最迟不超过5个工作日 / a community-level unit's deadline may not pass "
            f"{cap.isoformat()}",
            field="new_deadline",
            code="beyond-limit",
        )


@dataclass
class Case:
    """Dispatch's projection of an accepted case, and the command centre's marks on it."""

    case_id: str
    category_code: str
    cell_code: str
    accepted_at: datetime
    state: CaseState = CaseState.QUEUED
    community_code: str | None = None
    subdistrict_code: str | None = None
    urgency: Urgency = "normal"
    description: str = ""
    address: str | None = None
    location: dict[str, Any] | None = None
    part_code: str | None = None
    part_owner_dept: str | None = None
    reporter: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    channel: str | None = None
    source: str | None = None
    returned_by: list[str] = field(default_factory=list)
    queue_reason: str | None = None
    queued_at: datetime | None = None
    supervised_at: datetime | None = None
    supervised_reason: str | None = None
    supervised_by: str | None = None
    emergency_escalated_at: datetime | None = None
    task_seq: int = 0
    closed_at: datetime | None = None
    queue_chase_level: int = 0  # the queue's chase ladder reached while waiting (待人工派遣)

    def next_task_id(self) -> str:
        self.task_seq += 1
        return f"{self.case_id}-T{self.task_seq}"

    def dims(self) -> dict[str, Any]:
        """The dimensions every case event carries forward (flow.md)."""
        return {
            "case_id": self.case_id,
            "category_code": self.category_code,
            "cell_code": self.cell_code,
            "community_code": self.community_code,
            "subdistrict_code": self.subdistrict_code,
        }

    @property
    def closed(self) -> bool:
        return self.state == CaseState.CLOSED

    @property
    def queued(self) -> bool:
        return self.queued_at is not None

    def to_queue(self, reason: str, at: datetime) -> None:
        """待人工派遣: never nowhere — the case waits for a dispatcher, with the reason. A case
        may be queued while other tasks of it run (a returned part of a split case)."""
        self.queue_reason = reason
        self.queued_at = at
        self.queue_chase_level = 0

    def unqueue(self) -> None:
        self.queue_reason = None
        self.queued_at = None
        self.queue_chase_level = 0

    def chase_queue(self, level: int, queued_at: datetime) -> bool:
        """One level of the queue's chase (待人工派遣超时); False when it is moot: the case left
        the queue, was queued again since (another wait), or reached the level already."""
        if self.closed or self.queued_at != queued_at or self.queue_chase_level >= level:
            return False
        self.queue_chase_level = level
        return True

    def returned(self, dept: str) -> None:
        if dept not in self.returned_by:
            self.returned_by.append(dept)

    def settle(self, tasks: list[Task], at: datetime) -> None:
        """The case's state from its tasks: dispatched while a department holds a task, queued
        while a dispatcher must act, handled when the results are in."""
        if self.closed:
            return
        if any(t.active for t in tasks):
            self.state = CaseState.DISPATCHED
        elif self.queued:
            self.state = CaseState.QUEUED
        elif any(t.status == TaskStatus.HANDLED for t in tasks):
            self.state = CaseState.HANDLED
        else:
            self.to_queue(NO_TASK, at)
            self.state = CaseState.QUEUED

    def close(self, at: datetime) -> None:
        self.state = CaseState.CLOSED
        self.closed_at = at
        self.queue_reason = None
        self.queued_at = None

    def supervise(self, at: datetime, reason: str, by: str) -> None:
        """挂牌督办."""
        if self.supervised_at is not None:
            raise Refusal(
                f"case {self.case_id} is under listed supervision already",
                field="case_id",
                code="already-supervised",
            )
        self.supervised_at = at
        self.supervised_reason = reason
        self.supervised_by = by


def check_open(case: Case) -> None:
    if case.closed:
        raise Refusal(f"case {case.case_id} is closed", field="case_id", code="case-closed")


@dataclass
class Extension:
    """延期申请: what the department asked, and what the dispatcher decided."""

    request_id: str
    case_id: str
    task_id: str
    dept: str
    reason: str
    proposed_deadline: datetime
    current_deadline: datetime
    requested_at: datetime
    requested_by: str | None = None
    status: str = "pending"
    decided_at: datetime | None = None
    decided_by: str | None = None
    new_deadline: datetime | None = None
    decision_reason: str | None = None


@dataclass
class CaseFile:
    """Everything dispatch knows of one case: the case (None until it is accepted), its tasks
    (in task id order) and its extension requests. The rules change it in memory; the store
    writes back only the rows that changed (`stored`: the rows as read, by table and key)."""

    case_id: str
    case: Case | None = None
    tasks: list[Task] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    # When a rule last touched the file (the case row's updated_at).
    updated_at: datetime | None = None
    stored: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict, repr=False)

    def task(self, task_id: str) -> Task | None:
        for t in self.tasks:
            if t.task_id == task_id:
                return t
        return None

    def extension(self, request_id: str) -> Extension | None:
        for x in self.extensions:
            if x.request_id == request_id:
                return x
        return None

    def settle_extensions(self, tasks: list[Task], reason: str) -> None:
        """Pending requests of tasks that ended are moot: nobody is left to extend."""
        ended = {t.task_id for t in tasks}
        for x in self.extensions:
            if x.task_id in ended and x.status == "pending":
                x.status = "moot"
                x.decision_reason = reason
