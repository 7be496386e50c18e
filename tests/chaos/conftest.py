"""Chaos fixtures: the five services as processes on a nats-server (or a 3-node cluster) and a
PostgreSQL of their own, so the suite can kill and restart each of them without disturbing the
rest of the session."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from gridloop_devkit.devstack import LocalNats, LocalNatsCluster, LocalPostgres, free_port
from gridloop_devkit.launcher import SERVICES, Stack

# The settings every chaos stack runs with: fast polls and retries, a shared movable clock.
CHAOS_ENV = {
    "OUTBOX_POLL_S": "0.2",
    "TIMER_POLL_S": "0.2",
    "CONSUMER_RETRY_DELAY_S": "0.5",
    "CONSUMER_ACK_WAIT_S": "10",
    "DB_POOL_MIN": "1",
    "DB_POOL_MAX": "6",
    "LOG_LEVEL": "INFO",
    "AUTH_MODE": "dev",
    "SHUTDOWN_GRACE_S": "5",
}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A chaos test that fails carries what the services logged (their warnings, errors and
    tracebacks) in its report, so the run's output says what the services saw."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name in ("chaos_stack", "cluster_chaos_stack"):
            stack = funcargs.get(name)
            if isinstance(stack, Stack):
                report.sections.append(
                    ("services' warnings and errors", failures_in_logs(stack.state_dir))
                )
    return report


def failures_in_logs(state: Path, tail: int = 60) -> str:
    """What the services said beside their info lines, their last `tail` lines each: warnings,
    errors and tracebacks, and the web server's own plain lines (its starts and stops, a
    request it cancelled at shutdown, an exception it caught)."""
    out: list[str] = []
    for log in sorted(state.glob("*.log")):
        if log.name.startswith(("nats", "pg", "s3", "smtp", "postgres")):
            continue
        picked = [
            line[:600]
            for line in log.read_text(errors="replace").splitlines()
            if not line.startswith("{")
            or '"level": "error"' in line
            or ('"level": "warning"' in line and "working calendar" not in line)
        ]
        if picked:
            out.append(f"--- {log.name} (last {min(tail, len(picked))} of {len(picked)})")
            out.extend(picked[-tail:])
    return "\n".join(out)


def short_name(shape: str, test: str) -> str:
    """A test's state folder: short, as PostgreSQL's socket lives in its data directory and a
    socket's path may not be longer than 107 bytes; unique to the test and its parameters."""
    return f"{shape}-{test[5:25]}-{hashlib.sha1(test.encode()).hexdigest()[:6]}"


@pytest.fixture
def chaos_stack(work_dir: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """NATS with a file store synced on every write, PostgreSQL in its own data directory,
    the five services with a shared movable clock (CLOCK_FILE); all on fixed loopback ports
    so each can be restarted in place."""
    state = work_dir / short_name("single", request.node.name)
    state.mkdir(parents=True, exist_ok=True)
    nats = LocalNats(state / "nats", sync_always=True, log_file=state / "nats.log").start()
    yield from _stack(state, nats, replicas=1)


@pytest.fixture
def cluster_chaos_stack(work_dir: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The production shape: a 3-node JetStream cluster (every stream R3, each node's store
    synced on every write), two processes of every service, PostgreSQL durable; every node
    and process restartable in place."""
    state = work_dir / short_name("cluster", request.node.name)
    state.mkdir(parents=True, exist_ok=True)
    nats = LocalNatsCluster(state / "nats-cluster", size=3, sync_always=True, log_dir=state)
    nats.start(timeout=90)
    yield from _stack(state, nats, replicas=2)


def _stack(state: Path, nats: LocalNats | LocalNatsCluster, replicas: int) -> Iterator[Stack]:
    # durable: PostgreSQL is restarted with an immediate shutdown, and a commit it answered
    # must survive that (as in production; the other tests run it without fsync).
    pg = LocalPostgres(state / "pg", port=free_port(), durable=True, log_file=state / "pg.log")
    try:
        pg.start()
        database_url = pg.create_database("gridloop")
    except BaseException:  # the servers already started go too
        pg.stop()
        nats.stop()
        raise
    clock_file = state / "clock-offset"
    clock_file.write_text("0")
    nodes = len(nats.nodes) if isinstance(nats, LocalNatsCluster) else 1
    stack = Stack(
        state,
        nats_url=nats.url,
        database_url=database_url,
        ports={
            svc if i == 0 else f"{svc}-{i}": free_port()
            for svc in SERVICES
            for i in range(replicas)
        },
        env={"CLOCK_FILE": str(clock_file), **CHAOS_ENV},
        durable=False,
        replicas=replicas,
        nats_nodes=nodes,
    )
    stack.nats, stack.postgres = nats, pg
    try:
        stack.start(timeout=180)
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
