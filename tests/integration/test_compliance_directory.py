"""The compliance store's owner directory against the real store: a clinician's or client's
records are found by `_id` only, concurrent writers never lose one, old records are linked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.compliance.store import AUTHORIZATIONS, CONSENTS, DIRECTORY, LICENSES, ComplianceStore
from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ComplianceStore]:
    client = mongo_client(settings)
    db = service_database(client, settings, f"directory{uuid.uuid4().hex[:6]}")
    yield ComplianceStore(db, "/test")
    await client.drop_database(db.name)
    await client.close()


def license_doc(clinician: str, n: int) -> dict:
    now = datetime.now(UTC)
    return {
        "_id": str(uuid.uuid4()),
        "clinician_id": clinician,
        "owner_id": clinician,
        "state": "NY",
        "license_type": "LPC",
        "license_number": f"LPC-{uuid.uuid4().hex[:8]}-{n}",
        "valid_from": now - timedelta(days=1),
        "valid_until": now + timedelta(days=365),
        "expires_at": now + timedelta(days=365),
    }


async def test_concurrent_writers_of_one_owner_lose_no_record(store: ComplianceStore) -> None:
    docs = [license_doc("clin-1", n) for n in range(40)]  # more than one directory page
    await asyncio.gather(*(store.insert(LICENSES, d) for d in docs))
    await store.insert(LICENSES, license_doc("clin-2", 0))
    owned = await store.owned(LICENSES, "clin-1")
    assert sorted(d["_id"] for d in owned) == sorted(d["_id"] for d in docs)
    assert [d["owner_id"] for d in await store.owned(LICENSES, "clin-2")] == ["clin-2"]
    assert await store.owned(CONSENTS, "clin-1") == []  # directories are per collection


async def test_records_stored_before_the_directory_are_linked_once(store: ComplianceStore) -> None:
    old = [license_doc("clin-old", n) for n in range(3)]
    await store.db[LICENSES].insert_many(old)  # as an earlier version stored them
    assert await store.owned(LICENSES, "clin-old") == []
    assert await store.link_unlisted() == 3
    assert await store.link_unlisted() == 0
    assert sorted(d["_id"] for d in await store.owned(LICENSES, "clin-old")) == sorted(d["_id"] for d in old)


async def test_an_entry_whose_record_was_never_written_is_skipped(store: ComplianceStore) -> None:
    kept = license_doc("clin-3", 0)
    await store.db[DIRECTORY].insert_one({"_id": f"{LICENSES}|clin-3|0000", "record_id": "never-written"})
    await store.insert(LICENSES, kept)
    assert [d["_id"] for d in await store.owned(LICENSES, "clin-3")] == [kept["_id"]]


async def test_directories_of_several_collections_are_read_together(store: ComplianceStore) -> None:
    licenses = [license_doc("owner-4", n) for n in range(20)]  # past the first directory page
    for doc in licenses:
        await store.insert(LICENSES, doc)
    consent = {**license_doc("owner-4", 99), "consent_type": "TELEHEALTH"}
    await store.insert(CONSENTS, consent)
    owned = await store.owned_many((LICENSES, CONSENTS, AUTHORIZATIONS), "owner-4")
    assert [d["_id"] for d in owned[LICENSES]] == [d["_id"] for d in licenses]  # slot order
    assert [d["_id"] for d in owned[CONSENTS]] == [consent["_id"]]
    assert owned[AUTHORIZATIONS] == []
