"""The city the rules work with: the released version in force (CITY_VERSIONS_DIR) when there
is one, else CITY_DATA_DIR; loaded once per process, then swapped on `city.updated`."""

from __future__ import annotations

from functools import cache, partial
from pathlib import Path

from gridloop_city import City, WorkingCalendar, load_city
from gridloop_city.versions import current, load_version
from gridloop_runtime.livecity import LiveCity

from .domain.deadlines import Deadlines
from .domain.rules import DispatchRules
from .settings import DispatchSettings


@cache
def _load(path: Path) -> City:
    # Once per process: tests start the service many times over the same data.
    return load_city(path)


def city_for(settings: DispatchSettings) -> tuple[City, str | None]:
    """The city to start with and its released version (None: CITY_DATA_DIR's)."""
    if settings.city_versions_dir:
        root = Path(settings.city_versions_dir)
        version = current(root)
        if version is not None:
            return load_version(root, version), version
    return _load(Path(settings.city_data_dir).resolve()), None


def rules_of(city: City) -> DispatchRules:
    """The dispatch rules of a city: its routing, calendar and chase ladder."""
    calendar = WorkingCalendar.from_config(city.calendar)
    return DispatchRules(city, Deadlines(calendar, city.calendar))


def live_city(
    settings: DispatchSettings, rules: DispatchRules, version: str | None
) -> LiveCity[City]:
    """The rules' city, following `city.updated` (validated by gridloop_city.versions)."""
    root = settings.city_versions_dir
    return LiveCity(
        "dispatch",
        rules.city,
        version,
        load=partial(load_version, Path(root)) if root else None,
        swap=rules.use_city,
    )
