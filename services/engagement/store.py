"""The engagement database: the attendance ledger, webhook receipts, outcomes, check-ins,
and the snapshots the faust worker writes of its tables (for reads and the dashboard)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from iop.events.v1 import engagement_pb2, scheduling_pb2
from services.engagement.domain import LEFT, LastSeen, LedgerSignal
from services.engagement.topics import SIGNALS
from services.plumbing.outbox import OutgoingEvent, new_document_with_outbox, outbox_entries, with_outbox
from services.plumbing.protos import to_datetime
from services.plumbing.storage import BatchedWrites, Document, GroupedFinds, IndexSpec, find_by_ids, insert_new

ATTENDANCE_COLLECTION = "session_attendance"
RECEIPTS_COLLECTION = "webhook_receipts"
OUTCOMES_COLLECTION = "outcomes"
CHECK_INS_COLLECTION = "check_ins"
CLIENT_SNAPSHOTS = "client_engagement"
CLINICIAN_SNAPSHOTS = "clinician_load"
CONNECTIONS_COLLECTION = "session_connections"
CONNECTION_DROPPED = engagement_pb2.ConnectionDropped.DESCRIPTOR.full_name
OUTBOX_COLLECTIONS = [ATTENDANCE_COLLECTION, OUTCOMES_COLLECTION, CHECK_INS_COLLECTION]
# A connection record is read when a drop of that participant is judged: by the webhook at once,
# and by the ledger consumer when it gets to the drop's signal, at most the signals topic's retention
# (4 weeks) after it was published. Kept that long after its latest event time (`at`), and a week
# more for a platform that reports late: a drop judged without the record it needed is reported
# although the webhook saw the participant back.
CONNECTIONS_RETENTION_S = SIGNALS.retention_ms // 1000 + 7 * 24 * 3600
INDEXES = [
    IndexSpec(ATTENDANCE_COLLECTION, [("clinician_id", 1), ("starts_at", 1)], name="clinician_starts"),
    IndexSpec(ATTENDANCE_COLLECTION, [("program_id", 1), ("starts_at", 1)], name="program_starts"),
    IndexSpec(RECEIPTS_COLLECTION, [("received_at", 1)], name="received_at_1"),
    IndexSpec(OUTCOMES_COLLECTION, [("client_id", 1), ("completed_at", 1)], name="client_completed"),
    IndexSpec(OUTCOMES_COLLECTION, [("fhir_pending", 1)], name="fhir_pending_1"),
    IndexSpec(CLIENT_SNAPSHOTS, [("risk.value", -1)], name="risk_value"),
    IndexSpec(CLINICIAN_SNAPSHOTS, [("risk.value", -1)], name="risk_value"),
    IndexSpec(
        CONNECTIONS_COLLECTION, [("at", 1)], name="at_ttl", options={"expireAfterSeconds": CONNECTIONS_RETENTION_S}
    ),
    # a record only a host's action wrote (the client's join never came) has no `at`
    IndexSpec(
        CONNECTIONS_COLLECTION,
        [("removed_at", 1)],
        name="removed_at_ttl",
        options={"expireAfterSeconds": CONNECTIONS_RETENTION_S},
    ),
]


def signal_doc(s: LedgerSignal) -> Document:
    return {
        "id": s.signal_id,
        "p": s.participant_id,
        "k": s.kind,
        "at": s.at,
        "v": s.value,
        "r": s.leave_reason,
        "m": s.modality,
    }


def ledger_signals(doc: Document) -> list[LedgerSignal]:
    return [
        LedgerSignal(
            signal_id=d["id"],
            participant_id=d["p"],
            kind=d["k"],
            at=d["at"] if d["at"].tzinfo else d["at"].replace(tzinfo=UTC),
            value=d.get("v", 0.0),
            leave_reason=d.get("r", ""),
            modality=d.get("m", ""),
        )
        for d in doc.get("signals", [])
    ]


@dataclass(frozen=True)
class StoredReason:
    """A participant_left's reason as a ledger stores it: the signal at `index` in `signals`."""

    index: int
    signal_id: str
    reason: str


@dataclass(frozen=True)
class StoredEvent:
    """A ConnectionDropped as a ledger's outbox stores it: the entry at `index` in `outbox`, its
    event `data` (the protobuf bytes) as read."""

    index: int
    event_id: str
    data: bytes


REASON_FIELDS = {"signals.id": 1, "signals.k": 1, "signals.r": 1}  # of a ledger, for `_leave_reasons`
EVENT_FIELDS = {"outbox.id": 1, "outbox.type": 1, "outbox.data": 1}  # for `_dropped_events`


def _leave_reasons(ledgers: dict[str, Document]) -> dict[str, list[StoredReason]]:
    """The stored reason of every participant_left of these ledgers, by session id."""
    return {
        session_id: [
            StoredReason(i, s["id"], s.get("r", "")) for i, s in enumerate(doc.get("signals", [])) if s["k"] == LEFT
        ]
        for session_id, doc in ledgers.items()
    }


def _dropped_events(ledgers: dict[str, Document]) -> dict[str, list[StoredEvent]]:
    """Every ConnectionDropped in these ledgers' outboxes, by session id (a ledger without an
    outbox is left out)."""
    return {
        session_id: [
            StoredEvent(i, e["id"], bytes(e["data"]))
            for i, e in enumerate(doc["outbox"])
            if e.get("type") == CONNECTION_DROPPED
        ]
        for session_id, doc in ledgers.items()
        if doc.get("outbox")
    }


def aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class AttendanceStore:
    def __init__(self, db: AsyncDatabase[Document], source: str) -> None:
        self._attendance = db[ATTENDANCE_COLLECTION]
        self._source = source
        self._ledgers = GroupedFinds(self._attendance)  # concurrent webhooks' reads go together

    async def expect_session(self, event_id: str, scheduled: scheduling_pb2.SessionScheduled) -> None:
        """Open the ledger of a scheduled session: every client expected. Idempotent."""
        await self._attendance.update_one(
            {"_id": scheduled.session_id},
            {
                "$setOnInsert": {
                    "clinician_id": scheduled.clinician_id,
                    "program_id": scheduled.program_id,
                    "starts_at": to_datetime(scheduled.starts_at),
                    "ends_at": to_datetime(scheduled.ends_at),
                    "client_ids": list(scheduled.client_ids),
                    "entries": [
                        {"client_id": c, "status": "expected", "minutes_attended": 0} for c in scheduled.client_ids
                    ],
                    "signals": [],
                    "signal_ids": [],
                    "ended": False,
                    "opened_by_event": event_id,
                    "opened_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )

    async def get(self, session_id: str) -> Document | None:
        return await self._ledgers.get(session_id)

    async def set_roster(self, session_id: str, client_ids: list[str]) -> bool:
        """The group's seats as the scheduler now has them; entries of clients already on the
        ledger are kept. False when the session is not on the ledger."""
        doc = await self._attendance.find_one({"_id": session_id}, {"entries": 1})
        if doc is None:
            return False
        entries = {e["client_id"]: e for e in doc.get("entries", [])}
        roster = [entries.get(c, {"client_id": c, "status": "expected", "minutes_attended": 0}) for c in client_ids]
        await self._attendance.update_one({"_id": session_id}, {"$set": {"client_ids": client_ids, "entries": roster}})
        return True

    async def mark_started(self, session_id: str, started_at: datetime | None) -> None:
        await self._attendance.update_one({"_id": session_id, "started_at": None}, {"$set": {"started_at": started_at}})

    async def add_signal(
        self,
        session_id: str,
        signal: LedgerSignal,
        entries: list[Document],
        events: list[OutgoingEvent],
        event_ids: list[str],
    ) -> Document | None:
        """Append a signal and the recomputed entries (+ events, with the given ids) in one write;
        returns the update applied, None if the signal is already there."""
        update: dict[str, Any] = {
            "$push": {"signals": signal_doc(signal), "signal_ids": signal.signal_id},
            "$set": {"entries": entries},
        }
        if events:
            outbox = outbox_entries(self._source, events)
            for entry, event_id in zip(outbox, event_ids, strict=True):
                entry["id"] = event_id
            update["$push"]["outbox"] = {"$each": outbox}
        result = await self._attendance.update_one({"_id": session_id, "signal_ids": {"$ne": signal.signal_id}}, update)
        return update if result.modified_count == 1 else None

    async def finalize(
        self, session_id: str, ended_at: datetime | None, entries: list[Document], events: list[OutgoingEvent]
    ) -> Document | None:
        """Close the ledger with its final entries and events; returns the update applied, None
        if it was closed already."""
        update = with_outbox({"$set": {"entries": entries, "ended": True, "ended_at": ended_at}}, self._source, events)
        result = await self._attendance.update_one({"_id": session_id, "ended": False}, update)
        return update if result.modified_count == 1 else None

    async def cancel(self, session_id: str) -> None:
        await self._attendance.update_one({"_id": session_id}, {"$set": {"ended": True, "cancelled": True}})

    async def recent(self, limit: int = 500) -> list[Document]:
        cursor = self._attendance.find({"ended": True}, {"signals": 0, "signal_ids": 0, "outbox": 0})
        return await cursor.sort("starts_at", -1).limit(limit).to_list()

    async def ledger_ids(self, after: str | None = None) -> list[str]:
        """The `_id` of every ledger (after `after`), in order: one scan, sorted here. Asked to sort,
        FerretDB holds every ledger the find matches, whole, in memory until the last is read (it
        sorts in memory, before the projection); unsorted, it passes them on as it reads them. The
        hint keeps MongoDB on the `_id` index alone, as the sort did (FerretDB ignores it). The ids
        themselves are held here: some 100 bytes a ledger."""
        query: Document = {} if after is None else {"_id": {"$gt": after}}
        cursor = self._attendance.find(query, {"_id": 1}).hint([("_id", 1)])
        return sorted([doc["_id"] async for doc in cursor])

    async def leave_reasons(self, session_ids: list[str]) -> dict[str, list[StoredReason]]:
        """The stored reason of every participant_left of these ledgers, by session id (a ledger
        not found is left out)."""
        return _leave_reasons(await find_by_ids(self._attendance, session_ids, REASON_FIELDS))

    async def leave_reasons_and_dropped_events(
        self, session_ids: list[str]
    ) -> tuple[dict[str, list[StoredReason]], dict[str, list[StoredEvent]]]:
        """`leave_reasons` and `dropped_events` of these ledgers from one read of them (FerretDB
        reads a whole document whatever the projection)."""
        docs = await find_by_ids(self._attendance, session_ids, {**REASON_FIELDS, **EVENT_FIELDS})
        return _leave_reasons(docs), _dropped_events(docs)

    async def rewrite_reasons(self, session_id: str, rewrites: dict[StoredReason, str]) -> bool:
        """Set these signals' reasons in one write if each is still stored as read (the same signal
        at its position, with that reason); False, and nothing written, if one is not. Only those
        reasons are set: a signal the ledger consumer appends meanwhile, and the entries and outbox
        it writes with it, stay as they are, since the update applies to the document as stored when
        it runs (MongoDB: atomic per document; the local FerretDB: the updates of a collection are
        serialized, README "Known limitations of the local store"). Signals are only ever appended,
        so a position names one signal for good."""
        stored_as_read: Document = {}
        for stored in rewrites:
            stored_as_read[f"signals.{stored.index}.id"] = stored.signal_id
            stored_as_read[f"signals.{stored.index}.r"] = stored.reason
        sets = {f"signals.{stored.index}.r": kept for stored, kept in rewrites.items()}
        return await self._set_if_stored_as_read(session_id, stored_as_read, sets)

    async def dropped_events(self, session_ids: list[str]) -> dict[str, list[StoredEvent]]:
        """Every ConnectionDropped in these ledgers' outboxes, by session id (a ledger not found, or
        without an outbox, is left out)."""
        return _dropped_events(await find_by_ids(self._attendance, session_ids, EVENT_FIELDS))

    async def rewrite_events(self, session_id: str, rewrites: dict[StoredEvent, bytes]) -> bool:
        """Set these outbox entries' `data` in one write if each is still stored as read (the same
        entry at its position, with those bytes); False, and nothing written, if one is not. As
        `rewrite_reasons`: only those fields are set, so the signals, entries and outbox entries the
        ledger consumer appends meanwhile stay. Outbox entries are only ever appended."""
        stored_as_read: Document = {}
        for stored in rewrites:
            stored_as_read[f"outbox.{stored.index}.id"] = stored.event_id
            stored_as_read[f"outbox.{stored.index}.data"] = stored.data
        sets = {f"outbox.{stored.index}.data": data for stored, data in rewrites.items()}
        return await self._set_if_stored_as_read(session_id, stored_as_read, sets)

    async def _set_if_stored_as_read(self, session_id: str, stored_as_read: Document, sets: Document) -> bool:
        """One update of the ledger setting `sets`, if its fields are still `stored_as_read`."""
        result = await self._attendance.update_one({"_id": session_id, **stored_as_read}, {"$set": sets})
        return result.matched_count == 1


class ConnectionStore:
    """When the webhook last saw each participant of a session connected (`at`: a join, a quality
    reading above 0 or a leave of the client's own; `joined_at`: a join; `left_at`: a leave of the
    client's own, which ends a quality dip, not a host's removal or move; `removed_at`: a host's
    removal or move, or the end of the meeting, which ends no dip but takes the client out of the
    meeting; event time),
    written before it answers, so that a drop delivered after that answer is judged with it even
    while the ledger consumer has not applied the signal yet (the webhook's fast path reads the
    consumer's ledger). One document per session
    and participant, apart from the ledger's: FerretDB 1.x loses one of two concurrent updates of a
    document, and the ledger document is written by the ledger consumer alone. A record expires
    CONNECTIONS_RETENTION_S after its `at`, or its `removed_at` (TTL indexes; FerretDB 1.x has none
    and keeps it)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._connections = db[CONNECTIONS_COLLECTION]
        self._finds = GroupedFinds(self._connections)

    @staticmethod
    def key(session_id: str, participant_id: str) -> str:
        return f"{session_id}/{participant_id}"  # "/" is in neither opaque id

    async def mark(
        self,
        session_id: str,
        participant_id: str,
        at: datetime,
        *,
        joined: bool = False,
        left: bool = False,
        removed: bool = False,
    ) -> None:
        """The participant was connected at `at` (`joined`: by a join; `left`: they left the meeting
        normally then); `removed`: instead, the host's action took them out of the meeting at `at`
        (no sign of a connection: only `removed_at`); the latest time of each wins."""
        key = self.key(session_id, participant_id)
        latest = {"removed_at": at} if removed else {"at": at}
        if joined:
            latest["joined_at"] = at
        if left:
            latest["left_at"] = at
        try:
            await self._connections.update_one({"_id": key}, {"$max": latest}, upsert=True)
        except DuplicateKeyError:  # a concurrent first mark inserted it: apply this one to it
            await self._connections.update_one({"_id": key}, {"$max": latest})

    async def latest(self, session_id: str, participant_id: str) -> LastSeen:
        doc = await self._finds.get(self.key(session_id, participant_id))
        if doc is None:
            return LastSeen()
        return LastSeen(
            connected=aware(doc.get("at")),
            joined=aware(doc.get("joined_at")),
            left=aware(doc.get("left_at")),
            removed=aware(doc.get("removed_at")),
        )


class ReceiptStore:
    """Replay protection: one receipt per webhook delivery id (unique _id).

    Receipts are group-committed: the claims of concurrent requests are written together every
    few milliseconds (one insert_many), each request awaiting its batch, and the "published"
    statuses, which nobody waits for (the webhook has answered), every `publish_window_s` (one
    update_many). A store that serialises writes (FerretDB on SQLite) then takes one write per
    batch instead of one per webhook. The semantics per request are unchanged: until its status
    is written, a receipt this process published counts as published here; a replay that reaches
    another instance first is published again and de-duplicated by event id.
    """

    def __init__(
        self,
        db: AsyncDatabase[Document],
        window_s: float = 0.003,
        publish_window_s: float = 0.05,
        max_batch: int = 500,
    ) -> None:
        self._receipts = db[RECEIPTS_COLLECTION]
        self._window_s = window_s
        self._max_batch = max_batch
        self._claims: list[tuple[Document, asyncio.Future[str]]] = []
        self._claim_flush: asyncio.Task[None] | None = None
        # published here, the receipt does not say so yet
        self._unrecorded = BatchedWrites(self._record_published, "receipt statuses", publish_window_s, max_batch)

    async def claim(self, event_id: str, session_id: str) -> str:
        """'new' for a first delivery; 'published' for a replay of a published one; 'pending' when a
        previous attempt was acknowledged to nobody (publish again: consumers de-duplicate)."""
        doc = {"_id": event_id, "session_id": session_id, "status": "received", "received_at": datetime.now(UTC)}
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._claims.append((doc, future))
        if self._claim_flush is None or self._claim_flush.done():
            self._claim_flush = asyncio.create_task(self._flush_claims())
        return await future

    async def _flush_claims(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._claims:
            batch, self._claims = self._claims[: self._max_batch], self._claims[self._max_batch :]
            try:
                results = await self._insert(batch)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _insert(self, batch: list[tuple[Document, asyncio.Future[str]]]) -> list[str]:
        duplicates = await insert_new(self._receipts, [doc for doc, _ in batch])
        if not duplicates:
            return ["new"] * len(batch)
        ids = [batch[i][0]["_id"] for i in duplicates]
        found = await self._receipts.find({"_id": {"$in": ids}}, {"status": 1}).to_list()
        published = {d["_id"] for d in found if d.get("status") == "published" or d["_id"] in self._unrecorded}
        return [
            ("published" if doc["_id"] in published else "pending") if i in duplicates else "new"
            for i, (doc, _) in enumerate(batch)
        ]

    def mark_published(self, event_id: str) -> None:
        """Record that the event was published; the status is written within `publish_window_s`."""
        self._unrecorded.add([{"_id": event_id}])

    async def _record_published(self, receipts: list[Document]) -> None:
        ids = [r["_id"] for r in receipts]
        await self._receipts.update_many({"_id": {"$in": ids}}, {"$set": {"status": "published"}})


def outcome_key(client_id: str, submission_id: str) -> str:
    """The stored outcome's _id: the client's submission id, scoped to that client.

    Submission ids are chosen by the apps; scoped per client, another client's use of the same
    id neither collides with nor reveals this client's record. (Outcomes stored before
    2026-12-07 keep their submission id as _id; reads do not depend on _id.)"""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "iop:engagement:outcome:" + json.dumps([client_id, submission_id])))


class OutcomeStore:
    def __init__(self, db: AsyncDatabase[Document], source: str) -> None:
        self._outcomes = db[OUTCOMES_COLLECTION]
        self._source = source

    async def insert(self, doc: Document, events: list[OutgoingEvent]) -> Document:
        """Insert once; with the same _id already stored, returns the stored record (the caller
        decides whether the request was a retry of it)."""
        try:
            await self._outcomes.insert_one(new_document_with_outbox(doc, self._source, events))
            return doc
        except DuplicateKeyError:
            existing = await self._outcomes.find_one({"_id": doc["_id"]})
            assert existing is not None
            return existing

    async def history(self, client_id: str, instrument: str | None) -> list[Document]:
        query: dict[str, Any] = {"client_id": client_id}
        if instrument:
            query["instrument"] = instrument
        return await self._outcomes.find(query, {"outbox": 0, "fhir": 0}).sort("completed_at", 1).to_list()

    async def fhir_pending(self, limit: int = 100) -> list[Document]:
        cursor = self._outcomes.find({"fhir_pending": True}, {"fhir": 1, "client_id": 1, "fhir_trace": 1})
        return await cursor.limit(limit).to_list()

    async def fhir_published(self, submission_id: str) -> None:
        await self._outcomes.update_one({"_id": submission_id}, {"$set": {"fhir_pending": False}})

    async def all_recent(self, limit: int = 2000) -> list[Document]:
        cursor = self._outcomes.find({}, {"outbox": 0, "fhir": 0}).sort("completed_at", -1).limit(limit)
        return await cursor.to_list()


class CheckInStore:
    def __init__(self, db: AsyncDatabase[Document], source: str) -> None:
        self._check_ins = db[CHECK_INS_COLLECTION]
        self._source = source

    async def upsert(self, doc: Document, events: list[OutgoingEvent]) -> Document:
        """One check-in per client and day; a new answer replaces the old one (one write + its event)."""
        fields = {k: v for k, v in doc.items() if k != "_id"}
        update = with_outbox({"$set": fields}, self._source, events)
        stored = await self._check_ins.find_one_and_update(
            {"_id": doc["_id"]}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert stored is not None
        return stored


class SnapshotStore:
    """Read side of the faust worker's tables."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._clients = db[CLIENT_SNAPSHOTS]
        self._clinicians = db[CLINICIAN_SNAPSHOTS]

    async def client(self, client_id: str) -> Document | None:
        return await self._clients.find_one({"_id": client_id})

    async def clinician(self, clinician_id: str) -> Document | None:
        return await self._clinicians.find_one({"_id": clinician_id})

    async def clients(self, limit: int = 500) -> list[Document]:
        return await self._clients.find({}).sort("risk.value", -1).limit(limit).to_list()

    async def clinicians(self, limit: int = 500) -> list[Document]:
        return await self._clinicians.find({}).sort("risk.value", -1).limit(limit).to_list()
