"""Every event type round-trips through both CloudEvents modes, and the exported JSON
Schemas validate real instances."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from gridloop_contracts import (
    REGISTRY,
    Envelope,
    decode,
    from_binary,
    from_structured,
    to_binary,
    to_structured,
)
from gridloop_contracts.examples import EXAMPLES
from gridloop_contracts.export import json_schema, stale

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
TYPES = sorted(REGISTRY)


def test_every_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(REGISTRY)
    assert len(REGISTRY) >= 40


@pytest.mark.parametrize("type_name", TYPES)
def test_binary_mode_round_trip(type_name: str) -> None:
    event = EXAMPLES[type_name]
    env = Envelope.of(
        event,
        source="/gridloop/test",
        subject="C-1",
        extensions={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
    )
    headers, body = to_binary(env)
    assert headers["ce-type"] == type_name and headers["Nats-Msg-Id"] == env.id
    back = from_binary(headers, body)
    assert back.parse() == event
    assert (back.id, back.source, back.subject, back.time) == (env.id, env.source, "C-1", env.time)
    assert back.extensions["traceparent"] == env.extensions["traceparent"]
    assert decode(headers, body).parse() == event


@pytest.mark.parametrize("type_name", TYPES)
def test_structured_mode_round_trip(type_name: str) -> None:
    event = EXAMPLES[type_name]
    env = Envelope.of(event, source="/integrator/12345")
    body = to_structured(env)
    doc = json.loads(body)
    assert doc["specversion"] == "1.0" and doc["type"] == type_name
    back = from_structured(body)
    assert back.parse() == event and back.id == env.id
    assert decode({"content-type": "application/cloudevents+json"}, body).parse() == event
    assert decode({}, body).parse() == event  # no ce- headers: structured


@pytest.mark.parametrize("type_name", TYPES)
def test_exported_schema_validates_the_example(type_name: str) -> None:
    schema = json.loads((SCHEMAS / "json" / f"{type_name}.json").read_text())
    instance = EXAMPLES[type_name].to_json_dict()
    jsonschema.Draft202012Validator(schema).validate(instance)
    assert schema == json_schema(REGISTRY[type_name])


def test_exported_schema_rejects_a_broken_instance() -> None:
    schema = json.loads((SCHEMAS / "json" / "gridloop.detection.v1.json").read_text())
    broken = EXAMPLES["gridloop.detection.v1"].to_json_dict() | {"confidence": 1.5}
    with pytest.raises(jsonschema.ValidationError) as err:
        jsonschema.Draft202012Validator(schema).validate(broken)
    assert list(err.value.path) == ["confidence"]
    missing = {
        k: v
        for k, v in EXAMPLES["gridloop.case.accepted.v1"].to_json_dict().items()
        if k != "case_id"
    }
    accepted = json.loads((SCHEMAS / "json" / "gridloop.case.accepted.v1.json").read_text())
    with pytest.raises(jsonschema.ValidationError, match="case_id"):
        jsonschema.Draft202012Validator(accepted).validate(missing)


def test_committed_schemas_are_not_stale() -> None:
    bad = stale(SCHEMAS)
    assert not bad, f"schemas/ is stale, run `make schemas`: {bad}"


def test_asyncapi_document_lists_every_message() -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert doc["asyncapi"] == "3.0.0"
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == set(REGISTRY)
    assert doc["channels"]["dispatch"]["address"] == "dispatch.{dept}.{event}"
    for ch in doc["channels"].values():
        assert ch["messages"], ch["address"]
