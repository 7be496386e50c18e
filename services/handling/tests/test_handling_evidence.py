"""A result's after photos (against a real S3 store): uploaded by the department, named by id
in the result, carried by case.handled as references; read by who may read the case."""

from __future__ import annotations

import hashlib

from gridloop_contracts import cases as ev
from gridloop_devkit.testing import photo_bytes

from .conftest import Harness


async def test_a_result_carries_the_departments_after_photo_by_reference(
    handling_s3: Harness,
) -> None:
    h = handling_s3
    assert h.http is not None
    await h.new_case("C-PHOTO")
    assert (await h.rest("sign", "sanitation", "C-PHOTO")).status_code == 200
    jpeg = photo_bytes(39.9, 116.4003, color=(40, 160, 60))
    files = {"file": ("after.jpg", jpeg, "image/jpeg")}
    up = await h.http.post("/attachments", headers={"X-User": "sanitation-ops"}, files=files)
    assert up.status_code == 201, up.text
    aid = up.json()["attachment_id"]

    # someone else's upload, or an id that does not exist: 422 naming the field
    other = await h.http.post("/attachments", headers={"X-User": "water-ops"}, files=files)
    assert other.status_code == 201
    for ids in ([other.json()["attachment_id"]], ["a" + "0" * 24]):
        r = await h.rest("result", "sanitation", "C-PHOTO", result="已清运", attachment_ids=ids)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "attachment_ids.0"

    # the photo is the result's evidence: no link needed
    r = await h.rest("result", "sanitation", "C-PHOTO", result="已清运", attachment_ids=[aid])
    assert r.status_code == 200, r.text
    [handled] = await h.wait(ev.CaseHandled, case_id="C-PHOTO")
    [ref] = handled.data["files"]
    assert ref["attachment_id"] == aid and ref["sha256"] == hashlib.sha256(jpeg).hexdigest()
    assert ref["content_type"] == "image/jpeg" and handled.data["evidence"] == []

    for user, status in (("sanitation-ops", 200), ("disp-01", 200), ("water-ops", 404)):
        got = await h.http.get(f"/attachments/{aid}", headers={"X-User": user})
        assert got.status_code == status, (user, got.text)
    # department staff see the copy without EXIF, the command centre the original
    shown = await h.http.get(f"/attachments/{aid}", headers={"X-User": "sanitation-ops"})
    assert b"Exif" not in shown.content
    original = await h.http.get(f"/attachments/{aid}", headers={"X-User": "disp-01"})
    assert original.content == jpeg
