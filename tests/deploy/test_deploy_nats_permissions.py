"""The generated NATS permissions, live: a real nats-server with the generated config, and
nats-py clients logged in as services, departments and integrators.

Proves that a department reads only `dispatch.<own>.>` (core or through its own durable
consumer, whose filter it cannot widen) and writes only `handling.<own>.>`; that an
integrator writes only `intake.<its channel>.<own>` and reads only `notify.<own>`; and that
the services can create the streams and their durable consumers, publish, fetch and ack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import nats
import nats.errors
import pytest
import pytest_asyncio
from gridloop_runtime import bus
from gridloop_runtime.consumer import Consumer, ConsumerSpec
from gridloop_runtime.devstack import LocalNats
from gridloop_runtime.testing import wait_for
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

# A short wait for an answer that must not come (the server drops a denied request).
DENIED_TIMEOUT = 1.0

DEPARTMENTS = "departments:\n- code: roads\n  name: 道路\n- code: water\n  name: 供水\n"
SOURCES = "sources:\n- code: '12345'\n  channel: hotline\n- code: video-ai\n  channel: video\n"


class Session:
    """One logged-in NATS connection and the errors the server sent it."""

    def __init__(self, nc: Client, errors: list[str]) -> None:
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
        session = Session(nc, errors)
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


async def _count(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


def _own_consumer(name: str, filter_subject: str) -> ConsumerConfig:
    # `name` makes nats-py use the create subject that carries the filter: the only one a
    # department or integrator may publish to.
    return ConsumerConfig(
        name=name,
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        filter_subject=filter_subject,
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
    await svc["dispatch"].js.publish("dispatch.roads.assigned", b'{"case":"roads-1"}')
    await svc["dispatch"].js.publish("dispatch.water.assigned", b'{"case":"water-1"}')

    roads = await login("dept-roads")
    # Its own durable consumer, on its own filter: only its own messages.
    await roads.js.add_consumer("DISPATCH", _own_consumer("dept-roads", "dispatch.roads.>"))
    sub = await roads.js.pull_subscribe_bind(durable="dept-roads", stream="DISPATCH")
    msgs = await sub.fetch(10, timeout=5)
    assert "dispatch.roads.assigned" in {m.subject for m in msgs}
    assert all(m.subject.startswith("dispatch.roads.") for m in msgs)
    for m in msgs:
        await m.ack_sync()

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

    # It cannot widen its consumer's filter, nor use the create subject without the filter.
    for wider in ("dispatch.>", "dispatch.water.>"):
        with pytest.raises(nats.errors.TimeoutError):
            await roads.js.add_consumer(
                "DISPATCH", _own_consumer("dept-roads", wider), timeout=DENIED_TIMEOUT
            )
        await roads.denied("publish", f"$JS.API.CONSUMER.CREATE.DISPATCH.dept-roads.{wider}")
    legacy = ConsumerConfig(durable_name="dept-roads", filter_subject="dispatch.>")
    with pytest.raises(nats.errors.TimeoutError):
        await roads.js.add_consumer("DISPATCH", legacy, timeout=DENIED_TIMEOUT)
    await roads.denied("publish", "$JS.API.CONSUMER.DURABLE.CREATE.DISPATCH.dept-roads")
    # A config whose filter differs from the one in the subject: the server refuses it.
    reply = await roads.nc.request(
        "$JS.API.CONSUMER.CREATE.DISPATCH.dept-roads.dispatch.roads.>",
        b'{"stream_name":"DISPATCH","config":{"name":"dept-roads","durable_name":"dept-roads",'
        b'"ack_policy":"explicit","filter_subject":"dispatch.>"}}',
        timeout=5,
    )
    assert b"did not match filtered subject" in reply.data

    # Nor create a consumer under another department's name, nor pull from one.
    with pytest.raises(nats.errors.TimeoutError):
        await roads.js.add_consumer(
            "DISPATCH",
            _own_consumer("dept-water", "dispatch.water.>"),
            timeout=DENIED_TIMEOUT,
        )
    await roads.denied("publish", "$JS.API.CONSUMER.CREATE.DISPATCH.dept-water.dispatch.water.>")
    water = await login("dept-water")
    await water.js.add_consumer("DISPATCH", _own_consumer("dept-water", "dispatch.water.>"))
    await roads.nc.publish("$JS.API.CONSUMER.MSG.NEXT.DISPATCH.dept-water", b"1")
    await roads.denied("publish", "$JS.API.CONSUMER.MSG.NEXT.DISPATCH.dept-water")
    # ... while water reads its own, untouched.
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

    ack = await hotline.js.publish("intake.hotline.12345", b'{"external_id":"a"}')
    assert ack.stream == "INTAKE"
    for subject in (
        "intake.video.12345",  # not its channel
        "intake.hotline.96105",  # another source's
        "intake.video.video-ai",
        "case.created",
        "notify.12345",  # posing as intake
    ):
        await hotline.nc.publish(subject, b"{}")
        await hotline.denied("publish", subject)
    assert await _count(svc["intake"].js, "INTAKE") == before_intake + 1
    assert await _count(svc["intake"].js, "CASES") == before_cases

    # Answers: its own notify subject, core or through its own durable on NOTIFY.
    await svc["intake"].js.publish("notify.12345", b'{"status":"accepted"}')
    await svc["intake"].js.publish("notify.video-ai", b'{"status":"accepted"}')
    await hotline.js.add_consumer("NOTIFY", _own_consumer("src-12345", "notify.12345"))
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
            "NOTIFY", _own_consumer("src-12345", "notify.>"), timeout=DENIED_TIMEOUT
        )
    await hotline.denied("publish", "$JS.API.CONSUMER.CREATE.NOTIFY.src-12345.notify.>")

    # The video platform publishes detections on its own channel only.
    video = await login("src-video-ai")
    assert (await video.js.publish("intake.video.video-ai", b"{}")).stream == "INTAKE"
    await video.nc.publish("intake.hotline.video-ai", b"{}")
    await video.denied("publish", "intake.hotline.video-ai")


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
        await nc.jetstream().publish(f"dispatch.{dept}.assigned", b"{}")
        d = await nats.connect(
            server.url,
            user=f"dept-{dept}",
            password=f"gridloop-dev-dept-{dept}",
            inbox_prefix=f"_INBOX.dept-{dept}",
            allow_reconnect=False,
        )
        djs = d.jetstream()
        await djs.add_consumer("DISPATCH", _own_consumer(f"dept-{dept}", f"dispatch.{dept}.>"))
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
