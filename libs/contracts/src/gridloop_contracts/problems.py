"""Refusals: what the rules say no to, naming the field. No imports beyond the standard
library, so pure domain modules can raise them without loading a web framework or a driver;
the runtime maps them to HTTP (422/409/404 …) and to bus answers at the edge."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Refusal(Exception):
    """A command the rules refuse. `field` names what is wrong (dotted path) when one thing
    is; `code` is a stable machine-readable reason; `status` is the HTTP status to answer."""

    reason: str
    field: str | None = None
    code: str = "refused"
    status: int = 409
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def as_error(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.field:
            out["field"] = self.field
        return out


class Permanent(Exception):
    """A message no retry can fix (its data breaks its contract): the runtime parks it in the
    dead-letter queue at once instead of spending deliveries on it."""
