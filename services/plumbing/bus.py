"""Kafka plumbing: topic declarations, topic creation, the reliable producer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.plumbing.envelope import CloudEvent
from services.plumbing.settings import Settings

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("iop.plumbing.bus")

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    """A topic this platform owns: `iop.<domain>.<fact>.v<N>`."""

    name: str
    key: str  # what the record key is (an opaque aggregate id)
    description: str
    partitions: int | None = None  # None: settings.kafka_topic_partitions
    retention_ms: int = 4 * WEEK_MS
    partner_facing: bool = False
    # What the topic carries: protobuf full names (iop.events.v1.X) or, on FHIR topics,
    # FHIR resource types. The AsyncAPI document is generated from this.
    message_types: tuple[str, ...] = ()


def dead_letter_topic(service: str) -> Topic:
    return Topic(
        name=f"iop.{service}.deadletter.v1",
        key="the original record's key",
        description=f"Events the {service} service could not process after bounded retries, "
        "with the error in dlq_* headers; inspect and replay with the ops tools.",
        retention_ms=30 * 24 * 3600 * 1000,
    )


async def ensure_topics(settings: Settings, topics: list[Topic]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=t.name,
                num_partitions=t.partitions or settings.kafka_topic_partitions,
                replication_factor=settings.kafka_replication_factor,
                topic_configs={"retention.ms": str(t.retention_ms)},
            )
            for t in topics
            if t.name not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another instance created it first
    finally:
        await admin.close()


def reliable_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """Idempotent producer that waits for all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        request_timeout_ms=15000,
    )


async def send_event(producer: AIOKafkaProducer, topic: str, event: CloudEvent) -> asyncio.Future[Any]:
    """Send one event in the envelope's binary binding, keyed by its subject; returns the future
    of the broker's acknowledgement.

    The PRODUCER span `<topic> send` (a child of the current context, its context in the
    record's `traceparent`) is made here. The aiokafka instrumentation makes the same span for
    other sends, at about twice the cost: it computes the record's partition itself (the producer
    computes it again), and sets its attributes one call at a time. Left out of its attributes:
    the partition (the consumer's span has it), the client id and the bootstrap servers.
    """
    key = event.subject
    headers = event.headers()
    span = _tracer.start_span(
        f"{topic} send",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.name": "send",
            "messaging.operation.type": "publish",
            "messaging.kafka.message.key": key,  # an opaque aggregate id, never PHI
        },
    )
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    headers.extend((k, v.encode()) for k, v in carrier.items())
    send = type(producer).send
    plain_send = getattr(send, "__wrapped__", send)  # not the instrumentation's wrapper: the span is made
    try:
        future: asyncio.Future[Any] = await plain_send(
            producer, topic, value=event.data, key=key.encode(), headers=headers
        )
    except Exception as exc:  # no metadata for the topic in time, a full buffer, a stopped producer
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()
    return future
