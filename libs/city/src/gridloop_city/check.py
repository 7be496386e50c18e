"""`gridloop-city check`: everything wrong with a city folder, each problem naming the file,
the row (CSV line, GeoJSON feature, YAML item) and the field.

`load_city` stops at the first error; `check` goes on. It looks at the grid and the parts
itself first (so every overlap, gap and stray part is listed, not only the first), then loads
the city, then checks what only a whole city can tell:

- cell codes per CJ/T 213: district (6) + sub-district (3) + community (3) + cell (4) digits,
  consistent with the cell's own `community_code`/`subdistrict_code` and, where the import
  wrote boundaries (`communities.geojson`, `subdistricts.geojson`), with the polygon that
  contains the cell;
- cells cover the district without overlap (above a tolerance) and without gaps: against the
  sub-district (else community) boundaries where present, else the holes inside the grid;
- every part inside a cell (the cell its row names) and of a known part type;
- every category routed in every cell, or on purpose to the manual queue (routing.yaml
  `manual`);
- every department reachable: at least one user with the department role works for it;
- the calendar official (chinese_calendar, or the city's own `known_through`) for the next
  12 months.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import shapely
from shapely import STRtree
from shapely.geometry import shape

from .loader import OVERLAP_TOLERANCE_M2, City, CityDataError, _area_m2, category_rank, load_city
from .problems import Problem

_LOADER_MESSAGE = re.compile(r"^(\S+) row (.+?) field (.+?): (.*)$", re.S)
GRID = "grids.geojson"


def check_city(
    root: Path,
    *,
    as_of: dt.date | None = None,
    tolerance_m2: float = OVERLAP_TOLERANCE_M2,
) -> list[Problem]:
    """Every problem of the city folder `root` (empty: the city is good)."""
    as_of = as_of or dt.date.today()
    problems: list[Problem] = []
    grid = _read_grid(root, problems)
    if grid:
        problems += _grid_problems(root, grid, tolerance_m2)
        problems += _part_problems(root, grid)
    try:
        city = load_city(root)
    except CityDataError as exc:
        loaded = _from_loader(str(exc))
        # the same row already reported by the checks above (the loader names a feature
        # `features[i]`, the grid checks `features[i] (code)`)
        rows = {(p.file, str(p.row).split(" ")[0]) for p in problems}
        if (loaded.file, str(loaded.row)) not in rows:
            problems.append(loaded)
        return problems
    problems += routing_problems(city)
    problems += department_problems(city)
    problems += calendar_problems(city, as_of)
    return problems


def _from_loader(message: str) -> Problem:
    m = _LOADER_MESSAGE.match(message)
    if m is None:
        file, _, reason = message.partition(": ")
        return Problem(file, "-", "(file)", reason or message)
    return Problem(m[1], m[2], m[3], m[4])


# -- grid ------------------------------------------------------------------------------------


class _Grid:
    def __init__(self, codes: list[str], props: list[dict[str, Any]], geoms: list[Any]) -> None:
        self.codes = codes
        self.props = props
        self.geoms = geoms
        self.tree = STRtree(geoms)
        self.index = {c: i for i, c in enumerate(codes)}

    def __bool__(self) -> bool:
        return bool(self.codes)

    def label(self, i: int) -> str:
        return f"features[{i}] ({self.codes[i]})"


def _read_grid(root: Path, problems: list[Problem]) -> _Grid | None:
    try:
        doc = json.loads((root / GRID).read_text(encoding="utf-8-sig"))
        features = doc["features"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # the loader says what is wrong with the file itself
    codes, props, geoms = [], [], []
    for i, feat in enumerate(features):
        try:
            p = dict(feat["properties"])
            g = shape(feat["geometry"])
        except Exception:  # a broken feature: the loader names it
            continue
        if g.is_empty or not g.is_valid:
            problems.append(Problem(GRID, f"features[{i}]", "geometry", "not a valid polygon"))
            continue
        codes.append(str(p.get("code", "")))
        props.append(p)
        geoms.append(g)
    return _Grid(codes, props, geoms)


def _district_code(root: Path) -> str:
    import yaml

    try:
        doc = yaml.safe_load((root / "district.yaml").read_text(encoding="utf-8"))
        return str(doc.get("code", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _boundaries(root: Path, name: str) -> tuple[list[str], list[Any]] | None:
    path = root / name
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    codes = [str(f["properties"]["code"]) for f in doc["features"]]
    geoms = [shape(f["geometry"]) for f in doc["features"]]
    return codes, geoms


def _grid_problems(root: Path, grid: _Grid, tolerance_m2: float) -> list[Problem]:
    out: list[Problem] = []
    district = _district_code(root)
    # CJ/T 213: the code spells its hierarchy
    for i, (code, p) in enumerate(zip(grid.codes, grid.props, strict=True)):
        label = grid.label(i)
        if not re.fullmatch(r"\d{16}", code):
            out.append(Problem(GRID, label, "code", f"{code!r}: CJ/T 213 cell codes are 16 digits"))
            continue
        if district and not code.startswith(district):
            out.append(Problem(GRID, label, "code", f"does not start with district {district}"))
        if str(p.get("community_code")) != code[:12]:
            out.append(
                Problem(
                    GRID,
                    label,
                    "community_code",
                    f"{p.get('community_code')!r} but the code says {code[:12]} (CJ/T 213)",
                )
            )
        if str(p.get("subdistrict_code")) != code[:9]:
            out.append(
                Problem(
                    GRID,
                    label,
                    "subdistrict_code",
                    f"{p.get('subdistrict_code')!r} but the code says {code[:9]} (CJ/T 213)",
                )
            )
    # the code agrees with the polygons that contain the cell
    for file, fld, width in (
        ("communities.geojson", "community_code", 12),
        ("subdistricts.geojson", "subdistrict_code", 9),
    ):
        bounds = _boundaries(root, file)
        if bounds is None:
            continue
        b_codes, b_geoms = bounds
        b_tree = STRtree(b_geoms)
        points = shapely.point_on_surface(grid.geoms)
        where, what = b_tree.query(points, predicate="within")
        found: dict[int, str] = {}
        for w, b in zip(where.tolist(), what.tolist(), strict=True):
            found.setdefault(w, b_codes[b])
        for i, code in enumerate(grid.codes):
            inside = found.get(i)
            if inside is None:
                out.append(
                    Problem(GRID, grid.label(i), fld, f"the cell lies in no polygon of {file}")
                )
            elif code[:width] != inside:
                out.append(
                    Problem(
                        GRID,
                        grid.label(i),
                        "code",
                        f"the cell lies in {inside} ({file}) but its code says {code[:width]}",
                    )
                )
    # overlaps
    a, b = grid.tree.query(grid.geoms, predicate="intersects")
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        if i >= j:
            continue
        shared = _area_m2(shapely.intersection(grid.geoms[i], grid.geoms[j]))
        if shared > tolerance_m2:
            out.append(
                Problem(
                    GRID,
                    grid.label(j),
                    "geometry",
                    f"overlaps cell {grid.codes[i]} by {shared:.0f} m² "
                    f"(tolerance {tolerance_m2:g} m²)",
                )
            )
    # gaps: against the district's boundary where known, else holes inside the grid
    covered = shapely.union_all(grid.geoms)
    bounds = _boundaries(root, "subdistricts.geojson") or _boundaries(root, "communities.geojson")
    if bounds is not None:
        district_area = shapely.union_all(bounds[1])
        gaps = shapely.difference(district_area, covered)
        outside = shapely.difference(covered, district_area)
        for piece in _pieces(outside):
            area = _area_m2(piece)
            if area > tolerance_m2:
                k = _next_to(grid, piece)
                out.append(
                    Problem(
                        GRID,
                        grid.label(k) if k is not None else "-",
                        "geometry",
                        f"{area:.0f} m² outside the district's boundary",
                    )
                )
    else:
        holes = [shapely.Polygon(ring) for poly in _pieces(covered) for ring in poly.interiors]
        gaps = shapely.union_all(holes) if holes else shapely.Polygon()
    for piece in _pieces(gaps):
        area = _area_m2(piece)
        if area <= tolerance_m2:
            continue
        n = _next_to(grid, piece)
        pt = piece.representative_point()
        near = f" next to cell {grid.codes[n]}" if n is not None else ""
        out.append(
            Problem(
                GRID,
                grid.label(n) if n is not None else "-",
                "geometry",
                f"a gap of {area:.0f} m² around ({pt.x:.6f}, {pt.y:.6f}) in no cell{near}",
            )
        )
    return out


def _pieces(geom: Any) -> list[Any]:
    """The polygons of a geometry, opened by a few centimetres: the float slivers that a
    difference leaves along shared edges are no gap."""
    if geom is None or geom.is_empty:
        return []
    geom = shapely.buffer(shapely.buffer(geom, -5e-7, join_style="mitre"), 5e-7, join_style="mitre")
    parts = shapely.get_parts(geom)
    return [g for g in parts.tolist() if shapely.get_type_id(g) == 3 and not g.is_empty]


def _next_to(grid: _Grid, piece: Any) -> int | None:
    """The cell sharing the longest border with a piece (a gap, an overhang)."""
    around = shapely.buffer(piece, 1e-6)
    hits = grid.tree.query(around, predicate="intersects").tolist()
    if not hits:
        return None
    return int(max(hits, key=lambda i: (shapely.intersection(around, grid.geoms[i]).area, -i)))


# -- parts -----------------------------------------------------------------------------------


def _part_problems(root: Path, grid: _Grid) -> list[Problem]:
    path = root / "parts.csv"
    if not path.exists():
        return []
    out: list[Problem] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = []
        for row in reader:
            try:
                rows.append((reader.line_num, row, float(row["lon"]), float(row["lat"])))
            except (KeyError, TypeError, ValueError):
                continue  # the loader names the bad value
    if not rows:
        return out
    where, cells = grid.tree.query(
        shapely.points([(lon, lat) for _, _, lon, lat in rows]), predicate="intersects"
    )
    inside: dict[int, set[str]] = {}
    for w, c in zip(where.tolist(), cells.tolist(), strict=True):
        inside.setdefault(w, set()).add(grid.codes[c])
    for k, (line, row, lon, lat) in enumerate(rows):
        found = inside.get(k)
        if not found:
            out.append(
                Problem(
                    "parts.csv",
                    line,
                    "lon",
                    f"part {row.get('code')} at ({lon}, {lat}) is outside every cell",
                )
            )
        elif row.get("cell_code") not in found:
            out.append(
                Problem(
                    "parts.csv",
                    line,
                    "cell_code",
                    f"{row.get('cell_code')!r} but the part lies in {min(found)}",
                )
            )
    return out


# -- rules -----------------------------------------------------------------------------------


def routing_problems(city: City) -> list[Problem]:
    """Every category routed in every cell, or to the manual queue on purpose."""
    out: list[Problem] = []
    all_cells = set(city.cells)
    entries = [(r.category, r.territory) for r in city.routing] + [
        (m.category, m.territory) for m in city.manual
    ]
    for i, code in enumerate(city.categories):
        matching = [t for pattern, t in entries if category_rank(pattern, code) is not None]
        if "*" in matching or city.district.code in matching:
            continue
        covered: set[str] = set()
        for t in matching:
            covered.update(city.cells_in(t))
        missing = sorted(all_cells - covered)
        if not missing:
            continue
        subs = sorted({city.cells[c].subdistrict_code for c in missing})
        out.append(
            Problem(
                "categories.yaml",
                f"categories[{i}] ({code})",
                "code",
                f"routed nowhere in {len(missing)} cell(s) (e.g. {', '.join(missing[:3])}; "
                f"sub-districts {', '.join(subs[:5])}): add a rule to routing.yaml or list it "
                "under manual",
            )
        )
    return out


def department_problems(city: City) -> list[Problem]:
    """Every department has at least one user with the department role working for it."""
    staffed = {u.dept for u in city.users.values() if "department" in u.roles and u.territory}
    return [
        Problem(
            "departments.yaml",
            f"departments[{i}] ({code})",
            "code",
            "no user with the department role works for it (users.yaml): its cases reach nobody",
        )
        for i, code in enumerate(city.departments)
        if code not in staffed
    ]


def calendar_problems(city: City, as_of: dt.date) -> list[Problem]:
    """The working calendar is official for the next 12 months from `as_of`."""
    try:
        horizon = as_of.replace(year=as_of.year + 1)
    except ValueError:  # 29 February
        horizon = as_of.replace(year=as_of.year + 1, day=28)
    cal = city.working_calendar
    last = cal.known_until(as_of, (horizon - as_of).days + 1)
    if last is not None and last >= horizon:
        return []
    ends = f"ends on {last}" if last is not None else f"does not know {as_of}"
    next_year = (last + dt.timedelta(days=1)).year if last is not None else as_of.year
    return [
        Problem(
            "calendar.yaml",
            "known_through",
            "known_through",
            f"the official calendar {ends}, less than 12 months ahead (to {horizon}); to fix: "
            f"when the State Council publishes its {next_year} arrangement (国务院办公厅关于"
            f"{next_year}年部分节假日安排的通知, usually in November), enter its holidays as "
            "extra_holidays and its swapped working days as extra_workdays, set known_through: "
            f"{next_year}-12-31, and release the data (docs/operations.md, The working "
            f"calendar); or upgrade chinese-calendar once it knows {next_year}. Until then "
            f"{next_year}'s deadlines follow the statutory rule and are provisional",
        )
    ]


def count_by_file(problems: list[Problem]) -> Mapping[str, int]:
    out: dict[str, int] = {}
    for p in problems:
        out[p.file] = out.get(p.file, 0) + 1
    return out
