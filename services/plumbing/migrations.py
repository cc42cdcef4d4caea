"""One-off data migrations that a service runs in the background after it starts, once per
database: a record in the `migrations` collection says how far one got (`after`: the last item done,
in `_id` order), its counts, when it completed, and which process holds it (`owner` until
`lease_until`, renewed while the run goes on: `Lease`). A run that stops midway is resumed from its
`after`; one process runs it at a time, and a replica whose holder died takes it over once the
lease has run out.

The record is updated by conditional updates, which the local FerretDB 1.x does not apply
atomically under concurrency (docs/crisis.md, *Storage*): two processes can then both hold a
migration for a while. Each migration's work is idempotent, so that costs work, never
correctness.

A migration's module states only what is its own: its record's id, its counts and their wording in
its log line, its span, which items it reads and what it does to a chunk of them (a `Migration`,
run by `run_in_chunks` and, in its service, `run_until_done`), and its command (`command`: run or
resume, `--again`, and `--check` when it has a check). Used by engagement's scrub of stored leave
reasons, crisis's link of stored sessions' care teams and the scheduler's seat start backfill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, TypeVar

from opentelemetry.trace import Tracer
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.plumbing.logs import configure_logging
from services.plumbing.settings import get_settings
from services.plumbing.storage import Document, mongo_client, service_database
from services.plumbing.telemetry import current_span

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MIGRATIONS_COLLECTION = "migrations"
LEASE_S = 60.0  # a run's hold on a migration, renewed every LEASE_S / 4 while it runs (`Lease`)
PAUSE_S = 0.05  # between chunks: the service's own commands go in between
CountsT = TypeVar("CountsT", bound="DataclassInstance")


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


def in_chunks(ids: list[str], chunk: int) -> Iterator[list[str]]:
    """`ids` in order, `chunk` at a time (the last part shorter)."""
    for start in range(0, len(ids), chunk):
        yield ids[start : start + chunk]


@dataclass(frozen=True)
class Migration(Generic[CountsT]):
    """One migration as the runner knows it; its work (which items, what is done to them) is the
    caller's. Its record in `migrations` is `migration_id`; a run counts what it does in `counts` (a
    dataclass of ints, each 0 by default: the record's counts are its fields). A run is one span
    (`span_name` of `tracer`, its counts and status as `<attributes>.<count>` and
    `<attributes>.status`) and one line in `log`: `<what> completed: <describe(counts)>` (or
    `stopped (another process took it over)`). Counts only: never the data."""

    migration_id: str
    counts: type[CountsT]
    describe: Callable[[CountsT], str]
    what: str  # in its log lines
    tracer: Tracer
    span_name: str
    attributes: str  # the prefix of its span's attributes
    log: logging.Logger

    def record(self, db: AsyncDatabase[Document]) -> MigrationRecord:
        return MigrationRecord(db, self.migration_id, asdict(self.counts()), LEASE_S)

    async def run_in_chunks(
        self,
        db: AsyncDatabase[Document],
        owner: str,
        ids: Callable[[str | None], Awaitable[list[str]]],
        apply: Callable[[list[str]], Awaitable[CountsT]],
        *,
        again: bool,
        chunk: int,
        pause_s: float,
    ) -> tuple[Status, CountsT]:
        """Run the migration for `owner` to completion, from where an earlier run stopped: `ids(after)`
        reads the ids of the items left (after `after` in `_id` order; all of them when None), and
        `apply(part)` does them `chunk` at a time and answers its counts, checkpointed after each
        part (`after`: its last id), with `pause_s` between parts (the service's own commands go in
        between). What this run did; nothing when the migration completed already (unless `again`)
        or another process runs it."""
        record = self.record(db)
        claimed = await record.claim(owner, again)
        if claimed is None:
            completed = (await record.get() or {}).get("completed_at") is not None
            return (Status.ALREADY_COMPLETED if completed else Status.RUNNING_ELSEWHERE), self.counts()
        totals = asdict(self.counts())
        with current_span(self.tracer, self.span_name) as span:
            status = Status.COMPLETED
            async with Lease(record, owner, LEASE_S) as lease:
                for part in in_chunks(await ids(claimed["after"]), chunk):
                    if lease.lost:
                        status = Status.RUNNING_ELSEWHERE
                        break
                    done = asdict(await apply(part))
                    if not await record.checkpoint(owner, part[-1], done):
                        status = Status.RUNNING_ELSEWHERE
                        break
                    for name, value in done.items():
                        totals[name] += value
                    await asyncio.sleep(pause_s)
            if status is Status.COMPLETED and not await record.complete(owner):
                status = Status.RUNNING_ELSEWHERE
            span.set_attributes({f"{self.attributes}.{name}": value for name, value in totals.items()})
            span.set_attribute(f"{self.attributes}.status", str(status))
            stopped = status is Status.RUNNING_ELSEWHERE
            counts = self.counts(**totals)
            self.log.info(
                "%s %s: %s",
                self.what,
                "stopped (another process took it over)" if stopped else "completed",
                self.describe(counts),
            )
        return status, counts

    async def run_until_done(
        self, run: Callable[[str], Awaitable[tuple[Status, CountsT]]], retry_s: float = LEASE_S
    ) -> None:
        """A service's background run of the migration (`run(owner)`) until it has completed, by this
        process or another: checked again every `retry_s` while another process holds it, or after a
        failure, logged as `<what> failed (<error type>)` (the type only: a message could quote data)."""
        owner = uuid.uuid4().hex
        while True:
            try:
                if (await run(owner))[0] is not Status.RUNNING_ELSEWHERE:
                    return
            except Exception as exc:  # the store, most likely
                self.log.warning("%s failed (%s); retrying in %.0f s", self.what, type(exc).__name__, retry_s)
            await asyncio.sleep(retry_s)


# A command's run of its migration: (db, owner, again) -> its status and counts.
Run = Callable[[AsyncDatabase[Document], str, bool], Awaitable[tuple[Status, "DataclassInstance"]]]
# A command's check: db -> the report to print, and whether nothing is left to do.
Check = Callable[[AsyncDatabase[Document]], Awaitable[tuple[Document, bool]]]


def command(
    argv: list[str] | None,
    *,
    service: str,
    prog: str,
    description: str,
    again_help: str,
    run: Run,
    check: Check | None = None,
    check_help: str = "",
) -> int:
    """A migration's command (`prog`) on `service`'s database: runs it, or resumes it (`run(db,
    owner, again)`, for an owner of its own), and prints its status and counts as JSON, exit 2 when
    another process runs it (else 0); `--again` a new pass. With `check`, `--check` instead prints
    the report `check(db)` answers (reads only), exit 0 when it says nothing is left (else 1)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.set_defaults(check=False)
    mode = parser.add_mutually_exclusive_group()
    if check is not None:
        mode.add_argument("--check", action="store_true", help=check_help)
    mode.add_argument("--again", action="store_true", help=again_help)
    args = parser.parse_args(argv)
    configure_logging(service)
    return asyncio.run(_command(service, run, check if args.check else None, args.again))


async def _command(service: str, run: Run, check: Check | None, again: bool) -> int:
    settings = get_settings()
    mongo = mongo_client(settings)
    db = service_database(mongo, settings, service)
    try:
        if check is not None:
            report, nothing_left = await check(db)
            print(json.dumps(report, default=str, indent=2))
            return 0 if nothing_left else 1
        status, counts = await run(db, uuid.uuid4().hex, again)
        print(json.dumps({"status": str(status), **asdict(counts)}))
        return 2 if status is Status.RUNNING_ELSEWHERE else 0
    finally:
        await mongo.close()
