"""The public integrator contract: what 12345 hotlines, video analytics and patrol apps send
on `intake.<channel>.<source>`, and what intake answers on `notify.<source>`."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from .base import Event, register
from .common import Attachment, FieldError, Location, Rating, Urgency, Value
from .status import CaseStatus


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

    external_id: str = Field(min_length=1, max_length=128)
    description: str = Field(min_length=1, max_length=2000)
    reported_at: AwareDatetime
    location: Location | None = None
    address: str | None = Field(None, min_length=1, max_length=256)
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

    external_id: str = Field(min_length=1, max_length=128)
    camera_id: str = Field(min_length=1, max_length=64)
    category_code: str = Field(min_length=1, max_length=32)
    confidence: float = Field(ge=0, le=1)
    detected_at: AwareDatetime
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

    external_id: str | None = Field(None, min_length=1, max_length=128)
    case_id: str | None = None
    rating: Rating
    comment: str | None = Field(None, max_length=1000)
    rated_at: AwareDatetime

    @model_validator(mode="after")
    def _which_case(self) -> RatingV1:
        if self.external_id is None and self.case_id is None:
            raise ValueError("external_id: one of external_id or case_id is required")
        return self


@register
class CaseStatusV1(Event):
    """Where a report stands, sent to its source on every change."""

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
