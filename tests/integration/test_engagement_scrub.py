"""The scrub of the leave reasons that ledgers stored before 162bf8e (Zoom's text, display names
included), on the real store: each database of its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pymongo import AsyncMongoClient, MongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from iop.events.v1 import engagement_pb2
from services.engagement.domain import (
    JOINED,
    LEFT,
    QUALITY,
    LedgerSignal,
    attendance_for,
    ends_dip,
    is_drop,
    is_normal_leave,
    kept_leave_reason,
)
from services.engagement.rules import load_rules
from services.engagement.scrub_leave_reasons import (
    EARLIER_MIGRATION_IDS,
    MIGRATION_ID,
    Counts,
    Status,
    check,
    scrub,
    scrub_ledger,
    scrub_outbox,
)
from services.engagement.store import ATTENDANCE_COLLECTION, AttendanceStore, ledger_signals
from services.engagement.topics import ATTENDANCE
from services.plumbing import migrations
from services.plumbing.bus import Topic, ensure_topics, reliable_producer
from services.plumbing.migrations import MIGRATIONS_COLLECTION
from services.plumbing.outbox import PUBLISHED_COLLECTION, OutboxRelay, OutgoingEvent, new_document_with_outbox
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from services.plumbing.storage import Document, mongo_client
from tests.integration.test_bus import read_all
from tests.integration.test_engagement_support import engagement_env, scheduled, wait_until
from tests.support import RUN_ID, ServiceProcess, run_module, until_stopped, wait_for_trace

pytestmark = pytest.mark.integration

RULES = load_rules()
NAME = "Xanthe Quillfeather"  # a display name Zoom put in its text
START = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
RAW = [
    f"{NAME} got disconnected from the meeting.",  # a lost connection, named
    f"{NAME} left the meeting got disconnected from the meeting.",  # named, holding a normal reason
    f"left the meeting. Reason : {NAME} got disconnected from the meeting.",
    f"{NAME} left the meeting.",  # the client's own leave, named
    f"left the meeting. Reason : {NAME} left the meeting.",
    "left the meeting. Reason :",  # Zoom's empty reason: kept as it is
    "left the meeting. Reason : Host ended the meeting.",
    "Network connection error.",
    "Removed by host.",
]
KEPT = ["left the meeting", "host ended the meeting", "", "left the meeting. Reason :"]
RAW_COUNT = sum(kept_leave_reason(r, RULES) != r for r in RAW)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = mongo_client(settings)
    database = client[f"{settings.mongodb_database_prefix}scrub{uuid.uuid4().hex[:6]}"]
    try:
        yield database
    finally:
        await client.drop_database(database.name)
        await client.close()


def signal(kind: str, participant: str, minute: int, reason: str = "", value: float = 0.0) -> LedgerSignal:
    return LedgerSignal(uuid.uuid4().hex, participant, kind, START + timedelta(minutes=minute), value, reason, "video")


async def ledger(store: AttendanceStore, reasons: list[str]) -> str:
    """A ledger as the consumer wrote it before 162bf8e: each reason stored as given, each leave of a
    client after a join and a quality dip (so `ends_dip` has a dip to end)."""
    session_id = uuid.uuid4().hex
    clients = ["client-a", "client-b"]
    await store.expect_session(f"opened-{session_id}", scheduled(session_id, "clinician-s", clients, START))
    for i, reason in enumerate(reasons):
        client = clients[i % 2]
        for s in (
            signal(JOINED, client, 3 * i),
            signal(QUALITY, client, 3 * i + 1, value=0.0),
            signal(LEFT, client, 3 * i + 2, reason),
        ):
            await append(store, session_id, s)
    return session_id


async def append(store: AttendanceStore, session_id: str, s: LedgerSignal) -> None:
    """Appended as the ledger consumer does (with entries it recomputes: here a marker of the signal)."""
    assert await store.add_signal(session_id, s, [{"client_id": s.participant_id, "last": s.signal_id}], [], [])


async def ledgers(db: AsyncDatabase[Document]) -> dict[str, Document]:
    return {doc["_id"]: doc async for doc in db[ATTENDANCE_COLLECTION].find({})}


def judged(doc: Document) -> list[tuple[str, bool, bool, bool]]:
    """Each signal's judgments on its reason."""
    signals = ledger_signals(doc)
    return [(s.signal_id, is_drop(s, RULES), is_normal_leave(s, RULES), ends_dip(s, RULES)) for s in signals]


def attendance(doc: Document) -> list[Any]:
    signals = ledger_signals(doc)
    return [attendance_for(c, signals, START, START + timedelta(hours=1), None, RULES) for c in doc["client_ids"]]


def without_reasons(doc: Document) -> Document:
    return {**doc, "signals": [{k: v for k, v in s.items() if k != "r"} for s in doc.get("signals", [])]}


def assert_kept(doc: Document) -> None:
    for s in doc.get("signals", []):
        expected = kept_leave_reason(s["r"], RULES) if s["k"] == LEFT else ""
        assert s["r"] == expected, s
    assert NAME.lower() not in json.dumps(doc, default=str).lower()


DROPPED = engagement_pb2.ConnectionDropped.DESCRIPTOR.full_name


def dropped(session_id: str, client_id: str, reason: str, topic: str = ATTENDANCE.name) -> OutgoingEvent:
    """A ConnectionDropped as the ledger published it before 162bf8e: with the platform's reason."""
    message = engagement_pb2.ConnectionDropped(
        session_id=session_id,
        client_id=client_id,
        dropped_at=to_timestamp(START + timedelta(minutes=7)),
        clinician_id="clinician-s",
        reason=reason,
        program_id="program-p",
    )
    return OutgoingEvent(topic, session_id, message)


def attendance_recorded(session_id: str, topic: str = ATTENDANCE.name) -> OutgoingEvent:
    message = engagement_pb2.AttendanceRecorded(session_id=session_id, client_id="client-a", status="left_early")
    return OutgoingEvent(topic, session_id, message)


async def ledger_with_outbox(
    db: AsyncDatabase[Document], kept_reasons: bool = False, topic: str = ATTENDANCE.name
) -> str:
    """A ledger as the code before 162bf8e wrote it, with an outbox (`new_document_with_outbox`): a
    ConnectionDropped with Zoom's raw text, one already "connection_lost", an AttendanceRecorded; then
    a raw leave appended by the ledger consumer with its ConnectionDropped (raw as well). The signals'
    reasons in kept form if `kept_reasons` (the first scrub passed the ledger). Its events go to
    `topic` when published."""
    session_id = uuid.uuid4().hex
    doc = {
        "_id": session_id,
        "clinician_id": "clinician-s",
        "program_id": "program-p",
        "starts_at": START,
        "ends_at": START + timedelta(hours=1),
        "client_ids": ["client-a", "client-b"],
        "entries": [],
        "signals": [],
        "signal_ids": [],
        "ended": False,
    }
    events = [
        dropped(session_id, "client-a", RAW[0], topic),
        attendance_recorded(session_id, topic),
        dropped(session_id, "client-b", "connection_lost", topic),
    ]
    await db[ATTENDANCE_COLLECTION].insert_one(new_document_with_outbox(doc, "/iop/engagement", events))
    store = AttendanceStore(db, "/iop/engagement")
    reason = kept_leave_reason(RAW[0], RULES) if kept_reasons else RAW[0]
    late = signal(LEFT, "client-b", 9, reason)
    raw_drop = dropped(session_id, "client-b", RAW[2], topic)
    assert await store.add_signal(session_id, late, [], [raw_drop], [uuid.uuid4().hex])
    return session_id


RAW_EVENTS = 2  # in each ledger_with_outbox


def decoded(entry: Document) -> engagement_pb2.ConnectionDropped:
    return engagement_pb2.ConnectionDropped.FromString(entry["data"])


def assert_outbox_scrubbed(before: Document, after: Document) -> None:
    """Each ConnectionDropped of `before`'s outbox has reason "connection_lost" in `after`, every other
    field (of the event and the entry) as it was; every other entry as it was."""
    assert len(after["outbox"]) >= len(before["outbox"])
    for old, new in zip(before["outbox"], after["outbox"], strict=False):
        if old["type"] != DROPPED:
            assert new == old
            continue
        assert {k: v for k, v in new.items() if k != "data"} == {k: v for k, v in old.items() if k != "data"}
        event, expected = decoded(new), decoded(old)
        expected.reason = "connection_lost"
        assert event == expected
        if decoded(old).reason == "connection_lost":
            assert new["data"] == old["data"]
    assert NAME.lower() not in json.dumps(after["outbox"], default=str).lower()


async def record(db: AsyncDatabase[Document]) -> Document:
    found = await db[MIGRATIONS_COLLECTION].find_one({"_id": MIGRATION_ID})
    assert found is not None
    return found


async def test_raw_reasons_are_rewritten_to_kept_form_with_the_same_judgments_and_nothing_else(
    db: AsyncDatabase[Document],
) -> None:
    store = AttendanceStore(db, "/iop/engagement")
    raw = await ledger(store, RAW)
    kept = await ledger(store, KEPT)
    empty = await ledger(store, [])
    before = await ledgers(db)
    assert NAME in json.dumps(before[raw], default=str)

    status, counts = await scrub(db, RULES, "owner-1", chunk=2, pause_s=0)

    assert status is Status.COMPLETED
    assert RAW_COUNT == 8  # all but Zoom's empty reason, which is its kept form
    assert counts == Counts(scanned=3, ledgers=1, reasons=RAW_COUNT)
    after = await ledgers(db)
    for session_id in (raw, kept, empty):
        assert_kept(after[session_id])
        assert judged(after[session_id]) == judged(before[session_id])
        assert attendance(after[session_id]) == attendance(before[session_id])
        assert without_reasons(after[session_id]) == without_reasons(before[session_id])
    assert [s["r"] for s in after[raw]["signals"] if s["k"] == LEFT] == [
        "",
        "",
        "",
        "left the meeting",
        "left the meeting",
        "left the meeting. Reason :",
        "host ended the meeting",
        "",
        "removed by host",
    ]
    assert after[kept] == before[kept]
    done = await record(db)
    assert done["completed_at"] is not None
    assert (done["scanned"], done["ledgers"], done["reasons"]) == (3, 1, RAW_COUNT)


async def test_a_second_run_changes_nothing(db: AsyncDatabase[Document]) -> None:
    store = AttendanceStore(db, "/iop/engagement")
    for _ in range(3):
        await ledger(store, RAW)
    assert (await scrub(db, RULES, "owner-1", pause_s=0))[0] is Status.COMPLETED
    scrubbed = await ledgers(db)
    first = await record(db)

    assert await scrub(db, RULES, "owner-2", pause_s=0) == (Status.ALREADY_COMPLETED, Counts())
    assert await ledgers(db) == scrubbed
    assert await record(db) == first
    # a new pass finds nothing to rewrite
    assert await scrub(db, RULES, "owner-2", again=True, pause_s=0) == (Status.COMPLETED, Counts(scanned=3))
    assert await ledgers(db) == scrubbed


async def test_a_signal_appended_between_the_read_and_the_rewrite_stays(db: AsyncDatabase[Document]) -> None:
    """The ledger consumer appends a signal (and its entries) after the scrub read the ledger: the
    rewrite sets only the reasons it read, on the ledger as it is then."""
    store = AttendanceStore(db, "/iop/engagement")
    session_id = await ledger(store, RAW)
    read = (await store.leave_reasons([session_id]))[session_id]
    late = signal(LEFT, "client-b", 50, "left the meeting")
    await append(store, session_id, late)

    assert await scrub_ledger(store, session_id, read, RULES) == RAW_COUNT

    doc = (await ledgers(db))[session_id]
    assert doc["signals"][-1]["id"] == late.signal_id
    assert doc["signal_ids"][-1] == late.signal_id
    assert doc["entries"] == [{"client_id": "client-b", "last": late.signal_id}]
    assert len(doc["signals"]) == 3 * len(RAW) + 1
    assert_kept(doc)
    # the same stale read again: its reasons changed since, so the ledger is read again and nothing is left
    assert await scrub_ledger(store, session_id, read, RULES) == 0
    assert (await ledgers(db))[session_id] == doc


async def test_signals_appended_while_the_scrub_runs_all_stay(settings: Settings, db: AsyncDatabase[Document]) -> None:
    """The ledger consumer, another client of the store, appends to the ledgers the scrub rewrites."""
    store = AttendanceStore(db, "/iop/engagement")
    sessions = [await ledger(store, RAW[:4]) for _ in range(12)]
    consumer_client = mongo_client(settings)
    consumer = AttendanceStore(consumer_client[db.name], "/iop/engagement")
    appended: dict[str, list[str]] = {s: [] for s in sessions}

    async def consume() -> None:
        for minute in range(40, 46):
            for session_id in sessions:
                s = signal(LEFT if minute % 2 else JOINED, "client-a", minute, "left the meeting" if minute % 2 else "")
                await append(consumer, session_id, s)
                appended[session_id].append(s.signal_id)

    try:
        (status, counts), _ = await asyncio.gather(scrub(db, RULES, "owner-1", chunk=1, pause_s=0.01), consume())
    finally:
        await consumer_client.close()

    assert status is Status.COMPLETED
    assert counts.reasons == 12 * sum(kept_leave_reason(r, RULES) != r for r in RAW[:4])
    for session_id, doc in (await ledgers(db)).items():
        assert [s["id"] for s in doc["signals"][-6:]] == appended[session_id]
        assert len(doc["signals"]) == len(doc["signal_ids"]) == 12 + 6
        assert_kept(doc)


async def test_an_interrupted_run_resumes_where_it_stopped(
    db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AttendanceStore(db, "/iop/engagement")
    sessions = sorted([await ledger(store, RAW) for _ in range(6)])
    reads = 0
    chunk_read = AttendanceStore.leave_reasons_and_dropped_events

    async def failing_on_the_second_chunk(self: AttendanceStore, ids: list[str]) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise ConnectionError("the process stops here")
        return await chunk_read(self, ids)

    monkeypatch.setattr(AttendanceStore, "leave_reasons_and_dropped_events", failing_on_the_second_chunk)
    with pytest.raises(ConnectionError):
        await scrub(db, RULES, "stopped", chunk=2, pause_s=0)
    monkeypatch.undo()

    stopped = await record(db)
    assert stopped["completed_at"] is None
    assert (stopped["after"], stopped["scanned"], stopped["ledgers"]) == (sessions[1], 2, 2)
    docs = await ledgers(db)
    for session_id in sessions[:2]:
        assert_kept(docs[session_id])
    for session_id in sessions[2:]:
        assert NAME in json.dumps(docs[session_id], default=str)
    # the stopped process still holds it until its lease runs out
    assert await scrub(db, RULES, "restarted", chunk=2, pause_s=0) == (Status.RUNNING_ELSEWHERE, Counts())
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db[MIGRATIONS_COLLECTION].update_one({"_id": MIGRATION_ID}, {"$set": {"lease_until": past}})

    status, counts = await scrub(db, RULES, "restarted", chunk=2, pause_s=0)

    assert status is Status.COMPLETED
    assert counts == Counts(scanned=4, ledgers=4, reasons=4 * RAW_COUNT)  # only what was left
    for doc in (await ledgers(db)).values():
        assert_kept(doc)
    done = await record(db)
    assert (done["scanned"], done["ledgers"], done["reasons"]) == (6, 6, 6 * RAW_COUNT)
    assert done["completed_at"] is not None


async def test_a_run_keeps_its_lease_while_it_reads_the_ledger_ids(
    db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan of the ledger ids before the first chunk reads every whole ledger on FerretDB (about
    1.3 ms each here: longer than the lease from some 45,000 ledgers on). The run holds the lease
    meanwhile: a replica looking again does not take it over and scan too, the first run then
    stopping at its first checkpoint, and so on, none completing."""
    store = AttendanceStore(db, "/iop/engagement")
    for _ in range(2):
        await ledger(store, RAW)
    monkeypatch.setattr(migrations, "LEASE_S", 1.0)
    ledger_ids = AttendanceStore.ledger_ids

    async def longer_than_the_lease(self: AttendanceStore, after: str | None = None) -> list[str]:
        ids = await ledger_ids(self, after)
        await asyncio.sleep(2.5)
        return ids

    monkeypatch.setattr(AttendanceStore, "ledger_ids", longer_than_the_lease)
    first = asyncio.create_task(scrub(db, RULES, "owner-1", pause_s=0))
    await asyncio.sleep(1.5)  # the lease as claimed has run out

    assert await scrub(db, RULES, "owner-2", pause_s=0) == (Status.RUNNING_ELSEWHERE, Counts())
    assert await first == (Status.COMPLETED, Counts(scanned=2, ledgers=2, reasons=2 * RAW_COUNT))
    done = await record(db)
    assert (done["owner"], done["scanned"]) == ("owner-1", 2)
    assert done["completed_at"] is not None


async def test_raw_reasons_of_the_outboxes_connection_dropped_are_rewritten_and_nothing_else(
    db: AsyncDatabase[Document],
) -> None:
    with_outbox = [await ledger_with_outbox(db) for _ in range(2)]
    other = await ledger(AttendanceStore(db, "/iop/engagement"), KEPT)
    before = await ledgers(db)
    assert NAME in json.dumps(before[with_outbox[0]]["outbox"], default=str)
    assert (await check(db, RULES))["raw_events"] == 2 * RAW_EVENTS

    status, counts = await scrub(db, RULES, "owner-1", chunk=2, pause_s=0)

    assert status is Status.COMPLETED
    assert counts == Counts(scanned=3, ledgers=2, reasons=2, events=2 * RAW_EVENTS)
    after = await ledgers(db)
    for session_id in with_outbox:
        assert_outbox_scrubbed(before[session_id], after[session_id])
        assert len(after[session_id]["outbox"]) == len(before[session_id]["outbox"]) == 4
        assert {k: v for k, v in after[session_id].items() if k not in ("outbox", "signals")} == {
            k: v for k, v in before[session_id].items() if k not in ("outbox", "signals")
        }
        assert_kept(after[session_id])
    assert after[other] == before[other]
    done = await record(db)
    assert (done["scanned"], done["ledgers"], done["reasons"], done["events"]) == (3, 2, 2, 2 * RAW_EVENTS)
    report = await check(db, RULES)
    assert (report["raw_ledgers"], report["raw_reasons"], report["raw_events"]) == (0, 0, 0)
    # a second run changes nothing, nor does a new pass
    assert await scrub(db, RULES, "owner-2", pause_s=0) == (Status.ALREADY_COMPLETED, Counts())
    assert await scrub(db, RULES, "owner-2", again=True, pause_s=0) == (Status.COMPLETED, Counts(scanned=3))
    assert await ledgers(db) == after


async def test_outbox_entries_and_signals_appended_between_the_read_and_the_rewrite_stay(
    db: AsyncDatabase[Document],
) -> None:
    """The ledger consumer appends a signal with its ConnectionDropped after the scrub read the
    outbox: the rewrite sets only the entries it read, on the ledger as it is then."""
    store = AttendanceStore(db, "/iop/engagement")
    session_id = await ledger_with_outbox(db)
    before = (await ledgers(db))[session_id]
    read = (await store.dropped_events([session_id]))[session_id]
    late = signal(LEFT, "client-a", 50, "")
    late_event = dropped(session_id, "client-a", "connection_lost")
    assert await store.add_signal(session_id, late, [{"client_id": "client-a"}], [late_event], ["late-event"])

    assert await scrub_outbox(store, session_id, read) == RAW_EVENTS

    doc = (await ledgers(db))[session_id]
    assert_outbox_scrubbed(before, doc)
    assert [e["id"] for e in doc["outbox"]] == [e["id"] for e in before["outbox"]] + ["late-event"]
    assert decoded(doc["outbox"][-1]) == late_event.message
    assert doc["signals"][-1]["id"] == late.signal_id
    assert doc["entries"] == [{"client_id": "client-a"}]
    # the same stale read again: its entries changed since, so the ledger is read again and nothing is left
    assert await scrub_outbox(store, session_id, read) == 0
    assert (await ledgers(db))[session_id] == doc


async def test_outbox_entries_appended_while_the_scrub_runs_all_stay(
    settings: Settings, db: AsyncDatabase[Document]
) -> None:
    sessions = [await ledger_with_outbox(db) for _ in range(10)]
    before = await ledgers(db)
    consumer_client = mongo_client(settings)
    consumer = AttendanceStore(consumer_client[db.name], "/iop/engagement")
    appended: dict[str, list[str]] = {s: [] for s in sessions}

    async def consume() -> None:
        for minute in range(40, 44):
            for session_id in sessions:
                s = signal(LEFT, "client-a", minute, "")
                event_id = uuid.uuid4().hex
                event = dropped(session_id, "client-a", "connection_lost")
                assert await consumer.add_signal(session_id, s, [], [event], [event_id])
                appended[session_id].append(event_id)

    try:
        (status, counts), _ = await asyncio.gather(scrub(db, RULES, "owner-1", chunk=1, pause_s=0.01), consume())
    finally:
        await consumer_client.close()

    assert status is Status.COMPLETED
    assert counts.events == 10 * RAW_EVENTS
    for session_id, doc in (await ledgers(db)).items():
        assert [e["id"] for e in doc["outbox"][-4:]] == appended[session_id]
        assert len(doc["outbox"]) == 4 + 4
        assert len(doc["signals"]) == len(doc["signal_ids"]) == 1 + 4
        assert_outbox_scrubbed(before[session_id], doc)


async def test_the_relay_sends_an_unsent_rewritten_event_once_as_it_was_but_its_reason_and_no_sent_one_again(
    settings: Settings, db: AsyncDatabase[Document]
) -> None:
    """The relay never writes the ledger: what it sent is marked apart, by event id. An entry it had
    sent (marked) is not sent again after the scrub; one it had not is sent once, rewritten, with the
    entry's id, key and trace context as they were."""
    topic = f"test.scrub.relay.{uuid.uuid4().hex[:10]}.v1"
    await ensure_topics(settings, [Topic(topic, "session id", "test")])
    parent = SpanContext(int(uuid.uuid4().hex, 16), int(uuid.uuid4().hex[:16], 16), False, TraceFlags(1))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        session_id = await ledger_with_outbox(db, topic=topic)
    finally:
        otel_context.detach(token)
    before = (await ledgers(db))[session_id]["outbox"]
    *sent, unsent = before
    now = datetime.now(UTC)
    await db[PUBLISHED_COLLECTION].insert_many([{"_id": e["id"], "topic": topic, "published_at": now} for e in sent])
    assert decoded(unsent).reason == RAW[2]

    assert (await scrub(db, RULES, "owner-1", pause_s=0))[1].events == RAW_EVENTS

    producer = reliable_producer(settings, "test-scrub-relay")
    await producer.start()
    try:
        relay = OutboxRelay(db, [ATTENDANCE_COLLECTION], producer)
        assert await relay.publish_pending() == 1
        await relay.record_published()
        assert await OutboxRelay(db, [ATTENDANCE_COLLECTION], producer).publish_pending() == 0
    finally:
        await producer.stop()
    (record,) = await read_all(settings, topic, 2, timeout_s=5)
    headers = {k: v.decode() for k, v in record.headers}
    assert (headers["ce_id"], record.key) == (unsent["id"], session_id.encode())
    assert headers["traceparent"].split("-")[1] == format(parent.trace_id, "032x")
    expected = decoded(unsent)
    expected.reason = "connection_lost"
    assert engagement_pb2.ConnectionDropped.FromString(record.value) == expected
    assert await db[PUBLISHED_COLLECTION].count_documents({}) == len(before)


async def test_a_database_whose_first_scrub_completed_gets_its_outboxes_scrubbed(db: AsyncDatabase[Document]) -> None:
    """The first version of the migration (the reasons only) completed here before the outbox part
    existed: its record stays as it is, and the migration runs under a record of its own."""
    (earlier,) = EARLIER_MIGRATION_IDS
    assert earlier != MIGRATION_ID
    completed = datetime.now(UTC) - timedelta(days=1)
    first = {"_id": earlier, "after": "zzz", "scanned": 2, "ledgers": 2, "reasons": 2, "completed_at": completed}
    await db[MIGRATIONS_COLLECTION].insert_one(first | {"owner": None, "lease_until": completed})
    sessions = [await ledger_with_outbox(db, kept_reasons=True) for _ in range(2)]
    before = await ledgers(db)

    status, counts = await scrub(db, RULES, "owner-1", pause_s=0)

    assert (status, counts) == (Status.COMPLETED, Counts(scanned=2, ledgers=2, reasons=0, events=2 * RAW_EVENTS))
    after = await ledgers(db)
    for session_id in sessions:
        assert_outbox_scrubbed(before[session_id], after[session_id])
        assert after[session_id]["signals"] == before[session_id]["signals"]
    assert (await record(db))["completed_at"] is not None
    old = await db[MIGRATIONS_COLLECTION].find_one({"_id": earlier})
    assert old is not None and old["after"] == "zzz"


class LedgerFinds(monitoring.CommandListener):
    """The `find` commands sent for the ledgers."""

    def __init__(self) -> None:
        self.commands: list[Document] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] == ATTENDANCE_COLLECTION:
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_ledgers_are_read_without_a_sort_by_the_store(
    settings: Settings, db: AsyncDatabase[Document]
) -> None:
    """FerretDB sorts in memory: a sorted find holds every ledger it matches, whole (signals, entries,
    outbox), until the last is read, whatever the projection. The ids are read as they come (one scan)
    and ordered here; the ledgers themselves by `_id`, a chunk at a time."""
    store = AttendanceStore(db, "/iop/engagement")
    sessions = sorted([await ledger(store, RAW[:3]) for _ in range(5)])
    finds = LedgerFinds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True, event_listeners=[finds])
    watched = client[db.name]
    try:
        await db[MIGRATIONS_COLLECTION].insert_one(
            {"_id": MIGRATION_ID, "after": sessions[1], "scanned": 2, "ledgers": 0, "reasons": 0, "completed_at": None}
            | {"owner": None, "lease_until": datetime.now(UTC) - timedelta(seconds=1)}
        )
        status, counts = await scrub(watched, RULES, "owner-1", chunk=2, pause_s=0)
        report = await check(watched, RULES, chunk=2)
    finally:
        await client.close()

    assert (status, counts.scanned, counts.ledgers) == (Status.COMPLETED, 3, 3)  # resumed after sessions[1]
    assert (report["ledgers_scanned"], report["raw_ledgers"]) == (5, 2)
    assert finds.commands
    assert [c for c in finds.commands if c.get("sort")] == []
    docs = await ledgers(db)
    assert all(NAME in json.dumps(docs[s], default=str) for s in sessions[:2])
    for session_id in sessions[2:]:
        assert_kept(docs[session_id])


async def test_the_service_scrubs_the_ledgers_at_start_with_counts_only_in_its_logs_and_spans(
    settings: Settings,
) -> None:
    prefix = f"t{RUN_ID}scrub{uuid.uuid4().hex[:6]}_"
    client = mongo_client(settings)
    store = AttendanceStore(client[f"{prefix}engagement"], "/iop/engagement")
    sessions = [await ledger(store, RAW) for _ in range(2)]
    outboxes = [await ledger_with_outbox(client[f"{prefix}engagement"])]
    await client.close()
    env = {**engagement_env(), "MONGODB_DATABASE_PREFIX": prefix}
    service = ServiceProcess("engagement", env=env, instance="-scrub")  # a log of its own
    mongo: MongoClient[Document] = MongoClient(settings.mongodb_uri, tz_aware=True)
    db = mongo[f"{prefix}engagement"]
    try:
        with until_stopped(service.start()):
            migrations = db[MIGRATIONS_COLLECTION]
            assert wait_until(lambda: (migrations.find_one({"_id": MIGRATION_ID}) or {}).get("completed_at"))
        for session_id in sessions:
            found = db[ATTENDANCE_COLLECTION].find_one({"_id": session_id})
            assert found is not None
            assert_kept(found)
        for session_id in outboxes:
            found = db[ATTENDANCE_COLLECTION].find_one({"_id": session_id})
            assert found is not None
            assert NAME.lower() not in json.dumps(found, default=str).lower()
        lines = [json.loads(line) for line in service.log_path.read_text().splitlines() if line.startswith("{")]
        assert NAME.lower() not in service.log_path.read_text().lower()
        (finished,) = [line for line in lines if line["message"].startswith("scrub of stored leave reasons completed")]
        assert finished["message"].endswith(
            f"3 ledgers scanned, 3 rewritten, {2 * RAW_COUNT + 1} reasons, {RAW_EVENTS} outbox events"
        )
        name = "engagement scrub leave reasons"
        spans = wait_for_trace(settings, finished["trace_id"], lambda spans: any(s["name"] == name for s in spans))
        (scrubbed,) = [s for s in spans if s["name"] == name]
        assert scrubbed["tags"]["iop.scrub.reasons"] == str(2 * RAW_COUNT + 1)
        assert scrubbed["tags"]["iop.scrub.events"] == str(RAW_EVENTS)
        assert NAME.lower() not in json.dumps(spans).lower()
    finally:
        mongo.drop_database(f"{prefix}engagement")
        mongo.close()


def command(prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("services.engagement.scrub_leave_reasons", *args, env={"MONGODB_DATABASE_PREFIX": prefix})


async def test_the_command_checks_runs_and_reruns_the_scrub(settings: Settings) -> None:
    prefix = f"t{RUN_ID}scrubcmd{uuid.uuid4().hex[:6]}_"
    client = mongo_client(settings)
    try:
        store = AttendanceStore(client[f"{prefix}engagement"], "/iop/engagement")
        for _ in range(2):
            await ledger(store, RAW)
        await ledger_with_outbox(client[f"{prefix}engagement"])

        before = command(prefix, "--check")
        assert before.returncode == 1, before.stderr
        assert json.loads(before.stdout) | {"record": None} == {
            "record": None,
            "ledgers_scanned": 3,
            "raw_ledgers": 3,
            "raw_reasons": 2 * RAW_COUNT + 1,
            "raw_events": RAW_EVENTS,
        }
        run = command(prefix)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {
            "status": "completed",
            "scanned": 3,
            "ledgers": 3,
            "reasons": 2 * RAW_COUNT + 1,
            "events": RAW_EVENTS,
        }
        assert NAME.lower() not in (run.stdout + run.stderr).lower()
        after = command(prefix, "--check")
        assert after.returncode == 0, after.stderr
        report = json.loads(after.stdout)
        assert (report["raw_ledgers"], report["raw_reasons"], report["raw_events"]) == (0, 0, 0)
        assert (report["record"]["reasons"], report["record"]["events"]) == (2 * RAW_COUNT + 1, RAW_EVENTS)
        assert json.loads(command(prefix).stdout)["status"] == "already completed"
        again = command(prefix, "--again")
        assert json.loads(again.stdout) == {
            "status": "completed",
            "scanned": 3,
            "ledgers": 0,
            "reasons": 0,
            "events": 0,
        }
    finally:
        await client.drop_database(f"{prefix}engagement")
        await client.close()
