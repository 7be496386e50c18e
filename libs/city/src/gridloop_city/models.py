"""The city's configuration as typed records: space, parts, categories, people, rules."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["hotline", "video", "patrol", "web"]
TimeUnit = Literal["working_hours", "working_days", "hours"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(Record):
    """A time limit: working hours, working days (on the official calendar) or plain hours."""

    amount: float = Field(ge=0)
    unit: TimeUnit


class District(Record):
    code: str = Field(pattern=r"^\d{6}$")
    name: str
    name_en: str = ""
    timezone: str = "Asia/Shanghai"
    bbox: tuple[float, float, float, float]


class Subdistrict(Record):
    """街道."""

    code: str = Field(pattern=r"^\d{9}$")
    name: str


class Community(Record):
    """社区."""

    code: str = Field(pattern=r"^\d{12}$")
    name: str
    subdistrict_code: str


class Cell(Record):
    """网格: a cell of the grid (CJ/T 213 code: community code + 4 digits)."""

    code: str = Field(pattern=r"^\d{16}$")
    name: str
    community_code: str
    subdistrict_code: str
    area_m2: float = 0
    entry_list: tuple[str, ...] | None = None  # 准入清单; None = every category


class Major(Record):
    code: str
    name: str
    name_en: str = ""


class Category(Record):
    """A part (部件) or event (事件) category with its standard (CJ/T 214, CJ/T 315)."""

    code: str = Field(pattern=r"^[PE]\d{4}$")
    name: str
    name_en: str = ""
    kind: Literal["part", "event"]
    major_code: str
    acceptance_standard: str  # 立案条件
    closing_standard: str  # 结案条件
    limit_normal: Duration
    limit_urgent: Duration
    emergency: bool = False
    requires_confirmation: bool = False  # 核实 before acceptance
    close_requires_approval: bool = False  # shift leader approves closing
    auto_accept_from_trusted: bool = False
    video_detectable: bool = False

    def limit(self, urgency: str) -> Duration:
        return self.limit_urgent if urgency == "urgent" else self.limit_normal


class Part(Record):
    """部件: a fixed public object with a code, position and owner."""

    code: str
    category_code: str
    name: str
    lon: float
    lat: float
    cell_code: str
    owner_dept: str


class Department(Record):
    code: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    kind: Literal["bureau", "utility", "subdistrict-office", "community"]
    subdistrict_code: str | None = None


class RoutingRule(Record):
    """category (code, major prefix `E05*`, or `*`) × territory (sub-district, community or
    cell code, or `*`) → the responsible unit, co-handlers and a lead."""

    category: str
    territory: str = "*"
    dept: str
    co_handlers: tuple[str, ...] = ()
    lead: str | None = None
    note: str = ""


class Route(Record):
    dept: str
    co_handlers: tuple[str, ...] = ()
    lead: str | None = None
    candidates: tuple[str, ...] = ()  # other matching units, most specific first (for returns)


class EscalationLevel(Record):
    level: int = Field(ge=1)
    after: Duration
    to: str


class StageLimit(Record):
    limit: Duration
    reminder_fraction: float = 0.75


class CommunityRules(Record):
    """Seed 003: community 1, sub-district 2, multi-unit 3 working days, never more than 5."""

    community: Duration
    subdistrict: Duration
    multi_unit: Duration
    cap: Duration
    note: str = ""


class CalendarConfig(Record):
    timezone: str = "Asia/Shanghai"
    working_hours: tuple[tuple[str, str], ...]
    note: str = ""
    extra_holidays: tuple[str, ...] = ()
    extra_holidays_note: str = ""
    extra_workdays: tuple[str, ...] = ()
    sign_in_timeout: Duration
    reminder_fraction: float = Field(0.75, gt=0, lt=1)
    escalation: tuple[EscalationLevel, ...]
    emergency_escalation_to: str = "subdistrict-leader"
    verification: StageLimit
    confirmation: StageLimit
    community_rules: CommunityRules


class User(Record):
    id: str
    name: str
    roles: tuple[str, ...]
    territory: tuple[str, ...] = ("*",)
    dept: str | None = None
    trusted: bool = False


class SupervisorAssignment(Record):
    cell_code: str
    primary: str
    backup: str


class Address(Record):
    address: str
    lon: float
    lat: float
    cell_code: str


class Camera(Record):
    camera_id: str
    source: str
    lon: float
    lat: float
    cell_code: str


class Source(Record):
    """An integrator: a hotline, a video analytics platform, a patrol app, a web portal."""

    code: str = Field(pattern=r"^[A-Za-z0-9-]+$")
    name: str
    channel: Channel
    open311_api_keys: tuple[str, ...] = ()
    min_confidence: float = Field(0.6, ge=0, le=1)
    cooldown_minutes: float = Field(30, ge=0)


class RejectReason(Record):
    code: str
    zh: str
    en: str


class DuplicateRule(Record):
    distance_m: float = Field(gt=0)
    window_hours: float = Field(gt=0)


class AutoAccept(Record):
    trusted_supervisors: bool = True
    video_min_confidence: float = Field(0.85, ge=0, le=1)


class IntakeConfig(Record):
    duplicate: DuplicateRule
    auto_accept: AutoAccept
    confirmation_channels: tuple[Channel, ...] = ()
    shift_leader_review: tuple[str, ...] = ()
    reject_reasons: tuple[RejectReason, ...]


class Grade(Record):
    grade: str
    min: float


class ScoringRule(Record):
    measure: str
    kind: Literal["threshold", "deduction", "weighted", "weighted_inverse"]
    at_least: float | None = None
    points: float | None = None
    per_point_below: float | None = None
    each: float | None = None
    from_count: int | None = None
    each_after: float | None = None
    weight: float | None = None


class RuleSet(Record):
    code: str
    name: str
    subject: Literal["department", "area", "person"]
    rules: tuple[ScoringRule, ...]


class PeopleThresholds(Record):
    missed_first_responses_per_year: int
    dissatisfied_per_year: int
    half_year_satisfaction_min: float


class ScoringConfig(Record):
    grades: tuple[Grade, ...]
    rule_sets: tuple[RuleSet, ...]
    people: PeopleThresholds
