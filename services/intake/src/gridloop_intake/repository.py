"""SQL of the intake schema: cases, reports, reporters, camera scenes, timeline, archive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import asyncpg
from gridloop_contracts import CaseStatus
from gridloop_runtime.db import Conn

from .domain.duplicates import OpenCase

CLOSED_STATES = [CaseStatus.CLOSED.value, CaseStatus.REJECTED.value, CaseStatus.MERGED.value]


@dataclass
class CaseRow:
    """A case as intake keeps it (the columns handlers need)."""

    case_id: str
    status: str
    status_notes: str | None
    channel: str
    source: str
    external_id: str | None
    report_id: str
    category_code: str | None
    urgency: str
    description: str
    cell_code: str
    community_code: str
    subdistrict_code: str
    lon: float
    lat: float
    located_by: str
    address: str | None
    part_code: str | None
    part_owner_dept: str | None
    camera_id: str | None
    confidence: float | None
    reporter: dict[str, Any] | None
    reporter_user_id: str | None
    attachments: list[dict[str, Any]]
    reported_at: datetime
    received_at: datetime
    updated_at: datetime
    queue_reason: str | None = None
    proposal: dict[str, Any] | None = None
    accepted_at: datetime | None = None
    dept: str | None = None
    task_id: str | None = None
    deadline: datetime | None = None
    overdue: bool = False
    ever_overdue: bool = False
    reworks: int = 0
    closed_at: datetime | None = None
    on_time: bool | None = None
    archived: bool = False
    rating: str | None = None
    reports: int = 1
    detections: int = 0
    targets: list[list[str]] | None = None

    @property
    def case_status(self) -> CaseStatus:
        return CaseStatus(self.status)

    @classmethod
    def of(cls, rec: asyncpg.Record) -> CaseRow:
        return cls(**{f.name: rec[f.name] for f in fields(cls)})

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_CASE_COLUMNS = [f.name for f in fields(CaseRow)]
_INSERT_CASE = (
    f"INSERT INTO cases ({', '.join(_CASE_COLUMNS)}) VALUES "
    f"({', '.join(f'${i}' for i in range(1, len(_CASE_COLUMNS) + 1))})"
)
# Columns an event or a decision may set (the whitelist for the dynamic UPDATE).
UPDATABLE = frozenset(
    {
        "category_code",
        "urgency",
        "queue_reason",
        "proposal",
        "accepted_at",
        "dept",
        "task_id",
        "deadline",
        "overdue",
        "ever_overdue",
        "reworks",
        "closed_at",
        "on_time",
        "archived",
        "rating",
        "part_owner_dept",
    }
)


# -- case numbers ---------------------------------------------------------------------------
async def next_case_number(conn: Conn, day: date) -> int:
    """The day's next number. The row lock serialises openers of the same day until commit:
    numbers are gap-free per day, at the price of one short queue at the counter."""
    n: int = await conn.fetchval(
        "INSERT INTO case_numbers (day, last) VALUES ($1, 1) ON CONFLICT (day) "
        "DO UPDATE SET last = case_numbers.last + 1 RETURNING last",
        day,
    )
    return n


# -- reports ----------------------------------------------------------------------------------
async def find_report(conn: Conn, source: str, external_id: str) -> asyncpg.Record | None:
    """The report already taken under (source, external_id), with its case's status."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT r.report_id, r.case_id, r.outcome, c.status, c.status_notes FROM reports r "
        "JOIN cases c USING (case_id) WHERE r.source = $1 AND r.external_id = $2",
        source,
        external_id,
    )
    return row


async def report_by_id(conn: Conn, report_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT r.report_id, r.case_id, r.outcome, r.source, r.external_id, r.channel, "
        "r.received_at, c.status, c.status_notes FROM reports r JOIN cases c USING (case_id) "
        "WHERE r.report_id = $1",
        report_id,
    )
    return row


async def insert_report(
    conn: Conn,
    *,
    report_id: str,
    source: str,
    external_id: str | None,
    channel: str,
    case_id: str,
    outcome: str,
    reported_at: datetime,
    received_at: datetime,
    camera_id: str | None,
    confidence: float | None,
    data: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO reports (report_id, source, external_id, channel, case_id, outcome, "
        "reported_at, received_at, camera_id, confidence, data) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        report_id,
        source,
        external_id,
        channel,
        case_id,
        outcome,
        reported_at,
        received_at,
        camera_id,
        confidence,
        data,
    )


async def insert_reporter(
    conn: Conn,
    *,
    ref: str,
    report_id: str,
    name: str | None,
    phone: str | None,
    email: str | None,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO reporters (ref, report_id, name, phone, email, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        ref,
        report_id,
        name,
        phone,
        email,
        at,
    )


async def reporters_of(conn: Conn, case_id: str) -> list[asyncpg.Record]:
    """Everybody who reported this case, with their identity (operators only)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT r.report_id, r.source, r.external_id, r.channel, r.outcome, r.received_at, "
        "p.ref, p.name, p.phone, p.email FROM reports r LEFT JOIN reporters p USING (report_id) "
        "WHERE r.case_id = $1 AND r.outcome <> 'folded' ORDER BY r.seq",
        case_id,
    )
    return rows


# -- duplicates -------------------------------------------------------------------------------
async def lock_category(conn: Conn, category_code: str) -> None:
    """Reports of one category are deduplicated one at a time (until commit), so two copies
    of the same report arriving together cannot both open a case."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('intake-dedupe'), hashtext($1))", category_code
    )


async def open_cases_near(
    conn: Conn,
    category_code: str,
    box: tuple[float, float, float, float],
    since: datetime,
    until: datetime,
) -> list[OpenCase]:
    min_lon, min_lat, max_lon, max_lat = box
    rows = await conn.fetch(
        "SELECT case_id, lon, lat, reported_at, part_code FROM cases "
        "WHERE category_code = $1 AND status <> ALL($2::text[]) "
        "AND lat BETWEEN $3 AND $4 AND lon BETWEEN $5 AND $6 AND reported_at BETWEEN $7 AND $8",
        category_code,
        CLOSED_STATES,
        min_lat,
        max_lat,
        min_lon,
        max_lon,
        since,
        until,
    )
    return [
        OpenCase(r["case_id"], r["lon"], r["lat"], r["reported_at"], r["part_code"]) for r in rows
    ]


async def camera_scene(
    conn: Conn, camera_id: str, category_code: str
) -> tuple[str, datetime] | None:
    """The open case this camera's view of the category folds into, and when it was last seen."""
    row = await conn.fetchrow(
        "SELECT s.case_id, s.last_detected_at FROM camera_scenes s JOIN cases c USING (case_id) "
        "WHERE s.camera_id = $1 AND s.category_code = $2 AND c.status <> ALL($3::text[])",
        camera_id,
        category_code,
        CLOSED_STATES,
    )
    return None if row is None else (row["case_id"], row["last_detected_at"])


async def see_scene(
    conn: Conn, camera_id: str, category_code: str, case_id: str, detected_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO camera_scenes (camera_id, category_code, case_id, last_detected_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (camera_id, category_code) DO UPDATE SET "
        "case_id = EXCLUDED.case_id, last_detected_at = CASE WHEN camera_scenes.case_id = "
        "EXCLUDED.case_id THEN greatest(camera_scenes.last_detected_at, EXCLUDED.last_detected_at) "
        "ELSE EXCLUDED.last_detected_at END",
        camera_id,
        category_code,
        case_id,
        detected_at,
    )


async def fold_detection(conn: Conn, case_id: str) -> None:
    await conn.execute("UPDATE cases SET detections = detections + 1 WHERE case_id = $1", case_id)


async def add_reporter(conn: Conn, case_id: str, target: list[str] | None) -> CaseRow | None:
    """A merged report joins the case: one more report, and its sender told from now on."""
    row = await conn.fetchrow(
        "UPDATE cases SET reports = reports + 1, targets = CASE WHEN $2::jsonb IS NULL "
        "THEN targets ELSE targets || jsonb_build_array($2::jsonb) END "
        "WHERE case_id = $1 RETURNING *",
        case_id,
        target,
    )
    return None if row is None else CaseRow.of(row)


# -- cases ------------------------------------------------------------------------------------
async def insert_case(conn: Conn, case: CaseRow) -> None:
    await conn.execute(_INSERT_CASE, *case.values().values())


async def get_case(conn: Conn, case_id: str, *, for_update: bool = False) -> CaseRow | None:
    sql = "SELECT * FROM cases WHERE case_id = $1" + (" FOR UPDATE" if for_update else "")
    row = await conn.fetchrow(sql, case_id)
    return None if row is None else CaseRow.of(row)


async def update_case(
    conn: Conn,
    case_id: str,
    *,
    at: datetime,
    status: str | None = None,
    notes: str | None = None,
    columns: dict[str, Any] | None = None,
) -> CaseRow | None:
    """Set the status (if given), notes and whitelisted columns; the case after, or None."""
    sets = ["updated_at = $2"]
    args: list[Any] = [case_id, at]
    if status is not None:
        args.append(status)
        sets.append(f"status = ${len(args)}")
        args.append(notes)
        sets.append(f"status_notes = ${len(args)}")
    for name, value in (columns or {}).items():
        if name not in UPDATABLE:
            raise ValueError(f"column {name!r} is not updatable")
        args.append(value)
        sets.append(f"{name} = ${len(args)}")
    row = await conn.fetchrow(
        f"UPDATE cases SET {', '.join(sets)} WHERE case_id = $1 RETURNING *", *args
    )
    return None if row is None else CaseRow.of(row)


# -- timeline and archive -----------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One line of a case's timeline."""

    case_id: str
    type: str
    occurred_at: datetime
    summary: str
    data: dict[str, Any]
    event_id: str | None = None
    actor: dict[str, Any] | None = None
    status: str | None = None


async def add_entries(conn: Conn, entries: Sequence[Entry], at: datetime) -> None:
    if not entries:
        return
    await conn.executemany(
        "INSERT INTO timeline (case_id, event_id, type, occurred_at, recorded_at, actor, status, "
        "summary, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING",
        [
            (
                e.case_id,
                e.event_id,
                e.type,
                e.occurred_at,
                at,
                e.actor,
                e.status,
                e.summary,
                e.data,
            )
            for e in entries
        ],
    )


async def timeline(conn: Conn, case_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT seq, event_id, type, occurred_at, recorded_at, actor, status, summary, data "
        "FROM timeline WHERE case_id = $1 ORDER BY seq",
        case_id,
    )
    return rows


async def archive(conn: Conn, case_id: str, closed_at: datetime) -> None:
    """结单归档: the case and its whole timeline, as they stood at closing."""
    await conn.execute(
        """
        INSERT INTO archive (case_id, closed_at, category_code, cell_code, community_code,
                             subdistrict_code, lon, lat, dept, on_time, case_data, timeline)
        SELECT c.case_id, $2, c.category_code, c.cell_code, c.community_code, c.subdistrict_code,
               c.lon, c.lat, c.dept, c.on_time, to_jsonb(c) - 'targets',
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                   'type', t.type, 'occurred_at', t.occurred_at, 'actor', t.actor,
                   'status', t.status, 'summary', t.summary, 'event_id', t.event_id)
                   ORDER BY t.seq) FROM timeline t WHERE t.case_id = c.case_id), '[]'::jsonb)
        FROM cases c WHERE c.case_id = $1
        ON CONFLICT (case_id) DO UPDATE SET closed_at = EXCLUDED.closed_at,
            dept = EXCLUDED.dept, on_time = EXCLUDED.on_time,
            case_data = EXCLUDED.case_data, timeline = EXCLUDED.timeline
        """,
        case_id,
        closed_at,
    )
    await conn.execute("UPDATE cases SET archived = true WHERE case_id = $1", case_id)


async def similar(
    conn: Conn,
    category_code: str,
    box: tuple[float, float, float, float],
    exclude: str,
    limit: int,
) -> list[asyncpg.Record]:
    min_lon, min_lat, max_lon, max_lat = box
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT case_id, closed_at, category_code, cell_code, lon, lat, dept, on_time, "
        "case_data->>'description' AS description, case_data->>'rating' AS rating "
        "FROM archive WHERE category_code = $1 AND lat BETWEEN $2 AND $3 "
        "AND lon BETWEEN $4 AND $5 AND case_id <> $6 ORDER BY closed_at DESC LIMIT $7",
        category_code,
        min_lat,
        max_lat,
        min_lon,
        max_lon,
        exclude,
        limit,
    )
    return rows


async def archived(conn: Conn, case_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM archive WHERE case_id = $1", case_id
    )
    return row


# -- ratings --------------------------------------------------------------------------------------
async def add_rating(
    conn: Conn,
    *,
    case_id: str,
    closed_at: datetime,
    rating: str,
    comment: str | None,
    via: str,
    at: datetime,
) -> bool:
    """False when this closing of the case was already rated."""
    status: str = await conn.execute(
        "INSERT INTO ratings (case_id, closed_at, rating, comment, via, rated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        case_id,
        closed_at,
        rating,
        comment,
        via,
        at,
    )
    return status.endswith(" 1")


# -- rejections ----------------------------------------------------------------------------------
async def add_rejection(
    conn: Conn,
    *,
    at: datetime,
    subject: str,
    source: str,
    channel: str | None,
    message_id: str | None,
    external_id: str | None,
    type: str | None,
    errors: list[dict[str, str]],
    headers: dict[str, str] | None,
    body: bytes | None,
) -> None:
    await conn.execute(
        "INSERT INTO rejections (received_at, subject, source, channel, message_id, external_id, "
        "type, errors, headers, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        at,
        subject,
        source,
        channel,
        message_id,
        external_id,
        type,
        errors,
        headers,
        body,
    )


async def rejections(
    conn: Conn, *, source: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, received_at, subject, source, channel, message_id, external_id, type, errors "
        "FROM rejections WHERE ($1::text IS NULL OR source = $1) "
        "ORDER BY id DESC LIMIT $2 OFFSET $3",
        source,
        limit,
        offset,
    )
    return rows


# -- search ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseQuery:
    """Filters of the case search; every one optional. Territory prefixes and the department
    come from the caller's role, not from the request."""

    statuses: Sequence[str] = ()
    categories: Sequence[str] = ()
    cell: str | None = None
    community: str | None = None
    subdistrict: str | None = None
    dept: str | None = None
    reported_from: datetime | None = None
    reported_to: datetime | None = None
    updated_from: datetime | None = None
    overdue: bool | None = None
    archived: bool | None = None
    open: bool | None = None
    queue: bool = False
    queue_reasons: Sequence[str] = ()
    text: str | None = None
    case_ids: Sequence[str] = ()
    territory: Sequence[str] = ()  # code prefixes; empty = everywhere
    only_dept: str | None = None
    limit: int = 50
    offset: int = 0
    oldest_first: bool = False


async def search(conn: Conn, q: CaseQuery) -> tuple[list[CaseRow], int]:
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if q.statuses:
        where.append(f"status = ANY({arg(list(q.statuses))}::text[])")
    if q.categories:
        where.append(f"category_code = ANY({arg(list(q.categories))}::text[])")
    if q.cell:
        where.append(f"cell_code = {arg(q.cell)}")
    if q.community:
        where.append(f"community_code = {arg(q.community)}")
    if q.subdistrict:
        where.append(f"subdistrict_code = {arg(q.subdistrict)}")
    if q.dept:
        where.append(f"dept = {arg(q.dept)}")
    if q.only_dept:
        where.append(f"dept = {arg(q.only_dept)}")
    if q.reported_from:
        where.append(f"reported_at >= {arg(q.reported_from)}")
    if q.reported_to:
        where.append(f"reported_at < {arg(q.reported_to)}")
    if q.updated_from:
        where.append(f"updated_at >= {arg(q.updated_from)}")
    if q.overdue is not None:
        where.append(f"overdue = {arg(q.overdue)}")
    if q.archived is not None:
        where.append(f"archived = {arg(q.archived)}")
    if q.open is not None:
        op = "<> ALL" if q.open else "= ANY"
        where.append(f"status {op}({arg(CLOSED_STATES)}::text[])")
    if q.queue:
        where.append(f"status = {arg(CaseStatus.PENDING_ACCEPTANCE.value)}")
    if q.queue_reasons:
        where.append(f"queue_reason = ANY({arg(list(q.queue_reasons))}::text[])")
    if q.text:
        where.append(f"description ILIKE '%' || {arg(q.text)} || '%'")
    if q.case_ids:
        where.append(f"case_id = ANY({arg(list(q.case_ids))}::text[])")
    if q.territory:
        where.append(f"cell_code LIKE ANY({arg([t + '%' for t in q.territory])}::text[])")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total: int = await conn.fetchval(f"SELECT count(*) FROM cases {clause}", *args)
    order = "ASC" if q.oldest_first else "DESC"
    rows = await conn.fetch(
        f"SELECT * FROM cases {clause} ORDER BY received_at {order}, case_id {order} "
        f"LIMIT {arg(q.limit)} OFFSET {arg(q.offset)}",
        *args,
    )
    return [CaseRow.of(r) for r in rows], total
