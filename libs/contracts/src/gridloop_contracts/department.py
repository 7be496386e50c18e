"""The department contract: what dispatch sends on `dispatch.<dept>.<event>`, the commands
departments send on `handling.<dept>.<action>`, and the answers to them."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from .base import Event, Instant, register
from .common import (
    Attachment,
    AttachmentRef,
    FieldError,
    Location,
    MaskedReporter,
    NonBlank,
    Urgency,
    Value,
)
from .status import CaseStatus


class CaseSummary(Value):
    """Everything a department needs to act without calling back."""

    case_id: str
    task_id: str
    category_code: str
    category_name: str | None = None
    description: str
    location: Location | None = None
    address: str | None = None
    part_code: str | None = None
    cell_code: str | None = None
    community_code: str | None = None
    subdistrict_code: str | None = None
    urgency: Urgency = "normal"
    attachments: list[Attachment] = Field(default_factory=list)
    reporter: MaskedReporter | None = None
    deadline: AwareDatetime
    sign_in_due: AwareDatetime | None = None
    role: Literal["sole", "lead", "co-handler"] = "sole"
    lead: str | None = None
    co_handlers: list[str] = Field(default_factory=list)
    closing_standard: str | None = None
    what_to_do: str | None = None


class DepartmentMessage(Event):
    """Base of the department feed."""

    dept: str
    case: CaseSummary
    sent_at: AwareDatetime
    note: str | None = None


@register
class TaskAssigned(DepartmentMessage):
    """派遣: a new task for the department, with everything needed to act on it."""

    type_name: ClassVar[str] = "gridloop.dispatch.assigned.v1"
    subject_token: ClassVar[str] = "assigned"
    summary: ClassVar[str] = "A new task for the department (派遣)"


@register
class TaskReminder(DepartmentMessage):
    """催办: the sign-in or handling deadline is near."""

    type_name: ClassVar[str] = "gridloop.dispatch.reminder.v1"
    subject_token: ClassVar[str] = "reminder"
    summary: ClassVar[str] = "The deadline is near (催办)"

    stage: Literal["sign_in", "handling"] = "handling"


@register
class TaskOverdue(DepartmentMessage):
    """超期: the sign-in or handling deadline has passed."""

    type_name: ClassVar[str] = "gridloop.dispatch.overdue.v1"
    subject_token: ClassVar[str] = "overdue"
    summary: ClassVar[str] = "The deadline has passed (超期)"

    stage: Literal["sign_in", "handling"] = "handling"


@register
class TaskOverdueWithdrawn(DepartmentMessage):
    """超期撤回: an overdue notice sent while the department's on-time signature or result was
    on its way is void (and the 督办 it brought)."""

    type_name: ClassVar[str] = "gridloop.dispatch.overdue_withdrawn.v1"
    subject_token: ClassVar[str] = "overdue_withdrawn"
    summary: ClassVar[str] = "An overdue notice withdrawn: the task was on time (超期撤回)"

    stage: Literal["sign_in", "handling"] = "handling"


@register
class TaskEscalated(DepartmentMessage):
    """督办: the task went up the supervision ladder to `to_role`."""

    type_name: ClassVar[str] = "gridloop.dispatch.escalated.v1"
    subject_token: ClassVar[str] = "escalated"
    summary: ClassVar[str] = "The task was escalated (督办)"

    level: int
    to_role: str


@register
class TaskRework(DepartmentMessage):
    """返工: the result failed verification (or the reporter was dissatisfied); do it again."""

    type_name: ClassVar[str] = "gridloop.dispatch.rework.v1"
    subject_token: ClassVar[str] = "rework"
    summary: ClassVar[str] = "The result failed verification: rework (返工)"

    count: int
    reason: str


@register
class TaskRecalled(DepartmentMessage):
    """撤回: the command centre took the task back; stop work on it."""

    type_name: ClassVar[str] = "gridloop.dispatch.recalled.v1"
    subject_token: ClassVar[str] = "recalled"
    summary: ClassVar[str] = "The task was recalled (撤回)"

    reason: str


@register
class RecallOvertaken(DepartmentMessage):
    """撤回作废: the department's result reached the command centre after a recall was made but
    before the department heard of it. The result stands (the task counts as handled) and goes
    to verification; the recall heard just before it is void for this task."""

    type_name: ClassVar[str] = "gridloop.dispatch.recall_overtaken.v1"
    subject_token: ClassVar[str] = "recall_overtaken"
    summary: ClassVar[str] = "The result crossed the recall and stands (撤回作废)"

    recalled_at: AwareDatetime
    completed_at: AwareDatetime


# -- commands from departments -------------------------------------------------------


class DepartmentCommand(Event):
    """Fields of every department command; `command_id` makes it idempotent."""

    command_id: str = Field(min_length=1, max_length=128)
    case_id: str = Field(min_length=1)
    task_id: str | None = None
    dept: str = Field(min_length=1)
    by: str = Field(min_length=1, max_length=64)


@register
class SignCommand(DepartmentCommand):
    """签收: the department signs for its task."""

    type_name: ClassVar[str] = "gridloop.handling.signed.v1"
    subject_token: ClassVar[str] = "signed"
    summary: ClassVar[str] = "Sign for a task (签收)"


@register
class ReturnCommand(DepartmentCommand):
    """退回: the task is not the department's; dispatch re-routes it."""

    type_name: ClassVar[str] = "gridloop.handling.returned.v1"
    subject_token: ClassVar[str] = "returned"
    summary: ClassVar[str] = "Return a task as not ours (退回)"

    reason: NonBlank = Field(min_length=2, max_length=1000)


@register
class ExtensionCommand(DepartmentCommand):
    """延期申请: ask the dispatcher for a later deadline."""

    type_name: ClassVar[str] = "gridloop.handling.extension_requested.v1"
    subject_token: ClassVar[str] = "extension_requested"
    summary: ClassVar[str] = "Ask for more time (延期申请)"

    reason: NonBlank = Field(min_length=2, max_length=1000)
    proposed_deadline: Instant


@register
class ProgressCommand(DepartmentCommand):
    """处置进展: a progress note, or a co-handling unit's contribution."""

    type_name: ClassVar[str] = "gridloop.handling.progress.v1"
    subject_token: ClassVar[str] = "progress"
    summary: ClassVar[str] = "A progress note or a co-handler's contribution (处置进展)"

    note: NonBlank = Field(min_length=1, max_length=2000)
    evidence: list[Attachment] = Field(default_factory=list, max_length=20)
    # A co-handling unit (协办单位) reports its part here; the lead's `handled` closes the task.
    contribution: bool = False


@register
class HandledCommand(DepartmentCommand):
    """处置反馈: the result, with evidence and when the work was completed."""

    type_name: ClassVar[str] = "gridloop.handling.handled.v1"
    subject_token: ClassVar[str] = "handled"
    summary: ClassVar[str] = "Report the result with evidence (处置反馈)"

    result: NonBlank = Field(min_length=1, max_length=2000)
    evidence: list[Attachment] = Field(default_factory=list, max_length=20)
    completed_at: Instant


COMMANDS: dict[str, type[DepartmentCommand]] = {
    c.subject_token: c
    for c in (SignCommand, ReturnCommand, ExtensionCommand, ProgressCommand, HandledCommand)
}


@register
class CommandTakenV1(Event):
    """A department command handling took over REST (a department's staff in the console or
    on a handheld), as it took it: published by handling itself on `handling._taken.<dept>`
    in the transaction that ran it, which also marks it taken for handling's commands
    consumer, so the consumer passes over it. After the database is restored to an earlier
    moment, the consumer, moved back, runs the ones the restored tables never saw, as it runs
    again the commands that came over NATS. Nobody else publishes it (no department code
    holds `_`, and NATS permissions)."""

    type_name: ClassVar[str] = "gridloop.handling.taken.v1"
    subject_token: ClassVar[str] = "taken"
    summary: ClassVar[str] = "A department command taken over REST, kept for a restore (handling's)"

    action: Literal["signed", "returned", "extension_requested", "progress", "handled"]
    # the command's own data, as its contract has it (`gridloop.handling.<action>.v1`)
    command: dict[str, Any]
    by_name: str | None = None
    # photos the staff member uploaded to handling and named (`attachment_ids`)
    files: list[AttachmentRef] = Field(default_factory=list)


@register
class CommandAnswerV1(Event):
    """The answer to a department command, on the reply subject and `dispatch.<dept>.answer`."""

    type_name: ClassVar[str] = "gridloop.dispatch.answer.v1"
    subject_token: ClassVar[str] = "answer"
    summary: ClassVar[str] = "The answer to a department command (回执)"

    command_id: str
    accepted: bool
    case_id: str | None = None
    dept: str | None = None  # whose command it answers: the answer goes on dispatch.<dept>.answer
    action: str | None = None
    errors: list[FieldError] = Field(default_factory=list)
    status: CaseStatus | None = None
