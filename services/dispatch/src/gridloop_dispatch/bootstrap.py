"""Wires the dispatch service: settings, city data, the handler table and routes, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.bus import Feed
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import ServiceDefinition

from . import api
from .context import city_for, live_city, rules_of
from .settings import DispatchSettings
from .table import MUST_NOT_WAIT, Dispatching

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: DispatchSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state (`Dispatching`, read by routes via `Runtime.state`)."""
    city, version = city_for(settings)
    dispatching = Dispatching.of(rules_of(city))
    live = live_city(settings, dispatching.rules, version)
    cases = ConsumerSpec(
        "dispatch-cases", "CASES", rules=dispatching.table, patient=True, urgent=MUST_NOT_WAIT
    )
    return (
        ServiceDefinition(
            name="dispatch",
            migrations_dir=MIGRATIONS,
            consumers=[cases],
            timer_rules=dispatching.table,
            routers=[api.router],
            background=[live.background()],
            calendar=lambda: dispatching.rules.deadlines.calendar,
            users=lookup_from(dispatching.rules.city.users),
            # Each department's durable consumer on DISPATCH (its user may only bind to it).
            feeds=[Feed.department(code) for code in sorted(dispatching.rules.city.departments)],
            title="gridloop dispatch",
            description="指挥派遣: routing, deadlines on working time, chasing and escalation",
        ),
        dispatching,
    )


def build() -> tuple[DispatchSettings, ServiceDefinition, Any]:
    settings = DispatchSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
