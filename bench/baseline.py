"""The raw speed of this machine's bus and database, with the same client libraries."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import nats
import shapely
from gridloop_city import City


async def jetstream_publish_rate(
    nats_url: str, count: int = 50_000, payload_size: int = 600
) -> float:
    """Pipelined JetStream publish+ack of `count` messages (about the size of a case event)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=4000)
    await js.add_stream(name="BENCH", subjects=["bench.>"])
    body = b"x" * payload_size
    started = time.perf_counter()
    futures = []
    for i in range(count):
        futures.append(
            await js.publish_async("bench.baseline", body, headers={"Nats-Msg-Id": f"b{i}"})
        )
        if len(futures) >= 2000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await js.delete_stream("BENCH")
    await nc.close()
    return count / elapsed


async def pg_commit_rate(database_url: str, seconds: float = 5.0, concurrency: int = 16) -> float:
    """Single-row INSERT + COMMIT from `concurrency` connections for `seconds`."""
    pool = await asyncpg.create_pool(database_url, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_commit")
        await conn.execute("CREATE TABLE bench_commit (id bigserial PRIMARY KEY, v text)")
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                await conn.execute("INSERT INTO bench_commit (v) VALUES ($1)", "x" * 200)
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE bench_commit")
    await pool.close()
    return done / elapsed


def city_locate_rate(city: City, count: int = 20_000, rounds: int = 3) -> float:
    """Cell lookups a second (`City.locate`, one point at a time as intake takes a report)
    over points spread evenly across the city's grid: the best of `rounds`."""
    xmin, ymin, xmax, ymax = shapely.union_all(list(city.polygons.values())).bounds
    side = max(int(count**0.5), 1)
    points = [
        (xmin + (xmax - xmin) * (i % side) / side, ymin + (ymax - ymin) * (i // side) / side)
        for i in range(count)
    ]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for x, y in points:
            city.locate(x, y)
        best = min(best, time.perf_counter() - started)
    return len(points) / best
