"""Open311 GeoReport v2 under /open311/v2 (公众上报): residents' apps and portals report and
follow cases through the international standard, in JSON or XML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from gridloop_contracts import Actor, Attachment, Location
from gridloop_contracts.common import LEVEL_OF_RATING, LEVELS
from gridloop_contracts.inbound import Reporter
from gridloop_contracts.problems import Refusal
from gridloop_runtime import evidence
from gridloop_runtime.auth import Principal
from gridloop_runtime.inputs import BodyError, loads
from gridloop_runtime.objectstore import StoreUnavailable
from gridloop_runtime.service import Runtime, runtime_of
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from . import repository as repo
from .api import intake_of, take
from .casework import on_case
from .context import Intake
from .domain import open311 as spec
from .domain.case import CaseRow
from .domain.inbound import IncomingReport
from .domain.notices import lang_of
from .domain.open311 import Open311Error
from .domain.problems import Refused
from .store import RATINGS

router = APIRouter(prefix="/open311/v2", tags=["open311"])


def _format(fmt: str) -> spec.Format:
    if fmt == "json":
        return "json"
    if fmt == "xml":
        return "xml"
    raise Open311Error(400, f"format {fmt!r}: use .json or .xml")


def _respond(fmt: str, root: str, payload: Any, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(spec.to_xml(root, payload), status, media_type="text/xml; charset=utf-8")
    return JSONResponse(jsonable_encoder(payload), status)


def _error(fmt: str, err: Open311Error) -> Response:
    body = spec.errors_body([err])
    response = _respond(fmt if fmt in ("json", "xml") else "json", "errors", body, err.code)
    if err.retry_after_s is not None:
        response.headers["Retry-After"] = str(err.retry_after_s)
    return response


def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _jurisdiction(intake: Intake, params: Mapping[str, Sequence[str]]) -> None:
    jid = _one(params, "jurisdiction_id")
    if jid and jid != intake.city.district.code:
        raise Open311Error(404, f"jurisdiction_id: {jid!r} is not served here")


def _rt(request: Request) -> tuple[Runtime, Intake]:
    rt = runtime_of(request)
    return rt, intake_of(rt)


@router.get("/discovery.{fmt}")
async def discovery(fmt: str, request: Request) -> Response:
    """Where the endpoint is and what it speaks."""
    try:
        _format(fmt)
    except Open311Error as err:
        return _error(fmt, err)
    _, intake = _rt(request)
    base = str(request.base_url).rstrip("/") + "/open311/v2/"
    doc = {
        "changeset": "2026-11-23T00:00:00Z",
        "contact": f"{intake.city.district.name} 城市管理监督中心",
        "key_service": "api_key from the city (sources.yaml open311_api_keys)",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": base,
                "changeset": "2026-11-23T00:00:00Z",
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }
    return _respond(fmt, "discovery", doc)


@router.get("/services.{fmt}")
async def services(fmt: str, request: Request) -> Response:
    """The service list: the city's category catalogue (部件/事件类别)."""
    try:
        _format(fmt)
        _, intake = _rt(request)
        _jurisdiction(intake, _params(request))
    except Open311Error as err:
        return _error(fmt, err)
    city = intake.city
    items = [spec.service(c, city.majors.get(c.major_code)) for c in city.categories.values()]
    return _respond(fmt, "services", items)


@router.get("/services/{service_code}.{fmt}")
async def service_definition(service_code: str, fmt: str, request: Request) -> Response:
    try:
        _format(fmt)
        _, intake = _rt(request)
        _jurisdiction(intake, _params(request))
        category = intake.city.category(service_code)
        if category is None:
            raise Open311Error(404, f"service_code: {service_code!r} not found")
    except Open311Error as err:
        return _error(fmt, err)
    return _respond(fmt, "service_definition", spec.service_definition(category))


def _request_view(intake: Intake, case: CaseRow) -> dict[str, Any]:
    data = case.values()
    data["open311_status"] = case.case_status.open311
    agency = case.dept or case.part_owner_dept
    return spec.service_request(
        data,
        intake.category_name(case.category_code),
        intake.dept_name(agency) if agency else None,
        coord_decimals=intake.settings.open311_public_coord_decimals,
    )


@router.get("/requests.{fmt}")
async def list_requests(fmt: str, request: Request) -> Response:
    """Service requests by id, service code, date and status (open/closed); by default the
    last 90 days, at most 1,000, newest first. The public list: the cases that came in
    through public channels (Open311, the web) and those an operator marked public; the
    coordinates rounded (INTAKE_OPEN311_PUBLIC_COORD_DECIMALS)."""
    try:
        _format(fmt)
        rt, intake = _rt(request)
        params = _params(request)
        _jurisdiction(intake, params)
        ids = spec.parse_list(_one(params, "service_request_id"))
        codes = spec.parse_list(_one(params, "service_code"))
        start = spec.parse_datetime(_one(params, "start_date"), "start_date")
        end = spec.parse_datetime(_one(params, "end_date"), "end_date")
        statuses = spec.parse_status(_one(params, "status"))
        if start and end and start > end:
            raise Open311Error(400, "start_date: after end_date")
    except Open311Error as err:
        return _error(fmt, err)
    if not ids and start is None:
        start = (end or rt.clock.now()) - timedelta(days=intake.settings.open311_default_days)
    open_filter = None
    if len(set(statuses)) == 1:
        open_filter = statuses[0] == "open"
    query = repo.CaseQuery(
        case_ids=ids,
        categories=codes,
        reported_from=start,
        reported_to=end,
        open=open_filter,
        public_only=True,
        limit=intake.settings.open311_max_requests,
    )
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows, _ = await repo.search(conn, query)
    return _respond(fmt, "service_requests", [_request_view(intake, c) for c in rows])


@router.get("/requests/{request_id}.{fmt}")
async def get_request(request_id: str, fmt: str, request: Request) -> Response:
    try:
        _format(fmt)
        rt, intake = _rt(request)
        _jurisdiction(intake, _params(request))
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            case = await repo.get_case(conn, request_id)
        if case is None or not case.listed_publicly:  # an internal case is not here
            raise Open311Error(404, f"service_request_id: {request_id!r} not found")
    except Open311Error as err:
        return _error(fmt, err)
    return _respond(fmt, "service_requests", [_request_view(intake, case)])


@router.get("/tokens/{token}.{fmt}")
async def get_token(token: str, fmt: str, request: Request) -> Response:
    """The service request a POST's token became."""
    try:
        _format(fmt)
        rt, intake = _rt(request)
        _jurisdiction(intake, _params(request))
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            row = await repo.report_by_id(conn, token)
        if row is None:
            raise Open311Error(404, f"token: {token!r} not found")
    except Open311Error as err:
        return _error(fmt, err)
    return _respond(
        fmt, "service_requests", [{"service_request_id": row["case_id"], "token": token}]
    )


async def _sent(request: Request) -> tuple[dict[str, list[str]], bytes | None]:
    """The fields of a request (and the query string for `api_key`), and the photo of a
    multipart one. Form fields are the spec's `application/x-www-form-urlencoded`; a JSON
    object is taken for convenience; `multipart/form-data` carries a `media` file (at most
    ATTACHMENT_MAX_BYTES). Read once per request (the rate limiter reads it first)."""
    cached = getattr(request.state, "open311_sent", None)
    if isinstance(cached, Open311Error):  # the body is gone: the same answer again
        raise cached
    if cached is not None:
        sent: tuple[dict[str, list[str]], bytes | None] = cached
        return sent
    params = _params(request)
    ctype = request.headers.get("content-type", "")
    media = None
    try:
        if ctype.startswith("multipart/"):
            media = await _multipart(request, params)
        else:
            await _fields(request, ctype, params)
    except Open311Error as err:
        request.state.open311_sent = err
        raise
    request.state.open311_sent = (params, media)
    return params, media


async def _multipart(request: Request, params: dict[str, list[str]]) -> bytes | None:
    limit = intake_of(runtime_of(request)).settings.attachment_max_bytes
    try:
        request._body = await evidence.read_body(request, limit)
    except Refusal:
        raise Open311Error(413, f"media: larger than {limit} bytes") from None
    try:
        form = await request.form(max_files=1, max_fields=100)
    except Exception as exc:  # a malformed multipart body, or more than one file
        raise Open311Error(400, f"body: unreadable multipart body: {exc}") from None
    media = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != "media":
                raise Open311Error(400, f"{name}: only `media` may be a file")
            media = await value.read()
        else:
            if "\x00" in name or "\x00" in value:
                raise Open311Error(400, f"{name.replace(chr(0), '')}: must not contain NUL")
            params.setdefault(name, []).append(value)
    return media


async def _fields(request: Request, ctype: str, params: dict[str, list[str]]) -> None:
    raw = await request.body()
    if ctype.startswith("application/json"):
        try:
            doc = loads(raw) if raw else {}
        except BodyError as err:
            # a field named (a key twice, NaN, not text): 422; a body that is no JSON: 400
            field = ".".join(str(p) for p in err.path)
            raise Open311Error(422 if field else 400, f"{field or 'body'}: {err.reason}") from None
        if not isinstance(doc, dict):
            raise Open311Error(400, "body: a JSON object is expected")
        for k, v in doc.items():
            params.setdefault(str(k), []).append("" if v is None else str(v))
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Open311Error(
            400, f"body: not valid UTF-8: byte {raw[exc.start]:#04x} at position {exc.start}"
        ) from None
    for k, vs in parse_qs(text, keep_blank_values=True).items():
        if "\x00" in k or any("\x00" in v for v in vs):  # PostgreSQL text cannot hold NUL
            raise Open311Error(400, f"{k.replace(chr(0), '')}: must not contain NUL characters")
        params.setdefault(k, []).extend(vs)


async def _body(request: Request) -> dict[str, list[str]]:
    return (await _sent(request))[0]


async def client_key(request: Request) -> str | None:
    """Who an Open311 caller is for the rate limits: the source of a valid API key (its
    own bucket, RATE_LIMIT_CLIENT_*); None leaves the caller limited by address."""
    if not request.url.path.startswith(router.prefix + "/"):
        return None
    try:
        params = await _body(request) if request.method == "POST" else _params(request)
        _, intake = _rt(request)
    except Open311Error:
        return None
    source = intake.api_keys.get(_one(params, "api_key") or "")
    return f"key:{source}" if source else None


def _source_for_key(intake: Intake, params: Mapping[str, Sequence[str]]) -> str:
    key = _one(params, "api_key")
    source = intake.api_keys.get(key or "")
    if source is None:
        raise Open311Error(403, "api_key: missing or not valid")
    return source


async def _store_media(rt: Runtime, source: str, media: bytes) -> tuple[Principal, str]:
    """A photo sent with a request, checked and stored as every upload is (type from the
    bytes, size, a photo that decodes; gridloop_runtime.evidence), uploaded by the source."""
    store = rt.definition.evidence
    assert store is not None
    uploader = Principal(user_id=f"open311:{source}", roles=frozenset({"web"}))
    try:
        uploaded = await evidence.store_file(store, rt, media, uploader.user_id)
    except Refusal as refused:
        raise Open311Error(refused.status, f"media: {refused.reason}") from None
    except StoreUnavailable:
        raise Open311Error(
            503,
            "media: the photo store is not available; try again later, or send the request "
            "without the photo (or with a media_url)",
            retry_after_s=store.settings.attachment_retry_after_s,
        ) from None
    return uploader, uploaded.attachment_id


@router.post(
    "/requests.{fmt}",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"media": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def post_request(fmt: str, request: Request) -> Response:
    """Report a problem (needs `api_key`). Answers the case id at once (`realtime`) and a
    token; a report of a problem already open joins that case (`service_notice` says so).
    `attribute[code]` answers the service definition's questions; a photo comes as a URL
    (`media_url`) or as the file itself (multipart/form-data, field `media`)."""
    try:
        _format(fmt)
        rt, intake = _rt(request)
        params, media = await _sent(request)
        source = _source_for_key(intake, params)
        _jurisdiction(intake, params)
        new = spec.parse_new_request(params)
        category = intake.city.category(new.service_code)
        if category is None:
            raise Open311Error(400, f"service_code: {new.service_code!r} not found")
        answers = spec.parse_answers(params, category)
        try:
            reporter = (
                Reporter(name=new.name, phone=new.phone)
                if (new.name or new.phone or new.email)
                else None
            )
            attachments = (Attachment(url=new.media_url, kind="photo"),) if new.media_url else ()
            location = Location(lat=new.lat, lon=new.lon) if new.lat is not None else None
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = str(err["loc"][0]) if err["loc"] else "request"
            field = {"name": "first_name", "url": "media_url"}.get(loc, loc)
            raise Open311Error(400, f"{field}: {err['msg']}") from None
        report = IncomingReport(
            channel="web",
            source=source,
            external_id=None,
            description=new.description or category.name,
            reported_at=rt.clock.now(),
            location=location,
            address=new.address_string,
            part_code=answers.part_code,
            category_code=category.code,
            urgency=answers.urgency,
            reporter=reporter,
            reporter_email=new.email,
            reporter_lang=new.lang or lang_of(request.headers.get("accept-language")),
            attachments=attachments,
            attributes=answers.values,
        )
        uploader: Principal | None = None
        files: tuple[str, ...] = ()
        if media is not None:
            uploader, attachment_id = await _store_media(rt, source, media)
            files = (attachment_id,)
        try:
            outcome = await take(rt, report, uploader, files)
        except Refused as refused:
            p = refused.problems[0]
            field = {
                "location": "lat/long",
                "address": "address_string",
                "part_code": "attribute[part_code]",
            }.get(p.field or "", p.field or "request")
            raise Open311Error(400, f"{field}: {p.reason} ({p.code})") from None
    except Open311Error as err:
        return _error(fmt, err)
    notice = (
        f"已并入已有案卷 {outcome.case_id} / joined an open request for the same problem"
        if outcome.outcome == "merged"
        else outcome.status_notes
    )
    answer = {
        "service_request_id": outcome.case_id,
        "service_notice": notice,
        "account_id": new.account_id,
        "token": outcome.report_id,
    }
    return _respond(fmt, "service_requests", [answer], 201)


@router.post("/requests/{request_id}/rating.{fmt}")
async def rate_request(request_id: str, fmt: str, request: Request) -> Response:
    """gridloop extension: the reporter rates a closed request (满意度评价); `rating` is a
    level A 非常满意, B 满意, C 一般, D 不满意 (or a v1 value: satisfied, basically_satisfied,
    dissatisfied, taken as B, C, D), with an optional `comment`; needs `api_key`."""
    try:
        _format(fmt)
        rt, intake = _rt(request)
        params = await _body(request)
        source = _source_for_key(intake, params)
        rating = _one(params, "rating")
        if rating not in LEVELS and rating not in LEVEL_OF_RATING:
            raise Open311Error(
                400, "rating: A, B, C or D (or satisfied, basically_satisfied, dissatisfied)"
            )
        comment = _one(params, "comment")
        who = Actor(id=source, role="web")
        assert rt.uow is not None
        async with rt.uow() as work:
            try:
                await on_case(
                    work,
                    RATINGS,
                    request_id,
                    lambda state, step: intake.rules.rate(
                        state,
                        step,
                        who,
                        rating=rating,
                        comment=comment,
                        via=f"open311:{source}",
                    ),
                )
            except Refused as refused:
                p = refused.problems[0]
                code = 404 if p.status == 404 else 400
                raise Open311Error(code, f"{p.field}: {p.reason}") from None
    except Open311Error as err:
        return _error(fmt, err)
    return _respond(
        fmt, "service_requests", [{"service_request_id": request_id, "rating": rating}], 201
    )
