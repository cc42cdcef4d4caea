"""Transactional outbox on a document store without multi-document transactions.

A state change and the events it causes are ONE document write: the events are
pushed onto the aggregate document's `outbox` array in the same update that
changes its state (`with_outbox`, `new_document_with_outbox`). The relay
publishes the entries with the idempotent, acks=all producer, in order per
document, each inside the trace context that was current when the state
changed, and then records each published event id in `outbox_published`.

The relay never writes to the aggregate document. FerretDB 1.x applies an
update as read-modify-write of the whole document, so an update by the relay
(say, removing published entries) could silently undo a state change written
at the same moment; an insert keyed by the event id is atomic on every store.
Entries therefore stay in the aggregate's array (an aggregate's life is a few
dozen events) and `outbox_published` says which were sent.

Finding work: the writer hints the relay with the document id (`notify`), and
the relay reads that document by `_id`, the one lookup FerretDB answers from an
index. A periodic sweep finds entries of the last day that no hint covered:
those of a process that crashed between its write and its publish, or of
another instance. A crash or a broker outage between the write and the publish
loses nothing (at least once; consumers de-duplicate by event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time as monotonic
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.plumbing.bus import record_headers
from services.plumbing.envelope import CloudEvent
from services.plumbing.storage import Document, IndexSpec

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.outbox")


@dataclass(frozen=True)
class OutgoingEvent:
    topic: str
    key: str  # aggregate id: opaque, never PHI
    message: Message


PUBLISHED_COLLECTION = "outbox_published"
# Kept longer than the sweep looks back, so a swept entry is always recognised as sent.
PUBLISHED_RETENTION_S = 7 * 24 * 3600
PUBLISHED_INDEXES = [
    IndexSpec(
        PUBLISHED_COLLECTION,
        [("published_at", 1)],
        name="published_at_ttl",
        options={"expireAfterSeconds": PUBLISHED_RETENTION_S},
    )
]


def outbox_index(collection: str) -> IndexSpec:
    """Lets MongoDB answer the sweep from an index (sparse: most documents have no entry)."""
    return IndexSpec(collection, [("outbox.time", 1)], name="outbox_time_1", options={"sparse": True})


def outbox_entries(source: str, events: list[OutgoingEvent]) -> list[Document]:
    """Outbox records for `events`, carrying the current trace context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    entries = []
    for ev in events:
        ce = CloudEvent.new(source, ev.key, ev.message)
        entries.append(
            {
                "id": ce.id,
                "topic": ev.topic,
                "key": ev.key,
                "type": ce.type,
                "source": ce.source,
                "time": ce.time,
                "data": ce.data,
                "trace": carrier,
            }
        )
    return entries


def with_outbox(update: dict[str, Any], source: str, events: list[OutgoingEvent]) -> dict[str, Any]:
    """Add `events` to a MongoDB update document, so state and events are one write."""
    if not events:
        return update
    merged = {k: dict(v) for k, v in update.items()}
    merged.setdefault("$push", {})["outbox"] = {"$each": outbox_entries(source, events)}
    return merged


def new_document_with_outbox(doc: Document, source: str, events: list[OutgoingEvent]) -> Document:
    """A document to insert, carrying its creation events."""
    out = dict(doc)
    out["outbox"] = outbox_entries(source, events)
    return out


def _cloud_event(entry: Document) -> CloudEvent:
    time = _aware(entry["time"])
    return CloudEvent(
        id=entry["id"],
        type=entry["type"],
        source=entry["source"],
        subject=entry["key"],
        time=time,
        data=bytes(entry["data"]),
    )


class OutboxRelay:
    """Publishes the outbox entries of the given collections."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        collections: list[str],
        producer: AIOKafkaProducer,
        poll_interval_s: float = 0.5,
        sweep_interval_s: float = 10.0,
        sweep_min_age_s: float = 3.0,
        sweep_horizon_s: float = 24 * 3600,
        batch_size: int = 200,
    ) -> None:
        self._db = db
        self._published = db[PUBLISHED_COLLECTION]
        self._collections = collections
        self._producer = producer
        self._poll_interval_s = poll_interval_s
        self._sweep_interval_s = sweep_interval_s
        self._sweep_min_age = timedelta(seconds=sweep_min_age_s)
        self._sweep_horizon = timedelta(seconds=sweep_horizon_s)
        self._batch_size = batch_size
        self._hints: dict[str, set[Any]] = {name: set() for name in collections}
        self._sweep_requested = True  # sweep once at start: entries left by an earlier process
        self._wake = asyncio.Event()
        self._stopping = False
        self.published = 0

    def notify(self, collection: str | None = None, doc_id: Any = None) -> None:
        """Called after a write that added events. With the document's collection and id
        the relay publishes just that document now; without, it sweeps everything now."""
        if collection is not None and doc_id is not None:
            self._hints[collection].add(doc_id)
        else:
            self._sweep_requested = True
        self._wake.set()

    async def publish_hinted(self) -> int:
        """Publish the documents named by `notify`, all hinted ones of a collection as one batch."""
        total = 0
        for name, ids in self._hints.items():
            while ids:
                batch = [ids.pop() for _ in range(min(len(ids), self._batch_size))]
                coll = self._db[name]
                docs = await asyncio.gather(*(coll.find_one({"_id": i}, {"outbox": 1}) for i in batch))
                total += await self._publish_unsent([e for d in docs if d for e in d.get("outbox", [])])
        self.published += total
        return total

    async def publish_pending(self, min_age: timedelta | None = None) -> int:
        """Sweep: publish every unsent entry of the last day older than `min_age` (any age when None)."""
        now = datetime.now(UTC)
        newest = now - (min_age or timedelta(0))
        oldest = now - self._sweep_horizon
        total = 0
        for name in self._collections:
            query = {"outbox.time": {"$lte": newest}}
            entries: list[Document] = []
            async for doc in self._db[name].find(query, {"outbox": 1}):
                entries.extend(e for e in doc.get("outbox", []) if oldest <= _aware(e["time"]) <= newest)
                if len(entries) >= self._batch_size:
                    total += await self._publish_unsent(entries)
                    entries = []
            total += await self._publish_unsent(entries)
        self.published += total
        return total

    async def _publish_unsent(self, entries: list[Document]) -> int:
        if not entries:
            return 0
        sent = await asyncio.gather(*(self._published.find_one({"_id": e["id"]}, {"_id": 1}) for e in entries))
        unsent = [e for e, marker in zip(entries, sent, strict=True) if marker is None]
        if not unsent:
            return 0
        sends = [await self._send(entry) for entry in unsent]
        await asyncio.gather(*sends)  # every entry acknowledged by all in-sync replicas
        markers = [{"_id": e["id"], "topic": e["topic"], "published_at": datetime.now(UTC)} for e in unsent]
        try:
            await self._published.insert_many(markers, ordered=False)
        except BulkWriteError as exc:  # another relay published the same entry: fine (at least once)
            if any(err.get("code") != DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                raise
        return len(unsent)

    async def _send(self, entry: Document) -> asyncio.Future[Any]:
        event = _cloud_event(entry)
        token = otel_context.attach(propagate.extract(entry.get("trace") or {}))
        try:
            return await self._producer.send(
                entry["topic"], value=event.data, key=event.subject.encode(), headers=record_headers(event)
            )
        finally:
            otel_context.detach(token)

    async def run(self) -> None:
        backoff = self._poll_interval_s
        last_sweep = 0.0
        while not self._stopping:
            try:
                published = await self.publish_hinted()
                now = monotonic.monotonic()
                if self._sweep_requested or now - last_sweep >= self._sweep_interval_s:
                    full = self._sweep_requested
                    self._sweep_requested = False
                    last_sweep = now
                    published += await self.publish_pending(None if full else self._sweep_min_age)
                backoff = self._poll_interval_s
            except Exception:  # broker or store unavailable: the entries stay; try again
                log.warning("outbox relay: publish failed; retrying in %.1fs", backoff, exc_info=True)
                self._sweep_requested = True  # hints taken before the failure are covered by the sweep
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
                self._wake.clear()

    async def drain(self) -> None:
        """Stop after publishing what is pending now (graceful shutdown)."""
        self._stopping = True
        self._wake.set()
        try:
            await self.publish_hinted()
            await self.publish_pending()
        except Exception:
            log.warning("outbox relay: could not drain; entries stay for the next start", exc_info=True)


DUPLICATE_KEY = 11000


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
