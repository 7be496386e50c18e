"""The writes of one unit of work in one statement: one round trip, however many tables.

A unit of work ends with several set-based writes — the changed rows of each of the store's
tables, the timers, the outbox, a command's answer and its audit entry. Sent one by one,
each costs a round trip to PostgreSQL and back (on both sides about as much CPU as the
write itself). `Writes` gathers them and sends them as the data-modifying CTEs of one
statement:

    WITH w0 AS (INSERT INTO cases …), w1 AS (INSERT INTO outbox … RETURNING seq, event_id)
    SELECT (SELECT array_agg(seq ORDER BY seq) FROM w1) AS r1_0, …

PostgreSQL runs every data-modifying CTE exactly once, to completion, whether the final
SELECT reads it or not, and checks foreign keys at the end of the statement. What the
gathering asks of a piece:
- it is one `INSERT`/`UPDATE`/`DELETE` (or a `SELECT` whose result is read back) numbering
  its own parameters from `$1`, with no `WITH` of its own;
- no two pieces change the same row: they all see the snapshot from before the statement,
  not each other's effects;
- nothing in the transaction reads what a piece writes before `run` (the caller runs it last,
  right before the commit).

A piece may name aggregates over its `RETURNING` rows (`returns`); their values are in its
`Returned` after `run`, and its `check` (which may raise, undoing the transaction) sees them.

A piece may also write the rows of core NATS messages to send once the transaction has
committed (`add_direct`: a reply to a request's `replyto`): the runtime hands them to the
process's publisher with the outbox rows, which sends them and deletes their rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from .db import Conn

_PARAM = re.compile(r"\$(\d+)")


@dataclass
class Returned:
    """What a piece's `returns` read back, in their order (after `Writes.run`)."""

    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _Piece:
    sql: str
    args: tuple[Any, ...]
    returns: tuple[str, ...]
    name: str | None
    returned: Returned = field(compare=False)
    check: Callable[[tuple[Any, ...]], None] | None = field(compare=False)


def _renumbered(sql: str, offset: int) -> str:
    if offset == 0:
        return sql
    return _PARAM.sub(lambda m: f"${int(m.group(1)) + offset}", sql)


@functools.lru_cache(maxsize=1024)
def compose(pieces: tuple[tuple[str, int, tuple[str, ...], str | None], ...]) -> str:
    """The one statement of pieces given as (sql, number of parameters, returns, name)."""
    ctes: list[str] = []
    outputs: list[str] = []
    offset = 0
    for i, (sql, n, returns, name) in enumerate(pieces):
        cte = name or f"w{i}"
        ctes.append(f"{cte} AS ({_renumbered(sql, offset)})")
        outputs += [f"(SELECT {expr} FROM {cte}) AS r{i}_{j}" for j, expr in enumerate(returns)]
        offset += n
    return f"WITH {', '.join(ctes)} SELECT {', '.join(outputs) or 'NULL'}"


@dataclass(frozen=True)
class Direct:
    """A core NATS message to send after commit."""

    subject: str
    headers: dict[str, str]
    body: bytes


class Writes:
    """The writes of a unit of work, gathered; `run` sends them as one statement."""

    def __init__(self) -> None:
        self._pieces: list[_Piece] = []
        # the direct messages' pieces, each with its messages in the order it inserts them;
        # kept across `run`s until `take_directs`
        self._directs: list[tuple[Returned, list[Direct]]] = []

    def __len__(self) -> int:
        return len(self._pieces)

    def add(
        self,
        sql: str,
        *args: Any,
        returns: Sequence[str] = (),
        check: Callable[[tuple[Any, ...]], None] | None = None,
        name: str | None = None,
    ) -> Returned:
        """One write, run with the others by `run`. `sql` numbers its parameters `$1`…`$n`
        for `args`; `returns`: aggregates over its `RETURNING` rows, read back after; `name`:
        the CTE's name, for a later piece to read its `RETURNING` rows (else `w<i>`)."""
        returned = Returned()
        self._pieces.append(_Piece(sql, args, tuple(returns), name, returned, check))
        return returned

    def add_direct(self, sql: str, *args: Any, messages: Sequence[Direct]) -> None:
        """The rows of `messages`, to be sent once committed (`take_directs`): `sql` inserts
        them in the order given, `RETURNING id` from a sequence, so the ids follow it."""
        returned = self.add(sql, *args, returns=("array_agg(id ORDER BY id)",))
        self._directs.append((returned, list(messages)))

    def take_directs(self) -> list[tuple[int, Direct]]:
        """The direct messages written by every `run` so far, each with its row's id, in
        order."""
        directs, self._directs = self._directs, []
        out: list[tuple[int, Direct]] = []
        for returned, messages in directs:
            ids = (returned.values[0] if returned.values else None) or []
            out += zip(ids, messages, strict=True)
        return out

    def absorb(self, other: Writes) -> None:
        """Take over what `other` gathered (the works of a batch, written as one)."""
        self._pieces += other._pieces
        other._pieces = []
        self._directs += other._directs
        other._directs = []

    async def run(self, conn: Conn) -> None:
        """Send what was gathered as one statement (nothing when nothing was); then each
        piece's `check` sees what it returned. Gathering starts anew after."""
        pieces, self._pieces = self._pieces, []
        if not pieces:
            return
        if len(pieces) == 1 and not pieces[0].returns and pieces[0].name is None:
            await conn.execute(pieces[0].sql, *pieces[0].args)
        else:
            sql = compose(tuple((p.sql, len(p.args), p.returns, p.name) for p in pieces))
            row = await conn.fetchrow(sql, *(a for p in pieces for a in p.args))
            assert row is not None
            at = 0
            for p in pieces:
                p.returned.values = tuple(row[at : at + len(p.returns)])
                at += len(p.returns)
        for p in pieces:
            if p.check is not None:
                p.check(p.returned.values)


@asynccontextmanager
async def gathered(conn: Conn, writes: Writes | None) -> AsyncIterator[Writes]:
    """The caller's `writes` to add to, or, without one, writes of its own run on leaving
    (a store's `save` called on its own writes at once)."""
    if writes is not None:
        yield writes
        return
    own = Writes()
    yield own
    await own.run(conn)
