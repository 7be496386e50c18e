"""Wires the verify service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import ServiceDefinition

from . import api
from .context import Verify
from .handlers import VerifyService
from .settings import VerifySettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: VerifySettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state (the VerifyService, read by routes via `Runtime.state`)."""
    service = VerifyService(Verify.load(settings))
    cases = ConsumerSpec("verify-cases", "CASES", rules=service.table, patient=True)
    return (
        ServiceDefinition(
            name="verify",
            migrations_dir=MIGRATIONS,
            consumers=[cases],
            timers=service.timers,
            timer_rules=service.table,
            on_start=[service.started],
            routers=[api.router],
            users=lookup_from(service.ctx.city.users),
            evidence=api.site_evidence(service),
            background=[service.ctx.live().background()],
            calendar=lambda: service.ctx.calendar,
            title="gridloop verify",
            description="任务核查 · 结单: on-site verification, rework, closing and satisfaction",
        ),
        service,
    )


def build() -> tuple[VerifySettings, ServiceDefinition, Any]:
    settings = VerifySettings()
    definition_, state = definition(settings)
    return settings, definition_, state
