"""The public integrator contract: what 12345 hotlines, video analytics and patrol apps send
on `intake.<channel>.<source>`, and what intake answers on `notify.<source>`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from .base import Event, Instant, in_time_range, register
from .common import (
    Attachment,
    AttachmentRef,
    FieldError,
    Level,
    Location,
    NonBlank,
    Rating,
    Urgency,
    Value,
)
from .status import CaseStatus


@dataclass
class Receiver:
    """The receiving side's clock and how far ahead of it a sender's times may be (its clock
    may run a little fast; a time further ahead is a mistake or a lie that would sort the
    report first, count it early or hold its deadline open). The service that receives
    reports sets it once at start (`receive_with`); a validation may also pass `now` and
    `max_ahead` in its context.

    Times are judged against the later of this clock and the wall clock: a service's clock
    may be moved (demos, tests), a sender's is not, and what is not ahead of real time was
    not sent from the future."""

    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    max_ahead: timedelta = timedelta(minutes=5)


RECEIVER = Receiver()


def receive_with(now: Callable[[], datetime], max_ahead: timedelta) -> None:
    """Judge senders' times against this clock and tolerance from now on."""
    RECEIVER.now, RECEIVER.max_ahead = now, max_ahead


def time_ahead(
    at: datetime, now: datetime | None = None, max_ahead: timedelta | None = None
) -> str | None:
    """Why `at` is too far ahead of the receiver's clock, or None when it is not."""
    limit = RECEIVER.max_ahead if max_ahead is None else max_ahead
    if now is None:
        now = max(RECEIVER.now(), datetime.now(UTC))
    ahead = at - now
    if ahead <= limit:
        return None
    return (
        f"{int(ahead.total_seconds())} s ahead of the receiver's clock; "
        f"at most {int(limit.total_seconds())} s ahead is taken"
    )


def sent_time_problem(at: datetime) -> str | None:
    """What is wrong with a time a sender gives outside the data (the envelope's `time`):
    out of the calendar's range, or ahead of the receiver's clock; None when nothing is."""
    try:
        in_time_range(at)
    except ValueError as exc:
        return str(exc)
    return time_ahead(at)


def _not_ahead(at: datetime, info: ValidationInfo) -> datetime:
    ctx = info.context if isinstance(info.context, dict) else {}
    problem = time_ahead(at, ctx.get("now"), ctx.get("max_ahead"))
    if problem is not None:
        raise ValueError(problem)
    return at


SentAt = Annotated[Instant, AfterValidator(_not_ahead)]
"""When the sender says something happened: within the calendar's range and not ahead of
the receiver's clock by more than `Receiver.max_ahead`."""


def _one_of(*names: str) -> dict[str, Any]:
    """JSON Schema for "at least one of these fields, not null" (mirrors the validators)."""
    return {
        "anyOf": [{"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in names]
    }


class Reporter(Value):
    """The person who reported; stays inside intake (events outside carry a masked form)."""

    name: str | None = Field(None, max_length=64)
    phone: str | None = Field(None, max_length=32, pattern=r"^[0-9+\-() ]{3,32}$")


@register
class ReportV1(Event):
    """A problem report from a hotline, web form or patrol app."""

    type_name: ClassVar[str] = "gridloop.report.v1"
    subject_token: ClassVar[str] = "report"
    summary: ClassVar[str] = "A report from an integrator (上报)"
    model_config = ConfigDict(json_schema_extra=_one_of("location", "address", "part_code"))

    external_id: NonBlank = Field(min_length=1, max_length=128)
    description: NonBlank = Field(min_length=1, max_length=2000)
    reported_at: SentAt
    location: Location | None = None
    address: NonBlank | None = Field(None, min_length=1, max_length=256)
    part_code: str | None = Field(None, min_length=1, max_length=64)
    category_code: str | None = Field(None, min_length=1, max_length=32)
    urgency: Urgency = "normal"
    reporter: Reporter | None = None
    # A patrol app's supervisor (users.yaml id): lets trusted supervisors' reports auto-accept.
    reporter_user_id: str | None = Field(None, min_length=1, max_length=64)
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _somewhere(self) -> ReportV1:
        if self.location is None and self.address is None and self.part_code is None:
            raise ValueError("location: at least one of location, address or part_code is required")
        return self


@register
class DetectionV1(Event):
    """A video analytics detection (摄像头智能识别)."""

    type_name: ClassVar[str] = "gridloop.detection.v1"
    subject_token: ClassVar[str] = "detection"
    summary: ClassVar[str] = "A detection from video analytics (视频识别)"

    model_config = ConfigDict(allow_inf_nan=False)

    external_id: NonBlank = Field(min_length=1, max_length=128)
    camera_id: NonBlank = Field(min_length=1, max_length=64)
    category_code: str = Field(min_length=1, max_length=32)
    confidence: float = Field(ge=0, le=1)
    detected_at: SentAt
    snapshot_url: str | None = Field(None, max_length=1024)
    bbox: list[float] | None = Field(None, min_length=4, max_length=4)
    location: Location | None = None


@register
class RatingV1(Event):
    """The reporter's satisfaction, from the hotline's call-back (回访)."""

    type_name: ClassVar[str] = "gridloop.rating.v1"
    subject_token: ClassVar[str] = "rating"
    summary: ClassVar[str] = "A satisfaction rating from the hotline call-back (回访评价)"
    model_config = ConfigDict(json_schema_extra=_one_of("external_id", "case_id"))

    external_id: NonBlank | None = Field(None, min_length=1, max_length=128)
    case_id: str | None = None
    rating: Rating
    comment: str | None = Field(None, max_length=1000)
    rated_at: SentAt

    @model_validator(mode="after")
    def _which_case(self) -> RatingV1:
        if self.external_id is None and self.case_id is None:
            raise ValueError("external_id: one of external_id or case_id is required")
        return self


@register
class RatingV2(Event):
    """The reporter's satisfaction on seed 002's four levels (A 非常满意, B 满意, C 一般,
    D 不满意) with a free comment, from the hotline's call-back (回访). gridloop.rating.v1
    is still taken, its three ratings mapped to B, C, D."""

    type_name: ClassVar[str] = "gridloop.rating.v2"
    subject_token: ClassVar[str] = "rating"
    summary: ClassVar[str] = "A satisfaction level (A–D) from the hotline call-back (回访评价)"
    model_config = ConfigDict(json_schema_extra=_one_of("external_id", "case_id"))

    external_id: NonBlank | None = Field(None, min_length=1, max_length=128)
    case_id: str | None = None
    level: Level
    comment: str | None = Field(None, max_length=1000)
    rated_at: SentAt

    @model_validator(mode="after")
    def _which_case(self) -> RatingV2:
        if self.external_id is None and self.case_id is None:
            raise ValueError("external_id: one of external_id or case_id is required")
        return self


@register
class ReportTakenV1(Event):
    """A report intake took over REST or Open311 (a resident, an operator, a supervisor's
    handheld), as it took it: published by intake itself on `intake.taken.<source>` in the
    transaction that opened or joined its case. Intake's reports consumer passes over it
    (the same transaction marked it taken); after the database is restored to an earlier
    moment, the consumer, moved back, takes the ones the restored tables never saw, as it
    takes the reports that came over NATS. Nobody else publishes it (NATS permissions). Its
    fields were checked when the report was taken: they carry no limits of their own, so a
    report taken then is taken again however the limits at the edge have moved since."""

    type_name: ClassVar[str] = "gridloop.report.taken.v1"
    subject_token: ClassVar[str] = "taken"
    summary: ClassVar[str] = "A report taken over REST or Open311, kept for a restore (intake's)"

    channel: Literal["hotline", "patrol", "web"]
    source: str
    external_id: str | None = None
    description: str
    reported_at: AwareDatetime
    location: Location | None = None
    address: str | None = None
    part_code: str | None = None
    category_code: str | None = None
    urgency: Urgency = "normal"
    reporter: Reporter | None = None
    reporter_user_id: str | None = None
    reporter_email: str | None = None
    reporter_lang: str = "zh"
    attachments: list[Attachment] = Field(default_factory=list)
    files: list[AttachmentRef] = Field(default_factory=list)
    # Open311: the answers to the category's questions (attribute[code]), as checked
    attributes: dict[str, Any] = Field(default_factory=dict)


@register
class CaseStatusV1(Event):
    """Where a report stands, sent to its source on every change (or on those the source
    asked for: its `notify` in the city's sources)."""

    type_name: ClassVar[str] = "gridloop.case.status.v1"
    subject_token: ClassVar[str] = "status"
    summary: ClassVar[str] = "Progress of a report, for the integrator that sent it (进度回告)"

    external_id: str | None = None
    case_id: str
    status: CaseStatus
    status_notes: str | None = None
    updated_at: AwareDatetime


@register
class ReportRejectedV1(Event):
    """A message intake could not take, naming the fields; it is also kept for operators."""

    type_name: ClassVar[str] = "gridloop.report.rejected.v1"
    subject_token: ClassVar[str] = "rejected"
    summary: ClassVar[str] = "A malformed or unacceptable report, naming the field (拒收)"

    external_id: str | None = None
    source: str
    message_id: str | None = None
    errors: list[FieldError] = Field(min_length=1)
    received_at: AwareDatetime
