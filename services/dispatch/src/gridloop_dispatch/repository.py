"""SQL of the dispatch schema: cases, tasks, extensions, and its chase timers (asyncpg; this
service's tables only). Writes are batched: one statement per table per handler."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from gridloop_runtime.db import Conn, upsert_sql

from .domain.casefile import Case, CaseState, Task, TaskStatus
from .domain.chasing import PlannedTimer

_CASE_COLUMNS = (
    "case_id",
    "state",
    "category_code",
    "cell_code",
    "community_code",
    "subdistrict_code",
    "urgency",
    "description",
    "address",
    "location",
    "part_code",
    "part_owner_dept",
    "reporter",
    "attachments",
    "channel",
    "source",
    "accepted_at",
    "returned_by",
    "queue_reason",
    "queued_at",
    "supervised_at",
    "supervised_reason",
    "supervised_by",
    "emergency_escalated_at",
    "task_seq",
    "closed_at",
)
_CASE_SELECT = f"SELECT {', '.join(f'c.{c}' for c in _CASE_COLUMNS)} FROM cases c"
_CASE_UPSERT = upsert_sql(
    "cases",
    (*_CASE_COLUMNS, "updated_at"),
    key="case_id",
    update=(*_CASE_COLUMNS[1:], "updated_at"),
)

_TASK_COLUMNS = (
    "task_id",
    "case_id",
    "dept",
    "co_handlers",
    "lead",
    "kind",
    "status",
    "dispatched_at",
    "dispatched_by",
    "deadline",
    "window_start",
    "sign_in_due",
    "gen",
    "signed_at",
    "handled_at",
    "reminded_at",
    "overdue_at",
    "sign_in_overdue_at",
    "escalation_level",
    "escalated_at",
    "reworks",
    "extensions",
    "note",
    "reason",
    "ended_at",
    "end_reason",
)
_TASK_SELECT = f"SELECT {', '.join(f't.{c}' for c in _TASK_COLUMNS)} FROM tasks t"
_TASK_UPSERT = upsert_sql("tasks", _TASK_COLUMNS, key="task_id", update=_TASK_COLUMNS[2:])

_EXT_COLUMNS = (
    "request_id",
    "case_id",
    "task_id",
    "dept",
    "reason",
    "proposed_deadline",
    "current_deadline",
    "requested_at",
    "requested_by",
    "status",
    "decided_at",
    "decided_by",
    "new_deadline",
    "decision_reason",
)
_EXT_SELECT = f"SELECT {', '.join(f'x.{c}' for c in _EXT_COLUMNS)} FROM extensions x"


# -- cases --------------------------------------------------------------------------------
def _case(r: asyncpg.Record) -> Case:
    values = {c: r[c] for c in _CASE_COLUMNS}
    values["state"] = CaseState(values["state"])
    values["returned_by"] = list(values["returned_by"] or [])
    values["attachments"] = list(values["attachments"] or [])
    return Case(**values)


def _case_row(case: Case, now: datetime) -> tuple[Any, ...]:
    return (*(_case_value(case, c) for c in _CASE_COLUMNS), now)


def _case_value(case: Case, column: str) -> Any:
    value = getattr(case, column)
    return str(value) if column == "state" else value


async def get_case(conn: Conn, case_id: str, *, for_update: bool = False) -> Case | None:
    sql = f"{_CASE_SELECT} WHERE c.case_id = $1" + (" FOR UPDATE" if for_update else "")
    row = await conn.fetchrow(sql, case_id)
    return None if row is None else _case(row)


async def claim_case(conn: Conn, case: Case, now: datetime) -> bool:
    """Insert a new case; False when it exists (a second acceptance of it, even one that
    arrives at another replica at the same moment, changes nothing)."""
    status = await conn.execute(
        _CASE_UPSERT.split(" ON CONFLICT")[0] + " ON CONFLICT (case_id) DO NOTHING",
        *_case_row(case, now),
    )
    return status.endswith(" 1")


async def save_case(conn: Conn, case: Case, now: datetime) -> None:
    await conn.execute(_CASE_UPSERT, *_case_row(case, now))


async def queued_cases(conn: Conn, limit: int) -> list[Case]:
    rows = await conn.fetch(
        f"{_CASE_SELECT} WHERE c.queued_at IS NOT NULL AND c.state <> 'closed' "
        "ORDER BY c.queued_at, c.case_id LIMIT $1",
        limit,
    )
    return [_case(r) for r in rows]


async def supervised_cases(conn: Conn, limit: int) -> list[Case]:
    rows = await conn.fetch(
        f"{_CASE_SELECT} WHERE c.supervised_at IS NOT NULL AND c.state <> 'closed' "
        "ORDER BY c.supervised_at LIMIT $1",
        limit,
    )
    return [_case(r) for r in rows]


async def cases_by_id(conn: Conn, case_ids: Sequence[str]) -> dict[str, Case]:
    rows = await conn.fetch(f"{_CASE_SELECT} WHERE c.case_id = ANY($1::text[])", list(case_ids))
    return {r["case_id"]: _case(r) for r in rows}


# -- tasks --------------------------------------------------------------------------------
def _task(r: asyncpg.Record) -> Task:
    values = {c: r[c] for c in _TASK_COLUMNS}
    values["status"] = TaskStatus(values["status"])
    values["co_handlers"] = tuple(values["co_handlers"] or ())
    return Task(**values)


def _task_row(task: Task) -> tuple[Any, ...]:
    out = []
    for c in _TASK_COLUMNS:
        value = getattr(task, c)
        if c == "status":
            value = str(value)
        elif c == "co_handlers":
            value = list(value)
        out.append(value)
    return tuple(out)


async def tasks_of_case(conn: Conn, case_id: str) -> list[Task]:
    rows = await conn.fetch(f"{_TASK_SELECT} WHERE t.case_id = $1 ORDER BY t.task_id", case_id)
    return [_task(r) for r in rows]


async def tasks_of_cases(conn: Conn, case_ids: Sequence[str]) -> dict[str, list[Task]]:
    rows = await conn.fetch(
        f"{_TASK_SELECT} WHERE t.case_id = ANY($1::text[]) ORDER BY t.case_id, t.task_id",
        list(case_ids),
    )
    out: dict[str, list[Task]] = {c: [] for c in case_ids}
    for r in rows:
        out.setdefault(r["case_id"], []).append(_task(r))
    return out


async def save_tasks(conn: Conn, tasks: Iterable[Task]) -> None:
    rows = [_task_row(t) for t in tasks]
    if rows:
        await conn.executemany(_TASK_UPSERT, rows)


@dataclass(frozen=True)
class BoardRow:
    task: Task
    case: Case


async def board(conn: Conn, *, view: str, dept: str | None, limit: int) -> list[BoardRow]:
    """Active tasks that are overdue / escalated / all active, most urgent first."""
    where = ["t.status IN ('open', 'signed')"]
    if view == "overdue":
        where.append("t.overdue_at IS NOT NULL")
    elif view == "escalated":
        where.append("t.escalation_level > 0")
    elif view == "late":
        where.append("(t.overdue_at IS NOT NULL OR t.escalation_level > 0)")
    args: list[Any] = [limit]
    if dept is not None:
        args.append(dept)
        where.append(f"t.dept = ${len(args)}")
    task_cols = ", ".join(f"t.{c}" for c in _TASK_COLUMNS)
    case_cols = ", ".join(f"c.{c} AS c_{c}" for c in _CASE_COLUMNS)
    rows = await conn.fetch(
        f"SELECT {task_cols}, {case_cols} FROM tasks t JOIN cases c USING (case_id) "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY t.escalation_level DESC, t.deadline, t.task_id LIMIT $1",
        *args,
    )
    out = []
    for r in rows:
        case_values = {c: r[f"c_{c}"] for c in _CASE_COLUMNS}
        case_values["state"] = CaseState(case_values["state"])
        case_values["returned_by"] = list(case_values["returned_by"] or [])
        case_values["attachments"] = list(case_values["attachments"] or [])
        out.append(BoardRow(_task(r), Case(**case_values)))
    return out


# -- extensions ---------------------------------------------------------------------------
@dataclass
class Extension:
    """延期申请: what the department asked, and what the dispatcher decided."""

    request_id: str
    case_id: str
    task_id: str
    dept: str
    reason: str
    proposed_deadline: datetime
    current_deadline: datetime
    requested_at: datetime
    requested_by: str | None = None
    status: str = "pending"
    decided_at: datetime | None = None
    decided_by: str | None = None
    new_deadline: datetime | None = None
    decision_reason: str | None = None


def _ext(r: asyncpg.Record) -> Extension:
    return Extension(**{c: r[c] for c in _EXT_COLUMNS})


async def add_extension(conn: Conn, x: Extension) -> bool:
    status = await conn.execute(
        f"INSERT INTO extensions ({', '.join(_EXT_COLUMNS)}) VALUES "
        f"({', '.join(f'${i}' for i in range(1, len(_EXT_COLUMNS) + 1))}) "
        "ON CONFLICT (request_id) DO NOTHING",
        *(getattr(x, c) for c in _EXT_COLUMNS),
    )
    return status.endswith(" 1")


async def get_extension(conn: Conn, request_id: str) -> Extension | None:
    row = await conn.fetchrow(f"{_EXT_SELECT} WHERE x.request_id = $1", request_id)
    return None if row is None else _ext(row)


async def save_extension(conn: Conn, x: Extension) -> None:
    await conn.execute(
        "UPDATE extensions SET status = $2, decided_at = $3, decided_by = $4, "
        "new_deadline = $5, decision_reason = $6 WHERE request_id = $1",
        x.request_id,
        x.status,
        x.decided_at,
        x.decided_by,
        x.new_deadline,
        x.decision_reason,
    )


async def settle_extensions(conn: Conn, task_ids: Sequence[str], reason: str) -> None:
    """Pending requests of tasks that ended are moot: nobody is left to extend."""
    if task_ids:
        await conn.execute(
            "UPDATE extensions SET status = 'moot', decision_reason = $2 "
            "WHERE task_id = ANY($1::text[]) AND status = 'pending'",
            list(task_ids),
            reason,
        )


async def list_extensions(
    conn: Conn, *, status: str | None, case_id: str | None, limit: int
) -> list[Extension]:
    where: list[str] = []
    args: list[Any] = []
    if status is not None:
        args.append(status)
        where.append(f"x.status = ${len(args)}")
    if case_id is not None:
        args.append(case_id)
        where.append(f"x.case_id = ${len(args)}")
    args.append(limit)
    sql = (
        f"{_EXT_SELECT} {'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY x.requested_at, x.request_id LIMIT ${len(args)}"
    )
    return [_ext(r) for r in await conn.fetch(sql, *args)]


# -- chase timers -------------------------------------------------------------------------
# The rows are the runtime's (gridloop_runtime.timers, in this schema); these are batched
# forms of its `schedule` and `cancel` for many timers at once.
_SCHEDULE = (
    "INSERT INTO timers (kind, key, due_at, payload) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (kind, key) DO UPDATE SET due_at = EXCLUDED.due_at, "
    "payload = EXCLUDED.payload, fired_at = NULL, cancelled_at = NULL"
)


async def schedule(conn: Conn, timers: Sequence[PlannedTimer]) -> None:
    if timers:
        await conn.executemany(_SCHEDULE, [(t.kind, t.key, t.due, dict(t.payload)) for t in timers])


async def cancel(conn: Conn, keys: Sequence[str], kinds: Sequence[str]) -> None:
    """Cancel pending timers of these keys. Rows a timer runner holds right now are skipped,
    not waited for: their handler finds the task changed (it waits for the case row this
    transaction holds) and does nothing — and no lock is ever taken in the opposite order."""
    if keys:
        await conn.execute(
            "UPDATE timers SET cancelled_at = now() WHERE id IN (SELECT id FROM timers "
            "WHERE kind = ANY($2::text[]) AND key = ANY($1::text[]) AND fired_at IS NULL "
            "AND cancelled_at IS NULL FOR UPDATE SKIP LOCKED)",
            list(keys),
            list(kinds),
        )


async def pending_timers(
    conn: Conn, keys: Sequence[str], kinds: Sequence[str]
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT kind, key, due_at, payload FROM timers WHERE kind = ANY($2::text[]) "
            "AND key = ANY($1::text[]) AND fired_at IS NULL AND cancelled_at IS NULL "
            "ORDER BY due_at, id",
            list(keys),
            list(kinds),
        )
    )


async def get_task(conn: Conn, task_id: str) -> Task | None:
    row = await conn.fetchrow(f"{_TASK_SELECT} WHERE t.task_id = $1", task_id)
    return None if row is None else _task(row)
