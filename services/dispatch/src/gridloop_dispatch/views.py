"""What the REST API answers: a case, its tasks and extension requests as JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gridloop_city import WorkingCalendar

from .domain.casefile import Case, Extension, Task


def task_view(task: Task, calendar: WorkingCalendar | None = None) -> dict[str, Any]:
    """A task; with the calendar, whether its deadline is provisional (counted over days the
    official calendar does not know yet: the statutory rule decided them)."""
    out = _task(task)
    if calendar is not None:
        out["deadline_provisional"] = calendar.provisional(task.dispatched_at, task.deadline)
    return out


def _task(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "case_id": task.case_id,
        "dept": task.dept,
        "co_handlers": list(task.co_handlers),
        "lead": task.lead,
        "kind": task.kind,
        "status": str(task.status),
        "dispatched_at": task.dispatched_at,
        "dispatched_by": task.dispatched_by,
        "deadline": task.deadline,
        "sign_in_due": task.sign_in_due,
        "signed_at": task.signed_at,
        "handled_at": task.handled_at,
        "reminded_at": task.reminded_at,
        "manual_reminders": task.manual_reminders,
        "overdue": task.overdue_at is not None,
        "sign_in_overdue": task.sign_in_overdue_at is not None,
        "escalation_level": task.escalation_level,
        "reworks": task.reworks,
        "extensions": task.extensions,
        "note": task.note,
        "reason": task.reason,
        "ended_at": task.ended_at,
        "end_reason": task.end_reason,
    }


def case_view(
    case: Case, tasks: Sequence[Task] = (), calendar: WorkingCalendar | None = None
) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "state": str(case.state),
        "category_code": case.category_code,
        "cell_code": case.cell_code,
        "community_code": case.community_code,
        "subdistrict_code": case.subdistrict_code,
        "urgency": case.urgency,
        "description": case.description,
        "address": case.address,
        "part_code": case.part_code,
        "part_owner_dept": case.part_owner_dept,
        "accepted_at": case.accepted_at,
        "queued": case.queued,
        "queue_reason": case.queue_reason,
        "queued_at": case.queued_at,
        "queue_chase_level": case.queue_chase_level,
        "returned_by": list(case.returned_by),
        "supervised": case.supervised_at is not None,
        "supervised_at": case.supervised_at,
        "supervised_reason": case.supervised_reason,
        "closed_at": case.closed_at,
        "tasks": [task_view(t, calendar) for t in tasks],
    }


def extension_view(x: Extension) -> dict[str, Any]:
    return {
        "request_id": x.request_id,
        "case_id": x.case_id,
        "task_id": x.task_id,
        "dept": x.dept,
        "reason": x.reason,
        "proposed_deadline": x.proposed_deadline,
        "current_deadline": x.current_deadline,
        "requested_at": x.requested_at,
        "status": x.status,
        "decided_at": x.decided_at,
        "decided_by": x.decided_by,
        "new_deadline": x.new_deadline,
        "decision_reason": x.decision_reason,
    }
