"""What every intake handler works with: the loaded city, its working calendar, the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path

from gridloop_city import City, WorkingCalendar, load_city

from .domain.notices import Residents
from .domain.rules import CaseRules
from .settings import IntakeSettings


@cache
def _load(path: Path) -> City:
    # Loaded once per process (tests start the service many times over the same data).
    return load_city(path)


@dataclass
class Intake:
    """The per-process state of the service (Runtime.state)."""

    city: City
    calendar: WorkingCalendar
    settings: IntakeSettings
    api_keys: dict[str, str] = field(default_factory=dict)  # Open311 api_key → source code
    rules: CaseRules = field(init=False)  # the case file's rules, for this city

    def __post_init__(self) -> None:
        self.rules = CaseRules(self.city, self.calendar, self.residents)

    @property
    def residents(self) -> Residents:
        s = self.settings
        return Residents(
            public_url=s.public_url,
            link_secret=s.rating_link_secret.get_secret_value().encode(),
            link_ttl=timedelta(days=s.rating_link_days),
        )

    @classmethod
    def load(cls, settings: IntakeSettings) -> Intake:
        city = _load(Path(settings.city_data_dir).resolve())
        keys = {k: s.code for s in city.sources.values() for k in s.open311_api_keys}
        return cls(city, WorkingCalendar.from_config(city.calendar), settings, keys)

    def dept_name(self, code: str) -> str:
        return self.rules.dept_name(code)

    def category_name(self, code: str | None) -> str:
        cat = self.city.category(code) if code else None
        return cat.name if cat else (code or "未分类")
