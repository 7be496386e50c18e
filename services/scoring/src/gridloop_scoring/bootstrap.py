"""Wires the scoring service: settings, city data, consumers, timers and routes, in one place."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gridloop_runtime.auth import lookup_from
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.service import Runtime, ServiceDefinition

from . import api, casework
from .context import Scoring
from .handlers import Handlers
from .settings import ScoringSettings
from .store import FactStore

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: ScoringSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state (the Handlers, read by routes via `Runtime.state`)."""
    scoring = Scoring.load(settings)
    rules = casework.rules(scoring.fold)
    assert isinstance(rules.store, FactStore)
    handlers = Handlers(scoring, rules.store)
    cases = ConsumerSpec(
        "scoring-cases",
        "CASES",
        casework.SUBJECTS,
        rules=rules,
        linger_s=settings.linger_s,
        batch=settings.batch,
    )

    async def fold(rt: Runtime, stop: asyncio.Event) -> None:
        assert rt.pool is not None
        await handlers.projection.run(rt.pool, stop)

    return (
        ServiceDefinition(
            name="scoring",
            migrations_dir=MIGRATIONS,
            consumers=[cases],
            timers=handlers.timers,
            routers=[api.router],
            on_start=[handlers.record_rules, handlers.arm_publishing],
            background=[fold, handlers.live().background()],
            users=lookup_from(scoring.city.users),
            title="gridloop scoring",
            description="评价考核: performance of departments, areas and people",
        ),
        handlers,
    )


def build() -> tuple[ScoringSettings, ServiceDefinition, Any]:
    settings = ScoringSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
