"""Handling's schema upgraded in place, on a real PostgreSQL: what a database written before a
migration holds keeps its meaning after it."""

from __future__ import annotations

from asyncpg import Connection
from gridloop_handling.bootstrap import MIGRATIONS
from gridloop_handling.store import HandlingStore
from gridloop_runtime import db

SCHEMA = "handling"


async def migrated_before(conn: Connection, migrations: list[db.Migration], version: int) -> None:
    """The schema as it was before handling's migration `version` (and the ones after it)."""
    before = [m for m in migrations if not (m.scope == SCHEMA and m.version >= version)]
    assert len(before) < len(migrations)
    await db.migrate(conn, SCHEMA, before)


async def test_a_command_parked_before_answer_feed_was_kept_is_still_answered_on_the_feed(
    database_url: str,
) -> None:
    """004_parked_answer_feed: a park written before it (when every parked command was
    answered on the feed as well as its inbox) loads as `feed` True; one written after it
    keeps what it asked."""
    migrations = db.runtime_migrations() + db.read_migrations(SCHEMA, MIGRATIONS)
    conn = await db.connect(database_url, SCHEMA)
    try:
        await migrated_before(conn, migrations, 4)
        park = (
            "INSERT INTO parked_commands (case_id, dept, action, command, reply_to, parked_at) "
            "VALUES ($1, 'sanitation', 'signed', $2::jsonb, "
            "'_INBOX.dept-sanitation.x', now())"
        )
        await conn.execute(park, "C-OLD", {"command_id": "s-old"})
        applied = await db.migrate(conn, SCHEMA, migrations)
        assert applied[0] == "handling/004_parked_answer_feed"
        await conn.execute(
            "INSERT INTO parked_commands (case_id, dept, action, command, reply_to, "
            "answer_feed, parked_at) VALUES ('C-NEW', 'sanitation', 'signed', "
            """'{"command_id": "s-new"}'::jsonb, '_INBOX.dept-sanitation.x', false, now())"""
        )
        async with conn.transaction():
            states = await HandlingStore().load(conn, ["C-OLD", "C-NEW"])
        [old] = states["C-OLD"].parked
        [new] = states["C-NEW"].parked
        assert (old.command_id, old.feed) == ("s-old", True)
        assert (new.command_id, new.feed) == ("s-new", False)
    finally:
        await conn.close()


async def test_a_task_reworked_before_the_rework_dispatch_was_awaited_loads_as_not_awaiting(
    database_url: str,
) -> None:
    """005_rework_dispatch_due: a task written before it loads as awaiting no rework
    dispatch: the next one counts, as it did then."""
    migrations = db.runtime_migrations() + db.read_migrations(SCHEMA, MIGRATIONS)
    conn = await db.connect(database_url, SCHEMA)
    try:
        await migrated_before(conn, migrations, 5)
        await conn.execute(
            "INSERT INTO tasks (task_id, case_id, dept, role, group_id, lead, kind, state, "
            "deadline, dispatched_at, round, reworks, updated_at) VALUES ('T-OLD', 'C-OLD', "
            "'sanitation', 'sole', 'T-OLD', 'sanitation', 'initial', 'dispatched', "
            "now() + interval '1 day', now(), 2, 1, now())"
        )
        applied = await db.migrate(conn, SCHEMA, migrations)
        assert applied[0] == "handling/005_rework_dispatch_due"
        async with conn.transaction():
            [task] = (await HandlingStore().load(conn, ["C-OLD"]))["C-OLD"].tasks
        assert (task.task_id, task.reworks, task.rework_dispatch_due) == ("T-OLD", 1, False)
    finally:
        await conn.close()
