"""The shape every service has: one process, one FastAPI app and its bus consumers, timers and
outbox relay in the same event loop, with health, metrics, tracing and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from nats.aio.client import Client
from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import bus, calendarwatch, db, limits, retention, statistics, tracing
from . import logging as glog
from .audit import AuditMiddleware
from .auth import Authenticator, AuthSettings, UserLookup
from .calendarwatch import CalendarLike
from .casework import Rules
from .clock import Clock, OffsetFileClock, SystemClock
from .commands import install_refusal_handler
from .consumer import Consumer, ConsumerSpec
from .db import Conn
from .inputs import check_routes
from .limits import ClientKey, Draining, InFlightCap, Limiter
from .outbox import UNSENT_COUNT, OutboxRelay, Publisher, UnitOfWorkFactory
from .settings import ServiceSettings
from .timers import TimerHandler, TimerRunner
from .waits import wait_set

if TYPE_CHECKING:
    from .evidence import Evidence

log = structlog.get_logger(__name__)

Hook = Callable[["Runtime"], Awaitable[None]]


@dataclass
class ServiceDefinition:
    """What a service plugs into the runtime: migrations, consumers, timers, routes, hooks."""

    name: str
    migrations_dir: Path | None = None
    consumers: Sequence[ConsumerSpec] = ()
    timers: Mapping[str, TimerHandler] = field(default_factory=dict)
    # the handler table whose timer rules fire a batch at a time (casework.py)
    timer_rules: Rules[Any] | None = None
    routers: Sequence[APIRouter] = ()
    on_start: Sequence[Hook] = ()
    background: Sequence[Callable[[Runtime, asyncio.Event], Awaitable[None]]] = ()
    title: str = ""
    description: str = ""
    # who may call the REST API: a lookup of configured users for AUTH_MODE=dev
    users: UserLookup | None = None
    # who a caller without a user is, for rate limits (e.g. an Open311 API key's source)
    client_key: ClientKey | None = None
    # durable consumers this service keeps for readers outside gridloop (bus.Feed)
    feeds: Sequence[bus.Feed] = ()
    # uploads of photos and voice notes (gridloop_runtime.evidence): its table, its store
    # client and its routes
    evidence: Evidence | None = None
    # gauges read from the service's tables when /metrics is scraped (cases by state, overdue)
    gauges: Sequence[Callable[[Conn], Awaitable[None]]] = ()
    # the working calendar in use (it changes on a live reload), for services that compute
    # deadlines: its horizon is watched (gridloop_runtime.calendarwatch)
    calendar: Callable[[], CalendarLike] | None = None
    # the table of this service's direct replies (`Writes.add_direct`): the publisher sends
    # them on core NATS after commit and deletes their rows; the service sweeps what is left
    direct_table: str | None = None


# FastAPI's built-in OpenTelemetry, off: the runtime traces requests itself (tracing.py).
NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


class Runtime:
    """The live connections of one service process, and its lifecycle."""

    def __init__(
        self,
        settings: ServiceSettings,
        definition: ServiceDefinition,
        *,
        clock: Clock | None = None,
        state: Any = None,
    ) -> None:
        self.settings = settings
        self.definition = definition
        self.clock: Clock = clock or (
            OffsetFileClock(settings.clock_file) if settings.clock_file else SystemClock()
        )
        self.state = state
        self.schema = db.check_schema(settings.db_schema_name)
        self.source = f"/gridloop/{definition.name}"
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.pool: asyncpg.Pool | None = None
        self.uow: UnitOfWorkFactory | None = None
        self.relay: OutboxRelay | None = None
        self.publisher: Publisher | None = None
        self.consumers: list[Consumer] = []
        self.timer_runner: TimerRunner | None = None
        self.stop_event = asyncio.Event()
        self._publisher_stop = asyncio.Event()
        self._publisher_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False
        # the web server's graceful stop has begun (SIGTERM): each answer closes its
        # connection, a request cut short is answered 503 (limits.Draining)
        self.draining = False

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        tracing.setup(self.definition.name, s.otel_exporter, s.service_instance)
        self.pool = await db.create_pool(
            s.database_url,
            self.schema,
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            random_page_cost=s.db_random_page_cost,
        )
        migrations = db.runtime_migrations()
        if self.definition.evidence is not None:
            from .evidence import migrations as evidence_migrations

            migrations += evidence_migrations()
        if self.definition.migrations_dir is not None:
            migrations += db.read_migrations(self.definition.name, self.definition.migrations_dir)
        async with self.pool.acquire() as conn:
            await db.migrate(conn, self.schema, migrations)

        async def streams_again() -> None:
            if self.js is not None:
                await bus.keep_streams(
                    self.js,
                    replicas=s.stream_replicas,
                    max_ages_s=s.stream_max_ages_s,
                    compression=s.stream_store_compression,
                    feeds=self.definition.feeds,
                )

        self.nc = await bus.connect(
            s.nats_url,
            name=self.definition.name,
            user=s.nats_user,
            password=s.nats_password,
            on_reconnected=streams_again,
        )
        self.js = self.nc.jetstream(publish_async_max_pending=4000)
        await bus.ensure_streams(
            self.js,
            replicas=s.stream_replicas,
            max_ages_s=s.stream_max_ages_s,
            compression=s.stream_store_compression,
        )
        await bus.ensure_feeds(self.js, self.definition.feeds)
        # Consumers and timers wait for a connection as long as it takes; the HTTP API
        # (rt.uow) waits at most DB_ACQUIRE_TIMEOUT_S and answers 503 (limits.py).
        self.publisher = Publisher(
            self.pool,
            self.js,
            service=self.definition.name,
            batch=s.outbox_batch,
            direct_table=self.definition.direct_table,
        )
        background_uow = UnitOfWorkFactory(
            self.pool,
            schema=self.schema,
            source=self.source,
            clock=self.clock,
            publisher=self.publisher,
        )
        self.uow = UnitOfWorkFactory(
            self.pool,
            schema=self.schema,
            source=self.source,
            clock=self.clock,
            acquire_timeout_s=s.db_acquire_timeout_s,
            publisher=self.publisher,
        )
        if self.definition.evidence is not None:
            # no request to the store yet: a store that is down refuses uploads (503), it
            # does not keep the service from starting
            await self.definition.evidence.open()
        for hook in self.definition.on_start:
            await hook(self)
        self.relay = OutboxRelay(
            self.js,
            schema=self.schema,
            service=self.definition.name,
            batch=s.outbox_batch,
            poll_s=s.outbox_poll_s,
            grace_s=s.outbox_sweep_grace_s,
            lock_connect=self._connect,
        )
        # The publisher stops last: what the consumers commit while stopping is sent too.
        self._publisher_task = self._spawn(self.publisher.run(self._publisher_stop), "publisher")
        self._spawn(self.relay.run(self.stop_event), "outbox-relay")
        for spec in self.definition.consumers:
            consumer = Consumer(
                spec,
                js=self.js,
                uow=background_uow,
                pool=self.pool,
                service=self.definition.name,
                batch=s.consumer_batch,
                max_deliver=s.consumer_max_deliver,
                ack_wait_s=s.consumer_ack_wait_s,
                max_ack_pending=s.consumer_max_ack_pending,
                retry_delay_s=s.consumer_retry_delay_s,
                lock_connect=functools.partial(self._connect, lead=True),
                linger_s=s.consumer_linger_s,
                linger_below=s.consumer_linger_below,
                patient_linger_s=s.consumer_patient_linger_s,
            )
            await consumer.subscribe()
            self.consumers.append(consumer)
            self._spawn(consumer.run(self.stop_event), f"consumer-{spec.durable}")
        if self.definition.timers or self.definition.timer_rules is not None:
            self.timer_runner = TimerRunner(
                background_uow,
                self.definition.timers,
                service=self.definition.name,
                poll_s=s.timer_poll_s,
                rules=self.definition.timer_rules,
                settle=self._settle_held if any(c.spec.urgent for c in self.consumers) else None,
            )
            self._spawn(self.timer_runner.run(self.stop_event), "timers")
        for bg in self.definition.background:
            self._spawn(bg(self, self.stop_event), getattr(bg, "__name__", "background"))
        if self.definition.calendar is not None:
            self._spawn(calendarwatch.watch(self, self.stop_event), "calendar")
        self._spawn(self._watch_lag(), "lag")
        if s.db_analyse_every_s > 0:
            self._spawn(
                statistics.keep_current(
                    self.pool, self.schema, s.db_analyse_every_s, self.stop_event
                ),
                "statistics",
            )
        if s.retention_every_s > 0:
            self._spawn(
                retention.keep_pruned(
                    self.pool, self.schema, s.retention, s.retention_every_s, self.stop_event
                ),
                "retention",
            )
        self.started = True
        log.info("service started", service=self.definition.name)

    async def _connect(self, *, lead: bool = False) -> asyncpg.Connection:
        """A connection of its own outside the pool, set up as the pool's (a lock's). `lead`:
        an ordered consumer's lead, which also works on it, on kept plans unless
        `DB_CONSUMER_GENERIC_PLANS` is off."""
        s = self.settings
        return await db.connect(
            s.database_url,
            self.schema,
            random_page_cost=s.db_random_page_cost,
            generic_plans=lead and s.db_consumer_generic_plans,
        )

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task died", task=name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.append(task)
        return task

    async def _settle_held(self) -> None:
        """Before a timer round: wait (a few lingers at most) for what the consumers hold."""
        limit = max(1.0, 4 * self.settings.consumer_patient_linger_s)
        for c in self.consumers:
            if c.spec.urgent:
                await c.settle(limit)

    async def _watch_lag(self) -> None:
        while not self.stop_event.is_set():
            for c in self.consumers:
                await c.lag()
            await wait_set(self.stop_event, 5.0)

    async def stop(self) -> None:
        """Stop fetching, finish the batches in hand, flush the outbox, then close."""
        self.stop_event.set()
        first = [t for t in self._tasks if t is not self._publisher_task]
        for group in (first, [self._publisher_task] if self._publisher_task else []):
            if group:
                _, still = await asyncio.wait(group, timeout=self.settings.shutdown_grace_s)
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
            self._publisher_stop.set()
        self._tasks.clear()
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), timeout=5)
        if self.definition.evidence is not None:
            with contextlib.suppress(Exception):
                await self.definition.evidence.close()
        # the spans of the last batches, before the process goes (a thread: the exporter's
        # HTTP call blocks)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(tracing.flush)
        self.started = False
        log.info("service stopped", service=self.definition.name)

    async def ready(self) -> dict[str, bool]:
        checks = {
            "started": self.started,
            "nats": bool(self.nc and self.nc.is_connected),
            "consumers": all(c.running for c in self.consumers) if self.started else False,
        }
        try:
            assert self.pool is not None
            async with self.pool.acquire(timeout=2) as conn:
                checks["database"] = await conn.fetchval("SELECT 1") == 1
        except Exception:
            checks["database"] = False
        return checks

    # -- the HTTP app ----------------------------------------------------------------
    def app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            if not self.started:
                await self.start()
            yield
            await self.stop()

        limiter = Limiter(self.settings, self.definition.client_key)
        app = FastAPI(
            title=self.definition.title or f"gridloop {self.definition.name}",
            description=self.definition.description,
            version="0.1.0",
            lifespan=lifespan,
            dependencies=[Depends(limiter.check_rate), Depends(Limiter.check_text)],
            # The request's span is TracingMiddleware's; FastAPI's own telemetry would add a
            # second server span, operation spans and metrics to every request once a tracer
            # provider is set (it always is): 3 % of a busy service's CPU for nothing new.
            telemetry=NO_FASTAPI_TELEMETRY,
        )
        app.state.runtime = self
        app.state.limiter = limiter
        app.state.authenticator = Authenticator(AuthSettings(), self.definition.users)
        install_refusal_handler(app)
        limits.install(app, limiter)
        app.add_middleware(TracingMiddleware)
        app.add_middleware(AuditMiddleware)
        # a request over the cap costs nothing more than its answer
        app.add_middleware(InFlightCap, limiter=limiter)
        # outermost: while the process stops, every answer (the cap's too) closes its
        # connection, and a request cut short is a 503 to ask elsewhere, not a 500
        app.add_middleware(
            Draining, draining=lambda: self.draining, retry_after_s=self.settings.http_retry_after_s
        )

        @app.get("/healthz", tags=["operations"])
        async def healthz() -> dict[str, str]:
            """Liveness: the process answers."""
            return {"status": "ok"}

        @app.get("/readyz", tags=["operations"])
        async def readyz() -> JSONResponse:
            """Readiness: database, NATS and consumers are up."""
            checks = await self.ready()
            ok = all(checks.values())
            return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

        @app.get("/metrics", tags=["operations"], include_in_schema=False)
        async def metrics_endpoint() -> Response:
            if self.pool is not None:
                with contextlib.suppress(Exception):
                    async with self.pool.acquire(timeout=1) as conn:
                        backlog = await conn.fetchval(UNSENT_COUNT)
                        for gauge in self.definition.gauges:
                            await gauge(conn)
                    from .metrics import OUTBOX_BACKLOG

                    OUTBOX_BACKLOG.labels(self.definition.name).set(backlog)
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        from .admin import router as admin_router

        routers = list(self.definition.routers)
        if self.definition.evidence is not None:
            routers.append(self.definition.evidence.router())
        check_routes([admin_router, *routers])  # bodies decoded strictly
        app.include_router(admin_router)
        for router in routers:
            app.include_router(router)
        return app


class TracingMiddleware:
    """Continue the caller's W3C trace (or start one) for every request. Plain ASGI: a
    `BaseHTTPMiddleware` runs each request in a task group of its own, a tenth of a
    service's CPU on the hot path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        token = otel_context.attach(tracing.context_from(carrier))
        try:
            with tracing.tracer().start_as_current_span(
                f"{scope.get('method', '')} {scope.get('path', '')}", kind=SpanKind.SERVER
            ) as span:
                started = time.perf_counter()

                async def sending(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        span.set_attribute("http.status_code", message["status"])
                    await send(message)

                try:
                    await self.app(scope, receive, sending)
                finally:
                    span.set_attribute("http.duration_ms", (time.perf_counter() - started) * 1000)
        finally:
            otel_context.detach(token)


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


class HttpServer(uvicorn.Server):
    """uvicorn's server, telling the runtime when its graceful stop begins: from then on no
    connection is kept alive, so one that the stop did not see (accepted as the listener
    closed) cannot keep bringing requests until the grace runs out and they are cancelled."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.runtime.draining = True
        await super().shutdown(sockets)


def http_server(runtime: Runtime, *, port: int | None = None) -> HttpServer:
    """The web server of a service process, on its settings' host and port."""
    settings = runtime.settings
    config = uvicorn.Config(
        runtime.app(),
        host=settings.http_host,
        port=settings.http_port if port is None else port,
        loop="uvloop",
        http="httptools",
        timeout_keep_alive=int(settings.http_keep_alive_s),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
    return HttpServer(config, runtime)


def serve(
    build: Callable[[], tuple[ServiceSettings, ServiceDefinition, Any]],
) -> None:
    """The process entry point of a service: `python -m gridloop_<service>`."""
    settings, definition, state = build()
    glog.setup(
        definition.name, settings.log_level, settings.log_json, instance=settings.service_instance
    )
    server = http_server(Runtime(settings, definition, state=state))
    # The city (cells, parts, their geometry), the app and the imported modules live as long as
    # the process: out of the collector's sight, so a full collection walks what the work
    # allocates, not a hundred thousand objects that never die (tens of ms each time).
    gc.collect()
    gc.freeze()
    # uvicorn turns SIGTERM/SIGINT into a graceful stop: the lifespan ends, Runtime.stop runs.
    server.run()
