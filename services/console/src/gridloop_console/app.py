"""The console's HTTP side: the single-page app, login, the city's cells, a thin proxy to the
five services carrying the caller's token, and the live event stream from the bus."""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import nats
import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from gridloop_city import City, load_city
from gridloop_runtime import bus
from gridloop_runtime.auth import (
    ROLES,
    Authenticator,
    AuthSettings,
    Principal,
    issue_token,
    lookup_from,
)
from gridloop_runtime.commands import Refusal, install_refusal_handler
from gridloop_runtime.inputs import JSONRoute, check_routes
from gridloop_runtime.service import NO_FASTAPI_TELEMETRY
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from .events import EventHub
from .geo import cell_props, cells_json, likely_categories
from .public import PublicLimit
from .public import router as public_router
from .settings import ConsoleSettings

log = structlog.get_logger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# The handheld's web app manifest (installable; served from static/)
mimetypes.add_type("application/manifest+json", ".webmanifest")
# Request headers the proxy passes on to a service; everything else stays here.
FORWARDED_REQUEST = ("authorization", "content-type", "accept", "traceparent", "x-user")
# Response headers the proxy passes back to the browser (an upload refused while the store
# is down says when to try again; a photo may be a redirect to the store, and is cached).
FORWARDED_RESPONSE = (
    "content-type",
    "content-disposition",
    "idempotent-replay",
    "retry-after",
    "location",
    "cache-control",
    "x-content-type-options",
)

PROXIED = Counter(
    "gridloop_console_proxied_total", "Requests forwarded to the services", ["service", "status"]
)
STREAMS = Gauge("gridloop_console_event_streams", "Open live event streams")
EVENTS = Counter("gridloop_console_events_total", "Case events received from the bus")
COPIES = Counter(
    "gridloop_console_event_copies_total",
    "Case events heard again (an outbox sending again what it could not mark sent), dropped",
)


@dataclass
class Console:
    """What the console holds while it runs: the city, the authenticator, the HTTP client to
    the services, the NATS connection and the fan-out of its events."""

    settings: ConsoleSettings
    city: City
    auth: Authenticator
    hub: EventHub = field(default_factory=EventHub)
    http: httpx.AsyncClient | None = None
    nc: Client | None = None
    geo: bytes = b""
    public_limit: PublicLimit = field(default_factory=lambda: PublicLimit(0, 0))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def load(cls, settings: ConsoleSettings) -> Console:
        city = load_city(settings.city_data_dir)
        return cls(settings, city, Authenticator(AuthSettings(), lookup_from(city.users)))

    async def start(self) -> None:
        self.geo = cells_json(self.city)
        s = self.settings
        self.public_limit = PublicLimit(s.rate_limit_public_per_s, s.rate_limit_public_burst)
        self.http = httpx.AsyncClient(timeout=self.settings.upstream_timeout_s)
        self._tasks.append(asyncio.create_task(self._follow_bus(), name="console-bus"))

    async def _follow_bus(self) -> None:
        """Connect (retrying until NATS answers) and subscribe to every case event. A core
        subscription: the console keeps nothing, so a browser that missed events while the
        console was away simply reloads its view."""
        s = self.settings
        while self.nc is None:
            try:
                self.nc = await bus.connect(
                    s.nats_url, name="console", user=s.nats_user, password=s.nats_password
                )
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                log.warning("nats not reachable yet", error=str(exc))
                await asyncio.sleep(1.0)

        async def on_event(msg: Msg) -> None:
            EVENTS.inc()
            copies = self.hub.copies
            self.hub.deliver(msg.subject, msg.headers, msg.data)
            COPIES.inc(self.hub.copies - copies)

        await self.nc.subscribe("case.>", cb=on_event)
        log.info("following case events")

    async def stop(self) -> None:
        self.hub.closed.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.http is not None:
            await self.http.aclose()

    def ready(self) -> dict[str, bool]:
        return {
            "nats": bool(self.nc and self.nc.is_connected),
            "http": self.http is not None,
        }


def console_of(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


async def caller(request: Request) -> Principal:
    """The authenticated caller: a bearer token (or `X-User` in AUTH_MODE=dev)."""
    auth = console_of(request).auth
    await auth.prepare(request)
    return auth.authenticate(request)


Caller = Annotated[Principal, Depends(caller)]


def user_view(p: Principal) -> dict[str, Any]:
    return {
        "id": p.user_id,
        "name": p.name,
        "roles": sorted(p.roles),
        "dept": p.dept,
        "territory": list(p.territory),
    }


# -- bodies -------------------------------------------------------------------------------
class LoginIn(BaseModel):
    """Dev mode: a user of the city and any password. Any mode: a token from the city's
    identity provider, pasted."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, min_length=1, max_length=64)
    password: str | None = Field(None, max_length=200)
    token: str | None = Field(None, min_length=10, max_length=8000)


router = APIRouter(route_class=JSONRoute)


@router.get("/api/config", tags=["console"])
async def config(request: Request) -> dict[str, Any]:
    """What the login screen and the map need before anybody is signed in."""
    c = console_of(request)
    d = c.city.district
    out: dict[str, Any] = {
        "auth_mode": c.auth.settings.mode,
        "district": {"code": d.code, "name": d.name, "name_en": d.name_en, "bbox": d.bbox},
        "tile_url": c.settings.tile_url or None,
        "tile_attribution": c.settings.tile_attribution or None,
        "roles": list(ROLES),
    }
    if c.auth.settings.mode == "dev":
        out["demo_users"] = [
            {"id": u.id, "name": u.name, "roles": list(u.roles), "dept": u.dept}
            for u in c.city.users.values()
        ]
    return out


@router.post("/api/login", tags=["console"])
async def login(request: Request, body: LoginIn) -> dict[str, Any]:
    """登录. In AUTH_MODE=dev a user id of the city (any password) gets a signed token; a
    pasted token from the identity provider is checked and taken as it is."""
    c = console_of(request)
    if body.token:
        who = c.auth.verify(body.token)
        return {"token": body.token, "user": user_view(who)}
    if c.auth.settings.mode != "dev":
        raise Refusal(
            "sign in with your identity provider and paste the token",
            field="token",
            code="unauthenticated",
            status=401,
        )
    if not body.user_id:
        raise Refusal("a user id is required", field="user_id", code="invalid", status=422)
    user = c.city.users.get(body.user_id)
    if user is None:
        raise Refusal(
            f"unknown user {body.user_id!r}", field="user_id", code="unauthenticated", status=401
        )
    token = issue_token(
        c.auth.settings,
        user_id=user.id,
        roles=user.roles,
        name=user.name,
        dept=user.dept,
        territory=user.territory,
        ttl_s=c.settings.token_ttl_s,
    )
    who = c.auth.verify(token)
    log.info("signed in", user_id=user.id, roles=list(user.roles))
    return {"token": token, "user": user_view(who)}


@router.get("/api/me", tags=["console"])
async def me(who: Caller) -> dict[str, Any]:
    return user_view(who)


@router.get("/api/city", tags=["console"])
async def city_info(request: Request, _: Caller) -> dict[str, Any]:
    """The names the screens show: categories and their classes, departments, sub-districts,
    communities, the reasons to refuse a report, and who supervises which cell."""
    city = console_of(request).city
    return {
        "categories": [
            {
                "code": k.code,
                "name": k.name,
                "name_en": k.name_en,
                "major_code": k.major_code,
                "closing_standard": k.closing_standard,
            }
            for k in city.categories.values()
        ],
        "majors": [
            {"code": m.code, "name": m.name, "name_en": m.name_en} for m in city.majors.values()
        ],
        "departments": [
            {"code": d.code, "name": d.name, "name_en": d.name_en}
            for d in city.departments.values()
        ],
        "subdistricts": [{"code": s.code, "name": s.name} for s in city.subdistricts.values()],
        "communities": [
            {"code": m.code, "name": m.name, "subdistrict_code": m.subdistrict_code}
            for m in city.communities.values()
        ],
        "reject_reasons": [r.model_dump() for r in city.intake.reject_reasons],
    }


@router.get("/api/geo/cells", tags=["console"])
async def geo_cells(request: Request, _: Caller) -> Response:
    """网格图层: every cell as a GeoJSON polygon with its community and sub-district."""
    return Response(
        console_of(request).geo,
        media_type="application/geo+json",
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.get("/api/locate", tags=["console"])
async def locate(
    request: Request,
    _: Caller,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
) -> dict[str, Any]:
    """Where a point is (the cell, its community and sub-district; null outside the grid) and
    the categories likely reported there: the handheld shows both before a report is sent."""
    city = console_of(request).city
    cell = city.locate(lon, lat)
    if cell is None:
        return {"cell": None, "likely": []}
    return {"cell": cell_props(city, cell.code), "likely": likely_categories(city, cell.code)}


@router.get("/api/events", tags=["console"])
async def events(
    request: Request,
    token: Annotated[str | None, Query(description="EventSource cannot send headers")] = None,
) -> StreamingResponse:
    """Server-sent events: a summary of every case event the caller may see (department
    staff: their department's; supervisors: their territory's), as it happens."""
    c = console_of(request)
    who = c.auth.verify(token) if token else c.auth.authenticate(request)

    async def stream() -> AsyncIterator[bytes]:
        STREAMS.inc()
        try:
            async for chunk in c.hub.stream(who, c.settings.sse_keepalive_s):
                if await request.is_disconnected():
                    break
                yield chunk
        finally:
            STREAMS.dec()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.api_route(
    "/api/{service}/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    tags=["console"],
)
async def proxy(service: str, path: str, request: Request, _: Caller) -> Response:
    """Forward to a service with the caller's own token: the service decides what the caller
    may do, exactly as when called directly."""
    c = console_of(request)
    base = c.settings.upstreams().get(service)
    if base is None:
        raise Refusal(f"no service {service!r}", field="service", code="not-found", status=404)
    if ".." in path.split("/"):
        raise Refusal("bad path", field="path", code="invalid", status=422)
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST}
    assert c.http is not None
    try:
        upstream = await c.http.request(
            request.method,
            f"{base.rstrip('/')}/{path}",
            params=list(request.query_params.multi_items()),
            content=await request.body(),
            headers=headers,
        )
    except httpx.HTTPError as exc:
        PROXIED.labels(service, "unreachable").inc()
        log.warning("service unreachable", service=service, error=str(exc))
        return JSONResponse(
            {
                "detail": [
                    {
                        "code": "service-unavailable",
                        "reason": f"{service} did not answer",
                        "field": "service",
                    }
                ]
            },
            status_code=503,
        )
    PROXIED.labels(service, str(upstream.status_code)).inc()
    passed = {k: v for k, v in upstream.headers.items() if k.lower() in FORWARDED_RESPONSE}
    return Response(upstream.content, status_code=upstream.status_code, headers=passed)


def create_app(console: Console) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await console.start()
        try:
            yield
        finally:
            await console.stop()

    app = FastAPI(
        title="gridloop console",
        description="The command-centre console: a web app over the five services' APIs.",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    app.state.console = console
    # current_principal (gridloop_runtime.auth) looks for the authenticator here.
    app.state.authenticator = console.auth
    install_refusal_handler(app)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Readiness: NATS is connected (for the live feed)."""
        checks = console.ready()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    check_routes([public_router, router])  # bodies decoded strictly (gridloop_runtime.inputs)
    app.include_router(public_router)  # before the proxy's /api/{service}/…: no login here
    app.include_router(router)
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    return app
