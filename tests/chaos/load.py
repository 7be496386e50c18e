"""The chaos suite's load and its checks: scripted reports sent by clients that retry like
integrators must, departments (the integration kit) and supervisors that survive restarts, a
seeded fault schedule, and the reads of streams and tables that judge the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import nats.errors
import nats.js.errors
from gridloop_city import City
from gridloop_contracts import Envelope, to_binary
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import Seen, load_module, wait_for
from gridloop_runtime.clock import OffsetFileClock
from gridloop_runtime.outbox import unsent_count
from nats.js import JetStreamContext

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "services" / "handling" / "examples" / "department_system.py"
PHOTO = "https://evidence.example.org/chaos/verified.jpg"
# A department whose own system works over REST, not NATS: 店外经营 (auto-accepted from a
# trusted supervisor) goes to urban-mgmt (demo routing E05*), one closed report in four.
REST_DEPT = "urban-mgmt"
REST_DEPT_USER = "urban-mgmt-ops"
REST_CATEGORY = "E0502"
SCHEMAS = ("intake", "dispatch", "handling", "verify", "scoring")
# Events that only timers emit: (type, the fields that name one firing).
TIMER_EVENTS = {
    "gridloop.case.reminded.v1": ("case_id", "task_id", "stage", "level"),
    "gridloop.case.overdue.v1": ("case_id", "task_id", "stage"),
    "gridloop.case.escalated.v1": ("case_id", "task_id", "level"),
}


# -- the plan -------------------------------------------------------------------------------
@dataclass
class Planned:
    """One report to send, and the state its script says it must reach."""

    external_id: str
    source: str
    script: str  # closed | pending | merged | overdue | rejected
    via: str  # nats | http
    data: dict[str, Any]
    group: str | None = None  # reports of one scene: one case, the others merged into it
    subject: str = ""
    # the CloudEvent id, fixed once: a resend after a lost acknowledgement is the same message
    ce_id: str = ""


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1]))
    dy = (a[1] - b[1]) * 110_540
    return math.hypot(dx, dy)


def _apart(points: Iterable[tuple[str, float, float]], n: int, gap_m: float = 80) -> list[Any]:
    """Up to `n` points pairwise more than `gap_m` apart: reports there never merge."""
    chosen: list[tuple[str, float, float]] = []
    for code, lon, lat in points:
        if all(_metres((lon, lat), (c[1], c[2])) > gap_m for c in chosen):
            chosen.append((code, lon, lat))
            if len(chosen) == n:
                break
    return chosen


def plan(city: City, rng: random.Random, n: int, tag: str) -> list[Planned]:
    """A seeded mix of `n` reports: most run the whole loop to closed (one in four through a
    department that answers over REST, the rest through one on NATS), some wait for on-site
    confirmation with duplicates that merge into them, some go to a department that never
    answers (chased by timers), and some are invalid and must be rejected."""
    open_cells = {c for c, cell in city.cells.items() if cell.entry_list is None}
    parts = sorted(
        (p for p in city.parts.values() if p.cell_code in open_cells), key=lambda p: p.code
    )
    rng.shuffle(parts)
    supervisor = next(u.id for u in sorted(city.users.values(), key=lambda u: u.id) if u.trusted)
    n_silent = max(4, n // 40)
    n_scenes = max(4, n // 40)
    n_dups = 2 * n_scenes
    n_invalid = max(6, n // 15)
    n_closed = n - n_silent - n_scenes - n_dups - n_invalid
    spots = _apart(((p.code, p.lon, p.lat) for p in parts), n_closed + n_scenes)
    assert len(spots) == n_closed + n_scenes, "the demo city has too few separate places"
    greening = _apart(
        ((p.code, p.lon, p.lat) for p in parts if p.category_code == "P0401"), n_silent
    )
    now = datetime.now(UTC) - timedelta(minutes=5)
    out: list[Planned] = []

    def report(ext: str, **data: Any) -> dict[str, Any]:
        return {"external_id": ext, "description": f"chaos {ext}", "reported_at": now, **data}

    def rest_department_alone(lon: float, lat: float) -> bool:
        """Whether urban-mgmt handles 店外经营 there by itself (somewhere a street office leads
        a joint enforcement, which no simulated department answers)."""
        cell = city.locate(lon, lat)
        route = city.route(REST_CATEGORY, cell.code) if cell else None
        return route is not None and route.dept == REST_DEPT and not route.co_handlers

    for i, (_, lon, lat) in enumerate(spots[:n_closed]):
        ext = f"{tag}-c{i:04d}"
        over_rest = i % 4 == 3 and rest_department_alone(lon, lat)
        data = report(
            ext,
            location={"lat": lat, "lon": lon},
            category_code=REST_CATEGORY if over_rest else "E0104",
            reporter_user_id=supervisor,
        )
        out.append(Planned(ext, "patrol-app", "closed", rng.choice(["nats", "nats", "http"]), data))
    for i, (code, _, _) in enumerate(greening):
        ext = f"{tag}-g{i:04d}"
        data = report(ext, part_code=code, reporter_user_id=supervisor)
        out.append(Planned(ext, "patrol-app", "overdue", "nats", data))
    for i, (_, lon, lat) in enumerate(spots[n_closed:]):
        for k in range(3):
            ext = f"{tag}-s{i:04d}-{k}"
            data = report(ext, location={"lat": lat, "lon": lon}, category_code="E0106")
            script = "pending" if k == 0 else "merged"
            out.append(Planned(ext, "12345", script, "nats", data, group=f"s{i}"))
    for i in range(n_invalid):
        ext = f"{tag}-x{i:04d}"
        kind = i % 3
        if kind == 0:  # outside the district
            data = report(ext, location={"lat": 31.2, "lon": 121.5}, category_code="E0104")
        elif kind == 1:  # not a city-management category
            lon, lat = spots[i % len(spots)][1:]
            data = report(ext, location={"lat": lat, "lon": lon}, category_code="X9999")
        else:  # nowhere at all: no location, address or part
            data = report(ext, category_code="E0104")
        out.append(Planned(ext, "12345", "rejected", "nats", data))
    # Silent departments' cases first (the clock moves later and chases them), then the first
    # report of each scene, then the rest in a seeded order.
    first = [p for p in out if p.script in ("overdue", "pending")]
    rest = [p for p in out if p.script not in ("overdue", "pending")]
    rng.shuffle(rest)
    ordered = first + rest
    for p in ordered:
        channel = "patrol" if p.source == "patrol-app" else "hotline"
        p.subject = f"intake.{channel}.{p.source}"
        p.ce_id = f"{p.external_id}-{rng.getrandbits(48):012x}"
    return ordered


# -- clients that retry ---------------------------------------------------------------------
@dataclass
class Counts:
    sent: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    http_refused: list[str] = field(default_factory=list)
    # 5xx answers: with a Retry-After (busy, or a dependency away: asked again after it),
    # and without one (a failure the client cannot act on)
    http_retry_after: Counter[int] = field(default_factory=Counter)
    http_server_errors: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    verified: int = 0
    # the REST department's commands answered (id → when, time.monotonic(): it never sends
    # one again), and those refused
    department_answered: dict[str, float] = field(default_factory=dict)
    department_refused: list[str] = field(default_factory=list)


def _envelope_bytes(p: Planned) -> tuple[dict[str, str], bytes]:
    if p.script == "rejected" and "location" not in p.data and p.data.get("category_code"):
        # Invalid against the contract: built by hand, as a careless integrator would.
        data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in p.data.items()}
        headers = {
            "ce-specversion": "1.0",
            "ce-id": p.ce_id,
            "ce-source": f"/chaos/{p.source}",
            "ce-type": "gridloop.report.v1",
            "ce-time": datetime.now(UTC).isoformat(),
            "content-type": "application/json",
            "Nats-Msg-Id": p.ce_id,
        }
        return headers, json.dumps(data).encode()
    env = Envelope.of(ReportV1.model_validate(p.data), source=f"/chaos/{p.source}", id=p.ce_id)
    headers, body = to_binary(env)
    return dict(headers), body


async def send_nats(js: JetStreamContext, p: Planned, counts: Counts, give_up: float) -> None:
    """Publish until JetStream acknowledges; a retry is the same message (same id)."""
    headers, body = _envelope_bytes(p)
    loop = asyncio.get_running_loop()
    end = loop.time() + give_up
    while True:
        try:
            await js.publish(p.subject, body, headers=headers, timeout=3)
            counts.sent["nats"] += 1
            return
        except (nats.errors.Error, TimeoutError, OSError):
            counts.retries["nats"] += 1
            if loop.time() > end:
                raise
            await asyncio.sleep(0.3)


async def send_http(http: httpx.AsyncClient, urls: list[str], p: Planned, counts: Counts) -> None:
    """POST /reports until answered, each attempt to the next replica of intake (as a load
    balancer would); the same external_id makes a resend the same report."""
    body = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in p.data.items()
        if k != "reporter_user_id"
    }
    loop = asyncio.get_running_loop()
    end = loop.time() + 90
    for url in itertools.cycle(urls):
        try:
            r = await http.post(
                url + "/reports", json=body, headers={"X-User": p.data["reporter_user_id"]}
            )
            if r.status_code < 300:
                counts.sent["http"] += 1
                return
            wait = server_busy(r, counts, f"POST /reports {p.external_id}")
            if wait is None:
                counts.http_refused.append(f"{p.external_id}: {r.status_code} {r.text[:200]}")
                return
        except httpx.HTTPError:
            wait = 0.3  # no answer (a replica going or gone): the next one
        counts.retries["http"] += 1
        if loop.time() > end:
            raise TimeoutError(f"intake did not take {p.external_id} over HTTP")
        await asyncio.sleep(wait)
    raise AssertionError("no intake to send to")


def server_busy(r: httpx.Response, counts: Counts, what: str) -> float | None:
    """How long to wait before asking again after a 5xx or 429 (its Retry-After; a 5xx
    without one is recorded as a server error and asked again soon), None for any other
    refusal."""
    if r.status_code != 429 and r.status_code < 500:
        return None
    after = r.headers.get("retry-after", "")
    if after.isdigit():
        counts.http_retry_after[r.status_code] += 1
        return float(after)
    if r.status_code >= 500:
        counts.http_server_errors.append(f"{what}: {r.status_code} {r.text[:200]}")
    return 0.3


class Pace:
    """The rate of a steady stream that lasts as long as the faults do: `during` reports/s
    while they last, slowing to a trickle when only `reserve` reports are left to send (a
    slow machine takes longer to restart things), `after` once they are over. The last report
    waits for the faults to be over (`hold`), however long they take: the stream cannot run
    out before them."""

    def __init__(
        self, total: int, over: asyncio.Event, during: float, after: float, reserve: int = 30
    ) -> None:
        self.total, self.over, self.during, self.after = total, over, during, after
        self.reserve = reserve
        self.sent = 0
        self.sent_when_over = 0  # reports sent when the faults were over (0: not yet)

    def progress(self, sent: int) -> None:
        self.sent = sent
        if self.over.is_set() and not self.sent_when_over:
            self.sent_when_over = sent

    async def hold(self, index: int) -> None:
        """Before report `index` (0-based) is sent: the last one waits for the faults' end."""
        if index == self.total - 1:
            await self.over.wait()

    def __call__(self) -> float:
        if self.over.is_set():
            return self.after
        if self.total - self.sent <= self.reserve:
            return min(self.during, 0.3)
        return self.during


async def send_all(
    stack: Stack,
    reports: list[Planned],
    rate: float | Callable[[], float],
    counts: Counts,
    progress: Callable[[int], None],
) -> None:
    """A steady stream at `rate` reports/s (a number, or asked before each report); each
    report is sent by its own retrying task."""
    assert stack.nats_url
    nc = await nats.connect(stack.nats_servers, max_reconnect_attempts=-1, reconnect_time_wait=0.3)
    js = nc.jetstream()
    pending: set[asyncio.Task[None]] = set()
    scenes_sent: dict[str, asyncio.Task[None]] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            hold = getattr(rate, "hold", None)
            for i, p in enumerate(reports):
                if hold is not None:
                    await hold(i)
                if p.via == "http":
                    task = asyncio.create_task(send_http(http, stack.urls("intake"), p, counts))
                elif p.script == "merged" and p.group in scenes_sent:
                    first = scenes_sent[p.group]

                    async def after(p: Planned = p, first: asyncio.Task[None] = first) -> None:
                        await asyncio.shield(first)
                        await send_nats(js, p, counts, 90)

                    task = asyncio.create_task(after())
                else:
                    task = asyncio.create_task(send_nats(js, p, counts, 90))
                if p.script == "pending" and p.group:
                    scenes_sent[p.group] = task
                pending.add(task)
                task.add_done_callback(pending.discard)
                progress(i + 1)
                await asyncio.sleep(1 / (rate() if callable(rate) else rate))
            if pending:
                await asyncio.gather(*pending)
        finally:
            for t in pending:
                t.cancel()
            await nc.close()


async def supervisors(stack: Stack, stop: asyncio.Event, counts: Counts) -> None:
    """Supervisors passing every verification task as it appears, through any outage (each
    round asks the next replica of verify)."""
    urls = itertools.cycle(stack.urls("verify"))
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            url = next(urls)
            tasks: list[dict[str, Any]] = []
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = await http.get(
                    url + "/tasks",
                    params={"status": "open", "purpose": "verification", "limit": 500},
                    headers={"X-User": "admin"},
                )
                if r.status_code == 200:
                    tasks = r.json()
                else:
                    server_busy(r, counts, "GET /tasks")
            for t in tasks:
                if not t.get("supervisor_id"):
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    resp = await http.post(
                        f"{url}/tasks/{t['task_id']}/verification",
                        json={"passed": True, "command_id": t["task_id"], "photos": [PHOTO]},
                        headers={"X-User": t["supervisor_id"]},
                    )
                    if resp.status_code < 300:
                        counts.verified += 1
                    else:
                        server_busy(resp, counts, "POST /tasks/…/verification")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.3)


async def department(stack: Stack, dept: str, stop: asyncio.Event, log: list[str]) -> None:
    """The department's own system (the integration kit), started again if it ever stops."""
    kit = load_module(KIT, "department_system")
    assert stack.nats_url
    # the department's clock moves with the services' (CLOCK_FILE)
    clock = OffsetFileClock(stack.env["CLOCK_FILE"]).now
    while not stop.is_set():
        try:
            await kit.run(
                stack.nats_url, dept, behaviour="handle", stop=stop, say=log.append, clock=clock
            )
        except Exception as exc:
            log.append(f"[{dept}] kit stopped: {exc!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)


async def rest_department(stack: Stack, stop: asyncio.Event, counts: Counts) -> None:
    """urban-mgmt's own system, working its inbox over REST through any outage (each round
    asks the next replica of handling): each task to sign signed, each one in progress
    reported done with a photo. A command is sent again, under its id, until it has an
    answer, and never after: a system that was answered does not send again, even when a
    restored database shows the task as it was before (what handling kept on the bus runs
    the command again)."""
    urls = itertools.cycle(stack.urls("handling"))
    headers = {"X-User": REST_DEPT_USER}
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            url = f"{next(urls)}/departments/{REST_DEPT}/cases"
            items: list[dict[str, Any]] = []
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                r = await http.get(url, params={"limit": 500}, headers=headers)
                if r.status_code == 200:
                    items = r.json()["items"]
                else:
                    server_busy(r, counts, "GET /departments/…/cases")
            for t in items:
                action, body = {
                    "to_sign": ("sign", {}),
                    "in_progress": (
                        "result",
                        {"result": "摊位已撤回店内", "evidence": [{"url": PHOTO}]},
                    ),
                }.get(t["stage"], ("", {}))
                command_id = f"{t['task_id']}:{t['round']}:{action}"
                if not action or command_id in counts.department_answered:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    resp = await http.post(
                        f"{url}/{t['case_id']}/{action}",
                        json={"command_id": command_id, "task_id": t["task_id"], **body},
                        headers=headers,
                    )
                    if resp.status_code < 300:
                        counts.department_answered[command_id] = time.monotonic()
                    elif _timed_before_dispatch(resp):
                        pass  # timed by a replica whose clock had not moved yet: next round
                    elif server_busy(resp, counts, f"POST /departments/…/{action}") is None:
                        counts.department_answered[command_id] = time.monotonic()
                        counts.department_refused.append(
                            f"{command_id}: {resp.status_code} {resp.text[:200]}"
                        )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.3)


def _timed_before_dispatch(resp: httpx.Response) -> bool:
    """A result refused for its time (handling times one sent without it), as after the run
    moves the clock (CLOCK_FILE), which replicas see a moment apart: the NATS kit sends it
    again, so does this system."""
    if resp.status_code != 422:
        return False
    with contextlib.suppress(ValueError, AttributeError):
        return any(e.get("field") == "completed_at" for e in resp.json()["detail"])
    return False


@dataclass
class People:
    """The loop's people beside a run: the sanitation department's kit (its log), urban-mgmt's
    system over REST and the supervisors, until `stop` is set."""

    stop: asyncio.Event
    kit_log: list[str]
    tasks: list[asyncio.Task[None]]

    @classmethod
    def start(cls, stack: Stack, counts: Counts) -> People:
        stop, kit_log = asyncio.Event(), list[str]()
        tasks = [
            asyncio.create_task(department(stack, "sanitation", stop, kit_log)),
            asyncio.create_task(rest_department(stack, stop, counts)),
            asyncio.create_task(supervisors(stack, stop, counts)),
        ]
        return cls(stop, kit_log, tasks)

    async def leave(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def move_clock(stack: Stack, by: timedelta) -> None:
    """Move every service's clock (and the departments') forward: CLOCK_FILE's offset."""
    f = Path(stack.env["CLOCK_FILE"])
    f.write_text(str(float(f.read_text() or 0) + by.total_seconds()))


async def chase_the_silent(
    stack: Stack, reports: list[Planned], half_sent: asyncio.Event, jump: timedelta
) -> None:
    """Move the clock once half the reports are out and every silent department's case
    holds its task: a case dispatched after the jump would get its deadline from the moved
    clock and never go overdue, however busy the machine was when it got there."""
    silent = [p.external_id for p in reports if p.script == "overdue"]
    await half_sent.wait()
    assert stack.database_url

    async def dispatched() -> bool:
        try:
            c = await asyncpg.connect(stack.database_url, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False  # PostgreSQL may be restarting
        try:
            n = await c.fetchval(
                "SELECT count(DISTINCT r.external_id) FROM intake.reports r "
                "JOIN dispatch.tasks t USING (case_id) WHERE r.external_id = ANY($1::text[])",
                silent,
            )
        except (OSError, asyncpg.PostgresError):
            return False
        finally:
            with contextlib.suppress(Exception):
                await c.close()
        return int(n) == len(silent)

    await wait_for(dispatched, timeout=240, interval=0.5, what="the silent cases dispatched")
    move_clock(stack, jump)


# -- faults ---------------------------------------------------------------------------------
def restart_service(stack: Stack, name: str, down_s: float) -> None:
    stack.kill(name)
    _pause(down_s)
    stack.start_service(name)
    stack.wait_ready(90, (name,))


def restart_nats(stack: Stack, down_s: float) -> None:
    """kill -9 the server; start it again on the same port with the same store."""
    assert stack.nats is not None
    stack.nats.stop(kill=True)
    _pause(down_s)
    stack.nats.start()
    stack.wait_ready(90)


def restart_postgres(stack: Stack, down_s: float) -> None:
    """Immediate shutdown (SIGQUIT: no checkpoint, crash recovery on start), then start again
    in the same data directory on the same port."""
    pg = stack.postgres
    assert pg is not None and pg.proc is not None
    pg.proc.send_signal(signal.SIGQUIT)
    pg.proc.wait(30)
    pg.proc = None
    _pause(down_s)
    pg.start()
    stack.wait_ready(90)


def _pause(seconds: float) -> None:
    # the fault schedule's own seeded pause (how long a component stays down), not a wait
    time.sleep(seconds)


def fault_schedule(rng: random.Random, extra_kills: int = 2) -> list[tuple[str, str | None]]:
    """Each service killed at least once, nats-server and PostgreSQL restarted, in a seeded
    order, plus a few more kills of random services."""
    faults: list[tuple[str, str | None]] = [("kill", s) for s in SCHEMAS]
    faults += [("kill", rng.choice(SCHEMAS)) for _ in range(extra_kills)]
    faults += [("nats", None), ("postgres", None)]
    rng.shuffle(faults)
    return faults


async def inject(
    stack: Stack,
    faults: list[tuple[str, str | None]],
    rng: random.Random,
    counts: Counts,
    gap: tuple[float, float],
) -> None:
    for kind, name in faults:
        await asyncio.sleep(rng.uniform(*gap))
        down = rng.uniform(0.2, 2.0)
        if kind == "kill":
            assert name
            await asyncio.to_thread(restart_service, stack, name, down)
            counts.faults[f"kill -9 {name}"] += 1
        elif kind == "nats":
            await asyncio.to_thread(restart_nats, stack, down)
            counts.faults["restart nats-server"] += 1
        else:
            await asyncio.to_thread(restart_postgres, stack, down)
            counts.faults["restart postgresql"] += 1


# -- reading the outcome --------------------------------------------------------------------
async def outbox_ids(conn: asyncpg.Connection, schema: str) -> tuple[list[str], int]:
    """Every event id a service recorded, and how many rows are still unsent."""
    rows = await conn.fetch(f"SELECT event_id FROM {schema}.outbox")
    return [r["event_id"] for r in rows], int(await conn.fetchval(unsent_count(schema)))


def duplicates_by(messages: Iterable[Seen], key: Callable[[Seen], Any]) -> dict[Any, int]:
    """Keys that occur on more than one distinct CloudEvent id."""
    ids: dict[Any, set[str]] = defaultdict(set)
    for m in messages:
        k = key(m)
        if k is not None:
            ids[k].add(m.headers.get("ce-id", ""))
    return {k: len(v) for k, v in ids.items() if len(v) > 1}


def timer_firing(m: Seen) -> Any:
    fields = TIMER_EVENTS.get(m.headers.get("ce-type", ""))
    if fields is None:
        return None
    return (m.headers["ce-type"], *(m.data.get(f) for f in fields))
