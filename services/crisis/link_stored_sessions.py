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

import logging
from dataclasses import dataclass

from opentelemetry import trace
from pymongo.asynchronous.database import AsyncDatabase

from services.crisis.store import CrisisStore
from services.plumbing.migrations import LEASE_S, PAUSE_S, Migration, Status, command
from services.plumbing.storage import Document

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.crisis")

MIGRATION_ID = "care_team_links_v2"
CHUNK = 100  # sessions linked together, and done between two checkpoints


@dataclass
class Counts:
    scanned: int = 0  # sessions read
    linked: int = 0  # sessions not cancelled, their care team linked
    unlinked: int = 0  # cancelled sessions whose links were removed


def describe(counts: Counts) -> str:
    return f"{counts.scanned} sessions scanned, {counts.linked} linked, {counts.unlinked} unlinked"


MIGRATION = Migration(
    MIGRATION_ID,
    Counts,
    describe,
    what="care team link of stored sessions",
    tracer=tracer,
    span_name="crisis link stored sessions",
    attributes="iop.migration",
    log=log,
)


async def link_stored_sessions(
    db: AsyncDatabase[Document], owner: str, *, again: bool = False, chunk: int = CHUNK, pause_s: float = PAUSE_S
) -> tuple[Status, Counts]:
    """Run the migration for `owner` to completion, from where an earlier run stopped; what this run
    did. It does nothing when the migration completed already (unless `again`) or another process
    runs it."""
    store = CrisisStore(db)

    async def link_chunk(part: list[str]) -> Counts:
        linked, unlinked = await store.link_stored_sessions(part)
        return Counts(scanned=len(part), linked=linked, unlinked=unlinked)

    return await MIGRATION.run_in_chunks(
        db, owner, store.session_ids, link_chunk, again=again, chunk=chunk, pause_s=pause_s
    )


async def link_until_done(db: AsyncDatabase[Document], retry_s: float = LEASE_S) -> None:
    """The service's background run: the migration until it has completed, by this process or
    another (checked again every `retry_s` while another process holds it, or after a failure)."""
    await MIGRATION.run_until_done(lambda owner: link_stored_sessions(db, owner), retry_s)


def main(argv: list[str] | None = None) -> int:
    return command(
        argv,
        service="crisis",
        prog="python -m services.crisis.link_stored_sessions",
        description="Link the care team of the sessions the crisis service stored without it.",
        again_help="a new pass over every session, even after completion",
        run=lambda db, owner, again: link_stored_sessions(db, owner, again=again),
    )


if __name__ == "__main__":
    raise SystemExit(main())
