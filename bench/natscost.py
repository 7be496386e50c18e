"""What one message costs nats-server, on its own: `python -m bench.natscost`.

A nats-server of its own with JetStream on file storage and `sync_interval: always` (as
`make bench`), then, for each shape, the server's CPU and this client's CPU per message:

- publishing: messages of 600 bytes with `Nats-Msg-Id`, sent in groups of 1, 2, 20 and 200,
  each group's acks awaited before the next (a service's publisher sends what one commit
  wrote: one to three messages);
- consuming: a durable pull consumer taking batches of 20 and acknowledging each message
  (`AckPolicy.EXPLICIT`, what the services do) or the last of each batch (`AckPolicy.ALL`).

Each shape runs `--rounds` times on a stream of its own; the JSON printed holds every
reading, so the spread is visible. `docs/performance.md` (thirteenth pass) reads it against
the loop's publishes and deliveries per closed loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from gridloop_devkit.devstack import LocalNats
from gridloop_runtime.bus import quick_fetch
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from .cpu import LOAD, CpuWindow

BODY = b"x" * 600
BATCH = 20


class Meter:
    """The server's and this process's CPU over a stretch, per message (bench.cpu's window:
    this process alone, as the server is its child)."""

    def __init__(self, server_pid: int) -> None:
        self.pids = {"server": server_pid, LOAD: os.getpid()}

    async def __call__(self, work: Callable[[], Awaitable[None]], n: int) -> dict[str, float]:
        window = CpuWindow(self.pids)
        window.start()
        await work()
        window.stop()
        return {
            "server_us": round(window.used["server"] / n * 1e6, 1),
            "client_us": round(window.used[LOAD] / n * 1e6, 1),
            "per_s": round(n / window.elapsed),
        }


async def publishing(url: str, meter: Meter, stream: str, group: int, n: int) -> dict[str, float]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"]))

        async def work() -> None:
            for i in range(0, n, group):
                acks = [
                    await js.publish_async(
                        f"{stream}.e", BODY, headers={"Nats-Msg-Id": f"{stream}-{i + j}"}
                    )
                    for j in range(group)
                ]
                await asyncio.gather(*acks)

        return await meter(work, n)
    finally:
        await nc.close()


async def consuming(
    url: str, meter: Meter, stream: str, policy: AckPolicy, n: int
) -> dict[str, float]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(publish_async_max_pending=4000)
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"]))
        await js.add_consumer(
            stream, ConsumerConfig(durable_name="c", ack_policy=policy, max_ack_pending=n)
        )
        await asyncio.gather(*[await js.publish_async(f"{stream}.e", BODY) for _ in range(n)])
        sub = quick_fetch(await js.pull_subscribe_bind("c", stream=stream))

        async def work() -> None:
            taken = 0
            while taken < n:
                msgs = await sub.fetch(BATCH, timeout=5)
                taken += len(msgs)
                for msg in msgs if policy == AckPolicy.EXPLICIT else msgs[-1:]:
                    await msg.ack()
            await nc.flush()

        out = await meter(work, n)
        info = await js.consumer_info(stream, "c")
        if info.num_ack_pending or info.ack_floor is None or info.ack_floor.stream_seq != n:
            raise RuntimeError(f"{stream}: not every message was acknowledged: {info}")
        return out
    finally:
        await nc.close()


async def measure(url: str, server_pid: int, rounds: int, n: int) -> dict[str, Any]:
    meter = Meter(server_pid)
    out: dict[str, Any] = {"publish": {}, "consume": {}}
    k = 0
    for _ in range(rounds):
        for group in (1, 2, 20, 200):
            k += 1
            got = await publishing(url, meter, f"P{k}", group, n)
            out["publish"].setdefault(f"groups_of_{group}", []).append(got)
        for policy in (AckPolicy.EXPLICIT, AckPolicy.ALL):
            k += 1
            got = await consuming(url, meter, f"C{k}", policy, n * 3)
            out["consume"].setdefault(f"ack_{policy.value}", []).append(got)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=4000, help="per publishing shape")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridloop-natscost-"))
    server = LocalNats(work / "nats", sync_always=True).start()
    try:
        assert server.proc is not None
        result = asyncio.run(measure(server.url, server.proc.pid, args.rounds, args.messages))
    finally:
        server.stop()
    print(json.dumps({"sync_interval": "always", "body_bytes": len(BODY), **result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
