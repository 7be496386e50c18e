"""Wires the verify service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.service import ServiceDefinition

from .settings import VerifySettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: VerifySettings) -> tuple[ServiceDefinition, Any]:
    return (
        ServiceDefinition(
            name="verify",
            migrations_dir=MIGRATIONS,
            title="gridloop verify",
            description="任务核查 · 结单: on-site verification and closing",
        ),
        None,
    )


def build() -> tuple[VerifySettings, ServiceDefinition, Any]:
    settings = VerifySettings()
    definition_, state = definition(settings)
    return settings, definition_, state
