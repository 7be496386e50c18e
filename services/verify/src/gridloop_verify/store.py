"""The verify store: the state of a batch of cases (domain/state.py), loaded and saved with
one statement each.

load: the cases with their tasks, one join, the cases locked (`FOR UPDATE OF c`: every
writer of a case's tasks — events, timers, commands, the absence hand-over — goes through
this lock), and the absences not over yet (one small read per batch, shared by all its
states: who is away decides who gets a new task). Commands whose rules never look at
absences use `lean`, which skips that read.

save: what changed, set-based — an upsert of the changed cases and one of the new or
changed tasks, gathered into the unit of work's one statement (gridloop_runtime.writes; the
foreign key of a new case's tasks is checked at its end); nothing at all when nothing
changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gridloop_runtime.clock import Clock, SystemClock
from gridloop_runtime.db import Conn, unnest_args, unnest_upsert
from gridloop_runtime.writes import Writes, gathered

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

_LOAD = (
    f"SELECT {', '.join(f'c.{c}' for c in CASE_COLUMNS)}, "
    f"{', '.join(f't.{c} AS t_{c}' for c in TASK_COLUMNS)} "
    "FROM cases c LEFT JOIN tasks t ON t.case_id = c.case_id "
    "WHERE c.case_id = ANY($1::text[]) ORDER BY c.case_id, t.task_id FOR UPDATE OF c"
)
_CASE_TYPES = dict(CASE_FIELDS)
_TASK_TYPES = dict(TASK_FIELDS)
# updated_at: one timestamp for every row, the parameter after the case arrays
_CASES_UPSERT = unnest_upsert(
    "cases",
    CASE_COLUMNS,
    _CASE_TYPES,
    key="case_id",
    extra={"updated_at": f"${len(CASE_COLUMNS) + 1}::timestamptz"},
)
_TASK_UPDATE = [c for c in TASK_COLUMNS if c not in ("task_id", "case_id")]
_TASKS_UPSERT = unnest_upsert(
    "tasks", TASK_COLUMNS, _TASK_TYPES, key="task_id", update=_TASK_UPDATE
)


def _columns(rows: Sequence[object], fields: Sequence[tuple[str, str]]) -> list[list[Any]]:
    """The unnest arguments of the rows' attributes (enums as text)."""
    names = [c for c, _ in fields]
    values = [tuple(_plain(c, getattr(r, c)) for c in names) for r in rows]
    return unnest_args(names, dict(fields), values)


def _plain(column: str, value: Any) -> Any:
    return str(value) if column in ("stage", "status") else value


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

    async def save(
        self, conn: Conn, states: Sequence[CaseState], writes: Writes | None = None
    ) -> None:
        cases = [s.case for s in states if s.case_changed()]
        tasks = [t for s in states for t in s.changed_tasks()]
        async with gathered(conn, writes) as out:
            if cases:
                out.add(_CASES_UPSERT, *_columns(cases, CASE_FIELDS), self.clock.now())
            if tasks:
                out.add(_TASKS_UPSERT, *_columns(tasks, TASK_FIELDS))
        for s in states:
            s.clean()


class _Lean:
    """The store for commands on one case whose rules never look at absences (verify,
    confirm, approve, assign): no read of the absences."""

    def __init__(self, store: VerifyStore) -> None:
        self.store = store

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, CaseState]:
        return await self.store.load(conn, case_ids, absences=False)

    async def save(
        self, conn: Conn, states: Sequence[CaseState], writes: Writes | None = None
    ) -> None:
        await self.store.save(conn, states, writes)
