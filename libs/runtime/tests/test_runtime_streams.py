"""The streams' ages on a real nats-server (STREAM_MAX_AGE_DAYS): a stream named gets its
age, at creation and in place on a stream the previous release created (its messages and
consumers kept); a stream not named keeps the age it has, hand-set ones included."""

from __future__ import annotations

import nats
import pytest
from gridloop_contracts.subjects import STREAMS, StreamSpec
from gridloop_devkit.testing import running, settings_for
from gridloop_runtime import bus
from gridloop_runtime.service import ServiceDefinition
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig

DAY = 86400.0


async def ages(js: JetStreamContext) -> dict[str, float]:
    """Each stream's max_age in whole seconds (0: for ever)."""
    return {
        spec.name: round((await js.stream_info(spec.name)).config.max_age or 0.0)
        for spec in STREAMS
    }


async def test_named_streams_are_made_with_their_age_and_the_rest_kept_for_ever(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, max_ages_s={"INTAKE": 30 * DAY, "DISPATCH": 0})
        assert await ages(js) == {
            spec.name: 30 * DAY if spec.name == "INTAKE" else 0 for spec in STREAMS
        }
    finally:
        await nc.close()


async def test_an_age_is_set_in_place_on_the_previous_releases_stream(nats_url: str) -> None:
    """Upgrading: the stream keeps its messages and its consumers; the age given again is no
    change; a stream not named keeps an age set by hand, and one named 0 is kept for ever."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js)  # as the previous release made them
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
    finally:
        await nc.close()


async def test_a_new_subject_keeps_the_age_a_stream_not_named_has(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        intake = next(spec for spec in STREAMS if spec.name == "INTAKE")
        older = StreamSpec("INTAKE", ("intake.hotline.>",), intake.description)
        await js.add_stream(bus.stream_config(older, max_age_s=14 * DAY))

        await bus.ensure_streams(js, [intake])

        config: StreamConfig = (await js.stream_info("INTAKE")).config
        assert config.subjects == list(intake.subjects)
        assert round(config.max_age or 0) == 14 * DAY
    finally:
        await nc.close()


@pytest.mark.parametrize("setting", ["HANDLING=30,DLQ=400", "handling=30, dlq=400"])
async def test_a_service_gives_the_streams_the_ages_of_its_settings(
    database_url: str, nats_url: str, setting: str
) -> None:
    settings = settings_for("echo", database_url, nats_url, stream_max_age_days=setting)
    async with running(settings, ServiceDefinition(name="echo", consumers=[])):
        nc = await nats.connect(nats_url)
        try:
            got = await ages(nc.jetstream())
        finally:
            await nc.close()
    assert got == {
        spec.name: {"HANDLING": 30 * DAY, "DLQ": 400 * DAY}.get(spec.name, 0) for spec in STREAMS
    }
