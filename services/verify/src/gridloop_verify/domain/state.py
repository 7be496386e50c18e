"""Verify's state of one case: its projection, its tasks and the absences in force — what the
rules (rules.py) read and change in memory, and what the store writes back when changed."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .absences import NOT_LOADED, Absences
from .casefile import Case
from .tasks import Purpose, Task


@dataclass
class CaseState:
    """One case as the rules see it. `known` is whether verify keeps the case (a row): an
    event that may be the first verify hears of a case `adopt`s it; one about a case verify
    never saw changes nothing. The snapshots taken at load tell the store what changed."""

    case: Case
    tasks: dict[str, Task] = field(default_factory=dict)  # every task of the case, by id
    absences: Absences = NOT_LOADED
    known: bool = False
    _case_seen: tuple[Any, ...] | None = field(default=None, repr=False)
    _tasks_seen: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def loaded(
        cls, case: Case | None, case_id: str, tasks: list[Task], absences: Absences
    ) -> CaseState:
        """The state as stored (a case not seen yet: a fresh one), marked clean."""
        state = cls(
            case=case or Case(case_id=case_id),
            tasks={t.task_id: t for t in tasks},
            absences=absences,
            known=case is not None,
        )
        state.clean()
        return state

    def adopt(self) -> Case:
        """Keep this case from now on (written even if no field changes)."""
        self.known = True
        return self.case

    # -- tasks -----------------------------------------------------------------------
    def open_tasks(self, purpose: Purpose | None = None) -> list[Task]:
        return [
            t
            for _, t in sorted(self.tasks.items())
            if t.is_open and (purpose is None or t.purpose == purpose)
        ]

    def add_task(self, task: Task) -> None:
        self.tasks[task.task_id] = task

    # -- what changed ----------------------------------------------------------------
    def clean(self) -> None:
        """Everything as stored now (after a load or a save)."""
        self._case_seen = _snapshot(self.case) if self.known else None
        self._tasks_seen = {k: _snapshot(t) for k, t in self.tasks.items()}

    def case_changed(self) -> bool:
        return self.known and (self._case_seen is None or _snapshot(self.case) != self._case_seen)

    def changed_tasks(self) -> list[Task]:
        """New tasks and those whose fields changed, in id order."""
        return [
            t
            for k, t in sorted(self.tasks.items())
            if (seen := self._tasks_seen.get(k)) is None or _snapshot(t) != seen
        ]


def _snapshot(obj: Any) -> tuple[Any, ...]:
    """The fields of a case or task as they are now, to tell later whether they changed:
    values as they are, containers copied one level down (evidence and photos are lists of
    flat dicts). `dataclasses.astuple` deep-copies every value, a tenth of verify's CPU."""
    return tuple(_copied(getattr(obj, f.name)) for f in fields(obj))


def _copied(value: Any) -> Any:
    if isinstance(value, list):
        return [dict(v) if isinstance(v, dict) else v for v in value]
    if isinstance(value, dict):
        return dict(value)
    return value
