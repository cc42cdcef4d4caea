"""The timer loop's heal of alerts that show no next rung, against the real store: a lost header
update (the timer says nothing is due while the records say a rung is) is repaired at the next
sweep, and an alert that waits for a person is read again only when its timer changes or after
RESWEEP_S, not at every sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.crisis import ladder
from services.crisis.alerts import AlertService, derived_id
from services.crisis.config import CrisisSettings
from services.crisis.ladder import LadderTimer
from services.crisis.store import TIMERS
from services.plumbing.settings import Settings
from tests.integration.test_crisis_support import alert_service, open_alert_directly, uid

pytestmark = pytest.mark.integration


@pytest.fixture
async def alerts(settings: Settings, tmp_path: Path) -> AsyncIterator[AlertService]:
    async with alert_service(settings, tmp_path, "heal") as service:
        yield service


async def open_alert(alerts: AlertService, client_id: str) -> str:
    alert = await open_alert_directly(alerts, derived_id("heal", client_id), client_id, "HEAL")
    return str(alert["_id"])


async def sweeps(timer: LadderTimer, alerts: AlertService, rounds: int = 1) -> list[list[str]]:
    """Rescan until `rounds` sweeps are due; the alert ids each sweep re-read."""
    calls: list[list[str]] = []
    sweep = alerts.sweep

    async def recording(alert_ids: list[str]) -> set[str]:
        calls.append(sorted(alert_ids))
        return await sweep(alert_ids)

    alerts.sweep = recording  # type: ignore[method-assign]
    try:
        for _ in range(rounds * ladder.SWEEP_EVERY):
            await timer.rescan()
            if timer.sweeping is not None:
                await timer.sweeping
    finally:
        alerts.sweep = sweep  # type: ignore[method-assign]
    return calls


async def timer_doc(alerts: AlertService, alert_id: str) -> dict[str, Any]:
    doc = await alerts.store.db[TIMERS].find_one({"_id": alert_id})
    assert doc is not None
    return doc


async def test_a_lost_timer_update_is_healed_and_a_settled_alert_is_not_reread(
    alerts: AlertService, monkeypatch: pytest.MonkeyPatch
) -> None:
    timer = LadderTimer(alerts, CrisisSettings())
    lost = await open_alert(alerts, uid("heal-lost"))
    reached = await open_alert(alerts, uid("heal-reached"))
    attempt = {"attempt_id": "attempt-1", "target": "CLIENT", "outcome": "REACHED"}
    await alerts.record_attempt(reached, attempt, "heal-clinician")  # the ladder stops: nothing due
    due = (await timer_doc(alerts, lost))["due_at"]
    assert due is not None and (await timer_doc(alerts, reached))["due_at"] is None
    # a concurrent writer's stale header and timer landed last: the ladder would never advance
    await alerts.store.set_alert_state(lost, {"due_at": None})
    await alerts.store.set_timer(lost, None, True)

    assert await sweeps(timer, alerts) == [sorted([lost, reached])]
    assert (await timer_doc(alerts, lost))["due_at"] == due  # healed from the records
    assert (await alerts.store.alert(lost) or {})["due_at"] == due
    assert (await timer_doc(alerts, reached))["due_at"] is None  # rightly nothing due: left as it is

    assert await sweeps(timer, alerts, rounds=2) == []  # settled: not read again

    await alerts.store.set_timer(reached, None, True)  # its timer changed: checked again
    assert await sweeps(timer, alerts) == [[reached]]
    monkeypatch.setattr(ladder, "RESWEEP_S", 0.0)  # and every RESWEEP_S regardless
    assert await sweeps(timer, alerts) == [[reached]]

    # (not an emergency contact: the client has no safety plan, so nobody consents to be called)
    second = {"attempt_id": "attempt-2", "target": "MOBILE_CRISIS", "outcome": "NO_ANSWER"}
    await alerts.record_attempt(reached, second, "heal-clinician")
    headers = [await alerts.store.alert(a) for a in (lost, reached)]
    records = await alerts.store.records_of_many([h for h in headers if h is not None])
    assert records[lost] == []  # its first rung is in the header (open_records)
    assert [r["attempt_id"] for r in records[reached]] == ["attempt-1", "attempt-2"]  # the whole action log
