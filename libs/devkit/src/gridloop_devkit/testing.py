"""pytest plugin: a real PostgreSQL and a real S3 object store (SeaweedFS) per test session,
a real nats-server, a real SMTP server, a fresh database and a fresh bucket per test, helpers
to wait on conditions (never on sleeps), a tap on what goes over the bus, and photos to
upload.

Loaded by the root pytest configuration (`-p gridloop_devkit.testing`)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import nats
import nats.errors
import nats.js.errors
import pytest
import pytest_asyncio
from gridloop_contracts import Envelope, Event, decode, to_binary
from gridloop_runtime.bus import quick_fetch, read_stored
from gridloop_runtime.clock import Clock
from gridloop_runtime.consumer import Consumer
from gridloop_runtime.service import Runtime, ServiceDefinition
from gridloop_runtime.settings import ServiceSettings
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from .devstack import (
    LocalNats,
    LocalNatsCluster,
    LocalObjectStore,
    LocalPostgres,
    LocalSmtp,
    free_port,
)
from .launcher import SERVICES, Stack, nats_nodes_from_env, replicas_from_env

T = TypeVar("T")
_db_counter = itertools.count(1)

# A test's tap lives as long as the test, however long it waits between reads.
TAP_CONFIG = ConsumerConfig(inactive_threshold=600.0)


# Two overloads so that mypy infers T from what the condition returns, whether a coroutine
# function or a plain one, without the `None` it returns while not met yet: waiting on
# `async def f() -> str | None` gives a `str`. A condition whose type mentions Any (say
# `dict[str, Any] | None`) matches both overloads and mypy answers Any: annotate the result.
@overload
async def wait_for(
    condition: Callable[[], Awaitable[T | None]],
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def wait_for(
    condition: Callable[[], T | None],
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def wait_for(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> Any:
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


async def holding(consumer: Consumer) -> bool:
    """A consumer's messages all delivered and one or more not acknowledged: what a patient
    consumer holds (`ConsumerSpec.urgent`) once nothing it handled is left unacknowledged.
    The consumer must say so itself too: JetStream counts a message delivered as soon as it
    sent it, a few turns of the event loop before the consumer has taken it among those it
    holds (`Consumer.settle` would not wait for it yet)."""
    assert consumer._sub is not None
    if not consumer.holds:
        return False
    info = await consumer._sub.consumer_info()
    return not info.num_pending and bool(info.num_ack_pending)


class EventTap:
    """Everything published on one or more (stream, subject filter) pairs since the tap
    opened, decoded, as (subject, envelope) in the order read:

        tap = await EventTap(js, ("CASES", "case.>"), ("DISPATCH", "dispatch.>")).open()
        [closed] = await tap.wait(CaseClosed, case_id="C-1", source="/gridloop/verify")

    An event type is named by its contract model or its CloudEvents type name (None: any
    type); `data` matches the event's JSON data (`env.data.get(key) == value`)."""

    def __init__(self, js: JetStreamContext, *streams: tuple[str, str]) -> None:
        if not streams:
            raise ValueError("an EventTap needs at least one (stream, subject) to tap")
        self.js = js
        self.streams = streams
        self.seen: list[tuple[str, Envelope]] = []
        self._subs: list[JetStreamContext.PullSubscription] = []

    async def open(self) -> EventTap:
        """Subscribe (an ephemeral pull consumer per stream); returns the tap."""
        for stream, subject in self.streams:
            self._subs.append(
                quick_fetch(await self.js.pull_subscribe(subject, stream=stream, config=TAP_CONFIG))
            )
        return self

    async def poll(self) -> list[tuple[str, Envelope]]:
        """Read what has arrived since the last poll; returns everything seen so far."""
        for sub in self._subs:
            try:
                msgs = await sub.fetch(1000, timeout=0.05)
            except (TimeoutError, nats.errors.TimeoutError):
                continue  # nothing new
            for m in msgs:
                self.seen.append((m.subject, decode(m.headers, m.data)))
                await m.ack()
        return self.seen

    def of(
        self,
        type_name: str | type[Event] | None,
        *,
        source: str | None = None,
        subject: str | None = None,
        **data: Any,
    ) -> list[Envelope]:
        """What has been seen (not polling) of a type, from `source`, on the NATS `subject`,
        with `data`."""
        wanted = _type_name(type_name)
        return [
            env
            for subj, env in self.seen
            if (wanted is None or env.type == wanted)
            and (source is None or env.source == source)
            and (subject is None or subj == subject)
            and all(env.data.get(k) == v for k, v in data.items())
        ]

    async def wait(
        self,
        type_name: str | type[Event] | None,
        n: int = 1,
        timeout: float = 10.0,
        *,
        source: str | None = None,
        subject: str | None = None,
        **data: Any,
    ) -> list[Envelope]:
        """Poll until at least `n` events match (as `of`); returns all that match."""

        async def enough() -> list[Envelope] | None:
            await self.poll()
            found = self.of(type_name, source=source, subject=subject, **data)
            return found if len(found) >= n else None

        where = "".join(
            f" {k}={v}" for k, v in (("source", source), ("subject", subject)) if v is not None
        )
        what = f"{n} × {_type_name(type_name) or 'any event'}{where} {data} on {self.streams}"
        found: list[Envelope] | None = await wait_for(enough, timeout=timeout, what=what)
        assert found is not None
        return found


# -- reading a stream back ----------------------------------------------------------------
@dataclass
class Seen:
    """A message read back from a stream."""

    subject: str
    headers: dict[str, str]
    data: dict[str, Any]
    stored_at: datetime | None = None  # when the stream stored it (the server's clock)


async def consumed_past(
    js: JetStreamContext, stream: str, durable: str, subject: str, timeout: float = 15.0
) -> None:
    """Until the durable consumer has acknowledged the last message on `subject` (and every
    message before it): whatever it was to do with them is done."""
    last = (await js.get_last_msg(stream, subject)).seq or 0

    async def acked() -> bool:
        info = await js.consumer_info(stream, durable)
        return info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= last

    await wait_for(acked, timeout=timeout, what=f"{durable} past {subject} #{last}")


async def read_stream(js: JetStreamContext, stream: str, subject: str = ">") -> list[Seen]:
    """Every message of a stream (or of its subjects matching `subject`), in order."""
    return await read_stored(js, stream, _seen, subject=subject)


def _seen(m: Msg) -> Seen:
    data: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        loaded = json.loads(m.data)
        if isinstance(loaded, dict):
            data = loaded
    return Seen(m.subject, dict(m.headers or {}), data, m.metadata.timestamp)


def _type_name(type_name: str | type[Event] | None) -> str | None:
    return type_name if type_name is None or isinstance(type_name, str) else type_name.type_name


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


@pytest.fixture
def smtp_server(work_dir: Path) -> Iterator[LocalSmtp]:
    """A fresh local SMTP server for this test, keeping every message it takes in a folder
    (`messages()`); restartable in place: stop() then start()."""
    n = next(_db_counter)
    server = LocalSmtp(work_dir / f"mail{n}", log_file=work_dir / f"smtp{n}.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def object_store(work_dir: Path) -> Iterator[LocalObjectStore]:
    """The session's S3 object store (`weed server -s3`); each test takes a bucket of its own
    (`s3_settings`). A test that stops a store starts one of its own (`LocalObjectStore`)."""
    store = LocalObjectStore(work_dir / "s3", log_file=work_dir / "s3.log").start()
    yield store
    store.stop(kill=True)


@pytest.fixture
def s3_settings(object_store: LocalObjectStore) -> dict[str, str]:
    """The S3_* settings of a fresh, empty bucket for this test."""
    return object_store.settings(object_store.create_bucket(f"evidence-t{next(_db_counter)}"))


def photo_bytes(
    lat: float | None = 39.9,
    lon: float | None = 116.4003,
    *,
    taken_at: str | None = "2026:11:23 09:30:00",
    fmt: str = "JPEG",
    size: tuple[int, int] = (640, 480),
    color: tuple[int, int, int] = (200, 80, 40),
) -> bytes:
    """A photo as a phone takes it: `fmt` (JPEG, PNG, WEBP, HEIF), with EXIF time
    (DateTimeOriginal) and GPS position unless None."""
    import io

    from PIL import Image

    img = Image.new("RGB", size, color)
    exif = Image.Exif()
    if taken_at is not None:
        exif.get_ifd(0x8769)[36867] = taken_at

    def dms(v: float) -> tuple[float, float, float]:
        v = abs(v)
        d = int(v)
        m = int((v - d) * 60)
        return (float(d), float(m), round((v - d - m / 60) * 3600, 4))

    if lat is not None and lon is not None:
        exif.get_ifd(0x8825).update(
            {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
        )
    out = io.BytesIO()
    img.save(out, fmt, exif=exif)
    return out.getvalue()


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
async def service_running(
    settings: ServiceSettings,
    build: Callable[[Any], tuple[ServiceDefinition, Any]],
    nats_url: str,
    *,
    clock: Clock,
) -> AsyncIterator[tuple[Runtime, Any]]:
    """A service built from its settings (`build`: its bootstrap's `definition`) running in
    this event loop, and a NATS connection of the test's own: `(runtime, connection)`."""
    definition_, state = build(settings)
    nc = await nats.connect(nats_url)
    try:
        async with running(settings, definition_, clock=clock, state=state) as rt:
            yield rt, nc
    finally:
        await nc.close()


async def publish_case_event(
    js: Any, event: Any, service: str, *, at: datetime | None = None, id: str | None = None
) -> Envelope:
    """A case event on CASES as `service` publishes it: `case.<event>`, source
    `/gridloop/<service>`, the case as the CloudEvent subject, `at` its time."""
    env = Envelope.of(event, source=f"/gridloop/{service}", subject=event.case_id, time=at, id=id)
    headers, body = to_binary(env)
    await js.publish(f"case.{event.subject_token}", body, headers=headers)
    return env


@contextmanager
def process_stack(
    state: Path,
    database_url: str,
    *,
    services: Sequence[str] = tuple(SERVICES),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    replicas: int | None = None,
    nats_nodes: int | None = None,
    nats_auth: bool = False,
) -> Iterator[Stack]:
    """The services as real processes on a nats-server and an S3 store (SeaweedFS, bucket
    `gridloop-evidence`) of their own and `database_url`, on free loopback ports: outbox and
    timers polled every 0.2 s, dev sign-in (`X-User`) and a clock every service reads from
    `CLOCK_FILE` (an offset in seconds, 0 to start), so a test can move time for all of
    them. `env` adds or overrides settings. `replicas` processes of every service (default
    GRIDLOOP_REPLICAS, else 1), each on a port of its own. `nats_nodes` nats-servers
    (default GRIDLOOP_NATS_NODES, else 1): more than one form a JetStream cluster
    (`stack.nats`, a LocalNatsCluster whose nodes a test may kill and start again) and the
    services create their streams replicated (STREAM_REPLICAS).
    `nats_auth`: the servers run with the users and permissions generated from the demo city
    (tools/gen_nats_config.py, as `make run`), each service logs in as itself, and a test's
    clients log in too (`admin`, `dept-<dept>`, `src-<source>`; password
    `gridloop-dev-<user>`)."""
    state.mkdir(parents=True, exist_ok=True)
    replicas = replicas or replicas_from_env()
    nats_nodes = nats_nodes or nats_nodes_from_env()
    clock_file = state / "clock-offset"
    clock_file.write_text("0")
    stack = Stack(
        state,
        database_url=database_url,
        ports={
            svc if i == 0 else f"{svc}-{i}": free_port()
            for svc in services
            for i in range(1 if svc == "console" else replicas)
        },
        services=tuple(services),
        replicas=replicas,
        nats_nodes=nats_nodes,
        env={
            "CLOCK_FILE": str(clock_file),
            "OUTBOX_POLL_S": "0.2",
            "TIMER_POLL_S": "0.2",
            "AUTH_MODE": "dev",
            "S3_PORT": "0",
            **(env or {}),
        },
        durable=False,
        local_s3=True,
        nats_auth=nats_auth,
    )
    nats: LocalNats | LocalNatsCluster
    if nats_nodes > 1:
        accounts = stack.generated_nats_accounts() if nats_auth else None
        nats = LocalNatsCluster(
            state / "nats-cluster", size=nats_nodes, accounts_file=accounts, log_dir=state
        ).start()
    else:
        # A free port: the generated config's listen address is overridden by LocalNats.
        config = stack.generated_nats_config(0) if nats_auth else None
        nats = LocalNats(state / "nats", config_file=config, log_file=state / "nats.log").start()
    stack.nats_url = nats.url
    stack.nats = nats  # stopped with the stack
    try:
        stack.start(timeout=timeout)
        yield stack
    finally:
        stack.stop()


def worker_group(nodeid: str) -> str:
    """The unit one pytest-xdist worker runs whole (`make test`, `--dist loadgroup`): a test
    module, so its module-scoped stack starts once and its tests run in their written order,
    and the whole chaos suite, whose fault schedules would fight over two cores side by side."""
    module = nodeid.split("::", 1)[0]
    return "tests/chaos" if module.startswith("tests/chaos/") else module


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` by `worker_group`. pytest-xdist's own loadgroup reads a group from a
    suffix it writes into `item._nodeid`, which pytest 9 no longer reads a node id from: its
    groups never formed, so a module's tests were spread over both workers, each starting the
    module's stack and running part of a module that assumes its earlier tests ran."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist: untyped here
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return ModuleScheduling(config, log)


@asynccontextmanager
async def http_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the runtime's FastAPI app in-process."""
    transport = httpx.ASGITransport(app=rt.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


__all__ = [
    "TAP_CONFIG",
    "EventTap",
    "database_url",
    "http_client",
    "nats_server",
    "nats_url",
    "object_store",
    "pg_server",
    "photo_bytes",
    "process_stack",
    "publish_case_event",
    "pytest_asyncio",
    "running",
    "s3_settings",
    "service_running",
    "settings_for",
    "smtp_server",
    "wait_for",
    "work_dir",
]


def load_module(path: Path, name: str) -> Any:
    """A module from a file that belongs to no package: the department kit of handling's
    examples, which the end-to-end tests, the chaos suite and the bench run as a department,
    and the bench's own modules in the tests. Registered under `name` before it runs, as an
    import would be (a dataclass looks its module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
