"""`gridloop-city import` and `export`: a city's own GIS layers and tables ⇄ a city folder.

An import is described by a spec (YAML), paths relative to the spec's folder:

    base: ../demo-city        # files not imported come from this city folder (calendar,
                              # intake, scoring, sources, cameras, gazetteer, …)
    district: {code: '110101', name: 东城区}   # else base's district.yaml (bbox: from cells)
    crs: EPSG:4490            # for layers that declare none (GCJ-02 layers never can)
    subdistricts: {path: streets.shp, fields: {code: JDDM, name: JDMC}}
    communities:  {path: city.gpkg, layer: communities, crs: EPSG:3857}
    cells:        {path: cells.geojson, crs: GCJ-02}
    parts:        {path: parts.gpkg, layer: parts}
    categories:   {path: categories.csv}
    departments:  {path: departments.xlsx, sheet: departments}
    routing:      {path: routing.csv}
    users:        {path: people.csv}
    supervisors:  {path: supervisors.csv}

`fields` maps the city's field names to the source's column names (default: the same).
Layers (GeoJSON, Shapefile, GeoPackage) are reprojected to WGS-84; cells and parts must be
given, the rest falls back to `base`. Codes follow CJ/T 213: a cell's community and
sub-district come from its code when the layer has no such columns, a part's cell from its
position. Tables (CSV or XLSX) have the columns of the city file they become; lists
(`roles`, `territory`, `co_handlers`, `entry_list`) are separated by `;`; a routing row whose
`dept` is `manual` sends its category to the manual dispatch queue; time limits read
`3 working_days`.

Problems in the sources are collected, not raised one by one: each names the source file,
the feature or row and the field, and nothing is written while there are any.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
import yaml
from shapely import STRtree

from .gis import WGS84, GisError, read_layer, write_layer
from .loader import City, _area_m2
from .problems import Problem

#: City files an import writes itself (everything else comes from `base`).
IMPORTED = (
    "district.yaml",
    "subdistricts.csv",
    "communities.csv",
    "grids.geojson",
    "parts.csv",
    "categories.yaml",
    "departments.yaml",
    "routing.yaml",
    "users.yaml",
    "supervisors.csv",
    "subdistricts.geojson",
    "communities.geojson",
)
FLAGS = (
    "emergency",
    "requires_confirmation",
    "close_requires_approval",
    "auto_accept_from_trusted",
    "video_detectable",
)
MANUAL = "manual"


class ImportFailed(Exception):
    """The sources have problems; nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


# -- reading tables --------------------------------------------------------------------------


def read_table(path: Path, sheet: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a CSV (UTF-8, or GB18030 as Chinese spreadsheets save it) or XLSX sheet, each
    with its line number (the header is line 1)."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        ws = wb[sheet] if sheet else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(it, ())]
        out = []
        for n, values in enumerate(it, start=2):
            if all(v is None or v == "" for v in values):
                continue
            out.append((n, {h: _cell(v) for h, v in zip(header, values, strict=False) if h}))
        wb.close()
        return out
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        rows.append((reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k}))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _text(value: Any) -> str:
    """A source value as text: numbers that are codes lose their `.0` (Shapefile columns)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value).strip()


def _list(value: Any) -> list[str]:
    return [v.strip() for v in _text(value).replace("；", ";").split(";") if v.strip()]


def _flag(value: Any) -> bool:
    return _text(value).lower() in ("1", "true", "yes", "y", "是", "√")


# -- the spec --------------------------------------------------------------------------------


@dataclass
class Source:
    path: Path
    layer: str | None
    sheet: str | None
    crs: str | None
    fields: dict[str, str]

    def col(self, row: Mapping[str, Any], name: str) -> Any:
        return row.get(self.fields.get(name, name))

    def has(self, name: str, header: Iterable[str]) -> bool:
        return self.fields.get(name, name) in set(header)


def _source(spec: Mapping[str, Any], key: str, here: Path) -> Source | None:
    entry = spec.get(key)
    if entry is None:
        return None
    if isinstance(entry, str):
        entry = {"path": entry}
    return Source(
        path=(here / str(entry["path"])).resolve(),
        layer=entry.get("layer"),
        sheet=entry.get("sheet"),
        crs=entry.get("crs", spec.get("crs")),
        fields={str(k): str(v) for k, v in (entry.get("fields") or {}).items()},
    )


# -- import ----------------------------------------------------------------------------------


def import_city(spec_path: Path, out: Path) -> list[str]:
    """Read the sources a spec names and write the city folder `out`; returns the files
    written. Raises `ImportFailed` with every problem found (nothing written then)."""
    spec_path = spec_path.resolve()
    here = spec_path.parent
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
    if not isinstance(spec, dict):
        raise ImportFailed([Problem(spec_path.name, "-", "(document)", "expected a mapping")])
    base = (here / str(spec["base"])).resolve() if spec.get("base") else None
    problems: list[Problem] = []
    files: dict[str, str] = {}

    district: dict[str, Any] = {}
    if base is not None and (base / "district.yaml").exists():
        district = yaml.safe_load((base / "district.yaml").read_text(encoding="utf-8"))
    district.update(spec.get("district") or {})
    dcode = _text(district.get("code"))
    if len(dcode) != 6 or not dcode.isdigit():
        problems.append(Problem(spec_path.name, "district", "code", "a 6-digit district code"))

    # -- space: sub-districts, communities, cells --------------------------------------------
    boundaries: dict[str, list[tuple[str, Any]]] = {}
    tables: dict[str, list[list[str]]] = {}
    for key, width in (("subdistricts", 9), ("communities", 12)):
        src = _source(spec, key, here)
        if src is None:
            continue
        rows_out: list[list[str]] = []
        polys: list[tuple[str, Any]] = []
        for label, geom, row in _features(src, problems):
            code = _text(src.col(row, "code"))
            name = _text(src.col(row, "name"))
            if len(code) != width or not code.isdigit():
                problems.append(Problem(src.path.name, label, "code", f"{code!r}: {width} digits"))
                continue
            if not name:
                problems.append(Problem(src.path.name, label, "name", "missing"))
            parent = code[: width - 3]
            if key == "subdistricts":
                rows_out.append([code, name])
            else:
                given = _text(src.col(row, "subdistrict_code")) or parent
                if given != parent:
                    problems.append(
                        Problem(
                            src.path.name,
                            label,
                            "subdistrict_code",
                            f"{given} but the code {code} says {parent} (CJ/T 213)",
                        )
                    )
                rows_out.append([code, name, parent])
            if geom is not None:
                polys.append((code, geom))
        tables[key] = rows_out
        boundaries[key] = polys

    cells_src = _source(spec, "cells", here)
    features: list[dict[str, Any]] = []
    cell_polys: dict[str, Any] = {}
    if cells_src is None:
        problems.append(Problem(spec_path.name, "cells", "path", "cells are required"))
    else:
        for label, geom, row in _features(cells_src, problems):
            code = _text(cells_src.col(row, "code"))
            if len(code) != 16 or not code.isdigit():
                problems.append(
                    Problem(cells_src.path.name, label, "code", f"{code!r}: 16 digits (CJ/T 213)")
                )
                continue
            if code in cell_polys:
                problems.append(Problem(cells_src.path.name, label, "code", f"duplicate {code}"))
                continue
            if geom is None or shapely.get_type_id(geom) not in (3, 6):
                problems.append(Problem(cells_src.path.name, label, "geometry", "not a polygon"))
                continue
            if shapely.get_type_id(geom) == 6:
                if len(geom.geoms) != 1:
                    problems.append(
                        Problem(cells_src.path.name, label, "geometry", "a cell is one polygon")
                    )
                    continue
                geom = geom.geoms[0]
            geom = shapely.set_precision(geom, 1e-7)
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
            community = _text(cells_src.col(row, "community_code")) or code[:12]
            sub = _text(cells_src.col(row, "subdistrict_code")) or code[:9]
            name = _text(cells_src.col(row, "name")) or f"{code[-4:]}号网格"
            props: dict[str, Any] = {
                "code": code,
                "name": name,
                "community_code": community,
                "subdistrict_code": sub,
                "area_m2": round(_area_m2(geom)),
            }
            entry = _list(cells_src.col(row, "entry_list"))
            if entry:
                props["entry_list"] = entry
            cell_polys[code] = geom
            features.append(
                {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(geom)}
            )
    if features:
        x0, y0, x1, y1 = shapely.total_bounds(list(cell_polys.values())).tolist()
        # outward to 1e-4° (about 10 m), past float noise (39.93460000001 stays 39.9346)
        district["bbox"] = [
            math.floor(round(x0 * 1e4, 6)) / 1e4,
            math.floor(round(y0 * 1e4, 6)) / 1e4,
            math.ceil(round(x1 * 1e4, 6)) / 1e4,
            math.ceil(round(y1 * 1e4, 6)) / 1e4,
        ]
    # sub-districts / communities known only from cell codes get a placeholder name
    if "subdistricts" not in tables and base is None:
        subs = sorted({f["properties"]["subdistrict_code"] for f in features})
        tables["subdistricts"] = [[c, f"{c[-3:]}街道"] for c in subs]
    if "communities" not in tables and base is None:
        comms = sorted({f["properties"]["community_code"] for f in features})
        tables["communities"] = [[c, f"{c[-3:]}社区", c[:9]] for c in comms]

    # -- parts -------------------------------------------------------------------------------
    parts_src = _source(spec, "parts", here)
    part_rows: list[list[object]] = []
    if parts_src is not None and cell_polys:
        order = list(cell_polys)
        tree = STRtree([cell_polys[c] for c in order])
        for label, geom, row in _features(parts_src, problems):
            code = _text(parts_src.col(row, "code"))
            cat = _text(parts_src.col(row, "category_code"))
            if geom is None or shapely.get_type_id(geom) != 0:
                problems.append(Problem(parts_src.path.name, label, "geometry", "not a point"))
                continue
            hits = tree.query(geom, predicate="intersects")
            if len(hits) == 0:
                problems.append(
                    Problem(
                        parts_src.path.name,
                        label,
                        "geometry",
                        f"part {code} at ({geom.x:.6f}, {geom.y:.6f}) lies outside every cell",
                    )
                )
                continue
            cell = min(order[int(i)] for i in hits)
            part_rows.append(
                [
                    code,
                    cat,
                    _text(parts_src.col(row, "name")) or cat,
                    round(geom.x, 6),
                    round(geom.y, 6),
                    cell,
                    _text(parts_src.col(row, "owner_dept")),
                ]
            )

    # -- tables ------------------------------------------------------------------------------
    documents: dict[str, Any] = {}
    cat_src = _source(spec, "categories", here)
    if cat_src is not None:
        documents["categories.yaml"] = _categories(cat_src, problems)
    dept_src = _source(spec, "departments", here)
    if dept_src is not None:
        depts = []
        for line, row in _rows(dept_src, problems):
            d: dict[str, Any] = {
                "code": _text(dept_src.col(row, "code")),
                "name": _text(dept_src.col(row, "name")),
                "kind": _text(dept_src.col(row, "kind")) or "bureau",
            }
            english = _text(dept_src.col(row, "name_en"))
            if english:
                d["name_en"] = english
            sub = _text(dept_src.col(row, "subdistrict_code"))
            if sub:
                d["subdistrict_code"] = sub
            if d["code"] == MANUAL:
                problems.append(
                    Problem(dept_src.path.name, line, "code", f"{MANUAL!r} is reserved")
                )
            depts.append(d)
        documents["departments.yaml"] = {"departments": depts}
    route_src = _source(spec, "routing", here)
    if route_src is not None:
        rules: list[dict[str, Any]] = []
        manual: list[dict[str, Any]] = []
        for _, row in _rows(route_src, problems):
            r: dict[str, Any] = {
                "category": _text(route_src.col(row, "category")) or "*",
                "territory": _text(route_src.col(row, "territory")) or "*",
            }
            note = _text(route_src.col(row, "note"))
            dept = _text(route_src.col(row, "dept"))
            if dept == MANUAL:
                manual.append({**r, **({"note": note} if note else {})})
                continue
            r["dept"] = dept
            co = _list(route_src.col(row, "co_handlers"))
            if co:
                r["co_handlers"] = co
            lead = _text(route_src.col(row, "lead"))
            if lead:
                r["lead"] = lead
            if note:
                r["note"] = note
            rules.append(r)
        documents["routing.yaml"] = {"rules": rules, **({"manual": manual} if manual else {})}
    user_src = _source(spec, "users", here)
    if user_src is not None:
        users = []
        for _, row in _rows(user_src, problems):
            u: dict[str, Any] = {
                "id": _text(user_src.col(row, "id")),
                "name": _text(user_src.col(row, "name")),
                "roles": _list(user_src.col(row, "roles")),
                "territory": _list(user_src.col(row, "territory")) or ["*"],
            }
            dept = _text(user_src.col(row, "dept"))
            if dept:
                u["dept"] = dept
            if _flag(user_src.col(row, "trusted")):
                u["trusted"] = True
            users.append(u)
        documents["users.yaml"] = {"users": users}
    sup_src = _source(spec, "supervisors", here)
    if sup_src is not None:
        tables["supervisors"] = [
            [_text(sup_src.col(r, k)) for k in ("cell_code", "primary", "backup")]
            for _, r in _rows(sup_src, problems)
        ]

    if problems:
        raise ImportFailed(problems)

    # -- write -------------------------------------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    if base is not None:
        for f in sorted(base.iterdir()):
            if f.is_file() and f.name not in IMPORTED and f.name != "README.md":
                shutil.copyfile(f, out / f.name)
                files[f.name] = "base"
        for name in ("subdistricts.csv", "communities.csv", "supervisors.csv"):
            key = name.removesuffix(".csv")
            if key not in tables and (base / name).exists():
                shutil.copyfile(base / name, out / name)
                files[name] = "base"
        for name in ("categories.yaml", "departments.yaml", "routing.yaml", "users.yaml"):
            if name not in documents and (base / name).exists():
                shutil.copyfile(base / name, out / name)
                files[name] = "base"
    _write(out, "district.yaml", _yaml(district))
    headers = {
        "subdistricts": ["code", "name"],
        "communities": ["code", "name", "subdistrict_code"],
        "supervisors": ["cell_code", "primary", "backup"],
    }
    for key, rows in tables.items():
        _write(out, f"{key}.csv", _csv_text(headers[key], rows))
    _write(out, "grids.geojson", _geojson(features))
    if parts_src is not None:
        header = ["code", "category_code", "name", "lon", "lat", "cell_code", "owner_dept"]
        _write(out, "parts.csv", _csv_text(header, part_rows))
    elif base is not None and (base / "parts.csv").exists():
        shutil.copyfile(base / "parts.csv", out / "parts.csv")
    for name, doc in documents.items():
        _write(out, name, _yaml(doc))
    for key, polys in boundaries.items():
        if polys:
            feats = [
                {
                    "type": "Feature",
                    "properties": {"code": code},
                    "geometry": shapely.geometry.mapping(shapely.set_precision(g, 1e-7)),
                }
                for code, g in polys
            ]
            _write(out, f"{key}.geojson", _geojson(feats))
    return sorted(p.name for p in out.iterdir())


def _features(src: Source, problems: list[Problem]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(row label, WGS-84 geometry, attributes) of a layer; a read failure is a problem."""
    try:
        layer = read_layer(src.path, layer=src.layer, crs=src.crs)
    except (GisError, OSError) as exc:
        problems.append(Problem(src.path.name, "-", "(file)", str(exc)))
        return []
    header = set(layer.rows[0]) if layer.rows else set()
    for name, column in src.fields.items():
        if layer.rows and column not in header:
            problems.append(Problem(src.path.name, 1, column, f"no such field (for {name})"))
    return [
        (f"feature {i}", g, row)
        for i, (g, row) in enumerate(zip(layer.geometries, layer.rows, strict=True))
    ]


def _rows(src: Source, problems: list[Problem]) -> list[tuple[int, dict[str, Any]]]:
    try:
        return read_table(src.path, src.sheet)
    except (OSError, KeyError, ValueError) as exc:
        problems.append(Problem(src.path.name, "-", "(file)", f"cannot read ({exc})"))
        return []


def _duration(text: str, file: str, line: int, fld: str, problems: list[Problem]) -> Any:
    parts = text.split()
    try:
        amount = float(parts[0])
        unit = parts[1]
    except (IndexError, ValueError):
        problems.append(Problem(file, line, fld, f"{text!r} is not like '3 working_days'"))
        return None
    return {"amount": int(amount) if amount.is_integer() else amount, "unit": unit}


def _categories(src: Source, problems: list[Problem]) -> dict[str, Any]:
    majors: dict[str, dict[str, str]] = {}
    cats = []
    for line, row in _rows(src, problems):
        code = _text(src.col(row, "code"))
        major = _text(src.col(row, "major_code")) or code[:3]
        if major not in majors:
            majors[major] = {
                "code": major,
                "name": _text(src.col(row, "major_name")) or major,
                "name_en": _text(src.col(row, "major_name_en")),
            }
        c: dict[str, Any] = {
            "code": code,
            "name": _text(src.col(row, "name")),
            "name_en": _text(src.col(row, "name_en")),
            "kind": _text(src.col(row, "kind")) or ("part" if code.startswith("P") else "event"),
            "major_code": major,
            "acceptance_standard": _text(src.col(row, "acceptance_standard")),
            "closing_standard": _text(src.col(row, "closing_standard")),
        }
        for fld in ("limit_normal", "limit_urgent"):
            c[fld] = _duration(_text(src.col(row, fld)), src.path.name, line, fld, problems)
        for f in FLAGS:
            c[f] = _flag(src.col(row, f))
        attributes = _text(src.col(row, "attributes"))
        if attributes:  # Open311 questions, as a JSON list (ServiceAttribute)
            try:
                c["attributes"] = json.loads(attributes)
            except ValueError as exc:
                problems.append(Problem(src.path.name, f"line {line}", "attributes", str(exc)))
        cats.append(c)
    return {"majors": list(majors.values()), "categories": cats}


def _write(out: Path, name: str, text: str) -> None:
    (out / name).write_text(text, encoding="utf-8")


def _yaml(obj: object) -> str:
    return yaml.safe_dump(obj, allow_unicode=True, sort_keys=False, width=100)


def _csv_text(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _geojson(features: list[dict[str, Any]]) -> str:
    doc = {"type": "FeatureCollection", "features": features}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


# -- export ----------------------------------------------------------------------------------


def export_city(city: City, root: Path, out: Path, fmt: str = "shp", crs: str = WGS84) -> Path:
    """Write a loaded city as GIS layers (cells, parts; `fmt` shp, gpkg or geojson, in `crs`)
    and CSV tables, with the import spec that reads them back; returns the spec's path."""
    out.mkdir(parents=True, exist_ok=True)
    ext = {"shp": ".shp", "gpkg": ".gpkg", "geojson": ".geojson"}[fmt]
    cells = list(city.cells.values())
    write_layer(
        out / f"cells{ext}",
        [city.polygons[c.code] for c in cells],
        [
            {"code": c.code, "name": c.name, "entry_list": ";".join(c.entry_list or ())}
            for c in cells
        ],
        crs=crs,
    )
    parts = list(city.parts.values())
    write_layer(
        out / f"parts{ext}",
        [shapely.Point(p.lon, p.lat) for p in parts],
        [
            {"code": p.code, "category": p.category_code, "name": p.name, "owner": p.owner_dept}
            for p in parts
        ],
        crs=crs,
    )
    _write(
        out,
        "categories.csv",
        _csv_text(
            [
                "major_code",
                "major_name",
                "major_name_en",
                "code",
                "name",
                "name_en",
                "kind",
                "acceptance_standard",
                "closing_standard",
                "limit_normal",
                "limit_urgent",
                *FLAGS,
                "attributes",
            ],
            [
                [
                    c.major_code,
                    city.majors[c.major_code].name,
                    city.majors[c.major_code].name_en,
                    c.code,
                    c.name,
                    c.name_en,
                    c.kind,
                    c.acceptance_standard,
                    c.closing_standard,
                    f"{_num(c.limit_normal.amount)} {c.limit_normal.unit}",
                    f"{_num(c.limit_urgent.amount)} {c.limit_urgent.unit}",
                    *("1" if getattr(c, f) else "0" for f in FLAGS),
                    json.dumps(
                        [a.model_dump(mode="json", exclude_defaults=True) for a in c.attributes],
                        ensure_ascii=False,
                    )
                    if c.attributes
                    else "",
                ]
                for c in city.categories.values()
            ],
        ),
    )
    _write(
        out,
        "departments.csv",
        _csv_text(
            ["code", "name", "name_en", "kind", "subdistrict_code"],
            [
                [d.code, d.name, d.name_en, d.kind, d.subdistrict_code or ""]
                for d in city.departments.values()
            ],
        ),
    )
    _write(
        out,
        "routing.csv",
        _csv_text(
            ["category", "territory", "dept", "co_handlers", "lead", "note"],
            [
                [r.category, r.territory, r.dept, ";".join(r.co_handlers), r.lead or "", r.note]
                for r in city.routing
            ]
            + [[m.category, m.territory, MANUAL, "", "", m.note] for m in city.manual],
        ),
    )
    _write(
        out,
        "people.csv",
        _csv_text(
            ["id", "name", "roles", "territory", "dept", "trusted"],
            [
                [
                    u.id,
                    u.name,
                    ";".join(u.roles),
                    ";".join(u.territory),
                    u.dept or "",
                    "1" if u.trusted else "",
                ]
                for u in city.users.values()
            ],
        ),
    )
    _write(
        out,
        "supervisors.csv",
        _csv_text(
            ["cell_code", "primary", "backup"],
            [[a.cell_code, a.primary, a.backup] for a in city.supervisors.values()],
        ),
    )
    layer_crs = {} if crs == WGS84 else {"crs": crs}
    spec = {
        "base": str(root.resolve()),
        "cells": {"path": f"cells{ext}", **layer_crs},
        "parts": {
            "path": f"parts{ext}",
            **layer_crs,
            "fields": {"category_code": "category", "owner_dept": "owner"},
        },
        "categories": {"path": "categories.csv"},
        "departments": {"path": "departments.csv"},
        "routing": {"path": "routing.csv"},
        "users": {"path": "people.csv"},
        "supervisors": {"path": "supervisors.csv"},
    }
    path = out / "import.yaml"
    _write(out, "import.yaml", _yaml(spec))
    return path


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
