"""Span export to Zipkin (JSON v2), encoded when each span ends and posted in batches
(span_queue.py: why not the SDK's BatchSpanProcessor).

The JSON carries what the stock encoder writes (tags from the span's attributes, resource and
instrumentation scope, status, dropped counts; events as annotations; parentId), with three changes:
messaging spans name their broker as `remoteEndpoint` (without it Zipkin's dependency graph has
no Kafka edge: it links a producer and a consumer only through the broker they both name), no
span is marked `debug` (that flag tells a collector to bypass its own sampling), and the tags
that are the same on every span of every service are left out: the SDK's `telemetry.sdk.*` and
the deprecated `otel.library.*` copies of `otel.scope.*`. They were a fifth of each span's
JSON, and Zipkin's in-memory store pays per byte it parses and keeps.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from services.plumbing.span_queue import EncodedSpanQueue, QueueOptions

log = logging.getLogger(__name__)

_KINDS = {
    SpanKind.SERVER: "SERVER",
    SpanKind.CLIENT: "CLIENT",
    SpanKind.PRODUCER: "PRODUCER",
    SpanKind.CONSUMER: "CONSUMER",
}
_MESSAGING = (SpanKind.PRODUCER, SpanKind.CONSUMER)
_SDK_TAGS = "telemetry.sdk."  # the same on every span of every service: left out


_json = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(separators=...) builds one per call


def _tag_value(value: object) -> str | None:
    """Zipkin tags are strings: booleans lower-case, sequences as a JSON array (as the stock encoder)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Sequence):
        return _json(
            [
                _tag_value(v) if v is not None else None
                for v in value
                if v is None or isinstance(v, bool | int | float | str)
            ]
        )
    return None


def _tags(attributes: Any) -> dict[str, str]:
    if not attributes:
        return {}
    if hasattr(attributes, "copy"):  # the SDK's BoundedAttributes: a plain dict, without a lock per item
        attributes = attributes.copy()
    tags: dict[str, str] = {}
    for key, value in attributes.items():
        text = _tag_value(value)
        if text is not None:
            tags[key] = text
    return tags


def _usec(nanoseconds: int) -> int:
    return (nanoseconds + 500) // 1000


@dataclass(frozen=True)
class _StaticParts:
    """What every span of one (resource, instrumentation scope) shares, encoded once."""

    resource: Any  # held, so the id() in the cache key cannot be reused while cached
    scope: Any
    tag_names: frozenset[str]
    tags_json: str  # '"k":"v",...' (no braces), appended to each span's own tags
    endpoint_json: str


class ZipkinJsonEncoder:
    """One span to one Zipkin v2 JSON object (bytes).

    The span's own fields are encoded per span; the tags and endpoint shared by every span of one
    resource and scope (about a dozen tags) are encoded once and spliced in, which halves the cost.
    """

    def __init__(self) -> None:
        self._static: dict[tuple[int, int], _StaticParts] = {}

    def _static_parts(self, resource: Resource | None, scope: InstrumentationScope | None) -> _StaticParts:
        key = (id(resource), id(scope))
        cached = self._static.get(key)
        if cached is None:
            resource_tags = _tags(resource.attributes) if resource is not None else {}
            tags = {k: v for k, v in resource_tags.items() if not k.startswith(_SDK_TAGS)}
            if scope is not None:
                tags.update({"otel.scope.name": scope.name, "otel.scope.version": scope.version or ""})
            service = str(resource.attributes.get("service.name", "unknown_service")) if resource else "unknown_service"
            cached = _StaticParts(resource, scope, frozenset(tags), _json(tags)[1:-1], _json({"serviceName": service}))
            self._static[key] = cached
        return cached

    def encode(self, span: ReadableSpan) -> bytes:
        context = span.get_span_context()
        assert context is not None and span.start_time is not None and span.end_time is not None
        static = self._static_parts(span.resource, span.instrumentation_scope)
        tags = _tags(span.attributes)
        status = span.status.status_code
        if status is not StatusCode.UNSET:
            tags["otel.status_code"] = status.name
            if status is StatusCode.ERROR:
                tags["error"] = span.status.description or ""
        for name, count in (
            ("otel.dropped_attributes_count", span.dropped_attributes),
            ("otel.dropped_events_count", span.dropped_events),
            ("otel.dropped_links_count", span.dropped_links),
        ):
            if count:
                tags[name] = str(count)
        if not static.tag_names.isdisjoint(tags):  # the resource and scope tags win, as in the stock encoder
            tags = {k: v for k, v in tags.items() if k not in static.tag_names}
        own_tags = _json(tags)[1:-1] if tags else ""
        separator = "," if own_tags and static.tags_json else ""
        parts = [
            f'{{"traceId":"{context.trace_id:032x}","id":"{context.span_id:016x}","name":{_json(span.name)}',
            f',"timestamp":{_usec(span.start_time)},"duration":{_usec(span.end_time - span.start_time)}',
            f',"localEndpoint":{static.endpoint_json},"tags":{{{own_tags}{separator}{static.tags_json}}}',
        ]
        if kind := _KINDS.get(span.kind):
            parts.append(f',"kind":"{kind}"')
        if span.parent is not None:
            parts.append(f',"parentId":"{span.parent.span_id:016x}"')
        broker = (span.attributes or {}).get("messaging.system")
        if broker and span.kind in _MESSAGING:
            parts.append(f',"remoteEndpoint":{_json({"serviceName": str(broker)})}')
        if span.events:
            annotations = [
                {
                    "timestamp": _usec(event.timestamp),
                    "value": json.dumps({event.name: dict(event.attributes or {})}, sort_keys=True),
                }
                for event in span.events
            ]
            parts.append(f',"annotations":{_json(annotations)}')
        parts.append("}")
        return "".join(parts).encode()


class ZipkinSpanProcessor(EncodedSpanQueue[bytes]):
    """Zipkin v2 JSON, one span encoded as it ends, batches POSTed over one kept-alive HTTP
    connection (span_queue.py). A failed post is retried once on a new connection (not after a
    timeout), then logged and its batch dropped."""

    destination = "Zipkin"

    def __init__(self, endpoint: str, **options: Unpack[QueueOptions]) -> None:
        self._endpoint = endpoint
        self._url = urllib.parse.urlsplit(endpoint)
        self._path = self._url.path + (f"?{self._url.query}" if self._url.query else "") or "/"
        self._connection: http.client.HTTPConnection | None = None
        self._encoder = ZipkinJsonEncoder()
        super().__init__(**options)

    def _encode(self, span: ReadableSpan) -> bytes:
        return self._encoder.encode(span)

    def _send(self, batch: list[bytes]) -> None:
        """POST one batch on the kept-alive connection (a new one after a failure: one retry, none
        after a timeout)."""
        body = b"[" + b",".join(batch) + b"]"
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        for attempt in (1, 2):
            try:
                if self._connection is None:
                    self._connection = self._connect()
                self._connection.request("POST", self._path, body=body, headers=headers)
                response = self._connection.getresponse()
                response.read()
                if response.status >= 300:
                    log.warning("Zipkin rejected %d spans: HTTP %d", len(batch), response.status)
                return
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                if attempt == 2 or isinstance(exc, TimeoutError):  # a collector that does not answer: one wait
                    log.warning("Zipkin export of %d spans to %s failed: %s", len(batch), self._endpoint, exc)
                    return

    def _connect(self) -> http.client.HTTPConnection:
        if self._url.scheme == "https":
            return http.client.HTTPSConnection(self._url.netloc, timeout=self._timeout_s)
        return http.client.HTTPConnection(self._url.netloc, timeout=self._timeout_s)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
