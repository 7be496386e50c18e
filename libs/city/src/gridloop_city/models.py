"""The city's configuration as typed, frozen records: space, parts, categories, people, rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import string
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

Channel = Literal["hotline", "video", "patrol", "web"]
TimeUnit = Literal["working_hours", "working_days", "hours"]
Kind = Literal["part", "event"]

#: The roles a user may hold (the same set gridloop_runtime.auth knows).
ROLES: tuple[str, ...] = (
    "operator",  # 受理员 / 值班员
    "shift-leader",  # 值班长
    "dispatcher",  # 派遣员
    "supervisor",  # 监督员 / 网格员
    "department",  # 责任单位 handler
    "grid-head",  # 网格长
    "evaluator",  # 考评
    "admin",  # 管理员
)

_HM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_DEPT_CODE = r"^[a-z0-9]+(-[a-z0-9]+)*$"


_RECORD_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
# the same for the records that are dataclasses (`frozen` is the decorator's there)
_DATACLASS_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


class Record(BaseModel):
    """Base of every record: unknown fields are errors, records never change once loaded."""

    model_config = _RECORD_CONFIG


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


class Duration(Record):
    """A time limit (时限): working hours, working days (official calendar) or plain clock hours
    (`hours`, for emergencies that do not wait for office hours)."""

    amount: float = Field(ge=0)
    unit: TimeUnit


# -- space -------------------------------------------------------------------------------------


class District(Record):
    """区: the district (CJ/T 213: 6-digit administrative code)."""

    code: str = Field(pattern=r"^\d{6}$")
    name: str = Field(min_length=1)
    name_en: str = ""
    timezone: str = "Asia/Shanghai"
    bbox: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat (WGS-84)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("bbox")
    @classmethod
    def _bbox_ordered(
        cls, bbox: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = bbox
        if not (x0 < x1 and y0 < y1):
            raise ValueError("bbox must be [min lon, min lat, max lon, max lat]")
        return bbox


class Subdistrict(Record):
    """街道: district code + 3 digits."""

    code: str = Field(pattern=r"^\d{9}$")
    name: str = Field(min_length=1)


class Community(Record):
    """社区: sub-district code + 3 digits."""

    code: str = Field(pattern=r"^\d{12}$")
    name: str = Field(min_length=1)
    subdistrict_code: str


class Cell(Record):
    """网格: a cell of the grid (CJ/T 213 code: community code + 4-digit cell number)."""

    code: str = Field(pattern=r"^\d{16}$")
    name: str = Field(min_length=1)
    community_code: str
    subdistrict_code: str
    area_m2: float = Field(0, ge=0)
    entry_list: tuple[str, ...] | None = None  # 准入清单; None = every category


# -- categories and parts ---------------------------------------------------------------------


class Major(Record):
    """大类: a major class of parts (P01…) or events (E01…) (CJ/T 214)."""

    code: str = Field(pattern=r"^[PE]\d{2}$")
    name: str = Field(min_length=1)
    name_en: str = ""


AttributeType = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
#: Attributes every category's Open311 service definition has (gridloop_intake.domain.open311).
BUILT_IN_ATTRIBUTES = ("urgency", "part_code")


class AttributeValue(Record):
    """One choice of a list attribute: the key sent, the name shown."""

    key: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    name: str = Field(min_length=1)


class ServiceAttribute(Record):
    """A question a resident's report of the category answers (an Open311 GeoReport v2
    service definition attribute): `attribute[code]` on `POST requests`."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    description: str = Field(min_length=1)  # the question, as shown
    datatype: AttributeType = "string"
    required: bool = False
    datatype_description: str = ""
    values: tuple[AttributeValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit_the_type(self) -> ServiceAttribute:
        listed = self.datatype.endswith("valuelist")
        if listed and not self.values:
            raise ValueError(f"attribute {self.code!r}: a {self.datatype} needs values")
        if not listed and self.values:
            raise ValueError(f"attribute {self.code!r}: a {self.datatype} takes no values")
        keys = [v.key for v in self.values]
        if len(set(keys)) != len(keys):
            raise ValueError(f"attribute {self.code!r}: a value key twice")
        return self


class Category(Record):
    """小类: a part (部件) or event (事件) category with its standard (CJ/T 214 code, CJ/T 315
    acceptance 立案条件, closing 结案条件 and time limits 处置时限)."""

    code: str = Field(pattern=r"^[PE]\d{4}$")
    name: str = Field(min_length=1)
    name_en: str = ""
    kind: Kind
    major_code: str
    acceptance_standard: str = Field(min_length=1)  # 立案条件
    closing_standard: str = Field(min_length=1)  # 结案条件
    limit_normal: Duration
    limit_urgent: Duration
    emergency: bool = False  # 突发: escalates at once when late
    requires_confirmation: bool = False  # 核实 on site before acceptance
    close_requires_approval: bool = False  # the shift leader approves closing
    auto_accept_from_trusted: bool = False  # trusted supervisors' reports are accepted at once
    video_detectable: bool = False  # video analytics may report it
    # Open311: what a report of it may (or must) say besides the description
    attributes: tuple[ServiceAttribute, ...] = ()

    @field_validator("attributes")
    @classmethod
    def _attribute_codes(cls, attrs: tuple[ServiceAttribute, ...]) -> tuple[ServiceAttribute, ...]:
        codes = [a.code for a in attrs]
        for code in codes:
            if code in BUILT_IN_ATTRIBUTES:
                raise ValueError(f"attribute {code!r} is built in: every category has it")
            if codes.count(code) > 1:
                raise ValueError(f"attribute {code!r} twice")
        return attrs

    def limit(self, urgency: str) -> Duration:
        """The handling limit for `urgent` cases, or the normal one."""
        return self.limit_urgent if urgency == "urgent" else self.limit_normal


@pydantic_dataclass(frozen=True, slots=True, config=_DATACLASS_CONFIG)
class Part:
    """部件: a fixed public object (code = district + major + minor + 6-digit serial).

    A slotted dataclass, not a model: a city holds tens of thousands of parts in every
    service, and a model instance costs about eight times the memory (26 MB for 23,000)."""

    code: Annotated[str, Field(pattern=r"^\d{16}$")]
    category_code: str
    name: Annotated[str, Field(min_length=1)]
    lon: float
    lat: float
    cell_code: str
    owner_dept: str  # 权属/管理单位: who gets the case

    def model_dump(self) -> dict[str, Any]:
        """Its fields as a dict, as a model's `model_dump` gives them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# -- organisation ------------------------------------------------------------------------------


class Department(Record):
    """责任单位: a bureau, a utility, a sub-district office (街道办事处) or a community."""

    code: str = Field(pattern=_DEPT_CODE)
    name: str = Field(min_length=1)
    name_en: str = ""  # the console's English; blank: the name
    kind: Literal["bureau", "utility", "subdistrict-office", "community"]
    subdistrict_code: str | None = None


class RoutingRule(Record):
    """派遣规则: category (code, major prefix `E05*`, kind prefix `P*`, or `*`) × territory
    (sub-district, community or cell code, or `*`) → the responsible unit (主办), co-handlers
    (协办) and a lead (牵头单位)."""

    category: str = Field(pattern=r"^(\*|[PE]\d{0,3}\*|[PE]\d{4})$")
    territory: str = "*"
    dept: str
    co_handlers: tuple[str, ...] = ()
    lead: str | None = None
    note: str = ""


class ManualRoute(Record):
    """人工派遣: category × territory (as in `RoutingRule`) that a dispatcher routes by hand on
    purpose (routing.yaml `manual`); it competes with the rules by the same precedence, and
    where it wins `City.route` answers None (the manual dispatch queue)."""

    category: str = Field(pattern=r"^(\*|[PE]\d{0,3}\*|[PE]\d{4})$")
    territory: str = "*"
    note: str = ""


class Route(Record):
    """The answer of `City.route`."""

    dept: str
    co_handlers: tuple[str, ...] = ()
    lead: str | None = None
    candidates: tuple[str, ...] = ()  # other matching units, most specific first (for returns)


# -- time --------------------------------------------------------------------------------------


#: An escalation rung addressed to the case's own grid head (网格长), found per case from the
#: users (role `grid-head`) whose territory covers its cell (`City.grid_heads_of`).
GRID_HEAD_RUNG = "grid-head"


class EscalationLevel(Record):
    """督办: `after` the deadline has passed by this much, the case goes up `to` this role;
    `to: grid-head` names the grid head(s) of the case's cell (`GRID_HEAD_RUNG`)."""

    level: int = Field(ge=1)
    after: Duration
    to: str = Field(min_length=1)


class StageLimit(Record):
    """A stage's limit (e.g. 核查 verification) and its reminder point (催办)."""

    limit: Duration
    reminder_fraction: float = Field(0.75, gt=0, lt=1)


class CommunityRules(Record):
    """社区限时办结 (seed 003): community 1, sub-district office 2, multi-unit 3 working days,
    never more than 5; simple paperwork at once (立即办结)."""

    community: Duration
    subdistrict: Duration
    multi_unit: Duration
    cap: Duration
    immediate: Duration = Duration(amount=0, unit="hours")
    note: str = ""


class CalendarConfig(Record):
    """calendar.yaml: office hours, holidays beyond chinese_calendar, and every time rule."""

    timezone: str = "Asia/Shanghai"
    working_hours: tuple[tuple[str, str], ...] = Field(min_length=1)
    note: str = ""
    extra_holidays: tuple[dt.date, ...] = ()
    extra_holidays_note: str = ""
    extra_workdays: tuple[dt.date, ...] = ()
    # The last day the city has entered the State Council's arrangement for (holidays and
    # swapped working days as extra_holidays / extra_workdays) beyond what chinese_calendar
    # knows; None: only chinese_calendar's years are official.
    known_through: dt.date | None = None
    sign_in_timeout: Duration  # 签收 within this after dispatch
    reminder_fraction: float = Field(0.75, gt=0, lt=1)  # 催办 at this share of the allowed time
    escalation: tuple[EscalationLevel, ...] = Field(min_length=1)  # 督办 ladder after deadline
    emergency_escalation_to: str = "subdistrict-leader"  # emergencies: at once, to this role
    # 待人工派遣: a case left in the manual dispatch queue is chased this long after it was
    # queued, each level once, to the role named (dispatcher, then shift leader); empty: never
    queue_chase: tuple[EscalationLevel, ...] = ()
    verification: StageLimit  # 核查 after the department reports
    confirmation: StageLimit  # 核实 before acceptance
    community_rules: CommunityRules

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("working_hours", mode="before")
    @classmethod
    def _times_are_strings(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            for period in value:
                for t in period if isinstance(period, list | tuple) else ():
                    if not isinstance(t, str) or not _HM.match(t):
                        raise ValueError(
                            f"{t!r} is not a quoted 'HH:MM' time (YAML reads 13:30 unquoted "
                            "as a number)"
                        )
        return value

    @field_validator("working_hours")
    @classmethod
    def _periods_ordered(cls, periods: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        previous = ""
        for start, end in periods:
            if not start < end:
                raise ValueError(f"working period {start}-{end} ends before it starts")
            if start < previous:
                raise ValueError(f"working period {start}-{end} overlaps or is out of order")
            previous = end
        return periods

    @field_validator("escalation", "queue_chase")
    @classmethod
    def _levels_in_order(cls, ladder: tuple[EscalationLevel, ...]) -> tuple[EscalationLevel, ...]:
        levels = [e.level for e in ladder]
        if levels != list(range(1, len(levels) + 1)):
            raise ValueError(f"escalation levels must be 1, 2, 3, … in order, not {levels}")
        return ladder


# -- people ------------------------------------------------------------------------------------


class User(Record):
    """A person with roles; `territory` is cell/community/sub-district codes or `*`, `dept` the
    department a `department` user works for."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = Field(min_length=1)
    roles: tuple[str, ...] = Field(min_length=1)
    territory: tuple[str, ...] = ("*",)
    dept: str | None = None
    trusted: bool = False  # a supervisor whose reports may be accepted without review

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        for role in roles:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        return roles


class SupervisorAssignment(Record):
    """AB 角: the cell's primary supervisor and the backup who covers for them."""

    cell_code: str
    primary: str
    backup: str


class Address(Record):
    """A gazetteer entry (地名地址, CJ/T 215 style): a street address and its point."""

    address: str = Field(min_length=1)
    lon: float
    lat: float
    cell_code: str


class Camera(Record):
    """A camera of a video analytics source and where it looks."""

    camera_id: str = Field(min_length=1)
    source: str
    lon: float
    lat: float
    cell_code: str


# The case statuses a source can be told of: the vocabulary of `gridloop_contracts.CaseStatus`
# (a test keeps the two equal; the city package does not depend on the contracts).
CASE_STATUSES = (
    "received",
    "pending_confirmation",
    "pending_acceptance",
    "accepted",
    "rejected",
    "merged",
    "manual_dispatch",
    "dispatched",
    "signed",
    "in_progress",
    "handled",
    "verifying",
    "reworking",
    "closed",
    "recalled",
)


class Source(Record):
    """An integrator: a hotline, a video analytics platform, a patrol app, a web portal."""

    code: str = Field(pattern=r"^[A-Za-z0-9-]+$")
    name: str = Field(min_length=1)
    channel: Channel
    open311_api_keys: tuple[str, ...] = ()
    min_confidence: float = Field(0.6, ge=0, le=1)  # video: below this, a person reviews first
    cooldown_minutes: float = Field(30, ge=0)  # video: same camera+category folds into one case
    # 进度回告: the statuses this source is told of on its notify subject; not given, every
    # change. A patrol app, whose supervisors work their tasks in the app, wants a report's
    # fate (accepted, rejected, merged) and its closing, not every step in between.
    notify: tuple[str, ...] | None = None

    @field_validator("notify")
    @classmethod
    def _known_statuses(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = sorted(set(value or ()) - set(CASE_STATUSES))
        if unknown:
            raise ValueError(f"unknown status {', '.join(unknown)}; one of {CASE_STATUSES}")
        return value

    def told(self, status: str) -> bool:
        """Whether this source hears of a case reaching `status`."""
        return self.notify is None or status in self.notify


# -- intake and scoring ------------------------------------------------------------------------


class RejectReason(Record):
    """不予立案 reason, labelled for operators (zh) and integrators (en)."""

    code: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class DuplicateRule(Record):
    """Reports of one category this close in space and time are merged into one case."""

    distance_m: float = Field(gt=0)
    window_hours: float = Field(gt=0)


class AutoAccept(Record):
    """Which reports become cases without an operator."""

    trusted_supervisors: bool = True
    video_min_confidence: float = Field(0.85, ge=0, le=1)


# The mails a reporter who left an e-mail gets, and what their templates may name.
MAIL_KINDS = ("accepted", "rejected", "closed", "reopened")
MAIL_LANGS = ("zh", "en")
MAIL_FIELDS = frozenset(
    {
        "case_id",
        "category",
        "description",
        "reason",
        "result",
        "dept",
        "status_notes",
        "district",
        "case_url",
        "rating_url",
    }
)


def _template_fields(text: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise ValueError(f"not a template: {exc}") from None


class MailTemplate(Record):
    """One mail in one language: `{name}` fields from MAIL_FIELDS are filled in."""

    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1)

    @model_validator(mode="after")
    def _known_fields(self) -> MailTemplate:
        for part in ("subject", "body"):
            unknown = _template_fields(getattr(self, part)) - MAIL_FIELDS
            if unknown:
                allowed = ", ".join(sorted(MAIL_FIELDS))
                raise ValueError(f"{part}: unknown field(s) {sorted(unknown)}; use {allowed}")
        if "\n" in self.subject:
            raise ValueError("subject: one line")
        return self


class IntakeConfig(Record):
    """intake.yaml: duplicates, auto-accept, confirmation channels, review, reject reasons,
    and the mails to reporters (`mail`: kind → language → template; Chinese required)."""

    duplicate: DuplicateRule
    auto_accept: AutoAccept
    confirmation_channels: tuple[Channel, ...] = ()
    shift_leader_review: tuple[str, ...] = ()
    reject_reasons: tuple[RejectReason, ...] = Field(min_length=1)
    mail: dict[str, dict[str, MailTemplate]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mail_kinds(self) -> IntakeConfig:
        for kind, langs in self.mail.items():
            if kind not in MAIL_KINDS:
                raise ValueError(f"mail.{kind}: not a mail kind ({', '.join(MAIL_KINDS)})")
            for lang in langs:
                if lang not in MAIL_LANGS:
                    raise ValueError(
                        f"mail.{kind}.{lang}: not a language ({', '.join(MAIL_LANGS)})"
                    )
            if "zh" not in langs:
                raise ValueError(f"mail.{kind}: the Chinese (zh) template is required")
        return self


class Grade(Record):
    """等级: a score of at least `min` earns `grade` (优/良/中/较差/差)."""

    grade: str = Field(min_length=1)
    min: float


class ScoringRule(Record):
    """One term of a composite score.

    - `threshold`: rate ≥ `at_least` earns `points`; each percentage point below costs
      `per_point_below` (none: nothing is earned below).
    - `deduction`: each counted item costs `each`; from the `from_count`-th on, `each_after`.
    - `weighted`: rate × `weight`; `weighted_inverse`: (1 − rate) × `weight`.
    - `minimum`: a count ≥ `at_least` earns `points` (e.g. a monthly minimum of reports); each
      one short costs `per_unit_below` (none: nothing is earned below).
    - `ceiling`: a value (e.g. hours) ≤ `at_most` earns `points`; each unit above costs
      `per_unit_above` (none: nothing is earned above); nothing measured earns `points`.
    - `levels` (measure `rated`): the satisfaction levels' worth — `levels` maps A–D to
      0–1; Σ count(level) × worth / rated, × `weight`."""

    measure: str = Field(min_length=1)
    kind: Literal[
        "threshold", "deduction", "weighted", "weighted_inverse", "minimum", "ceiling", "levels"
    ]
    at_least: float | None = None
    at_most: float | None = None
    points: float | None = None
    per_point_below: float | None = None
    per_unit_below: float | None = None
    per_unit_above: float | None = None
    each: float | None = None
    from_count: int | None = None
    each_after: float | None = None
    weight: float | None = None
    levels: dict[Literal["A", "B", "C", "D"], float] | None = None

    @model_validator(mode="after")
    def _parameters_present(self) -> ScoringRule:
        needed = {
            "threshold": ("at_least", "points"),
            "deduction": ("each",),
            "weighted": ("weight",),
            "weighted_inverse": ("weight",),
            "minimum": ("at_least", "points"),
            "ceiling": ("at_most", "points"),
            "levels": ("weight", "levels"),
        }[self.kind]
        if self.kind == "levels":
            if self.measure != "rated":
                raise ValueError("a levels rule is on the measure rated")
            if self.levels is not None and (
                set(self.levels) != {"A", "B", "C", "D"}
                or not all(0 <= v <= 1 for v in self.levels.values())
            ):
                raise ValueError("levels: A, B, C and D, each worth 0 to 1")
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.kind} rule needs {name}")
        if (self.from_count is None) != (self.each_after is None):
            raise ValueError("from_count and each_after go together")
        return self


class RuleSet(Record):
    """A named set of rules for one kind of subject (department, area or person). A rule set
    of people names the `roles` it ranks (岗位: supervisors, dispatchers …): everyone holding
    one of them is ranked, active in the period or not."""

    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    name_en: str = ""  # the console's English; blank: the name
    subject: Literal["department", "area", "person"]
    rules: tuple[ScoringRule, ...] = Field(min_length=1)
    roles: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _roles_of_people(self) -> RuleSet:
        if self.roles and self.subject != "person":
            raise ValueError("roles: only a rule set of people ranks by role")
        for role in self.roles:
            if role not in ROLES:
                raise ValueError(f"roles: {role!r} is not one of {', '.join(ROLES)}")
        return self


class PeopleThresholds(Record):
    """Seed 003: more than these per year (or under this half-year score) → criticism/removal."""

    missed_first_responses_per_year: int = Field(ge=0)
    dissatisfied_per_year: int = Field(ge=0)
    half_year_satisfaction_min: float


class ScoringConfig(Record):
    """scoring.yaml: grades, rule sets, people thresholds."""

    grades: tuple[Grade, ...] = Field(min_length=1)
    rule_sets: tuple[RuleSet, ...] = Field(min_length=1)
    people: PeopleThresholds
    # 现场核查: a verdict counts as given on site when the supervisor's position is within
    # this distance of the case's location
    on_site_radius_m: float = Field(150.0, gt=0)

    @field_validator("grades")
    @classmethod
    def _grades_descending(cls, grades: tuple[Grade, ...]) -> tuple[Grade, ...]:
        mins = [g.min for g in grades]
        if any(a <= b for a, b in itertools.pairwise(mins)):
            raise ValueError(f"grades must be listed from the best down, not {mins}")
        return grades

    @field_validator("rule_sets")
    @classmethod
    def _unique_rule_sets(cls, rule_sets: tuple[RuleSet, ...]) -> tuple[RuleSet, ...]:
        codes = [r.code for r in rule_sets]
        if len(set(codes)) != len(codes):
            raise ValueError(f"rule set codes must be unique: {codes}")
        return rule_sets

    def grade(self, score: float) -> str:
        """The grade a score earns (the last grade when below every threshold)."""
        for g in self.grades:
            if score >= g.min:
                return g.grade
        return self.grades[-1].grade

    def rule_set(self, code: str) -> RuleSet | None:
        return next((r for r in self.rule_sets if r.code == code), None)
