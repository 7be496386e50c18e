"""`bus.quick_fetch` against a real nats-server: the batches, order, statuses and errors of
nats-py's own fetch, with a cheaper wait for each message, a lone message handed over at
once and no pull request left open on the server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from gridloop_devkit.testing import wait_for
from gridloop_runtime.bus import quick_fetch
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig


async def test_a_quick_fetch_takes_every_message_once_in_order(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name = f"QF{uuid.uuid4().hex[:8]}"
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        for i in range(50):
            await js.publish(f"{name}.m", str(i).encode())
        await js.add_consumer(name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT))
        sub = quick_fetch(await js.pull_subscribe_bind("d", stream=name))

        got: list[int] = []
        while len(got) < 50:
            msgs = await sub.fetch(20, timeout=2)
            assert 0 < len(msgs) <= 20
            for m in msgs:
                got.append(int(m.data))
                await m.ack()
        assert got == list(range(50))
        # what a fetch took is accounted for as taken
        assert sub.pending_bytes == 0

        # nothing left: nats-py's timeout error, for a batch and for one message
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(5, timeout=0.3)
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(1, timeout=0.3)

        # a message published while a fetch waits is taken by that fetch
        waiting = asyncio.create_task(sub.fetch(10, timeout=3))
        await js.publish(f"{name}.m", b"late")
        assert [m.data for m in await waiting] == [b"late"]
        one = asyncio.create_task(sub.fetch(1, timeout=3))
        await js.publish(f"{name}.m", b"later")
        (msg,) = await one
        assert msg.data == b"later"
        await msg.ack()

        async def acknowledged() -> bool:
            info = await js.consumer_info(name, "d")
            return bool(info.num_ack_pending == 1 and info.delivered.stream_seq == 52)

        # 50 acknowledged, "late" not (left in hand), "later" acknowledged
        await wait_for(acknowledged, what="the consumer's acknowledgements")
        await js.delete_stream(name)
    finally:
        await nc.close()


async def test_a_quick_fetch_on_a_closed_connection_says_so(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"QF{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    await js.add_consumer(name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT))
    sub = quick_fetch(await js.pull_subscribe_bind("d", stream=name))
    await js.delete_stream(name)
    await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await sub.fetch(5, timeout=0.3)


async def _stream_and_durable(js: JetStreamContext) -> tuple[str, Any]:
    """A new stream and its durable "d", bound through `quick_fetch`."""
    name = f"QF{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    await js.add_consumer(name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT))
    return name, quick_fetch(await js.pull_subscribe_bind("d", stream=name))


async def test_a_fetch_hands_over_a_lone_message_and_leaves_no_request_open(
    nats_url: str,
) -> None:
    """An idle consumer's fetch returns the one message that came, without waiting for the
    rest of its batch or its timeout, and leaves no pull request open on the server (one
    left open takes the next messages into a subscription nobody reads until the next
    fetch: nats-py's own fetch leaves one, and a report could wait for the next one)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name, sub = await _stream_and_durable(js)

        async def waiting_requests() -> int:
            return int((await js.consumer_info(name, "d")).num_waiting or 0)

        async def asking() -> bool:
            return await waiting_requests() == 1

        for i in range(3):
            # what an idle consumer does: a fetch that times out, then the next one
            with pytest.raises(nats.errors.TimeoutError):
                await sub.fetch(64, timeout=1)
            fetching = asyncio.create_task(sub.fetch(64, timeout=60))
            await wait_for(asking, what="the fetch's request on the server")
            await js.publish(f"{name}.m", str(i).encode())
            # well before its 60 s: the batch of 64 is not waited for
            msgs = await asyncio.wait_for(fetching, timeout=20)
            assert [m.data for m in msgs] == [str(i).encode()]
            await msgs[0].ack()
            assert await waiting_requests() == 0

        # a fetch that found nothing has waited for its request's end
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(10, timeout=0.3)
        assert await waiting_requests() == 0

        # several there: the batch without waiting, then the rest
        for i in range(5):
            await js.publish(f"{name}.m", f"b{i}".encode())
        first = await asyncio.wait_for(sub.fetch(3, timeout=60), timeout=20)
        rest = await asyncio.wait_for(sub.fetch(64, timeout=60), timeout=20)
        assert [m.data for m in first + rest] == [f"b{i}".encode() for i in range(5)]
        assert await waiting_requests() == 0
        await js.delete_stream(name)
    finally:
        await nc.close()


async def test_a_fetch_from_a_consumer_that_is_gone_raises_the_servers_error(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name, sub = await _stream_and_durable(js)
        await js.delete_consumer(name, "d")
        with pytest.raises(nats.js.errors.APIError):
            await sub.fetch(5, timeout=5)
        with pytest.raises(ValueError):
            await sub.fetch(0, timeout=1)
        await js.delete_stream(name)
    finally:
        await nc.close()


async def test_a_fetch_that_runs_out_of_time_mid_batch_keeps_what_it_took(nats_url: str) -> None:
    """A fetch whose time ends while its batch is coming in returns what it has taken (the
    rest stays queued for the next fetch): nothing taken is dropped to wait for a redelivery
    (`ack_wait`, a minute here). A batch of large messages comes in over many reads, and a
    fetch with a millisecond to spare runs out of time in the middle of it."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name = f"QF{uuid.uuid4().hex[:8]}"
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        await js.add_consumer(
            name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT, ack_wait=60)
        )
        sub = quick_fetch(await js.pull_subscribe_bind("d", stream=name))
        total, padding = 200, b"x" * 100_000
        for i in range(total):
            await js.publish(f"{name}.m", str(i).encode() + b"|" + padding)
        got: list[int] = []
        async with asyncio.timeout(30):  # far inside the minute a dropped message would take
            while len(got) < total:
                try:
                    msgs = await sub.fetch(50, timeout=0.0002)
                except nats.errors.TimeoutError:
                    continue
                for m in msgs:
                    got.append(int(m.data.split(b"|", 1)[0]))
                    await m.ack()
        assert got == list(range(total))
        await js.delete_stream(name)
    finally:
        await nc.close()
