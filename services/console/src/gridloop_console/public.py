"""The residents' side of the console, without a login (公众): what the public page
(/public/) reads and sends, each through intake's public endpoints — the city's names and
cells, Open311's public list, a report through Open311 `POST requests` under the console's own
API key, a public case's steps, and the rating by a mail's link. Nothing of the caller's
headers goes on but the address (X-Forwarded-For); every route is limited per address
(RATE_LIMIT_PUBLIC_*)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import httpx
import structlog
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from gridloop_runtime.commands import Refusal
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.limits import Buckets, Limit, retry_after
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .app import Console

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/public", tags=["public"], route_class=JSONRoute)

# Open311 names the page's fields its own way; the page names them as its form does.
FIELD_OF_OPEN311 = {
    "service_code": "category",
    "lat": "location",
    "long": "location",
    "lat/long": "location",
    "lat and long": "location",
    "lat/long, address_string or address_id": "location",
    "address_string": "address",
    "address_id": "address",
    "first_name": "name",
    "last_name": "name",
    "attribute[urgency]": "urgency",
}
# Answers of intake passed back to the page as they are (a case or a link not there, a link
# used or expired, bad input named by intake); anything else is the service's trouble.
PASSED = frozenset({200, 201, 404, 409, 410, 422})


def field_of(description: str) -> tuple[str, str]:
    """An Open311 error's description (`field: reason`) as (the page's field, the reason)."""
    name, sep, reason = description.partition(": ")
    if not sep:
        return "request", description
    return FIELD_OF_OPEN311.get(name, name), reason


def _console(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


class PublicLimit:
    """One token bucket per address for the public routes (RATE_LIMIT_PUBLIC_*), as the
    services limit their anonymous callers."""

    def __init__(self, per_s: float, burst: int) -> None:
        self.buckets = Buckets(Limit("RATE_LIMIT_PUBLIC", per_s, burst))

    def check(self, request: Request) -> None:
        if not self.buckets.limit.enabled:
            return
        host = request.client.host if request.client else "unknown"
        wait = self.buckets.take(f"addr:{host}")
        if wait > 0:
            raise Refusal(
                "RATE_LIMIT_PUBLIC: too many requests from this address",
                code="rate-limited",
                status=429,
                extra={"retry_after_s": int(retry_after(wait))},
            )


def _unavailable(reason: str) -> Refusal:
    return Refusal(reason, field="service", code="service-unavailable", status=503)


async def _intake(
    request: Request,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    json: Any = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    """Call intake as the resident: no token, the resident's address for intake's limits."""
    c = _console(request)
    c.public_limit.check(request)
    assert c.http is not None
    host = request.client.host if request.client else ""
    try:
        return await c.http.request(
            method,
            c.settings.intake_url.rstrip("/") + path,
            params=params,
            json=json,
            data=data,
            headers={"X-Forwarded-For": host, "Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        log.warning("intake unreachable", error=str(exc))
        raise _unavailable("intake did not answer") from None


def _passed(upstream: httpx.Response) -> Response:
    if upstream.status_code == 429:
        return JSONResponse(
            upstream.json(),
            status_code=429,
            headers={"Retry-After": upstream.headers.get("retry-after", "1")},
        )
    if upstream.status_code not in PASSED:
        log.warning("intake refused a public call", status=upstream.status_code)
        raise _unavailable(f"intake answered {upstream.status_code}")
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/config")
async def public_config(request: Request) -> dict[str, Any]:
    """What the public page needs first: the district, the tiles, the city's categories in
    Chinese and English (the report form's list)."""
    c = _console(request)
    c.public_limit.check(request)
    d = c.city.district
    return {
        "district": {"code": d.code, "name": d.name, "name_en": d.name_en, "bbox": d.bbox},
        "tile_url": c.settings.tile_url or None,
        "tile_attribution": c.settings.tile_attribution or None,
        "categories": [
            {"code": k.code, "name": k.name, "name_en": k.name_en, "major_code": k.major_code}
            for k in c.city.categories.values()
        ],
    }


@router.get("/cells")
async def public_cells(request: Request) -> Response:
    """The district's cells as GeoJSON: the public map's ground (the same as the console's)."""
    c = _console(request)
    c.public_limit.check(request)
    return Response(
        c.geo, media_type="application/geo+json", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/requests")
async def public_requests(
    request: Request,
    service_code: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
) -> Response:
    """Open311's public list (intake's `GET requests.json`: public cases of the last 90 days,
    the points rounded) by category and open/closed."""
    params = {"service_code": service_code or "", "status": status or ""}
    upstream = await _intake(
        request,
        "GET",
        "/open311/v2/requests.json",
        params={k: v for k, v in params.items() if v},
    )
    if upstream.status_code not in (200, 429):
        raise _unavailable(f"intake answered {upstream.status_code}")
    return _passed(upstream)


class PublicReportIn(BaseModel):
    """A resident's report from the public page: the category, what is wrong, where (a point
    on the map or an address), an e-mail for the updates, optionally a name and a phone."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=32)
    description: str = Field(min_length=1, max_length=2000)
    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    address: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254)
    name: str | None = Field(None, max_length=64)
    phone: str | None = Field(None, max_length=32)
    lang: Literal["zh", "en"] | None = None


def open311_form(body: PublicReportIn, api_key: str) -> dict[str, str]:
    """The report as Open311 `POST requests` form fields (blank fields left out)."""
    form = {
        "api_key": api_key,
        "service_code": body.category,
        "description": body.description,
        "lat": "" if body.lat is None else repr(body.lat),
        "long": "" if body.lon is None else repr(body.lon),
        "address_string": body.address or "",
        "email": body.email or "",
        "first_name": body.name or "",
        "phone": body.phone or "",
        "lang": body.lang or "",
    }
    return {k: v.strip() for k, v in form.items() if v and v.strip()}


@router.post("/requests", status_code=201)
async def public_report(body: PublicReportIn, request: Request) -> dict[str, Any]:
    """上报 from the public page: through Open311 `POST requests` under the console's key
    (CONSOLE_OPEN311_API_KEY). Answers the request id (the case id) and where to follow it;
    bad input is 422 naming the page's field (Open311's 400 translated)."""
    if (body.lat is None) != (body.lon is None):
        raise Refusal("a point needs both lat and lon", "location", "invalid", 422)
    if body.lat is None and not (body.address or "").strip():
        raise Refusal("choose a point on the map or give an address", "location", "required", 422)
    c = _console(request)
    upstream = await _intake(
        request,
        "POST",
        "/open311/v2/requests.json",
        data=open311_form(body, c.settings.open311_api_key.get_secret_value()),
    )
    if upstream.status_code == 201:
        [answer] = upstream.json()
        case_id = str(answer["service_request_id"])
        return {
            "service_request_id": case_id,
            "token": answer.get("token"),
            "service_notice": answer.get("service_notice"),
            "case_url": f"/public/#/case/{case_id}",
        }
    if upstream.status_code == 429:
        raise Refusal(
            "too many reports now, try again later",
            code="rate-limited",
            status=429,
            extra={"retry_after_s": int(upstream.headers.get("retry-after", "1"))},
        )
    if upstream.status_code == 403:  # the console's key is not the city's: an operator's job
        log.error("intake refused the console's Open311 key (CONSOLE_OPEN311_API_KEY)")
        raise _unavailable("public reports are not taken now")
    if upstream.status_code in (400, 404, 422):
        errors = upstream.json()
        first = errors[0] if isinstance(errors, list) and errors else {}
        field, reason = field_of(str(first.get("description", "invalid request")))
        raise Refusal(reason, field, "invalid", 422)
    raise _unavailable(f"intake answered {upstream.status_code}")


@router.get("/cases/{case_id}")
async def public_case(
    case_id: Annotated[str, PathParam(max_length=64)], request: Request
) -> Response:
    """A public case as residents see it (intake's `GET /public/cases/{id}`)."""
    return _passed(await _intake(request, "GET", f"/public/cases/{_segment(case_id)}"))


@router.get("/ratings/{token}")
async def rating_link(
    token: Annotated[str, PathParam(max_length=1000)], request: Request
) -> Response:
    """What a mail's rating link rates (intake's `GET /public/ratings/{token}`)."""
    return _passed(await _intake(request, "GET", f"/public/ratings/{_segment(token)}"))


class RatingIn(BaseModel):
    """满意度评价 by a mail's link: A 非常满意, B 满意, C 一般, D 不满意, and a comment."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=10, max_length=1000)
    rating: Literal["A", "B", "C", "D"]
    comment: str | None = Field(None, max_length=1000)


@router.post("/ratings", status_code=201)
async def rate(body: RatingIn, request: Request) -> Response:
    """Record the rating (intake's `POST /public/ratings`; once per closing)."""
    return _passed(
        await _intake(request, "POST", "/public/ratings", json=body.model_dump(exclude_none=True))
    )


def _segment(text: str) -> str:
    """A path segment, quoted: whatever it holds stays in the one segment it is put in."""
    if not text or text in (".", ".."):
        raise Refusal("not a valid id", "id", "invalid", 422)
    return quote(text, safe="")
