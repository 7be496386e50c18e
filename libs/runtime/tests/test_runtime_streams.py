"""The streams' ages and compression on a real nats-server (STREAM_MAX_AGE_DAYS,
STREAM_COMPRESSION): a stream named gets its age, at creation and in place on a stream the
previous release created (its messages and consumers kept); a stream not named keeps the age
it has, hand-set ones included; every stream is stored S2-compressed unless told otherwise,
and a full block of real events then takes a fraction of the disk."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from gridloop_contracts.subjects import STREAMS, StreamSpec
from gridloop_devkit.devstack import LocalNats
from gridloop_devkit.testing import running, settings_for
from gridloop_runtime import bus
from gridloop_runtime.service import ServiceDefinition
from gridloop_runtime.settings import ServiceSettings
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StoreCompression, StreamConfig
from pydantic import ValidationError

DAY = 86400.0


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


async def configs(js: JetStreamContext) -> dict[str, StreamConfig]:
    return {spec.name: (await js.stream_info(spec.name)).config for spec in STREAMS}


async def ages(js: JetStreamContext) -> dict[str, float]:
    """Each stream's max_age in whole seconds (0: for ever)."""
    return {name: round(c.max_age or 0.0) for name, c in (await configs(js)).items()}


async def compressions(js: JetStreamContext) -> set[str]:
    return {str(c.compression) for c in (await configs(js)).values()}


async def test_named_streams_are_made_with_their_age_and_the_rest_kept_for_ever(
    js: JetStreamContext,
) -> None:
    await bus.ensure_streams(js, max_ages_s={"INTAKE": 30 * DAY, "DISPATCH": 0})
    assert await ages(js) == {
        spec.name: 30 * DAY if spec.name == "INTAKE" else 0 for spec in STREAMS
    }


async def test_the_previous_releases_streams_are_compressed_in_place_and_back(
    js: JetStreamContext,
) -> None:
    """The previous release made its streams uncompressed: the next start compresses them,
    messages kept; STREAM_COMPRESSION=none turns it off again."""
    await bus.ensure_streams(js, compression=StoreCompression.NONE)
    assert await compressions(js) == {"none"}
    await js.publish("case.pinged", b"{}")

    await bus.ensure_streams(js)
    assert await compressions(js) == {"s2"}
    assert (await js.stream_info("CASES")).state.messages == 1

    await bus.ensure_streams(js, compression=StoreCompression.NONE)
    assert await compressions(js) == {"none"}


async def test_the_cases_stream_stores_a_closed_loops_events_in_a_fraction_of_the_disk(
    work_dir: Path,
) -> None:
    """The same events, one stream compressed and one not, until several file blocks are
    full: the compressed one's files take under half the disk (the loop's real events, about
    1 kB each, take about a quarter; docs/operations.md, "Scale")."""
    server = LocalNats(work_dir / f"nats-s2-{uuid.uuid4().hex[:8]}").start()
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream(publish_async_max_pending=2000)
        for name, compression in (("PLAIN", StoreCompression.NONE), ("S2", StoreCompression.S2)):
            spec = StreamSpec(name, (f"{name.lower()}.>",), "")
            await js.add_stream(bus.stream_config(spec, compression=compression))
        # the server compresses a file block once it is full (8 MB for a stream with no
        # size limit): 25,000 events of about 1 kB fill three
        for n in range(25_000):
            event = case_accepted(n)
            for name in ("plain", "s2"):
                await js.publish_async(
                    f"{name}.accepted", event, headers={"Nats-Msg-Id": f"{name}{n}"}
                )
        await js.publish_async_completed()
        await nc.close()
    finally:
        server.stop()
    plain, s2 = (on_disk(server.store_dir, name) for name in ("PLAIN", "S2"))
    assert plain > 25_000 * 900, plain
    assert s2 < plain / 2, (plain, s2)


def case_accepted(n: int) -> bytes:
    """A `case.accepted` body as intake writes it (its report inside), each one different."""
    at = datetime(2026, 12, 7, 8, 0, tzinfo=UTC) + timedelta(seconds=n)
    place = {"lat": round(39.87 + n % 997 * 1e-5, 6), "lon": round(116.38 + n % 991 * 1e-5, 6)}
    where = {
        "category_code": f"E01{n % 20:02d}",
        "cell_code": f"110101016004{n % 9999:04d}",
        "community_code": "110101016004",
        "subdistrict_code": "110101016",
    }
    case_id = f"110101-20261207-{n:06d}"
    actor = {"id": "intake", "role": "system", "name": "受理规则 / intake rules"}
    report = {
        "case_id": case_id,
        "occurred_at": at.isoformat(),
        "actor": actor,
        **where,
        "report_id": f"r{uuid.uuid4().hex[:20]}",
        "channel": "patrol",
        "source": "patrol-app",
        "external_id": uuid.uuid4().hex,
        "description": f"垃圾满溢 第{n}号",
        "location": place,
        "urgency": "normal",
        "reporter_user_id": f"sup-{n % 40:03d}",
        "attachments": [],
        "reported_at": (at - timedelta(seconds=2)).isoformat(),
    }
    body = {
        "case_id": case_id,
        "occurred_at": at.isoformat(),
        "actor": actor,
        **where,
        "urgency": "normal",
        "description": report["description"],
        "location": place,
        "channel": "patrol",
        "source": "patrol-app",
        "attachments": [],
        "auto": True,
        "reported_at": report["reported_at"],
        "reporter_user_id": report["reporter_user_id"],
        "report": report,
    }
    return json.dumps(body, ensure_ascii=False).encode()


def on_disk(store_dir: Path, stream: str) -> int:
    """Bytes of the stream's message files."""
    folder = store_dir / "js" / "jetstream" / "$G" / "streams" / stream / "msgs"
    return sum(f.stat().st_size for f in folder.iterdir())


async def test_an_age_is_set_in_place_on_the_previous_releases_stream(js: JetStreamContext) -> None:
    """Upgrading: the stream keeps its messages and its consumers; the age given again is no
    change; a stream not named keeps an age set by hand, and one named 0 is kept for ever."""
    await bus.ensure_streams(js, compression=StoreCompression.NONE)  # as the previous release
    for n in range(3):
        await js.publish("intake.hotline.x", f"report {n}".encode())
    await js.add_consumer("INTAKE", ConsumerConfig(durable_name="intake-reports"))
    notify = next(spec for spec in STREAMS if spec.name == "NOTIFY")
    await js.update_stream(bus.stream_config(notify, max_age_s=7 * DAY))  # by hand

    await bus.ensure_streams(js, max_ages_s={"INTAKE": 30 * DAY})
    after = await ages(js)
    assert after["INTAKE"] == 30 * DAY
    assert after["NOTIFY"] == 7 * DAY  # not named: left as it was
    assert after["CASES"] == 0
    info = await js.stream_info("INTAKE")
    assert info.state.messages == 3
    assert (await js.consumer_info("INTAKE", "intake-reports")).num_pending == 3

    # every replica of every service runs this at start: once set, nothing to change
    await bus.ensure_streams(js, max_ages_s={"INTAKE": 30 * DAY})
    assert (await js.stream_info("INTAKE")).state.messages == 3

    await bus.ensure_streams(js, max_ages_s={"INTAKE": 30 * DAY, "NOTIFY": 0})
    assert (await ages(js))["NOTIFY"] == 0


async def test_a_new_subject_keeps_the_age_a_stream_not_named_has(js: JetStreamContext) -> None:
    intake = next(spec for spec in STREAMS if spec.name == "INTAKE")
    older = StreamSpec("INTAKE", ("intake.hotline.>",), intake.description)
    await js.add_stream(bus.stream_config(older, max_age_s=14 * DAY))

    await bus.ensure_streams(js, [intake])

    config: StreamConfig = (await js.stream_info("INTAKE")).config
    assert config.subjects == list(intake.subjects)
    assert round(config.max_age or 0) == 14 * DAY


@pytest.mark.parametrize("setting", ["HANDLING=30,DLQ=400", "handling=30, dlq=400"])
async def test_a_service_gives_the_streams_the_ages_of_its_settings(
    database_url: str, nats_url: str, js: JetStreamContext, setting: str
) -> None:
    settings = settings_for("echo", database_url, nats_url, stream_max_age_days=setting)
    async with running(settings, ServiceDefinition(name="echo", consumers=[])):
        got = await ages(js)
    assert got == {
        spec.name: {"HANDLING": 30 * DAY, "DLQ": 400 * DAY}.get(spec.name, 0) for spec in STREAMS
    }


def test_a_compression_the_server_does_not_know_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="STREAM_COMPRESSION"):
        ServiceSettings.model_validate({"SERVICE_NAME": "x", "STREAM_COMPRESSION": "zstd"})
    default = ServiceSettings.model_validate({"SERVICE_NAME": "x"})
    assert default.stream_store_compression is StoreCompression.S2
