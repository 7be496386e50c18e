"""`make profile`: the closed loop at saturation with py-spy sampling every service.

Writes one collapsed-stack file and one flame graph per service into the work directory and
prints, per service, the functions with the most samples (self and inclusive), so the next
bottleneck is read off, not guessed."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats
import orjson
import psutil
from gridloop_city import load_city
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.devstack import LocalNats, LocalPostgres
from gridloop_devkit.launcher import SERVICES, Stack

from . import pglog
from .actors import Actors
from .cpu import ACTORS, LOAD, CpuWindow, cpus
from .loop import BENCH_ENV, ROOT, Reports, at_fixed_rate, keep_in_flight
from .paused import Paused


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed (it is in the dev dependency group)")
    return found


def summarize(raw: Path, top: int) -> dict[str, Any]:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1] for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n

    def pct(c: collections.Counter[str]) -> dict[str, float]:
        return {k: round(100 * v / max(total, 1), 1) for k, v in c.most_common(top)}

    return {"samples": total, "self_pct": pct(own), "inclusive_pct": pct(incl)}


async def tally(stack: Stack, database_url: str, js: Any = None) -> dict[str, Any]:
    """What the system did so far, to take per closed loop over the measured window: the
    messages the services' consumers took (JetStream deliveries handled, duplicates
    included), the events they published, the messages each stream holds by subject,
    PostgreSQL's commits and statements."""
    import asyncpg
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {"deliveries": 0.0, "publishes": 0.0}
    async with httpx.AsyncClient(timeout=10) as http:
        for name in stack.procs:
            text = (await http.get(stack.url(name) + "/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name == "gridloop_events_in":
                    for s in family.samples:
                        if s.name.endswith("_total") and s.labels.get("outcome") != "retry":
                            out["deliveries"] += s.value
                            key = f"delivered {s.labels.get('consumer')}"
                            out[key] = out.get(key, 0.0) + s.value
                elif family.name == "gridloop_handler_seconds":
                    for s in family.samples:
                        if s.name.endswith("_count"):
                            key = f"batches {s.labels.get('consumer')}"
                            out[key] = out.get(key, 0.0) + s.value
                elif family.name == "gridloop_consumer_fetches":
                    for s in family.samples:
                        if s.name.endswith("_total"):
                            key = f"fetches {s.labels.get('consumer')}"
                            out[key] = out.get(key, 0.0) + s.value
                elif family.name == "gridloop_events_out":
                    out["publishes"] += sum(
                        s.value for s in family.samples if s.name.endswith("_total")
                    )
    if js is not None:
        for stream in STREAMS:
            with contextlib.suppress(Exception):
                info = await js.stream_info(stream, subjects_filter=">")
                out[f"{stream} stream_bytes"] = float(info.state.bytes)
                for subject, n in (info.state.subjects or {}).items():
                    key = f"stored {_subject_kind(subject)}"
                    out[key] = out.get(key, 0.0) + n
    conn = await asyncpg.connect(database_url)
    try:
        out["commits"] = float(
            await conn.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
        )
        out["statements"] = float(
            await conn.fetchval("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements")
        )
        out["wal_kb"] = float(await conn.fetchval("SELECT wal_bytes FROM pg_stat_wal")) / 1024
        out["wal_lsn"] = int(await conn.fetchval("SELECT pg_current_wal_lsn()"))
        # what each table takes on disk (heap, TOAST and indexes), and the database as a whole
        out["db_bytes"] = float(await conn.fetchval("SELECT pg_database_size(current_database())"))
        for r in await conn.fetch(
            "SELECT n.nspname || '.' || c.relname AS t, pg_total_relation_size(c.oid) AS b "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        ):
            out[f"{r['t']} bytes"] = float(r["b"])
        # row changes per table (the statistics are sent at each transaction's end)
        for r in await conn.fetch(
            "SELECT schemaname || '.' || relname AS t, n_tup_ins, n_tup_upd, n_tup_hot_upd, "
            "n_tup_del FROM pg_stat_user_tables"
        ):
            for k in ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del"):
                out[f"{r['t']} {k[6:]}"] = float(r[k])
        # each backend's CPU so far, by who it works for (the service that named its connection,
        # or the kind of background process); a backend that came and went is in neither
        for r in await conn.fetch(
            "SELECT pid, coalesce(nullif(application_name, ''), backend_type) AS who "
            "FROM pg_stat_activity"
        ):
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(r["pid"]).cpu_times()
                out[f"backend {r['pid']} {r['who']}"] = float(times.user + times.system)
    finally:
        await conn.close()
    return out


def backend_lines(before: dict[str, Any], after: dict[str, Any], loops: int) -> list[str]:
    """PostgreSQL's CPU per closed loop by the service its backends work for: the backends
    that lived through the measured window (a pooled connection does)."""
    by: dict[str, float] = {}
    for key, seconds in after.items():
        if key.startswith("backend ") and key in before:
            who = key.split(" ", 2)[2]
            by[who] = by.get(who, 0.0) + seconds - before[key]
    ranked = sorted(by.items(), key=lambda kv: -kv[1])
    return [f"  {who:30s} {1000 * s / max(loops, 1):6.2f}" for who, s in ranked if s > 0]


STREAMS = ("INTAKE", "CASES", "DISPATCH", "HANDLING", "NOTIFY")


def _subject_kind(subject: str) -> str:
    """A subject with its configured codes (source, department) left out: `case.<event>`,
    `dispatch.*.<event>`, `handling.*.<action>`, `intake.<channel>.*`, `notify.*`."""
    parts = subject.split(".")
    if parts[0] == "case":
        return subject
    if parts[0] in ("dispatch", "handling") and len(parts) >= 3:
        return f"{parts[0]}.*.{'.'.join(parts[2:])}"
    if parts[0] == "intake" and len(parts) >= 2:
        return f"intake.{parts[1]}.*"
    return f"{parts[0]}.*"


def wall_time(perf: float) -> float:
    """The Unix time of a `time.perf_counter()` reading of this process."""
    return time.time() - (time.perf_counter() - perf)


def latency_lines(heard: list[tuple[float, float, float]]) -> list[str]:
    """Report → department p50 / p95 / p99, each of its two hops at the same points (report
    sent → case.accepted seen on the bus: intake; case.accepted → the department's task seen:
    dispatch), and the slowest 1 % by when they were sent: bunched, or spread out."""
    total = [a + b for _, a, b in heard]

    def pcts(values: list[float]) -> str:
        if len(values) < 2:  # a near-idle run: what there is
            return " / ".join(f"{v:.1f}" for v in values) + " ms"
        q = statistics.quantiles(values, n=100)
        return f"p50 {q[49]:.1f} / p95 {q[94]:.1f} / p99 {q[98]:.1f} ms"

    lines = [
        f"report → department: {pcts(total)} over {len(heard)} reports (max {max(total):.0f} ms)",
        f"  report → case.accepted (intake):      {pcts([a for _, a, _ in heard])}",
        f"  case.accepted → department (dispatch): {pcts([b for _, _, b in heard])}",
    ]
    start = min(t for t, _, _ in heard)
    started = wall_time(start)
    lines.append(
        f"  the window's first report sent at {time.strftime('%H:%M:%S', time.gmtime(started))}Z"
    )
    slowest = sorted(heard, key=lambda h: h[1] + h[2])[-max(1, len(heard) // 100) :]
    lines.append("  the slowest 1 %, in order sent (s into the window: intake + dispatch ms):")
    lines.append(
        "    "
        + ", ".join(
            f"{t - start:.1f}: {a:.0f}+{b:.0f}" for t, a, b in sorted(slowest, key=lambda h: h[0])
        )
    )
    return lines


def stored_lines(before: dict[str, Any], after: dict[str, Any], loops: int) -> list[str]:
    """The messages each kind of subject gained per closed loop: what JetStream stored (and
    fsynced) for a loop."""
    lines = []
    for key in sorted(k for k in after if k.startswith("stored ")):
        n = (after[key] - before.get(key, 0.0)) / max(loops, 1)
        if n >= 0.005:
            lines.append(f"  {key.removeprefix('stored '):30s} {n:6.2f}")
    return lines


def consumer_lines(before: dict[str, Any], after: dict[str, Any], loops: int) -> list[str]:
    """Each consumer's deliveries, handled batches and fetches (those that brought messages
    and those that waited out their time) per closed loop, and the messages a batch took on
    average: what a transaction and a fetch are shared by."""
    lines = []
    for key in sorted(k for k in after if k.startswith("delivered ")):
        name = key.removeprefix("delivered ")
        n, b, f = (
            after.get(f"{what} {name}", 0.0) - before.get(f"{what} {name}", 0.0)
            for what in ("delivered", "batches", "fetches")
        )
        lines.append(
            f"  {name:30s} {n / max(loops, 1):6.2f} {b / max(loops, 1):6.2f}"
            f" {f / max(loops, 1):6.2f}  ({n / b if b else 0:.1f})"
        )
    return lines


def _lsn(position: int) -> str:
    """A WAL position (asyncpg reads pg_lsn as an integer) in PostgreSQL's notation."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


async def wal_by_relation(database_url: str, start: int, end: int, loops: int) -> list[str]:
    """PostgreSQL's WAL between two positions, per table or index (pg_walinspect): the bytes
    of records and of full-page images per closed loop, the largest first."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        rows = await conn.fetch(
            "SELECT coalesce(n.nspname || '.' || c.relname, b.relfilenode::text) AS rel, "
            "sum(b.block_data_length) AS data, sum(coalesce(b.block_fpi_length, 0)) AS fpi, "
            "count(*) AS blocks "
            "FROM pg_get_wal_block_info($1::text::pg_lsn, $2::text::pg_lsn) b "
            "LEFT JOIN pg_class c ON c.relfilenode = b.relfilenode "
            "LEFT JOIN pg_namespace n ON n.oid = c.relnamespace "
            "GROUP BY 1 ORDER BY sum(b.block_data_length) + sum(coalesce(b.block_fpi_length, 0)) "
            "DESC LIMIT 25",
            _lsn(start),
            _lsn(end),
        )
        return [
            f"  {r['rel'][:40]:40s} {r['data'] / 1024 / max(loops, 1):6.1f} "
            f"{r['fpi'] / 1024 / max(loops, 1):6.1f} {r['blocks'] / max(loops, 1):6.1f}"
            for r in rows
        ]
    finally:
        await conn.close()


def _kb_grown(
    before: dict[str, Any], after: dict[str, Any], suffix: str, loops: int
) -> dict[str, float]:
    """The kB each "<name><suffix>" byte count grew by per closed loop, by name."""
    return {
        key.removesuffix(suffix): (value - before.get(key, 0.0)) / 1024 / max(loops, 1)
        for key, value in after.items()
        if key.endswith(suffix)
    }


def size_lines(before: dict[str, Any], after: dict[str, Any], loops: int, top: int) -> list[str]:
    """Per table, the kB its heap, TOAST and indexes grew by per closed loop, the largest
    first, and the database's: what PostgreSQL keeps of a loop (a table whose rows are deleted
    as they are written, as the outbox's pending list, reuses its space and shows about 0)."""
    grew = _kb_grown(before, after, " bytes", loops)
    lines = [
        f"  {table:36s} {kb:6.2f}"
        for table, kb in sorted(grew.items(), key=lambda kv: -kv[1])[:top]
        if kb >= 0.005
    ]
    total = (after["db_bytes"] - before["db_bytes"]) / 1024 / max(loops, 1)
    return [*lines, f"  {'the database':36s} {total:6.2f}"]


def stream_size_lines(before: dict[str, Any], after: dict[str, Any], loops: int) -> list[str]:
    """Per stream, the kB of messages it gained per closed loop (as the server counts them,
    before its blocks are compressed), and all streams together."""
    grew = _kb_grown(before, after, " stream_bytes", loops)
    lines = [f"  {name:30s} {kb:6.2f}" for name, kb in sorted(grew.items(), key=lambda kv: -kv[1])]
    return [*lines, f"  {'all streams':30s} {sum(grew.values()):6.2f}"]


def row_changes(before: dict[str, Any], after: dict[str, Any], loops: int) -> list[str]:
    """Per table, the rows inserted, updated (of which HOT) and deleted per closed loop,
    the busiest first: where PostgreSQL's writes go."""
    per: dict[str, dict[str, float]] = {}
    for key, value in after.items():
        table, _, what = key.rpartition(" ")
        if what in ("ins", "upd", "hot_upd", "del"):
            per.setdefault(table, {})[what] = (value - before.get(key, 0.0)) / max(loops, 1)
    busy = sorted(per.items(), key=lambda kv: -(kv[1]["ins"] + kv[1]["upd"] + kv[1]["del"]))
    return [
        f"  {table:28s} {c['ins']:6.1f} {c['upd']:6.1f} {c['hot_upd']:6.1f} {c['del']:6.1f}"
        for table, c in busy
        if c["ins"] + c["upd"] + c["del"] >= 0.05
    ]


async def load(
    stack: Stack,
    nats_url: str,
    seconds: float,
    out: Path,
    top: int,
    others: dict[str, int],
    *,
    database_url: str,
    warmup: float = 15.0,
    in_flight: int = 400,
    spy: bool = True,
    rate: float | None = None,
    pause: Sequence[str] = (),
    slow_ms: float | None = None,
    pg_log: Path | None = None,
) -> None:
    city = load_city(ROOT / "data" / "demo-city")
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=2000)
    reports = Reports(city)
    # the department kit and the supervisors: a process of their own, measured apart
    actors = await Actors(nats_url, stack.url("verify")).start()
    closed = {"n": 0}

    async def on_closed(_: Any) -> None:
        closed["n"] += 1

    await nc.subscribe("case.closed", cb=on_closed)
    # with `rate`: report sent → its department told, as the bench's latency phase measures it
    sent_at: dict[str, float] = {}
    accepted_at: dict[str, float] = {}
    # each report heard: (sent, ms sent → case.accepted seen, ms case.accepted → department)
    heard: list[tuple[float, float, float]] = []
    measuring = {"on": False}

    async def on_accepted(msg: Any) -> None:
        desc = orjson.loads(msg.data).get("description")
        if desc in sent_at:
            accepted_at[desc] = time.perf_counter()

    async def on_assigned(msg: Any) -> None:
        now = time.perf_counter()
        desc = orjson.loads(msg.data).get("case", {}).get("description")
        at = sent_at.pop(desc, None)
        accepted = accepted_at.pop(desc, None)
        if at is not None and measuring["on"]:
            accepted = accepted or now
            heard.append((at, (accepted - at) * 1000, (now - accepted) * 1000))

    if rate:
        await nc.subscribe("case.accepted", cb=on_accepted)
        await nc.subscribe("dispatch.*.assigned", cb=on_assigned)
    spies = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, before the load
            [
                py_spy(),
                "record",
                "--pid",
                str(proc.pid),
                "--duration",
                str(int(warmup + seconds)),
                "--rate",
                "50",
                "--format",
                "raw",
                "--output",
                str(out / f"{name}.txt"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, proc in stack.procs.items()
        if spy
    ]
    # the load process alone (its children are the services and the samplers)
    cpu = CpuWindow(
        {name: p.pid for name, p in stack.procs.items()}
        | others
        | {LOAD: os.getpid(), ACTORS: actors.pid}
    )
    sent: list[ReportV1] = []

    async def phase(length: float) -> None:
        """As make bench: a bounded number of open cases, new reports as cases close; with
        `rate`, reports at that rate whatever is open (the bench's latency phase)."""
        until = time.perf_counter() + length
        if rate:
            await at_fixed_rate(js, reports, sent_at, rate, 0, round(length * rate))
            return
        await keep_in_flight(
            js, reports, "prof", in_flight, until, lambda: len(sent) - closed["n"], sent.append
        )

    paused = Paused([stack.procs[name].pid for name in pause])
    try:
        await phase(warmup)  # steady state before measuring
        closed0 = closed["n"]
        before = await tally(stack, database_url, js)
        cpu.start()
        window_perf = time.perf_counter()
        measuring["on"] = True
        async with paused.during(seconds):
            await phase(seconds)
        cpu.stop()
        measuring["on"] = False
        measured = closed["n"] - closed0
        after = await tally(stack, database_url, js)
    finally:
        await actors.stop()
        await nc.close()
    if pause:
        heard[:] = [h for h in heard if paused.started <= h[0] < paused.ended]
        print(
            f"{', '.join(pause)} paused for {paused.ended - paused.started:.1f} s of the window:"
            " the latency below is over the reports sent meanwhile; the CPU and per-loop"
            " figures are not a loop's"
        )
    for sampler in spies:
        sampler.wait(timeout=60)
    elapsed = cpu.elapsed
    print(f"closed loops: {measured} in {elapsed:.0f} s = {measured / elapsed:.1f}/s")
    if heard:
        for line in latency_lines(heard):
            print(line)
    if slow_ms is not None and pg_log is not None:
        # the same origin as the slowest reports' "s into the window"
        origin = min((t for t, _, _ in heard), default=window_perf)
        origin_wall = wall_time(origin)
        text = await asyncio.to_thread(pg_log.read_text, errors="replace")
        found = pglog.busy(text, slow_ms)
        lines = pglog.window_lines(found, origin_wall, elapsed)
        print(
            f"PostgreSQL's statements of {slow_ms:g} ms or more, autovacuum and autoanalyze,"
            f" in the window (s into it, from when each started): {len(lines)}"
        )
        for line in lines:
            print(line)
    print("CPU ms per closed loop (share of one CPU over the measured time; of it, in the kernel):")
    for line in cpu.lines(measured):
        print(line)
    print(
        "per closed loop: "
        + ", ".join(
            f"{k} {(after[k] - before[k]) / max(measured, 1):.1f}"
            for k in ("deliveries", "publishes", "commits", "statements")
        )
        + " (consumers' deliveries and the services' publishes; PostgreSQL's commits and"
        " statements, the simulated people's included)"
    )
    print(f"  PostgreSQL's WAL: {(after['wal_kb'] - before['wal_kb']) / max(measured, 1):.1f} kB")
    print("each consumer per closed loop:    deliveries batches fetches  (messages a batch)")
    for line in consumer_lines(before, after, measured):
        print(line)
    print("messages stored per closed loop, by subject:")
    for line in stored_lines(before, after, measured):
        print(line)
    print("JetStream's kB per closed loop, by stream (the bytes it counts, before compression):")
    for line in stream_size_lines(before, after, measured):
        print(line)
    print("PostgreSQL's CPU ms per closed loop, by service (backends alive throughout):")
    for line in backend_lines(before, after, measured):
        print(line)
    print("rows per closed loop:             ins    upd    HOT    del")
    for line in row_changes(before, after, measured):
        print(line)
    print("kB stored per closed loop, by table (heap, TOAST and indexes; grown in the window):")
    for line in size_lines(before, after, measured, top):
        print(line)
    print("WAL kB per closed loop:                     data    FPI  blocks")
    for line in await wal_by_relation(database_url, before["wal_lsn"], after["wal_lsn"], measured):
        print(line)
    share = cpu.per_closed_loop(measured, cpus())["loop_cpu_pct_of_machine"]
    print(
        f"  machine ({cpus()} CPUs): {share['system']}% the system, {share['load_and_actors']}%"
        f" load and actors, {share['everything_else']}% everything else"
        + (" (py-spy included; --no-spy measures without it)" if spy else "")
    )
    for name in stack.procs:
        raw = out / f"{name}.txt"
        if raw.exists():
            s = summarize(raw, top)
            print(f"\n== {name}: {s['samples']} samples")
            print("  self:")
            for k, v in s["self_pct"].items():
                print(f"    {v:5.1f}%  {k}")
            print("  inclusive:")
            for k, v in s["inclusive_pct"].items():
                print(f"    {v:5.1f}%  {k}")


async def statements(database_url: str, *, reset: bool = False, top: int = 25) -> None:
    """The statements PostgreSQL spent its time on (pg_stat_statements)."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        if reset:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.execute("SELECT pg_stat_statements_reset()")
            return
        rows = await conn.fetch(
            "SELECT calls, total_exec_time, total_plan_time, plans, rows, query "
            "FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT $1",
            top,
        )
        total = await conn.fetchrow(
            "SELECT sum(calls) AS calls, sum(plans) AS plans, sum(total_exec_time) AS exec_ms, "
            "sum(total_plan_time) AS plan_ms FROM pg_stat_statements"
        )
        assert total is not None  # an aggregate always returns its row
        print(
            f"\n== postgres: {total['calls']} statements, {total['exec_ms']:.0f} ms executing; "
            f"{total['plans']} plans, {total['plan_ms']:.0f} ms planning"
        )
        for r in rows:
            q = " ".join(r["query"].split())[:100]
            print(
                f"  {r['calls']:8d} calls {r['total_exec_time']:9.0f} ms {r['plans']:8d} plans "
                f"{r['total_plan_time']:7.0f} ms {r['rows']:8d} rows  {q}"
            )
    finally:
        await conn.close()


def main() -> int:
    # A kill (SIGTERM) unwinds like Ctrl-C, so the servers and services it started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=15, help="seconds before measuring")
    parser.add_argument("--in-flight", type=int, default=400, help="open cases kept")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="reports a second at a fixed rate (as the bench's latency phase), instead of"
        " keeping --in-flight cases open",
    )
    parser.add_argument("--durable", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--spy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sample with py-spy (--no-spy: CPU figures without the samplers' share)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to keep the profiles")
    parser.add_argument(
        "--pg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for this run (repeatable), e.g. log_min_duration_statement=20;"
        " the server's log is kept in the work directory",
    )
    parser.add_argument(
        "--slow-ms",
        type=float,
        default=None,
        metavar="MS",
        help="list PostgreSQL's statements of at least MS milliseconds and its autovacuum"
        " runs during the window, placed as the slowest reports are (from its log)",
    )
    parser.add_argument(
        "--pause",
        default="",
        metavar="SERVICES",
        help="with --rate: these services (comma-separated, e.g. handling,verify,scoring)"
        " stopped while the window is measured, to time the report's path without the rest"
        " of the loop's work",
    )
    args = parser.parse_args()
    pause = tuple(name for name in args.pause.split(",") if name)
    if pause and not args.rate:
        parser.error("--pause needs --rate")
    if unknown := set(pause) - set(SERVICES):
        parser.error(f"--pause: no such service: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="gridloop-profile-"))
    out = args.out or work / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    nats_server = LocalNats(work / "nats", sync_always=args.durable).start()
    pg = LocalPostgres(
        work / "pg",
        durable=args.durable,
        log_file=work / "postgres.log",
        settings={
            "shared_preload_libraries": "pg_stat_statements",
            # how many plans each statement needed, and their time
            "pg_stat_statements.track_planning": "on",
            **(
                {
                    "log_min_duration_statement": f"{args.slow_ms:g}",
                    "log_autovacuum_min_duration": "0",
                }
                if args.slow_ms is not None
                else {}
            ),
            **dict(setting.split("=", 1) for setting in args.pg),
        },
    ).start()
    database_url = pg.create_database("gridloop")
    stack = Stack(
        work / "stack",
        nats_url=nats_server.url,
        database_url=database_url,
        env=BENCH_ENV,
    )
    try:
        stack.start(timeout=180)
        assert nats_server.proc is not None and pg.proc is not None
        others = {"nats": nats_server.proc.pid, "postgres": pg.proc.pid}
        asyncio.run(statements(database_url, reset=True))
        asyncio.run(
            load(
                stack,
                nats_server.url,
                args.seconds,
                out,
                args.top,
                others,
                database_url=database_url,
                warmup=args.warmup,
                in_flight=args.in_flight,
                spy=args.spy,
                rate=args.rate,
                pause=pause,
                slow_ms=args.slow_ms,
                pg_log=work / "postgres.log",
            )
        )
        asyncio.run(statements(database_url, top=args.top))
        print(f"\nprofiles in {out}; PostgreSQL's log in {work / 'postgres.log'}")
    finally:
        stack.stop()
        nats_server.stop()
        pg.stop()
        if args.out is None:
            shutil.rmtree(work / "stack", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
