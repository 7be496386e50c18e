"""Durable pull consumers with explicit ack, an inbox for exactly-once effects, and the DLQ.

A batch is fetched and handled in one transaction (the fast path). If any message in it
fails, the transaction is rolled back and the batch is handled again one message per
transaction, so one bad message cannot hold back the others. Each handled event id is
written to the inbox in the transaction of its effect: a redelivery finds it there and
changes nothing. A message that still fails after `max_deliver` deliveries goes to
`dlq.<service>` with its error and is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.errors
import orjson
import structlog
from gridloop_contracts import Envelope, EnvelopeError, Event, decode, subjects
from gridloop_contracts.envelope import storable
from gridloop_contracts.problems import Permanent as Permanent
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from . import metrics, tracing
from .bus import DELIVER_POLICY_FIXED, quick_fetch, starting_as, when_available
from .casework import Inbound, Rules, apply_batch
from .db import Conn, again_on_conflict, lock_key
from .outbox import Committed, UnitOfWorkFactory, Work, write_all
from .waits import wait_set
from .writes import Writes

log = structlog.get_logger(__name__)

Handler = Callable[[Work, Envelope], Awaitable[None]]
# A handler of a whole batch: each valid message with its own work, in stream order, in one
# open transaction, so it can read what the batch needs with one statement per table.
BatchHandler = Callable[[Conn, Sequence[tuple[Work, Envelope]]], Awaitable[None]]
InvalidHandler = Callable[[Work, Msg, EnvelopeError], Awaitable[None]]


@dataclass
class ConsumerSpec:
    """What a service consumes: a durable name, a stream, subject filters, and one of: a
    handler table (`rules`: pure per-case rules applied a batch at a time, casework.py), a
    `handler` that does its own reads and writes in the open transaction (cross-case work), or
    a `batch_handler` that does them for the whole batch at once."""

    durable: str
    stream: str
    subjects: Sequence[str] = ()
    handler: Handler | None = None
    rules: Rules[Any] | None = None
    batch_handler: BatchHandler | None = None
    # Called instead of the handler when a message is not a valid CloudEvent (in the unit of
    # work, so it can emit a rejection). Without it, such a message goes straight to the DLQ.
    on_invalid: InvalidHandler | None = None
    deliver_new: bool = False
    batch: int | None = None
    # After a batch smaller than the fetch size, wait this long before fetching again, so
    # that work which may lag (scores, projections) takes its messages in fewer, larger
    # batches: one transaction and one fold per case for several of its events. 0: fetch
    # again at once (the loop's own steps), or as `lingers` says.
    linger_s: float = 0.0
    # Off the path a report takes to its department (a task's creation, the department's
    # commands), where a few tens of milliseconds go unnoticed: after a batch of fewer than
    # `CONSUMER_LINGER_BELOW` messages, wait `CONSUMER_LINGER_S` before fetching again. In
    # light traffic this takes several messages a transaction instead of one, and leaves the
    # cores to the reports meanwhile; under load the batches are larger and it never waits.
    # docs/performance.md.
    lingers: bool = False
    # Work nobody waits on by the millisecond (a case file, a verification task for a
    # supervisor): after any batch that was not full, wait `CONSUMER_PATIENT_LINGER_S` (a
    # quarter second) before fetching again. In light traffic its events then come a few
    # dozen to a transaction; under load its batches fill and it never waits.
    patient: bool = False
    # With `patient`: the subjects that must not wait (a report on its way to its department).
    # A message on one of them is handled at once, in a batch of its own; the others fetched
    # meanwhile are held, unacknowledged, and handled together once `CONSUMER_PATIENT_LINGER_S`
    # has passed since the first of them was held, or as soon as a batch of them is held. A
    # case's messages keep their stream order: one that must not wait, of a case with a
    # message held, takes every held message with it (`hold_apart`).
    urgent: Sequence[str] = ()
    # One replica at a time consumes this durable (a PostgreSQL advisory lock; the others
    # stand by and take over within seconds), so one case's messages take effect in stream
    # order with any number of replicas. False for work with no per-case order (reports).
    ordered: bool = True
    # Only gridloop's services write this stream: a message that is not a CloudEvent from one
    # of them (`from_gridloop`) reached it some other way and is acked and dropped, with a
    # warning and gridloop_foreign_messages_total. Default: CASES and DISPATCH.
    services_only: bool | None = None
    # The subject names the publisher (NATS permissions let each integrator or department
    # publish only on its own), so the inbox key is `<subject>|<ce-id>`: an id another sender
    # chose, whatever `ce-source` it claims, cannot make this one's message a duplicate.
    # Default: INTAKE and HANDLING.
    key_by_subject: bool | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = [h for h in (self.handler, self.rules, self.batch_handler) if h is not None]
        if len(given) != 1:
            raise ValueError(
                f"{self.durable}: give one of a handler, a batch handler or a rules table"
            )
        if not self.subjects and self.rules is not None:
            self.subjects = self.rules.subjects
        if self.services_only is None:
            self.services_only = self.stream in SERVICE_STREAMS
        if self.key_by_subject is None:
            self.key_by_subject = self.stream in PUBLISHER_STREAMS
        if self.urgent and not self.patient:
            raise ValueError(f"{self.durable}: subjects that must not wait need a patient consumer")


def hold_apart(
    held: Sequence[Msg], fetched: Sequence[Msg], urgent: frozenset[str]
) -> tuple[list[Msg], list[Msg]]:
    """Of the messages held and those just fetched after them (stream order): those to handle
    now and those to hold on. Messages on `urgent` subjects go now, the others are held. A
    case's messages keep their order: a message to go now whose case (`ce-subject`) has a
    message held, or any message held without a case, takes everything held and fetched with
    it, in order."""
    waiting = {_case_key(m) for m in held}
    now: list[Msg] = []
    hold = list(held)
    for msg in fetched:
        if msg.subject in urgent:
            case = _case_key(msg)
            if waiting and (case is None or case in waiting or None in waiting):
                return [*held, *fetched], []
            now.append(msg)
        else:
            hold.append(msg)
            waiting.add(_case_key(msg))
    return now, hold


def _case_key(msg: Msg) -> str | None:
    return (msg.headers or {}).get("ce-subject")


# Streams only gridloop's services publish to, and streams whose subject names its publisher.
SERVICE_STREAMS = frozenset({"CASES", "DISPATCH"})
PUBLISHER_STREAMS = frozenset({"INTAKE", "HANDLING"})
# Every gridloop service's CloudEvents source is `/gridloop/<service>` (Runtime.source).
SERVICE_SOURCE_PREFIX = "/gridloop/"


def from_gridloop(headers: Mapping[str, str] | None) -> bool:
    """A CloudEvent in binary mode from a gridloop service: `ce-source` `/gridloop/<service>`
    and a `gridloop.` type. Two header look-ups, before anything is parsed."""
    if not headers:
        return False
    source = headers.get("ce-source")
    ce_type = headers.get("ce-type")
    return (
        source is not None
        and source.startswith(SERVICE_SOURCE_PREFIX)
        and ce_type is not None
        and ce_type.startswith("gridloop.")
    )


# The database is unreachable or restarting: no fault of the message.
UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


class LeadLost(Exception):
    """The lead's connection failed (the database restarted, or the network): its lock is
    gone and another replica may lead now, so this one hands its batch back and stands by."""


LEAD_POLL_S = 1.0  # how often a standby replica tries to take the lead
LEAD_CHECK_S = 5.0  # how often the leader checks that it still holds the lock


class Consumer:
    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        js: JetStreamContext,
        uow: UnitOfWorkFactory,
        pool: asyncpg.Pool,
        service: str,
        batch: int,
        max_deliver: int,
        ack_wait_s: float,
        max_ack_pending: int,
        retry_delay_s: float,
        lock_connect: Callable[[], Awaitable[Conn]] | None = None,
        linger_s: float = 0.0,
        linger_below: int = 1,
        patient_linger_s: float = 0.0,
    ) -> None:
        self.spec = spec
        # The lead's lock lives on a connection of its own, never one of the pool's: a pool
        # whose connections all held locks would leave none for the work.
        self.lock_connect = lock_connect
        self.js = js
        self.uow = uow
        self.pool = pool
        self.service = service
        self.batch = spec.batch or batch
        self.max_deliver = max_deliver
        self.ack_wait_s = ack_wait_s
        self.max_ack_pending = max_ack_pending
        self.retry_delay_s = retry_delay_s
        self.linger_s = linger_s
        self.linger_below = linger_below
        self.patient_linger_s = patient_linger_s
        self.running = False
        self._leading = False
        self._sub: JetStreamContext.PullSubscription | None = None
        # A lead's fetching (`_consume`): when it last confirmed its lock, the connection's
        # reconnects it has seen, whether the consumer must be declared again.
        self._lead_checked = 0.0
        self._reconnects_seen = 0
        self._lost = False
        # Set while nothing is held (`urgent`): what `settle` waits for.
        self._nothing_held = asyncio.Event()
        self._nothing_held.set()
        fetches = metrics.CONSUMER_FETCHES
        self._fetched = fetches.labels(service, spec.durable, "messages")
        self._fetched_none = fetches.labels(service, spec.durable, "empty")

    async def settle(self, limit_s: float) -> bool:
        """Wait until what this consumer holds right now has been handled (`urgent`), at
        most `limit_s`; False if it was still held then. The timers wait for it before they
        judge a deadline: a signature held a moment must count before its chase step fires."""
        if not self.holds:
            return True
        return await wait_set(self._nothing_held, limit_s)

    @property
    def holds(self) -> bool:
        """True while this consumer holds fetched messages it has not handled yet (a patient
        consumer's, `ConsumerSpec.urgent`): what `settle` waits for."""
        return not self._nothing_held.is_set()

    @property
    def leading(self) -> bool:
        """True while this replica holds the lock of an ordered durable and consumes it."""
        return self._leading

    @leading.setter
    def leading(self, value: bool) -> None:
        self._leading = value
        metrics.CONSUMER_LEADING.labels(self.service, self.spec.durable).set(int(value))

    def config(self) -> ConsumerConfig:
        filters = list(self.spec.subjects)
        return ConsumerConfig(
            durable_name=self.spec.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW if self.spec.deliver_new else DeliverPolicy.ALL,
            max_deliver=self.max_deliver,
            ack_wait=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending,
            filter_subject=filters[0] if len(filters) == 1 else None,
            filter_subjects=filters if len(filters) > 1 else None,
        )

    async def subscribe(self) -> None:
        cfg = self.config()

        async def declare() -> None:
            try:
                await self.js.add_consumer(self.spec.stream, cfg)
            except nats.js.errors.BadRequestError:
                # Exists with another config (an upgrade changed filters): update it in place.
                await self.js.add_consumer(self.spec.stream, cfg)
            except nats.js.errors.ServerError as exc:
                if exc.err_code != DELIVER_POLICY_FIXED:
                    raise
                # Moved back by the operator after a database restore (restore.py): it goes
                # on from where it was moved to; everything else is updated in place.
                have = (await self.js.consumer_info(self.spec.stream, self.spec.durable)).config
                await self.js.add_consumer(self.spec.stream, starting_as(cfg, have))

        # A stream just created in a cluster may still be electing its leader.
        await when_available(declare, what=f"consumer {self.spec.durable}", races=0)
        self._sub = quick_fetch(
            await self.js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)
        )
        self.running = True

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle until told to stop; the batch in hand is always finished. An
        ordered consumer fetches only while this replica holds the durable's lock."""
        if self._sub is None:
            await self.subscribe()
        self.running = True
        try:
            if not self.spec.ordered:
                await self._consume(stop, None)
                return
            while not stop.is_set():
                try:
                    await self._lead(stop)
                except Exception as exc:  # the lock's connection failed: stand by, try again
                    log.warning(
                        "consumer lost its lead", consumer=self.spec.durable, error=repr(exc)
                    )
                    self.leading = False
                await wait_set(stop, LEAD_POLL_S)
        finally:
            self.running = False

    async def _lead(self, stop: asyncio.Event) -> None:
        key = lock_key(f"consumer:{self.uow.schema}:{self.spec.durable}")
        if self.lock_connect is None:
            raise RuntimeError(f"{self.spec.durable}: an ordered consumer needs lock_connect")
        conn = await self.lock_connect()
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await wait_set(stop, LEAD_POLL_S)
                if stop.is_set():
                    return
            self.leading = True
            await self._predecessor_done(stop)
            await self._consume(stop, conn)
        finally:
            self.leading = False
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)  # frees the lock

    async def _predecessor_done(self, stop: asyncio.Event) -> None:
        """Messages the previous lead fetched and never acknowledged (it was killed, or lost
        its lock mid-batch) must take effect before anything newer: wait until none are in
        hand (acknowledged, or handed back with a nak) or `ack_wait` has passed, after which
        JetStream gives them to the next fetch ahead of newer ones."""
        assert self._sub is not None
        deadline = time.monotonic() + self.ack_wait_s
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                info = await self._sub.consumer_info()
            except Exception:  # the server is away: fetching will wait for it as well
                return
            if not info.num_ack_pending:
                return
            await wait_set(stop, 0.25)
        log.info(
            "took the lead from a replica that left messages in hand",
            consumer=self.spec.durable,
        )

    async def _consume(self, stop: asyncio.Event, lock: Conn | None) -> None:
        self._lead_checked = time.monotonic()
        self._reconnects_seen = self._reconnects()
        self._lost = False
        if self.spec.urgent:
            await self._consume_holding(stop, lock)
            return
        while not stop.is_set():
            await self._confirm_lead(lock)
            msgs = await self._fetch(stop, self.batch, 1.0)
            if msgs is None:
                continue
            if msgs:
                await self.process(msgs, lock)
            linger = self.linger_after(len(msgs))
            if linger > 0:
                await wait_set(stop, linger)

    async def _consume_holding(self, stop: asyncio.Event, lock: Conn | None) -> None:
        """`_consume` for a patient consumer with subjects that must not wait (`urgent`):
        what must not wait is handled as it comes, the rest is held and handled together
        `patient_linger_s` after the first of it was held (`hold_apart`). Held messages are
        handled before the consumer stops, and handed back (nak) if it fails."""
        urgent = frozenset(self.spec.urgent)
        held: list[Msg] = []
        due = 0.0
        try:
            while not stop.is_set():
                if held and (len(held) >= self.batch or time.monotonic() >= due):
                    batch, held = held, []
                    await self.process(batch, lock)
                    self._nothing_held.set()
                    continue
                await self._confirm_lead(lock)
                wait = min(1.0, due - time.monotonic()) if held else 1.0
                msgs = await self._fetch(stop, self.batch - len(held), max(wait, 0.005))
                if msgs is None:
                    continue
                now, still = hold_apart(held, msgs, urgent)
                if still and not held:
                    due = time.monotonic() + self.patient_linger_s
                    self._nothing_held.clear()
                held = still
                if now:
                    await self.process(now, lock)
                if not held:
                    self._nothing_held.set()
            if held:
                batch, held = held, []
                await self.process(batch, lock)
        finally:
            if held:
                await _nak_all(held)
            self._nothing_held.set()

    async def _confirm_lead(self, lock: Conn | None) -> None:
        """Every `LEAD_CHECK_S`: still holding the lock? A lost connection released it, and
        the statement's failure steps this replica down."""
        if lock is not None and time.monotonic() - self._lead_checked > LEAD_CHECK_S:
            await lock.fetchval("SELECT 1")
            self._lead_checked = time.monotonic()

    async def _fetch(self, stop: asyncio.Event, size: int, timeout: float) -> list[Msg] | None:
        """Up to `size` messages; None when none came within `timeout`, or when the bus
        failed (after a pause; the consumer is declared again before the next fetch)."""
        assert self._sub is not None
        try:
            if self._lost or self._reconnects_seen != self._reconnects():
                # The server may have come back without its state (a lost store), or the
                # consumer was removed: declare it again; idempotent if it survived.
                self._reconnects_seen = self._reconnects()
                await self.subscribe()
                self._lost = False
            msgs: list[Msg] = await self._sub.fetch(size, timeout=timeout)
            self._fetched.inc()
            return msgs
        except (TimeoutError, nats.errors.TimeoutError):
            self._fetched_none.inc()
            return None
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
            await wait_set(stop, 0.5)
            return None
        except Exception as exc:
            # e.g. 503 from a server without this consumer: declare it again
            log.warning("fetch failed", consumer=self.spec.durable, error=repr(exc))
            self._lost = True
            await wait_set(stop, 0.5)
            return None

    def linger_after(self, fetched: int) -> float:
        """How long to wait before the next fetch, after one that brought `fetched`."""
        if self.spec.linger_s > 0:
            return self.spec.linger_s if fetched < self.batch else 0.0
        if self.spec.patient and self.patient_linger_s > 0:
            return self.patient_linger_s if fetched < self.batch else 0.0
        lingers = self.spec.lingers or self.spec.patient
        if lingers and fetched < min(self.batch, self.linger_below):
            return self.linger_s
        return 0.0

    def _reconnects(self) -> int:
        return int(self.js._nc.stats.get("reconnects", 0))

    async def lag(self) -> int | None:
        if self._sub is None:
            return None
        try:
            info = await self._sub.consumer_info()
        except Exception:
            return None
        pending = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        metrics.CONSUMER_LAG.labels(self.service, self.spec.durable).set(pending)
        return pending

    async def process(self, msgs: list[Msg], lead: Conn | None = None) -> None:
        """Handle a fetched batch in one transaction (one by one if that fails). `lead`: the
        connection holding this replica's lock on an ordered durable, where the work is done
        — a transaction on it cannot commit once the lock is gone, so a replica that lost
        the lead never writes after its successor started. Its failure hands the batch back
        (nak, in order) and raises `LeadLost`."""
        started = time.perf_counter()
        if self.spec.services_only:
            msgs = await self._drop_foreign(msgs)
            if not msgs:
                return
        try:
            async with self._kept_in_hand(msgs):
                if len(msgs) == 1:
                    await self._one(msgs[0], lead)
                else:
                    await self._batch(msgs, lead)
        except LeadLost:
            log.warning("lead lost mid-batch; batch handed back", consumer=self.spec.durable)
            await _nak_all(msgs)
            raise
        metrics.HANDLER_SECONDS.labels(self.service, self.spec.durable).observe(
            time.perf_counter() - started
        )

    @contextlib.asynccontextmanager
    async def _kept_in_hand(self, msgs: list[Msg]) -> AsyncIterator[None]:
        """While a batch is worked on, tell JetStream every third of `ack_wait` that it is
        still in hand (`+WPI`), so a slow batch is not delivered again meanwhile. That is
        what lets `ack_wait` be short: a lead killed with a batch in hand holds its durable
        up for `ack_wait`, no longer. A batch done within a third of it sends nothing and
        costs a timer handle, not a task (this runs for every batch)."""
        every = self.ack_wait_s / 3
        keeper: asyncio.Task[None] | None = None

        async def keep() -> None:
            while True:
                for msg in msgs:
                    if not msg.is_acked:  # set by ack, nak and term
                        with contextlib.suppress(Exception):
                            await msg.in_progress()
                await asyncio.sleep(every)

        def start() -> None:
            nonlocal keeper
            keeper = asyncio.get_running_loop().create_task(keep())

        first = asyncio.get_running_loop().call_later(every, start)
        try:
            yield
        finally:
            first.cancel()
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper

    async def _batch(self, msgs: list[Msg], lead: Conn | None) -> None:
        try:
            done = await self._in_one_transaction(msgs, lead)
        except Exception as exc:
            self._check_lead(lead, exc)
            log.info(
                "batch failed, retrying one by one", consumer=self.spec.durable, error=str(exc)
            )
            done = None
        if done is not None:
            await _ack_all(msgs)
            metrics.EVENTS_IN.labels(self.service, self.spec.durable, "ok").inc(done)
            metrics.EVENTS_IN.labels(self.service, self.spec.durable, "duplicate").inc(
                len(msgs) - done
            )
        else:
            for msg in msgs:
                await self._one(msg, lead)

    @staticmethod
    def _check_lead(lead: Conn | None, exc: BaseException) -> None:
        """Raise LeadLost when the failure was the lead's connection."""
        if lead is not None and (lead.is_closed() or isinstance(exc, UNAVAILABLE)):
            raise LeadLost(repr(exc)) from exc

    @contextlib.asynccontextmanager
    async def _connection(self, lead: Conn | None) -> AsyncIterator[Conn]:
        if lead is not None:
            yield lead
        else:
            async with self.pool.acquire() as conn:
                yield conn

    async def _drop_foreign(self, msgs: list[Msg]) -> list[Msg]:
        """The messages from gridloop's services; the others are acked and dropped (a
        JetStream ack sent to a reply subject on this stream, anything not ours)."""
        kept = [m for m in msgs if from_gridloop(m.headers)]
        if len(kept) == len(msgs):
            return msgs
        for msg in msgs:
            if from_gridloop(msg.headers):
                continue
            headers = msg.headers or {}
            log.warning(
                "message not from a gridloop service dropped",
                consumer=self.spec.durable,
                subject=msg.subject,
                ce_source=headers.get("ce-source"),
                ce_type=headers.get("ce-type"),
                size=len(msg.data),
            )
            metrics.FOREIGN_MESSAGES.labels(self.service, self.spec.durable).inc()
            with contextlib.suppress(Exception):
                await msg.ack()
        return kept

    async def _in_one_transaction(self, msgs: list[Msg], lead: Conn | None = None) -> int:
        async with self._connection(lead) as conn:
            async with conn.transaction():
                fresh = await self._claim(conn, msgs)
                todo = [m for m in msgs if id(m) in fresh]
                written = await self._apply(conn, todo)
            self.uow.committed(written)
        return len(todo)

    async def _apply(self, conn: Conn, msgs: list[Msg]) -> list[Committed]:
        """Handle fresh messages in the open transaction; returns the outbox rows written."""
        if not msgs:
            return []
        if self.spec.rules is not None:
            inbound = [self._decoded(m) for m in msgs]
            return await apply_batch(
                conn, self.spec.rules, inbound, source=self.uow.source, clock=self.uow.clock
            )
        if self.spec.batch_handler is not None:
            works: list[Work] = []
            valid: list[tuple[Work, Envelope]] = []
            spans: list[Span] = []
            try:
                for msg in msgs:
                    work, env = await self._opened(conn, msg)
                    works.append(work)
                    if env is not None:
                        # each message's span continues its sender's trace; the events
                        # its work emits name that span as their parent (spans not
                        # recorded: they carry the sender's trace context on)
                        if tracing.recording():
                            span = _consume_span(msg, env)
                            spans.append(span)
                            work.trace = tracing.span_headers(span)
                        else:
                            work.trace = tracing.carried(msg.headers)
                        valid.append((work, env))
                if valid:
                    await self.spec.batch_handler(conn, valid)
            finally:
                for span in spans:
                    span.end()
            return await _written(conn, works)
        out: list[Work] = []
        for msg in msgs:
            out.append(await self._handle(conn, msg))
        return await _written(conn, out)

    async def _opened(self, conn: Conn, msg: Msg) -> tuple[Work, Envelope | None]:
        """A message of a batch handler's batch: its work and envelope; one that is not a
        CloudEvent goes to `on_invalid` (or the DLQ) here and has no envelope."""
        headers = msg.headers or {}
        try:
            env = decode(headers, msg.data)
        except EnvelopeError as err:
            if self.spec.on_invalid is None:
                raise Permanent(f"not a CloudEvent: {err}") from err
            work = Work(conn, source=self.uow.source, clock=self.uow.clock, subject=msg.subject)
            await self.spec.on_invalid(work, msg, err)
            return work, None
        work = Work(
            conn, source=self.uow.source, clock=self.uow.clock, trigger=env, subject=msg.subject
        )
        return work, env

    def _decoded(self, msg: Msg) -> Inbound:
        headers = msg.headers or {}
        try:
            env = decode(headers, msg.data)
        except EnvelopeError as err:
            raise Permanent(f"not a CloudEvent: {err}") from err
        return Inbound(env, msg.subject, headers)

    async def _claim(self, conn: Conn, msgs: list[Msg]) -> set[int]:
        """Insert the batch's ids into the inbox; return the messages not seen before.

        A handler table's consumer passes over the service's own events back on CASES
        (`apply_batch`: their rules ran when they were emitted), so they change nothing
        however often they come: they are let through without an inbox row."""
        if self.spec.key_by_subject:
            return await self._claim_by_subject(conn, msgs)
        fresh: set[int] = set()
        if self.spec.rules is not None:
            source = self.uow.source
            own = {id(m) for m in msgs if (m.headers or {}).get("ce-source") == source}
            if own:
                fresh = own
                msgs = [m for m in msgs if id(m) not in own]
                if not msgs:
                    return fresh
        keys = [(msg, _event_id(msg)) for msg in msgs]
        ids = [k for _, k in keys]
        rows = await conn.fetch(
            "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[]) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            self.spec.durable,
            ids,
        )
        new_ids = {r["event_id"] for r in rows}
        for msg, key in keys:
            if key in new_ids:
                fresh.add(id(msg))
                new_ids.discard(key)  # a duplicate inside one batch is handled once
        return fresh

    async def _claim_by_subject(self, conn: Conn, msgs: list[Msg]) -> set[int]:
        """`_claim` keyed `<subject>|<id>`. A redelivered message may have been handled
        under the key of earlier releases (`<ce-source>|<id>`): that row counts too, in the
        same statement. Only for redeliveries, so an old row another sender made with this
        sender's `ce-source` cannot swallow a new message."""
        keys = [(msg, _subject_key(msg), _legacy_key(msg)) for msg in msgs]
        rows = await conn.fetch(
            "INSERT INTO inbox (consumer, event_id) "
            "SELECT $1, k FROM unnest($2::text[], $3::text[]) AS t(k, legacy) "
            "WHERE t.legacy IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM inbox i WHERE i.consumer = $1 AND i.event_id = t.legacy) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            self.spec.durable,
            [k for _, k, _ in keys],
            [old for _, _, old in keys],
        )
        new_ids = {r["event_id"] for r in rows}
        fresh: set[int] = set()
        for msg, key, _ in keys:
            if key in new_ids:
                fresh.add(id(msg))
                new_ids.discard(key)  # a duplicate inside one batch is handled once
        return fresh

    async def _handle(self, conn: Conn, msg: Msg) -> Work:
        """Decode and handle one message in the open transaction; returns its work, whose
        events and timer changes are written once for the batch."""
        assert self.spec.handler is not None
        headers = msg.headers or {}
        token = otel_context.attach(tracing.context_from(headers))
        try:
            with tracing.tracer().start_as_current_span(
                f"consume {msg.subject}", kind=SpanKind.CONSUMER
            ):
                try:
                    env = decode(headers, msg.data)
                except EnvelopeError as err:
                    if self.spec.on_invalid is None:
                        raise Permanent(f"not a CloudEvent: {err}") from err
                    work = Work(
                        conn, source=self.uow.source, clock=self.uow.clock, subject=msg.subject
                    )
                    await self.spec.on_invalid(work, msg, err)
                    return work
                if env.subject:
                    trace.get_current_span().set_attribute(tracing.CASE_ID, env.subject)
                with structlog.contextvars.bound_contextvars(
                    event_id=env.id, case_id=env.subject, event_type=env.type
                ):
                    work = Work(
                        conn,
                        source=self.uow.source,
                        clock=self.uow.clock,
                        trigger=env,
                        subject=msg.subject,
                    )
                    await self.spec.handler(work, env)
                    return work
        finally:
            otel_context.detach(token)

    async def _one(self, msg: Msg, lead: Conn | None = None) -> None:
        async def once() -> bool:
            async with self._connection(lead) as conn:
                async with conn.transaction():
                    fresh = await self._claim(conn, [msg])
                    written = await self._apply(conn, [msg] if fresh else [])
                self.uow.committed(written)
            return bool(fresh)

        try:
            # undone for a concurrent transaction (a deadlock): the message is fine; again
            # now, in order, spending no delivery
            fresh = await again_on_conflict(
                once, "event", consumer=self.spec.durable, subject=msg.subject
            )
        except Exception as exc:
            self._check_lead(lead, exc)
            await self._failed(msg, exc)
            return
        with contextlib.suppress(Exception):
            await msg.ack()
        metrics.EVENTS_IN.labels(
            self.service, self.spec.durable, "ok" if fresh else "duplicate"
        ).inc()

    async def _failed(self, msg: Msg, exc: Exception) -> None:
        if isinstance(exc, UNAVAILABLE) and await self._database_back(msg):
            # The database was away, the message is fine: handle it again now, in order, and
            # spend none of its deliveries (an outage would otherwise fill the DLQ).
            await self._one(msg)
            return
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        permanent = isinstance(exc, Permanent)
        log.warning(
            "event handling failed",
            consumer=self.spec.durable,
            subject=msg.subject,
            delivered=delivered,
            error=repr(exc),
        )
        if permanent or delivered >= self.max_deliver:
            await self.dead_letter(msg, exc, delivered)
            with contextlib.suppress(Exception):
                await msg.term()
        else:
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.retry_delay_s * delivered)
            metrics.EVENTS_IN.labels(self.service, self.spec.durable, "retry").inc()

    async def _database_back(self, msg: Msg, timeout: float = 120.0) -> bool:
        """Hold the message (kept in progress) until the database answers again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                async with self.pool.acquire(timeout=2) as conn:
                    await conn.fetchval("SELECT 1")
                return True
            except Exception:
                with contextlib.suppress(Exception):
                    await msg.in_progress()
                await asyncio.sleep(0.5)
        return False

    async def dead_letter(self, msg: Msg, exc: Exception, delivered: int) -> None:
        """Park the message on dlq.<service> and in dead_letters, where operators see it."""
        # Kept as text: U+0000, which no text column takes, replaced (else the dead letter
        # itself would fail, again on every delivery).
        headers = {storable(k): storable(v) for k, v in (msg.headers or {}).items()}
        error = storable(repr(exc)[:2000])
        event_id = headers.get("ce-id") or headers.get("Nats-Msg-Id")
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO dead_letters (consumer, subject, event_id, headers, body, error,"
                " deliveries) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                self.spec.durable,
                msg.subject,
                event_id,
                headers,
                msg.data,
                error,
                delivered,
            )
        dlq_headers = {
            k: v
            for k, v in (msg.headers or {}).items()
            if k.lower() not in ("nats-msg-id", "nats-expected-stream")
        }
        dlq_headers.update(
            {
                "Gridloop-Dlq-Subject": msg.subject,
                "Gridloop-Dlq-Consumer": self.spec.durable,
                "Gridloop-Dlq-Error": error.replace("\r", " ").replace("\n", " ")[:500],
                "Gridloop-Dlq-Deliveries": str(delivered),
            }
        )
        try:
            await self.js.publish(subjects.dlq(self.service), msg.data, headers=dlq_headers)
        except Exception as pub_exc:
            log.error("dlq publish failed; kept in dead_letters", error=str(pub_exc))
        metrics.DEAD_LETTERS.labels(self.service, self.spec.durable).inc()


async def _written(conn: Conn, works: list[Work]) -> list[Committed]:
    """The timer changes, outbox rows and gathered writes of a batch's works, written in one
    statement."""
    ops = [op for w in works for op in w.take_timer_ops()]
    writes = Writes()
    for w in works:
        writes.absorb(w.writes)
    return await write_all(conn, ops, [row for w in works for row in w.take_rows()], writes)


async def _ack_all(msgs: list[Msg]) -> None:
    """Ack each message of a handled batch. An ack only queues a publish on the connection, so
    awaiting them in turn costs no round trips (and no task per message, as gather would)."""
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.ack()


async def _nak_all(msgs: list[Msg]) -> None:
    """Hand a batch back, in order, for redelivery at once (to whichever replica leads)."""
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak()


def _subject_key(msg: Msg) -> str:
    """The inbox key where the subject names the publisher: `<subject>|<id>` (the id from
    `ce-id`, a structured event's `id`, or `Nats-Msg-Id`), else the stream position."""
    headers = msg.headers or {}
    event_id = headers.get("ce-id")
    if not event_id:
        with contextlib.suppress(Exception):
            doc = orjson.loads(msg.data)
            if isinstance(doc, dict) and isinstance(doc.get("id"), str):
                event_id = doc["id"]
    if not event_id:
        event_id = headers.get("Nats-Msg-Id")
    if event_id:
        return subject_key(msg.subject, event_id)
    meta = msg.metadata
    return f"{meta.stream}:{meta.sequence.stream}"


def subject_key(subject: str, event_id: str) -> str:
    """The inbox key of a message on a stream whose subject names its publisher
    (`ConsumerSpec.key_by_subject`): `<subject>|<id>`, the id kept as text even with a
    U+0000 in it (it is the sender's)."""
    return storable(f"{subject}|{event_id}")


def emit_taken(
    work: Work, event: Event, *, subject: str, consumer: str, case_id: str | None = None
) -> Envelope:
    """Emit `event` on `subject` of a stream `consumer` (a durable of this service, keyed by
    subject) reads, and mark it taken for that consumer in the same transaction: the consumer
    passes over it. A database restored to a moment before it has neither the event's outbox
    row nor the mark, and the consumer, moved back to that moment, takes it (what a service
    took over REST, kept on the bus for a restore)."""
    env = work.emit(event, subject=subject, case_id=case_id)
    work.writes.add(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        consumer,
        subject_key(subject, env.id),
    )
    return env


def _legacy_key(msg: Msg) -> str | None:
    """The key a redelivered message had before keys named the subject (`_event_id`)."""
    with contextlib.suppress(Exception):
        if msg.metadata.num_delivered > 1:
            return storable(_event_id(msg))
    return None


def _event_id(msg: Msg) -> str:
    """The inbox key: CloudEvents ids are unique per source, so the key is `source|id`; a
    message without one is keyed by its stream position."""
    headers = msg.headers or {}
    if headers.get("ce-id"):
        return f"{headers.get('ce-source', '')}|{headers['ce-id']}"
    with contextlib.suppress(Exception):
        doc = orjson.loads(msg.data)
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            return f"{doc.get('source', '')}|{doc['id']}"
    if headers.get("Nats-Msg-Id"):
        return f"|{headers['Nats-Msg-Id']}"
    meta = msg.metadata
    return f"{meta.stream}:{meta.sequence.stream}"


def _consume_span(msg: Msg, env: Envelope) -> Span:
    """A started span for one message of a batch handler's batch, child of the sender's."""
    data = env.data if isinstance(env.data, dict) else {}
    case_id = env.subject or data.get("case_id")
    attributes = {tracing.EVENT_TYPE: env.type}
    if isinstance(case_id, str) and case_id:
        attributes[tracing.CASE_ID] = case_id
    return tracing.tracer().start_span(
        f"consume {msg.subject}",
        context=tracing.context_from(msg.headers),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
