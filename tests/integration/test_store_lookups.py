"""The store answers lookups by `_id` (one id or `$in` a list) from its index, also beside
other conditions.

Every hot path of the services reads, updates and deletes by `_id` (with a condition such
as `status` for the state machine's transitions, or several ids at once). On FerretDB 1.x's
SQLite backend these need the project's patches (deploy/local/ferretdb/*.patch): without
them every such call scans the whole collection. MongoDB answers them from the `_id` index.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest
from pymongo import ReplaceOne

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
    [
        {"_id": "k7"},
        {"_id": "k7", "status": "open"},
        {"status": "open", "_id": "k7", "n": {"$gte": 0}},
        {"_id": {"$in": ["k1", "k2", "k40", "missing"]}},
        {"_id": {"$in": ["k1", "k2"]}, "status": "open"},
    ],
    ids=["id-only", "id-and-condition", "id-among-conditions", "id-in", "id-in-and-condition"],
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


async def test_id_lists_match_exactly_what_they_name(collection) -> None:  # type: ignore[no-untyped-def]
    found = await collection.find({"_id": {"$in": ["k1", "k2", "k3", "nope"]}, "status": "open"}).to_list()
    assert sorted(d["_id"] for d in found) == ["k1", "k3"]
    # a list the store cannot push down (not only strings) still answers correctly
    mixed = await collection.find({"_id": {"$in": ["k4", 4, None]}}).to_list()
    assert [d["_id"] for d in mixed] == ["k4"]
    assert await collection.find({"_id": {"$in": []}}).to_list() == []
    updated = await collection.update_many({"_id": {"$in": ["k5", "k6", "k8"]}, "status": "closed"}, {"$set": {"n": 0}})
    assert updated.modified_count == 2  # k6 and k8 (k5 is open)
    deleted = await collection.delete_many({"_id": {"$in": ["k5", "k6", "k9", "nope"]}})
    assert deleted.deleted_count == 3
    assert await collection.count_documents({}) == 47


async def test_many_updates_at_once_do_not_exhaust_the_stores_connections(collection) -> None:  # type: ignore[no-untyped-def]
    # FerretDB 1.x held each statement's read open while writing it: an update command with
    # more statements than its pool of 100 SQL connections (or as many concurrent updates)
    # waited forever and hung the database (deploy/local/ferretdb/update-release-read-before-write.patch).
    await collection.insert_many([{"_id": f"b{i}", "bulk": 0} for i in range(150)])
    replaced = await asyncio.wait_for(
        collection.bulk_write([ReplaceOne({"_id": f"b{i}"}, {"bulk": 1}, upsert=True) for i in range(150)]), 30
    )
    assert replaced.modified_count == 150
    updates = [collection.update_one({"_id": f"b{i}"}, {"$inc": {"bulk": 1}}) for i in range(75)]
    modifies = [collection.find_one_and_update({"_id": f"b{i}"}, {"$inc": {"bulk": 1}}) for i in range(75, 150)]
    await asyncio.wait_for(asyncio.gather(*updates, *modifies), 30)
    assert await collection.count_documents({"bulk": 2}) == 150


async def test_concurrent_updates_of_one_document_all_apply(collection) -> None:  # type: ignore[no-untyped-def]
    # FerretDB 1.x reads the document, applies the operators and writes it back: two updates at once
    # each read the version before the other's write, and one of them was lost (a suspension pushed
    # onto a license, a consent's revocation beside the expiry monitor's flag). MongoDB applies an
    # update to a document atomically; deploy/local/ferretdb/update-serialize-read-modify-write.patch
    # serializes the local store's read-modify-write per collection.
    await collection.insert_one({"_id": "shared", "count": 0, "tags": []})
    for _ in range(5):
        updates = [collection.update_one({"_id": "shared"}, {"$inc": {"count": 1}}) for _ in range(10)]
        pushes = [collection.update_one({"_id": "shared"}, {"$push": {"tags": uuid.uuid4().hex}}) for _ in range(10)]
        modifies = [
            collection.find_one_and_update({"_id": "shared"}, {"$inc": {"count": 1}, "$addToSet": {"tags": "m"}})
            for _ in range(10)
        ]
        await asyncio.wait_for(asyncio.gather(*updates, *pushes, *modifies), 30)
    shared = await collection.find_one({"_id": "shared"})
    assert shared["count"] == 100, "increments were lost"
    assert len(shared["tags"]) == 51, "pushes were lost"  # 50 pushed + the one added to the set
