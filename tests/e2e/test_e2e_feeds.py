"""The live feeds on two replicas of every service: the console's server-sent events (the
command centre's and a department's) and the department's feed on the bus hear each event
once. Half-way, every service's outbox is made to send again all it had sent, as replicas
killed between publishing and marking it sent would: JetStream keeps one copy of each in the
streams (and so in the departments' feeds), and the console, whose core subscription hears
every publish, passes each event on once."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import nats
import pytest
import pytest_asyncio
from gridloop_city import City, load_city
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import load_module, wait_for
from gridloop_runtime.bus import read_stored
from gridloop_runtime.outbox import unsent_count

from .test_e2e_cluster import KIT, ROOT, Traffic

pytestmark = pytest.mark.asyncio(loop_scope="module")
REPLICAS = 2
CONSOLE = True
STACK_ENV = {"CONSUMER_RETRY_DELAY_S": "0.2"}
SCHEMAS = ("intake", "dispatch", "handling", "verify", "scoring")
RECEIVED = re.compile(r"^gridloop_console_events_total (\S+)$", re.M)
COPIES = re.compile(r"^gridloop_console_event_copies_total (\S+)$", re.M)


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


class Screen:
    """One signed-in browser's live feed (GET /api/events): the summaries it was sent."""

    def __init__(self, console: str, user_id: str) -> None:
        self.console, self.user_id = console, user_id
        self.heard: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self.gaps = 0

    async def follow(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http:
            r = await http.post(
                self.console + "/api/login", json={"user_id": self.user_id, "password": "x"}
            )
            r.raise_for_status()
            params = {"token": r.json()["token"]}
            async with http.stream("GET", self.console + "/api/events", params=params) as s:
                event = ""
                async for line in s.aiter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("event: "):
                        event = line[7:]
                        self.gaps += event == "gap"
                    elif line.startswith("data: ") and event == "case":
                        self.heard.append(json.loads(line[6:]))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def traffic(stack: Stack, city: City) -> AsyncIterator[Traffic]:
    nc = await nats.connect(stack.nats_servers, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    assert stack.database_url
    db = await asyncpg.connect(stack.database_url)
    t = Traffic(stack, nc, city, db)
    kit = load_module(KIT, "department_system")
    stop = asyncio.Event()
    background = [
        asyncio.create_task(
            kit.run(stack.nats_url, "sanitation", behaviour="handle", stop=stop, say=lambda _: None)
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


async def console_counter(console: str, counter: re.Pattern[str]) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        found = counter.search((await http.get(console + "/metrics")).text)
    return float(found.group(1)) if found else 0.0


async def test_the_console_and_the_department_feeds_hear_each_event_once(
    traffic: Traffic,
) -> None:
    stack, db = traffic.stack, traffic.db
    console = stack.url("console")
    centre, department = Screen(console, "admin"), Screen(console, "sanitation-ops")
    screens = [asyncio.create_task(s.follow()) for s in (centre, department)]
    try:
        for screen in (centre, department):
            await asyncio.wait_for(screen.connected.wait(), timeout=30)
        await traffic.send(3, "feeds-a")
        await traffic.all_closed(timeout=90)

        # Every outbox sends again all it had sent, as if each replica had died between
        # publishing and marking: JetStream drops the copies, the console hears them. Counted:
        # every row of CASES. A row not yet published when its `sent_at` is cleared goes out
        # twice all the same: from its publisher, and from the sweeper, which sends every row
        # whose `sent_at` is cleared (the publisher's mark only takes it off the pending list).
        again = 0
        for schema in SCHEMAS:
            async with db.transaction():
                again += int(
                    await db.fetchval(
                        f"SELECT count(*) FROM {schema}.outbox WHERE subject LIKE 'case.%'"
                    )
                )
                await db.execute(f"UPDATE {schema}.outbox SET sent_at = NULL")
        await traffic.send(3, "feeds-b")
        found = await traffic.all_closed(timeout=90)

        async def all_sent_and_received() -> bool:
            """Every outbox sent out again, and the console got every publish of CASES,
            the copies too."""
            unsent = 0
            for schema in SCHEMAS:
                unsent += await db.fetchval(unsent_count(schema))
            stored = (await traffic.js.stream_info("CASES")).state.messages
            return not unsent and await console_counter(console, RECEIVED) >= stored + again

        await wait_for(
            all_sent_and_received, timeout=60, interval=0.5, what="the copies sent and heard"
        )
        cases = await traffic.cases_stream()
        case_ids = {rows[0][0] for rows in found.values()}

        def centre_heard_all() -> bool:
            """The command centre (the whole district) sees every case event."""
            return {e["id"] for e in centre.heard} >= {h.get("ce-id") for _, h, _ in cases}

        await wait_for(centre_heard_all, timeout=30, interval=0.2, what="every event heard")
    finally:
        for task in screens:
            task.cancel()
        await asyncio.gather(*screens, return_exceptions=True)

    # the stream holds each event once; each screen heard each event it may see once
    on_cases = Counter(h.get("ce-id") for _, h, _ in cases)
    assert not {i: n for i, n in on_cases.items() if n > 1}
    for screen in (centre, department):
        heard = Counter(e["id"] for e in screen.heard)
        assert not {i: n for i, n in heard.items() if n > 1}, screen.user_id
        assert set(heard) <= set(on_cases), screen.user_id
        assert not screen.gaps, screen.user_id
    # the department's screen heard its cases' dispatch, once each
    dispatched = [e for e in department.heard if e["event"] == "dispatched"]
    assert {e["case_id"] for e in dispatched} >= case_ids

    # the department's feed on the bus: each message once, each task assigned once
    feed = await dispatch_feed(traffic, "sanitation")
    ids = Counter(h.get("ce-id") for _, h, _ in feed)
    assert not {i: n for i, n in ids.items() if n > 1}
    assigned = Counter(
        d["case"]["task_id"] for s, _, d in feed if s == "dispatch.sanitation.assigned"
    )
    assert not {t: n for t, n in assigned.items() if n > 1}
    assert len(assigned) >= len(case_ids)
    dropped = await console_counter(console, COPIES)
    assert dropped >= again
    print(
        f"\nfeeds: cases={len(case_ids)} events_on_CASES={len(on_cases)} "
        f"sent_again={again} console_dropped={dropped:.0f} "
        f"heard_by_centre={len(centre.heard)} heard_by_department={len(department.heard)} "
        f"department_feed={len(feed)} duplicated=0"
    )


async def dispatch_feed(
    traffic: Traffic, dept: str
) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """Every message of a department's feed (`dispatch.<dept>.>` on DISPATCH): what its
    durable consumer delivers."""
    return await read_stored(
        traffic.js,
        "DISPATCH",
        lambda m: (m.subject, dict(m.headers or {}), json.loads(m.data)),
        subject=f"dispatch.{dept}.>",
    )
