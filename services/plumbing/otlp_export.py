"""Span export over OTLP/gRPC to a collector, encoded when each span ends (span_queue.py).

Each span becomes its OTLP `Span` message's bytes on the thread that ends it, with the SDK's own
encoder (`_encode_span`, pinned with the SDK; a test compares the result with the SDK's
`encode_spans`). The export thread builds the `ExportTraceServiceRequest` by concatenating bytes:
a repeated message field is the field's tag, the message's length and its bytes, so a request is
one `ResourceSpans` per resource (encoded once) holding one `ScopeSpans` per scope (encoded once)
holding the spans as they were encoded. It sends the request on one gRPC channel and waits with the GIL
released. A failed export is retried once when the collector says it is unavailable (not after a
timeout), then logged and its batch dropped.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any, Unpack

import grpc
from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_resource,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from services.plumbing.span_queue import EncodedSpanQueue, QueueOptions

log = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, length, bytes."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string_field(number: int, text: str | None) -> bytes:
    return _field(number, text.encode()) if text else b""


@dataclass(frozen=True, eq=False)
class _Origin:
    """The resource and scope of spans, encoded once: the head of their ResourceSpans and ScopeSpans."""

    resource: Any  # held, so the id() in the cache key cannot be reused while cached
    scope: Any
    resource_field: bytes  # ResourceSpans.resource (1)
    resource_schema_field: bytes  # ResourceSpans.schema_url (3)
    scope_field: bytes  # ScopeSpans.scope (1)
    scope_schema_field: bytes  # ScopeSpans.schema_url (3)


class OtlpSpanProcessor(EncodedSpanQueue[tuple[_Origin, bytes]]):
    destination = "the OTLP collector"

    def __init__(self, endpoint: str, **options: Unpack[QueueOptions]) -> None:
        self._endpoint = endpoint
        url = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        self._target = url.netloc
        self._secure = url.scheme == "https"
        self._channel: grpc.Channel | None = None
        self._export: Any = None
        self._origins: dict[tuple[int, int], _Origin] = {}
        super().__init__(**options)

    def _origin(self, resource: Resource, scope: InstrumentationScope | None) -> _Origin:
        key = (id(resource), id(scope))
        origin = self._origins.get(key)
        if origin is None:
            origin = _Origin(
                resource,
                scope,
                _field(1, _encode_resource(resource).SerializeToString()),
                _string_field(3, resource.schema_url),
                _field(1, _encode_instrumentation_scope(scope).SerializeToString()),  # type: ignore[arg-type]
                _string_field(3, scope.schema_url if scope else None),
            )
            self._origins[key] = origin
        return origin

    def _encode(self, span: ReadableSpan) -> tuple[_Origin, bytes]:
        return self._origin(span.resource, span.instrumentation_scope), _encode_span(span).SerializeToString()

    @staticmethod
    def request(batch: list[tuple[_Origin, bytes]]) -> bytes:
        """The ExportTraceServiceRequest of a batch, grouped as the SDK's encoder groups: one
        ResourceSpans per resource, one ScopeSpans per scope in it, in the order first seen."""
        resources: dict[int, tuple[_Origin, dict[_Origin, list[bytes]]]] = {}
        for origin, span in batch:
            resources.setdefault(id(origin.resource), (origin, {}))[1].setdefault(origin, []).append(span)
        parts = []
        for first, scopes in resources.values():
            scope_spans = b"".join(
                _field(2, origin.scope_field + b"".join(_field(2, s) for s in spans) + origin.scope_schema_field)
                for origin, spans in scopes.items()
            )
            parts.append(_field(1, first.resource_field + scope_spans + first.resource_schema_field))
        return b"".join(parts)

    def _send(self, batch: list[tuple[_Origin, bytes]]) -> None:
        body = self.request(batch)
        for attempt in (1, 2):
            try:
                if self._export is None:
                    self._connect()
                self._export(body, timeout=self._timeout_s)
                return
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if attempt == 2 or code is not grpc.StatusCode.UNAVAILABLE:  # a timeout: one wait
                    log.warning("OTLP export of %d spans to %s failed: %s", len(batch), self._endpoint, code)
                    return

    def _connect(self) -> None:
        if self._secure:
            self._channel = grpc.secure_channel(self._target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(self._target)
        self._export = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,  # the request is built as bytes
            response_deserializer=ExportTraceServiceResponse.FromString,
        )

    def _close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._export = None
