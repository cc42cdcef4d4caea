"""Transactional outbox on a document store without multi-document transactions.

A state change and the events it causes are ONE document write: the events are
pushed onto the aggregate document's `outbox` array in the same update that
changes its state (`with_outbox`). The relay publishes pending entries with the
idempotent, acks=all producer, in order per document, each inside the trace
context that was current when the state changed, and only then removes them.
A crash or a broker outage between the write and the publish loses nothing:
the entries stay until a relay has published them (at least once; consumers
de-duplicate by event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.bus import record_headers
from services.plumbing.envelope import CloudEvent
from services.plumbing.storage import Document, IndexSpec

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.outbox")

PENDING_FIELD = "outbox_pending"


@dataclass(frozen=True)
class OutgoingEvent:
    topic: str
    key: str  # aggregate id: opaque, never PHI
    message: Message


def outbox_index(collection: str) -> IndexSpec:
    return IndexSpec(collection, [(PENDING_FIELD, 1)], name=f"{PENDING_FIELD}_1")


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
    merged.setdefault("$set", {})[PENDING_FIELD] = True
    return merged


def new_document_with_outbox(doc: Document, source: str, events: list[OutgoingEvent]) -> Document:
    """A document to insert, carrying its creation events."""
    out = dict(doc)
    out["outbox"] = outbox_entries(source, events)
    out[PENDING_FIELD] = bool(events)
    return out


def _cloud_event(entry: Document) -> CloudEvent:
    time = entry["time"]
    if isinstance(time, datetime) and time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    return CloudEvent(
        id=entry["id"],
        type=entry["type"],
        source=entry["source"],
        subject=entry["key"],
        time=time,
        data=bytes(entry["data"]),
    )


class OutboxRelay:
    """Publishes pending outbox entries of the given collections."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        collections: list[str],
        producer: AIOKafkaProducer,
        poll_interval_s: float = 0.5,
        batch_size: int = 200,
    ) -> None:
        self._db = db
        self._collections = collections
        self._producer = producer
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self.published = 0

    def notify(self) -> None:
        """Called after a local write with events: publish now instead of at the next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch per collection; returns how many events were published."""
        total = 0
        for name in self._collections:
            coll = self._db[name]
            docs = await coll.find({PENDING_FIELD: True}, {"outbox": 1}).limit(self._batch_size).to_list()
            if not docs:
                continue
            sends = []
            for doc in docs:
                for entry in doc.get("outbox", []):
                    sends.append(await self._send(entry))
            await asyncio.gather(*sends)
            total += len(sends)
            # Common case: nothing was added meanwhile, so clear the array in one write
            # guarded by its exact old value; otherwise remove just what was published.
            cleared = await coll.bulk_write(
                [
                    UpdateOne({"_id": d["_id"], "outbox": d["outbox"]}, {"$set": {"outbox": [], PENDING_FIELD: False}})
                    for d in docs
                ],
                ordered=False,
            )
            if cleared.matched_count != len(docs):
                for d in docs:
                    await coll.update_one({"_id": d["_id"]}, {"$pullAll": {"outbox": d["outbox"]}})
                    await coll.update_one({"_id": d["_id"], "outbox": {"$size": 0}}, {"$set": {PENDING_FIELD: False}})
        self.published += total
        return total

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
        while not self._stopping:
            try:
                published = await self.publish_pending()
                backoff = self._poll_interval_s
            except Exception:  # broker or store unavailable: keep the entries, try again
                log.warning("outbox relay: publish failed; retrying in %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
                self._wake.clear()

    async def drain(self) -> None:
        """Stop polling after publishing what is pending now (graceful shutdown)."""
        self._stopping = True
        self._wake.set()
        try:
            await self.publish_pending()
        except Exception:
            log.warning("outbox relay: could not drain; entries stay pending for the next start", exc_info=True)
