"""The planner's statistics of a service's own tables, kept current by the service.

PostgreSQL's autovacuum analyses a table once about a tenth of it has changed, looking once a
minute. A freshly started system's tables (timers, outbox, inbox, the service's rows) grow from
empty faster than that, and a planner that still believes `timers` is empty cancels a case's
timers by walking every pending timer through the due-time index instead of looking the key up:
about 10 ms a statement with 20,000 pending timers instead of 0.5 ms. So every
`DB_ANALYSE_EVERY_S` each service analyses those of its tables that changed by more than
`STALE_ROWS` plus `STALE_SHARE` of their rows since their last analysis (by anyone, autovacuum
included); replicas take turns through an advisory lock, so one analysis runs at a time.

The rounds are `DB_ANALYSE_EVERY_S` apart on average, each a quarter more or less at random:
the services start together, and rounds kept in step would analyse every schema's grown
tables in the same half second (about 0.5 s of PostgreSQL's CPU at once on a young system),
a stall the reports of that moment queue behind."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import asyncpg
import structlog

from .db import check_schema, lock_key
from .waits import wait_set

log = structlog.get_logger(__name__)

STALE_ROWS = 200
STALE_SHARE = 0.1
ROUND_SPREAD = 0.25

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


def next_round_in(every_s: float, draw: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to the next round: `every_s`, a quarter more or less at random (`draw`)."""
    return every_s * draw(1 - ROUND_SPREAD, 1 + ROUND_SPREAD)


async def keep_current(
    pool: asyncpg.Pool, schema: str, every_s: float, stop: asyncio.Event
) -> None:
    """Analyse stale tables about every `every_s` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await analyse_stale(pool, schema)
        except Exception as exc:  # a database away for a while: look again next round
            log.warning("statistics refresh failed", schema=schema, error=str(exc))
        await wait_set(stop, next_round_in(every_s))
