"""Runtime guarantees against a real nats-server and PostgreSQL: outbox, inbox, DLQ, tracing."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import nats
import pytest
from fastapi import APIRouter, Request
from gridloop_contracts import Envelope, Event, decode, to_binary
from gridloop_devkit.testing import (
    holding,
    http_client,
    read_stream,
    running,
    settings_for,
    wait_for,
)
from gridloop_runtime import db
from gridloop_runtime.consumer import Consumer, ConsumerSpec, Handler
from gridloop_runtime.outbox import OutboxRelay, Publisher, Work, unsent_count
from gridloop_runtime.service import ServiceDefinition, runtime_of
from gridloop_runtime.writes import Direct
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

MIGRATIONS = Path(__file__).parent / "sql"


class Pinged(Event):
    """A test-only case event (deliberately not registered in the contracts)."""

    type_name: ClassVar[str] = "gridloop.case.pinged.v1"
    subject_token: ClassVar[str] = "pinged"
    case_id: str
    n: int = 0


async def count_in_stream(js: JetStreamContext, subject: str) -> int:
    info = await js.stream_info("CASES", subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def record_ping(work: Work, env: Envelope) -> None:
    await work.conn.execute(
        "INSERT INTO seen (event_id, n) VALUES ($1, $2)", env.id, int(env.data.get("n", 0))
    )
    await work.conn.execute("UPDATE counter SET value = value + 1")


def echo_definition(
    handler: Handler | None = None,
    *,
    routers: Sequence[APIRouter] = (),
    consumers: Sequence[ConsumerSpec] | None = None,
) -> ServiceDefinition:
    return ServiceDefinition(
        name="echo",
        migrations_dir=MIGRATIONS,
        consumers=consumers
        if consumers is not None
        else [ConsumerSpec("echo-pings", "CASES", ["case.pinged"], handler or record_ping)],
        routers=routers,
    )


async def test_rolled_back_transaction_publishes_nothing(database_url: str, nats_url: str) -> None:
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition(consumers=[])) as rt:
        assert rt.uow is not None and rt.js is not None and rt.pool is not None

        with pytest.raises(RuntimeError):
            async with rt.uow() as work:
                work.emit(Pinged(case_id="C-ROLLBACK", n=1))
                raise RuntimeError("state change failed")

        async with rt.uow() as work:
            work.emit(Pinged(case_id="C-COMMIT", n=2))

        js = rt.js  # the narrowing above does not reach into a lambda; a local keeps it
        await wait_for(lambda: count_in_stream(js, "case.pinged"), what="the committed event")
        async with rt.pool.acquire() as conn:
            subjects = await conn.fetch("SELECT headers->>'ce-subject' AS s FROM outbox")
        assert [r["s"] for r in subjects] == ["C-COMMIT"]
        sub = await rt.js.pull_subscribe("case.pinged", stream="CASES")
        msgs = await sub.fetch(10, timeout=1)
        assert [decode(m.headers, m.data).subject for m in msgs] == ["C-COMMIT"]


def published(publisher: Publisher, count: int) -> Callable[[], bool]:
    return lambda: publisher.published == count


async def test_rows_published_close_together_are_marked_sent_with_one_statement(
    database_url: str, nats_url: str
) -> None:
    """Each commit's rows are published at once; their marks are gathered (one statement
    for what was published within `mark_every_s`: their lines in `outbox_pending` go, the
    rows themselves are not rewritten), and nothing published is left unmarked when the
    publisher stops."""
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition(consumers=[])) as rt:
        assert rt.uow is not None and rt.js is not None and rt.pool is not None
        # this process's own publisher stands aside: the rows are handed to one under test
        rt.uow.publisher = None
        publisher = Publisher(rt.pool, rt.js, service="echo", mark_every_s=3600)
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        pool = rt.pool

        async def pending() -> list[int]:
            async with pool.acquire() as conn:
                return [r["seq"] for r in await conn.fetch("SELECT seq FROM outbox_pending")]

        async def versions() -> list[object]:
            """Each row's version (`xmin`): a row rewritten would have a new one."""
            async with pool.acquire() as conn:
                return [r["v"] for r in await conn.fetch("SELECT xmin::text AS v FROM outbox")]

        for n in range(3):
            async with rt.pool.acquire() as conn, conn.transaction():
                work = Work(conn, source=rt.uow.source, clock=rt.uow.clock)
                work.emit(Pinged(case_id=f"C-MARK-{n}", n=n))
                rows = await work.flush()
            publisher.hand(rows)
            await wait_for(published(publisher, n + 1), what=f"commit {n} sent")
            if n == 0:  # the first after a quiet spell is marked at once
                await wait_for(lambda: publisher._sent == [], what="the first mark")
        assert len(await pending()) == 2  # the next two wait for one mark together
        written = await versions()
        async with pool.acquire() as conn:
            assert await conn.fetchval(unsent_count()) == 2
        stop.set()
        await task
        assert await pending() == []
        assert await versions() == written  # marked without rewriting the rows
        assert await count_in_stream(rt.js, "case.pinged") == 3


async def test_direct_messages_go_out_after_the_events_and_their_rows_are_deleted(
    database_url: str, nats_url: str
) -> None:
    """A unit of work's direct messages (a reply to a request's `replyto`) are handed to the
    publisher with its events, after them and in order; the publisher sends them on core
    NATS and deletes their rows (a table of the service's, `direct_table`)."""
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition(consumers=[])) as rt:
        assert rt.uow is not None and rt.js is not None and rt.pool is not None
        rt.uow.publisher = None
        pool = rt.pool
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE direct_out (id bigserial PRIMARY KEY, subject text NOT NULL, "
                "headers jsonb NOT NULL, body bytea NOT NULL)"
            )
        publisher = Publisher(pool, rt.js, service="echo", direct_table="direct_out")
        nc = await nats.connect(nats_url)
        heard: list[Msg] = []

        async def hear(msg: Msg) -> None:
            heard.append(msg)

        await nc.subscribe("_INBOX.direct-test.>", cb=hear)
        await nc.flush()
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        try:
            async with pool.acquire() as conn, conn.transaction():
                work = Work(conn, source=rt.uow.source, clock=rt.uow.clock)
                work.emit(Pinged(case_id="C-DIRECT", n=1))
                messages = [
                    Direct(f"_INBOX.direct-test.{n}", {"ce-id": f"r-{n}"}, f"reply {n}".encode())
                    for n in (1, 2)
                ]
                work.writes.add_direct(
                    "INSERT INTO direct_out (subject, headers, body) "
                    "SELECT u.s, u.h::jsonb, u.b FROM unnest($1::text[], $2::text[], "
                    "$3::bytea[]) WITH ORDINALITY AS u(s, h, b, n) ORDER BY u.n RETURNING id",
                    [m.subject for m in messages],
                    [json.dumps(m.headers) for m in messages],
                    [m.body for m in messages],
                    messages=messages,
                )
                rows = await work.flush()
            assert [r.direct for r in rows] == [False, True, True]
            assert rows[1].seq < rows[2].seq
            publisher.hand(rows)
            await wait_for(lambda: len(heard) == 2, what="both replies heard")
            assert [(m.subject, m.data) for m in heard] == [
                ("_INBOX.direct-test.1", b"reply 1"),
                ("_INBOX.direct-test.2", b"reply 2"),
            ]
            assert [m.headers["ce-id"] for m in heard if m.headers] == ["r-1", "r-2"]

            async def rows_gone() -> bool:
                async with pool.acquire() as conn:
                    return int(await conn.fetchval("SELECT count(*) FROM direct_out")) == 0

            await wait_for(rows_gone, what="the sent replies' rows deleted")
            assert await count_in_stream(rt.js, "case.pinged") == 1
        finally:
            stop.set()
            await task
            await nc.close()


async def sweep(rt: Any, database_url: str, rows: int) -> None:
    """Run a sweeper (a restarted process's) until it has published `rows` rows, then stop
    it. It sends whatever it finds in one batch: more than `rows` fails the wait."""
    relay = OutboxRelay(
        rt.js,
        lock_connect=functools.partial(db.connect, database_url, rt.schema),
        schema=rt.schema,
        service="echo",
        poll_s=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await wait_for(lambda: relay.published == rows, what=f"the sweeper sends {rows} rows")
    finally:
        stop.set()
        await task


async def test_committed_event_survives_relay_crash(database_url: str, nats_url: str) -> None:
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition(consumers=[])) as rt:
        assert rt.uow is not None and rt.js is not None and rt.pool is not None
        # Stop the publisher and the sweeper, as if the process died right after the commit.
        rt.stop_event.set()
        rt._publisher_stop.set()
        await asyncio.sleep(0)  # let the background tasks observe the stop
        await asyncio.wait(rt._tasks, timeout=5)
        async with rt.uow() as work:
            work.emit(Pinged(case_id="C-1", n=1))
        assert await count_in_stream(rt.js, "case.pinged") == 0

        # A relay that published but crashed before marking the row sent: it publishes again.
        async with rt.pool.acquire() as conn:
            rows = await conn.fetch("SELECT seq, subject, headers, body FROM outbox")
        from gridloop_runtime.outbox import Committed, publish_rows

        await publish_rows(
            rt.js, [Committed(r["seq"], r["subject"], r["headers"], r["body"]) for r in rows]
        )

        # The restarted relay publishes the committed row; JetStream drops the duplicate id.
        await sweep(rt, database_url, 1)
        assert await count_in_stream(rt.js, "case.pinged") == 1
        async with rt.pool.acquire() as conn:
            assert await conn.fetchval(unsent_count()) == 0


async def test_the_sweeper_sends_what_either_release_left_unpublished_once_each(
    database_url: str, nats_url: str
) -> None:
    """Rows this release writes wait in `outbox_pending` until published; a row an earlier
    release wrote and left unpublished has `sent_at IS NULL` (as during a rollout, or in a
    database upgraded in place); a row both pending and cleared by hand goes out once. The
    sweeper sends all three, in order, marks them, and nothing is left unpublished."""
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition(consumers=[])) as rt:
        assert rt.uow is not None and rt.js is not None and rt.pool is not None
        rt.stop_event.set()  # no publisher, no sweeper: the process died after its commits
        rt._publisher_stop.set()
        await asyncio.sleep(0)
        await asyncio.wait(rt._tasks, timeout=5)
        for n in range(3):
            async with rt.uow() as work:
                work.emit(Pinged(case_id=f"C-LEFT-{n}", n=n))
        async with rt.pool.acquire() as conn:
            seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM outbox ORDER BY seq")]
            assert [r["seq"] for r in await conn.fetch("SELECT seq FROM outbox_pending")] == seqs
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
            # the second as an earlier release left it; the third's sent_at cleared by hand
            await conn.execute("DELETE FROM outbox_pending WHERE seq = $1", seqs[1])
            await conn.execute(
                "UPDATE outbox SET sent_at = NULL WHERE seq = ANY($1::bigint[])", seqs[1:]
            )
            assert await conn.fetchval(unsent_count()) == 3
        await sweep(rt, database_url, 3)
        msgs = await read_stream(rt.js, "CASES", "case.pinged")
        assert [m.headers["ce-subject"] for m in msgs] == [
            "C-LEFT-0",
            "C-LEFT-1",
            "C-LEFT-2",
        ]
        async with rt.pool.acquire() as conn:
            assert await conn.fetchval(unsent_count()) == 0
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_redelivered_event_changes_nothing(database_url: str, nats_url: str) -> None:
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition()) as rt:
        assert rt.js is not None and rt.pool is not None
        env = Envelope.of(Pinged(case_id="C-9", n=9), source="/gridloop/test")
        headers, body = to_binary(env)
        # The same event published three times: twice within the dedupe window (the bus drops
        # it), once more with a different stream message id (the consumer's inbox drops it).
        await rt.js.publish("case.pinged", body, headers=headers)
        await rt.js.publish("case.pinged", body, headers=headers)
        other = dict(headers, **{"Nats-Msg-Id": "another-msg-id"})
        await rt.js.publish("case.pinged", body, headers=other)
        marker = Envelope.of(Pinged(case_id="C-10", n=10), source="/gridloop/test")
        mh, mb = to_binary(marker)
        await rt.js.publish("case.pinged", mb, headers=mh)

        async def seen() -> list[int]:
            assert rt.pool is not None
            async with rt.pool.acquire() as conn:
                return [r["n"] for r in await conn.fetch("SELECT n FROM seen ORDER BY n")]

        await wait_for(lambda: _async_eq(seen, [9, 10]), what="both events handled")
        async with rt.pool.acquire() as conn:
            assert await conn.fetchval("SELECT value FROM counter") == 2
        assert await count_in_stream(rt.js, "case.pinged") == 3


def fetches(outcome: str) -> float:
    labels = {"service": "echo", "consumer": "echo-pings", "outcome": outcome}
    return REGISTRY.get_sample_value("gridloop_consumer_fetches_total", labels) or 0.0


async def test_a_consumer_counts_its_fetches_with_messages_and_without(
    database_url: str, nats_url: str
) -> None:
    """gridloop_consumer_fetches_total: a fetch that brought messages counts as `messages`,
    one that waited out its second with none as `empty`."""
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition()) as rt:
        assert rt.js is not None and rt.pool is not None
        pool = rt.pool
        took = fetches("messages")
        for n in (21, 22, 23):
            h, b = to_binary(Envelope.of(Pinged(case_id=f"C-{n}", n=n), source="/gridloop/test"))
            await rt.js.publish("case.pinged", b, headers=h)

        async def seen() -> list[int]:
            async with pool.acquire() as conn:
                return [r["n"] for r in await conn.fetch("SELECT n FROM seen ORDER BY n")]

        await wait_for(lambda: _async_eq(seen, [21, 22, 23]), what="the three pings handled")
        assert 1 <= fetches("messages") - took <= 3
        # Nothing more comes: the next fetch waits out its time (a second) and says so.
        quiet = fetches("empty")
        await wait_for(lambda: fetches("empty") > quiet, timeout=10, what="an empty fetch")


async def _async_eq(fn: Callable[[], Awaitable[object]], expected: object) -> bool:
    return (await fn()) == expected


async def test_always_failing_message_lands_on_dlq(database_url: str, nats_url: str) -> None:
    attempts: list[int] = []

    async def explode(work: Work, env: Envelope) -> None:
        if env.data["n"] == 13:
            attempts.append(1)
            raise ValueError("cannot handle thirteen")
        await work.conn.execute(
            "INSERT INTO seen (event_id, n) VALUES ($1, $2)", env.id, env.data["n"]
        )

    settings = settings_for("echo", database_url, nats_url, consumer_max_deliver=3)
    async with running(settings, echo_definition(explode)) as rt:
        assert rt.js is not None and rt.pool is not None
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        dlq = await js.pull_subscribe("dlq.echo", stream="DLQ")
        for n in (12, 13, 14):
            h, b = to_binary(Envelope.of(Pinged(case_id=f"C-{n}", n=n), source="/gridloop/test"))
            await js.publish("case.pinged", b, headers=h)

        msgs = await wait_for(lambda: _fetch(dlq), timeout=20, what="the DLQ message")
        assert len(msgs) == 1
        assert msgs[0].headers is not None
        assert msgs[0].headers["Gridloop-Dlq-Subject"] == "case.pinged"
        assert "cannot handle thirteen" in msgs[0].headers["Gridloop-Dlq-Error"]
        assert decode(msgs[0].headers, msgs[0].data).data["n"] == 13
        assert len(attempts) >= 3  # at least once per delivery
        async with rt.pool.acquire() as conn:
            assert [r["n"] for r in await conn.fetch("SELECT n FROM seen ORDER BY n")] == [12, 14]
            row = await conn.fetchrow("SELECT deliveries, error FROM dead_letters")
        assert row is not None
        assert row["deliveries"] == 3 and "thirteen" in row["error"]
        await nc.close()


async def _fetch(sub: JetStreamContext.PullSubscription) -> list[Msg]:
    try:
        return await sub.fetch(10, timeout=0.2)
    except TimeoutError:  # nats-py raises its own or, when its deadline ran out, asyncio's
        return []


async def test_trace_continues_from_http_to_consumer(database_url: str, nats_url: str) -> None:
    router = APIRouter()

    @router.post("/pings/{case_id}")
    async def ping(case_id: str, request: Request) -> dict[str, str]:
        rt = runtime_of(request)
        assert rt.uow is not None
        async with rt.uow() as work:
            env = work.emit(Pinged(case_id=case_id, n=1))
        return {"event_id": env.id}

    async def record_trace(work: Work, env: Envelope) -> None:
        from gridloop_runtime.tracing import current_trace_id

        await work.conn.execute(
            "INSERT INTO traces (event_id, trace_id) VALUES ($1, $2)", env.id, current_trace_id()
        )

    definition = echo_definition(record_trace, routers=[router])
    settings = settings_for("echo", database_url, nats_url)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running(settings, definition) as rt, http_client(rt) as client:
        r = await client.post(
            "/pings/C-T", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        )
        assert r.status_code == 200
        event_id = r.json()["event_id"]

        async def traced() -> str | None:
            assert rt.pool is not None
            async with rt.pool.acquire() as conn:
                trace: str | None = await conn.fetchval(
                    "SELECT trace_id FROM traces WHERE event_id = $1", event_id
                )
                return trace

        assert await wait_for(traced, what="the consumer's trace") == trace_id


async def test_health_and_readiness(database_url: str, nats_url: str) -> None:
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, echo_definition()) as rt, http_client(rt) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {
            "started": True,
            "nats": True,
            "consumers": True,
            "database": True,
        }
        metrics = await client.get("/metrics")
        assert "gridloop_outbox_backlog" in metrics.text


@pytest.mark.parametrize(
    ("spec_linger", "settings_linger"),
    [
        # a linger of its own (scores): after any batch that was not full
        ({"linger_s": 10}, {}),
        # off the reports' path: CONSUMER_LINGER_S after fewer than CONSUMER_LINGER_BELOW
        ({"lingers": True}, {"consumer_linger_s": 10, "consumer_linger_below": 3}),
        # nobody waits on it: CONSUMER_PATIENT_LINGER_S after any batch that was not full
        ({"patient": True}, {"consumer_patient_linger_s": 10}),
    ],
    ids=["linger_s", "lingers", "patient"],
)
async def test_a_lingering_consumer_takes_what_came_in_meanwhile_in_one_batch(
    database_url: str,
    nats_url: str,
    spec_linger: dict[str, Any],
    settings_linger: dict[str, Any],
) -> None:
    sizes: list[int] = []

    async def count_batch(conn: object, batch: Sequence[tuple[Work, Envelope]]) -> None:
        sizes.append(len(batch))

    # A linger far longer than publishing five events takes, even on a busy machine.
    spec = ConsumerSpec(
        "echo-lingering", "CASES", ["case.pinged"], batch_handler=count_batch, **spec_linger
    )
    settings = settings_for("echo", database_url, nats_url, **settings_linger)
    async with running(settings, echo_definition(consumers=[spec])) as rt:
        assert rt.js is not None

        async def ping(n: int) -> None:
            assert rt.js is not None
            headers, body = to_binary(
                Envelope.of(Pinged(case_id=f"C-L{n}", n=n), source="/gridloop/test")
            )
            await rt.js.publish("case.pinged", body, headers=headers)

        await ping(1)
        await wait_for(lambda: sizes == [1], what="the first event handled alone")
        for n in range(2, 7):  # while the consumer lingers after its small batch
            await ping(n)
        await wait_for(lambda: sum(sizes) == 6, timeout=30, what="the five later events")
        assert sizes == [1, 5]


class Poked(Event):
    """A second test-only case event: the one that must not wait."""

    type_name: ClassVar[str] = "gridloop.case.poked.v1"
    subject_token: ClassVar[str] = "poked"
    case_id: str
    n: int = 0


def holding_spec(durable: str, handler: Callable[..., Awaitable[None]]) -> ConsumerSpec:
    """A patient consumer of pings and pokes, a poke one that must not wait."""
    return ConsumerSpec(
        durable,
        "CASES",
        ["case.pinged", "case.poked"],
        batch_handler=handler,
        patient=True,
        urgent=["case.poked"],
    )


async def send_case_event(js: JetStreamContext, event: Pinged | Poked, subject: str) -> None:
    env = Envelope.of(event, source="/gridloop/test", subject=event.case_id)
    headers, body = to_binary(env)
    await js.publish(subject, body, headers=headers)


async def test_a_patient_consumer_handles_what_must_not_wait_at_once_and_the_rest_together(
    database_url: str, nats_url: str
) -> None:
    batches: list[list[tuple[str, str]]] = []

    async def record_batch(conn: object, batch: Sequence[tuple[Work, Envelope]]) -> None:
        batches.append([(env.type.split(".")[2], str(env.data["case_id"])) for _, env in batch])

    spec = holding_spec("echo-holding", record_batch)
    # Held far longer than each step of the test takes (the most the setting allows): only a
    # message that must not wait, or the consumer stopping, lets the held ones go.
    settings = settings_for("echo", database_url, nats_url, consumer_patient_linger_s=10)
    async with running(settings, echo_definition(consumers=[spec])) as rt:
        assert rt.js is not None
        js = rt.js
        await send_case_event(js, Pinged(case_id="C-H1"), "case.pinged")
        await send_case_event(js, Pinged(case_id="C-H2"), "case.pinged")
        await send_case_event(js, Poked(case_id="C-H3"), "case.poked")
        await wait_for(lambda: batches, what="the message that must not wait")
        assert batches == [[("poked", "C-H3")]]  # past the two held before it

        await send_case_event(js, Poked(case_id="C-H1"), "case.poked")  # a case with one held
        await wait_for(lambda: len(batches) == 2, what="the held messages with it")
        assert batches[1] == [("pinged", "C-H1"), ("pinged", "C-H2"), ("poked", "C-H1")]

        await send_case_event(js, Pinged(case_id="C-H4"), "case.pinged")
        await wait_for(lambda: holding(rt.consumers[0]), what="the last ping fetched and held")
    assert batches[2:] == [[("pinged", "C-H4")]]  # handled before the consumer stopped


async def test_settling_waits_for_what_a_patient_consumer_holds(
    database_url: str, nats_url: str
) -> None:
    """`Consumer.settle` returns once what was held has been handled (the timers call it
    before a round, so a deadline is judged on the events that came before it), and at
    once when nothing is held."""
    handled: list[str] = []

    async def record_batch(conn: object, batch: Sequence[tuple[Work, Envelope]]) -> None:
        handled.extend(str(env.data["case_id"]) for _, env in batch)

    spec = holding_spec("echo-settling", record_batch)
    settings = settings_for("echo", database_url, nats_url, consumer_patient_linger_s=5)
    async with running(settings, echo_definition(consumers=[spec])) as rt:
        assert rt.js is not None
        consumer = rt.consumers[0]
        assert await consumer.settle(0.01)  # nothing held
        await send_case_event(rt.js, Pinged(case_id="C-S1"), "case.pinged")
        await wait_for(lambda: holding(consumer), what="the ping fetched and held")
        assert handled == []
        assert await consumer.settle(30)
        assert handled == ["C-S1"]


@pytest.mark.parametrize(
    ("kind", "linger_s", "patient_linger_s", "fetched", "expected"),
    [
        ("lingers", 0.0, 0.25, 1, 0.05),  # off the reports' path, a small batch: wait
        ("lingers", 0.0, 0.25, 7, 0.05),
        ("lingers", 0.0, 0.25, 8, 0.0),  # as large as CONSUMER_LINGER_BELOW: at once
        ("lingers", 0.0, 0.25, 256, 0.0),
        ("patient", 0.0, 0.25, 1, 0.25),  # nobody waits on it: after any batch not full
        ("patient", 0.0, 0.25, 255, 0.25),
        ("patient", 0.0, 0.25, 256, 0.0),
        ("patient", 0.0, 0.0, 7, 0.05),  # CONSUMER_PATIENT_LINGER_S=0: as `lingers`
        ("patient", 0.0, 0.0, 8, 0.0),
        ("on the path", 0.0, 0.25, 1, 0.0),  # on the reports' path: never wait
        ("on the path", 1.0, 0.25, 1, 1.0),  # a linger of its own (scores): after any
        ("on the path", 1.0, 0.25, 255, 1.0),  # batch not full
        ("on the path", 1.0, 0.25, 256, 0.0),
    ],
)
def test_how_long_a_consumer_waits_after_a_fetch(
    kind: str, linger_s: float, patient_linger_s: float, fetched: int, expected: float
) -> None:
    spec = ConsumerSpec(
        "echo-any",
        "CASES",
        ["case.pinged"],
        record_ping,
        linger_s=linger_s,
        lingers=kind == "lingers",
        patient=kind == "patient",
    )
    consumer = Consumer(
        spec,
        js=None,  # type: ignore[arg-type]  # not asked to fetch
        uow=None,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]
        service="echo",
        batch=256,
        max_deliver=5,
        ack_wait_s=10,
        max_ack_pending=4096,
        retry_delay_s=1,
        linger_s=0.05,
        linger_below=8,
        patient_linger_s=patient_linger_s,
    )
    assert consumer.linger_after(fetched) == expected


async def test_the_sweeper_leads_on_a_connection_of_its_own(
    database_url: str, nats_url: str
) -> None:
    """The outbox sweeper's lock and work are outside the pool: with every pool connection
    taken by requests, it still sends a committed row nobody handed to the publisher."""
    settings = settings_for("echo", database_url, nats_url, outbox_sweep_grace_s=0)
    async with running(settings, echo_definition()) as rt:
        assert rt.js is not None and rt.pool is not None and rt.relay is not None
        relay, js = rt.relay, rt.js
        await wait_for(lambda: relay.leading, what="the sweeper leads")
        pool = rt.pool
        held = [
            await asyncio.wait_for(pool.acquire(), timeout=30) for _ in range(pool.get_max_size())
        ]
        try:
            conn = held[0]
            async with conn.transaction():
                work = Work(conn, source="/gridloop/echo", clock=rt.clock)
                work.emit(Pinged(case_id="C-own", n=1))
                await work.flush()  # committed, not handed: only the sweeper can send it
            await wait_for(
                lambda: count_in_stream(js, "case.pinged"), what="the sweeper sends the row"
            )
            assert relay.leading
        finally:
            for c in held:
                await pool.release(c)
