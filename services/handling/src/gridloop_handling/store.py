"""The `CaseStore` of handling: `CaseFile`s loaded and saved a batch of cases at a time.

load: three statements for any number of cases — the cases' advisory locks (every writer of
a case takes it first, even before the case has a row: a parked command and the dispatch
that would run it must not miss each other), the summaries with the commands parked for
them (and the answers of those already executed), the tasks with the co-handlers'
contributions of their current round.
save: one set-based write per table with something to write, none for the rest, gathered
into the unit of work's one statement (gridloop_runtime.writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog
from gridloop_contracts import to_binary
from gridloop_runtime import audit
from gridloop_runtime.db import Conn, unnest_args, unnest_upsert
from gridloop_runtime.writes import Direct, Writes, gathered

from .domain.case import CaseFile, Parked
from .repository import CASE_COLUMNS, TASK_COLUMNS, task_of, task_row

log = structlog.get_logger(__name__)

# The two-key advisory lock space of handling ("hand"); other services' keys do not collide.
_LOCK_CLASS = 0x68616E64

_LOCK = "SELECT count(pg_advisory_xact_lock($1, hashtext(k))) FROM unnest($2::text[]) AS k"
_LOAD_CASES = (
    f"SELECT k.case_id AS key, {', '.join(f'c.{c}' for c in CASE_COLUMNS)}, "
    "(SELECT jsonb_agg(jsonb_build_object('id', p.id, 'dept', p.dept, 'action', p.action, "
    "'command', p.command, 'reply_to', p.reply_to, 'feed', p.answer_feed, "
    "'parked_at', p.parked_at, "
    "'answer', m.answer) ORDER BY p.id) FROM parked_commands p "
    "LEFT JOIN commands m ON m.command_id = p.dept || ':' || (p.command->>'command_id') "
    "WHERE p.case_id = k.case_id) AS parked "
    "FROM unnest($1::text[]) AS k(case_id) LEFT JOIN cases c ON c.case_id = k.case_id"
)
_LOAD_TASKS = (
    f"SELECT {', '.join(f't.{c}' for c in TASK_COLUMNS)}, "
    "CASE WHEN t.role = 'co-handler' THEN (SELECT jsonb_agg(jsonb_build_object('seq', l.id, "
    "'dept', l.dept, 'note', l.note, 'evidence', l.evidence) ORDER BY l.id) FROM task_log l "
    "WHERE l.task_id = t.task_id AND l.round = t.round AND l.action = 'contribution') "
    "END AS contributions FROM tasks t WHERE t.case_id = ANY($1::text[])"
)

# Types of the columns, for unnest (gridloop_runtime.db.unnest_upsert); absent: text.
_TYPES = {
    "location": "jsonb",
    "attachments": "jsonb",
    "reporter": "jsonb",
    "reported_at": "timestamptz",
    "accepted_at": "timestamptz",
    "closed_at": "timestamptz",
    "co_handlers": "text[]",
    "deadline": "timestamptz",
    "dispatched_at": "timestamptz",
    "sign_in_due": "timestamptz",
    "round": "int",
    "reworks": "int",
    "signed_at": "timestamptz",
    "sign_on_time": "boolean",
    "progress_notes": "int",
    "handled_at": "timestamptz",
    "completed_at": "timestamptz",
    "evidence": "jsonb",
    "on_time": "boolean",
    "extension": "jsonb",
    "extensions_granted": "int",
    "escalation_level": "int",
    "supervised": "boolean",
    "rework_dispatch_due": "boolean",
    "ended_at": "timestamptz",
    "at": "timestamptz",
    "data": "jsonb",
}


_STAMP = {"updated_at": "now()"}
_SAVE_CASES = unnest_upsert("cases", CASE_COLUMNS, _TYPES, key="case_id", extra=_STAMP)
_SAVE_TASKS = unnest_upsert("tasks", TASK_COLUMNS, _TYPES, key="task_id", extra=_STAMP)
_LOG_COLUMNS = (
    "task_id",
    "case_id",
    "dept",
    "round",
    "at",
    "action",
    "by",
    "note",
    "evidence",
    "data",
)
_INSERT_LOG = unnest_upsert("task_log", _LOG_COLUMNS, _TYPES, ordered=True)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class HandlingStore:
    """Loads and saves `CaseFile`s (gridloop_runtime.casework.CaseStore)."""

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, CaseFile]:
        ids = sorted(set(case_ids))  # one lock order for every writer: no deadlocks
        await conn.fetchval(_LOCK, _LOCK_CLASS, ids)
        states: dict[str, CaseFile] = {}
        for r in await conn.fetch(_LOAD_CASES, ids):
            state = CaseFile(r["key"])
            if r["case_id"] is not None:
                state.case = {c: r[c] for c in CASE_COLUMNS}
            for p in r["parked"] or ():
                state.parked.append(
                    Parked(
                        case_id=state.case_id,
                        dept=p["dept"],
                        action=p["action"],
                        command=p["command"],
                        reply_to=p["reply_to"],
                        feed=p["feed"],
                        parked_at=datetime.fromisoformat(p["parked_at"]),
                        id=p["id"],
                    )
                )
                if p["answer"] is not None:
                    state.answers[f"{p['dept']}:{state.parked[-1].command_id}"] = p["answer"]
            states[state.case_id] = state
        for r in await conn.fetch(_LOAD_TASKS, ids):
            task = task_of(r)
            task.contributions = list(r["contributions"] or ())
            state = states[task.case_id]
            state.tasks.append(task)
            state.loaded[task.task_id] = task_row(task)
        for state in states.values():
            state.tasks.sort(key=lambda t: (t.dispatched_at, t.task_id))
        return {c: states[c] for c in case_ids}

    async def save(
        self, conn: Conn, states: Sequence[CaseFile], writes: Writes | None = None
    ) -> None:
        """What changed, one set-based write per table; with `writes`, gathered there to go
        in the unit of work's one statement (a new parked command is inserted at once: its
        row id is read back)."""
        async with gathered(conn, writes) as out:
            cases = [s for s in states if s.case is not None and s.case_changed]
            if cases:
                rows = [tuple(s.case.get(c) for c in CASE_COLUMNS) for s in cases if s.case]
                out.add(_SAVE_CASES, *unnest_args(CASE_COLUMNS, _TYPES, rows))
            tasks = []
            for s in states:
                for t in s.tasks:
                    row = task_row(t)
                    if s.loaded.get(t.task_id) != row:
                        tasks.append(row)
                        s.loaded[t.task_id] = row
            if tasks:
                out.add(_SAVE_TASKS, *unnest_args(TASK_COLUMNS, _TYPES, tasks))
            self._log(out, [e for s in states for e in s.log])
            await self._parked(conn, out, states)
            self._commands(out, states)
            await audit.record_many(
                conn, [{**vars(e), "roles": ("department",)} for s in states for e in s.audit], out
            )
            self._replies(out, [r for s in states for r in s.replies])
        for s in states:
            s.case_changed = False
            s.log.clear()
            s.unparked.clear()
            s.recorded.clear()
            s.audit.clear()
            s.replies.clear()

    def _log(self, out: Writes, entries: Sequence[Any]) -> None:
        if not entries:
            return
        rows = [(*(getattr(e, c) for c in _LOG_COLUMNS[:-1]), e.data or {}) for e in entries]
        out.add(_INSERT_LOG, *unnest_args(_LOG_COLUMNS, _TYPES, rows))

    async def _parked(self, conn: Conn, out: Writes, states: Sequence[CaseFile]) -> None:
        gone = [i for s in states for i in s.unparked]
        if gone:
            out.add("DELETE FROM parked_commands WHERE id = ANY($1::bigint[])", gone)
        new = [p for s in states for p in s.parked if p.id is None]
        if not new:
            return
        ids = await conn.fetch(
            "INSERT INTO parked_commands "
            "(case_id, dept, action, command, reply_to, answer_feed, parked_at) "
            "SELECT u.case_id, u.dept, u.action, u.command::jsonb, u.reply_to, u.feed, "
            "u.parked_at FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
            "$5::text[], $6::boolean[], $7::timestamptz[]) WITH ORDINALITY "
            "AS u(case_id, dept, action, command, reply_to, feed, parked_at, n) ORDER BY u.n "
            "RETURNING id",
            [p.case_id for p in new],
            [p.dept for p in new],
            [p.action for p in new],
            [_json(p.command) for p in new],
            [p.reply_to for p in new],
            [p.feed for p in new],
            [p.parked_at for p in new],
        )
        for p, r in zip(new, sorted(r["id"] for r in ids), strict=True):
            p.id = r

    def _commands(self, out: Writes, states: Sequence[CaseFile]) -> None:
        """The answers of bus commands executed here: a resend gets the same answer."""
        recorded = [r for s in states for r in s.recorded]
        if not recorded:
            return

        def stored(returned: tuple[Any, ...]) -> None:
            if returned[0] != len(recorded):
                # The same scoped id stored meanwhile for another case (the case's lock holds
                # back resends of one case): the first answer stays.
                log.warning(
                    "command id stored by another transaction first",
                    command_ids={k for k, _, _ in recorded} - set(returned[1] or ()),
                )

        out.add(
            audit.STORE_ANSWERS,
            [k for k, _, _ in recorded],
            [kind for _, kind, _ in recorded],
            [_json(a) for _, _, a in recorded],
            returns=("count(*)", "array_agg(command_id)"),
            check=stored,
        )

    def _replies(self, out: Writes, replies: Sequence[tuple[str, Any]]) -> None:
        """Answers for a `replyto` subject: rows now, sent by this process's publisher once
        committed (the rows a killed process left, by the sweeper: replies.py)."""
        if not replies:
            return
        messages = []
        for subject, env in replies:
            h, b = to_binary(env)
            messages.append(Direct(subject, h, b))
        out.add_direct(
            "INSERT INTO replies (subject, headers, body) SELECT u.s, u.h::jsonb, u.b "
            "FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS u(s, h, b, n) "
            "ORDER BY u.n RETURNING id",
            [m.subject for m in messages],
            [_json(m.headers) for m in messages],
            [m.body for m in messages],
            messages=messages,
        )
