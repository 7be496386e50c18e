"""The demo city loads fast, meets the minima, is what the generator writes, and answers the
services' questions (locate, route, entry list, registers, supervisors) on known examples."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
from pathlib import Path

import pytest
import shapely
from gridloop_city import City, distance_m, haversine_m, load_city, loader
from gridloop_city.loader import category_rank
from gridloop_city.models import ManualRoute, Route

REPO = Path(__file__).resolve().parents[3]
ROOT = REPO / "data" / "demo-city"

INSIDE = (116.4003, 39.9000)  # cell 1101010010010030 (东华门 / 多福巷), no entry list
PARK = (116.4073, 39.8955)  # cell 1101010020010001 (景山 park), entry-listed


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT)


def test_a_service_that_reads_no_parts_loads_the_city_without_them(city: City) -> None:
    """handling, verify and scoring never look a part up: they load the city without the
    parts register (most of its memory), and everything else is the same city."""
    lean = load_city(ROOT, parts=False)
    assert lean.parts == {} and len(city.parts) == 23_220
    assert lean.cells.keys() == city.cells.keys()
    assert lean.categories == city.categories and lean.departments == city.departments
    assert lean.locate(*INSIDE) == city.locate(*INSIDE)


def test_demo_city_sizes(city: City) -> None:
    assert city.district.code == "110101" and city.district.name == "东城区"
    # the 17 sub-districts of 东城区, each with its street office
    assert len(city.subdistricts) == 17
    names = {s.name for s in city.subdistricts.values()}
    assert names >= {"东华门街道", "和平里街道", "永定门外街道"}
    assert len(city.communities) >= 5 * len(city.subdistricts)
    assert len(city.cells) >= 4000
    assert len(city.parts) >= 20_000
    assert len(city.categories) >= 79
    # 6 classes, 56 part types (东城区's 6 大类 56 种), parts of every type
    part_types = {c.code for c in city.categories.values() if c.kind == "part"}
    assert len(part_types) == 56
    assert {c.code[:3] for c in city.categories.values() if c.kind == "part"} == {
        f"P0{n}" for n in range(1, 7)
    }
    assert {p.category_code for p in city.parts.values()} == part_types
    assert len(city.cameras) >= 200
    assert len(city.addresses) >= 600
    # bureaus and utilities, 17 street offices, one residents' committee per community
    assert len(city.departments) == 19 + len(city.subdistricts) + len(city.communities)
    assert {c.kind for c in city.categories.values()} == {"part", "event"}
    assert {m.code[0] for m in city.majors.values()} == {"P", "E"}
    assert {"12345", "video-ai", "patrol-app", "web"} <= set(city.sources)
    assert city.sources["12345"].channel == "hotline"
    assert city.sources["video-ai"].channel == "video"
    assert city.source_for_api_key("demo-open311-key") == city.sources["web"]
    roles = {r for u in city.users.values() for r in u.roles}
    assert roles >= {
        "operator",
        "shift-leader",
        "dispatcher",
        "supervisor",
        "department",
        "grid-head",
        "evaluator",
        "admin",
    }
    assert {d.kind for d in city.departments.values()} >= {"bureau", "utility"}
    assert sum(d.kind == "subdistrict-office" for d in city.departments.values()) == len(
        city.subdistricts
    )


def test_supervisors_cover_about_twelve_cells_each(city: City) -> None:
    per_primary: dict[str, int] = {}
    for a in city.supervisors.values():
        per_primary[a.primary] = per_primary.get(a.primary, 0) + 1
    assert max(per_primary.values()) <= 12
    assert sum(per_primary.values()) / len(per_primary) > 10
    assert any(city.users[s].trusted for s in per_primary)
    assert not all(city.users[s].trusted for s in per_primary)
    assert set(city.supervisors) == set(city.cells)


def test_data_is_what_the_generator_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_demo_city", REPO / "tools/gen_demo_city.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.main(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in ROOT.iterdir())
    for name in written:
        assert (tmp_path / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert sum((ROOT / n).stat().st_size for n in written) < 8_000_000


def test_codes_read_the_hierarchy(city: City) -> None:
    for cell in city.cells.values():
        assert len(cell.code) == 16 and cell.code.startswith(cell.community_code)
        assert cell.community_code.startswith(cell.subdistrict_code)
        assert cell.subdistrict_code.startswith(city.district.code)
    assert city.territory_of("1101010010010030") == (
        "1101010010010030",
        "110101001001",
        "110101001",
    )
    community = city.community("110101001001")
    subdistrict = city.subdistrict("110101001")
    assert community is not None and community.name == "多福巷社区"
    assert subdistrict is not None and subdistrict.name == "东华门街道"
    assert city.cell("1101010010010030") is not None and city.cell("nope") is None


def test_cells_are_about_a_hectare(city: City) -> None:
    cell = city.cells["1101010010010030"]
    assert 9_000 < cell.area_m2 < 11_000
    x0, y0, x1, y1 = city.polygons[cell.code].bounds
    assert 90 < distance_m((x0, y0), (x1, y0)) < 110
    assert 90 < distance_m((x0, y0), (x0, y1)) < 110


def test_locate(city: City) -> None:
    cell = city.locate(*INSIDE)
    assert cell is not None and cell.code == "1101010010010030"
    assert cell.community_code == "110101001001" and cell.subdistrict_code == "110101001"
    park = city.locate(*PARK)
    assert park is not None and park.code == "1101010020010001"
    assert city.locate(116.30, 39.80) is None  # outside the district
    assert city.locate(float("nan"), 39.9) is None
    # on the edge shared by cells 0001 and 0002: the lower code, deterministically
    edge = city.locate(116.39617, 39.8954)
    assert edge is not None and edge.code == "1101010010010001"
    for part in list(city.parts.values())[:200]:
        found = city.locate(part.lon, part.lat)
        assert found is not None and found.code == part.cell_code


def test_locate_many_agrees_with_locate(city: City) -> None:
    points = [(p.lon, p.lat) for p in list(city.parts.values())[:500]]
    points += [(116.30, 39.80), (116.39617, 39.8954)]
    many = city.locate_many(points)
    assert many == [city.locate(x, y) for x, y in points]
    assert city.locate_many([]) == []


def test_locate_answers_the_lowest_cell_covering_the_point_across_the_grid(city: City) -> None:
    """Across the whole grid (and a margin outside it), the cell the tree finds is the one a
    search of every polygon finds: the lowest code of those covering the point, None where
    none does. How fast it answers is measured by `make bench` (`city_locate_per_s`)."""
    xmin, ymin, xmax, ymax = shapely.union_all(list(city.polygons.values())).bounds
    steps = 60
    points = [
        (
            xmin - 0.001 + (xmax - xmin + 0.002) * i / steps,
            ymin - 0.001 + (ymax - ymin + 0.002) * j / steps,
        )
        for i in range(steps + 1)
        for j in range(steps + 1)
    ]
    codes = sorted(city.polygons)
    polygons = [city.polygons[code] for code in codes]
    outside = 0
    for x, y in points:
        covering = shapely.covers(polygons, shapely.Point(x, y)).nonzero()[0]
        found = city.locate(x, y)
        assert (found.code if found else None) == (codes[covering[0]] if len(covering) else None)
        outside += not len(covering)
    assert 0 < outside < len(points)


def test_part_register(city: City) -> None:
    part = city.part("1101010101000001")
    assert part is not None
    assert (part.category_code, part.name, part.owner_dept) == ("P0101", "上水井盖", "water")
    assert part.cell_code == "1101010070010021"
    assert city.part(" 1101010101000001 ") == part
    assert city.part("1101010101999999") is None
    for p in city.parts.values():
        assert p.code[6:10] == p.category_code[1:]
        assert city.categories[p.category_code].kind == "part"


def test_address_lookup(city: City) -> None:
    entry = city.address("东城区美术馆后街10号")
    assert entry is not None and entry.cell_code == "1101010070050003"
    assert city.address(" 东城区 美术馆后街10号 ") == entry  # white space
    assert city.address("东城区美术馆后街１０号") == entry  # full-width digits
    assert city.address("北京市东城区美术馆后街10号东侧") == entry  # the entry inside the text
    assert city.address("美术馆后街10号") == entry  # the text inside the entry
    assert city.address("美术馆后街1号") != entry
    assert city.address("火星路1号") is None
    assert city.address("号") is None
    assert city.address("   ") is None


def test_camera_category_department_source_user(city: City) -> None:
    cam = city.camera("cam-0001")
    assert cam is not None and cam.source == "video-ai" and cam.cell_code == "1101010010060001"
    assert city.camera("cam-9999") is None
    gas = city.category("E0401")
    assert gas is not None and gas.emergency and gas.limit_normal.unit == "hours"
    assert gas.limit("urgent").amount < gas.limit("normal").amount
    cover = city.category("P0101")
    assert cover is not None and cover.kind == "part" and cover.major_code == "P01"
    assert "井盖" in cover.acceptance_standard and cover.closing_standard
    assert city.major("E05") is not None and city.major("E05").name == "街面秩序"  # type: ignore[union-attr]
    stalls = city.category("E0501")
    assert stalls is not None and stalls.video_detectable and stalls.name == "无照经营游商"
    referral = city.category("E0602")
    assert referral is not None and referral.requires_confirmation
    assert referral.close_requires_approval
    water = city.department("water")
    assert water is not None and water.kind == "utility"
    street = city.department("street-003")
    assert street is not None and street.subdistrict_code == "110101003"
    user = city.user("sanitation-ops")
    assert user is not None and user.dept == "sanitation" and user.roles == ("department",)
    assert [u.id for u in city.users_of_department("water")] == ["water-ops"]
    assert {u.id for u in city.users_with_role("shift-leader")} == {"lead-01"}
    assert city.user("nobody") is None and city.source("fax") is None


def test_routing_precedence(city: City) -> None:
    cell = "1101010030010001"  # 交道口 (003)
    # a sub-district rule beats the district-wide class rule
    bikes = city.route("E0504", cell)
    assert bikes is not None and bikes.dept == "street-003"
    assert "urban-mgmt" in bikes.candidates  # where a returned case may go next
    # an exact category beats the class prefix
    assert city.route("E0503", cell).dept == "traffic-police"  # type: ignore[union-attr]
    assert city.route("E0501", cell).dept == "urban-mgmt"  # type: ignore[union-attr]
    # a part category goes to its usual owner
    assert city.route("P0101", cell).dept == "water"  # type: ignore[union-attr]
    # multi-department rules with a lead unit
    gas = city.route("E0401", cell)
    assert gas is not None and gas.dept == "gas" and gas.lead == "gas"
    assert set(gas.co_handlers) == {"fire", "emergency"}
    nanluo = city.route("E0502", "1101010020060001")  # community rule: 南锣鼓巷
    assert nanluo is not None and nanluo.dept == "urban-mgmt" and nanluo.lead == "street-002"
    assert nanluo.co_handlers == ("market-reg", "street-002")
    assert city.route("E0502", "1101010020050001").dept == "urban-mgmt"  # type: ignore[union-attr]
    assert city.route("E0502", "1101010020050001").co_handlers == ()  # type: ignore[union-attr]
    # a cell rule beats everything: inside the park, the greening unit cleans
    park = city.route("E0104", "1101010020010001")
    assert park is not None and park.dept == "greening" and park.candidates == ("sanitation",)
    assert city.route("E0104", "1101010020010011").dept == "sanitation"  # type: ignore[union-attr]
    # deliberately unrouted (the manual dispatch queue), unknown inputs
    assert city.route("E0602", cell) is None
    assert city.route("E9999", cell) is None
    assert city.route("E0104", "9999999999999999") is None


def _scan(city: City, category_code: str, cell_code: str) -> Route | None:
    """`City.route` written as the plain scan of every rule and manual entry: what the
    index by territory must answer."""
    cell = city.cells.get(cell_code)
    if cell is None or category_code not in city.categories:
        return None
    rank = {cell.code: 3, cell.community_code: 2, cell.subdistrict_code: 1, "*": 0}
    matches = [
        (t, c, -i, rule)
        for i, rule in enumerate(city.routing)
        if (t := rank.get(rule.territory)) is not None
        and (c := category_rank(rule.category, category_code)) is not None
    ]
    if not matches:
        return None
    matches.sort(key=lambda m: (m[0], m[1], m[2]), reverse=True)
    for m in city.manual:
        t, c = rank.get(m.territory), category_rank(m.category, category_code)
        if t is not None and c is not None and (t, c) >= matches[0][:2]:
            return None
    best = matches[0][3]
    others = dict.fromkeys(m[3].dept for m in matches[1:] if m[3].dept != best.dept)
    return Route(
        dept=best.dept, co_handlers=best.co_handlers, lead=best.lead, candidates=tuple(others)
    )


def test_routing_by_territory_answers_as_a_scan_of_every_rule(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing looks only at the rules of a cell's own territories, and keeps a bounded
    number of answers: every category in 300 cells (and with manual entries at each level
    of the territory) routes as the scan of the whole file does."""
    # with the cells that have rules of their own, of their community, of their sub-district
    cells = ["1101010020010001", "1101010020060001", "1101010030010001"]
    cells += random.Random(7).sample(sorted(city.cells), 300)
    some = city.cells[cells[0]]
    manual = [
        *city.manual,
        ManualRoute(category="E05*", territory=some.subdistrict_code),
        ManualRoute(category="E0104", territory=some.community_code),
        ManualRoute(category="P*", territory=some.code),
    ]
    monkeypatch.setattr(loader, "ROUTE_CACHE_SIZE", 1_000)
    unrouted = []
    for c in (dataclasses.replace(city), dataclasses.replace(city, manual=manual)):
        none = 0
        for _ in range(2):  # answered, then again (from the cache where it kept them)
            for cell in cells:
                for code in c.categories:
                    assert c.route(code, cell) == _scan(c, code, cell), (code, cell)
                    none += c.route(code, cell) is None
        assert len(c._route_cache) == 1_000
        unrouted.append(none)
    # the manual entries took effect where they are as specific as the best rule
    assert unrouted[1] > unrouted[0] > 0


def test_every_category_but_referrals_routes_everywhere(city: City) -> None:
    unrouted = {
        code
        for code in city.categories
        for cell in ("1101010010010030", "1101010080060040")
        if city.route(code, cell) is None
    }
    assert unrouted == {"E0602"}


def test_entry_list(city: City) -> None:
    park = city.cells["1101010020010001"]
    assert park.entry_list is not None and "E0104" in park.entry_list
    assert city.may_accept("E0104", park.code)
    assert not city.may_accept("E0101", park.code)
    assert not city.may_accept("E0301", park.code)
    assert city.may_accept("E0301", "1101010010010030")  # no entry list: everything
    assert not city.may_accept("E9999", "1101010010010030")
    assert not city.may_accept("E0104", "9999999999999999")
    restricted = [c.code for c in city.cells.values() if c.entry_list is not None]
    assert 1 <= len(restricted) <= 50


def test_supervisors_and_territory(city: City) -> None:
    assert city.supervisors_for("1101010010010001") == ("sup-001", "sup-002")
    assert city.supervisors_for("nope") is None
    assert city.user("sup-001").trusted and not city.user("sup-002").trusted  # type: ignore[union-attr]
    mine = city.cells_of_supervisor("sup-001")
    # primary for 12 cells, backup for the last 4 of its sub-district (the ring wraps round)
    assert "1101010010010001" in mine and len(mine) == 12 + 4
    assert city.cells_of_supervisor("op-01") == []
    assert len(city.cells_in("110101001001")) == 35
    assert len(city.cells_in("110101001")) == 220
    assert city.cells_in("1101010010010030") == ["1101010010010030"]
    assert len(city.cells_in("*")) == len(city.cells)
    assert city.cells_in("nope") == []
    head = city.user("gh-0010010001")
    assert head is not None and head.territory == ("1101010010010001", "1101010010010002")
    assert city.in_territory("1101010010010001", head.territory)
    assert not city.in_territory("1101010010010030", head.territory)
    assert city.in_territory("1101010010010030", ("110101001",))
    assert city.in_territory("1101010010010030", ("*",))


def test_the_grid_head_of_a_cell_is_the_most_specific_one_named_for_it(city: City) -> None:
    # named for the cell itself (users.yaml territories)
    assert city.grid_heads_of("1101010010010001") == ("gh-0010010001",)
    assert city.grid_heads_of("1101010010010002") == ("gh-0010010001",)
    assert city.grid_heads_of("1101010010010030") == ("gh-0010010030",)
    assert city.grid_heads_of("9999") == ()  # an unknown cell has none
    # a community-wide grid head answers for the community's cells nobody names, and one named
    # for the cell itself comes first
    from gridloop_city.models import User

    covered = "1101010010010001"
    cell = city.cells[covered]
    community = next(c for c in city.cells.values() if c.community_code == cell.community_code)
    wide = User(
        id="gh-wide", name="网格长（社区）", roles=("grid-head",), territory=(cell.community_code,)
    )
    city.users["gh-wide"] = wide
    try:
        assert city.grid_heads_of(covered) == ("gh-0010010001",)
        unnamed = [
            c.code
            for c in city.cells.values()
            if c.community_code == cell.community_code
            and not any(c.code in u.territory for u in city.users_with_role("grid-head"))
        ]
        assert community is not None and unnamed, "the demo community has cells without a head"
        assert city.grid_heads_of(unnamed[0]) == ("gh-wide",)
    finally:
        del city.users["gh-wide"]


def test_rules_documents(city: City) -> None:
    cal = city.calendar
    assert cal.working_hours == (("09:00", "12:00"), ("13:30", "18:00"))
    assert cal.reminder_fraction == 0.75
    assert [e.to for e in cal.escalation] == [
        "dispatcher",
        "grid-head",
        "subdistrict-leader",
        "efficiency-office",
    ]
    rules = cal.community_rules
    assert [rules.community.amount, rules.subdistrict.amount, rules.multi_unit.amount] == [1, 2, 3]
    assert rules.cap.amount == 5 and rules.cap.unit == "working_days"
    assert city.working_calendar is city.working_calendar
    intake = city.intake
    assert {"out-of-district", "not-in-entry-list", "not-city-management", "duplicate"} <= {
        r.code for r in intake.reject_reasons
    }
    jinhua = city.scoring.rule_set("jinhua")
    assert jinhua is not None and jinhua.rules[0].points == 50 and jinhua.rules[0].at_least == 0.7
    assert city.scoring.grade(95) == "优" and city.scoring.grade(65) == "较差"
    assert city.scoring.grade(-3) == "差"
    assert city.scoring.people.dissatisfied_per_year == 4


def test_distance_helpers(city: City) -> None:
    assert 100 < haversine_m(116.40, 39.90, 116.40117, 39.9009) < 160
    a, b = city.parts["1101010101000001"], city.parts["1101010101000002"]
    assert distance_m(a, b) == pytest.approx(haversine_m(a.lon, a.lat, b.lon, b.lat))
    assert distance_m((116.40, 39.90), (116.40, 39.90)) == 0
    # one degree of latitude is about 111 km
    assert distance_m((116.4, 39.0), (116.4, 40.0)) == pytest.approx(111_195, rel=1e-3)


def test_parts_of_a_cell_are_the_registry_rows_naming_it(city: City) -> None:
    cell = next(iter(city.parts.values())).cell_code
    mine = city.parts_of_cell(cell)
    assert mine and [p.code for p in mine] == sorted(
        p.code for p in city.parts.values() if p.cell_code == cell
    )
    assert city.parts_of_cell("0000000000000000") == []


def test_the_nearest_part_of_a_type_within_a_radius(city: City) -> None:
    part = next(p for p in city.parts.values() if p.category_code == "P0107")
    # 20 m north of a street lamp: that lamp is the nearest lamp within 50 m
    lat = part.lat + 20 / 110_574
    found = city.parts_near(part.lon, lat, 50, "P0107")
    assert found and found[0][0] == part and abs(found[0][1] - 20) < 0.5
    everything = city.parts_near(part.lon, lat, 50)
    assert [d for _, d in everything] == sorted(d for _, d in everything)
    assert all(d <= 50 for _, d in everything)
    brute = sorted(
        p.code
        for p in city.parts.values()
        if p.category_code == "P0107" and haversine_m(part.lon, lat, p.lon, p.lat) <= 50
    )
    assert sorted(p.code for p, _ in city.parts_near(part.lon, lat, 50, "P0107", 100)) == brute
    # a radius shorter than the distance misses it
    assert part not in [p for p, _ in city.parts_near(part.lon, lat, 15, "P0107")]


def test_the_parts_in_a_box_are_the_registry_rows_inside_it(city: City) -> None:
    """A map's view: every part inside the box (edges included), by code, from 23,220."""
    west, south, east, north = 116.40, 39.90, 116.41, 39.905
    found = city.parts_in_box(west, south, east, north)
    brute = sorted(
        p.code for p in city.parts.values() if west <= p.lon <= east and south <= p.lat <= north
    )
    assert found and [p.code for p in found] == brute
    everything = city.parts_in_box(*city.district.bbox)
    assert len(everything) == len(city.parts)
    assert city.parts_in_box(east, south, west, north) == []  # turned inside out
    assert city.parts_in_box(float("nan"), south, east, north) == []
    assert city.parts_in_box(116.0, 39.0, 116.1, 39.1) == []  # outside the district
