"""A new version of the city's data (城市数据更新) on `city.updated`: every service process
loads it, validates it and swaps to it whole, or refuses it and keeps the one it has."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from .base import Event, register


@register
class CityUpdatedV1(Event):
    """城市数据更新: version `version` of the city's data is released under the services'
    versions folder (`CITY_VERSIONS_DIR/<version>/`), its files hashing to `digest`."""

    type_name: ClassVar[str] = "gridloop.city.updated.v1"
    subject_token: ClassVar[str] = "updated"
    summary: ClassVar[str] = "A new version of the city's data to load, check and swap to"

    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    released_at: AwareDatetime
    note: str = Field("", max_length=500)
