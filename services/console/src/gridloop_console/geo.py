"""The district's cells as GeoJSON for the map, with their community and sub-district."""

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
