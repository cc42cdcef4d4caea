"""The Zipkin span processor: what each span's JSON says, and how batches reach the server."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.plumbing.zipkin_export import ZipkinJsonEncoder, ZipkinSpanProcessor


def finished_spans(build: Any) -> list[Any]:
    captured = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "compliance", "service.version": "1.2"}))
    provider.add_span_processor(SimpleSpanProcessor(captured))
    build(provider.get_tracer("iop.test", "0.9"))
    return list(captured.get_finished_spans())


def test_a_span_encodes_as_zipkin_v2_json() -> None:
    def build(tracer: Any) -> None:
        attributes = {"decision.allow": True, "rules": ["PSYPACT", "NLC"], "count": 3, "ratio": 0.5}
        with (
            tracer.start_as_current_span("/iop.compliance.v1.ComplianceService/EvaluateSession", kind=SpanKind.SERVER),
            tracer.start_as_current_span("check", attributes=attributes) as child,
        ):
            child.add_event("stale-data", {"source": "reference"})
            child.set_status(Status(StatusCode.ERROR, "no license"))

    spans = {span.name: span for span in finished_spans(build)}
    server, child = spans["/iop.compliance.v1.ComplianceService/EvaluateSession"], spans["check"]
    encoder = ZipkinJsonEncoder()
    parent_json, child_json = json.loads(encoder.encode(server)), json.loads(encoder.encode(child))

    assert parent_json["kind"] == "SERVER" and "parentId" not in parent_json
    assert parent_json["traceId"] == format(server.context.trace_id, "032x")
    assert parent_json["id"] == format(server.context.span_id, "016x")
    assert parent_json["localEndpoint"] == {"serviceName": "compliance"}
    assert parent_json["duration"] == (server.end_time - server.start_time + 500) // 1000
    assert "debug" not in parent_json  # a collector's own sampling decides

    assert "kind" not in child_json  # internal
    assert child_json["parentId"] == parent_json["id"] and child_json["traceId"] == parent_json["traceId"]
    tags = child_json["tags"]
    assert tags["decision.allow"] == "true" and tags["count"] == "3" and tags["ratio"] == "0.5"
    assert json.loads(tags["rules"]) == ["PSYPACT", "NLC"]
    assert tags["service.name"] == "compliance" and tags["service.version"] == "1.2"
    assert tags["otel.scope.name"] == "iop.test" and tags["otel.scope.version"] == "0.9"
    assert not [t for t in tags if t.startswith(("telemetry.sdk.", "otel.library."))]  # the same on every span
    assert tags["otel.status_code"] == "ERROR" and tags["error"] == "no license"
    (annotation,) = child_json["annotations"]
    assert json.loads(annotation["value"]) == {"stale-data": {"source": "reference"}}


def test_messaging_spans_name_their_broker_as_the_remote_endpoint() -> None:
    def build(tracer: Any) -> None:
        kafka = {"messaging.system": "kafka"}
        for name, kind in (("topic send", SpanKind.PRODUCER), ("topic process", SpanKind.CONSUMER)):
            with tracer.start_as_current_span(name, kind=kind, attributes=kafka):
                pass
        with tracer.start_as_current_span("/Service/Method", kind=SpanKind.SERVER, attributes=kafka):
            pass

    encoder = ZipkinJsonEncoder()
    remote = {s.name: json.loads(encoder.encode(s)).get("remoteEndpoint") for s in finished_spans(build)}
    assert remote == {
        "topic send": {"serviceName": "kafka"},
        "topic process": {"serviceName": "kafka"},
        "/Service/Method": None,
    }


class SpanSink:
    """A loopback Zipkin-like collector keeping every posted batch (keep-alive, as Zipkin)."""

    def __init__(self, status: int = 202) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.connections: set[int] = set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/api/v2/spans" and self.headers["Content-Type"] == "application/json"
                sink.batches.append(json.loads(body))
                sink.connections.add(self.client_address[1])
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/spans"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self) -> list[str]:
        return [span["name"] for batch in self.batches for span in batch]


@pytest.fixture
def sink() -> Iterator[SpanSink]:
    running = SpanSink()
    yield running
    running.server.shutdown()
    running.server.server_close()


def traced(processor: SpanProcessor, names: list[str], sampled: bool = True) -> None:
    """End a span of each name, sampled or not, through `processor` (the OTLP tests use it too)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    provider = TracerProvider(
        resource=Resource.create({"service.name": "t"}), sampler=ALWAYS_ON if sampled else ALWAYS_OFF
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("iop.test")
    for name in names:
        with tracer.start_as_current_span(name):
            pass


def test_batches_are_posted_on_one_kept_alive_connection(sink: SpanSink) -> None:
    processor = ZipkinSpanProcessor(sink.endpoint, schedule_delay_s=60, max_batch=4)
    names = [f"s{i}" for i in range(10)]
    with processor._send_lock:  # the export thread, woken at 4 spans, would send the rest as they end
        traced(processor, names)
        traced(processor, ["not sampled"], sampled=False)
    assert processor.force_flush()
    assert sorted(sink.names()) == sorted(names)  # every sampled span, nothing else
    assert [len(b) for b in sink.batches] == [4, 4, 2]
    assert len(sink.connections) == 1
    processor.shutdown()


def test_a_full_batch_is_posted_without_waiting_for_the_schedule(sink: SpanSink) -> None:
    processor = ZipkinSpanProcessor(sink.endpoint, schedule_delay_s=60, max_batch=5)
    traced(processor, [f"s{i}" for i in range(5)])
    for _ in range(100):
        if sink.batches:
            break
        threading.Event().wait(0.05)
    assert [len(b) for b in sink.batches] == [5]
    processor.shutdown()


def test_the_queue_is_bounded_and_shutdown_posts_what_it_holds(sink: SpanSink) -> None:
    processor = ZipkinSpanProcessor(sink.endpoint, schedule_delay_s=60, max_batch=100, max_queue=3)
    with processor._send_lock:  # nothing is sent while they end: the queue fills
        traced(processor, ["a", "b", "c", "d", "e"])
    processor.shutdown()
    assert sink.names() == ["a", "b", "c"]
    traced(processor, ["after shutdown"])
    assert sink.names() == ["a", "b", "c"]


def test_a_batch_larger_than_the_queue_is_sent_when_the_queue_is_full(sink: SpanSink) -> None:
    processor = ZipkinSpanProcessor(sink.endpoint, schedule_delay_s=60, max_batch=100, max_queue=3)
    traced(processor, ["a", "b", "c"])
    for _ in range(100):
        if sink.batches:
            break
        threading.Event().wait(0.05)
    assert sink.names() == ["a", "b", "c"]  # not held for the schedule while later spans are dropped
    processor.shutdown()


@pytest.mark.parametrize(
    "options",
    [{"schedule_delay_s": 0}, {"max_batch": 0}, {"max_queue": 0}, {"timeout_s": -1}],
)
def test_settings_that_cannot_work_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must all be positive"):
        ZipkinSpanProcessor("http://127.0.0.1:9/api/v2/spans", **options)  # type: ignore[arg-type]


def test_an_unreachable_collector_costs_the_batch_not_the_service(caplog: pytest.LogCaptureFixture) -> None:
    processor = ZipkinSpanProcessor("http://127.0.0.1:9/api/v2/spans", schedule_delay_s=60)
    traced(processor, ["lost"])
    processor.force_flush()
    assert any("Zipkin export of 1 spans" in r.getMessage() for r in caplog.records)
    processor.shutdown()


def test_a_collector_that_never_answers_holds_flush_and_shutdown_only_until_their_deadlines() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(silent.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v2/spans"
    processor = ZipkinSpanProcessor(endpoint, schedule_delay_s=60, max_batch=1, timeout_s=0.3)
    traced(processor, [f"s{i}" for i in range(10)])  # ten batches: 3 s if each were tried in turn
    started = time.monotonic()
    assert processor.force_flush(timeout_millis=200) is False
    assert time.monotonic() - started < 2  # the batch started before the deadline: one timeout
    started = time.monotonic()
    processor.shutdown()
    assert time.monotonic() - started < 2
    silent.close()
    for connection in held:
        connection.close()
