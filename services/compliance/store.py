"""Store access of the compliance service (its own MongoDB database).

Single-document atomicity only (FerretDB 1.x): every state change and the events it causes are one
document write (outbox helpers); invariants are unique indexes; idempotent handlers use conditional
updates keyed by event id or by the day being billed.

A clinician's licenses and compact credentials and a client's consents and authorizations are
read on every evaluation, so they are found by `_id` only (what the local store answers without
scanning a collection): `owner_directory` holds one insert-only entry per record,
`<collection>|<owner>|<slot>` -> record id, slots taken first-free (a duplicate `_id` means
another writer took it: try the next). An entry is written before its record, so a record is
never unreachable; an entry whose record was never written (a crash in between) is skipped.

FerretDB 1.x applies an update as read-modify-write of the whole document, so two concurrent
updates of one document can lose one of them (both callers told it was applied). What must never be
lost is therefore inserted, not updated: a board action on a license or compact credential is a
`board_actions` document of its own (owned by the clinician, found through the directory, carrying
its CredentialStatusChanged event in its outbox), and an
expiry warning an `expiry_notices` document carrying its event; neither writes the record, so
neither can undo, or be undone by, a consent's revocation or an authorization's decrement.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.compliance.cache import TtlCache
from services.compliance.consent import Consent
from services.compliance.coverage import Authorization, PayerPolicy
from services.compliance.licensure import ACTIVE, CompactCredential, License
from services.plumbing.outbox import OutboxRelay, OutgoingEvent, new_document_with_outbox, with_outbox
from services.plumbing.storage import Document, GroupedCalls, IndexSpec, find_by_ids, to_millis

LICENSES = "licenses"
COMPACT_CREDENTIALS = "compact_credentials"
PAYER_POLICIES = "payer_policies"
AUTHORIZATIONS = "authorizations"
CONSENTS = "consents"
ATTESTATIONS = "privacy_attestations"
SESSIONS = "sessions"
BILLING_DAYS = "billing_days"
# The attendance billed for each client of a session: insert-only, `_id` `<session>|<client>`, the
# first attendance's day entry with the day it went to; later attendances with other figures are kept
# in its `rejected` (see claim_attendance).
BILLED_ATTENDANCE = "billed_attendance"
DIRECTORY = "owner_directory"
# Expiry warnings sent: insert-only, `_id` `<collection>|<item id>|<horizon>`, with the event (outbox).
EXPIRY_NOTICES = "expiry_notices"
# Board actions on licenses and compact credentials: insert-only, one document per action, owned by
# the clinician; `_id` `<collection>|<record id>|<effective time>|<status>` (see board_action_id).
BOARD_ACTIONS = "board_actions"
# Board actions whose flagging of the sessions is under way: `_id` a random token, inserted before
# the action and deleted once its flags are settled; one left behind (a crash) is settled by the
# periodic job (BoardActions.settle_pending).
FLAG_CLEAN_UPS = "flag_clean_ups"
# Records found through the directory, by the owner each belongs to (the `owner_id` field).
OWNED = (LICENSES, COMPACT_CREDENTIALS, BOARD_ACTIONS, CONSENTS, AUTHORIZATIONS)
CREDENTIAL_RECORDS = (LICENSES, COMPACT_CREDENTIALS, BOARD_ACTIONS)  # a clinician's credentials snapshot
DIRECTORY_PAGE = 16  # slots read per directory query
MAX_SLOTS = 10_000

# Collections whose documents carry outbox entries.
OUTBOX_COLLECTIONS = [
    LICENSES,
    COMPACT_CREDENTIALS,
    AUTHORIZATIONS,
    CONSENTS,
    ATTESTATIONS,
    SESSIONS,
    BILLING_DAYS,
    EXPIRY_NOTICES,
    BOARD_ACTIONS,  # its CredentialStatusChanged
]
# Statuses of compliance's copy of a session (handlers.py): booked, in progress (SessionStarted),
# then ended, interrupted (since 2026-12-07), cancelled or rescheduled. Board actions, expiries and
# roster changes flag the live ones: a session in progress is treated in until its booked end.
SCHEDULED = "scheduled"
STARTED = "started"
LIVE_STATUSES = (SCHEDULED, STARTED)
# Items the expiry monitor watches: collection -> item type in CredentialExpiring.
EXPIRING = {
    LICENSES: "license",
    COMPACT_CREDENTIALS: "compact_credential",
    CONSENTS: "consent",
    AUTHORIZATIONS: "authorization",
}

INDEXES = [
    IndexSpec(LICENSES, [("state", 1), ("license_type", 1), ("license_number", 1)], unique=True, name="license_unique"),
    IndexSpec(LICENSES, [("clinician_id", 1)], name="clinician"),
    IndexSpec(COMPACT_CREDENTIALS, [("clinician_id", 1)], name="clinician"),
    IndexSpec(
        COMPACT_CREDENTIALS,
        [("compact", 1), ("kind", 1), ("credential_number", 1), ("privilege_state", 1)],
        unique=True,
        name="credential_unique",
    ),
    IndexSpec(AUTHORIZATIONS, [("client_id", 1)], name="client"),
    IndexSpec(AUTHORIZATIONS, [("payer_plan_id", 1), ("auth_number", 1)], unique=True, name="auth_unique"),
    IndexSpec(CONSENTS, [("client_id", 1)], name="client"),
    IndexSpec(SESSIONS, [("clinician_id", 1), ("starts_at", 1)], name="clinician_starts"),
    IndexSpec(SESSIONS, [("client_ids", 1), ("starts_at", 1)], name="clients_starts"),
    IndexSpec(SESSIONS, [("facilitator_ids", 1), ("starts_at", 1)], name="facilitators_starts"),
    IndexSpec(BILLING_DAYS, [("dirty", 1), ("close_at", 1)], name="dirty_close_at"),
    IndexSpec(BILLING_DAYS, [("client_id", 1), ("service_date", 1)], name="client_week"),
    *[IndexSpec(c, [("expires_at", 1)], name="expires_at") for c in EXPIRING],
    IndexSpec(FLAG_CLEAN_UPS, [("at", 1)], name="at"),
]

POLICY_CACHE_TTL_S = 15.0


# What the read cache holds: immutable, so every call that hits an entry can share it.
CredentialsSnapshot = tuple[tuple[License, ...], tuple[CompactCredential, ...]]  # (licenses, compact credentials)
ClientSnapshot = tuple[tuple[Consent, ...], tuple[Authorization, ...]]  # (consents, authorizations)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _status_changes(d: Document) -> tuple[tuple[datetime, str], ...]:
    return tuple((_utc(c["effective_at"]), c["status"]) for c in d.get("status_changes") or [])  # type: ignore[misc]


def board_action_id(collection: str, record_id: str, status: str, effective_at: datetime) -> str:
    """A board action's `_id`: the same action (record, status, effective time) is one document;
    sent again after another action at its instant, it is recorded again as `<this id>|<n>`
    (n = 2, 3, ...: see ComplianceStore.change_status)."""
    return f"{collection}|{record_id}|{effective_at.astimezone(UTC).isoformat()}|{status}"


def with_status_changes(d: Document, actions: Sequence[Document]) -> Document:
    """The license or credential document `d` with its board actions as `status_changes`: the
    `board_actions` documents of the record, and any history kept in the document itself (the
    first version of board actions, 2026-12-07, pushed it there). Ordered by effective time, then
    by recorded time; of two recorded in the same millisecond for the same instant, a non-active
    status counts as the later (fail closed), so `licensure.status_at` reads the one in force. An
    action right after the same one (status and effective time) is a copy of it (the first
    version's history and its retry) and is left out; the same action sent again after another at
    its instant is not a copy (see ComplianceStore.change_status)."""
    changes = [
        {
            "status": c["status"],
            "effective_at": _utc(c["effective_at"]),
            "recorded_at": _utc(c.get("recorded_at")) or datetime.min.replace(tzinfo=UTC),
            "recorded_by": c.get("recorded_by", ""),
        }
        for c in [*(d.get("status_changes") or []), *actions]
    ]
    ordered: list[Document] = []
    for change in sorted(changes, key=lambda c: (c["effective_at"], c["recorded_at"], c["status"] != ACTIVE)):
        key = (change["effective_at"], change["status"])
        if not ordered or (ordered[-1]["effective_at"], ordered[-1]["status"]) != key:
            ordered.append(change)
    return {**d, "status_changes": ordered}


def actions_of(actions: Sequence[Document], collection: str, record_id: str) -> list[Document]:
    """Of an owner's board actions, those on the record `record_id` of `collection`."""
    return [a for a in actions if a["collection"] == collection and a["record_id"] == record_id]


def license_from_doc(d: Document) -> License:
    return License(
        license_id=d["_id"],
        state=d["state"],
        license_type=d["license_type"],
        profession=d.get("profession", ""),
        valid_from=_utc(d["valid_from"]),  # type: ignore[arg-type]
        valid_until=_utc(d["valid_until"]),  # type: ignore[arg-type]
        status=d.get("status", "active"),
        multistate=bool(d.get("multistate", False)),
        issued_via=d.get("issued_via", ""),
        verified_at=_utc(d.get("verified_at")),
        status_changes=_status_changes(d),
    )


def credential_from_doc(d: Document) -> CompactCredential:
    return CompactCredential(
        credential_id=d["_id"],
        compact=d["compact"],
        kind=d["kind"],
        home_state=d.get("home_state", ""),
        privilege_state=d.get("privilege_state", ""),
        valid_from=_utc(d["valid_from"]),  # type: ignore[arg-type]
        valid_until=_utc(d["valid_until"]),  # type: ignore[arg-type]
        status=d.get("status", "active"),
        verified_at=_utc(d.get("verified_at")),
        profession=d.get("profession", ""),
        status_changes=_status_changes(d),
    )


def consent_from_doc(d: Document) -> Consent:
    return Consent(
        consent_id=d["_id"],
        consent_type=d["consent_type"],
        form_version=d["form_version"],
        valid_from=_utc(d["valid_from"]),  # type: ignore[arg-type]
        valid_until=_utc(d["valid_until"]),  # type: ignore[arg-type]
        revoked_at=_utc(d.get("revoked_at")),
    )


def authorization_from_doc(d: Document) -> Authorization:
    review = d.get("concurrent_review_due") or ""
    return Authorization(
        authorization_id=d["_id"],
        payer_plan_id=d["payer_plan_id"],
        codes=frozenset(d["codes"]),
        start_date=date.fromisoformat(d["start_date"]),
        end_date=date.fromisoformat(d["end_date"]),
        units=int(d["units"]),
        units_used=int(d.get("units_used", 0)),
        concurrent_review_due=date.fromisoformat(review) if review else None,
        billed_dates=frozenset(d.get("billed_dates") or []),
        expires_at=_utc(d.get("expires_at")),
    )


def treated_by(clinician_id: str) -> Document:
    """Filter: the sessions in which the clinician treats the clients, as the session's clinician or
    as a treating facilitator (lead, co_facilitator: `facilitator_ids`, from SessionScheduled)."""
    return {"$or": [{"clinician_id": clinician_id}, {"facilitator_ids": clinician_id}]}


def owner_sessions(collection: str, owner_id: str) -> Document:
    """Filter: the sessions an item of `collection` owned by `owner_id` matters to: a clinician's
    license or compact credential, those they treat in; a client's consent or authorization, theirs."""
    if collection in (LICENSES, COMPACT_CREDENTIALS):
        return treated_by(owner_id)
    return {"client_ids": owner_id}


def notice_id(collection: str, item_id: str, horizon: int) -> str:
    return f"{collection}|{item_id}|{horizon}"


def _slot(collection: str, owner_id: str, n: int) -> str:
    return f"{collection}|{owner_id}|{n:04d}"


class ComplianceStore:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        source: str,
        read_cache_ttl_s: float = 2.0,
        relay: OutboxRelay | None = None,
    ) -> None:
        self.db = db
        self.source = source
        self._relay = relay  # told about every stored write that carries events
        self._policies: dict[str, tuple[float, PayerPolicy | None]] = {}
        self._credentials: TtlCache[CredentialsSnapshot] = TtlCache(read_cache_ttl_s)
        self._client_records: TtlCache[ClientSnapshot] = TtlCache(read_cache_ttl_s)
        self._grouped = GroupedCalls(db)  # concurrent loads' lookups, and events' session updates, go together

    def _stored(self, collection: str, doc_id: str, write: Document) -> None:
        if self._relay is not None:
            self._relay.notify(collection, doc_id, write)

    def invalidate(self, collection: str, owner_id: str) -> None:
        """Forget the cached snapshot a write to `collection` for `owner_id` changed."""
        if collection in CREDENTIAL_RECORDS:
            self._credentials.invalidate(owner_id)
        elif collection in (CONSENTS, AUTHORIZATIONS):
            self._client_records.invalidate(owner_id)

    # --- credentials -------------------------------------------------------------------------

    async def insert(self, collection: str, doc: Document, events: list[OutgoingEvent] | None = None) -> None:
        """Insert a new document (with its creation events); DuplicateKeyError propagates."""
        written = new_document_with_outbox(doc, self.source, events or [])
        if collection in OWNED:
            await self._link(collection, doc["owner_id"], doc["_id"])
        try:
            await self.db[collection].insert_one(written)
        finally:
            self.invalidate(collection, doc.get("owner_id", ""))
        self._stored(collection, doc["_id"], written)

    async def owned(self, collection: str, owner_id: str) -> list[Document]:
        """The owner's records of `collection` (licenses, credentials, consents, authorizations)."""
        return (await self.owned_many((collection,), owner_id))[collection]

    async def owned_many(self, collections: Sequence[str], owner_id: str) -> dict[str, list[Document]]:
        """The owner's records of each of `collections`: their directories in one query, then
        one query per collection that has records."""
        directories = await self._directories(collections, owner_id)

        async def records(collection: str) -> list[Document]:
            # two entries may name one record: a retried board action whose first try stopped
            # after its entry (see change_status)
            record_ids = list(dict.fromkeys(e["record_id"] for e in directories[collection]))
            if not record_ids:
                return []
            found = await self._grouped.finds(collection, {"outbox": 0}).get_many(record_ids)
            return [found[i] for i in record_ids if i in found]

        lists = await asyncio.gather(*(records(c) for c in collections))
        return dict(zip(collections, lists, strict=True))

    async def _directory(self, collection: str, owner_id: str) -> list[Document]:
        """The owner's directory entries of one collection, in slot order."""
        return (await self._directories((collection,), owner_id))[collection]

    async def _directories(self, collections: Sequence[str], owner_id: str) -> dict[str, list[Document]]:
        """The owner's directory entries of each collection, in slot order: a page of slots of
        every collection per query, until each collection's page comes back short."""
        found: dict[str, list[Document]] = {c: [] for c in collections}
        reading = list(collections)
        for first in range(0, MAX_SLOTS, DIRECTORY_PAGE):
            pages = {c: [_slot(c, owner_id, n) for n in range(first, first + DIRECTORY_PAGE)] for c in reading}
            entries = await self._grouped.finds(DIRECTORY).get_many([s for page in pages.values() for s in page])
            for collection, page in pages.items():
                found[collection] += [entries[s] for s in page if s in entries]
            # slots are taken first-free: a page with a free slot is the collection's last
            reading = [c for c, page in pages.items() if all(s in entries for s in page)]
            if not reading:
                break
        return found

    async def _link(self, collection: str, owner_id: str, record_id: str) -> None:
        taken = len(await self._directory(collection, owner_id))
        for n in range(taken, MAX_SLOTS):
            try:
                await self.db[DIRECTORY].insert_one({"_id": _slot(collection, owner_id, n), "record_id": record_id})
                return
            except DuplicateKeyError:
                continue  # a concurrent writer took this slot: the next one
        raise RuntimeError(f"the owner directory of {collection} is full")  # pragma: no cover

    async def link_unlisted(self) -> int:
        """Directory entries for records stored without one (written before the directory
        existed); idempotent, run at start. Returns how many it added."""
        listed = {d["record_id"] for d in await self.db[DIRECTORY].find({}, {"record_id": 1}).to_list()}
        added = 0
        for collection in OWNED:
            async for doc in self.db[collection].find({}, {"_id": 1, "owner_id": 1}):
                if doc["_id"] not in listed and doc.get("owner_id"):
                    await self._link(collection, doc["owner_id"], doc["_id"])
                    added += 1
        return added

    async def clinician_credentials(self, clinician_id: str) -> tuple[list[Document], list[Document]]:
        """The stored (licenses, compact credentials) documents, read now, each with its board
        actions as `status_changes` (with_status_changes). One directory query for the three
        collections, then their records' lookups concurrently (the board actions' only when the
        clinician has any)."""
        owned = await self.owned_many(CREDENTIAL_RECORDS, clinician_id)
        actions: dict[tuple[str, str], list[Document]] = {}
        for action in owned[BOARD_ACTIONS]:
            actions.setdefault((action["collection"], action["record_id"]), []).append(action)

        def records(collection: str) -> list[Document]:
            return [with_status_changes(d, actions.get((collection, d["_id"]), [])) for d in owned[collection]]

        return records(LICENSES), records(COMPACT_CREDENTIALS)

    async def read_credentials(self, clinician_id: str) -> CredentialsSnapshot:
        """(licenses, compact credentials), read now and parsed."""
        licenses, credentials = await self.clinician_credentials(clinician_id)
        return tuple(map(license_from_doc, licenses)), tuple(map(credential_from_doc, credentials))

    async def credentials_snapshot(self, clinician_id: str) -> CredentialsSnapshot:
        """(licenses, compact credentials), parsed once per load and at most the cache TTL old."""
        return await self._credentials.get(clinician_id, lambda: self.read_credentials(clinician_id))

    async def credentials_with_actions(self, clinician_id: str) -> CredentialsSnapshot:
        """(licenses, compact credentials) with every board action stored before this call: read now
        when the clinician has any board action (their directory of actions tells, one `_id` query),
        else the cached snapshot, which no board action can have made stale (actions are insert-only,
        and an action's directory entry is written before the action). For the flags of a booked
        session (handlers.SchedulingHandlers._flag_for_recheck): another instance's action is seen at
        once, not within the read cache's TTL."""
        if await self._directory(BOARD_ACTIONS, clinician_id):
            return await self.read_credentials(clinician_id)
        return await self.credentials_snapshot(clinician_id)

    async def client_snapshot(self, client_id: str) -> ClientSnapshot:
        """(consents, authorizations), parsed once per load and at most the cache TTL old."""

        async def load() -> ClientSnapshot:
            owned = await self.owned_many((CONSENTS, AUTHORIZATIONS), client_id)
            consents, authorizations = owned[CONSENTS], owned[AUTHORIZATIONS]
            return tuple(map(consent_from_doc, consents)), tuple(map(authorization_from_doc, authorizations))

        return await self._client_records.get(client_id, load)

    async def change_status(
        self,
        collection: str,
        record_id: str,
        change: Document,
        events: Callable[[Document], Awaitable[list[OutgoingEvent]]] | None = None,
    ) -> Document | None:
        """Record a board action (`status`, `effective_at`, `recorded_at`, `recorded_by`) on a
        license or compact credential: a `board_actions` document of its own, with its audit
        fields and the events `events(record with its status changes, this action included)`
        builds in its outbox (one insert: no action without its event), `_id` board_action_id (a
        retry, or the same action recorded concurrently, is a duplicate: nothing twice, and
        `events` is not called for an action already stored). The same action sent after another
        one at its instant (suspended, reinstated, suspended again, all from one time) is a new
        call, not a retry: it is recorded again (`<id>|2`, ...), so the last call is in force (until
        2026-12-07 it was dropped as a retry, the caller told OK with the earlier call in force).
        The record's document is not
        written, so no concurrent update of it (the expiry monitor's, another board action's) can
        undo the action or be undone by it. The directory entry is written first (store.insert),
        so the action is never unreachable; an action already stored was linked before, so a
        retry adds no entry. Returns the record with its status changes (None: no such record);
        this process's cached snapshot of the owner is invalidated before it returns."""
        record = await self.get(collection, record_id)
        if record is None:
            return None
        owner_id = record["owner_id"]
        effective_at = to_millis(change["effective_at"])
        stored = await self.record_actions(collection, record)
        at_instant = [
            c for c in with_status_changes(record, stored)["status_changes"] if c["effective_at"] == effective_at
        ]
        # The same action (status, effective time) is recorded again only when another one at its
        # instant was recorded after it: the last call is in force. Otherwise it is a retry.
        if not at_instant or at_instant[-1]["status"] != change["status"]:
            first_id = board_action_id(collection, record_id, change["status"], effective_at)
            taken = {a["_id"] for a in stored}
            action_id = (
                first_id
                if first_id not in taken
                else next(f"{first_id}|{n}" for n in itertools.count(2) if f"{first_id}|{n}" not in taken)
            )
            action = {
                **change,
                "_id": action_id,
                "effective_at": effective_at,
                "owner_id": owner_id,
                "collection": collection,
                "record_id": record_id,
            }
            outgoing: list[OutgoingEvent] = []
            if events is not None:
                outgoing = await events(with_status_changes(record, [*stored, action]))
            try:
                await self.insert(BOARD_ACTIONS, action, outgoing)
            except DuplicateKeyError:
                pass  # the same action, recorded concurrently (and linked) by another call
        self.invalidate(collection, owner_id)
        return with_status_changes(record, await self.record_actions(collection, record))

    async def record_actions(self, collection: str, record: Document) -> list[Document]:
        """The board actions stored for `record`, a document of `collection` (licenses or compact
        credentials)."""
        return actions_of(await self.owned(BOARD_ACTIONS, record["owner_id"]), collection, record["_id"])

    async def get(self, collection: str, doc_id: str) -> Document | None:
        return await self.db[collection].find_one({"_id": doc_id}, {"outbox": 0})

    async def revoke_consent(
        self, consent_id: str, at: datetime, events: Callable[[Document], list[OutgoingEvent]]
    ) -> Document | None:
        """Revoke once, with the events `events(current document)` builds, in one write."""
        current = await self.db[CONSENTS].find_one({"_id": consent_id, "revoked_at": None}, {"outbox": 0})
        if current is None:
            return None
        written = with_outbox({"$set": {"revoked_at": at}}, self.source, events({**current, "revoked_at": at}))
        doc = await self.db[CONSENTS].find_one_and_update(
            {"_id": consent_id, "revoked_at": None}, written, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            doc.pop("outbox", None)  # FerretDB 1.x: no exclusion projection in findAndModify
            self.invalidate(CONSENTS, doc["client_id"])
            self._stored(CONSENTS, consent_id, written)
        return doc

    # --- payer policies ----------------------------------------------------------------------

    async def seed_policies(self, plans: list[dict[str, Any]]) -> None:
        """Insert the reference-data seed plans that have no stored policy yet."""
        for plan in plans:
            policy = PayerPolicy.from_document({**plan, "version": 1})
            try:
                await self.db[PAYER_POLICIES].insert_one({"_id": policy.plan_id, **policy.to_document()})
            except DuplicateKeyError:
                pass

    async def upsert_policy(self, policy: PayerPolicy) -> PayerPolicy:
        doc = policy.to_document()
        doc.pop("version")
        stored = await self.db[PAYER_POLICIES].find_one_and_update(
            {"_id": policy.plan_id},
            {"$set": doc, "$inc": {"version": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert stored is not None  # upsert=True with ReturnDocument.AFTER
        result = PayerPolicy.from_document(stored)
        self._policies[policy.plan_id] = (time.monotonic(), result)
        return result

    async def policy(self, plan_id: str) -> PayerPolicy | None:
        """Cached for a few seconds: policies change rarely and every evaluation needs one."""
        cached = self._policies.get(plan_id)
        if cached and time.monotonic() - cached[0] < POLICY_CACHE_TTL_S:
            return cached[1]
        doc = await self.db[PAYER_POLICIES].find_one({"_id": plan_id})
        policy = PayerPolicy.from_document(doc) if doc else None
        self._policies[plan_id] = (time.monotonic(), policy)
        return policy

    # --- authorizations ----------------------------------------------------------------------

    async def decrement_authorization(self, client_id: str, authorization_id: str, service_date: str) -> bool:
        """Count one attended day against an authorization, once per date; False when exhausted."""
        self.invalidate(AUTHORIZATIONS, client_id)
        auth = await self.db[AUTHORIZATIONS].find_one({"_id": authorization_id}, {"units": 1, "billed_dates": 1})
        if auth is None:
            return False
        if service_date in (auth.get("billed_dates") or []):
            return True
        result = await self.db[AUTHORIZATIONS].update_one(
            {"_id": authorization_id, "billed_dates": {"$ne": service_date}, "units_used": {"$lt": auth["units"]}},
            {"$inc": {"units_used": 1}, "$push": {"billed_dates": service_date}},
        )
        self.invalidate(AUTHORIZATIONS, client_id)
        if result.modified_count == 1:
            return True
        again = await self.db[AUTHORIZATIONS].find_one({"_id": authorization_id}, {"billed_dates": 1})
        return again is not None and service_date in (again.get("billed_dates") or [])

    # --- sessions (from the scheduler's events) --------------------------------------------------

    async def apply_session_event(
        self, session_id: str, event_id: str, update: Document, insert: Document | None = None
    ) -> None:
        """Apply one event's update to a session document once (keyed by event id), in one
        command with the concurrent events' updates (an update applied twice does nothing)."""
        update = {k: dict(v) for k, v in update.items()}
        update.setdefault("$push", {})["applied_events"] = event_id
        if insert:
            update.setdefault("$setOnInsert", {}).update(insert)
        try:
            await self._grouped.updates(SESSIONS).update_one(
                {"_id": session_id, "applied_events": {"$ne": event_id}}, update, upsert=True
            )
        except DuplicateKeyError:
            pass  # the event was applied already (the filter missed, the upsert collided)

    async def session(self, session_id: str) -> Document | None:
        """Compliance's copy of a session (the lookups of concurrent events go as one query)."""
        return await self._grouped.finds(SESSIONS, {"outbox": 0}).get(session_id)

    async def add_session_events(self, session_id: str, marker: str, events: list[OutgoingEvent]) -> bool:
        """Record that `marker` was handled on the session, with its events, once."""
        written = with_outbox({"$push": {"handled": marker}}, self.source, events)
        result = await self.db[SESSIONS].update_one({"_id": session_id, "handled": {"$ne": marker}}, written)
        if result.modified_count != 1:
            return False
        self._stored(SESSIONS, session_id, written)
        return True

    # --- billing days ----------------------------------------------------------------------------

    async def claim_attendance(self, session_id: str, client_id: str, claim: Document) -> Document:
        """The attendance billed for the client in the session: `claim` (`day_id`, `entry`, `base`: what
        add_to_billing_day takes) when it is the first, else the one stored first. One insert-only
        document per (session, client), whatever service date an attendance falls on, so a second
        attendance of the session is found also when its figures put it in another day."""
        doc = {"_id": f"{session_id}|{client_id}", "session_id": session_id, "client_id": client_id, **claim}
        try:
            await self.db[BILLED_ATTENDANCE].insert_one(doc)
            return doc
        except DuplicateKeyError:
            stored = await self.db[BILLED_ATTENDANCE].find_one({"_id": doc["_id"]})
            assert stored is not None  # insert-only: the duplicate is there
            return stored

    async def reject_attendance(self, session_id: str, client_id: str, rejected: Document) -> None:
        """Keep an attendance that was not billed because it differs from the one billed for the client
        in the session (`rejected`, with its `event_id`), once per event: its event id also goes to
        `rejected_event_ids`, the array of strings the condition reads (see add_to_billing_day)."""
        event_id = rejected["event_id"]
        await self.db[BILLED_ATTENDANCE].update_one(
            {
                "_id": f"{session_id}|{client_id}",
                "rejected_event_ids": {"$ne": event_id},
                "rejected.event_id": {"$ne": event_id},
            },
            {"$push": {"rejected": rejected, "rejected_event_ids": event_id}},
        )

    async def add_to_billing_day(self, day_id: str, event_id: str, entry: Document, base: Document) -> None:
        """Add one session's attendance (`entry`, with its `session_id`) to a client's day, once per
        event and at most once per session: a day holds one entry per session.

        The condition reads `event_ids` and `session_ids`, arrays of strings pushed with each entry:
        FerretDB 1.x (the local store) matches `$ne` on a path into an array of documents
        (`entries.session_id`) whenever some element differs, so with two sessions in the day every
        later event of either pushed its entry again (until 2026-12-08: billed twice). The `entries.`
        conditions stay for days written before these arrays (MongoDB evaluates them right)."""
        session_id = entry["session_id"]
        try:
            await self.db[BILLING_DAYS].update_one(
                {
                    "_id": day_id,
                    "event_ids": {"$ne": event_id},
                    "session_ids": {"$ne": session_id},
                    "entries.event_id": {"$ne": event_id},
                    "entries.session_id": {"$ne": session_id},
                },
                {
                    "$push": {"entries": entry, "event_ids": event_id, "session_ids": session_id},
                    "$setOnInsert": base,
                    "$set": {"dirty": True},
                },
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # already added (the day exists and already holds this event or session)

    async def due_billing_days(self, now: datetime, limit: int = 100) -> list[Document]:
        return (
            await self.db[BILLING_DAYS]
            .find({"dirty": True, "close_at": {"$lte": now}}, {"outbox": 0})
            .limit(limit)
            .to_list()
        )

    async def billing_week(self, client_id: str, monday: str, sunday: str) -> list[Document]:
        """The client's attended days from `monday` to `sunday` (ISO dates; string order is date order)."""
        return (
            await self.db[BILLING_DAYS]
            .find(
                {"client_id": client_id, "service_date": {"$gte": monday, "$lte": sunday}},
                {"service_date": 1, "entries": 1},
            )
            .to_list()
        )

    async def close_billing_day(self, day: Document, set_fields: Document, events: list[OutgoingEvent]) -> bool:
        """Mark the day reported (for exactly the entries seen) and enqueue its BillingReady, in one write."""
        written = with_outbox({"$set": {**set_fields, "dirty": False}, "$inc": {"reports": 1}}, self.source, events)
        result = await self.db[BILLING_DAYS].update_one(
            {"_id": day["_id"], "dirty": True, "entries": {"$size": len(day["entries"])}}, written
        )
        if result.modified_count != 1:
            return False
        self._stored(BILLING_DAYS, day["_id"], written)
        return True

    # --- privacy attestations ----------------------------------------------------------------------

    async def record_attestation(
        self, session_id: str, client_id: str, marker: str, entry: Document, events: list[OutgoingEvent]
    ) -> bool:
        doc_id = f"{session_id}:{client_id}"
        update = with_outbox(
            {
                "$push": {"history": entry, "markers": marker},
                "$set": {"attestation": entry["attestation"], "at": entry["at"]},
                "$setOnInsert": {"session_id": session_id, "client_id": client_id},
            },
            self.source,
            events,
        )
        try:
            result = await self.db[ATTESTATIONS].update_one(
                {"_id": doc_id, "markers": {"$ne": marker}}, update, upsert=True
            )
        except DuplicateKeyError:
            return False
        if result.modified_count != 1 and result.upserted_id is None:
            return False
        self._stored(ATTESTATIONS, doc_id, update)
        return True

    # --- expiry monitoring ---------------------------------------------------------------------------

    async def expiring(self, collection: str, now: datetime, until: datetime, owner_id: str = "") -> list[Document]:
        """Items not yet expired at `now` that expire by `until`."""
        query: Document = {"expires_at": {"$gt": now, "$lte": until}}
        if owner_id:
            query["owner_id"] = owner_id
        return await self.db[collection].find(query, {"outbox": 0}).to_list()

    async def notified(self, collection: str, wanted: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of the (item id, horizon) pairs were warned of already (their notice exists)."""
        ids = {notice_id(collection, item_id, horizon): (item_id, horizon) for item_id, horizon in wanted}
        found = await find_by_ids(self.db[EXPIRY_NOTICES], list(ids), {"_id": 1})
        return {ids[notice] for notice in found}

    async def mark_horizons(
        self, collection: str, item_id: str, horizon: int, horizons: list[int], events: list[OutgoingEvent]
    ) -> bool:
        """Record the warning for `horizon` (the nearest of the `horizons` now passed) with its
        event, once: an `expiry_notices` document `<collection>|<item>|<horizon>` carrying the
        event in its outbox; a duplicate `_id` means it was recorded already (False). The item's
        own document is not written: an update of it (FerretDB 1.x: read-modify-write) could undo
        a board action, a consent's revocation or an authorization's decrement written at the same
        moment, or be undone by it."""
        notice_key = notice_id(collection, item_id, horizon)
        notice: Document = {
            "_id": notice_key,
            "collection": collection,
            "item_id": item_id,
            "horizon": horizon,
            "horizons": horizons,
            "at": datetime.now(UTC),
        }
        written = new_document_with_outbox(notice, self.source, events)
        try:
            await self.db[EXPIRY_NOTICES].insert_one(written)
        except DuplicateKeyError:
            return False
        self._stored(EXPIRY_NOTICES, notice_key, written)
        return True

    async def booked_sessions_after(self, owner: Document, after: datetime) -> list[Document]:
        """The sessions matching the filter `owner` (owner_sessions) that are booked or in progress
        (LIVE_STATUSES) and start at or after `after`, or are booked to end after it: an item
        expiring at `after` does not cover them to their end, whether it expires before one starts,
        while one runs, or during one not started yet (until 2026-12-07 a booked session spanning
        the expiry was left out: only those in progress counted)."""
        query: Document = {
            "$and": [
                owner,
                {"status": {"$in": list(LIVE_STATUSES)}},
                {"$or": [{"starts_at": {"$gte": after}}, {"ends_at": {"$gt": after}}]},
            ]
        }
        return await self.db[SESSIONS].find(query, {"_id": 1}).to_list()

    async def booked_sessions_ending_after(
        self, clinician_id: str, after: datetime, flagged_with: Sequence[str] = ()
    ) -> list[Document]:
        """The sessions the clinician treats in (treated_by: as their clinician or a treating
        facilitator), booked or in progress (LIVE_STATUSES: a session that has started is treated in
        until its booked end), that end after `after` (without an end: start at or after it), with
        their times and flags; only those carrying one of `flagged_with` when given."""
        query: Document = {
            "$and": [treated_by(clinician_id), {"$or": [{"ends_at": {"$gt": after}}, {"starts_at": {"$gte": after}}]}],
            "status": {"$in": list(LIVE_STATUSES)},
        }
        if flagged_with:
            query["flags"] = {"$in": list(flagged_with)}
        projection = {"_id": 1, "starts_at": 1, "started_at": 1, "ends_at": 1, "flags": 1}
        return await self.db[SESSIONS].find(query, projection).to_list()

    async def begin_clean_up(self, collection: str, record_id: str, at: datetime) -> str:
        """Record that the board-action flags of the record `record_id` of `collection` are about to
        change (an insert keyed by a new token, returned): until end_clean_up deletes it, the
        periodic job takes it for a clean-up a crash interrupted."""
        token = uuid.uuid4().hex
        await self.db[FLAG_CLEAN_UPS].insert_one(
            {"_id": token, "collection": collection, "record_id": record_id, "at": at}
        )
        return token

    async def end_clean_up(self, token: str) -> None:
        await self.db[FLAG_CLEAN_UPS].delete_one({"_id": token})

    async def pending_clean_ups(self, begun_by: datetime) -> list[Document]:
        """The clean-ups begun by `begun_by` and not ended (normally none)."""
        return await self.db[FLAG_CLEAN_UPS].find({"at": {"$lte": begun_by}}).to_list()

    async def flag_sessions(self, session_ids: list[str], flag: str) -> None:
        if session_ids:
            await self.db[SESSIONS].update_many({"_id": {"$in": session_ids}}, {"$addToSet": {"flags": flag}})

    async def unflag_session(self, session_id: str, flags: list[str]) -> None:
        """Take `flags` off the session (board-action flags a later action superseded)."""
        await self.db[SESSIONS].update_one({"_id": session_id}, {"$pullAll": {"flags": flags}})
