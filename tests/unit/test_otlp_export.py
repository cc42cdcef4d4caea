"""The OTLP span processor: its requests decode to what the SDK's own encoder makes of the same
spans, and it exports in batches to a real loopback gRPC collector (span_queue.py's queue)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from services.plumbing.otlp_export import EXPORT_METHOD, OtlpSpanProcessor
from tests.unit.test_zipkin_export import traced


def _spans() -> list[ReadableSpan]:
    """Spans of two resources and three scopes, with every kind of field the encoder writes."""
    spans = InMemorySpanExporter()
    for service in ("scheduler", "compliance"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}, schema_url="https://s/1"))
        provider.add_span_processor(SimpleSpanProcessor(spans))
        for scope in ("iop.a", "iop.b"):
            tracer = provider.get_tracer(scope, "1.0", schema_url="https://s/2" if scope == "iop.b" else None)
            remote = SpanContext(0xAB, 0xCD, is_remote=True, trace_flags=TraceFlags(1))
            attributes: dict[str, AttributeValue] = {
                "rpc.system": "grpc",
                "n": 3,
                "ok": True,
                "ratio": 0.5,
                "ids": ("a", "b"),
            }
            with tracer.start_as_current_span(
                f"{service} server",
                context=set_span_in_context(NonRecordingSpan(remote)),
                kind=SpanKind.SERVER,
                attributes=attributes,
                links=[Link(SpanContext(0xEF, 0x12, is_remote=True), {"why": "batch"})],
            ) as server:
                server.add_event("retry", {"attempt": 2})
                with tracer.start_as_current_span("store", kind=SpanKind.CLIENT) as store:
                    store.set_status(Status(StatusCode.ERROR, "timeout"))
    return list(spans.get_finished_spans())


def test_a_request_decodes_to_what_the_sdks_encoder_makes_of_the_same_spans() -> None:
    spans = _spans()
    processor = OtlpSpanProcessor("http://127.0.0.1:9", schedule_delay_s=60)
    try:
        ours = ExportTraceServiceRequest.FromString(processor.request([processor._encode(s) for s in spans]))
    finally:
        processor.shutdown()
    assert ours == encode_spans(spans)
    assert [len(r.scope_spans) for r in ours.resource_spans] == [2, 2]  # grouped, not one group per span


class Collector:
    """A loopback OTLP/gRPC collector keeping every request."""

    def __init__(self, code: grpc.StatusCode | None = None) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        collector = self

        def export(request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
            collector.requests.append(request)
            if code is not None:
                context.abort(code, "refused")
            return ExportTraceServiceResponse()

        handler = grpc.unary_unary_rpc_method_handler(
            export, ExportTraceServiceRequest.FromString, ExportTraceServiceResponse.SerializeToString
        )
        service, method = EXPORT_METHOD[1:].split("/")
        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {method: handler})])
        self.endpoint = f"http://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def names(self) -> list[str]:
        return [s.name for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def batch_sizes(self) -> list[int]:
        return [sum(len(ss.spans) for rs in r.resource_spans for ss in rs.scope_spans) for r in self.requests]


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.server.stop(0)


def test_sampled_spans_are_exported_in_batches(collector: Collector) -> None:
    processor = OtlpSpanProcessor(collector.endpoint, schedule_delay_s=60, max_batch=4)
    names = [f"s{i}" for i in range(10)]
    with processor._send_lock:  # the export thread, woken at 4 spans, would send the rest as they end
        traced(processor, names)
        traced(processor, ["not sampled"], sampled=False)
    assert processor.force_flush()
    assert sorted(collector.names()) == sorted(names)  # every sampled span, nothing else
    assert collector.batch_sizes() == [4, 4, 2]
    traced(processor, ["last"])
    processor.shutdown()  # sends what it holds
    assert collector.names()[-1] == "last"


def test_a_full_batch_is_exported_without_waiting_for_the_schedule(collector: Collector) -> None:
    processor = OtlpSpanProcessor(collector.endpoint, schedule_delay_s=60, max_batch=5)
    traced(processor, [f"s{i}" for i in range(5)])
    for _ in range(100):
        if collector.requests:
            break
        threading.Event().wait(0.05)
    assert collector.batch_sizes() == [5]
    processor.shutdown()


def test_a_refusing_or_unreachable_collector_costs_the_batch_not_the_service(caplog: pytest.LogCaptureFixture) -> None:
    refusing = Collector(grpc.StatusCode.INVALID_ARGUMENT)
    processor = OtlpSpanProcessor(refusing.endpoint, schedule_delay_s=60, timeout_s=2)
    traced(processor, ["refused"])
    processor.force_flush()
    assert len(refusing.requests) == 1  # not retried: only UNAVAILABLE is
    processor.shutdown()
    refusing.server.stop(0)

    processor = OtlpSpanProcessor("http://127.0.0.1:9", schedule_delay_s=60, timeout_s=2)
    traced(processor, ["lost"])
    processor.force_flush()
    processor.shutdown()
    failures = [r.getMessage() for r in caplog.records if "OTLP export of 1 spans" in r.getMessage()]
    assert len(failures) == 2 and "INVALID_ARGUMENT" in failures[0] and "UNAVAILABLE" in failures[1]
