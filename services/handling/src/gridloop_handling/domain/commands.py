"""回执: what a department command is (whichever way it came) and the answer it gets back.

REST and NATS build the same contract command (`gridloop_contracts.department`); this module
keys it for idempotency, fingerprints it (the same command id must mean the same command)
and shapes the answer, `gridloop.dispatch.answer.v1`, for an accepted or a refused command.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from gridloop_contracts import CaseStatus, FieldError
from gridloop_contracts.department import CommandAnswerV1, DepartmentCommand
from gridloop_contracts.problems import Refusal

from .tasks import Task, TaskState

# Fields that say who sent a command or which task it meant, not what it asks: a resend of
# the same command from another operator or channel is still the same command. Nor when a
# result says the work was done: a result sent over REST without it is timed as it is taken,
# so its resend (the answer was lost) is timed anew, and is the same result.
_NOT_CONTENT = frozenset({"command_id", "by", "task_id", "completed_at"})
# What releases before 2026-12-07 fingerprinted: a result's time too (their stored answers).
_NOT_CONTENT_BEFORE = frozenset({"command_id", "by", "task_id"})


def command_key(dept: str, command_id: str) -> str:
    """Command ids are the department's own: scoped by department, one cannot collide with
    (or read the answer of) another department's command."""
    return f"{dept}:{command_id}"


def fingerprint(cmd: DepartmentCommand, leaving_out: frozenset[str] = _NOT_CONTENT) -> str:
    """What the command asks, as a digest: a stored command id with another digest is a
    different command reusing the id (`same_command`)."""
    content = {k: v for k, v in cmd.model_dump(mode="json").items() if k not in leaving_out}
    content["action"] = cmd.subject_token
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def same_command(stored: str | None, cmd: DepartmentCommand) -> bool:
    """Whether `cmd` asks what the command stored under its id (its fingerprint `stored`)
    asked: a resend, not another command reusing the id. A fingerprint stored by a release
    before 2026-12-07 covers a result's time too."""
    return stored in (fingerprint(cmd), fingerprint(cmd, _NOT_CONTENT_BEFORE))


def duplicate(cmd: DepartmentCommand) -> Refusal:
    return Refusal(
        f"command id {cmd.command_id!r} was already used for a different command; "
        "use a new command id for a new command",
        field="command_id",
        code="duplicate-command",
    )


_STATUS = {
    TaskState.DISPATCHED: CaseStatus.DISPATCHED,
    TaskState.SIGNED: CaseStatus.SIGNED,
    TaskState.HANDLED: CaseStatus.HANDLED,
    # The case is back with the command centre, waiting to be routed again.
    TaskState.RETURNED: CaseStatus.ACCEPTED,
    TaskState.RECALLED: CaseStatus.RECALLED,
    TaskState.CLOSED: CaseStatus.CLOSED,
    TaskState.SUPERSEDED: CaseStatus.DISPATCHED,
}


def status_of(task: Task) -> CaseStatus:
    """The case status as this department's task sees it."""
    if task.state == TaskState.SIGNED and task.progress_notes:
        return CaseStatus.IN_PROGRESS
    return _STATUS[task.state]


def accepted(cmd: DepartmentCommand, task: Task) -> CommandAnswerV1:
    return CommandAnswerV1(
        command_id=cmd.command_id,
        accepted=True,
        case_id=cmd.case_id,
        dept=cmd.dept,
        action=cmd.subject_token,
        status=status_of(task),
    )


def refused(
    *,
    command_id: str,
    dept: str | None,
    errors: list[dict[str, Any]],
    case_id: str | None = None,
    action: str | None = None,
    task: Task | None = None,
    status: str | None = None,
) -> CommandAnswerV1:
    """A refusal; each error is {field, reason[, code]} (the code travels where the contract
    has room for it)."""
    return CommandAnswerV1(
        command_id=command_id,
        accepted=False,
        case_id=case_id,
        dept=dept,
        action=action,
        errors=[FieldError.model_validate(e) for e in errors],
        status=status_of(task) if task is not None else (CaseStatus(status) if status else None),
    )


def refusal_errors(refusal: Refusal, prefix: str = "") -> list[dict[str, Any]]:
    """A Refusal as answer errors; over NATS the fields are paths under `data.`."""
    error = refusal.as_error()
    error["field"] = f"{prefix}{refusal.field}" if refusal.field else prefix.rstrip(".") or "data"
    return [error]
