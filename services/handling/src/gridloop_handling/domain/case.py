"""案卷: everything handling knows of one case — the summary a department sees, its tasks, the
commands parked for it — and what a rule asked to have written (log entries, command answers,
audit entries, direct replies). The store loads it and writes back only what changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridloop_contracts import Envelope

from .tasks import Task

# The columns of the case summary (the `cases` table, without its key and updated_at).
CASE_FIELDS = (
    "category_code",
    "cell_code",
    "community_code",
    "subdistrict_code",
    "urgency",
    "description",
    "address",
    "location",
    "part_code",
    "attachments",
    "reporter",
    "reported_at",
    "accepted_at",
    "closed_at",
)


@dataclass(frozen=True)
class LogEntry:
    """One line of 处置记录 (`task_log`), appended; the task as it is when the line is
    written (its round)."""

    task_id: str
    case_id: str
    dept: str
    round: int
    at: datetime
    action: str
    by: str | None = None
    note: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        task: Task,
        at: datetime,
        action: str,
        by: str | None = None,
        note: str | None = None,
        evidence: list[dict[str, Any]] | None = None,
        data: dict[str, Any] | None = None,
    ) -> LogEntry:
        return cls(
            task.task_id,
            task.case_id,
            task.dept,
            task.round,
            at,
            action,
            by,
            note,
            list(evidence or ()),
            data,
        )


@dataclass
class Parked:
    """A bus command that overtook its dispatch, waiting (`parked_commands`); `id` is None
    until the store has written it."""

    case_id: str
    dept: str
    action: str
    command: dict[str, Any]
    reply_to: str | None
    parked_at: datetime
    id: int | None = None
    # the answer on dispatch.<dept>.answer too (the command's `answerfeed`: False for `none`)
    feed: bool = True

    @property
    def command_id(self) -> str:
        return str(self.command.get("command_id", ""))


@dataclass(frozen=True)
class AuditEntry:
    """An `audit_log` entry of a bus command (a REST command is audited by the runner)."""

    at: datetime
    command: str
    outcome: str
    subject: str | None
    command_id: str | None = None
    case_id: str | None = None
    task_id: str | None = None
    user_id: str | None = None
    dept: str | None = None
    code: str | None = None
    field: str | None = None
    reason: str | None = None


@dataclass
class CaseFile:
    """The state of one case as handling's rules see it."""

    case_id: str
    case: dict[str, Any] | None = None
    tasks: list[Task] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    # stored answers of commands (key `dept:command_id`) looked up with this load
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- what to write --------------------------------------------------------------------
    case_changed: bool = False
    log: list[LogEntry] = field(default_factory=list)
    unparked: list[int] = field(default_factory=list)
    # (key, kind, stored answer) of bus commands executed here
    recorded: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    # answers to send to a `replyto` subject once the transaction commits
    replies: list[tuple[str, Envelope]] = field(default_factory=list)
    # the tasks as loaded (store-defined rows), to write only what changed
    loaded: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False)

    def note_case(self, **fields: Any) -> None:
        """Record what an event says about the case: a later event fills what it knows and
        never blanks what an earlier one said (an empty attachment list says nothing)."""
        if self.case is None:
            self.case = {"case_id": self.case_id, **dict.fromkeys(CASE_FIELDS)}
            self.case["attachments"] = []
            self.case_changed = True
        for name, value in fields.items():
            if value is None or (name == "attachments" and not value):
                continue
            if self.case.get(name) != value:
                self.case[name] = value
                self.case_changed = True

    def park(self, parked: Parked) -> None:
        self.parked.append(parked)

    def unpark(self, parked: Parked) -> None:
        self.parked.remove(parked)
        if parked.id is not None:
            self.unparked.append(parked.id)
