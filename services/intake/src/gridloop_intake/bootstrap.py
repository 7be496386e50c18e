"""Wires the intake service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.service import ServiceDefinition

from .settings import IntakeSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: IntakeSettings) -> tuple[ServiceDefinition, Any]:
    return (
        ServiceDefinition(
            name="intake",
            migrations_dir=MIGRATIONS,
            title="gridloop intake",
            description="发现上报: reports from every channel become cases",
        ),
        None,
    )


def build() -> tuple[IntakeSettings, ServiceDefinition, Any]:
    settings = IntakeSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
