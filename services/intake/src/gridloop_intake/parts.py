"""The parts registry (部件, CJ/T 214) over REST: a part by its code, the nearest parts of a type
around a point, the parts of a cell, and a part's history of cases.

Intake serves it because intake already answers these questions for every report (a report by
part code is located and owned through the registry) and keeps the case file, so a part's
cases are one indexed query here; elsewhere they would need another projection of CASES. The
registry itself is city data (`parts.csv`, `gridloop_city.City.parts_*`), read by any
signed-in user; a part's cases follow the case file's reading rule (gridloop_runtime.access:
the caller's territory, a department its own cases).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from gridloop_city import Part
from gridloop_runtime import access
from gridloop_runtime.auth import CurrentPrincipal
from gridloop_runtime.commands import Refusal
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.service import runtime_of
from pydantic import BaseModel, Field

from . import repository as repo
from .api import READERS, case_view, intake_of, scope
from .context import Intake

router = APIRouter(tags=["parts"], route_class=JSONRoute)

#: The widest search around a point (a street block): the registry is not a map tile server.
MAX_RADIUS_M = 2_000.0
#: The most parts one map view gets one by one; past it, counts in a grid of clusters.
MAX_BOX_PARTS = 2_000


class PartView(BaseModel):
    """A part as the registry knows it: what, where, and who owns it (the unit its cases go to)."""

    code: str
    category_code: str
    category_name: str
    name: str
    lon: float
    lat: float
    cell_code: str
    community_code: str
    subdistrict_code: str
    owner_dept: str
    owner_name: str


class PartNear(PartView):
    distance_m: float = Field(description="from the asked point, metres")


class PartList(BaseModel):
    parts: list[PartView]


class PartsNear(BaseModel):
    parts: list[PartNear] = Field(description="nearest first")


class PartCases(BaseModel):
    part: PartView
    state: str = Field(
        description="'open' when a case about the part is still open (as far as the caller "
        "reads the case file), else 'normal'"
    )
    total: int
    cases: list[dict[str, Any]]


class PartPoint(BaseModel):
    """A part on the map: enough to draw and colour it; the rest by its code."""

    code: str
    category_code: str
    major_code: str
    lon: float
    lat: float


class PartCluster(BaseModel):
    """Parts too many to draw one by one: how many around a point, and of which classes."""

    lon: float
    lat: float
    count: int
    majors: dict[str, int] = Field(description="count per part class (P01 … P06)")


class PartsInBox(BaseModel):
    total: int = Field(description="parts in the box the caller reaches")
    parts: list[PartPoint] = Field(description="every one of them, when at most `limit`")
    clusters: list[PartCluster] = Field(description="else counts in a grid over the box")


def view(intake: Intake, part: Part) -> dict[str, Any]:
    cell = intake.city.cells[part.cell_code]
    return {
        **part.model_dump(),
        "category_name": intake.category_name(part.category_code),
        "community_code": cell.community_code,
        "subdistrict_code": cell.subdistrict_code,
        "owner_name": intake.dept_name(part.owner_dept),
    }


def _part(intake: Intake, code: str) -> Part:
    part = intake.city.part(code)
    if part is None:
        raise Refusal(f"no part {code!r}", field="code", code="not-found", status=404)
    return part


@router.get("/parts/near", response_model=PartsNear)
async def parts_near(
    request: Request,
    who: CurrentPrincipal,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    within_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M)] = 50.0,
    category: Annotated[str | None, Query(description="a part category (P0107)")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Parts within `within_m` metres of a point, of one category if given, nearest first."""
    intake = intake_of(runtime_of(request))
    if category is not None:
        cat = intake.city.category(category)
        if cat is None or cat.kind != "part":
            raise Refusal(f"not a part category: {category!r}", field="query.category", status=422)
    found = intake.city.parts_near(lon, lat, within_m, category, limit)
    return {
        "parts": [{**view(intake, p), "distance_m": round(d, 1)} for p, d in found],
    }


@router.get("/parts/box", response_model=PartsInBox)
async def parts_in_box(
    request: Request,
    who: CurrentPrincipal,
    west: Annotated[float, Query(ge=-180, le=180)],
    south: Annotated[float, Query(ge=-90, le=90)],
    east: Annotated[float, Query(ge=-180, le=180)],
    north: Annotated[float, Query(ge=-90, le=90)],
    category: Annotated[str | None, Query(description="a part category (P0107)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BOX_PARTS)] = 1_000,
    grid: Annotated[int, Query(ge=1, le=64, description="clusters across and down")] = 16,
) -> dict[str, Any]:
    """The parts in a map's view (a lon/lat box), within the caller's reach: the command side,
    grid heads and supervisors their territory, department staff the parts their department
    owns. At most `limit` one by one; more come as clusters (counts in a `grid` × `grid`
    partition of the box, each at the mean position of its parts)."""
    if east < west:
        raise Refusal("east is west of west", field="query.east", status=422)
    if north < south:
        raise Refusal("north is south of south", field="query.north", status=422)
    intake = intake_of(runtime_of(request))
    if category is not None:
        cat = intake.city.category(category)
        if cat is None or cat.kind != "part":
            raise Refusal(f"not a part category: {category!r}", field="query.category", status=422)
    reach = access.list_reach(who, READERS, departments=True, what="parts")
    found = [
        p
        for p in intake.city.parts_in_box(west, south, east, north)
        if (category is None or p.category_code == category)
        and (
            p.owner_dept == reach.dept
            if reach.dept is not None
            else reach.prefixes is None or p.cell_code.startswith(reach.prefixes)
        )
    ]
    if len(found) <= limit:
        points = [
            {
                "code": p.code,
                "category_code": p.category_code,
                "major_code": p.category_code[:3],
                "lon": p.lon,
                "lat": p.lat,
            }
            for p in found
        ]
        return {"total": len(found), "parts": points, "clusters": []}
    return {
        "total": len(found),
        "parts": [],
        "clusters": clusters(found, west, south, east, north, grid),
    }


def clusters(
    parts: list[Part], west: float, south: float, east: float, north: float, grid: int
) -> list[dict[str, Any]]:
    """Parts counted in a grid × grid partition of the box, each cluster at its parts' mean."""
    dx = (east - west) / grid or 1.0
    dy = (north - south) / grid or 1.0
    cells: dict[tuple[int, int], list[Any]] = {}
    for p in parts:
        key = (min(int((p.lon - west) / dx), grid - 1), min(int((p.lat - south) / dy), grid - 1))
        acc = cells.setdefault(key, [0.0, 0.0, 0, {}])
        acc[0] += p.lon
        acc[1] += p.lat
        acc[2] += 1
        major = p.category_code[:3]
        acc[3][major] = acc[3].get(major, 0) + 1
    return [
        {
            "lon": round(x / n, 6),
            "lat": round(y / n, 6),
            "count": n,
            "majors": dict(sorted(majors.items())),
        }
        for (_, _), (x, y, n, majors) in sorted(cells.items())
    ]


@router.get("/parts", response_model=PartList)
async def parts_of_cell(
    request: Request,
    who: CurrentPrincipal,
    cell: Annotated[str, Query(description="the cell's code (CJ/T 213)")],
) -> dict[str, Any]:
    """The parts registered in a cell (网格内部件)."""
    intake = intake_of(runtime_of(request))
    if intake.city.cell(cell) is None:
        raise Refusal(f"no cell {cell!r}", field="query.cell", code="not-found", status=404)
    return {"parts": [view(intake, p) for p in intake.city.parts_of_cell(cell)]}


@router.get("/parts/{code}", response_model=PartView)
async def get_part(code: str, request: Request, who: CurrentPrincipal) -> dict[str, Any]:
    """A part by its code: name, place, cell and owner."""
    intake = intake_of(runtime_of(request))
    return view(intake, _part(intake, code))


@router.get("/parts/{code}/cases", response_model=PartCases)
async def part_cases(
    code: str,
    request: Request,
    who: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    """The part's history of cases, newest first, as far as the caller may read the case file."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    part = _part(intake, code)
    reach = scope(who)
    query = repo.CaseQuery(
        part_code=part.code,
        territory=reach.prefixes,
        only_dept=reach.dept,
        limit=limit,
        offset=offset,
    )
    still_open = repo.CaseQuery(
        part_code=part.code,
        territory=reach.prefixes,
        only_dept=reach.dept,
        open=True,
        limit=1,
    )
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        rows, total = await repo.search(conn, query)
        _, n_open = await repo.search(conn, still_open)
    return {
        "part": view(intake, part),
        "state": "open" if n_open else "normal",
        "total": total,
        "cases": [case_view(intake, c) for c in rows],
    }
