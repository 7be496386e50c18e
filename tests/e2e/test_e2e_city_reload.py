"""A new version of the city's data mid-run, with the five services as processes: routing
changes on `city.updated` without a restart — the case in flight keeps its unit, the next
case follows the new rule, scoring takes the version too — and a version that fails
validation is refused everywhere while the one in force stays."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
import yaml
from gridloop_city import City, load_city
from gridloop_city.versions import digest, release
from gridloop_devkit.devstack import LocalPostgres
from gridloop_devkit.launcher import Stack, nats_nodes_from_env, replicas_from_env
from gridloop_devkit.testing import process_stack, wait_for
from gridloop_runtime.livecity import announce

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo-city"
pytestmark = pytest.mark.asyncio(loop_scope="module")


def routed(dst: Path, dept: str) -> Path:
    """The demo city with cityscape events (E01*) routed to `dept`."""
    shutil.copytree(DEMO, dst)
    doc = yaml.safe_load((dst / "routing.yaml").read_text(encoding="utf-8"))
    for rule in doc["rules"]:
        if rule["category"] == "E01*" and rule["territory"] == "*":
            rule["dept"] = dept
    (dst / "routing.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return dst


@pytest.fixture(scope="module")
def versions(work_dir: Path) -> Path:
    root = work_dir / "ecity-versions"
    shutil.rmtree(root, ignore_errors=True)
    release(DEMO, root, "v1")
    return root


@pytest.fixture(scope="module")
def stack(pg_server: LocalPostgres, work_dir: Path, versions: Path) -> Iterator[Stack]:
    with process_stack(
        work_dir / "ecity",
        pg_server.create_database("ecity"),
        env={"LOG_LEVEL": "INFO", "CITY_VERSIONS_DIR": str(versions)},
        replicas=replicas_from_env(),
        nats_nodes=nats_nodes_from_env(),
    ) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def report(http: httpx.AsyncClient, stack: Stack, city: City, cell: str) -> str:
    """A trusted supervisor's patrol report of exposed garbage (E0104) in a cell: its case."""
    supervisor = city.supervisors_for(cell)
    assert supervisor is not None and city.users[supervisor[0]].trusted
    c = city.polygons[cell].centroid
    body = {
        "external_id": f"reload-{uuid.uuid4().hex[:8]}",
        "description": "人行道暴露垃圾",
        "location": {"lon": c.x, "lat": c.y},
        "category_code": "E0104",
    }
    r = await http.post(
        stack.urls("intake")[0] + "/reports", json=body, headers={"X-User": supervisor[0]}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["case_id"])


async def tasks(http: httpx.AsyncClient, stack: Stack, case_id: str) -> list[dict[str, Any]]:
    async def dispatched() -> list[dict[str, Any]] | None:
        r = await http.get(
            stack.urls("dispatch")[0] + f"/cases/{case_id}", headers={"X-User": "admin"}
        )
        if r.status_code != 200:
            return None
        found: list[dict[str, Any]] = r.json().get("tasks") or []
        return found or None

    result: list[dict[str, Any]] = await wait_for(
        dispatched, timeout=45, what=f"{case_id} dispatched"
    )
    return result


async def versions_in_use(http: httpx.AsyncClient, stack: Stack, service: str) -> set[str]:
    """The city versions a service's replicas report on /metrics."""
    out = set()
    for url in stack.urls(service):
        text = (await http.get(url + "/metrics")).text
        out |= set(
            re.findall(r'gridloop_city_version_info\{[^}]*version="([^"]+)"[^}]*\} 1\.0', text)
        )
    return out


async def test_routing_changes_mid_run_and_a_bad_version_is_refused(
    stack: Stack, versions: Path, http: httpx.AsyncClient, work_dir: Path
) -> None:
    city = load_city(DEMO)
    cells = sorted(city.cells_of_supervisor("sup-001"))
    assert await versions_in_use(http, stack, "dispatch") == {"v1"}
    in_flight = await report(http, stack, city, cells[0])
    [before] = await tasks(http, stack, in_flight)
    assert before["dept"] == "sanitation"

    nc = await nats.connect(stack.nats_servers)
    try:
        v2 = release(routed(work_dir / "ecity-v2", "urban-mgmt"), versions, "v2")
        await announce(nc, "v2", v2, note="E01* to urban management")

        async def everywhere(version: str) -> bool:
            for service in ("dispatch", "intake", "handling", "verify", "scoring"):
                if await versions_in_use(http, stack, service) != {version}:
                    return False
            return True

        await wait_for(lambda: everywhere("v2"), timeout=30, what="v2 in all five services")
        after = await report(http, stack, city, cells[-1])
        [task] = await tasks(http, stack, after)
        assert task["dept"] == "urban-mgmt"
        # the case in flight keeps the unit and deadline it was dispatched with
        assert [(t["dept"], t["deadline"]) for t in await tasks(http, stack, in_flight)] == [
            (before["dept"], before["deadline"])
        ]

        # v3 names a unit that does not exist (put in place past the release tool): refused
        bad = routed(versions / "v3", "no-such-dept")
        await announce(nc, "v3", digest(bad))

        async def refused() -> bool:
            for url in stack.urls("dispatch"):
                text = (await http.get(url + "/metrics")).text
                if 'outcome="refused",service="dispatch"} 1.0' not in text and (
                    'service="dispatch",outcome="refused"} 1.0' not in text
                ):
                    return False
            return True

        await wait_for(refused, timeout=30, what="v3 refused by dispatch")
        assert await everywhere("v2")
        third = await report(http, stack, city, cells[len(cells) // 2])
        [task] = await tasks(http, stack, third)
        assert task["dept"] == "urban-mgmt"
    finally:
        await nc.close()
