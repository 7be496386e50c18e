"""Scoring's tables (facts, dirty cases, items, publications): the SQL, batch-shaped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
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

# The batch's facts, each event id once, with one statement; it returns the ids actually
# inserted (a fact already kept changes nothing). The same statement takes the transaction's
# lock on each case whose items may change ($6), in the order of the lock keys (no deadlock
# between batches): whoever re-folds a case holds it, and reads its facts and items only
# afterwards, in statements that see what the previous holder committed.
_RECORD = """
WITH f AS (
    INSERT INTO facts (event_id, case_id, type, occurred_at, data)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[])
    ON CONFLICT (event_id) DO NOTHING RETURNING event_id
), locked AS (
    SELECT pg_advisory_xact_lock(k) FROM (
        SELECT DISTINCT hashtextextended('gridloop_scoring|' || c, 0) AS k
        FROM unnest($6::text[]) AS c
    ) keys ORDER BY k
)
SELECT event_id FROM f WHERE (SELECT count(*) FROM locked) >= 0
"""
_LOCK = """
SELECT count(*) FROM (
    SELECT pg_advisory_xact_lock(k) FROM (
        SELECT DISTINCT hashtextextended('gridloop_scoring|' || c, 0) AS k
        FROM unnest($1::text[]) AS c
    ) keys ORDER BY k
) locked
"""

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
async def record_facts(conn: Conn, facts: Sequence[Fact], *, lock: Sequence[str]) -> set[str]:
    """Keep the facts not kept yet and lock the cases `lock`; the event ids inserted."""
    rows = await conn.fetch(
        _RECORD,
        [f.event_id for f in facts],
        [f.case_id for f in facts],
        [f.type for f in facts],
        [f.occurred_at for f in facts],
        [dict(f.data) for f in facts],
        list(lock),
    )
    return {r["event_id"] for r in rows}


async def lock_cases(conn: Conn, case_ids: Sequence[str]) -> None:
    """The transaction's lock on each case, as `record_facts` takes it."""
    await conn.fetchval(_LOCK, list(case_ids))


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


# -- items ---------------------------------------------------------------------------------
# The stored items of some cases (each with its row's ctid) and the facts of some of them, in
# one round trip: a fact row has no ctid.
_ITEMS_AND_FACTS = """
SELECT NULL::tid AS ctid, case_id, event_id, type, occurred_at AS at, data,
       NULL::text AS subject_kind, NULL::text AS subject_code, NULL::text AS measure,
       NULL::float8 AS value, NULL::text AS community_code, NULL::text AS subdistrict_code
FROM facts WHERE case_id = ANY($2::text[])
UNION ALL
SELECT ctid, case_id, NULL, NULL, at, NULL, subject_kind, subject_code, measure, value,
       community_code, subdistrict_code
FROM items WHERE case_id = ANY($1::text[])
"""


async def items_and_facts(
    conn: Conn, item_cases: Sequence[str], fact_cases: Sequence[str]
) -> tuple[dict[str, list[tuple[Any, Item]]], list[Fact]]:
    """The stored items of `item_cases`, each with its row's ctid (to delete exactly that
    row: the case is locked, so its rows stay where they are until the transaction ends),
    and the facts of `fact_cases`."""
    rows = await conn.fetch(_ITEMS_AND_FACTS, list(item_cases), list(fact_cases))
    items: dict[str, list[tuple[Any, Item]]] = {}
    facts: list[Fact] = []
    for r in rows:
        case_id = r["case_id"]
        if r["ctid"] is None:
            facts.append(Fact(r["event_id"], case_id, r["type"], r["at"], r["data"]))
            continue
        item = Item(
            case_id,
            r["subject_kind"],
            r["subject_code"],
            r["measure"],
            r["at"],
            r["value"],
            r["community_code"],
            r["subdistrict_code"],
        )
        items.setdefault(case_id, []).append((r["ctid"], item))
    return items, facts


async def change_items(conn: Conn, drop: Sequence[Any], add: Sequence[Item]) -> None:
    """Delete the rows `drop` (ctids) and insert `add`: one statement each, when needed."""
    if drop:
        await conn.execute("DELETE FROM items WHERE ctid = ANY($1::tid[])", list(drop))
    if add:
        columns = list(zip(*add, strict=True))
        await conn.execute(
            f"INSERT INTO items ({', '.join(ITEM_COLUMNS)}) SELECT * FROM unnest($1::text[], "
            "$2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::float8[], $7::text[], "
            "$8::text[])",
            *(list(c) for c in columns),
        )


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


async def values(
    conn: Conn,
    kind: SubjectKind,
    start: dt.datetime,
    end: dt.datetime,
    measures: Sequence[str],
    *,
    level: AreaLevel | None = None,
    district: str = "",
    subject: str | None = None,
    pooled: bool = False,
) -> dict[str, dict[str, list[float]]]:
    """subject → measure → the item values over [start, end), ascending (a distribution's
    occasions); `pooled`: every subject of the kind together, under the key ''."""
    if not measures:
        return {}
    col = "''::text" if pooled else _subject_sql(kind, level)
    rows = await conn.fetch(
        f"SELECT {col} AS code, measure, array_agg(value ORDER BY value) AS vals FROM items "
        "WHERE subject_kind = $1 AND at >= $2 AND at < $3 AND $4::text IS NOT NULL "
        f"AND ($5::text IS NULL OR {_subject_sql(kind, level)} = $5) "
        "AND measure = ANY($6::text[]) "
        f"GROUP BY {col}, measure",
        kind,
        start,
        end,
        district,
        subject,
        list(measures),
    )
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["code"] is None or (r["code"] == "" and not pooled):
            continue
        out.setdefault(r["code"], {})[r["measure"]] = [float(v) for v in r["vals"]]
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


async def worst_cases(
    conn: Conn, start: dt.datetime, end: dt.datetime, marks: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    """The cases with the most marks (overdue, reworked, falsified …) against a department in
    [start, end): case, department and each mark's count, the most marked first."""
    rows = await conn.fetch(
        "SELECT case_id, subject_code AS dept, "
        "jsonb_object_agg(measure, n) AS marks, sum(n) AS total FROM ("
        "  SELECT case_id, subject_code, measure, count(*) AS n FROM items "
        "  WHERE subject_kind = 'department' AND measure = ANY($3::text[]) "
        "  AND at >= $1 AND at < $2 GROUP BY case_id, subject_code, measure"
        ") m GROUP BY case_id, subject_code ORDER BY total DESC, case_id LIMIT $4",
        start,
        end,
        list(marks),
        limit,
    )
    return [dict(r) for r in rows]


# -- the rules in force over time (rule_versions) -----------------------------------------
async def record_rules(
    conn: Conn, *, digest: str, version: str, at: dt.datetime, rules: dict[str, Any]
) -> bool:
    """Note that `rules` are in force from `at`, unless they already are (the latest row has
    their digest). True when a row was added."""
    added = await conn.fetchval(
        "INSERT INTO rule_versions (digest, version, in_force_from, rules) "
        "SELECT $1, $2, $3, $4 WHERE (SELECT digest FROM rule_versions "
        "ORDER BY in_force_from DESC, id DESC LIMIT 1) IS DISTINCT FROM $1 RETURNING id",
        digest,
        version,
        at,
        rules,
    )
    return added is not None


async def rules_in_force(conn: Conn, at: dt.datetime) -> tuple[str, dict[str, Any]] | None:
    """(digest, rules) of the rules in force at `at`: the latest row from before it, else
    the first ever recorded (the rules the service first ran on); None when none is."""
    row = await conn.fetchrow(
        "(SELECT digest, rules, 0 AS o FROM rule_versions WHERE in_force_from <= $1 "
        " ORDER BY in_force_from DESC, id DESC LIMIT 1) "
        "UNION ALL (SELECT digest, rules, 1 FROM rule_versions ORDER BY in_force_from, id LIMIT 1) "
        "ORDER BY o LIMIT 1",
        at,
    )
    return (row["digest"], row["rules"]) if row is not None else None


async def rule_history(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT digest, version, in_force_from FROM rule_versions ORDER BY in_force_from, id"
    )
    return [dict(r) for r in rows]
