"""Dead-letter tool against the real broker and store: records dead-lettered by the real consumer base,
filtered by topic / time / event id, replayed to the original topic exactly once however often replay runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient

from iop.events.v1 import scheduling_pb2
from services.plumbing.bus import Topic, ensure_topics, reliable_producer
from services.plumbing.consumer import EventConsumer, PoisonEvent
from services.plumbing.envelope import CloudEvent
from services.plumbing.ops import deadletters
from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database
from tests.support import RUN_ID, isolated_settings, record_headers, run_module

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> Settings:
    # The records are produced to fresh topics before the consumer starts.
    return isolated_settings(KAFKA_NEW_GROUP_START="earliest")


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    original, dlq = f"t{RUN_ID}.ops.orig{suffix}.v1", f"t{RUN_ID}.ops{suffix}.deadletter.v1"
    await ensure_topics(settings, [Topic(original, "session_id", "test"), Topic(dlq, "key", "test dlq")])
    yield original, dlq
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_topics([original, dlq], raise_errors=False)
    finally:
        admin.close()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = reliable_producer(settings, "test-ops-producer")
    await p.start()
    yield p
    await p.stop()


async def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 15) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list = []  # type: ignore[type-arg]
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            for rs in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(rs)
            if len(records) >= expected:
                await asyncio.sleep(0.5)  # and nothing more arrives
                for rs in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(rs)
                break
    finally:
        await consumer.stop()
    return records


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("services.plumbing.ops.deadletters", *args)


async def test_list_filter_and_idempotent_replay(
    settings: Settings, topics: tuple[str, str], producer: AIOKafkaProducer
) -> None:
    original, dlq = topics
    started = datetime.now(UTC)
    events = [
        CloudEvent.new(
            "/iop/scheduler",
            f"s-{i}",
            scheduling_pb2.SessionScheduled(session_id=f"s-{i}", program_id="poison" if i < 2 else "ok"),
        )
        for i in range(3)
    ]
    for ev in events:
        await producer.send_and_wait(original, ev.data, key=ev.subject.encode(), headers=record_headers(ev))

    async def handle(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        if payload.program_id == "poison":
            raise PoisonEvent("this session can never be applied")

    client = mongo_client(settings)
    db = service_database(client, settings, f"opsdlq{uuid.uuid4().hex[:6]}")
    group = f"t{RUN_ID}.ops.dlqtest"
    consumer = EventConsumer(
        settings=settings,
        group_id=group,
        topics=[original],
        handlers={"iop.events.v1.SessionScheduled": handle},
        db=db,
        producer=producer,
        dead_letter_topic=dlq,
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    deadline = asyncio.get_running_loop().time() + 20
    while consumer.dead_lettered + consumer.applied < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await consumer.stop()
    await task
    assert consumer.dead_lettered == 2

    bootstrap = settings.kafka_bootstrap_servers
    letters = await asyncio.to_thread(lambda: list(deadletters.read(bootstrap, [dlq], deadletters.Filters())))
    assert sorted(d.event_id for d in letters) == sorted(e.id for e in events[:2])
    first = next(d for d in letters if d.event_id == events[0].id)
    assert first.original_topic == original
    assert first.header("dlq_consumer_group") == group
    assert first.header("dlq_error_type") == "PoisonEvent"

    def count(**kw: object) -> int:
        return len(list(deadletters.read(bootstrap, [dlq], deadletters.Filters(**kw))))  # type: ignore[arg-type]

    assert await asyncio.to_thread(count, event_id=events[1].id) == 1
    assert await asyncio.to_thread(count, original_topic=original, since=started - timedelta(minutes=1)) == 2
    assert await asyncio.to_thread(count, since=datetime.now(UTC) + timedelta(minutes=1)) == 0
    assert await asyncio.to_thread(count, until=started - timedelta(minutes=1)) == 0
    assert await asyncio.to_thread(count, original_topic="some.other.topic.v1") == 0

    listed = await asyncio.to_thread(cli, "list", "--dlq-topic", dlq, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {json.loads(line)["ce_id"] for line in listed.stdout.splitlines()} == {events[0].id, events[1].id}

    # The same event dead-lettered by a second group too (as the consumer base would write it).
    other_group = [(k, b"other.group" if k == "dlq_consumer_group" else v) for k, v in first.headers]
    await producer.send_and_wait(dlq, first.value, key=first.key, headers=other_group)

    # Replay that event twice through the CLI: one re-publish for both dead letters; the second run skips them.
    runs = []
    for _ in range(2):
        out = await asyncio.to_thread(cli, "replay", "--dlq-topic", dlq, "--event-id", events[0].id)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert runs == [{"replayed": 2, "published": 1, "skipped": 0}, {"replayed": 0, "published": 0, "skipped": 2}]

    # A replay interrupted after claiming the ledger entry (pending) is completed by the next one, once.
    mongo, ledger = deadletters.ledger(settings)
    second = next(d for d in letters if d.event_id == events[1].id)
    ledger.insert_one({"_id": second.ledger_id, "status": "pending"})
    kafka_producer = deadletters.replay_producer(bootstrap)
    try:
        done = await asyncio.to_thread(deadletters.replay, [second], kafka_producer, ledger, "test")
        again = await asyncio.to_thread(deadletters.replay, [second], kafka_producer, ledger, "test")
    finally:
        kafka_producer.close()
    assert done.replayed == [second.ledger_id] and done.published == 1
    assert again.skipped == [second.ledger_id] and again.published == 0
    entry = ledger.find_one({"_id": first.ledger_id})
    assert entry is not None and entry["status"] == "published" and entry["original_topic"] == original

    # On the original topic: each replayed event exactly once more, as it was (key, value, headers minus dlq_*).
    records = await read_topic(settings, original, expected=5)
    by_id: dict[str, list] = {}  # type: ignore[type-arg]
    for r in records:
        by_id.setdefault(dict(r.headers)["ce_id"].decode(), []).append(r)
    assert len(by_id[events[0].id]) == 2 and len(by_id[events[1].id]) == 2 and len(by_id[events[2].id]) == 1
    source, replayed = by_id[events[0].id]
    assert replayed.key == source.key and replayed.value == source.value
    assert list(replayed.headers) == list(source.headers)
    assert not any(k.startswith("dlq_") for k, _ in replayed.headers)

    mongo.drop_database(ledger.database.name)
    mongo.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_groups([group])
    except Exception:
        pass
    finally:
        admin.close()
    await client.drop_database(db.name)
    await client.close()
