"""One telemetry setup per process: resource, exporter, sampler, instrumentations.

Spans go to Zipkin locally (the trace UI started by deploy/local/infra.sh; zipkin_export.py), or
over OTLP/gRPC to a collector when OTEL_EXPORTER_OTLP_ENDPOINT is set (docker-compose, Kubernetes;
otlp_export.py); either way each span is encoded as it ends (span_queue.py). No PHI goes into span
attributes: instrumentations that could record payloads (pymongo statements) are configured not to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode

from services.plumbing.otlp_export import OtlpSpanProcessor
from services.plumbing.settings import Settings
from services.plumbing.zipkin_export import ZipkinSpanProcessor

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None


def _span_processor(settings: Settings) -> SpanProcessor:
    if settings.otel_exporter_otlp_endpoint:
        return OtlpSpanProcessor(
            settings.otel_exporter_otlp_endpoint,
            schedule_delay_s=settings.otel_export_delay_ms / 1000,
            max_queue=settings.otel_export_queue_size,
        )
    return ZipkinSpanProcessor(
        settings.zipkin_endpoint,
        schedule_delay_s=settings.otel_export_delay_ms / 1000,
        max_queue=settings.otel_export_queue_size,
    )


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
        provider.add_span_processor(_span_processor(settings))
    trace.set_tracer_provider(provider)
    _provider = provider
    if instrument:
        instrument_libraries()
    return provider


def instrument_libraries() -> None:
    from aiokafka import AIOKafkaConsumer
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.utils import unwrap

    GrpcAioInstrumentorClient().instrument()
    AIOKafkaInstrumentor().instrument()
    # Producer spans stay (each carries the traceparent a consumer continues). The consumer side is
    # the consumer base's "<topic> process" span, a child of the producer's: the library's receive
    # spans (one per record, plus a root trace per poll and per partition) only duplicated it.
    unwrap(AIOKafkaConsumer, "getone")
    unwrap(AIOKafkaConsumer, "getmany")
    # capture_statement=False: a statement would carry the document, i.e. PHI.
    PymongoInstrumentor().instrument(capture_statement=False)


def http_server_address(scope: Mapping[str, Any]) -> tuple[str, int]:
    """The server's address as the ASGI instrumentation records it (`http.host`: the host, with
    the port unless 80) and its port (`net.host.port`)."""
    server_host, server_port = scope.get("server") or ("0.0.0.0", 80)
    return (f"{server_host}:{server_port}" if server_port != 80 else str(server_host)), server_port


def http_url_without_query(scope: Mapping[str, Any]) -> str:
    """An HTTP request's URL as the ASGI instrumentation records it (`http.url`: the Host header or
    the server address, and the path), without the query string: a query can carry a credential
    (in development the dashboard takes its bearer token as `?access_token=`), and the
    instrumentation would write it into the request's span for anyone who reads traces."""
    host = next((value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"host"), "")
    return f"{scope.get('scheme', 'http')}://{host or http_server_address(scope)[0]}{scope['path']}"


def _url_without_query(span: trace.Span, scope: dict[str, Any]) -> None:
    """The instrumentation's request hook: the span's URL attributes without the query string,
    in the HTTP semantic conventions it writes (`http.url`; `url.query` under
    OTEL_SEMCONV_STABILITY_OPT_IN=http)."""
    if not span.is_recording():
        return
    recorded = getattr(span, "attributes", None) or {}  # the SDK's span; the API's has none to read
    if "http.url" in recorded or not recorded:
        span.set_attribute("http.url", http_url_without_query(scope))
    if "url.query" in recorded:
        span.set_attribute("url.query", "REDACTED")


def instrument_fastapi(app: Any, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Server spans for a FastAPI app (with the process's tracer provider unless given one)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # One server span per request: the per-ASGI-message "http send"/"http receive" children
    # carry nothing an SRE reads and cost a span each. No query string in the span's URL.
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="healthz,metrics",
        exclude_spans=["receive", "send"],
        server_request_hook=_url_without_query,
        tracer_provider=tracer_provider,
    )


def record_error(span: trace.Span, error: BaseException, *, with_message: bool = False) -> None:
    """The error as the span's `exception` event: its type and where it was raised, not its message,
    which may carry request or stored data (PHI: a validation error quotes the value it refused).
    `with_message` for errors whose messages this project writes for callers and dead letters
    (ServiceError, PoisonEvent), which name ids and reasons only."""
    attributes = {
        "exception.type": type(error).__qualname__,
        "exception.stacktrace": "".join(traceback.format_tb(error.__traceback__)) + type(error).__qualname__,
    }
    if with_message:
        attributes["exception.message"] = str(error)
    span.add_event("exception", attributes)


@contextlib.contextmanager
def current_span(tracer: trace.Tracer, name: str, **options: Any) -> Iterator[trace.Span]:
    """`tracer.start_as_current_span`, except for an error that escapes it: the SDK would put the
    error's message on the span twice (its `exception` event and its status description); here the
    span gets `record_error`'s event and the error's type as its status."""
    with tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False, **options) as span:
        try:
            yield span
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as error:
            record_error(span, error)
            span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
            raise


def shutdown_telemetry() -> None:
    global _provider
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)
        _provider.shutdown()
        _provider = None
