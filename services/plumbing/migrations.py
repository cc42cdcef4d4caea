"""One-off data migrations that a service runs in the background after it starts, once per
database: a record in the `migrations` collection says how far one got (`after`: the last item done,
in `_id` order), its counts, when it completed, and which process holds it (`owner` until
`lease_until`, renewed while the run goes on: `Lease`). A run that stops midway is resumed from its
`after`; one process runs it at a time, and a replica whose holder died takes it over once the
lease has run out.

The record is updated by conditional updates, which the local FerretDB 1.x does not apply
atomically under concurrency (docs/crisis.md, *Storage*): two processes can then both hold a
migration for a while. Each migration's work is idempotent, so that costs work, never
correctness. Used by engagement's scrub of stored leave reasons and crisis's link of stored
sessions' care teams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from opentelemetry.trace import Tracer
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.plumbing.storage import Document
from services.plumbing.telemetry import current_span

MIGRATIONS_COLLECTION = "migrations"
Chunk = TypeVar("Chunk")


class Status(StrEnum):
    COMPLETED = "completed"  # by this run
    ALREADY_COMPLETED = "already completed"
    RUNNING_ELSEWHERE = "running elsewhere"  # another process holds it (or took it over)


class MigrationRecord:
    """A migration's document in `migrations` (`_id` `migration_id`): progress (`after`, the last
    item done in `_id` order), counts so far (the fields of `counts`, each from 0), `completed_at`,
    and the process running it (`owner` until `lease_until`, `lease_s` after each claim, renewal
    or checkpoint)."""

    def __init__(
        self, db: AsyncDatabase[Document], migration_id: str, counts: Mapping[str, int], lease_s: float
    ) -> None:
        self._records = db[MIGRATIONS_COLLECTION]
        self._id = migration_id
        self._counts = {name: 0 for name in counts}
        self._lease = timedelta(seconds=lease_s)

    def zero(self) -> dict[str, int]:
        """Every count of the migration, at 0."""
        return dict(self._counts)

    async def get(self) -> Document | None:
        return await self._records.find_one({"_id": self._id})

    async def claim(self, owner: str, again: bool = False) -> Document | None:
        """Take the migration for `owner` (free, its lease expired, or `owner`'s already): the
        record then, to resume after its `after`. None when it completed already (unless `again`:
        a new pass from the first item) or another process holds it."""
        now = datetime.now(UTC)
        start = {"after": None, **self._counts, "started_at": now, "completed_at": None}
        try:
            await self._records.insert_one({"_id": self._id, **start, "owner": None, "lease_until": now})
        except DuplicateKeyError:
            pass
        query: Document = {"_id": self._id, "$or": [{"lease_until": {"$lte": now}}, {"owner": owner}]}
        held = {"owner": owner, "lease_until": now + self._lease}
        if again:
            update = {"$set": {**start, **held}}
        else:
            query["completed_at"] = None
            update = {"$set": held}
        return await self._records.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)

    async def renew(self, owner: str) -> bool:
        """Extend `owner`'s lease; False when another process took the migration over (or it is
        complete: a renewal landing after the completion does not hold it a minute more)."""
        result = await self._records.update_one(
            {"_id": self._id, "owner": owner, "completed_at": None},
            {"$set": {"lease_until": datetime.now(UTC) + self._lease}},
        )
        return result.matched_count == 1

    async def checkpoint(self, owner: str, after: str, done: Mapping[str, int]) -> bool:
        """Record a chunk done (up to item `after`, adding `done` to the counts) and renew the lease;
        False when another process took the migration over."""
        result = await self._records.update_one(
            {"_id": self._id, "owner": owner},
            {"$set": {"after": after, "lease_until": datetime.now(UTC) + self._lease}, "$inc": dict(done)},
        )
        return result.matched_count == 1

    async def complete(self, owner: str) -> bool:
        now = datetime.now(UTC)
        result = await self._records.update_one(
            {"_id": self._id, "owner": owner}, {"$set": {"completed_at": now, "lease_until": now}}
        )
        return result.matched_count == 1


class Lease:
    """A run's hold on the migration, renewed every quarter of `lease_s` for as long as the run goes
    on, not only at its checkpoints: a scan of the ids before the first chunk reads every whole
    document on FerretDB (minutes for a large collection), and a chunk can wait on a slow store.
    Renewed only at checkpoints, the lease ran out during such a step; another replica then took the
    migration over and scanned as well, the first run stopped at its checkpoint, and so on. `lost`
    once another process holds it (a renewal that fails on the store is tried again at the next)."""

    def __init__(self, record: MigrationRecord, owner: str, lease_s: float) -> None:
        self._record = record
        self._owner = owner
        self._lease_s = lease_s
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lease:
        self._task = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 4)
            try:
                if not await self._record.renew(self._owner):
                    self.lost = True
                    return
            except Exception:  # the store: the run's own next write fails too, and is logged
                continue


async def run_in_chunks(
    record: MigrationRecord,
    owner: str,
    chunks: Callable[[str | None], AsyncIterator[Chunk]],
    apply: Callable[[Chunk], Awaitable[tuple[str, Mapping[str, int]]]],
    *,
    again: bool,
    lease_s: float,
    pause_s: float,
    tracer: Tracer,
    span_name: str,
    attributes: str,
    log: logging.Logger,
    what: str,
    describe: Callable[[dict[str, int]], str],
) -> tuple[Status, dict[str, int]]:
    """Run the migration of `record` for `owner` to completion, from where an earlier run stopped:
    `chunks(after)` yields the chunks left, `apply(chunk)` does one and answers the last item it did
    (`_id` order) and its counts, checkpointed after each, with `pause_s` between chunks (the
    service's own commands go in between). What this run did, as counts; nothing when the migration
    completed already (unless `again`) or another process runs it. The run is one span
    (`span_name`, its counts and status as `<attributes>.<count>` and `<attributes>.status`) and one
    line in `log`: `<what> completed: <describe(
    counts)>` (or `stopped (another process took it over)`). Counts only: never the data."""
    claimed = await record.claim(owner, again)
    if claimed is None:
        completed = (await record.get() or {}).get("completed_at") is not None
        return (Status.ALREADY_COMPLETED if completed else Status.RUNNING_ELSEWHERE), record.zero()
    counts = record.zero()
    with current_span(tracer, span_name) as span:
        status = Status.COMPLETED
        async with Lease(record, owner, lease_s) as lease:
            async for chunk in chunks(claimed["after"]):
                if lease.lost:
                    status = Status.RUNNING_ELSEWHERE
                    break
                after, done = await apply(chunk)
                if not await record.checkpoint(owner, after, done):
                    status = Status.RUNNING_ELSEWHERE
                    break
                for name, value in done.items():
                    counts[name] += value
                await asyncio.sleep(pause_s)
        if status is Status.COMPLETED and not await record.complete(owner):
            status = Status.RUNNING_ELSEWHERE
        span.set_attributes({f"{attributes}.{name}": value for name, value in counts.items()})
        span.set_attribute(f"{attributes}.status", str(status))
        stopped = status is Status.RUNNING_ELSEWHERE
        log.info(
            "%s %s: %s", what, "stopped (another process took it over)" if stopped else "completed", describe(counts)
        )
    return status, counts


async def run_until_done(
    run: Callable[[str], Awaitable[Status]], log: logging.Logger, what: str, retry_s: float
) -> None:
    """A service's background run of a migration (`run(owner)`) until it has completed, by this
    process or another: checked again every `retry_s` while another process holds it, or after a
    failure, logged as `<what> failed (<error type>)` (the type only: a message could quote data)."""
    owner = uuid.uuid4().hex
    while True:
        try:
            if await run(owner) is not Status.RUNNING_ELSEWHERE:
                return
        except Exception as exc:  # the store, most likely
            log.warning("%s failed (%s); retrying in %.0f s", what, type(exc).__name__, retry_s)
        await asyncio.sleep(retry_s)
