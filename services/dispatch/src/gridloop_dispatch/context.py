"""The city the rules work with: loaded once per process from CITY_DATA_DIR."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gridloop_city import City, WorkingCalendar, load_city

from .domain.deadlines import Deadlines
from .domain.rules import DispatchRules
from .settings import DispatchSettings


@cache
def _load(path: Path) -> City:
    # Once per process: tests start the service many times over the same data.
    return load_city(path)


def rules_for(settings: DispatchSettings) -> DispatchRules:
    """The dispatch rules of the configured city: its routing, calendar and chase ladder."""
    city = _load(Path(settings.city_data_dir).resolve())
    calendar = WorkingCalendar.from_config(city.calendar)
    return DispatchRules(city, Deadlines(calendar, city.calendar))
