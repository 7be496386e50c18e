"""岗位考核 (seed 003): the per-person counters of a year and the thresholds they cross.

More than `missed_first_responses_per_year` missed first responses (首问责任) or more than
`dissatisfied_per_year` dissatisfied ratings in a year, or a half-year satisfaction score
under `half_year_satisfaction_min`, lead to criticism or removal (劝退、调离). The limits
are data (scoring.yaml `people`); "more than" follows its documented meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gridloop_city.models import PeopleThresholds


@dataclass(frozen=True)
class PersonYear:
    person: str
    missed_first_responses: int
    dissatisfied: int
    satisfaction: tuple[float | None, float | None]  # 上半年, 下半年 (0–100; None: no ratings)
    flags: tuple[str, ...]


def satisfaction_score(counts: Mapping[str, float]) -> float | None:
    """0–100: the share of ratings A 非常满意 and B 满意."""
    rated = counts.get("rated", 0.0)
    if rated <= 0:
        return None
    good = counts.get("very_satisfied", 0.0) + counts.get("satisfied", 0.0)
    return round(100.0 * good / rated, 2)


def person_year(
    person: str,
    year: Mapping[str, float],
    halves: tuple[Mapping[str, float], Mapping[str, float]],
    limits: PeopleThresholds,
) -> PersonYear:
    missed = int(year.get("missed_first_responses", 0))
    dissatisfied = int(year.get("dissatisfied", 0))
    sat = (satisfaction_score(halves[0]), satisfaction_score(halves[1]))
    flags = []
    if missed > limits.missed_first_responses_per_year:
        flags.append("missed_first_responses")
    if dissatisfied > limits.dissatisfied_per_year:
        flags.append("dissatisfied")
    for name, s in zip(("satisfaction_h1", "satisfaction_h2"), sat, strict=True):
        if s is not None and s < limits.half_year_satisfaction_min:
            flags.append(name)
    return PersonYear(person, missed, dissatisfied, sat, tuple(flags))
