"""What every dispatch handler works with: the loaded city, its working calendar, deadlines."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gridloop_city import Category, City, WorkingCalendar, load_city

from .domain.deadlines import Deadlines, runs_on_clock
from .settings import DispatchSettings


@cache
def _load(path: Path) -> City:
    # Once per process: tests start the service many times over the same data.
    return load_city(path)


@dataclass(frozen=True)
class Dispatch:
    """The per-process state of the service (Runtime.state holds the Handlers built on it)."""

    city: City
    calendar: WorkingCalendar
    deadlines: Deadlines
    settings: DispatchSettings

    @classmethod
    def load(cls, settings: DispatchSettings) -> Dispatch:
        city = _load(Path(settings.city_data_dir).resolve())
        calendar = WorkingCalendar.from_config(city.calendar)
        return cls(city, calendar, Deadlines(calendar, city.calendar), settings)

    def category(self, code: str) -> Category | None:
        return self.city.category(code)

    def dept_kind(self, dept: str) -> str | None:
        d = self.city.department(dept)
        return d.kind if d else None

    def dept_name(self, dept: str) -> str:
        d = self.city.department(dept)
        return d.name if d else dept

    def on_clock(self, category_code: str, urgency: str) -> bool:
        return runs_on_clock(self.city.category(category_code), urgency)
