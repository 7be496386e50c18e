"""Where a report is (定位): a part code, coordinates or an address become one grid cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gridloop_city import City
from gridloop_city.models import Cell, Part
from gridloop_contracts import Location

from .problems import Problem

LocatedBy = Literal["part_code", "location", "address", "camera"]


@dataclass(frozen=True)
class Placement:
    """The cell a report belongs to, the point used for duplicates, and how it was found."""

    cell: Cell
    lon: float
    lat: float
    located_by: LocatedBy
    part: Part | None = None
    address: str | None = None

    @property
    def location(self) -> Location:
        return Location(lat=self.lat, lon=self.lon)


def place(
    city: City,
    *,
    location: Location | None = None,
    address: str | None = None,
    part_code: str | None = None,
    camera_id: str | None = None,
) -> Placement | Problem:
    """The most precise locator wins: a part code (its position, cell and owner), then
    coordinates (point-in-polygon), then a gazetteer address, then the camera's position.

    A locator that is given and wrong is refused even when a weaker one would do: a wrong
    part code or a point outside the district points at a mistake an operator must see.
    An unknown address next to good coordinates is not an error: hotline addresses are free
    text and the gazetteer is never complete."""
    if part_code is not None:
        part = city.part(part_code)
        if part is None:
            return Problem("part_code", f"unknown part code {part_code!r}", "unknown-part")
        cell = city.cell(part.cell_code)
        assert cell is not None  # the loader checked every part's cell
        return Placement(cell, part.lon, part.lat, "part_code", part=part, address=address)
    if location is not None:
        cell = city.locate(location.lon, location.lat)
        if cell is None:
            return Problem(
                "location",
                f"({location.lat}, {location.lon}) is outside {city.district.name}",
                "out-of-district",
            )
        return Placement(cell, location.lon, location.lat, "location", address=address)
    if address is not None:
        found = city.address(address)
        if found is None:
            return Problem(
                "address", f"address {address!r} is not in the gazetteer", "unknown-address"
            )
        cell = city.cell(found.cell_code)
        assert cell is not None
        return Placement(cell, found.lon, found.lat, "address", address=address)
    if camera_id is not None:
        camera = city.camera(camera_id)
        if camera is None:
            return Problem(
                "camera_id",
                f"unknown camera {camera_id!r} and no location given",
                "unknown-camera",
            )
        cell = city.cell(camera.cell_code)
        assert cell is not None
        return Placement(cell, camera.lon, camera.lat, "camera")
    return Problem("location", "one of location, address or part_code is required", "no-location")
