"""The reference monolith: the same closed loop as one plain Python program on the bench's own
nats-server and PostgreSQL, measured in the same run, so each of the system's figures has
its reference from the same hour on the same machine (`baseline_monolith` in the results).

The loop is the one the issue's targets are set against: asyncpg, six steps (report and
open, dispatch with its deadline timers, sign, handle, verify, close and score), each one
transaction and one durable JetStream publish, fsync on in both. Two measurements:

- **at saturation**: `WORKERS` processes keep `IN_FLIGHT` loops each going back to back:
  closed loops a second and CPU milliseconds per closed loop (the workers, nats-server and
  PostgreSQL with its backends).
- **at a fixed rate** (50 reports a second, as the bench's latency phase): report → the
  `dispatched` event heard by a subscriber on the bus (the department's notice), p50 / p95 /
  p99, and the CPU per closed loop at that rate. The department answers `ANSWER_AFTER_S`
  after it is told, and the rest of the loop runs then, as in the system.

It shares no code with the services: the figures say what the machine gives a program that
does the loop's work with none of the system's properties (a service per stage, a case's
events heard by every stage that keeps them, inbox and outbox, replicas)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
import uuid
from queue import Empty
from typing import Any

import asyncpg
import nats

from .cpu import CpuWindow
from .loop import pct

WORKERS = 2
EVENTS_PER_LOOP = 6  # one durable publish per step
IN_FLIGHT = 48
ANSWER_AFTER_S = 0.5
STREAM = "MONOLITH"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases(id bigserial PRIMARY KEY, ext text UNIQUE, category text,
  cell text, lat float8, lon float8, description text, state text, dept text,
  deadline timestamptz, opened_at timestamptz DEFAULT now(), closed_at timestamptz,
  version int DEFAULT 0);
CREATE TABLE IF NOT EXISTS tasks(id bigserial PRIMARY KEY, case_id bigint, dept text,
  status text, signed_at timestamptz, handled_at timestamptz, result text);
CREATE TABLE IF NOT EXISTS timers(id bigserial PRIMARY KEY, case_id bigint, kind text,
  due timestamptz, fired boolean DEFAULT false);
CREATE INDEX IF NOT EXISTS timers_due ON timers(due) WHERE NOT fired;
CREATE INDEX IF NOT EXISTS timers_case ON timers(case_id) WHERE NOT fired;
CREATE TABLE IF NOT EXISTS verifications(id bigserial PRIMARY KEY, case_id bigint,
  passed boolean, notes text);
CREATE TABLE IF NOT EXISTS scores(dept text, day date, closed int, on_time int,
  PRIMARY KEY(dept, day));
CREATE TABLE IF NOT EXISTS routing(category text PRIMARY KEY, dept text, days int);
INSERT INTO routing VALUES ('E0104', 'sanitation', 1), ('E0201', 'urban-mgmt', 2)
  ON CONFLICT DO NOTHING;
"""


class Loop:
    """The six steps over a pool and a JetStream context."""

    def __init__(self, pool: asyncpg.Pool, js: Any) -> None:
        self.pool = pool
        self.js = js

    async def event(self, kind: str, case_id: int, body: dict[str, Any]) -> None:
        await self.js.publish(
            f"monolith.{kind}",
            json.dumps({"case_id": case_id, **body}).encode(),
            headers={"Nats-Msg-Id": f"{case_id}-{kind}"},
        )

    async def report_to_department(self) -> int:
        """Steps 1 and 2: the report opens a case, the case is dispatched with its timers."""
        ext = uuid.uuid4().hex
        async with self.pool.acquire() as c:
            async with c.transaction():
                case_id: int = await c.fetchval(
                    "INSERT INTO cases(ext, category, cell, lat, lon, description, state)"
                    " VALUES ($1, 'E0104', '110101001001', 39.9, 116.4, 'garbage', 'accepted')"
                    " RETURNING id",
                    ext,
                )
            await self.event("accepted", case_id, {"ext": ext})
            async with c.transaction():
                r = await c.fetchrow("SELECT dept, days FROM routing WHERE category = $1", "E0104")
                assert r is not None
                await c.execute("SELECT id FROM cases WHERE id = $1 FOR UPDATE", case_id)
                await c.execute(
                    "UPDATE cases SET state = 'dispatched', dept = $2,"
                    " deadline = now() + make_interval(days => $3), version = version + 1"
                    " WHERE id = $1",
                    case_id,
                    r["dept"],
                    r["days"],
                )
                await c.execute(
                    "INSERT INTO tasks(case_id, dept, status) VALUES ($1, $2, 'assigned')",
                    case_id,
                    r["dept"],
                )
                await c.execute(
                    "INSERT INTO timers(case_id, kind, due) VALUES"
                    " ($1, 'remind', now() + interval '4 hours'),"
                    " ($1, 'overdue', now() + interval '1 day')",
                    case_id,
                )
            await self.event("dispatched", case_id, {"dept": r["dept"]})
        return case_id

    async def answer_to_close(self, case_id: int) -> None:
        """Steps 3 to 6: sign, handle (the timers cancelled), verify, close and score."""
        async with self.pool.acquire() as c:
            async with c.transaction():
                await c.execute(
                    "UPDATE tasks SET status = 'signed', signed_at = now() WHERE case_id = $1",
                    case_id,
                )
            await self.event("signed", case_id, {})
            async with c.transaction():
                await c.execute(
                    "UPDATE tasks SET status = 'handled', handled_at = now(), result = 'cleaned'"
                    " WHERE case_id = $1",
                    case_id,
                )
                await c.execute(
                    "UPDATE timers SET fired = true WHERE case_id = $1 AND NOT fired", case_id
                )
                await c.execute(
                    "UPDATE cases SET state = 'handled', version = version + 1 WHERE id = $1",
                    case_id,
                )
            await self.event("handled", case_id, {})
            async with c.transaction():
                await c.execute(
                    "INSERT INTO verifications(case_id, passed, notes) VALUES ($1, true, 'ok')",
                    case_id,
                )
                await c.execute(
                    "UPDATE cases SET state = 'verified', version = version + 1 WHERE id = $1",
                    case_id,
                )
            await self.event("verified", case_id, {})
            async with c.transaction():
                d = await c.fetchrow(
                    "UPDATE cases SET state = 'closed', closed_at = now(), version = version + 1"
                    " WHERE id = $1 RETURNING dept, closed_at <= deadline AS on_time",
                    case_id,
                )
                assert d is not None
                await c.execute(
                    "INSERT INTO scores VALUES ($1, current_date, 1, $2) ON CONFLICT (dept, day)"
                    " DO UPDATE SET closed = scores.closed + 1,"
                    " on_time = scores.on_time + excluded.on_time",
                    d["dept"],
                    int(d["on_time"]),
                )
            await self.event("closed", case_id, {})


async def _connect(database_url: str, nats_url: str) -> tuple[asyncpg.Pool, Any, Loop]:
    pool = await asyncpg.create_pool(database_url, min_size=8, max_size=16)
    assert pool is not None
    nc = await nats.connect(nats_url)
    return pool, nc, Loop(pool, nc.jetstream())


async def _saturate(database_url: str, nats_url: str, stop_at: float, closed: Any) -> None:
    pool, nc, loop = await _connect(database_url, nats_url)

    async def runner() -> None:
        while time.time() < stop_at:
            await loop.answer_to_close(await loop.report_to_department())
            closed.value += 1

    await asyncio.gather(*(runner() for _ in range(IN_FLIGHT)))
    await nc.close()
    await pool.close()


def _saturating_worker(database_url: str, nats_url: str, stop_at: float, closed: Any) -> None:
    asyncio.run(_saturate(database_url, nats_url, stop_at, closed))


async def _at_rate(
    database_url: str, nats_url: str, rate: float, warmup: int, count: int, out: Any
) -> None:
    """`warmup` reports, then `count` measured, at `rate` a second on a schedule; puts
    (ms report → dispatched heard, for each measured report) and the closed loops' CPU
    window bounds (the moments the measured reports began and the last of them closed)."""
    pool, nc, loop = await _connect(database_url, nats_url)
    heard: dict[int, float] = {}

    async def on_dispatched(msg: Any) -> None:
        heard[json.loads(msg.data)["case_id"]] = time.perf_counter()

    await nc.subscribe("monolith.dispatched", cb=on_dispatched)
    sent: dict[int, float] = {}

    async def one(measured: bool) -> None:
        started = time.perf_counter()
        case_id = await loop.report_to_department()
        if measured:
            sent[case_id] = started
        await asyncio.sleep(ANSWER_AFTER_S)  # the department answers later
        await loop.answer_to_close(case_id)

    work: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for n in range(warmup + count):
        due = start + n / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        if n == warmup:
            out.put(("measuring", None))
        work.append(asyncio.create_task(one(n >= warmup)))
    await asyncio.gather(*work)
    out.put(("closed", None))
    deadline = time.perf_counter() + 10
    while any(c not in heard for c in sent) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the last notices are on their way (a subscription)
    out.put(("latency", [(heard[c] - t) * 1000 for c, t in sent.items() if c in heard]))
    await nc.close()
    await pool.close()


def _rate_worker(
    database_url: str, nats_url: str, rate: float, warmup: int, count: int, out: Any
) -> None:
    asyncio.run(_at_rate(database_url, nats_url, rate, warmup, count, out))


async def _prepare(database_url: str, nats_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().add_stream(name=STREAM, subjects=["monolith.>"])
    finally:
        await nc.close()


async def _drop_stream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_stream(STREAM)
    finally:
        await nc.close()


async def measure(
    database_url: str,
    nats_url: str,
    infra: dict[str, int],
    *,
    seconds: float = 20.0,
    rate: float = 50.0,
    rate_seconds: float = 30.0,
) -> dict[str, Any]:
    """Both measurements on a database of their own (`database_url`, empty) and a stream of
    their own on the bench's servers (`infra`: their process ids, whose CPU counts)."""
    await _prepare(database_url, nats_url)
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {
        "workers": WORKERS,
        "loops_in_flight_per_worker": IN_FLIGHT,
        "events_per_closed_loop": EVENTS_PER_LOOP,
    }
    try:
        if seconds > 0:
            closed = ctx.Value("l", 0, lock=False)
            warm_until = time.time() + 5 + 3  # the workers' start-up, then 3 s warming
            stop_at = warm_until + seconds
            procs = [
                ctx.Process(
                    target=_saturating_worker, args=(database_url, nats_url, stop_at, closed)
                )
                for _ in range(WORKERS)
            ]
            for p in procs:
                p.start()
            window = CpuWindow({**infra, **{f"w{i}": p.pid or 0 for i, p in enumerate(procs)}})
            await asyncio.sleep(max(warm_until - time.time(), 0))
            n0 = closed.value
            window.start()
            await asyncio.sleep(max(stop_at - time.time(), 0))
            window.stop()
            n1 = closed.value
            for p in procs:
                await asyncio.to_thread(p.join, 60)
            if any(p.exitcode != 0 for p in procs):
                raise RuntimeError(
                    f"a monolith worker failed (exit codes {[p.exitcode for p in procs]})"
                )
            loops = max(n1 - n0, 1)
            out["closed_loops_per_s"] = round(loops / window.elapsed, 1)
            out["cpu_ms_per_closed_loop"] = round(sum(window.used.values()) * 1000 / loops, 2)
        if rate_seconds > 0:
            queue = ctx.Queue()
            warmup, count = int(rate * 3), int(rate * rate_seconds)
            proc = ctx.Process(
                target=_rate_worker, args=(database_url, nats_url, rate, warmup, count, queue)
            )
            proc.start()
            window = CpuWindow({**infra, "worker": proc.pid or 0})
            got: dict[str, Any] = {}
            while "latency" not in got:
                try:
                    kind, value = await asyncio.to_thread(queue.get, True, 1.0)
                except Empty:
                    if not proc.is_alive():
                        raise RuntimeError(
                            f"the monolith's worker ended (exit code {proc.exitcode})"
                        ) from None
                    continue
                got[kind] = value
                if kind == "measuring":
                    window.start()
                elif kind == "closed":
                    window.stop()
            await asyncio.to_thread(proc.join, 60)
            lat: list[float] = got["latency"]
            key = f"at_{rate:g}rps"
            out[f"p50_report_to_department_ms_{key}"] = pct(lat, 0.50)
            out[f"p95_report_to_department_ms_{key}"] = pct(lat, 0.95)
            out[f"p99_report_to_department_ms_{key}"] = pct(lat, 0.99)
            out[f"reports_heard_{key}"] = f"{len(lat)} of {count}"
            out[f"cpu_ms_per_closed_loop_{key}"] = round(
                sum(window.used.values()) * 1000 / max(count, 1), 2
            )
    finally:
        await _drop_stream(nats_url)
    return out


def main() -> int:
    """`python -m bench.monolith`: the reference alone, on servers of its own (as durable as
    the bench's), one JSON object on standard output."""
    import argparse
    import shutil
    import tempfile
    from pathlib import Path

    from gridloop_devkit.devstack import LocalNats, LocalPostgres

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="the saturation window")
    p.add_argument("--rate", type=float, default=50.0, help="reports a second, fixed")
    p.add_argument("--rate-seconds", type=float, default=30.0, help="the fixed rate's window")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridloop-monolith-"))
    nats_server = LocalNats(work / "nats", sync_always=True).start()
    pg = LocalPostgres(work / "pg", durable=True).start()
    try:
        assert nats_server.proc is not None and pg.proc is not None
        result = asyncio.run(
            measure(
                pg.create_database("monolith"),
                nats_server.url,
                {"nats": nats_server.proc.pid, "postgres": pg.proc.pid},
                seconds=args.seconds,
                rate=args.rate,
                rate_seconds=args.rate_seconds,
            )
        )
    finally:
        nats_server.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
