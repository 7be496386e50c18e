"""AB 角: who takes a task in a cell — the primary supervisor, or the backup when absent."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    """The supervisor a task goes to; `supervisor_id` None means nobody is present and the
    task waits in the shift leader's queue for a manual assignment."""

    supervisor_id: str | None
    primary: str | None
    backup: str | None

    @property
    def backup_used(self) -> bool:
        return self.supervisor_id is not None and self.supervisor_id != self.primary

    @property
    def unassigned(self) -> bool:
        return self.supervisor_id is None


def assign(pair: tuple[str, str] | None, absent: Collection[str]) -> Assignment:
    """The primary when present, else the backup when present, else nobody."""
    if pair is None:
        return Assignment(None, None, None)
    primary, backup = pair
    for candidate in (primary, backup):
        if candidate and candidate not in absent:
            return Assignment(candidate, primary, backup)
    return Assignment(None, primary, backup)


def cover(
    holder: str | None, pair: tuple[str, str] | None, absent: Collection[str]
) -> Assignment | None:
    """Who should hold a task now that `absent` are away: a new assignment when the holder is
    absent (or nobody holds it) and somebody else of the pair is present, else None (keep)."""
    if holder is not None and holder not in absent:
        return None
    found = assign(pair, absent)
    if found.supervisor_id is None or found.supervisor_id == holder:
        return None
    return found


def members(pair: tuple[str, str] | None) -> frozenset[str]:
    """Both supervisors of a cell: either may act on the cell's tasks (they cover each other)."""
    return frozenset(p for p in (pair or ()) if p)
