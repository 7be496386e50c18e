"""How a task is shown to a department (REST answers): the task, its countdown, the case."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from gridloop_city import City, WorkingCalendar

from .domain.commands import status_of
from .domain.inbox import Countdown
from .domain.tasks import Task


def jsonable(value: Any) -> Any:
    """Plain JSON values (times as RFC 3339 strings): what a stored answer reads back as, so
    a replayed answer is the same as the first."""
    return orjson.loads(orjson.dumps(value))


def case_view(case: dict[str, Any] | None, city: City) -> dict[str, Any]:
    """What the department needs to know of the case: what, where, the evidence reported, and
    the category's closing standard (结案条件) it will be verified against."""
    case = case or {}
    code = case.get("category_code")
    category = city.category(code) if code else None
    return {
        "category_code": code,
        "category_name": category.name if category else None,
        "closing_standard": category.closing_standard if category else None,
        "description": case.get("description"),
        "address": case.get("address"),
        "location": case.get("location"),
        "part_code": case.get("part_code"),
        "cell_code": case.get("cell_code"),
        "community_code": case.get("community_code"),
        "subdistrict_code": case.get("subdistrict_code"),
        "attachments": case.get("attachments") or [],
        "reporter": case.get("reporter"),
        "reported_at": case.get("reported_at"),
        "accepted_at": case.get("accepted_at"),
    }


def task_view(
    task: Task,
    case: dict[str, Any] | None,
    *,
    now: datetime,
    calendar: WorkingCalendar,
    city: City,
    history: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    countdown = Countdown.of(task, now, calendar)
    out: dict[str, Any] = {
        "case_id": task.case_id,
        "task_id": task.task_id,
        "dept": task.dept,
        "role": task.role,
        "lead": task.lead,
        "co_handlers": list(task.co_handlers),
        "kind": task.kind,
        "state": str(task.state),
        "stage": task.stage(),
        "status": str(status_of(task)),
        "urgency": task.urgency,
        "deadline": task.deadline,
        "sign_in_due": task.sign_in_due,
        "dispatched_at": task.dispatched_at,
        "remaining_s": countdown.remaining_s,
        "remaining_working_s": countdown.remaining_working_s,
        "overdue": countdown.overdue,
        "overdue_by_s": countdown.overdue_by_s,
        "deadline_provisional": countdown.provisional,
        "signed_at": task.signed_at,
        "signed_by": task.signed_by,
        "sign_on_time": task.sign_on_time,
        "progress_notes": task.progress_notes,
        "handled_at": task.handled_at,
        "handled_by": task.handled_by,
        "completed_at": task.completed_at,
        "result": task.result,
        "evidence": task.evidence,
        "on_time": task.on_time,
        "extension_pending": task.extension.as_json() if task.extension else None,
        "extensions_granted": task.extensions_granted,
        "round": task.round,
        "reworks": task.reworks,
        "escalation_level": task.escalation_level,
        "supervised": task.supervised,
        "ended_at": task.ended_at,
        "end_reason": task.end_reason,
        "case": case_view(case, city),
    }
    if history is not None:
        out["history"] = list(history)
    view: dict[str, Any] = jsonable(out)
    return view
