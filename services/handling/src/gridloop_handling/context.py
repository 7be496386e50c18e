"""What every handling handler works with: the loaded city, its working calendar, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from gridloop_city import City, WorkingCalendar, load_city

from .settings import HandlingSettings


@cache
def _load(path: Path) -> City:
    # Once per process: tests start the service many times over the same data.
    return load_city(path)


@dataclass(frozen=True)
class Handling:
    """The per-process state of the service (Runtime.state holds the service built on it)."""

    city: City
    calendar: WorkingCalendar
    settings: HandlingSettings

    @classmethod
    def load(cls, settings: HandlingSettings) -> Handling:
        city = _load(Path(settings.city_data_dir).resolve())
        return cls(city, WorkingCalendar.from_config(city.calendar), settings)

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.settings.clock_skew_s)

    @property
    def park_for(self) -> timedelta:
        return timedelta(seconds=self.settings.park_s)

    def is_department(self, dept: str) -> bool:
        return self.city.department(dept) is not None
