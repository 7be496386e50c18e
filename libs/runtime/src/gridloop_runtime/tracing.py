"""OpenTelemetry: one tracer provider per process; W3C context carried in NATS headers and HTTP."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

_configured = False


def setup(service_name: str, exporter: str = "none") -> None:
    """Install the SDK provider once per process (tests may call it repeatedly).

    With no exporter nothing would ever read a span, so none is recorded: trace and span
    ids are still made and carried in every message and log line, at a fraction of the cost."""
    global _configured
    if _configured:
        return
    resource = Resource.create({"service.name": service_name})
    if exporter == "none":
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    else:
        provider = TracerProvider(resource=resource)
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


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


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
