"""The configurable rules of verification: escalation after repeated failure, reopening on
dissatisfaction, what evidence a verdict needs."""

from __future__ import annotations

from dataclasses import dataclass


def parse_patterns(text: str) -> tuple[str, ...]:
    """`"E01*, P0101"` → `("E01*", "P0101")`: category codes, prefixes or `*`."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def matches(patterns: tuple[str, ...], category_code: str | None) -> bool:
    """Whether a category is named by a code, a prefix pattern (`E01*`) or `*`."""
    for p in patterns:
        if p == "*":
            return True
        if category_code is None:
            continue
        if p.endswith("*") and category_code.startswith(p[:-1]):
            return True
        if p == category_code:
            return True
    return False


@dataclass(frozen=True)
class Policy:
    escalate_after: int = 3
    escalate_to: str = "efficiency-office"
    reopen_categories: tuple[str, ...] = ()
    require_photo_on_pass: bool = True
    # A pass that closes the case at once is published as one case.closed v2 carrying the
    # verdict (else case.verified and case.closed v1, for consumers not yet reading v2).
    closed_v2: bool = True

    def __post_init__(self) -> None:
        if self.escalate_after < 1:
            raise ValueError("escalate_after must be at least 1")

    def reopens(self, category_code: str | None) -> bool:
        """满意度不满意 → 重办 where configured."""
        return matches(self.reopen_categories, category_code)

    def escalation_level(self, failures: int) -> int | None:
        """督办 level for the failure count: 1 at the Nth failure, 2 at the next, ...; None
        below N."""
        if failures < self.escalate_after:
            return None
        return failures - self.escalate_after + 1
