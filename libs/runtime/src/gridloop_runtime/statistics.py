"""The planner's statistics of a service's own tables, kept current by the service.

PostgreSQL's autovacuum analyses a table once about a tenth of it has changed, looking once a
minute. A freshly started system's tables (timers, outbox, inbox, the service's rows) grow from
empty faster than that, and a planner that still believes `timers` is empty cancels a case's
timers by walking every pending timer through the due-time index instead of looking the key up:
about 10 ms a statement with 20,000 pending timers instead of 0.5 ms. So every
`DB_ANALYSE_EVERY_S` each service analyses those of its tables that changed by more than
`STALE_ROWS` plus `STALE_SHARE` of their rows since their last analysis (by anyone, autovacuum
included); replicas take turns through an advisory lock, so one analysis runs at a time."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from .db import check_schema, lock_key

log = structlog.get_logger(__name__)

STALE_ROWS = 200
STALE_SHARE = 0.1

_STALE = """
SELECT s.relname
FROM pg_stat_user_tables s
WHERE s.schemaname = $1
  AND s.n_mod_since_analyze > $2 + $3 * greatest(s.n_live_tup, 0)
ORDER BY s.n_mod_since_analyze DESC
"""


async def analyse_stale(pool: asyncpg.Pool, schema: str) -> list[str]:
    """Analyse the schema's tables whose statistics are stale; the tables analysed (none when
    another replica is analysing the schema right now)."""
    check_schema(schema)
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1)", lock_key(f"analyse:{schema}")
        ):
            return []
        tables = [r["relname"] for r in await conn.fetch(_STALE, schema, STALE_ROWS, STALE_SHARE)]
        for table in tables:
            await conn.execute(f'ANALYZE "{schema}"."{table}"')
    if tables:
        log.info("statistics refreshed", schema=schema, tables=tables)
    return tables


async def keep_current(
    pool: asyncpg.Pool, schema: str, every_s: float, stop: asyncio.Event
) -> None:
    """Analyse stale tables every `every_s` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await analyse_stale(pool, schema)
        except Exception as exc:  # a database away for a while: look again next round
            log.warning("statistics refresh failed", schema=schema, error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
