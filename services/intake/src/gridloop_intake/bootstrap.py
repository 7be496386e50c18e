"""Wires the intake service: settings, city data, consumers, routes, in one place."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from gridloop_contracts import Envelope, FieldError, inbound
from gridloop_runtime.auth import lookup_from
from gridloop_runtime.bus import Feed
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.mail import MAIL_TIMER, Mailer, MailSender
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, ServiceDefinition

from . import api, metrics, open311, parts, public
from . import repository as repo
from .context import Intake, city_for
from .handlers import Handlers, case_file_rules
from .settings import IntakeSettings

MIGRATIONS = Path(__file__).parent / "sql"


def definition(settings: IntakeSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state: (Intake, Handlers), read by routes via `Runtime.state`."""
    city, version = city_for(settings)
    intake = Intake.load(settings, city)
    handlers = Handlers(intake)

    async def judge_times_by_intake_clock(rt: Runtime) -> None:
        # The contract's check of senders' times (reported_at …) reads this clock and limit.
        inbound.receive_with(rt.clock.now, timedelta(seconds=settings.max_time_ahead_s))

    async def on_inbound(work: Work, env: Envelope) -> None:
        """The envelope's own time (ce-time) is judged as the data's times are."""
        problem = inbound.sent_time_problem(env.time)
        if problem is not None:
            await handlers.reject_message(
                work,
                subject=work.subject or "",
                env=env,
                errors=[FieldError(field="time", reason=problem)],
            )
            return
        await handlers.on_inbound(work, env)

    reports = ConsumerSpec(
        "intake-reports",
        "INTAKE",
        ["intake.>"],
        on_inbound,
        on_invalid=handlers.on_invalid,
    )
    # The case file: pure rules a batch at a time; subjects from the table (case.<event>).
    casefile = ConsumerSpec("intake-casefile", "CASES", rules=case_file_rules(intake.rules))
    return (
        ServiceDefinition(
            name="intake",
            migrations_dir=MIGRATIONS,
            consumers=[reports, casefile],
            # 告知: mail to reporters, scheduled by the rules as timers, sent through SMTP
            timers={MAIL_TIMER: MailSender(Mailer(settings), repo.reporter_email)},
            routers=[api.router, open311.router, public.router, parts.router],
            users=lookup_from(intake.city.users),
            client_key=open311.client_key,
            on_start=[judge_times_by_intake_clock],
            gauges=[metrics.refresh],
            background=[intake.live(version).background()],
            calendar=lambda: intake.calendar,
            # Each integrator's durable consumer on NOTIFY (its user may only bind to it).
            feeds=[Feed.integrator(code) for code in sorted(intake.city.sources)],
            evidence=api.case_evidence(intake),
            title="gridloop intake",
            description="发现上报: reports from every channel become cases; the case file",
        ),
        (intake, handlers),
    )


def build() -> tuple[IntakeSettings, ServiceDefinition, Any]:
    settings = IntakeSettings()
    definition_, state = definition(settings)
    return settings, definition_, state
