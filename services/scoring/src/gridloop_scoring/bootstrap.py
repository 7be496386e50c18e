"""Wires the scoring service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.service import ServiceDefinition

from .settings import ScoringSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: ScoringSettings) -> tuple[ServiceDefinition, Any]:
    return (
        ServiceDefinition(
            name="scoring",
            migrations_dir=MIGRATIONS,
            title="gridloop scoring",
            description="评价考核: performance of departments, areas and people",
        ),
        None,
    )


def build() -> tuple[ScoringSettings, ServiceDefinition, Any]:
    settings = ScoringSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
