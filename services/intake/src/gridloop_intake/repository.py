"""SQL of the intake schema outside the case store (store.py): the day's counter, the
duplicate search, camera scenes, reads for the API, rejected messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from gridloop_contracts import AttachmentRef, CaseStatus
from gridloop_runtime.access import like_prefixes
from gridloop_runtime.db import Conn
from gridloop_runtime.writes import Writes

from .domain.callbacks import Callback
from .domain.case import PUBLIC_CHANNELS, CaseRow
from .domain.duplicates import NearSearch, OpenCase

CLOSED_STATES = [CaseStatus.CLOSED.value, CaseStatus.REJECTED.value, CaseStatus.MERGED.value]
# The same as a literal, for queries that must match the partial index `cases_open_near`
# (a predicate over a parameter cannot prove the index's WHERE, so the planner would not use it).
_STILL_OPEN = "status NOT IN ({})".format(", ".join(f"'{s}'" for s in CLOSED_STATES))


# -- case numbers ---------------------------------------------------------------------------
# The day's counter moved on by the count each row of `{0}` gives (day, count); the new last.
_TAKE_NUMBERS = (
    "INSERT INTO case_numbers (day, last) {0} ON CONFLICT (day) "
    "DO UPDATE SET last = case_numbers.last + EXCLUDED.last RETURNING last"
)


async def take_case_numbers(conn: Conn, day: date, count: int) -> int:
    """`count` numbers of the day at once (the last of them is returned): a batch of reports
    queues at the counter once. What it leaves unused it gives back before it commits
    (`give_back_case_numbers`), while it still holds the row, so numbers stay gap-free."""
    n: int = await conn.fetchval(_TAKE_NUMBERS.format("VALUES ($1, $2)"), day, count)
    return n


def give_back_case_numbers(writes: Writes, day: date, last: int, count: int) -> None:
    """The last `count` numbers of those taken, up to `last`, unused: the counter goes back,
    with the unit of work's other writes."""

    def check(returned: tuple[Any, ...]) -> None:
        if not returned[0]:  # the row is ours until commit: anything else is a bug, not a race
            raise RuntimeError(f"case numbers of {day} moved while reserved")

    writes.add(
        "UPDATE case_numbers SET last = last - $3 WHERE day = $1 AND last = $2 RETURNING last",
        day,
        last,
        count,
        returns=("count(*)",),
        check=check,
    )


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


_REPORTS_OF = (
    "SELECT r.source, r.external_id, r.report_id, r.case_id, r.outcome, c.status, "
    "c.status_notes FROM unnest(${0}::text[], ${1}::text[]) AS k(source, external_id) "
    "JOIN reports r USING (source, external_id) JOIN cases c ON c.case_id = r.case_id"
)


async def find_reports(
    conn: Conn, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], asyncpg.Record]:
    """`find_report` for several (source, external_id) pairs in one statement."""
    rows = await conn.fetch(_REPORTS_OF.format(1, 2), [k[0] for k in keys], [k[1] for k in keys])
    return _by_key(rows)


def _by_key(rows: Sequence[asyncpg.Record]) -> dict[tuple[str, str], asyncpg.Record]:
    """Found reports by (source, external_id); a row of NULLs (nothing found) left out."""
    return {(r["source"], r["external_id"]): r for r in rows if r["source"] is not None}


async def report_by_id(conn: Conn, report_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT r.report_id, r.case_id, r.outcome, r.source, r.external_id, r.channel, "
        "r.received_at, c.status, c.status_notes, "
        "coalesce(r.data -> 'attributes', '{}') AS attributes "  # Open311's answers
        "FROM reports r JOIN cases c USING (case_id) "
        "WHERE r.report_id = $1",
        report_id,
    )
    return row


async def report_sender(conn: Conn, report_id: str) -> str | None:
    """The supervisor who sent a patrol report (None for other channels)."""
    sender: str | None = await conn.fetchval(
        "SELECT data ->> 'reporter_user_id' FROM reports WHERE report_id = $1", report_id
    )
    return sender


async def reporters_of(conn: Conn, case_id: str) -> list[asyncpg.Record]:
    """Everybody who reported this case, with their identity (operators only)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT r.report_id, r.source, r.external_id, r.channel, r.outcome, r.received_at, "
        "p.ref, p.name, p.phone, p.email FROM reports r LEFT JOIN reporters p USING (report_id) "
        "WHERE r.case_id = $1 AND r.outcome <> 'folded' ORDER BY r.seq",
        case_id,
    )
    return rows


async def reporter_email(conn: Conn, ref: str) -> str | None:
    """A reporter's e-mail, for the mail to them (the address is read when a mail is sent)."""
    email: str | None = await conn.fetchval("SELECT email FROM reporters WHERE ref = $1", ref)
    return email


# -- call-backs (回访) ----------------------------------------------------------------------
async def callback_worklist(
    conn: Conn, *, closed_before: datetime, territory: Sequence[str] | None, limit: int
) -> list[asyncpg.Record]:
    """Closed hotline and web cases not rated for their closing, closed before
    `closed_before`, whose call-back is not over: oldest closing first, with the tries so far
    and every reporter to call (name, phone, e-mail)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT c.case_id, c.closed_at, c.category_code, c.description, c.channel, c.source, "
        "c.cell_code, c.dept, c.result, coalesce(b.tries, 0) AS tries, b.attempts, "
        "(SELECT coalesce(jsonb_agg(jsonb_build_object('ref', p.ref, 'name', p.name, "
        "'phone', p.phone, 'email', p.email) ORDER BY r.seq), '[]'::jsonb) "
        " FROM reports r JOIN reporters p USING (report_id) WHERE r.case_id = c.case_id) "
        "AS reporters "
        "FROM cases c LEFT JOIN callbacks b ON b.case_id = c.case_id "
        "AND b.closed_at = c.closed_at "
        "WHERE c.status = 'closed' AND c.channel IN ('hotline', 'web') "
        "AND c.closed_at <= $1 AND b.outcome IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM ratings t WHERE t.case_id = c.case_id "
        "AND t.closed_at = c.closed_at) "
        "AND ($2::text[] IS NULL OR c.cell_code LIKE ANY($2::text[])) "
        "ORDER BY c.closed_at, c.case_id LIMIT $3",
        closed_before,
        None if territory is None else like_prefixes(territory),
        limit,
    )
    return rows


async def load_callback(conn: Conn, case_id: str, closed_at: datetime) -> Callback:
    row = await conn.fetchrow(
        "SELECT tries, outcome, attempts FROM callbacks WHERE case_id = $1 AND closed_at = $2 "
        "FOR UPDATE",
        case_id,
        closed_at,
    )
    if row is None:
        return Callback(case_id, closed_at)
    return Callback(case_id, closed_at, row["tries"], row["outcome"], list(row["attempts"]))


async def save_callback(conn: Conn, cb: Callback, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO callbacks (case_id, closed_at, tries, outcome, attempts, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id, closed_at) DO UPDATE SET "
        "tries = EXCLUDED.tries, outcome = EXCLUDED.outcome, attempts = EXCLUDED.attempts, "
        "updated_at = EXCLUDED.updated_at",
        cb.case_id,
        cb.closed_at,
        cb.tries,
        cb.outcome,
        cb.attempts,
        at,
    )


# -- duplicates -------------------------------------------------------------------------------
_LOCK_CATEGORIES = (
    "SELECT count(pg_advisory_xact_lock(hashtext('intake-dedupe'), hashtext(k))) AS locked "
    "FROM (SELECT DISTINCT unnest($1::text[]) AS k ORDER BY 1) AS s"
)
# The locks and the copies in one round trip: the locks are a one-row CTE on the preserved
# side of an outer join, so they are taken whatever the lookup finds (a row of NULLs when it
# finds nothing). The lookup reads the snapshot from before the locks were granted, as a
# lookup made before them would: a copy committed meanwhile is stopped by the reports'
# unique index and answered on the retry.
_LOCK_AND_FIND = (
    f"WITH l AS ({_LOCK_CATEGORIES}) SELECT f.* FROM l LEFT JOIN "
    f"({_REPORTS_OF.format(2, 3)}) AS f ON true"
)


async def lock_categories(conn: Conn, category_codes: Sequence[str]) -> None:
    """Reports of these categories are deduplicated one transaction at a time (until
    commit), so two copies of the same report arriving together cannot both open a case.
    Locked in one statement, in one order (sorted), so two transactions locking several
    never wait for each other crosswise."""
    await conn.execute(_LOCK_CATEGORIES, list(category_codes))


async def lock_categories_and_find_reports(
    conn: Conn, category_codes: Sequence[str], keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], asyncpg.Record]:
    """`lock_categories`, then `find_reports`, in one statement."""
    rows = await conn.fetch(
        _LOCK_AND_FIND, list(category_codes), [k[0] for k in keys], [k[1] for k in keys]
    )
    return _by_key(rows)


# One search per row of the unnest, in the order given (`i`): for each, the range scan of the
# partial index `cases_open_near` (category, lat, lon), the window checked on what it finds.
# OFFSET 0 keeps the subquery apart, so the window cannot be pushed into it, where a young
# table's statistics could make the planner scan the reporting times instead.
_OPEN_NEAR_MANY = (
    "SELECT s.i, c.case_id, c.lon, c.lat, c.reported_at, c.part_code FROM unnest("
    "$1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::timestamptz[], "
    "$7::timestamptz[]) WITH ORDINALITY AS s(category_code, min_lat, max_lat, min_lon, max_lon, "
    "lo, hi, i) CROSS JOIN LATERAL (SELECT case_id, lon, lat, reported_at, part_code "
    f"FROM cases WHERE category_code = s.category_code AND {_STILL_OPEN} "
    "AND lat BETWEEN s.min_lat AND s.max_lat AND lon BETWEEN s.min_lon AND s.max_lon "
    "OFFSET 0) AS c WHERE c.reported_at BETWEEN s.lo AND s.hi"
)


# The searches (`near`) and, in the same round trip, the day's numbers for the reports whose
# search found nothing ($9: each such report's search, by its place in $1…$7): one row of
# its own (i = 0) says the counter's last number and how many were taken, none when none.
_OPEN_NEAR_AND_NUMBER = (
    f"WITH near AS ({_OPEN_NEAR_MANY}), "
    "q AS (SELECT count(*)::int AS taken FROM unnest($9::bigint[]) AS e(i) "
    "WHERE NOT EXISTS (SELECT 1 FROM near WHERE near.i = e.i)), "
    f"n AS ({_TAKE_NUMBERS.format('SELECT $8, taken FROM q WHERE taken > 0')}) "
    "SELECT 0::bigint AS i, NULL::text AS case_id, NULL::float8 AS lon, NULL::float8 AS lat, "
    "NULL::timestamptz AS reported_at, NULL::text AS part_code, "
    "(SELECT last FROM n) AS last, (SELECT taken FROM q) AS taken "
    "UNION ALL SELECT i, case_id, lon, lat, reported_at, part_code, NULL, NULL FROM near"
)


async def open_cases_near_many(
    conn: Conn,
    searches: Sequence[NearSearch],
    numbers: tuple[date, Sequence[int]] | None = None,
) -> tuple[list[list[OpenCase]], tuple[int, int] | None]:
    """`open_cases_near` for several searches in one statement: the cases of each, in order.
    With `numbers` (a day, and for each report that will open a case unless its search
    finds one, that search's place in `searches`, from 1): as many of the day's numbers as
    those searches found nothing, taken in the same statement (`take_case_numbers`);
    returned as (the last of them, how many), None when none were taken."""
    out: list[list[OpenCase]] = [[] for _ in searches]
    if not searches:
        return out, None
    args: list[Any] = [
        [s.category_code for s in searches],
        [s.box[1] for s in searches],
        [s.box[3] for s in searches],
        [s.box[0] for s in searches],
        [s.box[2] for s in searches],
        [s.since for s in searches],
        [s.until for s in searches],
    ]
    taken: tuple[int, int] | None = None
    if numbers is None:
        rows = await conn.fetch(_OPEN_NEAR_MANY, *args)
    else:
        day, opening = numbers
        rows = await conn.fetch(_OPEN_NEAR_AND_NUMBER, *args, day, list(opening))
    for r in rows:
        if r["i"] == 0:
            if r["last"] is not None:
                taken = (r["last"], r["taken"])
            continue
        out[r["i"] - 1].append(
            OpenCase(r["case_id"], r["lon"], r["lat"], r["reported_at"], r["part_code"])
        )
    return out, taken


async def open_cases_near(conn: Conn, search: NearSearch) -> list[OpenCase]:
    """The open cases one duplicate search finds."""
    return (await open_cases_near_many(conn, [search]))[0][0]


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


# -- cases ------------------------------------------------------------------------------------
async def get_case(conn: Conn, case_id: str) -> CaseRow | None:
    row = await conn.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)
    return None if row is None else CaseRow.of(row)


async def files_on_cases(conn: Conn, attachment_id: str) -> list[tuple[str, AttachmentRef]]:
    """The cases whose timeline names an attachment (any service's upload), with its
    reference as the event carried it (the partial GIN index `timeline_files`)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (t.case_id) t.case_id, f.value AS ref "
        "FROM timeline t, jsonb_array_elements(t.data -> 'files') f "
        "WHERE t.data ? 'files' AND t.data -> 'files' @> $1::jsonb "
        "AND f.value ->> 'attachment_id' = $2 ORDER BY t.case_id, t.seq",
        [{"attachment_id": attachment_id}],
        attachment_id,
    )
    return [(r["case_id"], AttachmentRef.model_validate(r["ref"])) for r in rows]


async def timeline(conn: Conn, case_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT seq, event_id, type, occurred_at, recorded_at, actor, status, summary, data "
        "FROM timeline WHERE case_id = $1 ORDER BY seq",
        case_id,
    )
    return rows


async def similar_candidates(
    conn: Conn,
    category_code: str | None,
    query: str | None,
    box: tuple[float, float, float, float],
    exclude: str,
    cap: int,
    *,
    territory: Sequence[str] | None = None,
    only_dept: str | None = None,
) -> list[asyncpg.Record]:
    """Closed cases in a box that share the category or a search term (`query`: a tsquery,
    domain/similar.py), within the reader's reach (`territory`: cell-code prefixes, None
    everywhere; `only_dept`: a department's own); the `cap` likeliest first (same category,
    then full-text rank), for the pure ranking to order. A case reopened since is not closed
    and not among them. `terms` is None while the indexer has not reached the case, and
    `terms_by` names the tokenizer that cut them."""
    min_lon, min_lat, max_lon, max_lat = box
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT a.case_id, a.closed_at, a.category_code, a.cell_code, a.lon, a.lat, a.dept, "
        "a.on_time, a.case_data->>'description' AS description, "
        "a.case_data->>'rating' AS rating, a.case_data->>'result' AS result, "
        "a.case_data->>'status_notes' AS status_notes, "
        "(a.case_data->>'reported_at')::timestamptz AS reported_at, "
        "CASE WHEN a.terms IS NULL THEN NULL ELSE tsvector_to_array(a.terms) END AS terms, "
        "a.terms_by "
        "FROM archive a JOIN cases c ON c.case_id = a.case_id AND c.status = 'closed' "
        "WHERE a.lat BETWEEN $3 AND $4 AND a.lon BETWEEN $5 AND $6 AND a.case_id <> $7 "
        "AND (a.category_code = $1 OR a.terms @@ $2::tsquery) "
        "AND ($9::text[] IS NULL OR a.cell_code LIKE ANY($9::text[])) "
        "AND ($10::text IS NULL OR a.dept = $10) "
        "ORDER BY a.category_code IS NOT DISTINCT FROM $1 DESC, "
        "coalesce(ts_rank(a.terms, $2::tsquery), 0) DESC, a.closed_at DESC LIMIT $8",
        category_code,
        query,
        min_lat,
        max_lat,
        min_lon,
        max_lon,
        exclude,
        cap,
        None if territory is None else like_prefixes(territory),
        only_dept,
    )
    return rows


async def unindexed_archive(
    conn: Conn, limit: int, tokenizer: str, others: Sequence[str]
) -> list[asyncpg.Record]:
    """Archived cases whose description has no search terms yet, oldest closing first; then
    those segmented by another tokenizer (`others`: the setting changed), newest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT case_id, case_data->>'description' AS description FROM archive "
        "WHERE terms IS NULL ORDER BY closed_at LIMIT $1",
        limit,
    )
    if len(rows) < limit and others:
        rows += await conn.fetch(
            "SELECT case_id, case_data->>'description' AS description FROM archive "
            "WHERE terms IS NOT NULL AND terms_by = ANY($2::text[]) "
            "ORDER BY terms_by, closed_at DESC LIMIT $1",
            limit - len(rows),
            list(others),
        )
    return rows


async def set_archive_terms(
    conn: Conn, found: Sequence[tuple[str, Sequence[str]]], tokenizer: str
) -> None:
    """Store the search terms of archived cases (terms hold no spaces: domain/similar.py) and
    the tokenizer that cut them."""
    await conn.execute(
        "UPDATE archive a SET terms = array_to_tsvector(string_to_array(u.terms, ' ')), "
        "terms_by = $3 "
        "FROM unnest($1::text[], $2::text[]) AS u(case_id, terms) WHERE a.case_id = u.case_id",
        [case_id for case_id, _ in found],
        [" ".join(terms) for _, terms in found],
        tokenizer,
    )


async def archived(conn: Conn, case_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM archive WHERE case_id = $1", case_id
    )
    return row


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
    part_code: str | None = None
    territory: Sequence[str] | None = None  # cell-code prefixes; None: everywhere, (): nowhere
    only_dept: str | None = None
    public_only: bool = False  # Open311's public list: the cases listed publicly only
    limit: int = 50
    offset: int = 0
    oldest_first: bool = False
    # the grid head's attention: overdue, or sent back to the department (返工, reopened);
    # listed most overdue first (the earliest deadline)
    attention: bool = False


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
    if q.part_code:
        where.append(f"part_code = {arg(q.part_code)}")
    if q.territory is not None:
        where.append(f"cell_code LIKE ANY({arg(like_prefixes(q.territory))}::text[])")
    if q.public_only:  # CaseRow.listed_publicly
        where.append(f"coalesce(public, channel = ANY({arg(list(PUBLIC_CHANNELS))}::text[]))")
    if q.attention:
        where.append(f"(overdue OR status = {arg(CaseStatus.REWORKING.value)})")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total: int = await conn.fetchval(f"SELECT count(*) FROM cases {clause}", *args)
    order = "ASC" if q.oldest_first else "DESC"
    ordering = f"received_at {order}, case_id {order}"
    if q.attention:
        ordering = "deadline ASC NULLS LAST, case_id"
    rows = await conn.fetch(
        f"SELECT * FROM cases {clause} ORDER BY {ordering} "
        f"LIMIT {arg(q.limit)} OFFSET {arg(q.offset)}",
        *args,
    )
    return [CaseRow.of(r) for r in rows], total


async def open_by_cell(
    conn: Conn, *, territory: Sequence[str] | None, dept: str | None
) -> list[asyncpg.Record]:
    """热力图: the open cases of each cell (and how many of them are overdue), within a
    territory (cell-code prefixes; None: the district) or of one department."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT cell_code, count(*) AS open, count(*) FILTER (WHERE overdue) AS overdue "
        "FROM cases WHERE status <> ALL($1::text[]) "
        "AND ($2::text[] IS NULL OR cell_code LIKE ANY($2::text[])) "
        "AND ($3::text IS NULL OR dept = $3) GROUP BY cell_code ORDER BY cell_code",
        CLOSED_STATES,
        None if territory is None else like_prefixes(territory),
        dept,
    )
    return rows


async def escalations_to(
    conn: Conn, case_ids: Sequence[str], user_id: str
) -> dict[str, dict[str, Any]]:
    """督办 that named this person (`to_user_ids` of case.escalated: a grid head on the
    ladder), the latest per case not withdrawn since (超期撤回: a later
    case.overdue_withdrawn of the task naming its level): its level, when, and why."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (case_id) case_id, occurred_at, (data->>'level')::int AS level, "
        "data->>'reason' AS reason FROM timeline t WHERE case_id = ANY($1::text[]) "
        "AND type = 'gridloop.case.escalated.v1' AND data->'to_user_ids' ? $2 "
        "AND NOT EXISTS (SELECT 1 FROM timeline w WHERE w.case_id = t.case_id "
        "AND w.seq > t.seq AND w.type = 'gridloop.case.overdue_withdrawn.v1' "
        "AND w.data->>'task_id' IS NOT DISTINCT FROM t.data->>'task_id' "
        "AND (w.data->'escalation_levels') @> (t.data->'level')) "
        "ORDER BY case_id, seq DESC",
        list(case_ids),
        user_id,
    )
    return {
        r["case_id"]: {"level": r["level"], "at": r["occurred_at"], "reason": r["reason"]}
        for r in rows
    }


async def reporters_of_cases(conn: Conn, case_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The residents who reported each of these cases, with name and phone (the call-back)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT r.case_id, r.channel, r.received_at, p.name, p.phone FROM reports r "
        "JOIN reporters p USING (report_id) WHERE r.case_id = ANY($1::text[]) "
        "AND r.outcome <> 'folded' AND (p.name IS NOT NULL OR p.phone IS NOT NULL) "
        "ORDER BY r.case_id, r.seq",
        list(case_ids),
    )
    return rows
