"""The expiry monitor's warnings against the real store.

FerretDB 1.x applies an update as read-modify-write of the whole document: the monitor's update of
an item (its warned horizons and CredentialExpiring event, run by every instance) racing a
consent's revocation or an authorization's decrement lost one of the two. A warning is now a
document of its own; the items' documents are never written by the monitor."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from services.compliance import events
from services.compliance.monitor import ExpiryMonitor
from services.compliance.reference import load_reference
from services.compliance.store import (
    AUTHORIZATIONS,
    COMPACT_CREDENTIALS,
    CONSENTS,
    EXPIRY_NOTICES,
    LICENSES,
    ComplianceStore,
)
from services.plumbing.outbox import OutgoingEvent
from services.plumbing.settings import Settings
from services.plumbing.storage import Document, mongo_client, service_database
from tests.integration.test_compliance_support import NOW, board_action, license_doc, privilege_doc, stored_events

pytestmark = pytest.mark.integration

TRIALS = 25
EXPIRING_TYPE = "iop.events.v1.CredentialExpiring"


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ComplianceStore]:
    client = mongo_client(settings)
    db = service_database(client, settings, f"expiry{uuid.uuid4().hex[:6]}")
    yield ComplianceStore(db, "/test")
    await client.drop_database(db.name)
    await client.close()


def consent_doc(client: str, expires_in: timedelta) -> Document:
    return {
        "_id": str(uuid.uuid4()),
        "client_id": client,
        "owner_id": client,
        "consent_type": "TELEHEALTH",
        "form_version": "telehealth-2025-01",
        "signed_at": NOW - timedelta(days=300),
        "valid_from": NOW - timedelta(days=300),
        "valid_until": NOW + expires_in,
        "expires_at": NOW + expires_in,
        "revoked_at": None,
    }


def authorization_doc(client: str, expires_in: timedelta) -> Document:
    return {
        "_id": str(uuid.uuid4()),
        "client_id": client,
        "owner_id": client,
        "payer_plan_id": "plan-x",
        "auth_number": f"A-{uuid.uuid4().hex[:10]}",
        "codes": ["S9480"],
        "start_date": (NOW - timedelta(days=30)).date().isoformat(),
        "end_date": (NOW + expires_in).date().isoformat(),
        "units": 10,
        "units_used": 0,
        "billed_dates": [],
        "expires_at": NOW + expires_in,
    }


async def test_a_warning_racing_a_revocation_or_a_decrement_loses_neither(store: ComplianceStore) -> None:
    """A consent revoked and an authorization decremented while the monitor warns of both, over and
    over: the revocation, the decrement, both warnings and their events are all there afterwards."""
    for trial in range(TRIALS):
        client = f"client-race-{trial}-{uuid.uuid4().hex[:6]}"
        consent, auth = consent_doc(client, timedelta(days=20)), authorization_doc(client, timedelta(days=20))
        await store.insert(CONSENTS, consent)
        await store.insert(AUTHORIZATIONS, auth)

        def warning(item: Document, item_type: str) -> list[OutgoingEvent]:
            return [events.credential_expiring(item["_id"], item_type, item["owner_id"], item["expires_at"], 30, [])]

        revoked, consent_warned, counted, auth_warned = await asyncio.gather(
            store.revoke_consent(consent["_id"], NOW, lambda current: []),
            store.mark_horizons(CONSENTS, consent["_id"], 30, [30, 60], warning(consent, "consent")),
            store.decrement_authorization(client, auth["_id"], "2027-01-04"),
            store.mark_horizons(AUTHORIZATIONS, auth["_id"], 30, [30, 60], warning(auth, "authorization")),
        )
        assert revoked is not None and consent_warned and counted and auth_warned, trial
        stored_consent = await store.get(CONSENTS, consent["_id"])
        assert stored_consent is not None and stored_consent["revoked_at"] is not None, (
            f"trial {trial}: revocation lost"
        )
        stored_auth = await store.get(AUTHORIZATIONS, auth["_id"])
        assert stored_auth is not None
        assert (stored_auth["units_used"], stored_auth["billed_dates"]) == (1, ["2027-01-04"]), f"trial {trial}"
        assert not await store.mark_horizons(CONSENTS, consent["_id"], 30, [30, 60], []), f"trial {trial}"
        assert not await store.mark_horizons(AUTHORIZATIONS, auth["_id"], 30, [30, 60], []), f"trial {trial}"
        assert len(await stored_events(store, client, EXPIRING_TYPE)) == 2, f"trial {trial}: a warning's event was lost"


async def test_the_monitor_warns_once_per_horizon_without_writing_the_items(store: ComplianceStore) -> None:
    monitor = ExpiryMonitor(store, load_reference())
    clinician, client = f"clin-{uuid.uuid4().hex[:6]}", f"client-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician, timedelta(days=20))  # inside the 60 and 30 day horizons: warned for 30
    warned_before = license_doc(clinician, timedelta(days=25), notified_horizons=[30, 60])  # by an earlier version
    consent = consent_doc(client, timedelta(days=5))  # inside all three: warned for 7
    for collection, doc in ((LICENSES, lic), (LICENSES, warned_before), (CONSENTS, consent)):
        await store.insert(collection, doc)

    assert await monitor.run_once(NOW) == 2
    assert await monitor.run_once(NOW) == 0
    assert (
        await monitor.run_once(NOW + timedelta(days=19)) == 2
    )  # both licenses now within 7 days (the consent expired)
    assert await monitor.run_once(NOW + timedelta(days=19)) == 0
    notices = await store.db[EXPIRY_NOTICES].find({}, {"outbox": 0}).sort("_id").to_list()
    assert sorted((n["item_id"], n["horizon"]) for n in notices) == sorted(
        [(lic["_id"], 30), (lic["_id"], 7), (warned_before["_id"], 7), (consent["_id"], 7)]
    )
    assert (
        len(await stored_events(store, clinician, EXPIRING_TYPE)) == 3
        and len(await stored_events(store, client, EXPIRING_TYPE)) == 1
    )
    # the items' own documents were not written
    assert (await store.get(LICENSES, lic["_id"]) or {}).get("notified_horizons") is None
    assert (await store.get(LICENSES, warned_before["_id"]) or {})["notified_horizons"] == [30, 60]
    assert "notified_horizons" not in (await store.get(CONSENTS, consent["_id"]) or {})


async def test_no_expiry_warning_for_a_credential_not_in_force_until_it_is_reinstated(store: ComplianceStore) -> None:
    """A suspended or revoked license, a revoked compact privilege, a license revoked from a later
    date before it expires: none is in force when it expires, so none is warned of. A license whose
    reinstatement is recorded for before its expiry is; a suspended one is once it is reinstated."""
    monitor = ExpiryMonitor(store, load_reference())
    clinician = f"clin-{uuid.uuid4().hex[:6]}"
    active = license_doc(clinician, timedelta(days=20))
    suspended = license_doc(clinician, timedelta(days=20))
    revoked = license_doc(clinician, timedelta(days=20))
    revoked_later = license_doc(clinician, timedelta(days=20))
    back_soon = license_doc(clinician, timedelta(days=20))
    privilege = privilege_doc(clinician, timedelta(days=20))
    for doc in (active, suspended, revoked, revoked_later, back_soon):
        await store.insert(LICENSES, doc)
    await store.insert(COMPACT_CREDENTIALS, privilege)
    await store.change_status(LICENSES, suspended["_id"], board_action("suspended", NOW - timedelta(days=1)))
    await store.change_status(LICENSES, revoked["_id"], board_action("revoked", NOW - timedelta(hours=1)))
    await store.change_status(LICENSES, revoked_later["_id"], board_action("revoked", NOW + timedelta(days=2)))
    await store.change_status(LICENSES, back_soon["_id"], board_action("suspended", NOW - timedelta(days=1)))
    await store.change_status(LICENSES, back_soon["_id"], board_action("active", NOW + timedelta(days=10)))
    await store.change_status(COMPACT_CREDENTIALS, privilege["_id"], board_action("revoked", NOW - timedelta(hours=1)))

    assert await monitor.run_once(NOW) == 2
    notices = await store.db[EXPIRY_NOTICES].find({}, {"item_id": 1, "horizon": 1}).to_list()
    assert sorted((n["item_id"], n["horizon"]) for n in notices) == sorted(
        [(active["_id"], 30), (back_soon["_id"], 30)]
    )

    assert await monitor.run_once(NOW + timedelta(minutes=1)) == 0
    await store.change_status(LICENSES, suspended["_id"], board_action("active", NOW))
    assert await monitor.run_once(NOW + timedelta(minutes=1)) == 1
    assert await store.db[EXPIRY_NOTICES].count_documents({"item_id": suspended["_id"], "horizon": 30}) == 1
    assert len(await stored_events(store, clinician, EXPIRING_TYPE)) == 3
