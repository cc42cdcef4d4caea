"""MongoDB access through PyMongo's async API: one database per service.

Works on MongoDB and on FerretDB 1.x: no multi-document transactions, so
invariants are unique indexes and atomicity is per document. Hot paths read,
update and delete by `_id` (one id, or `$in` a list of ids), which both stores
answer from the `_id` index: MongoDB always, the local FerretDB with the
project's patches (deploy/local/ferretdb); any other filter scans there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from services.plumbing.settings import Settings

log = logging.getLogger(__name__)

Document = dict[str, Any]


@dataclass(frozen=True)
class IndexSpec:
    """An index declared in code next to the collection that needs it."""

    collection: str
    keys: list[tuple[str, int]]
    unique: bool = False
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def mongo_client(settings: Settings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        appname="iop",
    )


def service_database(client: AsyncMongoClient[Document], settings: Settings, service: str) -> AsyncDatabase[Document]:
    return client[f"{settings.mongodb_database_prefix}{service}"]


NOT_IMPLEMENTED = 238
INDEX_OPTIONS_CONFLICT = 85
DUPLICATE_KEY = 11000
# Ids per `$in` query: the local store pushes a list down to its `_id` index up to this length.
MAX_IDS_PER_QUERY = 1000


async def find_by_ids(
    collection: AsyncCollection[Document], ids: Sequence[Any], projection: Document | None = None
) -> dict[Any, Document]:
    """The documents with these `_id`s, by `_id`: one `$in` query per MAX_IDS_PER_QUERY ids."""
    unique = list(dict.fromkeys(ids))
    found: dict[Any, Document] = {}
    for start in range(0, len(unique), MAX_IDS_PER_QUERY):
        chunk = unique[start : start + MAX_IDS_PER_QUERY]
        async for doc in collection.find({"_id": {"$in": chunk}}, projection):
            found[doc["_id"]] = doc
    return found


async def insert_new(collection: AsyncCollection[Document], docs: list[Document]) -> set[int]:
    """Insert documents keyed by a unique `_id` in one unordered write; returns the positions of
    those whose `_id` existed already (inserted by someone else: not an error here)."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {int(e["index"]) for e in errors}
    return set()


async def ensure_indexes(db: AsyncDatabase[Document], specs: list[IndexSpec]) -> None:
    """Create the indexes the code declares; the code is the source of truth, so an index on
    the same keys declared differently by an earlier version is replaced."""
    for spec in specs:
        name = spec.name or "_".join(f"{k}_{d}" for k, d in spec.keys)
        try:
            await _create_index(db, spec, name)
        except OperationFailure as exc:
            if exc.code != INDEX_OPTIONS_CONFLICT:
                raise
            existing = await db[spec.collection].index_information()
            for old_name, info in existing.items():
                if [tuple(k) for k in info["key"]] == [tuple(k) for k in spec.keys] and old_name != name:
                    log.warning("replacing index %s.%s with %s", spec.collection, old_name, name)
                    await db[spec.collection].drop_index(old_name)
            await _create_index(db, spec, name)


async def _create_index(db: AsyncDatabase[Document], spec: IndexSpec, name: str) -> None:
    try:
        await db[spec.collection].create_index(spec.keys, unique=spec.unique, name=name, **spec.options)
    except OperationFailure as exc:
        # FerretDB 1.x has no TTL indexes: keep the index, say that expiry is not enforced.
        if exc.code != NOT_IMPLEMENTED or "expireAfterSeconds" not in spec.options:
            raise
        options = {k: v for k, v in spec.options.items() if k != "expireAfterSeconds"}
        await db[spec.collection].create_index(spec.keys, unique=spec.unique, name=name, **options)
        log.warning("store has no TTL indexes: %s.%s is not expired automatically", db.name, spec.collection)


class BatchedWrites:
    """Bookkeeping documents written together, `window_s` after the first of them was added.

    For writes nobody waits for (published markers, processed markers, receipt statuses): one
    store write per window instead of one per event. Until its write succeeded a document stays
    pending (`in` answers by `_id`), and a failed write leaves it for the next window or `flush`.
    The writes carry no span: outside any user action each would be a one-span trace.
    """

    def __init__(
        self,
        write: Callable[[list[Document]], Awaitable[object]],
        what: str,
        window_s: float = 0.05,
        batch_size: int = 500,
    ) -> None:
        self._write = write
        self._what = what
        self._window_s = window_s
        self._batch_size = batch_size
        self._pending: dict[Any, Document] = {}  # by _id, in the order added
        self._scheduled: asyncio.Task[None] | None = None

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, docs: list[Document]) -> None:
        """Pend `docs`; their write starts within `window_s`."""
        self._pending.update((doc["_id"], doc) for doc in docs)
        if self._pending and (self._scheduled is None or self._scheduled.done()):
            self._scheduled = asyncio.create_task(self._flush_soon())

    async def flush(self) -> None:
        """Write everything pending now, `batch_size` documents per write; raises if a write fails."""
        while self._pending:
            batch = list(self._pending.values())[: self._batch_size]
            with suppress_instrumentation():
                await self._write(batch)
            for doc in batch:
                self._pending.pop(doc["_id"], None)

    async def close(self) -> None:
        """Cancel the scheduled write and write what is pending (a graceful stop)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
        await self.flush()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window_s)
        try:
            await self.flush()
        except Exception:  # they stay for the next window, or the stop
            log.warning("could not write %d %s; retrying later", len(self._pending), self._what, exc_info=True)
