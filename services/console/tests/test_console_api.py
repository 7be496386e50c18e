"""The console's backend without a browser: login, the cells as GeoJSON, the proxy passing the
caller's token on, and the live feed from a real nats-server filtered per principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import nats
import orjson
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from gridloop_console.app import Console, create_app
from gridloop_console.events import EventHub, may_see, summarise
from gridloop_console.settings import ConsoleSettings
from gridloop_devkit.testing import wait_for
from gridloop_runtime.auth import AuthSettings, Principal, issue_token

DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
CELL = "1101010010010013"  # in community 110101001001, sub-district 110101001


def settings(nats_url: str = "nats://127.0.0.1:1", **extra: Any) -> ConsoleSettings:
    values: dict[str, Any] = {"NATS_URL": nats_url, "CITY_DATA_DIR": str(DEMO_CITY)}
    values.update(extra)
    return ConsoleSettings.model_validate(values)


def echo_app() -> FastAPI:
    """A stand-in service that answers with what it was sent."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def echo(path: str, request: Request) -> Any:
        if request.query_params.get("store") == "down":  # as a service whose store is down
            return JSONResponse({"detail": []}, status_code=503, headers={"Retry-After": "30"})
        return {
            "path": path,
            "method": request.method,
            "query": dict(request.query_params),
            "authorization": request.headers.get("authorization"),
            "cookie": request.headers.get("cookie"),
            "body": (await request.body()).decode(errors="replace"),
        }

    return app


@pytest_asyncio.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, nats_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("AUTH_MODE", "dev")
    console = Console.load(settings(nats_url))
    app = create_app(console)
    await console.start()
    # The services are stood in for by an echo app: what matters is what the console sends.
    assert console.http is not None
    await console.http.aclose()
    console.http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=echo_app()), base_url="http://upstream"
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
        await wait_for(lambda: console.ready()["nats"], timeout=10, what="console on NATS")
        c.console = console  # type: ignore[attr-defined]
        yield c
    await console.stop()


async def login(client: httpx.AsyncClient, user: str) -> str:
    r = await client.post("/api/login", json={"user_id": user, "password": "x"})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


async def test_dev_login_issues_a_token_with_the_users_roles(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/login", json={"user_id": "sanitation-ops", "password": "any"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["roles"] == ["department"]
    assert body["user"]["dept"] == "sanitation"
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == "sanitation-ops" and claims["dept"] == "sanitation"
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json()["id"] == "sanitation-ops"
    # a pasted token is taken as it is
    again = await client.post("/api/login", json={"token": body["token"]})
    assert again.json()["user"]["id"] == "sanitation-ops"
    # the user's territory travels explicitly: a token without one would reach no territory
    head = await client.post("/api/login", json={"user_id": "gh-0010010001", "password": "x"})
    claims = jwt.decode(head.json()["token"], options={"verify_signature": False})
    assert claims["territory"] == ["1101010010010001", "1101010010010002"]
    lead = await client.post("/api/login", json={"user_id": "lead-01", "password": "x"})
    assert lead.json()["user"]["territory"] == ["*"]


async def test_login_refuses_unknown_users_and_bad_tokens(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/login", json={"user_id": "nobody", "password": "x"})
    assert r.status_code == 401
    assert r.json()["detail"][0]["field"] == "user_id"
    r = await client.post("/api/login", json={"token": "not-a-jwt-at-all"})
    assert r.status_code == 401
    r = await client.get("/api/me")
    assert r.status_code == 401


async def test_jwt_mode_takes_only_tokens(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    console: Console = client.console  # type: ignore[attr-defined]
    monkeypatch.setattr(console.auth.settings, "mode", "jwt")
    r = await client.post("/api/login", json={"user_id": "op-01", "password": "x"})
    assert r.status_code == 401 and r.json()["detail"][0]["field"] == "token"
    config = (await client.get("/api/config")).json()
    assert config["auth_mode"] == "jwt" and "demo_users" not in config
    token = issue_token(AuthSettings(), user_id="op-01", roles=["operator"])
    r = await client.post("/api/login", json={"token": token})
    assert r.status_code == 200 and r.json()["user"]["roles"] == ["operator"]


async def test_cells_as_geojson_with_their_community_and_subdistrict(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/geo/cells")).status_code == 401
    token = await login(client, "op-01")
    r = await client.get("/api/geo/cells", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    geo = r.json()
    assert geo["type"] == "FeatureCollection"
    assert len(geo["features"]) == 4601  # the demo city's 17 sub-districts
    cell = next(f for f in geo["features"] if f["id"] == CELL)
    assert cell["geometry"]["type"] == "Polygon"
    props = cell["properties"]
    assert props["community_code"] == "110101001001" and props["subdistrict_code"] == "110101001"
    assert props["community_name"] and props["subdistrict_name"]


async def test_proxy_passes_the_callers_token_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    token = await login(client, "disp-01")
    auth = {"Authorization": f"Bearer {token}", "Cookie": "secret=1"}
    r = await client.get("/api/dispatch/board?view=late&limit=5", headers=auth)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["path"] == "board" and seen["query"] == {"view": "late", "limit": "5"}
    assert seen["authorization"] == f"Bearer {token}"
    assert seen["cookie"] is None
    r = await client.post("/api/intake/cases/x/accept", headers=auth, json={"command_id": "c1"})
    assert r.json()["method"] == "POST" and orjson.loads(r.json()["body"]) == {"command_id": "c1"}
    # no token, no forwarding; no such service; a path that climbs out
    assert (await client.get("/api/dispatch/board")).status_code == 401
    assert (await client.get("/api/nowhere/x", headers=auth)).status_code == 404
    assert (await client.get("/api/intake/a/../../admin", headers=auth)).status_code in (404, 422)


async def test_proxy_carries_an_upload_and_the_answer_to_retry_later(
    client: httpx.AsyncClient,
) -> None:
    token = await login(client, "sup-001")
    auth = {"Authorization": f"Bearer {token}"}
    files = {"file": ("p.jpg", b"\xff\xd8\xff-bytes", "image/jpeg")}
    r = await client.post("/api/intake/attachments", headers=auth, files=files)
    seen = r.json()
    assert seen["path"] == "attachments" and seen["method"] == "POST"
    assert 'name="file"; filename="p.jpg"' in seen["body"] and "-bytes" in seen["body"]
    r = await client.post("/api/intake/attachments?store=down", headers=auth, files=files)
    assert r.status_code == 503 and r.headers["retry-after"] == "30"


async def test_locate_names_the_cell_and_what_is_likely_reported_there(
    client: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {await login(client, 'sup-001')}"}
    r = await client.get("/api/locate", params={"lat": 39.9, "lon": 116.4003}, headers=auth)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["cell"]["code"] == "1101010010010030"
    assert found["cell"]["community_code"] == "110101001001" and found["cell"]["name"]
    city = client.console.city  # type: ignore[attr-defined]
    assert 1 <= len(found["likely"]) <= 6 and set(found["likely"]) <= set(city.categories)
    assert len(set(found["likely"])) == len(found["likely"])
    r = await client.get("/api/locate", params={"lat": 31.2, "lon": 121.5}, headers=auth)
    assert r.json() == {"cell": None, "likely": []}
    r = await client.get("/api/locate", params={"lat": 99, "lon": 116.4}, headers=auth)
    assert r.status_code == 422
    assert (await client.get("/api/locate", params={"lat": 39.9, "lon": 116.4})).status_code == 401


def test_likely_categories_follow_the_cells_parts_and_entry_list() -> None:
    from gridloop_city import load_city
    from gridloop_console.geo import likely_categories

    city = load_city(DEMO_CITY)
    with_parts = next(p.cell_code for p in city.parts.values())
    parts_here = {p.category_code for p in city.parts.values() if p.cell_code == with_parts}
    likely = likely_categories(city, with_parts, limit=20)
    assert set(likely[: len(parts_here)]) == parts_here
    listed = next((c for c in city.cells.values() if c.entry_list is not None), None)
    if listed is not None:
        assert set(likely_categories(city, listed.code, limit=50)) <= set(listed.entry_list or ())


async def test_the_handheld_is_installable_and_works_offline(client: httpx.AsyncClient) -> None:
    r = await client.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/manifest+json"
    )
    manifest = r.json()
    assert manifest["start_url"] and manifest["display"] == "standalone" and manifest["icons"]
    sw = await client.get("/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
    page = (await client.get("/")).text
    assert 'rel="manifest"' in page


async def test_proxy_answers_503_when_a_service_is_down(client: httpx.AsyncClient) -> None:
    console: Console = client.console  # type: ignore[attr-defined]
    assert console.http is not None
    await console.http.aclose()
    console.http = httpx.AsyncClient(timeout=1)
    console.settings.scoring_url = "http://127.0.0.1:1"
    token = await login(client, "eval-01")
    r = await client.get("/api/scoring/rankings", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503
    assert r.json()["detail"][0]["code"] == "service-unavailable"


def principal(
    user: str, roles: set[str], dept: str | None = None, territory: tuple[str, ...] = ("*",)
) -> Principal:
    return Principal(user_id=user, roles=frozenset(roles), dept=dept, territory=territory)


def test_who_sees_which_event() -> None:
    dispatched = summarise(
        "case.dispatched",
        {"ce-type": "gridloop.case.dispatched.v1"},
        {
            "case_id": "c1",
            "dept": "sanitation",
            "co_handlers": ["urban-mgmt"],
            "cell_code": CELL,
            "community_code": "110101001001",
            "reporter": {"name": "张*", "phone": "138****5678"},
        },
    )
    assert dispatched["event"] == "dispatched" and "reporter" not in dispatched
    assert may_see(principal("op-01", {"operator"}), dispatched)
    assert may_see(principal("s", {"department"}, "sanitation"), dispatched)
    assert may_see(principal("u", {"department"}, "urban-mgmt"), dispatched)
    assert not may_see(principal("w", {"department"}, "water"), dispatched)
    assert not may_see(principal("x", {"department"}), dispatched)
    assert may_see(principal("sup", {"supervisor"}, territory=("110101001",)), dispatched)
    assert not may_see(principal("sup", {"supervisor"}, territory=("110101002",)), dispatched)
    assert not may_see(principal("gh", {"grid-head"}, territory=("1101010010010001",)), dispatched)
    assert may_see(principal("admin", {"admin"}), dispatched)
    # no territory in the token: no territory's events
    assert not may_see(principal("op-02", {"operator"}, territory=()), dispatched)
    assert not may_see(principal("root", {"admin"}, territory=()), dispatched)


async def test_live_feed_from_the_bus_is_filtered_per_principal(
    client: httpx.AsyncClient, nats_url: str
) -> None:
    console: Console = client.console  # type: ignore[attr-defined]
    hub: EventHub = console.hub
    sanitation = principal("sanitation-ops", {"department"}, "sanitation")
    water = principal("water-ops", {"department"}, "water")
    far = principal("sup-x", {"supervisor"}, territory=("110101008",))
    near = principal("sup-002", {"supervisor"}, territory=("110101001",))
    nc = await nats.connect(nats_url)
    try:
        with (
            hub.listen(sanitation) as s,
            hub.listen(water) as w,
            hub.listen(far) as f,
            hub.listen(near) as n,
        ):
            data = {"case_id": "c9", "dept": "sanitation", "cell_code": CELL, "deadline": None}
            headers = {"ce-type": "gridloop.case.dispatched.v1", "ce-id": "e1"}
            await nc.publish("case.dispatched", orjson.dumps(data), headers=headers)
            await nc.flush()
            await wait_for(lambda: s.queue.qsize() == 1 and n.queue.qsize() == 1, timeout=10)
            event = s.queue.get_nowait()
            assert event["case_id"] == "c9" and event["event"] == "dispatched"
            assert event["type"] == "gridloop.case.dispatched.v1"
            assert w.queue.empty() and f.queue.empty()
    finally:
        await nc.close()


async def test_event_stream_speaks_server_sent_events() -> None:
    hub = EventHub()
    who = principal("op-01", {"operator"})
    stream = hub.stream(who, keepalive_s=0.05)
    assert (await anext(stream)).startswith(b"retry:")
    assert await anext(stream) == b": keep-alive\n\n"
    hub.publish({"event": "closed", "case_id": "c1", "cell_code": CELL})
    chunk = await anext(stream)
    assert chunk.startswith(b"event: case\ndata: ")
    assert orjson.loads(chunk.split(b"data: ", 1)[1])["case_id"] == "c1"
    hub.closed.set()
    with pytest.raises(StopAsyncIteration):
        while True:
            await anext(stream)


async def test_the_contract_page_is_public(client: httpx.AsyncClient) -> None:
    """Integrators read the bus contract without an account (make schemas renders it)."""
    r = await client.get("/contract/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for shown in ("intake.hotline.{source}", "gridloop.report.v1", "dispatch.{dept}.assigned"):
        assert shown in r.text
    assert (await client.get("/contract", follow_redirects=True)).status_code == 200


def test_a_copy_of_an_event_reaches_each_listener_once() -> None:
    """The outbox publishes again what it could not mark sent: JetStream keeps one copy, but
    the console's core subscription hears both, and passes the event on once."""
    hub = EventHub(remember=2)
    data = orjson.dumps({"case_id": "c1", "cell_code": CELL})
    with hub.listen(principal("op-01", {"operator"})) as op:
        assert hub.deliver("case.closed", {"ce-id": "e1"}, data) == 1
        assert hub.deliver("case.closed", {"ce-id": "e1"}, data) == 0  # the copy
        assert hub.deliver("case.closed", {"ce-id": "e2"}, data) == 1
        assert hub.deliver("case.closed", {"ce-id": "e3"}, data) == 1
        # beyond what it remembers, the oldest id is forgotten
        assert hub.deliver("case.closed", {"ce-id": "e1"}, data) == 1
        assert [op.queue.get_nowait()["id"] for _ in range(op.queue.qsize())] == [
            "e1",
            "e2",
            "e3",
            "e1",
        ]
    assert hub.copies == 1
