"""The district's cells as GeoJSON for the map, with their community and sub-district; where
a point is and what is likely reported there (the handheld's report screen)."""

from __future__ import annotations

from typing import Any

import orjson
from gridloop_city import City
from shapely.geometry import mapping


def _rounded(value: Any) -> Any:
    # 6 decimals ≈ 0.1 m: plenty for drawing, a third less to send.
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def cells_collection(city: City) -> dict[str, Any]:
    """A FeatureCollection: one Polygon per cell, properties naming the cell, its community
    and its sub-district."""
    features = []
    for code, cell in city.cells.items():
        polygon = city.polygons.get(code)
        if polygon is None:
            continue
        geometry = mapping(polygon)
        community = city.communities.get(cell.community_code)
        subdistrict = city.subdistricts.get(cell.subdistrict_code)
        features.append(
            {
                "type": "Feature",
                "id": code,
                "properties": {
                    "code": code,
                    "name": cell.name,
                    "community_code": cell.community_code,
                    "community_name": community.name if community else None,
                    "subdistrict_code": cell.subdistrict_code,
                    "subdistrict_name": subdistrict.name if subdistrict else None,
                },
                "geometry": {
                    "type": geometry["type"],
                    "coordinates": _rounded(geometry["coordinates"]),
                },
            }
        )
    return {"type": "FeatureCollection", "bbox": list(city.district.bbox), "features": features}


def cells_json(city: City) -> bytes:
    return orjson.dumps(cells_collection(city))


def cell_props(city: City, code: str) -> dict[str, Any] | None:
    """A cell's code and names, as in the GeoJSON's properties."""
    cell = city.cells.get(code)
    if cell is None:
        return None
    community = city.communities.get(cell.community_code)
    subdistrict = city.subdistricts.get(cell.subdistrict_code)
    return {
        "code": code,
        "name": cell.name,
        "community_code": cell.community_code,
        "community_name": community.name if community else None,
        "subdistrict_code": cell.subdistrict_code,
        "subdistrict_name": subdistrict.name if subdistrict else None,
    }


def likely_categories(city: City, cell_code: str, limit: int = 6) -> list[str]:
    """The categories a supervisor most likely reports in a cell, most likely first: those of
    the parts in the cell (more parts, likelier), then the events patrols report themselves
    (auto-accepted from trusted supervisors), then the rest — only what the cell's entry list
    (准入清单) takes."""
    cell = city.cells.get(cell_code)
    allowed = set(cell.entry_list) if cell is not None and cell.entry_list is not None else None
    counts: dict[str, int] = {}
    for part in city.parts.values():
        if part.cell_code == cell_code:
            counts[part.category_code] = counts.get(part.category_code, 0) + 1
    by_parts = sorted(counts, key=lambda c: (-counts[c], c))
    patrol = [k.code for k in city.categories.values() if k.auto_accept_from_trusted]
    rest = list(city.categories)
    out: list[str] = []
    for code in (*by_parts, *patrol, *rest):
        if code in out or code not in city.categories:
            continue
        if allowed is not None and code not in allowed:
            continue
        out.append(code)
        if len(out) == limit:
            break
    return out
