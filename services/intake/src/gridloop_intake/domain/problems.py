"""What is wrong with a report or a command, naming the field: one shape for every channel."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One reason to refuse. `field` is the input's own name (`location`, `part_code`);
    `code` is stable and machine-readable (the reject reason codes of intake.yaml where one
    applies); `status` is how REST answers it (422 bad input, 409 a rule, 404 not found)."""

    field: str | None
    reason: str
    code: str = "invalid"
    status: int = 422


class Refused(Exception):
    """Raised by the pipeline when a report or command is refused; carries its problems."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems
