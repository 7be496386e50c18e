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
