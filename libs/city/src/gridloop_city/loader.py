"""Loads a city directory, validates every file and cross-reference, and indexes it.

Every problem raises `CityDataError` naming the file, the row and the field:

- CSV files: the line number (the header is line 1): `parts.csv row 17 field owner_dept:
  unknown department 'wter'`;
- grids.geojson: the feature index: `grids.geojson row features[3] field community_code: …`;
- YAML lists: the item index and its id/code: `users.yaml row users[40] (sanitation-ops)
  field dept: …`; YAML documents: the key path: `calendar.yaml row escalation[1] field
  after.unit: …`, `calendar.yaml row sign_in_timeout field unit: …`.

Files (all UTF-8) of a city directory, see data/demo-city and tools/gen_demo_city.py:
district.yaml, subdistricts.csv, communities.csv, grids.geojson, categories.yaml, parts.csv,
departments.yaml, routing.yaml, calendar.yaml, users.yaml, supervisors.csv, gazetteer.csv,
cameras.csv, sources.yaml, intake.yaml, scoring.yaml.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import shapely
import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from shapely import STRtree
from shapely.geometry import Polygon, shape

from .calendar import WorkingCalendar
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
    ManualRoute,
    Part,
    Route,
    RoutingRule,
    ScoringConfig,
    Source,
    Subdistrict,
    SupervisorAssignment,
    User,
)

M = TypeVar("M")

# libyaml's safe loader when PyYAML was built with it (5x faster), else the pure-Python one.
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

EARTH_RADIUS_M = 6_371_008.8
# Routing answers kept per process (a miss costs a look at the rules of four territories).
ROUTE_CACHE_SIZE = 16_384
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0
#: Cells may overlap by this much (slivers of surveyed data), no more.
OVERLAP_TOLERANCE_M2 = 1.0


class CityDataError(ValueError):
    """Bad city data; the message names the file, the row and the field."""


def _fail(file: str, row: object, fld: str, reason: str) -> CityDataError:
    return CityDataError(f"{file} row {row} field {fld}: {reason}")


# -- distances ---------------------------------------------------------------------------------


class HasLonLat(Protocol):
    """Anything with a WGS-84 position (parts, cameras, gazetteer entries)."""

    @property
    def lon(self) -> float: ...

    @property
    def lat(self) -> float: ...


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def distance_m(a: tuple[float, float] | HasLonLat, b: tuple[float, float] | HasLonLat) -> float:
    """Haversine distance in metres between two (lon, lat) pairs or positioned records."""
    lon1, lat1 = a if isinstance(a, tuple) else (a.lon, a.lat)
    lon2, lat2 = b if isinstance(b, tuple) else (b.lon, b.lat)
    return haversine_m(lon1, lat1, lon2, lat2)


def normalise_address(text: str) -> str:
    """An address as compared by `City.address`: NFKC (full-width digits → ASCII), no spaces."""
    return "".join(unicodedata.normalize("NFKC", text).split())


# -- the city ----------------------------------------------------------------------------------


@dataclass
class City:
    """The whole configuration of one district, validated and indexed for the services.

    Collections are dicts by code/id (insertion order = file order); the helper methods
    answer the questions services ask (where is this point, who owns this part, who handles
    this category here, may this cell take it, who supervises this cell)."""

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
    polygons: dict[str, Polygon] = field(default_factory=dict, repr=False)
    manual: list[ManualRoute] = field(default_factory=list)  # 人工派遣 on purpose
    _order: list[str] = field(default_factory=list, init=False, repr=False)
    _tree: STRtree | None = field(default=None, init=False, repr=False)
    _addr_index: dict[str, Address] = field(default_factory=dict, init=False, repr=False)
    _by_community: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _by_subdistrict: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _by_supervisor: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    # routing.yaml's rules and the manual entries by territory, each with its place in the file
    _rules_at: dict[str, list[tuple[int, RoutingRule]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _manual_at: dict[str, list[ManualRoute]] = field(default_factory=dict, init=False, repr=False)
    _route_cache: dict[tuple[str, str], Route | None] = field(
        default_factory=dict, init=False, repr=False
    )
    _working_calendar: WorkingCalendar | None = field(default=None, init=False, repr=False)
    _parts_by_cell: dict[str, list[str]] | None = field(default=None, init=False, repr=False)
    _part_tree: tuple[STRtree, list[str]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._order = list(self.polygons)
        geoms = [self.polygons[c] for c in self._order]
        for g in geoms:
            shapely.prepare(g)
        self._tree = STRtree(geoms) if geoms else None
        self._addr_index = {normalise_address(a.address): a for a in self.addresses.values()}
        for cell in self.cells.values():
            self._by_community.setdefault(cell.community_code, []).append(cell.code)
            self._by_subdistrict.setdefault(cell.subdistrict_code, []).append(cell.code)
        for a in self.supervisors.values():
            for uid in dict.fromkeys((a.primary, a.backup)):
                self._by_supervisor.setdefault(uid, []).append(a.cell_code)
        for i, rule in enumerate(self.routing):
            self._rules_at.setdefault(rule.territory, []).append((i, rule))
        for m in self.manual:
            self._manual_at.setdefault(m.territory, []).append(m)

    # -- space ------------------------------------------------------------------------------
    def locate(self, lon: float, lat: float) -> Cell | None:
        """The cell containing the point (point-in-polygon over an STRtree), or None outside
        the grid. A point on an edge shared by cells belongs to the lowest cell code."""
        if self._tree is None or not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        hits = self._tree.query(shapely.Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        if len(hits) == 1:
            return self.cells[self._order[int(hits[0])]]
        return self.cells[min(self._order[int(i)] for i in hits)]

    def locate_many(self, points: Iterable[tuple[float, float]]) -> list[Cell | None]:
        """`locate` for many (lon, lat) points at once (vectorised)."""
        pts = list(points)
        out: list[Cell | None] = [None] * len(pts)
        if self._tree is None or not pts:
            return out
        found = self._tree.query(shapely.points(pts), predicate="intersects")
        for p, g in zip(found[0].tolist(), found[1].tolist(), strict=True):
            code = self._order[g]
            current = out[p]
            if current is None or code < current.code:
                out[p] = self.cells[code]
        return out

    def cell(self, code: str) -> Cell | None:
        return self.cells.get(code)

    def community(self, code: str) -> Community | None:
        return self.communities.get(code)

    def subdistrict(self, code: str) -> Subdistrict | None:
        return self.subdistricts.get(code)

    def territory_of(self, cell_code: str) -> tuple[str, str, str]:
        """(cell, community, sub-district) codes of a cell (KeyError if unknown)."""
        c = self.cells[cell_code]
        return c.code, c.community_code, c.subdistrict_code

    def cells_in(self, territory: str) -> list[str]:
        """Cell codes of a cell, community or sub-district code, or `*` / the district code
        for all; empty for an unknown code."""
        if territory in ("*", self.district.code):
            return list(self.cells)
        if territory in self.cells:
            return [territory]
        return list(self._by_community.get(territory) or self._by_subdistrict.get(territory, []))

    def in_territory(self, cell_code: str, territory: Iterable[str]) -> bool:
        """Whether a cell lies in any of the territory codes (cell, community, sub-district,
        district code or `*`), e.g. a user's `territory`."""
        cell = self.cells.get(cell_code)
        if cell is None:
            return False
        mine = {"*", self.district.code, cell.code, cell.community_code, cell.subdistrict_code}
        return any(t in mine for t in territory)

    # -- registers --------------------------------------------------------------------------
    def part(self, code: str) -> Part | None:
        """部件 by its code: name, place, cell and owner."""
        return self.parts.get(code.strip())

    def parts_of_cell(self, cell_code: str) -> list[Part]:
        """部件 registered in a cell, by code (empty for an unknown cell)."""
        if self._parts_by_cell is None:
            index: dict[str, list[str]] = {}
            for p in self.parts.values():
                index.setdefault(p.cell_code, []).append(p.code)
            self._parts_by_cell = {c: sorted(codes) for c, codes in index.items()}
        return [self.parts[c] for c in self._parts_by_cell.get(cell_code, ())]

    def parts_near(
        self,
        lon: float,
        lat: float,
        within_m: float,
        category_code: str | None = None,
        limit: int = 10,
    ) -> list[tuple[Part, float]]:
        """Parts within `within_m` metres of a point (of one category, if given), nearest
        first, with their distance: "the manhole cover at my feet" for a report by position."""
        if not (math.isfinite(lon) and math.isfinite(lat)) or within_m < 0 or limit < 1:
            return []
        tree, codes = self._parts_index()
        if not codes:
            return []
        dlat = within_m / _M_PER_DEG_LAT
        dlon = within_m / (_M_PER_DEG_LON_EQ * max(math.cos(math.radians(lat)), 1e-6))
        hits = tree.query(shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat))
        found = []
        for i in hits.tolist():
            p = self.parts[codes[i]]
            if category_code is not None and p.category_code != category_code:
                continue
            d = haversine_m(lon, lat, p.lon, p.lat)
            if d <= within_m:
                found.append((p, d))
        found.sort(key=lambda pd: (pd[1], pd[0].code))
        return found[:limit]

    def parts_in_box(self, west: float, south: float, east: float, north: float) -> list[Part]:
        """Parts inside a lon/lat box (edges included), by code: a map's view."""
        if not all(math.isfinite(v) for v in (west, south, east, north)):
            return []
        tree, codes = self._parts_index()
        if not codes or west > east or south > north:
            return []
        hits = sorted(tree.query(shapely.box(west, south, east, north)).tolist())
        return [self.parts[codes[i]] for i in hits]

    def _parts_index(self) -> tuple[STRtree, list[str]]:
        """An STRtree over the parts' points (built on first use: not every service asks)."""
        if self._part_tree is None:
            codes = list(self.parts)
            xs = np.fromiter((p.lon for p in self.parts.values()), dtype=float, count=len(codes))
            ys = np.fromiter((p.lat for p in self.parts.values()), dtype=float, count=len(codes))
            self._part_tree = (STRtree(shapely.points(xs, ys)), codes)
        return self._part_tree

    def address(self, text: str) -> Address | None:
        """A gazetteer entry for a written address: exact match after normalisation (NFKC, no
        white space); else the longest entry the text contains (`北京市东城区…号东侧`); else,
        for a text of 4+ characters, the shortest entry containing it (`美术馆后街10号`)."""
        key = normalise_address(text)
        if not key:
            return None
        exact = self._addr_index.get(key)
        if exact is not None:
            return exact
        inside = [k for k in self._addr_index if k in key]
        if inside:
            return self._addr_index[max(inside, key=len)]
        if len(key) >= 4:
            around = [k for k in self._addr_index if key in k]
            if around:
                return self._addr_index[min(around, key=len)]
        return None

    def camera(self, camera_id: str) -> Camera | None:
        return self.cameras.get(camera_id)

    def category(self, code: str) -> Category | None:
        return self.categories.get(code)

    def major(self, code: str) -> Major | None:
        return self.majors.get(code)

    def department(self, code: str) -> Department | None:
        return self.departments.get(code)

    def source(self, code: str) -> Source | None:
        return self.sources.get(code)

    def source_for_api_key(self, key: str) -> Source | None:
        """The source an Open311 API key belongs to."""
        return next((s for s in self.sources.values() if key in s.open311_api_keys), None)

    def user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    def users_with_role(self, role: str) -> list[User]:
        return [u for u in self.users.values() if role in u.roles]

    def grid_heads_of(self, cell_code: str) -> tuple[str, ...]:
        """网格长 of a cell: the users with role `grid-head` who answer for it, the most
        specific first found — those naming the cell itself, else its community, else its
        sub-district, else the district (or `*`); () for an unknown cell or none at all."""
        cell = self.cells.get(cell_code)
        if cell is None:
            return ()
        heads = self.users_with_role("grid-head")
        tiers = (
            {cell.code},
            {cell.community_code},
            {cell.subdistrict_code},
            {self.district.code, "*"},
        )
        for tier in tiers:
            found = tuple(u.id for u in heads if tier & set(u.territory))
            if found:
                return found
        return ()

    def users_of_department(self, dept: str) -> list[User]:
        return [u for u in self.users.values() if u.dept == dept]

    def supervisors_for(self, cell_code: str) -> tuple[str, str] | None:
        """(primary, backup) supervisor ids of a cell (AB 角), or None for an unknown cell."""
        a = self.supervisors.get(cell_code)
        return (a.primary, a.backup) if a else None

    def cells_of_supervisor(self, user_id: str) -> list[str]:
        """Cells a supervisor covers as primary or backup, sorted."""
        return sorted(self._by_supervisor.get(user_id, ()))

    @property
    def working_calendar(self) -> WorkingCalendar:
        """The city's `WorkingCalendar` (built once)."""
        if self._working_calendar is None:
            self._working_calendar = WorkingCalendar.from_config(self.calendar)
        return self._working_calendar

    # -- rules ------------------------------------------------------------------------------
    def may_accept(self, category_code: str, cell_code: str) -> bool:
        """准入清单: whether the cell takes this (known) category at all."""
        c = self.cells.get(cell_code)
        if c is None or category_code not in self.categories:
            return False
        return c.entry_list is None or category_code in c.entry_list

    def route(self, category_code: str, cell_code: str) -> Route | None:
        """The responsible unit for a category in a cell, or None (manual dispatch queue).

        Precedence among the rules of routing.yaml that match:
        1. the most specific territory wins: cell > community > sub-district > `*`;
        2. then the most specific category: exact code > major prefix (`E05*`) > kind prefix
           (`E*`, `P*`) > `*`;
        3. then the earlier rule in the file.
        The units of the other matching rules follow as `candidates`, best first (where a
        returned case may go next). Unknown categories or cells route nowhere (None)."""
        key = (category_code, cell_code)
        if key in self._route_cache:
            return self._route_cache[key]
        found = self._route(category_code, cell_code)
        if len(self._route_cache) >= ROUTE_CACHE_SIZE:
            # cells × categories pairs (millions in a big city): the oldest answer goes
            self._route_cache.pop(next(iter(self._route_cache)))
        self._route_cache[key] = found
        return found

    def _route(self, category_code: str, cell_code: str) -> Route | None:
        cell = self.cells.get(cell_code)
        if cell is None or category_code not in self.categories:
            return None
        # only the rules of the cell's own territories are looked at
        territory_rank = {cell.code: 3, cell.community_code: 2, cell.subdistrict_code: 1, "*": 0}
        territories = territory_rank.items()
        matches: list[tuple[int, int, int, RoutingRule]] = []
        for territory, t in territories:
            for i, rule in self._rules_at.get(territory, ()):
                c = category_rank(rule.category, category_code)
                if c is not None:
                    matches.append((t, c, -i, rule))
        if not matches:
            return None
        matches.sort(key=lambda m: (m[0], m[1], m[2]), reverse=True)
        for territory, t in territories:
            for m in self._manual_at.get(territory, ()):
                c = category_rank(m.category, category_code)
                # a manual entry as specific as the best rule wins: routed by hand on purpose
                if c is not None and (t, c) >= matches[0][:2]:
                    return None
        best = matches[0][3]
        others: list[str] = []
        for *_, r in matches[1:]:
            if r.dept != best.dept and r.dept not in others:
                others.append(r.dept)
        return Route(
            dept=best.dept, co_handlers=best.co_handlers, lead=best.lead, candidates=tuple(others)
        )


def category_rank(pattern: str, code: str) -> int | None:
    """How specifically a routing `category` pattern matches a code: 3 exact, 2 major prefix
    (`E05*`, or longer), 1 kind prefix (`E*`, `E0*`), 0 `*`; None if it does not match."""
    if pattern == code:
        return 3
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        if not prefix:
            return 0
        if code.startswith(prefix):
            return 2 if len(prefix) >= 3 else 1
    return None


# -- reading -----------------------------------------------------------------------------------


def _describe(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    value = err.get("input")
    if err["type"] == "missing":
        return "missing"
    if isinstance(value, str | int | float | bool) or value is None:
        return f"{msg} (got {value!r})"
    return msg


def _validate(model: type[M], data: Any, file: str, row: object) -> M:
    """Validate one record; an error names `row` and the field inside the record."""
    try:
        return _adapter(model).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise _fail(file, row, loc, _describe(err)) from None


def _split_loc(loc: tuple[int | str, ...]) -> tuple[str, str]:
    """A document's error location as (row, field): the path up to the last list index is the
    row (`escalation[1]`), the rest the field; at the top level the first key is the row."""
    last = max((i for i, p in enumerate(loc) if isinstance(p, int)), default=-1)
    if last < 0:
        if not loc:
            return "(document)", "(document)"
        return str(loc[0]), ".".join(str(p) for p in loc[1:]) or str(loc[0])
    row = ""
    for p in loc[: last + 1]:
        row += f"[{p}]" if isinstance(p, int) else (f".{p}" if row else str(p))
    return row, ".".join(str(p) for p in loc[last + 1 :]) or "(item)"


def _validate_doc(model: type[M], data: Any, file: str) -> M:
    try:
        return _adapter(model).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        row, fld = _split_loc(tuple(err["loc"]))
        raise _fail(file, row, fld, _describe(err)) from None


def _read_text(root: Path, file: str) -> str:
    path = root / file
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CityDataError(f"{file}: file missing in {root}") from None
    except UnicodeDecodeError as exc:
        raise CityDataError(f"{file}: not UTF-8 ({exc})") from None


def _read_yaml(root: Path, file: str) -> Any:
    try:
        return yaml.load(_read_text(root, file), Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise CityDataError(f"{file}: not valid YAML ({exc})") from None


def _yaml_mapping(root: Path, file: str) -> dict[str, Any]:
    doc = _read_yaml(root, file)
    if not isinstance(doc, dict):
        raise CityDataError(f"{file}: expected a mapping at the top level")
    return doc


def _item_label(key: str, i: int, item: Any) -> str:
    ident = item.get("id", item.get("code")) if isinstance(item, dict) else None
    return f"{key}[{i}] ({ident})" if isinstance(ident, str | int) else f"{key}[{i}]"


def _yaml_items(
    doc: Mapping[str, Any], file: str, key: str, model: type[M], *, unique: str | None = None
) -> list[tuple[str, M]]:
    """Validated items of the list under `key`, each with its row label; `unique` names a
    field whose values must not repeat."""
    items = doc.get(key)
    if not isinstance(items, list):
        raise CityDataError(f"{file}: expected a list under '{key}'")
    out: list[tuple[str, M]] = []
    seen: set[object] = set()
    for i, item in enumerate(items):
        label = _item_label(key, i, item)
        record = _validate(model, item, file, label)
        if unique is not None:
            value = getattr(record, unique)
            if value in seen:
                raise _fail(file, label, unique, f"duplicate {unique} {value!r}")
            seen.add(value)
        out.append((label, record))
    return out


def _csv(
    root: Path, file: str, model: type[M], *, unique: str | None = None
) -> list[tuple[int, M]]:
    """Validated rows with their line numbers; `unique` names a column that must not repeat."""
    text = _read_text(root, file)
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = reader.fieldnames or []
    fields = _fields(model)
    for col in header:
        if col not in fields:
            raise _fail(file, 1, col, f"unknown column (expected {', '.join(fields)})")
    for name, info in fields.items():
        if info.is_required() and name not in header:
            raise _fail(file, 1, name, "missing column")
    lines: list[int] = []
    records: list[M] = []
    chunk: list[dict[str, str]] = []
    required = {k for k, info in fields.items() if info.is_required()}

    def validate_chunk() -> None:
        # a chunk of rows in one call (fast; chunks keep the memory of a big file's rows
        # bounded); when one is bad, row by row for the message naming it
        try:
            records.extend(_list_adapter(model).validate_python(chunk))
        except ValidationError:
            done = len(records)
            for line, d in zip(lines[done:], chunk, strict=True):
                records.append(_validate(model, d, file, line))
        chunk.clear()

    for row in reader:
        line = reader.line_num  # the (last) line of this record
        if None in row:
            raise _fail(
                file,
                line,
                "(row)",
                f"{len(header) + len(row[None])}+ values, the header has {len(header)}",
            )
        for col, value in row.items():
            if value is None:
                raise _fail(file, line, str(col), "missing value (too few columns)")
        lines.append(line)
        # the records keep these very strings: the same code or name in many rows (a cell, a
        # category, an owner) is then one object
        chunk.append({k: sys.intern(v) for k, v in row.items() if v != "" or k in required})
        if len(chunk) == _CSV_CHUNK:
            validate_chunk()
    if chunk:
        validate_chunk()
    out: list[tuple[int, M]] = []
    seen: set[object] = set()
    for line, record in zip(lines, records, strict=True):
        if unique is not None:
            value = getattr(record, unique)
            if value in seen:
                raise _fail(file, line, unique, f"duplicate {unique} {value!r}")
            seen.add(value)
        out.append((line, record))
    return out


_CSV_CHUNK = 2_048
_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _fields(model: type[Any]) -> dict[str, FieldInfo]:
    """A model's or a pydantic dataclass's fields."""
    fields: dict[str, FieldInfo] = getattr(model, "__pydantic_fields__", None) or model.model_fields
    return fields


def _adapter(model: type[M]) -> TypeAdapter[M]:
    if model not in _one_adapters:
        _one_adapters[model] = TypeAdapter(model)
    return _one_adapters[model]


_one_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _list_adapter(model: type[M]) -> TypeAdapter[list[M]]:
    if model not in _adapters:
        _adapters[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return _adapters[model]


def _area_m2(poly: Any) -> float:
    """Approximate area of a small WGS-84 polygon (local equirectangular projection)."""
    if poly.is_empty:
        return 0.0
    lat = poly.centroid.y
    return float(poly.area) * _M_PER_DEG_LON_EQ * math.cos(math.radians(lat)) * _M_PER_DEG_LAT


# -- loading -----------------------------------------------------------------------------------


def load_city(root: Path | str, *, parts: bool = True) -> City:
    """Load and validate a city directory (see data/demo-city); raises `CityDataError`.
    `parts=False`: without the parts register (parts.csv is not read), for the services that
    never look a part up — a city's tens of thousands of parts are most of its memory."""
    root = Path(root)
    if not root.is_dir():
        raise CityDataError(f"city data directory not found: {root}")

    district = _validate_doc(District, _yaml_mapping(root, "district.yaml"), "district.yaml")

    subs: dict[str, Subdistrict] = {}
    for row, sd in _csv(root, "subdistricts.csv", Subdistrict, unique="code"):
        if not sd.code.startswith(district.code):
            raise _fail("subdistricts.csv", row, "code", f"does not start with {district.code}")
        subs[sd.code] = sd
    comms: dict[str, Community] = {}
    for row, c in _csv(root, "communities.csv", Community, unique="code"):
        if c.subdistrict_code not in subs:
            raise _fail(
                "communities.csv",
                row,
                "subdistrict_code",
                f"unknown sub-district {c.subdistrict_code!r}",
            )
        if not c.code.startswith(c.subdistrict_code):
            raise _fail("communities.csv", row, "code", "does not start with its sub-district code")
        comms[c.code] = c

    cells, polygons, entry_lists = _load_grid(root, district, comms)
    majors, categories = _load_categories(root)
    for i, (code, cell) in enumerate(cells.items()):
        for cc in cell.entry_list or ():
            if cc not in categories:
                raise _fail(
                    "grids.geojson",
                    entry_lists.get(code, i),
                    "entry_list",
                    f"unknown category {cc!r}",
                )

    dept_doc = _yaml_mapping(root, "departments.yaml")
    depts: dict[str, Department] = {}
    for label, d in _yaml_items(
        dept_doc, "departments.yaml", "departments", Department, unique="code"
    ):
        if d.kind == "subdistrict-office" and d.subdistrict_code is None:
            raise _fail(
                "departments.yaml", label, "subdistrict_code", "a sub-district office needs one"
            )
        if d.subdistrict_code is not None and d.subdistrict_code not in subs:
            raise _fail(
                "departments.yaml",
                label,
                "subdistrict_code",
                f"unknown sub-district {d.subdistrict_code!r}",
            )
        depts[d.code] = d

    territory_codes = {"*"} | set(subs) | set(comms) | set(cells)
    routing, manual = _load_routing(root, categories, depts, territory_codes)

    register: dict[str, Part] = {}
    part_rows: list[int] = []
    for row, p in _csv(root, "parts.csv", Part, unique="code") if parts else ():
        cat = categories.get(p.category_code)
        if cat is None or cat.kind != "part":
            raise _fail(
                "parts.csv", row, "category_code", f"not a part category: {p.category_code!r}"
            )
        if p.code[:6] != district.code or p.code[6:10] != p.category_code[1:]:
            raise _fail(
                "parts.csv",
                row,
                "code",
                f"{p.code!r} is not {district.code} + {p.category_code[1:]} + a 6-digit serial",
            )
        if p.owner_dept not in depts:
            raise _fail("parts.csv", row, "owner_dept", f"unknown department {p.owner_dept!r}")
        register[p.code] = p
        part_rows.append(row)
    _check_points("parts.csv", part_rows, list(register.values()), polygons)

    calendar = _validate_doc(CalendarConfig, _yaml_mapping(root, "calendar.yaml"), "calendar.yaml")

    users: dict[str, User] = {}
    user_doc = _yaml_mapping(root, "users.yaml")
    for label, u in _yaml_items(user_doc, "users.yaml", "users", User, unique="id"):
        if u.dept is not None and u.dept not in depts:
            raise _fail("users.yaml", label, "dept", f"unknown department {u.dept!r}")
        if "department" in u.roles and u.dept is None:
            raise _fail("users.yaml", label, "dept", "a department user needs a dept")
        for t in u.territory:
            if t not in territory_codes and t != district.code:
                raise _fail("users.yaml", label, "territory", f"unknown territory {t!r}")
        users[u.id] = u

    sups: dict[str, SupervisorAssignment] = {}
    for row, a in _csv(root, "supervisors.csv", SupervisorAssignment, unique="cell_code"):
        if a.cell_code not in cells:
            raise _fail("supervisors.csv", row, "cell_code", f"unknown cell {a.cell_code!r}")
        for fld, uid in (("primary", a.primary), ("backup", a.backup)):
            if uid not in users or "supervisor" not in users[uid].roles:
                raise _fail(
                    "supervisors.csv", row, fld, f"{uid!r} is not a supervisor in users.yaml"
                )
        if a.primary == a.backup:
            raise _fail("supervisors.csv", row, "backup", "the backup must be another supervisor")
        sups[a.cell_code] = a
    missing = [c for c in cells if c not in sups]
    if missing:
        raise _fail(
            "supervisors.csv",
            "-",
            "cell_code",
            f"{len(missing)} cells have no supervisors, e.g. {', '.join(missing[:5])}",
        )

    addresses: dict[str, Address] = {}
    seen_addr: set[str] = set()
    for row, ad in _csv(root, "gazetteer.csv", Address):
        norm = normalise_address(ad.address)
        if norm in seen_addr:
            raise _fail("gazetteer.csv", row, "address", f"duplicate address {ad.address!r}")
        seen_addr.add(norm)
        _check_point("gazetteer.csv", row, ad.lon, ad.lat, ad.cell_code, polygons)
        addresses[ad.address] = ad

    sources: dict[str, Source] = {}
    api_keys: set[str] = set()
    src_doc = _yaml_mapping(root, "sources.yaml")
    for label, s in _yaml_items(src_doc, "sources.yaml", "sources", Source, unique="code"):
        for k in s.open311_api_keys:
            if k in api_keys:
                raise _fail("sources.yaml", label, "open311_api_keys", f"key {k!r} used twice")
            api_keys.add(k)
        sources[s.code] = s

    cameras: dict[str, Camera] = {}
    for row, cam in _csv(root, "cameras.csv", Camera, unique="camera_id"):
        src = sources.get(cam.source)
        if src is None:
            raise _fail("cameras.csv", row, "source", f"unknown source {cam.source!r}")
        if src.channel != "video":
            raise _fail("cameras.csv", row, "source", f"{cam.source!r} is not a video source")
        _check_point("cameras.csv", row, cam.lon, cam.lat, cam.cell_code, polygons)
        cameras[cam.camera_id] = cam

    intake = _validate_doc(IntakeConfig, _yaml_mapping(root, "intake.yaml"), "intake.yaml")
    for i, code in enumerate(intake.shift_leader_review):
        if code not in categories:
            raise _fail(
                "intake.yaml", f"shift_leader_review[{i}]", "(item)", f"unknown category {code!r}"
            )
    reasons = [r.code for r in intake.reject_reasons]
    for i, code in enumerate(reasons):
        if code in reasons[:i]:
            raise _fail("intake.yaml", f"reject_reasons[{i}]", "code", f"duplicate reason {code!r}")

    scoring = _validate_doc(ScoringConfig, _yaml_mapping(root, "scoring.yaml"), "scoring.yaml")

    return City(
        district=district,
        subdistricts=subs,
        communities=comms,
        cells=cells,
        majors=majors,
        categories=categories,
        parts=register,
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
        polygons=polygons,
        manual=manual,
    )


def _load_grid(
    root: Path, district: District, comms: Mapping[str, Community]
) -> tuple[dict[str, Cell], dict[str, Polygon], dict[str, str]]:
    """grids.geojson → cells, their polygons, and each cell's row label."""
    file = "grids.geojson"
    try:
        gj = json.loads(_read_text(root, file))
    except json.JSONDecodeError as exc:
        raise CityDataError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(gj, dict) or gj.get("type") != "FeatureCollection":
        raise CityDataError(f"{file}: expected a GeoJSON FeatureCollection")
    features = gj.get("features")
    if not isinstance(features, list) or not features:
        raise CityDataError(f"{file}: no features (cells)")
    x0, y0, x1, y1 = district.bbox
    eps = 1e-7
    cells: dict[str, Cell] = {}
    labels: dict[str, str] = {}
    rows: list[str] = []
    all_props: list[dict[str, Any]] = []
    for i, feat in enumerate(features):
        row = f"features[{i}]"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise _fail(file, row, "type", "not a GeoJSON Feature")
        props = feat.get("properties")
        if not isinstance(props, dict):
            raise _fail(file, row, "properties", "missing")
        all_props.append(props)
    try:
        validated: list[Cell] = _list_adapter(Cell).validate_python(all_props)
    except ValidationError:
        validated = [_validate(Cell, p, file, f"features[{i}]") for i, p in enumerate(all_props)]
    for i, cell in enumerate(validated):
        row = f"features[{i}]"
        community = comms.get(cell.community_code)
        if community is None:
            raise _fail(file, row, "community_code", f"unknown community {cell.community_code!r}")
        if community.subdistrict_code != cell.subdistrict_code:
            raise _fail(
                file,
                row,
                "subdistrict_code",
                f"{cell.subdistrict_code!r} is not the sub-district of community "
                f"{cell.community_code} ({community.subdistrict_code})",
            )
        if not cell.code.startswith(cell.community_code):
            raise _fail(file, row, "code", "a cell code starts with its community code")
        if cell.code in cells:
            raise _fail(file, row, "code", f"duplicate cell {cell.code!r}")
        cells[cell.code] = cell
        labels[cell.code] = row
        rows.append(row)
    # the geometries in bulk (shapely's vectorised functions: a city has thousands of cells)
    geoms = _grid_geometries(file, features, rows)
    valid = shapely.is_valid(geoms) & ~shapely.is_empty(geoms)
    valid &= shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    for k in (~valid).nonzero()[0].tolist():
        raise _fail(file, rows[k], "geometry", "must be a valid, non-empty Polygon")
    bounds = shapely.bounds(geoms)
    outside = (
        (bounds[:, 0] < x0 - eps)
        | (bounds[:, 1] < y0 - eps)
        | (bounds[:, 2] > x1 + eps)
        | (bounds[:, 3] > y1 + eps)
    )
    for k in outside.nonzero()[0].tolist():
        raise _fail(file, rows[k], "geometry", f"outside the district bbox {list(district.bbox)}")
    lat = shapely.get_y(shapely.centroid(geoms))
    computed = (
        shapely.area(geoms) * _M_PER_DEG_LON_EQ * np.cos(np.radians(lat)) * _M_PER_DEG_LAT
    ).tolist()
    for k, cell in enumerate(cells.values()):
        if cell.area_m2 and abs(cell.area_m2 - computed[k]) > 0.25 * computed[k]:
            raise _fail(
                file,
                rows[k],
                "area_m2",
                f"{cell.area_m2} m² but the polygon is about {computed[k]:.0f} m²",
            )
    shapely.prepare(geoms)
    polygons: dict[str, Polygon] = dict(zip(cells, geoms.tolist(), strict=True))
    _check_overlaps(file, cells, polygons, labels)
    return cells, polygons, labels


def _grid_geometries(file: str, features: list[Any], rows: list[str]) -> Any:
    """The features' geometries as an array: simple polygons (one ring) built in one call,
    anything else (holes, other types, bad coordinates) one by one, naming the feature."""
    simple: list[int] = []
    coords: list[Any] = []
    counts: list[int] = []
    for k, feat in enumerate(features):
        geom = feat.get("geometry")
        if (
            isinstance(geom, dict)
            and geom.get("type") == "Polygon"
            and isinstance(geom.get("coordinates"), list)
            and len(geom["coordinates"]) == 1
            and isinstance(geom["coordinates"][0], list)
            and len(geom["coordinates"][0]) >= 4
            and all(isinstance(pt, list) and len(pt) == 2 for pt in geom["coordinates"][0])
        ):
            simple.append(k)
            coords.extend(geom["coordinates"][0])
            counts.append(len(geom["coordinates"][0]))
    out = np.empty(len(features), dtype=object)
    if simple:
        try:
            xy = np.asarray(coords, dtype=float)
            rings = shapely.linearrings(xy, indices=np.repeat(np.arange(len(simple)), counts))
            out[simple] = shapely.polygons(rings)
        except Exception:  # a bad coordinate somewhere: fall back to one by one
            simple = []
    done = set(simple)
    for k, feat in enumerate(features):
        if k in done:
            continue
        try:
            out[k] = shape(feat.get("geometry"))
        except Exception as exc:  # shapely raises several kinds for bad GeoJSON
            raise _fail(file, rows[k], "geometry", f"not a GeoJSON geometry ({exc})") from None
    return out


def _check_overlaps(
    file: str, cells: Mapping[str, Cell], polygons: Mapping[str, Polygon], labels: Mapping[str, str]
) -> None:
    """Cells may share edges but not area: a point must have one cell."""
    codes = list(cells)
    tree = STRtree([polygons[c] for c in codes])
    geoms = tree.geometries
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return
    touching = shapely.touches(geoms[a], geoms[b])
    for k in (~touching).nonzero()[0].tolist():
        i, j = sorted((int(a[k]), int(b[k])))
        shared = _area_m2(shapely.intersection(geoms[i], geoms[j]))
        if shared > OVERLAP_TOLERANCE_M2:
            raise _fail(
                file, labels[codes[j]], "geometry", f"overlaps cell {codes[i]} by {shared:.0f} m²"
            )


def _load_categories(root: Path) -> tuple[dict[str, Major], dict[str, Category]]:
    file = "categories.yaml"
    doc = _yaml_mapping(root, file)
    majors = {m.code: m for _, m in _yaml_items(doc, file, "majors", Major, unique="code")}
    categories: dict[str, Category] = {}
    for label, c in _yaml_items(doc, file, "categories", Category, unique="code"):
        if c.major_code not in majors:
            raise _fail(file, label, "major_code", f"unknown major class {c.major_code!r}")
        if not c.code.startswith(c.major_code):
            raise _fail(file, label, "code", f"does not start with its major class {c.major_code}")
        if c.kind != ("part" if c.code.startswith("P") else "event"):
            raise _fail(
                file,
                label,
                "kind",
                f"{c.code} is a{' part' if c.code[0] == 'P' else 'n event'} code",
            )
        categories[c.code] = c
    if not categories:
        raise CityDataError(f"{file}: no categories")
    return majors, categories


def _load_routing(
    root: Path,
    categories: Mapping[str, Category],
    depts: Mapping[str, Department],
    territory_codes: set[str],
) -> tuple[list[RoutingRule], list[ManualRoute]]:
    file = "routing.yaml"
    doc = _yaml_mapping(root, file)
    rules: list[RoutingRule] = []
    seen: dict[tuple[str, str], str] = {}
    for label, r in _yaml_items(doc, file, "rules", RoutingRule):
        if r.dept not in depts:
            raise _fail(file, label, "dept", f"unknown department {r.dept!r}")
        for d in r.co_handlers:
            if d not in depts:
                raise _fail(file, label, "co_handlers", f"unknown department {d!r}")
            if d == r.dept:
                raise _fail(file, label, "co_handlers", f"{d!r} is already the responsible unit")
        if len(set(r.co_handlers)) != len(r.co_handlers):
            raise _fail(file, label, "co_handlers", "a unit is listed twice")
        if r.lead is not None:
            if r.lead not in depts:
                raise _fail(file, label, "lead", f"unknown department {r.lead!r}")
            if r.lead != r.dept and r.lead not in r.co_handlers:
                raise _fail(file, label, "lead", "the lead must be the dept or a co-handler")
        if r.territory not in territory_codes:
            raise _fail(file, label, "territory", f"unknown territory {r.territory!r}")
        if r.category.endswith("*"):
            if not any(category_rank(r.category, c) is not None for c in categories):
                raise _fail(file, label, "category", f"{r.category!r} matches no category")
        elif r.category not in categories:
            raise _fail(file, label, "category", f"unknown category {r.category!r}")
        key = (r.category, r.territory)
        if key in seen:
            raise _fail(file, label, "category", f"same category and territory as {seen[key]}")
        seen[key] = label
        rules.append(r)
    manual: list[ManualRoute] = []
    if "manual" in doc:
        for label, m in _yaml_items(doc, file, "manual", ManualRoute):
            if m.territory not in territory_codes:
                raise _fail(file, label, "territory", f"unknown territory {m.territory!r}")
            if m.category.endswith("*"):
                if not any(category_rank(m.category, c) is not None for c in categories):
                    raise _fail(file, label, "category", f"{m.category!r} matches no category")
            elif m.category not in categories:
                raise _fail(file, label, "category", f"unknown category {m.category!r}")
            manual.append(m)
    return rules, manual


def _check_point(
    file: str, row: int, lon: float, lat: float, cell_code: str, polygons: Mapping[str, Polygon]
) -> None:
    poly = polygons.get(cell_code)
    if poly is None:
        raise _fail(file, row, "cell_code", f"unknown cell {cell_code!r}")
    if not shapely.intersects_xy(poly, lon, lat):
        raise _fail(file, row, "lon", f"point ({lon}, {lat}) is not inside cell {cell_code}")


def _check_points(
    file: str, rows: list[int], points: list[Any], polygons: Mapping[str, Polygon]
) -> None:
    """`_check_point` for many rows at once (a city has tens of thousands of parts)."""
    geoms = []
    for row, p in zip(rows, points, strict=True):
        poly = polygons.get(p.cell_code)
        if poly is None:
            raise _fail(file, row, "cell_code", f"unknown cell {p.cell_code!r}")
        geoms.append(poly)
    if not geoms:
        return
    xs = np.fromiter((p.lon for p in points), dtype=float, count=len(points))
    ys = np.fromiter((p.lat for p in points), dtype=float, count=len(points))
    inside = shapely.intersects_xy(np.asarray(geoms, dtype=object), xs, ys)
    for k in (~inside).nonzero()[0].tolist():
        p = points[k]
        raise _fail(
            file, rows[k], "lon", f"point ({p.lon}, {p.lat}) is not inside cell {p.cell_code}"
        )
