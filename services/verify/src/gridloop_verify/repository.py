"""SQL of the verify schema: cases, tasks and absences (asyncpg; this service's tables only)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from gridloop_runtime.db import Conn, upsert_sql

from .domain.casefile import Case, Stage
from .domain.tasks import Task, TaskStatus

_CASE_COLUMNS = (
    "case_id",
    "stage",
    "category_code",
    "cell_code",
    "community_code",
    "subdistrict_code",
    "urgency",
    "description",
    "address",
    "location",
    "dept",
    "dept_task_id",
    "deadline",
    "result",
    "evidence",
    "failures",
    "reworks",
    "reopenings",
    "task_seq",
    "passed_by",
    "closed_at",
    "closed_by",
    "approved_by",
)
_CASE_SELECT = f"SELECT {', '.join(_CASE_COLUMNS)} FROM cases"
_CASE_UPSERT = upsert_sql(
    "cases",
    (*_CASE_COLUMNS, "updated_at"),
    key="case_id",
    update=(*_CASE_COLUMNS[1:], "updated_at"),
)

_TASK_COLUMNS = (
    "task_id",
    "case_id",
    "purpose",
    "status",
    "supervisor_id",
    "primary_id",
    "backup_id",
    "backup_used",
    "assigned_at",
    "due",
    "reason",
    "reminded_at",
    "overdue_at",
    "submitted_by",
    "submitted_at",
    "on_time",
    "notes",
    "photos",
    "position",
    "cancel_reason",
)
_TASK_SELECT = f"SELECT {', '.join(f't.{c}' for c in _TASK_COLUMNS)} FROM tasks t"
_TASK_UPSERT = upsert_sql("tasks", _TASK_COLUMNS, key="task_id", update=_TASK_COLUMNS[2:])


# -- cases ------------------------------------------------------------------------------
def _case(r: asyncpg.Record) -> Case:
    values = {c: r[c] for c in _CASE_COLUMNS}
    values["stage"] = Stage(values["stage"])
    values["evidence"] = list(values["evidence"] or [])
    return Case(**values)


async def get_case(conn: Conn, case_id: str, *, for_update: bool = False) -> Case | None:
    row = await conn.fetchrow(
        f"{_CASE_SELECT} WHERE case_id = $1{' FOR UPDATE' if for_update else ''}", case_id
    )
    return None if row is None else _case(row)


async def case_for_event(conn: Conn, case_id: str) -> Case:
    """The case, locked for this transaction, or a new one (an event may be the first we
    hear of it: the projection starts where verify came in)."""
    found = await get_case(conn, case_id, for_update=True)
    return found if found is not None else Case(case_id=case_id)


def _case_args(case: Case, at: datetime) -> tuple[Any, ...]:
    return (*(getattr(case, c) for c in _CASE_COLUMNS), at)


async def save_case(conn: Conn, case: Case, at: datetime) -> None:
    await conn.execute(_CASE_UPSERT, *_case_args(case, at))


async def awaiting_approval(conn: Conn, limit: int) -> list[Case]:
    rows = await conn.fetch(
        f"{_CASE_SELECT} WHERE stage = 'awaiting_approval' ORDER BY updated_at LIMIT $1", limit
    )
    return [_case(r) for r in rows]


# -- tasks ------------------------------------------------------------------------------
def _task(r: asyncpg.Record) -> Task:
    values = {c: r[c] for c in _TASK_COLUMNS}
    values["status"] = TaskStatus(values["status"])
    values["photos"] = list(values["photos"] or [])
    return Task(**values)


def _task_args(t: Task) -> tuple[Any, ...]:
    return tuple(str(t.status) if c == "status" else getattr(t, c) for c in _TASK_COLUMNS)


async def save_tasks(conn: Conn, tasks: Iterable[Task]) -> None:
    """Insert new tasks and write changed ones, in one round trip."""
    rows = [_task_args(t) for t in tasks]
    if rows:
        await conn.executemany(_TASK_UPSERT, rows)


async def get_task(conn: Conn, task_id: str, *, for_update: bool = False) -> Task | None:
    row = await conn.fetchrow(
        f"{_TASK_SELECT} WHERE t.task_id = $1{' FOR UPDATE' if for_update else ''}", task_id
    )
    return None if row is None else _task(row)


async def open_tasks_of_case(conn: Conn, case_id: str, purpose: str | None = None) -> list[Task]:
    rows = await conn.fetch(
        f"{_TASK_SELECT} WHERE t.case_id = $1 AND t.status = 'open' "
        "AND ($2::text IS NULL OR t.purpose = $2) ORDER BY t.task_id FOR UPDATE",
        case_id,
        purpose,
    )
    return [_task(r) for r in rows]


async def tasks_of_case(conn: Conn, case_id: str) -> list[Task]:
    rows = await conn.fetch(
        f"{_TASK_SELECT} WHERE t.case_id = $1 ORDER BY t.assigned_at, t.task_id", case_id
    )
    return [_task(r) for r in rows]


async def open_tasks_of_supervisor(conn: Conn, user_id: str) -> list[Task]:
    rows = await conn.fetch(
        f"{_TASK_SELECT} WHERE t.supervisor_id = $1 AND t.status = 'open' "
        "ORDER BY t.task_id FOR UPDATE",
        user_id,
    )
    return [_task(r) for r in rows]


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
) -> list[TaskListing]:
    """Tasks with their case (what to check and where), soonest due first; one query."""
    case_cols = ", ".join(f"c.{c} AS c_{c}" for c in _CASE_COLUMNS)
    rows = await conn.fetch(
        f"SELECT {', '.join(f't.{c}' for c in _TASK_COLUMNS)}, {case_cols} "
        "FROM tasks t JOIN cases c USING (case_id) "
        "WHERE t.status = ANY($1::text[]) "
        "AND ($2::text IS NULL OR t.supervisor_id = $2) "
        "AND ($3::text IS NULL OR t.purpose = $3) "
        "AND (NOT $4 OR t.supervisor_id IS NULL) "
        "ORDER BY t.due, t.task_id LIMIT $5",
        list(statuses),
        supervisor_id,
        purpose,
        unassigned,
        limit,
    )
    out = []
    for r in rows:
        case_values = {c: r[f"c_{c}"] for c in _CASE_COLUMNS}
        case_values["stage"] = Stage(case_values["stage"])
        case_values["evidence"] = list(case_values["evidence"] or [])
        out.append(TaskListing(_task(r), Case(**case_values)))
    return out


async def cases_by_id(conn: Conn, case_ids: Sequence[str]) -> dict[str, Case]:
    rows = await conn.fetch(f"{_CASE_SELECT} WHERE case_id = ANY($1::text[])", list(case_ids))
    return {r["case_id"]: _case(r) for r in rows}


# -- absences ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Absence:
    id: int
    user_id: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    set_by: str

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


def _absence(r: asyncpg.Record) -> Absence:
    return Absence(r["id"], r["user_id"], r["starts_at"], r["ends_at"], r["reason"], r["set_by"])


async def absent_among(conn: Conn, user_ids: Iterable[str], at: datetime) -> set[str]:
    ids = [u for u in user_ids if u]
    if not ids:
        return set()
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM absences WHERE user_id = ANY($1::text[]) "
        "AND starts_at <= $2 AND ends_at > $2",
        ids,
        at,
    )
    return {r["user_id"] for r in rows}


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
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, user_id, starts_at, ends_at, reason, set_by",
        user_id,
        starts_at,
        ends_at,
        reason,
        set_by,
        at,
    )
    assert row is not None
    return _absence(row)


async def get_absence(conn: Conn, absence_id: int) -> Absence | None:
    row = await conn.fetchrow(
        "SELECT id, user_id, starts_at, ends_at, reason, set_by FROM absences WHERE id = $1",
        absence_id,
    )
    return None if row is None else _absence(row)


async def list_absences(conn: Conn, *, current_at: datetime | None, limit: int) -> list[Absence]:
    rows = await conn.fetch(
        "SELECT id, user_id, starts_at, ends_at, reason, set_by FROM absences "
        "WHERE $1::timestamptz IS NULL OR ends_at > $1 ORDER BY starts_at, id LIMIT $2",
        current_at,
        limit,
    )
    return [_absence(r) for r in rows]


async def end_absence(conn: Conn, absence_id: int, at: datetime) -> Absence | None:
    """End an absence now; one that has not begun yet is dropped altogether."""
    cols = "id, user_id, starts_at, ends_at, reason, set_by"
    row = await conn.fetchrow(
        f"DELETE FROM absences WHERE id = $1 AND starts_at >= $2 RETURNING {cols}",
        absence_id,
        at,
    )
    if row is None:
        row = await conn.fetchrow(
            f"UPDATE absences SET ends_at = LEAST(ends_at, $2) WHERE id = $1 RETURNING {cols}",
            absence_id,
            at,
        )
    return None if row is None else _absence(row)
