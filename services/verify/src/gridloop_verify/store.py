"""The verify store: the state of a batch of cases (domain/state.py), loaded and saved with
one statement each.

load: the cases with their tasks, one join, the cases locked (`FOR UPDATE OF c`: every
writer of a case's tasks — events, timers, commands, the absence hand-over — goes through
this lock), and the absences not over yet (one small read per batch, shared by all its
states: who is away decides who gets a new task). Commands whose rules never look at
absences use `lean`, which skips that read.

save: what changed, set-based — the changed cases and the new or changed tasks in one
statement (an upsert of each, the cases' in a CTE so a new case is there for its tasks);
nothing at all when nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from gridloop_runtime.clock import Clock, SystemClock
from gridloop_runtime.db import Conn

from .domain.absences import NOT_LOADED, Absences
from .domain.casefile import Case
from .domain.state import CaseState
from .domain.tasks import Task
from .repository import (
    CASE_COLUMNS,
    CASE_FIELDS,
    TASK_COLUMNS,
    TASK_FIELDS,
    case_of_row,
    task_of_row,
)


def _upsert(
    table: str,
    fields: Sequence[tuple[str, str]],
    *,
    key: str,
    keep: Sequence[str] = (),
    stamp: str | None = None,
    first: int = 1,
) -> str:
    """`INSERT … SELECT FROM unnest(one array per column) ON CONFLICT (key) DO UPDATE`, with
    parameters numbered from `first`: jsonb columns travel as text (asyncpg would take a list
    value for an array dimension) and are cast back; `keep` columns are not updated; `stamp`
    is one timestamp for every row (the parameter after the arrays)."""
    names = [c for c, _ in fields]
    arrays = ", ".join(
        f"${i}::{'text' if t == 'jsonb' else t}[]" for i, (_, t) in enumerate(fields, first)
    )
    values = [f"u.{c}::jsonb" if t == "jsonb" else f"u.{c}" for c, t in fields]
    update = [c for c in names if c != key and c not in keep]
    if stamp is not None:
        names.append(stamp)
        values.append(f"${first + len(fields)}::timestamptz")
        update.append(stamp)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM unnest({arrays}) AS u({', '.join(c for c, _ in fields)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in update)}"
    )


_LOAD = (
    f"SELECT {', '.join(f'c.{c}' for c in CASE_COLUMNS)}, "
    f"{', '.join(f't.{c} AS t_{c}' for c in TASK_COLUMNS)} "
    "FROM cases c LEFT JOIN tasks t ON t.case_id = c.case_id "
    "WHERE c.case_id = ANY($1::text[]) ORDER BY c.case_id, t.task_id FOR UPDATE OF c"
)
_CASES_UPSERT = _upsert("cases", CASE_FIELDS, key="case_id", stamp="updated_at")
_TASKS_UPSERT = _upsert("tasks", TASK_FIELDS, key="task_id", keep=("case_id",))
_BOTH_UPSERT = f"WITH saved_cases AS ({_CASES_UPSERT}) " + _upsert(
    "tasks", TASK_FIELDS, key="task_id", keep=("case_id",), first=len(CASE_FIELDS) + 2
)


def _columns(rows: Sequence[object], fields: Sequence[tuple[str, str]]) -> list[list[Any]]:
    """One list per column of the rows' attributes (jsonb as JSON text, enums as text)."""
    out: list[list[Any]] = []
    for name, sql_type in fields:
        values = [getattr(r, name) for r in rows]
        if sql_type == "jsonb":
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        elif name in ("stage", "status"):
            values = [str(v) for v in values]
        out.append(values)
    return out


class VerifyStore:
    """`CaseStore[CaseState]` of verify (gridloop_runtime.casework)."""

    def __init__(self, clock: Clock | None = None) -> None:
        # The runtime's clock, set when the service starts (bootstrap's on_start): it
        # decides which absences are not over yet and stamps updated_at.
        self.clock: Clock = clock or SystemClock()
        self.lean = _Lean(self)

    async def load(
        self, conn: Conn, case_ids: Sequence[str], *, absences: bool = True
    ) -> dict[str, CaseState]:
        ids = list(dict.fromkeys(case_ids))
        cases: dict[str, Case] = {}
        tasks: dict[str, list[Task]] = {}
        for r in await conn.fetch(_LOAD, ids):
            case_id = r["case_id"]
            if case_id not in cases:
                cases[case_id] = case_of_row(r)
            if r["t_task_id"] is not None:
                tasks.setdefault(case_id, []).append(task_of_row(r, "t_"))
        away = NOT_LOADED
        if absences:
            rows = await conn.fetch(
                "SELECT user_id, starts_at, ends_at FROM absences WHERE ends_at > $1",
                self.clock.now(),
            )
            away = Absences.of((r["user_id"], r["starts_at"], r["ends_at"]) for r in rows)
        return {cid: CaseState.loaded(cases.get(cid), cid, tasks.get(cid, []), away) for cid in ids}

    async def save(self, conn: Conn, states: Sequence[CaseState]) -> None:
        cases = [s.case for s in states if s.case_changed()]
        tasks = [t for s in states for t in s.changed_tasks()]
        if cases and tasks:
            case_args = [*_columns(cases, CASE_FIELDS), self.clock.now()]
            await conn.execute(_BOTH_UPSERT, *case_args, *_columns(tasks, TASK_FIELDS))
        elif cases:
            await conn.execute(_CASES_UPSERT, *_columns(cases, CASE_FIELDS), self.clock.now())
        elif tasks:
            await conn.execute(_TASKS_UPSERT, *_columns(tasks, TASK_FIELDS))
        for s in states:
            s.clean()


class _Lean:
    """The store for commands on one case whose rules never look at absences (verify,
    confirm, approve, assign): no read of the absences."""

    def __init__(self, store: VerifyStore) -> None:
        self.store = store

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, CaseState]:
        return await self.store.load(conn, case_ids, absences=False)

    async def save(self, conn: Conn, states: Sequence[CaseState]) -> None:
        await self.store.save(conn, states)
