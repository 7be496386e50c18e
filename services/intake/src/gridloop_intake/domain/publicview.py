"""What a resident sees of a case without a login (公众查询): the steps of its timeline in
public terms — which step and when, never who, never the notes. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The lifecycle events a resident is told of, by their token (gridloop.case.<token>.vN).
# Everything else stays internal: reminders, overdue and escalation, returns and extension
# requests between the centre and the departments, queues, call-backs, evidence.
PUBLIC_STEPS = (
    "reported",
    "merged",
    "accepted",
    "rejected",
    "dispatched",
    "signed",
    "handled",
    "verified",
    "reworked",
    "closed",
    "reopened",
    "recalled",
    "rated",
)


@dataclass(frozen=True)
class Step:
    """One public step of a case: `reported`, `accepted` … and when it happened."""

    step: str
    at: datetime

    def view(self) -> dict[str, Any]:
        return {"step": self.step, "at": self.at}


def step_of(event_type: str) -> str | None:
    """`gridloop.case.accepted.v1` → `accepted`; None for a type not told to the public."""
    parts = event_type.split(".")
    if len(parts) != 4 or parts[:2] != ["gridloop", "case"]:
        return None
    return parts[2] if parts[2] in PUBLIC_STEPS else None


def public_timeline(lines: Iterable[Mapping[str, Any]]) -> list[Step]:
    """The public steps of timeline lines (each with `type` and `occurred_at`), in their
    order; a step repeated with only internal steps between (a task returned and dispatched
    again, a second report joining the case) is shown once."""
    steps: list[Step] = []
    for line in lines:
        step = step_of(str(line.get("type") or ""))
        if step is None:
            continue
        if steps and steps[-1].step == step:
            continue
        steps.append(Step(step, line["occurred_at"]))
    return steps
