"""The system under load: intake throughput, closed loops per second with simulated
departments and supervisors, latency report → department notified, scoring replay, RSS."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from gridloop_city import City, haversine_m, load_city
from gridloop_contracts import Envelope, to_binary
from gridloop_contracts.inbound import ReportV1
from gridloop_runtime.devstack import LocalNats, LocalPostgres
from gridloop_runtime.launcher import Stack

from .rss import peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "services" / "handling" / "examples" / "department_system.py"
PHOTO = "https://evidence.example.org/bench/verified.jpg"
# The services as `make run` has them, less what would measure something else: the per-user
# rate limit (every simulated supervisor and worker is one of a few users here).
BENCH_ENV = {
    "AUTH_MODE": "dev",
    "LOG_LEVEL": "WARNING",
    "OUTBOX_POLL_S": "0.2",
    "RATE_LIMIT_CLIENT_PER_S": "0",
    "RATE_LIMIT_PUBLIC_PER_S": "0",
}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


class Reports:
    """Distinct reports from trusted supervisors (auto-accepted, routed to sanitation) that
    never merge: each lands >50 m or >72 h from the others of its batch."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.points = spaced([(p.lon, p.lat) for p in city.parts.values()], 60.0)
        self.supervisor = next(u.id for u in city.users.values() if u.trusted)
        self.n = 0
        self.base = datetime.now(UTC)

    def next(self, tag: str) -> ReportV1:
        lon, lat = self.points[self.n % len(self.points)]
        age = timedelta(hours=73 * (self.n // len(self.points)))
        self.n += 1
        ext = f"{tag}-{uuid.uuid4().hex[:12]}"
        return ReportV1(
            external_id=ext,
            description=ext,  # the department feed carries it back: latency is measured on it
            reported_at=self.base - age,
            location={"lat": lat, "lon": lon},
            category_code="E0104",
            reporter_user_id=self.supervisor,
        )


def spaced(points: list[tuple[float, float]], min_m: float) -> list[tuple[float, float]]:
    """The points at least `min_m` apart (greedy), so reports at them never merge as
    duplicates (the demo city's rule is 50 m / 72 h)."""
    cell = min_m / 111_000  # degrees, a little less than min_m along longitude at 40°N
    taken: dict[tuple[int, int], list[tuple[float, float]]] = {}
    out = []
    for lon, lat in sorted(points):
        key = (int(lon / cell), int(lat / cell))
        near = (
            q
            for dx in (-2, -1, 0, 1, 2)
            for dy in (-2, -1, 0, 1, 2)
            for q in taken.get((key[0] + dx, key[1] + dy), ())
        )
        if all(haversine_m(lon, lat, qlon, qlat) >= min_m for qlon, qlat in near):
            taken.setdefault(key, []).append((lon, lat))
            out.append((lon, lat))
    return out


async def publish(js: Any, report: ReportV1) -> Any:
    headers, body = to_binary(Envelope.of(report, source="/bench"))
    return await js.publish_async("intake.patrol.patrol-app", body, headers=headers)


async def supervisors(
    stack: Stack, stop: asyncio.Event, counter: dict[str, int], nc: Any = None
) -> None:
    """Supervisors passing every verification task. With a NATS connection each hears of a
    task as it is assigned (their app's notice, case.verification_assigned), opens their own
    open tasks and passes it, and a sweep of everybody's open tasks every few seconds catches
    anything missed; without one they only sweep, continuously."""
    url = stack.url("verify")
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    if nc is not None:

        async def on_assigned(msg: Any) -> None:
            data = json.loads(msg.data)
            if data.get("purpose", "verification") == "verification":
                heard.put_nowait((data["supervisor_id"], data["case_id"]))

        await nc.subscribe("case.verification_assigned", cb=on_assigned)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=16)) as http:

        async def passed(t: dict[str, Any]) -> None:
            resp = await http.post(
                f"{url}/tasks/{t['task_id']}/verification",
                json={"passed": True, "command_id": t["task_id"], "photos": [PHOTO]},
                headers={"X-User": t["supervisor_id"]},
            )
            if resp.status_code < 300:
                counter["verified"] += 1
            else:
                counter["verify_errors"] = counter.get("verify_errors", 0) + 1

        async def listed(user: str, **params: Any) -> list[dict[str, Any]]:
            params |= {"status": "open", "purpose": "verification"}
            r = await http.get(url + "/tasks", params=params, headers={"X-User": user})
            if r.status_code != 200:
                counter["list_errors"] = counter.get("list_errors", 0) + 1
                return []
            tasks: list[dict[str, Any]] = r.json()
            return tasks

        async def on_notice(supervisor: str, case_id: str) -> None:
            for t in await listed(supervisor):
                if t["case_id"] == case_id:
                    await passed(t)

        sweep_every = 5.0 if nc is not None else 0.05
        next_sweep = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_sweep:
                tasks = await listed("admin", limit=500)
                await asyncio.gather(*(passed(t) for t in tasks if t.get("supervisor_id")))
                next_sweep = time.monotonic() + sweep_every
            notices: list[tuple[str, str]] = []
            with contextlib.suppress(TimeoutError):
                notices.append(await asyncio.wait_for(heard.get(), timeout=0.2))
            while not heard.empty() and len(notices) < 32:
                notices.append(heard.get_nowait())
            await asyncio.gather(*(on_notice(s, c) for s, c in notices))


async def keep_in_flight(
    js: Any,
    reports: Reports,
    tag: str,
    in_flight: int,
    until: float,
    open_cases: Callable[[], int],
    opened: Callable[[ReportV1], None],
) -> None:
    """Until `until`: keep `in_flight` cases open, sending new reports as cases close (a
    city's open cases, not an ever-growing queue)."""
    while time.perf_counter() < until:
        room = in_flight - open_cases()
        if room <= 0:
            await asyncio.sleep(0.02)
            continue
        batch = [reports.next(tag) for _ in range(min(100, room))]
        for r in batch:
            opened(r)
        await asyncio.gather(*[await publish(js, r) for r in batch])


def load_kit() -> Any:
    spec = importlib.util.spec_from_file_location("department_system", KIT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run(
    args: argparse.Namespace,
    work: Path,
    nats_server: LocalNats,
    pg: LocalPostgres,
    base: dict[str, Any],
) -> dict[str, Any]:
    city = load_city(ROOT / "data" / "demo-city")
    stack = Stack(
        work / "stack",
        nats_url=nats_server.url,
        database_url=pg.create_database("gridloop"),
        env=BENCH_ENV,
    )
    out: dict[str, Any] = {}
    stack.start(timeout=180)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream(publish_async_max_pending=2000)
    reports = Reports(city)
    stop = asyncio.Event()
    kit = load_kit()
    kit_task = asyncio.create_task(
        kit.run(nats_server.url, "sanitation", behaviour="handle", stop=stop, say=lambda _: None)
    )
    counter = {"verified": 0}
    sup_task = asyncio.create_task(supervisors(stack, stop, counter, nc))

    notified: dict[str, float] = {}
    sent_at: dict[str, float] = {}
    closed = {"n": 0}
    heard: set[str] = set()

    async def on_assigned(msg: Any) -> None:
        data = json.loads(msg.data)
        desc = data.get("case", {}).get("description")
        if desc in sent_at and desc not in notified:
            notified[desc] = time.perf_counter()

    async def on_closed(_: Any) -> None:
        closed["n"] += 1

    async def on_notify(msg: Any) -> None:
        data = json.loads(msg.data)
        if data.get("external_id"):
            heard.add(data["external_id"])

    await nc.subscribe("dispatch.*.assigned", cb=on_assigned)
    await nc.subscribe("case.closed", cb=on_closed)
    await nc.subscribe("notify.patrol-app", cb=on_notify)
    try:
        # 1. latency at a moderate fixed rate (50 reports/s for 10 s)
        await asyncio.sleep(2)
        moderate: list[str] = []
        for _ in range(500):
            r = reports.next("lat50")
            sent_at[r.external_id] = time.perf_counter()
            moderate.append(r.external_id)
            await (await publish(js, r))
            await asyncio.sleep(0.02)
        await _until(lambda: all(e in notified for e in moderate), 60)
        lat = [(notified[e] - sent_at[e]) * 1000 for e in moderate if e in notified]
        out["p50_report_to_department_ms_at_50rps"] = pct(lat, 0.50)
        out["p95_report_to_department_ms_at_50rps"] = pct(lat, 0.95)
        out["p99_report_to_department_ms_at_50rps"] = pct(lat, 0.99)

        await _until(lambda: closed["n"] >= len(moderate), 180)
        out["latency_phase_closed"] = closed["n"]

        # 2. sustained closed loops with departments and supervisors answering at once (once
        # the latency phase's cases are closed, so every close counted is this phase's): a
        # bounded number of cases in flight (a city's open cases, not an ever-growing queue),
        # a warm-up, then the closing rate in steady state
        sat: list[str] = []
        closed_before = closed["n"]

        def opened(r: ReportV1) -> None:
            sent_at[r.external_id] = time.perf_counter()
            sat.append(r.external_id)

        def open_cases() -> int:
            return len(sat) - (closed["n"] - closed_before)

        async def phase(seconds: float) -> None:
            until = time.perf_counter() + seconds
            await keep_in_flight(js, reports, "sat", args.in_flight, until, open_cases, opened)

        await phase(args.warmup_seconds)
        measured_from, closed_at_start = len(sat), closed["n"]
        t0 = time.perf_counter()
        await phase(args.loop_seconds)
        elapsed = time.perf_counter() - t0
        loops = closed["n"] - closed_at_start
        out["closed_loops_per_s"] = round(loops / elapsed, 1)
        out["loop_cases_in_flight"] = args.in_flight
        sat = sat[measured_from:]  # latency of the reports sent in steady state
        lat_sat = [(notified[e] - sent_at[e]) * 1000 for e in sat if e in notified]
        out["p50_report_to_department_ms_at_saturation"] = pct(lat_sat, 0.50)
        out["p99_report_to_department_ms_at_saturation"] = pct(lat_sat, 0.99)
        info = await js.stream_info("CASES")
        out["cases_stream_events"] = info.state.messages
        out["lifecycle_events_per_s"] = round(
            loops * (info.state.messages / max(closed["n"], 1)) / elapsed
        )
        out["loop_phase_s"] = round(elapsed, 1)

        # 3. intake over NATS: a burst, timed until every report is answered on notify
        burst = [reports.next("nats") for _ in range(args.burst)]
        t0 = time.perf_counter()
        futures = [await publish(js, r) for r in burst]
        await asyncio.gather(*futures)
        await _until(lambda: all(r.external_id in heard for r in burst), 300)
        out["intake_nats_reports_per_s"] = round(len(burst) / (time.perf_counter() - t0))

        # 4. intake over HTTP: concurrent POST /reports for 10 s
        out["intake_http_reports_per_s"] = await http_rate(stack, reports, 10.0)
        out["supervisors"] = counter
    finally:
        stop.set()
        await asyncio.gather(kit_task, sup_task, return_exceptions=True)
        out["rss_mb"] = {name: peak_rss_mb(p.pid) for name, p in stack.procs.items()}
        out["max_service_rss_mb"] = max((v for v in out["rss_mb"].values() if v), default=None)
        # the replay is compared with the live projection: let scoring take in and fold the
        # backlog the saturated loop left before it stops
        out["scoring_drained_s"] = await scoring_drained(js, stack, 300)
        await nc.close()
        stack.stop_service("scoring")
    # 5. scoring replay over everything the run produced, compared with the live projection
    out.update(replay_rate(stack))
    stack.stop()
    # 6. scoring replay over a million generated events (its own nats-server)
    if args.replay_events > 0:
        from .replay import measure as replay_million

        out.update(await replay_million(work, pg, args.replay_events))
    jp = base.get("baseline_jetstream_publish_per_s") or 1
    pgc = base.get("baseline_pg_commit_per_s") or 1
    out["ratios"] = {
        "lifecycle_events_to_jetstream_publish": round(
            out.get("lifecycle_events_per_s", 0) / jp, 3
        ),
        "closed_loops_to_pg_commits": round(out.get("closed_loops_per_s", 0) / pgc, 4),
        "intake_nats_to_jetstream_publish": round(out.get("intake_nats_reports_per_s", 0) / jp, 3),
        "intake_http_to_pg_commits": round(out.get("intake_http_reports_per_s", 0) / pgc, 3),
    }
    return out


async def http_rate(stack: Stack, reports: Reports, seconds: float) -> float:
    done = 0
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=32)) as http:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                r = reports.next("http")
                body = r.model_dump(mode="json", exclude_none=True)
                body.pop("reporter_user_id", None)
                resp = await http.post(
                    stack.url("intake") + "/reports",
                    json=body,
                    headers={"X-User": reports.supervisor},
                )
                if resp.status_code < 300:
                    done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(32)))
        return round(done / (time.perf_counter() - t0), 1)


async def scoring_drained(js: Any, stack: Stack, timeout: float) -> float | None:
    """Seconds until the CASES stream stops growing, scoring has every event of it and no
    case waits to be folded (None: not within `timeout`)."""
    assert stack.database_url
    conn = await asyncpg.connect(stack.database_url)
    t0 = time.monotonic()
    quiet_since: float | None = None
    last = -1
    try:
        while time.monotonic() - t0 < timeout:
            info = await js.consumer_info("CASES", "scoring-cases")
            size = (await js.stream_info("CASES")).state.messages
            dirty = await conn.fetchval("SELECT count(*) FROM scoring.dirty_cases")
            idle = not info.num_pending and not info.num_ack_pending and not dirty
            if idle and size == last:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 3.0:
                    return round(time.monotonic() - t0, 1)
            else:
                quiet_since = None
            last = size
            await asyncio.sleep(0.5)
        return None
    finally:
        await conn.close()


def replay_rate(stack: Stack) -> dict[str, Any]:
    env = stack.service_env("scoring")
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "gridloop_scoring", "rebuild"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - t0
    text = r.stdout
    report: dict[str, Any] = {}
    if "\n{" in "\n" + text:
        report = json.loads(text[("\n" + text).index("\n{") :])
    events = report.get("events_read")
    return {
        "scoring_replay_loop_events": events,
        "scoring_replay_loop_seconds": round(elapsed, 1),
        "scoring_replay_loop_events_per_s": round(events / elapsed) if events else None,
        "scoring_replay_loop_identical_to_live": report.get("identical"),
    }


async def _until(cond: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
