"""What the crisis service's answer to a first-delivered drop costs the store, against the real
store: the commands the drop → alert path sends, counted with a pymongo command listener.

docs/crisis.md states that a first-delivered ConnectionDropped of a high-risk client with a
check-in sends 2 finds and 3 inserts (one round of reads; the alert, its first rung and the rung's
outbox entries written by inserts). This is the path `crisis_bench` times, and several changes
added reads to the paths beside it (repeat drops, restarts, check-ins); this test keeps them off
it. A change that has to add a command here should say why in docs/crisis.md and change both.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.crisis.alerts import AlertService
from services.crisis.domain import Risk
from services.crisis.paging import Pager
from services.crisis.reference import load_policies
from services.crisis.store import CLIENT_RECORDS, RISK, CrisisStore, seq_id
from services.plumbing.bus import reliable_producer
from services.plumbing.outbox import OutboxRelay
from services.plumbing.settings import Settings
from services.plumbing.storage import service_database
from tests.integration.test_crisis_edges import crisis_core
from tests.integration.test_crisis_support import policy_file
from tests.support import RUN_ID, isolated_settings

pytestmark = pytest.mark.integration

# the commands a store answers on its own (handshakes, heartbeats, sessions): not the path's
NOT_THE_PATH = {"hello", "isMaster", "ismaster", "ping", "endSessions", "saslStart", "saslContinue", "buildInfo"}


@dataclass
class Commands(monitoring.CommandListener):
    """The commands sent while `counting`, by name."""

    counting: bool = False
    sent: Counter[str] = field(default_factory=Counter)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.counting and event.command_name not in NOT_THE_PATH:
            self.sent[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_first_delivered_drop_sends_two_finds_and_three_inserts(settings: Settings, tmp_path: Path) -> None:
    commands = Commands()
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_uri, event_listeners=[commands])
    db = service_database(mongo, isolated_settings(MONGODB_DATABASE_PREFIX=f"t{RUN_ID}dropcmd_"), "crisis")
    producer = reliable_producer(settings, "crisis-drop-commands-test")
    relay = OutboxRelay(db, [], producer)  # never run: the test reads the store
    alerts = AlertService(
        CrisisStore(db), relay, load_policies(policy_file(tmp_path, [0, 3600, 3600, 3600])), Pager(None, 1), "t", 10
    )
    core = crisis_core(alerts)
    client, session = f"client-{uuid.uuid4().hex[:8]}", f"session-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    try:
        await producer.start()
        await db[CLIENT_RECORDS].insert_one(  # screened high risk
            {"_id": seq_id(RISK, client, 1), "kind": RISK, "client_id": client, "level": int(Risk.HIGH), "at": now}
        )
        await core.record_checkin(
            event_id=f"ev-{uuid.uuid4().hex[:8]}",
            client_id=client,
            session_id=session,
            location={"state": "CA", "county_fips": "06075", "city": "San Francisco", "verified": True},
            backup_phone="+14155550101",
            at=now - timedelta(minutes=5),
        )
        commands.counting = True
        outcome = await core.on_disconnect(
            trigger_id=f"drop-{uuid.uuid4().hex[:8]}",
            client_id=client,
            session_id=session,
            clinician_id="clin-1",
            program_id="iop-test",
            reason="CONNECTION_DROPPED",
            now=datetime.now(UTC),
            first_delivery=True,
        )
        commands.counting = False
        assert outcome.alert_id, outcome
        assert dict(commands.sent) == {"find": 2, "insert": 3}, dict(commands.sent)
    finally:
        await producer.stop()
        await mongo.drop_database(db.name)
        await mongo.close()
