"""What every handling handler works with: the loaded city, its working calendar, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gridloop_city import City, WorkingCalendar
from gridloop_city.versions import loader, starting_city
from gridloop_runtime.livecity import LiveCity

from .settings import HandlingSettings


@dataclass
class Handling:
    """The per-process state of the service (Runtime.state holds the service built on it)."""

    city: City
    calendar: WorkingCalendar
    settings: HandlingSettings
    version: str | None = None  # the released city version (None: CITY_DATA_DIR's)

    @classmethod
    def load(cls, settings: HandlingSettings) -> Handling:
        city, version = starting_city(
            settings.city_data_dir, settings.city_versions_dir, parts=False
        )
        return cls(city, WorkingCalendar.from_config(city.calendar), settings, version)

    def use_city(self, city: City) -> None:
        """Live reload: the departments' tasks are timed and checked with this version of the
        city from the next message on (one synchronous step)."""
        self.city, self.calendar = city, WorkingCalendar.from_config(city.calendar)

    def live(self) -> LiveCity[City]:
        """This state, following `city.updated` (gridloop_runtime.livecity)."""
        load = loader(self.settings.city_versions_dir, parts=False)
        return LiveCity("handling", self.city, self.version, load=load, swap=self.use_city)

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.settings.clock_skew_s)

    @property
    def park_for(self) -> timedelta:
        return timedelta(seconds=self.settings.park_s)

    def is_department(self, dept: str) -> bool:
        return self.city.department(dept) is not None
