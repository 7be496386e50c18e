"""The integrator contract's gate (接入校验): which message types a subject takes, from which
sources, and the report every channel is turned into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gridloop_city.models import Source
from gridloop_contracts import Attachment, AttachmentRef, Location
from gridloop_contracts.inbound import (
    DetectionV1,
    RatingV1,
    RatingV2,
    Reporter,
    ReportTakenV1,
    ReportV1,
)

from .problems import Problem

Channel = Literal["hotline", "video", "patrol", "web"]

REPORT = ReportV1.type_name
DETECTION = DetectionV1.type_name
RATING = RatingV1.type_name
RATING_V2 = RatingV2.type_name

ACCEPTED_TYPES: dict[str, frozenset[str]] = {
    "hotline": frozenset({REPORT, RATING, RATING_V2}),  # and its call-back ratings
    "web": frozenset({REPORT, RATING, RATING_V2}),
    "patrol": frozenset({REPORT}),
    "video": frozenset({DETECTION}),
}


def check_subject(subject: str) -> tuple[Channel, str] | Problem:
    """`intake.<channel>.<source>` → (channel, source)."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "intake" or parts[1] not in ACCEPTED_TYPES:
        return Problem("subject", f"{subject!r} is not intake.<channel>.<source>", "bad-subject")
    channel: Channel = parts[1]  # type: ignore[assignment]
    return channel, parts[2]


def source_of(subject: str) -> str:
    """The token a rejection goes back to (`notify.<source>`), even for a bad subject."""
    return subject.rsplit(".", 1)[-1] or "unknown"


def check_sender(
    channel: Channel, source_code: str, source: Source | None, ce_type: str
) -> Problem | None:
    """The source must be configured (sources.yaml), on its own channel, sending a type that
    channel carries."""
    if source is None:
        return Problem("source", f"unknown source {source_code!r}", "unknown-source")
    if source.channel != channel:
        return Problem(
            "source",
            f"source {source_code!r} is a {source.channel} source, not {channel}",
            "wrong-channel",
        )
    if ce_type not in ACCEPTED_TYPES[channel]:
        allowed = ", ".join(sorted(ACCEPTED_TYPES[channel]))
        return Problem("type", f"{ce_type!r} is not taken on {channel}: {allowed}", "wrong-type")
    return None


def check_ce_source(source_code: str, ce_source: str) -> Problem | None:
    """The CloudEvents `source` must be the publisher's own: its last segment (after `/` or
    `:`) is the source code of the subject the message came on, e.g. `/hotline/12345` on
    `intake.hotline.12345`. The subject is what NATS authenticated; a `source` naming
    another sender is refused, not believed."""
    last = ce_source.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]
    if last == source_code:
        return None
    return Problem(
        "source",
        f"{ce_source!r} is not the source of intake.<channel>.{source_code}: "
        f"it must end with /{source_code}",
        "wrong-source",
    )


@dataclass(frozen=True)
class IncomingReport:
    """A report from any channel, before it is located: what the pipeline takes."""

    channel: Channel
    source: str
    external_id: str | None
    description: str
    reported_at: datetime
    location: Location | None = None
    address: str | None = None
    part_code: str | None = None
    category_code: str | None = None
    urgency: Literal["normal", "urgent"] = "normal"
    reporter: Reporter | None = None
    reporter_user_id: str | None = None
    reporter_email: str | None = None  # Open311 `email`: mail on the case's changes
    reporter_lang: str = "zh"  # the language of that mail (zh, en)
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    # photos and voice notes uploaded to intake (POST /attachments), claimed by the reporter
    files: tuple[AttachmentRef, ...] = field(default_factory=tuple)
    camera_id: str | None = None
    confidence: float | None = None
    # Open311: the answers to the category's questions (attribute[code]), checked
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_report(cls, report: ReportV1, *, channel: Channel, source: str) -> IncomingReport:
        return cls(
            channel=channel,
            source=source,
            external_id=report.external_id,
            description=report.description,
            reported_at=report.reported_at,
            location=report.location,
            address=report.address,
            part_code=report.part_code,
            category_code=report.category_code,
            urgency=report.urgency,
            reporter=report.reporter,
            reporter_user_id=report.reporter_user_id,
            attachments=tuple(report.attachments),
        )

    @classmethod
    def from_taken(cls, taken: ReportTakenV1) -> IncomingReport:
        """A report as intake took it over REST or Open311 (its `taken`)."""
        given = {name: getattr(taken, name) for name in ReportTakenV1.model_fields}
        return cls(
            **{
                **given,
                "attachments": tuple(taken.attachments),
                "files": tuple(taken.files),
                "attributes": dict(taken.attributes),
            }
        )

    def taken(self) -> ReportTakenV1:
        """The report as intake keeps it on the bus once taken over REST or Open311: every
        field but a detection's (a detection comes over NATS only: it is kept there already)."""
        if self.channel == "video":
            raise ValueError("a detection comes over NATS only: it is kept there already")
        return ReportTakenV1.model_validate(
            {name: getattr(self, name) for name in ReportTakenV1.model_fields}
        )

    @classmethod
    def from_detection(cls, det: DetectionV1, *, source: str, category_name: str) -> IncomingReport:
        attachments: tuple[Attachment, ...] = ()
        if det.snapshot_url and det.snapshot_url.startswith(("http://", "https://")):
            attachments = (Attachment(url=det.snapshot_url, kind="photo"),)
        return cls(
            channel="video",
            source=source,
            external_id=det.external_id,
            description=(
                f"视频识别：{category_name}（摄像头 {det.camera_id}，置信度 {det.confidence:.2f}）"
            ),
            reported_at=det.detected_at,
            location=det.location,
            category_code=det.category_code,
            camera_id=det.camera_id,
            confidence=det.confidence,
            attachments=attachments,
        )
