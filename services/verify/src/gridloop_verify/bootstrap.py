"""Wires the verify service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import ServiceDefinition

from . import api
from .context import Verify
from .handlers import Handlers
from .settings import VerifySettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: VerifySettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state (the Handlers, read by routes via `Runtime.state`)."""
    verify = Verify.load(settings)
    handlers = Handlers(verify)
    cases = ConsumerSpec("verify-cases", "CASES", handlers.subjects, handlers.on_case_event)
    return (
        ServiceDefinition(
            name="verify",
            migrations_dir=MIGRATIONS,
            consumers=[cases],
            timers=handlers.timers,
            routers=[api.router],
            users=lookup_from(verify.city.users),
            title="gridloop verify",
            description="任务核查 · 结单: on-site verification, rework, closing and satisfaction",
        ),
        handlers,
    )


def build() -> tuple[VerifySettings, ServiceDefinition, Any]:
    settings = VerifySettings()
    definition_, state = definition(settings)
    return settings, definition_, state
