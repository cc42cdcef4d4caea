"""The periodic job: expiry monitoring, closing attended days and settling the board actions' flag
clean-ups a crash interrupted (BoardActions.settle_pending) (store-backed, safe to run in
several instances: every effect is a conditional single-document write, a warning an insert keyed
by item and horizon, so the items' own documents are never written here, and a flag a set member).

Expiry: licenses, compact credentials, consents and authorizations expiring within the horizons of
reference data (60/30/7 days) emit CredentialExpiring once per horizon (only the nearest horizon
when several are crossed at once), naming the booked and running sessions it does not cover to
their end: those starting after the expiry and those booked to end after it (for a clinician's
license or compact credential, the sessions they treat in: as the session's clinician or as a lead
or co-facilitator); those sessions are flagged for a re-check. A license or compact credential
that is not `active` when it expires (a board action suspended, revoked... it, and no reinstatement
is effective before then) is not warned of; reinstated, it is again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from services.compliance import events
from services.compliance.billing import BillingDays
from services.compliance.board_actions import BoardActions, in_force_at_expiry
from services.compliance.reference import Reference
from services.compliance.store import EXPIRING, ComplianceStore, owner_sessions
from services.plumbing.storage import Document

log = logging.getLogger(__name__)


def horizons_crossed(horizons: tuple[int, ...], expires_at: datetime, now: datetime) -> list[int]:
    """The horizons (days) whose window the item is inside now; none once it has expired."""
    if expires_at <= now:
        return []
    left = expires_at - now
    return sorted(h for h in horizons if left <= timedelta(days=h))


class ExpiryMonitor:
    def __init__(self, store: ComplianceStore, ref: Reference) -> None:
        self._store = store
        self._ref = ref

    async def run_once(self, now: datetime) -> int:
        horizons = self._ref.expiry_horizons_days
        until = now + timedelta(days=max(horizons))
        emitted = 0
        for collection, item_type in EXPIRING.items():
            due: list[tuple[Document, datetime, list[int]]] = []
            for item in await self._store.expiring(collection, now, until):
                expires_at = item["expires_at"]
                if expires_at.tzinfo is None:
                    expires_at = expires_at.replace(tzinfo=UTC)
                crossed = horizons_crossed(horizons, expires_at, now)
                # notified_horizons: warnings an earlier version recorded in the item itself
                if crossed and crossed[0] not in (item.get("notified_horizons") or []):
                    due.append((item, expires_at, crossed))
            # a license or compact credential suspended or revoked when it expires is not warned of
            in_force = {d["_id"] for d in await in_force_at_expiry(self._store, collection, [d for d, _, _ in due])}
            due = [(item, expires_at, crossed) for item, expires_at, crossed in due if item["_id"] in in_force]
            warned = await self._store.notified(collection, [(item["_id"], crossed[0]) for item, _, crossed in due])
            for item, expires_at, crossed in due:
                nearest = crossed[0]
                if (item["_id"], nearest) in warned:
                    continue
                owner = owner_sessions(collection, item["owner_id"])  # a clinician's: as clinician or facilitator
                affected = [s["_id"] for s in await self._store.booked_sessions_after(owner, expires_at)]
                event = events.credential_expiring(
                    item["_id"], item_type, item["owner_id"], expires_at, nearest, affected
                )
                if await self._store.mark_horizons(collection, item["_id"], nearest, crossed, [event]):
                    await self._store.flag_sessions(affected, f"EXPIRES_BEFORE_SESSION:{item_type}:{item['_id']}")
                    emitted += 1
        return emitted


async def run_periodic(
    monitor: ExpiryMonitor,
    billing: BillingDays,
    board: BoardActions,
    interval_s: float,
    stop: asyncio.Event | None = None,
) -> None:
    while stop is None or not stop.is_set():
        now = datetime.now(UTC)
        # each job on its own: one that keeps failing does not stop the others
        jobs = {
            "billing days": billing.close_due,
            "expiry monitor": monitor.run_once,
            "board action clean-ups": board.settle_pending,  # flag clean-ups a crash interrupted
        }
        for name, job in jobs.items():
            try:
                await job(now)
            except Exception:  # store briefly unavailable: try again next round
                log.warning("compliance periodic job (%s) failed; retrying next round", name, exc_info=True)
        await asyncio.sleep(interval_s)
