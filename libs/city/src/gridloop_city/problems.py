"""A problem found in a city's data or its sources, located by file, row and field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong, located: file, row (CSV line, feature, YAML item) and field."""

    file: str
    row: object
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file} row {self.row} field {self.field}: {self.reason}"
