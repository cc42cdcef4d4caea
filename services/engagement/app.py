"""Wiring of the engagement process: gRPC API, the ledger consumer, the webhook/dashboard
HTTP server, the FHIR relay and, until it has completed once, the scrub of the leave reasons old
ledgers stored (scrub_leave_reasons.py). The faust stream processor is its own process
(`python -m services.engagement.worker`, see worker.py)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from iop.engagement.v1 import engagement_pb2_grpc
from services.engagement.api import ACCESS, SERVICE, EngagementApi
from services.engagement.config import get_config
from services.engagement.fhir_relay import FhirRelay
from services.engagement.handlers import LedgerHandlers
from services.engagement.rules import load_rules
from services.engagement.scrub_leave_reasons import scrub_until_done
from services.engagement.store import INDEXES, OUTBOX_COLLECTIONS, AttendanceStore, ConnectionStore, OutcomeStore
from services.engagement.topics import ALL, SIGNALS
from services.engagement.web import create_app, serve
from services.plumbing.bus import Topic
from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition
from services.plumbing.settings import Settings
from services.scheduler.topics import SESSIONS


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    rules = load_rules()
    get_config().check_production_safety(infra.settings.environment)
    fhir = FhirRelay(OutcomeStore(infra.db, infra.source), infra.producer)
    api = EngagementApi(infra.db, rules, infra.relay, fhir, infra.source)
    infra.grpc.add_service(SERVICE, lambda s: engagement_pb2_grpc.add_EngagementServiceServicer_to_server(api, s))
    ledger = LedgerHandlers(AttendanceStore(infra.db, infra.source), ConnectionStore(infra.db), infra.relay, rules)
    topics = [SESSIONS.name, get_config().signals_topic]
    consumer = infra.consumer("ledger", topics, ledger.handlers(), ledger.wanted())
    if get_config().ledger_start == "latest":
        await start_new_group_at_end(infra.settings, consumer.group_id, topics)
    return [consumer]


async def start_new_group_at_end(settings: Settings, group_id: str, topics: list[str]) -> None:
    """Commit the end offsets for a consumer group that has none yet, so it starts at 'now'."""
    probe = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    parts = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d.get("partitions", [])]
    await probe.start()
    try:
        missing = [tp for tp in parts if await probe.committed(tp) is None]
        if missing:
            probe.assign(missing)
            ends = await probe.end_offsets(missing)
            await probe.commit({tp: ends[tp] for tp in missing})
    finally:
        await probe.stop()


async def http_server(infra: Infrastructure) -> None:
    config = get_config()
    app = create_app(infra.settings, config, load_rules(), infra.db, infra.producer, infra.source)
    await serve(app, config)


async def fhir_relay(infra: Infrastructure) -> None:
    await FhirRelay(OutcomeStore(infra.db, infra.source), infra.producer).run()


async def scrub_leave_reasons(infra: Infrastructure) -> None:
    """Rewrites the leave reasons ledgers stored before 162bf8e to kept form, once per database
    (scrub_leave_reasons.py); in the background, so the service is ready meanwhile."""
    await scrub_until_done(infra.db, load_rules())


def _topics() -> list[Topic]:
    signals = get_config().signals_topic  # overridden only by load tests and test runs
    extra = [] if signals == SIGNALS.name else [Topic(signals, SIGNALS.key, SIGNALS.description)]
    return [*ALL, SESSIONS, *extra]


DEFINITION = ServiceDefinition(
    name="engagement",
    topics=_topics(),
    indexes=INDEXES,
    outbox_collections=OUTBOX_COLLECTIONS,
    access=ACCESS,
    wire=wire,
    background=[http_server, fhir_relay, scrub_leave_reasons],
)
