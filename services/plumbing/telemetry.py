"""One telemetry setup per process: resource, exporter, sampler, instrumentations.

Spans go to Zipkin locally (the trace UI started by deploy/local/infra.sh) or
over OTLP to a collector when OTEL_EXPORTER_OTLP_ENDPOINT is set (docker-compose,
Kubernetes). No PHI goes into span attributes: instrumentations that could
record payloads (pymongo statements) are configured not to.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from services.plumbing.settings import Settings

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None


def _exporter(settings: Settings) -> SpanExporter:
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint, insecure=True)
    return zipkin_exporter(settings.zipkin_endpoint)


def zipkin_exporter(endpoint: str) -> SpanExporter:
    """The Zipkin JSON v2 exporter, with the broker as the remote endpoint of messaging spans.

    The stock encoder writes no remoteEndpoint, and Zipkin's service graph links a producer and a
    consumer only through the broker they name (service -> kafka -> service); without it the UI
    draws no Kafka edge at all. The broker is named by the span's `messaging.system`.
    """
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
    from opentelemetry.trace import SpanKind

    class MessagingAwareEncoder(JsonV2Encoder):
        def _encode_span(self, span: Any, encoded_local_endpoint: Any) -> dict[str, Any]:
            encoded: dict[str, Any] = super()._encode_span(span, encoded_local_endpoint)
            broker = (span.attributes or {}).get("messaging.system")
            if span.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER) and broker:
                encoded["remoteEndpoint"] = {"serviceName": str(broker)}
            return encoded

    exporter = ZipkinExporter(endpoint=endpoint)
    # upstream types the attribute as the v1 encoder (its first branch); v2 is what it holds here
    exporter.encoder = MessagingAwareEncoder(exporter.encoder.max_tag_value_length)  # type: ignore[assignment]
    return exporter


def setup_telemetry(service_name: str, settings: Settings, *, instrument: bool = True) -> TracerProvider:
    """Install the global tracer provider for this process (idempotent)."""
    global _provider
    if _provider is not None:
        return _provider
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "iop",
            "service.version": settings.service_version,
            "deployment.environment": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sampler_ratio())))
    if settings.telemetry_enabled:
        provider.add_span_processor(
            BatchSpanProcessor(_exporter(settings), schedule_delay_millis=settings.otel_export_delay_ms)
        )
    trace.set_tracer_provider(provider)
    _provider = provider
    if instrument:
        instrument_libraries()
    return provider


def instrument_libraries() -> None:
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()
    AIOKafkaInstrumentor().instrument()
    # capture_statement=False: a statement would carry the document, i.e. PHI.
    PymongoInstrumentor().instrument(capture_statement=False)


def instrument_fastapi(app: Any) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # One server span per request: the per-ASGI-message "http send"/"http receive" children
    # carry nothing an SRE reads and cost a span each.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,metrics", exclude_spans=["receive", "send"])


def kafka_is_instrumented() -> bool:
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    return bool(AIOKafkaInstrumentor().is_instrumented_by_opentelemetry)


def shutdown_telemetry() -> None:
    global _provider
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)
        _provider.shutdown()
        _provider = None
