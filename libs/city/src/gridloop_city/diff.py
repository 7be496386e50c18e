"""`gridloop-city diff`: what a new version of a city's data changes, before it is applied —
cells split, merged, added, removed or reshaped; parts added, removed, moved or given to
another owner; routing rules (and manual-queue entries) added, removed or changed; and which
other files differ."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely import STRtree

from .loader import City, _area_m2

#: A piece of a cell counts towards a split/merge when it holds this share of the smaller
#: cell's area (so a border nudged by a metre is a reshape, not a split).
SHARE = 0.5


@dataclass
class CityDiff:
    cells_added: list[str] = field(default_factory=list)
    cells_removed: list[str] = field(default_factory=list)
    cells_reshaped: list[str] = field(default_factory=list)
    cells_renamed: list[str] = field(default_factory=list)
    splits: list[tuple[str, list[str]]] = field(default_factory=list)  # old → new cells
    merges: list[tuple[list[str], str]] = field(default_factory=list)  # old cells → new
    parts_added: list[str] = field(default_factory=list)
    parts_removed: list[str] = field(default_factory=list)
    parts_moved: list[tuple[str, str, str]] = field(default_factory=list)  # code, cell, cell
    parts_reowned: list[tuple[str, str, str]] = field(default_factory=list)  # code, from, to
    routing_added: list[str] = field(default_factory=list)
    routing_removed: list[str] = field(default_factory=list)
    routing_changed: list[tuple[str, str, str]] = field(default_factory=list)  # key, old, new
    files_changed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(asdict(self).values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self, limit: int = 50) -> list[str]:
        """A report for people: counts, then up to `limit` items of each kind."""

        def some(items: list[str]) -> list[str]:
            more = len(items) - limit
            return items[:limit] + ([f"  … and {more} more"] if more > 0 else [])

        out = [
            f"cells: {len(self.splits)} split, {len(self.merges)} merged, "
            f"{len(self.cells_added)} added, {len(self.cells_removed)} removed, "
            f"{len(self.cells_reshaped)} reshaped, {len(self.cells_renamed)} renamed"
        ]
        out += some([f"  split {old} → {', '.join(new)}" for old, new in self.splits])
        out += some([f"  merged {' + '.join(old)} → {new}" for old, new in self.merges])
        out += some([f"  + {c}" for c in self.cells_added])
        out += some([f"  - {c}" for c in self.cells_removed])
        out += some([f"  ~ {c} (shape)" for c in self.cells_reshaped])
        out += some([f"  ~ {c} (name, community or entry list)" for c in self.cells_renamed])
        out.append(
            f"parts: {len(self.parts_added)} added, {len(self.parts_removed)} removed, "
            f"{len(self.parts_moved)} moved to another cell, "
            f"{len(self.parts_reowned)} with another owner"
        )
        out += some([f"  + {c}" for c in self.parts_added])
        out += some([f"  - {c}" for c in self.parts_removed])
        out += some([f"  ~ {c}: cell {a} → {b}" for c, a, b in self.parts_moved])
        out += some([f"  ~ {c}: owner {a} → {b}" for c, a, b in self.parts_reowned])
        out.append(
            f"routing: {len(self.routing_added)} added, {len(self.routing_removed)} removed, "
            f"{len(self.routing_changed)} changed"
        )
        out += some([f"  + {r}" for r in self.routing_added])
        out += some([f"  - {r}" for r in self.routing_removed])
        out += some([f"  ~ {k}: {a} → {b}" for k, a, b in self.routing_changed])
        if self.files_changed:
            out.append(f"other files changed: {', '.join(self.files_changed)}")
        return out


def _rule_key(category: str, territory: str) -> str:
    return f"{category} @ {territory}"


def _routes(city: City) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in city.routing:
        target = r.dept
        if r.co_handlers:
            target += f" (+{', '.join(r.co_handlers)}; lead {r.lead or r.dept})"
        out[_rule_key(r.category, r.territory)] = target
    for m in city.manual:
        out[_rule_key(m.category, m.territory)] = "manual queue"
    return out


def diff_cities(old: City, new: City, old_root: Path, new_root: Path) -> CityDiff:
    """What changes from `old` to `new` (both loaded; roots for the other files)."""
    d = CityDiff()
    _diff_cells(old, new, d)
    for code in new.parts.keys() - old.parts.keys():
        d.parts_added.append(code)
    for code in old.parts.keys() - new.parts.keys():
        d.parts_removed.append(code)
    for code in sorted(old.parts.keys() & new.parts.keys()):
        a, b = old.parts[code], new.parts[code]
        if a.cell_code != b.cell_code:
            d.parts_moved.append((code, a.cell_code, b.cell_code))
        if a.owner_dept != b.owner_dept:
            d.parts_reowned.append((code, a.owner_dept, b.owner_dept))
    d.parts_added.sort()
    d.parts_removed.sort()
    ra, rb = _routes(old), _routes(new)
    d.routing_added = [f"{k}: {rb[k]}" for k in rb if k not in ra]
    d.routing_removed = [f"{k}: {ra[k]}" for k in ra if k not in rb]
    d.routing_changed = [(k, ra[k], rb[k]) for k in ra if k in rb and ra[k] != rb[k]]
    compared = {"grids.geojson", "parts.csv", "routing.yaml", "README.md"}
    names = {p.name for p in old_root.iterdir() if p.is_file()} | {
        p.name for p in new_root.iterdir() if p.is_file()
    }
    for name in sorted(names - compared):
        a_path, b_path = old_root / name, new_root / name
        if not (a_path.exists() and b_path.exists()) or a_path.read_bytes() != b_path.read_bytes():
            d.files_changed.append(name)
    return d


def _diff_cells(old: City, new: City, d: CityDiff) -> None:
    same = old.cells.keys() & new.cells.keys()
    # the same shape whatever the ring's start and direction (GIS tools rewrite both)
    moved = {
        c
        for c in same
        if not shapely.equals_exact(
            shapely.normalize(old.polygons[c]), shapely.normalize(new.polygons[c]), 1e-7
        )
    }
    changed_old = (old.cells.keys() - same) | moved
    changed_new = (new.cells.keys() - same) | moved
    for c in sorted(same):
        a, b = old.cells[c], new.cells[c]
        if (a.name, a.community_code, a.entry_list) != (b.name, b.community_code, b.entry_list):
            d.cells_renamed.append(c)
    if not changed_old and not changed_new:
        return
    new_codes = sorted(changed_new)
    tree = STRtree([new.polygons[c] for c in new_codes])
    # old cell → new cells that hold most of their own area inside it, and the reverse
    into: dict[str, list[str]] = {}
    from_: dict[str, list[str]] = {}
    for o in sorted(changed_old):
        po = old.polygons[o]
        ao = _area_m2(po)
        for k in tree.query(po, predicate="intersects").tolist():
            n = new_codes[k]
            pn = new.polygons[n]
            shared = _area_m2(shapely.intersection(po, pn))
            an = _area_m2(pn)
            if shared >= SHARE * an:
                into.setdefault(o, []).append(n)  # n lies mostly inside o
            if shared >= SHARE * ao:
                from_.setdefault(n, []).append(o)  # o lies mostly inside n
    split_old = {o for o, ns in into.items() if len(ns) >= 2}
    merged_new = {n for n, os in from_.items() if len(os) >= 2}
    for o in sorted(split_old):
        d.splits.append((o, sorted(into[o])))
    for n in sorted(merged_new):
        d.merges.append((sorted(from_[n]), n))
    in_split_new = {n for o in split_old for n in into[o]}
    in_merge_old = {o for n in merged_new for o in from_[n]}
    for c in sorted(changed_new):
        if c in in_split_new or c in merged_new:
            continue
        if c in same:
            d.cells_reshaped.append(c)
        else:
            d.cells_added.append(c)
    for c in sorted(changed_old - same):
        if c not in split_old and c not in in_merge_old:
            d.cells_removed.append(c)
