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
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from opentelemetry import trace
from pymongo.asynchronous.database import AsyncDatabase

from services.crisis.store import CrisisStore
from services.plumbing.logs import configure_logging
from services.plumbing.migrations import MigrationRecord, Status, run_in_chunks, run_until_done
from services.plumbing.settings import get_settings
from services.plumbing.storage import Document, mongo_client, service_database

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.crisis")

MIGRATION_ID = "care_team_links_v2"
CHUNK = 100  # sessions linked together, and done between two checkpoints
PAUSE_S = 0.05  # between chunks: the consumers' commands go in between
LEASE_S = 60.0  # a run's hold on the migration, renewed every LEASE_S / 4 while it runs
WHAT = "care team link of stored sessions"  # in its log lines


@dataclass
class Counts:
    scanned: int = 0  # sessions read
    linked: int = 0  # sessions not cancelled, their care team linked
    unlinked: int = 0  # cancelled sessions whose links were removed


async def link_stored_sessions(
    db: AsyncDatabase[Document], owner: str, *, again: bool = False, chunk: int = CHUNK, pause_s: float = PAUSE_S
) -> tuple[Status, Counts]:
    """Run the migration for `owner` to completion, from where an earlier run stopped; what this run
    did. It does nothing when the migration completed already (unless `again`) or another process
    runs it."""
    store = CrisisStore(db)

    async def chunks(after: str | None) -> AsyncIterator[list[str]]:
        ids = await store.session_ids(after)
        for start in range(0, len(ids), chunk):
            yield ids[start : start + chunk]

    async def link_chunk(part: list[str]) -> tuple[str, dict[str, int]]:
        linked, unlinked = await store.link_stored_sessions(part)
        return part[-1], asdict(Counts(scanned=len(part), linked=linked, unlinked=unlinked))

    status, done = await run_in_chunks(
        MigrationRecord(db, MIGRATION_ID, asdict(Counts()), LEASE_S),
        owner,
        chunks,
        link_chunk,
        again=again,
        lease_s=LEASE_S,
        pause_s=pause_s,
        tracer=tracer,
        span_name="crisis link stored sessions",
        attributes="iop.migration",
        log=log,
        what=WHAT,
        describe=describe,
    )
    return status, Counts(**done)


def describe(counts: dict[str, int]) -> str:
    return f"{counts['scanned']} sessions scanned, {counts['linked']} linked, {counts['unlinked']} unlinked"


async def link_until_done(db: AsyncDatabase[Document], retry_s: float = LEASE_S) -> None:
    """The service's background run: the migration until it has completed, by this process or
    another (checked again every `retry_s` while another process holds it, or after a failure)."""

    async def run(owner: str) -> Status:
        return (await link_stored_sessions(db, owner))[0]

    await run_until_done(run, log, WHAT, retry_s)


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
