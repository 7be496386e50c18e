"""What a sender may not say in any channel, checked by the contract models themselves: blank
text, numbers that are not finite, times off the calendar or ahead of the receiver's clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gridloop_contracts import inbound, validation_errors
from gridloop_contracts.base import Day, Instant
from gridloop_contracts.department import ExtensionCommand, HandledCommand, ReturnCommand
from gridloop_contracts.examples import EXAMPLES
from gridloop_contracts.inbound import DetectionV1, RatingV1, ReportV1
from pydantic import BaseModel, TypeAdapter, ValidationError

REPORT = EXAMPLES["gridloop.report.v1"].to_json_dict()
DETECTION = EXAMPLES["gridloop.detection.v1"].to_json_dict()
RATING = EXAMPLES["gridloop.rating.v1"].to_json_dict()
COMMAND = {"command_id": "c-1", "case_id": "C-1", "dept": "water", "by": "w-01"}
EXTREMES = ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z")


def refused(model: type[BaseModel], data: dict[str, Any], **context: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as err:
        model.model_validate(data, context=context or None)
    return {e["field"]: e["reason"] for e in validation_errors(err.value)}


@pytest.fixture
def receiver() -> Iterator[inbound.Receiver]:
    saved = (inbound.RECEIVER.now, inbound.RECEIVER.max_ahead)
    yield inbound.RECEIVER
    inbound.receive_with(*saved)


@pytest.mark.parametrize("blank", ["", "   ", "\u3000", "\u200b\ufeff", "\t\n"])
@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (ReportV1, REPORT, "description"),
        (ReportV1, REPORT, "address"),
        (ReportV1, REPORT, "external_id"),
        (DetectionV1, DETECTION, "camera_id"),
        (RatingV1, RATING, "external_id"),
        (ReturnCommand, COMMAND, "reason"),
        (ExtensionCommand, {**COMMAND, "proposed_deadline": "2026-11-30T00:00:00Z"}, "reason"),
        (HandledCommand, {**COMMAND, "completed_at": "2026-11-23T02:00:00Z"}, "result"),
    ],
)
def test_blank_text_is_missing_text_in_every_channel(
    model: type[BaseModel], data: dict[str, Any], field: str, blank: str
) -> None:
    assert f"data.{field}" in refused(model, {**data, field: blank})


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (ReportV1, {**REPORT, "location": {"lat": float("nan"), "lon": 116.4}}, "location.lat"),
        (ReportV1, {**REPORT, "location": {"lat": 39.9, "lon": float("inf")}}, "location.lon"),
        (DetectionV1, {**DETECTION, "bbox": [0, 0, float("nan"), 1]}, "bbox.2"),
        (DetectionV1, {**DETECTION, "confidence": float("nan")}, "confidence"),
    ],
)
def test_numbers_are_finite(model: type[BaseModel], data: dict[str, Any], field: str) -> None:
    assert f"data.{field}" in refused(model, data)


@pytest.mark.parametrize("at", EXTREMES)
@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (ReportV1, REPORT, "reported_at"),
        (DetectionV1, DETECTION, "detected_at"),
        (RatingV1, RATING, "rated_at"),
        (ExtensionCommand, {**COMMAND, "reason": "more time"}, "proposed_deadline"),
        (HandledCommand, {**COMMAND, "result": "done"}, "completed_at"),
    ],
)
def test_times_off_the_calendar_are_refused(
    model: type[BaseModel], data: dict[str, Any], field: str, at: str
) -> None:
    reason = refused(model, {**data, field: at})[f"data.{field}"]
    assert "between 1970-01-01 and 2199-12-31" in reason


def test_days_and_instants_of_any_offset_stay_on_the_calendar() -> None:
    for at in EXTREMES:
        with pytest.raises(ValidationError):
            TypeAdapter(Instant).validate_python(at)
    for day in ("9999-12-31", "0001-01-01", "2200-01-01"):
        with pytest.raises(ValidationError):
            TypeAdapter(Day).validate_python(day)
    assert TypeAdapter(Day).validate_python("2199-12-31").year == 2199


def test_times_ahead_of_the_receivers_clock_are_refused(receiver: inbound.Receiver) -> None:
    now = datetime.now(UTC)
    year = (now + timedelta(days=365)).isoformat()
    for model, data, field in (
        (ReportV1, REPORT, "reported_at"),
        (DetectionV1, DETECTION, "detected_at"),
        (RatingV1, RATING, "rated_at"),
    ):
        assert (
            "ahead of the receiver's clock"
            in refused(model, {**data, field: year})[f"data.{field}"]
        )
    soon = {**REPORT, "reported_at": (now + timedelta(minutes=4)).isoformat()}
    ReportV1.model_validate(soon)  # a clock a little fast: the default 5 minutes
    # the receiving service sets its clock and tolerance (INTAKE_MAX_TIME_AHEAD_S) ...
    inbound.receive_with(lambda: now, timedelta(seconds=60))
    assert "data.reported_at" in refused(ReportV1, soon)
    # ... and one validation may name its own
    ReportV1.model_validate(soon, context={"now": now, "max_ahead": timedelta(hours=1)})
    # a moved service clock (a demo, a test) is not held against senders on real time
    inbound.receive_with(lambda: now - timedelta(days=30), timedelta(seconds=60))
    ReportV1.model_validate({**REPORT, "reported_at": now.isoformat()})


def test_the_envelopes_time_is_judged_as_the_datas(receiver: inbound.Receiver) -> None:
    now = datetime.now(UTC)
    assert inbound.sent_time_problem(now) is None
    ahead = inbound.sent_time_problem(now + timedelta(days=1))
    assert ahead is not None and "86" in ahead and "at most 300 s" in ahead
    off = datetime.fromisoformat("0001-01-01T00:00:00+14:00")
    assert "between 1970-01-01" in (inbound.sent_time_problem(off) or "")
