"""Many clients race for the same slots through gRPC against TWO scheduler processes and the real store.

Zero double bookings: no clinician or client ends up with overlapping sessions, and a group never
seats more clients than its capacity.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from pymongo import MongoClient

from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from iop.scheduler.v1 import scheduler_pb2_grpc
from services.plumbing.errors import error_reason
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_scheduler_support import Api, local_day_at, next_slot, reason_of, uid
from tests.support import TEST_PORTS, ServiceProcess, auth_metadata

pytestmark = pytest.mark.integration

OTHER_PORT = TEST_PORTS["scheduler"] + 10
# The compliance process answers every racer on a shared 2-core machine: allow it time.
ENV = {"GRPC_CLIENT_DEADLINE_S": "10"}
# Only the no-double-booking invariant is under test: fatigue rules wide open.
OPEN_RULES = {
    "min_gap_minutes": 0,
    "max_back_to_back_sessions": 100,
    "max_continuous_video_minutes": 1440,
    "max_clinician_screen_minutes_per_day": 1440,
    "max_client_screen_minutes_per_day": 1440,
}


@pytest.fixture(scope="module")
def two_schedulers(settings: Settings) -> Iterator[tuple[Api, list[str]]]:
    compliance = ServiceProcess("compliance")
    a = ServiceProcess("scheduler", env=ENV)
    b = ServiceProcess("scheduler", env={**ENV, "SCHEDULER_GRPC_PORT": str(OTHER_PORT)}, instance="-b")
    try:
        compliance.start()
        a.start()
        b.start()
        api = Api(settings, a.target, compliance.target)
        yield api, [a.target, b.target]
        api.close()
    finally:
        for p in (a, b):  # clean stops are asserted in test_scheduler_api; here only the race matters
            p.stop()
        compliance.stop()


def _overlaps(intervals: list[tuple[datetime, datetime]]) -> int:
    ordered = sorted(intervals)
    return sum(1 for x, y in itertools.pairwise(ordered) if y[0] < x[1])


async def test_racing_bookings_never_double_book(two_schedulers, settings: Settings) -> None:
    api, targets = two_schedulers
    program = api.program(**OPEN_RULES)
    clinicians = [api.clinician() for _ in range(3)]
    clients = [api.client() for _ in range(30)]
    base = next_slot(timedelta(days=5))
    # overlapping candidate times: 60-minute sessions starting every 30 minutes
    starts = [base + timedelta(minutes=30 * i) for i in range(4)]
    metadata = auth_metadata(settings, "platform")
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    stubs = [scheduler_pb2_grpc.SchedulerServiceStub(c) for c in channels]
    outcomes: dict[str, int] = {}
    rng = random.Random(7)

    async def attempt(n: int, client: str, clinician: str, start: datetime) -> pb.Session | None:
        request = pb.ScheduleSessionRequest(
            request_id=uid("race"),
            program_id=program.program_id,
            clinician_id=clinician,
            client_ids=[client],
            starts_at=to_timestamp(start),
            ends_at=to_timestamp(start + timedelta(minutes=60)),
            kind=ev.SESSION_KIND_INDIVIDUAL,
        )
        try:
            session = await stubs[n % 2].BookSession(request, metadata=metadata, timeout=30)
            outcomes["booked"] = outcomes.get("booked", 0) + 1
            return session
        except grpc.aio.AioRpcError as err:
            from grpc_status import rpc_status

            status = rpc_status.from_call(err)  # type: ignore[arg-type]
            reason = error_reason(status) if status else err.code().name
            outcomes[str(reason)] = outcomes.get(str(reason), 0) + 1
            # refused by a rule/reservation, or (fail closed) when compliance could not answer in time
            assert err.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE), err.details()
            return None

    # every client tries three (clinician, start) pairs at once; all 90 requests race over both processes
    attempts = [
        attempt(n, client, rng.choice(clinicians), rng.choice(starts))
        for n, client in enumerate(c for c in clients for _ in range(3))
    ]
    booked = [s for s in await asyncio.gather(*attempts) if s is not None]

    # group seats: 20 clients race for 5 seats
    group = api.book(
        program.program_id,
        clinicians[0],
        [],
        base + timedelta(days=1),
        minutes=90,
        kind=ev.SESSION_KIND_GROUP,
        capacity=5,
    )

    async def seat(n: int, client: str) -> str:
        try:
            await stubs[n % 2].BookGroupSeat(
                pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=group.session_id, client_id=client),
                metadata=metadata,
                timeout=30,
            )
            return "seated"
        except grpc.aio.AioRpcError as err:
            assert err.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE), err.details()
            return err.code().name

    seat_outcomes = await asyncio.gather(*(seat(n, c) for n, c in enumerate(clients[:20])))
    seated = seat_outcomes.count("seated")
    assert outcomes.get("COMPLIANCE_UNAVAILABLE", 0) < len(attempts) // 2, outcomes
    for c in channels:
        await c.close()

    assert booked, outcomes
    assert outcomes.get("CLINICIAN_DOUBLE_BOOKED", 0) + outcomes.get("CLIENT_DOUBLE_BOOKED", 0) > 0, outcomes
    assert seated == min(5, 20 - seat_outcomes.count("UNAVAILABLE")), seat_outcomes

    mongo: MongoClient = MongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        db = mongo[f"{settings.mongodb_database_prefix}scheduler"]
        stored = list(db.sessions.find({"program_id": program.program_id, "status": "booked"}, {"outbox": 0}))
        assert len(stored) == len(booked) + 1  # + the group
        for clinician in clinicians:
            mine = [(s["starts_at"], s["ends_at"]) for s in stored if s["clinician_id"] == clinician]
            assert _overlaps(mine) == 0, f"clinician {clinician} double-booked"
        for client in clients:
            mine = [(s["starts_at"], s["ends_at"]) for s in stored if client in s["client_ids"]]
            assert _overlaps(mine) == 0, f"client {client} double-booked"
        roster = [
            x["client_id"]
            for x in db.session_facts.find({"_id": {"$regex": f"^seat:{group.session_id}#"}, "client_id": {"$ne": ""}})
        ]
        assert len(roster) == len(set(roster)) == seated
        view = api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id))
        assert sorted(view.client_ids) == sorted(roster) and view.capacity == 5
        # every reservation belongs to a stored session: refused attempts released theirs
        ids = {s["_id"] for s in stored}
        held = {c["session_id"] for c in db.claims.find({"_id": {"$regex": f"^clinician:({'|'.join(clinicians)})@"}})}
        assert held <= ids
    finally:
        mongo.close()
    assert datetime.now(UTC) < base  # the race ran before the slots (sanity on the clock)


def test_day_ledgers_cached_by_one_process_stay_correct_when_the_other_writes(two_schedulers) -> None:
    """A process books on the ledger revision it knows without reading it back: a booking on an
    outdated revision must still be refused when the newer one breaks a rule, and a refusal must
    never come from an outdated revision."""
    api, targets = two_schedulers
    other = Api(api.settings, targets[1], api.compliance_target)
    try:
        program = api.program(**{**OPEN_RULES, "max_clinician_screen_minutes_per_day": 60})
        clinician = api.clinician()
        morning, afternoon, evening = (local_day_at(6, h) for h in (9, 13, 17))
        first = api.book(program.program_id, clinician, [api.client()], morning)
        with pytest.raises(grpc.RpcError) as over_cap:  # this process now knows the day with `first`
            api.book(program.program_id, clinician, [api.client()], afternoon)
        assert reason_of(over_cap.value) == "MAX_DAILY_SCREEN_TIME_CLINICIAN"
        other.call("CancelSession", pb.CancelSessionRequest(session_id=first.session_id, reason="moved"))
        # what this process knows still holds `first`: it must read the newer revision, not refuse
        second = api.book(program.program_id, clinician, [api.client()], afternoon)
        # the other process knows only the revision it wrote, without `second`: its write must fail
        with pytest.raises(grpc.RpcError) as stale:
            other.book(program.program_id, clinician, [api.client()], evening)
        assert reason_of(stale.value) == "MAX_DAILY_SCREEN_TIME_CLINICIAN"
        assert second.session_id
    finally:
        other.close()
