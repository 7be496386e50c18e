"""Tracing settings and the trace context an emitted event carries (no bus, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest
from gridloop_contracts import Event
from gridloop_runtime import tracing
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.settings import ServiceSettings
from gridloop_runtime.step import Step
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError


class Pinged(Event):
    type_name: ClassVar[str] = "gridloop.case.pinged.v1"
    subject_token: ClassVar[str] = "pinged"
    case_id: str


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_an_unknown_exporter_is_a_settings_error_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER", "jaeger")
    with pytest.raises(ValidationError) as err:
        ServiceSettings()
    (error,) = err.value.errors()
    assert error["loc"] == ("OTEL_EXPORTER",)
    assert "otlp" in error["msg"]
    with pytest.raises(ValueError, match="OTEL_EXPORTER"):
        tracing.setup("echo", "jaeger")


def test_otlp_is_chosen_with_the_standard_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    s = ServiceSettings()
    assert s.otel_exporter == "otlp"
    assert s.otel_exporter_otlp_endpoint == "http://collector:4318"
    monkeypatch.delenv("OTEL_EXPORTER")
    assert ServiceSettings().otel_exporter == "none"


def test_a_step_emits_under_the_span_it_is_given() -> None:
    """A batch handler's message: the events of its work name that message's span as their
    parent, whatever span is current."""
    provider = TracerProvider()  # records: ids are made and carried
    span = provider.get_tracer("t").start_span(
        "consume handling.x.handled",
        context=tracing.context_from({"traceparent": f"00-{TRACE}-{SPAN}-01"}),
    )
    step = Step(source="/gridloop/echo", clock=FakeClock(datetime(2026, 12, 1, tzinfo=UTC)))
    step.trace = tracing.span_headers(span)
    env = step.emit(Pinged(case_id="C-1"))
    span.end()
    version, trace_id, parent, flags = env.extensions["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert parent == format(span.get_span_context().span_id, "016x") != SPAN


def test_a_step_without_a_span_of_its_own_carries_the_current_context() -> None:
    step = Step(source="/gridloop/echo", clock=FakeClock(datetime(2026, 12, 1, tzinfo=UTC)))
    with tracing.tracer().start_as_current_span("work"):
        env = step.emit(Pinged(case_id="C-1"))
        current = tracing.current_headers()
    assert env.extensions == current


def test_without_spans_a_message_passes_its_senders_trace_on() -> None:
    headers = {
        "ce-id": "e-1",
        "traceparent": f"00-{TRACE}-{SPAN}-01",
        "tracestate": "vendor=1",
        "Nats-Msg-Id": "e-1",
    }
    assert tracing.carried(headers) == {
        "traceparent": f"00-{TRACE}-{SPAN}-01",
        "tracestate": "vendor=1",
    }
    assert tracing.carried(None) == {}
