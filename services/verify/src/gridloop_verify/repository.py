"""SQL of the verify schema: the columns of cases and tasks, the reads of the REST API and the
absences (asyncpg; this service's tables only). The state of a batch of cases is loaded and
saved by the store (store.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from gridloop_runtime.db import Conn

from .domain.absences import Absence
from .domain.casefile import Case, Stage
from .domain.tasks import Task, TaskStatus

# (column, SQL type) of each table, in the order of the domain's fields.
CASE_FIELDS = (
    ("case_id", "text"),
    ("stage", "text"),
    ("category_code", "text"),
    ("cell_code", "text"),
    ("community_code", "text"),
    ("subdistrict_code", "text"),
    ("urgency", "text"),
    ("description", "text"),
    ("address", "text"),
    ("location", "jsonb"),
    ("dept", "text"),
    ("dept_task_id", "text"),
    ("deadline", "timestamptz"),
    ("result", "text"),
    ("evidence", "jsonb"),
    ("failures", "int"),
    ("reworks", "int"),
    ("reopenings", "int"),
    ("task_seq", "int"),
    ("passed_by", "text"),
    ("closed_at", "timestamptz"),
    ("closed_by", "text"),
    ("approved_by", "text"),
    ("falsifications", "int"),
)
CASE_COLUMNS = tuple(c for c, _ in CASE_FIELDS)
CASE_SELECT = f"SELECT {', '.join(CASE_COLUMNS)} FROM cases"

TASK_FIELDS = (
    ("task_id", "text"),
    ("case_id", "text"),
    ("purpose", "text"),
    ("status", "text"),
    ("supervisor_id", "text"),
    ("primary_id", "text"),
    ("backup_id", "text"),
    ("backup_used", "boolean"),
    ("assigned_at", "timestamptz"),
    ("due", "timestamptz"),
    ("reason", "text"),
    ("reminded_at", "timestamptz"),
    ("overdue_at", "timestamptz"),
    ("submitted_by", "text"),
    ("submitted_at", "timestamptz"),
    ("on_time", "boolean"),
    ("notes", "text"),
    ("photos", "jsonb"),
    ("position", "jsonb"),
    ("cancel_reason", "text"),
    ("falsified", "boolean"),
)
TASK_COLUMNS = tuple(c for c, _ in TASK_FIELDS)
TASK_SELECT = f"SELECT {', '.join(f't.{c}' for c in TASK_COLUMNS)} FROM tasks t"


# -- cases ------------------------------------------------------------------------------
def case_of_row(r: asyncpg.Record, prefix: str = "") -> Case:
    values = {c: r[f"{prefix}{c}"] for c in CASE_COLUMNS}
    values["stage"] = Stage(values["stage"])
    values["evidence"] = list(values["evidence"] or [])
    return Case(**values)


async def get_case(conn: Conn, case_id: str) -> Case | None:
    row = await conn.fetchrow(f"{CASE_SELECT} WHERE case_id = $1", case_id)
    return None if row is None else case_of_row(row)


async def awaiting_approval(
    conn: Conn, limit: int, *, cells: list[str] | None = None
) -> list[Case]:
    """Cases waiting for the shift leader; `cells`: the reader's territory as LIKE patterns
    of cell codes (gridloop_runtime.access), None for the whole district."""
    rows = await conn.fetch(
        f"{CASE_SELECT} WHERE stage = 'awaiting_approval' "
        "AND ($2::text[] IS NULL OR cell_code LIKE ANY($2::text[])) "
        "ORDER BY updated_at LIMIT $1",
        limit,
        cells,
    )
    return [case_of_row(r) for r in rows]


# -- tasks ------------------------------------------------------------------------------
def task_of_row(r: asyncpg.Record, prefix: str = "") -> Task:
    values = {c: r[f"{prefix}{c}"] for c in TASK_COLUMNS}
    values["status"] = TaskStatus(values["status"])
    values["photos"] = list(values["photos"] or [])
    return Task(**values)


async def get_task(conn: Conn, task_id: str) -> Task | None:
    row = await conn.fetchrow(f"{TASK_SELECT} WHERE t.task_id = $1", task_id)
    return None if row is None else task_of_row(row)


async def tasks_of_case(conn: Conn, case_id: str) -> list[Task]:
    rows = await conn.fetch(
        f"{TASK_SELECT} WHERE t.case_id = $1 ORDER BY t.assigned_at, t.task_id", case_id
    )
    return [task_of_row(r) for r in rows]


async def cases_with_open_tasks_of(conn: Conn, user_ids: Sequence[str]) -> list[str]:
    """The cases where these supervisors hold open tasks (the absence hand-over)."""
    rows = await conn.fetch(
        "SELECT DISTINCT case_id FROM tasks WHERE supervisor_id = ANY($1::text[]) "
        "AND status = 'open' ORDER BY case_id",
        list(user_ids),
    )
    return [r["case_id"] for r in rows]


@dataclass(frozen=True)
class TaskListing:
    task: Task
    case: Case


async def list_tasks(
    conn: Conn,
    *,
    supervisor_id: str | None,
    statuses: Sequence[str],
    purpose: str | None,
    unassigned: bool,
    limit: int,
    cells: list[str] | None = None,
) -> list[TaskListing]:
    """Tasks with their case (what to check and where), soonest due first; one query.
    `cells`: the reader's territory as LIKE patterns of cell codes, None for everywhere."""
    case_cols = ", ".join(f"c.{c} AS c_{c}" for c in CASE_COLUMNS)
    rows = await conn.fetch(
        f"SELECT {', '.join(f't.{c}' for c in TASK_COLUMNS)}, {case_cols} "
        "FROM tasks t JOIN cases c USING (case_id) "
        "WHERE t.status = ANY($1::text[]) "
        "AND ($2::text IS NULL OR t.supervisor_id = $2) "
        "AND ($3::text IS NULL OR t.purpose = $3) "
        "AND (NOT $4 OR t.supervisor_id IS NULL) "
        "AND ($6::text[] IS NULL OR c.cell_code LIKE ANY($6::text[])) "
        "ORDER BY t.due, t.task_id LIMIT $5",
        list(statuses),
        supervisor_id,
        purpose,
        unassigned,
        limit,
        cells,
    )
    return [TaskListing(task_of_row(r), case_of_row(r, "c_")) for r in rows]


# -- absences ---------------------------------------------------------------------------
_ABSENCE_COLUMNS = "id, user_id, starts_at, ends_at, reason, set_by"


def _absence(r: asyncpg.Record) -> Absence:
    return Absence(r["id"], r["user_id"], r["starts_at"], r["ends_at"], r["reason"], r["set_by"])


async def add_absence(
    conn: Conn,
    *,
    user_id: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str | None,
    set_by: str,
    at: datetime,
) -> Absence:
    row = await conn.fetchrow(
        "INSERT INTO absences (user_id, starts_at, ends_at, reason, set_by, created_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_ABSENCE_COLUMNS}",
        user_id,
        starts_at,
        ends_at,
        reason,
        set_by,
        at,
    )
    assert row is not None
    return _absence(row)


async def list_absences(conn: Conn, *, current_at: datetime | None, limit: int) -> list[Absence]:
    rows = await conn.fetch(
        f"SELECT {_ABSENCE_COLUMNS} FROM absences "
        "WHERE $1::timestamptz IS NULL OR ends_at > $1 ORDER BY starts_at, id LIMIT $2",
        current_at,
        limit,
    )
    return [_absence(r) for r in rows]


async def end_absence(conn: Conn, absence_id: int, at: datetime) -> Absence | None:
    """End an absence now; one that has not begun yet is dropped altogether."""
    row = await conn.fetchrow(
        f"DELETE FROM absences WHERE id = $1 AND starts_at >= $2 RETURNING {_ABSENCE_COLUMNS}",
        absence_id,
        at,
    )
    if row is None:
        row = await conn.fetchrow(
            f"UPDATE absences SET ends_at = LEAST(ends_at, $2) WHERE id = $1 "
            f"RETURNING {_ABSENCE_COLUMNS}",
            absence_id,
            at,
        )
    return None if row is None else _absence(row)
