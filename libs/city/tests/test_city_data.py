"""The demo city loads, meets the minima, answers the services' questions, and bad data is
refused with a message naming file, row and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gridloop_city import City, CityDataError, haversine_m, load_city

ROOT = Path(__file__).resolve().parents[3] / "data" / "demo-city"


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT)


def test_demo_city_sizes(city: City) -> None:
    assert len(city.cells) >= 1000
    assert len(city.parts) >= 3000
    assert len(city.categories) >= 40
    assert {c.kind for c in city.categories.values()} == {"part", "event"}
    assert {"12345", "video-ai", "web"} <= set(city.sources)
    assert "demo-open311-key" in city.sources["web"].open311_api_keys
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
    per_supervisor: dict[str, int] = {}
    for a in city.supervisors.values():
        per_supervisor[a.primary] = per_supervisor.get(a.primary, 0) + 1
    assert max(per_supervisor.values()) <= 12


def test_cell_codes_read_the_hierarchy(city: City) -> None:
    for cell in list(city.cells.values())[:50]:
        assert cell.code.startswith(cell.community_code)
        assert cell.community_code.startswith(cell.subdistrict_code)
        assert cell.subdistrict_code.startswith(city.district.code)


def test_locate(city: City) -> None:
    part = next(iter(city.parts.values()))
    cell = city.locate(part.lon, part.lat)
    assert cell is not None and cell.code == part.cell_code
    assert city.locate(116.30, 39.80) is None  # outside the district


def test_part_address_camera(city: City) -> None:
    part = next(iter(city.parts.values()))
    assert city.part(part.code) == part
    addr = next(iter(city.addresses.values()))
    assert city.address(addr.address) == addr
    assert city.address(" " + addr.address.replace("东城区", "东城区 ")) == addr
    assert city.address("火星路1号") is None
    cam = city.camera("cam-0001")
    assert cam is not None and city.locate(cam.lon, cam.lat) is not None


def test_routing_precedence(city: City) -> None:
    cell = next(c for c in city.cells.values() if c.subdistrict_code.endswith("003"))
    # territory-specific rule beats the district-wide class rule
    assert city.route("E0504", cell.code).dept == "street-003"  # type: ignore[union-attr]
    # exact category beats the class prefix
    assert city.route("E0503", cell.code).dept == "traffic-police"  # type: ignore[union-attr]
    assert city.route("E0501", cell.code).dept == "urban-mgmt"  # type: ignore[union-attr]
    gas = city.route("E0401", cell.code)
    assert gas is not None and gas.lead == "gas" and set(gas.co_handlers) == {"fire", "emergency"}
    assert city.route("E0602", cell.code) is None  # deliberately unrouted: manual queue
    # a returned E0504 can go on to the next candidate
    assert "urban-mgmt" in city.route("E0504", cell.code).candidates  # type: ignore[union-attr]


def test_entry_list(city: City) -> None:
    restricted = next(c for c in city.cells.values() if c.entry_list)
    assert city.may_accept("E0104", restricted.code)
    assert not city.may_accept("E0301", restricted.code)
    open_cell = next(c for c in city.cells.values() if c.entry_list is None)
    assert city.may_accept("E0301", open_cell.code)


def test_supervisors_and_haversine(city: City) -> None:
    cell = next(iter(city.cells))
    primary, backup = city.supervisors_for(cell)  # type: ignore[misc]
    assert primary != backup and "supervisor" in city.users[backup].roles
    assert cell in city.cells_of_supervisor(primary)
    assert 100 < haversine_m(116.40, 39.90, 116.40117, 39.9009) < 160


def broken(tmp_path: Path, file: str, old: str, new: str) -> Path:
    root = tmp_path / "city"
    shutil.copytree(ROOT, root)
    text = (root / file).read_text(encoding="utf-8")
    assert old in text, old
    (root / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "parts.csv",
            ",water\n",
            ",wter\n",
            r"parts\.csv row \d+ field owner_dept: unknown department 'wter'",
        ),
        ("parts.csv", ",P0101,", ",E0104,", r"parts\.csv row \d+ field category_code"),
        (
            "cameras.csv",
            "cam-0001,video-ai,",
            "cam-0001,video-x,",
            r"cameras\.csv row 2 field source",
        ),
        ("gazetteer.csv", ",1101010", ",9901010", r"gazetteer\.csv row 2 field cell_code"),
        (
            "routing.yaml",
            "dept: sanitation",
            "dept: nobody",
            r"routing\.yaml row rules\[\d+\] field dept",
        ),
        (
            "categories.yaml",
            "unit: working_hours",
            "unit: fortnights",
            r"categories\.yaml row categories\[0\] field limit_normal\.unit",
        ),
        (
            "grids.geojson",
            '"community_code":"110101001001"',
            '"community_code":"110101009009"',
            r"grids\.geojson row features\[0\] field community_code",
        ),
        ("supervisors.csv", ",sup-001,", ",op-01,", r"supervisors\.csv row \d+ field primary"),
        (
            "users.yaml",
            "dept: sanitation",
            "dept: sanitaton",
            r"users\.yaml row sanitation-ops field dept",
        ),
    ],
)
def test_bad_data_names_file_row_and_field(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    with pytest.raises(CityDataError, match=expected):
        load_city(broken(tmp_path, file, old, new))


def test_point_outside_its_cell_is_refused(tmp_path: Path) -> None:
    lines = (ROOT / "parts.csv").read_text(encoding="utf-8").splitlines()
    first = lines[1].split(",")
    first[3] = "116.30"
    root = tmp_path / "city"
    shutil.copytree(ROOT, root)
    (root / "parts.csv").write_text(
        "\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n", encoding="utf-8"
    )
    with pytest.raises(
        CityDataError, match=r"parts\.csv row 2 field lon: point .* is not inside cell"
    ):
        load_city(root)


def test_missing_file(tmp_path: Path) -> None:
    root = tmp_path / "city"
    shutil.copytree(ROOT, root)
    (root / "sources.yaml").unlink()
    with pytest.raises(CityDataError, match=r"sources\.yaml: file missing"):
        load_city(root)
