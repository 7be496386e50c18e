"""The pool's connections on a real PostgreSQL: what a connection takes back to the pool."""

from __future__ import annotations

import asyncpg
import pytest
from gridloop_devkit.testing import wait_for
from gridloop_runtime import db


async def test_a_released_connection_keeps_no_transaction_and_no_lock(database_url: str) -> None:
    pool = await db.create_pool(database_url, "pooltest", min_size=1, max_size=1)
    other = await asyncpg.connect(database_url)
    key = db.lock_key("pool-test")
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
        # the open transaction ended on release, and its lock with it
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", key)
        await other.execute("SELECT pg_advisory_unlock($1)", key)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
            await db.unlock_or_close(conn, key)
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", key)
        await other.execute("SELECT pg_advisory_unlock($1)", key)
    finally:
        await other.close()
        await pool.close()


async def test_a_session_lock_that_cannot_be_released_closes_its_connection(
    database_url: str,
) -> None:
    pool = await db.create_pool(database_url, "pooltest", min_size=1, max_size=1)
    other = await asyncpg.connect(database_url)
    key = db.lock_key("pool-test-broken")
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
            await conn.execute("BEGIN")
            with pytest.raises(asyncpg.PostgresError):
                await conn.execute("SELECT 1/0")
            # inside a failed transaction the unlock itself fails: the connection is closed
            with pytest.raises(asyncpg.PostgresError):
                await db.unlock_or_close(conn, key)
        # closed, so the lock goes with it once the server has ended that backend (it notices
        # the closed socket a moment later); the pool opens a new connection
        await wait_for(
            lambda: other.fetchval("SELECT pg_try_advisory_lock($1)", key),
            timeout=10,
            what="the closed connection's lock released",
        )
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await other.close()
        await pool.close()
