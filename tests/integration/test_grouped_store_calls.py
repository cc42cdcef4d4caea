"""Grouped store calls (services.plumbing.storage.GroupedInserts, GroupedFinds, GroupedUpdates) against the real
store: concurrent callers share one command, each learns only its own duplicates, failures and
documents, each has its own span, and a caller cancelled before the command is left out of it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from bson.errors import InvalidDocument
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from services.plumbing.settings import Settings
from services.plumbing.storage import Document, GroupedFinds, GroupedInserts, GroupedUpdates

pytestmark = pytest.mark.integration


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.inserts = self.finds = self.updates = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.inserts += event.command_name == "insert"
        self.finds += event.command_name == "find"
        self.updates += event.command_name == "update"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Target:
    collection: AsyncCollection[Document]
    commands: Commands
    spans: InMemorySpanExporter
    grouped: GroupedInserts
    finds: GroupedFinds


@pytest.fixture
async def target(settings: Settings) -> AsyncIterator[Target]:
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_uri, event_listeners=[commands])
    db = client[f"{settings.mongodb_database_prefix}grouped{uuid.uuid4().hex[:6]}"]
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    collection = db.things
    await collection.insert_one({"_id": "taken"})
    commands.inserts = 0
    tracer = provider.get_tracer("test")
    yield Target(
        collection,
        commands,
        spans,
        GroupedInserts(collection, tracer=tracer),
        GroupedFinds(collection, {"n": 1}, tracer=tracer),
    )
    await client.drop_database(db.name)
    await client.close()


async def test_concurrent_callers_share_a_command_and_learn_only_their_own_duplicates(target: Target) -> None:
    first = asyncio.create_task(target.grouped.insert([{"_id": "a0"}]))  # goes alone: nothing in flight
    await asyncio.sleep(0)
    results = await asyncio.gather(
        target.grouped.insert([{"_id": "b0"}, {"_id": "taken"}, {"_id": "b2"}]),
        target.grouped.insert([{"_id": "c0"}, {"_id": "c1"}]),
        target.grouped.insert([{"_id": "same"}]),
        target.grouped.insert([{"_id": "same"}]),
    )
    assert await first == set()
    assert results[:2] == [{1}, set()]
    assert sorted(map(len, results[2:])) == [0, 1]  # the same new _id twice: one of them is a duplicate
    with pytest.raises(DuplicateKeyError):
        await target.grouped.insert_one({"_id": "c1"})
    stored = {d["_id"] for d in await target.collection.find({}, {"_id": 1}).to_list()}
    assert stored == {"taken", "a0", "b0", "b2", "c0", "c1", "same"}
    assert target.commands.inserts == 3  # a0; the four callers that waited for it; c1 again
    spans = target.spans.get_finished_spans()
    assert len(spans) == 6  # one per caller
    assert all(s.attributes and s.attributes["db.mongodb.collection"] == "things" for s in spans)
    batched = sorted(str((s.attributes or {}).get("db.mongodb.batch_items")) for s in spans)
    assert batched == ["1", "1", "7", "7", "7", "7"]


async def test_a_failed_document_fails_its_caller_only_and_a_cancelled_caller_is_not_written(
    target: Target,
) -> None:
    blocker = asyncio.create_task(target.grouped.insert([{"_id": "first"}]))
    await asyncio.sleep(0)
    bad = asyncio.create_task(target.grouped.insert([{"_id": "ok"}, {"_id": ["an", "array"]}]))
    cancelled = asyncio.create_task(target.grouped.insert([{"_id": "cancelled"}]))
    good = asyncio.create_task(target.grouped.insert([{"_id": "good"}]))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await blocker == set()
    with pytest.raises(OperationFailure):
        await bad
    assert await good == set()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    stored = {d["_id"] for d in await target.collection.find({}, {"_id": 1}).to_list()}
    assert "good" in stored and "cancelled" not in stored and "ok" in stored


async def test_concurrent_lookups_share_a_query_and_each_caller_owns_its_documents(target: Target) -> None:
    await target.collection.insert_many([{"_id": f"d{i}", "n": i, "hidden": "x"} for i in range(4)])
    finds_before = target.commands.finds
    first = asyncio.create_task(target.finds.get("d0"))  # goes alone: nothing in flight
    await asyncio.sleep(0)
    many, one, same, missing = await asyncio.gather(
        target.finds.get_many(["d1", "d2", "nope"]),
        target.finds.get("d3"),
        target.finds.get("d1"),
        target.finds.get("nope"),
    )
    assert await first == {"_id": "d0", "n": 0}  # the projection applies
    assert many == {"d1": {"_id": "d1", "n": 1}, "d2": {"_id": "d2", "n": 2}}
    assert one == {"_id": "d3", "n": 3} and missing is None
    assert same == many["d1"] and same is not many["d1"]  # the same document, a copy of its own
    assert target.commands.finds - finds_before == 2  # d0; the four callers that waited for it
    await target.grouped.insert_one({"_id": "late", "n": 9})
    assert await target.finds.get("late") == {"_id": "late", "n": 9}  # reads what the caller wrote
    spans = [s for s in target.spans.get_finished_spans() if (s.attributes or {}).get("db.statement") == "find"]
    assert len(spans) == 6


async def test_ordered_inserts_stop_each_caller_at_its_first_duplicate_and_resend_the_callers_after(
    target: Target,
) -> None:
    ordered = GroupedInserts(target.collection, ordered=True)
    before = target.commands.inserts
    blocker = asyncio.create_task(ordered.insert([{"_id": "o0"}]))  # goes alone: nothing in flight
    await asyncio.sleep(0)
    first, second, third = await asyncio.gather(
        ordered.insert([{"_id": "o1"}, {"_id": "taken"}, {"_id": "o3"}]),  # stops at "taken"
        ordered.insert([{"_id": "o4"}, {"_id": "o1"}]),  # after it: sent again, stops at o1
        ordered.insert([{"_id": "o5"}]),
    )
    assert await blocker == set()
    assert (first, second, third) == ({1}, {1}, set())
    stored = {d["_id"] for d in await target.collection.find({}, {"_id": 1}).to_list()}
    assert stored == {"taken", "o0", "o1", "o4", "o5"}  # o3 was never tried, as an ordered insert
    # o0; the three callers; the two after the first stop; the one after the second
    assert target.commands.inserts - before == 4


def _apply_once(doc_id: str, event: str) -> tuple[Document, Document]:
    """An update that does nothing the second time: the event is pushed where it is not yet."""
    return {"_id": doc_id, "events": {"$ne": event}}, {"$push": {"events": event}, "$inc": {"n": 1}}


async def test_concurrent_updates_share_a_command_and_each_is_applied_once(target: Target) -> None:
    updates = GroupedUpdates(target.collection)
    await target.collection.insert_many([{"_id": "u1", "events": [], "n": 0}, {"_id": "u2", "events": [], "n": 0}])
    before = target.commands.updates
    first = asyncio.create_task(updates.update_one(*_apply_once("u1", "e0")))  # goes alone: nothing in flight
    await asyncio.sleep(0)
    await asyncio.gather(
        updates.update_one(*_apply_once("u1", "e1")),
        updates.update_one(*_apply_once("u2", "e1")),
        updates.update_one(*_apply_once("new", "e1"), upsert=True),
        updates.update_one(*_apply_once("u2", "e2")),
    )
    await first
    assert target.commands.updates - before == 2  # e0; the four callers that waited for it
    docs = {d["_id"]: d for d in await target.collection.find({"_id": {"$in": ["u1", "u2", "new"]}}).to_list()}
    assert (docs["u1"]["events"], docs["u1"]["n"]) == (["e0", "e1"], 2)
    assert (docs["u2"]["events"], docs["u2"]["n"]) == (["e1", "e2"], 2)
    assert (docs["new"]["events"], docs["new"]["n"]) == (["e1"], 1)


async def test_an_update_applied_before_fails_its_caller_only_and_the_others_are_applied_once(
    target: Target,
) -> None:
    """A redelivered event's upsert collides (the filter misses the document that has it): that
    caller gets DuplicateKeyError, a bad update its own error, and the callers after them in
    the command are applied, once, although the store stops a command at its first error."""
    updates = GroupedUpdates(target.collection)
    await target.collection.insert_one({"_id": "seen", "events": ["e1"], "n": 1})
    before = target.commands.updates
    blocker = asyncio.create_task(updates.update_one(*_apply_once("a", "e0"), upsert=True))
    await asyncio.sleep(0)
    results = await asyncio.gather(
        updates.update_one(*_apply_once("b", "e1"), upsert=True),
        updates.update_one(*_apply_once("seen", "e1"), upsert=True),  # applied before: collides
        updates.update_one({"_id": "c"}, {"$bogus": {"n": 1}}, upsert=True),  # not an update operator
        updates.update_one(*_apply_once("d", "e1"), upsert=True),
        return_exceptions=True,
    )
    await blocker
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], DuplicateKeyError)
    assert isinstance(results[2], OperationFailure) and not isinstance(results[2], DuplicateKeyError)
    # "a" alone; the shared command of the four callers that waited; each of them again alone
    assert target.commands.updates - before == 6
    docs = {d["_id"]: d for d in await target.collection.find({"_id": {"$in": ["a", "b", "seen", "c", "d"]}}).to_list()}
    assert {k: (d["events"], d["n"]) for k, d in docs.items()} == {
        "a": (["e0"], 1),
        "b": (["e1"], 1),
        "seen": (["e1"], 1),
        "d": (["e1"], 1),
    }


async def test_an_update_that_cannot_be_encoded_fails_its_caller_only(target: Target) -> None:
    updates = GroupedUpdates(target.collection)
    await target.collection.insert_one({"_id": "x", "events": [], "n": 0})
    blocker = asyncio.create_task(updates.update_one(*_apply_once("x", "e0")))
    await asyncio.sleep(0)
    results = await asyncio.gather(
        updates.update_one({"_id": "x"}, {"$set": {"bad": object()}}),  # not BSON
        updates.update_one(*_apply_once("x", "e1")),
        return_exceptions=True,
    )
    await blocker
    assert isinstance(results[0], InvalidDocument) and results[1] is None
    doc = await target.collection.find_one({"_id": "x"})
    assert doc is not None and (doc["events"], doc["n"]) == (["e0", "e1"], 2)
