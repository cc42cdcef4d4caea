"""Board actions on a clinician's license or compact credential (UpdateLicenseStatus,
UpdateCompactCredentialStatus): a suspension, revocation, lapse or reinstatement from a given time on.

The action is stored insert-only with its CredentialStatusChanged event in the same document (the
outbox; see ComplianceStore.change_status). An action that leaves the credential not `active` during
a booked session the clinician treats in, or one in progress (started, before its booked end), as
its clinician or as a lead or co-facilitator (the session's treating facilitators, from
SessionScheduled), flags that session for a re-check, as an
expiry does
(monitor.py): `BOARD_ACTION_<STATUS>:<item type>:<item id>` is added to the sessions the event names,
and to those booked while the action was being recorded (SessionScheduled flags a session booked
later, handlers.py). A reinstatement (`active`) flags nothing; it supersedes the earlier actions'
flags (since 2026-12-07; before, they stayed): once stored, every action sets the item's flags on
each booked or running session to those of the statuses other than `active` in force at any instant
of it, by the item's actions (BoardActions.settle_flags), so a flag for a status no longer in force
is taken off; the event names the flagged sessions during which the item is now active throughout
(`cleared_session_ids`). The flags are compliance's record of the sessions to re-check; no decision
reads them (the SessionStarted re-check and EvaluateSession read the credentials themselves). A retry
of an action publishes nothing again, and derives the flags again from the actions (a flag is a set
member: idempotent), which repairs a clean-up a crash interrupted; without a retry, the periodic job
does (a `flag_clean_ups` document is inserted before the action is stored and deleted once its flags
are settled: BoardActions.settle_pending settles one left behind).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from services.compliance import events
from services.compliance.licensure import (
    ACTIVE,
    STATUSES,
    CompactCredential,
    License,
    status_at,
    statuses_during,
)
from services.compliance.store import (
    BOARD_ACTIONS,
    COMPACT_CREDENTIALS,
    EXPIRING,
    LICENSES,
    ComplianceStore,
    actions_of,
    credential_from_doc,
    license_from_doc,
    with_status_changes,
)
from services.plumbing.outbox import OutgoingEvent
from services.plumbing.storage import Document, to_millis

log = logging.getLogger(__name__)

# A clean-up begun this long ago and not ended is taken for one a crash interrupted (a clean-up
# takes milliseconds; settling one still under way is harmless, only wasted).
PENDING_AFTER = timedelta(seconds=30)
# A clean-up document is deleted by the periodic job only once it is this old: longer than a call
# lives (its deadline), a slow store or a paused instance included. Until then every round settles it
# again (idempotent): deleting one at 30 s, of a call still under way that then stored its action and
# died before settling, would lose its flags for good.
PENDING_KEPT = timedelta(minutes=10)

PARSE: dict[str, Callable[[Document], License | CompactCredential]] = {
    LICENSES: license_from_doc,
    COMPACT_CREDENTIALS: credential_from_doc,
}


def session_flag(item_type: str, item_id: str, status: str) -> str:
    return f"BOARD_ACTION_{status.upper()}:{item_type}:{item_id}"


def inactive_during(item: License | CompactCredential, start: datetime, until: datetime | None) -> str | None:
    """The first status other than `active` in force during [start, until) (at `start` only
    without an end), else None."""
    return next((status for status in statuses_during(item, start, until) if status != ACTIVE), None)


def in_force_when_expiring(item: License | CompactCredential, expires_at: datetime) -> bool:
    """Whether `item` is `active` when it expires at `expires_at`, by its board actions (the last
    one effective before the expiry, else the recorded status): at its last instant, since times are
    stored to the millisecond and validity ends at `expires_at` (excluded)."""
    return status_at(item, expires_at - timedelta(milliseconds=1)) == ACTIVE


async def in_force_at_expiry(store: ComplianceStore, collection: str, items: Sequence[Document]) -> list[Document]:
    """Of `items` (documents of `collection` with their `expires_at`), those in force when they
    expire: a license or compact credential only when it is `active` then, by its board actions (the
    last one effective before the expiry, else the recorded status); a consent or authorization
    always. One suspended or revoked until then, or from a date before then, cannot be practised on
    when it expires, so the expiry monitor does not warn of it and ListExpiring does not list it.
    One read of board actions per clinician."""
    if collection not in PARSE:
        return list(items)
    owners = {item["owner_id"] for item in items}
    actions = {owner: await store.owned(BOARD_ACTIONS, owner) for owner in owners}
    kept = []
    for item in items:
        parsed = PARSE[collection](
            with_status_changes(item, actions_of(actions[item["owner_id"]], collection, item["_id"]))
        )
        if in_force_when_expiring(parsed, _utc(item["expires_at"])):
            kept.append(item)
    return kept


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _session_range(session: Document, not_before: datetime | None = None) -> tuple[datetime, datetime | None]:
    """A booked or running session's range [begins, ends_at) (`starts_at`, or its `started_at` when
    it started early; no end when it has none), from `not_before` on when given."""
    started = session.get("started_at")
    begins = min(_utc(session["starts_at"]), _utc(started)) if started is not None else _utc(session["starts_at"])
    start = max(begins, not_before) if not_before is not None else begins
    ends_at = session.get("ends_at")
    return start, _utc(ends_at) if ends_at is not None and _utc(ends_at) > start else None


def affected_sessions(
    item: License | CompactCredential, sessions: Sequence[Document], effective_at: datetime
) -> list[str]:
    """The ids of the booked or running `sessions` (`starts_at`, optional `started_at` and `ends_at`)
    during which `item` is not active from `effective_at` on. A session started early runs from its
    `started_at`."""
    affected = []
    for session in sessions:
        start, until = _session_range(session, effective_at)
        if inactive_during(item, start, until) is not None:
            affected.append(session["_id"])
    return affected


def board_action_flags(item_type: str, item_id: str) -> list[str]:
    """Every flag a board action on the item can set on a session (one per status other than `active`)."""
    return [session_flag(item_type, item_id, status) for status in sorted(STATUSES - {ACTIVE})]


def item_flags_on(session: Document, item_type: str, item_id: str) -> list[str]:
    """The board-action flags of the item on `session` (its `flags`)."""
    possible = set(board_action_flags(item_type, item_id))
    return [flag for flag in session.get("flags") or [] if flag in possible]


def due_flags(item: License | CompactCredential, item_type: str, item_id: str, session: Document) -> list[str]:
    """The board-action flags of `item` that `session` (booked or running) must carry, by the item's
    board actions as they stand: one per status other than `active` in force at any instant of the
    session. The whole session counts, from its start: one treated in while the item was suspended
    keeps its flag after a reinstatement."""
    start, until = _session_range(session)
    return sorted({session_flag(item_type, item_id, s) for s in statuses_during(item, start, until) if s != ACTIVE})


class BoardActions:
    def __init__(self, store: ComplianceStore) -> None:
        self._store = store

    async def record(self, collection: str, record_id: str, change: Document, now: datetime) -> Document | None:
        """Record the action `change` (`status`, `effective_at`, `recorded_at`, `recorded_by`) on
        the record `record_id` of `collection` with its event, then settle the item's flags on the
        sessions (settle_flags): those it affects are flagged, those it superseded unflagged.
        Returns the record with its status changes; None when there is no such record."""
        item_type = EXPIRING[collection]
        status, effective_at = change["status"], to_millis(change["effective_at"])  # as stored

        async def affected(record: Document) -> list[str]:
            if status == ACTIVE:
                return []
            booked = await self._store.booked_sessions_ending_after(record["owner_id"], max(now, effective_at))
            return affected_sessions(PARSE[collection](record), booked, effective_at)

        async def cleared(record: Document) -> list[str]:
            """The sessions an earlier action flagged during which the item is now active throughout."""
            item = PARSE[collection](record)
            return [
                session["_id"]
                for session in await self._flagged_sessions(record["owner_id"], item_type, record_id, now)
                if inactive_during(item, *_session_range(session)) is None
            ]

        async def status_changed(record: Document) -> list[OutgoingEvent]:
            return [
                events.credential_status_changed(
                    record_id,
                    item_type,
                    record["owner_id"],
                    status,
                    effective_at,
                    change["recorded_at"],
                    await affected(record),
                    await cleared(record),
                )
            ]

        # begun before the action is stored: a crash before its flags are settled leaves it behind
        token = await self._store.begin_clean_up(collection, record_id, datetime.now(UTC))
        doc = await self._store.change_status(collection, record_id, change, status_changed)
        if doc is not None:
            # once stored, and again on a retry: also the sessions booked meanwhile
            await self.settle_flags(collection, item_type, doc, now)
        await self._store.end_clean_up(token)
        return doc

    async def settle_pending(
        self, now: datetime, older_than: timedelta = PENDING_AFTER, kept_for: timedelta = PENDING_KEPT
    ) -> int:
        """Settle the flags of the items whose clean-up was begun more than `older_than` before
        `now` and never ended (the process died, or the store failed it, between storing an action
        and settling its flags, or between a removal and its put-back), from their actions as they
        stand: each item once a round, however many clean-ups name it. A clean-up is ended (its
        document deleted) only once older than `kept_for`, so one still under way in a slow call is
        settled again after it stores its action. One that fails is logged and left for the next
        round; the others go on. Returns how many items were settled."""
        settled = 0
        pending = await self._store.pending_clean_ups(now - older_than)
        items = dict.fromkeys((p["collection"], p["record_id"]) for p in pending)
        for collection, record_id in items:
            try:
                record = await self._store.get(collection, record_id)
                if record is not None:
                    record = with_status_changes(record, await self._store.record_actions(collection, record))
                    await self.settle_flags(collection, EXPIRING[collection], record, now)
                    settled += 1
            except Exception:
                log.warning("board action clean-up of a %s failed; retrying next round", collection, exc_info=True)
                continue
            for p in pending:
                if (p["collection"], p["record_id"]) == (collection, record_id) and _utc(p["at"]) <= now - kept_for:
                    await self._store.end_clean_up(p["_id"])
        return settled

    async def _flagged_sessions(
        self, clinician_id: str, item_type: str, record_id: str, now: datetime
    ) -> list[Document]:
        """The booked or running sessions the clinician treats in, ending after `now`, that carry a
        board-action flag of the item."""
        return await self._store.booked_sessions_ending_after(
            clinician_id, now, flagged_with=board_action_flags(item_type, record_id)
        )

    async def settle_flags(self, collection: str, item_type: str, record: Document, now: datetime) -> None:
        """Make the item's board-action flags on the booked and running sessions ending after `now`
        what its actions make them (due_flags; `record` with its status changes, read once this
        action was stored), every session's from the actions, not from the flags it carries: the
        missing ones are added first, then the stale ones taken off.

        A flag is an update of the session (FerretDB 1.x: read-modify-write), and an action recorded
        concurrently may have flagged a session between the read of `record` and the removal: so the
        item's actions are read again after it, and any flag taken off whose status that read finds
        in force is put back (an action recorded after that read flags after the removal itself). A
        crash between the removal and the put-back loses that flag until this is run again: by the
        periodic job (settle_pending: record() begins a clean-up before it stores the action and
        ends it after this), a retry of the action, or the item's next action (until 2026-12-07
        nothing ran it again, and a retry looked only at the sessions still flagged: the flag stayed
        lost)."""
        record_id = record["_id"]
        item = PARSE[collection](record)
        sessions = await self._store.booked_sessions_ending_after(record["owner_id"], now)
        missing: dict[str, list[str]] = {}
        stale_by_session: list[tuple[Document, list[str]]] = []
        for session in sessions:
            carried = item_flags_on(session, item_type, record_id)
            due = due_flags(item, item_type, record_id, session)
            for flag in due:
                if flag not in carried:
                    missing.setdefault(flag, []).append(session["_id"])
            stale = [flag for flag in carried if flag not in due]
            if stale:
                stale_by_session.append((session, stale))
        for flag, session_ids in missing.items():
            await self._store.flag_sessions(session_ids, flag)
        for session, stale in stale_by_session:
            await self._store.unflag_session(session["_id"], stale)
        stored = await self._store.get(collection, record_id) if stale_by_session else None
        if stored is None:
            return
        again = PARSE[collection](with_status_changes(stored, await self._store.record_actions(collection, stored)))
        for session, stale in stale_by_session:
            due = due_flags(again, item_type, record_id, session)
            for flag in stale:
                if flag in due:
                    await self._store.flag_sessions([session["_id"]], flag)
