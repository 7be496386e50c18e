"""A verification's site photos (against a real S3 store): uploaded by the supervisor, named
by id in the verdict, carried by case.verified as references; the photo counts as the
photo a pass needs; read by who may read the case's verification record."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gridloop_contracts import cases as ev
from gridloop_devkit.testing import photo_bytes

from .test_verify_bus import DEPT_USER, LEAD, OTHER_SUP, SUP, Harness, started


@pytest.fixture
async def verify_s3(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, s3_settings: dict[str, str]
) -> AsyncIterator[Harness]:
    async with started(database_url, nats_url, monkeypatch, **s3_settings) as h:
        yield h


async def test_a_pass_with_an_uploaded_photo_closes_and_carries_it_by_reference(
    verify_s3: Harness,
) -> None:
    h = verify_s3
    await h.handled("C-SITE")
    task_id = await h.task_of("C-SITE", user=SUP)
    stood = {"lat": 39.9000, "lon": 116.4003}
    files = {"file": ("site.jpg", photo_bytes(39.9001, 116.4003), "image/jpeg")}
    http = h._http
    assert http is not None
    up = await http.post("/attachments", headers={"X-User": SUP}, files=files)
    assert up.status_code == 201, up.text
    aid = up.json()["attachment_id"]
    other = (await http.post("/attachments", headers={"X-User": OTHER_SUP}, files=files)).json()
    other_id = other["attachment_id"]

    r = await h.verdict(task_id, True, photos=[], attachment_ids=[other_id], position=stood)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "attachment_ids.0"
    r = await h.verdict(task_id, True, photos=[], attachment_ids=[aid], position=stood)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "closed"
    [verified] = await h.verdicts(case_id="C-SITE")
    [ref] = verified["files"]
    assert ref["attachment_id"] == aid and ref["far"] is False and verified["photos"] == []

    for user, status in ((SUP, 200), (LEAD, 200), (OTHER_SUP, 404), (DEPT_USER, 404)):
        got = await h.call("GET", f"/attachments/{aid}", user)
        assert got.status_code == status, (user, got.text)


async def test_a_confirmation_carries_its_site_photo_by_reference(verify_s3: Harness) -> None:
    h = verify_s3
    await h.upstream(
        ev.CaseConfirmationRequested(
            **h.dims("C-SEEN", "E0101"),
            occurred_at=h.clock.now(),
            reason="热线上报，需现场核实",
            description="小区门口私搭乱建",
        ),
        "intake",
    )
    task_id = await h.task_of("C-SEEN", user=SUP, purpose="confirmation")
    http = h._http
    assert http is not None
    files = {"file": ("seen.jpg", photo_bytes(), "image/jpeg")}
    aid = (await http.post("/attachments", headers={"X-User": SUP}, files=files)).json()[
        "attachment_id"
    ]
    body = {"confirmed": True, "attachment_ids": [aid], "notes": "现场属实"}
    r = await h.call("POST", f"/tasks/{task_id}/confirmation", SUP, json=body)
    assert r.status_code == 200, r.text
    [seen] = await h.wait(ev.CaseConfirmed, case_id="C-SEEN")
    assert [f["attachment_id"] for f in seen.data["files"]] == [aid]
