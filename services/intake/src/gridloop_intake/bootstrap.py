"""Wires the intake service: settings, city data, consumers, routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import ServiceDefinition

from . import api, open311
from .context import Intake
from .handlers import Handlers, case_file_rules
from .settings import IntakeSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: IntakeSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state: (Intake, Handlers), read by routes via `Runtime.state`."""
    intake = Intake.load(settings)
    handlers = Handlers(intake)
    reports = ConsumerSpec(
        "intake-reports",
        "INTAKE",
        ["intake.>"],
        handlers.on_inbound,
        on_invalid=handlers.on_invalid,
    )
    # The case file: pure rules a batch at a time; subjects from the table (case.<event>).
    casefile = ConsumerSpec("intake-casefile", "CASES", rules=case_file_rules(intake.rules))
    return (
        ServiceDefinition(
            name="intake",
            migrations_dir=MIGRATIONS,
            consumers=[reports, casefile],
            routers=[api.router, open311.router],
            users=lookup_from(intake.city.users),
            client_key=open311.client_key,
            title="gridloop intake",
            description="发现上报: reports from every channel become cases; the case file",
        ),
        (intake, handlers),
    )


def build() -> tuple[IntakeSettings, ServiceDefinition, Any]:
    settings = IntakeSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
