"""The runtime's rows past their retention on a real PostgreSQL: what may go goes, in chunks,
what must stay (a pending timer, an unsent outbox row, anything within its retention, any
table kept for ever) stays; one replica prunes a schema at a time; an unsafe retention is
refused at start-up, naming the setting."""

from __future__ import annotations

import asyncpg
import pytest
from gridloop_runtime import db, retention
from gridloop_runtime.retention import Retention
from gridloop_runtime.settings import ServiceSettings
from pydantic import ValidationError

OLD, RECENT = "now() - interval '40 days'", "now() - interval '2 days'"


async def _fill(conn: db.Conn) -> None:
    """Each table: rows 40 days old and 2 days old, in every state that matters."""
    for age, tag in ((OLD, "old"), (RECENT, "new")):
        await conn.execute(
            "INSERT INTO inbox (consumer, event_id, processed_at) "
            f"SELECT 'c', '{tag}-' || g, {age} FROM generate_series(1, 12) g"
        )
        for state, fired, cancelled in (
            ("fired", age, "NULL"),
            ("cancelled", "NULL", age),
            ("pending", "NULL", "NULL"),
        ):
            await conn.execute(
                "INSERT INTO timers (kind, key, due_at, created_at, fired_at, cancelled_at) "
                f"VALUES ('chase', '{tag}-{state}', {age}, {age}, {fired}, {cancelled})"
            )
        # sent; unsent as an earlier release left it; written by this one, not yet published
        for state, sent in (("sent", age), ("unsent", "NULL"), ("pending", age)):
            seq = await conn.fetchval(
                "INSERT INTO outbox (event_id, subject, headers, body, created_at, sent_at) "
                f"VALUES ('{tag}-{state}', 'case.x', '{{}}', '\\x00', {age}, {sent}) "
                "RETURNING seq"
            )
            if state == "pending":
                await conn.execute("INSERT INTO outbox_pending (seq) VALUES ($1)", seq)
        await conn.execute(
            "INSERT INTO commands (command_id, kind, answer, created_at) "
            f"VALUES ('{tag}', 'sign', '{{}}', {age})"
        )


async def _left(conn: db.Conn, table: str, column: str) -> list[str]:
    return sorted(r[0] for r in await conn.fetch(f"SELECT {column} FROM {table}"))


async def test_old_rows_go_in_chunks_and_what_must_stay_stays(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = "retentiontest"
    monkeypatch.setattr(retention, "CHUNK", 5)  # 12 old inbox rows: three statements
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
            await _fill(conn)
        policy = Retention(timers_days=30, inbox_days=30, outbox_days=30, commands_days=30)
        gone = await retention.prune(pool, schema, policy)
        assert gone == {"timers": 2, "inbox": 12, "outbox": 1, "commands": 1}
        async with pool.acquire() as conn:
            assert await _left(conn, "timers", "key") == [
                "new-cancelled",
                "new-fired",
                "new-pending",
                "old-pending",  # still due: never deleted, however old
            ]
            assert await _left(conn, "inbox", "event_id") == sorted(
                f"new-{g}" for g in range(1, 13)
            )
            # an old row not yet sent stays for the sweeper, whichever release wrote it
            assert await _left(conn, "outbox", "event_id") == [
                "new-pending",
                "new-sent",
                "new-unsent",
                "old-pending",
                "old-unsent",
            ]
            assert await _left(conn, "commands", "command_id") == ["new"]
        # nothing more to delete
        assert await retention.prune(pool, schema, policy) == {}

        # the defaults keep inbox, outbox and commands for ever
        async with pool.acquire() as conn:
            await conn.execute("UPDATE inbox SET processed_at = now() - interval '400 days'")
            await conn.execute("UPDATE commands SET created_at = now() - interval '400 days'")
            await conn.execute(
                "UPDATE outbox SET created_at = now() - interval '400 days', sent_at = now()"
            )
        assert await retention.prune(pool, schema, Retention()) == {}
    finally:
        await pool.close()


async def test_one_replica_prunes_a_schema_at_a_time(database_url: str) -> None:
    schema = "retentionlock"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=2)
    other = await asyncpg.connect(database_url)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
            await _fill(conn)
        async with other.transaction():
            await other.execute(
                "SELECT pg_advisory_xact_lock($1)", db.lock_key(f"retention:{schema}")
            )
            assert await retention.prune(pool, schema, Retention(timers_days=30)) == {}
        assert await retention.prune(pool, schema, Retention(timers_days=30)) == {"timers": 2}
    finally:
        await other.close()
        await pool.close()


@pytest.mark.parametrize(
    ("inbox", "outbox", "named"),
    [(10, 30, "INBOX_RETENTION_DAYS"), (10, 0, "INBOX_RETENTION_DAYS")],
)
def test_an_inbox_kept_shorter_than_the_outbox_is_refused(
    inbox: float, outbox: float, named: str
) -> None:
    """A re-published event whose inbox row is gone would take effect twice."""
    with pytest.raises(ValidationError, match=named):
        ServiceSettings.model_validate(
            {
                "SERVICE_NAME": "x",
                "INBOX_RETENTION_DAYS": inbox,
                "OUTBOX_RETENTION_DAYS": outbox,
            }
        )


def test_safe_retentions_are_taken() -> None:
    for inbox, outbox in ((0, 0), (0, 30), (30, 30), (60, 30)):
        s = ServiceSettings.model_validate(
            {"SERVICE_NAME": "x", "INBOX_RETENTION_DAYS": inbox, "OUTBOX_RETENTION_DAYS": outbox}
        )
        assert s.retention.problem() is None


def test_stream_ages_are_read_in_days_by_stream() -> None:
    assert retention.stream_ages("") == {}
    assert retention.stream_ages(" intake = 30, DISPATCH=90.5 ,NOTIFY=0,") == {
        "INTAKE": 30.0,
        "DISPATCH": 90.5,
        "NOTIFY": 0.0,
    }
    s = ServiceSettings.model_validate(
        {"SERVICE_NAME": "x", "STREAM_MAX_AGE_DAYS": "HANDLING=30,DLQ=0"}
    )
    assert s.stream_max_ages_s == {"HANDLING": 30 * 86400, "DLQ": 0}


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("CASES=365", "CASES keeps every event"),
        ("cases=0", "CASES keeps every event"),
        ("OUTBOX=30", "no stream 'OUTBOX'"),
        ("INTAKE=30,INTAKE=60", "INTAKE is named twice"),
        ("INTAKE", "'INTAKE' is not STREAM=DAYS"),
        ("INTAKE=a month", "INTAKE='a month' is not a number of days"),
        ("INTAKE=0.5", "INTAKE=0.5 must be 0 .for ever. or at least 1 day"),
        ("INTAKE=-30", "INTAKE=-30 must be 0"),
        ("INTAKE=nan", "INTAKE=nan must be 0"),
    ],
)
def test_a_stream_age_that_would_lose_what_is_read_again_is_refused(
    setting: str, named: str
) -> None:
    """At start-up, naming the setting and the stream: never CASES, never an age shorter
    than a night of a reader standing still, nothing the operator did not mean."""
    with pytest.raises(ValidationError, match=f"STREAM_MAX_AGE_DAYS: {named}"):
        ServiceSettings.model_validate({"SERVICE_NAME": "x", "STREAM_MAX_AGE_DAYS": setting})
