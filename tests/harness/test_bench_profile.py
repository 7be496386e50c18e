"""`make profile`'s reading of what PostgreSQL keeps of a closed loop (bench/profile.py): each
table's growth on disk over the window, per closed loop, the largest first, and the
database's."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def profile(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench.profile")


def test_sizes_per_closed_loop_largest_first_with_the_database_last(profile: ModuleType) -> None:
    before = {
        "intake.timeline bytes": 8192.0,
        "scoring.items bytes": 0.0,
        "intake.outbox_pending bytes": 16384.0,
        "db_bytes": 1_000_000.0,
        "intake.timeline ins": 5.0,  # another figure of the same table: not a size
    }
    after = {
        "intake.timeline bytes": 8192.0 + 100 * 1024 * 8.5,
        "scoring.items bytes": 100 * 1024 * 12.0,
        "intake.outbox_pending bytes": 16384.0,  # its rows deleted as they are written
        "verify.cases bytes": 100 * 1024 * 0.25,  # a table made during the window
        "db_bytes": 1_000_000.0 + 100 * 1024 * 30.0,
        "intake.timeline ins": 900.0,
    }

    lines = profile.size_lines(before, after, 100, top=25)

    assert [line.split() for line in lines] == [
        ["scoring.items", "12.00"],
        ["intake.timeline", "8.50"],
        ["verify.cases", "0.25"],
        ["the", "database", "30.00"],
    ]


def test_sizes_keep_the_top_tables_only(profile: ModuleType) -> None:
    after = {f"s.t{i} bytes": 1024.0 * i for i in range(1, 6)} | {"db_bytes": 1024.0 * 15}

    lines = profile.size_lines({"db_bytes": 0.0}, after, 1, top=2)

    assert [line.split()[0] for line in lines] == ["s.t5", "s.t4", "the"]


def test_streams_per_closed_loop_largest_first_with_their_sum(profile: ModuleType) -> None:
    before = {"CASES stream_bytes": 1024.0, "INTAKE stream_bytes": 0.0, "CASES bytes": 7.0}
    after = {
        "CASES stream_bytes": 1024.0 + 10 * 1024 * 6.0,
        "INTAKE stream_bytes": 10 * 1024 * 0.5,
        "NOTIFY stream_bytes": 10 * 1024 * 1.0,  # made during the window
        "CASES bytes": 99.0,  # a table of that name: not a stream
    }

    lines = profile.stream_size_lines(before, after, 10)

    assert [line.split() for line in lines] == [
        ["CASES", "6.00"],
        ["NOTIFY", "1.00"],
        ["INTAKE", "0.50"],
        ["all", "streams", "7.50"],
    ]
