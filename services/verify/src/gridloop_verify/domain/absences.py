"""请假、外出: a supervisor's absence, and the absences a batch of rules sees."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Absence:
    id: int
    user_id: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    set_by: str

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class Absences:
    """The absences not over yet when a batch was loaded, (user, starts, ends) each: one
    small read per batch, shared by the states of all its cases. `loaded` False where the
    store did not read them (commands whose rules never assign by presence)."""

    entries: tuple[tuple[str, datetime, datetime], ...] = ()
    loaded: bool = True

    @classmethod
    def of(cls, entries: Iterable[tuple[str, datetime, datetime]]) -> Absences:
        return cls(tuple(entries))

    def absent_at(self, at: datetime) -> frozenset[str]:
        """Who is away at `at`."""
        if not self.loaded:
            raise RuntimeError("absences were not loaded for this unit of work")
        return frozenset(user for user, starts, ends in self.entries if starts <= at < ends)


NOT_LOADED = Absences(loaded=False)
