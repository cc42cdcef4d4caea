"""Span export to Zipkin (JSON v2), encoded when each span ends and posted in batches.

The stock pair (BatchSpanProcessor + the Zipkin JSON exporter) encodes a whole batch in its export
thread: with the GIL that thread holds, a batch of a few hundred spans stalled the event loop for
10-30 ms every export interval, the largest part of a gRPC service's p99. Here each span is encoded
to JSON on the thread that ends it (tens of microseconds, spread evenly over the requests), and
the export thread only joins the encoded spans and posts them, which releases the GIL while it
waits on the socket.

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
import math
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

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


class ZipkinSpanProcessor(SpanProcessor):
    """Encodes each sampled span as it ends; a daemon thread posts them in batches.

    Bounded like the SDK's BatchSpanProcessor: at most `max_queue` encoded spans wait; beyond that
    spans are dropped and counted in a warning (tracing never blocks or grows without bound).
    Batches go over one kept-alive HTTP connection. A failed post is retried once on a new
    connection (not after a timeout), then logged and its batch dropped (a trace store being down
    must not back up the service). force_flush and shutdown post everything queued, within their
    deadlines (shutdown's: the connection timeout).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        schedule_delay_s: float = 0.5,
        max_batch: int = 512,
        max_queue: int = 2048,
        timeout_s: float = 10.0,
    ) -> None:
        self._endpoint = endpoint
        self._url = urllib.parse.urlsplit(endpoint)
        self._path = self._url.path + (f"?{self._url.query}" if self._url.query else "") or "/"
        self._connection: http.client.HTTPConnection | None = None
        self._delay_s = schedule_delay_s
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._timeout_s = timeout_s
        self._encoder = ZipkinJsonEncoder()
        self._queue: deque[bytes] = deque()
        self._dropped = 0
        self._wake = threading.Event()
        self._post_lock = threading.Lock()
        self._stopped = False
        self._stop_deadline = math.inf  # set by shutdown: no batch is started after it
        self._thread = threading.Thread(target=self._run, name="zipkin-export", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if self._stopped or context is None or not context.trace_flags.sampled:
            return
        if len(self._queue) >= self._max_queue:
            self._dropped += 1
            return
        try:
            self._queue.append(self._encoder.encode(span))
        except Exception:  # an unencodable span is one lost span, never a failed request
            log.warning("span %r could not be encoded for Zipkin", span.name, exc_info=True)
            return
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._post_queued()

    def _post_queued(self, deadline: float = math.inf) -> None:
        """Post the queue batch by batch. No batch is started after `deadline` (time.monotonic())
        or after the deadline shutdown sets; what is left stays queued. A batch started before it
        takes at most one connection timeout (a collector that accepts and never answers)."""
        wait = -1.0 if deadline == math.inf else max(0.0, deadline - time.monotonic())
        if not self._post_lock.acquire(timeout=wait):  # another thread is posting until after the deadline
            return
        try:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                log.warning("span queue full: %d spans not exported to Zipkin", dropped)
            while self._queue and time.monotonic() < min(deadline, self._stop_deadline):
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                self._post(b"[" + b",".join(batch) + b"]", len(batch))
        finally:
            self._post_lock.release()

    def _post(self, body: bytes, count: int) -> None:
        """POST one batch on the kept-alive connection (a new one after a failure: one retry, none
        after a timeout)."""
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        for attempt in (1, 2):
            try:
                if self._connection is None:
                    self._connection = self._connect()
                self._connection.request("POST", self._path, body=body, headers=headers)
                response = self._connection.getresponse()
                response.read()
                if response.status >= 300:
                    log.warning("Zipkin rejected %d spans: HTTP %d", count, response.status)
                return
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                if attempt == 2 or isinstance(exc, TimeoutError):  # a collector that does not answer: one wait
                    log.warning("Zipkin export of %d spans to %s failed: %s", count, self._endpoint, exc)
                    return

    def _connect(self) -> http.client.HTTPConnection:
        if self._url.scheme == "https":
            return http.client.HTTPSConnection(self._url.netloc, timeout=self._timeout_s)
        return http.client.HTTPConnection(self._url.netloc, timeout=self._timeout_s)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        self._post_queued(deadline)
        return not self._queue and time.monotonic() <= deadline

    def shutdown(self) -> None:
        """Post what is queued: no post starts later than one connection timeout after this call,
        so a collector that does not answer holds a stopping process up for two at most."""
        if self._stopped:
            return
        self._stop_deadline = time.monotonic() + self._timeout_s  # the export thread's posts too
        self._stopped = True
        self._wake.set()
        self._thread.join(self._timeout_s)
        self._post_queued()
        with self._post_lock:
            self._close()
