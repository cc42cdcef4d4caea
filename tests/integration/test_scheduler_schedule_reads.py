"""What a client's schedule reads, against the real store: the seats of the sessions in its range
(the seat carries its session's start), not every seat the client ever had. Seats stored before
they carried it are found all the same, before the backfill that gives them their start and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scheduler.domain import GROUP
from services.scheduler.seat_starts import backfill_until_done
from services.scheduler.store import SEATS, SchedulerStore
from tests.integration.test_scheduler_cohort_reads import PLATFORM, Target, target
from tests.integration.test_scheduler_tech_checks import _book, _program

__all__ = ["target"]  # the fixture, shared with the cohort-read tests


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

    assert await store.backfill_seat_starts() == 1
    assert await store.backfill_seat_starts() == 0  # run again: nothing left to do
    await backfill_until_done(store.db)  # the service's run at start: done already
    assert (await store.get(SEATS, seat) or {}).get("starts_at") == near["starts_at"]
    assert await SchedulerStore(store.db).seat_starts_backfilled()  # another process's store too
    target.finds.read.clear()
    assert [s["_id"] for s in await store.sessions_of_client("b", frm, to)] == [near["_id"]]
    assert target.finds.read[SEATS] == [seat]  # the seat in the range, and no other
    # the sessions after a failed session: every seat from then on
    upcoming = await store.upcoming_sessions_of_client("b", frm, "")
    assert [s["_id"] for s, _ in upcoming] == [g["_id"] for g in groups]
