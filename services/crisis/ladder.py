"""The ladder's timer loop (a background job of every crisis instance).

The store is the source of truth: every active alert has its next due time in the small `timers`
collection (folded from the alert's records). Each instance rescans it every second into an
in-memory schedule (a heap; local changes are pushed in at once), and for each due alert claims
the timer with a unique insert of a lease document (FerretDB 1.x has no atomic findAndModify, see
store.py); the rung is then recorded as a unique insert `<alert>:rung:<n>`, so it fires exactly
once across instances and restarts. A lease held by an instance that died lapses and is taken
over. Alerts that are active but show no timer are re-folded (a header update may have been lost).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from datetime import UTC, datetime

from services.crisis.alerts import AlertService
from services.crisis.config import CrisisSettings

log = logging.getLogger(__name__)
RESCAN_S = 1.0
SWEEP_EVERY = 3  # rescans


class LadderTimer:
    def __init__(self, alerts: AlertService, settings: CrisisSettings) -> None:
        self.alerts = alerts
        self.settings = settings
        self.fired = 0
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}
        self._sem = asyncio.Semaphore(settings.timer_concurrency)
        self._wake = asyncio.Event()
        self._rescans = 0
        alerts.on_due = self.schedule

    def schedule(self, alert_id: str, due: datetime | None) -> None:
        if due is None:
            self._due.pop(alert_id, None)
            return
        if self._due.get(alert_id) != due:
            self._due[alert_id] = due
            heapq.heappush(self._heap, (due, alert_id))
            self._wake.set()

    async def rescan(self) -> None:
        stalled = []
        seen: dict[str, datetime] = {}
        for doc in await self.alerts.store.timers():
            if doc.get("due_at") is None:
                stalled.append(doc["_id"])
            else:
                seen[doc["_id"]] = doc["due_at"].astimezone(UTC)
        self._due = {}
        self._heap = []
        for alert_id, due in seen.items():
            self.schedule(alert_id, due)
        self._rescans += 1
        if stalled and self._rescans % SWEEP_EVERY == 0:
            await self.alerts.sweep(stalled)

    async def _fire(self, alert_id: str) -> None:
        async with self._sem:
            try:
                if await self.alerts.fire_due(alert_id):
                    self.fired += 1
            except Exception:
                log.exception("ladder rung failed; it stays due and is retried")
                self._due.pop(alert_id, None)  # back in the schedule at the next rescan

    async def run_once(self) -> int:
        """Fire what is due now; returns how many were attempted."""
        now = datetime.now(UTC)
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, alert_id = heapq.heappop(self._heap)
            if self._due.get(alert_id) == at:
                self._due.pop(alert_id)
                due.append(alert_id)
        if due:
            await asyncio.gather(*(self._fire(a) for a in due))
        return len(due)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_rescan = loop.time()
        backoff = self.settings.timer_poll_s
        while True:
            try:
                if loop.time() >= next_rescan:
                    await self.rescan()
                    next_rescan = loop.time() + RESCAN_S
                attempted = await self.run_once()
                backoff = self.settings.timer_poll_s
            except Exception:
                log.warning("ladder timer: store unavailable; retrying in %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if attempted:
                continue
            wait = self.settings.timer_poll_s
            if self._heap:
                wait = min(wait, max(0.0, (self._heap[0][0] - datetime.now(UTC)).total_seconds()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass
