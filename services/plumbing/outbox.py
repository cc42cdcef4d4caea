"""Transactional outbox on a document store without multi-document transactions.

A state change and the events it causes are ONE document write: the events are
pushed onto the aggregate document's `outbox` array in the same update that
changes its state (`with_outbox`, `new_document_with_outbox`). The relay
publishes the entries with the idempotent, acks=all producer, in order per
document, each inside the trace context that was current when the state
changed, and then records each published event id in `outbox_published`
(in batches, `marker_window_s` after the first, without a span: this relay
remembers what it sent meanwhile, and a marker lost in a crash only means
another relay, or this one's sweep after a restart, publishes that event again,
which consumers de-duplicate by event id).

The relay never writes to the aggregate document. FerretDB 1.x applies an
update as read-modify-write of the whole document, so an update by the relay
(say, removing published entries) could silently undo a state change written
at the same moment; an insert keyed by the event id is atomic on every store.
Entries therefore stay in the aggregate's array (an aggregate's life is a few
dozen events) and `outbox_published` says which were sent.

Finding work:
- the writer hints the relay once its write is stored (`notify`). With the write
  itself, the relay publishes the entries that write added as they were stored,
  without reading them back; with only the document id, it reads the document by
  `_id` and publishes what no one has sent.
- a sweep finds entries no hint covered: those of a process that crashed between
  its write and its publish, or of another instance. At start it looks back a day;
  then every `sweep_interval_s` (a minute by default) it reads the ids and times of
  the entries written since the previous sweep (with an overlap for writes that
  were slow to land), asks `outbox_published` only about entries this relay does
  not know were sent, and reads back by `_id` only the documents holding entries
  nobody sent.
A crash or a broker outage between the write and the publish loses nothing (at
least once; consumers de-duplicate by event id).
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

from services.plumbing.bus import send_event
from services.plumbing.envelope import CloudEvent
from services.plumbing.storage import BatchedWrites, Document, IndexSpec, find_by_ids, insert_new

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


def added_entries(write: Document) -> list[Document]:
    """The outbox entries a write adds: a document from `new_document_with_outbox`, or an
    update from `with_outbox`."""
    pushed = write.get("$push", {}).get("outbox")
    if pushed is not None:
        return list(pushed["$each"])
    return list(write.get("outbox", []))


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
        sweep_interval_s: float = 60.0,
        sweep_min_age_s: float = 5.0,
        sweep_overlap_s: float = 120.0,
        sweep_horizon_s: float = 24 * 3600,
        batch_size: int = 500,
        known_sent: int = 100_000,
        marker_window_s: float = 0.05,
    ) -> None:
        self._db = db
        self._published = db[PUBLISHED_COLLECTION]
        self._collections = collections
        self._producer = producer
        self._poll_interval_s = poll_interval_s
        self._sweep_interval_s = sweep_interval_s
        self._sweep_min_age = timedelta(seconds=sweep_min_age_s)
        self._sweep_overlap = timedelta(seconds=sweep_overlap_s)
        self._sweep_horizon = timedelta(seconds=sweep_horizon_s)
        self._batch_size = batch_size
        self._written: list[Document] = []  # entries of stored writes, in write order
        self._hints: dict[str, set[Any]] = {name: set() for name in collections}
        # Ids this relay published or found published, oldest first: the sweep skips them.
        self._sent: dict[str, None] = {}
        self._known_sent = known_sent
        # another relay's markers: fine (at least once)
        self._markers = BatchedWrites(
            lambda docs: insert_new(self._published, docs), "published markers", marker_window_s, batch_size
        )
        self._swept_until: datetime | None = None  # None: the next sweep looks back the whole horizon
        self._wake = asyncio.Event()
        self._stopping = False
        self.published = 0

    def notify(self, collection: str, doc_id: Any, write: Document | None = None) -> None:
        """Called once a write that added events to document `doc_id` is stored. With `write`
        (what was inserted, or the update applied) the relay publishes the entries it added as
        they are; without, it reads the document and publishes what was not sent."""
        if write is not None:
            self._written.extend(added_entries(write))
        else:
            self._hints[collection].add(doc_id)
        self._wake.set()

    async def publish_hinted(self) -> int:
        """Publish what `notify` named: stored writes first, then documents to read by `_id`."""
        total = 0
        while self._written:
            batch, self._written = self._written[: self._batch_size], self._written[self._batch_size :]
            total += await self._publish(batch)
        for name, ids in self._hints.items():
            while ids:
                batch_ids = [ids.pop() for _ in range(min(len(ids), self._batch_size))]
                docs = await find_by_ids(self._db[name], batch_ids, {"outbox": 1})
                total += await self._publish_unsent([e for d in docs.values() for e in d.get("outbox", [])])
        self.published += total
        return total

    async def publish_pending(self, since_last_sweep: bool = False, settled_only: bool = False) -> int:
        """Sweep: publish unsent entries written in the last day, or since the previous sweep
        (`since_last_sweep`, the whole day when there was none); `settled_only`: only entries
        older than the minimum age, which their writer's hint has had time to publish."""
        now = datetime.now(UTC)
        newest = now - self._sweep_min_age if settled_only else now
        oldest = now - self._sweep_horizon
        if since_last_sweep and self._swept_until is not None:
            oldest = max(oldest, self._swept_until - self._sweep_overlap)
        total = 0
        for name in self._collections:
            # On MongoDB the sparse outbox.time index answers this; FerretDB filters a scan. Only the
            # entries' ids and times are read: a window holds every entry of the last minutes, nearly
            # all of them sent, and the rest is read back by `_id` only for entries nobody sent.
            query = {"outbox.time": {"$gte": oldest, "$lte": newest}}
            unknown: dict[str, Any] = {}  # entry id -> its document's id, in write order
            async for doc in self._db[name].find(query, {"outbox.id": 1, "outbox.time": 1}):
                for e in doc.get("outbox", []):
                    if e["id"] not in self._sent and oldest <= _aware(e["time"]) <= newest:
                        unknown[e["id"]] = doc["_id"]
                if len(unknown) >= self._batch_size:
                    total += await self._publish_swept(name, unknown)
                    unknown = {}
            total += await self._publish_swept(name, unknown)
        self._swept_until = newest
        self.published += total
        return total

    async def _publish_swept(self, collection: str, unknown: dict[str, Any]) -> int:
        """Publish the swept entries (id -> document id) that `outbox_published` does not know,
        reading their documents for the entries themselves."""
        unsent = await self._not_published(list(unknown))
        if not unsent:
            return 0
        docs = await find_by_ids(self._db[collection], list(dict.fromkeys(unknown[i] for i in unsent)), {"outbox": 1})
        return await self._publish([e for d in docs.values() for e in d.get("outbox", []) if e["id"] in unsent])

    async def _publish_unsent(self, entries: list[Document]) -> int:
        """Publish the entries that `outbox_published` does not know (of other writers or
        an earlier process: the ones this relay sent are skipped without asking)."""
        unsent = await self._not_published([e["id"] for e in entries if e["id"] not in self._sent])
        return await self._publish([e for e in entries if e["id"] in unsent])

    async def _not_published(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids `outbox_published` does not know; the known ones are remembered."""
        if not event_ids:
            return set()
        sent = await find_by_ids(self._published, event_ids, {"_id": 1})
        for event_id in sent:
            self._remember_sent(event_id)
        return {event_id for event_id in event_ids if event_id not in sent}

    async def _publish(self, entries: list[Document]) -> int:
        entries = [e for e in entries if e["id"] not in self._sent]
        if not entries:
            return 0
        sends = [await self._send(entry) for entry in entries]
        await asyncio.gather(*sends)  # every entry acknowledged by all in-sync replicas
        now = datetime.now(UTC)
        for entry in entries:
            self._remember_sent(entry["id"])
        self._markers.add([{"_id": e["id"], "topic": e["topic"], "published_at": now} for e in entries])
        return len(entries)

    async def record_published(self) -> None:
        """Write the markers of what this relay published and has not recorded yet."""
        await self._markers.flush()

    def _remember_sent(self, event_id: str) -> None:
        self._sent[event_id] = None
        if len(self._sent) > self._known_sent:
            del self._sent[next(iter(self._sent))]

    async def _send(self, entry: Document) -> asyncio.Future[Any]:
        event = _cloud_event(entry)
        token = otel_context.attach(propagate.extract(entry.get("trace") or {}))
        try:
            return await send_event(self._producer, entry["topic"], event)
        finally:
            otel_context.detach(token)

    async def run(self) -> None:
        backoff = self._poll_interval_s
        last_sweep = 0.0
        while not self._stopping:
            try:
                published = await self.publish_hinted()
                now = monotonic.monotonic()
                if self._swept_until is None or now - last_sweep >= self._sweep_interval_s:
                    settled = self._swept_until is not None  # at start and after a failure: all of it
                    published += await self.publish_pending(since_last_sweep=True, settled_only=settled)
                    last_sweep = now
                backoff = self._poll_interval_s
            except Exception:  # broker or store unavailable: the entries stay; try again
                log.warning("outbox relay: publish failed; retrying in %.1fs", backoff, exc_info=True)
                # what was taken from the hints before the failure is found by a full sweep
                self._swept_until = None
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
            await self.publish_pending(since_last_sweep=True)
            await self.record_published()
        except Exception:
            log.warning("outbox relay: could not drain; entries stay for the next start", exc_info=True)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
