"""Runs one service process: wires infrastructure, starts it, drains it on SIGTERM.

Start order: telemetry, store (indexes), Kafka topics, producer, outbox relay,
consumers, background jobs, then the gRPC server (so the service reports SERVING
only when it can do its work). Stop order is the reverse, each part draining what
it holds: the relay last of the writers, so everything written reaches Kafka.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvloop
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.audit import AUDIT_INDEXES
from services.plumbing.bus import Topic, dead_letter_topic, ensure_topics, reliable_producer
from services.plumbing.consumer import PROCESSED_INDEXES, EventConsumer, Handler, Wanted
from services.plumbing.grpc_server import GrpcServer
from services.plumbing.logs import configure_logging
from services.plumbing.ops.metrics import metrics_port, serve
from services.plumbing.outbox import PUBLISHED_INDEXES, OutboxRelay, outbox_index
from services.plumbing.settings import Settings, get_settings
from services.plumbing.storage import Document, IndexSpec, ensure_indexes, mongo_client, service_database
from services.plumbing.telemetry import setup_telemetry, shutdown_telemetry

log = logging.getLogger(__name__)


@dataclass
class Infrastructure:
    """What a service's wiring function gets to build its parts from."""

    settings: Settings
    service: str
    mongo: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    producer: AIOKafkaProducer
    relay: OutboxRelay
    grpc: GrpcServer

    @property
    def source(self) -> str:
        return f"/iop/{self.service}"

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.service).name

    def consumer(
        self,
        group_suffix: str,
        topics: list[str],
        handlers: dict[str, Handler],
        wanted: dict[str, Wanted] | None = None,
    ) -> EventConsumer:
        return EventConsumer(
            settings=self.settings,
            group_id=f"{self.settings.kafka_group_prefix}.{self.service}.{group_suffix}",
            topics=topics,
            handlers=handlers,
            wanted=wanted,
            db=self.db,
            producer=self.producer,
            dead_letter_topic=self.dead_letter_topic,
        )


@dataclass
class ServiceDefinition:
    """What a service declares about itself."""

    name: str
    topics: list[Topic]  # topics it publishes (created at start if missing)
    indexes: list[IndexSpec]
    outbox_collections: list[str]
    access: dict[str, frozenset[str]]  # gRPC method -> roles allowed
    wire: Callable[[Infrastructure], Awaitable[list[EventConsumer]]]
    background: list[Callable[[Infrastructure], Coroutine[Any, Any, None]]] = field(default_factory=list)


async def start_infrastructure(definition: ServiceDefinition, settings: Settings) -> Infrastructure:
    setup_telemetry(definition.name, settings)
    mongo = mongo_client(settings)
    db = service_database(mongo, settings, definition.name)
    await ensure_indexes(
        db,
        [
            *definition.indexes,
            *PROCESSED_INDEXES,
            *PUBLISHED_INDEXES,
            *AUDIT_INDEXES,
            *map(outbox_index, definition.outbox_collections),
        ],
    )
    await ensure_topics(settings, [*definition.topics, dead_letter_topic(definition.name)])
    producer = reliable_producer(settings, client_id=f"iop-{definition.name}")
    await producer.start()
    relay = OutboxRelay(
        db,
        definition.outbox_collections,
        producer,
        poll_interval_s=settings.outbox_poll_interval_s,
        sweep_interval_s=settings.outbox_sweep_interval_s,
    )
    grpc_server = GrpcServer(settings, settings.grpc_port(definition.name), definition.access)
    return Infrastructure(settings, definition.name, mongo, db, producer, relay, grpc_server)


async def run_service(definition: ServiceDefinition, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    settings.check_production_safety()
    configure_logging(definition.name)
    infra = await start_infrastructure(definition, settings)
    port = metrics_port(definition.name)
    if port is not None:
        serve(port, settings.grpc_host)
        log.info("%s metrics on http://%s:%d/metrics", definition.name, settings.grpc_host, port)
    consumers = await definition.wire(infra)
    tasks = [asyncio.create_task(infra.relay.run(), name="outbox-relay")]
    for consumer in consumers:
        await consumer.start()
        tasks.append(asyncio.create_task(consumer.run(), name=consumer.group_id))
    jobs = [asyncio.create_task(job(infra), name=job.__name__) for job in definition.background]
    tasks.extend(jobs)
    # What start-up built (modules, descriptors, clients) lives as long as the process: frozen out
    # of the collector, a full collection scans only what requests create. Unfrozen, the full
    # collections paused the loop 28-53 ms each during the compliance benchmark (frozen: < 8 ms).
    gc.collect()
    gc.freeze()
    await infra.grpc.start()
    log.info("%s serving gRPC on %s", definition.name, infra.grpc.address)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    failed = asyncio.create_task(_first_failure(tasks))
    await asyncio.wait([asyncio.create_task(stop.wait()), failed], return_when=asyncio.FIRST_COMPLETED)
    if failed.done() and failed.exception():
        log.error("%s: a component failed; shutting down", definition.name, exc_info=failed.exception())

    log.info("%s draining", definition.name)
    await infra.grpc.stop(settings.shutdown_grace_s)
    for consumer in consumers:
        await consumer.stop()
    # Background jobs (timers, periodic closes) stop before the relay drains: what they write after
    # the drain would wait in the store for the next start's sweep.
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    await infra.relay.drain()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await infra.producer.stop()
    await infra.mongo.close()
    shutdown_telemetry()
    log.info("%s stopped", definition.name)


async def _first_failure(tasks: list[asyncio.Task[None]]) -> None:
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    await asyncio.Event().wait()  # all finished normally: wait for the stop signal


def main(definition: ServiceDefinition) -> None:
    # uvloop: the services' event loops spend most of their time in socket I/O and callbacks
    # (pymongo, aiokafka, uvicorn); uvloop does those in C. The crisis drop path handled 5-10 %
    # more drops/s with it on the same machine (docs/crisis.md).
    uvloop.run(run_service(definition))
