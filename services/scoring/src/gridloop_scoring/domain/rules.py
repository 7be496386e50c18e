"""综合评分: composite scores from configurable rule sets (scoring.yaml), grades and rankings.

Rule kinds (gridloop_city.models.ScoringRule):
- `threshold`: a rate ≥ `at_least` earns `points`; below it, each percentage point short costs
  `per_point_below` (never below 0; without `per_point_below` nothing is earned below).
- `deduction`: each counted item costs `each`; from the `from_count`-th item on, `each_after`.
  Deductions are negative terms.
- `weighted`: rate × `weight`; `weighted_inverse`: (1 − rate) × `weight`.
- `levels` (on `rated`): what each satisfaction level is worth (A–D → 0–1, rule-set data):
  Σ count(level) × worth / rated, × `weight`.
- `minimum`: a count ≥ `at_least` earns `points`; each one short costs `per_unit_below` (a
  monthly minimum of reports: 0 reports is 0, not "nothing to measure").
- `ceiling`: a value ≤ `at_most` earns `points`; each unit above costs `per_unit_above`
  (time to dispatch: hours); nothing measured earns `points`.

A rate with nothing to measure (no cases: the denominator is 0) earns the rule's full
points — a subject that had nothing to do lost nothing. Ranking: by score, highest first;
equal scores (to 0.01) share a rank and the next rank is skipped (1, 2, 2, 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gridloop_city.models import RuleSet, ScoringConfig, ScoringRule

from .measures import SubjectKind, is_measure


@dataclass(frozen=True)
class Term:
    """What one rule contributed to a score."""

    measure: str
    kind: str
    value: float | None
    points: float


@dataclass(frozen=True)
class Scored:
    subject_code: str
    score: float
    grade: str
    rank: int
    terms: tuple[Term, ...]
    measures: Mapping[str, float | None]


def check_rule_set(rule_set: RuleSet) -> list[str]:
    """Problems of a rule set against the measure catalogue (empty when fine)."""
    kind: SubjectKind = rule_set.subject
    problems = []
    for i, rule in enumerate(rule_set.rules):
        if not is_measure(kind, rule.measure):
            problems.append(
                f"rules[{i}].measure: {rule.measure!r} is not a {kind} measure of scoring"
            )
    return problems


def term(rule: ScoringRule, value: float | None) -> float:
    """The points one rule gives for a measure's value (a rate 0–1, or a count)."""
    if rule.kind == "deduction":
        n = int(value or 0)
        each = rule.each or 0.0
        if rule.from_count is not None and rule.each_after is not None:
            before = min(n, rule.from_count - 1)
            return -(before * each + max(0, n - before) * rule.each_after)
        return -(n * each)
    if rule.kind == "minimum":
        count, at_least = float(value or 0.0), float(rule.at_least or 0.0)
        earned = float(rule.points or 0.0)
        if count >= at_least:
            return earned
        if rule.per_unit_below is None:
            return 0.0
        return max(0.0, earned - (at_least - count) * rule.per_unit_below)
    if value is None:  # nothing to measure: full marks
        if rule.kind in ("threshold", "ceiling"):
            return float(rule.points or 0.0)
        return float(rule.weight or 0.0)
    if rule.kind == "ceiling":
        at_most, points = float(rule.at_most or 0.0), float(rule.points or 0.0)
        if value <= at_most:
            return points
        if rule.per_unit_above is None:
            return 0.0
        return max(0.0, points - (value - at_most) * rule.per_unit_above)
    if rule.kind == "threshold":
        at_least, points = float(rule.at_least or 0.0), float(rule.points or 0.0)
        if value >= at_least:
            return points
        if rule.per_point_below is None:
            return 0.0
        short = (at_least - value) * 100
        return max(0.0, points - short * rule.per_point_below)
    if rule.kind in ("weighted", "levels"):
        return value * float(rule.weight or 0.0)
    return (1.0 - value) * float(rule.weight or 0.0)


# The counted measure of each satisfaction level (fold.LEVEL_MEASURE).
LEVEL_MEASURES = {"A": "very_satisfied", "B": "satisfied", "C": "fair", "D": "dissatisfied"}


def levels_worth(rule: ScoringRule, measures: Mapping[str, float | None]) -> float | None:
    """A levels rule's value: the ratings' average worth (None: no rating)."""
    rated = measures.get("rated") or 0.0
    if rated <= 0 or rule.levels is None:
        return None
    total = sum(
        (measures.get(LEVEL_MEASURES[level]) or 0.0) * worth for level, worth in rule.levels.items()
    )
    return min(1.0, total / rated)


def value_of(rule: ScoringRule, measures: Mapping[str, float | None]) -> float | None:
    if rule.kind == "levels":
        return levels_worth(rule, measures)
    return measures.get(rule.measure)


def score(
    rule_set: RuleSet, measures: Mapping[str, float | None]
) -> tuple[float, tuple[Term, ...]]:
    values = [(r, value_of(r, measures)) for r in rule_set.rules]
    terms = tuple(Term(r.measure, r.kind, v, term(r, v)) for r, v in values)
    return round(sum(t.points for t in terms), 4), terms


def rank(
    rule_set: RuleSet,
    config: ScoringConfig,
    subjects: Mapping[str, Mapping[str, float | None]],
) -> list[Scored]:
    """Score every subject and rank them."""
    scored = [(code, *score(rule_set, m), m) for code, m in subjects.items()]
    scored.sort(key=lambda s: (-round(s[1], 2), s[0]))
    out: list[Scored] = []
    previous: float | None = None
    current_rank = 0
    for position, (code, total, terms, m) in enumerate(scored, start=1):
        rounded = round(total, 2)
        if rounded != previous:
            current_rank = position
            previous = rounded
        out.append(Scored(code, rounded, config.grade(rounded), current_rank, terms, m))
    return out


def rule_sets_for(config: ScoringConfig, kind: SubjectKind) -> Sequence[RuleSet]:
    return [r for r in config.rule_sets if r.subject == kind]
