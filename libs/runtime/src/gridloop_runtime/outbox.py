"""The transactional outbox: events are rows written with the state change, then relayed.

A unit of work is one transaction: the handler changes state and `emit`s events; the events
become outbox rows in the same transaction, so an event exists if and only if its change
committed. The relay publishes unsent rows to JetStream in order with `Nats-Msg-Id` = event
id, then marks them sent. A crash between publish and mark re-publishes the same ids, which
JetStream's duplicate window (and every consumer's inbox) absorbs. Sent rows stay: the outbox
is the service's re-publishable log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from gridloop_contracts import Envelope, Event, to_binary
from gridloop_contracts.base import Timestamp
from nats.js import JetStreamContext

from . import metrics, tracing
from .clock import Clock
from .db import Conn

log = structlog.get_logger(__name__)

_INSERT = (
    "INSERT INTO outbox (event_id, subject, headers, body) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (event_id) DO NOTHING"
)


def default_subject(event: Event) -> str:
    """`gridloop.<noun>.<verb>.vN` → `<noun>.<verb>` for nouns whose subject needs no code."""
    parts = event.type_name.split(".")
    if len(parts) == 4 and parts[1] in ("case", "score"):
        return f"{parts[1]}.{event.subject_token or parts[2]}"
    raise ValueError(f"{event.type_name} needs an explicit subject")


def channel_for(schema: str) -> str:
    return f"gridloop_outbox_{schema}"


class Work:
    """What a handler gets: the open transaction, the clock, the triggering event and its
    subject, and `emit`."""

    def __init__(
        self,
        conn: Conn,
        *,
        source: str,
        clock: Clock,
        trigger: Envelope | None = None,
        subject: str | None = None,
    ) -> None:
        self.conn = conn
        self.source = source
        self.clock = clock
        self.trigger = trigger
        # The NATS subject the triggering message came on (consumers only): for streams
        # whose subject carries meaning, such as intake.<channel>.<source>.
        self.subject = subject
        self._pending: list[tuple[str, Envelope]] = []

    def now(self) -> datetime:
        return self.clock.now()

    def emit(
        self,
        event: Event,
        *,
        subject: str | None = None,
        case_id: str | None = None,
        id: str | None = None,
        time: Timestamp | None = None,
    ) -> Envelope:
        """Record an outgoing event; it is published only if this transaction commits."""
        ce_subject = case_id if case_id is not None else getattr(event, "case_id", None)
        env = Envelope.of(
            event,
            source=self.source,
            subject=ce_subject,
            id=id,
            time=time or self.clock.now(),
            extensions=tracing.current_headers(),
        )
        self._pending.append((subject or default_subject(event), env))
        return env

    def emit_envelope(self, subject: str, env: Envelope) -> None:
        self._pending.append((subject, env))

    def mark(self) -> int:
        """A point to roll the pending events back to (with a savepoint of the transaction)."""
        return len(self._pending)

    def rollback_to(self, mark: int) -> None:
        del self._pending[mark:]

    @property
    def pending(self) -> list[tuple[str, Envelope]]:
        return list(self._pending)

    def take_rows(self) -> list[OutboxRow]:
        """The pending events as outbox rows, handed over (a batch consumer writes the rows of
        all its messages with one statement)."""
        rows = []
        for subject, env in self._pending:
            headers, body = to_binary(env)
            rows.append((env.id, subject, headers, body))
        self._pending.clear()
        return rows

    async def flush(self) -> int:
        """Write the pending events as outbox rows (inside the caller's transaction)."""
        if not self._pending:
            return 0
        rows = self.take_rows()
        await write_rows(self.conn, rows)
        return len(rows)


OutboxRow = tuple[str, str, dict[str, str], bytes]


async def write_rows(conn: Conn, rows: list[OutboxRow]) -> None:
    if rows:
        await conn.executemany(_INSERT, rows)


class UnitOfWorkFactory:
    """Opens units of work on a pool; wakes the relay after commits that emitted events."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str,
        source: str,
        clock: Clock,
        acquire_timeout_s: float | None = None,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.source = source
        self.clock = clock
        # None waits for a connection as long as it takes (consumers, timers); the HTTP
        # API sets a bound so a busy pool answers 503 instead of queueing without end.
        self.acquire_timeout_s = acquire_timeout_s

    @asynccontextmanager
    async def __call__(self, trigger: Envelope | None = None) -> AsyncIterator[Work]:
        async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn, conn.transaction():
            work = Work(conn, source=self.source, clock=self.clock, trigger=trigger)
            yield work
            if await work.flush():
                await conn.execute("SELECT pg_notify($1, '')", channel_for(self.schema))


class OutboxRelay:
    """Publishes unsent outbox rows in order. One relay per schema is active at a time
    (a session advisory lock); other replicas stand by and take over if it dies."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        schema: str,
        service: str,
        batch: int = 512,
        poll_s: float = 0.5,
    ) -> None:
        self.pool = pool
        self.js = js
        self.schema = schema
        self.service = service
        self.batch = batch
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"outbox:{schema}".encode()).digest()[:8], "big", signed=True
        )
        self.published = 0

    def wake(self, *_: Any) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._run_as_leader(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox relay lost its connection", error=str(exc))
            except Exception:
                log.exception("outbox relay failed")
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)

    async def _run_as_leader(self, stop: asyncio.Event) -> None:
        conn: Conn = await self.pool.acquire()
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(self.poll_s, 1.0))
                if stop.is_set():
                    return
            await conn.add_listener(channel_for(self.schema), self.wake)
            try:
                while not stop.is_set():
                    sent = await self.publish_batch(conn)
                    if sent < self.batch:
                        self._wake.clear()
                        if sent == 0:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                # Graceful stop: publish what committed before we were told to stop.
                while await self.publish_batch(conn):
                    pass
            finally:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(channel_for(self.schema), self.wake)
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
        finally:
            await self.pool.release(conn)  # type: ignore[arg-type]

    async def publish_batch(self, conn: Conn) -> int:
        rows = await conn.fetch(
            "SELECT seq, subject, headers, body FROM outbox WHERE sent_at IS NULL "
            "ORDER BY seq LIMIT $1",
            self.batch,
        )
        if not rows:
            metrics.OUTBOX_BACKLOG.labels(self.service).set(0)
            return 0
        await publish_rows(self.js, rows)
        await conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])",
            [r["seq"] for r in rows],
        )
        self.published += len(rows)
        metrics.EVENTS_OUT.labels(self.service).inc(len(rows))
        return len(rows)


# How long a batch waits for JetStream's acknowledgements. A message sent just before the
# server died is never acknowledged (nats-py's future would wait for ever); past this the
# batch counts as failed and is sent again (same Nats-Msg-Id: the server drops what it has).
PUBLISH_ACK_TIMEOUT_S = 10.0


async def publish_rows(
    js: JetStreamContext,
    rows: list[asyncpg.Record],
    msg_id_suffix: str = "",
    ack_timeout_s: float = PUBLISH_ACK_TIMEOUT_S,
) -> None:
    """Pipelined publish; raises if any message was not acknowledged by JetStream in time.

    `msg_id_suffix` gives the messages new `Nats-Msg-Id`s so JetStream's duplicate window
    does not drop a deliberate re-publish; consumers still dedupe on the CloudEvent id."""
    futures: list[asyncio.Future[Any]] = []
    try:
        for r in rows:
            headers = dict(r["headers"])
            if msg_id_suffix:
                headers["Nats-Msg-Id"] = f"{headers.get('Nats-Msg-Id', r['seq'])}{msg_id_suffix}"
            futures.append(await js.publish_async(r["subject"], bytes(r["body"]), headers=headers))
        if futures:
            _, unanswered = await asyncio.wait(futures, timeout=ack_timeout_s)
            if unanswered:
                raise RuntimeError(
                    f"{len(unanswered)} of {len(rows)} outbox rows not acknowledged "
                    f"in {ack_timeout_s}s"
                )
    finally:
        for f in futures:  # an abandoned wait frees nats-py's publish slots
            if not f.done():
                f.cancel()
    for r, f in zip(rows, futures, strict=True):
        if (error := f.exception()) is not None:
            raise RuntimeError(f"publish of outbox row {r['seq']} failed: {error!r}")


async def republish(
    pool: asyncpg.Pool, js: JetStreamContext, since: datetime, until: datetime, batch: int = 1000
) -> int:
    """Re-publish every outbox row created in [since, until): the operator's recovery after the
    bus lost acknowledged messages. Idempotent consumers make this always safe."""
    total = 0
    last = 0
    suffix = f"#republished-{int(time.time())}"
    async with pool.acquire() as conn:
        while True:
            rows = await conn.fetch(
                "SELECT seq, subject, headers, body FROM outbox WHERE created_at >= $1 "
                "AND created_at < $2 AND seq > $3 ORDER BY seq LIMIT $4",
                since,
                until,
                last,
                batch,
            )
            if not rows:
                return total
            await publish_rows(js, rows, suffix)
            total += len(rows)
            last = rows[-1]["seq"]
