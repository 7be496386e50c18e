"""The local PostgreSQL of the tests and the bench (gridloop_devkit.devstack.LocalPostgres):
a database made for one phase is dropped after it, sessions still open on it included."""

from __future__ import annotations

import asyncpg
import pytest
from gridloop_devkit.devstack import CHECKPOINTS, LocalPostgres


async def test_a_dropped_database_is_gone_with_the_sessions_left_on_it(
    pg_server: LocalPostgres,
) -> None:
    url = pg_server.create_database("dropped_after_its_phase")
    left_open = await asyncpg.connect(url)
    assert await left_open.fetchval("SELECT current_database()") == "dropped_after_its_phase"

    pg_server.drop_database("dropped_after_its_phase")

    admin = await asyncpg.connect(pg_server.url("postgres"))
    try:
        names = await admin.fetch("SELECT datname FROM pg_database")
    finally:
        await admin.close()
    assert "dropped_after_its_phase" not in {r["datname"] for r in names}
    # the session it ended can no longer work
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
        await left_open.fetchval("SELECT 1")
    await left_open.close()
    # dropping it again (a phase that failed before it made its database) is no error
    pg_server.drop_database("dropped_after_its_phase")


async def test_checkpoints_are_spaced_as_in_production(pg_server: LocalPostgres) -> None:
    """The bench and the tests measure the checkpoint spacing production runs with."""
    conn = await asyncpg.connect(pg_server.url("postgres"))
    try:
        shown = {
            name: await conn.fetchval("SELECT current_setting($1)", name) for name in CHECKPOINTS
        }
    finally:
        await conn.close()
    assert shown == CHECKPOINTS
