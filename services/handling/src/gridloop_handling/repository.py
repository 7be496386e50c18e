"""Reading the handling schema — the inbox, its counters, one case's tasks and history — and
the direct replies' queue; the rows of cases and tasks as the store reads and writes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from gridloop_runtime.db import Conn

from .domain.case import CASE_FIELDS
from .domain.inbox import InboxState, Sort, Stage
from .domain.tasks import OPEN_STATES, Extension, Task, TaskState

_OPEN = [str(s) for s in OPEN_STATES]

# -- case summaries ------------------------------------------------------------------------
CASE_COLUMNS = ("case_id", *CASE_FIELDS)


async def get_case(conn: Conn, case_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {', '.join(CASE_COLUMNS)} FROM cases WHERE case_id = $1", case_id
    )
    return dict(row) if row is not None else None


# -- tasks -----------------------------------------------------------------------------------
TASK_COLUMNS = (
    "task_id",
    "case_id",
    "dept",
    "role",
    "group_id",
    "lead",
    "co_handlers",
    "kind",
    "state",
    "deadline",
    "dispatched_at",
    "sign_in_due",
    "urgency",
    "round",
    "reworks",
    "signed_at",
    "signed_by",
    "sign_on_time",
    "progress_notes",
    "handled_at",
    "handled_by",
    "completed_at",
    "result",
    "evidence",
    "on_time",
    "extension",
    "extensions_granted",
    "escalation_level",
    "supervised",
    "ended_at",
    "end_reason",
    "rework_dispatch_due",
)
_TASK_SELECT = f"SELECT {', '.join(f't.{c}' for c in TASK_COLUMNS)}"


def task_of(r: asyncpg.Record | dict[str, Any]) -> Task:
    return Task(
        task_id=r["task_id"],
        case_id=r["case_id"],
        dept=r["dept"],
        role=r["role"],
        group_id=r["group_id"],
        lead=r["lead"],
        co_handlers=tuple(r["co_handlers"] or ()),
        kind=r["kind"],
        state=TaskState(r["state"]),
        deadline=r["deadline"],
        dispatched_at=r["dispatched_at"],
        sign_in_due=r["sign_in_due"],
        urgency=r["urgency"],
        round=r["round"],
        reworks=r["reworks"],
        signed_at=r["signed_at"],
        signed_by=r["signed_by"],
        sign_on_time=r["sign_on_time"],
        progress_notes=r["progress_notes"],
        handled_at=r["handled_at"],
        handled_by=r["handled_by"],
        completed_at=r["completed_at"],
        result=r["result"],
        evidence=list(r["evidence"] or []),
        on_time=r["on_time"],
        extension=Extension.from_json(r["extension"]),
        extensions_granted=r["extensions_granted"],
        escalation_level=r["escalation_level"],
        supervised=r["supervised"],
        ended_at=r["ended_at"],
        end_reason=r["end_reason"],
        rework_dispatch_due=r["rework_dispatch_due"],
    )


def task_row(t: Task) -> tuple[Any, ...]:
    """A task as the values of TASK_COLUMNS."""
    return (
        t.task_id,
        t.case_id,
        t.dept,
        t.role,
        t.group_id,
        t.lead,
        list(t.co_handlers),
        t.kind,
        str(t.state),
        t.deadline,
        t.dispatched_at,
        t.sign_in_due,
        t.urgency,
        t.round,
        t.reworks,
        t.signed_at,
        t.signed_by,
        t.sign_on_time,
        t.progress_notes,
        t.handled_at,
        t.handled_by,
        t.completed_at,
        t.result,
        t.evidence,
        t.on_time,
        t.extension.as_json() if t.extension else None,
        t.extensions_granted,
        t.escalation_level,
        t.supervised,
        t.ended_at,
        t.end_reason,
        t.rework_dispatch_due,
    )


async def tasks_of_case(conn: Conn, case_id: str) -> list[Task]:
    """Every task of a case (a handful), oldest first."""
    rows = await conn.fetch(f"{_TASK_SELECT} FROM tasks t WHERE t.case_id = $1", case_id)
    tasks = [task_of(r) for r in rows]
    tasks.sort(key=lambda t: (t.dispatched_at, t.task_id))
    return tasks


async def history(conn: Conn, task_ids: Sequence[str]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT task_id, dept, round, at, action, by, note, evidence, data FROM task_log "
        "WHERE task_id = ANY($1::text[]) ORDER BY id",
        list(task_ids),
    )
    return [dict(r) for r in rows]


# -- the inbox -------------------------------------------------------------------------------
@dataclass(frozen=True)
class InboxQuery:
    dept: str
    now: datetime
    state: InboxState = "open"
    stage: Stage | None = None
    urgency: str | None = None
    overdue: bool | None = None
    role: str | None = None
    category_code: str | None = None
    cell_code: str | None = None
    subdistrict_code: str | None = None
    text: str | None = None
    sort: Sort = "deadline"
    limit: int = 100
    offset: int = 0
    # the reader's territory as LIKE patterns of cell codes (gridloop_runtime.access); None:
    # the whole district
    cells: list[str] | None = None


_STAGE_STATES = {
    "to_sign": ["dispatched"],
    "in_progress": ["signed"],
    "awaiting_verification": ["handled"],
}
_ORDER = {
    "deadline": "t.deadline ASC, t.task_id",
    "-deadline": "t.deadline DESC, t.task_id",
    "dispatched_at": "t.dispatched_at ASC, t.task_id",
    "-dispatched_at": "t.dispatched_at DESC, t.task_id",
    "urgency": "(t.urgency = 'urgent') DESC, t.deadline ASC, t.task_id",
    "-ended_at": "t.ended_at DESC NULLS FIRST, t.deadline DESC, t.task_id",
}
# 超期: not handled by the deadline (the same rule as Task.overdue).
_OVERDUE = (
    "(CASE WHEN t.handled_at IS NOT NULL THEN t.handled_at > t.deadline "
    "WHEN t.state IN ('dispatched', 'signed') THEN $2 > t.deadline ELSE false END)"
)


async def inbox(conn: Conn, q: InboxQuery) -> tuple[list[tuple[Task, dict[str, Any]]], int]:
    """One page of a department's tasks with their case summaries, and the total count."""
    where = ["t.dept = $1"]
    args: list[Any] = [q.dept, q.now]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if q.state == "open":
        where.append(f"t.state = ANY({arg(_OPEN)}::text[])")
    elif q.state == "closed":
        where.append(f"NOT (t.state = ANY({arg(_OPEN)}::text[]))")
    if q.stage is not None:
        where.append(f"t.state = ANY({arg(_STAGE_STATES[q.stage])}::text[])")
    if q.urgency is not None:
        where.append(f"t.urgency = {arg(q.urgency)}")
    if q.role is not None:
        where.append(f"t.role = {arg(q.role)}")
    if q.overdue is not None:
        where.append(_OVERDUE if q.overdue else f"NOT {_OVERDUE}")
    for column, value in (
        ("category_code", q.category_code),
        ("cell_code", q.cell_code),
        ("subdistrict_code", q.subdistrict_code),
    ):
        if value is not None:
            # Codes are hierarchical: a prefix selects a class or an area.
            where.append(f"c.{column} LIKE {arg(value)} || '%'")
    if q.text:
        pattern = arg(f"%{q.text}%")
        where.append(f"(c.description ILIKE {pattern} OR c.address ILIKE {pattern})")
    if q.cells is not None:
        where.append(f"c.cell_code LIKE ANY({arg(q.cells)}::text[])")
    sql_where = " AND ".join(where)
    # $2 (now) is referenced only by the overdue filter; keep its type known either way.
    base = (
        "FROM tasks t LEFT JOIN cases c ON c.case_id = t.case_id "
        f"WHERE {sql_where} AND $2::timestamptz IS NOT NULL"
    )
    total = await conn.fetchval(f"SELECT count(*) {base}", *args)
    rows = await conn.fetch(
        f"{_TASK_SELECT}, {', '.join(f'c.{c} AS c_{c}' for c in CASE_COLUMNS[1:])} {base} "
        f"ORDER BY {_ORDER[q.sort]} LIMIT {arg(q.limit)} OFFSET {arg(q.offset)}",
        *args,
    )
    out = []
    for r in rows:
        case = {c: r[f"c_{c}"] for c in CASE_COLUMNS[1:]}
        case["case_id"] = r["case_id"]
        out.append((task_of(r), case))
    return out, int(total)


async def summary(
    conn: Conn, dept: str, now: datetime, *, cells: list[str] | None = None
) -> dict[str, int]:
    """The inbox's counters: what waits at each stage, what is late, what ended (of the cases
    whose cell matches `cells`, when given)."""
    row = await conn.fetchrow(
        "SELECT "
        "count(*) FILTER (WHERE state = 'dispatched') AS to_sign, "
        "count(*) FILTER (WHERE state = 'signed') AS in_progress, "
        "count(*) FILTER (WHERE state = 'handled') AS awaiting_verification, "
        "count(*) FILTER (WHERE state IN ('dispatched', 'signed') AND deadline < $2) "
        "AS overdue, "
        "count(*) FILTER (WHERE state IN ('dispatched', 'signed') AND extension IS NOT NULL) "
        "AS extension_pending, "
        "count(*) FILTER (WHERE state = 'closed') AS closed, "
        "count(*) FILTER (WHERE state = 'returned') AS returned, "
        "count(*) FILTER (WHERE state IN ('recalled', 'superseded')) AS withdrawn "
        "FROM tasks WHERE dept = $1 AND ($3::text[] IS NULL OR case_id IN "
        "(SELECT case_id FROM cases WHERE cell_code LIKE ANY($3::text[])))",
        dept,
        now,
        cells,
    )
    assert row is not None
    return {k: int(v) for k, v in dict(row).items()}


# -- direct replies --------------------------------------------------------------------------
async def take_replies(conn: Conn, limit: int, older_than_s: float) -> list[asyncpg.Record]:
    """Replies committed at least `older_than_s` ago and not yet sent (the process that
    committed them sends them at once: these it did not), locked for this sweep."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, subject, headers, body FROM replies "
        "WHERE created_at <= now() - make_interval(secs => $2) ORDER BY id LIMIT $1 "
        "FOR UPDATE SKIP LOCKED",
        limit,
        older_than_s,
    )
    return rows


async def drop_replies(conn: Conn, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM replies WHERE id = ANY($1::bigint[])", list(ids))
