"""Helpers shared by the compliance integration tests that drive its store directly (this module
holds no tests): credential documents as the API stores them, board actions, and the outbox
entries written for an owner, and a store of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from pymongo import AsyncMongoClient, monitoring

from services.compliance.store import OUTBOX_COLLECTIONS, ComplianceStore
from services.plumbing.settings import Settings
from services.plumbing.storage import Document, service_database

NOW = datetime.now(UTC).replace(microsecond=0)


def license_doc(clinician: str, expires_in: timedelta = timedelta(days=20), **fields: object) -> Document:
    """An active California LPC license of `clinician`, expiring `expires_in` from NOW."""
    return {
        "_id": str(uuid.uuid4()),
        "clinician_id": clinician,
        "owner_id": clinician,
        "state": "CA",
        "license_type": "LPC",
        "license_number": f"LPC-{uuid.uuid4().hex[:10]}",
        "profession": "COUNSELOR",
        "status": "active",
        "valid_from": NOW - timedelta(days=300),
        "valid_until": NOW + expires_in,
        "verified_at": NOW,
        "expires_at": NOW + expires_in,
        **fields,
    }


def privilege_doc(clinician: str, expires_in: timedelta = timedelta(days=300)) -> Document:
    """An active Counseling Compact privilege of `clinician` (home MN, to practise in AZ)."""
    return {
        "_id": str(uuid.uuid4()),
        "clinician_id": clinician,
        "owner_id": clinician,
        "compact": "COUNSELING",
        "kind": "PRIVILEGE",
        "home_state": "MN",
        "privilege_state": "AZ",
        "credential_number": f"CC-{uuid.uuid4().hex[:10]}",
        "status": "active",
        "valid_from": NOW - timedelta(days=30),
        "valid_until": NOW + expires_in,
        "verified_at": NOW,
        "expires_at": NOW + expires_in,
    }


def board_action(status: str, effective_at: datetime, by: str = "board") -> Document:
    """A board action as UpdateLicenseStatus / UpdateCompactCredentialStatus records it."""
    return {"status": status, "effective_at": effective_at, "recorded_at": datetime.now(UTC), "recorded_by": by}


async def stored_events(store: ComplianceStore, owner_id: str, event_type: str) -> list[Document]:
    """The outbox entries of `event_type` keyed by `owner_id`, wherever the service keeps them."""
    found = []
    for collection in OUTBOX_COLLECTIONS:
        async for doc in store.db[collection].find({"outbox.key": owner_id}, {"outbox": 1}):
            found += [e for e in doc["outbox"] if e["key"] == owner_id and e["type"] == event_type]
    return found


@asynccontextmanager
async def store_of_its_own(
    settings: Settings, name: str, *listeners: monitoring.CommandListener
) -> AsyncIterator[ComplianceStore]:
    """A ComplianceStore on a new database (named from `name`), dropped afterwards; `listeners` see
    its commands."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, event_listeners=list(listeners)
    )
    db = service_database(client, settings, f"{name}{uuid.uuid4().hex[:6]}")
    try:
        yield ComplianceStore(db, "/test")
    finally:
        await client.drop_database(db.name)
        await client.close()
