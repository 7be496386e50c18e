"""After a database restore (restore.py), on a real nats-server and PostgreSQL: the events the
restored outboxes do not hold leave the streams the services publish to, every service's
consumer moves back and keeps its new start when its service declares it again, outside
readers keep their place, and nothing happens while a service is still reading."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
import pytest
from gridloop_contracts import Envelope, to_binary
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_runtime import restore
from gridloop_runtime.bus import ensure_streams, read_stored
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import ServiceDefinition
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .test_runtime_bus import Pinged, echo_definition, record_ping


async def publish(js: JetStreamContext, subject: str, source: str, n: int) -> str:
    env = Envelope.of(Pinged(case_id=f"C-{n}", n=n), source=source)
    headers, body = to_binary(env)
    await js.publish(subject, body, headers=headers)
    return env.id


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    yield js
    await nc.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Two services' outboxes and dead letters as restored: the columns the restore reads."""
    conn = await asyncpg.connect(database_url)
    for schema in ("intake", "dispatch"):
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.outbox (event_id text PRIMARY KEY)")
        await conn.execute(f"CREATE TABLE {schema}.dead_letters (consumer text, event_id text)")
    yield conn
    await conn.close()


def durable(name: str, subject: str) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=subject,
        max_deliver=5,
    )


async def read_all(js: JetStreamContext, stream: str, name: str) -> None:
    """A consumer that has read and acknowledged everything there is."""
    sub = await js.pull_subscribe_bind(durable=name, stream=stream)
    while (await sub.consumer_info()).num_pending:
        for m in await sub.fetch(100, timeout=2):
            await m.ack_sync()
    await sub.unsubscribe()


async def test_ghosts_go_and_the_services_consumers_move_back(
    bus: JetStreamContext, db: asyncpg.Connection
) -> None:
    js = bus
    # before the restore point: events the restored outboxes hold
    held_before = [await publish(js, "case.accepted", "/gridloop/intake", n) for n in range(3)]
    point = datetime.now(UTC)  # the server's clock is this machine's
    # after it: some the restored outboxes still hold (committed before, published after),
    # the rest ghosts, from two services, on two streams; and messages from the outside
    held_after = [await publish(js, "case.accepted", "/gridloop/intake", 10)]
    ghosts_cases = [await publish(js, "case.accepted", "/gridloop/intake", n) for n in (11, 12)]
    ghosts_cases.append(await publish(js, "case.dispatched", "/gridloop/dispatch", 13))
    ghost_feed = await publish(js, "dispatch.sanitation.assigned", "/gridloop/dispatch", 14)
    outside = await publish(js, "case.accepted", "/somebody/else", 15)
    report = await publish(js, "intake.patrol.app", "/bench/patrol-app", 16)
    await db.executemany(
        "INSERT INTO intake.outbox VALUES ($1)", [(i,) for i in held_before + held_after]
    )
    # dead letters since the point: one the restored table lists, one it lost
    for n, listed in ((20, True), (21, False)):
        env = Envelope.of(Pinged(case_id=f"C-{n}", n=n), source="/gridloop/verify")
        headers, body = to_binary(env)
        headers["Gridloop-Dlq-Consumer"] = "intake-casefile"
        await js.publish("dlq.intake", body, headers=headers)
        if listed:
            await db.execute(
                "INSERT INTO intake.dead_letters VALUES ('intake-casefile', $1)", env.id
            )
    await db.execute("INSERT INTO intake.dead_letters VALUES ('intake-casefile', 'other')")
    # the services' consumers and a department's feed, each having read everything
    await js.add_consumer("CASES", durable("dispatch-cases", "case.>"))
    await js.add_consumer("INTAKE", durable("intake-reports", "intake.>"))
    await js.add_consumer("DISPATCH", durable("dept-sanitation", "dispatch.sanitation.>"))
    for stream, name in (
        ("CASES", "dispatch-cases"),
        ("INTAKE", "intake-reports"),
        ("DISPATCH", "dept-sanitation"),
    ):
        await read_all(js, stream, name)

    # a dry run says what it would do and does nothing
    dry = await restore.bring_back(js, db, point, margin=timedelta(0), dry_run=True)
    assert sum(len(s) for s in dry.ghosts.values()) == 5
    assert (await js.stream_info("CASES")).state.messages == 8
    assert (await js.consumer_info("CASES", "dispatch-cases")).num_pending == 0

    done = await restore.bring_back(js, db, point, margin=timedelta(0))
    assert len(done.ghosts["CASES"]) == 3 and len(done.ghosts["DISPATCH"]) == 1
    assert len(done.ghosts["DLQ"]) == 1 and done.kept["DLQ"] == 1
    (left,) = await everything(js, "DLQ")
    assert left.data and (left.headers or {})["ce-id"] in {
        r["event_id"] for r in await db.fetch("SELECT event_id FROM intake.dead_letters")
    }
    assert done.kept["CASES"] == 2  # the one the outbox holds, and the outsider's
    assert sorted(done.rewound) == ["CASES/dispatch-cases", "INTAKE/intake-reports"]

    remaining = {
        m.headers["ce-id"] for m in await everything(js, "CASES") + await everything(js, "DISPATCH")
    }
    assert remaining == {*held_before, *held_after, outside}
    assert not remaining & {*ghosts_cases, ghost_feed}
    # the services' consumers start again at the point; the department's feed stays
    cases = await js.consumer_info("CASES", "dispatch-cases")
    assert cases.num_pending == 2 and cases.config.max_deliver == 5
    assert cases.config.filter_subject == "case.>"
    assert (await js.consumer_info("INTAKE", "intake-reports")).num_pending == 1
    assert report in {m.headers["ce-id"] for m in await everything(js, "INTAKE")}
    assert (await js.consumer_info("DISPATCH", "dept-sanitation")).num_pending == 0


async def everything(js: JetStreamContext, stream: str) -> list[Any]:
    return await read_stored(js, stream, lambda m: m)


async def test_the_reader_hands_what_a_stream_holds_in_order_from_its_start_or_a_moment(
    bus: JetStreamContext,
) -> None:
    """The one reader of stored messages (the restore tool's, the test kit's, the bench's):
    every message in order across several pulls, from the stream's start or from a moment,
    of the subjects asked for; a stream that does not exist, or holds nothing, holds none."""
    js = bus
    await js.add_stream(name="READER", subjects=["reader.>"])
    try:
        assert await read_stored(js, "NO_SUCH_STREAM", lambda m: m) == []
        assert await read_stored(js, "READER", lambda m: m) == []
        for n in range(1200):  # more than one pull's 500
            await js.publish("reader.a" if n % 3 else "reader.b", str(n).encode())
        since = datetime.now(UTC)
        for n in range(1200, 1205):
            await js.publish("reader.a", str(n).encode())

        def number(m: Any) -> int:
            return int(m.data)

        assert await read_stored(js, "READER", number) == list(range(1205))
        assert await read_stored(js, "READER", number, since=since) == list(range(1200, 1205))
        assert await read_stored(js, "READER", number, subject="reader.b") == list(
            range(0, 1200, 3)
        )
    finally:
        await js.delete_stream("READER")


async def test_nothing_is_touched_while_a_service_reads(
    bus: JetStreamContext, db: asyncpg.Connection
) -> None:
    js = bus
    point = datetime.now(UTC)
    await publish(js, "case.accepted", "/gridloop/intake", 1)  # a ghost
    await js.add_consumer("CASES", durable("verify-cases", "case.>"))
    sub = await js.pull_subscribe_bind(durable="verify-cases", stream="CASES")
    await sub.fetch(1, timeout=2)
    waiting = asyncio.create_task(sub.fetch(1, timeout=30))  # a replica waiting for more
    await wait_for(
        lambda: _waiting(js, "verify-cases"), timeout=10, interval=0.1, what="a pull waiting"
    )
    with pytest.raises(restore.ServicesRunning, match="CASES/verify-cases"):
        await restore.bring_back(js, db, point, margin=timedelta(0), wait_s=0.5)
    assert (await js.stream_info("CASES")).state.messages == 1
    waiting.cancel()


async def _waiting(js: JetStreamContext, name: str) -> bool:
    return bool((await js.consumer_info("CASES", name)).num_waiting)


def definition(seen: list[int]) -> ServiceDefinition:
    """The runtime tests' echo service, noting the pings it takes."""

    async def handle(work: Work, env: Envelope) -> None:
        seen.append(int(env.data["n"]))
        await record_ping(work, env)

    return echo_definition(handle)


async def test_a_service_keeps_the_start_its_consumer_was_moved_to(
    database_url: str, nats_url: str
) -> None:
    """The service declares its consumer at start-up (deliver everything); moved back to a
    moment, it goes on from that moment, and its inbox drops what it had taken."""
    seen: list[int] = []
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition(seen)) as rt:
        assert rt.js is not None
        for n in range(3):
            if n == 2:
                point = datetime.now(UTC)  # the server's clock is this machine's
            await publish(rt.js, "case.pinged", "/gridloop/test", n)
        await wait_for(lambda: len(seen) == 3, timeout=20, what="the first three taken")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        for n in (3, 4):
            await publish(js, "case.pinged", "/gridloop/test", n)
        # moved back to just before the third: it comes again, and the inbox drops it
        await restore.rewind(js, await js.consumer_info("CASES", "echo-pings"), point)
        assert (await js.consumer_info("CASES", "echo-pings")).num_pending == 3
    finally:
        await nc.close()
    seen.clear()
    async with running(settings, definition(seen)) as rt:
        assert rt.js is not None

        async def all_taken() -> bool:
            assert rt.js is not None
            info = await rt.js.consumer_info("CASES", "echo-pings")
            return not (info.num_pending or info.num_ack_pending)

        await wait_for(all_taken, timeout=20, what="everything since the point taken")
        assert sorted(seen) == [3, 4]
        info = await rt.js.consumer_info("CASES", "echo-pings")
        assert info.config.deliver_policy == DeliverPolicy.BY_START_TIME


def test_who_published_a_message_and_whose_consumer_it_is() -> None:
    assert restore.publisher("/gridloop/dispatch") == "dispatch"
    assert restore.publisher("/gridloop/console") is None  # not a service that publishes
    assert restore.publisher("/bench/patrol-app") is None
    assert restore.publisher(None) is None
    assert restore.owner("handling-commands") == "handling"
    assert restore.owner("dept-sanitation") is None  # a department's feed
    assert restore.owner("src-12345") is None  # an integrator's
    assert restore.owner("intake") is None


def test_a_point_without_its_offset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A moment without its UTC offset is eight hours off in Beijing or right in London:
    refused, naming the offset, before anything is touched."""
    with pytest.raises(SystemExit) as exit_:
        restore.main(["--point", "2026-12-07T09:30:00"])
    assert exit_.value.code == 2
    assert "needs its UTC offset" in capsys.readouterr().err
    assert restore.parse_point("2026-12-07T09:30:00+08:00") == datetime(
        2026, 12, 7, 1, 30, tzinfo=UTC
    )
