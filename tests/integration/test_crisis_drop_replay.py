"""The drop response run twice for the same event (the consumer crashed after the handler and
before its processed marker), against the real store: the second run finds the alert the first
opened and changes nothing; a later, different drop escalates that alert."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.crisis.config import CrisisSettings
from services.crisis.domain import Risk
from services.crisis.reference import load_resources
from services.crisis.service import CrisisCore
from services.crisis.store import ALERTS
from services.plumbing.settings import Settings
from tests.integration.test_crisis_support import alert_service, uid

pytestmark = pytest.mark.integration


@pytest.fixture
async def core(settings: Settings, tmp_path: Path) -> AsyncIterator[CrisisCore]:
    async with alert_service(settings, tmp_path, "replay") as alerts:
        catalog = load_resources(CrisisSettings().resources_file)
        yield CrisisCore(alerts.store, alerts.relay, alerts, catalog, alerts.policies)


async def test_a_replayed_drop_finds_its_alert_and_a_new_drop_escalates_it(core: CrisisCore) -> None:
    client, session = uid("replay-client"), uid("replay-session")
    now = datetime.now(UTC)
    await core.set_risk(client, Risk.HIGH, "c-ssrs", ["TEST"], "test", now)
    await core.store.upsert_session(session, {"status": "in_progress", "client_ids": [client]}, {})

    async def drop(trigger_id: str):  # type: ignore[no-untyped-def]
        return await core.on_disconnect(
            trigger_id=trigger_id,
            client_id=client,
            session_id=session,
            clinician_id="clinician-1",
            program_id="",
            reason="CONNECTION_DROPPED",
            now=now,
        )

    first = await drop("drop-1")
    assert first.decision.action == "OPEN_ALERT" and first.alert_id
    alert = await core.store.alert(first.alert_id)
    assert alert is not None
    replay = await drop("drop-1")
    assert replay.alert_id == first.alert_id
    assert await core.store.db[ALERTS].count_documents({"client_id": client}) == 1
    assert await core.store.alert(first.alert_id) == alert  # nothing written the second time
    assert (await core.store.active_alert(client) or {}).get("_id") == first.alert_id

    again = await drop("drop-2")
    assert (again.decision.action, again.alert_id) == ("ESCALATE_ALERT", first.alert_id)
    records = await core.store.records(await core.store.alert(first.alert_id) or {})
    assert [r.get("trigger_id") for r in records].count("drop-2") == 1
