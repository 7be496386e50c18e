"""The department kit's reading of its feed (`FeedReader` in examples/department_system.py)
against a real nats-server: batches while messages keep coming, and a lone message handed
over at once after the feed was idle."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import nats
import nats.errors
import pytest
from gridloop_devkit.testing import load_module
from nats.js.api import AckPolicy, ConsumerConfig

KIT = Path(__file__).resolve().parents[1] / "examples" / "department_system.py"


async def test_the_kit_takes_batches_while_busy_and_one_message_after_an_idle_fetch(
    nats_url: str,
) -> None:
    kit = load_module(KIT, "department_system_feed")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name = f"KF{uuid.uuid4().hex[:8]}"
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        await js.add_consumer(name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT))
        reader = kit.FeedReader(await js.pull_subscribe_bind("d", stream=name), timeout=5)
        for i in range(45):
            await js.publish(f"{name}.m", str(i).encode())

        # nothing known at first: one message; then batches; every message once, in order
        sizes: list[int] = []
        got: list[int] = []
        while len(got) < 45:
            msgs = await reader.take()
            sizes.append(len(msgs))
            for m in msgs:
                got.append(int(m.data))
                await m.ack()
        assert sizes == [1, 20, 20, 4]
        assert got == list(range(45))

        # After a fetch that found nothing, a lone message comes at once, not when the fetch
        # times out (a batch fetch here waited for its own request's end, 30 s).
        for i in range(5):
            reader.timeout = 0.3
            with pytest.raises(TimeoutError):  # nats-py's, or asyncio's (its deadline)
                await reader.take()
            assert reader.size == 1
            reader.timeout = 30
            taking = asyncio.create_task(reader.take())
            await js.publish(f"{name}.m", f"lone {i}".encode())
            (msg,) = await asyncio.wait_for(taking, timeout=10)
            assert msg.data == f"lone {i}".encode()
            await msg.ack()
            assert reader.size == 20  # one came: a batch next
    finally:
        await nc.close()
