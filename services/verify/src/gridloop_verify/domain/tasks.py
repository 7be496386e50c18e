"""核查任务 / 核实任务: a supervisor's task on a case, its life and who may act on it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from gridloop_contracts.problems import Refusal

Purpose = Literal["verification", "confirmation"]


class TaskStatus(StrEnum):
    OPEN = "open"
    PASSED = "passed"  # 核查通过
    FAILED = "failed"  # 核查不通过
    CONFIRMED = "confirmed"  # 核实属实
    REFUTED = "refuted"  # 核实不属实
    CANCELLED = "cancelled"  # closed, recalled, superseded or decided elsewhere


@dataclass
class Task:
    task_id: str
    case_id: str
    purpose: Purpose
    assigned_at: datetime
    due: datetime
    supervisor_id: str | None = None
    primary_id: str | None = None
    backup_id: str | None = None
    backup_used: bool = False
    status: TaskStatus = TaskStatus.OPEN
    reason: str | None = None
    reminded_at: datetime | None = None
    overdue_at: datetime | None = None
    submitted_by: str | None = None
    submitted_at: datetime | None = None
    on_time: bool | None = None
    notes: str | None = None
    photos: list[dict[str, Any]] = field(default_factory=list)
    position: dict[str, float] | None = None
    cancel_reason: str | None = None
    falsified: bool = False  # the verdict found the department's result falsified (弄虚作假)

    @property
    def is_open(self) -> bool:
        return self.status == TaskStatus.OPEN

    @property
    def stage(self) -> Literal["verification", "confirmation"]:
        """The timeliness stage in case.reminded / case.overdue."""
        return self.purpose

    def timer_key(self) -> str:
        # A terminator, so that the prefix of task C1:V1 never matches C1:V10.
        return f"{self.task_id}#"

    def reassign(self, supervisor_id: str, *, backup_used: bool) -> None:
        self.supervisor_id = supervisor_id
        self.backup_used = backup_used

    def submit(
        self,
        *,
        purpose: Purpose,
        by: str,
        at: datetime,
        outcome: TaskStatus,
        notes: str | None,
        photos: list[dict[str, Any]],
        position: dict[str, float] | None,
    ) -> bool:
        """Record the supervisor's answer; returns on_time against the task's own due."""
        if self.purpose != purpose:
            raise Refusal(
                f"task {self.task_id} is a {self.purpose} task; submit a {self.purpose} to it",
                field="task_id",
                code="wrong-purpose",
            )
        if not self.is_open:
            raise Refusal(
                f"task {self.task_id} is already {self.status}",
                field="task_id",
                code="task-closed",
            )
        self.status = outcome
        self.submitted_by = by
        self.submitted_at = at
        self.on_time = at <= self.due
        self.notes = notes
        self.photos = photos
        self.position = position
        return self.on_time

    def cancel(self, reason: str) -> bool:
        if not self.is_open:
            return False
        self.status = TaskStatus.CANCELLED
        self.cancel_reason = reason
        return True


# -- who may do what (监督与指挥分离) ------------------------------------------------------


def check_may_act(
    user_id: str, roles: Collection[str], task: Task, cell_supervisors: Collection[str]
) -> None:
    """Only the supervision side verifies or confirms on site, and only the task's supervisor
    or the other supervisor of the cell (AB 角). A department never verifies (and so never
    closes) its own case; the command centre dispatches and never verifies."""
    if "department" in roles:
        raise Refusal(
            "a department handles cases; verification and closing belong to the supervision "
            "centre (监督与指挥分离: a department can never close its own case)",
            field="Authorization",
            code="separation-of-duties",
            status=403,
        )
    if "supervisor" not in roles:
        who = "a dispatcher (command centre)" if "dispatcher" in roles else f"role {sorted(roles)}"
        raise Refusal(
            f"{who} may not verify on site; only the cell's supervisor (监督员) does",
            field="Authorization",
            code="forbidden",
            status=403,
        )
    allowed = set(cell_supervisors)
    if task.supervisor_id:
        allowed.add(task.supervisor_id)
    if user_id not in allowed:
        raise Refusal(
            f"task {task.task_id} belongs to {task.supervisor_id or 'nobody yet'}; supervisor "
            f"{user_id} is neither its supervisor nor the cell's backup (AB 角)",
            field="Authorization",
            code="not-assigned",
            status=403,
        )


def check_shift_leader(roles: Collection[str], what: str) -> None:
    """值班长: approves closing, assigns unstaffed tasks, records absences."""
    if "shift-leader" not in roles and "admin" not in roles:
        raise Refusal(
            f"only a shift leader (值班长) may {what}",
            field="Authorization",
            code="forbidden",
            status=403,
        )


def check_may_mark_falsified(roles: Collection[str]) -> None:
    """弄虚作假 is marked only by the supervision side that judges results on the evidence: a
    supervisor on site, or the shift leader reviewing before closing (not an admin)."""
    if "supervisor" not in roles and "shift-leader" not in roles:
        raise Refusal(
            "only a supervisor (监督员) or the shift leader (值班长) may mark a result falsified",
            field="falsified",
            code="forbidden",
            status=403,
        )


def check_falsification(
    *, passed: bool, notes: str | None, photos: Sequence[object], field: str = "passed"
) -> None:
    """A falsified result fails, and is marked with evidence: what was found (notes) and at
    least one photo."""
    if passed:
        raise Refusal(
            "a falsified result cannot pass: mark it falsified only when refusing it",
            field=field,
            code="falsified-passed",
            status=422,
        )
    if not (notes and notes.strip()):
        raise Refusal(
            "say what shows the result is false (弄虚作假): the notes are the record",
            field="notes",
            code="notes-required",
            status=422,
        )
    if not photos:
        raise Refusal(
            "a falsified result is marked with evidence: at least one photo",
            field="photos",
            code="evidence-required",
            status=422,
        )
