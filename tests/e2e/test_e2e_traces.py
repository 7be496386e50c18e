"""One report, one trace: the five services as processes export their spans over OTLP/HTTP
(`OTEL_EXPORTER=otlp`) to a receiver this test runs (an HTTP server decoding the protobuf
`ExportTraceServiceRequest`s, as a collector would). A patrol report is worked to closed; the
spans of its case from intake, dispatch, handling and verify share one trace id, and every
span's parent is a span of that trace, up to one root: the trace context travelled through
the outbox, the bus and the department's commands."""

from __future__ import annotations

import gzip
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_asyncio
from gridloop_city import City, load_city
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .loop import ROOT, Loop, open_loop, patrol_report

pytestmark = pytest.mark.asyncio(loop_scope="module")
# The receiver's address is added when it starts (before the stack: see `loop`); spans are
# sent a fifth of a second after they end rather than five seconds.
STACK_ENV = {"OTEL_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "200"}
STEPS = ("intake", "dispatch", "handling", "verify")


@dataclass(frozen=True)
class Span:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, str]


class Receiver:
    """The spans POSTed to /v1/traces, as a collector's OTLP/HTTP receiver takes them."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.take(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest) -> None:
        got = []
        for rs in request.resource_spans:
            resource = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(
                        Span(
                            service=resource.get("service.name", ""),
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            name=s.name,
                            attributes={a.key: a.value.string_value for a in s.attributes},
                        )
                    )
        with self.lock:
            self.requests += 1
            self.spans.extend(got)

    def snapshot(self) -> list[Span]:
        with self.lock:
            return list(self.spans)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    STACK_ENV["OTEL_EXPORTER_OTLP_ENDPOINT"] = r.url
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def loop(receiver: Receiver, stack: Stack, city: City) -> AsyncIterator[Loop]:
    async with open_loop(stack, city) as lp:
        yield lp


def case_trace(spans: list[Span], case_id: str) -> list[Span] | None:
    """The spans of the trace the case's dispatch ran in, once it holds a span of the case
    from each of intake, dispatch, handling and verify; None until then."""
    ours = [s for s in spans if s.attributes.get("gridloop.case_id") == case_id]
    dispatched = [s for s in ours if s.service == "dispatch"]
    if not dispatched:
        return None
    trace_id = dispatched[0].trace_id
    trace = [s for s in spans if s.trace_id == trace_id]
    services = {s.service for s in trace}
    if not set(STEPS) <= services:
        return None
    # verify's span of the department's result (case.handled) is the end of the chain
    if not any(
        s.service == "verify"
        and s.attributes.get("cloudevents.event_type", "").startswith("gridloop.case.handled.")
        for s in trace
    ):
        return None
    return trace


async def test_one_report_is_one_trace_from_intake_to_verify(
    loop: Loop, receiver: Receiver
) -> None:
    _, case_id = await patrol_report(loop, "traced", "人行道暴露垃圾")
    await loop.wait_status(case_id, "handled", "verifying")
    await loop.verify(case_id, passed=True)
    await loop.wait_status(case_id, "closed")

    trace = await wait_for(
        lambda: case_trace(receiver.snapshot(), case_id),
        timeout=60,
        interval=0.2,
        what=f"spans of {case_id} from {', '.join(STEPS)} in one trace",
    )

    # The case's later spans are those of the supervisor's verdict: sent over REST by an app
    # that sends no traceparent, it starts a trace of its own at verify's HTTP span.
    trace_id = trace[0].trace_id

    def verdict_root() -> Span | None:
        spans = receiver.snapshot()
        others = {s.trace_id for s in spans if s.attributes.get("gridloop.case_id") == case_id}
        others.discard(trace_id)
        return next(
            (
                s
                for s in spans
                if s.trace_id in others
                and not s.parent_id
                and s.service == "verify"
                and s.name.startswith("POST /tasks/")
                and s.name.endswith("/verification")
            ),
            None,
        )

    await wait_for(verdict_root, timeout=30, what="the verdict's trace, rooted at verify")

    # the parent links hold together: one root (intake taking the report), every other
    # span's parent a span of the trace, and every span reaches the root
    by_id = {s.span_id: s for s in trace}
    roots = [s for s in trace if not s.parent_id]
    assert len(roots) == 1, roots
    (root,) = roots
    assert root.service == "intake" and root.name == "consume intake.patrol.patrol-app", root
    for s in trace:
        seen = set()
        at = s
        while at.parent_id:
            assert at.parent_id in by_id, f"{at} names a parent not in the trace"
            assert at.span_id not in seen, f"{at} is its own ancestor"
            seen.add(at.span_id)
            at = by_id[at.parent_id]
        assert at is root

    # the chain the report travelled: intake → dispatch → handling → verify
    def first(service: str, event: str) -> Span:
        return next(
            s
            for s in trace
            if s.service == service
            and s.attributes.get("cloudevents.event_type", "").startswith(f"gridloop.{event}.")
        )

    dispatch = first("dispatch", "case.accepted")
    handled = first("handling", "handling.handled")
    verify = first("verify", "case.handled")
    assert by_id[dispatch.parent_id].service == "intake"
    assert by_id[verify.parent_id] == handled
    # the department's command continued the trace of the assignment dispatch sent it
    assert by_id[handled.parent_id].service == "dispatch"


async def test_intake_exports_what_the_dashboard_reads(loop: Loop) -> None:
    """The dashboard's intake panels (deploy/grafana): reports in by channel, open cases by
    state and overdue, read from the case file at each scrape of /metrics."""
    _, case_id = await patrol_report(loop, "scraped", "人行道暴露垃圾")
    await loop.wait_status(case_id, "dispatched", "signed", "handled", "verifying")
    line = re.compile(
        r'^gridloop_(reports_total\{channel="patrol"\}|cases\{state="(\w+)"\}) (\S+)$'
    )

    async def scraped() -> dict[str, float] | None:
        found: dict[str, float] = {}
        for url in loop.stack.urls("intake"):
            text = (await loop.http.get(url + "/metrics")).text
            for m in map(line.match, text.splitlines()):
                if m:
                    key = m[2] or "patrol reports"
                    found[key] = max(found.get(key, 0.0), float(m[3]))
            if 'gridloop_overdue_cases{service="intake"}' not in text:
                return None
        return found if found.get("patrol reports", 0) >= 1 else None

    found = await wait_for(scraped, timeout=30, what="intake's metrics")
    # every open state is exported (0 or more); the ended ones are not
    assert {"received", "dispatched", "verifying"} <= set(found), found
    assert "closed" not in found
    # this module's cases are still open (the first is closed), one at least in the loop
    assert sum(v for k, v in found.items() if k != "patrol reports") >= 1, found
