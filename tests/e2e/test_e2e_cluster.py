"""The loop on the production shape of the bus: a 3-node JetStream cluster on loopback with
every stream R3, and two processes of every service. Reports from integrators (over NATS)
and supervisors (over REST) run the whole loop to closed, with the sanitation department's
own system (the integration kit) and supervisors passing each verification. Then the node
that leads CASES is killed -9 while more reports flow, and started again in place (same port,
same store): every report still ends closed, in exactly one case, and no event is on CASES
twice."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import nats.errors
import pytest
import pytest_asyncio
from gridloop_city import City, load_city
from gridloop_contracts import Envelope, to_binary
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.devstack import LocalNatsCluster
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import load_module, read_stream, wait_for
from gridloop_runtime import retention
from gridloop_runtime.outbox import unsent_count
from nats.aio.client import Client

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "services" / "handling" / "examples" / "department_system.py"
PHOTO = "https://evidence.example.org/cluster/verified.jpg"
pytestmark = pytest.mark.asyncio(loop_scope="module")
NATS_NODES = 3
REPLICAS = 2


def production_stream_ages() -> str:
    """STREAM_MAX_AGE_DAYS as the production overlay sets it."""
    overlay = ROOT / "deploy" / "overlays" / "production" / "kustomization.yaml"
    found = re.search(r"- STREAM_MAX_AGE_DAYS=(\S+)", overlay.read_text())
    assert found, "the production overlay sets no STREAM_MAX_AGE_DAYS"
    return found.group(1)


# A message handed to a node that dies unacknowledged is delivered again after this; the
# streams aged as in production.
STACK_ENV = {
    "CONSUMER_ACK_WAIT_S": "10",
    "CONSUMER_RETRY_DELAY_S": "0.2",
    "STREAM_MAX_AGE_DAYS": production_stream_ages(),
}
BEFORE, DURING = 6, 12  # reports before the fault, and sent while it happens


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


def places(city: City, n: int, gap_m: float = 100) -> Iterator[dict[str, float]]:
    """`n` points in cells open to everyone, pairwise further apart than `gap_m`: reports
    there are never taken for one another."""
    chosen: list[tuple[float, float]] = []
    open_cells = {c for c, cell in city.cells.items() if cell.entry_list is None}
    for part in sorted(city.parts.values(), key=lambda p: p.code):
        if part.cell_code not in open_cells:
            continue
        here = (part.lon, part.lat)
        if all(_metres(here, there) > gap_m for there in chosen):
            chosen.append(here)
            yield {"lat": part.lat, "lon": part.lon}
            if len(chosen) == n:
                return
    raise AssertionError(f"the demo city has fewer than {n} places {gap_m} m apart")


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1]))
    dy = (a[1] - b[1]) * 110_540
    return math.hypot(dx, dy)


class Traffic:
    """Integrators and supervisors that retry through a failing node, as they must; what
    they sent, and reads of the outcome."""

    def __init__(self, stack: Stack, nc: Client, city: City, db: asyncpg.Connection) -> None:
        self.stack, self.nc, self.js, self.db = stack, nc, nc.jetstream(), db
        self.http = httpx.AsyncClient(timeout=10)
        self.supervisor = next(
            u.id for u in sorted(city.users.values(), key=lambda u: u.id) if u.trusted
        )
        self.places = places(city, BEFORE + DURING)
        self.sent: list[str] = []
        self.retries: Counter[str] = Counter()
        self.intake = itertools.cycle(stack.urls("intake"))
        self.verify = itertools.cycle(stack.urls("verify"))

    def report(self, tag: str) -> ReportV1:
        return ReportV1(
            external_id=f"{tag}-{uuid.uuid4().hex[:8]}",
            description="人行道暴露垃圾",
            reported_at=datetime.now(UTC),
            location=next(self.places),
            category_code="E0104",
            reporter_user_id=self.supervisor,
        )

    async def over_nats(self, report: ReportV1) -> None:
        """The patrol app's integration: published until JetStream acknowledges it; a
        resend is the same message (the same id)."""
        env = Envelope.of(report, source="/integrator/patrol-app")
        headers, body = to_binary(env)
        self.sent.append(report.external_id)

        async def stored() -> bool:
            try:
                await self.js.publish("intake.patrol.patrol-app", body, headers=headers, timeout=3)
                return True
            except (nats.errors.Error, TimeoutError):
                self.retries["nats"] += 1
                return False

        await wait_for(stored, timeout=60, interval=0.3, what=f"{report.external_id} stored")

    async def over_rest(self, report: ReportV1) -> None:
        """A supervisor's app: POST /reports until answered; the external id makes a resend
        the same report."""
        body = report.model_dump(mode="json", exclude={"reporter_user_id"}, exclude_none=True)
        self.sent.append(report.external_id)

        async def taken() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                r = await self.http.post(
                    next(self.intake) + "/reports", json=body, headers={"X-User": self.supervisor}
                )
                if r.status_code < 300:
                    return True
                # refused is a failure; busy or unavailable (429, 5xx) is asked again
                assert r.status_code == 429 or r.status_code >= 500, (r.status_code, r.text)
            self.retries["rest"] += 1
            return False

        await wait_for(taken, timeout=60, interval=0.3, what=f"{report.external_id} taken")

    async def send(self, n: int, tag: str, pace: float = 0.0) -> None:
        """`n` reports, every other one over REST, each by a task of its own; `pace` s apart
        (a steady stream, not a wait for anything)."""
        tasks = []
        for i in range(n):
            report = self.report(tag)
            send = self.over_rest if i % 2 else self.over_nats
            tasks.append(asyncio.create_task(send(report)))
            if pace:
                await asyncio.sleep(pace)
        await asyncio.gather(*tasks)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Supervisors passing every verification task as it appears (核查: passed)."""
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = await self.http.get(
                    next(self.verify) + "/tasks",
                    params={"status": "open", "purpose": "verification", "limit": 500},
                    headers={"X-User": "admin"},
                )
                for t in r.json() if r.status_code == 200 else []:
                    if t.get("supervisor_id"):
                        await self.http.post(
                            f"{next(self.verify)}/tasks/{t['task_id']}/verification",
                            json={"passed": True, "command_id": t["task_id"], "photos": [PHOTO]},
                            headers={"X-User": t["supervisor_id"]},
                        )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.3)

    async def outcome(self) -> dict[str, list[tuple[str, str, str]]]:
        """Each report sent: (case id, outcome, the case's status) of every row intake holds."""
        rows = await self.db.fetch(
            "SELECT r.external_id, r.case_id, r.outcome, c.status FROM intake.reports r "
            "JOIN intake.cases c USING (case_id) WHERE r.external_id = ANY($1::text[])",
            self.sent,
        )
        out: dict[str, list[tuple[str, str, str]]] = {ext: [] for ext in self.sent}
        for r in rows:
            out[r["external_id"]].append((r["case_id"], r["outcome"], r["status"]))
        return out

    async def all_closed(self, timeout: float) -> dict[str, list[tuple[str, str, str]]]:
        async def closed() -> dict[str, list[tuple[str, str, str]]] | None:
            found = await self.outcome()
            done = all(rows and rows[0][2] == "closed" for rows in found.values())
            return found if done else None

        try:
            result: dict[str, list[tuple[str, str, str]]] = await wait_for(
                closed, timeout=timeout, interval=0.5, what="every report's case closed"
            )
        except AssertionError as exc:
            found = await self.outcome()
            open_ = {e: rows for e, rows in found.items() if not rows or rows[0][2] != "closed"}
            stuck = [rows[0][0] for rows in open_.values() if rows]
            # what the services downstream of intake hold of them, to tell where each stopped
            detail = {
                table: [
                    dict(r)
                    for r in await self.db.fetch(
                        f"SELECT * FROM {table} WHERE case_id = ANY($1::text[])", stuck
                    )
                ]
                for table in ("dispatch.tasks", "handling.tasks", "verify.cases", "verify.tasks")
            }
            unsent = {
                schema: await self.db.fetchval(unsent_count(schema))
                for schema in ("intake", "dispatch", "handling", "verify", "scoring")
            }
            raise AssertionError(
                f"{exc}; not closed: {open_}\nunsent outbox rows: {unsent}\n{detail}"
            ) from None
        return result

    async def cases_stream(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        """Every message on CASES: (subject, headers, data), in stream order."""
        return [(m.subject, m.headers, m.data) for m in await read_stream(self.js, "CASES")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def traffic(stack: Stack, city: City) -> AsyncIterator[Traffic]:
    assert isinstance(stack.nats, LocalNatsCluster) and len(stack.nats.nodes) == NATS_NODES
    nc = await nats.connect(stack.nats_servers, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    assert stack.database_url
    db = await asyncpg.connect(stack.database_url)
    t = Traffic(stack, nc, city, db)
    kit = load_module(KIT, "department_system")
    stop = asyncio.Event()
    log: list[str] = []
    background = [
        asyncio.create_task(
            kit.run(stack.nats_url, "sanitation", behaviour="handle", stop=stop, say=log.append)
        ),
        asyncio.create_task(t.supervise(stop)),
    ]
    try:
        yield t
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        await t.http.aclose()
        await db.close()
        await nc.close()


async def test_the_streams_are_replicated_on_three_nodes(traffic: Traffic) -> None:
    ages = retention.stream_ages(STACK_ENV["STREAM_MAX_AGE_DAYS"])
    assert ages and "CASES" not in ages
    for stream in ("INTAKE", "CASES", "DISPATCH", "HANDLING", "NOTIFY", "SCORES", "DLQ"):
        info = await traffic.js.stream_info(stream)
        assert info.config.num_replicas == 3, stream
        assert info.cluster is not None and info.cluster.leader, stream
        assert len(info.cluster.replicas or []) == 2, stream
        assert round(info.config.max_age or 0) == ages.get(stream, 0) * 86400, stream
        assert info.config.compression == "s2", stream


async def test_reports_over_nats_and_rest_run_the_loop_to_closed(traffic: Traffic) -> None:
    await traffic.send(BEFORE, "before")
    found = await traffic.all_closed(timeout=60)
    assert all(len(rows) == 1 and rows[0][1] == "new" for rows in found.values()), found


async def test_every_report_closes_once_through_the_loss_of_the_cases_leader(
    traffic: Traffic,
) -> None:
    cluster = traffic.stack.nats
    assert isinstance(cluster, LocalNatsCluster)
    before = len(traffic.sent)
    sending = asyncio.create_task(traffic.send(DURING, "during", pace=0.25))
    info = await traffic.js.stream_info("CASES")
    assert info.cluster is not None and info.cluster.leader
    leader = cluster.node(info.cluster.leader)
    await asyncio.to_thread(functools.partial(leader.stop, kill=True))  # kill -9

    async def new_leader() -> str | None:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            info = await traffic.js.stream_info("CASES")
            if info.cluster and info.cluster.leader not in (None, leader.server_name):
                return info.cluster.leader
        return None

    elected = await wait_for(new_leader, timeout=30, interval=0.2, what="a new CASES leader")
    await asyncio.to_thread(leader.start)  # in place: the same port and store
    await asyncio.to_thread(cluster.wait_healthy, 60)
    await sending
    found = await traffic.all_closed(timeout=90)

    # every report in exactly one case of its own, closed
    assert len(traffic.sent) == before + DURING
    assert all(len(rows) == 1 and rows[0][1] == "new" for rows in found.values()), found
    case_ids = {rows[0][0] for rows in found.values()}
    assert len(case_ids) == len(traffic.sent)
    # no event twice on CASES, and each case closed by one event
    events = await traffic.cases_stream()
    ids = Counter(h.get("ce-id") for _, h, _ in events)
    duplicated = {i: n for i, n in ids.items() if n > 1}
    closings = Counter(  # case.closed v1, or v2 carrying the verdict that closed it
        h.get("ce-subject")
        for s, h, _ in events
        if str(h.get("ce-type")).startswith("gridloop.case.closed.")
    )
    lost = case_ids - set(closings)
    print(
        f"\ncluster: killed {leader.server_name} (CASES leader), {elected} took over; "
        f"reports_sent={len(traffic.sent)} closed={len(found)} events={len(events)} "
        f"lost={len(lost)} duplicated={len(duplicated)} retries={dict(traffic.retries)}"
    )
    assert not duplicated, duplicated
    assert not lost, lost
    assert all(closings[c] == 1 for c in case_ids), closings
    # the restarted node is a current replica of CASES again
    info = await traffic.js.stream_info("CASES")
    assert info.cluster is not None
    peers = {info.cluster.leader} | {r.name for r in info.cluster.replicas or []}
    assert leader.server_name in peers
