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
later, handlers.py). A reinstatement (`active`) flags nothing. A retry of an action publishes nothing
again and flags again (a flag is a set member: idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from services.compliance import events
from services.compliance.licensure import ACTIVE, CompactCredential, License, status_at, statuses_during
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
        # its last instant: times are stored to the millisecond, validity ends at `expires_at` (excluded)
        if status_at(parsed, _utc(item["expires_at"]) - timedelta(milliseconds=1)) == ACTIVE:
            kept.append(item)
    return kept


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def affected_sessions(
    item: License | CompactCredential, sessions: Sequence[Document], effective_at: datetime
) -> list[str]:
    """The ids of the booked or running `sessions` (`starts_at`, optional `started_at` and `ends_at`)
    during which `item` is not active from `effective_at` on. A session started early runs from its
    `started_at`."""
    affected = []
    for session in sessions:
        started = session.get("started_at")
        begins = min(_utc(session["starts_at"]), _utc(started)) if started is not None else _utc(session["starts_at"])
        start = max(begins, effective_at)
        ends_at = session.get("ends_at")
        until = _utc(ends_at) if ends_at is not None and _utc(ends_at) > start else None
        if inactive_during(item, start, until) is not None:
            affected.append(session["_id"])
    return affected


class BoardActions:
    def __init__(self, store: ComplianceStore) -> None:
        self._store = store

    async def record(self, collection: str, record_id: str, change: Document, now: datetime) -> Document | None:
        """Record the action `change` (`status`, `effective_at`, `recorded_at`, `recorded_by`) on
        the record `record_id` of `collection` with its event, then flag the sessions it affects.
        Returns the record with its status changes; None when there is no such record."""
        item_type = EXPIRING[collection]
        status, effective_at = change["status"], to_millis(change["effective_at"])  # as stored

        async def affected(record: Document) -> list[str]:
            if status == ACTIVE:
                return []
            booked = await self._store.booked_sessions_ending_after(record["owner_id"], max(now, effective_at))
            return affected_sessions(PARSE[collection](record), booked, effective_at)

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
                )
            ]

        doc = await self._store.change_status(collection, record_id, change, status_changed)
        if doc is not None:
            # again once stored: also the sessions booked meanwhile, and on a retry
            await self._store.flag_sessions(await affected(doc), session_flag(item_type, record_id, status))
        return doc
