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

import logging
from dataclasses import dataclass

from opentelemetry import trace
from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.migrations import LEASE_S, PAUSE_S, Migration, Status, command
from services.plumbing.storage import Document
from services.scheduler.store import SEAT_STARTS, SchedulerStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.scheduler")

MIGRATION_ID = SEAT_STARTS
CHUNK = 500  # seats given their start together, and done between two checkpoints


@dataclass
class Counts:
    scanned: int = 0  # seats without a start read
    given: int = 0  # seats given their session's start
    never_stored: int = 0  # seats whose session was never stored (left without a start)


def describe(counts: Counts) -> str:
    return (
        f"{counts.scanned} seats without a start scanned, {counts.given} given their session's start,"
        f" {counts.never_stored} of sessions never stored"
    )


MIGRATION = Migration(
    MIGRATION_ID,
    Counts,
    describe,
    what="seat start backfill",
    tracer=tracer,
    span_name="scheduler seat start backfill",
    attributes="iop.migration",
    log=log,
)


async def backfill_seat_starts(
    db: AsyncDatabase[Document], owner: str, *, again: bool = False, chunk: int = CHUNK, pause_s: float = PAUSE_S
) -> tuple[Status, Counts]:
    """Run the migration for `owner` to completion, from where an earlier run stopped; what this run
    did. It does nothing when the migration completed already (unless `again`) or another process
    runs it."""
    store = SchedulerStore(db)

    async def give_chunk(part: list[str]) -> Counts:
        given, never_stored = await store.give_seats_their_start(part)
        return Counts(scanned=len(part), given=given, never_stored=never_stored)

    return await MIGRATION.run_in_chunks(
        db, owner, store.seats_without_start, give_chunk, again=again, chunk=chunk, pause_s=pause_s
    )


async def backfill_until_done(db: AsyncDatabase[Document], retry_s: float = LEASE_S) -> None:
    """The service's background run: the migration until it has completed, by this process or
    another (checked again every `retry_s` while another process holds it, or after a failure)."""
    await MIGRATION.run_until_done(lambda owner: backfill_seat_starts(db, owner), retry_s)


def main(argv: list[str] | None = None) -> int:
    return command(
        argv,
        service="scheduler",
        prog="python -m services.scheduler.seat_starts",
        description="Give every seat stored without its session's start that start (resumable, safe to run again).",
        again_help="a new pass over every seat, even after completion",
        run=lambda db, owner, again: backfill_seat_starts(db, owner, again=again),
    )


if __name__ == "__main__":
    raise SystemExit(main())
