"""The runtime's part of fencing the bus, against a real nats-server and PostgreSQL: what is
not a CloudEvent of a gridloop service is dropped from CASES before anything reads it; on
streams whose subject names the publisher the inbox key is that subject, not a `ce-source`
the sender chose (and rows keyed the old way still count for a redelivery); and the feed
consumers of departments and integrators are created by the services, as pull consumers
with their fixed filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import nats
from gridloop_contracts import Envelope, Event, to_binary
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_runtime import bus, metrics
from gridloop_runtime.bus import Feed
from gridloop_runtime.consumer import ConsumerSpec, Permanent, from_gridloop
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, ServiceDefinition
from nats.js.api import AckPolicy, ConsumerConfig

MIGRATIONS = Path(__file__).parent / "sql"


class Pinged(Event):
    """A test-only case event (deliberately not registered in the contracts)."""

    type_name: ClassVar[str] = "gridloop.case.pinged.v1"
    subject_token: ClassVar[str] = "pinged"
    case_id: str
    n: int = 0


async def record(work: Work, env: Envelope) -> None:
    """Keep which message was handled: its subject and id."""
    await work.conn.execute(
        "INSERT INTO seen (event_id, n) VALUES ($1, $2)",
        f"{work.subject}|{env.id}",
        int(env.data.get("n", 0)) if isinstance(env.data, dict) else 0,
    )


async def seen(rt: Runtime) -> list[str]:
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM seen ORDER BY n")]


async def scalar(rt: Runtime, sql: str) -> Any:
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        return await conn.fetchval(sql)


def definition(*consumers: ConsumerSpec) -> ServiceDefinition:
    return ServiceDefinition(name="echo", migrations_dir=MIGRATIONS, consumers=consumers)


def test_from_gridloop_reads_two_headers() -> None:
    assert from_gridloop({"ce-source": "/gridloop/dispatch", "ce-type": "gridloop.case.x.v1"})
    assert not from_gridloop(None)
    assert not from_gridloop({})
    assert not from_gridloop({"ce-source": "/hotline/12345", "ce-type": "gridloop.case.x.v1"})
    assert not from_gridloop({"ce-source": "/gridloop/dispatch", "ce-type": "com.example.x"})
    assert not from_gridloop({"content-type": "application/cloudevents+json"})


async def test_what_no_gridloop_service_sent_is_dropped_from_cases(
    database_url: str, nats_url: str
) -> None:
    spec = ConsumerSpec("echo-pings", "CASES", ["case.pinged"], record)
    assert spec.services_only and not spec.key_by_subject
    before = metrics.FOREIGN_MESSAGES.labels("echo", "echo-pings")._value.get()
    async with running(settings_for("echo", database_url, nats_url), definition(spec)) as rt:
        assert rt.js is not None
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        try:
            # A JetStream acknowledgement sent to a reply subject on CASES: no headers at all.
            await js.publish("case.pinged", b'{"stream":"INTAKE","seq":7}')
            # A CloudEvent, but an integrator's; and a service's source with a foreign type.
            h, b = to_binary(Envelope.of(Pinged(case_id="C-1", n=1), source="/hotline/12345"))
            await js.publish("case.pinged", b, headers=h)
            h, b = to_binary(Envelope.of(Pinged(case_id="C-1", n=2), source="/gridloop/x"))
            await js.publish("case.pinged", b, headers={**h, "ce-type": "com.example.pinged"})
            # A structured-mode event: services never publish those.
            await js.publish(
                "case.pinged",
                b'{"specversion":"1.0","id":"s","source":"/gridloop/x","type":"gridloop.case.'
                b'pinged.v1","data":{"case_id":"C-1","n":3}}',
                headers={"content-type": "application/cloudevents+json"},
            )
            good = Envelope.of(Pinged(case_id="C-1", n=4), source="/gridloop/test", id="good")
            h, b = to_binary(good)
            await js.publish("case.pinged", b, headers=h)

            await wait_for(lambda: _eq(seen(rt), ["case.pinged|good"]), what="the good one")
            info = await js.consumer_info("CASES", "echo-pings")
            await wait_for(
                lambda: _consumer_idle(js, "CASES", "echo-pings"), what=f"all acked: {info}"
            )
            assert await scalar(rt, "SELECT count(*) FROM dead_letters") == 0
            dropped = metrics.FOREIGN_MESSAGES.labels("echo", "echo-pings")._value.get()
            assert dropped - before == 4
        finally:
            await nc.close()


async def test_on_intake_the_inbox_key_is_the_subject_not_the_claimed_source(
    database_url: str, nats_url: str
) -> None:
    """src-12345 sends id X claiming to be 96105; 96105's own X is still handled."""
    spec = ConsumerSpec("echo-reports", "INTAKE", ["intake.>"], record, ordered=False)
    assert spec.key_by_subject and not spec.services_only
    async with running(settings_for("echo", database_url, nats_url), definition(spec)) as rt:
        assert rt.js is not None
        spoof = Envelope.of(Pinged(case_id="C-1", n=1), source="/hotline/96105", id="X")
        h, b = to_binary(spoof)
        await rt.js.publish("intake.hotline.12345", b, headers=h)
        genuine = Envelope.of(Pinged(case_id="C-1", n=2), source="/hotline/96105", id="X")
        h, b = to_binary(genuine)
        await rt.js.publish("intake.hotline.96105", b, headers={**h, "Nats-Msg-Id": "X2"})
        # The same message again from the same publisher is still a duplicate.
        await rt.js.publish("intake.hotline.96105", b, headers={**h, "Nats-Msg-Id": "X3"})
        marker = Envelope.of(Pinged(case_id="C-1", n=3), source="/hotline/96105", id="M")
        h, b = to_binary(marker)
        await rt.js.publish("intake.hotline.96105", b, headers=h)
        await wait_for(
            lambda: _eq(
                seen(rt),
                ["intake.hotline.12345|X", "intake.hotline.96105|X", "intake.hotline.96105|M"],
            ),
            what="both X handled, each once",
        )
        keys = await scalar(rt, "SELECT array_agg(event_id ORDER BY event_id) FROM inbox")
        assert keys == [
            "intake.hotline.12345|X",
            "intake.hotline.96105|M",
            "intake.hotline.96105|X",
        ]


async def test_an_inbox_row_of_the_old_key_still_counts_for_a_redelivery_only(
    database_url: str, nats_url: str
) -> None:
    """Upgrade in place: a message handled before keys named the subject, delivered again,
    is a duplicate; a new message never matches an old row (which another sender may have
    made with this sender's `ce-source`)."""
    tries: list[int] = []

    async def flaky(work: Work, env: Envelope) -> None:
        tries.append(env.data["n"])
        if len(tries) == 1:
            raise RuntimeError("a passing fault")  # delivered again later
        await record(work, env)

    spec = ConsumerSpec("echo-reports", "INTAKE", ["intake.>"], flaky, ordered=False)
    settings = settings_for("echo", database_url, nats_url, consumer_retry_delay_s=0.05)
    async with running(settings, definition(spec)) as rt:
        assert rt.js is not None and rt.pool is not None
        async with rt.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO inbox (consumer, event_id) VALUES ('echo-reports', $1)",
                [("/hotline/12345|old-1",), ("/hotline/12345|new-1",)],
            )
        # Handled before the upgrade (its old-key row is there), delivered again after it:
        # the first delivery fails, the redelivery finds the old row and changes nothing.
        old = Envelope.of(Pinged(case_id="C-1", n=1), source="/hotline/12345", id="old-1")
        h, b = to_binary(old)
        await rt.js.publish("intake.hotline.12345", b, headers=h)
        await wait_for(
            lambda: _consumer_idle(rt.js, "INTAKE", "echo-reports", deliveries=2),
            what="delivered twice and acked",
        )
        assert tries == [1] and await seen(rt) == []
        # A new message whose old-style key someone claimed before: handled.
        new = Envelope.of(Pinged(case_id="C-1", n=2), source="/hotline/12345", id="new-1")
        h, b = to_binary(new)
        await rt.js.publish("intake.hotline.12345", b, headers=h)
        await wait_for(lambda: _eq(seen(rt), ["intake.hotline.12345|new-1"]), what="handled")


async def test_a_dead_letter_with_a_nul_in_its_headers_is_kept_and_the_consumer_goes_on(
    database_url: str, nats_url: str
) -> None:
    """U+0000 fits no text column: the dead letter keeps it replaced instead of failing on
    every delivery (which held the consumer's lead and everything behind the message)."""

    async def picky(work: Work, env: Envelope) -> None:
        if env.data["n"] == 1:
            raise Permanent("not this one")
        await record(work, env)

    spec = ConsumerSpec("echo-reports", "INTAKE", ["intake.>"], picky)
    async with running(settings_for("echo", database_url, nats_url), definition(spec)) as rt:
        assert rt.js is not None
        h, b = to_binary(Envelope.of(Pinged(case_id="C-1", n=1), source="/x/12345", id="a"))
        await rt.js.publish("intake.hotline.12345", b, headers={**h, "x-note": "a\x00b"})
        h, b = to_binary(Envelope.of(Pinged(case_id="C-1", n=2), source="/x/12345", id="b"))
        await rt.js.publish("intake.hotline.12345", b, headers=h)
        await wait_for(lambda: _eq(seen(rt), ["intake.hotline.12345|b"]), what="the next one")
        kept = await scalar(rt, "SELECT headers->>'x-note' FROM dead_letters")
        assert kept == "a\ufffdb"


async def test_the_services_keep_the_feeds_of_departments_and_integrators(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await bus.ensure_streams(js)
        roads, water, hotline = (
            Feed.department("roads"),
            Feed.department("water"),
            Feed.integrator("12345"),
        )
        assert (roads.stream, roads.durable, roads.filter_subject) == (
            "DISPATCH",
            "dept-roads",
            "dispatch.roads.>",
        )
        assert (hotline.stream, hotline.durable, hotline.filter_subject) == (
            "NOTIFY",
            "src-12345",
            "notify.12345",
        )
        # roads' feed made by an older kit and read up to a point: kept, with its position.
        await js.add_consumer("DISPATCH", roads.config())
        await js.publish("dispatch.roads.assigned", b"{}")
        sub = await js.pull_subscribe_bind("dept-roads", "DISPATCH")
        for m in await sub.fetch(1, timeout=5):
            await m.ack_sync()
        # water's name taken by a push consumer delivering elsewhere: replaced.
        await js.add_consumer(
            "DISPATCH",
            ConsumerConfig(
                durable_name="dept-water",
                ack_policy=AckPolicy.NONE,
                filter_subject="dispatch.water.>",
                deliver_subject="case.x",
            ),
        )
        await bus.ensure_feeds(js, [roads, water, hotline])
        await bus.ensure_feeds(js, [roads, water, hotline])  # again: nothing changes
        kept = await js.consumer_info("DISPATCH", "dept-roads")
        assert kept.delivered.stream_seq == 1 and kept.num_ack_pending == 0
        for feed in (roads, water, hotline):
            info = await js.consumer_info(feed.stream, feed.durable)
            assert info.config.filter_subject == feed.filter_subject
            assert not info.config.deliver_subject
            assert info.config.ack_policy == AckPolicy.EXPLICIT
    finally:
        await nc.close()


async def _consumer_idle(js: Any, stream: str, durable: str, deliveries: int = 0) -> bool:
    info = await js.consumer_info(stream, durable)
    done = info.delivered.consumer_seq >= deliveries
    return bool(done and info.num_pending == 0 and info.num_ack_pending == 0)


async def _eq(value: Any, expected: object) -> bool:
    return bool((await value) == expected)
