"""What the crisis service's answer to a first-delivered drop costs the store, against the real
store: the commands the drop → alert path sends, counted with a pymongo command listener; and
what the on-call clinician's first look at the client during the alert (GetCrisisCard) costs.

docs/crisis.md states that a first-delivered ConnectionDropped of a high-risk client with a
check-in sends 2 finds and 3 inserts (one round of reads; the alert, its first rung and the rung's
outbox entries written by inserts). This is the path `crisis_bench` times, and several changes
added reads to the paths beside it (repeat drops, restarts, check-ins); this test keeps them off
it. A change that has to add a command here should say why in docs/crisis.md and change both.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient, monitoring

from iop.crisis.v1 import crisis_pb2
from services.crisis.alerts import AlertService
from services.crisis.api import CrisisApi
from services.crisis.domain import Risk
from services.crisis.paging import Pager
from services.crisis.reference import load_policies
from services.crisis.service import CrisisCore
from services.crisis.store import CLIENT_RECORDS, RISK, CrisisStore, seq_id
from services.plumbing.auth import Principal, reset_principal, set_principal
from services.plumbing.bus import reliable_producer
from services.plumbing.outbox import OutboxRelay
from services.plumbing.settings import Settings
from services.plumbing.storage import service_database
from tests.integration.test_crisis_edges import crisis_core
from tests.integration.test_crisis_support import open_alert_directly, policy_file
from tests.support import RUN_ID, isolated_settings

pytestmark = pytest.mark.integration

# the commands a store answers on its own (handshakes, heartbeats, sessions): not the path's
NOT_THE_PATH = {"hello", "isMaster", "ismaster", "ping", "endSessions", "saslStart", "saslContinue", "buildInfo"}


@dataclass
class Commands(monitoring.CommandListener):
    """The commands sent while `counting`, by name, and the rounds they went in: a round starts
    with a command sent while none is in flight (commands sent together share one)."""

    counting: bool = False
    sent: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    in_flight: int = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.counting and event.command_name not in NOT_THE_PATH:
            self.sent[event.command_name] += 1
            self.rounds += self.in_flight == 0
            self.in_flight += 1

    def _ended(self, name: str) -> None:
        if self.counting and name not in NOT_THE_PATH:
            self.in_flight = max(0, self.in_flight - 1)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._ended(event.command_name)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._ended(event.command_name)


@asynccontextmanager
async def counted_crisis(
    settings: Settings, tmp_path: Path, name: str, session: str
) -> AsyncIterator[tuple[Commands, AlertService, CrisisCore, str]]:
    """A crisis core on a fresh database whose commands `Commands` counts, with a client screened
    high risk who checked in to `session` five minutes ago: (commands, alerts, core, client)."""
    commands = Commands()
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_uri, event_listeners=[commands])
    db = service_database(mongo, isolated_settings(MONGODB_DATABASE_PREFIX=f"t{RUN_ID}{name}_"), "crisis")
    producer = reliable_producer(settings, f"crisis-{name}-test")
    relay = OutboxRelay(db, [], producer)  # never run: the test reads the store
    alerts = AlertService(
        CrisisStore(db), relay, load_policies(policy_file(tmp_path, [0, 3600, 3600, 3600])), Pager(None, 1), "t", 10
    )
    core = crisis_core(alerts)
    client = f"client-{uuid.uuid4().hex[:8]}"
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
        yield commands, alerts, core, client
    finally:
        await producer.stop()
        await mongo.drop_database(db.name)
        await mongo.close()


async def test_a_first_delivered_drop_sends_two_finds_and_three_inserts(settings: Settings, tmp_path: Path) -> None:
    session = f"session-{uuid.uuid4().hex[:8]}"
    async with counted_crisis(settings, tmp_path, "dropcmd", session) as (commands, _, core, client):
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


async def test_the_on_call_clinicians_crisis_card_during_an_alert_reads_what_it_did_before_the_care_team(
    settings: Settings, tmp_path: Path
) -> None:
    """The on-call clinician paged for an alert opens the client's crisis card: they do not treat
    the client, so they are let in as an assignee of the client's active alert (docs/crisis.md,
    *gRPC API*). The check looks at what the card reads anyway: the care-team find goes with the
    read of the client's records (which name the active alert), then the active alert, the audit
    record and the alert's records: 4 finds in 4 rounds, one find more than the card cost before
    the care team was kept and no round more. Until 2026-12-08 (twelfth session) the check read the
    care team, the active slot and the alert one after another before the card read the records
    and the alert again: 6 finds in 7 rounds."""
    session = f"session-{uuid.uuid4().hex[:8]}"
    async with counted_crisis(settings, tmp_path, "cardcmd", session) as (commands, alerts, core, client):
        api = CrisisApi(alerts.store.db, core, alerts)
        alert = await open_alert_directly(alerts, f"alert-{uuid.uuid4().hex[:8]}", client, "TEST")
        token = set_principal(Principal("oncall-test", frozenset({"clinician"})))  # the policy's on-call rotation
        try:
            commands.counting = True
            request = crisis_pb2.GetCrisisCardRequest(client_id=client)
            card = await api.GetCrisisCard(request, None)  # type: ignore[arg-type]
            commands.counting = False
        finally:
            reset_principal(token)
    assert card.active_alert.alert_id == alert["_id"] and card.backup_phone == "+14155550101", card
    assert (dict(commands.sent), commands.rounds) == ({"find": 4, "insert": 1}, 4), (commands.sent, commands.rounds)
