"""Helpers shared by the crisis integration and e2e tests (this module holds no tests).

Events are produced as the scheduler and engagement services produce them: a CloudEvents
envelope (services.plumbing.envelope.CloudEvent), the binary Kafka binding with traceparent (the
headers bus.send_event writes; here tests.support.record_headers), the idempotent acks=all
producer, keyed by the aggregate id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf.message import Message
from pymongo import AsyncMongoClient

from iop.crisis.v1 import crisis_pb2, crisis_pb2_grpc
from iop.events.v1 import common_pb2, engagement_pb2, scheduling_pb2
from services.crisis import topics
from services.crisis.alerts import AlertService
from services.crisis.domain import Risk
from services.crisis.paging import Pager
from services.crisis.reference import load_policies
from services.crisis.store import ALERT_RECORDS, ALERTS, CrisisStore
from services.plumbing.bus import ensure_topics, reliable_producer
from services.plumbing.envelope import CloudEvent
from services.plumbing.outbox import OutboxRelay
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from services.plumbing.storage import Document, mongo_client, service_database
from tests.support import (
    RUN_ID,
    ServiceProcess,
    auth_metadata,
    isolated_environment,
    isolated_settings,
    record_headers,
    start_group_at_end,
    until_stopped,
)

CONSUMED = {"sessions": topics.SESSIONS_IN, "attendance": topics.ATTENDANCE_IN, "outcomes": topics.OUTCOMES_IN}
SF = common_pb2.ClientLocation(
    state="CA", county_fips="06075", postal_code="94110", address_line="1 Test St", city="San Francisco", verified=True
)
NOWHERE = common_pb2.ClientLocation(
    state="WY", county_fips="56021", postal_code="82001", city="Cheyenne", verified=True
)


@asynccontextmanager
async def alert_service(settings: Settings, directory: Path, name: str) -> AsyncIterator[AlertService]:
    """An AlertService in this process on a fresh crisis database (dropped after), rungs at
    0 s / 1 h / 1 h / 1 h; its relay is never run (tests read the store)."""
    mongo = mongo_client(settings)
    db = service_database(
        mongo, isolated_settings(MONGODB_DATABASE_PREFIX=f"t{RUN_ID}{name}{uuid.uuid4().hex[:6]}_"), "crisis"
    )
    producer = reliable_producer(settings, f"crisis-{name}-test")
    await producer.start()
    policies = load_policies(policy_file(directory, [0, 3600, 3600, 3600]))
    relay = OutboxRelay(db, [ALERTS, ALERT_RECORDS], producer)
    try:
        yield AlertService(CrisisStore(db), relay, policies, Pager(None, 1), f"{name}-test", 10)
    finally:
        await producer.stop()
        await mongo.drop_database(db.name)
        await mongo.close()


async def open_alert_directly(alerts: AlertService, alert_id: str, client_id: str, reason: str) -> Document:
    """An alert opened through the service's own AlertService (no session, no event): its first
    rung fired at open, the next ones due on the policy's schedule."""
    alert, created = await alerts.open_alert(
        alert_id=alert_id,
        client_id=client_id,
        session_id="",
        program_id="",
        clinician_id=f"{reason.lower()}-clinician",
        reason=reason,
        risk=Risk.HIGH,
        trigger_event_id="",
        extra_assignees=[],
        now=datetime.now(UTC),
    )
    assert created and alert is not None
    return alert


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def policy_file(directory: Path, delays: list[float], name: str = "policy.yaml") -> Path:
    """A ladder policy with delays of seconds (every program gets the default)."""
    kinds = ["CLINICIAN_CALLBACK", "ON_CALL_CLINICIAN", "EMERGENCY_CONTACT", "LOCAL_EMERGENCY_SERVICES"]
    steps = "\n".join(f"    - {{step: {k}, after_s: {d}}}" for k, d in zip(kinds, delays, strict=True))
    path = directory / name
    path.write_text(
        'version: "test"\ndefault:\n  policy_id: test-ladder\n  on_call_id: oncall-test\n'
        "  time_zone: America/Los_Angeles\n"
        '  default_windows:\n    - {weekdays: [1, 2, 3, 4, 5, 6, 7], start: "00:00", end: "23:59"}\n'
        f"  steps:\n{steps}\n"
    )
    return path


def skip_backlog(settings: Settings) -> None:
    """Commit the crisis consumer groups of this run at the end of the consumed topics, so a fresh
    test service reacts to this test's events instead of replaying every earlier run's."""
    prefix = isolated_environment()["KAFKA_GROUP_PREFIX"]
    for suffix, topic in CONSUMED.items():
        start_group_at_end(settings, f"{prefix}.crisis.{suffix}", topic)


async def ensure_consumed_topics(settings: Settings) -> None:
    from services.plumbing.bus import Topic

    await ensure_topics(settings, [Topic(t, "id", "consumed by crisis") for t in CONSUMED.values()])


class Producer:
    """Produces upstream events as the scheduler / engagement services do."""

    def __init__(self, settings: Settings) -> None:
        self._producer: AIOKafkaProducer = reliable_producer(settings, "crisis-test-upstream")

    async def start(self) -> Producer:
        await self._producer.start()
        return self

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, topic: str, key: str, message: Message, source: str) -> CloudEvent:
        event = CloudEvent.new(source, key, message)
        await self._producer.send_and_wait(topic, event.data, key=key.encode(), headers=record_headers(event))
        return event

    async def scheduled(
        self,
        session_id: str,
        client_ids: list[str],
        clinician_id: str,
        program_id: str = "iop-test",
        facilitators: Sequence[scheduling_pb2.SessionFacilitator] = (),
    ) -> CloudEvent:
        """The session's booking (SessionScheduled), as the scheduler publishes it."""
        now = to_timestamp(datetime.now(UTC))
        return await self.send(
            topics.SESSIONS_IN,
            session_id,
            scheduling_pb2.SessionScheduled(
                session_id=session_id,
                program_id=program_id,
                clinician_id=clinician_id,
                client_ids=client_ids,
                starts_at=now,
                ends_at=now,
                kind=scheduling_pb2.SESSION_KIND_GROUP,
                backup_line="+18005550100",
                treating_facilitators=facilitators,
            ),
            "/iop/scheduler",
        )

    async def session_live(
        self,
        session_id: str,
        client_id: str,
        clinician_id: str,
        location: common_pb2.ClientLocation = SF,
        backup_phone: str = "+14155550134",
        program_id: str = "iop-test",
    ) -> None:
        await self.scheduled(session_id, [client_id], clinician_id, program_id)
        now = to_timestamp(datetime.now(UTC))
        src = "/iop/scheduler"
        await self.send(
            topics.SESSIONS_IN,
            session_id,
            scheduling_pb2.SessionCheckedIn(
                session_id=session_id,
                client_id=client_id,
                location=location,
                privacy_attestation="alone",
                checked_in_at=now,
                backup_phone=backup_phone,
            ),
            src,
        )
        await self.send(
            topics.SESSIONS_IN,
            session_id,
            scheduling_pb2.SessionStarted(
                session_id=session_id,
                clinician_id=clinician_id,
                client_ids=[client_id],
                started_at=now,
                clinician_state="CA",
                backup_line="+18005550100",
                program_id=program_id,
            ),
            src,
        )

    async def drop(self, session_id: str, client_id: str, clinician_id: str) -> CloudEvent:
        return await self.send(
            topics.ATTENDANCE_IN,
            session_id,
            engagement_pb2.ConnectionDropped(
                session_id=session_id,
                client_id=client_id,
                dropped_at=to_timestamp(datetime.now(UTC)),
                clinician_id=clinician_id,
                reason="connection_lost",
                program_id="iop-test",
            ),
            "/iop/engagement",
        )


class Collector:
    """Reads the crisis service's output topics from now on, in the background."""

    def __init__(self, settings: Settings, topic_names: list[str]) -> None:
        self._consumer = AIOKafkaConsumer(
            *topic_names,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            auto_offset_reset="latest",
        )
        self.events: list[tuple[str, CloudEvent, Any, datetime]] = []  # topic, envelope, payload, received at
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Collector:
        await self._consumer.start()
        for _ in range(50):
            if self._consumer.assignment():
                break
            await asyncio.sleep(0.1)
        for tp in self._consumer.assignment():
            await self._consumer.position(tp)  # resolve "latest" now, before anything is produced
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    try:
                        ev = CloudEvent.from_kafka(r.headers, r.value)
                        self.events.append((r.topic, ev, ev.payload(), datetime.now(UTC)))
                    except Exception:  # other producers' test records
                        continue

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()

    def matching(
        self, predicate: Callable[[str, CloudEvent, Any], bool]
    ) -> list[tuple[str, CloudEvent, Any, datetime]]:
        return [e for e in self.events if predicate(e[0], e[1], e[2])]

    async def wait_for(
        self, predicate: Callable[[str, CloudEvent, Any], bool], count: int = 1, timeout_s: float = 15
    ) -> list[tuple[str, CloudEvent, Any, datetime]]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        return self.matching(predicate)


def for_client(client_id: str, type_name: str | None = None) -> Callable[[str, CloudEvent, Any], bool]:
    def predicate(topic: str, ev: CloudEvent, payload: Any) -> bool:
        return getattr(payload, "client_id", None) == client_id and (type_name is None or ev.type.endswith(type_name))

    return predicate


def crisis_db(settings: Settings) -> tuple[AsyncMongoClient[Document], Any]:
    client = mongo_client(settings)
    return client, service_database(client, settings, "crisis")


def stub(target: str) -> tuple[grpc.aio.Channel, crisis_pb2_grpc.CrisisServiceStub]:
    channel = grpc.aio.insecure_channel(target)
    return channel, crisis_pb2_grpc.CrisisServiceStub(channel)


def md(settings: Settings, role: str, subject: str = "test-user") -> list[tuple[str, str]]:
    return auth_metadata(settings, role, subject)


def high_risk_request(client_id: str) -> crisis_pb2.AssessCssrsRequest:
    yes, no = crisis_pb2.ANSWER_YES, crisis_pb2.ANSWER_NO
    return crisis_pb2.AssessCssrsRequest(
        client_id=client_id,
        wish_to_be_dead=yes,
        suicidal_thoughts=yes,
        thoughts_with_method=yes,
        intent=yes,
        plan_with_intent=no,
        suicidal_behavior=no,
    )


def low_risk_request(client_id: str) -> crisis_pb2.AssessCssrsRequest:
    no = crisis_pb2.ANSWER_NO
    return crisis_pb2.AssessCssrsRequest(
        client_id=client_id, wish_to_be_dead=no, suicidal_thoughts=no, suicidal_behavior=no
    )


def safety_plan(client_id: str, **overrides: Any) -> crisis_pb2.SafetyPlan:
    fields: dict[str, Any] = {
        "client_id": client_id,
        "warning_signs": ["withdrawing from friends", "not sleeping"],
        "internal_coping_strategies": ["walk the dog", "breathing exercise"],
        "social_distractions": ["coffee shop on 24th St"],
        "people_to_ask_for_help": ["sister"],
        "professionals_and_agencies": ["988", "IOP clinician"],
        "environment_safety": ["medications locked away by partner"],
        "emergency_contacts": [
            crisis_pb2.EmergencyContact(
                name="Alex Doe", relationship="partner", phone="(415) 555-0199", consent_to_contact=True
            )
        ],
        "backup_phone": "415-555-0134",
        "time_zone": "America/Los_Angeles",
        "program_id": "iop-test",
    }
    fields.update(overrides)
    return crisis_pb2.SafetyPlan(**fields)


async def fired_rungs(db: Any, alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The rung records of an alert (the first is embedded in the header when it fired at open), by index."""
    records = await db.alert_records.find({"alert_id": alert["_id"], "kind": "RUNG"}).to_list()
    return sorted([*alert.get("open_records", []), *records], key=lambda r: r["index"])


def start(proc: ServiceProcess, attempts: int = 3) -> ServiceProcess:
    """Start a service process; retried because the test ports lie inside the ephemeral port range
    (32768-60999), so a bind can fail while some outgoing connection briefly holds the port."""
    for attempt in range(attempts):
        try:
            return proc.start()
        except RuntimeError:  # exited early (a port bind); a TimeoutError (never SERVING) is not retried
            proc.stop()
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
        except TimeoutError:
            proc.stop()  # never leave a half-started process behind
            raise
    return proc


@contextmanager
def crisis_process(env: dict[str, str]) -> Iterator[ServiceProcess]:
    """A crisis process of this test run with `env`; it must stop cleanly (drained)."""
    with until_stopped(start(ServiceProcess("crisis", env=env))) as proc:
        yield proc


@asynccontextmanager
async def producer_and_collector(settings: Settings) -> AsyncIterator[tuple[Producer, Collector]]:
    """A producer of the crisis service's input events, and a collector of all it publishes."""
    producer = await Producer(settings).start()
    collector = await Collector(settings, [t.name for t in topics.ALL]).start()
    try:
        yield producer, collector
    finally:
        await collector.stop()
        await producer.stop()
