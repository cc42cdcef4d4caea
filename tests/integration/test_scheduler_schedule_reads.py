"""What a client's schedule reads, against the real store: the seats of the sessions in its range
(the seat carries its session's start), not every seat the client ever had. Seats stored before
they carried it are found all the same, before the backfill that gives them their start and after."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.plumbing.migrations import MIGRATIONS_COLLECTION, Status
from services.plumbing.settings import Settings
from services.plumbing.storage import Document
from services.scheduler.domain import GROUP, SessionRequest
from services.scheduler.seat_starts import MIGRATION_ID, Counts, backfill_seat_starts, backfill_until_done
from services.scheduler.store import SEATS, SchedulerStore
from tests.integration.test_scheduler_cohort_reads import HOUR, PLATFORM, Target, target
from tests.integration.test_scheduler_tech_checks import _book, _program

__all__ = ["target"]  # the fixture, shared with the cohort-read tests

UNSET = {"$unset": {"starts_at": ""}}  # a seat as stored before 2026-12-08
MISSING = {"starts_at": {"$exists": False}}


def _days_ahead(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


async def test_a_clients_schedule_reads_the_seats_of_its_range_only(target: Target) -> None:
    # b is seated in three groups, one in the 30 days read: the schedule read all three seats (every
    # seat b ever had, for any range), more with every seat b got
    program = await _program(target, ("a", "b"))
    groups = [await _book(target, program, f"r-{days}", ("a",), _days_ahead(days), GROUP) for days in (2, 40, 100)]
    for group in groups:
        await target.scheduler.book_seat(f"seat-{group['_id']}", group["_id"], "b", False, PLATFORM, "")
    near = await target.scheduler.session(groups[0]["_id"])
    (seat,) = [x["_id"] for x in near["seats"] if x["client_id"] == "b"]
    store = target.scheduler.store
    # stored before seats carried their session's start: found until the backfill gives it one
    await store.seats.update_one({"_id": seat}, {"$unset": {"starts_at": ""}})
    frm, to = datetime.now(UTC), datetime.now(UTC) + timedelta(days=30)
    assert [s["_id"] for s in await store.sessions_of_client("b", frm, to)] == [near["_id"]]

    assert await backfill_seat_starts(store.db, "replica-1", pause_s=0) == (Status.COMPLETED, Counts(1, 1, 0))
    assert (await backfill_seat_starts(store.db, "replica-2", pause_s=0))[0] is Status.ALREADY_COMPLETED
    again = await backfill_seat_starts(store.db, "by-hand", again=True, pause_s=0)
    assert again == (Status.COMPLETED, Counts())  # a new pass: nothing left to do
    await backfill_until_done(store.db)  # the service's run at start: done already
    assert (await store.get(SEATS, seat) or {}).get("starts_at") == near["starts_at"]
    assert await SchedulerStore(store.db).seat_starts_backfilled()  # another process's store too
    target.finds.read.clear()
    assert [s["_id"] for s in await store.sessions_of_client("b", frm, to)] == [near["_id"]]
    assert target.finds.read[SEATS] == [seat]  # the seat in the range, and no other
    # the sessions after a failed session: every seat from then on
    upcoming = await store.upcoming_sessions_of_client("b", frm, "")
    assert [s["_id"] for s, _ in upcoming] == [g["_id"] for g in groups]


@dataclass
class Updates(monitoring.CommandListener):
    """The `update` commands sent on `session_facts`, and their statements."""

    commands: int = 0
    statements: int = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update" and event.command["update"] == SEATS:
            self.commands += 1
            self.statements += len(event.command.get("updates", []))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def _seats_without_their_start(target: Target, groups: int, seated: int) -> list[Document]:
    """`groups` groups of `seated` seated clients each, every seat stored without its session's
    start (before 2026-12-08)."""
    clients = tuple(f"k{n}" for n in range(seated))
    program = await _program(target, clients)
    sessions = []
    for n in range(groups):
        request = SessionRequest(
            f"r-{n}", program, "c1", clients, _days_ahead(2 + n), _days_ahead(2 + n) + HOUR, GROUP, capacity=seated
        )
        sessions.append(await target.scheduler.book(request, PLATFORM, require_alone=False))
    seats = target.scheduler.store.seats
    assert (await seats.update_many({"session_id": {"$in": [s["_id"] for s in sessions]}}, UNSET)).modified_count == (
        groups * seated
    )
    return sessions


async def test_replicas_starting_at_once_give_the_seats_their_start_once_a_chunk_a_command(
    target: Target, settings: Settings
) -> None:
    # every replica ran the backfill at start, each over every seat without its start, and each sent
    # one update per seat (a seat already done by the other one included): two replicas, two
    # commands per seat
    sessions = await _seats_without_their_start(target, groups=3, seated=4)
    updates = Updates()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, event_listeners=[updates]
    )
    try:
        db = client[target.scheduler.store.db.name]
        await asyncio.wait_for(asyncio.gather(*(backfill_until_done(db, retry_s=0.2) for _ in range(2))), 30)
    finally:
        await client.close()
    assert updates.commands == 1  # one chunk, one command (a statement per session)
    stored = await target.scheduler.store.seats.find({"session_id": {"$in": [s["_id"] for s in sessions]}}).to_list()
    starts = {s["_id"]: s["starts_at"] for s in sessions}
    assert len(stored) == 12 and all(x["starts_at"] == starts[x["session_id"]] for x in stored)
    assert await SchedulerStore(target.scheduler.store.db).seat_starts_backfilled()


async def test_a_backfill_stopped_midway_resumes_and_until_it_completes_every_seat_is_read(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = await _seats_without_their_start(target, groups=3, seated=2)
    store = target.scheduler.store
    give = SchedulerStore.give_seats_their_start
    chunks = 0

    async def stopping_at_the_second_chunk(self: SchedulerStore, ids: list[str]) -> tuple[int, int]:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise ConnectionError("the process stops here")
        return await give(self, ids)

    monkeypatch.setattr(SchedulerStore, "give_seats_their_start", stopping_at_the_second_chunk)
    with pytest.raises(ConnectionError):
        await backfill_seat_starts(store.db, "stopped", chunk=2, pause_s=0)
    monkeypatch.undo()
    record = await store.db[MIGRATIONS_COLLECTION].find_one({"_id": MIGRATION_ID}) or {}
    assert record["completed_at"] is None and (record["scanned"], record["given"]) == (2, 2)
    # the record exists, the backfill has not completed: a client's seats are all read, as before
    last = sessions[-1]
    frm, to = _days_ahead(1), _days_ahead(30)
    assert not await SchedulerStore(store.db).seat_starts_backfilled()
    assert last["_id"] in [x["session_id"] for x in await SchedulerStore(store.db).seats_of_client("k1", frm, to)]
    # the stopped process holds it until its lease runs out; then another takes it over from there
    assert (await backfill_seat_starts(store.db, "restarted", chunk=2, pause_s=0))[0] is Status.RUNNING_ELSEWHERE
    past = datetime.now(UTC) - timedelta(seconds=1)
    await store.db[MIGRATIONS_COLLECTION].update_one({"_id": MIGRATION_ID}, {"$set": {"lease_until": past}})
    resumed = await backfill_seat_starts(store.db, "restarted", chunk=2, pause_s=0)
    assert resumed == (Status.COMPLETED, Counts(scanned=4, given=4))  # only what was left
    assert await SchedulerStore(store.db).seat_starts_backfilled()
    assert not await store.seats.count_documents({"session_id": {"$in": [s["_id"] for s in sessions]}, **MISSING})
