"""Wires the handling service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import ServiceDefinition

from . import api
from .context import Handling
from .handlers import Handlers
from .replies import relay_replies
from .settings import HandlingSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: HandlingSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state (the Handlers, read by routes via `Runtime.state`)."""
    handling = Handling.load(settings)
    handlers = Handlers(handling)
    cases = ConsumerSpec("handling-cases", "CASES", handlers.subjects, handlers.on_case_event)
    commands = ConsumerSpec(
        "handling-commands",
        "HANDLING",
        handlers.command_subjects,
        handlers.on_bus_command,
        on_invalid=handlers.on_invalid_command,
    )
    return (
        ServiceDefinition(
            name="handling",
            migrations_dir=MIGRATIONS,
            consumers=[cases, commands],
            timers=handlers.timers,
            routers=[api.router],
            background=[relay_replies],
            users=lookup_from(handling.city.users),
            title="gridloop handling",
            description="处置反馈: the department inbox: sign, return, extension, progress, result",
        ),
        handlers,
    )


def build() -> tuple[HandlingSettings, ServiceDefinition, Any]:
    settings = HandlingSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
