"""What the REST API answers: a case, a task as the supervisor's handheld shows it, an
absence."""

from __future__ import annotations

from typing import Any

from .absences import Absence
from .casefile import Case
from .tasks import Task


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
        "falsifications": case.falsifications,
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
        "falsified": task.falsified,
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


def absence_view(a: Absence) -> dict[str, Any]:
    return {
        "id": a.id,
        "user_id": a.user_id,
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "reason": a.reason,
        "set_by": a.set_by,
    }
