"""The ladder's timer loop (a background job of every crisis instance).

The store is the source of truth: every active alert has its next due time in the small `timers`
collection (folded from the alert's records). Each instance rescans it every second into an
in-memory schedule (a heap; local changes are pushed in at once), and for each due alert claims
the timer with a unique insert of a lease document (FerretDB 1.x has no atomic findAndModify, see
store.py); the rung is then recorded as a unique insert `<alert>:rung:<n>`, so it fires exactly
once across instances and restarts. A lease held by an instance that died lapses and is taken
over. Alerts that are active but show no next rung are re-folded in bulk every few rescans (a
header update may have been lost); one found settled is re-checked when its timer changes, or
after RESWEEP_S.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import time
from datetime import UTC, datetime

from services.crisis.alerts import AlertService
from services.crisis.config import CrisisSettings

log = logging.getLogger(__name__)
RESCAN_S = 1.0
SWEEP_EVERY = 3  # rescans
RESWEEP_S = 30.0  # an alert found settled is re-checked after this long (or when its timer changes)


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
        self._settled: dict[str, tuple[object, float]] = {}  # alert id -> (timer set_at, checked at)
        self._firing: dict[str, asyncio.Task[None]] = {}
        self._changed_during_rescan: dict[str, datetime | None] | None = None
        self.sweeping: asyncio.Task[None] | None = None  # the sweep running beside the loop, if any
        alerts.on_due = self.schedule

    def schedule(self, alert_id: str, due: datetime | None) -> None:
        if self._changed_during_rescan is not None:
            self._changed_during_rescan[alert_id] = due
        if due is None:
            self._due.pop(alert_id, None)
            return
        if self._due.get(alert_id) != due:
            self._due[alert_id] = due
            heapq.heappush(self._heap, (due, alert_id))
            self._wake.set()

    async def rescan(self) -> None:
        """Rebuild the schedule from the store. What changed here while the scan was read, and the
        alerts being fired, keep what this instance knows: the scan may predate their writes (it
        would bring back a rung just fired, to be attempted again for nothing)."""
        stalled: dict[str, object] = {}  # alert id -> the timer's set_at
        seen: dict[str, datetime] = {}
        changed: dict[str, datetime | None] = {}
        self._changed_during_rescan = changed
        try:
            timers = await self.alerts.store.timers()
        finally:
            self._changed_during_rescan = None
        for doc in timers:
            if doc["_id"] in changed or doc["_id"] in self._firing:
                continue
            if doc.get("due_at") is None:
                stalled[doc["_id"]] = doc.get("set_at")
            else:
                seen[doc["_id"]] = doc["due_at"].astimezone(UTC)
        kept = {a: d for a, d in self._due.items() if a in changed or a in self._firing}
        self._due = {}
        self._heap = []
        for alert_id, due in [*seen.items(), *kept.items()]:
            self.schedule(alert_id, due)
        self._rescans += 1
        if stalled and self._rescans % SWEEP_EVERY == 0 and (self.sweeping is None or self.sweeping.done()):
            # beside the loop, not in it: a sweep of many alerts must not hold back the next rung
            self.sweeping = asyncio.create_task(self._sweep(stalled), name="ladder-sweep")

    async def _sweep(self, stalled: dict[str, object]) -> None:
        """Re-fold the alerts without a next rung, except those found settled (no rung due) since
        their timer last changed, less than RESWEEP_S ago: an alert waiting for a person is
        re-checked every RESWEEP_S, not at every sweep (each check reads its header and records)."""
        now = time.monotonic()
        settled = {
            alert_id: (set_at, at)
            for alert_id, (set_at, at) in self._settled.items()
            if alert_id in stalled and stalled[alert_id] == set_at and now - at < RESWEEP_S
        }
        due = [alert_id for alert_id in stalled if alert_id not in settled]
        if due:
            try:
                healed = await self.alerts.sweep(due)
            except Exception:
                log.warning("ladder sweep failed; it runs again after the next rescans", exc_info=True)
                return
            settled.update({a: (stalled[a], now) for a in due if a not in healed})
        self._settled = settled

    async def _fire(self, alert_id: str) -> None:
        async with self._sem:
            try:
                if await self.alerts.fire_due(alert_id):
                    self.fired += 1
            except Exception:
                log.exception("ladder rung failed; it stays due and is retried")
                self._due.pop(alert_id, None)  # back in the schedule at the next rescan

    def run_once(self) -> None:
        """Start firing what is due now (at most timer_concurrency at a time; an alert being fired
        is not started again). Fires run as their own tasks, so a slow one never holds back the
        next due rung or the rescan."""
        now = datetime.now(UTC)
        while self._heap and self._heap[0][0] <= now:
            at, alert_id = heapq.heappop(self._heap)
            if self._due.get(alert_id) == at and alert_id not in self._firing:
                self._due.pop(alert_id)
                task = asyncio.create_task(self._fire(alert_id), name=f"ladder-rung-{alert_id}")
                self._firing[alert_id] = task
                task.add_done_callback(functools.partial(self._fired, alert_id))

    def _fired(self, alert_id: str, task: asyncio.Task[None]) -> None:
        self._firing.pop(alert_id, None)

    async def run(self) -> None:
        try:
            await self._run()
        finally:  # stopping: let the rungs being fired finish (each is recorded exactly once anyway)
            if self.sweeping is not None:
                self.sweeping.cancel()
            if self._firing:
                await asyncio.wait(list(self._firing.values()), timeout=self.alerts.lease_s)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_rescan = loop.time()
        backoff = self.settings.timer_poll_s
        while True:
            try:
                if loop.time() >= next_rescan:
                    await self.rescan()
                    next_rescan = loop.time() + RESCAN_S
                self.run_once()
                backoff = self.settings.timer_poll_s
            except Exception:
                log.warning("ladder timer: store unavailable; retrying in %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            wait = min(self.settings.timer_poll_s, max(0.0, next_rescan - loop.time()))
            if self._heap:
                wait = min(wait, max(0.0, (self._heap[0][0] - datetime.now(UTC)).total_seconds()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass
