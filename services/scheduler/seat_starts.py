"""One-off migration: the start of its session on every seat stored before 2026-12-08 (twelfth
session), by which a client's seats are read since (SchedulerStore.seats_of_client).

    python -m services.scheduler.seat_starts            # run it (or resume it); once done, does nothing
    python -m services.scheduler.seat_starts --again    # a new pass (after a rolling deploy: docs/runbook.md)

The scheduler runs it at start, in the background (`backfill_until_done`), until it has completed
once for its database; until then a client's schedule reads every seat of the client, as before
(SchedulerStore.seat_starts_backfilled). Its record in `migrations` (`_id` SEAT_STARTS) says how far
it got (`after`: seats are taken in `_id` order, CHUNK at a time, with a pause between chunks so the
service's own commands go in between), what it did and when it completed; a run that stops midway
resumes from there. One process runs it at a time: the record's `owner` holds it until
`lease_until`, renewed while the run goes on (`services.plumbing.migrations`, shared with the
engagement scrub and the crisis link of stored sessions). A chunk is four commands whatever its
size: the seats and their sessions read by `_id`, one update command (a statement per session, each
conditional on the seat still having no start), the checkpoint; a chunk done twice (a run taken
over, FerretDB's non-atomic conditional updates) changes nothing more. The first version (record
"seat_starts", 2026-12-08) ran in every replica at once, from the first seat again after a restart,
and sent one update per seat. Logs and spans carry counts only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from opentelemetry import trace
from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.logs import configure_logging
from services.plumbing.migrations import MigrationRecord, Status, run_in_chunks, run_until_done
from services.plumbing.settings import get_settings
from services.plumbing.storage import Document, mongo_client, service_database
from services.scheduler.store import SEAT_STARTS, SchedulerStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.scheduler")

MIGRATION_ID = SEAT_STARTS
CHUNK = 500  # seats given their start together, and done between two checkpoints
PAUSE_S = 0.05  # between chunks: the service's own commands go in between
LEASE_S = 60.0  # a run's hold on the migration, renewed every LEASE_S / 4 while it runs
WHAT = "seat start backfill"  # in its log lines


@dataclass
class Counts:
    scanned: int = 0  # seats without a start read
    given: int = 0  # seats given their session's start
    never_stored: int = 0  # seats whose session was never stored (left without a start)


async def backfill_seat_starts(
    db: AsyncDatabase[Document], owner: str, *, again: bool = False, chunk: int = CHUNK, pause_s: float = PAUSE_S
) -> tuple[Status, Counts]:
    """Run the migration for `owner` to completion, from where an earlier run stopped; what this run
    did. It does nothing when the migration completed already (unless `again`) or another process
    runs it."""
    store = SchedulerStore(db)

    async def chunks(after: str | None) -> AsyncIterator[list[str]]:
        ids = await store.seats_without_start(after)
        for start in range(0, len(ids), chunk):
            yield ids[start : start + chunk]

    async def give_chunk(part: list[str]) -> tuple[str, dict[str, int]]:
        given, never_stored = await store.give_seats_their_start(part)
        return part[-1], asdict(Counts(scanned=len(part), given=given, never_stored=never_stored))

    status, done = await run_in_chunks(
        MigrationRecord(db, MIGRATION_ID, asdict(Counts()), LEASE_S),
        owner,
        chunks,
        give_chunk,
        again=again,
        lease_s=LEASE_S,
        pause_s=pause_s,
        tracer=tracer,
        span_name="scheduler seat start backfill",
        attributes="iop.migration",
        log=log,
        what=WHAT,
        describe=describe,
    )
    return status, Counts(**done)


def describe(counts: dict[str, int]) -> str:
    return (
        f"{counts['scanned']} seats without a start scanned, {counts['given']} given their session's start,"
        f" {counts['never_stored']} of sessions never stored"
    )


async def backfill_until_done(db: AsyncDatabase[Document], retry_s: float = LEASE_S) -> None:
    """The service's background run: the migration until it has completed, by this process or
    another (checked again every `retry_s` while another process holds it, or after a failure)."""

    async def run(owner: str) -> Status:
        return (await backfill_seat_starts(db, owner))[0]

    await run_until_done(run, log, WHAT, retry_s)


async def _command(again: bool) -> int:
    settings = get_settings()
    mongo = mongo_client(settings)
    db = service_database(mongo, settings, "scheduler")
    try:
        status, counts = await backfill_seat_starts(db, uuid.uuid4().hex, again=again)
        print(json.dumps({"status": str(status), **asdict(counts)}))
        return 2 if status is Status.RUNNING_ELSEWHERE else 0
    finally:
        await mongo.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.scheduler.seat_starts",
        description="Give every seat stored without its session's start that start (resumable, safe to run again).",
    )
    parser.add_argument("--again", action="store_true", help="a new pass over every seat, even after completion")
    args = parser.parse_args(argv)
    configure_logging("scheduler")
    return asyncio.run(_command(args.again))


if __name__ == "__main__":
    raise SystemExit(main())
