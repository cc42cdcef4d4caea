"""A client's insert-only logs on the real store: `last` finds the newest record whether the log
fits the first probe or needs galloping past it, `append` takes the next free position, and
`client_records` reads the newest of each log and the active-alert slot together."""

from __future__ import annotations

import uuid

import pytest

from services.crisis.store import CHECKINS, FIRST_PROBE, PLANS, RISK, ClientRecords, CrisisStore
from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database
from tests.support import RUN_ID, isolated_settings

pytestmark = pytest.mark.integration


async def test_last_and_append_across_the_first_probe(settings: Settings) -> None:
    mongo = mongo_client(settings)
    prefix = f"t{RUN_ID}logs{uuid.uuid4().hex[:6]}_"
    store = CrisisStore(service_database(mongo, isolated_settings(MONGODB_DATABASE_PREFIX=prefix), "crisis"))
    client = f"log-client-{uuid.uuid4().hex[:8]}"
    try:
        assert await store.last(RISK, client) == (0, None)
        lengths = {1, FIRST_PROBE - 1, FIRST_PROBE, FIRST_PROBE + 1, 3 * FIRST_PROBE - 3}
        for n in range(1, max(lengths) + 1):
            doc = await store.append(RISK, client, lambda rid, seq: {"_id": rid, "client_id": client, "level": seq})
            assert doc["level"] == n
            if n in lengths:
                seq, last = await store.last(RISK, client)
                assert seq == n and last is not None and last["level"] == n
        other = await store.last(RISK, f"{client}-other")  # another client's log is its own
        assert other == (0, None)
        assert await store.last(CHECKINS, client) == (0, None)  # and each kind of log is its own

        # the newest of each log (the risk log is past the first probe) and the active alert's id
        assert await store.client_records(client) == ClientRecords(last, None, None, None)
        checkin = await store.append(CHECKINS, client, lambda rid, seq: {"_id": rid, "client_id": client, "at": seq})
        for _ in range(2):
            plan = await store.append(PLANS, client, lambda rid, seq: {"_id": rid, "client_id": client, "version": seq})
        assert await store.take_active(client, "alert-1") == "alert-1"
        assert await store.take_active(client, "alert-2") == "alert-1"  # one active alert per client
        records = await store.client_records(client)
        assert records == ClientRecords(last, checkin, plan, "alert-1")
        assert records.plan is not None and records.plan["version"] == 2
        await store.release_active(client, "alert-1")
        assert (await store.client_records(client)).active_alert_id is None
    finally:
        await mongo.drop_database(store.db.name)
        await mongo.close()
