"""A third-party Open311 client (`georeport`, GeoReport v2 over HTTP with `requests`) reads
intake's Open311 as any city's: the service list, every service definition in JSON and XML,
and the requests a resident posted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from georeport import GeoReport
from gridloop_city import load_city
from gridloop_devkit.devstack import free_port
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.settings import IntakeSettings
from gridloop_runtime.clock import FakeClock

from .conftest import DEMO_CITY, T0

KEY = "demo-open311-key"


@pytest.fixture
async def open311_url(
    database_url: str, nats_url: str, s3_settings: dict[str, str]
) -> AsyncIterator[str]:
    """Intake served over HTTP on a port of its own (the client speaks real HTTP), its public
    rate limit raised for a client that reads all the definitions twice in a row."""
    settings = settings_for(
        "intake",
        database_url,
        nats_url,
        IntakeSettings,
        city_data_dir=str(DEMO_CITY),
        rate_limit_public_burst=1000,
        **s3_settings,
    )
    assert isinstance(settings, IntakeSettings)
    definition_, state = definition(settings)
    nc = await nats.connect(nats_url)
    try:
        async with running(settings, definition_, clock=FakeClock(T0), state=state) as rt:
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(rt.app(), host="127.0.0.1", port=port, log_level="warning")
            )
            serving = asyncio.create_task(server.serve())
            await wait_for(lambda: server.started, timeout=30, what="intake's HTTP port")
            try:
                yield f"http://127.0.0.1:{port}/open311/v2"
            finally:
                server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await serving
    finally:
        await nc.close()


async def call(fn: Any, *args: Any) -> Any:
    """The client blocks (requests): in a thread, while this loop serves it."""
    return await asyncio.to_thread(fn, *args)


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_the_georeport_client_reads_services_definitions_and_requests(
    open311_url: str, fmt: str
) -> None:
    client = GeoReport(open311_url, jurisdiction="110101", output_format=fmt)
    services = await call(client.get_service_list)
    codes = [s["service_code"] for s in services]
    # every category of the city is a service
    assert sorted(codes) == sorted(load_city(DEMO_CITY).categories) and "P0107" in codes
    for code in codes:
        d = await call(client.get_service_definition, code)
        assert d["service_code"] == code
        attrs = d["attributes"]["attribute"] if fmt == "xml" else d["attributes"]
        attrs = attrs if isinstance(attrs, list) else [attrs]  # xmltodict: one is no list
        assert attrs[0]["code"] == "urgency"
    lamp = await call(client.get_service_definition, "P0107")
    lamp_attrs = lamp["attributes"]["attribute"] if fmt == "xml" else lamp["attributes"]
    assert [a["code"] for a in lamp_attrs] == ["urgency", "part_code", "fault"]

    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            f"{open311_url}/requests.json",
            data={
                "api_key": KEY,
                "service_code": "P0107",
                "lat": "39.9000",
                "long": "116.4003",
                "description": "路灯不亮",
                "attribute[fault]": "dark",
            },
        )
    assert r.status_code == 201, r.text
    case_id = r.json()[0]["service_request_id"]
    got = await call(client.get_service_request, case_id)
    assert got["service_request_id"] == case_id and got["service_code"] == "P0107"
    assert got["status"] == "open"
    listed = await call(client.get_service_requests, None, "P0107")
    listed = listed if isinstance(listed, list) else [listed]
    assert case_id in [x["service_request_id"] for x in listed]
