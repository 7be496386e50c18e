"""The generated NATS permissions, live: a real nats-server with the generated config, and
nats-py clients logged in as services, departments and integrators.

Proves that a department reads only `dispatch.<own>.>` (core or through the durable consumer
dispatch keeps for it, which it can neither create, widen nor point elsewhere) and writes
only `handling.<own>.>`; that an integrator writes only `intake.<its channel>.<own>` and
reads only `notify.<own>`; that the services can create the streams and their durable
consumers, publish, fetch and ack; and that no department or integrator gets a message into
CASES, DISPATCH, another department's HANDLING subjects or another source's NOTIFY subject
by any route: a publish, a reply subject (where JetStream sends its acknowledgement or a pull
request's messages), or a JetStream API request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import nats
import nats.errors
import pytest
import pytest_asyncio
from gridloop_devkit.devstack import LocalNats, LocalNatsCluster
from gridloop_devkit.testing import wait_for
from gridloop_runtime import bus
from gridloop_runtime.bus import Feed
from gridloop_runtime.consumer import Consumer, ConsumerSpec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

# A short wait for an answer that must not come (the server drops a denied request).
DENIED_TIMEOUT = 1.0

DEPARTMENTS = "departments:\n- code: roads\n  name: 道路\n- code: water\n  name: 供水\n"
SOURCES = "sources:\n- code: '12345'\n  channel: hotline\n- code: video-ai\n  channel: video\n"


class Session:
    """One logged-in NATS connection and the errors the server sent it."""

    def __init__(self, nc: Client, errors: list[str], name: str = "") -> None:
        self.name = name
        self.nc = nc
        self.errors = errors
        self.js: JetStreamContext = nc.jetstream()

    async def denied(self, what: str, subject: str) -> None:
        """Wait until the server has refused `what` ("publish"/"subscription") on `subject`."""
        needle = f'permissions violation for {what} to "{subject.lower()}"'
        await wait_for(
            lambda: any(needle in e.lower() for e in self.errors),
            timeout=5,
            what=f"{what} to {subject} refused (errors: {self.errors})",
        )


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory, gen: ModuleType) -> Iterator[str]:
    root = tmp_path_factory.mktemp("nats-perm")
    city_dir = root / "city"
    city_dir.mkdir()
    (city_dir / "departments.yaml").write_text(DEPARTMENTS, encoding="utf-8")
    (city_dir / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    config = root / "nats.conf"
    config.write_text(
        gen.render_local_conf(gen.read_city(city_dir), city_dir, store_dir=str(root / "js")),
        encoding="utf-8",
    )
    server = LocalNats(root, config_file=config, log_file=root / "nats.log").start()
    yield server.url
    server.stop()


@pytest_asyncio.fixture
async def login(nats_server: str) -> AsyncIterator[Any]:
    sessions: list[Session] = []

    async def connect(user: str) -> Session:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        # Departments and integrators get replies only under their own inbox prefix.
        own_inbox = user.startswith(("dept-", "src-"))
        nc = await nats.connect(
            nats_server,
            user=user,
            password=f"gridloop-dev-{user}",
            error_cb=on_error,
            allow_reconnect=False,
            inbox_prefix=f"_INBOX.{user}" if own_inbox else "_INBOX",
        )
        session = Session(nc, errors, user)
        sessions.append(session)
        return session

    yield connect
    for s in sessions:
        await s.nc.close()


async def _services_up(login: Any) -> dict[str, Session]:
    out = {name: await login(name) for name in ("intake", "dispatch", "handling", "verify")}
    out["scoring"] = await login("scoring")
    # Every service creates the streams at start-up (idempotently).
    for s in out.values():
        await bus.ensure_streams(s.js)
    return out


async def _count(js: JetStreamContext, stream: str, subjects: str | None = None) -> int:
    """The messages of `stream` (on the subjects matching `subjects`, when given)."""
    if subjects is None:
        return int((await js.stream_info(stream)).state.messages)
    info = await js.stream_info(stream, subjects_filter=subjects)
    return sum((info.state.subjects or {}).values())


FEEDS = [
    Feed.department("roads"),
    Feed.department("water"),
    Feed.integrator("12345"),
    Feed.integrator("video-ai"),
]


async def _feeds_up(svc: dict[str, Session]) -> None:
    """What dispatch and intake do at start-up: the feeds of the departments and sources."""
    await bus.ensure_feeds(svc["dispatch"].js, [f for f in FEEDS if f.stream == "DISPATCH"])
    await bus.ensure_feeds(svc["intake"].js, [f for f in FEEDS if f.stream == "NOTIFY"])


def _consumer(name: str, filter_subject: str, **kw: Any) -> ConsumerConfig:
    # `name` makes nats-py use the create subject that carries the filter.
    return ConsumerConfig(
        name=name,
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        filter_subject=filter_subject,
        **kw,
    )


async def test_services_create_streams_and_consumers_publish_and_ack(login: Any) -> None:
    svc = await _services_up(login)
    reads = {
        "intake": [("INTAKE", "intake.>"), ("CASES", "case.>")],
        "dispatch": [("CASES", "case.>")],
        "handling": [("CASES", "case.>"), ("HANDLING", "handling.>")],
        "verify": [("CASES", "case.>")],
        "scoring": [("CASES", "case.>")],
    }

    async def noop(*_: Any) -> None:
        return None

    cases_before = await _count(svc["intake"].js, "CASES")
    dlq_before = await _count(svc["intake"].js, "DLQ")
    for name, streams in reads.items():
        js = svc[name].js
        for stream, filt in streams:
            # The runtime's own consumer-creation path, as at service start-up.
            consumer = Consumer(
                ConsumerSpec(f"{name}-{stream.lower()}", stream, [filt], noop),
                js=js,
                uow=cast(Any, None),
                pool=cast(Any, None),
                service=name,
                batch=10,
                max_deliver=5,
                ack_wait_s=30,
                max_ack_pending=100,
                retry_delay_s=1,
            )
            await consumer.subscribe()
        await js.publish(f"case.test-{name}", b"{}")
        await js.publish(f"dlq.{name}", b"{}")

    await svc["intake"].js.publish("notify.12345", b"{}")
    await svc["dispatch"].js.publish("dispatch.roads.assigned", b"{}")
    await svc["handling"].js.publish("dispatch.roads.answer", b"{}")
    await svc["scoring"].js.publish("score.published", b"{}")
    # The DLQ replay re-publishes a dead letter to the subject it came from.
    await svc["intake"].js.publish("intake.hotline.12345", b"{}")
    # intake keeps the reports it took over REST on INTAKE (ReportTakenV1)
    assert (await svc["intake"].js.publish("intake.taken.12345", b"{}")).stream == "INTAKE"
    await svc["handling"].js.publish("handling.roads.signed", b"{}")
    assert await _count(svc["intake"].js, "CASES") == cases_before + 5
    assert await _count(svc["intake"].js, "DLQ") == dlq_before + 5

    # Fetch and ack (the ack subject $JS.ACK.<stream>.<consumer>... is allowed).
    sub = await svc["verify"].js.pull_subscribe_bind(durable="verify-cases", stream="CASES")
    msgs = await sub.fetch(cases_before + 5, timeout=5)
    assert {f"case.test-{name}" for name in reads} <= {m.subject for m in msgs}
    for m in msgs:
        await m.ack_sync()
    info = await sub.consumer_info()
    assert info.num_ack_pending == 0

    # ... and nothing beyond their own subjects.
    await svc["verify"].nc.publish("dispatch.roads.assigned", b"{}")
    await svc["verify"].denied("publish", "dispatch.roads.assigned")
    await svc["scoring"].nc.publish("notify.12345", b"{}")
    await svc["scoring"].denied("publish", "notify.12345")


async def test_department_reads_only_its_own_dispatch_subjects(login: Any) -> None:
    svc = await _services_up(login)
    await _feeds_up(svc)
    await svc["dispatch"].js.publish("dispatch.roads.assigned", b'{"case":"roads-1"}')
    await svc["dispatch"].js.publish("dispatch.water.assigned", b'{"case":"water-1"}')

    roads = await login("dept-roads")
    # The account info every standard JetStream client asks first (nats.js 2:
    # jetstreamManager()): GRIDLOOP's totals, read-only.
    assert (await roads.js.account_info()).streams >= 1
    # The durable consumer dispatch keeps for it, on its own filter: only its own messages.
    info = await roads.js.consumer_info("DISPATCH", "dept-roads")
    assert info.config.filter_subject == "dispatch.roads.>" and not info.config.deliver_subject
    sub = await roads.js.pull_subscribe_bind(durable="dept-roads", stream="DISPATCH")
    msgs = await sub.fetch(10, timeout=5)
    assert "dispatch.roads.assigned" in {m.subject for m in msgs}
    assert all(m.subject.startswith("dispatch.roads.") for m in msgs)
    for m in msgs:
        await m.ack_sync()
    assert (await sub.consumer_info()).num_ack_pending == 0

    # Live (core) subscription to its own subjects works; to another department's, refused.
    got: list[str] = []

    async def on_msg(msg: Any) -> None:
        got.append(msg.subject)

    await roads.nc.subscribe("dispatch.roads.>", cb=on_msg)
    await roads.nc.flush()

    async def heard_live() -> bool:
        # core NATS delivers at most once: a live message is published again until heard
        if "dispatch.roads.reminder" not in got:
            await svc["dispatch"].js.publish("dispatch.roads.reminder", b"{}")
        return "dispatch.roads.reminder" in got

    await wait_for(
        heard_live, timeout=15, interval=0.5, what=f"roads' live message {got} {roads.errors}"
    )
    await roads.nc.subscribe("dispatch.water.>")
    await roads.denied("subscription", "dispatch.water.>")
    await roads.nc.subscribe("dispatch.>")
    await roads.denied("subscription", "dispatch.>")
    # Nor everyone's replies (where other departments' pulled messages arrive).
    await roads.nc.subscribe("_INBOX.>")
    await roads.denied("subscription", "_INBOX.>")

    # It creates no consumer at all: not its own again (a config names a delivery subject),
    # not a wider one, not another department's.
    for config in (
        _consumer("dept-roads", "dispatch.roads.>"),
        _consumer("dept-roads", "dispatch.>"),
        _consumer("dept-water", "dispatch.water.>"),
    ):
        with pytest.raises(nats.errors.TimeoutError):
            await roads.js.add_consumer("DISPATCH", config, timeout=DENIED_TIMEOUT)
        subject = f"$JS.API.CONSUMER.CREATE.DISPATCH.{config.name}.{config.filter_subject}"
        await roads.denied("publish", subject)
    legacy = ConsumerConfig(durable_name="dept-roads", filter_subject="dispatch.>")
    with pytest.raises(nats.errors.TimeoutError):
        await roads.js.add_consumer("DISPATCH", legacy, timeout=DENIED_TIMEOUT)
    await roads.denied("publish", "$JS.API.CONSUMER.DURABLE.CREATE.DISPATCH.dept-roads")
    # Nor pull from another department's consumer, nor look it up.
    await roads.nc.publish("$JS.API.CONSUMER.MSG.NEXT.DISPATCH.dept-water", b"1")
    await roads.denied("publish", "$JS.API.CONSUMER.MSG.NEXT.DISPATCH.dept-water")
    with pytest.raises(nats.errors.TimeoutError):
        await roads.js.consumer_info("DISPATCH", "dept-water", timeout=DENIED_TIMEOUT)
    await roads.denied("publish", "$JS.API.CONSUMER.INFO.DISPATCH.dept-water")
    # The account info is the one read of the API beyond its feed: no stream's info or
    # messages, no list of streams or consumers.
    for subject in (
        "$JS.API.STREAM.INFO.DISPATCH",
        "$JS.API.STREAM.NAMES",
        "$JS.API.CONSUMER.NAMES.DISPATCH",
        "$JS.API.STREAM.MSG.GET.DISPATCH",
        "$JS.API.DIRECT.GET.DISPATCH",
    ):
        await roads.nc.publish(subject, b"{}")
        await roads.denied("publish", subject)
    # ... while water reads its own, untouched.
    water = await login("dept-water")
    wsub = await water.js.pull_subscribe_bind(durable="dept-water", stream="DISPATCH")
    wmsgs = await wsub.fetch(10, timeout=5)
    assert [m.subject for m in wmsgs] == ["dispatch.water.assigned"]


async def test_department_writes_only_its_own_handling_subjects(login: Any) -> None:
    svc = await _services_up(login)
    roads = await login("dept-roads")
    before_cases = await _count(svc["dispatch"].js, "CASES")
    before_handling = await _count(svc["dispatch"].js, "HANDLING")

    ack = await roads.js.publish("handling.roads.signed", b'{"case":"roads-1"}')
    assert ack.stream == "HANDLING"

    for subject in (
        "handling.water.signed",  # another department's command
        "case.closed",  # the case lifecycle belongs to the services
        "dispatch.roads.assigned",  # posing as dispatch
        "intake.hotline.12345",  # posing as an integrator
    ):
        await roads.nc.publish(subject, b"{}")
        await roads.denied("publish", subject)
    # The server had processed (and refused) each before it said so: nothing was stored.
    assert await _count(svc["dispatch"].js, "CASES") == before_cases
    assert await _count(svc["dispatch"].js, "HANDLING") == before_handling + 1


async def test_integrator_writes_only_its_own_intake_and_reads_only_its_notify(
    login: Any,
) -> None:
    svc = await _services_up(login)
    hotline = await login("src-12345")
    before_intake = await _count(svc["intake"].js, "INTAKE")
    before_cases = await _count(svc["intake"].js, "CASES")

    assert (await hotline.js.account_info()).streams >= 1  # the clients' API check
    ack = await hotline.js.publish("intake.hotline.12345", b'{"external_id":"a"}')
    assert ack.stream == "INTAKE"
    for subject in (
        "intake.video.12345",  # not its channel
        "intake.hotline.96105",  # another source's
        "intake.video.video-ai",
        "intake.taken.12345",  # posing as intake: a report it took over REST
        "case.created",
        "notify.12345",  # posing as intake
    ):
        await hotline.nc.publish(subject, b"{}")
        await hotline.denied("publish", subject)
    assert await _count(svc["intake"].js, "INTAKE") == before_intake + 1
    assert await _count(svc["intake"].js, "CASES") == before_cases

    # Answers: its own notify subject, core or through the durable intake keeps for it.
    await _feeds_up(svc)
    await svc["intake"].js.publish("notify.12345", b'{"status":"accepted"}')
    await svc["intake"].js.publish("notify.video-ai", b'{"status":"accepted"}')
    sub = await hotline.js.pull_subscribe_bind(durable="src-12345", stream="NOTIFY")
    msgs = await sub.fetch(10, timeout=5)
    assert msgs and {m.subject for m in msgs} == {"notify.12345"}
    for m in msgs:
        await m.ack_sync()
    await hotline.nc.subscribe("notify.12345")
    await hotline.nc.subscribe("notify.video-ai")
    await hotline.denied("subscription", "notify.video-ai")
    assert not any('subscription to "notify.12345"' in e for e in hotline.errors)
    with pytest.raises(nats.errors.TimeoutError):
        await hotline.js.add_consumer(
            "NOTIFY", _consumer("src-12345", "notify.>"), timeout=DENIED_TIMEOUT
        )
    await hotline.denied("publish", "$JS.API.CONSUMER.CREATE.NOTIFY.src-12345.notify.>")
    await hotline.nc.publish("$JS.API.CONSUMER.MSG.NEXT.NOTIFY.src-video-ai", b"1")
    await hotline.denied("publish", "$JS.API.CONSUMER.MSG.NEXT.NOTIFY.src-video-ai")

    # The video platform publishes detections on its own channel only.
    video = await login("src-video-ai")
    assert (await video.js.publish("intake.video.video-ai", b"{}")).stream == "INTAKE"
    await video.nc.publish("intake.hotline.video-ai", b"{}")
    await video.denied("publish", "intake.hotline.video-ai")


# Where nothing from a department or an integrator may land: CASES and DISPATCH entirely,
# another department's commands, another source's answers; and the marker a service puts
# there afterwards (see _settled).
FENCED: dict[tuple[str, str], tuple[str, str]] = {
    ("CASES", "case.>"): ("verify", "case.fence-marker"),
    ("DISPATCH", "dispatch.>"): ("dispatch", "dispatch.fence.marker"),
    ("HANDLING", "handling.water.>"): ("handling", "handling.water.fence-marker"),
    ("NOTIFY", "notify.video-ai"): ("intake", "notify.video-ai"),
    ("NOTIFY", "notify.12345"): ("intake", "notify.12345"),
}
# The attackers: who, where it may publish, and the stream of its feed.
ATTACKERS = {
    "dept-roads": ("handling.roads.signed", "DISPATCH"),
    "src-12345": ("intake.hotline.12345", "NOTIFY"),
}
TARGETS = (
    "case.x",
    "dispatch.water.assigned",
    "dispatch.roads.assigned",
    "handling.water.signed",
    "notify.video-ai",
    "notify.12345",
)
# JetStream API requests that would write: a push consumer delivering into CASES, a stream
# widened to capture it, a stream of one's own over it.
PUSH_INTO_CASES = (
    b'{"stream_name":"DISPATCH","config":{"name":"dept-roads","durable_name":"dept-roads",'
    b'"ack_policy":"none","filter_subject":"dispatch.roads.>","deliver_subject":"case.x"}}'
)
JS_WRITES = (
    ("$JS.API.CONSUMER.CREATE.DISPATCH.dept-roads.dispatch.roads.>", PUSH_INTO_CASES),
    ("$JS.API.CONSUMER.CREATE.NOTIFY.src-12345.notify.12345", PUSH_INTO_CASES),
    ("$JS.API.STREAM.UPDATE.INTAKE", b'{"name":"INTAKE","subjects":["intake.>","case.>"]}'),
    ("$JS.API.STREAM.CREATE.MINE", b'{"name":"MINE","subjects":["mine.>"]}'),
    ("$JS.API.STREAM.PURGE.CASES", b"{}"),
)


async def _settled(svc: dict[str, Session], attacker: Session, own: str, feed: str) -> None:
    """Everything the attacker set going has landed or never will: JetStream answers a
    stream's publishes (and a consumer's pulls) in order, so an answer to a later publish (a
    later pull) means the earlier ones' answers have been sent; then a marker from a service
    on each fenced stream is stored after anything those answers carried there."""
    await attacker.js.publish(own, b'{"settle":true}')
    sub = await attacker.js.pull_subscribe_bind(durable=attacker.name, stream=feed)
    # nats-py's fetch raises its own timeout error or, when its deadline ran out, asyncio's
    with contextlib.suppress(TimeoutError):
        for m in await sub.fetch(10, timeout=1):
            await m.ack_sync()
    for service, subject in FENCED.values():
        await svc[service].js.publish(subject, b'{"marker":true}')


async def test_no_department_or_integrator_gets_a_message_into_the_fenced_streams(
    login: Any,
) -> None:
    svc = await _services_up(login)
    svc["handling"] = await login("handling")
    await _feeds_up(svc)
    # Something in each feed, so that a pull request has messages to deliver somewhere.
    await svc["dispatch"].js.publish("dispatch.roads.assigned", b'{"case":"roads-1"}')
    await svc["intake"].js.publish("notify.12345", b'{"status":"accepted"}')
    # Everything that reaches the fenced subjects in GRIDLOOP, as operators would see it.
    spy = await login("admin")
    heard: list[tuple[str, bytes]] = []

    async def on_msg(msg: Any) -> None:
        if b'"marker"' not in msg.data:
            heard.append((msg.subject, msg.data))

    for _, subjects in FENCED:
        await spy.nc.subscribe(subjects, cb=on_msg)
    await spy.nc.flush()

    for user, (own, feed) in ATTACKERS.items():
        attacker = await login(user)
        before = {place: await _count(spy.js, *place) for place in FENCED}
        # 1. Publish, or ask, on the target itself: refused by the server.
        for target in TARGETS:
            await attacker.nc.publish(target, b'{"route":"publish"}')
            await attacker.denied("publish", target)
        asked = await asyncio.gather(
            *(attacker.nc.request(t, b"{}", timeout=DENIED_TIMEOUT) for t in TARGETS),
            return_exceptions=True,
        )
        assert all(isinstance(a, nats.errors.Error) for a in asked), asked
        # 2. Publish where it may, with the target as the reply subject: JetStream's
        #    acknowledgement goes back to the attacker's account, not to the target.
        for target in TARGETS:
            await attacker.nc.publish(own, b'{"route":"reply"}', reply=target)
        # 3. Its feed's API (and the account info) with the target as the reply subject:
        #    the pull request's messages, the info and the ack's answer go back to its
        #    account too.
        for target in TARGETS:
            await attacker.nc.publish("$JS.API.INFO", b"", reply=target)
            await attacker.nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{feed}.{user}",
                b'{"batch":5,"expires":500000000}',
                reply=target,
            )
            await attacker.nc.publish(f"$JS.API.CONSUMER.INFO.{feed}.{user}", b"", reply=target)
            await attacker.nc.publish(f"$JS.ACK.{feed}.{user}.1.1.1.1.0", b"+ACK", reply=target)
        # 4. The JetStream API that writes: refused.
        for subject, body in JS_WRITES:
            await attacker.nc.publish(subject, body, reply=f"_INBOX.{user}.js")
            await attacker.denied("publish", subject)

        await _settled(svc, attacker, own, feed)
        after = {place: await _count(spy.js, *place) for place in FENCED}
        assert after == {place: n + 1 for place, n in before.items()}, (user, before, after)
        await spy.nc.flush()
        assert heard == [], (user, heard)
    assert "MINE" not in [s.config.name for s in await spy.js.streams_info()]


async def test_wrong_password_is_refused(nats_server: str) -> None:
    with pytest.raises(nats.errors.Error):
        await nats.connect(nats_server, user="dept-roads", password="guess", allow_reconnect=False)


async def test_the_demo_city_config_serves_its_departments_and_sources(
    gen: ModuleType, tmp_path: Path
) -> None:
    """The committed demo-city users, rendered for a local server, log in and work."""
    city = gen.read_city(gen.DEFAULT_CITY)
    assert city.departments and city.sources, city.warnings
    config = tmp_path / "nats.conf"
    config.write_text(
        gen.render_local_conf(city, gen.DEFAULT_CITY, store_dir=str(tmp_path / "js")),
        encoding="utf-8",
    )
    server = LocalNats(tmp_path, config_file=config, log_file=tmp_path / "nats.log").start()
    try:
        nc = await nats.connect(
            server.url, user="dispatch", password="gridloop-dev-dispatch", allow_reconnect=False
        )
        await bus.ensure_streams(nc.jetstream())
        dept, src = city.departments[0].code, city.sources[0]
        await bus.ensure_feeds(nc.jetstream(), [Feed.department(dept)])
        await nc.jetstream().publish(f"dispatch.{dept}.assigned", b"{}")
        d = await nats.connect(
            server.url,
            user=f"dept-{dept}",
            password=f"gridloop-dev-dept-{dept}",
            inbox_prefix=f"_INBOX.dept-{dept}",
            allow_reconnect=False,
        )
        djs = d.jetstream()
        msgs = await (await djs.pull_subscribe_bind(f"dept-{dept}", "DISPATCH")).fetch(1, 5)
        assert msgs[0].subject == f"dispatch.{dept}.assigned"
        s = await nats.connect(
            server.url,
            user=f"src-{src.code}",
            password=f"gridloop-dev-src-{src.code}",
            inbox_prefix=f"_INBOX.src-{src.code}",
            allow_reconnect=False,
        )
        ack = await s.jetstream().publish(f"intake.{src.channels[0]}.{src.code}", b"{}")
        assert ack.stream == "INTAKE"
        for c in (nc, d, s):
            await c.close()
    finally:
        server.stop()


async def test_a_local_cluster_carries_the_generated_users_on_every_node(
    gen: ModuleType, tmp_path: Path
) -> None:
    """GRIDLOOP_NATS_NODES=3 make run: three nodes each include the generated accounts
    (`--local-accounts-out`); a service creates the streams R3 through one node, a department
    reads its feed through another, an integrator reports through the third, and the fences
    hold on every node."""
    accounts = tmp_path / "accounts.conf"
    assert gen.main(["--local-accounts-out", str(accounts)]) == 0
    city = gen.read_city(gen.DEFAULT_CITY)
    assert accounts.read_text(encoding="utf-8") == gen.render_local_accounts(
        city, gen.DEFAULT_CITY, passwords=gen.passwords_from_env(gen.users(city), env={})
    )
    cluster = LocalNatsCluster(tmp_path / "cluster", accounts_file=accounts, log_dir=tmp_path)
    cluster.start()
    clients: list[Client] = []

    async def login(node: int, user: str, **kw: Any) -> Client:
        kw.setdefault("password", f"gridloop-dev-{user}")
        nc = await nats.connect(cluster.nodes[node].url, user=user, allow_reconnect=False, **kw)
        clients.append(nc)
        return nc

    try:
        dept, src = city.departments[0].code, city.sources[0]
        svc = (await login(0, "dispatch")).jetstream()
        await bus.ensure_streams(svc, replicas=3)
        assert (await svc.stream_info("CASES")).config.num_replicas == 3
        await bus.ensure_feeds(svc, [Feed.department(dept)])
        await svc.publish(f"dispatch.{dept}.assigned", b"{}")
        d = await login(1, f"dept-{dept}", inbox_prefix=f"_INBOX.dept-{dept}")
        djs = d.jetstream()
        msgs = await (await djs.pull_subscribe_bind(f"dept-{dept}", "DISPATCH")).fetch(1, 5)
        assert msgs[0].subject == f"dispatch.{dept}.assigned"
        s = await login(2, f"src-{src.code}", inbox_prefix=f"_INBOX.src-{src.code}")
        ack = await s.jetstream().publish(f"intake.{src.channels[0]}.{src.code}", b"{}")
        assert ack.stream == "INTAKE"
        # a department may not write CASES, whichever node it is on
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await djs.publish("case.closed", b"{}", timeout=DENIED_TIMEOUT)
        assert await _count(svc, "CASES") == 0
        with pytest.raises(nats.errors.Error):
            await login(1, f"dept-{dept}", password="wrong")
    finally:
        for c in clients:
            await c.close()
        cluster.stop()
