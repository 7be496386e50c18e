"""The case store: dispatch's `CaseFile`s read and written a batch at a time.

`load`: the cases locked `FOR UPDATE` (one statement), then — only for cases that exist —
their tasks and extension requests (one statement each). `save`: one set-based upsert per
table, of the rows that are new or changed since `load` (nothing when nothing changed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from gridloop_runtime.db import Conn, unnest_args, unnest_upsert
from gridloop_runtime.writes import Writes, gathered

from .domain.casefile import Case, CaseFile, Extension, Task
from .repository import (
    CASE_COLUMNS,
    CASE_SELECT,
    EXT_COLUMNS,
    EXT_SELECT,
    TASK_COLUMNS,
    TASK_SELECT,
    case_of,
    ext_of,
    task_of,
)

# The PostgreSQL type of each column, for `unnest($n::<type>[])` (gridloop_runtime.db).
_TYPES: dict[str, str] = {
    **dict.fromkeys(
        (
            "case_id",
            "state",
            "category_code",
            "cell_code",
            "community_code",
            "subdistrict_code",
            "urgency",
            "description",
            "address",
            "part_code",
            "part_owner_dept",
            "channel",
            "source",
            "queue_reason",
            "supervised_reason",
            "supervised_by",
            "task_id",
            "dept",
            "lead",
            "kind",
            "status",
            "dispatched_by",
            "note",
            "reason",
            "end_reason",
            "request_id",
            "requested_by",
            "decided_by",
            "decision_reason",
        ),
        "text",
    ),
    **dict.fromkeys(("location", "reporter", "attachments"), "jsonb"),
    **dict.fromkeys(("returned_by", "co_handlers"), "text[]"),
    **dict.fromkeys(
        (
            "task_seq",
            "gen",
            "escalation_level",
            "reworks",
            "extensions",
            "queue_chase_level",
            "manual_reminders",
            "overdue_level",
            "replaced_overdue_level",
        ),
        "int",
    ),
    **dict.fromkeys(
        (
            "accepted_at",
            "queued_at",
            "supervised_at",
            "emergency_escalated_at",
            "closed_at",
            "updated_at",
            "dispatched_at",
            "deadline",
            "window_start",
            "sign_in_due",
            "signed_at",
            "handled_at",
            "reminded_at",
            "overdue_at",
            "sign_in_overdue_at",
            "escalated_at",
            "ended_at",
            "proposed_deadline",
            "current_deadline",
            "requested_at",
            "decided_at",
            "new_deadline",
            "replaced_deadline",
        ),
        "timestamptz",
    ),
}


_CASE_WRITE = (*CASE_COLUMNS, "updated_at")
# A new case that another transaction inserted meanwhile comes back as updated (xmax <> 0):
# the batch is undone and retried, and the retry finds the case (accepted once).
_CASE_UPSERT = unnest_upsert(
    "cases",
    _CASE_WRITE,
    _TYPES,
    key="case_id",
    tail="RETURNING case_id, xmax = 0 AS inserted",
)
_TASK_UPSERT = unnest_upsert("tasks", TASK_COLUMNS, _TYPES, key="task_id", update=TASK_COLUMNS[2:])
_EXT_DECISION = ("status", "decided_at", "decided_by", "new_deadline", "decision_reason")
# A request id some other case holds already stays that case's (ids are the senders').
_EXT_UPSERT = unnest_upsert(
    "extensions",
    EXT_COLUMNS,
    _TYPES,
    key="request_id",
    update=_EXT_DECISION,
    tail="WHERE extensions.case_id = EXCLUDED.case_id",
)


class CaseCreatedMeanwhile(Exception):
    """Another transaction created a case this one created too: retry (it exists now)."""


def _case_row(case: Case) -> tuple[Any, ...]:
    return tuple(str(case.state) if c == "state" else getattr(case, c) for c in CASE_COLUMNS)


def _task_row(task: Task) -> tuple[Any, ...]:
    out = []
    for c in TASK_COLUMNS:
        value = getattr(task, c)
        if c == "status":
            value = str(value)
        elif c == "co_handlers":
            value = list(value)
        out.append(value)
    return tuple(out)


def _ext_row(x: Extension) -> tuple[Any, ...]:
    return tuple(getattr(x, c) for c in EXT_COLUMNS)


class DispatchStore:
    """`gridloop_runtime.casework.CaseStore` of `CaseFile`s."""

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, CaseFile]:
        ids = list(case_ids)
        files = {c: CaseFile(c) for c in ids}
        rows = await conn.fetch(
            f"{CASE_SELECT} WHERE c.case_id = ANY($1::text[]) ORDER BY c.case_id FOR UPDATE", ids
        )
        for r in rows:
            f = files[r["case_id"]]
            f.case = case_of(r)
            f.stored[("case", f.case_id)] = _case_row(f.case)
        known = [r["case_id"] for r in rows]
        if not known:
            return files  # nothing seen yet: no tasks, no requests either
        for r in await conn.fetch(
            f"{TASK_SELECT} WHERE t.case_id = ANY($1::text[]) ORDER BY t.case_id, t.task_id",
            known,
        ):
            task = task_of(r)
            f = files[task.case_id]
            f.tasks.append(task)
            f.stored[("task", task.task_id)] = _task_row(task)
        for r in await conn.fetch(f"{EXT_SELECT} WHERE x.case_id = ANY($1::text[])", known):
            x = ext_of(r)
            f = files[x.case_id]
            f.extensions.append(x)
            f.stored[("ext", x.request_id)] = _ext_row(x)
        return files

    async def save(
        self, conn: Conn, states: Sequence[CaseFile], writes: Writes | None = None
    ) -> None:
        cases: list[tuple[Any, ...]] = []
        created: set[str] = set()
        tasks: list[tuple[Any, ...]] = []
        exts: list[tuple[Any, ...]] = []
        for f in states:
            if f.case is not None:
                row = _case_row(f.case)
                before = f.stored.get(("case", f.case_id))
                if before != row:
                    if before is None:
                        created.add(f.case_id)
                    cases.append((*row, f.updated_at or datetime.now(UTC)))
            tasks += _changed(f, "task", f.tasks, lambda t: t.task_id, _task_row)
            exts += _changed(f, "ext", f.extensions, lambda x: x.request_id, _ext_row)

        def first_to_create(returned: tuple[Any, ...]) -> None:
            if created & set(returned[0] or ()):
                raise CaseCreatedMeanwhile(sorted(created))

        async with gathered(conn, writes) as out:
            if cases:
                out.add(
                    _CASE_UPSERT,
                    *unnest_args(_CASE_WRITE, _TYPES, cases),
                    returns=("array_agg(case_id) FILTER (WHERE NOT inserted)",),
                    check=first_to_create,
                )
            if tasks:
                out.add(_TASK_UPSERT, *unnest_args(TASK_COLUMNS, _TYPES, tasks))
            if exts:
                out.add(_EXT_UPSERT, *unnest_args(EXT_COLUMNS, _TYPES, exts))
        for f in states:  # what is written is what is stored now
            _remember(f)


def _changed(
    f: CaseFile,
    table: str,
    items: Sequence[Any],
    key: Callable[[Any], str],
    row: Callable[[Any], tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    out = []
    for item in items:
        current = row(item)
        if f.stored.get((table, key(item))) != current:
            out.append(current)
    return out


def _remember(f: CaseFile) -> None:
    if f.case is not None:
        f.stored[("case", f.case_id)] = _case_row(f.case)
    for t in f.tasks:
        f.stored[("task", t.task_id)] = _task_row(t)
    for x in f.extensions:
        f.stored[("ext", x.request_id)] = _ext_row(x)
