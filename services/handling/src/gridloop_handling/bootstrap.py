"""Wires the handling service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import ServiceDefinition

from . import api, handlers
from .context import Handling
from .replies import relay_replies
from .settings import HandlingSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: HandlingSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state (handlers.Service, read by routes via `Runtime.state`)."""
    handling = Handling.load(settings)
    service = handlers.build(handling)
    cases = ConsumerSpec("handling-cases", "CASES", rules=service.table, lingers=True)
    commands = ConsumerSpec(
        handlers.COMMANDS_CONSUMER,
        "HANDLING",
        handlers.COMMAND_SUBJECTS,
        batch_handler=service.bus.on_batch,
        on_invalid=service.bus.on_invalid,
        lingers=True,
    )
    return (
        ServiceDefinition(
            name="handling",
            migrations_dir=MIGRATIONS,
            consumers=[cases, commands],
            timer_rules=service.table,
            routers=[api.router],
            background=[relay_replies, handling.live().background()],
            direct_table="replies",
            calendar=lambda: handling.calendar,
            users=lookup_from(handling.city.users),
            evidence=api.result_evidence(service),
            title="gridloop handling",
            description="处置反馈: the department inbox: sign, return, extension, progress, result",
        ),
        service,
    )


def build() -> tuple[HandlingSettings, ServiceDefinition, Any]:
    settings = HandlingSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
