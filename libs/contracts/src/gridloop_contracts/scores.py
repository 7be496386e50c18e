"""Published performance scores (评价考核结果) on `score.published`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from .base import Event, register
from .common import Value

PeriodKind = Literal["day", "week", "month", "quarter", "year"]


class ScoreRow(Value):
    """One ranked subject (department, area or person) and the measures behind its score."""

    subject_code: str
    subject_name: str | None = None
    score: float
    grade: str | None = None  # 优/良/中/较差/差
    rank: int
    measures: dict[str, float] = Field(default_factory=dict)


@register
class ScorePublishedV1(Event):
    """考核排名: the scores and ranking of one kind of subject for one period."""

    type_name: ClassVar[str] = "gridloop.score.published.v1"
    subject_token: ClassVar[str] = "published"
    summary: ClassVar[str] = "Scores and rankings of a period (考核排名)"

    period_kind: PeriodKind
    period_start: AwareDatetime
    period_end: AwareDatetime
    subject_kind: Literal["department", "area", "person"]
    # areas: the level ranked (cell, community, subdistrict, district)
    subject_level: str | None = None
    rule_set: str
    rows: list[ScoreRow]
    published_at: AwareDatetime


class BulletinLinks(Value):
    """Where the stored bulletin is read: paths on scoring's API (evaluators and admins)."""

    html: str
    csv: str
    data_json: str


@register
class BulletinPublishedV1(Event):
    """通报发布: the bulletin of a closed month or quarter was generated once and stored."""

    type_name: ClassVar[str] = "gridloop.score.bulletin_published.v1"
    subject_token: ClassVar[str] = "bulletin_published"
    summary: ClassVar[str] = "The bulletin of a closed month or quarter is available (通报)"

    period_kind: PeriodKind
    period_start: AwareDatetime
    period_end: AwareDatetime
    title: str
    departments: int = Field(ge=0)
    subdistricts: int = Field(ge=0)
    worst_cases: int = Field(ge=0)
    links: BulletinLinks
    published_at: AwareDatetime
