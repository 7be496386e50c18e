"""Wires the dispatch service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import ServiceDefinition

from . import api
from .context import Dispatch
from .handlers import Handlers
from .settings import DispatchSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: DispatchSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state (the Handlers, read by routes via `Runtime.state`)."""
    dispatch = Dispatch.load(settings)
    handlers = Handlers(dispatch)
    cases = ConsumerSpec("dispatch-cases", "CASES", handlers.subjects, handlers.on_case_event)
    return (
        ServiceDefinition(
            name="dispatch",
            migrations_dir=MIGRATIONS,
            consumers=[cases],
            timers=handlers.timers,
            routers=[api.router],
            users=lookup_from(dispatch.city.users),
            title="gridloop dispatch",
            description="指挥派遣: routing, deadlines on working time, chasing and escalation",
        ),
        handlers,
    )


def build() -> tuple[DispatchSettings, ServiceDefinition, Any]:
    settings = DispatchSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
