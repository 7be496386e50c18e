"""The city the rules work with: the released version in force (CITY_VERSIONS_DIR) when there
is one, else CITY_DATA_DIR; loaded once per process, then swapped on `city.updated`."""

from __future__ import annotations

from gridloop_city import City, WorkingCalendar
from gridloop_city.versions import loader, starting_city
from gridloop_runtime.livecity import LiveCity

from .domain.deadlines import Deadlines
from .domain.rules import DispatchRules
from .settings import DispatchSettings


def city_for(settings: DispatchSettings) -> tuple[City, str | None]:
    """The city to start with and its released version (None: CITY_DATA_DIR's)."""
    return starting_city(settings.city_data_dir, settings.city_versions_dir)


def rules_of(city: City) -> DispatchRules:
    """The dispatch rules of a city: its routing, calendar and chase ladder."""
    calendar = WorkingCalendar.from_config(city.calendar)
    return DispatchRules(city, Deadlines(calendar, city.calendar))


def live_city(
    settings: DispatchSettings, rules: DispatchRules, version: str | None
) -> LiveCity[City]:
    """The rules' city, following `city.updated` (validated by gridloop_city.versions)."""
    return LiveCity(
        "dispatch",
        rules.city,
        version,
        load=loader(settings.city_versions_dir),
        swap=rules.use_city,
    )
