"""Property tests on every inbound contract: arbitrary JSON and mutations of the valid
examples either validate or fail with errors that name the field — never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gridloop_contracts import EnvelopeError, decode, validation_errors
from gridloop_contracts.department import COMMANDS
from gridloop_contracts.examples import EXAMPLES
from gridloop_contracts.inbound import DetectionV1, RatingV1, ReportV1
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

INBOUND: list[type[BaseModel]] = [ReportV1, DetectionV1, RatingV1, *COMMANDS.values()]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "2026-11-23T09:30:00+08:00", "2026-11-23", "http://x", "E0104", "0"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    type_name = getattr(model, "type_name", None)
    found = EXAMPLES.get(type_name) if isinstance(type_name, str) else None
    assert found is not None, f"no example for {model.__name__}"
    data: dict[str, Any] = json.loads(json.dumps(found.to_json_dict()))
    return data


def check(model: type[BaseModel], data: Any) -> None:
    """Validate or fail naming the field; any other exception fails the property."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        assert errors, exc
        for err in errors:
            assert err["field"].startswith("data"), err
            assert err["reason"], err
        if isinstance(data, dict):
            # an error about a key that is present names that key (or something inside it)
            named = {e["field"].split(".")[1] for e in errors if "." in e["field"]}
            assert named <= set(data) | set(model.model_fields) | {"__root__"}, (named, data)


@pytest.mark.parametrize("model", INBOUND, ids=lambda m: m.__name__)
@FUZZ
@given(data=json_values)
def test_arbitrary_json_validates_or_names_the_field(model: type[BaseModel], data: Any) -> None:
    check(model, data)


@st.composite
def mutated(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, Any]:
    """A valid example with some fields dropped, replaced by arbitrary values, or added."""
    data = example_of(model)
    keys = sorted(set(data) | set(model.model_fields))
    for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        action = draw(st.sampled_from(["drop", "replace", "nest"]))
        if action == "drop":
            data.pop(key, None)
        elif action == "replace":
            data[key] = draw(json_values)
        else:
            data[key] = {"value": data.get(key), "extra": draw(scalars)}
    if draw(st.booleans()):
        data[draw(st.text(min_size=1, max_size=10))] = draw(scalars)
    return data


@pytest.mark.parametrize("model", INBOUND, ids=lambda m: m.__name__)
@FUZZ
@given(st.data())
def test_mutated_examples_validate_or_name_the_field(model: type[BaseModel], data: Any) -> None:
    check(model, data.draw(mutated(model)))


def test_every_example_is_valid() -> None:
    for model in INBOUND:
        model.model_validate(example_of(model))


header_names = st.sampled_from(
    [
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-time",
        "ce-subject",
        "content-type",
        "ce-dataschema",
        "traceparent",
    ]
)
header_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["1.0", "0.3", ReportV1.type_name, "application/cloudevents+json", "application/json"]
    ),
)


@FUZZ
@given(
    headers=st.dictionaries(header_names, header_values, max_size=7),
    body=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda ex, extra: json.dumps({**ex, **extra}).encode(),
            st.just({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}),
            st.dictionaries(st.text(max_size=12), json_values, max_size=4),
        ),
    ),
)
def test_any_bytes_decode_or_name_the_envelope_attribute(
    headers: dict[str, str], body: bytes
) -> None:
    try:
        decode(headers, body)
    except EnvelopeError as exc:
        assert exc.field, exc
        assert str(exc), exc
