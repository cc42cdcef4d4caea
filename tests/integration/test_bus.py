"""The event plumbing against the real broker and store: envelope, outbox, consumer base."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from iop.events.v1 import crisis_pb2 as crisis_events
from iop.events.v1 import scheduling_pb2
from services.plumbing import bus, consumer
from services.plumbing.bus import Topic, ensure_topics, reliable_producer, send_event
from services.plumbing.consumer import (
    CLAIMED_COLLECTION,
    PROCESSED_COLLECTION,
    EventConsumer,
    PoisonEvent,
    delivery_is_first,
)
from services.plumbing.envelope import CloudEvent
from services.plumbing.outbox import OutboxRelay, OutgoingEvent, new_document_with_outbox, with_outbox
from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database
from tests.support import isolated_settings, record_headers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> Settings:
    # Each test here writes to its own fresh topic before its consumer starts.
    return isolated_settings(KAFKA_NEW_GROUP_START="earliest")


def unique(name: str) -> str:
    return f"test.{name}.{uuid.uuid4().hex[:10]}.v1"


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = reliable_producer(settings, "test-producer")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def db(settings: Settings):  # type: ignore[no-untyped-def]
    client = mongo_client(settings)
    yield service_database(client, settings, f"bus{uuid.uuid4().hex[:6]}")
    await client.close()


async def read_all(settings: Settings, topic: str, expected: int, timeout_s: float = 20) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list = []  # type: ignore[type-arg]
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for rs in batch.values():
                records.extend(rs)
    finally:
        await consumer.stop()
    return records


def scheduled(session_id: str) -> scheduling_pb2.SessionScheduled:
    return scheduling_pb2.SessionScheduled(session_id=session_id, clinician_id="c-1", client_ids=["k-1"])


async def run_until(consumer: EventConsumer, condition, timeout_s: float = 20) -> None:  # type: ignore[no-untyped-def]
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not condition() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await task


def scheduled_consumer(
    settings: Settings, topic: str, handler, producer, db, marker_window_s: float = 0.05
) -> EventConsumer:  # type: ignore[no-untyped-def]
    """A consumer of `topic` in its own group, `handler` for SessionScheduled."""
    return EventConsumer(
        settings=settings,
        group_id=f"g-{topic}",
        topics=[topic],
        handlers={"iop.events.v1.SessionScheduled": handler},
        db=db,
        producer=producer,
        dead_letter_topic=f"{topic}.dlq",
        marker_window_s=marker_window_s,
    )


async def test_send_event_makes_the_producer_span_whose_context_its_record_carries(
    settings: Settings, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(bus, "_tracer", provider.get_tracer("test"))
    topic = unique("send")
    await ensure_topics(settings, [Topic(topic, "session id", "test")])
    event = CloudEvent.new("/test", "s-9", scheduling_pb2.SessionScheduled(session_id="s-9"))
    with provider.get_tracer("test").start_as_current_span("caller") as caller:
        await (await send_event(producer, topic, event))  # acknowledged by the broker
    [record] = await read_all(settings, topic, 1)
    [send] = [s for s in spans.get_finished_spans() if s.name == f"{topic} send"]
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None and send.parent.span_id == caller.get_span_context().span_id
    assert send.context is not None
    headers = {k: v.decode() for k, v in record.headers}
    _, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{send.context.trace_id:032x}", f"{send.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    assert (headers["ce_id"], headers["ce_subject"], record.key, record.value) == (event.id, "s-9", b"s-9", event.data)
    attributes = dict(send.attributes or {})
    assert (attributes["messaging.system"], attributes["messaging.destination.name"]) == ("kafka", topic)


async def test_a_send_that_fails_ends_its_producer_span_with_the_error(
    producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(bus, "_tracer", provider.get_tracer("test"))

    async def no_metadata(*args: object, **kwargs: object) -> None:  # what aiokafka raises after max_block_ms
        raise KafkaTimeoutError

    monkeypatch.setattr(AIOKafkaProducer, "send", no_metadata)
    event = CloudEvent.new("/test", "s-8", scheduling_pb2.SessionScheduled(session_id="s-8"))
    with pytest.raises(KafkaTimeoutError):
        await send_event(producer, unique("send-fails"), event)
    [send] = spans.get_finished_spans()
    assert not send.status.is_ok and send.status.description == "KafkaTimeoutError"
    assert [e.name for e in send.events] == ["exception"]


async def test_same_event_delivered_twice_is_applied_once(settings, producer, db) -> None:
    topic = unique("dedupe")
    await ensure_topics(settings, [Topic(topic, "session_id", "test")])
    event = CloudEvent.new("/test", "s-1", scheduled("s-1"))
    for _ in range(2):
        await producer.send_and_wait(topic, event.data, key=b"s-1", headers=record_headers(event))
    other = CloudEvent.new("/test", "s-2", scheduled("s-2"))
    await producer.send_and_wait(topic, other.data, key=b"s-2", headers=record_headers(other))

    async def count(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        # deliberately NOT idempotent: only the consumer base stands between a redelivery and a double count
        await db.counters.update_one({"_id": payload.session_id}, {"$inc": {"n": 1}}, upsert=True)

    consumer = scheduled_consumer(settings, topic, count, producer, db)
    await run_until(consumer, lambda: consumer.applied + consumer.duplicates >= 3)
    assert consumer.applied == 2
    assert consumer.duplicates == 1
    assert (await db.counters.find_one({"_id": "s-1"}))["n"] == 1

    # Redelivery after a restart (as when a consumer crashed before committing):
    # a new instance of the same group sees both events again and applies neither.
    for ev, key in ((event, b"s-1"), (other, b"s-2")):
        await producer.send_and_wait(topic, ev.data, key=key, headers=record_headers(ev))
    restarted = scheduled_consumer(settings, topic, count, producer, db)
    await run_until(restarted, lambda: restarted.duplicates >= 2)
    assert restarted.applied == 0 and restarted.duplicates == 2
    assert (await db.counters.find_one({"_id": "s-1"}))["n"] == 1
    assert (await db.counters.find_one({"_id": "s-2"}))["n"] == 1


async def test_events_not_of_the_consumers_business_leave_no_claim_marker_or_span(
    settings, producer, db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A type without handler, and one whose payload the consumer's `wanted` predicate rejects, are
    acknowledged as they are; the accepted ones are applied (claimed, marked, in a span), and so is
    one the predicate fails on; a wanted type's payload that does not decode is still dead-lettered."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(consumer, "tracer", provider.get_tracer("test"))
    topic = unique("wanted")
    await ensure_topics(settings, [Topic(topic, "k", "test"), Topic(f"{topic}.dlq", "k", "test")])
    kept, skipped = CloudEvent.new("/test", "keep-1", scheduled("keep-1")), CloudEvent.new("/test", "x", scheduled("x"))
    unhandled = CloudEvent.new("/test", "r", crisis_events.RiskLevelChanged(client_id="r"))
    broken = CloudEvent.new("/test", "keep-2", scheduled("keep-2"))
    puzzling = CloudEvent.new("/test", "boom", scheduled("boom"))
    for ev in (skipped, unhandled, kept, puzzling):
        await producer.send_and_wait(topic, ev.data, key=ev.subject.encode(), headers=record_headers(ev))
    await producer.send_and_wait(topic, b"\xff\xff\xff", key=b"keep-2", headers=record_headers(broken))
    applied: list[str] = []

    async def on_scheduled(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        applied.append(payload.session_id)

    def keep(payload: scheduling_pb2.SessionScheduled) -> bool:
        if payload.session_id == "boom":
            raise ValueError("a filter with a bug")
        return payload.session_id.startswith("keep")

    wanted_consumer = EventConsumer(
        settings=settings,
        group_id=f"g-{topic}",
        topics=[topic],
        handlers={"iop.events.v1.SessionScheduled": on_scheduled},
        wanted={"iop.events.v1.SessionScheduled": keep},
        db=db,
        producer=producer,
        dead_letter_topic=f"{topic}.dlq",
        marker_window_s=0.01,
    )
    await run_until(
        wanted_consumer,
        lambda: wanted_consumer.applied + wanted_consumer.ignored + wanted_consumer.dead_lettered >= 5,
    )
    assert sorted(applied) == ["boom", "keep-1"]
    assert (wanted_consumer.applied, wanted_consumer.ignored, wanted_consumer.dead_lettered) == (2, 2, 1)
    claimed = {d["_id"] for d in await db[CLAIMED_COLLECTION].find({}, {"_id": 1}).to_list()}
    assert claimed == {f"g-{topic}:{e.id}" for e in (kept, broken, puzzling)}
    marked = {d["_id"] for d in await db[PROCESSED_COLLECTION].find({}, {"_id": 1}).to_list()}
    assert marked == {f"g-{topic}:{e.id}" for e in (kept, puzzling)}
    processed = [dict(s.attributes or {}) for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert {str(a["messaging.message.id"]) for a in processed} == {kept.id, broken.id, puzzling.id}


async def test_markers_are_written_in_windows_and_a_handler_knows_a_first_attempt(settings, producer, db) -> None:
    topic = unique("window")
    await ensure_topics(settings, [Topic(topic, "session_id", "test")])
    first_seen: dict[str, list[bool]] = {}

    async def record(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        first_seen.setdefault(payload.session_id, []).append(delivery_is_first())
        if payload.session_id == "s-flaky" and len(first_seen["s-flaky"]) == 1:
            raise RuntimeError("transient")  # the retry may follow a partial write: not a first attempt

    consumer = scheduled_consumer(settings, topic, record, producer, db, marker_window_s=60)  # none before the stop
    event = CloudEvent.new("/test", "s-1", scheduled("s-1"))
    await producer.send_and_wait(topic, event.data, key=b"s-1", headers=record_headers(event))
    flaky = CloudEvent.new("/test", "s-flaky", scheduled("s-flaky"))
    await producer.send_and_wait(topic, flaky.data, key=b"s-flaky", headers=record_headers(flaky))
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while consumer.applied < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert await db[PROCESSED_COLLECTION].count_documents({}) == 0  # still in the window
        # A redelivery before its marker is written: this process knows it applied the event.
        await producer.send_and_wait(topic, event.data, key=b"s-1", headers=record_headers(event))
        deadline = asyncio.get_running_loop().time() + 20
        while consumer.duplicates < 1 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await task
    assert consumer.applied == 2 and consumer.duplicates == 1
    assert first_seen == {"s-1": [True], "s-flaky": [True, False]}
    assert await db[PROCESSED_COLLECTION].count_documents({}) == 2  # the stop wrote them

    # After a restart the markers say it: a redelivery is a duplicate, never a first attempt.
    await producer.send_and_wait(topic, flaky.data, key=b"s-flaky", headers=record_headers(flaky))
    restarted = scheduled_consumer(settings, topic, record, producer, db)
    await run_until(restarted, lambda: restarted.duplicates >= 1)
    assert restarted.applied == 0 and restarted.duplicates == 1
    assert first_seen == {"s-1": [True], "s-flaky": [True, False]}


async def send_scheduled(producer: AIOKafkaProducer, topic: str, keyed: list[tuple[str, str]]) -> None:
    for key, session_id in keyed:
        event = CloudEvent.new("/test", session_id, scheduled(session_id))
        await producer.send_and_wait(topic, event.data, key=key.encode(), headers=record_headers(event))


async def test_keys_are_applied_side_by_side_each_in_its_own_order(settings, producer, db) -> None:
    topic = unique("lanes")
    await ensure_topics(settings, [Topic(topic, "k", "test", partitions=1)])
    await send_scheduled(producer, topic, [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3")])
    order: list[str] = []
    b_done = asyncio.Event()

    async def handler(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        if payload.session_id == "a1":  # key a waits for key b: only a second lane can get there
            await asyncio.wait_for(b_done.wait(), timeout=10)
        order.append(payload.session_id)
        if payload.session_id == "b2":
            b_done.set()

    consumer = scheduled_consumer(settings, topic, handler, producer, db)
    await run_until(consumer, lambda: consumer.applied + consumer.dead_lettered >= 5)
    assert consumer.dead_lettered == 0
    assert order == ["b1", "b2", "a1", "a2", "a3"]


async def test_one_key_on_two_topics_is_one_lane(settings, producer, db) -> None:
    """A session's facts and its signals come on two topics, both keyed by session id: applied one
    after the other even within one batch, since both update the session's document (FerretDB
    loses one of two concurrent updates of a document)."""
    facts, signals = unique("lanes-facts"), unique("lanes-signals")
    await ensure_topics(settings, [Topic(facts, "k", "test", partitions=1), Topic(signals, "k", "test", partitions=1)])
    running: set[str] = set()
    overlaps: list[tuple[str, str]] = []
    applied: list[str] = []

    async def handler(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        key = payload.session_id.split("/")[0]
        if key in running:
            overlaps.append((key, payload.session_id))
        running.add(key)
        await asyncio.sleep(0.05)
        running.discard(key)
        applied.append(payload.session_id)

    def record(topic: str, offset: int, key: str, name: str) -> ConsumerRecord[bytes, bytes]:
        event = CloudEvent.new("/test", key, scheduled(name))
        value, headers = event.data, record_headers(event)
        return ConsumerRecord(topic, 0, offset, 0, 0, key.encode(), value, None, len(key), len(value), headers)

    consumer = scheduled_consumer(settings, facts, handler, producer, db)
    batch = [
        record(facts, 0, "a", "a/fact"),
        record(facts, 1, "b", "b/fact"),
        record(signals, 0, "a", "a/signal-1"),
        record(signals, 1, "a", "a/signal-2"),
    ]
    done = await consumer._process_batch(batch)
    assert overlaps == []
    assert [n for n in applied if n.startswith("a/")] == ["a/fact", "a/signal-1", "a/signal-2"]
    assert "b/fact" in applied[:2]  # another key still runs beside them
    assert done == {TopicPartition(facts, 0): 2, TopicPartition(signals, 0): 2}


async def test_a_stop_commits_only_the_unbroken_run_of_handled_records(settings, producer, db) -> None:
    topic = unique("lanes-stop")
    await ensure_topics(settings, [Topic(topic, "k", "test", partitions=1)])
    # offsets 0..3: key a's first record is in hand when the stop comes; key b is done by then
    await send_scheduled(producer, topic, [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2")])
    applied: list[str] = []
    release_a1 = asyncio.Event()

    async def handler(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        if payload.session_id == "a1":
            await release_a1.wait()
        applied.append(payload.session_id)

    consumer = scheduled_consumer(settings, topic, handler, producer, db)
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    deadline = asyncio.get_running_loop().time() + 20
    while len(applied) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert applied == ["b1", "b2"]
    stopping = asyncio.create_task(consumer.stop())
    while not consumer._stopping:
        await asyncio.sleep(0.01)
    release_a1.set()  # the record in hand finishes; a2 is not started
    await stopping
    await task
    assert applied == ["b1", "b2", "a1"]

    # offsets 0 (a1) and 1 (b1) are committed; 2 (a2) was never handled, so 2 and 3 come again
    restarted = scheduled_consumer(settings, topic, handler, producer, db)
    await run_until(restarted, lambda: restarted.applied + restarted.duplicates >= 2)
    assert (restarted.applied, restarted.duplicates) == (1, 1)
    assert applied == ["b1", "b2", "a1", "a2"]


async def test_poison_events_go_to_dead_letter_and_consumer_keeps_going(settings, producer, db) -> None:
    topic, dlq = unique("poison"), unique("poison-dlq")
    await ensure_topics(settings, [Topic(topic, "k", "test"), Topic(dlq, "k", "test")])
    # 1. no CloudEvents headers at all
    await producer.send_and_wait(topic, b"not an event", key=b"a")
    # 2. valid envelope, payload that does not decode as its type
    bad_payload = CloudEvent.new("/test", "b", scheduled("b"))
    await producer.send_and_wait(topic, b"\xff\xff\xff", key=b"b", headers=record_headers(bad_payload))
    # 3. a handler that rejects the event outright
    rejected = CloudEvent.new("/test", "c", scheduling_pb2.SessionScheduled(session_id=""))
    await producer.send_and_wait(topic, rejected.data, key=b"c", headers=record_headers(rejected))
    # 4. a handler that keeps failing: retried, then dead-lettered
    failing = CloudEvent.new("/test", "d", crisis_events.RiskLevelChanged(client_id="d"))
    await producer.send_and_wait(topic, failing.data, key=b"d", headers=record_headers(failing))
    # 5. a good event after all of them
    good = CloudEvent.new("/test", "e", scheduled("e"))
    await producer.send_and_wait(topic, good.data, key=b"e", headers=record_headers(good))

    applied: list[str] = []
    attempts = {"n": 0}

    async def on_scheduled(ev: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        if not payload.session_id:
            raise PoisonEvent("session_id is required")
        applied.append(payload.session_id)

    async def on_risk(ev: CloudEvent, payload: crisis_events.RiskLevelChanged) -> None:
        attempts["n"] += 1
        raise ConnectionError("downstream unavailable")

    consumer = EventConsumer(
        settings=settings,
        group_id=f"g-{topic}",
        topics=[topic],
        handlers={"iop.events.v1.SessionScheduled": on_scheduled, "iop.events.v1.RiskLevelChanged": on_risk},
        db=db,
        producer=producer,
        dead_letter_topic=dlq,
    )
    await run_until(consumer, lambda: consumer.dead_lettered >= 4 and applied)
    assert applied == ["e"]
    assert attempts["n"] == settings.consumer_max_attempts

    dead = await read_all(settings, dlq, expected=4)
    assert len(dead) == 4
    by_key = {r.key: dict(r.headers) for r in dead}
    assert by_key[b"a"]["dlq_error_type"] == b"EnvelopeError"
    assert b"missing CloudEvents headers" in by_key[b"a"]["dlq_error_message"]
    assert by_key[b"b"]["dlq_error_type"] == b"EnvelopeError"
    assert by_key[b"c"]["dlq_error_type"] == b"PoisonEvent"
    assert by_key[b"d"]["dlq_error_type"] == b"ConnectionError"
    assert by_key[b"d"]["dlq_error_message"] == b"ConnectionError"  # not its message: it may quote data
    assert by_key[b"d"]["dlq_attempts"] == str(settings.consumer_max_attempts).encode()
    for headers in by_key.values():
        assert headers["dlq_original_topic"] == topic.encode()
        assert headers["dlq_consumer_group"] == f"g-{topic}".encode()
    # the original CloudEvents headers travel with the dead letter, for replay
    assert by_key[b"d"]["ce_id"] == failing.id.encode()


async def test_outbox_write_is_one_document_and_relay_publishes_in_order(settings, producer, db) -> None:
    topic = unique("outbox")
    await ensure_topics(settings, [Topic(topic, "k", "test")])
    events = [OutgoingEvent(topic, "agg-1", scheduled(f"s-{i}")) for i in range(3)]
    await db.aggs.insert_one(new_document_with_outbox({"_id": "agg-1", "state": 1}, "/test", events[:1]))
    await db.aggs.update_one({"_id": "agg-1"}, with_outbox({"$set": {"state": 2}}, "/test", events[1:]))
    doc = await db.aggs.find_one({"_id": "agg-1"})
    assert doc["state"] == 2 and len(doc["outbox"]) == 3

    relay = OutboxRelay(db, ["aggs"], producer)
    relay.notify("aggs", "agg-1")
    assert await relay.publish_hinted() == 3
    relay.notify("aggs", "agg-1")
    assert await relay.publish_hinted() == 0  # each entry is published once per relay
    assert await relay.publish_pending() == 0  # and the sweep knows they were sent
    # the relay never writes the aggregate (on FerretDB an update is read-modify-write
    # and could undo a concurrent state change): the published ids are recorded apart,
    # in batches a moment later
    assert await db.aggs.find_one({"_id": "agg-1"}) == doc
    await relay.record_published()
    published = {m["_id"] for m in await db.outbox_published.find({}).to_list()}
    assert published == {e["id"] for e in doc["outbox"]}

    records = await read_all(settings, topic, expected=3)
    payloads = [scheduling_pb2.SessionScheduled.FromString(r.value).session_id for r in records]
    assert payloads == ["s-0", "s-1", "s-2"]  # one key, one partition, write order
    headers = dict(records[0].headers)
    assert headers["ce_type"] == b"iop.events.v1.SessionScheduled"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/protobuf"
    assert records[0].key == b"agg-1"
    event = CloudEvent.from_kafka(records[0].headers, records[0].value)
    assert event.time > datetime.now(UTC) - timedelta(minutes=1)


async def test_relay_publishes_stored_writes_as_written_and_sweeps_what_no_hint_named(settings, producer, db) -> None:
    topic = unique("outbox-sweep")
    await ensure_topics(settings, [Topic(topic, "k", "test")])
    relay = OutboxRelay(db, ["aggs"], producer, poll_interval_s=0.05, sweep_interval_s=0.2, sweep_min_age_s=0.3)
    task = asyncio.create_task(relay.run())
    try:
        # a write this process made and hinted: published from the write itself
        written = new_document_with_outbox({"_id": "agg-w"}, "/test", [OutgoingEvent(topic, "agg-w", scheduled("w"))])
        await db.aggs.insert_one(written)
        relay.notify("aggs", "agg-w", written)
        # a write no hint names (another instance that crashed before publishing): the sweep finds it
        orphan = new_document_with_outbox({"_id": "agg-o"}, "/test", [OutgoingEvent(topic, "agg-o", scheduled("o"))])
        await db.aggs.insert_one(orphan)
        records = await read_all(settings, topic, expected=2, timeout_s=20)
        assert sorted(scheduling_pb2.SessionScheduled.FromString(r.value).session_id for r in records) == ["o", "w"]
        await asyncio.sleep(1.0)  # more sweeps: nothing is published twice
        assert len(await read_all(settings, topic, expected=3, timeout_s=2)) == 2
        published = {m["_id"] for m in await db.outbox_published.find({}).to_list()}
        assert published == {written["outbox"][0]["id"], orphan["outbox"][0]["id"]}
    finally:
        await relay.drain()
        task.cancel()


async def test_a_sweep_publishes_only_the_entries_nobody_sent_in_write_order(settings, producer, db) -> None:
    topic = unique("outbox-partial")
    await ensure_topics(settings, [Topic(topic, "k", "test")])
    events = [OutgoingEvent(topic, "agg-p", scheduled(f"p-{i}")) for i in range(4)]
    written = new_document_with_outbox({"_id": "agg-p", "state": 1}, "/test", events)
    await db.aggs.insert_one(written)
    entries = written["outbox"]
    # the first was sent by another relay (its marker is stored); the others by nobody
    await db.outbox_published.insert_one({"_id": entries[0]["id"], "topic": topic, "published_at": datetime.now(UTC)})
    relay = OutboxRelay(db, ["aggs"], producer)
    assert await relay.publish_pending() == 3
    records = await read_all(settings, topic, expected=3)
    assert [scheduling_pb2.SessionScheduled.FromString(r.value).session_id for r in records] == ["p-1", "p-2", "p-3"]
    assert [dict(r.headers)["ce_id"].decode() for r in records] == [e["id"] for e in entries[1:]]
    assert await relay.publish_pending() == 0  # all four are known as sent now
    await relay.drain()
    published = {m["_id"] for m in await db.outbox_published.find({}).to_list()}
    assert published == {e["id"] for e in entries}
