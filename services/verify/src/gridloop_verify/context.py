"""What every verify rule works with: the loaded city, its working calendar, the policy."""

from __future__ import annotations

from dataclasses import dataclass

from gridloop_city import City, WorkingCalendar
from gridloop_city.models import StageLimit
from gridloop_city.versions import loader, starting_city
from gridloop_runtime.livecity import LiveCity

from .domain.policy import Policy, parse_patterns
from .domain.tasks import Purpose
from .settings import VerifySettings


@dataclass
class Verify:
    """The per-process state of the service (Runtime.state)."""

    city: City
    calendar: WorkingCalendar
    policy: Policy
    settings: VerifySettings
    version: str | None = None  # the released city version (None: CITY_DATA_DIR's)

    @classmethod
    def load(cls, settings: VerifySettings) -> Verify:
        city, version = starting_city(
            settings.city_data_dir, settings.city_versions_dir, parts=False
        )
        policy = Policy(
            escalate_after=settings.escalate_after_failures,
            escalate_to=settings.escalate_to,
            reopen_categories=parse_patterns(settings.reopen_on_dissatisfied),
            require_photo_on_pass=settings.require_photo_on_pass,
            closed_v2=settings.closed_v2,
        )
        return cls(city, WorkingCalendar.from_config(city.calendar), policy, settings, version)

    def use_city(self, city: City) -> None:
        """Live reload: rosters (AB 角), stage limits and closing approval come from this
        version of the city from the next message on (one synchronous step)."""
        self.city, self.calendar = city, WorkingCalendar.from_config(city.calendar)

    def live(self) -> LiveCity[City]:
        """This state, following `city.updated` (gridloop_runtime.livecity)."""
        load = loader(self.settings.city_versions_dir, parts=False)
        return LiveCity("verify", self.city, self.version, load=load, swap=self.use_city)

    def stage_limit(self, purpose: Purpose) -> StageLimit:
        """The time a verification or confirmation task gets, and when to remind (calendar.yaml)."""
        calendar = self.city.calendar
        return calendar.verification if purpose == "verification" else calendar.confirmation

    def supervisors_of(self, cell_code: str | None) -> tuple[str, str] | None:
        """The cell's roster (supervisors.csv): (primary, backup)."""
        return self.city.supervisors_for(cell_code) if cell_code else None

    def requires_approval(self, category_code: str | None) -> bool:
        category = self.city.category(category_code) if category_code else None
        return bool(category and category.close_requires_approval)

    def is_supervisor(self, user_id: str) -> bool:
        user = self.city.user(user_id)
        return bool(user and "supervisor" in user.roles)
