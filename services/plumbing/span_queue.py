"""Span export that never holds the event loop: each span is encoded when it ends, on the thread
that ends it, and a daemon thread sends the encoded spans in batches.

The SDK's BatchSpanProcessor hands whole batches to an exporter that encodes them in its export
thread; with the GIL that thread holds, a batch of a few hundred spans stalled the event loop for
10-30 ms every export interval (the OTLP encoder takes ~30 ms for 512 spans on this machine), the
largest part of a gRPC service's p99. Encoding one span at a time costs the same in all, spread
evenly over the requests; the export thread only joins bytes and waits on the socket, which
releases the GIL. `ZipkinSpanProcessor` (Zipkin JSON over HTTP) and `OtlpSpanProcessor` (OTLP
protobuf over gRPC) are the two encoders and transports on this queue.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Generic, TypedDict, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

log = logging.getLogger(__name__)

Encoded = TypeVar("Encoded")


class QueueOptions(TypedDict, total=False):
    """The queue's settings, as the processors take them (`**options`)."""

    schedule_delay_s: float  # a batch is sent at least this often (default 0.5)
    max_batch: int  # spans per batch; a full batch is sent at once (512)
    max_queue: int  # spans waiting at most; past it they are dropped and counted (2048)
    timeout_s: float  # one send's timeout (10)


class EncodedSpanQueue(SpanProcessor, ABC, Generic[Encoded]):
    """Encodes each sampled span as it ends; a daemon thread sends them in batches.

    Bounded like the SDK's BatchSpanProcessor: at most `max_queue` encoded spans wait; beyond that
    spans are dropped and counted in a warning (tracing never blocks or grows without bound). A
    batch that cannot be sent is logged and dropped by the transport (a trace store being down
    must not back up the service). force_flush and shutdown send everything queued, within their
    deadlines (shutdown's: the transport's timeout).
    """

    destination = "the trace store"  # for the log lines

    def __init__(
        self, *, schedule_delay_s: float = 0.5, max_batch: int = 512, max_queue: int = 2048, timeout_s: float = 10.0
    ) -> None:
        if schedule_delay_s <= 0 or max_batch < 1 or max_queue < 1 or timeout_s <= 0:
            raise ValueError(
                f"span queue: delay {schedule_delay_s}, batch {max_batch}, queue {max_queue} and "
                f"timeout {timeout_s} must all be positive"
            )
        self._delay_s = schedule_delay_s
        # a batch never exceeds the queue: a larger one would never fill, and spans past the queue
        # would be dropped while the thread waits for its schedule
        self._max_batch = min(max_batch, max_queue)
        self._max_queue = max_queue
        self._timeout_s = timeout_s
        self._queue: deque[Encoded] = deque()
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._wake = threading.Event()
        self._send_lock = threading.Lock()
        self._stopped = False
        self._stop_deadline = math.inf  # set by shutdown: no batch is started after it
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    @abstractmethod
    def _encode(self, span: ReadableSpan) -> Encoded:
        """One span, encoded for the transport (on the thread that ends it)."""

    @abstractmethod
    def _send(self, batch: list[Encoded]) -> None:
        """Send one batch; log and drop it on failure (never raise). At most one timeout."""

    def _close(self) -> None:
        """Close the transport (after shutdown's last batch)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if self._stopped or context is None or not context.trace_flags.sampled:
            return
        if len(self._queue) >= self._max_queue:
            with self._dropped_lock:  # ended on any thread; counted by the export thread
                self._dropped += 1
            return
        try:
            self._queue.append(self._encode(span))
        except Exception:  # an unencodable span is one lost span, never a failed request
            log.warning("span %r could not be encoded for %s", span.name, self.destination, exc_info=True)
            return
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._send_queued()

    def _send_queued(self, deadline: float = math.inf) -> None:
        """Send the queue batch by batch. No batch is started after `deadline` (time.monotonic())
        or after the deadline shutdown sets; what is left stays queued. A batch started before it
        takes at most one timeout (a collector that accepts and never answers)."""
        wait = -1.0 if deadline == math.inf else max(0.0, deadline - time.monotonic())
        if not self._send_lock.acquire(timeout=wait):  # another thread is sending until after the deadline
            return
        try:
            with self._dropped_lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning("span queue full: %d spans not exported to %s", dropped, self.destination)
            while self._queue and time.monotonic() < min(deadline, self._stop_deadline):
                self._send([self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))])
        finally:
            self._send_lock.release()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        self._send_queued(deadline)
        return not self._queue and time.monotonic() <= deadline

    def shutdown(self) -> None:
        """Send what is queued: no send starts later than one timeout after this call, so a
        collector that does not answer holds a stopping process up for two at most."""
        if self._stopped:
            return
        self._stop_deadline = time.monotonic() + self._timeout_s  # the export thread's sends too
        self._stopped = True
        self._wake.set()
        self._thread.join(self._timeout_s)
        self._send_queued()
        with self._send_lock:
            self._close()
