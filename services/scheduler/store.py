"""The scheduler's database.

Invariants live in unique keys, never in process memory, so several scheduler
processes can book at once:
- `claims`: one document per reserved 15-minute slot of a clinician or client
  (`clinician:<id>@20261130T1400`) and per group seat (`seat:<session>#<n>`).
  A booking inserts its keys; a duplicate key means the slot is taken. Each claim names its
  booking's day ledgers (and a seat's client), so the orphan sweep can undo a booking whose
  process died before storing it.
- `ledgers`: the day ledger of one clinician or client, as numbered revisions
  (`<owner>|<day>|<rev>`). A booking that passed the fatigue rules on revision n
  inserts revision n+1; a duplicate key means another booking got there first,
  and the rules are evaluated again on the newer revision (optimistic
  concurrency with unique keys only: FerretDB 1.x has no transactions).
- `sessions`: the session with its events in the same document (outbox); its id is derived
  from the caller's request_id, so an idempotent retry is a lookup by _id.

The local store (FerretDB 1.x on SQLite, patched) answers only `_id` filters (one id or `$in`
a list) without scanning the collection, so the hot paths here read and delete by `_id` only.
- `session_facts` (seats and check-ins): per-client facts of a session, one document each
  (`seat:<session>#<n>`, `<session>:<client>`), inserted with their events. FerretDB 1.x
  applies concurrent updates of ONE document as read-modify-write (a concurrent `$push`
  can be lost), so facts that many clients add at once are inserts, never pushes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument, UpdateMany
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.plumbing.migrations import MIGRATIONS_COLLECTION
from services.plumbing.outbox import OutboxRelay, OutgoingEvent, new_document_with_outbox, with_outbox
from services.plumbing.storage import Document, GroupedCalls, IndexSpec, find_by_ids
from services.scheduler.domain import BOOKED, CANCELLED, CHECKED_IN, Booked, on_care_team

SOURCE = "/iop/scheduler"
PROGRAMS = "programs"
COHORTS = "cohorts"
CLINICIANS = "clinicians"
CLIENTS = "clients"
SESSIONS_COLLECTION = "sessions"
CLAIMS = "claims"
LEDGERS = "ledgers"
TECH_CHECKS = "tech_checks"
OVERRIDE_AUDIT = "override_audit"
CARE_SESSIONS = "care_sessions"
# Its record in `migrations` (services.plumbing.migrations): the seats stored before 2026-12-08
# (twelfth session) have their start. The first version's record, "seat_starts" (written once at
# the end, with no lease), is left as history: a run of this version would never claim it.
SEAT_STARTS = "seat_starts_v2"
# Per-client facts of a session (seats `seat:<session>#<n>`, check-ins `<session>:<client>`) share
# one collection: the outbox relay's periodic sweep reads each outbox collection.
FACTS = "session_facts"
SEATS = FACTS
CHECK_INS = FACTS
# The relay publishes collection by collection in this order: a profile (its FHIR Patient or
# Practitioner) before the sessions that reference it, a check-in (or seat) before the session
# changes that depend on it.
OUTBOX_COLLECTIONS = [CLINICIANS, CLIENTS, FACTS, SESSIONS_COLLECTION, CARE_SESSIONS]

INDEXES = [
    IndexSpec(SESSIONS_COLLECTION, [("request_id", 1)], unique=True, name="request_id_unique"),
    IndexSpec(SESSIONS_COLLECTION, [("clinician_id", 1), ("starts_at", 1)], name="clinician_starts"),
    IndexSpec(SESSIONS_COLLECTION, [("client_ids", 1), ("starts_at", 1)], name="client_starts"),
    IndexSpec(SESSIONS_COLLECTION, [("facilitators.clinician_id", 1), ("starts_at", 1)], name="facilitator_starts"),
    IndexSpec(PROGRAMS, [("request_id", 1)], unique=True, name="request_id_unique"),
    IndexSpec(COHORTS, [("request_id", 1)], unique=True, name="request_id_unique"),
    IndexSpec(CLAIMS, [("session_id", 1)], name="session_id_1"),
    IndexSpec(CLAIMS, [("at", 1)], name="at_1"),
    IndexSpec(TECH_CHECKS, [("client_id", 1), ("status", 1)], name="client_status"),
    # ListTechChecks' order and page keyset (tech_checks_of)
    IndexSpec(TECH_CHECKS, [("client_id", 1), ("due_by", 1), ("_id", 1)], name="client_due"),
    IndexSpec(OVERRIDE_AUDIT, [("clinician_id", 1), ("at", -1)], name="clinician_at"),
    IndexSpec(CARE_SESSIONS, [("request_id", 1)], unique=True, name="request_id_unique"),
    # a client's seats by their session's start (seats_of_client); replaces `client_id_1`
    IndexSpec(FACTS, [("client_id", 1), ("starts_at", 1)], name="client_starts"),
    IndexSpec(CARE_SESSIONS, [("clinician_ids", 1), ("starts_at", 1)], name="clinician_starts"),
]

NO_OUTBOX = {"outbox": 0}
SEAT_CLAIM = "seat"  # a client's slots for a seat in a group session


def _aware(at: datetime) -> datetime:
    """A stored time as UTC (the store may hand back naive UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def seat_key(session_id: str, seat: int) -> str:
    """Seat n of a group session (a per-client fact, `seat:<session>#<n>`)."""
    return f"seat:{session_id}#{seat:02d}"


def seat_number(key: str) -> int:
    """n of `seat_key(session, n)`."""
    return int(key.rsplit("#", 1)[1])


def tech_check_task_id(session_id: str, client_id: str) -> str:
    """A client's tech-check task before a session."""
    return f"tc-{session_id}-{client_id}"


LEDGER_CACHE_SIZE = 20000
TREATS_PAGE = 100  # sessions read per page by `treats`
HEAD_EVERY = 8


def _without_outbox(doc: Document | None) -> Document | None:
    """findAndModify cannot project on FerretDB 1.x: drop the outbox here."""
    if doc is not None:
        doc.pop("outbox", None)
    return doc


class Conflict(Exception):
    """A unique key was taken by someone else."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class SchedulerStore:
    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay | None = None) -> None:
        self.db = db
        self._relay = relay  # told about every stored write that carries events
        self.programs = db[PROGRAMS]
        self.cohorts = db[COHORTS]
        self.clinicians = db[CLINICIANS]
        self.clients = db[CLIENTS]
        self.sessions = db[SESSIONS_COLLECTION]
        self.claims = db[CLAIMS]
        self.ledgers = db[LEDGERS]
        self.tech_checks = db[TECH_CHECKS]
        self.override_audit = db[OVERRIDE_AUDIT]
        self.care = db[CARE_SESSIONS]
        self.seats = db[SEATS]
        self.check_ins = db[CHECK_INS]
        self._grouped = GroupedCalls(db)  # concurrent requests' lookups and inserts go together
        self._ledger_finds = self._grouped.finds(LEDGERS)  # a ledger's head and revision probes
        self._ledger_cache: dict[str, tuple[int, list[Booked]]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._seat_starts = False  # SEAT_STARTS completed (read until it has)

    def _stored(self, collection: str, doc_id: str, write: Document) -> None:
        if self._relay is not None:
            self._relay.notify(collection, doc_id, write)

    # ---------- idempotent creates ----------

    async def insert_once(
        self, collection: str, doc: Document, events: list[OutgoingEvent] | None = None
    ) -> tuple[Document, bool]:
        """Insert a document whose _id derives from its request_id, with `events` in its outbox
        when given; a retry returns the first one. (doc, False) when it existed already."""
        if await self._insert_new(collection, doc, events):
            return doc, True
        existing = await self.get(collection, doc["_id"])
        if existing is None:
            raise DuplicateKeyError(f"{collection} {doc['_id']} exists but cannot be read")
        return existing, False

    async def _insert_new(self, collection: str, doc: Document, events: list[OutgoingEvent] | None) -> bool:
        """Insert `doc` (with `events` in its outbox when given, hinted to the relay), grouped with
        concurrent inserts into the collection; False when its _id exists already."""
        written = new_document_with_outbox(doc, SOURCE, events) if events is not None else doc
        if await self._grouped.inserts(collection).insert([written]):
            return False
        if events is not None:
            self._stored(collection, doc["_id"], written)
        return True

    async def get(self, collection: str, doc_id: str) -> Document | None:
        return await self._grouped.finds(collection, NO_OUTBOX).get(doc_id)

    async def get_many(self, collection: str, ids: Sequence[str]) -> dict[str, Document]:
        return await self._grouped.finds(collection, NO_OUTBOX).get_many(ids)

    async def save_profile(
        self, collection: str, profile_id: str, fields: Document, on_insert: Document, events: list[OutgoingEvent]
    ) -> Document:
        """Create or update a clinician or client profile, with its events (its FHIR resource)."""
        written = with_outbox(
            {"$set": {**fields, "updated_at": datetime.now(UTC)}, "$setOnInsert": on_insert}, SOURCE, events
        )
        doc = await self.db[collection].find_one_and_update(
            {"_id": profile_id}, written, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None
        self._stored(collection, profile_id, written)
        doc.pop("outbox", None)  # findAndModify cannot project on FerretDB 1.x
        return doc

    async def set_client_flags(self, client_id: str, flags: Document) -> None:
        await self.clients.update_one({"_id": client_id}, {"$set": flags})

    async def require_tech_check(self, client_id: str, failed_session_id: str, trigger: str) -> None:
        """The client's tech check due after a failed session, once per failed session (the
        profile's `tech_check_failed_sessions`, until the failure's profile writes are done:
        forget_tech_check_failures): a retry or redelivery after the client passed the check leaves
        it passed. Until 2026-12-07 a retry after a stop set it due again."""
        await self.clients.update_one(
            {"_id": client_id, "tech_check_failed_sessions": {"$ne": failed_session_id}},
            {
                "$set": {"tech_check_required": True, "tech_check_trigger": trigger},
                "$push": {"tech_check_failed_sessions": failed_session_id},
            },
        )

    async def forget_tech_check_failures(self, client_id: str, failed_session_ids: Sequence[str]) -> None:
        """Take failed sessions off the profile's `tech_check_failed_sessions` (`$pullAll`: FerretDB
        1.24 ignores `$in` in `$pull`, and `$slice` in `$push`, without an error)."""
        if failed_session_ids:
            await self.clients.update_one(
                {"_id": client_id}, {"$pullAll": {"tech_check_failed_sessions": list(failed_session_ids)}}
            )

    async def cohort(self, cohort_id: str) -> Document | None:
        return await self.get(COHORTS, cohort_id) if cohort_id else None

    async def update_cohort(self, cohort_id: str, update: Document) -> Document | None:
        """Change a cohort's members ($addToSet / $pull); None when it does not exist."""
        return await self.cohorts.find_one_and_update(
            {"_id": cohort_id},
            {**update, "$set": {"updated_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )

    # ---------- slot and seat reservations ----------

    async def claim(
        self,
        keys: Sequence[str],
        session_id: str,
        kind: str,
        ledger_days: Sequence[str] = (),
        client_id: str = "",
        times: tuple[datetime, datetime] | None = None,
    ) -> None:
        """Reserve every key or none: raises Conflict(key) after releasing what it took.

        Each claim names the day ledgers its booking enters, the booking's times and, for a seat
        in a group (kind SEAT_CLAIM), the client: what the orphan sweep needs to undo a booking
        that never got stored, or an attempt whose request got stored at other times."""
        if not keys:
            return
        now = datetime.now(UTC)
        # What this call gives back when it fails is what it took, marked with its own attempt id:
        # a retry of a request (the same session id) must not release the claims of the booking
        # the request made the first time.
        attempt = uuid.uuid4().hex
        claim: Document = {
            "session_id": session_id,
            "kind": kind,
            "at": now,
            "ledger_days": list(ledger_days),
            "attempt": attempt,
        }
        if client_id:
            claim["client_id"] = client_id
        if times is not None:
            claim["starts_at"], claim["ends_at"] = times
        docs = [{"_id": k, **claim} for k in keys]
        # Ordered: two bookings racing for the same slots (keys in the same order) never each take
        # some of them, so one of them wins. Grouped with the claims of concurrent bookings.
        try:
            taken = await self._grouped.inserts(CLAIMS, ordered=True).insert(docs)
        except Exception:
            await self.claims.delete_many({"_id": {"$in": list(keys)}, "attempt": attempt})
            raise
        if taken:
            await self.claims.delete_many({"_id": {"$in": list(keys)}, "attempt": attempt})
            raise Conflict(keys[min(taken)])

    async def release(self, keys: Sequence[str], session_id: str) -> None:
        """Release the keys this session holds (never someone else's)."""
        if keys:
            await self.claims.delete_many({"_id": {"$in": list(keys)}, "session_id": session_id})

    async def holders(self, keys: Sequence[str]) -> dict[str, str]:
        """Which of these slot keys are reserved, and by which session."""
        return {k: str(c["session_id"]) for k, c in (await find_by_ids(self.claims, keys, {"session_id": 1})).items()}

    async def taken(self, keys: Sequence[str]) -> set[str]:
        """Which of these slot keys are reserved."""
        return set(await find_by_ids(self.claims, keys, {"_id": 1}))

    async def insert_fact(self, collection: str, doc: Document, events: list[OutgoingEvent]) -> bool:
        """Insert a per-client fact with its events; False when that key exists already."""
        return await self._insert_new(collection, doc, events)

    async def seats_of_client(
        self, client_id: str, frm: datetime | None = None, to: datetime | None = None
    ) -> list[Document]:
        """A client's seats (not the booking path): with `frm`, those of the sessions that start
        from `frm` (until `to` when given), by the seat's `starts_at` (index `client_starts`);
        without, all of them. A seat stored before 2026-12-08 (twelfth session) has no `starts_at`
        until the seat start backfill gives it one: until that has completed, every seat of the client
        is read, and the caller bounds the sessions by their own start (as it always does). Until
        2026-12-08 every seat was read for any range: a schedule view of a client with years of
        group seats read them all, more with every seat."""
        query: Document = {"client_id": client_id}
        if frm is not None and await self.seat_starts_backfilled():
            query["starts_at"] = {"$gte": frm} if to is None else {"$gte": frm, "$lt": to}
        docs = await self.seats.find(query, NO_OUTBOX).to_list()
        return [x for x in docs if str(x["_id"]).startswith("seat:")]

    async def seat_starts_backfilled(self) -> bool:
        """Whether the seat start backfill (services/scheduler/seat_starts.py) has completed on this
        database: its record's `completed_at`, read at each call until it is set, then for good in
        this process. The record exists from the moment a run claims it, so its existence is not
        enough: a run in progress, or stopped midway, has left seats without their start."""
        if not self._seat_starts:
            record = await self.get(MIGRATIONS_COLLECTION, SEAT_STARTS)
            self._seat_starts = record is not None and record.get("completed_at") is not None
        return self._seat_starts

    async def seats_without_start(self, after: str | None = None) -> list[str]:
        """The `_id` of every client's seat stored without `starts_at` (after `after`), in order: one
        scan, sorted here (asked to sort, FerretDB holds every matching document, whole, in memory
        until the last is read). The hint keeps MongoDB on the `_id` index (the seats' key range;
        FerretDB ignores it). Capacity blocks (no client) have nothing to show and are left out."""
        ids: Document = {"$gte": "seat:", "$lt": "seat;"} if after is None else {"$gt": after, "$lt": "seat;"}
        query = {"_id": ids, "client_id": {"$ne": ""}, "starts_at": {"$exists": False}}
        return sorted([doc["_id"] async for doc in self.seats.find(query, {"_id": 1}).hint([("_id", 1)])])

    async def give_seats_their_start(self, seat_ids: Sequence[str]) -> tuple[int, int]:
        """Each of these seats its session's start, where it has none yet (a seat written since
        has its own): the seats and their sessions read by `_id` (two `$in` queries), then one update
        command with a statement per session. Returns the seats given their start and those whose
        session was never stored (a booking whose process died: nothing to show)."""
        seats = await find_by_ids(self.seats, seat_ids, {"session_id": 1})
        by_session: dict[str, list[str]] = {}
        for seat in seats.values():
            by_session.setdefault(str(seat["session_id"]), []).append(seat["_id"])
        sessions = await find_by_ids(self.sessions, list(by_session), {"starts_at": 1})
        statements = [
            UpdateMany({"_id": {"$in": ids}, "starts_at": {"$exists": False}}, {"$set": {"starts_at": start}})
            for session_id, ids in by_session.items()
            if (start := sessions.get(session_id, {}).get("starts_at")) is not None
        ]
        never_stored = sum(len(ids) for session_id, ids in by_session.items() if session_id not in sessions)
        if not statements:
            return 0, never_stored
        written = await self.seats.bulk_write(statements, ordered=True)
        return written.modified_count, never_stored

    async def delete_seats(self, keys: Sequence[str], session_id: str) -> None:
        if keys:
            await self.seats.delete_many({"_id": {"$in": list(keys)}, "session_id": session_id})

    # ---------- day ledgers (optimistic concurrency by unique revision keys) ----------

    async def ledger(self, owner_day: str, latest: bool = True) -> tuple[int, list[Booked]]:
        """The latest revision: start at this process's last known revision (or the head's
        hint), then probe forward by _id. The cache is only a starting point: correctness
        comes from the unique revision keys.

        With latest=False a known revision is returned as it is, without probing: for a writer,
        whose insert of the next revision fails if a newer one exists."""
        cached = self._ledger_cache.get(owner_day)
        if cached is not None:
            rev, bookings = cached
            if not latest:
                return rev, bookings
        else:
            head = await self._ledger_finds.get(owner_day)
            rev = int(head["rev"]) if head else 0
            doc = await self._ledger_finds.get(f"{owner_day}|{rev}") if rev else None
            if rev and doc is None:  # the hinted revision was superseded and removed: start over
                rev = 0
            bookings = [Booked.from_entry(b) for b in (doc or {}).get("bookings", [])]
        while True:
            newer = await self._ledger_finds.get(f"{owner_day}|{rev + 1}")
            if newer is None:
                break
            rev, bookings = rev + 1, [Booked.from_entry(b) for b in newer.get("bookings", [])]
        self._remember(owner_day, rev, bookings)
        return rev, bookings

    def _remember(self, owner_day: str, rev: int, bookings: list[Booked]) -> None:
        known = self._ledger_cache.get(owner_day)
        if known is not None and known[0] > rev:  # a concurrent booking here already saw a newer one
            return
        if len(self._ledger_cache) > LEDGER_CACHE_SIZE:
            self._ledger_cache.clear()
        self._ledger_cache[owner_day] = (rev, bookings)

    async def ledgers_for(self, owner_days: Sequence[str], latest: bool = True) -> dict[str, tuple[int, list[Booked]]]:
        found = await asyncio.gather(*(self.ledger(k, latest) for k in owner_days))
        return dict(zip(owner_days, found, strict=True))

    async def write_ledger(self, owner_day: str, rev: int, bookings: Sequence[Booked]) -> bool:
        """Insert revision rev+1; False when someone else wrote it first."""
        revision = {
            "_id": f"{owner_day}|{rev + 1}",
            "rev": rev + 1,
            "bookings": [b.as_entry() for b in bookings],
            "at": datetime.now(UTC),
        }
        if await self._grouped.inserts(LEDGERS).insert([revision]):
            return False  # another booking wrote it first; the known revision stays where the next probe starts
        self._remember(owner_day, rev + 1, list(bookings))
        # The head is only a hint for cold readers, who probe forward from it: move it every few
        # revisions. Old revisions stay (point reads never touch them; removing them could let a
        # reader behind a stale hint re-create a revision number).
        if (rev + 1) % HEAD_EVERY == 0:
            self._background(self.ledgers.update_one({"_id": owner_day}, {"$max": {"rev": rev + 1}}, upsert=True))
        return True

    def _background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def remove_from_ledger(self, owner_day: str, session_id: str, only: Booked | None = None) -> None:
        """Take a session's booking out of a day ledger (cancellation or a failed booking). With
        `only`, just the entry of that session at that time: what a failed attempt wrote, not what
        an earlier booking of the same request (the same session id, other times) holds there."""

        def removed(b: Booked) -> bool:
            return b.session_id == session_id and (only is None or (b.start, b.end) == (only.start, only.end))

        for _ in range(20):
            rev, bookings = await self.ledger(owner_day)
            if not any(removed(b) for b in bookings):
                return
            if await self.write_ledger(owner_day, rev, [b for b in bookings if not removed(b)]):
                return
        raise RuntimeError("ledger contention: could not remove a booking")  # pragma: no cover

    # ---------- sessions ----------

    async def update_session(
        self, session_id: str, condition: Document, update: dict[str, Any], events: list[OutgoingEvent]
    ) -> Document | None:
        """Conditional single-document update of state + events; None when the condition does not hold."""
        written = with_outbox(update, SOURCE, events)
        doc = await self.sessions.find_one_and_update(
            {"_id": session_id, **condition}, written, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            self._stored(SESSIONS_COLLECTION, session_id, written)
        return _without_outbox(doc)

    async def sessions_of_client(self, client_id: str, frm: datetime, to: datetime) -> list[Document]:
        """The sessions in [frm, to) a client was booked into or seated in (a seat in a group, a
        separate fact), by start."""
        booked = await self._sessions_where({"client_ids": client_id}, frm, to)
        seated = [x["session_id"] for x in await self.seats_of_client(client_id, frm, to)]
        found = {x["_id"]: x for x in booked}
        if seated:
            found.update((x["_id"], x) for x in await self._sessions_where({"_id": {"$in": seated}}, frm, to))
        return sorted(found.values(), key=lambda x: _aware(x["starts_at"]))

    async def sessions_of_clinician(self, clinician_id: str, frm: datetime, to: datetime) -> list[Document]:
        """The sessions in [frm, to) a clinician leads or facilitates."""
        on_screen = {"$or": [{"clinician_id": clinician_id}, {"facilitators.clinician_id": clinician_id}]}
        return await self._sessions_where(on_screen, frm, to)

    async def treats(self, clinician_id: str, client_id: str) -> bool:
        """Whether a clinician treats a client: is the clinician, a lead or a co-facilitator
        (`on_care_team`, acting) of a session the client is booked on or seated in, not cancelled.
        Reads the client's sessions with the clinician on screen page by page until one qualifies
        (scans: access checks of client records, not the booking path). Until 2026-12-07 it read
        the first 100 of each kind, unsorted, and sessions the clinician only observed or that were
        cancelled counted toward them: a clinician who treated a client in a later session was refused."""
        on_screen = [{"clinician_id": clinician_id}, {"facilitators.clinician_id": clinician_id}]
        fields = {"clinician_id": 1, "facilitators": 1}
        not_cancelled = {"status": {"$ne": CANCELLED}, "$or": on_screen}
        queries: list[Document] = [{"client_ids": client_id, **not_cancelled}]
        seated = [x["session_id"] for x in await self.seats_of_client(client_id)]
        if seated:
            queries.append({"_id": {"$in": seated}, **not_cancelled})
        for query in queries:
            async with self.sessions.find(query, fields).batch_size(TREATS_PAGE) as sessions:  # closed on return
                async for session in sessions:
                    if on_care_team(session, clinician_id, acting=True):
                        return True
        return False

    async def _sessions_where(self, query: Document, frm: datetime, to: datetime) -> list[Document]:
        """Every session of `query` in [frm, to), by start. The range is what bounds the answer (the
        schedule views take at most 62 days): until 2026-12-07 the first 500 were read, and a
        schedule with more left out its last days' sessions and understated their screen time."""
        return (
            await self.sessions.find({**query, "starts_at": {"$gte": frm, "$lt": to}}, NO_OUTBOX)
            .sort("starts_at", 1)
            .to_list()
        )

    # ---------- readiness, audit, care ----------

    async def add_tech_checks(self, tasks: list[Document]) -> None:
        await self._grouped.inserts(TECH_CHECKS).insert(tasks)  # a task that exists already (a retry) stays as it is

    async def delete_tech_checks(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            await self.tech_checks.delete_many({"_id": {"$in": list(task_ids)}})

    async def tech_checks_of(
        self, client_id: str, after: tuple[datetime, str] | None = None, limit: int = 0
    ) -> list[Document]:
        """A client's tech-check tasks by due time, then id (ListTechChecks: a task for each session
        that needed a check): those after the sort key `after` (a page's last task), at most `limit`
        (0: all). A keyset on the index `client_due`, not an offset: tasks added or removed in
        between move no task into or out of a page before them. Until 2026-12-07 the first 100 were
        read: a client with more was never shown their latest, the ones still to do."""
        query: Document = {"client_id": client_id}
        if after is not None:
            due, task_id = after
            query["due_by"] = {"$gte": due}
            query["$or"] = [{"due_by": {"$gt": due}}, {"_id": {"$gt": task_id}}]
        return await self.tech_checks.find(query).sort([("due_by", 1), ("_id", 1)]).limit(limit).to_list()

    async def tech_checks_for(self, client_id: str, session_ids: Sequence[str]) -> list[Document]:
        """A client's tech-check tasks of these sessions, by due time: read by _id (a task's id
        derives from its session and client), so as many as the sessions bound them."""
        ids = [tech_check_task_id(s, client_id) for s in session_ids]
        return sorted((await self.get_many(TECH_CHECKS, ids)).values(), key=lambda t: _aware(t["due_by"]))

    async def complete_tech_check(self, task_id: str, status: str, at: datetime) -> Document | None:
        return await self.tech_checks.find_one_and_update(
            {"_id": task_id, "status": "open"},
            {"$set": {"status": status, "completed_at": at}},
            return_document=ReturnDocument.AFTER,
        )

    async def satisfy_tech_checks(self, client_id: str, task_id: str, at: datetime, due_after: datetime) -> None:
        """The client's open tasks due after `due_after` (before sessions not started yet), opened
        by `at`, passed by the check of `task_id` done at `at` (tasks stored before 2026-12-07 have
        no `opened_at`: opened before). A session can start up to an hour before its booked start:
        the task of one started already (`started_at`) stays as it was, although its start is
        still ahead (until 2026-12-07 it was passed by a check done during or after it)."""
        still_open = {"client_id": client_id, "status": "open", "opened_at": {"$not": {"$gt": at}}}
        tasks = await self.tech_checks.find({**still_open, "due_by": {"$gt": due_after}}, {"session_id": 1}).to_list()
        if not tasks:
            return
        sessions = await self.get_many(SESSIONS_COLLECTION, list({str(t["session_id"]) for t in tasks}))
        started = {s for s, doc in sessions.items() if doc.get("started_at")}
        ids = [t["_id"] for t in tasks if t["session_id"] not in started]
        if ids:
            await self.tech_checks.update_many(
                {**still_open, "_id": {"$in": ids}},
                {"$set": {"status": "passed", "completed_at": at, "satisfied_by": task_id}},
            )

    async def open_tech_check(self, task: Document, failed_session_id: str) -> None:
        """`task` open after the failed session: inserted, or reopened when done (passed, failed)
        before; an open one stays open. The task records the failed sessions it was opened for
        (`failed_sessions`), so each opens it once: a retry finds it done since and leaves it so."""
        if not await self._grouped.inserts(TECH_CHECKS).insert([{**task, "failed_sessions": [failed_session_id]}]):
            return
        not_yet = {"_id": task["_id"], "failed_sessions": {"$ne": failed_session_id}}
        reopened = await self.tech_checks.update_one(
            {**not_yet, "status": {"$ne": "open"}},
            {
                "$set": {"status": "open", "trigger": task["trigger"], "opened_at": task["opened_at"]},
                "$unset": {"completed_at": "", "satisfied_by": ""},
                "$push": {"failed_sessions": failed_session_id},
            },
        )
        if not reopened.modified_count:  # open: still due, now after this failure too
            await self.tech_checks.update_one(not_yet, {"$push": {"failed_sessions": failed_session_id}})

    async def list_tech_check(self, session_id: str, seat: str, task_id: str) -> None:
        """A task named among the session's `tech_check_task_ids`, or its client's seat's (`seat`)."""
        if seat:
            await self.seats.update_one(
                {"_id": seat, "tech_check_task_ids": {"$ne": task_id}}, {"$push": {"tech_check_task_ids": task_id}}
            )
        else:
            await self.update_session(
                session_id, {"tech_check_task_ids": {"$ne": task_id}}, {"$push": {"tech_check_task_ids": task_id}}, []
            )

    async def next_session_of_client(
        self, client_id: str, after: datetime, excluding: str
    ) -> tuple[Document, str] | None:
        """The client's earliest session of `upcoming_sessions_of_client`."""
        found = await self.upcoming_sessions_of_client(client_id, after, excluding, limit=1)
        return found[0] if found else None

    async def upcoming_sessions_of_client(
        self, client_id: str, after: datetime, excluding: str, limit: int = 0
    ) -> list[tuple[Document, str]]:
        """The client's booked or checked-in sessions (theirs, or a seat in a group) that start
        after `after`, other than `excluding`, by start (the first `limit`; 0: all), each with the
        key of the client's seat in it ("": the session names the client). A scan of the client's
        sessions and seats: after a failed session, not the booking path."""
        seats = {str(x["session_id"]): str(x["_id"]) for x in await self.seats_of_client(client_id, after)}
        whose: list[Document] = [{"client_ids": client_id}]
        if seats:
            whose.append({"_id": {"$in": list(seats)}})
        query = {
            "$or": whose,
            "_id": {"$ne": excluding},
            "status": {"$in": [BOOKED, CHECKED_IN]},
            "starts_at": {"$gt": after},
        }
        found = await self.sessions.find(query, NO_OUTBOX).sort("starts_at", 1).limit(limit).to_list()
        return [(s, "" if client_id in s["client_ids"] else seats[s["_id"]]) for s in found]

    async def audit_override(self, record: Document) -> None:
        try:
            await self.override_audit.insert_one(record)
        except DuplicateKeyError:
            pass  # a retried booking: audited once

    async def care_of(
        self, clinician_id: str, frm: datetime | None = None, to: datetime | None = None
    ) -> list[Document]:
        """A clinician's care sessions in [frm, to) (a schedule view: the range bounds them), or all
        of them (the care summary), by start. Until 2026-12-07 the first 500 were read: a summary
        past them counted no later attendance and no upcoming session, and could call a clinician
        who attends supervision overdue."""
        query: Document = {"clinician_ids": clinician_id}
        if frm is not None and to is not None:
            query["starts_at"] = {"$gte": frm, "$lt": to}
        return await self.care.find(query, NO_OUTBOX).sort("starts_at", 1).to_list()

    async def update_care(
        self, care_id: str, condition: Document, update: dict[str, Any], events: list[OutgoingEvent]
    ) -> Document | None:
        written = with_outbox(update, SOURCE, events)
        doc = await self.care.find_one_and_update(
            {"_id": care_id, **condition}, written, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            self._stored(CARE_SESSIONS, care_id, written)
        return _without_outbox(doc)

    # ---------- maintenance ----------

    async def release_orphans(self, claimed_from: datetime, claimed_before: datetime) -> int:
        """Undo the reservations, claimed in [claimed_from, claimed_before), of bookings that never
        got stored (a process died mid-booking): the booking's entries in its day ledgers, then
        its claims. A booking's claims are orphaned when its session (or care session) does not
        exist, a seat's when the client holds no seat of the group. Returns the claims released."""
        claims = await self.claims.find({"at": {"$gte": claimed_from, "$lt": claimed_before}}, NO_OUTBOX).to_list()
        if not claims:
            return 0
        session_ids = list({c["session_id"] for c in claims})
        sessions = await self.get_many(SESSIONS_COLLECTION, session_ids)
        alive = set(sessions) | await self.existing_ids(CARE_SESSIONS, session_ids)
        seats = await self.get_many(
            SEATS,
            [
                seat_key(c["session_id"], n)
                for c in claims
                if c.get("kind") == SEAT_CLAIM and c["session_id"] in sessions
                for n in range(int(sessions[c["session_id"]].get("capacity", 0)))
            ],
        )
        seated = {(x["session_id"], x.get("client_id")) for x in seats.values()}

        def orphaned(claim: Document) -> bool:
            if claim["session_id"] not in alive:
                return True
            if claim.get("kind") == SEAT_CLAIM:
                return (claim["session_id"], claim.get("client_id")) not in seated
            # an attempt of a request that got stored at other times (its retry, after it died)
            session = sessions.get(claim["session_id"])
            return session is not None and claim["_id"] not in session.get("slot_keys", [claim["_id"]])

        orphans = [c for c in claims if orphaned(c)]
        entries: set[tuple[str, str, Booked | None]] = set()
        for c in orphans:
            if c["session_id"] not in alive or c.get("kind") == SEAT_CLAIM:
                # nothing stored (or no seat: its day ledgers are the seat's client's): every entry
                # of the session there is the attempt's
                entries.update((day, c["session_id"], None) for day in c.get("ledger_days", []))
            elif "starts_at" in c:  # the stored booking's entries stay: only the attempt's times go
                attempt = Booked(c["session_id"], _aware(c["starts_at"]), _aware(c["ends_at"]))
                entries.update((day, c["session_id"], attempt) for day in c.get("ledger_days", []))
        for day, session_id, only in sorted(entries, key=lambda e: (e[0], e[1])):
            await self.remove_from_ledger(day, session_id, only)
        # by attempt: a claim released and taken again since it was read belongs to someone else now
        for c in orphans:
            held = {"_id": c["_id"], "session_id": c["session_id"]}
            if "attempt" in c:  # claims made before 2026-12-07 have none
                held["attempt"] = c["attempt"]
            await self.claims.delete_one(held)
        return len(orphans)

    async def existing_ids(self, collection: str, ids: Sequence[str]) -> set[str]:
        return set(await find_by_ids(self.db[collection], ids, {"_id": 1}))
