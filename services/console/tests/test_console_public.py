"""The residents' side of the console without a browser: no login on /api/public/…, a report
goes to Open311 under the console's key with nothing of the caller's headers but the
address, bad input is 422 naming the page's field (Open311's 400 translated), every route is
limited per address. Intake is stood in for by a small Open311 answering as intake does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from gridloop_console.app import Console, create_app
from gridloop_console.public import field_of

from .test_console_api import settings

SENT: list[dict[str, Any]] = []


def open311_app() -> FastAPI:
    """Intake's public side as the console sees it: Open311's list and POST, the public case."""
    app = FastAPI()

    def seen(request: Request, body: str = "") -> None:
        SENT.append(
            {
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "form": {k: v[0] for k, v in parse_qs(body).items()},
            }
        )

    @app.post("/open311/v2/requests.json")
    async def post(request: Request) -> Any:
        body = (await request.body()).decode()
        seen(request, body)
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if form.get("api_key") != "city-key":
            return JSONResponse([{"code": 403, "description": "api_key: missing"}], 403)
        if form["service_code"] == "X9":
            return JSONResponse([{"code": 400, "description": "service_code: 'X9' not found"}], 400)
        if "@" not in form.get("email", "@"):
            return JSONResponse([{"code": 400, "description": "email: not an e-mail address"}], 400)
        return JSONResponse([{"service_request_id": "c-1", "token": "r-1"}], 201)

    @app.get("/open311/v2/requests.json")
    async def listing(request: Request) -> Any:
        seen(request)
        return [{"service_request_id": "c-1", "status": "open", "lat": 39.9, "long": 116.4}]

    @app.get("/public/cases/{case_id}")
    async def case(case_id: str, request: Request) -> Any:
        seen(request)
        if case_id != "c-1":
            return JSONResponse({"detail": [{"field": "case_id", "code": "not-found"}]}, 404)
        return {"case_id": case_id, "status": "closed", "steps": []}

    return app


@asynccontextmanager
async def public_client(nats_url: str, key: str = "city-key") -> AsyncIterator[httpx.AsyncClient]:
    """The console with intake stood in for, called from the address 203.0.113.7."""
    console = Console.load(
        settings(
            nats_url,
            CONSOLE_OPEN311_API_KEY=key,
            RATE_LIMIT_PUBLIC_BURST="20",
            RATE_LIMIT_PUBLIC_PER_S="0.1",
        )
    )
    app = create_app(console)
    await console.start()
    assert console.http is not None
    await console.http.aclose()
    console.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=open311_app()))
    SENT.clear()
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
            yield c
    finally:
        await console.stop()


@pytest_asyncio.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, nats_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("AUTH_MODE", "dev")
    async with public_client(nats_url) as c:
        yield c


REPORT = {
    "category": "E0104",
    "description": "人行道上有暴露垃圾",
    "lat": 39.9001,
    "lon": 116.4003,
    "email": "li@example.org",
    "name": "李四",
    "phone": "13800000000",
    "lang": "zh",
}


async def test_the_public_page_and_its_reads_need_no_login(client: httpx.AsyncClient) -> None:
    page = await client.get("/public/")
    assert page.status_code == 200 and "/js/public.js" in page.text
    config = (await client.get("/api/public/config")).json()
    e0104 = next(c for c in config["categories"] if c["code"] == "E0104")
    assert e0104["name"] and e0104["name_en"]
    assert "demo_users" not in config  # nothing of the console's sign-in
    cells = await client.get("/api/public/cells")
    assert cells.status_code == 200 and cells.json()["features"]
    listed = await client.get("/api/public/requests", params={"status": "open", "x": "1"})
    assert listed.status_code == 200 and listed.json()[0]["service_request_id"] == "c-1"
    assert SENT[-1]["query"] == {"status": "open"}  # only the filters the page has
    assert (await client.get("/api/public/cases/c-1")).json()["status"] == "closed"
    missing = await client.get("/api/public/cases/nope")
    assert missing.status_code == 404


async def test_a_report_goes_to_open311_under_the_consoles_key_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/api/public/requests",
        json=REPORT,
        headers={"Authorization": "Bearer someone", "Cookie": "s=1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["service_request_id"] == "c-1"
    assert r.json()["case_url"] == "/public/#/case/c-1"
    sent = SENT[-1]
    assert sent["form"] == {
        "api_key": "city-key",
        "service_code": "E0104",
        "description": "人行道上有暴露垃圾",
        "lat": "39.9001",
        "long": "116.4003",
        "email": "li@example.org",
        "first_name": "李四",
        "phone": "13800000000",
        "lang": "zh",
    }
    assert "authorization" not in sent["headers"] and "cookie" not in sent["headers"]
    assert sent["headers"]["x-forwarded-for"] == "203.0.113.7"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": ""}, "description"),
        ({"lat": None, "lon": None}, "location"),
        ({"lon": None}, "location"),
        ({"lat": 91}, "lat"),
        ({"category": "X9"}, "category"),
        ({"email": "not-an-address"}, "email"),
        ({"photo": "x"}, "photo"),
    ],
)
async def test_bad_input_is_422_naming_the_pages_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**REPORT, **change}.items() if v is not None}
    r = await client.post("/api/public/requests", json=body)
    assert r.status_code == 422, r.text
    first = r.json()["detail"][0]
    named = first.get("field") or ".".join(str(p) for p in first["loc"] if p != "body")
    assert named == field, first


async def test_a_wrong_key_in_the_console_is_not_the_residents_fault(nats_url: str) -> None:
    async with public_client(nats_url, key="stale") as client:
        r = await client.post("/api/public/requests", json=REPORT)
    assert r.status_code == 503 and r.json()["detail"][0]["code"] == "service-unavailable"


async def test_the_public_routes_are_limited_per_address(client: httpx.AsyncClient) -> None:
    answers = [(await client.get("/api/public/config")).status_code for _ in range(25)]
    assert answers[:20] == [200] * 20 and answers[-1] == 429


def test_open311s_field_names_become_the_forms() -> None:
    assert field_of("service_code: 'X9' not found") == ("category", "'X9' not found")
    assert field_of("lat/long: outside the district (outside-grid)")[0] == "location"
    assert field_of("address_string: too long") == ("address", "too long")
    assert field_of("email: not an e-mail address") == ("email", "not an e-mail address")
    assert field_of("something odd") == ("request", "something odd")
