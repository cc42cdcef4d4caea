"""MongoDB access through PyMongo's async API: one database per service.

Works on MongoDB and on FerretDB 1.x: no multi-document transactions, so
invariants are unique indexes and atomicity is per document. Hot paths read,
update and delete by `_id` (one id, or `$in` a list of ids), which both stores
answer from the `_id` index: MongoDB always, the local FerretDB with the
project's patches (deploy/local/ferretdb); any other filter scans there.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson.errors import InvalidDocument
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Span, SpanKind
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from services.plumbing.settings import Settings
from services.plumbing.telemetry import current_span

log = logging.getLogger(__name__)
_storage_tracer = trace.get_tracer("iop.storage")

Document = dict[str, Any]


def to_millis(at: datetime) -> datetime:
    """`at` as the store keeps it: BSON dates hold milliseconds, so a time compared with stored
    times, or written into an `_id` beside its stored copy, is cut to them first."""
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


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


@dataclass
class _Waiting:
    items: list[Any]  # documents to insert, or ids to find
    done: asyncio.Future[Any]
    span: Span


class _GroupCommit:
    """Commands of concurrent callers on one collection, sent together: one is in flight at a
    time, and the callers that arrive meanwhile share the next one, so an idle collection adds no
    delay and a busy one takes one command for many callers. Each caller's wait is its own CLIENT
    span, with the attributes of PyMongo's instrumentation and the size of the shared command; the
    command itself carries no span, so a user action's trace shows its own store calls and no
    other's. A caller cancelled before its command was sent is left out of it."""

    def __init__(
        self, collection: AsyncCollection[Document], statement: str, max_batch: int, tracer: trace.Tracer | None
    ) -> None:
        self._collection = collection
        self._max_batch = max_batch
        self._tracer = tracer or _storage_tracer
        self._waiting: deque[_Waiting] = deque()
        self._sending: asyncio.Task[None] | None = None
        self._span_name = f"{collection.database.name}.{statement}"
        self._span_attributes: dict[str, str] = {
            "db.system": "mongodb",
            "db.name": collection.database.name,
            "db.statement": statement,
            "db.mongodb.collection": collection.name,
        }

    async def _submit(self, items: list[Any]) -> Any:
        with current_span(
            self._tracer, self._span_name, kind=SpanKind.CLIENT, attributes=self._span_attributes
        ) as span:
            waiting = _Waiting(items, asyncio.get_running_loop().create_future(), span)
            self._waiting.append(waiting)
            if self._sending is None or self._sending.done():
                self._sending = asyncio.create_task(self._send_waiting())
            return await waiting.done

    async def _send_waiting(self) -> None:
        while self._waiting:
            batch: list[_Waiting] = []
            size = 0
            while self._waiting and (not batch or size + len(self._waiting[0].items) <= self._max_batch):
                waiting = self._waiting.popleft()
                if not waiting.done.cancelled():
                    batch.append(waiting)
                    size += len(waiting.items)
            if not batch:
                continue
            for waiting in batch:
                waiting.span.set_attribute("db.mongodb.batch_items", size)
            try:
                with suppress_instrumentation():
                    await self._send(batch)
            except Exception as exc:  # the command failed: every caller in it gets the error
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
            except BaseException:  # cancelled (the loop is closing): so are the callers in it
                for waiting in batch:
                    waiting.done.cancel()
                raise

    async def _send(self, batch: list[_Waiting]) -> None:
        raise NotImplementedError


class GroupedInserts(_GroupCommit):
    """Inserts of concurrent callers into one collection, as one `insert_many` (group commit): a
    caller learns which of its own documents had an `_id` that existed already, and one caller's
    duplicate never fails another. On the local store a document in a batch of five costs it 55 us
    of CPU, alone 195 us (and the client 25 us against 120 us).

    Unordered (the default), every document is tried. Ordered, each caller's documents are
    inserted in order and stop at its first duplicate, as its own ordered `insert_many` would: the
    shared command stops there too, and the callers after it go in the next one."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        max_batch: int = 500,
        tracer: trace.Tracer | None = None,
        ordered: bool = False,
    ) -> None:
        super().__init__(collection, "insert", max_batch, tracer)
        self._ordered = ordered

    async def insert(self, docs: Sequence[Document]) -> set[int]:
        """Insert `docs`; returns the positions of those whose `_id` existed already (ordered: the
        first such position; the documents after it were not inserted). Raises the error of the
        command, or of any of these documents that failed otherwise."""
        if not docs:
            return set()
        duplicates: set[int] = await self._submit(list(docs))
        return duplicates

    async def insert_one(self, doc: Document) -> None:
        """Insert one document; raises DuplicateKeyError when its `_id` exists."""
        if await self.insert([doc]):
            raise DuplicateKeyError(f"duplicate key: {self._collection.name} _id {doc['_id']!r}", DUPLICATE_KEY)

    async def _send(self, batch: list[_Waiting]) -> None:
        errors: list[Document] = []
        docs = [doc for waiting in batch for doc in waiting.items]
        try:
            await self._collection.insert_many(docs, ordered=self._ordered)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
        by_position = {int(e["index"]): e for e in errors}
        stopped_at = min(by_position) if self._ordered and by_position else len(docs)
        first = 0
        for n, waiting in enumerate(batch):
            if first > stopped_at:  # ordered, and not tried: these callers go in the next command
                self._waiting.extendleft(reversed(batch[n:]))
                return
            own = {i - first: by_position[i] for i in range(first, first + len(waiting.items)) if i in by_position}
            first += len(waiting.items)
            failed = [e for e in own.values() if e.get("code") != DUPLICATE_KEY]
            if waiting.done.done():
                continue
            if failed:
                error = failed[0]
                waiting.done.set_exception(OperationFailure(error.get("errmsg", "write error"), error.get("code")))
            else:
                waiting.done.set_result(set(own))


class GroupedFinds(_GroupCommit):
    """Lookups by `_id` of concurrent callers in one collection, as one `$in` query. The query
    starts after a caller asked, so it reads what that caller wrote before; every caller gets
    documents of its own (a second caller of the same `_id` gets a copy)."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        projection: Document | None = None,
        max_batch: int = MAX_IDS_PER_QUERY,
        tracer: trace.Tracer | None = None,
    ) -> None:
        super().__init__(collection, "find", max_batch, tracer)
        self._projection = projection

    async def get(self, doc_id: Any) -> Document | None:
        return (await self.get_many([doc_id])).get(doc_id)

    async def get_many(self, ids: Sequence[Any]) -> dict[Any, Document]:
        """The documents with these `_id`s that exist, by `_id`."""
        if not ids:
            return {}
        found: dict[Any, Document] = await self._submit(list(dict.fromkeys(ids)))
        return found

    async def _send(self, batch: list[_Waiting]) -> None:
        ids = list(dict.fromkeys(i for waiting in batch for i in waiting.items))
        found = await find_by_ids(self._collection, ids, self._projection)
        handed_out: set[Any] = set()
        for waiting in batch:
            own: dict[Any, Document] = {}
            for doc_id in waiting.items:
                if doc_id in found:
                    own[doc_id] = copy.deepcopy(found[doc_id]) if doc_id in handed_out else found[doc_id]
                    handed_out.add(doc_id)
            if not waiting.done.done():
                waiting.done.set_result(own)


class GroupedUpdates(_GroupCommit):
    """Single-document updates of concurrent callers on one collection, as one ordered `update`
    command (a statement per caller, in the order they came).

    Only for updates that are no-ops when applied twice: each statement's filter must exclude a
    document the update was applied to (an event id not yet in the array the update pushes it
    onto, say). An ordered command stops at its first failing statement, and FerretDB 1.x names
    that statement with a wrong index; so when a command fails or reports a write error, each of
    its statements is sent again alone, in order (as PyMongo's own `update_one`, with its retry of
    a write): every caller gets its own outcome, and what the command had applied finds nothing
    to do. A caller learns no counts (the command's are for all of its statements)."""

    def __init__(
        self, collection: AsyncCollection[Document], max_batch: int = 500, tracer: trace.Tracer | None = None
    ) -> None:
        super().__init__(collection, "update", max_batch, tracer)

    async def update_one(self, filter: Document, update: Document, upsert: bool = False) -> None:
        """Apply one update; raises DuplicateKeyError when its upsert met an existing `_id` (for
        these updates: applied before), or the error the store gave for it."""
        await self._submit([(filter, update, upsert)])

    async def _send(self, batch: list[_Waiting]) -> None:
        statements = [{"q": f, "u": u, "upsert": upsert} for waiting in batch for f, u, upsert in waiting.items]
        options: Document = {}
        if self._collection.write_concern.document:
            options["writeConcern"] = self._collection.write_concern.document
        try:
            reply = await self._collection.database.command(
                "update", self._collection.name, updates=statements, ordered=True, **options
            )
            applied = not reply.get("writeErrors") and not reply.get("writeConcernError")
        except (PyMongoError, InvalidDocument):  # one caller's statement cannot be sent: the others can
            applied = False
        for waiting in batch:
            if waiting.done.done():  # cancelled meanwhile
                continue
            if not applied:
                ((f, u, upsert),) = waiting.items
                try:
                    await self._collection.update_one(f, u, upsert=upsert)
                except Exception as exc:
                    waiting.done.set_exception(exc)
                    continue
            waiting.done.set_result(None)


class GroupedCalls:
    """The grouped inserts, lookups and updates of one database: one GroupedInserts and one
    GroupedUpdates per collection and one GroupedFinds per collection and projection, made when
    first used."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._inserts: dict[tuple[str, bool], GroupedInserts] = {}
        self._finds: dict[tuple[str, str], GroupedFinds] = {}
        self._updates: dict[str, GroupedUpdates] = {}

    def inserts(self, collection: str, ordered: bool = False) -> GroupedInserts:
        grouped = self._inserts.get((collection, ordered))
        if grouped is None:
            grouped = self._inserts[(collection, ordered)] = GroupedInserts(self._db[collection], ordered=ordered)
        return grouped

    def finds(self, collection: str, projection: Document | None = None) -> GroupedFinds:
        key = (collection, repr(sorted((projection or {}).items())))
        grouped = self._finds.get(key)
        if grouped is None:
            grouped = self._finds[key] = GroupedFinds(self._db[collection], projection)
        return grouped

    def updates(self, collection: str) -> GroupedUpdates:
        grouped = self._updates.get(collection)
        if grouped is None:
            grouped = self._updates[collection] = GroupedUpdates(self._db[collection])
        return grouped
