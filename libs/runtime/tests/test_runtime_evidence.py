"""Evidence uploads (gridloop_runtime.evidence) against a real S3 store (`weed server -s3`):
the type from the bytes, the size cap, EXIF kept and stripped, thumbnails, ids claimed only
by their uploader, reads only by whoever may read the case, the store down answered 503."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from gridloop_contracts.problems import Refusal
from gridloop_devkit.devstack import LocalObjectStore
from gridloop_devkit.testing import http_client, photo_bytes, running, settings_for
from gridloop_runtime import evidence as ev
from gridloop_runtime.auth import Principal, lookup_from
from gridloop_runtime.evidence import Evidence
from gridloop_runtime.objectstore import ObjectStore, StoreUnavailable
from gridloop_runtime.service import Runtime, ServiceDefinition
from gridloop_runtime.settings import EvidenceSettings
from PIL import Image

MIGRATIONS = Path(__file__).parent / "sql"
CELL = "1101010010010001"
ELSEWHERE = "1101010020010001"
# case id -> its cell: the "service's own rule" here is the territory rule on that cell
CASES = {"C-1": CELL}
USERS: dict[str, Any] = {
    "sup-1": SimpleNamespace(name="", roles=("supervisor",), dept=None, territory=(CELL,)),
    "sup-2": SimpleNamespace(name="", roles=("supervisor",), dept=None, territory=(CELL,)),
    "sup-far": SimpleNamespace(name="", roles=("supervisor",), dept=None, territory=(ELSEWHERE,)),
    "op": SimpleNamespace(name="", roles=("operator",), dept=None, territory=("*",)),
}


def as_user(user: str) -> dict[str, str]:
    return {"X-User": user}


async def may_read_case(rt: Runtime, who: Principal, case_id: str) -> bool:
    cell = CASES.get(case_id)
    return cell is not None and who.covers(cell) and who.has("supervisor", "operator")


def evidence(s3: dict[str, str], **extra: Any) -> Evidence:
    settings = EvidenceSettings.model_validate({**s3, **{k.upper(): v for k, v in extra.items()}})
    return Evidence(settings, frozenset({"supervisor"}), may_read_case)


@asynccontextmanager
async def service(
    database_url: str, nats_url: str, s3: dict[str, str], **extra: Any
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    definition = ServiceDefinition(
        name="echo",
        migrations_dir=MIGRATIONS,
        users=lookup_from(USERS),
        evidence=evidence(s3, **extra),
    )
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition) as rt, http_client(rt) as client:
        yield rt, client


def upload(data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg") -> dict[str, Any]:
    return {"files": {"file": (name, data, ctype)}}


@pytest.fixture(autouse=True)
def dev_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")


async def test_a_photo_is_stored_with_its_exif_a_clean_copy_and_a_thumbnail(
    database_url: str, nats_url: str, s3_settings: dict[str, str]
) -> None:
    jpeg = photo_bytes(39.9, 116.4003, size=(1600, 1200))
    async with service(database_url, nats_url, s3_settings) as (_, client):
        r = await client.post("/attachments", headers=as_user("sup-1"), **upload(jpeg))
        assert r.status_code == 201, r.text
        up = r.json()
        assert up["sha256"] == hashlib.sha256(jpeg).hexdigest()
        assert (up["content_type"], up["kind"], up["size"]) == ("image/jpeg", "photo", len(jpeg))
        assert up["attachment_id"].startswith("a") and up["thumbnail"] is True
        assert up["location"] == pytest.approx({"lat": 39.9, "lon": 116.4003}, abs=1e-4)
        assert up["taken_at"].startswith("2026-11-23T09:30:00+08:00")

        # the uploader (a supervisor: outside the command centre) reads the copy without EXIF
        shown = await client.get(f"/attachments/{up['attachment_id']}", headers=as_user("sup-1"))
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(shown.content))
        assert img.size == (1600, 1200) and not img.getexif()
        assert b"Exif" not in shown.content

        thumb = await client.get(
            f"/attachments/{up['attachment_id']}/thumbnail", headers=as_user("sup-1")
        )
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.content)).size) == 320


async def test_the_type_is_decided_from_the_bytes_and_the_size_is_capped(
    database_url: str, nats_url: str, s3_settings: dict[str, str]
) -> None:
    async with service(database_url, nats_url, s3_settings, attachment_max_bytes=200_000) as (
        _,
        client,
    ):
        sup = as_user("sup-1")
        gif = io.BytesIO()
        Image.new("RGB", (8, 8)).save(gif, "GIF")
        for data in (b"%PDF-1.7 not a photo", gif.getvalue(), b"just text, named .jpg"):
            r = await client.post("/attachments", headers=sup, **upload(data))
            assert r.status_code == 415, r.text
            assert r.json()["detail"][0]["field"] == "file"
        # a JPEG's first bytes and nothing of an image after them
        r = await client.post("/attachments", headers=sup, **upload(b"\xff\xd8\xff" + b"0" * 99))
        assert r.status_code == 415
        # the header says PNG, the bytes are a JPEG: the bytes decide
        r = await client.post(
            "/attachments", headers=sup, **upload(photo_bytes(), "x.png", "image/png")
        )
        assert r.status_code == 201 and r.json()["content_type"] == "image/jpeg"
        for fmt, ctype in (("PNG", "image/png"), ("WEBP", "image/webp"), ("HEIF", "image/heic")):
            r = await client.post(
                "/attachments", headers=sup, **upload(photo_bytes(fmt=fmt, size=(64, 48)))
            )
            assert r.status_code == 201 and r.json()["content_type"] == ctype, (fmt, r.text)
        big = photo_bytes(size=(1200, 1200)) + b"\0" * 250_000
        r = await client.post("/attachments", headers=sup, **upload(big))
        assert r.status_code == 413 and r.json()["detail"][0]["field"] == "file"
        r = await client.post("/attachments", headers=sup, data={"note": "no file"})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "file"
        # only the roles that bring evidence here upload
        r = await client.post("/attachments", headers=as_user("op"), **upload(photo_bytes()))
        assert r.status_code == 403


async def test_a_voice_note_is_taken_without_a_thumbnail(
    database_url: str, nats_url: str, s3_settings: dict[str, str]
) -> None:
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    async with service(database_url, nats_url, s3_settings) as (_, client):
        r = await client.post(
            "/attachments", headers=as_user("sup-1"), **upload(out.getvalue(), "v.wav", "x/y")
        )
        assert r.status_code == 201 and r.json()["content_type"] == "audio/wav"
        assert r.json()["kind"] == "audio" and r.json()["thumbnail"] is False
        aid = r.json()["attachment_id"]
        got = await client.get(f"/attachments/{aid}", headers=as_user("sup-1"))
        assert got.content == out.getvalue()
        r = await client.get(f"/attachments/{aid}/thumbnail", headers=as_user("sup-1"))
        assert r.status_code == 404


async def test_ids_are_claimed_by_their_uploader_only_and_read_by_who_may_read_the_case(
    database_url: str, nats_url: str, s3_settings: dict[str, str]
) -> None:
    jpeg = photo_bytes(39.9, 116.4003)
    async with service(database_url, nats_url, s3_settings) as (rt, client):
        up = (await client.post("/attachments", headers=as_user("sup-1"), **upload(jpeg))).json()
        aid = up["attachment_id"]
        settings = rt.definition.evidence.settings  # type: ignore[union-attr]
        sup1 = Principal("sup-1", frozenset({"supervisor"}), territory=(CELL,))
        sup2 = Principal("sup-2", frozenset({"supervisor"}), territory=(CELL,))
        # before it is evidence of a case, only its uploader reads it
        r = await client.get(f"/attachments/{aid}", headers=as_user("sup-2"))
        assert r.status_code == 404
        assert r.json()["detail"][0]["field"] == "attachment_id"
        assert rt.pool is not None
        async with rt.pool.acquire() as conn, conn.transaction():
            for who, ids in ((sup2, [aid]), (sup1, ["a" + "0" * 24]), (sup1, [aid, aid])):
                with pytest.raises(Refusal) as refused:
                    await ev.claim(conn, ids, who, settings)
                assert refused.value.status == 422
                assert refused.value.field == f"attachment_ids.{len(ids) - 1}"
            # 1.1 km from the case's point: flagged
            [ref] = await ev.claim(conn, [aid], sup1, settings, near=(39.91, 116.4003))
            assert ref.sha256 == up["sha256"] and ref.content_type == "image/jpeg"
            assert ref.far is True and ref.distance_m == pytest.approx(1112, abs=2)
            await ev.bind(conn, [ref], "C-1", datetime.now(UTC))
            with pytest.raises(Refusal) as refused:
                await ev.bind(conn, [ref], "C-2", datetime.now(UTC))
            assert refused.value.code == "attachment-in-use"
        # now whoever may read case C-1 reads it; the command centre gets the original
        for user, status in (("sup-2", 200), ("sup-far", 404), ("op", 200)):
            r = await client.get(f"/attachments/{aid}", headers=as_user(user))
            assert r.status_code == status, (user, r.text)
        original = await client.get(f"/attachments/{aid}", headers=as_user("op"))
        assert original.content == jpeg
        shown = await client.get(f"/attachments/{aid}", headers=as_user("sup-2"))
        assert b"Exif" not in shown.content
        meta = (await client.get(f"/attachments/{aid}/meta", headers=as_user("op"))).json()
        assert meta["case_id"] == "C-1" and meta["far"] is True and meta["location"]
        meta = (await client.get(f"/attachments/{aid}/meta", headers=as_user("sup-2"))).json()
        assert "location" not in meta and meta["far"] is True
        r = await client.get("/attachments/not-an-id", headers=as_user("op"))
        assert r.status_code == 422


async def test_redirect_mode_answers_a_short_lived_presigned_url(
    database_url: str, nats_url: str, s3_settings: dict[str, str]
) -> None:
    jpeg = photo_bytes()
    async with service(database_url, nats_url, s3_settings, attachment_download="redirect") as (
        _,
        client,
    ):
        up = (await client.post("/attachments", headers=as_user("sup-1"), **upload(jpeg))).json()
        r = await client.get(f"/attachments/{up['attachment_id']}", headers=as_user("sup-1"))
        assert r.status_code == 307
        url = r.headers["location"]
        assert url.startswith(s3_settings["S3_ENDPOINT"]) and "X-Amz-Expires=300" in url
        async with httpx.AsyncClient(timeout=30) as plain:
            got = await plain.get(url)
            assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
            assert b"Exif" not in got.content  # a supervisor's copy
            tampered = url.replace("shown/", "original/")
            assert (await plain.get(tampered)).status_code == 403


async def test_a_store_that_is_down_answers_503_with_retry_after_and_then_takes_it(
    database_url: str, nats_url: str, work_dir: Path
) -> None:
    store = LocalObjectStore(work_dir / "s3-down", buckets=("evidence-down",)).start()
    try:
        async with service(
            database_url, nats_url, store.settings(), s3_timeout_s=2, attachment_retry_after_s=7
        ) as (_, client):
            store.stop(kill=True)
            r = await client.post("/attachments", headers=as_user("sup-1"), **upload(photo_bytes()))
            assert r.status_code == 503 and r.headers["retry-after"] == "7"
            assert r.json()["detail"][0]["code"] == "store-unavailable"
            store.start()
            r = await client.post("/attachments", headers=as_user("sup-1"), **upload(photo_bytes()))
            assert r.status_code == 201, r.text
    finally:
        store.stop(kill=True)


async def test_the_store_client_is_made_at_its_first_use_and_not_after_close() -> None:
    """No S3 client (and none of aiobotocore's memory) before a request needs one; a client
    that cannot be made from the settings is the store unavailable (503), not a crash."""
    store = ObjectStore(EvidenceSettings())
    await store.open()
    assert store._client is None
    client = await store.client()
    assert await store.client() is client
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.client()
    broken = ObjectStore(EvidenceSettings(S3_ENDPOINT="not a url"))
    await broken.open()
    with pytest.raises(StoreUnavailable):
        await broken.put("original/x", b"x", "image/jpeg")
    await broken.close()
