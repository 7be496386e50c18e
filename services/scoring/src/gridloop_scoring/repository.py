"""Scoring's tables (facts, dirty cases, items, publications): the SQL, batch-shaped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from gridloop_runtime.db import Conn

from .domain.facts import Fact
from .domain.fold import Item
from .domain.measures import AreaLevel, SubjectKind

ITEM_COLUMNS = (
    "case_id",
    "subject_kind",
    "subject_code",
    "measure",
    "at",
    "value",
    "community_code",
    "subdistrict_code",
)
FACT_COLUMNS = ("event_id", "case_id", "type", "occurred_at", "data")

# One round trip per event: the fact (once), the case marked for folding, and the fold woken
# (NOTIFY is delivered at commit, once per transaction). The upsert on dirty_cases takes the
# row lock, so a concurrent fold skips the case until this transaction commits.
_RECORD = """
WITH f AS (
    INSERT INTO facts (event_id, case_id, type, occurred_at, data)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING RETURNING case_id
)
, d AS (
    INSERT INTO dirty_cases (case_id) SELECT case_id FROM f
    ON CONFLICT (case_id) DO UPDATE SET version = dirty_cases.version + 1 RETURNING case_id
)
SELECT pg_notify('gridloop_scoring_dirty', '') FROM d
"""

NOTIFY_CHANNEL = "gridloop_scoring_dirty"

# Which column holds an area's code at each level (the district is every area row).
_LEVEL_COLUMN: dict[str, str] = {
    "cell": "subject_code",
    "community": "community_code",
    "subdistrict": "subdistrict_code",
}


def _subject_sql(kind: SubjectKind, level: AreaLevel | None) -> str:
    if kind != "area" or level is None:
        return "subject_code"
    return _LEVEL_COLUMN.get(level, "$4::text")


# -- facts ---------------------------------------------------------------------------------
async def record_fact(conn: Conn, fact: Fact) -> None:
    await conn.execute(
        _RECORD, fact.event_id, fact.case_id, fact.type, fact.occurred_at, dict(fact.data)
    )


def _fact(r: Any) -> Fact:
    return Fact(r["event_id"], r["case_id"], r["type"], r["occurred_at"], r["data"])


async def facts_of(conn: Conn, case_ids: Sequence[str]) -> list[Fact]:
    rows = await conn.fetch(
        "SELECT event_id, case_id, type, occurred_at, data FROM facts "
        "WHERE case_id = ANY($1::text[])",
        list(case_ids),
    )
    return [_fact(r) for r in rows]


async def facts_received_since(conn: Conn, since: dt.datetime) -> list[Fact]:
    rows = await conn.fetch(
        "SELECT event_id, case_id, type, occurred_at, data FROM facts WHERE received_at >= $1",
        since,
    )
    return [_fact(r) for r in rows]


async def fact_count(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM facts"))


async def db_now(conn: Conn) -> dt.datetime:
    now: dt.datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now


# -- the fold's queue --------------------------------------------------------------------
async def claim_dirty(conn: Conn, limit: int) -> list[str]:
    """Take up to `limit` changed cases; rows another transaction holds are left for later."""
    rows = await conn.fetch(
        "DELETE FROM dirty_cases WHERE case_id IN (SELECT case_id FROM dirty_cases "
        "LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING case_id",
        limit,
    )
    return [r["case_id"] for r in rows]


async def dirty_count(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM dirty_cases"))


# -- items ---------------------------------------------------------------------------------
async def replace_items(conn: Conn, case_ids: Sequence[str], items: Iterable[Item]) -> None:
    """The cases' items are exactly `items` afterwards."""
    await conn.execute("DELETE FROM items WHERE case_id = ANY($1::text[])", list(case_ids))
    await copy_items(conn, "items", items)


async def copy_items(conn: Conn, table: str, items: Iterable[Item]) -> None:
    records = list(items)
    if records:
        await conn.copy_records_to_table(table, records=records, columns=list(ITEM_COLUMNS))


async def totals(
    conn: Conn,
    kind: SubjectKind,
    start: dt.datetime,
    end: dt.datetime,
    *,
    level: AreaLevel | None = None,
    district: str = "",
    subject: str | None = None,
    measures: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """subject → measure → sum over [start, end)."""
    col = _subject_sql(kind, level)
    rows = await conn.fetch(
        f"SELECT {col} AS code, measure, sum(value) AS total FROM items "
        "WHERE subject_kind = $1 AND at >= $2 AND at < $3 AND $4::text IS NOT NULL "
        f"AND ($5::text IS NULL OR {col} = $5) "
        "AND ($6::text[] IS NULL OR measure = ANY($6::text[])) "
        f"GROUP BY {col}, measure",
        kind,
        start,
        end,
        district,
        subject,
        list(measures) if measures is not None else None,
    )
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["code"] is None or r["code"] == "":
            continue
        out.setdefault(r["code"], {})[r["measure"]] = float(r["total"])
    return out


async def drilldown(
    conn: Conn,
    kind: SubjectKind,
    subject: str,
    measures: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    *,
    level: AreaLevel | None = None,
    district: str = "",
) -> list[dict[str, Any]]:
    """The items behind a number: case, measure, instant and value, oldest first."""
    col = _subject_sql(kind, level)
    rows = await conn.fetch(
        "SELECT case_id, measure, at, value FROM items WHERE subject_kind = $1 "
        f"AND measure = ANY($6::text[]) AND at >= $2 AND at < $3 AND {col} = $5 "
        "AND $4::text IS NOT NULL ORDER BY at, case_id, measure",
        kind,
        start,
        end,
        district,
        subject,
        list(measures),
    )
    return [dict(r) for r in rows]


# -- publications --------------------------------------------------------------------------
async def save_publication(
    conn: Conn,
    *,
    period_kind: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
    rule_set: str,
    level: str,
    event_id: str,
    published_at: dt.datetime,
    body: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO publications (period_kind, period_start, period_end, rule_set, level, "
        "event_id, published_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (period_kind, period_start, rule_set, level) DO UPDATE SET "
        "event_id = EXCLUDED.event_id, published_at = EXCLUDED.published_at, "
        "body = EXCLUDED.body",
        period_kind,
        period_start,
        period_end,
        rule_set,
        level,
        event_id,
        published_at,
        body,
    )


async def publications(conn: Conn, period_kind: str | None, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT period_kind, period_start, period_end, rule_set, level, event_id, "
        "published_at, body FROM publications WHERE ($1::text IS NULL OR period_kind = $1) "
        "ORDER BY period_start DESC, period_kind, rule_set, level LIMIT $2",
        period_kind,
        limit,
    )
    return [dict(r) for r in rows]


async def timer_exists(conn: Conn, kind: str, key: str) -> bool:
    """Whether a timer (kind, key) was ever set: `timers.schedule` would re-arm a fired one."""
    return bool(await conn.fetchval("SELECT 1 FROM timers WHERE kind = $1 AND key = $2", kind, key))


# -- the rebuild's scratch tables and swap ---------------------------------------------
async def create_scratch(conn: Conn, facts: str, items: str) -> None:
    """Temporary tables for a replayed projection (dropped at commit): the facts as COPY
    brings them (data as the event's JSON bytes: the pool's jsonb codec is text-only, which
    binary COPY cannot use) and the items, both without indexes while they fill."""
    await conn.execute(
        f"CREATE TEMP TABLE {facts} (event_id text, case_id text, type text, "
        "occurred_at timestamptz, data bytea) ON COMMIT DROP"
    )
    await conn.execute(f"CREATE TEMP TABLE {items} (LIKE items) ON COMMIT DROP")


async def copy_scratch(
    conn: Conn,
    facts_table: str,
    items_table: str,
    facts: Sequence[tuple[Any, ...]],
    items: Sequence[Item],
) -> None:
    """One chunk of a replayed projection, by binary COPY: facts as whole rows, or as their
    event ids only (1-tuples) where nothing will be swapped in."""
    if facts:
        columns = list(FACT_COLUMNS[: len(facts[0])])
        await conn.copy_records_to_table(facts_table, records=facts, columns=columns)
    if items:
        await conn.copy_records_to_table(items_table, records=items, columns=list(ITEM_COLUMNS))


async def swap_in(conn: Conn, facts: str, items: str) -> None:
    """Inside the caller's transaction: the replayed facts and items replace the live ones.

    The tables' indexes and primary key are dropped and built again after the bulk insert
    (from their own definitions): one sort per index instead of a million index insertions.
    The replayed facts carry each event id once, so the primary key holds."""
    await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    await conn.execute("TRUNCATE facts, items, dirty_cases")
    keys = await conn.fetch(
        "SELECT conrelid::regclass::text AS tab, conname, pg_get_constraintdef(oid) AS def "
        "FROM pg_constraint WHERE conrelid IN ('facts'::regclass, 'items'::regclass) "
        "AND contype IN ('p', 'u')"
    )
    indexes = await conn.fetch(
        "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def "
        "FROM pg_index WHERE indrelid IN ('facts'::regclass, 'items'::regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = indexrelid)"
    )
    for k in keys:
        await conn.execute(f'ALTER TABLE {k["tab"]} DROP CONSTRAINT "{k["conname"]}"')
    for i in indexes:
        await conn.execute(f"DROP INDEX {i['name']}")
    await conn.execute(
        "INSERT INTO facts (event_id, case_id, type, occurred_at, data) "
        "SELECT event_id, case_id, type, occurred_at, convert_from(data, 'UTF8')::jsonb "
        f"FROM {facts}"
    )
    await conn.execute(f"INSERT INTO items SELECT * FROM {items}")
    for k in keys:
        await conn.execute(f'ALTER TABLE {k["tab"]} ADD CONSTRAINT "{k["conname"]}" {k["def"]}')
    for i in indexes:
        await conn.execute(i["def"])
