"""Loads a city directory, validates every file and cross-reference, and indexes it.

Errors name the file, the row (CSV line number, GeoJSON feature index, YAML item) and the
field: `parts.csv row 17 field owner_dept: unknown department 'wter'`."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from shapely import STRtree
from shapely.geometry import Point, Polygon, shape

from .models import (
    Address,
    CalendarConfig,
    Camera,
    Category,
    Cell,
    Community,
    Department,
    District,
    IntakeConfig,
    Major,
    Part,
    Route,
    RoutingRule,
    ScoringConfig,
    Source,
    Subdistrict,
    SupervisorAssignment,
    User,
)

M = TypeVar("M", bound=BaseModel)


class CityDataError(ValueError):
    """Bad city data; the message names file, row and field."""


def _fail(file: str, row: object, fld: str, reason: str) -> CityDataError:
    return CityDataError(f"{file} row {row} field {fld}: {reason}")


def _validate(model: type[M], data: Any, file: str, row: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise _fail(file, row, loc, err["msg"]) from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CityDataError(f"{path.name}: file missing in {path.parent}") from None
    except yaml.YAMLError as exc:
        raise CityDataError(f"{path.name}: not valid YAML ({exc})") from None


def _yaml_list(root: Path, file: str, key: str, model: type[M]) -> list[M]:
    doc = _read_yaml(root / file)
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise CityDataError(f"{file}: expected a mapping with a list under '{key}'")
    return [_validate(model, item, file, f"{key}[{i}]") for i, item in enumerate(doc[key])]


def _csv(root: Path, file: str, model: type[M]) -> list[tuple[int, M]]:
    path = root / file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CityDataError(f"{file}: file missing in {root}") from None
    out = []
    for line_no, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        out.append((line_no, _validate(model, row, file, line_no)))
    return out


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def _norm(text: str) -> str:
    return "".join(text.split())


@dataclass
class City:
    """The whole configuration of one district, indexed for the services."""

    district: District
    subdistricts: dict[str, Subdistrict]
    communities: dict[str, Community]
    cells: dict[str, Cell]
    majors: dict[str, Major]
    categories: dict[str, Category]
    parts: dict[str, Part]
    departments: dict[str, Department]
    routing: list[RoutingRule]
    calendar: CalendarConfig
    users: dict[str, User]
    supervisors: dict[str, SupervisorAssignment]
    addresses: dict[str, Address]
    cameras: dict[str, Camera]
    sources: dict[str, Source]
    intake: IntakeConfig
    scoring: ScoringConfig
    _polygons: list[Polygon] = field(default_factory=list, repr=False)
    _cell_order: list[str] = field(default_factory=list, repr=False)
    _tree: STRtree | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._tree = STRtree(self._polygons) if self._polygons else None

    # -- space ------------------------------------------------------------------------
    def locate(self, lon: float, lat: float) -> Cell | None:
        """The cell containing the point (point-in-polygon over an STRtree), or None."""
        if self._tree is None:
            return None
        pt = Point(lon, lat)
        hits = self._tree.query(pt, predicate="intersects")
        if len(hits) == 0:
            return None
        # A point on a shared edge belongs to the lowest-coded cell, deterministically.
        return self.cells[min(self._cell_order[int(i)] for i in hits)]

    def cell(self, code: str) -> Cell | None:
        return self.cells.get(code)

    def community(self, code: str) -> Community | None:
        return self.communities.get(code)

    def subdistrict(self, code: str) -> Subdistrict | None:
        return self.subdistricts.get(code)

    def part(self, code: str) -> Part | None:
        return self.parts.get(code)

    def address(self, text: str) -> Address | None:
        """A gazetteer entry: exact match after removing white space, then containment."""
        key = _norm(text)
        if not key:
            return None
        if key in self._addr_index:
            return self._addr_index[key]
        for k, a in self._addr_index.items():
            if key in k or k in key:
                return a
        return None

    @property
    def _addr_index(self) -> dict[str, Address]:
        idx: dict[str, Address] | None = getattr(self, "_addr_cache", None)
        if idx is None:
            idx = {_norm(a.address): a for a in self.addresses.values()}
            object.__setattr__(self, "_addr_cache", idx)
        return idx

    def camera(self, camera_id: str) -> Camera | None:
        return self.cameras.get(camera_id)

    def category(self, code: str) -> Category | None:
        return self.categories.get(code)

    def department(self, code: str) -> Department | None:
        return self.departments.get(code)

    def source(self, code: str) -> Source | None:
        return self.sources.get(code)

    def user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    def supervisors_for(self, cell_code: str) -> tuple[str, str] | None:
        a = self.supervisors.get(cell_code)
        return (a.primary, a.backup) if a else None

    def cells_of_supervisor(self, user_id: str) -> list[str]:
        return sorted(c for c, a in self.supervisors.items() if user_id in (a.primary, a.backup))

    def territory_of(self, cell_code: str) -> tuple[str, str, str]:
        """(cell, community, sub-district) codes of a cell."""
        c = self.cells[cell_code]
        return c.code, c.community_code, c.subdistrict_code

    # -- rules ------------------------------------------------------------------------
    def may_accept(self, category_code: str, cell_code: str) -> bool:
        """准入清单: whether the cell takes this category at all."""
        c = self.cells.get(cell_code)
        if c is None:
            return False
        return c.entry_list is None or category_code in c.entry_list

    def route(self, category_code: str, cell_code: str) -> Route | None:
        """The responsible unit for a category in a cell, or None (manual dispatch).

        Precedence: the most specific territory wins (cell > community > sub-district > `*`),
        then the most specific category (exact code > major prefix `E05*` > `P*`/`E*` > `*`).
        Units of the other matching rules follow as candidates for re-routing after a return.
        """
        cell = self.cells.get(cell_code)
        if cell is None:
            return None
        territory_rank = {cell.code: 3, cell.community_code: 2, cell.subdistrict_code: 1, "*": 0}
        matches: list[tuple[int, int, int, RoutingRule]] = []
        for i, rule in enumerate(self.routing):
            t = territory_rank.get(rule.territory)
            c = _category_rank(rule.category, category_code)
            if t is None or c is None:
                continue
            matches.append((t, c, -i, rule))
        if not matches:
            return None
        matches.sort(key=lambda m: (m[0], m[1], m[2]), reverse=True)
        best = matches[0][3]
        others: list[str] = []
        for *_, r in matches[1:]:
            if r.dept != best.dept and r.dept not in others:
                others.append(r.dept)
        return Route(
            dept=best.dept, co_handlers=best.co_handlers, lead=best.lead, candidates=tuple(others)
        )


def _category_rank(pattern: str, code: str) -> int | None:
    if pattern == code:
        return 3
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        if code.startswith(prefix):
            return 1 + min(len(prefix), 3) // 3 if prefix else 0
    return None


def load_city(root: Path | str) -> City:
    """Load and validate a city directory (see data/demo-city)."""
    root = Path(root)
    if not root.is_dir():
        raise CityDataError(f"city data directory not found: {root}")
    district = _validate(District, _read_yaml(root / "district.yaml"), "district.yaml", "-")
    subs = {s.code: s for _, s in _csv(root, "subdistricts.csv", Subdistrict)}
    comms: dict[str, Community] = {}
    for row, c in _csv(root, "communities.csv", Community):
        if c.subdistrict_code not in subs:
            raise _fail(
                "communities.csv",
                row,
                "subdistrict_code",
                f"unknown sub-district {c.subdistrict_code!r}",
            )
        comms[c.code] = c

    grids_path = root / "grids.geojson"
    try:
        gj = json.loads(grids_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CityDataError(f"grids.geojson: file missing in {root}") from None
    except json.JSONDecodeError as exc:
        raise CityDataError(f"grids.geojson: not valid JSON ({exc})") from None
    cells: dict[str, Cell] = {}
    polygons: list[Polygon] = []
    order: list[str] = []
    for i, feat in enumerate(gj.get("features", [])):
        cell = _validate(Cell, feat.get("properties", {}), "grids.geojson", f"features[{i}]")
        if cell.community_code not in comms:
            raise _fail(
                "grids.geojson",
                f"features[{i}]",
                "community_code",
                f"unknown community {cell.community_code!r}",
            )
        if comms[cell.community_code].subdistrict_code != cell.subdistrict_code:
            raise _fail(
                "grids.geojson",
                f"features[{i}]",
                "subdistrict_code",
                "does not match the community's sub-district",
            )
        if not cell.code.startswith(cell.community_code):
            raise _fail(
                "grids.geojson",
                f"features[{i}]",
                "code",
                "a cell code starts with its community code",
            )
        if cell.code in cells:
            raise _fail("grids.geojson", f"features[{i}]", "code", f"duplicate cell {cell.code!r}")
        try:
            geom = shape(feat["geometry"])
        except Exception as exc:
            raise _fail("grids.geojson", f"features[{i}]", "geometry", str(exc)) from None
        if not isinstance(geom, Polygon) or not geom.is_valid:
            raise _fail("grids.geojson", f"features[{i}]", "geometry", "must be a valid Polygon")
        cells[cell.code] = cell
        polygons.append(geom)
        order.append(cell.code)
    if not cells:
        raise CityDataError("grids.geojson: no cells")

    by_code = dict(zip(order, polygons, strict=True))
    cat_doc = _read_yaml(root / "categories.yaml")
    if not isinstance(cat_doc, dict):
        raise CityDataError("categories.yaml: expected a mapping with 'majors' and 'categories'")
    majors = {
        m.code: m
        for m in (
            _validate(Major, x, "categories.yaml", f"majors[{i}]")
            for i, x in enumerate(cat_doc.get("majors", []))
        )
    }
    categories: dict[str, Category] = {}
    for i, x in enumerate(cat_doc.get("categories", [])):
        category = _validate(Category, x, "categories.yaml", f"categories[{i}]")
        if category.major_code not in majors:
            raise _fail(
                "categories.yaml",
                f"categories[{i}]",
                "major_code",
                f"unknown major class {category.major_code!r}",
            )
        categories[category.code] = category
    for code, cell in cells.items():
        for cc in cell.entry_list or ():
            if cc not in categories:
                raise _fail("grids.geojson", code, "entry_list", f"unknown category {cc!r}")

    depts = {d.code: d for d in _yaml_list(root, "departments.yaml", "departments", Department)}
    routing = _yaml_list(root, "routing.yaml", "rules", RoutingRule)
    territory_codes = set(subs) | set(comms) | set(cells) | {"*"}
    for i, r in enumerate(routing):
        item = f"rules[{i}]"
        for d in (r.dept, *r.co_handlers, *([r.lead] if r.lead else [])):
            if d not in depts:
                raise _fail("routing.yaml", item, "dept", f"unknown department {d!r}")
        if r.territory not in territory_codes:
            raise _fail("routing.yaml", item, "territory", f"unknown territory {r.territory!r}")
        if r.category != "*" and not r.category.endswith("*") and r.category not in categories:
            raise _fail("routing.yaml", item, "category", f"unknown category {r.category!r}")

    parts: dict[str, Part] = {}
    for row, p in _csv(root, "parts.csv", Part):
        _check_point("parts.csv", row, p.lon, p.lat, p.cell_code, by_code)
        if p.owner_dept not in depts:
            raise _fail("parts.csv", row, "owner_dept", f"unknown department {p.owner_dept!r}")
        cat = categories.get(p.category_code)
        if cat is None or cat.kind != "part":
            raise _fail(
                "parts.csv", row, "category_code", f"not a part category: {p.category_code!r}"
            )
        parts[p.code] = p

    calendar = _validate(CalendarConfig, _read_yaml(root / "calendar.yaml"), "calendar.yaml", "-")
    users = {u.id: u for u in _yaml_list(root, "users.yaml", "users", User)}
    for uid, u in users.items():
        if u.dept is not None and u.dept not in depts:
            raise _fail("users.yaml", uid, "dept", f"unknown department {u.dept!r}")
    sups: dict[str, SupervisorAssignment] = {}
    for row, a in _csv(root, "supervisors.csv", SupervisorAssignment):
        if a.cell_code not in cells:
            raise _fail("supervisors.csv", row, "cell_code", f"unknown cell {a.cell_code!r}")
        for fld, uid in (("primary", a.primary), ("backup", a.backup)):
            if uid not in users or "supervisor" not in users[uid].roles:
                raise _fail(
                    "supervisors.csv", row, fld, f"{uid!r} is not a supervisor in users.yaml"
                )
        sups[a.cell_code] = a
    missing = sorted(set(cells) - set(sups))
    if missing:
        raise CityDataError(
            f"supervisors.csv: {len(missing)} cells without supervisors, e.g. {missing[:5]}"
        )

    addresses: dict[str, Address] = {}
    for row, ad in _csv(root, "gazetteer.csv", Address):
        _check_point("gazetteer.csv", row, ad.lon, ad.lat, ad.cell_code, by_code)
        addresses[ad.address] = ad
    sources = {s.code: s for s in _yaml_list(root, "sources.yaml", "sources", Source)}
    cameras: dict[str, Camera] = {}
    for row, cam in _csv(root, "cameras.csv", Camera):
        _check_point("cameras.csv", row, cam.lon, cam.lat, cam.cell_code, by_code)
        if cam.source not in sources:
            raise _fail("cameras.csv", row, "source", f"unknown source {cam.source!r}")
        cameras[cam.camera_id] = cam
    intake = _validate(IntakeConfig, _read_yaml(root / "intake.yaml"), "intake.yaml", "-")
    scoring = _validate(ScoringConfig, _read_yaml(root / "scoring.yaml"), "scoring.yaml", "-")
    return City(
        district=district,
        subdistricts=subs,
        communities=comms,
        cells=cells,
        majors=majors,
        categories=categories,
        parts=parts,
        departments=depts,
        routing=routing,
        calendar=calendar,
        users=users,
        supervisors=sups,
        addresses=addresses,
        cameras=cameras,
        sources=sources,
        intake=intake,
        scoring=scoring,
        _polygons=polygons,
        _cell_order=order,
    )


def _check_point(
    file: str, row: int, lon: float, lat: float, cell_code: str, polygons: dict[str, Polygon]
) -> None:
    poly = polygons.get(cell_code)
    if poly is None:
        raise _fail(file, row, "cell_code", f"unknown cell {cell_code!r}")
    if not poly.intersects(Point(lon, lat)):
        raise _fail(file, row, "lon", f"point ({lon}, {lat}) is not inside cell {cell_code}")
