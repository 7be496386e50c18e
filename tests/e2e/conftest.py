"""End-to-end fixtures: the five services as real processes on a real NATS and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gridloop_runtime.devstack import LocalNats, LocalPostgres, free_port
from gridloop_runtime.launcher import SERVICES, Stack


@pytest.fixture(scope="module")
def stack(
    pg_server: LocalPostgres, work_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """All five services as separate processes, with a shared movable clock (CLOCK_FILE)."""
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "e")
    state = work_dir / name
    nats = LocalNats(state / "nats", log_file=state / "nats.log").start()
    db_url = pg_server.create_database(name)
    clock_file = state / "clock-offset"
    state.mkdir(parents=True, exist_ok=True)
    clock_file.write_text("0")
    s = Stack(
        state,
        nats_url=nats.url,
        database_url=db_url,
        ports={svc: free_port() for svc in SERVICES},
        env={
            "CLOCK_FILE": str(clock_file),
            "OUTBOX_POLL_S": "0.2",
            "TIMER_POLL_S": "0.2",
            "LOG_LEVEL": "INFO",
            "AUTH_MODE": "dev",
        },
        durable=False,
    )
    s.nats = nats
    try:
        s.start(timeout=120)
        yield s
    finally:
        s.stop()


def move_clock(stack: Stack, seconds: float) -> None:
    """Move every service's clock forward by `seconds` (cumulative)."""
    f = Path(stack.env["CLOCK_FILE"])
    f.write_text(str(float(f.read_text() or 0) + seconds))
