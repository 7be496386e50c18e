"""Wires the handling service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.service import ServiceDefinition

from .settings import HandlingSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: HandlingSettings) -> tuple[ServiceDefinition, Any]:
    return (
        ServiceDefinition(
            name="handling",
            migrations_dir=MIGRATIONS,
            title="gridloop handling",
            description="处置反馈: the department inbox",
        ),
        None,
    )


def build() -> tuple[HandlingSettings, ServiceDefinition, Any]:
    settings = HandlingSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
