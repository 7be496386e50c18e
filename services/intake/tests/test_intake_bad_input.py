"""Bad input at intake's doors, and output that never breaks: numbers JSON cannot carry, text
that is not text, duplicate keys, deep nesting, blank text, times from the future or off the
calendar — on REST, Open311 and the bus — answered 422 (Open311: its error shape) naming the
field, never 500. Open311's public list: only public cases, points rounded, XML that parses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from gridloop_contracts import Envelope, inbound, to_binary
from gridloop_contracts.inbound import ReportV1
from gridloop_intake.domain import open311 as spec

if TYPE_CHECKING:
    from .conftest import Harness

OPEN311 = "/open311/v2"
KEY = "demo-open311-key"
JSON = {"content-type": "application/json"}
POINT = {"lat": 39.9000, "lon": 116.4003}  # a cell of the demo city
REJECTED = "gridloop.report.rejected.v1"


def body(**fields: Any) -> dict[str, Any]:
    return {"description": "人行道上堆着垃圾", "location": POINT, **fields}


def raw(text: str) -> bytes:
    """JSON text as bytes, lone surrogates and all (`surrogatepass`: \\ud800 as ED A0 80)."""
    return text.encode("utf-8", "surrogatepass")


def first(r: Any) -> dict[str, Any]:
    detail: dict[str, Any] = r.json()["detail"][0]
    return detail


T0_ISO = "2026-11-23T02:00:00+00:00"


async def publish_raw(
    intake: Harness, data: dict[str, Any], *, time: datetime | None = None
) -> None:
    """A report as an integrator's own code would send it: data not built by the model."""
    env = Envelope(
        type=ReportV1.type_name,
        source="/hotline/12345",
        data=data,
        id=str(data.get("external_id")),
        time=time or datetime.now(UTC),
    )
    headers, payload = to_binary(env)
    await intake.js.publish("intake.hotline.12345", payload, headers=headers)


async def test_numbers_json_cannot_carry_and_text_that_is_not_text_are_refused_by_field(
    intake: Harness,
) -> None:
    """Item 6: NaN, Infinity, 1e999 and lone surrogates made the validation-error handler fail
    (500) as it echoed them; now 422 naming the field, and the next request works."""
    op = {**intake.headers("op-01", "operator"), **JSON}
    async with intake.client() as http:
        for number in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999"):
            text = '{"description": "x", "location": {"lat": NUMBER, "lon": 116.4}}'
            text = text.replace("NUMBER", number)
            r = await http.post("/reports", content=raw(text), headers=op)
            assert r.status_code == 422, (number, r.text)
            assert first(r)["field"] == "location.lat" and number in first(r)["msg"]
        r = await http.post(
            "/reports",
            content=raw('{"description": "\\ud800", "location": {"lat": 39.9}}'),
            headers=op,
        )
        assert r.status_code == 422 and first(r)["field"] == "description"
        assert "surrogate" in first(r)["msg"]
        # the same surrogate as raw bytes (ED A0 80) is not UTF-8: named by its position
        r = await http.post("/reports", content=raw('{"description": "\ud800"}'), headers=op)
        assert r.status_code == 422 and "not valid UTF-8" in first(r)["msg"]
        assert first(r)["ctx"]["position"] == 17
        # an unknown key that is not text (extra="forbid" would have named it as sent)
        r = await http.post("/reports", content=raw('{"\\ud800": 1}'), headers=op)
        assert r.status_code == 422 and "\\ud800" in first(r)["msg"]
        r = await http.post("/reports", json=body(), headers=op)
        assert r.status_code == 201, r.text


async def test_a_body_that_is_no_json_says_what_is_wrong_and_where(intake: Harness) -> None:
    op = {**intake.headers("op-01", "operator"), **JSON}
    async with intake.client() as http:
        r = await http.post("/reports", content=b"[" * 10_000 + b"]" * 10_000, headers=op)
        assert r.status_code == 422
        assert "nested deeper than 32 levels" in first(r)["msg"] and first(r)["ctx"]["position"]
        r = await http.post("/reports", content=b'{"description": "\xff"}', headers=op)
        assert r.status_code == 422
        assert first(r)["msg"].startswith("the body is not valid UTF-8: byte 0xff at position 17")
        r = await http.post("/reports", content=b'{"description": "x",}', headers=op)
        assert r.status_code == 422 and "not valid JSON" in first(r)["msg"]
        assert first(r)["ctx"]["position"] == 20
        # a key twice: which one wins depends on the parser; refused, naming it
        dup = '{"description": "a", "description": "b", "location": {"lat": 39.9, "lon": 116.4}}'
        r = await http.post("/reports", content=dup.encode(), headers=op)
        assert r.status_code == 422 and first(r)["field"] == "description"
        assert "duplicate key" in first(r)["msg"]
        nested = '{"description": "a", "location": {"lat": 39.9, "lat": 39.91, "lon": 116.4}}'
        r = await http.post("/reports", content=nested.encode(), headers=op)
        assert r.status_code == 422 and first(r)["field"] == "location.lat"
        r = await http.post("/reports", content=b'{"description": "a\\u0000b"}', headers=op)
        assert r.status_code == 422 and first(r)["field"] == "description"
        assert await intake.value("SELECT count(*) FROM cases") == 0


async def test_blank_text_is_missing_text(intake: Harness) -> None:
    op = intake.headers("op-01", "operator")
    async with intake.client() as http:
        for blank in ("   ", "\u3000\u3000", "\u200b", " \t\n"):
            r = await http.post("/reports", json=body(description=blank), headers=op)
            assert r.status_code == 422, (blank, r.text)
            assert first(r)["field"] == "description" and "blank" in first(r)["msg"]
        r = await http.post("/reports", json=body(address="  "), headers=op)
        assert r.status_code == 422 and first(r)["field"] == "address"
    # and on the bus: the contract refuses it for every channel
    notify = await intake.tap("NOTIFY", "notify.12345")
    data = {**body(description="  "), "external_id": "blank-1", "reported_at": T0_ISO}
    await publish_raw(intake, data)
    [rejected] = await notify.wait(REJECTED)
    assert rejected.data["errors"][0]["field"] == "data.description"
    assert await intake.value("SELECT count(*) FROM cases") == 0


async def test_times_ahead_of_the_clock_are_refused_naming_the_field(intake: Harness) -> None:
    """A report `reported_at` a year ahead opened a case; so did a `ce-time` a year ahead."""
    ahead = max(intake.clock.now(), datetime.now(UTC)) + timedelta(days=365)
    op = intake.headers("op-01", "operator")
    assert inbound.RECEIVER.max_ahead == timedelta(seconds=300)  # INTAKE_MAX_TIME_AHEAD_S
    async with intake.client() as http:
        r = await http.post("/reports", json=body(reported_at=ahead.isoformat()), headers=op)
        assert r.status_code == 422 and first(r)["field"] == "reported_at"
        assert "ahead of the receiver's clock" in first(r)["msg"]
        # a sender's clock a little fast is no fault
        soon = datetime.now(UTC) + timedelta(minutes=4)
        r = await http.post("/reports", json=body(reported_at=soon.isoformat()), headers=op)
        assert r.status_code == 201, r.text
    notify = await intake.tap("NOTIFY", "notify.12345")
    await publish_raw(
        intake, {**body(), "external_id": "ahead-1", "reported_at": ahead.isoformat()}
    )
    await publish_raw(
        intake, {**body(), "external_id": "ahead-2", "reported_at": T0_ISO}, time=ahead
    )
    rejected = await notify.wait(REJECTED, 2)
    by_id = {e.data["message_id"]: e.data["errors"][0]["field"] for e in rejected}
    assert by_id == {"ahead-1": "data.reported_at", "ahead-2": "time"}
    assert await intake.value("SELECT count(*) FROM reports WHERE external_id LIKE 'ahead-%'") == 0


async def test_times_off_the_calendar_are_refused_not_overflowed(intake: Harness) -> None:
    """Item 7: years 1 and 9999 with an offset overflowed on the way to UTC (500)."""
    op = intake.headers("op-01", "operator")
    extremes = ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z")
    async with intake.client() as http:
        for at in extremes:
            r = await http.post("/reports", json=body(reported_at=at), headers=op)
            assert r.status_code == 422 and first(r)["field"] == "reported_at", (at, r.text)
            assert "between 1970-01-01 and 2199-12-31" in first(r)["msg"]
            r = await http.get("/cases", params={"from": at}, headers=op)
            assert r.status_code == 422 and first(r)["field"] == "query.from", r.text
            r = await http.get("/cases", params={"to": at}, headers=op)
            assert r.status_code == 422 and first(r)["field"] == "query.to"
        for name, at in (
            ("end_date", "0001-01-01T00:00:00Z"),
            ("start_date", "9999-12-31T23:59:59-23:59"),
            ("start_date", "0001-01-01T00:00:00+14:00"),
        ):
            for fmt in ("json", "xml"):
                r = await http.get(f"{OPEN311}/requests.{fmt}", params={name: at})
                assert r.status_code == 422, (name, at, r.text)
            r = await http.get(f"{OPEN311}/requests.json", params={name: at})
            assert r.json()[0]["description"].startswith(f"{name}: must be between")
        r = await http.post(
            "/admin/outbox/republish",
            json={"since": "0001-01-01T00:00:00+14:00", "until": "2026-11-24T00:00:00Z"},
            headers=intake.headers("root", "admin"),
        )
        assert r.status_code == 422 and first(r)["field"] == "since"
    notify = await intake.tap("NOTIFY", "notify.12345")
    await publish_raw(
        intake, {**body(), "external_id": "y9999", "reported_at": "9999-12-31T23:59:59-23:59"}
    )
    [rejected] = await notify.wait(REJECTED)
    assert rejected.data["errors"][0]["field"] == "data.reported_at"


async def test_open311_json_bodies_are_decoded_strictly(intake: Harness) -> None:
    async with intake.client() as http:
        url = f"{OPEN311}/requests.json?api_key={KEY}"
        dup = '{"service_code": "E0104", "service_code": "E0201", "lat": 39.9, "long": 116.4003}'
        r = await http.post(url, content=dup.encode(), headers=JSON)
        assert r.status_code == 422
        assert r.json()[0]["description"].startswith("service_code: duplicate key")
        nan = '{"service_code": "E0104", "lat": NaN, "long": 116.4003}'
        r = await http.post(url, content=nan.encode(), headers=JSON)
        assert r.status_code == 422 and r.json()[0]["description"].startswith("lat: must be")
        r = await http.post(url, content=b'{"service_code": "\xed\xa0\x80"}', headers=JSON)
        assert r.status_code == 400 and "not valid UTF-8" in r.json()[0]["description"]
        r = await http.post(url, content=b"[" * 10_000, headers=JSON)
        assert r.status_code == 400 and "nested deeper" in r.json()[0]["description"]
        r = await http.post(
            url,
            content=json.dumps({"service_code": "E0104", "lat": 39.9, "long": 116.4003}).encode(),
            headers=JSON,
        )
        assert r.status_code == 201, r.text


async def test_the_public_list_shows_public_cases_rounded_and_xml_always_parses(
    intake: Harness,
) -> None:
    """Open311's GET requests listed every channel's cases with their free text and exact
    point, and a description with control characters broke requests.xml for everyone."""
    op = intake.headers("op-01", "operator")
    text = "路灯\x01不亮\x0b，\x1f门口\ufffe有坑"  # C0 characters and a non-character
    async with intake.client() as http:
        r = await http.post(
            f"{OPEN311}/requests.json",
            data={"api_key": KEY, "service_code": "E0104", "lat": "39.90004", "long": "116.40034"},
        )
        assert r.status_code == 201, r.text
        web = r.json()[0]["service_request_id"]
        hotline_point = {"lat": 39.8955, "lon": 116.4073}
        r = await http.post("/reports", json=body(location=hotline_point), headers=op)
        assert r.status_code == 201, r.text
        hotline = r.json()["case_id"]
        # whatever the channels let through, the XML must parse: stored as it might have come
        await intake.value("UPDATE cases SET description = $2 WHERE case_id = $1", hotline, text)

        async def listed() -> list[str]:
            r = await http.get(f"{OPEN311}/requests.json")
            return [x["service_request_id"] for x in r.json()]

        # The web report is public; the hotline call stays internal, by id too.
        assert await listed() == [web]
        assert (await http.get(f"{OPEN311}/requests/{hotline}.json")).status_code == 404
        got = (await http.get(f"{OPEN311}/requests/{web}.json")).json()[0]
        assert (got["lat"], got["long"]) == (39.9, 116.4)

        # Who may decide: the acceptance desk (and admins), not a supervisor.
        r = await http.post(
            f"/cases/{hotline}/public",
            json={"public": True},
            headers=intake.headers("sup-001", "supervisor"),
        )
        assert r.status_code == 403
        r = await http.post(
            f"/cases/{hotline}/public",
            json={"public": True, "note": "施工告示", "command_id": "pub-1"},
            headers=op,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"case_id": hotline, "public": True, "listed": True}
        assert sorted(await listed()) == sorted([web, hotline])
        xml = (await http.get(f"{OPEN311}/requests.xml")).content
        root = ET.fromstring(xml)  # well-formed whatever the description holds
        descriptions = {r.findtext("service_request_id"): r.findtext("description") for r in root}
        assert descriptions[hotline] == "路灯不亮，门口有坑"
        one = ET.fromstring((await http.get(f"{OPEN311}/requests/{hotline}.xml")).content)
        assert one.findtext("request/lat") == str(round(hotline_point["lat"], 3))
        assert one.findtext("request/long") == str(round(hotline_point["lon"], 3))
        # JSON carries the text as stored (escaped)
        listed_json = (await http.get(f"{OPEN311}/requests.json")).json()
        assert {x["service_request_id"]: x["description"] for x in listed_json}[hotline] == text

        # A public report that shows what it should not is taken off the list.
        r = await http.post(f"/cases/{web}/public", json={"public": False}, headers=op)
        assert r.status_code == 200 and r.json()["listed"] is False
        assert await listed() == [hotline]
        case = (await http.get(f"/cases/{web}", headers=op)).json()
        assert case["public"] is False and case["listed_publicly"] is False
        assert case["timeline"][-1]["type"] == "intake.publicity"
        assert case["timeline"][-1]["actor"]["id"] == "op-01"

    trail = await intake.fetch(
        "SELECT command, outcome, user_id, case_id FROM audit_log "
        "WHERE command = 'public' ORDER BY id"
    )
    assert [(t["outcome"], t["user_id"], t["case_id"]) for t in trail] == [
        ("accepted", "op-01", hotline),
        ("accepted", "op-01", web),
    ]


async def test_open311_forms_with_nul_are_refused_naming_the_field(intake: Harness) -> None:
    """PostgreSQL text cannot hold NUL: a form field with one is refused, not a 500."""
    async with intake.client() as http:
        r = await http.post(
            f"{OPEN311}/requests.xml",
            data={
                "api_key": KEY,
                "service_code": "E0104",
                "lat": "39.9",
                "long": "116.4003",
                "description": "bell\x07 and\x00escape",
            },
        )
        assert r.status_code == 400
        assert ET.fromstring(r.content).findtext("error/description") == (
            "description: must not contain NUL characters"
        )


async def test_a_blank_open311_description_is_no_description(intake: Harness) -> None:
    """Open311's description is optional: given blank, the request is described by its
    category, as when it is not given at all."""
    async with intake.client() as http:
        r = await http.post(
            f"{OPEN311}/requests.json",
            data={
                "api_key": KEY,
                "service_code": "E0104",
                "lat": "39.9",
                "long": "116.4003",
                "description": " \u3000 ",
            },
        )
        assert r.status_code == 201, r.text
        case_id = r.json()[0]["service_request_id"]
        got = (await http.get(f"{OPEN311}/requests/{case_id}.json")).json()[0]
        assert got["description"] == "暴露垃圾"


def test_the_xml_of_any_stored_text_parses() -> None:
    """Item 8: C0 characters were written raw into requests.xml, which then parsed for nobody.
    XML 1.0 cannot carry them even as references: they are dropped, the rest kept."""
    stored = "".join(chr(c) for c in range(32)) + "路灯\ud800\ufffe\uffff\U0001f600 & <b>"
    doc = spec.to_xml("service_requests", [{"description": stored, "status_notes": "\x1b[31m"}])
    request = ET.fromstring(doc).find("request")
    assert request is not None
    # tab, newline and carriage return stay (XML reads a carriage return back as a newline)
    assert request.findtext("description") == "\t\n\n路灯\U0001f600 & <b>"
    assert request.findtext("status_notes") == "[31m"
    errors = spec.to_xml("errors", spec.errors_body([spec.Open311Error(400, "bad\x07 value")]))
    assert ET.fromstring(errors).findtext("error/description") == "bad value"
