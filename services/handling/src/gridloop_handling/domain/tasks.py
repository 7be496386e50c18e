"""处置任务: one department's task on a case — its life, and who may do what to it when.

A dispatch (派遣) gives a case to a responsible unit, optionally with co-handling units (协办单位)
and a lead unit (牵头单位). Each of those units gets its own task here. The lead (or the sole
unit) signs for it (签收), may return it as not theirs (退回) or ask for more time (延期申请),
and reports the result (处置反馈); co-handlers sign and add their contribution as progress
notes, which travel with the lead's result.

Every rule that refuses raises a `Refusal` naming the field, a stable code and the HTTP status,
the same for REST and NATS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from gridloop_contracts.problems import Refusal

Role = Literal["sole", "lead", "co-handler"]
Action = Literal["signed", "returned", "extension_requested", "progress", "handled"]
ACTIONS: tuple[Action, ...] = ("signed", "returned", "extension_requested", "progress", "handled")


class TaskState(StrEnum):
    DISPATCHED = "dispatched"  # 待签收
    SIGNED = "signed"  # 已签收, 处置中
    HANDLED = "handled"  # 已反馈: the result is in, verification follows
    RETURNED = "returned"  # 已退回: not ours; the command centre re-routes
    RECALLED = "recalled"  # 已撤回 by the command centre
    CLOSED = "closed"  # 已结案
    SUPERSEDED = "superseded"  # a newer dispatch of the case to the same unit replaced it


OPEN_STATES = frozenset({TaskState.DISPATCHED, TaskState.SIGNED, TaskState.HANDLED})
ENDED_STATES = frozenset(TaskState) - OPEN_STATES


@dataclass(frozen=True)
class Unit:
    """A unit a dispatch names, with its part in it."""

    task_id: str
    dept: str
    role: Role


def units_of(task_id: str, dept: str, co_handlers: Sequence[str], lead: str | None) -> list[Unit]:
    """The tasks one `case.dispatched` makes: the responsible unit keeps the dispatch's task
    id; each co-handler gets `<task id>~<dept>`. The lead is the named lead, else the
    responsible unit; a dispatch naming another lead is a co-handler's own dispatch."""
    names = list(dict.fromkeys([dept, *co_handlers]))
    lead_unit = lead or dept
    if len(names) == 1:
        role: Role = "sole" if lead_unit == dept else "co-handler"
        return [Unit(task_id, dept, role)]
    if lead_unit != dept:
        # Dispatch addressed this unit as a co-handler of another lead's task: it is the only
        # task this event makes (the lead's task comes with the lead's own dispatch).
        return [Unit(task_id, dept, "co-handler")]
    return [
        Unit(task_id if name == dept else co_task_id(task_id, name), name, _role(name, lead_unit))
        for name in names
    ]


def co_task_id(task_id: str, dept: str) -> str:
    return f"{task_id}~{dept}"


def _role(name: str, lead: str) -> Role:
    return "lead" if name == lead else "co-handler"


@dataclass
class Extension:
    """A pending 延期申请."""

    request_id: str
    reason: str
    proposed_deadline: datetime
    requested_at: datetime
    requested_by: str

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "reason": self.reason,
            "proposed_deadline": self.proposed_deadline.isoformat(),
            "requested_at": self.requested_at.isoformat(),
            "requested_by": self.requested_by,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Extension | None:
        if not data:
            return None
        return cls(
            request_id=data["request_id"],
            reason=data["reason"],
            proposed_deadline=datetime.fromisoformat(data["proposed_deadline"]),
            requested_at=datetime.fromisoformat(data["requested_at"]),
            requested_by=data["requested_by"],
        )


@dataclass
class Task:
    """One unit's task on a case, as the department's inbox shows it."""

    task_id: str
    case_id: str
    dept: str
    role: Role
    group_id: str  # the dispatch's task id: the lead's task and its co-handlers share it
    lead: str
    deadline: datetime
    dispatched_at: datetime
    co_handlers: tuple[str, ...] = ()
    kind: str = "initial"
    state: TaskState = TaskState.DISPATCHED
    sign_in_due: datetime | None = None
    urgency: str = "normal"
    round: int = 1  # 1 + how often the task came back (rework, re-dispatch)
    reworks: int = 0
    # case.reworked brought the task back, and dispatch's rework dispatch that follows it
    # (the new terms) has not come yet: that one neither counts nor starts the round over.
    rework_dispatch_due: bool = False
    signed_at: datetime | None = None
    signed_by: str | None = None
    sign_on_time: bool | None = None
    progress_notes: int = 0
    handled_at: datetime | None = None
    handled_by: str | None = None
    completed_at: datetime | None = None
    result: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    on_time: bool | None = None
    extension: Extension | None = None
    extensions_granted: int = 0
    escalation_level: int = 0
    supervised: bool = False
    ended_at: datetime | None = None
    end_reason: str | None = None
    # A co-handler's contributions of this round (its `contribution` log lines, oldest
    # first: {"seq", "dept", "note", "evidence"}; seq (the log line's id) orders them across
    # the team; one not written yet has seq None and "made", its place in this load).
    contributions: list[dict[str, Any]] = field(default_factory=list)

    # -- reading ------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def is_lead(self) -> bool:
        return self.role != "co-handler"

    def overdue(self, now: datetime) -> bool:
        """超期: not handled by the deadline (still open past it, or reported after it)."""
        if self.handled_at is not None:
            return self.handled_at > self.deadline
        if self.state in (TaskState.DISPATCHED, TaskState.SIGNED):
            return now > self.deadline
        return False

    def stage(self) -> str:
        """What the department has to do next (the inbox's tabs)."""
        return {
            TaskState.DISPATCHED: "to_sign",
            TaskState.SIGNED: "in_progress",
            TaskState.HANDLED: "awaiting_verification",
        }.get(self.state, "ended")

    # -- commands -----------------------------------------------------------------------
    def check_department(self, dept: str) -> None:
        """A department acts only on its own tasks."""
        if dept != self.dept:
            raise Refusal(
                f"case {self.case_id} is not a task of department {dept!r}",
                field="dept",
                code="wrong-department",
                status=403,
            )

    def sign(self, now: datetime, by: str) -> None:
        """签收."""
        self._check_not_ended()
        if self.state == TaskState.SIGNED:
            raise Refusal(
                f"already signed for by {self.signed_by} at {_iso(self.signed_at)}",
                field="case_id",
                code="already-signed",
            )
        self._check_not_handled()
        self.state = TaskState.SIGNED
        self.signed_at = now
        self.signed_by = by
        self.sign_on_time = self.sign_in_due is None or now <= self.sign_in_due

    def return_(self, now: datetime, by: str, reason: str) -> None:
        """退回: not ours. Only the lead (or sole) unit returns the case: it is about the routing
        of the whole case, which the co-handlers do not decide."""
        self._check_not_ended()
        self._check_lead("return the case (退回)", "add a progress note saying why instead")
        self._check_not_handled()
        self._end(TaskState.RETURNED, now, f"退回 by {by}: {reason}")

    def request_extension(
        self, now: datetime, by: str, reason: str, proposed: datetime, request_id: str
    ) -> Extension:
        """延期申请: to the dispatcher, who grants or refuses it."""
        self._check_not_ended()
        self._check_lead("ask for an extension (延期申请)", "ask the lead unit to")
        self._check_not_handled()
        self._check_signed("ask for an extension")
        if self.extension is not None:
            raise Refusal(
                f"extension request {self.extension.request_id} of "
                f"{_iso(self.extension.requested_at)} is still waiting for the dispatcher",
                field="proposed_deadline",
                code="extension-pending",
            )
        if proposed <= self.deadline:
            raise Refusal(
                f"must be later than the current deadline {_iso(self.deadline)}",
                field="proposed_deadline",
                code="invalid",
                status=422,
            )
        if proposed <= now:
            raise Refusal(
                "must be in the future", field="proposed_deadline", code="invalid", status=422
            )
        self.extension = Extension(request_id, reason, proposed, now, by)
        return self.extension

    def add_progress(self, now: datetime) -> bool:
        """处置进展; returns whether it counts as a co-handler's contribution."""
        self._check_not_ended()
        self._check_not_handled()
        self._check_signed("add progress or a contribution")
        self.progress_notes += 1
        return not self.is_lead

    def handle(
        self,
        now: datetime,
        by: str,
        *,
        result: str,
        evidence: list[dict[str, Any]],
        completed_at: datetime,
        require_evidence: bool,
        clock_skew: timedelta,
    ) -> bool:
        """处置反馈: the result, by the lead (or sole) unit after signing; returns on_time.

        On time means reported by the deadline: the report time is on record, the completion
        time is the department's word."""
        self._check_not_ended()
        self._check_lead(
            "report the result (处置反馈)", "add your part as a progress note (contribution)"
        )
        self._check_not_handled()
        self._check_signed("report a result")
        if require_evidence and not evidence:
            raise Refusal(
                "at least one photo or document is required as evidence of the result",
                field="evidence",
                code="evidence-required",
                status=422,
            )
        if completed_at > now + clock_skew:
            raise Refusal(
                f"lies in the future (now is {_iso(now)})",
                field="completed_at",
                code="invalid",
                status=422,
            )
        if completed_at < self.dispatched_at:
            raise Refusal(
                f"lies before the task was dispatched ({_iso(self.dispatched_at)})",
                field="completed_at",
                code="invalid",
                status=422,
            )
        self.state = TaskState.HANDLED
        self.handled_at = now
        self.handled_by = by
        self.completed_at = completed_at
        self.result = result
        self.evidence = evidence
        self.on_time = now <= self.deadline
        # A pending 延期申请 is moot once the result is in.
        self.extension = None
        return self.on_time

    def _check_not_ended(self) -> None:
        if self.state == TaskState.CLOSED:
            raise Refusal(
                f"case {self.case_id} was closed (结案) at {_iso(self.ended_at)}; "
                "no more commands are taken",
                field="case_id",
                code="case-closed",
            )
        if self.state == TaskState.RECALLED:
            raise Refusal(
                f"the command centre recalled this task (撤回) at {_iso(self.ended_at)}: "
                f"{self.end_reason}",
                field="case_id",
                code="task-recalled",
            )
        if self.state == TaskState.RETURNED:
            raise Refusal(
                f"this task was returned (退回) at {_iso(self.ended_at)} and is being re-routed",
                field="case_id",
                code="task-returned",
            )
        if self.state == TaskState.SUPERSEDED:
            raise Refusal(
                f"this task was replaced by a newer dispatch: {self.end_reason}",
                field="task_id",
                code="task-superseded",
            )

    def _check_not_handled(self) -> None:
        if self.state == TaskState.HANDLED:
            raise Refusal(
                f"the result was reported at {_iso(self.handled_at)}; the case awaits "
                "verification (核查)",
                field="case_id",
                code="already-handled",
            )

    def _check_signed(self, what: str) -> None:
        if self.state == TaskState.DISPATCHED:
            raise Refusal(
                f"sign for the task first (签收): you cannot {what} before sign-in",
                field="case_id",
                code="not-signed",
            )

    def _check_lead(self, what: str, instead: str) -> None:
        if not self.is_lead:
            raise Refusal(
                f"only the lead unit ({self.lead}) may {what}; a co-handling unit may not — "
                f"{instead}",
                field="dept",
                code="lead-only",
            )

    # -- what others decide -------------------------------------------------------------
    def redispatch(
        self,
        *,
        now: datetime,
        role: Role,
        group_id: str,
        lead: str,
        co_handlers: tuple[str, ...],
        kind: str,
        deadline: datetime,
        sign_in_due: datetime | None,
        urgency: str,
    ) -> None:
        """The same task id dispatched again (rework, re-dispatch): new terms; a task that was
        waiting or being worked keeps its state, any other starts over at sign-in. The rework
        dispatch that follows a case.reworked already applied only brings the terms: the
        department may have signed and reported the reworked round before it came."""
        self.role, self.group_id, self.lead, self.co_handlers = role, group_id, lead, co_handlers
        self.kind, self.deadline, self.sign_in_due, self.urgency = (
            kind,
            deadline,
            sign_in_due,
            urgency,
        )
        follows_rework = kind == "rework" and self.rework_dispatch_due
        self.rework_dispatch_due = False
        if follows_rework:
            return
        if self.state not in (TaskState.DISPATCHED, TaskState.SIGNED):
            if kind == "rework" and self.state in (TaskState.HANDLED, TaskState.CLOSED):
                # A rework dispatch that arrives without case.reworked before it still counts.
                self.reworks += 1
            self._start_over(now)

    def rework(self, now: datetime, count: int, new_deadline: datetime | None) -> bool:
        """返工: the result failed verification (or a dissatisfied rating reopened the case);
        back to sign-in. Returns False when the task is not one to rework."""
        if self.state not in (TaskState.HANDLED, TaskState.CLOSED):
            return False
        self.reworks = max(self.reworks + 1, count)
        if new_deadline is not None:
            self.deadline = new_deadline
        self._start_over(now)
        self.rework_dispatch_due = True
        return True

    def recall(self, now: datetime, reason: str) -> bool:
        if not self.is_open:
            return False
        self._end(TaskState.RECALLED, now, reason)
        return True

    def close(self, now: datetime) -> bool:
        if not self.is_open:
            return False
        self._end(TaskState.CLOSED, now, "结案")
        return True

    def supersede(self, now: datetime, reason: str) -> bool:
        """Replaced by a newer dispatch, or the lead returned the case it was helping with."""
        if not self.is_open:
            return False
        self._end(TaskState.SUPERSEDED, now, reason)
        return True

    def group_handled(self, now: datetime) -> bool:
        """A co-handler's part ends when the lead reports the result."""
        if self.state not in (TaskState.DISPATCHED, TaskState.SIGNED) or self.is_lead:
            return False
        self.state = TaskState.HANDLED
        self.handled_at = now
        return True

    def extension_decided(
        self, request_id: str | None, granted: bool, new_deadline: datetime | None
    ) -> bool:
        """延期审批: the pending request is settled; a grant moves the deadline."""
        changed = False
        if self.extension is not None and (
            request_id is None or request_id == self.extension.request_id
        ):
            self.extension = None
            changed = True
        if granted and new_deadline is not None and new_deadline != self.deadline:
            self.deadline = new_deadline
            self.extensions_granted += 1
            changed = True
        return changed

    def _start_over(self, now: datetime) -> None:
        self.state = TaskState.DISPATCHED
        self.round += 1
        self.dispatched_at = now
        self.signed_at = self.signed_by = self.sign_on_time = None
        self.handled_at = self.handled_by = self.completed_at = self.result = None
        self.evidence = []
        self.on_time = None
        self.extension = None
        self.progress_notes = 0
        self.contributions = []
        self.ended_at = self.end_reason = None

    def _end(self, state: TaskState, now: datetime, reason: str) -> None:
        self.state = state
        self.ended_at = now
        self.end_reason = reason
        self.extension = None


def task_for(tasks: Iterable[Task], dept: str, task_id: str | None = None) -> Task | None:
    """The task a department's command is about: the named one, else its open one, else the
    one that ended last (so that the refusal can say how it ended)."""
    mine = [t for t in tasks if t.dept == dept]
    if task_id:
        for t in mine:
            if t.task_id == task_id:
                return t
    open_ = [t for t in mine if t.is_open]
    if open_:
        return max(open_, key=lambda t: t.dispatched_at)
    if mine:
        return max(mine, key=lambda t: t.ended_at or t.dispatched_at)
    return None


def team(tasks: Iterable[Task], lead_task: Task) -> list[Task]:
    """The co-handlers working with a lead (or sole) unit's task: dispatched with it, or by
    dispatches of their own that name it as the lead."""
    return [
        t
        for t in tasks
        if t is not lead_task
        and t.role == "co-handler"
        and (t.group_id == lead_task.group_id or t.lead == lead_task.dept)
    ]


def addressed(tasks: Iterable[Task], task_id: str | None, dept: str | None) -> list[Task]:
    """The tasks an event about a case means: the named task and its team, else the named
    department's tasks and their teams, else every task of the case."""
    tasks = list(tasks)
    if task_id:
        named = [t for t in tasks if task_id in (t.task_id, t.group_id)]
    elif dept:
        named = [t for t in tasks if t.dept == dept]
    else:
        return tasks
    out = {id(t): t for t in named}
    for t in named:
        if t.is_lead:
            out.update({id(m): m for m in team(tasks, t)})
    return [t for t in tasks if id(t) in out]


def _iso(t: datetime | None) -> str:
    return t.isoformat() if t is not None else "?"
