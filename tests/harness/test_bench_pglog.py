"""`make profile --slow-ms` (bench/pglog.py, not a package: loaded from its file): PostgreSQL's
log read back as what it was busy with, each from when it started, placed in the measured
window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gridloop_devkit.testing import load_module

pglog = load_module(Path(__file__).resolve().parents[2] / "bench" / "pglog.py", "bench_pglog")

LOG = """\
2026-12-06 12:09:30.315 UTC [10549] LOG:  duration: 160.785 ms  statement: CREATE DATABASE g;
2026-12-06 12:10:03.344 UTC [10575] LOG:  duration: 55.290 ms  execute s1c: INSERT INTO items (id)
\tSELECT * FROM unnest($1::text[])
2026-12-06 12:10:03.400 UTC [10575] DETAIL:  Parameters: $1 = '{c1}', $2 = '{m}'
2026-12-06 12:10:05.706 UTC [10590] LOG:  duration: 12.500 ms  execute s1d: SELECT 1
2026-12-06 12:10:09.050 UTC [10601] LOG:  automatic analyze of table "gridloop.intake.timeline"
\tavg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s
\tsystem usage: CPU: user: 0.07 s, system: 0.00 s, elapsed: 0.09 s
2026-12-06 12:10:14.568 UTC [10607] LOG:  duration: 93.928 ms  statement: ANALYZE "intake"."cases"
2026-12-06 12:10:40.000 UTC [10607] LOG:  duration: 70.000 ms  statement: SELECT pg_walinspect
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_statements_over_the_threshold_and_autovacuum_runs_from_when_they_started() -> None:
    found = pglog.busy(LOG, min_ms=30)
    assert [(round(b.at - at("2026-12-06 12:10:00"), 3), b.ms, b.pid) for b in found] == [
        (-29.846, 160.785, 10549),
        (3.289, 55.29, 10575),
        (8.96, 90.0, 10601),
        (14.474, 93.928, 10607),
        (39.93, 70.0, 10607),
    ]
    # a statement's continuation lines are part of it; the DETAIL line after it is not one
    assert found[1].what == "INSERT INTO items (id) SELECT * FROM unnest($1::text[])"
    assert found[2].what == "autovacuum: analyze gridloop.intake.timeline"
    # the 12.5 ms statement is under the threshold
    assert all(b.pid != 10590 for b in found)


def test_only_what_overlaps_the_window_is_listed_as_seconds_into_it() -> None:
    found = pglog.busy(LOG, min_ms=30)
    lines = pglog.window_lines(found, at("2026-12-06 12:10:00"), 30.0, width=20)
    assert lines == [
        "      3.29     55.3 ms  [10575] INSERT INTO items (i",
        "      8.96     90.0 ms  [10601] autovacuum: analyze ",
        '     14.47     93.9 ms  [10607] ANALYZE "intake"."ca',
    ]
