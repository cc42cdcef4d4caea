"""Publishes FHIR Observation JSON on iop.engagement.fhir.v1.

The JSON is stored on the outcome document in the same write as the outcome
(`fhir_pending: true`); it is published right after the write and, if that
fails, by the background loop: a stored outcome's FHIR projection is never lost.
The plumbing outbox carries protobuf payloads only, hence this small relay with
the same guarantees (at least once, acks=all, the trace context carried along).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry import propagate

from services.engagement.store import OutcomeStore
from services.engagement.topics import FHIR
from services.plumbing.envelope import SPEC_VERSION, KafkaHeaders
from services.plumbing.storage import Document

log = logging.getLogger(__name__)

FHIR_CONTENT_TYPE = "application/fhir+json"
OBSERVATION_TYPE = "hl7.fhir.r4b.Observation"
OBSERVATION_SCHEMA = "http://hl7.org/fhir/R4B/observation.html"


def fhir_headers(event_id: str, subject: str, trace: dict[str, str] | None) -> KafkaHeaders:
    headers: KafkaHeaders = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_type", OBSERVATION_TYPE.encode()),
        ("ce_source", b"/iop/engagement"),
        ("ce_subject", subject.encode()),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_dataschema", OBSERVATION_SCHEMA.encode()),
        ("content-type", FHIR_CONTENT_TYPE.encode()),
    ]
    carrier: dict[str, str] = dict(trace or {})
    if not carrier:
        propagate.inject(carrier)
    headers.extend((k, v.encode()) for k, v in carrier.items())
    return headers


def observation_event_id(submission_id: str) -> str:
    """The CloudEvents id of an outcome's Observation: the same on every publish of it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"iop:engagement:fhir:{submission_id}"))


class FhirRelay:
    def __init__(self, store: OutcomeStore, producer: AIOKafkaProducer, poll_s: float = 5.0) -> None:
        self._store = store
        self._producer = producer
        self._poll_s = poll_s

    async def publish(self, doc: Document) -> None:
        """Publish one outcome's Observation (event id stable per submission: consumers de-duplicate)."""
        event_id = observation_event_id(str(doc["_id"]))
        token = otel_context.attach(propagate.extract(doc.get("fhir_trace") or {}))
        try:
            await self._producer.send_and_wait(
                FHIR.name,
                value=str(doc["fhir"]).encode(),
                key=str(doc["client_id"]).encode(),
                headers=fhir_headers(event_id, str(doc["client_id"]), None),
            )
        finally:
            otel_context.detach(token)
        await self._store.fhir_published(str(doc["_id"]))

    async def run(self) -> None:
        while True:
            try:
                for doc in await self._store.fhir_pending():
                    await self.publish(doc)
            except Exception:
                log.warning("fhir relay: publish failed; retrying", exc_info=True)
            await asyncio.sleep(self._poll_s)
