"""The store answers lookups by `_id` from its index, also beside other conditions.

Every hot path of the services reads, updates and deletes by `_id` (with a condition such
as `status` for the state machine's transitions). On FerretDB 1.x's SQLite backend both
need the project's patches (deploy/local/ferretdb/*.patch): without them every such call
scans the whole collection. MongoDB answers them from the `_id` index anyway.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database

pytestmark = pytest.mark.integration

# FerretDB/SQLite names a full scan "SCAN <table>" ("SEARCH ... USING INDEX" otherwise);
# MongoDB names it COLLSCAN.
FULL_SCAN = re.compile(r"\bSCAN\b|COLLSCAN")


@pytest.fixture
async def collection(settings: Settings):  # type: ignore[no-untyped-def]
    client = mongo_client(settings)
    db = service_database(client, settings, f"lookups{uuid.uuid4().hex[:6]}")
    coll = db.things
    await coll.insert_many([{"_id": f"k{i}", "status": "open" if i % 2 else "closed", "n": i} for i in range(50)])
    yield coll
    await client.drop_database(db.name)
    await client.close()


async def plan(coll, command: dict) -> str:  # type: ignore[no-untyped-def]
    explained = await coll.database.command({"explain": command})
    return json.dumps(explained.get("queryPlanner", explained), default=str)


@pytest.mark.parametrize(
    "query",
    [{"_id": "k7"}, {"_id": "k7", "status": "open"}, {"status": "open", "_id": "k7", "n": {"$gte": 0}}],
    ids=["id-only", "id-and-condition", "id-among-conditions"],
)
async def test_id_lookups_use_the_index(collection, query: dict) -> None:  # type: ignore[no-untyped-def]
    found = await plan(collection, {"find": collection.name, "filter": query})
    assert not FULL_SCAN.search(found), found


async def test_a_filter_without_id_still_scans(collection) -> None:  # type: ignore[no-untyped-def]
    # the check above can tell the two apart
    assert FULL_SCAN.search(await plan(collection, {"find": collection.name, "filter": {"status": "open"}}))


async def test_conditions_beside_id_are_still_applied(collection) -> None:  # type: ignore[no-untyped-def]
    # k7 is open: conditions that do not hold must match nothing, for every kind of command
    assert await collection.find_one({"_id": "k7", "status": "closed"}) is None
    assert (await collection.find_one({"_id": "k7", "status": "open"}))["n"] == 7
    assert await collection.count_documents({"_id": "k7", "status": "closed"}) == 0
    assert (await collection.update_one({"_id": "k7", "status": "closed"}, {"$set": {"n": -1}})).matched_count == 0
    assert await collection.find_one_and_update({"_id": "k7", "status": "closed"}, {"$set": {"n": -1}}) is None
    assert (await collection.delete_one({"_id": "k7", "status": "closed"})).deleted_count == 0
    assert (await collection.find_one({"_id": "k7"}))["n"] == 7
    assert (await collection.update_one({"_id": "k7", "status": "open"}, {"$set": {"n": 70}})).modified_count == 1
    assert (await collection.delete_one({"_id": "k7", "n": 70})).deleted_count == 1
    assert await collection.find_one({"_id": "k7"}) is None
