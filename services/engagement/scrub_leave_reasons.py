"""One-off migration: the leave reasons the attendance ledgers stored before 162bf8e (2026-12-07), as
the video platform worded them, rewritten to the form the service keeps since
(`domain.kept_leave_reason`), and the ConnectionDropped events their outboxes hold with such a
reason rewritten to the reason published since ("connection_lost", nothing else changed). Zoom's
text can hold the participant's display name ("$name got disconnected from the meeting."), which is
PHI; ledgers of ended sessions are never written again, so nothing else would remove it.

    python -m services.engagement.scrub_leave_reasons            # run it (or resume it); once done, does nothing
    python -m services.engagement.scrub_leave_reasons --check    # where it is, and how many raw reasons remain
    python -m services.engagement.scrub_leave_reasons --again    # a new pass over every ledger

The engagement service also runs it at start, in the background (`scrub_until_done`), until it has
completed once for its database. Its record in `migrations` (`_id` "scrub_leave_reasons_v2") says how
far it got (`after`: ledgers are scanned in `_id` order), what it changed and when it completed; a
run that stops midway is resumed from there. One process runs it at a time: the record's `owner`
holds it until `lease_until`, renewed every quarter of the lease while the run goes on
(`services.plumbing.migrations`, shared with the crisis link of stored sessions).
The first version (record "scrub_leave_reasons") rewrote the reasons only; this one has a record of
its own, so it runs on a database where that one completed (finding the reasons in kept form, it
rewrites the outboxes' events), and a replica still on the first version neither resumes nor
completes it.

Each ledger is rewritten in one conditional update of the changed reasons only (see
`AttendanceStore.rewrite_reasons`): a signal the ledger consumer appends meanwhile stays, and a
reason that changed since it was read is read again; the same for the outbox's events, each
rewritten only if its `data` is still the bytes read (`AttendanceStore.rewrite_events`). Rewriting
a kept reason changes nothing (`kept_leave_reason` is idempotent), and the judgments on a reason
(`is_drop`, `is_normal_leave`, `ends_dip`) are the same on its kept form. Logs and spans carry counts only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry import trace
from pymongo.asynchronous.database import AsyncDatabase

from iop.events.v1 import engagement_pb2
from services.engagement.domain import kept_leave_reason
from services.engagement.rules import Rules, load_rules
from services.engagement.store import AttendanceStore, StoredEvent, StoredReason
from services.plumbing.migrations import LEASE_S, PAUSE_S, Migration, Status, command, in_chunks
from services.plumbing.storage import Document

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.engagement")

MIGRATION_ID = "scrub_leave_reasons_v2"  # with the outboxes' ConnectionDropped
EARLIER_MIGRATION_IDS = ("scrub_leave_reasons",)  # the reasons only: completed on some databases, left as a record
KEPT_DROP_REASON = "connection_lost"  # ConnectionDropped.reason as published since 162bf8e (handlers.dropped_event)
SOURCE = "/iop/engagement"
CHUNK = 100  # ledgers read together, and done between two checkpoints
MAX_ATTEMPTS = 5  # reads of a ledger whose reasons keep changing under the rewrite


@dataclass
class Counts:
    scanned: int = 0  # ledgers read
    ledgers: int = 0  # ledgers with a reason rewritten (or, for --check, still raw)
    reasons: int = 0  # reasons rewritten (or still raw)
    events: int = 0  # outbox ConnectionDropped events rewritten (or still with a raw reason)


def describe(counts: Counts) -> str:
    return (
        f"{counts.scanned} ledgers scanned, {counts.ledgers} rewritten, {counts.reasons} reasons,"
        f" {counts.events} outbox events"
    )


MIGRATION = Migration(
    MIGRATION_ID,
    Counts,
    describe,
    what="scrub of stored leave reasons",
    tracer=tracer,
    span_name="engagement scrub leave reasons",
    attributes="iop.scrub",
    log=log,
)


class LedgerKeptChanging(Exception):
    """A ledger's reasons changed under every attempt to rewrite them (another run of the migration)."""


def raw_reasons(reasons: list[StoredReason], rules: Rules) -> dict[StoredReason, str]:
    """The stored reasons that are not in kept form, each with its kept form."""
    return {r: kept for r in reasons if (kept := kept_leave_reason(r.reason, rules)) != r.reason}


async def scrub_ledger(store: AttendanceStore, session_id: str, reasons: list[StoredReason], rules: Rules) -> int:
    """Rewrite the ledger's raw reasons (`reasons`: as read) to kept form; the number rewritten.
    When one changed since it was read, the ledger is read again and the rest rewritten."""
    for _ in range(MAX_ATTEMPTS):
        rewrites = raw_reasons(reasons, rules)
        if not rewrites or await store.rewrite_reasons(session_id, rewrites):
            return len(rewrites)
        reasons = (await store.leave_reasons([session_id])).get(session_id, [])
    raise LedgerKeptChanging(f"the leave reasons of ledger {session_id} changed under {MAX_ATTEMPTS} rewrites")


def raw_events(events: list[StoredEvent]) -> dict[StoredEvent, bytes]:
    """The stored ConnectionDropped events whose reason is not KEPT_DROP_REASON, each with its data
    re-encoded with that reason (every other field as it was)."""
    rewrites = {}
    for stored in events:
        event = engagement_pb2.ConnectionDropped.FromString(stored.data)
        if event.reason != KEPT_DROP_REASON:
            event.reason = KEPT_DROP_REASON
            rewrites[stored] = event.SerializeToString()
    return rewrites


async def scrub_outbox(store: AttendanceStore, session_id: str, events: list[StoredEvent]) -> int:
    """Rewrite the raw reasons of the ledger's outbox ConnectionDropped events (`events`: as read);
    the number rewritten. When one changed since it was read, the ledger is read again."""
    for _ in range(MAX_ATTEMPTS):
        rewrites = raw_events(events)
        if not rewrites or await store.rewrite_events(session_id, rewrites):
            return len(rewrites)
        events = (await store.dropped_events([session_id])).get(session_id, [])
    raise LedgerKeptChanging(f"the outbox events of ledger {session_id} changed under {MAX_ATTEMPTS} rewrites")


async def scrub(
    db: AsyncDatabase[Document],
    rules: Rules,
    owner: str,
    *,
    again: bool = False,
    chunk: int = CHUNK,
    pause_s: float = PAUSE_S,
) -> tuple[Status, Counts]:
    """Run the migration for `owner` to completion, from where an earlier run stopped; what this
    run did. It does nothing when the migration completed already (unless `again`) or another
    process runs it."""
    store = AttendanceStore(db, SOURCE)

    async def scrub_chunk(part: list[str]) -> Counts:
        reasons, events = await store.leave_reasons_and_dropped_events(part)
        done = Counts(scanned=len(part))
        for session_id in part:
            rewritten = await scrub_ledger(store, session_id, reasons.get(session_id, []), rules)
            rewritten_events = await scrub_outbox(store, session_id, events.get(session_id, []))
            done.ledgers += rewritten + rewritten_events > 0
            done.reasons += rewritten
            done.events += rewritten_events
        return done

    return await MIGRATION.run_in_chunks(
        db, owner, store.ledger_ids, scrub_chunk, again=again, chunk=chunk, pause_s=pause_s
    )


async def scrub_until_done(db: AsyncDatabase[Document], rules: Rules, retry_s: float = LEASE_S) -> None:
    """The service's background run: the migration until it has completed, by this process or
    another (checked again every `retry_s` while another process holds it, or after a failure)."""
    await MIGRATION.run_until_done(lambda owner: scrub(db, rules, owner), retry_s)


async def check(db: AsyncDatabase[Document], rules: Rules, chunk: int = CHUNK) -> Document:
    """The migration's record and the ledgers, reasons and outbox events still not in kept form
    (reads only)."""
    record = await MIGRATION.record(db).get()
    store = AttendanceStore(db, SOURCE)
    remaining = Counts()
    for part in in_chunks(await store.ledger_ids(), chunk):
        reasons, events = await store.leave_reasons_and_dropped_events(part)
        remaining.scanned += len(part)
        for session_id in part:
            raw = len(raw_reasons(reasons.get(session_id, []), rules))
            raw_in_outbox = len(raw_events(events.get(session_id, [])))
            remaining.ledgers += raw + raw_in_outbox > 0
            remaining.reasons += raw
            remaining.events += raw_in_outbox
    return {
        "record": None if record is None else {k: v for k, v in record.items() if k != "_id"},
        "ledgers_scanned": remaining.scanned,
        "raw_ledgers": remaining.ledgers,
        "raw_reasons": remaining.reasons,
        "raw_events": remaining.events,
    }


async def check_nothing_left(db: AsyncDatabase[Document]) -> tuple[Document, bool]:
    """`check`'s report, and whether the migration has completed with no raw reason or event left."""
    report = await check(db, load_rules())
    done = report["record"] is not None and report["record"]["completed_at"] is not None
    return report, done and report["raw_reasons"] == report["raw_events"] == 0


def main(argv: list[str] | None = None) -> int:
    return command(
        argv,
        service="engagement",
        prog="python -m services.engagement.scrub_leave_reasons",
        description="Rewrite the leave reasons stored in attendance ledgers (signals and outbox ConnectionDropped)"
        " before 162bf8e to kept form.",
        again_help="a new pass over every ledger, even after completion",
        run=lambda db, owner, again: scrub(db, load_rules(), owner, again=again),
        check=check_nothing_left,
        check_help="print the record and the raw reasons left; exit 1 unless none",
    )


if __name__ == "__main__":
    raise SystemExit(main())
