"""Arbitrary bytes on intake.<channel>.<source> against a running intake on a real NATS and
PostgreSQL: every message is answered with a gridloop.report.rejected.v1 naming the field —
never a crash, a dead letter or silence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats
from gridloop_contracts import decode
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.settings import IntakeSettings
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

DEMO_CITY = Path(__file__).resolve().parents[2] / "data" / "demo-city"
N = 40

binary_ce = st.fixed_dictionaries(
    {"ce-specversion": st.just("1.0"), "ce-type": st.just(ReportV1.type_name)},
    optional={
        "ce-id": st.text(min_size=1, max_size=20),
        "ce-source": st.text(max_size=20),
        "ce-time": st.text(max_size=30),
    },
)
structured = st.just({"content-type": "application/cloudevents+json"})
bodies = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10)).map(
        lambda d: json.dumps(d).encode()
    ),
)
messages = st.tuples(st.one_of(st.none(), binary_ce, structured), bodies)


def samples() -> list[tuple[dict[str, str] | None, bytes]]:
    out: list[tuple[dict[str, str] | None, bytes]] = []

    @given(st.lists(messages, min_size=N, max_size=N))
    @settings(max_examples=1, database=None, derandomize=True, phases=[Phase.generate])
    def collect(xs: list[tuple[dict[str, str] | None, bytes]]) -> None:
        out[:] = xs

    collect()
    return out


async def test_arbitrary_bytes_on_intake_subjects_are_rejected_naming_the_field(
    database_url: str, nats_url: str
) -> None:
    settings_ = settings_for(
        "intake", database_url, nats_url, IntakeSettings, city_data_dir=str(DEMO_CITY)
    )
    assert isinstance(settings_, IntakeSettings)
    definition_, state = definition(settings_)
    nc = await nats.connect(nats_url)
    heard: list[Any] = []

    async def on_notify(msg: Any) -> None:
        heard.append(decode(dict(msg.headers or {}), msg.data))

    try:
        async with running(settings_, definition_, state=state) as rt:
            await nc.subscribe("notify.>", cb=on_notify)
            js = nc.jetstream()
            sent = samples()
            for i, (headers, body) in enumerate(sent):
                subject = ("intake.hotline.12345", "intake.web.web", "intake.video.video-ai")[i % 3]
                await js.publish(subject, body, headers=headers)
            rejected = await wait_for(
                lambda: (
                    [e for e in heard if e.type == "gridloop.report.rejected.v1"]
                    if len(heard) >= N
                    else None
                ),
                timeout=30,
                what=f"{N} answers",
            )
            assert len(rejected) == N, [e.type for e in heard]
            for env in rejected:
                errors = env.data["errors"]
                assert errors and all(e["field"] and e["reason"] for e in errors), env.data
            assert rt.pool is not None
            async with rt.pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
                assert await conn.fetchval("SELECT count(*) FROM rejections") == N
                assert await conn.fetchval("SELECT count(*) FROM cases") == 0
    finally:
        await nc.close()
