"""`gridloop-city`: import a small city from real GIS files (a Shapefile in CGCS2000 Gauss-Krüger,
a two-layer GeoPackage in Web Mercator, GeoJSON in GCJ-02, CSV and XLSX tables) written here
with pyogrio/openpyxl; check names each problem by file, row and field; diff tells splits,
merges, parts and routing; the demo city survives an export and import unchanged."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import shapely
import yaml
from gridloop_city import load_city
from gridloop_city.check import check_city
from gridloop_city.cli import main
from gridloop_city.diff import diff_cities
from gridloop_city.gis import gcj02_to_wgs84, wgs84_to_gcj02, write_layer

DEMO = Path(__file__).resolve().parents[3] / "data" / "demo-city"
AS_OF = "2025-12-01"  # chinese_calendar knows 2025-2026: the next 12 months are official

X0, Y0 = 116.40, 39.90
DX, DY = 0.00117, 0.0009  # about 100 m × 100 m

# 1 sub-district, 2 communities (bottom row 001, top row 002), 2 × 2 cells
CELLS = {
    "1101010010010001": (0, 0),
    "1101010010010002": (1, 0),
    "1101010010020001": (0, 1),
    "1101010010020002": (1, 1),
}
PARTS = [  # code, category, owner, cell it lies in (by column, row)
    ("1101010101000001", "P0101", "water", (0, 0)),
    ("1101010107000001", "P0107", "lighting", (1, 1)),
    ("1101010301000001", "P0301", "sanitation", (1, 0)),
]
CATEGORIES = [
    ("P01", "公用设施", "P0101", "上水井盖", "3 working_days", "4 working_hours"),
    ("P01", "公用设施", "P0107", "路灯", "2 working_days", "4 working_hours"),
    ("P03", "市容环境设施", "P0301", "垃圾箱", "1 working_days", "2 working_hours"),
    ("E01", "市容环境", "E0101", "私搭乱建", "5 working_days", "1 working_days"),
    ("E05", "街面秩序", "E0504", "非机动车乱停放", "1 working_days", "2 working_hours"),
    ("E06", "扩展事件", "E0602", "领导交办", "3 working_days", "1 working_days"),
]
DEPARTMENTS = [
    ("water", "自来水集团东城分公司", "utility", ""),
    ("lighting", "区路灯管理所", "bureau", ""),
    ("sanitation", "区环境卫生服务中心", "bureau", ""),
    ("urban-mgmt", "区城市管理综合行政执法局", "bureau", ""),
    ("street-001", "东华门街道办事处", "subdistrict-office", "110101001"),
]
ROUTING = [
    ("P*", "*", "urban-mgmt", "", ""),
    ("P0101", "*", "water", "", ""),
    ("P0107", "*", "lighting", "", ""),
    ("P0301", "*", "sanitation", "", ""),
    ("E01*", "*", "sanitation", "", ""),
    ("E0504", "110101001", "street-001", "", ""),
    ("E0602", "*", "manual", "", "leader referrals"),
]


def box(col: float, row: float, w: float = 1, h: float = 1) -> Any:
    x, y = X0 + col * DX, Y0 + row * DY
    return shapely.box(x, y, x + w * DX, y + h * DY)


def inside(col: int, row: int) -> Any:
    return shapely.Point(X0 + (col + 0.3) * DX, Y0 + (row + 0.6) * DY)


def csv_text(header: list[str], rows: list[Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def make_sources(
    root: Path,
    *,
    cells: dict[str, Any] | None = None,
    parts: list[tuple[str, str, str, Any]] | None = None,
) -> Path:
    """Write a city's sources as a GIS department would hand them over; returns the spec."""
    root.mkdir(parents=True)
    base = root / "base"
    base.mkdir()
    for name in ("calendar.yaml", "intake.yaml", "scoring.yaml", "sources.yaml"):
        shutil.copyfile(DEMO / name, base / name)
    (base / "cameras.csv").write_text("camera_id,source,lon,lat,cell_code\n", encoding="utf-8")
    (base / "gazetteer.csv").write_text("address,lon,lat,cell_code\n", encoding="utf-8")

    polys = cells if cells is not None else {c: box(*at) for c, at in CELLS.items()}
    # cells: Shapefile in CGCS2000 / 3-degree Gauss-Krüger CM 117E, surveyors' columns
    write_layer(
        root / "wg.shp",
        list(polys.values()),
        [{"WGBM": int(code), "WGMC": f"网格{code[-4:]}"} for code in polys],
        crs="EPSG:4548",
    )
    # sub-district and communities: one GeoPackage, two layers, Web Mercator
    write_layer(
        root / "admin.gpkg",
        [box(0, 0, 2, 2)],
        [{"code": "110101001", "name": "东华门街道"}],
        crs="EPSG:3857",
        layer="streets",
    )
    write_layer(
        root / "admin.gpkg",
        [box(0, 0, 2, 1), box(0, 1, 2, 1)],
        [
            {"code": "110101001001", "name": "多福巷社区"},
            {"code": "110101001002", "name": "韶九社区"},
        ],
        crs="EPSG:3857",
        layer="communities",
    )
    # parts: GeoJSON from a web map, in GCJ-02 (no file can declare it)
    part_rows = parts if parts is not None else [(c, k, o, inside(*at)) for c, k, o, at in PARTS]
    write_layer(
        root / "parts.geojson",
        [p[3] for p in part_rows],
        [{"BJBM": c, "LX": k, "QSDW": o, "name": k} for c, k, o, _ in part_rows],
        crs="GCJ-02",
    )
    (root / "categories.csv").write_text(
        csv_text(
            [
                "major_code",
                "major_name",
                "code",
                "name",
                "acceptance_standard",
                "closing_standard",
                "limit_normal",
                "limit_urgent",
                "emergency",
            ],
            [
                [m, mn, c, n, f"{n}：立案条件", f"{n}：结案条件", ln, lu, "否"]
                for m, mn, c, n, ln, lu in CATEGORIES
            ],
        ),
        encoding="gb18030",  # as a Chinese spreadsheet saves it
    )
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "部门"
    ws.append(["code", "name", "kind", "subdistrict_code"])
    for d in DEPARTMENTS:
        ws.append([v or None for v in d])
    wb.save(root / "departments.xlsx")
    (root / "routing.csv").write_text(
        csv_text(["category", "territory", "dept", "co_handlers", "note"], ROUTING),
        encoding="utf-8",
    )
    people = [
        ["sup-1", "监督员一", "supervisor", "110101001", "", "1"],
        ["sup-2", "监督员二", "supervisor", "110101001", "", ""],
        ["op-1", "受理员", "operator;shift-leader", "*", "", ""],
    ] + [[f"{d[0]}-ops", f"{d[1]}值班员", "department", "*", d[0], ""] for d in DEPARTMENTS]
    (root / "people.csv").write_text(
        csv_text(["id", "name", "roles", "territory", "dept", "trusted"], people),
        encoding="utf-8",
    )
    (root / "supervisors.csv").write_text(
        csv_text(["cell_code", "primary", "backup"], [[c, "sup-1", "sup-2"] for c in polys]),
        encoding="utf-8",
    )
    spec = {
        "base": "base",
        "district": {"code": "110101", "name": "东城区"},
        "subdistricts": {"path": "admin.gpkg", "layer": "streets"},
        "communities": {"path": "admin.gpkg", "layer": "communities"},
        "cells": {"path": "wg.shp", "fields": {"code": "WGBM", "name": "WGMC"}},
        "parts": {
            "path": "parts.geojson",
            "crs": "GCJ-02",
            "fields": {"code": "BJBM", "category_code": "LX", "owner_dept": "QSDW"},
        },
        "categories": "categories.csv",
        "departments": {"path": "departments.xlsx", "sheet": "部门"},
        "routing": "routing.csv",
        "users": "people.csv",
        "supervisors": "supervisors.csv",
    }
    path = root / "import.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small city, imported once; tests copy it before changing it."""
    tmp = tmp_path_factory.mktemp("city")
    spec = make_sources(tmp / "sources")
    assert main(["import", str(spec), "--out", str(tmp / "city"), "--as-of", AS_OF]) == 0
    return tmp / "city"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    return code, capsys.readouterr().out.splitlines()


# -- import ----------------------------------------------------------------------------------


def test_the_console_script_imports_a_city_from_gis_files_and_it_checks_clean(
    tmp_path: Path,
) -> None:
    spec = make_sources(tmp_path / "sources")
    script = Path(sys.executable).parent / "gridloop-city"
    done = subprocess.run(
        [str(script), "import", str(spec), "--out", str(tmp_path / "city"), "--as-of", AS_OF],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == f"{tmp_path / 'city'}: ok"
    city = load_city(tmp_path / "city")
    assert list(city.cells) == list(CELLS)
    assert set(city.communities) == {"110101001001", "110101001002"}
    assert city.subdistricts["110101001"].name == "东华门街道"


def test_import_reprojects_every_layer_to_wgs84(imported: Path) -> None:
    city = load_city(imported)
    for code, at in CELLS.items():
        # Gauss-Krüger there and back: the same corners to a centimetre
        assert shapely.equals_exact(
            shapely.normalize(city.polygons[code]), shapely.normalize(box(*at)), 1e-7
        )
        assert abs(city.cells[code].area_m2 - 9_990) < 150
    for code, cat, owner, at in PARTS:
        part = city.parts[code]
        # GCJ-02 moves Beijing by hundreds of metres; undone, each part is back in its cell
        assert (part.category_code, part.owner_dept) == (cat, owner)
        assert city.locate(part.lon, part.lat) == city.cells[part.cell_code]
        assert abs(part.lon - inside(*at).x) < 1e-6 and abs(part.lat - inside(*at).y) < 1e-6
    boundary = json.loads((imported / "communities.geojson").read_text(encoding="utf-8"))
    assert [f["properties"]["code"] for f in boundary["features"]] == [
        "110101001001",
        "110101001002",
    ]


def test_import_reads_tables_from_csv_gb18030_and_xlsx(imported: Path) -> None:
    city = load_city(imported)
    assert city.categories["P0101"].limit_normal.amount == 3
    assert city.categories["P0101"].limit_urgent.unit == "working_hours"
    assert city.majors["E05"].name == "街面秩序"
    assert city.departments["street-001"].subdistrict_code == "110101001"
    assert city.users["op-1"].roles == ("operator", "shift-leader")
    assert city.users["sup-1"].trusted and not city.users["sup-2"].trusted
    # routing: the manual row is the manual queue, not a department
    assert city.route("E0602", "1101010010010001") is None
    assert [(m.category, m.territory) for m in city.manual] == [("E0602", "*")]
    route = city.route("E0504", "1101010010020002")
    assert route is not None and route.dept == "street-001"


def test_import_refuses_a_part_outside_every_cell_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    far = shapely.Point(X0 + 5 * DX, Y0 + 5 * DY)
    parts = [(c, k, o, inside(*at)) for c, k, o, at in PARTS] + [
        ("1101010101000002", "P0101", "water", far)
    ]
    spec = make_sources(tmp_path / "sources", parts=parts)
    code, lines = run(["import", str(spec), "--out", str(tmp_path / "city")], capsys)
    assert code == 1
    assert lines[0].startswith(
        "parts.geojson row feature 3 field geometry: part 1101010101000002 at ("
    )
    assert lines[0].endswith(") lies outside every cell")
    assert lines[-1] == "nothing written"
    assert not (tmp_path / "city").exists()


def test_import_names_a_bad_cell_code_and_a_missing_source_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = {c: box(*at) for c, at in CELLS.items()}
    cells["110101001001001"] = cells.pop("1101010010010002")  # 15 digits
    spec = make_sources(tmp_path / "sources", cells=cells)
    text = spec.read_text(encoding="utf-8").replace("name: WGMC", "name: MC")
    spec.write_text(text, encoding="utf-8")
    code, lines = run(["import", str(spec), "--out", str(tmp_path / "city")], capsys)
    assert code == 1
    assert "wg.shp row 1 field MC: no such field (for name)" in lines
    assert "wg.shp row feature 3 field code: '110101001001001': 16 digits (CJ/T 213)" in lines


# -- check -----------------------------------------------------------------------------------


def changed(src: Path, tmp: Path, change: Callable[[Path], None]) -> Path:
    root = tmp / "changed"
    shutil.copytree(src, root)
    change(root)
    return root


def edit_grid(root: Path, cell: str, geom: Any, **props: str) -> None:
    doc = json.loads((root / "grids.geojson").read_text(encoding="utf-8"))
    for f in doc["features"]:
        if f["properties"]["code"] == cell:
            f["geometry"] = shapely.geometry.mapping(geom)
            f["properties"].update(props)
    (root / "grids.geojson").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def edit_text(root: Path, name: str, old: str, new: str) -> None:
    text = (root / name).read_text(encoding="utf-8")
    assert old in text, old
    (root / name).write_text(text.replace(old, new), encoding="utf-8")


def check_lines(root: Path, capsys: pytest.CaptureFixture[str], as_of: str = AS_OF) -> list[str]:
    code, lines = run(["check", str(root), "--as-of", as_of], capsys)
    assert code == 1, lines
    assert lines[-1] == f"{len(lines) - 1} problem(s)"
    return lines[:-1]


def test_check_passes_the_imported_city(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check", str(imported), "--as-of", AS_OF], capsys) == (0, [f"{imported}: ok"])


def test_check_names_an_overlapping_cell(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cell 0002 reaches 10 m into cell 0001
    root = changed(
        imported, tmp_path, lambda r: edit_grid(r, "1101010010010002", box(0.9, 0, 1.1, 1))
    )
    lines = check_lines(root, capsys)
    assert len(lines) == 1
    assert lines[0].startswith(
        "grids.geojson row features[1] (1101010010010002) field geometry: "
        "overlaps cell 1101010010010001 by "
    )
    assert lines[0].endswith(" m² (tolerance 1 m²)")


def test_check_tolerates_a_sliver_below_the_tolerance(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 5 mm into the neighbour (0.5 m²): survey noise, not an overlap
    root = changed(
        imported,
        tmp_path,
        lambda r: edit_grid(r, "1101010010010002", box(1 - 0.005 / 100, 0, 1 + 0.005 / 100, 1)),
    )
    assert run(["check", str(root), "--as-of", AS_OF], capsys)[0] == 0


def test_check_names_a_gap_in_the_district(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the top-right cell stops 20 m short of the sub-district's northern boundary
    root = changed(
        imported, tmp_path, lambda r: edit_grid(r, "1101010010020002", box(1, 1, 1, 0.8))
    )
    lines = check_lines(root, capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "grids.geojson row features[3] (1101010010020002) field geometry: a gap of "
    )
    assert lines[0].endswith(" in no cell next to cell 1101010010020002")
    area = float(lines[0].split("a gap of ")[1].split(" m²")[0])
    assert 1_700 < area < 2_300  # 20 m × 100 m


def test_check_names_a_part_outside_every_cell(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = changed(imported, tmp_path, lambda r: edit_text(r, "parts.csv", "116.40", "116.50"))
    lines = check_lines(root, capsys)
    assert lines[0].startswith("parts.csv row 2 field lon: part 1101010101000001 at (116.50")
    assert lines[0].endswith(") is outside every cell")


def test_check_names_an_unroutable_category(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop_rule(r: Path) -> None:
        doc = yaml.safe_load((r / "routing.yaml").read_text(encoding="utf-8"))
        doc["rules"] = [x for x in doc["rules"] if x["category"] != "E0504"]
        (r / "routing.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")

    lines = check_lines(changed(imported, tmp_path, drop_rule), capsys)
    assert lines == [
        "categories.yaml row categories[4] (E0504) field code: routed nowhere in 4 cell(s) "
        "(e.g. 1101010010010001, 1101010010010002, 1101010010020001; sub-districts 110101001): "
        "add a rule to routing.yaml or list it under manual"
    ]


def test_check_names_a_cell_code_that_disagrees_with_its_community_polygon(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cell 0001 lies in community 001's polygon but is coded as a cell of community 002
    def recode(r: Path) -> None:
        edit_grid(
            r, "1101010010010001", box(0, 0), code="1101010010020003", community_code="110101001002"
        )
        edit_text(r, "supervisors.csv", "1101010010010001,", "1101010010020003,")
        edit_text(r, "parts.csv", ",1101010010010001,", ",1101010010020003,")

    lines = check_lines(changed(imported, tmp_path, recode), capsys)
    assert lines == [
        "grids.geojson row features[0] (1101010010020003) field code: the cell lies in "
        "110101001001 (communities.geojson) but its code says 110101001002"
    ]


def test_check_names_a_code_that_does_not_spell_its_community(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = changed(
        imported,
        tmp_path,
        lambda r: edit_grid(r, "1101010010010002", box(1, 0), community_code="110101001002"),
    )
    lines = check_lines(root, capsys)
    assert lines[0] == (
        "grids.geojson row features[1] (1101010010010002) field community_code: "
        "'110101001002' but the code says 110101001001 (CJ/T 213)"
    )


def test_check_names_a_calendar_ending_within_12_months(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = check_lines(imported, capsys, as_of="2026-06-01")
    assert lines == [
        "calendar.yaml row known_through field known_through: the official calendar ends on "
        "2026-12-31, less than 12 months ahead (to 2027-06-01); to fix: when the State Council "
        "publishes its 2027 arrangement (国务院办公厅关于2027年部分节假日安排的通知, usually in "
        "November), enter its holidays as extra_holidays and its swapped working days as "
        "extra_workdays, set known_through: 2027-12-31, and release the data (docs/operations.md, "
        "The working calendar); or upgrade chinese-calendar once it knows 2027. Until then "
        "2027's deadlines follow the statutory rule and are provisional"
    ]
    # once the city enters 2027's arrangement itself and says so, the horizon is covered
    root = changed(
        imported,
        tmp_path,
        lambda r: edit_text(r, "calendar.yaml", "extra_workdays: []", "known_through: 2027-12-31"),
    )
    assert run(["check", str(root), "--as-of", "2026-06-01"], capsys)[0] == 0


def test_check_names_a_department_nobody_works_for(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop_user(r: Path) -> None:
        doc = yaml.safe_load((r / "users.yaml").read_text(encoding="utf-8"))
        doc["users"] = [u for u in doc["users"] if u["id"] != "lighting-ops"]
        (r / "users.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")

    lines = check_lines(changed(imported, tmp_path, drop_user), capsys)
    assert lines == [
        "departments.yaml row departments[1] (lighting) field code: no user with the "
        "department role works for it (users.yaml): its cases reach nobody"
    ]


def test_check_lists_every_problem_not_only_the_first(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def break_two(r: Path) -> None:
        edit_grid(r, "1101010010010002", box(0.9, 0, 1.1, 1))
        edit_text(r, "parts.csv", "116.40", "116.50")

    lines = check_lines(changed(imported, tmp_path, break_two), capsys)
    assert [line.split(" field ")[0] for line in lines] == [
        "grids.geojson row features[1] (1101010010010002)",
        "parts.csv row 2",  # every part moved 8 km east: three rows, three problems
        "parts.csv row 3",
        "parts.csv row 4",
    ]


# -- diff ------------------------------------------------------------------------------------


def test_diff_tells_splits_merges_parts_and_routing(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def next_version(r: Path) -> None:
        doc = json.loads((r / "grids.geojson").read_text(encoding="utf-8"))
        first, second, top, _ = doc["features"]
        # community 001's first cell splits in two: 0001 keeps the west half, 0003 the east
        first["geometry"] = shapely.geometry.mapping(box(0, 0, 0.5, 1))
        first["properties"]["area_m2"] = 0
        east = json.loads(json.dumps(first))
        east["properties"].update(code="1101010010010003", name="网格0003")
        east["geometry"] = shapely.geometry.mapping(box(0.5, 0, 0.5, 1))
        # community 002's two cells merge into 0001
        top["geometry"] = shapely.geometry.mapping(box(0, 1, 2, 1))
        top["properties"]["area_m2"] = 0
        doc["features"] = [first, second, top, east]
        (r / "grids.geojson").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        edit_text(r, "supervisors.csv", "1101010010020002,", "1101010010010003,")
        # the lamp now lies in the merged cell; the bin goes, a second cover comes
        edit_text(r, "parts.csv", ",1101010010020002,lighting", ",1101010010020001,lighting")
        rows = (r / "parts.csv").read_text(encoding="utf-8").splitlines()
        rows = [x for x in rows if not x.startswith("1101010301000001")]
        x, y = X0 + 0.1 * DX, Y0 + 0.5 * DY
        rows.append(f"1101010101000002,P0101,上水井盖,{x:.6f},{y:.6f},1101010010010001,water")
        (r / "parts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        # cityscape events go to urban management from now on
        routing = yaml.safe_load((r / "routing.yaml").read_text(encoding="utf-8"))
        for rule in routing["rules"]:
            if rule["category"] == "E01*":
                rule["dept"] = "urban-mgmt"
        (r / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True), "utf-8")

    new = changed(imported, tmp_path, next_version)
    d = diff_cities(load_city(imported), load_city(new), imported, new)
    assert d.splits == [("1101010010010001", ["1101010010010001", "1101010010010003"])]
    assert d.merges == [(["1101010010020001", "1101010010020002"], "1101010010020001")]
    assert (d.cells_added, d.cells_removed, d.cells_reshaped) == ([], [], [])
    assert d.parts_added == ["1101010101000002"]
    assert d.parts_removed == ["1101010301000001"]
    assert d.parts_moved == [("1101010107000001", "1101010010020002", "1101010010020001")]
    assert d.routing_changed == [("E01* @ *", "sanitation", "urban-mgmt")]
    assert d.files_changed == ["supervisors.csv"]

    code, lines = run(["diff", str(imported), str(new)], capsys)
    assert code == 0
    assert lines[:3] == [
        "cells: 1 split, 1 merged, 0 added, 0 removed, 0 reshaped, 0 renamed",
        "  split 1101010010010001 → 1101010010010001, 1101010010010003",
        "  merged 1101010010020001 + 1101010010020002 → 1101010010020001",
    ]
    assert "  ~ E01* @ *: sanitation → urban-mgmt" in lines


def test_diff_of_a_city_with_itself_is_empty(
    imported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["diff", str(imported), str(imported)], capsys) == (0, ["no changes"])


# -- round trip ------------------------------------------------------------------------------


def test_the_demo_city_survives_export_and_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Export to a Shapefile in CGCS2000 Gauss-Krüger and CSV, import back: check passes and
    the city the services load is the same (cells, parts, routes, people)."""
    out = tmp_path / "export"
    assert main(["export", str(DEMO), "--out", str(out), "--crs", "EPSG:4548"]) == 0
    assert (out / "cells.prj").exists() and (out / "parts.shp").exists()
    city_dir = tmp_path / "city"
    code, lines = run(
        ["import", str(out / "import.yaml"), "--out", str(city_dir), "--as-of", AS_OF], capsys
    )
    assert code == 0, lines[-20:]
    a, b = load_city(DEMO), load_city(city_dir)
    assert a.district == b.district
    # the import measures each cell's area itself (to the square metre; the generator rounds
    # its own way)
    assert {c: x.model_copy(update={"area_m2": 0}) for c, x in a.cells.items()} == {
        c: x.model_copy(update={"area_m2": 0}) for c, x in b.cells.items()
    }
    assert all(abs(a.cells[c].area_m2 - b.cells[c].area_m2) <= 2 for c in a.cells)
    assert all(
        shapely.equals_exact(
            shapely.normalize(a.polygons[c]), shapely.normalize(b.polygons[c]), 1e-7
        )
        for c in a.cells
    )
    assert a.parts == b.parts
    assert (a.routing, a.manual) == (b.routing, b.manual)
    assert a.categories == b.categories and a.departments == b.departments
    assert a.users == b.users and a.supervisors == b.supervisors
    assert diff_cities(a, b, DEMO, city_dir).empty is False  # README.md is not copied
    d = diff_cities(a, b, DEMO, city_dir)
    assert d.lines()[:3] == [
        "cells: 0 split, 0 merged, 0 added, 0 removed, 0 reshaped, 0 renamed",
        "parts: 0 added, 0 removed, 0 moved to another cell, 0 with another owner",
        "routing: 0 added, 0 removed, 0 changed",
    ]


# -- pieces ----------------------------------------------------------------------------------


def test_gcj02_inverse_returns_to_the_wgs84_point() -> None:
    lon, lat = 116.397428, 39.90923  # Tiananmen
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    # GCJ-02 shifts Beijing by several hundred metres east and north
    assert 0.004 < float(g_lon) - lon < 0.008 and 0.0005 < float(g_lat) - lat < 0.003
    w_lon, w_lat = gcj02_to_wgs84(g_lon, g_lat)
    assert abs(float(w_lon) - lon) < 1e-8 and abs(float(w_lat) - lat) < 1e-8


def test_check_city_as_a_function_returns_located_problems(imported: Path) -> None:
    problems = check_city(imported, as_of=dt.date(2026, 6, 1))
    assert [(p.file, p.row, p.field) for p in problems] == [
        ("calendar.yaml", "known_through", "known_through")
    ]


def test_a_manual_entry_as_specific_as_the_best_rule_sends_the_category_to_the_queue(
    imported: Path, tmp_path: Path
) -> None:
    def manual_in_one_community(r: Path) -> None:
        doc = yaml.safe_load((r / "routing.yaml").read_text(encoding="utf-8"))
        doc["manual"].append({"category": "E0504", "territory": "110101001002"})
        (r / "routing.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")

    city = load_city(changed(imported, tmp_path, manual_in_one_community))
    assert city.route("E0504", "1101010010020001") is None  # community beats sub-district
    route = city.route("E0504", "1101010010010001")
    assert route is not None and route.dept == "street-001"


def test_known_through_makes_the_citys_own_days_official() -> None:
    from gridloop_city import WorkingCalendar

    day = dt.date(2027, 3, 10)
    plain = WorkingCalendar([(dt.time(9), dt.time(17))])
    declared = WorkingCalendar([(dt.time(9), dt.time(17))], known_through=dt.date(2027, 12, 31))
    assert not plain.is_official(day) and declared.is_official(day)
    assert declared.is_workday(day) and not declared.is_workday(dt.date(2027, 3, 13))
    assert declared.known_until(dt.date(2026, 12, 1), 60) == dt.date(2027, 1, 29)
    assert plain.known_until(dt.date(2026, 12, 1), 60) == dt.date(2026, 12, 31)


# -- versions (live reload) ------------------------------------------------------------------


def test_release_validates_copies_and_makes_a_version_current(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gridloop_city.versions import current, digest, load_version

    root = tmp_path / "versions"
    code, lines = run(
        ["release", str(imported), "--versions", str(root), "--version", "v1"], capsys
    )
    assert code == 0 and lines[0] == f"released v1 ({digest(root / 'v1')}); announce it with:"
    assert current(root) == "v1"
    assert list(load_version(root, "v1", digest(root / "v1")).cells) == list(CELLS)
    # the same version twice, or a city that does not load, is refused; v1 stays current
    assert (
        run(["release", str(imported), "--versions", str(root), "--version", "v1"], capsys)[0] == 1
    )
    bad = changed(imported, tmp_path, lambda r: edit_text(r, "parts.csv", ",water", ",wter"))
    code, lines = run(["release", str(bad), "--versions", str(root), "--version", "v2"], capsys)
    assert code == 1 and lines == ["parts.csv row 2 field owner_dept: unknown department 'wter'"]
    assert current(root) == "v1" and not (root / "v2").exists()
    # a digest names the files exactly
    with pytest.raises(ValueError, match="do not match the announced digest"):
        load_version(root, "v1", "sha256:" + "0" * 64)
