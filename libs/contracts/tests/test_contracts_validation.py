"""Inbound validation and envelope errors name the field."""

from __future__ import annotations

import pytest
from gridloop_contracts import EnvelopeError, decode, from_binary, validation_errors
from gridloop_contracts.examples import EXAMPLES
from gridloop_contracts.inbound import DetectionV1, RatingV1, ReportV1
from pydantic import BaseModel, ValidationError

REPORT = EXAMPLES["gridloop.report.v1"].to_json_dict()
DETECTION = EXAMPLES["gridloop.detection.v1"].to_json_dict()


def fields_of(model: type[BaseModel], data: dict[str, object]) -> list[str]:
    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    return [e["field"] for e in validation_errors(err.value)]


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (ReportV1, {k: v for k, v in REPORT.items() if k != "location"}, "data.location"),
        (ReportV1, REPORT | {"location": {"lat": 95, "lon": 116.4}}, "data.location.lat"),
        (ReportV1, REPORT | {"external_id": ""}, "data.external_id"),
        (ReportV1, REPORT | {"description": "x" * 2001}, "data.description"),
        (ReportV1, REPORT | {"reported_at": "2026-11-23T09:30:00"}, "data.reported_at"),
        (ReportV1, REPORT | {"urgency": "asap"}, "data.urgency"),
        (ReportV1, REPORT | {"reporter": {"phone": "call me"}}, "data.reporter.phone"),
        (ReportV1, REPORT | {"attachments": [{"url": "not a url"}]}, "data.attachments.0.url"),
        (DetectionV1, DETECTION | {"confidence": 1.5}, "data.confidence"),
        (DetectionV1, DETECTION | {"bbox": [1, 2]}, "data.bbox"),
        (DetectionV1, {k: v for k, v in DETECTION.items() if k != "camera_id"}, "data.camera_id"),
        (
            RatingV1,
            {"rating": "satisfied", "rated_at": "2026-11-23T09:30:00+08:00"},
            "data.external_id",
        ),
        (
            RatingV1,
            {"case_id": "C", "rating": "meh", "rated_at": "2026-11-23T09:30:00+08:00"},
            "data.rating",
        ),
    ],
)
def test_bad_field_is_named(model: type[BaseModel], data: dict[str, object], field: str) -> None:
    assert field in fields_of(model, data) or any(
        f.startswith(field) for f in fields_of(model, data)
    )


def test_missing_location_error_names_location() -> None:
    data = {k: v for k, v in REPORT.items() if k != "location"}
    with pytest.raises(ValidationError) as err:
        ReportV1.model_validate(data)
    (only,) = validation_errors(err.value)
    assert "location" in only["reason"]


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [
        ({"ce-specversion": "1.0", "ce-source": "s", "ce-type": "t"}, b"{}", "id"),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "s",
                "ce-type": "t",
                "ce-time": "yesterday",
            },
            b"{}",
            "time",
        ),
        (
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"},
            b"{not json",
            "data",
        ),
        (
            {"ce-specversion": "0.3", "ce-id": "1", "ce-source": "s", "ce-type": "t"},
            b"{}",
            "specversion",
        ),
    ],
)
def test_binary_envelope_errors_name_the_attribute(
    headers: dict[str, str], body: bytes, field: str
) -> None:
    with pytest.raises(EnvelopeError) as err:
        from_binary(headers, body)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[1, 2]", "body"),
        (b"not json", "body"),
        (b'{"specversion": "1.0", "id": "1", "source": "s"}', "type"),
    ],
)
def test_structured_envelope_errors_name_the_attribute(body: bytes, field: str) -> None:
    with pytest.raises(EnvelopeError) as err:
        decode({"content-type": "application/cloudevents+json"}, body)
    assert err.value.field == field
