"""OpenTelemetry: one tracer provider per process; W3C context carried in NATS headers and HTTP.

`OTEL_EXPORTER` picks where spans go: `none` (ids made and carried, nothing recorded),
`console` (stdout, for a developer) or `otlp` (an operator's collector — Jaeger, Tempo, an
OpenTelemetry Collector — over OTLP/HTTP, batched). The OTLP exporter reads the standard
variables itself: `OTEL_EXPORTER_OTLP_ENDPOINT` (…/v1/traces is appended) or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), `OTEL_EXPORTER_OTLP_HEADERS`,
`OTEL_EXPORTER_OTLP_TIMEOUT`; the batching `OTEL_BSP_SCHEDULE_DELAY` and friends."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

EXPORTERS: Final = ("none", "console", "otlp")
# span attributes of a consumed message: its case (the CloudEvents subject) and type
CASE_ID: Final = "gridloop.case_id"
EVENT_TYPE: Final = "cloudevents.event_type"

_provider: TracerProvider | None = None
# False with OTEL_EXPORTER=none: no span is recorded, so the hot path opens none of its own
# (the trace context it was given still travels on with the events it emits)
_recording = True


def setup(service_name: str, exporter: str = "none", instance: str = "") -> None:
    """Install the SDK provider once per process (tests may call it repeatedly).

    With no exporter nothing would ever read a span, so none is recorded: trace and span
    ids are still made and carried in every message and log line, at a fraction of the cost.
    `otlp` batches the spans (a background thread sends them; the event loop never waits on
    the collector) and a collector that is down costs the spans, never the work."""
    global _provider, _recording
    if exporter not in EXPORTERS:
        raise ValueError(f"OTEL_EXPORTER: {exporter!r} is not one of {', '.join(EXPORTERS)}")
    if _provider is not None:
        return
    attributes = {"service.name": service_name}
    if instance:
        attributes["service.instance.id"] = instance
    resource = Resource.create(attributes)
    if exporter == "none":
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    else:
        provider = TracerProvider(resource=resource)
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    _recording = exporter != "none"


def recording() -> bool:
    """Whether spans are recorded (an exporter is set): a message's own span is worth its
    cost only then."""
    return _recording


def carried(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The W3C trace headers of an incoming message, to pass on unchanged."""
    return {k: v for k, v in (headers or {}).items() if k in ("traceparent", "tracestate")}


def flush(timeout_s: float = 5.0) -> bool:
    """Send the spans still batched (a stopping service; blocking: run it in a thread).
    The provider stays usable; the SDK shuts it down when the process exits."""
    if _provider is None:
        return True
    return _provider.force_flush(int(timeout_s * 1000))


@functools.cache
def tracer(name: str = "gridloop") -> trace.Tracer:
    return trace.get_tracer(name)


def current_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the active span, for an outgoing message."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def context_from(headers: Mapping[str, str] | None) -> otel_context.Context:
    return extract(dict(headers or {}))


def span_headers(span: trace.Span) -> dict[str, str]:
    """`traceparent` (and `tracestate`) naming `span` as the parent, for an outgoing message
    of work done under a span that is not the current one (a batch's message)."""
    carrier: dict[str, str] = {}
    inject(carrier, context=trace.set_span_in_context(span))
    return carrier


# A timer's payload keeps the trace of the work that set it under this key: what the timer
# causes when it fires (a reminder, an overdue, the next rung of a ladder) continues the
# case's trace instead of starting one of its own.
TIMER_TRACE: Final = "_trace"


@contextlib.contextmanager
def continued(
    carrier: Mapping[str, str] | None,
    name: str,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Work in the trace `carrier` names (W3C headers; none: the current context), under a
    span `name` of its own when spans are recorded: what it emits names that span, or the
    carrier's, as its parent."""
    token = otel_context.attach(extract(dict(carrier))) if carrier else None
    try:
        if _recording:
            with tracer().start_as_current_span(name, kind=kind, attributes=attributes):
                yield
        else:
            yield
    finally:
        if token is not None:
            otel_context.detach(token)


def timer_span(
    kind: str, payload: Mapping[str, object] | None, case_id: str | None = None
) -> contextlib.AbstractContextManager[None]:
    """A fired timer's work in the trace of the work that set it (`TIMER_TRACE`), so the
    events it emits continue the case's trace; a timer that kept none (set before traces
    were kept, or by work without one) starts its own."""
    kept = (payload or {}).get(TIMER_TRACE)
    carrier = None
    if isinstance(kept, Mapping) and "traceparent" in kept:
        carrier = {str(k): str(v) for k, v in kept.items()}
    attributes = {"gridloop.timer.kind": kind}
    if case_id is not None:
        attributes[CASE_ID] = case_id
    return continued(carrier, f"timer {kind}", attributes=attributes)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
