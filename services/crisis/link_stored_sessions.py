"""One-off migration: the care team (`care_team`, `care_team_links`: docs/crisis.md, *Storage*) of
the sessions the crisis service stored before it kept one (2026-12-08), or that a replica of such a
version applied during a rolling deploy: each session not cancelled links its clinician (and its
lead and co-facilitators, when stored) with its clients; a cancelled session's links go.

    python -m services.crisis.link_stored_sessions            # run it (or resume it); once done, does nothing
    python -m services.crisis.link_stored_sessions --again    # a new pass over every session

The crisis service also runs it at start, in the background (`link_until_done`), until it has
completed once for its database. Its record in `migrations` (`_id` "care_team_links_v2") says how far
it got (`after`: sessions are taken in `_id` order, CHUNK at a time, with a pause between chunks so
the consumers' commands go in between), what it did and when it completed; a run that stops midway
(a restart, a deploy) resumes from there. One process runs it at a time: the record's `owner` holds
it until `lease_until`, renewed while the run goes on (`services.plumbing.migrations`). Linking is
unique inserts and unlinking deletes, so a chunk done twice (a run taken over, FerretDB's
non-atomic conditional updates) changes nothing more. Until 2026-12-08 (twelfth session) every
instance scanned and linked every session at every start until one of them finished (no record of
progress: a restart began again from the first session), one session at a time (three commands
each), and left a record ("care_team_from_stored_sessions") this version keeps as history.
Logs and spans carry counts only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from enum import StrEnum

from opentelemetry import trace
from pymongo.asynchronous.database import AsyncDatabase

from services.crisis.store import CrisisStore
from services.plumbing.logs import configure_logging
from services.plumbing.migrations import Lease, MigrationRecord
from services.plumbing.settings import get_settings
from services.plumbing.storage import Document, mongo_client, service_database
from services.plumbing.telemetry import current_span

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.crisis")

MIGRATION_ID = "care_team_links_v2"
CHUNK = 100  # sessions linked together, and done between two checkpoints
PAUSE_S = 0.05  # between chunks: the consumers' commands go in between
LEASE_S = 60.0  # a run's hold on the migration, renewed every LEASE_S / 4 while it runs


class Status(StrEnum):
    COMPLETED = "completed"  # by this run
    ALREADY_COMPLETED = "already completed"
    RUNNING_ELSEWHERE = "running elsewhere"  # another process holds it (or took it over)


@dataclass
class Counts:
    scanned: int = 0  # sessions read
    linked: int = 0  # sessions not cancelled, their care team linked
    unlinked: int = 0  # cancelled sessions whose links were removed

    def add(self, other: Counts) -> None:
        self.scanned += other.scanned
        self.linked += other.linked
        self.unlinked += other.unlinked


def _record(db: AsyncDatabase[Document]) -> MigrationRecord:
    return MigrationRecord(db, MIGRATION_ID, asdict(Counts()), LEASE_S)


async def link_stored_sessions(
    db: AsyncDatabase[Document], owner: str, *, again: bool = False, chunk: int = CHUNK, pause_s: float = PAUSE_S
) -> tuple[Status, Counts]:
    """Run the migration for `owner` to completion, from where an earlier run stopped; what this run
    did. It does nothing when the migration completed already (unless `again`) or another process
    runs it."""
    record = _record(db)
    claimed = await record.claim(owner, again)
    if claimed is None:
        completed = (await record.get() or {}).get("completed_at") is not None
        return (Status.ALREADY_COMPLETED if completed else Status.RUNNING_ELSEWHERE), Counts()
    store = CrisisStore(db)
    counts = Counts()
    with current_span(tracer, "crisis link stored sessions") as span:
        status = Status.COMPLETED
        async with Lease(record, owner, LEASE_S) as lease:
            ids = await store.session_ids(claimed["after"])
            for start in range(0, len(ids), chunk):
                if lease.lost:
                    status = Status.RUNNING_ELSEWHERE
                    break
                part = ids[start : start + chunk]
                linked, unlinked = await store.link_stored_sessions(part)
                done = Counts(scanned=len(part), linked=linked, unlinked=unlinked)
                if not await record.checkpoint(owner, part[-1], asdict(done)):
                    status = Status.RUNNING_ELSEWHERE
                    break
                counts.add(done)
                await asyncio.sleep(pause_s)
        if status is Status.COMPLETED and not await record.complete(owner):
            status = Status.RUNNING_ELSEWHERE
        span.set_attributes({f"iop.migration.{name}": value for name, value in asdict(counts).items()})
        span.set_attribute("iop.migration.status", str(status))
        log.info(
            "care team link of stored sessions %s: %d sessions scanned, %d linked, %d unlinked",
            "stopped (another process took it over)" if status is Status.RUNNING_ELSEWHERE else "completed",
            counts.scanned,
            counts.linked,
            counts.unlinked,
        )
    return status, counts


async def link_until_done(db: AsyncDatabase[Document], retry_s: float = LEASE_S) -> None:
    """The service's background run: the migration until it has completed, by this process or
    another (checked again every `retry_s` while another process holds it, or after a failure)."""
    owner = uuid.uuid4().hex
    while True:
        try:
            status, _ = await link_stored_sessions(db, owner)
            if status is not Status.RUNNING_ELSEWHERE:
                return
        except Exception as exc:  # the store, most likely
            log.warning(
                "care team link of stored sessions failed (%s); retrying in %.0f s", type(exc).__name__, retry_s
            )
        await asyncio.sleep(retry_s)


async def _command(again: bool) -> int:
    settings = get_settings()
    mongo = mongo_client(settings)
    db = service_database(mongo, settings, "crisis")
    try:
        status, counts = await link_stored_sessions(db, uuid.uuid4().hex, again=again)
        print(json.dumps({"status": str(status), **asdict(counts)}))
        return 2 if status is Status.RUNNING_ELSEWHERE else 0
    finally:
        await mongo.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.crisis.link_stored_sessions",
        description="Link the care team of the sessions the crisis service stored without it.",
    )
    parser.add_argument("--again", action="store_true", help="a new pass over every session, even after completion")
    args = parser.parse_args(argv)
    configure_logging("crisis")
    return asyncio.run(_command(args.again))


if __name__ == "__main__":
    raise SystemExit(main())
