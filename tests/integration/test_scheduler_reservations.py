"""The scheduler's reservations against the real store.

- The orphan sweep: a booking whose process died after it reserved its slots and entered its day
  ledgers, but before its session (or seat) was stored, gives both back; reservations of stored
  bookings stay.
- What a failed attempt gives back: only what it took. A retry of a request books under the same
  session id as its first attempt, so giving back "the session's" claims, ledger entries or seats
  would undo the booking the first attempt made.
- A retry that runs into its first attempt's claims (a booking's, a group seat's) is in progress
  while that attempt has stored nothing, and answered with what it stored once it has."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from iop.compliance.v1 import compliance_pb2
from services.plumbing.auth import Principal
from services.plumbing.errors import Aborted, FailedPrecondition
from services.plumbing.settings import Settings
from services.plumbing.storage import Document, mongo_client, service_database
from services.scheduler import domain as d
from services.scheduler.booking import Scheduler, derived_id
from services.scheduler.domain import GROUP, INDIVIDUAL, Booked, SessionRequest, load_reference_data
from services.scheduler.programs import Programs, TrackSpec
from services.scheduler.store import (
    CARE_SESSIONS,
    CLAIMS,
    SEAT_CLAIM,
    SEATS,
    SESSIONS_COLLECTION,
    Conflict,
    SchedulerStore,
    seat_key,
)

pytestmark = pytest.mark.integration

START = datetime(2030, 3, 4, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SchedulerStore]:
    client = mongo_client(settings)
    db = service_database(client, settings, f"reservations{uuid.uuid4().hex[:6]}")
    yield SchedulerStore(db)
    await client.drop_database(db.name)
    await client.close()


def keys(owner: str, start: datetime) -> list[str]:
    return [f"{owner}@{(start + timedelta(minutes=15 * n)):%Y%m%dT%H%M}" for n in range(4)]


async def test_a_booking_that_was_never_stored_gives_back_its_slots_and_ledger_entries(
    store: SchedulerStore,
) -> None:
    clinician_day, client_day, seat_client_day = (
        "clinician:c1|2030-03-04",
        "client:k1|2030-03-04",
        "client:k3|2030-03-04",
    )
    # stored: an individual session and a group session with one seated client (k2)
    await store.sessions.insert_one({"_id": "live", "capacity": 1})
    await store.sessions.insert_one({"_id": "group", "capacity": 2})
    await store.db[SEATS].insert_one({"_id": seat_key("group", 0), "session_id": "group", "client_id": "k2"})
    await store.claim(keys("clinician:c1", START), "live", "slot", ledger_days=[clinician_day])
    await store.claim(keys("client:k2", START + 2 * HOUR), "group", SEAT_CLAIM, client_id="k2")
    # never stored: the individual session "dead" and the seat of k3 in "group"
    await store.claim(
        keys("clinician:c1", START + HOUR) + keys("client:k1", START + HOUR),
        "dead",
        "slot",
        ledger_days=[clinician_day, client_day],
    )
    await store.claim(
        keys("client:k3", START + 2 * HOUR), "group", SEAT_CLAIM, ledger_days=[seat_client_day], client_id="k3"
    )
    live, dead, group = (
        Booked("live", START, START + HOUR),
        Booked("dead", START + HOUR, START + 2 * HOUR),
        Booked("group", START + 2 * HOUR, START + 3 * HOUR),
    )
    assert await store.write_ledger(clinician_day, 0, [live, dead])
    assert await store.write_ledger(client_day, 0, [dead])
    assert await store.write_ledger(seat_client_day, 0, [group])

    now = datetime.now(UTC)
    assert await store.release_orphans(now - timedelta(hours=1), now - timedelta(hours=1)) == 0  # outside the window
    released = await store.release_orphans(now - timedelta(minutes=1), now + timedelta(seconds=1))

    assert released == 12  # 8 slots of "dead" and 4 of k3's seat
    remaining = {c["_id"] for c in await store.db[CLAIMS].find({}, {"_id": 1}).to_list()}
    assert remaining == set(keys("clinician:c1", START) + keys("client:k2", START + 2 * HOUR))
    fresh = SchedulerStore(store.db)  # no cached revisions: what any process reads
    assert [b.session_id for b in (await fresh.ledger(clinician_day))[1]] == ["live"]
    assert (await fresh.ledger(client_day))[1] == []
    assert (await fresh.ledger(seat_client_day))[1] == []
    assert await store.db[SESSIONS_COLLECTION].count_documents({}) == 2  # stored bookings untouched


async def holders(store: SchedulerStore, slot_keys: list[str]) -> dict[str, str]:
    return {c["_id"]: c["session_id"] for c in await store.claims.find({"_id": {"$in": slot_keys}}).to_list()}


async def test_a_claim_that_fails_gives_back_only_the_slots_it_took(store: SchedulerStore) -> None:
    first, later = keys("client:k1", START), keys("client:k1", START + 2 * HOUR)
    await store.claim(first, "s1", "slot")
    # the same session id again (a retry), for its slots and more: refused, the first claims stay
    with pytest.raises(Conflict):
        await store.claim(first + later, "s1", "slot")
    assert await holders(store, first + later) == dict.fromkeys(first, "s1")
    # the new slots first: they were taken before the conflict, and only they are given back
    with pytest.raises(Conflict):
        await store.claim(later + first, "s1", "slot")
    assert await holders(store, first + later) == dict.fromkeys(first, "s1")


async def test_an_attempts_ledger_entry_goes_and_the_sessions_other_entry_stays(store: SchedulerStore) -> None:
    day = "clinician:c1|2030-03-04"
    booked, attempt, other = (
        Booked("s1", START, START + HOUR),
        Booked("s1", START + 3 * HOUR, START + 4 * HOUR),
        Booked("s2", START + HOUR, START + 2 * HOUR),
    )
    assert await store.write_ledger(day, 0, [booked, other, attempt])
    await store.remove_from_ledger(day, "s1", attempt)
    assert (await SchedulerStore(store.db).ledger(day))[1] == [booked, other]
    await store.remove_from_ledger(day, "s1")  # a cancellation: every entry of the session
    assert (await SchedulerStore(store.db).ledger(day))[1] == [other]


async def test_a_capacity_change_that_lost_a_race_unblocks_the_seats_it_blocked(
    store: SchedulerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = {
        "_id": "g1",
        "program_id": "p1",
        "clinician_id": "c1",
        "facilitators": [],
        "kind": GROUP,
        "status": "booked",
        "capacity": 6,
        "client_ids": ["k1"],
        "starts_at": START,
        "ends_at": START + HOUR,
    }
    await store.sessions.insert_one(session)
    await store.db[SEATS].insert_one({"_id": seat_key("g1", 0), "session_id": "g1", "client_id": "k1"})
    scheduler = Scheduler(store, load_reference_data(), _no_evaluation, _no_licensure_check)

    async def changed_meanwhile(*args: Any, **kwargs: Any) -> None:
        return None  # the conditional update found another capacity: someone changed it first

    monkeypatch.setattr(store, "update_session", changed_meanwhile)
    with pytest.raises(FailedPrecondition) as refused:
        await scheduler.update_capacity("g1", 3)
    assert refused.value.details[0].reason == "SESSION_CHANGED"  # type: ignore[attr-defined]
    blocks = await store.db[SEATS].count_documents({"session_id": "g1", "client_id": ""})
    assert blocks == 0, "the seats above 3 stayed blocked although the capacity is still 6"
    assert (await store.db[SESSIONS_COLLECTION].find_one({"_id": "g1"}) or {})["capacity"] == 6


async def _no_evaluation(request: compliance_pb2.EvaluateSessionRequest) -> compliance_pb2.SessionEvaluation:
    raise AssertionError("a capacity change asks compliance nothing")


async def _no_licensure_check(request: compliance_pb2.CheckLicensureRequest) -> compliance_pb2.LicensureDecision:
    raise AssertionError("a capacity change asks compliance nothing")


async def test_the_sweep_releases_an_attempt_of_a_stored_request_at_other_times_and_keeps_the_booking(
    store: SchedulerStore,
) -> None:
    """A retry of a request whose first attempt died mid-booking can be booked at other times (a
    reschedule without new_starts_at proposes the next free slot): the dead attempt's claims and
    ledger entry go, the stored booking's stay."""
    day = "clinician:c1|2030-03-04"
    stored, dead = Booked("s1", START, START + HOUR), Booked("s1", START + 3 * HOUR, START + 4 * HOUR)
    await store.claim(keys("clinician:c1", START + 3 * HOUR), "s1", "slot", [day], times=(dead.start, dead.end))
    await store.claim(keys("clinician:c1", START), "s1", "slot", [day], times=(stored.start, stored.end))
    await store.sessions.insert_one({"_id": "s1", "capacity": 1, "slot_keys": keys("clinician:c1", START)})
    assert await store.write_ledger(day, 0, [stored, dead])
    now = datetime.now(UTC)
    assert await store.release_orphans(now - timedelta(minutes=1), now + timedelta(seconds=1)) == 4
    assert set(await holders(store, keys("clinician:c1", START) + keys("clinician:c1", START + 3 * HOUR))) == set(
        keys("clinician:c1", START)
    )
    assert (await SchedulerStore(store.db).ledger(day))[1] == [stored]


async def test_the_sweep_never_deletes_a_claim_taken_again_since_it_read_it(
    store: SchedulerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = keys("client:k1", START)
    await store.claim(slots, "dead", "slot", ["client:k1|2030-03-04"], times=(START, START + HOUR))
    remove_from_ledger = store.remove_from_ledger

    async def meanwhile(owner_day: str, session_id: str, only: Booked | None = None) -> None:
        # between the sweep's read and its delete: another process's sweep released the claims,
        # and a new booking took the slots
        await store.claims.delete_many({"_id": {"$in": slots}})
        await store.claim(slots, "live", "slot", times=(START, START + HOUR))
        await remove_from_ledger(owner_day, session_id, only)

    monkeypatch.setattr(store, "remove_from_ledger", meanwhile)
    now = datetime.now(UTC)
    await store.release_orphans(now - timedelta(minutes=1), now + timedelta(seconds=1))
    assert await holders(store, slots) == dict.fromkeys(slots, "live")


async def test_a_session_write_that_failed_after_the_store_applied_it_keeps_its_booking(
    store: SchedulerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, request = await _one_booking(store, ALL_WEEK)
    insert_once = store.insert_once

    async def applied_then_connection_lost(*args: Any, **kwargs: Any) -> Any:
        await insert_once(*args, **kwargs)
        raise AutoReconnect("connection lost after the write")

    # an attempt of the same request holds the slots (in flight, or its process died): retry later,
    # not "double-booked"
    await _in_progress_while_another_attempt_holds_its_slots(store, scheduler, request)

    monkeypatch.setattr(store, "insert_once", applied_then_connection_lost)
    with pytest.raises(AutoReconnect):
        await scheduler.book(request, PLATFORM, require_alone=False)
    monkeypatch.undo()
    session_id = derived_id("session", "r-1")
    assert await store.claims.count_documents({"session_id": session_id}) == 8  # 4 slots x (clinician + client)
    assert (await scheduler.book(request, PLATFORM, require_alone=False))["_id"] == session_id  # the retry
    other = replace(request, request_id="r-2")
    with pytest.raises(FailedPrecondition):  # the hour is still the first booking's
        await scheduler.book(other, PLATFORM, require_alone=False)


async def _allow(request: compliance_pb2.EvaluateSessionRequest) -> compliance_pb2.SessionEvaluation:
    return compliance_pb2.SessionEvaluation(decision=compliance_pb2.DECISION_ALLOW)


async def _licensed(request: compliance_pb2.CheckLicensureRequest) -> compliance_pb2.LicensureDecision:
    return compliance_pb2.LicensureDecision(decision=compliance_pb2.DECISION_ALLOW)


async def test_a_care_occurrence_written_although_its_write_failed_keeps_its_claims(
    store: SchedulerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs = Programs(store, load_reference_data())
    all_week = [(day, "00:00", "24:00") for day in range(7)]
    for clinician in ("c1", "c2"):
        await programs.set_clinician(clinician, "America/New_York", "NY", all_week, None)
    insert_once = store.insert_once

    async def applied_then_connection_lost(*args: Any, **kwargs: Any) -> Any:
        await insert_once(*args, **kwargs)
        raise AutoReconnect("connection lost after the write")

    monkeypatch.setattr(store, "insert_once", applied_then_connection_lost)
    first = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    with pytest.raises(AutoReconnect):
        await programs.create_care_series("care-1", 1, ["c1", "c2"], "c1", first, 60, 7, 2, "America/New_York")
    monkeypatch.undo()
    series = await store.db[CARE_SESSIONS].find({}, {"_id": 1}).to_list()
    assert len(series) == 2  # both occurrences were written
    for occurrence in series:  # and each still holds its clinicians' hour
        assert await store.claims.count_documents({"session_id": occurrence["_id"]}) == 8


async def test_a_retry_refused_by_availability_while_its_first_attempt_holds_the_slots_is_in_progress(
    store: SchedulerStore,
) -> None:
    """The first attempt (another scheduler process) passed the availability check and holds the
    slots; the clinician's windows change; the retry is refused by them. The first attempt may still
    store its booking: the retry is told to retry, not CLINICIAN_UNAVAILABLE (no booking made)."""
    evening = [(day, "20:00", "22:00") for day in range(7)]  # the clinician's windows now
    scheduler, request = await _one_booking(store, evening, hour=15)
    await _in_progress_while_another_attempt_holds_its_slots(store, scheduler, request)
    with pytest.raises(FailedPrecondition) as unavailable:  # the attempt stopped; the sweep released its slots
        await scheduler.book(request, PLATFORM, require_alone=False)
    assert unavailable.value.details[0].reason == "CLINICIAN_UNAVAILABLE"  # type: ignore[attr-defined]


async def test_a_seat_retried_while_its_first_attempt_holds_the_slots_is_in_progress(store: SchedulerStore) -> None:
    """BookGroupSeat's first attempt (another process) holds k2's slots: the retry is told to retry,
    not CLIENT_DOUBLE_BOOKED by its own claims (the first attempt may still seat k2)."""
    scheduler, group, slots = await _a_seat_in_flight(store)
    with pytest.raises(Aborted) as in_progress:
        await scheduler.book_seat("seat-1", group["_id"], "k2", False, PLATFORM, "")
    assert in_progress.value.details[0].reason == "REQUEST_IN_PROGRESS"  # type: ignore[attr-defined]
    await store.claims.delete_many({"_id": {"$in": slots}})  # it stopped: the sweep released them
    assert "k2" in (await scheduler.book_seat("seat-1", group["_id"], "k2", False, PLATFORM, ""))["client_ids"]


async def test_a_seat_retried_after_the_clients_availability_changed_while_its_first_attempt_holds_the_slots(
    store: SchedulerStore,
) -> None:
    scheduler, group, _ = await _a_seat_in_flight(store)
    programs = Programs(store, load_reference_data())
    await programs.set_client("k2", "America/New_York", [(day, "04:00", "05:00") for day in range(7)], [], "NY", "")
    with pytest.raises(Aborted) as in_progress:  # it was CLIENT_UNAVAILABLE, and the first attempt seated k2
        await scheduler.book_seat("seat-1", group["_id"], "k2", False, PLATFORM, "")
    assert in_progress.value.details[0].reason == "REQUEST_IN_PROGRESS"  # type: ignore[attr-defined]


async def test_a_seat_retried_as_its_first_attempt_stores_it_returns_the_session(
    store: SchedulerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, group, slots = await _a_seat_in_flight(store)
    claim = store.claim

    async def first_attempt_seats_k2_meanwhile(*args: Any, **kwargs: Any) -> None:
        seat = {"_id": seat_key(group["_id"], 1), "session_id": group["_id"], "client_id": "k2", "slot_keys": slots}
        assert await store.insert_fact(SEATS, seat, [])
        await claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim", first_attempt_seats_k2_meanwhile)
    seated = await scheduler.book_seat("seat-1", group["_id"], "k2", False, PLATFORM, "")
    assert seated["client_ids"] == ["k1", "k2"]
    assert await holders(store, slots) == dict.fromkeys(slots, group["_id"])  # the first attempt's, kept


async def _a_seat_in_flight(store: SchedulerStore) -> tuple[Scheduler, Document, list[str]]:
    """A group of c1 with k1 (three seats) in two days, and the slot claims of an attempt to seat k2
    in it that has not stored its seat (in flight in another process, or stopped)."""
    scheduler, request = await _one_booking(store, ALL_WEEK)
    await Programs(store, load_reference_data()).set_client("k2", "America/New_York", ALL_WEEK, [], "NY", "")
    group = await scheduler.book(replace(request, kind=GROUP, capacity=3), PLATFORM, require_alone=False)
    assert request.starts_at is not None and request.ends_at is not None
    times = (request.starts_at, request.ends_at)
    slots = [d.slot_key(d.client_owner("k2"), at) for at in d.slot_starts(*times)]
    await store.claim(slots, group["_id"], SEAT_CLAIM, client_id="k2", times=times)
    return scheduler, group, slots


ALL_WEEK = [(day, "00:00", "24:00") for day in range(7)]
PLATFORM = Principal("app", frozenset({"platform"}))


async def _one_booking(
    store: SchedulerStore, clinician_windows: list[tuple[int, str, str]], hour: int | None = None
) -> tuple[Scheduler, SessionRequest]:
    """A scheduler on the store, and a request for an hour of clinician c1 with client k1 in two days."""
    reference = load_reference_data()
    programs = Programs(store, reference)
    track = TrackSpec("t3x5", "3h x 3-5 days", 3, 3, 5)
    program = await programs.create_program(
        "p-1", "Adult IOP", "America/New_York", "IOP_PSYCH", "+15555550100", [track], {}, ""
    )
    await programs.set_clinician("c1", "America/New_York", "NY", clinician_windows, None)
    await programs.set_client("k1", "America/New_York", ALL_WEEK, [], "NY", "")
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    if hour is not None:
        start = start.replace(hour=hour)
    request = SessionRequest("r-1", program["_id"], "c1", ("k1",), start, start + HOUR, INDIVIDUAL)
    return Scheduler(store, reference, _allow, _licensed), request


async def _in_progress_while_another_attempt_holds_its_slots(
    store: SchedulerStore, scheduler: Scheduler, request: SessionRequest
) -> None:
    """An attempt of the request holds its slots (in flight, or its process died): the request is
    REQUEST_IN_PROGRESS; then the attempt's claims go, as the orphan sweep's work minutes later."""
    assert request.starts_at is not None and request.ends_at is not None
    times = (request.starts_at, request.ends_at)
    slots = [d.slot_key(owner, at) for owner in ("clinician:c1", "client:k1") for at in d.slot_starts(*times)]
    await store.claim(slots, derived_id("session", request.request_id), "slot", times=times)
    with pytest.raises(Aborted) as in_progress:
        await scheduler.book(request, PLATFORM, require_alone=False)
    assert in_progress.value.details[0].reason == "REQUEST_IN_PROGRESS"  # type: ignore[attr-defined]
    await store.claims.delete_many({"_id": {"$in": slots}})
