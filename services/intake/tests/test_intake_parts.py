"""The parts registry over REST: a part by code, the nearest parts of a type around a point,
the parts of a cell, and a part's cases as far as the caller reads the case file; bad input
answered 422/404 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gridloop_city import Part
from gridloop_contracts.inbound import ReportV1

if TYPE_CHECKING:
    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
M_PER_DEG_LAT = 110_574


def registry(intake: Harness) -> dict[str, Part]:
    parts: dict[str, Part] = intake.rt.state[0].city.parts
    return parts


def by_part(external_id: str, part: Part) -> ReportV1:
    return ReportV1.model_validate(
        {
            "external_id": external_id,
            "description": "井盖破损",
            "reported_at": T0,
            "part_code": part.code,
            "reporter_user_id": "sup-002",
        }
    )


def first(r: Any) -> dict[str, Any]:
    detail: dict[str, Any] = r.json()["detail"][0]
    return detail


async def test_a_part_by_code_by_point_and_by_cell(intake: Harness) -> None:
    part = next(p for p in registry(intake).values() if p.category_code == "P0107")
    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        r = await http.get(f"/parts/{part.code}", headers=operator)
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["code"], got["cell_code"], got["owner_dept"]) == (
            part.code,
            part.cell_code,
            part.owner_dept,
        )
        assert got["owner_name"] == "区路灯管理所" and got["category_name"] == "路灯"
        assert got["community_code"] == part.cell_code[:12]

        # 30 m south of the lamp: it is the nearest lamp within 50 m
        lat = part.lat - 30 / M_PER_DEG_LAT
        r = await http.get(
            f"/parts/near?lon={part.lon}&lat={lat}&category=P0107&within_m=50", headers=operator
        )
        assert r.status_code == 200, r.text
        near = r.json()["parts"]
        assert near[0]["code"] == part.code and abs(near[0]["distance_m"] - 30) < 1
        assert all(p["category_code"] == "P0107" for p in near)
        assert [p["distance_m"] for p in near] == sorted(p["distance_m"] for p in near)
        r = await http.get(
            f"/parts/near?lon={part.lon}&lat={lat}&category=P0107&within_m=20", headers=operator
        )
        assert part.code not in [p["code"] for p in r.json()["parts"]]

        r = await http.get(f"/parts?cell={part.cell_code}", headers=operator)
        codes = [p["code"] for p in r.json()["parts"]]
        assert part.code in codes and codes == sorted(codes)
        assert all(p["cell_code"] == part.cell_code for p in r.json()["parts"])


async def test_a_parts_cases_follow_the_case_files_reading_rule(intake: Harness) -> None:
    covers = [p for p in registry(intake).values() if p.category_code == "P0101"]
    part = next(p for p in covers if p.cell_code.startswith("110101001"))
    other = next(p for p in covers if p.code != part.code)
    await intake.publish("intake.patrol.patrol-app", by_part("part-1", part))
    await intake.publish("intake.patrol.patrol-app", by_part("part-2", part))
    await intake.publish("intake.patrol.patrol-app", by_part("part-3", other))
    mine = {await intake.case_of("patrol-app", x) for x in ("part-1", "part-2")}
    await intake.case_of("patrol-app", "part-3")

    async with intake.client() as http:

        async def cases(headers: dict[str, str]) -> tuple[int, list[str]]:
            r = await http.get(f"/parts/{part.code}/cases", headers=headers)
            if r.status_code != 200:
                return r.status_code, []
            body = r.json()
            assert body["part"]["code"] == part.code
            assert body["total"] == len(body["cases"])
            # the part's state: a case about it still open (as far as the caller reads)
            assert body["state"] == ("open" if body["cases"] else "normal")
            return 200, sorted(c["case_id"] for c in body["cases"])

        assert await cases(intake.headers("op-01", "operator")) == (200, sorted(mine))
        # a grid head reads the cases of their own sub-district only
        here = intake.headers("gh", "grid-head", territory=("110101001",))
        away = intake.headers("gh", "grid-head", territory=("110101005",))
        assert await cases(here) == (200, sorted(mine))
        assert await cases(away) == (200, [])
        # the owner's department sees its own cases (none dispatched yet), others none
        owner = intake.headers("w", "department", dept=part.owner_dept)
        assert await cases(owner) == (200, [])
        # a role that reads no case file is refused as such
        assert (await cases(intake.headers("x", "reporter")))[0] == 403


async def test_bad_registry_questions_are_answered_by_field(intake: Harness) -> None:
    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        r = await http.get("/parts/1101019999999999", headers=operator)
        assert r.status_code == 404 and first(r)["field"] == "code"
        r = await http.get("/parts?cell=123", headers=operator)
        assert r.status_code == 404 and first(r)["field"] == "query.cell"
        r = await http.get("/parts", headers=operator)
        assert r.status_code == 422 and first(r)["field"] == "query.cell"
        r = await http.get("/parts/near?lon=516.4&lat=39.9", headers=operator)
        assert r.status_code == 422 and first(r)["field"] == "query.lon"
        r = await http.get("/parts/near?lon=116.4&lat=39.9&within_m=99999", headers=operator)
        assert r.status_code == 422 and first(r)["field"] == "query.within_m"
        r = await http.get("/parts/near?lon=116.4&lat=39.9&category=E0101", headers=operator)
        assert r.status_code == 422 and first(r)["field"] == "query.category"
        r = await http.get("/parts/near?lon=nan&lat=39.9", headers=operator)
        assert r.status_code == 422 and first(r)["field"] == "query.lon"
        r = await http.get("/parts/1101010101000001")
        assert r.status_code == 401


async def test_the_parts_in_a_map_view_one_by_one_or_in_clusters(intake: Harness) -> None:
    parts = registry(intake)
    lamp = next(p for p in parts.values() if p.category_code == "P0107")
    box = (lamp.lon - 0.004, lamp.lat - 0.003, lamp.lon + 0.004, lamp.lat + 0.003)
    inside = sorted(
        p.code for p in parts.values() if box[0] <= p.lon <= box[2] and box[1] <= p.lat <= box[3]
    )
    q = f"/parts/box?west={box[0]}&south={box[1]}&east={box[2]}&north={box[3]}"
    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        r = await http.get(q, headers=operator)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == len(inside) and body["clusters"] == []
        assert [p["code"] for p in body["parts"]] == inside
        got = next(p for p in body["parts"] if p["code"] == lamp.code)
        assert got["major_code"] == "P01" and (got["lon"], got["lat"]) == (lamp.lon, lamp.lat)
        r = await http.get(q + "&category=P0107", headers=operator)
        lamps = [p["code"] for p in r.json()["parts"]]
        assert lamp.code in lamps and all(parts[c].category_code == "P0107" for c in lamps)

        # the whole district: 23,220 parts come as at most 16 x 16 clusters
        d = intake.rt.state[0].city.district.bbox
        whole = f"/parts/box?west={d[0]}&south={d[1]}&east={d[2]}&north={d[3]}&limit=500"
        body = (await http.get(whole, headers=operator)).json()
        assert body["total"] == len(parts) and body["parts"] == []
        assert 1 < len(body["clusters"]) <= 256
        assert sum(c["count"] for c in body["clusters"]) == len(parts)
        assert all(sum(c["majors"].values()) == c["count"] for c in body["clusters"])

        # territory: a grid head their sub-district's parts, a department the parts it owns
        sub = lamp.cell_code[:9]
        head = intake.headers("gh", "grid-head", territory=(sub,))
        body = (await http.get(whole + "&limit=2000", headers=head)).json()
        ours = [p for p in parts.values() if p.cell_code.startswith(sub)]
        assert body["total"] == len(ours)
        lighting = intake.headers("l", "department", dept="lighting")
        body = (await http.get(q, headers=lighting)).json()
        assert {parts[p["code"]].owner_dept for p in body["parts"]} == {"lighting"}
        assert (await http.get(q, headers=intake.headers("x", "reporter"))).status_code == 403

        # a box turned inside out, a part type that is none: 422 naming the field
        r = await http.get(
            f"/parts/box?west={box[2]}&south={box[1]}&east={box[0]}&north={box[3]}",
            headers=operator,
        )
        assert r.status_code == 422 and first(r)["field"] == "query.east"
        r = await http.get(q + "&category=E0104", headers=operator)
        assert r.status_code == 422 and first(r)["field"] == "query.category"
        r = await http.get(q.replace(f"north={box[3]}", "north=x"), headers=operator)
        assert r.status_code == 422 and first(r)["field"] == "query.north"
