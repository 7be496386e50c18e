"""Bad city data is refused with a `CityDataError` naming the file, the row (CSV line, GeoJSON
feature, YAML item or key) and the field; each test breaks one thing in a copy of the demo."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from gridloop_city import CityDataError, load_city

ROOT = Path(__file__).resolve().parents[3] / "data" / "demo-city"

CELL1 = (
    "[[[116.395,39.895],[116.39617,39.895],[116.39617,39.8959],[116.395,39.8959],[116.395,39.895]]]"
)
CELL2 = (
    "[[[116.39617,39.895],[116.39734,39.895],[116.39734,39.8959],[116.39617,39.8959],"
    "[116.39617,39.895]]]"
)


def copy_city(tmp_path: Path) -> Path:
    root = tmp_path / "city"
    shutil.copytree(ROOT, root)
    return root


def broken(tmp_path: Path, file: str, old: str, new: str) -> Path:
    root = copy_city(tmp_path)
    text = (root / file).read_text(encoding="utf-8")
    assert old in text, old
    (root / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


# (file, old text, new text, expected message regex)
CASES = [
    # -- parts.csv: cross-references, formats, columns, positions
    (
        "parts.csv",
        ",water\n",
        ",wter\n",
        r"^parts\.csv row 2 field owner_dept: unknown department 'wter'$",
    ),
    (
        "parts.csv",
        "1101010101000001,P0101,",
        "1101010101000001,E0104,",
        r"^parts\.csv row 2 field category_code: not a part category: 'E0104'$",
    ),
    (
        "parts.csv",
        "1101010101000001,P0101,",
        "1101010102999999,P0101,",
        r"^parts\.csv row 2 field code: '1101010102999999' is not 110101 \+ 0101 \+",
    ),
    (
        "parts.csv",
        "1101010101000002,",
        "1101010101000001,",
        r"^parts\.csv row 3 field code: duplicate code '1101010101000001'$",
    ),
    (
        "parts.csv",
        ",116.41949,39.918527,",
        ",116.41949,north,",
        r"^parts\.csv row 2 field lat: Input should be a valid number.*\(got 'north'\)$",
    ),
    (
        "parts.csv",
        ",116.41949,",
        ",116.30,",
        r"^parts\.csv row 2 field lon: point \(116\.3, 39\.918527\) is not inside cell "
        r"1101010070010021$",
    ),
    ("parts.csv", ",owner_dept\n", "\n", r"^parts\.csv row 1 field owner_dept: missing column$"),
    ("parts.csv", "code,category_code", "kode,category_code", r"^parts\.csv row 1 field kode: "),
    ("parts.csv", ",water\n", ",water,extra\n", r"^parts\.csv row 2 field \(row\): "),
    (
        "parts.csv",
        ",1101010070010021,water\n",
        ",1101010070010021\n",
        r"^parts\.csv row 2 field owner_dept: missing value",
    ),
    # -- cameras, gazetteer, supervisors
    (
        "cameras.csv",
        "cam-0001,video-ai,",
        "cam-0001,video-x,",
        r"^cameras\.csv row 2 field source: unknown source 'video-x'$",
    ),
    (
        "cameras.csv",
        "cam-0001,video-ai,",
        "cam-0001,12345,",
        r"^cameras\.csv row 2 field source: '12345' is not a video source$",
    ),
    (
        "cameras.csv",
        "cam-0002,",
        "cam-0001,",
        r"^cameras\.csv row 3 field camera_id: duplicate camera_id 'cam-0001'$",
    ),
    (
        "gazetteer.csv",
        ",1101010070060037\n",
        ",9901010070060037\n",
        r"^gazetteer\.csv row 2 field cell_code: unknown cell '9901010070060037'$",
    ),
    (
        "gazetteer.csv",
        "东城区地安门东大街190号,",
        "东城区 朝阳门内大街13号,",
        r"^gazetteer\.csv row 3 field address: duplicate address",
    ),
    (
        "supervisors.csv",
        "1101010010010001,sup-001,",
        "1101010010010001,op-01,",
        r"^supervisors\.csv row 2 field primary: 'op-01' is not a supervisor in users\.yaml$",
    ),
    (
        "supervisors.csv",
        "1101010010010001,sup-001,sup-002",
        "1101010010010001,sup-002,sup-002",
        r"^supervisors\.csv row 2 field backup: the backup must be another supervisor$",
    ),
    (
        "supervisors.csv",
        "1101010010010001,sup-001,sup-002\n",
        "",
        r"^supervisors\.csv row - field cell_code: 1 cells have no supervisors, "
        r"e\.g\. 1101010010010001$",
    ),
    # -- the hierarchy
    (
        "subdistricts.csv",
        "110101002,景山",
        "120101002,景山",
        r"^subdistricts\.csv row 3 field code: does not start with 110101$",
    ),
    (
        "subdistricts.csv",
        "110101002,景山",
        "110101001,景山",
        r"^subdistricts\.csv row 3 field code: duplicate code '110101001'$",
    ),
    (
        "communities.csv",
        "110101001002,韶九社区,110101001",
        "110101001002,韶九社区,110101099",
        r"^communities\.csv row 3 field subdistrict_code: unknown sub-district '110101099'$",
    ),
    (
        "communities.csv",
        "110101001002,韶九社区,110101001",
        "110101002099,韶九社区,110101001",
        r"^communities\.csv row 3 field code: does not start with its sub-district code$",
    ),
    (
        "district.yaml",
        "code: '110101'",
        "code: '1101'",
        r"^district\.yaml row code field code: String should match pattern",
    ),
    # -- grids.geojson
    (
        "grids.geojson",
        '"community_code":"110101001001"',
        '"community_code":"110101009009"',
        r"^grids\.geojson row features\[0\] field community_code: unknown community "
        r"'110101009009'$",
    ),
    (
        "grids.geojson",
        '"subdistrict_code":"110101001"',
        '"subdistrict_code":"110101002"',
        r"^grids\.geojson row features\[0\] field subdistrict_code: '110101002' is not the "
        r"sub-district of community 110101001001",
    ),
    (
        "grids.geojson",
        '"entry_list":["P0401"',
        '"entry_list":["P0499"',
        r"^grids\.geojson row features\[220\] field entry_list: unknown category 'P0499'$",
    ),
    (
        "grids.geojson",
        '"code":"1101010010010001"',
        '"code":"11010100100100X1"',
        r"^grids\.geojson row features\[0\] field code: String should match pattern",
    ),
    (
        "grids.geojson",
        '"code":"1101010010010002"',
        '"code":"1101010010020002"',
        r"^grids\.geojson row features\[1\] field code: a cell code starts with its community",
    ),
    (
        "grids.geojson",
        '"code":"1101010010010002"',
        '"code":"1101010010010001"',
        r"^grids\.geojson row features\[1\] field code: duplicate cell '1101010010010001'$",
    ),
    (
        "grids.geojson",
        '"area_m2":9944',
        '"area_m2":99440',
        r"^grids\.geojson row features\[0\] field area_m2: 99440\.0 m² but the polygon is about "
        r"99\d\d m²$",
    ),
    (
        "grids.geojson",
        CELL2,
        CELL2.replace("116.39617", "116.3960"),
        r"^grids\.geojson row features\[1\] field geometry: "
        r"overlaps cell 1101010010010001 by \d+ m²$",
    ),
    (
        "grids.geojson",
        CELL1,
        CELL1.replace(
            "[116.39617,39.895],[116.39617,39.8959]", "[116.39617,39.8959],[116.39617,39.895]"
        ),
        r"^grids\.geojson row features\[0\] field geometry: must be a valid, non-empty Polygon$",
    ),
    (
        "grids.geojson",
        '"type":"Polygon"',
        '"type":"Blob"',
        r"^grids\.geojson row features\[0\] field geometry: not a GeoJSON geometry",
    ),
    (
        "district.yaml",
        "- 39.8608\n",
        "- 39.9\n",
        r"^grids\.geojson row features\[0\] field geometry: outside the district bbox",
    ),
    (
        "grids.geojson",
        '{"type":"FeatureCollection"',
        '{"type":"FeatureCollection",,',
        r"^grids\.geojson: not valid JSON",
    ),
    # -- categories.yaml
    (
        "categories.yaml",
        "unit: working_hours",
        "unit: fortnights",
        r"^categories\.yaml row categories\[0\] \(P0101\) field limit_normal\.unit: Input should "
        r"be 'working_hours', 'working_days' or 'hours' \(got 'fortnights'\)$",
    ),
    (
        "categories.yaml",
        "major_code: P01",
        "major_code: P09",
        r"^categories\.yaml row categories\[0\] \(P0101\) field major_code: unknown major class "
        r"'P09'$",
    ),
    (
        "categories.yaml",
        "kind: part",
        "kind: event",
        r"^categories\.yaml row categories\[0\] \(P0101\) field kind: P0101 is a part code$",
    ),
    (
        "categories.yaml",
        "- code: P0102",
        "- code: P0101",
        r"^categories\.yaml row categories\[1\] \(P0101\) field code: duplicate code 'P0101'$",
    ),
    (
        "categories.yaml",
        "emergency: false",
        "emergency: perhaps",
        r"^categories\.yaml row categories\[0\] \(P0101\) field emergency: ",
    ),
    # -- departments.yaml and routing.yaml
    (
        "departments.yaml",
        "code: sanitation",
        "code: Sanitation",
        r"^departments\.yaml row departments\[0\] \(Sanitation\) field code: String should match",
    ),
    (
        "routing.yaml",
        "dept: sanitation",
        "dept: nobody",
        r"^routing\.yaml row rules\[1\] field dept: unknown department 'nobody'$",
    ),
    (
        "routing.yaml",
        "  - fire\n",
        "  - fyre\n",
        r"^routing\.yaml row rules\[\d+\] field co_handlers: unknown department 'fyre'$",
    ),
    (
        "routing.yaml",
        "lead: gas",
        "lead: water",
        r"^routing\.yaml row rules\[\d+\] field lead: the lead must be the dept or a co-handler$",
    ),
    (
        "routing.yaml",
        "territory: '110101003'",
        "territory: '110101099'",
        r"^routing\.yaml row rules\[\d+\] field territory: unknown territory '110101099'$",
    ),
    (
        "routing.yaml",
        "category: E02*",
        "category: E09*",
        r"^routing\.yaml row rules\[3\] field category: 'E09\*' matches no category$",
    ),
    (
        "routing.yaml",
        "category: E02*",
        "category: street*",
        r"^routing\.yaml row rules\[3\] field category: String should match pattern",
    ),
    (
        "routing.yaml",
        "category: E02*",
        "category: E01*",
        r"^routing\.yaml row rules\[3\] field category: same category and territory as rules\[1\]$",
    ),
    ("routing.yaml", "rules:", "rules: [", r"^routing\.yaml: not valid YAML"),
    # -- users.yaml
    (
        "users.yaml",
        "dept: sanitation",
        "dept: sanitaton",
        r"^users\.yaml row users\[\d+\] \(sanitation-ops\) field dept: unknown department "
        r"'sanitaton'$",
    ),
    (
        "users.yaml",
        "  - supervisor\n",
        "  - superhero\n",
        r"^users\.yaml row users\[0\] \(sup-001\) field roles: .*unknown role 'superhero'",
    ),
    (
        "users.yaml",
        "  - '110101001'\n  trusted: true",
        "  - '110101099'\n  trusted: true",
        r"^users\.yaml row users\[0\] \(sup-001\) field territory: unknown territory '110101099'$",
    ),
    (
        "users.yaml",
        "- id: sup-002",
        "- id: sup-001",
        r"^users\.yaml row users\[1\] \(sup-001\) field id: duplicate id 'sup-001'$",
    ),
    # -- calendar.yaml
    (
        "calendar.yaml",
        "'13:30'",
        "13:30",
        r"^calendar\.yaml row working_hours field working_hours: .*quoted 'HH:MM' time",
    ),
    (
        "calendar.yaml",
        "unit: working_days\n  to: subdistrict-leader",
        "unit: weeks\n  to: subdistrict-leader",
        r"^calendar\.yaml row escalation\[2\] field after\.unit: ",
    ),
    (
        "calendar.yaml",
        "  to: subdistrict-leader",
        "  to: subdistrict-leader\n  level: 2",
        r"^calendar\.yaml row escalation field escalation: .*levels must be 1, 2, 3",
    ),
    (
        "calendar.yaml",
        "timezone: Asia/Shanghai",
        "timezone: Asia/Beijing",
        r"^calendar\.yaml row timezone field timezone: .*unknown time zone 'Asia/Beijing'",
    ),
    (
        "calendar.yaml",
        "extra_holidays: []",
        "extra_holidays: ['2027-02-05', '2027-02-30']",
        r"^calendar\.yaml row extra_holidays\[1\] field \(item\): ",
    ),
    (
        "calendar.yaml",
        "reminder_fraction: 0.75\nescalation",
        "reminder_fraction: 1.5\nescalation",
        r"^calendar\.yaml row reminder_fraction field reminder_fraction: ",
    ),
    # -- sources, intake, scoring
    (
        "sources.yaml",
        "channel: hotline",
        "channel: fax",
        r"^sources\.yaml row sources\[0\] \(12345\) field channel: ",
    ),
    (
        "sources.yaml",
        "  channel: hotline\n- code: '96105'",
        "  channel: hotline\n  open311_api_keys: [demo-open311-key]\n- code: '96105'",
        r"^sources\.yaml row sources\[4\] \(web\) field open311_api_keys: key 'demo-open311-key' "
        r"used twice$",
    ),
    (
        "intake.yaml",
        "- E0602",
        "- E0699",
        r"^intake\.yaml row shift_leader_review\[1\] field \(item\): unknown category 'E0699'$",
    ),
    (
        "intake.yaml",
        "distance_m: 50",
        "distance_m: -5",
        r"^intake\.yaml row duplicate field distance_m: ",
    ),
    (
        "intake.yaml",
        "- code: duplicate\n",
        "- code: out-of-district\n",
        r"^intake\.yaml row reject_reasons\[3\] field code: duplicate reason 'out-of-district'$",
    ),
    (
        "scoring.yaml",
        "min: 80",
        "min: 95",
        r"^scoring\.yaml row grades field grades: .*from the best down",
    ),
    (
        "scoring.yaml",
        "    points: 50\n",
        "",
        r"^scoring\.yaml row rule_sets\[0\]\.rules\[0\] field \(item\): .*needs points",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), CASES)
def test_bad_data_names_file_row_and_field(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    with pytest.raises(CityDataError, match=expected):
        load_city(broken(tmp_path, file, old, new))


def edited_yaml(tmp_path: Path, file: str, edit: Callable[[Any], None]) -> Path:
    root = copy_city(tmp_path)
    doc = yaml.safe_load((root / file).read_text(encoding="utf-8"))
    edit(doc)
    (root / file).write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return root


def _drop(items: list[dict[str, Any]], ident: str, key: str) -> None:
    next(i for i in items if ident in (i.get("id"), i.get("code"))).pop(key)


@pytest.mark.parametrize(
    ("file", "edit", "expected"),
    [
        (
            "categories.yaml",
            lambda d: _drop(d["categories"], "P0103", "closing_standard"),
            r"^categories\.yaml row categories\[2\] \(P0103\) field closing_standard: missing$",
        ),
        (
            "departments.yaml",
            lambda d: _drop(d["departments"], "street-001", "subdistrict_code"),
            r"^departments\.yaml row departments\[\d+\] \(street-001\) field subdistrict_code: "
            r"a sub-district office needs one$",
        ),
        (
            "users.yaml",
            lambda d: _drop(d["users"], "water-ops", "dept"),
            r"^users\.yaml row users\[\d+\] \(water-ops\) field dept: a department user needs",
        ),
        (
            "calendar.yaml",
            lambda d: d.pop("sign_in_timeout"),
            r"^calendar\.yaml row sign_in_timeout field sign_in_timeout: missing$",
        ),
        (
            "routing.yaml",
            lambda d: d["rules"].append({"category": "E0101", "territory": "1101010010010030"}),
            r"^routing\.yaml row rules\[\d+\] field dept: missing$",
        ),
        (
            "sources.yaml",
            lambda d: d.pop("sources"),
            r"^sources\.yaml: expected a list under 'sources'$",
        ),
    ],
)
def test_bad_yaml_structures(
    tmp_path: Path, file: str, edit: Callable[[Any], None], expected: str
) -> None:
    with pytest.raises(CityDataError, match=expected):
        load_city(edited_yaml(tmp_path, file, edit))


def test_missing_file(tmp_path: Path) -> None:
    root = copy_city(tmp_path)
    (root / "sources.yaml").unlink()
    with pytest.raises(CityDataError, match=r"^sources\.yaml: file missing in "):
        load_city(root)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CityDataError, match=r"^city data directory not found: "):
        load_city(tmp_path / "nowhere")


def test_the_error_is_a_value_error() -> None:
    assert issubclass(CityDataError, ValueError)
