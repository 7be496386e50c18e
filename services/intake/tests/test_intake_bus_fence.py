"""Integrators' messages that try something, against a real NATS and PostgreSQL: a report
claiming another sender's `ce-source` is refused and cannot drop that sender's own report
with the same id; and every malformed message — bad base64, bad JSON, the wrong content
type, missing headers, characters no database column can hold — is answered on
notify.<source> with gridloop.report.rejected.v1, never dead-lettered in silence."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from gridloop_contracts import Envelope, Location, to_binary
from gridloop_contracts.inbound import ReportV1

if TYPE_CHECKING:
    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
REJECTED = "gridloop.report.rejected.v1"
STATUS = "gridloop.case.status.v1"
STRUCTURED = {"content-type": "application/cloudevents+json"}


def report(external_id: str, **kw: object) -> dict[str, Any]:
    values: dict[str, object] = {
        "external_id": external_id,
        "description": "人行道上堆着垃圾",
        "reported_at": T0.isoformat(),
        "location": Location(lat=39.9000, lon=116.4003).model_dump(),
        "category_code": "E0104",
    }
    values.update(kw)
    return values


def binary(data: dict[str, Any], *, source: str, id: str) -> tuple[dict[str, str], bytes]:
    env = Envelope(type=ReportV1.type_name, source=source, data=data, id=id, time=T0)
    return to_binary(env)


def structured(**doc: Any) -> bytes:
    base = {
        "specversion": "1.0",
        "id": "s-1",
        "source": "/hotline/12345",
        "type": ReportV1.type_name,
        "time": T0.isoformat(),
    }
    return orjson.dumps({**base, **doc})


async def test_a_report_claiming_another_senders_source_is_refused_and_drops_nothing(
    intake: Harness,
) -> None:
    notify = await intake.tap("NOTIFY", "notify.>")
    # 12345 sends id X as if it were 96105 (the dedupe key used to be ce-source|ce-id).
    headers, body = binary(report("spoof-1"), source="/hotline/96105", id="X")
    await intake.js.publish("intake.hotline.12345", body, headers=headers)
    [refused] = await notify.wait(REJECTED, 1)
    assert notify.seen[0][0] == "notify.12345"
    assert [e["field"] for e in refused.data["errors"]] == ["source"]
    assert "wrong-source" in refused.data["errors"][0]["reason"]
    assert refused.data["source"] == "12345" and refused.data["external_id"] == "spoof-1"

    # 96105's own report with the same id X: taken, and answered.
    headers, body = binary(report("call-96105"), source="/hotline/96105", id="X")
    await intake.js.publish("intake.hotline.96105", body, headers={**headers, "Nats-Msg-Id": "Y"})
    [status] = await notify.wait(STATUS, 1)
    assert status.data["external_id"] == "call-96105"
    assert await intake.case_of("96105", "call-96105")
    # Sources that name the sender in another form are its own.
    for i, own in enumerate(("/12345", "urn:hotline:12345", "12345", "/a/b/12345/")):
        headers, body = binary(report(f"own-{i}"), source=own, id=f"o{i}")
        await intake.js.publish("intake.hotline.12345", body, headers=headers)
    for i in range(4):
        assert await intake.case_of("12345", f"own-{i}")


async def test_every_malformed_message_is_answered_naming_what_is_wrong(intake: Harness) -> None:
    notify = await intake.tap("NOTIFY", "notify.12345")
    js = intake.js
    good = orjson.dumps(report("b64-ok"))
    sent: list[tuple[str, dict[str, str] | None, bytes]] = [
        # structured mode: data_base64 that is not base64, not a string; a bad content type
        ("data_base64", STRUCTURED, structured(id="b1", data_base64="!!not base64!!")),
        ("data_base64", STRUCTURED, structured(id="b2", data_base64=12)),
        ("data_base64", STRUCTURED, structured(id="b3", data_base64="bm90IGpzb24=")),
        ("datacontenttype", STRUCTURED, structured(id="b4", datacontenttype=5, data={})),
        ("subject", STRUCTURED, structured(id="b5", subject=["x"], data=report("b5"))),
        ("body", STRUCTURED, b"[1, 2, 3]"),
        ("body", STRUCTURED, b"\xff\xfe"),
        # binary mode: missing headers, bad JSON, the wrong content type
        ("type", {"ce-specversion": "1.0", "ce-id": "h1", "ce-source": "/hotline/12345"}, good),
        ("data", {**binary({}, source="/hotline/12345", id="h2")[0]}, b"{not json"),
        (
            "data",
            {**binary({}, source="/hotline/12345", id="h3")[0], "content-type": "text/plain"},
            good,
        ),
        # text a database cannot store: NUL in a header, in the data
        ("id", {**binary({}, source="/hotline/12345", id="h7")[0], "ce-id": "h\x007"}, good),
        (
            "source",
            {**binary({}, source="/hotline/12345", id="h4")[0], "ce-source": "/a\x00"},
            good,
        ),
        (
            "data.external_id",
            binary(report("nul\x00id"), source="/hotline/12345", id="h5")[0],
            binary(report("nul\x00id"), source="/hotline/12345", id="h5")[1],
        ),
        (
            "data.description",
            binary(report("nul-desc", description="垃\x00圾"), source="/hotline/12345", id="h6")[0],
            binary(report("nul-desc", description="垃\x00圾"), source="/hotline/12345", id="h6")[1],
        ),
    ]
    for _, headers, body in sent:
        await js.publish("intake.hotline.12345", body, headers=headers)
    # ... and a good structured report with base64 data is taken.
    ok = structured(id="b6", data_base64=base64.b64encode(good).decode())
    await js.publish("intake.hotline.12345", ok, headers=STRUCTURED)

    rejected = await notify.wait(REJECTED, len(sent))
    fields = sorted(e.data["errors"][0]["field"] for e in rejected)
    assert fields == sorted(field for field, _, _ in sent), [e.data for e in rejected]
    assert all(e.data["errors"][0]["reason"] for e in rejected)
    await notify.wait(STATUS, 1)
    assert await intake.case_of("12345", "b64-ok")
    assert await intake.value("SELECT count(*) FROM dead_letters") == 0
    assert await intake.value("SELECT count(*) FROM rejections") == len(sent)
