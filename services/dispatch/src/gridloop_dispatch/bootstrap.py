"""Wires the dispatch service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.service import ServiceDefinition

from .settings import DispatchSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: DispatchSettings) -> tuple[ServiceDefinition, Any]:
    return (
        ServiceDefinition(
            name="dispatch",
            migrations_dir=MIGRATIONS,
            title="gridloop dispatch",
            description="指挥派遣: routing, deadlines, chasing and escalation",
        ),
        None,
    )


def build() -> tuple[DispatchSettings, ServiceDefinition, Any]:
    settings = DispatchSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
