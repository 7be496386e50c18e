"""Verify's state of one case: its projection, its tasks and the absences in force — what the
rules (rules.py) read and change in memory, and what the store writes back when changed."""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
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
        self._case_seen = astuple(self.case) if self.known else None
        self._tasks_seen = {k: astuple(t) for k, t in self.tasks.items()}

    def case_changed(self) -> bool:
        return self.known and (self._case_seen is None or astuple(self.case) != self._case_seen)

    def changed_tasks(self) -> list[Task]:
        """New tasks and those whose fields changed, in id order."""
        return [
            t
            for k, t in sorted(self.tasks.items())
            if (seen := self._tasks_seen.get(k)) is None or astuple(t) != seen
        ]
