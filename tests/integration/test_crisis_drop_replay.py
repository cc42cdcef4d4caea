"""The drop response run twice for the same event (the consumer crashed after the handler and
before its processed marker), against the real store: the second run finds the alert the first
opened and changes nothing; a later, different drop escalates that alert."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.crisis.alerts import AlertService
from services.crisis.config import CrisisSettings
from services.crisis.domain import Risk
from services.crisis.paging import Pager
from services.crisis.reference import load_policies, load_resources
from services.crisis.service import CrisisCore
from services.crisis.store import ALERT_RECORDS, ALERTS, CrisisStore
from services.plumbing.bus import reliable_producer
from services.plumbing.outbox import OutboxRelay
from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database
from tests.integration.test_crisis_support import policy_file, uid
from tests.support import RUN_ID, isolated_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def core(settings: Settings, tmp_path: Path) -> AsyncIterator[CrisisCore]:
    mongo = mongo_client(settings)
    db = service_database(
        mongo, isolated_settings(MONGODB_DATABASE_PREFIX=f"t{RUN_ID}replay{uuid.uuid4().hex[:6]}_"), "crisis"
    )
    producer = reliable_producer(settings, "crisis-replay-test")
    await producer.start()
    policies = load_policies(policy_file(tmp_path, [0, 3600, 3600, 3600]))
    relay = OutboxRelay(db, [ALERTS, ALERT_RECORDS], producer)  # never run: the store is what is checked
    store = CrisisStore(db)
    alerts = AlertService(store, relay, policies, Pager(None, 1), "replay-test", 10)
    try:
        yield CrisisCore(store, relay, alerts, load_resources(CrisisSettings().resources_file), policies)
    finally:
        await producer.stop()
        await mongo.drop_database(db.name)
        await mongo.close()


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
