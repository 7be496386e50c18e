"""NATS JetStream: the connection of a service and the idempotent creation of the streams."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
import structlog
from gridloop_contracts import subjects
from gridloop_contracts.subjects import STREAMS, StreamSpec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StoreCompression,
    StreamConfig,
)
from nats.js.errors import NotFoundError

log = structlog.get_logger(__name__)

# Dedupe window for Nats-Msg-Id: a relay that re-publishes after a crash within it is absorbed
# by JetStream; beyond it, consumers' inboxes absorb it.
DUPLICATE_WINDOW_S = 600.0

# How long start-up waits for JetStream to be able to act (module doc of `when_available`).
JETSTREAM_WAIT_S = 60.0
# What JetStream answers while it cannot act yet: 10005 no suitable peers for placement (a
# node of the cluster not known yet, or down), 10008 temporarily unavailable (no meta
# leader), 10009 cluster cannot handle the request, 10023 insufficient resources.
UNAVAILABLE_ERR_CODES = frozenset({10005, 10008, 10009, 10023})

# JetStream's answer to a change of where a durable consumer starts, which it does not update.
DELIVER_POLICY_FIXED = 10012

T = TypeVar("T")


def starting_as(cfg: ConsumerConfig, have: ConsumerConfig) -> ConsumerConfig:
    """`cfg`, starting where the existing consumer `have` starts (its deliver policy and its
    start time or sequence): what updates a consumer in place without moving it."""
    return replace(
        cfg,
        deliver_policy=have.deliver_policy,
        opt_start_time=have.opt_start_time,
        opt_start_seq=have.opt_start_seq,
    )


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    on_reconnected: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> Client:
    """Connect with reconnects forever: a service outlives restarts of nats-server.
    `on_reconnected` runs (as its own task) after every reconnect."""

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")
        if on_reconnected is not None:
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(on_reconnected())
            _hooks.add(task)
            task.add_done_callback(_hooks.discard)

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    return await nats.connect(
        servers=url.split(","),
        name=name,
        user=user,
        password=password,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )


_hooks: set[asyncio.Task[None]] = set()


def quick_fetch(sub: JetStreamContext.PullSubscription) -> JetStreamContext.PullSubscription:
    """The pull subscription with a `fetch` that hands over at once what comes to an idle
    consumer, and a cheaper wait for each message of a fetch.

    **The requests.** nats-py's `fetch` asks for the whole batch with a `no_wait` request
    that carries `expires`; the server then waits for the first message, and as it does
    not always say when no more are there, a fetch could keep a lone message until the next
    one came: a fifth of a second for a sixth of the reports at five reports a second
    (measured in the services; never seen with nats-server alone). This `fetch` asks in two
    plain steps, each of which the server ends by itself:

    1. the batch, `no_wait` without `expires`: what is there now, ended by a 404;
    2. if that was nothing, one message with `expires`: ended by that message, or by the
       server's 408 at `expires`, which the fetch waits for, so that no request of a
       finished fetch stays open on the server to deliver into the next one.

    What an earlier request left in the subscription's queue is taken first, and a status
    found there (the end of an earlier request) is dropped. A fetch whose time ends while a
    batch is still coming in returns what it took; the rest waits in the queue. The errors
    are nats-py's: `nats.errors.TimeoutError` when nothing came, `ConnectionClosedError`,
    and the server's other answers (503 when the consumer has no leader, say) as
    `nats.js.errors.APIError`s. Idle heartbeats are not asked for.

    **The wait per message.** nats-py's `next_msg` makes a uuid, a task and a `wait_for`
    (another task) for every message, even one already in the subscription's queue: about
    90 µs of CPU per message delivered at a batch of 20, three times what taking and
    acknowledging it costs otherwise (measured: 118 µs against 30 µs a message). This
    `next_msg` takes a message already queued at once and waits for one under
    `asyncio.timeout`, with the same bookkeeping and error (`nats.errors.TimeoutError`). It
    ends at its timeout, not when the connection closes (nats-py cancels its own waits
    then): the services close the connection after their consumers have stopped."""
    inner = sub._sub
    queue: asyncio.Queue[Any] = inner._pending_queue
    conn = inner._conn

    async def next_msg(timeout: float | None = 1.0) -> Any:
        if conn.is_closed:
            raise nats.errors.ConnectionClosedError
        if queue.empty():
            try:
                async with asyncio.timeout(timeout):
                    msg = await queue.get()
            except TimeoutError:
                raise nats.errors.TimeoutError from None
        else:
            msg = queue.get_nowait()
        inner._pending_size -= len(msg.data)
        queue.task_done()
        return msg

    async def ask(request: dict[str, Any]) -> None:
        await conn.publish(sub._nms, json.dumps(request).encode(), sub._deliver)

    def ended(msg: Any) -> bool:
        """A status that ends a request (404 no messages, 408 expired, 409); any other
        but a heartbeat raises nats-py's error for it."""
        code = JetStreamContext.is_status_msg(msg)
        if code is None or code == api.StatusCode.CONTROL_MESSAGE:
            return False
        if JetStreamContext._is_temporary_error(code):
            return True
        raise nats.js.errors.APIError.from_msg(msg)

    async def fetch(
        batch: int = 1, timeout: float | None = 5, heartbeat: float | None = None
    ) -> list[Any]:
        if batch < 1:
            raise ValueError("nats: invalid batch size")
        if timeout is None or timeout <= 0:
            raise ValueError("nats: invalid fetch timeout")
        if conn.is_closed:
            raise nats.errors.ConnectionClosedError
        started = time.monotonic()
        msgs: list[Any] = []
        while len(msgs) < batch and not queue.empty():
            msg = await next_msg(0)
            if JetStreamContext.is_status_msg(msg) is None:
                msgs.append(msg)
        if msgs:
            return msgs
        await ask({"batch": batch, "no_wait": True})
        while len(msgs) < batch:
            try:
                msg = await next_msg(max(timeout - (time.monotonic() - started), 0.001))
            except nats.errors.TimeoutError:
                # Out of time with the answer still coming (a batch arrives over several
                # reads): what was taken is returned, the rest stays queued for the next
                # fetch. Raising here would drop what was taken until its redelivery.
                if msgs:
                    return msgs
                raise
            if ended(msg):
                break
            if JetStreamContext.is_status_msg(msg) is None:
                msgs.append(msg)
        if msgs:
            return msgs
        left = timeout - (time.monotonic() - started)
        if left <= 0.001:
            raise nats.errors.TimeoutError
        await ask({"batch": 1, "expires": int(left * 1_000_000_000)})
        while True:
            msg = await next_msg(left + _EXPIRY_GRACE_S)
            if ended(msg):
                raise nats.errors.TimeoutError
            if JetStreamContext.is_status_msg(msg) is None:
                return [msg]

    inner.next_msg = next_msg  # type: ignore[method-assign]
    sub.fetch = fetch  # type: ignore[method-assign]
    return sub


# How long past its `expires` a fetch waits for the server's 408 that ends its request.
_EXPIRY_GRACE_S = 0.5


async def keep_streams(
    js: JetStreamContext,
    specs: Sequence[StreamSpec] = STREAMS,
    *,
    replicas: int = 1,
    max_ages_s: Mapping[str, float] | None = None,
    compression: StoreCompression = StoreCompression.S2,
    feeds: Sequence[Feed] = (),
) -> None:
    """After a reconnect: the server may have come back without its store (lost, or a new
    node), so create the streams (and `feeds`) again until it works; a no-op when they
    survived."""
    for attempt in range(60):
        try:
            await ensure_streams(
                js, specs, replicas=replicas, max_ages_s=max_ages_s, compression=compression
            )
            await ensure_feeds(js, feeds)
            return
        except Exception as exc:
            log.warning("streams not ensured after reconnect", attempt=attempt, error=str(exc))
            await asyncio.sleep(min(0.5 * (attempt + 1), 5.0))


def unavailable(exc: BaseException) -> bool:
    """JetStream could not act on a request yet, and will: no answer (a cluster still
    electing its meta leader, or a stream its leader, does not answer), no responder, the
    client reconnecting, or an answer that says so (503, UNAVAILABLE_ERR_CODES; to a
    publish: NoStreamResponseError). An error raised from such a one is one too."""
    if exc.__cause__ is not None and unavailable(exc.__cause__):
        return True
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return True  # a fetch's 503 status (no leader yet) comes without code and err_code
    if isinstance(exc, nats.js.errors.APIError):
        return exc.code == 503 or exc.err_code in UNAVAILABLE_ERR_CODES
    return isinstance(
        exc,
        (
            TimeoutError,
            nats.errors.TimeoutError,
            nats.errors.NoRespondersError,
            nats.errors.ConnectionReconnectingError,
            nats.js.errors.NoStreamResponseError,
        ),
    )


async def when_available(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    wait_s: float = JETSTREAM_WAIT_S,
    races: int = 4,
) -> T:
    """Run a JetStream API call (`op`) until it is done. While JetStream is unavailable
    (a cluster that just started elects its meta leader; a node is down and a stream elects
    a new leader) it is tried again, with back-off, for up to `wait_s`; another API error
    is tried again `races` times (two replicas creating the same stream or consumer at once:
    the loser's next look finds it); anything else is raised at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    attempt = 0
    while True:
        try:
            return await op()
        except Exception as exc:
            attempt += 1
            if unavailable(exc):
                if loop.time() > deadline:
                    raise
                log.info("jetstream unavailable, trying again", what=what, error=repr(exc))
                await asyncio.sleep(min(0.2 * attempt, 2.0))
            elif isinstance(exc, nats.js.errors.APIError) and attempt <= races:
                log.info("jetstream retry", what=what, error=str(exc))
                await asyncio.sleep(0.2 * attempt)
            else:
                raise


async def read_stored(
    js: JetStreamContext,
    stream: str,
    keep: Callable[[Msg], T],
    *,
    subject: str = ">",
    since: datetime | None = None,
    wait_s: float = JETSTREAM_WAIT_S,
) -> list[T]:
    """`keep` of each message `stream` holds (of its subjects matching `subject`), in order,
    from its first or from the first stored at `since`, to the last there when nothing more
    is pending: through a reader of its own (an ephemeral pull consumer without acks, which
    the server removes once idle). A stream that does not exist holds none.

    On a cluster the reader's new consumer may have no leader yet (a 503), and a busy server
    can be slow to answer a pull while messages are pending: both are waited out, for up to
    `wait_s` without progress."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    if not info.state.messages:
        return []
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL if since is None else DeliverPolicy.BY_START_TIME,
            opt_start_time=None if since is None else since.astimezone(UTC),
            inactive_threshold=30,
        ),
    )
    out: list[T] = []
    stalled_at = time.monotonic() + wait_s
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=2)
            except Exception as exc:
                if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
                    # nothing came in time: the end, unless the reader still has some to hand
                    if not (await sub.consumer_info()).num_pending:
                        break
                elif not unavailable(exc):
                    raise
                if time.monotonic() > stalled_at:
                    raise
                await asyncio.sleep(0.2)
                continue
            stalled_at = time.monotonic() + wait_s
            out += [keep(m) for m in msgs]
            if msgs[-1].metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out


def stream_config(
    spec: StreamSpec,
    replicas: int = 1,
    max_age_s: float | None = None,
    compression: StoreCompression = StoreCompression.S2,
) -> StreamConfig:
    """The stream as the services make it; `max_age_s` None or 0: its messages kept for
    ever. `compression` (STREAM_COMPRESSION): how the server stores a file block once it is
    full, S2 by default (a full block of `CASES` events takes about a sixth of its plain
    size; docs/operations.md, "Scale")."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        description=spec.description,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=max_age_s or None,
        compression=compression,
    )


async def ensure_streams(
    js: JetStreamContext,
    specs: Sequence[StreamSpec] = STREAMS,
    *,
    replicas: int = 1,
    max_ages_s: Mapping[str, float] | None = None,
    compression: StoreCompression = StoreCompression.S2,
    wait_s: float = JETSTREAM_WAIT_S,
) -> None:
    """Create each stream, or update it to the wanted subjects and compression and, for a
    stream named in `max_ages_s` (seconds, 0: for ever; STREAM_MAX_AGE_DAYS), the wanted
    age; a stream not named there keeps the age it has. Safe to call from every replica, and
    waits (up to `wait_s`) for a JetStream that cannot act yet."""
    ages = max_ages_s or {}
    for spec in specs:
        cfg = stream_config(spec, replicas, ages.get(spec.name), compression)
        await when_available(
            functools.partial(_ensure_stream, js, spec, cfg, aged=spec.name in ages),
            what=f"stream {spec.name}",
            wait_s=wait_s,
        )


async def _ensure_stream(
    js: JetStreamContext, spec: StreamSpec, cfg: StreamConfig, *, aged: bool
) -> None:
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(cfg)
        log.info(
            "stream created", stream=spec.name, replicas=cfg.num_replicas, max_age_s=cfg.max_age
        )
        return
    have_age = info.config.max_age or 0.0
    new_subjects = sorted(info.config.subjects or []) != sorted(spec.subjects)
    # whole seconds: the server keeps nanoseconds, the setting is days
    new_age = aged and round(have_age) != round(cfg.max_age or 0.0)
    # a new compression takes effect on the blocks written from now on
    new_compression = (info.config.compression or StoreCompression.NONE) != cfg.compression
    if new_subjects or new_age or new_compression:
        # what is not being changed stays as it is: the replicas (STREAM_REPLICAS applies to
        # a stream made) and the age of a stream not named
        cfg = replace(cfg, num_replicas=info.config.num_replicas or cfg.num_replicas)
        if not aged:
            cfg = replace(cfg, max_age=have_age or None)
        await js.update_stream(cfg)
        log.info(
            "stream updated",
            stream=spec.name,
            subjects=new_subjects,
            max_age_s=cfg.max_age,
            compression=str(cfg.compression),
        )


@dataclass(frozen=True)
class Feed:
    """A durable pull consumer gridloop keeps for a reader outside it: a department's
    `dept-<dept>` on DISPATCH, an integrator's `src-<source>` on NOTIFY. The service that
    writes the stream creates it, with a fixed filter and no delivery subject; the reader's
    NATS user may only look it up, fetch and ack (tools/gen_nats_config.py), so it can
    neither widen the filter nor have JetStream deliver into a subject of its choosing."""

    stream: str
    durable: str
    filter_subject: str

    @classmethod
    def department(cls, dept: str) -> Feed:
        return cls("DISPATCH", f"dept-{dept}", subjects.dispatch_all(dept))

    @classmethod
    def integrator(cls, source: str) -> Feed:
        return cls("NOTIFY", f"src-{source}", subjects.notify(source))

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=self.filter_subject,
        )

    def fits(self, cfg: ConsumerConfig) -> bool:
        """An existing consumer of this name is the feed: pulled, explicitly acked, this
        filter (what a reader may have tuned besides, such as ack_wait, stays)."""
        return (
            not cfg.deliver_subject
            and cfg.filter_subject == self.filter_subject
            and not cfg.filter_subjects
            and cfg.ack_policy == AckPolicy.EXPLICIT
        )


async def ensure_feeds(
    js: JetStreamContext, feeds: Sequence[Feed], *, wait_s: float = JETSTREAM_WAIT_S
) -> None:
    """Create each feed consumer that is missing; one that exists keeps its position, unless
    it is not the feed (a push consumer, another filter), which is replaced. Waits (up to
    `wait_s`) for a JetStream that cannot act yet."""
    for feed in feeds:
        await when_available(
            functools.partial(_ensure_feed, js, feed),
            what=f"feed {feed.durable}",
            wait_s=wait_s,
            races=0,
        )


async def _ensure_feed(js: JetStreamContext, feed: Feed) -> None:
    try:
        info = await js.consumer_info(feed.stream, feed.durable)
    except NotFoundError:
        info = None
    if info is not None:
        if feed.fits(info.config):
            return
        log.warning(
            "feed consumer is not the feed; replacing it",
            stream=feed.stream,
            consumer=feed.durable,
            deliver_subject=info.config.deliver_subject,
            filter=info.config.filter_subject,
        )
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(feed.stream, feed.durable)
    try:
        await js.add_consumer(feed.stream, feed.config())
    except nats.js.errors.APIError as exc:
        if unavailable(exc):
            raise
        # Another replica created it first: fine if it is the feed.
        info = await js.consumer_info(feed.stream, feed.durable)
        if not feed.fits(info.config):
            raise RuntimeError(f"feed {feed.durable} on {feed.stream}: {exc}") from exc
