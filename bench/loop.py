"""The system under load: intake throughput, closed loops per second with simulated
departments and supervisors, latency report → department notified, scoring replay, RSS."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import nats
import nats.errors
from gridloop_city import City, haversine_m, load_city
from gridloop_contracts import Envelope, to_binary
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.devstack import LocalNats, LocalPostgres
from gridloop_devkit.launcher import Stack
from gridloop_runtime.bus import read_stored

from .actors import Actors
from .cpu import ACTORS, LOAD, CpuWindow, cpus
from .paused import Paused
from .rss import peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
# The services as `make run` has them, less what would measure something else: the per-user
# rate limit (every simulated supervisor and worker is one of a few users here).
BENCH_ENV = {
    "AUTH_MODE": "dev",
    "LOG_LEVEL": "WARNING",
    "RATE_LIMIT_CLIENT_PER_S": "0",
    "RATE_LIMIT_PUBLIC_PER_S": "0",
}


# The services off the report's path (intake → dispatch → the department), stopped for the
# path-alone window.
OFF_PATH = ("handling", "verify", "scoring")
# 非法小广告: auto-accepted from a trusted supervisor, routed to urban-mgmt (demo routing:
# E02*), which no simulated department answers.
QUEUE_CATEGORY = "E0201"


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

    def next(self, tag: str, category: str = "E0104") -> ReportV1:
        lon, lat = self.points[self.n % len(self.points)]
        age = timedelta(hours=73 * (self.n // len(self.points)))
        self.n += 1
        ext = f"{tag}-{uuid.uuid4().hex[:12]}"
        return ReportV1(
            external_id=ext,
            description=ext,  # the department feed carries it back: latency is measured on it
            reported_at=self.base - age,
            location={"lat": lat, "lon": lon},
            category_code=category,
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
    # the source ends with the publisher's code, as intake requires
    headers, body = to_binary(Envelope.of(report, source="/bench/patrol-app"))
    return await js.publish_async("intake.patrol.patrol-app", body, headers=headers)


async def at_fixed_rate(
    js: Any, reports: Reports, sent_at: dict[str, float], rate: float, warm: int, measured: int
) -> tuple[list[str], list[str]]:
    """Publish `warm` then `measured` reports at `rate` per second, each at its scheduled time
    (a slow acknowledgement does not slow the schedule); the two lists of their ids."""
    ids: list[str] = []
    acks = []
    t0 = time.perf_counter()
    for i in range(warm + measured):
        wait = t0 + i / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        r = reports.next("lat50")
        sent_at[r.external_id] = time.perf_counter()
        ids.append(r.external_id)
        acks.append(await publish(js, r))
    await asyncio.gather(*acks)
    return ids[:warm], ids[warm:]


async def keep_in_flight(
    js: Any,
    reports: Reports,
    tag: str,
    in_flight: int,
    until: float,
    open_cases: Callable[[], int],
    opened: Callable[[ReportV1], None],
    done: Callable[[], bool] = lambda: False,
) -> None:
    """Until `until` (or `done()`): keep `in_flight` cases open, sending new reports as cases
    close (a city's open cases, not an ever-growing queue)."""
    while time.perf_counter() < until and not done():
        room = in_flight - open_cases()
        if room <= 0:
            await asyncio.sleep(0.02)
            continue
        batch = [reports.next(tag) for _ in range(min(100, room))]
        for r in batch:
            opened(r)
        await asyncio.gather(*[await publish(js, r) for r in batch])


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
    stack.start(timeout=180)
    try:
        return await _run(args, work, nats_server, pg, base, city, stack)
    finally:
        stack.stop()  # when something failed: the services do not outlive the bench


async def _run(
    args: argparse.Namespace,
    work: Path,
    nats_server: LocalNats,
    pg: LocalPostgres,
    base: dict[str, Any],
    city: City,
    stack: Stack,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream(publish_async_max_pending=2000)
    reports = Reports(city)
    # the department kit and the supervisors: a process of their own, measured apart
    actors = await Actors(nats_server.url, stack.url("verify")).start()
    assert nats_server.proc is not None and pg.proc is not None
    cpu = CpuWindow(
        {name: p.pid for name, p in stack.procs.items()}
        | {"nats": nats_server.proc.pid, "postgres": pg.proc.pid}
        | {LOAD: os.getpid(), ACTORS: actors.pid}
    )
    only_loop = getattr(args, "only", None) == "closed_loop"

    notified: dict[str, float] = {}
    cases: dict[str, str] = {}  # report (its description) → case, from the department feed
    sent_at: dict[str, float] = {}
    closed = {"n": 0}
    closed_ids: set[str] | None = None  # a set while the closed-loop phase is measured
    heard: set[str] = set()

    async def on_assigned(msg: Any) -> None:
        data = json.loads(msg.data)
        desc = data.get("case", {}).get("description")
        if desc in sent_at and desc not in notified:
            notified[desc] = time.perf_counter()
            cases[desc] = str(data["case"]["case_id"])

    async def on_closed(msg: Any) -> None:
        closed["n"] += 1
        if closed_ids is not None:
            closed_ids.add(case_id_of(msg))

    async def on_notify(msg: Any) -> None:
        data = json.loads(msg.data)
        if data.get("external_id"):
            heard.add(data["external_id"])

    await nc.subscribe("dispatch.*.assigned", cb=on_assigned)
    await nc.subscribe("case.closed", cb=on_closed)
    await nc.subscribe("notify.patrol-app", cb=on_notify)
    try:
        # 1. latency at a moderate fixed rate: 50 reports/s on a schedule (not slowed by the
        # acks), the departments and supervisors answering; the first 5 s warm the system up
        # (connections, statement caches, the loop's later steps reaching steady state) and
        # are not measured, the next windows of 10 s each are (one window's p99 rests on its
        # five slowest reports: runs of one code spread wider than a change)
        await asyncio.sleep(2)
        if not only_loop:
            warm, _ = await at_fixed_rate(js, reports, sent_at, 50.0, 250, 0)
            # and what that rate costs: the system's CPU per case closed while measuring
            closed_from = closed["n"]
            cpu.start()
            windows = max(1, args.latency_windows)
            _, moderate = await at_fixed_rate(js, reports, sent_at, 50.0, 0, 500 * windows)
            cpu.stop()
            at_50 = cpu.per_closed_loop(closed["n"] - closed_from, cpus())
            out["cpu_ms_per_closed_loop_at_50rps"] = at_50["cpu_ms_per_closed_loop"]
            out["cpu_ms_per_closed_loop_at_50rps_by_process"] = at_50[
                "cpu_ms_per_closed_loop_by_process"
            ]
            out["loop_cpu_pct_of_machine_at_50rps"] = at_50["loop_cpu_pct_of_machine"]
            await _until(lambda: all(e in notified for e in moderate), 60)

            def ms(ids: list[str]) -> list[float]:
                """Report sent → department heard, in ms, for those of `ids` heard."""
                return [(notified[e] - sent_at[e]) * 1000 for e in ids if e in notified]

            lat = ms(moderate)
            out["p50_report_to_department_ms_at_50rps"] = pct(lat, 0.50)
            out["p95_report_to_department_ms_at_50rps"] = pct(lat, 0.95)
            out["p99_report_to_department_ms_at_50rps"] = pct(lat, 0.99)
            out["p99_report_to_department_ms_at_50rps_by_window"] = [
                pct(ms(window), 0.99)
                for window in (moderate[i : i + 500] for i in range(0, len(moderate), 500))
            ]
            cold = ms(warm)
            out["p99_report_to_department_ms_at_50rps_warmup"] = pct(cold, 0.99)

            await _until(lambda: closed["n"] >= len(warm) + len(moderate), 180)
            out["latency_phase_closed"] = closed["n"]

            # 1a. the report's path alone: the same rate with the services off it stopped (as
            # `make profile --rate 50 --pause handling,verify,scoring`), then let go and their
            # cases closed before the next phase
            if path_alone := getattr(args, "path_alone_reports", 0):
                closed_from = closed["n"]
                async with Paused([stack.procs[name].pid for name in OFF_PATH]).during():
                    _, alone = await at_fixed_rate(js, reports, sent_at, 50.0, 0, path_alone)
                    await _until(lambda: all(e in notified for e in alone), 60)
                path = ms(alone)
                out["p50_report_to_department_ms_at_50rps_path_alone"] = pct(path, 0.50)
                out["p99_report_to_department_ms_at_50rps_path_alone"] = pct(path, 0.99)
                await _until(lambda: closed["n"] >= closed_from + len(alone), 180)

            # 1b. a recalled case in every service's view: case.queued → 待人工派遣 in the
            # case file (intake) and in the dispatch queue, one case at a time
            out.update(await queue_visibility(nc, js, stack, reports, notified, cases, sent_at, 20))

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

        async def phase(seconds: float, done: Callable[[], bool] = lambda: False) -> None:
            until = time.perf_counter() + seconds
            await keep_in_flight(
                js, reports, "sat", args.in_flight, until, open_cases, opened, done
            )

        await phase(args.warmup_seconds)
        measured_from, closed_at_start = len(sat), closed["n"]
        closed_ids = set()
        cpu.start()
        await phase(args.loop_seconds)
        cpu.stop()
        window_closed, closed_ids = closed_ids, None
        elapsed = cpu.elapsed
        loops = closed["n"] - closed_at_start
        measured = sat[measured_from:]  # the reports sent in steady state
        out["closed_loops_per_s"] = round(loops / elapsed, 1)
        out["loop_cases_in_flight"] = args.in_flight
        out["loop_phase_s"] = round(elapsed, 1)
        out.update(cpu.per_closed_loop(loops, cpus()))

        # latency of the reports sent in steady state: the load goes on as before (unmeasured)
        # until each of them is answered or the phase's length has passed again; one still
        # unanswered then counts as the time it has waited (at least the phase's length),
        # not left out
        await phase(args.loop_seconds, done=lambda: all(e in notified for e in measured))
        waited_until = time.perf_counter()
        lat_sat = [(notified.get(e, waited_until) - sent_at[e]) * 1000 for e in measured]
        out["p50_report_to_department_ms_at_saturation"] = pct(lat_sat, 0.50)
        out["p99_report_to_department_ms_at_saturation"] = pct(lat_sat, 0.99)
        out["saturation_reports_measured"] = len(measured)
        out["saturation_reports_unanswered"] = sum(e not in notified for e in measured)

        # lifecycle events: those of the cases closed in the measured window (each case's
        # whole life, from its report before the window to its close in it), per second
        events, read = await events_of_cases(js, window_closed)
        out["cases_stream_events"] = read
        out["lifecycle_events_per_closed_loop"] = round(events / max(len(window_closed), 1), 1)
        out["lifecycle_events_per_s"] = round(events / elapsed)
        if not only_loop:
            # 3. intake over HTTP: concurrent POST /reports for 10 s, once the loop's open
            # cases are closed (measured after the burst, it measured how much of the burst's
            # downstream work was still going on: intake's process shares its CPU with the
            # case file's consumer)
            await _until(lambda: open_cases() <= 0, 180)
            out["intake_http_reports_per_s"] = await http_rate(stack, reports, 10.0)

            # 4. intake over NATS: a burst, timed until every report is answered on notify
            burst = [reports.next("nats") for _ in range(args.burst)]
            t0 = time.perf_counter()
            futures = [await publish(js, r) for r in burst]
            await asyncio.gather(*futures)
            await _until(lambda: all(r.external_id in heard for r in burst), 300)
            out["intake_nats_reports_per_s"] = round(len(burst) / (time.perf_counter() - t0))
    finally:
        out["supervisors"] = await actors.stop()
        out["rss_mb"] = {name: peak_rss_mb(p.pid) for name, p in stack.procs.items()}
        out["max_service_rss_mb"] = max((v for v in out["rss_mb"].values() if v), default=None)
        try:
            # the replay is compared with the live projection: let scoring take in and fold
            # the backlog the saturated loop left before it stops
            if not only_loop:
                out["scoring_drained_s"] = await scoring_drained(js, stack, 300)
        finally:
            await nc.close()
            stack.stop_service("scoring")
    # 5. scoring replay over everything the run produced, compared with the live projection
    if not only_loop:
        out.update(replay_rate(stack))
    stack.stop()
    # 6. scoring replay over a million generated events (its own nats-server)
    if args.replay_events > 0 and not only_loop:
        from .replay import measure as replay_million

        out.update(await replay_million(work, pg, args.replay_events))
    jp = base.get("baseline_jetstream_publish_per_s") or 1
    pgc = base.get("baseline_pg_commit_per_s") or 1
    ratios = {
        "lifecycle_events_to_jetstream_publish": ("lifecycle_events_per_s", jp, 3),
        "closed_loops_to_pg_commits": ("closed_loops_per_s", pgc, 4),
        "intake_nats_to_jetstream_publish": ("intake_nats_reports_per_s", jp, 3),
        "intake_http_to_pg_commits": ("intake_http_reports_per_s", pgc, 3),
    }
    out["ratios"] = {
        name: round(out[key] / to, digits)
        for name, (key, to, digits) in ratios.items()
        if out.get(key) is not None
    }
    out["ratios"].update(to_monolith(out, base.get("baseline_monolith") or {}))
    return out


def to_monolith(out: dict[str, Any], mono: dict[str, Any]) -> dict[str, float]:
    """The system's figures over the reference monolith's of the same run (bench/monolith.py):
    the issue's targets read as ratios (CPU per loop ≤ 2×, loops per second ≥ 0.5×)."""
    pairs = {
        "cpu_per_closed_loop_to_monolith": "cpu_ms_per_closed_loop",
        "closed_loops_to_monolith": "closed_loops_per_s",
        "cpu_per_closed_loop_at_50rps_to_monolith": "cpu_ms_per_closed_loop_at_50rps",
        "p50_report_to_department_at_50rps_to_monolith": "p50_report_to_department_ms_at_50rps",
        "p99_report_to_department_at_50rps_to_monolith": "p99_report_to_department_ms_at_50rps",
    }
    return {
        name: round(out[key] / mono[key], 2)
        for name, key in pairs.items()
        if out.get(key) is not None and mono.get(key)
    }


async def queue_visibility(
    nc: Any,
    js: Any,
    stack: Stack,
    reports: Reports,
    notified: dict[str, float],
    cases: dict[str, str],
    sent_at: dict[str, float],
    n: int,
) -> dict[str, Any]:
    """For `n` reports, one at a time: once the department is told, the dispatcher recalls
    the case; from case.queued on the bus, the milliseconds until the case file shows it
    waiting for manual dispatch and until the dispatch queue lists it (polled every 10 ms).
    The reports are of a category no simulated department answers (the kit answers at once,
    and would close most cases before the recall); a recall refused all the same, or one a
    department's result crossed (case.unqueued), is not measured."""
    queued: dict[str, float] = {}
    overtaken: set[str] = set()

    async def on_queued(msg: Any) -> None:
        queued.setdefault(str(json.loads(msg.data).get("case_id")), time.perf_counter())

    async def on_unqueued(msg: Any) -> None:
        overtaken.add(str(json.loads(msg.data).get("case_id")))

    sub = await nc.subscribe("case.queued", cb=on_queued)
    sub_out = await nc.subscribe("case.unqueued", cb=on_unqueued)
    to_file: list[float] = []
    to_queue: list[float] = []
    refused = 0
    why: Counter[str] = Counter()
    unseen: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:

            async def get(service: str, path: str, user: str) -> Any:
                r = await http.get(stack.url(service) + path, headers={"X-User": user})
                r.raise_for_status()
                return r.json()

            for _ in range(n):
                r = reports.next("queue", QUEUE_CATEGORY)
                sent_at[r.external_id] = time.perf_counter()
                await (await publish(js, r))
                await _until(lambda r=r: r.external_id in notified, 20)
                case_id = cases.get(r.external_id)
                if case_id is None:
                    refused += 1
                    why["department not told"] += 1
                    continue
                resp = await http.post(
                    stack.url("dispatch") + f"/cases/{case_id}/recall",
                    json={"reason": "bench: 统一改派"},
                    headers={"X-User": "disp-01"},
                )
                if resp.status_code >= 300:
                    refused += 1
                    problems = resp.json().get("detail") if resp.status_code < 500 else None
                    code = problems[0].get("code") if isinstance(problems, list) else None
                    why[f"{resp.status_code} {code or ''}".strip()] += 1
                    continue
                await _until(lambda c=case_id: c in queued, 30)
                if case_id not in queued:
                    refused += 1
                    why["case.queued not heard"] += 1
                    continue
                seen: dict[str, float] = {}
                end = time.perf_counter() + 30
                while len(seen) < 2 and time.perf_counter() < end and case_id not in overtaken:
                    if "file" not in seen:
                        case = await get("intake", f"/cases/{case_id}", "op-01")
                        if case["status"] == "manual_dispatch":
                            seen["file"] = time.perf_counter()
                    if "queue" not in seen:
                        waiting = await get("dispatch", "/queue", "disp-01")
                        if any(c["case_id"] == case_id for c in waiting):
                            seen["queue"] = time.perf_counter()
                    await asyncio.sleep(0.01)
                if case_id in overtaken:  # the department's result crossed the recall
                    continue
                if len(seen) < 2:  # not in every view: what the case file says instead
                    case = await get("intake", f"/cases/{case_id}", "op-01")
                    unseen.append({"case_id": case_id, "status": case["status"], "seen": [*seen]})
                t0 = queued[case_id]
                to_file.append((seen.get("file", end) - t0) * 1000)
                to_queue.append((seen.get("queue", end) - t0) * 1000)
    finally:
        await sub.unsubscribe()
        await sub_out.unsubscribe()
    return {
        "queue_visible_cases": len(to_file),
        "queue_recalls_not_counted": refused,
        "queue_recalls_not_counted_why": dict(why),
        "queue_recalls_overtaken": len(overtaken),
        "p50_queued_to_case_file_ms": pct(to_file, 0.50),
        "max_queued_to_case_file_ms": round(max(to_file), 1) if to_file else None,
        "p50_queued_to_dispatch_queue_ms": pct(to_queue, 0.50),
        "max_queued_to_dispatch_queue_ms": round(max(to_queue), 1) if to_queue else None,
        "queue_not_visible": unseen,
    }


def case_id_of(msg: Any) -> str:
    """The case a CASES event is about: its CloudEvents subject, else the body's case_id."""
    found = (msg.headers or {}).get("ce-subject")
    return str(found) if found else str(json.loads(msg.data).get("case_id"))


async def events_of_cases(js: Any, case_ids: set[str], stream: str = "CASES") -> tuple[int, int]:
    """(events about `case_ids`, events read): the stream from its start to its last
    message now."""
    about = await read_stored(js, stream, case_id_of, subject="case.>")
    return sum(case_id in case_ids for case_id in about), len(about)


async def http_rate(stack: Stack, reports: Reports, seconds: float) -> float:
    done = 0
    end = time.perf_counter() + seconds
    # aiohttp, as the supervisors (bench/actors.py): httpx's pool took more CPU than the
    # requests it sent, and the client shares the machine with intake
    connector = aiohttp.TCPConnector(limit=32)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                r = reports.next("http")
                body = r.model_dump(mode="json", exclude_none=True)
                body.pop("reporter_user_id", None)
                async with http.post(
                    stack.url("intake") + "/reports",
                    json=body,
                    headers={"X-User": reports.supervisor},
                ) as resp:
                    await resp.read()
                    if resp.status < 300:
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
