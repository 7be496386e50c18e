"""pytest plugin: a real PostgreSQL per test session, a real nats-server and a fresh database
per test, and helpers to wait on conditions (never on sleeps).

Loaded by the root pytest configuration (`-p gridloop_runtime.testing`)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from .clock import Clock
from .devstack import LocalNats, LocalPostgres
from .service import Runtime, ServiceDefinition
from .settings import ServiceSettings

T = TypeVar("T")
_db_counter = itertools.count(1)


async def wait_for(
    condition: Callable[[], Awaitable[T] | T],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        last = result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or condition} (last: {last!r})"
            )
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gridloop-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(work_dir: Path) -> Iterator[LocalPostgres]:
    pg = LocalPostgres(work_dir / "pg", durable=False, log_file=work_dir / "pg.log").start()
    yield pg
    pg.stop()


@pytest.fixture
def database_url(pg_server: LocalPostgres) -> str:
    """A fresh, empty database for this test."""
    return pg_server.create_database(f"t{next(_db_counter)}")


@pytest.fixture
def nats_server(work_dir: Path) -> Iterator[LocalNats]:
    """A fresh nats-server with JetStream for this test (restartable: stop() then start())."""
    n = next(_db_counter)
    server = LocalNats(work_dir / f"nats{n}", log_file=work_dir / f"nats{n}.log").start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: LocalNats) -> str:
    return nats_server.url


def settings_for(
    name: str,
    database_url: str,
    nats_url: str,
    settings_cls: type[ServiceSettings] = ServiceSettings,
    **extra: Any,
) -> ServiceSettings:
    values: dict[str, Any] = {
        "SERVICE_NAME": name,
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "DB_POOL_MIN": 1,
        "DB_POOL_MAX": 6,
        "OUTBOX_POLL_S": 0.2,
        "TIMER_POLL_S": 0.1,
        "CONSUMER_RETRY_DELAY_S": 0.05,
        "CONSUMER_ACK_WAIT_S": 5,
        "SHUTDOWN_GRACE_S": 5,
    }
    values.update({k.upper(): v for k, v in extra.items()})
    return settings_cls.model_validate(values)


@asynccontextmanager
async def running(
    settings: ServiceSettings,
    definition: ServiceDefinition,
    *,
    clock: Clock | None = None,
    state: Any = None,
) -> AsyncIterator[Runtime]:
    """Start a service runtime in this event loop; stop it gracefully afterwards."""
    rt = Runtime(settings, definition, clock=clock, state=state)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


@asynccontextmanager
async def http_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the runtime's FastAPI app in-process."""
    transport = httpx.ASGITransport(app=rt.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


__all__ = [
    "database_url",
    "http_client",
    "nats_server",
    "nats_url",
    "pg_server",
    "pytest_asyncio",
    "running",
    "settings_for",
    "wait_for",
    "work_dir",
]
