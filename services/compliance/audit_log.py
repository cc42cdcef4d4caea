"""Batched PHI-access audit for the hot path (EvaluateSession, CheckCoverage).

Same collection and document shape as services.plumbing.audit.record_phi_access, but the records
are written in batches (every 200 ms, and at shutdown) so the audit does not cost one store write per
evaluation. A crash can lose at most the records of the last interval; every other PHI read in this
service calls record_phi_access synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.audit import AUDIT_COLLECTION
from services.plumbing.auth import Principal
from services.plumbing.storage import Document

log = logging.getLogger(__name__)


class BatchedAudit:
    def __init__(self, db: AsyncDatabase[Document], interval_s: float = 0.2, max_pending: int = 100_000) -> None:
        self._db = db
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._pending: list[Document] = []

    def record(self, principal: Principal, action: str, resource_type: str, resource_id: str) -> None:
        if len(self._pending) >= self._max_pending:
            raise RuntimeError("PHI audit backlog is full")  # fail the read rather than leave it unaudited
        self._pending.append(
            {
                "at": datetime.now(UTC),
                "principal": principal.subject,
                "roles": sorted(principal.roles),
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
            }
        )

    async def flush(self) -> int:
        batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            await self._db[AUDIT_COLLECTION].insert_many(batch, ordered=False)
        except Exception:
            self._pending = batch + self._pending  # keep them for the next round
            raise
        return len(batch)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                try:
                    await self.flush()
                except Exception:
                    log.warning("PHI audit flush failed; retrying", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())
