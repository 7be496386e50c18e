"""Wires the intake service: settings, city data, consumers, routes, in one place."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeGuard

import structlog
from gridloop_contracts import Envelope, FieldError, inbound
from gridloop_contracts.inbound import DetectionV1, ReportTakenV1, ReportV1
from gridloop_runtime.auth import lookup_from
from gridloop_runtime.bus import Feed
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.db import Conn
from gridloop_runtime.mail import MAIL_TIMER, Mailer, MailSender
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime, ServiceDefinition

from . import api, metrics, open311, parts, public, search
from . import repository as repo
from .casework import REPORTS_CONSUMER, Ahead, ReportBatch, ahead
from .context import Intake, city_for
from .domain.case_ids import local_day
from .domain.inbound import source_of
from .handlers import Handlers, case_file_rules
from .settings import IntakeSettings

MIGRATIONS = Path(__file__).parent / "sql"
REPORT_TYPES = frozenset({ReportV1.type_name, DetectionV1.type_name, ReportTakenV1.type_name})


def definition(settings: IntakeSettings) -> tuple[ServiceDefinition, Any]:
    """The service and its state: (Intake, Handlers), read by routes via `Runtime.state`."""
    city, version = city_for(settings)
    intake = Intake.load(settings, city)
    handlers = Handlers(intake)

    async def judge_times_by_intake_clock(rt: Runtime) -> None:
        # The contract's check of senders' times (reported_at …) reads this clock and limit.
        inbound.receive_with(rt.clock.now, timedelta(seconds=settings.max_time_ahead_s))

    async def on_inbound(work: Work, env: Envelope, batch: ReportBatch) -> None:
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
        await handlers.on_inbound(work, env, batch)

    async def on_batch(conn: Conn, messages: Sequence[tuple[Work, Envelope]]) -> None:
        """A fetched batch in one transaction: its reports' case files written together."""
        batch = ReportBatch()
        day = local_day(messages[0][0].now(), intake.city.district.timezone)
        ahead_of_all = [_ahead(intake, work.subject, env) for work, env in messages]
        await batch.prepare(conn, ahead_of_all, day)
        for i, (work, env) in enumerate(messages):
            batch.left = len(messages) - i
            with structlog.contextvars.bound_contextvars(event_id=env.id, event_type=env.type):
                await on_inbound(work, env, batch)
        # gathered with the batch's events: one statement (the consumer's `_written`)
        await batch.save(conn, messages[0][0].writes)

    reports = ConsumerSpec(
        REPORTS_CONSUMER,
        "INTAKE",
        ["intake.>"],
        batch_handler=on_batch,
        on_invalid=handlers.on_invalid,
        batch=settings.report_batch,
    )
    # The case file: pure rules a batch at a time; subjects from the table (case.<event>).
    casefile = ConsumerSpec(
        "intake-casefile", "CASES", rules=case_file_rules(intake.rules), patient=True
    )
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
            background=[
                intake.live(version).background(),
                # 类案参考: search terms for every closed case, off the path of messages
                search.indexer(
                    intake.segmenter,
                    batch=settings.similar_index_batch,
                    interval_s=settings.similar_index_interval_s,
                ),
            ],
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


def _ahead(intake: Intake, subject: str | None, env: Envelope) -> Ahead | None:
    """What a report or detection of a batch names, read from its message before it is
    taken (None for a message that is neither). What it names wrongly (a category that is
    not the city's, coordinates that are not numbers, a time without an offset) is left
    out, never an error: the report is then taken as it would be, and searches on its own."""
    data = env.data
    if env.type not in REPORT_TYPES or not isinstance(data, dict) or not subject:
        return None
    ext, code, part = data.get("external_id"), data.get("category_code"), data.get("part_code")
    where, at = data.get("location"), data.get("reported_at", data.get("detected_at"))
    location = None
    if isinstance(where, dict):
        lon, lat = where.get("lon"), where.get("lat")
        if _number(lon) and _number(lat):
            location = (lon, lat)
    reported_at = None
    if isinstance(at, str):
        with contextlib.suppress(ValueError):
            reported_at = datetime.fromisoformat(at)
        if reported_at is not None and reported_at.tzinfo is None:
            reported_at = None
    return ahead(
        intake,
        source_of(subject),
        ext if isinstance(ext, str) else None,
        category_code=code if isinstance(code, str) else None,
        part_code=part if isinstance(part, str) else None,
        location=location,
        reported_at=reported_at,
        opens=env.type != DetectionV1.type_name,  # a detection may fold into its scene
    )


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
