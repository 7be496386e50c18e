"""The case file's `CaseStore`: the states of a batch of cases loaded with one statement
(the rows locked), and written back set-based — only what changed, one write per table: the
case rows upserted, timeline lines appended, reports, reporters, ratings and archive
snapshots inserted, gathered into the unit of work's one statement (gridloop_runtime.writes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from gridloop_runtime.db import Conn, unnest_attrs, unnest_upsert
from gridloop_runtime.writes import Writes, gathered

from .domain.case import CASE_COLUMNS, CaseFile, CaseRow

# The PostgreSQL type of each column of `cases` that is not text (001_intake.sql).
_CASE_TYPES: dict[str, str] = {
    "lon": "float8",
    "lat": "float8",
    "confidence": "float8",
    "reporter": "jsonb",
    "attachments": "jsonb",
    "files": "jsonb",
    "proposal": "jsonb",
    "targets": "jsonb",
    "reported_at": "timestamptz",
    "received_at": "timestamptz",
    "updated_at": "timestamptz",
    "accepted_at": "timestamptz",
    "deadline": "timestamptz",
    "closed_at": "timestamptz",
    "overdue": "bool",
    "ever_overdue": "bool",
    "overdue_count": "int4",
    "on_time": "bool",
    "archived": "bool",
    "reworks": "int4",
    "reports": "int4",
    "detections": "int4",
    "public": "bool",
    "subscribers": "jsonb",
}


_UPSERT_CASES = unnest_upsert("cases", CASE_COLUMNS, _CASE_TYPES, key="case_id")

_TYPES = {
    **dict.fromkeys(("occurred_at", "recorded_at", "reported_at", "received_at"), "timestamptz"),
    **dict.fromkeys(("created_at", "closed_at", "rated_at"), "timestamptz"),
    **dict.fromkeys(("actor", "data"), "jsonb"),
    "confidence": "float8",
}
_TIMELINE: tuple[str, ...] = (
    "case_id",
    "event_id",
    "type",
    "occurred_at",
    "recorded_at",
    "actor",
    "status",
    "summary",
    "data",
)
_INSERT_TIMELINE = unnest_upsert(
    "timeline",
    _TIMELINE,
    _TYPES,
    tail="ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING",
)
_REPORTS: tuple[str, ...] = (
    "report_id",
    "source",
    "external_id",
    "channel",
    "case_id",
    "outcome",
    "reported_at",
    "received_at",
    "camera_id",
    "confidence",
    "data",
)
_INSERT_REPORTS = unnest_upsert("reports", _REPORTS, _TYPES)
_REPORTERS = ("ref", "report_id", "name", "phone", "email", "created_at", "lang")
_INSERT_REPORTERS = unnest_upsert("reporters", _REPORTERS, _TYPES)
_RATINGS = ("case_id", "closed_at", "rating", "comment", "via", "rated_at")
_INSERT_RATINGS = unnest_upsert("ratings", _RATINGS, _TYPES, tail="ON CONFLICT DO NOTHING")

# 结单归档: the case as it stood at closing, the timeline lines stored before this batch and
# those of this batch up to the closing (written before this batch's lines are).
_ARCHIVE = """
    INSERT INTO archive (case_id, closed_at, category_code, cell_code, community_code,
                         subdistrict_code, lon, lat, dept, on_time, case_data, timeline)
    SELECT a.case_id, a.closed_at, a.category_code, a.cell_code, a.community_code,
           a.subdistrict_code, a.lon, a.lat, a.dept, a.on_time, a.case_data::jsonb,
           coalesce((SELECT jsonb_agg(jsonb_build_object(
               'type', t.type, 'occurred_at', t.occurred_at, 'actor', t.actor,
               'status', t.status, 'summary', t.summary, 'event_id', t.event_id)
               ORDER BY t.seq) FROM timeline t WHERE t.case_id = a.case_id), '[]'::jsonb)
           || a.recent::jsonb
    FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::float8[], $8::float8[], $9::text[], $10::bool[], $11::text[], $12::text[])
         AS a(case_id, closed_at, category_code, cell_code, community_code, subdistrict_code,
              lon, lat, dept, on_time, case_data, recent)
    ON CONFLICT (case_id) DO UPDATE SET closed_at = EXCLUDED.closed_at,
        dept = EXCLUDED.dept, on_time = EXCLUDED.on_time,
        case_data = EXCLUDED.case_data, timeline = EXCLUDED.timeline
"""


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class CaseFileStore:
    """`CaseStore[CaseFile]`. With `ratings`, `load` also reads which closings were rated
    (what the rating rule needs; the case file's events do not)."""

    def __init__(self, *, ratings: bool = False) -> None:
        self.ratings = ratings

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, CaseFile]:
        ids = list(case_ids)
        states = {case_id: CaseFile(case_id) for case_id in ids}
        # Locked in one order, so two batches sharing cases cannot deadlock.
        rows = await conn.fetch(
            "SELECT * FROM cases WHERE case_id = ANY($1::text[]) ORDER BY case_id FOR UPDATE", ids
        )
        for r in rows:
            states[r["case_id"]].case = CaseRow.of(r)
        if self.ratings:
            for state in states.values():
                state.rated = set()
            rated = await conn.fetch(
                "SELECT case_id, closed_at FROM ratings WHERE case_id = ANY($1::text[])", ids
            )
            for r in rated:
                rated_set = states[r["case_id"]].rated
                assert rated_set is not None
                rated_set.add(r["closed_at"])
        return states

    async def save(
        self, conn: Conn, states: Sequence[CaseFile], writes: Writes | None = None
    ) -> None:
        dirty = [s for s in states if s.dirty]
        if not dirty:
            return
        rerated = [(s.case_id, s.archive_rating) for s in dirty if s.archive_rating is not None]
        # A rating is written into an archive row that may be one of these writes: after them.
        async with gathered(conn, None if rerated else writes) as out:
            snapshots = [(s.case_id, s.snapshot) for s in dirty if s.snapshot is not None]
            if snapshots:
                out.add(
                    _ARCHIVE,
                    [case_id for case_id, _ in snapshots],
                    [snap.closed_at for _, snap in snapshots],
                    *(
                        [snap.case[c] for _, snap in snapshots]
                        for c in (
                            "category_code",
                            "cell_code",
                            "community_code",
                            "subdistrict_code",
                            "lon",
                            "lat",
                            "dept",
                            "on_time",
                        )
                    ),
                    [_json(snap.case) for _, snap in snapshots],
                    [_json(snap.recent) for _, snap in snapshots],
                )
            rows = [s.case for s in dirty if s.case is not None and (s.new or s.changed)]
            if rows:
                out.add(_UPSERT_CASES, *unnest_attrs(CASE_COLUMNS, _CASE_TYPES, rows))
            for sql, columns, items in (
                (_INSERT_TIMELINE, _TIMELINE, [e for s in dirty for e in s.entries]),
                (_INSERT_REPORTS, _REPORTS, [r for s in dirty for r in s.reports]),
                (_INSERT_REPORTERS, _REPORTERS, [p for s in dirty for p in s.reporters]),
                (_INSERT_RATINGS, _RATINGS, [r for s in dirty for r in s.ratings]),
            ):
                if items:
                    out.add(sql, *unnest_attrs(columns, _TYPES, items))
        if rerated:
            await conn.execute(
                "UPDATE archive a SET case_data = a.case_data || jsonb_build_object('rating', "
                "u.rating) FROM unnest($1::text[], $2::text[]) AS u(case_id, rating) "
                "WHERE a.case_id = u.case_id",
                [c for c, _ in rerated],
                [r for _, r in rerated],
            )
        for s in dirty:
            s.saved()


# The case file's events and the desk's commands; ratings (which need the rated closings).
CASEFILE = CaseFileStore()
RATINGS = CaseFileStore(ratings=True)
