"""SQL of the dispatch schema: its column lists and the reads of the REST API (asyncpg; this
service's tables only). A case's own reads and writes under its rules are the store's
(store.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from gridloop_runtime.db import Conn

from .domain.casefile import Case, CaseState, Extension, Task, TaskStatus

CASE_COLUMNS = (
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
    "queue_chase_level",
)
CASE_SELECT = f"SELECT {', '.join(f'c.{c}' for c in CASE_COLUMNS)} FROM cases c"

TASK_COLUMNS = (
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
    "manual_reminders",
    "overdue_level",
    "replaced_deadline",
    "replaced_overdue_level",
)
TASK_SELECT = f"SELECT {', '.join(f't.{c}' for c in TASK_COLUMNS)} FROM tasks t"

EXT_COLUMNS = (
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
EXT_SELECT = f"SELECT {', '.join(f'x.{c}' for c in EXT_COLUMNS)} FROM extensions x"


# -- cases --------------------------------------------------------------------------------
def case_of(r: asyncpg.Record) -> Case:
    values = {c: r[c] for c in CASE_COLUMNS}
    values["state"] = CaseState(values["state"])
    values["returned_by"] = list(values["returned_by"] or [])
    values["attachments"] = list(values["attachments"] or [])
    return Case(**values)


async def get_case(conn: Conn, case_id: str) -> Case | None:
    row = await conn.fetchrow(f"{CASE_SELECT} WHERE c.case_id = $1", case_id)
    return None if row is None else case_of(row)


# `cells`: the reader's territory as LIKE patterns of cell codes (gridloop_runtime.access);
# None reads the whole district.
_IN_CELLS = "($2::text[] IS NULL OR c.cell_code LIKE ANY($2::text[]))"


async def queued_cases(conn: Conn, limit: int, *, cells: list[str] | None = None) -> list[Case]:
    rows = await conn.fetch(
        f"{CASE_SELECT} WHERE c.queued_at IS NOT NULL AND c.state <> 'closed' AND {_IN_CELLS} "
        "ORDER BY c.queued_at, c.case_id LIMIT $1",
        limit,
        cells,
    )
    return [case_of(r) for r in rows]


async def supervised_cases(conn: Conn, limit: int, *, cells: list[str] | None = None) -> list[Case]:
    rows = await conn.fetch(
        f"{CASE_SELECT} WHERE c.supervised_at IS NOT NULL AND c.state <> 'closed' "
        f"AND {_IN_CELLS} ORDER BY c.supervised_at LIMIT $1",
        limit,
        cells,
    )
    return [case_of(r) for r in rows]


# -- tasks --------------------------------------------------------------------------------
def task_of(r: asyncpg.Record) -> Task:
    values = {c: r[c] for c in TASK_COLUMNS}
    values["status"] = TaskStatus(values["status"])
    values["co_handlers"] = tuple(values["co_handlers"] or ())
    return Task(**values)


async def tasks_of_case(conn: Conn, case_id: str) -> list[Task]:
    rows = await conn.fetch(f"{TASK_SELECT} WHERE t.case_id = $1 ORDER BY t.task_id", case_id)
    return [task_of(r) for r in rows]


async def tasks_of_cases(conn: Conn, case_ids: Sequence[str]) -> dict[str, list[Task]]:
    rows = await conn.fetch(
        f"{TASK_SELECT} WHERE t.case_id = ANY($1::text[]) ORDER BY t.case_id, t.task_id",
        list(case_ids),
    )
    out: dict[str, list[Task]] = {c: [] for c in case_ids}
    for r in rows:
        out.setdefault(r["case_id"], []).append(task_of(r))
    return out


@dataclass(frozen=True)
class BoardRow:
    task: Task
    case: Case


async def board(
    conn: Conn, *, view: str, dept: str | None, limit: int, cells: list[str] | None = None
) -> list[BoardRow]:
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
    if cells is not None:
        args.append(cells)
        where.append(f"c.cell_code LIKE ANY(${len(args)}::text[])")
    task_cols = ", ".join(f"t.{c}" for c in TASK_COLUMNS)
    case_cols = ", ".join(f"c.{c} AS c_{c}" for c in CASE_COLUMNS)
    rows = await conn.fetch(
        f"SELECT {task_cols}, {case_cols} FROM tasks t JOIN cases c USING (case_id) "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY t.escalation_level DESC, t.deadline, t.task_id LIMIT $1",
        *args,
    )
    out = []
    for r in rows:
        case_values = {c: r[f"c_{c}"] for c in CASE_COLUMNS}
        case_values["state"] = CaseState(case_values["state"])
        case_values["returned_by"] = list(case_values["returned_by"] or [])
        case_values["attachments"] = list(case_values["attachments"] or [])
        out.append(BoardRow(task_of(r), Case(**case_values)))
    return out


# -- extensions ---------------------------------------------------------------------------
def ext_of(r: asyncpg.Record) -> Extension:
    return Extension(**{c: r[c] for c in EXT_COLUMNS})


async def list_extensions(
    conn: Conn,
    *,
    status: str | None,
    case_id: str | None,
    limit: int,
    cells: list[str] | None = None,
) -> list[Extension]:
    where: list[str] = []
    args: list[Any] = []
    if cells is not None:
        args.append(cells)
        where.append(
            f"x.case_id IN (SELECT c.case_id FROM cases c "
            f"WHERE c.cell_code LIKE ANY(${len(args)}::text[]))"
        )
    if status is not None:
        args.append(status)
        where.append(f"x.status = ${len(args)}")
    if case_id is not None:
        args.append(case_id)
        where.append(f"x.case_id = ${len(args)}")
    args.append(limit)
    sql = (
        f"{EXT_SELECT} {'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY x.requested_at, x.request_id LIMIT ${len(args)}"
    )
    return [ext_of(r) for r in await conn.fetch(sql, *args)]


async def case_of_extension(conn: Conn, request_id: str) -> str | None:
    """The case an extension request belongs to (requests never move)."""
    found: str | None = await conn.fetchval(
        "SELECT case_id FROM extensions WHERE request_id = $1", request_id
    )
    return found
