"""End-to-end fixtures: the five services as real processes on a real NATS and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gridloop_devkit.devstack import LocalPostgres
from gridloop_devkit.launcher import SERVICES, Stack, nats_nodes_from_env, replicas_from_env
from gridloop_devkit.testing import process_stack


@pytest.fixture(scope="module")
def stack(
    pg_server: LocalPostgres, work_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """All five services as separate processes, with a shared movable clock (CLOCK_FILE). A
    module's `REPLICAS` runs that many processes of every service, its `NATS_NODES` that many
    nats-servers as one JetStream cluster (at least; GRIDLOOP_REPLICAS and GRIDLOOP_NATS_NODES
    raise them for every module); `CONSOLE = True` adds the console (one process)."""
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "e")
    replicas = max(getattr(request.module, "REPLICAS", 1), replicas_from_env())
    nats_nodes = max(getattr(request.module, "NATS_NODES", 1), nats_nodes_from_env())
    with process_stack(
        work_dir / name,
        pg_server.create_database(name),
        services=(*SERVICES, "console")
        if getattr(request.module, "CONSOLE", False)
        else tuple(SERVICES),
        env={"LOG_LEVEL": "INFO", **getattr(request.module, "STACK_ENV", {})},
        replicas=replicas,
        nats_nodes=nats_nodes,
    ) as s:
        yield s


def move_clock(stack: Stack, seconds: float) -> None:
    """Move every service's clock forward by `seconds` (cumulative)."""
    f = Path(stack.env["CLOCK_FILE"])
    f.write_text(str(float(f.read_text() or 0) + seconds))


def clock_offset(stack: Stack) -> float:
    """How far (seconds) every service's clock has been moved forward."""
    return float(Path(stack.env["CLOCK_FILE"]).read_text() or 0)
