"""What every intake handler works with: the loaded city, its working calendar, the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from gridloop_city import City, WorkingCalendar
from gridloop_city.versions import loader, starting_city
from gridloop_runtime.livecity import LiveCity

from .domain.notices import Residents
from .domain.rules import CaseRules
from .search import Segmenter
from .settings import IntakeSettings


def city_for(settings: IntakeSettings) -> tuple[City, str | None]:
    """The city to start with and its released version (None: CITY_DATA_DIR's)."""
    return starting_city(settings.city_data_dir, settings.city_versions_dir)


@dataclass
class Intake:
    """The per-process state of the service (Runtime.state)."""

    city: City
    calendar: WorkingCalendar
    settings: IntakeSettings
    api_keys: dict[str, str] = field(default_factory=dict)  # Open311 api_key → source code
    rules: CaseRules = field(init=False)  # the case file's rules, for this city
    # similar past cases: descriptions → search terms (the dictionary loaded on first use)
    segmenter: Segmenter = field(init=False)

    def __post_init__(self) -> None:
        self.rules = CaseRules(
            self.city, self.calendar, self.residents, accepted_v2=self.settings.accepted_v2
        )
        self.segmenter = Segmenter(self.settings.similar_tokenizer)

    @property
    def residents(self) -> Residents:
        s = self.settings
        return Residents(
            public_url=s.public_url,
            link_secret=s.rating_link_secret.get_secret_value().encode(),
            link_ttl=timedelta(days=s.rating_link_days),
        )

    @classmethod
    def load(cls, settings: IntakeSettings, city: City | None = None) -> Intake:
        city = city or city_for(settings)[0]
        return cls(city, WorkingCalendar.from_config(city.calendar), settings, _keys(city))

    def use_city(self, city: City) -> None:
        """Live reload: locate, classify and record with this version of the city from the
        next message on (one synchronous step; cases keep what they were given)."""
        calendar = WorkingCalendar.from_config(city.calendar)
        self.rules.use_city(city, calendar)
        self.city, self.calendar, self.api_keys = city, calendar, _keys(city)

    def live(self, version: str | None) -> LiveCity[City]:
        """This state, following `city.updated` (gridloop_runtime.livecity)."""
        return LiveCity(
            "intake",
            self.city,
            version,
            load=loader(self.settings.city_versions_dir),
            swap=self.use_city,
        )

    def dept_name(self, code: str) -> str:
        return self.rules.dept_name(code)

    def user_name(self, user_id: str | None) -> str | None:
        user = self.city.user(user_id) if user_id else None
        return user.name if user else None

    def category_name(self, code: str | None) -> str:
        cat = self.city.category(code) if code else None
        return cat.name if cat else (code or "未分类")


def _keys(city: City) -> dict[str, str]:
    """Open311 api_key → source code."""
    return {k: s.code for s in city.sources.values() for k in s.open311_api_keys}
