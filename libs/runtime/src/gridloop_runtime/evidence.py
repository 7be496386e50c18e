"""Evidence uploads (photos, voice notes) of the services that take them — intake (reports),
handling (results), verify (verifications): written once here, used by the three.

- `POST /attachments` (multipart/form-data, field `file`): the type decided from the bytes
  (`media.sniff`; anything else 415), at most ATTACHMENT_MAX_BYTES (413), a photo decoded,
  its EXIF time and position kept, a copy without metadata and a thumbnail made, the three
  written to the object store under keys made of the SHA-256 (`original/…`, `shown/…`,
  `thumb/…`), a row in the service's `attachments` table; 201 `{attachment_id, sha256,
  content_type, size, …}`. The store down: 503 with Retry-After, nothing kept.
- A report, result or verification names its attachments by id: `claim` checks each was
  uploaded here by the same caller (else 422 naming the field, `attachment_ids.<i>`) and
  gives the `AttachmentRef`s the events carry (id, sha256, type, size, EXIF time, distance
  from the case's point — never the bytes, never the position); `bind` ties them to the case
  in the same transaction.
- `GET /attachments/{id}` (and `/thumbnail`, `/meta`): to the uploader, and to whoever may
  read the case it belongs to by the service's own rule (`Evidence.may_read_case`; a service
  may also know attachments from other services' events, `Evidence.find_on_cases`); anyone
  else gets 404, as for an id that does not exist. The command centre gets the original; every
  other reader the copy without EXIF. The bytes, or a redirect to a short-lived presigned URL
  (ATTACHMENT_DOWNLOAD=redirect)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, RedirectResponse, Response
from gridloop_contracts import AttachmentRef
from gridloop_contracts.problems import Refusal
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from . import access, db, media
from .auth import CurrentPrincipal, Principal
from .inputs import JSONRoute
from .objectstore import ObjectStore, StoreUnavailable
from .settings import EvidenceSettings

if TYPE_CHECKING:
    from .service import Runtime

log = structlog.get_logger(__name__)

# Who sees the original with its EXIF (where and when the photo was taken); every other
# reader gets the copy without it.
COMMAND_CENTRE = frozenset({"operator", "shift-leader", "dispatcher", "evaluator", "admin"})
MAX_IDS = 20
# multipart framing around the file: a body this much over the limit is refused unread
_FRAMING = 64 * 1024

AttachmentId = Annotated[str, PathParam(pattern=r"^a[0-9a-f]{24}$")]


def migrations() -> list[db.Migration]:
    """The `attachments` table, in the schema of a service that takes uploads."""
    root = resources.files("gridloop_runtime") / "sql_evidence"
    return db.read_migrations("evidence", Path(str(root)))


def new_attachment_id() -> str:
    return "a" + uuid.uuid4().hex[:24]


def keys(sha256: str) -> dict[str, str]:
    """Where the three copies live in the bucket: content-addressed, so the same bytes are
    stored once and any service holding an `AttachmentRef` finds them."""
    return {
        "original": f"original/{sha256}",
        "shown": f"shown/{sha256}",
        "thumbnail": f"thumb/{sha256}.jpg",
    }


# -- what a service plugs in -------------------------------------------------------------------
CaseReader = Callable[["Runtime", Principal, str], Awaitable[bool]]
CaseFinder = Callable[[db.Conn, str], Awaitable[list[tuple[str, AttachmentRef]]]]


@dataclass
class Evidence:
    """A service's evidence: its settings and store, who may upload, and how it judges who
    may read a case (`may_read_case(rt, who, case_id)`, its rule for the case itself).
    `find_on_cases(conn, attachment_id)`: attachments the service knows from events (the case
    file knows every case's), with the cases that carry them."""

    settings: EvidenceSettings
    uploaders: frozenset[str]
    may_read_case: CaseReader
    find_on_cases: CaseFinder | None = None
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    store: ObjectStore | None = None

    async def open(self) -> None:
        self.store = ObjectStore(self.settings)
        await self.store.open()

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()

    def router(self) -> APIRouter:
        return attachment_routes(self)


# -- the rows -----------------------------------------------------------------------------------
_COLUMNS = (
    "attachment_id, sha256, content_type, kind, size, shown_type, thumbnail, width, height, "
    "uploaded_by, uploaded_at, taken_at, lat, lon, case_id, used_at, distance_m"
)


async def _row(conn: db.Conn, attachment_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM attachments WHERE attachment_id = $1", attachment_id
    )
    return row


def _ref(row: Any, distance: float | None, far_m: float) -> AttachmentRef:
    return AttachmentRef(
        attachment_id=row["attachment_id"],
        sha256=row["sha256"],
        content_type=row["content_type"],
        kind=row["kind"],
        size=row["size"],
        taken_at=row["taken_at"],
        distance_m=None if distance is None else round(distance, 1),
        far=None if distance is None else distance > far_m,
    )


async def claim(
    conn: db.Conn,
    ids: Sequence[str],
    who: Principal,
    settings: EvidenceSettings,
    *,
    field: str = "attachment_ids",
    near: tuple[float, float] | None = None,
) -> list[AttachmentRef]:
    """The attachments a command names, each uploaded here by `who` (else 422 naming
    `<field>.<i>`), as the events carry them: with the distance of the photo's EXIF position
    from `near` (lat, lon), `far` beyond ATTACHMENT_FAR_M. The rows are locked until the
    command's transaction ends."""
    if not ids:
        return []
    rows = {
        r["attachment_id"]: r
        for r in await conn.fetch(
            f"SELECT {_COLUMNS} FROM attachments WHERE attachment_id = ANY($1::text[]) FOR UPDATE",
            list(ids),
        )
    }
    refs = []
    seen: set[str] = set()
    for i, attachment_id in enumerate(ids):
        row = rows.get(attachment_id)
        if row is None or row["uploaded_by"] != who.user_id:
            # someone else's upload is answered as one that does not exist
            raise Refusal(
                f"no attachment {attachment_id!r} uploaded by you (POST /attachments first)",
                field=f"{field}.{i}",
                code="unknown-attachment",
                status=422,
            )
        if attachment_id in seen:
            raise Refusal(
                f"attachment {attachment_id!r} is named twice",
                field=f"{field}.{i}",
                code="duplicate-attachment",
                status=422,
            )
        seen.add(attachment_id)
        distance = None
        if near is not None and row["lat"] is not None and row["lon"] is not None:
            distance = media.distance_m(row["lat"], row["lon"], near[0], near[1])
        refs.append(_ref(row, distance, settings.attachment_far_m))
    return refs


async def bind(
    conn: db.Conn,
    refs: Sequence[AttachmentRef],
    case_id: str,
    at: datetime,
    *,
    field: str = "attachment_ids",
    strict: bool = True,
) -> None:
    """Tie claimed attachments to the case they are evidence of. One that is already the
    evidence of another case is refused (422 naming it); again for the same case is fine.
    Not `strict` (a report taken again after a restore): those that cannot be tied (their
    upload's row is not in the restored tables, or another case holds them) are left as
    they are; the report still names them, and the store still has their bytes."""
    if not refs:
        return
    taken = await conn.fetch(
        "UPDATE attachments SET case_id = $2, used_at = $3, distance_m = u.distance "
        "FROM unnest($1::text[], $4::float8[]) AS u(id, distance) "
        "WHERE attachment_id = u.id AND (case_id IS NULL OR case_id = $2) "
        "RETURNING attachment_id",
        [r.attachment_id for r in refs],
        case_id,
        at,
        [r.distance_m for r in refs],
    )
    done = {r["attachment_id"] for r in taken}
    if not strict:
        return
    for i, ref in enumerate(refs):
        if ref.attachment_id not in done:
            raise Refusal(
                f"attachment {ref.attachment_id!r} is already the evidence of another case",
                field=f"{field}.{i}",
                code="attachment-in-use",
                status=422,
            )


# -- uploads ------------------------------------------------------------------------------------
class Uploaded(BaseModel):
    """An attachment as stored: name it in a report, result or verification."""

    attachment_id: str
    sha256: str
    content_type: str
    size: int
    kind: Literal["photo", "audio"]
    thumbnail: bool = Field(description="a thumbnail exists (photos)")
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = Field(None, description="EXIF: when the photo was taken")
    location: dict[str, float] | None = Field(None, description="EXIF: where (lat, lon)")


def _store_down(settings: EvidenceSettings, what: str) -> JSONResponse:
    return JSONResponse(
        {
            "detail": [
                {
                    "code": "store-unavailable",
                    "reason": f"the evidence store is not available: {what}; try again later "
                    "(a report can be sent without its photo and the photo added to it)",
                    "field": "file",
                }
            ]
        },
        status_code=503,
        headers={"Retry-After": str(settings.attachment_retry_after_s)},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is larger than the file limit allows."""
    declared = request.headers.get("content-length", "")
    cap = limit + _FRAMING
    too_big = Refusal(
        f"the file is larger than {limit} bytes",
        field="file",
        code="too-large",
        status=413,
        extra={"max_bytes": limit},
    )
    if declared.isdigit() and int(declared) > cap:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise too_big
    return bytes(body)


async def store_file(evidence: Evidence, rt: Runtime, data: bytes, uploaded_by: str) -> Uploaded:
    """Check and store one uploaded file for `uploaded_by` (a user id, or a channel's own
    name such as `open311:<source>`): larger than ATTACHMENT_MAX_BYTES 413, a type not taken
    415 (decided from the bytes; a photo must decode), then the original, a copy without
    metadata and a thumbnail in the object store and a row in `attachments`. Raises
    `Refusal` (413, 415) or `StoreUnavailable` (the store is down: nothing kept)."""
    settings = evidence.settings
    if len(data) > settings.attachment_max_bytes:
        raise Refusal(
            f"the file is larger than {settings.attachment_max_bytes} bytes",
            field="file",
            code="too-large",
            status=413,
            extra={"max_bytes": settings.attachment_max_bytes},
        )
    kind = media.sniff(data[:64])
    if kind is None or not data:
        raise Refusal(
            f"not a file taken here: {media.ACCEPTED} (decided from the bytes)",
            field="file",
            code="unsupported-type",
            status=415,
        )
    photo = None
    if kind.kind == "photo":
        try:
            photo = await asyncio.to_thread(
                media.read_photo,
                data,
                kind,
                evidence.timezone,
                settings.attachment_thumbnail_px,
            )
        except media.NotAPhoto as exc:
            raise Refusal(str(exc), "file", "unsupported-type", 415) from None
    sha256 = hashlib.sha256(data).hexdigest()
    where = keys(sha256)
    assert evidence.store is not None
    writes = [evidence.store.put(where["original"], data, kind.content_type)]
    if photo is not None:
        writes.append(evidence.store.put(where["shown"], photo.shown, photo.shown_type))
        writes.append(evidence.store.put(where["thumbnail"], photo.thumbnail, "image/jpeg"))
    await asyncio.gather(*writes)  # StoreUnavailable: the caller answers 503
    exif = photo.exif if photo is not None else media.Exif()
    attachment_id = new_attachment_id()
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO attachments ({_COLUMNS}) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, NULL)",
            attachment_id,
            sha256,
            kind.content_type,
            kind.kind,
            len(data),
            photo.shown_type if photo is not None else kind.content_type,
            photo is not None,
            photo.width if photo is not None else None,
            photo.height if photo is not None else None,
            uploaded_by,
            rt.clock.now(),
            exif.taken_at,
            exif.lat,
            exif.lon,
        )
    log.info(
        "attachment uploaded",
        attachment_id=attachment_id,
        content_type=kind.content_type,
        size=len(data),
    )
    return Uploaded(
        attachment_id=attachment_id,
        sha256=sha256,
        content_type=kind.content_type,
        size=len(data),
        kind=kind.kind,
        thumbnail=photo is not None,
        width=photo.width if photo is not None else None,
        height=photo.height if photo is not None else None,
        taken_at=exif.taken_at,
        location={"lat": exif.lat, "lon": exif.lon}
        if exif.lat is not None and exif.lon is not None
        else None,
    )


def attachment_routes(evidence: Evidence) -> APIRouter:
    """POST /attachments, GET /attachments/{id}, /thumbnail, /meta for one service."""
    router = APIRouter(tags=["evidence"], route_class=JSONRoute)
    settings = evidence.settings

    @router.post(
        "/attachments",
        status_code=201,
        response_model=Uploaded,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
        responses={
            413: {"description": "larger than ATTACHMENT_MAX_BYTES"},
            415: {"description": f"not one of {media.ACCEPTED}"},
            503: {"description": "the evidence store is down (Retry-After)"},
        },
    )
    async def upload(request: Request, who: CurrentPrincipal) -> Any:
        """Upload a photo or voice note (multipart/form-data, field `file`); name the
        `attachment_id` in a report, result or verification afterwards."""
        rt = _runtime(request)
        if not who.has(*evidence.uploaders):
            raise Refusal(
                f"role {sorted(who.roles)} may not upload evidence here; needs one of "
                f"{sorted(evidence.uploaders)}",
                field="Authorization",
                code="forbidden",
                status=403,
            )
        request._body = await read_body(request, settings.attachment_max_bytes)
        if "multipart/form-data" not in request.headers.get("content-type", ""):
            raise Refusal("send the file as multipart/form-data", "file", "invalid", 422)
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception as exc:  # a malformed multipart body
            raise Refusal(f"unreadable multipart body: {exc}", "file", "invalid", 422) from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Refusal("a file is required (form field `file`)", "file", "missing", 422)
        data = await upload.read()
        try:
            return await store_file(evidence, rt, data, who.user_id)
        except StoreUnavailable as exc:
            return _store_down(settings, str(exc)[:200])

    async def readable(request: Request, who: Principal, attachment_id: str) -> _Readable:
        """The attachment, for a caller who may read it; 404 to anyone else."""
        rt = _runtime(request)
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            row = await _row(conn, attachment_id)
            known = (
                await evidence.find_on_cases(conn, attachment_id)
                if evidence.find_on_cases is not None
                else []
            )
        if row is None and not known:
            raise access.unknown("attachment", attachment_id, field="attachment_id")
        if row is not None:
            item = _Readable.of_row(row, settings.attachment_far_m)
            if row["uploaded_by"] == who.user_id:
                return item
            if row["case_id"] is not None and await evidence.may_read_case(rt, who, row["case_id"]):
                return item
        for case_id, ref in known:
            if await evidence.may_read_case(rt, who, case_id):
                return _Readable.of_ref(ref, case_id)
        raise access.out_of_reach(
            "attachment",
            attachment_id,
            who,
            field="attachment_id",
            case_id=(row["case_id"] if row is not None else None)
            or (known[0][0] if known else None),
        )

    async def answer(item: _Readable, variant: str, filename: str) -> Response:
        assert evidence.store is not None
        key = keys(item.sha256)[variant]
        content_type = {
            "original": item.content_type,
            "shown": item.shown_type,
            "thumbnail": "image/jpeg",
        }[variant]
        headers = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}
        try:
            if settings.attachment_download == "redirect":
                url = await evidence.store.presigned_get(
                    key, settings.attachment_url_ttl_s, content_type=content_type
                )
                return RedirectResponse(url, status_code=307, headers=headers)
            data = await evidence.store.get(key)
        except StoreUnavailable as exc:
            return _store_down(settings, str(exc)[:200])
        if data is None:
            raise Refusal(
                f"the {variant} of this attachment is missing", "attachment_id", "gone", 410
            )
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
        return Response(data, media_type=content_type, headers=headers)

    @router.get("/attachments/{attachment_id}", responses={307: {"description": "presigned"}})
    async def download(
        attachment_id: AttachmentId, request: Request, who: CurrentPrincipal
    ) -> Response:
        """The file, to a caller who may read its case (or who uploaded it); the command
        centre gets the original, everybody else the copy without EXIF (photos)."""
        item = await readable(request, who, attachment_id)
        variant = "original" if who.has(*COMMAND_CENTRE) or item.kind != "photo" else "shown"
        ext = (
            item.content_type.rsplit("/", 1)[-1]
            if variant == "original"
            else item.shown_type.rsplit("/", 1)[-1]
        )
        return await answer(item, variant, f"{attachment_id}.{ext}")

    @router.get("/attachments/{attachment_id}/thumbnail")
    async def thumbnail(
        attachment_id: AttachmentId, request: Request, who: CurrentPrincipal
    ) -> Response:
        """A small JPEG of a photo (no metadata), to the same callers."""
        item = await readable(request, who, attachment_id)
        if not item.thumbnail:
            raise Refusal("only photos have thumbnails", "attachment_id", "no-thumbnail", 404)
        return await answer(item, "thumbnail", f"{attachment_id}-thumb.jpg")

    @router.get("/attachments/{attachment_id}/meta")
    async def meta(
        attachment_id: AttachmentId, request: Request, who: CurrentPrincipal
    ) -> dict[str, Any]:
        """What is known of it: type, size, when taken, distance from the case's point; the
        position itself only to the command centre."""
        item = await readable(request, who, attachment_id)
        out = item.view()
        if not who.has(*COMMAND_CENTRE):
            out.pop("location", None)
        return out

    return router


@dataclass(frozen=True)
class _Readable:
    attachment_id: str
    sha256: str
    content_type: str
    shown_type: str
    kind: str
    size: int
    thumbnail: bool
    case_id: str | None
    taken_at: datetime | None
    distance_m: float | None
    far: bool | None
    location: dict[str, float] | None

    @classmethod
    def of_row(cls, row: Any, far_m: float) -> _Readable:
        located = row["lat"] is not None and row["lon"] is not None
        distance = row["distance_m"]
        return cls(
            row["attachment_id"],
            row["sha256"],
            row["content_type"],
            row["shown_type"],
            row["kind"],
            row["size"],
            row["thumbnail"],
            row["case_id"],
            row["taken_at"],
            distance,
            None if distance is None else distance > far_m,
            {"lat": row["lat"], "lon": row["lon"]} if located else None,
        )

    @classmethod
    def of_ref(cls, ref: AttachmentRef, case_id: str) -> _Readable:
        photo = ref.kind == "photo"
        return cls(
            ref.attachment_id,
            ref.sha256,
            ref.content_type,
            # the copy without metadata: PNG and WebP stay so, the rest is JPEG (media.py)
            ref.content_type
            if ref.content_type in (media.PNG.content_type, media.WEBP.content_type) or not photo
            else media.JPEG.content_type,
            ref.kind,
            ref.size,
            photo,
            case_id,
            ref.taken_at,
            ref.distance_m,
            ref.far,
            None,
        )

    def view(self) -> dict[str, Any]:
        return {
            "attachment_id": self.attachment_id,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "kind": self.kind,
            "size": self.size,
            "thumbnail": self.thumbnail,
            "case_id": self.case_id,
            "taken_at": self.taken_at,
            "distance_m": self.distance_m,
            "far": self.far,
            "location": self.location,
        }


def _runtime(request: Request) -> Runtime:
    from .service import runtime_of

    return runtime_of(request)
