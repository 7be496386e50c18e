"""A report's photos (against a real S3 store, `weed server -s3`): uploaded, named by id in
the report, carried by the events as references, read back through the case file by whoever
may read the case; a photo taken far away is flagged; a report sent while the store is down
gets its photo later."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import nats
from gridloop_contracts import CaseAcceptedV2, CaseEvidenceAdded
from gridloop_devkit.devstack import LocalObjectStore
from gridloop_devkit.testing import photo_bytes, running, settings_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.settings import IntakeSettings
from gridloop_runtime.clock import FakeClock

from .conftest import DEMO_CITY, T0, Harness

# cell 1101010010010030 (sub-district 110101001)
HERE = {"lat": 39.9000, "lon": 116.4003}


def photo(data: bytes) -> dict[str, Any]:
    return {"files": {"file": ("IMG_0001.jpg", data, "image/jpeg")}}


def report(n: int, **more: Any) -> dict[str, Any]:
    return {
        "external_id": f"handheld-{n}",
        "description": "井盖缺失",
        "location": HERE,
        "category_code": "P0101",
        **more,
    }


async def test_a_patrol_report_carries_its_photo_by_reference_to_whoever_reads_the_case(
    intake: Harness,
) -> None:
    sup = intake.headers("sup-001", "supervisor", territory=("110101001",))
    cases = await intake.tap("CASES", "case.>")
    jpeg = photo_bytes(39.90005, 116.4003)  # taken where the problem is
    async with intake.client() as http:
        up = await http.post("/attachments", headers=sup, **photo(jpeg))
        assert up.status_code == 201, up.text
        aid = up.json()["attachment_id"]
        r = await http.post("/reports", json=report(1, attachment_ids=[aid]), headers=sup)
        assert r.status_code == 201, r.text
        case_id = r.json()["case_id"]

        # a trusted supervisor's report is accepted as it came in: its 上报 in the acceptance
        [accepted] = await cases.wait(CaseAcceptedV2, case_id=case_id)
        reported = accepted.data["report"]
        [ref] = reported["files"]
        assert accepted.data["files"] == [ref]
        assert ref["attachment_id"] == aid and ref["sha256"] == hashlib.sha256(jpeg).hexdigest()
        assert ref["content_type"] == "image/jpeg" and ref["size"] == len(jpeg)
        assert ref["far"] is False and ref["distance_m"] < 10
        assert "lat" not in str(ref) and len(str(reported)) < 4000  # no bytes, no position

        case = (await http.get(f"/cases/{case_id}", headers=sup)).json()
        assert [f["attachment_id"] for f in case["files"]] == [aid]

        # the command centre reads the original; a supervisor of the cell the clean copy
        operator = intake.headers("op-01", "operator")
        got = await http.get(f"/attachments/{aid}", headers=operator)
        assert got.status_code == 200 and got.content == jpeg
        other = intake.headers("sup-002", "supervisor", territory=("110101001",))
        got = await http.get(f"/attachments/{aid}", headers=other)
        assert got.status_code == 200 and b"Exif" not in got.content
        thumb = await http.get(f"/attachments/{aid}/thumbnail", headers=other)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        # another territory, or a department that does not hold the case: as unknown
        for stranger in (
            intake.headers("sup-090", "supervisor", territory=("110101002",)),
            intake.headers("water-ops", "department", dept="water"),
        ):
            r = await http.get(f"/attachments/{aid}", headers=stranger)
            assert r.status_code == 404 and r.json()["detail"][0]["field"] == "attachment_id"


async def test_unknown_or_someone_elses_attachment_is_refused_naming_the_field(
    intake: Harness,
) -> None:
    sup1 = intake.headers("sup-001", "supervisor")
    sup2 = intake.headers("sup-002", "supervisor")
    async with intake.client() as http:
        aid = (await http.post("/attachments", headers=sup1, **photo(photo_bytes()))).json()[
            "attachment_id"
        ]
        for who, ids, field in (
            (sup1, ["a" + "f" * 24], "attachment_ids.0"),
            (sup2, [aid], "attachment_ids.0"),
            (sup1, ["not-an-id"], "attachment_ids.0"),
        ):
            r = await http.post("/reports", json=report(2, attachment_ids=ids), headers=who)
            assert r.status_code == 422, r.text
            assert r.json()["detail"][0]["field"] == field
        assert await intake.value("SELECT count(*) FROM cases") == 0
        # used once, it cannot become the evidence of another case
        r = await http.post("/reports", json=report(3, attachment_ids=[aid]), headers=sup1)
        assert r.status_code == 201
        away = report(4, attachment_ids=[aid], location={"lat": 39.905, "lon": 116.41})
        r = await http.post("/reports", json=away, headers=sup1)
        assert r.status_code == 422 and r.json()["detail"][0]["code"] == "attachment-in-use"


async def test_a_photo_taken_far_from_the_reported_point_is_flagged(intake: Harness) -> None:
    sup = intake.headers("sup-001", "supervisor")
    async with intake.client() as http:
        far = photo_bytes(39.91, 116.4003)  # 1.1 km north
        aid = (await http.post("/attachments", headers=sup, **photo(far))).json()["attachment_id"]
        r = await http.post("/reports", json=report(5, attachment_ids=[aid]), headers=sup)
        case = (
            await http.get(
                f"/cases/{r.json()['case_id']}", headers=intake.headers("op-01", "operator")
            )
        ).json()
        [f] = case["files"]
        assert f["far"] is True and 1000 < f["distance_m"] < 1200
        meta = await http.get(
            f"/attachments/{aid}/meta", headers=intake.headers("op-01", "operator")
        )
        assert meta.json()["location"]["lat"] == 39.91  # the command centre sees where


async def test_with_the_store_down_the_report_goes_without_its_photo_which_follows_later(
    database_url: str, nats_url: str, work_dir: Path
) -> None:
    store = LocalObjectStore(work_dir / "s3-intake-down", buckets=("evidence-later",)).start()
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
            cases = await h.tap("CASES", "case.>")
            sup = h.headers("sup-001", "supervisor")
            async with h.client() as http:
                store.stop(kill=True)
                r = await http.post("/attachments", headers=sup, **photo(photo_bytes()))
                assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
                # the report does not wait for the store
                sent = await http.post("/reports", json=report(6), headers=sup)
                assert sent.status_code == 201
                report_id, case_id = sent.json()["report_id"], sent.json()["case_id"]
                store.start()
                up = await http.post("/attachments", headers=sup, **photo(photo_bytes()))
                assert up.status_code == 201, up.text
                aid = up.json()["attachment_id"]
                later = {"attachment_ids": [aid], "command_id": "add-1"}
                r = await http.post(f"/reports/{report_id}/attachments", json=later, headers=sup)
                assert r.status_code == 200, r.text
                again = await http.post(
                    f"/reports/{report_id}/attachments", json=later, headers=sup
                )
                assert again.json() == r.json()  # resend-safe
                other = h.headers("sup-002", "supervisor")
                r = await http.post(f"/reports/{report_id}/attachments", json=later, headers=other)
                assert r.status_code == 403
                [added] = await cases.wait(CaseEvidenceAdded, case_id=case_id)
                assert added.data["report_id"] == report_id
                assert [f["attachment_id"] for f in added.data["files"]] == [aid]
                case = (await http.get(f"/cases/{case_id}", headers=sup)).json()
                assert [f["attachment_id"] for f in case["files"]] == [aid]
                assert any(t["type"] == CaseEvidenceAdded.type_name for t in case["timeline"])
                assert len(cases.of(CaseEvidenceAdded, case_id=case_id)) == 1
    finally:
        await nc.close()
        store.stop(kill=True)
