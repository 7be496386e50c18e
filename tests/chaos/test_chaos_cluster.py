"""Chaos on the production shape: a 3-node JetStream cluster (every stream R3) and two
processes of every service, a steady stream of reports from the channels through the whole
loop (the departments' own systems and the supervisors as in the single-node suite) while,
one after another:

1. the JetStream leader of CASES is killed -9, and started again once another node leads;
2. a whole nats-server node is stopped for NODE_DOWN_S (30 s) and started again;
3. one replica of each service is killed -9 with a batch in hand, and started again;
4. every replica of one service is down for SERVICE_DOWN_S (20 s);
5. PostgreSQL is restarted (immediate shutdown: crash recovery on start).

Then, as in the single-node suite (`judgement.judge`): every report in exactly one case or
one rejection, every case at its scripted state, one task id per dispatch, no timer fired
twice, no event twice on the bus (by CloudEvent id), no department told twice; the counts
are printed with, for each fault, how long the reports that arrived during it waited for
their case and for its closing (`CLUSTER_CHAOS_REPORTS`, `CHAOS_SEED` change the size and
the choices)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import nats
import nats.errors
import pytest
from gridloop_city import load_city
from gridloop_devkit.devstack import LocalNatsCluster
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import read_stream, wait_for
from nats.js import JetStreamContext

from .judgement import judge, settle
from .load import (
    ROOT,
    SCHEMAS,
    Counts,
    Pace,
    People,
    Planned,
    chase_the_silent,
    plan,
    restart_postgres,
    send_all,
)

REPORTS = int(os.environ.get("CLUSTER_CHAOS_REPORTS", "240"))
SEED = int(os.environ.get("CHAOS_SEED", "20261202"))
RATE = 1.5  # reports per second while the faults last
RATE_AFTER = 6.0  # the rest of the plan, once every fault is over
NODE_DOWN_S = float(os.environ.get("CLUSTER_CHAOS_NODE_DOWN_S", "30"))
SERVICE_DOWN_S = float(os.environ.get("CLUSTER_CHAOS_SERVICE_DOWN_S", "20"))
CLOCK_JUMP = timedelta(days=8)
LEADING = re.compile(r'gridloop_consumer_leading\{[^}]*consumer="([^"]+)"[^}]*\} 1(\.0)?$', re.M)


class Faults:
    """The fault sequence, each fault's wall-clock window kept to judge the waits by."""

    def __init__(self, stack: Stack, rng: random.Random, counts: Counts) -> None:
        assert isinstance(stack.nats, LocalNatsCluster)
        self.stack, self.cluster, self.rng, self.counts = stack, stack.nats, rng, counts
        self.windows: list[tuple[str, datetime, datetime]] = []
        self.done = asyncio.Event()

    async def run(self, started: asyncio.Event) -> None:
        await started.wait()
        nc = await nats.connect(
            self.stack.nats_servers, max_reconnect_attempts=-1, reconnect_time_wait=0.3
        )
        js = nc.jetstream()
        try:
            await self.fault("kill -9 the CASES leader", functools.partial(self.cases_leader, js))
            await self.fault("stop a nats-server node", self.node_down)
            for service in SCHEMAS:
                await self.fault(
                    f"kill -9 a replica of {service}",
                    functools.partial(self.replica_mid_batch, js, service),
                )
            service = self.rng.choice(SCHEMAS)
            await self.fault(
                f"every replica of {service} down", functools.partial(self.service_down, service)
            )
            await self.fault("restart postgresql", self.postgres)
        finally:
            self.done.set()
            await nc.close()

    async def fault(self, name: str, action: Callable[[], Awaitable[str]]) -> None:
        begin = datetime.now(UTC)
        note = await action()
        self.windows.append((f"{name} ({note})" if note else name, begin, datetime.now(UTC)))
        self.counts.faults[name] += 1

    async def cases_leader(self, js: JetStreamContext) -> str:
        info = await js.stream_info("CASES")
        assert info.cluster is not None and info.cluster.leader
        leader = self.cluster.node(info.cluster.leader)
        await asyncio.to_thread(functools.partial(leader.stop, kill=True))

        async def new_leader() -> str | None:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                info = await js.stream_info("CASES")
                if info.cluster and info.cluster.leader not in (None, leader.server_name):
                    return info.cluster.leader
            return None

        elected = await wait_for(new_leader, timeout=60, interval=0.2, what="a new CASES leader")
        await asyncio.to_thread(leader.start)  # in place: the same ports and store
        await asyncio.to_thread(self.cluster.wait_healthy, 120)
        return f"{leader.server_name} killed, {elected} took over"

    async def node_down(self) -> str:
        node = self.rng.choice(self.cluster.nodes)
        await asyncio.to_thread(node.stop)
        await asyncio.sleep(NODE_DOWN_S)  # how long the node stays down: the fault itself
        await asyncio.to_thread(node.start)
        await asyncio.to_thread(self.cluster.wait_healthy, 120)
        return f"{node.server_name}, {NODE_DOWN_S:.0f} s"

    async def replica_mid_batch(self, js: JetStreamContext, service: str) -> str:
        """Kill -9 the replica that leads the service's ordered consumers (the one whose
        batches are in hand; else one at random) once one of its consumers has delivered
        messages it has not acknowledged yet."""
        replicas = self.stack.instances(service)
        victim = await self.leader_of(service) or self.rng.choice(replicas)

        async def in_hand() -> bool:
            for stream in ("INTAKE", "CASES", "HANDLING"):
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    for c in await js.consumers_info(stream):
                        if c.name.startswith(f"{service}-") and c.num_ack_pending:
                            return True
            return False

        try:
            await wait_for(in_hand, timeout=30, interval=0.05, what=f"a batch in {service}")
            when = "batch in hand"
        except AssertionError:
            when = "no batch seen in 30 s"
        self.stack.kill(victim)
        await asyncio.to_thread(self.stack.start_service, victim)
        await asyncio.to_thread(self.stack.wait_ready, 120, (victim,))
        return f"{victim}, {when}"

    async def leader_of(self, service: str) -> str | None:
        async with httpx.AsyncClient(timeout=3) as http:
            for instance in self.stack.instances(service):
                with contextlib.suppress(httpx.HTTPError):
                    r = await http.get(self.stack.url(instance) + "/metrics")
                    if LEADING.search(r.text):
                        return instance
        return None

    async def service_down(self, service: str) -> str:
        replicas = self.stack.instances(service)
        for instance in replicas:
            self.stack.kill(instance)
        await asyncio.sleep(SERVICE_DOWN_S)  # how long the service stays away: the fault
        for instance in replicas:
            await asyncio.to_thread(self.stack.start_service, instance)
        await asyncio.to_thread(self.stack.wait_ready, 120, tuple(replicas))
        return f"{SERVICE_DOWN_S:.0f} s"

    async def postgres(self) -> str:
        await asyncio.to_thread(restart_postgres, self.stack, 1.0)
        return ""


async def waits(
    stack: Stack, conn: asyncpg.Connection, reports: list[Planned], faults: Faults
) -> dict[str, str]:
    """For each fault, the reports the bus stored while it lasted: how long until intake
    opened (or merged into) their case, and until a case scripted to close was closed (the
    streams' own timestamps)."""
    nc = await nats.connect(stack.nats_servers)
    js = nc.jetstream()
    try:
        stored = {m.headers.get("ce-id"): m.stored_at for m in await read_stream(js, "INTAKE")}
        cases = await read_stream(js, "CASES")
    finally:
        await nc.close()
    first: dict[str, datetime] = {}
    closed: dict[str, datetime] = {}
    for m in cases:
        case_id, at = m.headers.get("ce-subject"), m.stored_at
        if case_id and at:
            first.setdefault(case_id, at)
            if str(m.headers.get("ce-type")).startswith("gridloop.case.closed."):
                closed.setdefault(case_id, at)
    case_of = {
        r["external_id"]: r["case_id"]
        for r in await conn.fetch(
            "SELECT external_id, case_id FROM intake.reports WHERE external_id = ANY($1::text[])",
            [p.external_id for p in reports],
        )
    }
    out: dict[str, str] = {}
    for name, begin, end in faults.windows:
        to_case: list[float] = []
        to_close: list[float] = []
        for p in reports:
            at = stored.get(p.ce_id)
            case_id = case_of.get(p.external_id)
            if at is None or case_id is None or not begin <= at <= end:
                continue
            if case_id in first:
                to_case.append(max(0.0, (first[case_id] - at).total_seconds()))
            if p.script == "closed" and case_id in closed:
                to_close.append((closed[case_id] - at).total_seconds())
        out[name] = (
            f"{begin:%H:%M:%S}+{(end - begin).total_seconds():.0f}s, {len(to_case)} reports, "
            f"to case median {_median(to_case)} max {_max(to_case)}, "
            f"to closed median {_median(to_close)} max {_max(to_close)}"
        )
    return out


def _median(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f}s" if xs else "-"


def _max(xs: list[float]) -> str:
    return f"{max(xs):.1f}s" if xs else "-"


@pytest.mark.timeout(1200)
async def test_the_cluster_loop_survives_node_leader_replica_and_database_faults(
    cluster_chaos_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = cluster_chaos_stack
    started = time.monotonic()
    city = load_city(ROOT / "data" / "demo-city")
    rng = random.Random(SEED)
    reports = plan(city, rng, REPORTS, f"cluster{SEED}")
    counts = Counts()
    people = People.start(stack, counts)
    warmed, half_sent = asyncio.Event(), asyncio.Event()
    faults = Faults(stack, rng, counts)
    pace = Pace(len(reports), faults.done, RATE, RATE_AFTER)

    def progress(sent: int) -> None:
        pace.progress(sent)
        if sent >= 10:  # the loop is carrying reports before the first fault
            warmed.set()
        if sent >= len(reports) // 2:
            half_sent.set()

    conn: asyncpg.Connection | None = None
    try:
        await asyncio.gather(
            send_all(stack, reports, pace, counts, progress),
            faults.run(warmed),
            chase_the_silent(stack, reports, half_sent, CLOCK_JUMP),
        )
        loaded = time.monotonic()
        # the load ran through every fault: reports were still being sent after the last
        assert pace.sent_when_over, "the plan ran out before the faults did: raise REPORTS"
        assert not counts.http_refused, counts.http_refused[:5]
        assert stack.database_url
        conn = await asyncpg.connect(stack.database_url)

        await settle(
            conn,
            reports,
            timeout=240,
            more=f"faults: {faults.windows}\nkit: {people.kit_log[-10:]}",
        )
    finally:
        await people.leave()
    assert conn is not None
    try:
        summary = await judge(stack, conn, reports, counts)
        waited = await waits(stack, conn, reports, faults)
    finally:
        await conn.close()
    summary["sent_before_faults_ended"] = pace.sent_when_over
    summary["http_5xx_without_retry_after"] = len(counts.http_server_errors)
    summary["http_with_retry_after"] = dict(counts.http_retry_after)
    summary["seconds"] = round(time.monotonic() - started)
    summary["load_and_faults_s"] = round(loaded - started)
    with capsys.disabled():
        print("\ncluster chaos: " + " ".join(f"{k}={v}" for k, v in summary.items()))
        for name, line in waited.items():
            print(f"  {name}: {line}")
        print(flush=True)
