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
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from gridloop_contracts import Envelope
from nats.js import JetStreamContext

from . import metrics
from .bus import unavailable
from .clock import Clock
from .db import Conn, lock_key
from .step import OutboxRow, Step, TimerOp, plan_timer_ops
from .step import default_subject as default_subject
from .waits import wait_set
from .writes import Writes

log = structlog.get_logger(__name__)


class Work(Step):
    """A step with its open transaction: for code that still reads and writes as it goes
    (commands, cross-case work such as intake's duplicate search)."""

    def __init__(
        self,
        conn: Conn,
        *,
        source: str,
        clock: Clock,
        trigger: Envelope | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(source=source, clock=clock, trigger=trigger, subject=subject)
        self.conn = conn
        # writes gathered for the statement `flush` sends (a store's rows, a command's answer)
        self.writes = Writes()

    async def flush(self) -> list[Committed]:
        """Write the pending events as outbox rows, apply the timer changes and run the
        gathered `writes`, in one statement inside the caller's transaction; returns the
        rows written, for the publisher after commit."""
        return await write_all(self.conn, self.take_timer_ops(), self.take_rows(), self.writes)


# The timer statements and the outbox rows: pieces of the unit of work's one statement
# (writes.py). Parameters numbered from $1 in each.
_CANCEL_TIMERS = (
    "UPDATE timers t SET cancelled_at = now() FROM unnest($1::text[], $2::text[]) "
    "AS c(kind, key) WHERE t.key = c.key AND (c.kind IS NULL OR t.kind = c.kind) "
    "AND t.fired_at IS NULL AND t.cancelled_at IS NULL"
)
# A row the same statement arms again is not cancelled first: one statement may change a row
# once, and arming sets what the cancel would have (fired_at and cancelled_at cleared).
_NOT_ARMED = (
    " AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS a(kind, key) "
    "WHERE a.kind = t.kind AND a.key = t.key)"
)
_ARM_TIMERS = (
    "INSERT INTO timers (kind, key, due_at, payload) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[]) "
    "ON CONFLICT (kind, key) DO UPDATE SET due_at = EXCLUDED.due_at, "
    "payload = EXCLUDED.payload, fired_at = NULL, cancelled_at = NULL"
)
# A row is written with `sent_at` set and a line in `outbox_pending` until it is published
# (008_outbox_pending.sql): publishing deletes that line instead of rewriting the row.
_WRITE_OUTBOX = (
    "INSERT INTO outbox (event_id, subject, headers, body, sent_at) "
    "SELECT *, now() FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::bytea[]) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id"
)
_WRITTEN = ("array_agg(seq ORDER BY seq)", "array_agg(event_id ORDER BY seq)")
_OUTBOX_WRITTEN = "outbox_written"
_PENDING = f"INSERT INTO outbox_pending (seq) SELECT seq FROM {_OUTBOX_WRITTEN}"
# Published: their lines go (the publisher's mark); the sweeper's also marks a row an earlier
# release wrote (`sent_at IS NULL`).
_PUBLISHED = "DELETE FROM outbox_pending WHERE seq = ANY($1::bigint[])"
_MARK_SENT = (
    f"WITH published AS ({_PUBLISHED}) "
    "UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[]) AND sent_at IS NULL"
)
# An earlier release's row left unpublished (the partial index `outbox_unsent`), unless it is
# listed as pending too (its `sent_at` cleared by hand to send it again: counted once).
_LEGACY_UNSENT = (
    "sent_at IS NULL AND NOT EXISTS (SELECT 1 FROM {q}outbox_pending p WHERE p.seq = o.seq)"
)
# The rows left unpublished, older than the grace, in order: this release's (listed in
# outbox_pending) and an earlier release's.
_UNSENT = (
    "SELECT seq, subject, headers, body FROM ("
    "SELECT o.seq, o.subject, o.headers, o.body, o.created_at "
    "FROM outbox_pending p JOIN outbox o USING (seq) "
    "UNION ALL SELECT o.seq, o.subject, o.headers, o.body, o.created_at FROM outbox o WHERE "
    + _LEGACY_UNSENT.format(q="")
    + ") u WHERE created_at <= now() - make_interval(secs => $2) ORDER BY seq LIMIT $1"
)


def unsent_count(schema: str | None = None) -> str:
    """The statement counting the outbox rows left unpublished, in `schema` (else in the
    connection's search path): the backlog gauge's, and the tests' check that all went out."""
    q = f'"{schema}".' if schema else ""
    return (
        f"SELECT (SELECT count(*) FROM {q}outbox_pending) + (SELECT count(*) FROM {q}outbox o "
        f"WHERE {_LEGACY_UNSENT.format(q=q)})"
    )


UNSENT_COUNT = unsent_count()


def cancel_statement(arms: bool) -> str:
    """The timer cancels' statement: kinds and keys ($1, $2); with `arms`, the kinds and keys
    armed in the same statement ($3, $4), which it leaves alone."""
    return _CANCEL_TIMERS + (_NOT_ARMED if arms else "")


async def write_all(
    conn: Conn,
    ops: Sequence[TimerOp],
    rows: Sequence[OutboxRow],
    writes: Writes | None = None,
) -> list[Committed]:
    """A unit of work's timer changes and outbox rows, with whatever else it gathered in
    `writes` (its store's rows, a command's answer), in one statement — one round trip —
    inside the caller's transaction. The timer changes have the effect of applying them in
    order (`plan_timer_ops`); the outbox rows returned are those new to the outbox (an event
    id already there was written by an earlier attempt and is the sweeper's to send), in
    the order of their sequence numbers, for the publisher after commit; then the direct
    messages `writes` gathered (`Writes.add_direct`), in their order."""
    writes = writes if writes is not None else Writes()
    cancels, arms = plan_timer_ops(ops) if ops else ([], [])
    if cancels:
        kinds, keys = [k for k, _ in cancels], [key for _, key in cancels]
        if arms:
            armed = [[o.kind for o in arms], [o.key for o in arms]]
            writes.add(cancel_statement(True), kinds, keys, *armed)
        else:
            writes.add(cancel_statement(False), kinds, keys)
    if arms:
        writes.add(
            _ARM_TIMERS,
            [o.kind for o in arms],
            [o.key for o in arms],
            [o.due_at for o in arms],
            [o.payload for o in arms],
        )
    written = None
    if rows:
        written = writes.add(
            _WRITE_OUTBOX,
            *([r[i] for r in rows] for i in range(4)),
            returns=_WRITTEN,
            name=_OUTBOX_WRITTEN,
        )
        writes.add(_PENDING)
    await writes.run(conn)
    directs = [Committed(i, d.subject, d.headers, d.body, True) for i, d in writes.take_directs()]
    if written is None or written.values[0] is None:
        return directs
    seqs, ids = written.values
    seq = dict(zip(ids, seqs, strict=True))
    out = [Committed(seq[r[0]], r[1], r[2], r[3]) for r in rows if r[0] in seq]
    out.sort(key=lambda c: c.seq)
    return out + directs


@dataclass(frozen=True)
class Committed:
    """An outbox row as written, for the publisher once its transaction has committed;
    `direct`: a core NATS message's row instead (`Writes.add_direct`, `seq` its id)."""

    seq: int
    subject: str
    headers: dict[str, str]
    body: bytes
    direct: bool = False


# For this transaction only: the plan PostgreSQL keeps for each prepared statement, made for
# any parameters, not one planned afresh for these. A command touches one case, and for
# arrays of one element the planner judges a fresh plan cheaper, every time: the unit of
# work's one write statement, which names most of the service's tables, took 0.4-0.5 ms to
# plan, more than to run. With the planner's page costs set for data in memory
# (db.RANDOM_PAGE_COST) the kept plans look rows up by key as the fresh ones do.
GENERIC_PLANS = "SET LOCAL plan_cache_mode = force_generic_plan"


class UnitOfWorkFactory:
    """Opens units of work on a pool; after a commit that wrote events, hands them to this
    process's publisher (which sends them at once)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str,
        source: str,
        clock: Clock,
        acquire_timeout_s: float | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.source = source
        self.clock = clock
        # None waits for a connection as long as it takes (consumers, timers); the HTTP
        # API sets a bound so a busy pool answers 503 instead of queueing without end.
        self.acquire_timeout_s = acquire_timeout_s
        self.publisher = publisher

    @asynccontextmanager
    async def __call__(
        self, trigger: Envelope | None = None, *, generic_plans: bool = False
    ) -> AsyncIterator[Work]:
        """A transaction on a pooled connection; `generic_plans`: its statements run on
        plans made for any parameters (see `GENERIC_PLANS`)."""
        async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn:
            async with conn.transaction():
                if generic_plans:
                    await conn.execute(GENERIC_PLANS)
                work = Work(conn, source=self.source, clock=self.clock, trigger=trigger)
                yield work
                written = await work.flush()
            self.committed(written)

    def committed(self, rows: list[Committed]) -> None:
        """Rows whose transaction has committed: publish them now (the sweeper sends them
        later if this process dies first)."""
        if rows and self.publisher is not None:
            self.publisher.hand(rows)


# How long published rows may wait to be marked sent: their marks are gathered into one
# statement. Well inside OUTBOX_SWEEP_GRACE_S, so the sweeper does not send them again; if the
# process dies first it does, and JetStream drops the copy (same Nats-Msg-Id).
MARK_EVERY_S = 0.25


class Publisher:
    """Publishes what this process committed, right after the commit, in commit order, and
    marks it sent (the marks of a quarter second in one statement). What it could not send
    (the bus away, the process killed) stays unsent in the outbox for the sweeper
    (`OutboxRelay`).

    Direct messages (`Committed.direct`: a reply to a request's `replyto`) go out on core
    NATS after the batch's events, and their rows in `direct_table` are deleted with the
    marks; what a killed process left there is the service's own sweeper's to send."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        service: str,
        batch: int = 512,
        mark_every_s: float = MARK_EVERY_S,
        direct_table: str | None = None,
    ) -> None:
        self.pool = pool
        self.js = js
        self.service = service
        self.batch = batch
        self.mark_every_s = mark_every_s
        self.direct_table = direct_table
        self._queue: list[Committed] = []
        self._wake = asyncio.Event()
        self.published = 0
        self._sent: list[int] = []  # published, not yet marked
        self._dropped: list[int] = []  # direct messages sent, their rows not yet deleted
        self._marked_at = -math.inf  # the first mark after a quiet spell is at once

    def hand(self, rows: Sequence[Committed]) -> None:
        self._queue.extend(rows)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            await self._run(stop)
        finally:
            waker.cancel()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        """A stop ends any wait at once (for new rows, or to gather marks)."""
        await stop.wait()
        self._wake.set()

    async def _run(self, stop: asyncio.Event) -> None:
        failures = 0
        while True:
            if (self._sent or self._dropped) and (
                not self._queue or time.monotonic() - self._marked_at >= self.mark_every_s
            ):
                if self._queue or stop.is_set():
                    await self._mark()
                else:  # gather the marks of what comes next, a quarter second at most
                    self._wake.clear()
                    wait = self.mark_every_s - (time.monotonic() - self._marked_at)
                    if wait > 0 and not stop.is_set():
                        await wait_set(self._wake, wait)
                    if not self._queue:
                        await self._mark()
                    continue
            if not self._queue:
                if stop.is_set():
                    return
                self._wake.clear()
                if stop.is_set():  # set between the check and the clear
                    continue
                await wait_set(self._wake, 0.5)
                continue
            rows = self._queue[: self.batch]
            try:
                events = await self._send(rows)
            except Exception as exc:
                # Keep them first in line (order), try again; give up on shutdown: the
                # sweeper of whichever replica leads sends them.
                failures += 1
                log.warning("publish after commit failed", error=repr(exc), rows=len(rows))
                if stop.is_set():
                    if self._sent or self._dropped:
                        await self._mark()
                    return
                await asyncio.sleep(min(0.2 * failures, 2.0))
                continue
            failures = 0
            del self._queue[: len(rows)]
            for r in rows:
                (self._dropped if r.direct else self._sent).append(r.seq)
            self.published += events
            metrics.EVENTS_OUT.labels(self.service).inc(events)

    async def _send(self, rows: Sequence[Committed]) -> int:
        """The events to JetStream (acknowledged), then the direct messages on core NATS;
        how many were events (the direct messages are not)."""
        events = [r for r in rows if not r.direct]
        if events:
            await publish_rows(self.js, events)
        if len(events) < len(rows):
            nc = self.js._nc
            for r in rows:
                if r.direct:
                    await nc.publish(r.subject, r.body, headers=r.headers)
        return len(events)

    async def _mark(self) -> None:
        """Mark the published rows sent and delete the sent direct messages' rows, in one
        statement."""
        seqs, self._sent = self._sent, []
        dropped, self._dropped = self._dropped, []
        self._marked_at = time.monotonic()
        writes = Writes()
        if seqs:
            writes.add(_PUBLISHED, seqs)
        if dropped and self.direct_table:
            writes.add(f"DELETE FROM {self.direct_table} WHERE id = ANY($1::bigint[])", dropped)
        try:
            async with self.pool.acquire() as conn:
                await writes.run(conn)
        except Exception as exc:  # published: at worst the sweeper sends a copy
            log.warning("marking published rows failed", error=repr(exc))


class OutboxRelay:
    """The sweeper: publishes outbox rows left unsent (a process died between commit and
    publish, or the bus was away), in order. One per schema is active at a time (a session
    advisory lock); other replicas stand by and take over if it dies. Rows younger than
    `grace_s` are left to the publisher of the process that committed them.

    The lock and the sweeping are on a connection of its own (`lock_connect`, the runtime's
    `db.connect`), never one of the pool's: a replica that leads or stands by keeps all of
    `DB_POOL_MAX` for its API and its work, and closing the connection frees the lock."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        lock_connect: Callable[[], Awaitable[asyncpg.Connection]],
        schema: str,
        service: str,
        batch: int = 512,
        poll_s: float = 0.5,
        grace_s: float = 0.0,
    ) -> None:
        self.js = js
        self.schema = schema
        self.service = service
        self.batch = batch
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.lock_connect = lock_connect
        self.leading = False
        self._lock_key = lock_key(f"outbox:{schema}")
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._run_as_leader(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox relay lost its connection", error=str(exc))
            except Exception as exc:
                if unavailable(exc):  # a stream electing its leader: seconds, not a fault
                    log.warning("outbox relay: JetStream unavailable", error=repr(exc))
                else:
                    log.exception("outbox relay failed")
            if not stop.is_set():
                await wait_set(stop, 1.0)

    async def _run_as_leader(self, stop: asyncio.Event) -> None:
        conn = await self.lock_connect()
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                await wait_set(stop, max(self.poll_s, 1.0))
                if stop.is_set():
                    return
            self.leading = True
            try:
                while not stop.is_set():
                    sent = await self.publish_batch(conn)
                    if sent < self.batch:
                        await wait_set(stop, self.poll_s)
            finally:
                self.leading = False
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)  # frees the lock

    async def publish_batch(self, conn: Conn, grace_s: float | None = None) -> int:
        grace = self.grace_s if grace_s is None else grace_s
        rows = await conn.fetch(_UNSENT, self.batch, grace)
        if not rows:
            metrics.OUTBOX_BACKLOG.labels(self.service).set(0)
            return 0
        committed = [_committed(r) for r in rows]
        await publish_rows(self.js, committed)
        await conn.execute(_MARK_SENT, [r.seq for r in committed])
        self.published += len(rows)
        metrics.EVENTS_OUT.labels(self.service).inc(len(rows))
        return len(rows)


# How long a batch waits for JetStream's acknowledgements. A message sent just before the
# server died is never acknowledged (nats-py's future would wait for ever); past this the
# batch counts as failed and is sent again (same Nats-Msg-Id: the server drops what it has).
PUBLISH_ACK_TIMEOUT_S = 10.0


async def publish_rows(
    js: JetStreamContext,
    rows: Sequence[Committed],
    msg_id_suffix: str = "",
    ack_timeout_s: float = PUBLISH_ACK_TIMEOUT_S,
) -> None:
    """Pipelined publish; raises if any message was not acknowledged by JetStream in time.

    `msg_id_suffix` gives the messages new `Nats-Msg-Id`s so JetStream's duplicate window
    does not drop a deliberate re-publish; consumers still dedupe on the CloudEvent id."""
    futures: list[asyncio.Future[Any]] = []
    try:
        for r in rows:
            headers = r.headers
            if msg_id_suffix:
                headers = dict(headers)
                headers["Nats-Msg-Id"] = f"{headers.get('Nats-Msg-Id', r.seq)}{msg_id_suffix}"
            futures.append(await js.publish_async(r.subject, r.body, headers=headers))
        if futures:
            _, unanswered = await asyncio.wait(futures, timeout=ack_timeout_s)
            if unanswered:
                raise RuntimeError(
                    f"{len(unanswered)} of {len(rows)} outbox rows not acknowledged "
                    f"in {ack_timeout_s}s"
                ) from TimeoutError()
    finally:
        for f in futures:  # an abandoned wait frees nats-py's publish slots
            if not f.done():
                f.cancel()
    for r, f in zip(rows, futures, strict=True):
        if (error := f.exception()) is not None:
            raise RuntimeError(f"publish of outbox row {r.seq} failed: {error!r}") from error


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
            await publish_rows(js, [_committed(r) for r in rows], suffix)
            total += len(rows)
            last = rows[-1]["seq"]


def _committed(r: asyncpg.Record) -> Committed:
    return Committed(r["seq"], r["subject"], dict(r["headers"]), bytes(r["body"]))
