"""GIS edge of the city tool: read vector layers (pyogrio/GDAL), reproject to WGS-84 (pyproj,
and GCJ-02 by its published formula), write GeoJSON/Shapefile/GeoPackage layers.

Only `gridloop-city` imports this module: the services load a city's files with
`gridloop_city.load_city` and never need GDAL or PROJ.

Coordinate systems a Chinese city's data arrives in:
- CGCS2000 (EPSG:4490 geographic, or a Gauss-Krüger zone such as EPSG:4547): the national
  frame; geographic CGCS2000 differs from WGS-84 by centimetres;
- Web Mercator (EPSG:3857): tiles and web maps;
- GCJ-02 (`GCJ-02`): the obfuscated frame Chinese web maps publish; no EPSG code, so it is
  converted by the published formula here (its inverse by fixed-point iteration, < 1 cm).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer

GCJ02 = "GCJ-02"
WGS84 = "EPSG:4326"

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as the GCJ-02 formula uses it
_EE = 0.00669342162296594323

#: Drivers by file extension.
DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile", ".gpkg": "GPKG"}


class GisError(ValueError):
    """A layer that cannot be read or reprojected; the message names the file."""


# -- GCJ-02 ----------------------------------------------------------------------------------


def _offsets(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[Any, Any]:
    x, y = lon - 105.0, lat - 35.0
    pi = math.pi
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad = lat / 180.0 * pi
    magic = 1 - _EE * np.sin(rad) ** 2
    sq = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sq) * pi)
    dlon = (dlon * 180.0) / (_A / sq * np.cos(rad) * pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: Any, lat: Any) -> tuple[Any, Any]:
    """WGS-84 → GCJ-02 (the published formula; arrays or scalars)."""
    lon_a, lat_a = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _offsets(lon_a, lat_a)
    return lon_a + dlon, lat_a + dlat


def gcj02_to_wgs84(lon: Any, lat: Any) -> tuple[Any, Any]:
    """GCJ-02 → WGS-84: the formula inverted by fixed-point iteration (to < 1e-9°)."""
    g_lon, g_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(30):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = f_lon - g_lon, f_lat - g_lat
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
        if float(np.max(np.abs(e_lon), initial=0)) < 1e-10 and (
            float(np.max(np.abs(e_lat), initial=0)) < 1e-10
        ):
            break
    return w_lon, w_lat


# -- reprojection ----------------------------------------------------------------------------


def to_wgs84(geoms: NDArray[Any], crs: str) -> NDArray[Any]:
    """Shapely geometries in `crs` (an EPSG code, WKT, PROJ string or `GCJ-02`) as WGS-84
    (lon, lat)."""
    if crs.strip().upper().replace("_", "-") in (GCJ02, "GCJ02"):

        def gcj(xy: NDArray[np.float64]) -> NDArray[np.float64]:
            lon, lat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
            return np.column_stack([lon, lat])

        return np.asarray(shapely.transform(geoms, gcj))
    try:
        source = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises CRSError, a subclass of many
        raise GisError(f"unknown coordinate system {crs!r} ({exc})") from None
    if source.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return geoms
    tr = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)

    def proj(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, proj))


def from_wgs84(geoms: NDArray[Any], crs: str) -> NDArray[Any]:
    """The inverse of `to_wgs84` (for exports and tests)."""
    if crs.strip().upper().replace("_", "-") in (GCJ02, "GCJ02"):

        def gcj(xy: NDArray[np.float64]) -> NDArray[np.float64]:
            lon, lat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
            return np.column_stack([lon, lat])

        return np.asarray(shapely.transform(geoms, gcj))
    tr = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_user_input(crs), always_xy=True)

    def proj(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, proj))


# -- layers ----------------------------------------------------------------------------------


@dataclass
class Layer:
    """A vector layer read into memory: WGS-84 geometries and their attribute rows."""

    file: str  # the name errors use
    geometries: NDArray[Any]  # shapely geometries (None where a feature has none)
    rows: list[dict[str, Any]]
    crs: str | None  # as the file declared it (None: it did not)


def read_layer(path: Path, *, layer: str | None = None, crs: str | None = None) -> Layer:
    """Read a GeoJSON, Shapefile or GeoPackage layer and reproject it to WGS-84. `crs`
    overrides what the file declares (needed for GCJ-02, which no file can declare)."""
    try:
        meta, _, wkb, columns = pyogrio.raw.read(str(path), layer=layer)
    except Exception as exc:  # GDAL's errors come in several classes
        raise GisError(f"{path.name}: cannot read ({exc})") from None
    geoms = shapely.from_wkb(wkb) if wkb is not None else np.array([], dtype=object)
    declared = meta.get("crs")
    source = crs or declared
    if source is None:
        raise GisError(f"{path.name}: no coordinate system declared; give one (crs:)")
    geoms = to_wgs84(geoms, source)
    names = [str(n) for n in meta["fields"]]
    rows = [
        {n: _plain(col[i]) for n, col in zip(names, columns, strict=True)}
        for i in range(len(geoms))
    ]
    return Layer(file=path.name, geometries=geoms, rows=rows, crs=declared)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_layer(
    path: Path,
    geoms: list[Any],
    rows: list[dict[str, Any]],
    *,
    crs: str = WGS84,
    layer: str | None = None,
) -> None:
    """Write WGS-84 geometries with attribute rows as a layer (driver from the extension),
    reprojected to `crs` (an EPSG code or `GCJ-02`; GCJ-02 layers are written without a
    declared system, as such data arrives)."""
    driver = DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise GisError(f"{path.name}: unknown format (use .geojson, .shp or .gpkg)")
    arr = np.asarray(geoms, dtype=object)
    out = arr if crs == WGS84 else from_wgs84(arr, crs)
    fields = list(rows[0]) if rows else []
    data = [np.asarray([r[f] for r in rows], dtype=object) for f in fields]
    for i, col in enumerate(data):
        if all(isinstance(v, str) for v in col):
            data[i] = col.astype(str)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in col):
            data[i] = col.astype(float)
    kinds = {shapely.get_type_id(g) for g in arr}
    gtype = "Point" if kinds == {0} else "Polygon" if kinds == {3} else "Unknown"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        _write(path, out, data, fields, layer, driver, gtype, crs)


def _write(
    path: Path,
    out: NDArray[Any],
    data: list[Any],
    fields: list[str],
    layer: str | None,
    driver: str,
    gtype: str,
    crs: str,
) -> None:
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(out),
        field_data=data,
        fields=fields,
        layer=layer,
        driver=driver,
        geometry_type=gtype,
        crs=None if crs.upper() in (GCJ02, "GCJ02") else crs,
        encoding="UTF-8" if driver == "ESRI Shapefile" else None,
    )
