"""A unit of work's writes gathered into one statement (writes.py), on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from gridloop_runtime import db
from gridloop_runtime.casework import run_case_command
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.outbox import GENERIC_PLANS, UnitOfWorkFactory
from gridloop_runtime.step import Step
from gridloop_runtime.writes import Writes, compose, gathered

from .test_runtime_casework import T0, Counted

_TABLES = """
CREATE TABLE parents (id text PRIMARY KEY, n int NOT NULL);
CREATE TABLE children (id text PRIMARY KEY, parent_id text NOT NULL REFERENCES parents);
CREATE TABLE marks (id text PRIMARY KEY)
"""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    schema = "writestest"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    finally:
        await admin.close()
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await db.migrate(conn, schema, db.runtime_migrations())
        await conn.execute(_TABLES)
    try:
        yield pool
    finally:
        await pool.close()


COUNT = ("count(*)",)


def test_each_piece_numbers_its_parameters_from_one() -> None:
    sql = compose(
        (
            ("INSERT INTO a SELECT * FROM unnest($1::text[], $2::int[])", 2, (), None),
            ("UPDATE b SET x = $2 WHERE id = ANY($1) AND y = $10 RETURNING id", 10, COUNT, None),
        )
    )
    assert "unnest($1::text[], $2::int[])" in sql
    # shifted by the first piece's two: $10 becomes $12, not "$30" from a $1 prefix
    assert "SET x = $4 WHERE id = ANY($3) AND y = $12 RETURNING" in sql
    assert sql.endswith("SELECT (SELECT count(*) FROM w1) AS r1_0")


async def test_writes_to_several_tables_are_one_round_trip(pool: asyncpg.Pool) -> None:
    """Rows of three tables, the children of parents new in the same statement (their
    foreign key is checked at its end), and what two pieces return read back."""
    async with pool.acquire() as conn:
        sent: list[str] = []
        conn.add_query_logger(lambda record: sent.append(record.query))
        writes = Writes()
        async with conn.transaction():
            parents = writes.add(
                "INSERT INTO parents SELECT * FROM unnest($1::text[], $2::int[]) RETURNING id",
                ["p1", "p2"],
                [1, 2],
                returns=("array_agg(id ORDER BY id)", "count(*)"),
            )
            writes.add(
                "INSERT INTO children SELECT * FROM unnest($1::text[], $2::text[])",
                ["c1", "c2", "c3"],
                ["p1", "p1", "p2"],
            )
            marks = writes.add("INSERT INTO marks VALUES ($1) RETURNING id", "m1", returns=["id"])
            assert len(writes) == 3
            await writes.run(conn)
            assert len(writes) == 0  # gathering starts anew
        assert len([q for q in sent if "INSERT" in q]) == 1
        assert parents.values == (["p1", "p2"], 2)
        assert marks.values == ("m1",)
        assert await conn.fetchval("SELECT count(*) FROM children") == 3


async def test_a_child_without_its_parent_is_refused_as_before(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        writes = Writes()
        writes.add("INSERT INTO parents VALUES ($1, 1)", "p1")
        writes.add("INSERT INTO children VALUES ($1, $2)", "c1", "nobody")
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with conn.transaction():
                await writes.run(conn)
        assert await conn.fetchval("SELECT count(*) FROM parents") == 0


async def test_a_failed_check_undoes_every_piece(pool: asyncpg.Pool) -> None:
    class Taken(Exception):
        pass

    def inserted(returned: tuple[Any, ...]) -> None:
        if returned[0] == 0:
            raise Taken

    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO marks VALUES ('m1')")
        writes = Writes()
        writes.add("INSERT INTO parents VALUES ($1, 1)", "p1")
        writes.add(
            "INSERT INTO marks VALUES ($1) ON CONFLICT DO NOTHING RETURNING id",
            "m1",
            returns=("count(*)",),
            check=inserted,
        )
        with pytest.raises(Taken):
            async with conn.transaction():
                await writes.run(conn)
        assert await conn.fetchval("SELECT count(*) FROM parents") == 0


async def test_a_later_piece_reads_what_a_named_piece_returned(pool: asyncpg.Pool) -> None:
    """A piece writes only what a named one before it wrote: none when that wrote nothing."""
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO marks VALUES ('taken')")
        for mark in ("free", "taken"):
            writes = Writes()
            writes.add(
                "INSERT INTO marks VALUES ($1) ON CONFLICT DO NOTHING RETURNING id",
                mark,
                name="marked",
            )
            children = writes.add(
                "INSERT INTO parents SELECT id, $1 FROM marked RETURNING id",
                7,
                returns=("count(*)",),
            )
            async with conn.transaction():
                await writes.run(conn)
            assert children.values == ((1,) if mark == "free" else (0,))
        assert await conn.fetchval("SELECT array_agg(id) FROM parents") == ["free"]


async def test_a_lone_piece_goes_as_written_and_without_writes_a_store_writes_at_once(
    pool: asyncpg.Pool,
) -> None:
    sql = "INSERT INTO marks VALUES ($1)"
    async with pool.acquire() as conn:
        sent: list[str] = []
        conn.add_query_logger(lambda record: sent.append(record.query))
        async with gathered(conn, None) as out:
            out.add(sql, "m1")
            assert await conn.fetchval("SELECT count(*) FROM marks") == 0  # not yet
        assert await conn.fetchval("SELECT count(*) FROM marks") == 1
        assert sql in sent  # as written, no CTE around it
        mine = Writes()
        async with gathered(conn, mine) as out:
            out.add(sql, "m2")
        assert len(mine) == 1  # the caller's, to run with its own
        await mine.run(conn)
        assert await conn.fetchval("SELECT count(*) FROM marks") == 2


@dataclass
class Parent:
    id: str
    n: int = 0
    changed: bool = False


class ParentStore:
    async def load(self, conn: db.Conn, case_ids: Sequence[str]) -> dict[str, Parent]:
        rows = await conn.fetch("SELECT id, n FROM parents WHERE id = ANY($1) FOR UPDATE", case_ids)
        found = {r["id"]: Parent(r["id"], r["n"]) for r in rows}
        return {c: found.get(c) or Parent(c) for c in case_ids}

    async def save(
        self, conn: db.Conn, states: Sequence[Parent], writes: Writes | None = None
    ) -> None:
        changed = [s for s in states if s.changed]
        async with gathered(conn, writes) as out:
            if changed:
                out.add(
                    "INSERT INTO parents SELECT * FROM unnest($1::text[], $2::int[]) "
                    "ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
                    [s.id for s in changed],
                    [s.n for s in changed],
                )


async def test_a_command_on_a_case_writes_its_state_events_and_answer_in_one_statement(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """BEGIN, the generic plans asked for, the load, one write (the state, the outbox row,
    the answer and its audit entry) and COMMIT; a resend of the same command id gets the
    first answer."""
    one = await db.create_pool(database_url, "writestest", min_size=1, max_size=1)
    uow = UnitOfWorkFactory(one, schema="writestest", source="/test", clock=FakeClock(T0))
    sent: list[str] = []

    def bump(state: Parent, work: Step) -> dict[str, Any]:
        state.n += 1
        state.changed = True
        work.emit(Counted(case_id=state.id, n=state.n))
        return {"n": state.n}

    async def command(case_id: str, command_id: str) -> dict[str, Any]:
        return await run_case_command(
            uow, ParentStore(), case_id, bump, command_id=command_id, kind="bump"
        )

    try:
        # once first: asyncpg reads the types of a statement's parameters once a connection
        assert await command("p0", "cmd-0") == {"n": 1}
        async with one.acquire() as conn:  # the pool's one connection: every statement seen
            conn.add_query_logger(lambda record: sent.append(record.query))
        assert await command("p1", "cmd-1") == {"n": 1}
        assert await command("p1", "cmd-1") == {"n": 1}  # a resend: the first answer
    finally:
        await one.close()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT n FROM parents WHERE id = 'p1'") == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 2
        outcomes = await conn.fetch("SELECT outcome FROM audit_log ORDER BY id")
        assert [r["outcome"] for r in outcomes] == ["accepted", "accepted", "replayed"]
    first = sent[: sent.index("COMMIT;") + 1]
    # BEGIN, the generic plans (outbox.GENERIC_PLANS), the load, the one write, COMMIT
    assert len(first) == 5, first
    assert first[1] == GENERIC_PLANS
    assert all(table in first[3] for table in ("parents", "outbox", "commands", "audit_log"))
