"""Chaos fixtures: the five services as processes on a nats-server and a PostgreSQL of their own,
so the suite can kill and restart each of them without disturbing the rest of the session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from gridloop_runtime.devstack import LocalNats, LocalPostgres, free_port
from gridloop_runtime.launcher import SERVICES, Stack


@pytest.fixture
def chaos_stack(work_dir: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """NATS with a file store synced on every write, PostgreSQL in its own data directory,
    the five services with a shared movable clock (CLOCK_FILE); all on fixed loopback ports
    so each can be restarted in place."""
    state = work_dir / request.node.name
    state.mkdir(parents=True, exist_ok=True)
    nats = LocalNats(state / "nats", sync_always=True, log_file=state / "nats.log").start()
    # durable: PostgreSQL is restarted with an immediate shutdown, and a commit it answered
    # must survive that (as in production; the other tests run it without fsync).
    pg = LocalPostgres(state / "pg", port=free_port(), durable=True, log_file=state / "pg.log")
    pg.start()
    clock_file = state / "clock-offset"
    clock_file.write_text("0")
    stack = Stack(
        state,
        nats_url=nats.url,
        database_url=pg.create_database("gridloop"),
        ports={svc: free_port() for svc in SERVICES},
        env={
            "CLOCK_FILE": str(clock_file),
            "OUTBOX_POLL_S": "0.2",
            "TIMER_POLL_S": "0.2",
            "CONSUMER_RETRY_DELAY_S": "0.5",
            "CONSUMER_ACK_WAIT_S": "10",
            "DB_POOL_MIN": "1",
            "DB_POOL_MAX": "6",
            "LOG_LEVEL": "INFO",
            "AUTH_MODE": "dev",
            "SHUTDOWN_GRACE_S": "5",
        },
        durable=False,
    )
    stack.nats, stack.postgres = nats, pg
    try:
        stack.start(timeout=120)
        yield stack
    finally:
        stack.stop()
        keep = os.environ.get("CHAOS_KEEP_DIR")
        if keep:  # the services' and servers' logs, for a look after a failure
            shutil.copytree(
                state,
                Path(keep) / state.name,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("js", "pg"),
            )
