"""Open311 completeness against the real PostgreSQL and S3 store: every service definition
served in JSON and XML, `attribute[code]` answers checked against it and kept with the
report, a photo uploaded with the request (multipart `media`) stored with the field
workflow's checks, the reporter's contact kept, and `jurisdiction_id` checked."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import nats
from gridloop_city import load_city
from gridloop_devkit.devstack import LocalObjectStore
from gridloop_devkit.testing import photo_bytes, running, settings_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.settings import IntakeSettings
from gridloop_runtime.clock import FakeClock

from .conftest import DEMO_CITY, T0, Harness

KEY = "demo-open311-key"
BASE = "/open311/v2"
POINT = {"lat": "39.9000", "long": "116.4003"}


def form(**fields: str) -> dict[str, str]:
    return {"api_key": KEY, **POINT, **fields}


async def test_every_service_definition_is_served_and_parses_in_json_and_xml(
    intake: Harness,
) -> None:
    key = {"api_key": KEY}  # an integrator's own rate limit: two reads per category in a row
    async with intake.client() as http:
        services = (await http.get(f"{BASE}/services.json", params=key)).json()
        assert sorted(s["service_code"] for s in services) == sorted(
            load_city(DEMO_CITY).categories
        )
        for s in services:
            code = s["service_code"]
            d = (await http.get(f"{BASE}/services/{code}.json", params=key)).json()
            assert d["service_code"] == code
            attrs = d["attributes"]
            assert attrs[0]["code"] == "urgency" and all(a["variable"] is True for a in attrs)
            xml = ET.fromstring((await http.get(f"{BASE}/services/{code}.xml", params=key)).content)
            assert xml.findtext("service_code") == code
            assert [a.findtext("code") for a in xml.findall("attributes/attribute")] == [
                a["code"] for a in attrs
            ]
        lamp = (await http.get(f"{BASE}/services/P0107.json")).json()["attributes"]
        assert [a["code"] for a in lamp] == ["urgency", "part_code", "fault"]
        r = await http.get(f"{BASE}/services/P0107.json", params={"jurisdiction_id": "310101"})
        assert r.status_code == 404 and "jurisdiction_id" in r.json()[0]["description"]


async def test_attribute_answers_are_checked_and_kept_with_the_report(intake: Harness) -> None:
    async with intake.client() as http:
        for fmt in ("json", "xml"):
            bad = await http.post(
                f"{BASE}/requests.{fmt}",
                data=form(service_code="P0107", description="路灯", **{"attribute[fault]": "x"}),
            )
            assert bad.status_code == 400
            text = (
                bad.json()[0]["description"]
                if fmt == "json"
                else ET.fromstring(bad.content).findtext("error/description")
            )
            assert text is not None and text.startswith("attribute[fault]:")
        unknown = await http.post(
            f"{BASE}/requests.json",
            data=form(service_code="E0104", **{"attribute[colour]": "red"}),
        )
        assert unknown.status_code == 400
        assert unknown.json()[0]["description"].startswith("attribute[colour]:")

        r = await http.post(
            f"{BASE}/requests.json",
            data={
                **form(service_code="E0301", description="工地夜间施工噪音"),
                "attribute[hours][]": ["night", "noon"],
                "attribute[urgency]": "urgent",
            },
        )
        assert r.status_code == 201, r.text
        token = r.json()[0]["token"]
        operator = intake.headers("op-01", "operator")
        kept = (await http.get(f"/reports/{token}", headers=operator)).json()
        assert kept["attributes"] == {"hours": ["night", "noon"]}
    data = await intake.value("SELECT data FROM reports WHERE report_id = $1", token)
    assert data["urgency"] == "urgent"


async def test_a_photo_uploaded_with_the_request_becomes_the_cases_evidence(
    intake: Harness,
) -> None:
    jpeg = photo_bytes(39.90003, 116.4003)
    async with intake.client() as http:
        r = await http.post(
            f"{BASE}/requests.json",
            data=form(
                service_code="E0104", description="楼下暴露垃圾", **{"attribute[volume]": "pile"}
            ),
            files={"media": ("IMG_0001.jpg", jpeg, "image/jpeg")},
        )
        assert r.status_code == 201, r.text
        case_id = r.json()[0]["service_request_id"]
        operator = intake.headers("op-01", "operator")
        case = (await http.get(f"/cases/{case_id}", headers=operator)).json()
        [ref] = case["files"]
        assert ref["sha256"] == hashlib.sha256(jpeg).hexdigest() and ref["far"] is False
        got = await http.get(f"/attachments/{ref['attachment_id']}", headers=operator)
        assert got.status_code == 200 and got.content == jpeg
        thumb = await http.get(f"/attachments/{ref['attachment_id']}/thumbnail", headers=operator)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        row = await intake.fetch(
            "SELECT uploaded_by, case_id FROM attachments WHERE attachment_id = $1",
            ref["attachment_id"],
        )
        assert (row[0]["uploaded_by"], row[0]["case_id"]) == ("open311:web", case_id)

        # the same checks as the field workflow's uploads, answered in Open311's shape
        cases_before = await intake.value("SELECT count(*) FROM cases")
        stored_before = await intake.value("SELECT count(*) FROM attachments")
        for name, blob, status in [
            ("notes.txt", b"just some text, not a photo", 415),
            ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 200, 415),  # a JPEG that won't decode
            ("huge.jpg", b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024 + 1), 413),
        ]:
            bad = await http.post(
                f"{BASE}/requests.xml",
                data=form(service_code="E0104", description="暴露垃圾"),
                files={"media": (name, blob, "image/jpeg")},
            )
            assert bad.status_code == status, (name, bad.text)
            assert ET.fromstring(bad.content).findtext("error/description", "").startswith("media:")
        # as big, streamed without a length: refused as soon as it is too big, the same way
        boundary = "gridloop-test-boundary"
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in form(service_code="E0104").items()
        ) + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="media"; '
            'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        )

        async def streamed() -> Any:
            yield head.encode()
            for _ in range(11):
                yield b"\x00" * (1024 * 1024)
            yield f"\r\n--{boundary}--\r\n".encode()

        big = await http.post(
            f"{BASE}/requests.json",
            content=streamed(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert big.status_code == 413 and big.json()[0]["description"].startswith("media:")
        two = await http.post(
            f"{BASE}/requests.json",
            data=form(service_code="E0104"),
            files=[
                ("media", ("a.jpg", jpeg, "image/jpeg")),
                ("media", ("b.jpg", jpeg, "image/jpeg")),
            ],
        )
        assert two.status_code == 400
        other = await http.post(
            f"{BASE}/requests.json",
            data=form(service_code="E0104"),
            files={"photo": ("a.jpg", jpeg, "image/jpeg")},
        )
        assert other.status_code == 400 and other.json()[0]["description"].startswith("photo:")
        # nothing was kept of a refused request: no case, no stored file
        assert await intake.value("SELECT count(*) FROM cases") == cases_before
        assert await intake.value("SELECT count(*) FROM attachments") == stored_before


async def test_the_reporters_contact_is_kept_and_only_masked_outside_intake(
    intake: Harness,
) -> None:
    async with intake.client() as http:
        r = await http.post(
            f"{BASE}/requests.json",
            data=form(
                service_code="E0201",
                description="电线杆上贴满小广告",
                first_name="小明",
                last_name="王",
                phone="13912345678",
                email="wang@example.org",
                jurisdiction_id="110101",
            ),
        )
        assert r.status_code == 201, r.text
        case_id = r.json()[0]["service_request_id"]
        operator = intake.headers("op-01", "operator")
        [who] = (await http.get(f"/cases/{case_id}/reporters", headers=operator)).json()
        assert (who["name"], who["phone"], who["email"]) == (
            "王小明",
            "13912345678",
            "wang@example.org",
        )
        case = (await http.get(f"/cases/{case_id}", headers=operator)).json()
        assert case["reporter"]["name"] == "王**" and case["reporter"]["phone"] == "139****5678"
        subscribers = await intake.value(
            "SELECT subscribers FROM cases WHERE case_id = $1", case_id
        )
        assert len(subscribers) == 1  # the e-mail gets the case's mails (test_intake_mail)

        elsewhere = await http.post(
            f"{BASE}/requests.json",
            data=form(service_code="E0201", jurisdiction_id="310101"),
        )
        assert elsewhere.status_code == 404
        assert elsewhere.json()[0]["description"].startswith("jurisdiction_id:")
        many: dict[str, Any] = form(service_code="E0201", email="not-an-address")
        assert (await http.post(f"{BASE}/requests.json", data=many)).status_code == 400


async def test_with_the_store_down_a_request_with_a_photo_is_503_and_leaves_nothing(
    database_url: str, nats_url: str, work_dir: Path
) -> None:
    store = LocalObjectStore(work_dir / "s3-open311-down", buckets=("evidence-o311",)).start()
    settings = settings_for(
        "intake",
        database_url,
        nats_url,
        IntakeSettings,
        city_data_dir=str(DEMO_CITY),
        s3_timeout_s=2,
        **store.settings(),
    )
    assert isinstance(settings, IntakeSettings)
    definition_, state = definition(settings)
    nc = await nats.connect(nats_url)
    try:
        async with running(settings, definition_, clock=FakeClock(T0), state=state) as rt:
            h = Harness(rt, FakeClock(T0), nc.jetstream())
            async with h.client() as http:
                store.stop(kill=True)
                r = await http.post(
                    f"{BASE}/requests.json",
                    data=form(service_code="E0104", description="暴露垃圾"),
                    files={"media": ("a.jpg", photo_bytes(), "image/jpeg")},
                )
                assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
                assert r.json()[0]["description"].startswith("media:")
                assert await h.value("SELECT count(*) FROM cases") == 0
                # without the photo it goes through at once
                r = await http.post(
                    f"{BASE}/requests.json",
                    data=form(service_code="E0104", description="暴露垃圾"),
                )
                assert r.status_code == 201
    finally:
        await nc.close()
        store.stop(kill=True)
