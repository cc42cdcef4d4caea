"""The engagement database's declared indexes, created on the real store as the service creates
them at start (plumbing.storage.ensure_indexes)."""

from __future__ import annotations

import logging
import uuid

import pytest

from services.engagement.store import CONNECTIONS_COLLECTION, CONNECTIONS_RETENTION_S, INDEXES
from services.engagement.topics import SIGNALS
from services.plumbing.settings import Settings
from services.plumbing.storage import ensure_indexes, mongo_client, service_database

pytestmark = pytest.mark.integration


async def test_connection_records_expire_but_not_before_a_drop_may_still_read_them(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """`session_connections` had no expiry: one document per session and participant, forever. Its
    readers judge a drop: the webhook at once, the ledger consumer when it gets to the drop's signal,
    at most the signals topic's retention later; so the records are kept longer than that."""
    assert SIGNALS.retention_ms // 1000 < CONNECTIONS_RETENTION_S
    client = mongo_client(settings)
    db = service_database(client, settings, f"engagement{uuid.uuid4().hex[:6]}")
    try:
        with caplog.at_level(logging.WARNING, logger="services.plumbing.storage"):
            await ensure_indexes(db, INDEXES)
        indexes = await db[CONNECTIONS_COLLECTION].index_information()
        # by the time a connection was seen, or a host's action recorded (a record may hold only that)
        for name, field in (("at_ttl", "at"), ("removed_at_ttl", "removed_at")):
            assert indexes[name]["key"] == [(field, 1)], indexes
            expiry = indexes[name].get("expireAfterSeconds")
            if expiry is None:  # a store without TTL indexes (FerretDB 1.x) keeps the index and says so
                no_ttl = f"{db.name}.{CONNECTIONS_COLLECTION} is not expired automatically"
                assert any(no_ttl in r.getMessage() for r in caplog.records), caplog.text
            else:  # MongoDB
                assert expiry == CONNECTIONS_RETENTION_S
    finally:
        await client.drop_database(db.name)
        await client.close()
