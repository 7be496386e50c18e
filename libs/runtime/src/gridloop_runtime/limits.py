"""Overload and rate limits of a service's HTTP API: answer 503 or 429 with Retry-After early
rather than queue without bound or fall over.

- A cap on requests in flight (`HTTP_MAX_IN_FLIGHT`): one more is answered 503 at once.
- A token bucket per client (`RATE_LIMIT_CLIENT_*` for an authenticated user or an Open311
  API key, `RATE_LIMIT_PUBLIC_*` for an anonymous caller by client address): a burst beyond
  the bucket is answered 429, naming the limit.
- The database busy (no pooled connection within `DB_ACQUIRE_TIMEOUT_S`, or PostgreSQL not
  reachable) and the bus unreachable where a request needs it: 503 rather than 500.

Health, readiness and metrics are never limited: orchestrators must always reach them."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nats import errors as nats_errors
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .commands import Refusal

if TYPE_CHECKING:
    from .settings import ServiceSettings

log = structlog.get_logger(__name__)

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

ClientKey = Callable[[Request], Awaitable[str | None]]
"""A service's own way to name a client (e.g. intake: the Open311 API key's source)."""


@dataclass(frozen=True)
class Limit:
    """A token bucket's shape: `per_s` tokens refill per second up to `burst`."""

    name: str  # the settings that configure it, e.g. RATE_LIMIT_CLIENT
    per_s: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_s > 0 and self.burst > 0


class Buckets:
    """Token buckets per client key, the least recently used forgotten beyond `max_keys`."""

    def __init__(self, limit: Limit, max_keys: int = 50_000) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for `key`: 0 when granted, else the seconds until one is there."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - last) * self.limit.per_s)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.limit.per_s
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class RateLimited(Exception):
    def __init__(self, limit: Limit, key: str, retry_after_s: float) -> None:
        super().__init__(f"{limit.name}: rate limit exceeded for {key}")
        self.limit, self.key, self.retry_after_s = limit, key, retry_after_s


class Unavailable(Exception):
    """A dependency (database, bus) cannot serve this request now: 503, retry later."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what, self.reason = what, reason


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class Limiter:
    """The limits of one service process, from its settings."""

    def __init__(self, settings: ServiceSettings, client_key: ClientKey | None = None) -> None:
        self.max_in_flight = settings.http_max_in_flight
        self.retry_after_s = settings.http_retry_after_s
        self.client = Buckets(
            Limit(
                "RATE_LIMIT_CLIENT",
                settings.rate_limit_client_per_s,
                settings.rate_limit_client_burst,
            )
        )
        self.public = Buckets(
            Limit(
                "RATE_LIMIT_PUBLIC",
                settings.rate_limit_public_per_s,
                settings.rate_limit_public_burst,
            )
        )
        self.client_key = client_key
        self.in_flight = 0

    async def key_of(self, request: Request) -> tuple[Buckets, str]:
        """Which bucket a request draws on: its user or API key, else its address."""
        auth = getattr(request.app.state, "authenticator", None)
        if auth is not None and (
            request.headers.get("authorization") or request.headers.get("x-user")
        ):
            await auth.prepare(request)
            try:
                principal = auth.authenticate(request)
            except Refusal:
                pass  # refused later with 401; counted against the address meanwhile
            else:
                request.state.principal = principal  # the route's dependency takes it as is
                return self.client, f"user:{principal.user_id}"
        if self.client_key is not None:
            key = await self.client_key(request)
            if key:
                return self.client, key
        host = request.client.host if request.client else "unknown"
        return self.public, f"addr:{host}"

    @staticmethod
    async def check_text(request: Request) -> None:
        """PostgreSQL text cannot hold NUL characters: refuse them at the door, naming the
        parameter, rather than fail in the database."""
        for where, params in (("query", request.query_params), ("path", request.path_params)):
            for name, value in params.items():
                if isinstance(value, str) and "\x00" in value:
                    raise Refusal(
                        "must not contain NUL characters",
                        field=f"{where}.{name}",
                        code="invalid",
                        status=422,
                    )

    async def check_rate(self, request: Request) -> None:
        """FastAPI dependency of every route: draw a token or answer 429."""
        if request.url.path in UNLIMITED_PATHS:
            return
        buckets, key = await self.key_of(request)
        if not buckets.limit.enabled:
            return
        wait = buckets.take(key)
        if wait > 0:
            raise RateLimited(buckets.limit, key, wait)


class InFlightCap:
    """ASGI middleware: at most `Limiter.max_in_flight` requests at a time, else 503."""

    def __init__(self, app: ASGIApp, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lim = self.limiter
        if (
            scope["type"] != "http"
            or lim.max_in_flight <= 0
            or scope.get("path") in UNLIMITED_PATHS
        ):
            await self.app(scope, receive, send)
            return
        if lim.in_flight >= lim.max_in_flight:
            body = {
                "detail": [
                    {
                        "code": "overloaded",
                        "reason": f"{lim.in_flight} requests in flight, the most this "
                        "service takes at a time; retry later",
                        "field": "HTTP_MAX_IN_FLIGHT",
                    }
                ],
                "limit": {"name": "HTTP_MAX_IN_FLIGHT", "max_in_flight": lim.max_in_flight},
            }
            await _send_json(send, 503, body, retry_after(lim.retry_after_s))
            return
        lim.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            lim.in_flight -= 1


CONNECTION_CLOSE = (b"connection", b"close")


class Draining:
    """ASGI middleware for the process's graceful stop (SIGTERM, `draining()` true from then
    on; Runtime.draining):

    - every answer closes its connection, so a client's next request goes to another replica
      (this one no longer listens) instead of riding a kept-alive connection until the web
      server's grace (SHUTDOWN_GRACE_S) runs out;
    - a request cut short before its answer began, cancelled when the grace ran out or failed
      on something the stop took away, is answered 503 with Retry-After: the client asks
      again, another replica, with its command id, which returns the first answer if this
      one had committed. Not a 500: nothing is wrong with the request or the service.

    A request cancelled is always the web server's stop (it does not cancel a request whose
    client went away); any other failure while not stopping stays a 500, as a fault should."""

    def __init__(self, app: ASGIApp, draining: Callable[[], bool], retry_after_s: float) -> None:
        self.app = app
        self.draining = draining
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.draining():
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), CONNECTION_CLOSE],
                    }
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except (Exception, asyncio.CancelledError) as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            if started or not (cancelled or self.draining()):
                raise
            log.warning(
                "request cut short by the process's stop: 503",
                path=scope.get("path"),
                method=scope.get("method"),
                error=repr(exc),
                exc_info=not cancelled,
            )
            body = {
                "detail": [
                    {
                        "code": "unavailable",
                        "reason": "this replica is stopping; retry (the same command id "
                        "returns the first answer if this one was taken)",
                    }
                ],
                "unavailable": "replica",
            }
            await _send_json(send, 503, body, retry_after(self.retry_after_s), close=True)
            if cancelled:
                raise


async def _send_json(
    send: Send, status: int, body: dict[str, Any], retry: str, *, close: bool = False
) -> None:
    raw = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        (b"retry-after", retry.encode()),
    ]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, CONNECTION_CLOSE] if close else headers,
        }
    )
    await send({"type": "http.response.body", "body": raw})


# Errors that mean "PostgreSQL or NATS cannot serve us now", not "this request is wrong".
DATABASE_BUSY: tuple[type[Exception], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    # PostgreSQL undid the transaction for a concurrent one (a deadlock, a serialization
    # failure): nothing of it happened, the same request may be sent again
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    ConnectionError,
)
BUS_UNREACHABLE: tuple[type[Exception], ...] = (
    nats_errors.NoServersError,
    nats_errors.ConnectionClosedError,
    nats_errors.OutboundBufferLimitError,
    nats_errors.TimeoutError,
    nats_errors.NoRespondersError,
)


def install(app: FastAPI, limiter: Limiter) -> None:
    """The 429/503 answers of a service app."""

    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        lim = exc.limit
        body = {
            "detail": [
                {
                    "code": "rate-limited",
                    "reason": f"more than {lim.burst} requests at once or {lim.per_s:g} per "
                    f"second from {exc.key}; retry after the Retry-After seconds",
                    "field": lim.name,
                }
            ],
            "limit": {"name": lim.name, "per_s": lim.per_s, "burst": lim.burst, "key": exc.key},
        }
        return JSONResponse(
            body, status_code=429, headers={"Retry-After": retry_after(exc.retry_after_s)}
        )

    def unavailable(what: str, reason: str) -> JSONResponse:
        body = {
            "detail": [{"code": "unavailable", "reason": f"{what} busy or unreachable: {reason}"}],
            "unavailable": what,
        }
        return JSONResponse(
            body, status_code=503, headers={"Retry-After": retry_after(limiter.retry_after_s)}
        )

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return unavailable(exc.what, exc.reason)

    async def _db(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", error=repr(exc))
        return unavailable("database", type(exc).__name__)

    async def _bus(_: Request, exc: Exception) -> JSONResponse:
        log.warning("bus unavailable", error=repr(exc))
        return unavailable("bus", type(exc).__name__)

    async def _timeout(_: Request, exc: Exception) -> JSONResponse:
        # asyncpg's pool.acquire(timeout=...) raises the builtin TimeoutError
        log.warning("timed out", error=repr(exc))
        return unavailable("database", "no connection free in time (DB_ACQUIRE_TIMEOUT_S)")

    async def _bad_text(_: Request, exc: Exception) -> JSONResponse:
        # a NUL character or invalid text inside a JSON body (queries are checked first)
        body = {
            "detail": [
                {
                    "code": "invalid",
                    "reason": "text must not contain NUL characters",
                    "field": "body",
                }
            ]
        }
        return JSONResponse(body, status_code=422)

    app.add_exception_handler(asyncpg.exceptions.CharacterNotInRepertoireError, _bad_text)
    app.add_exception_handler(asyncpg.exceptions.UntranslatableCharacterError, _bad_text)
    for exc_type in DATABASE_BUSY:
        app.add_exception_handler(exc_type, _db)
    for exc_type in BUS_UNREACHABLE:
        app.add_exception_handler(exc_type, _bus)
    app.add_exception_handler(asyncio.TimeoutError, _timeout)
