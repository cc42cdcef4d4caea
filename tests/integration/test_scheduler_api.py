"""The scheduler's gRPC API against a real compliance process, the real store and broker."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.encounter import Encounter
from kafka import KafkaProducer
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from pymongo import MongoClient

from iop.compliance.v1 import compliance_pb2
from iop.events.v1 import common_pb2
from iop.events.v1 import engagement_pb2 as engagement_events
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_scheduler_guards import error_metadata
from tests.integration.test_scheduler_support import (
    NEW_YORK,
    Api,
    fields_of,
    local_day_at,
    next_slot,
    reason_of,
    running_for,
    scheduler_with_compliance,
    uid,
)
from tests.support import TEST_PORTS, ServiceProcess, consumer_at_end, wait_for_trace

pytestmark = pytest.mark.integration

NO_COMPLIANCE_PORT = TEST_PORTS["scheduler"] + 11


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[Api]:
    with scheduler_with_compliance(settings) as client:
        yield client


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator:
    mongo: MongoClient = MongoClient(settings.mongodb_uri, tz_aware=True)
    yield mongo[f"{settings.mongodb_database_prefix}scheduler"]
    mongo.close()


class TopicTail:
    """Records of one topic written after this object was created."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = consumer_at_end(settings, topic)
        self.seen: list[CloudEvent] = []

    def wait(self, key: str, predicate, timeout_s: float = 20) -> list[CloudEvent]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in self.consumer.poll(timeout_ms=300).values():
                for r in records:
                    if r.key == key.encode():
                        event = CloudEvent.from_kafka(r.headers, r.value)
                        # at least once: several scheduler relays may publish the same entry; dedupe by id
                        if event.id not in {e.id for e in self.seen}:
                            self.seen.append(event)
            if predicate(self.seen):
                break
        return self.seen

    def close(self) -> None:
        self.consumer.close()


def test_booking_reserves_the_slots_and_refuses_double_bookings(api: Api, db) -> None:
    program = api.program()
    clinician, other_clinician = api.clinician(), api.clinician()
    client, other_client = api.client(), api.client()
    start = local_day_at(days_ahead=2, hour=10)  # a fixed local hour: the bookings below stay on one day
    session = api.book(program.program_id, clinician, [client], start)
    assert session.status == "booked"
    assert session.backup_line == "+15555550100,1234"
    assert len(session.tech_check_task_ids) == 1  # before the client's first session
    assert db.claims.count_documents({"session_id": session.session_id}) == 8  # 4 slots x (clinician + client)

    with pytest.raises(grpc.RpcError) as same_clinician:
        api.book(program.program_id, clinician, [other_client], start + timedelta(minutes=45))
    assert same_clinician.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(same_clinician.value) == "CLINICIAN_DOUBLE_BOOKED"
    with pytest.raises(grpc.RpcError) as same_client:
        api.book(program.program_id, other_clinician, [client], start - timedelta(minutes=30))
    assert reason_of(same_client.value) == "CLIENT_DOUBLE_BOOKED"
    # a refused booking leaves nothing behind: the other client's slots are free
    assert db.claims.count_documents({"_id": {"$regex": f"^client:{other_client}@"}}) == 0
    assert db.sessions.count_documents({"client_ids": other_client}) == 0

    # the same request_id is the same booking
    again = api.book(
        program.program_id,
        other_clinician,
        [other_client],
        start + timedelta(hours=3),
        request_id="r-" + session.session_id,
    )
    assert list(again.tech_check_task_ids) == [f"tc-{again.session_id}-{other_client}"]
    # as if the first attempt's tech-check write (beside the session's) had failed: the retry writes it
    db.tech_checks.delete_many({"session_id": again.session_id})
    retry = api.book(
        program.program_id,
        other_clinician,
        [other_client],
        start + timedelta(hours=3),
        request_id="r-" + session.session_id,
    )
    assert again.session_id == retry.session_id
    assert db.tech_checks.count_documents({"session_id": again.session_id}) == 1

    # cancelling releases the slots
    cancelled = api.call(
        "CancelSession", pb.CancelSessionRequest(session_id=session.session_id, reason="client request")
    )
    assert cancelled.status == "cancelled"
    assert db.claims.count_documents({"session_id": session.session_id}) == 0
    assert api.book(program.program_id, clinician, [other_client], start).status == "booked"


def latest_ledger_entries(db, owner_day: str) -> list[str]:
    """The bookings of a day ledger's latest revision, as stored (`<session id> <start> <end> ...`)."""
    revisions = list(db.ledgers.find({"_id": {"$regex": f"^{re.escape(owner_day)}\\|"}}))
    return max(revisions, key=lambda r: r["rev"])["bookings"] if revisions else []


def test_a_request_id_used_again_never_undoes_the_booking_it_made(api: Api, db) -> None:
    program = api.program()
    clinician, other_clinician = api.clinician(), api.clinician()
    client, first_seat, second_seat = api.client(), api.client(), api.client()
    start = local_day_at(days_ahead=3, hour=11)

    # retried as it was: the same session, and every claim and ledger entry it made is kept
    request_id = uid("again")
    session = api.book(program.program_id, clinician, [client], start, request_id=request_id)
    claims = db.claims.count_documents({"session_id": session.session_id})
    stored = db.sessions.find_one({"_id": session.session_id})
    ledgers = {day: latest_ledger_entries(db, day) for day in stored["ledger_days"]}
    assert all(sum(e.startswith(session.session_id + " ") for e in entries) == 1 for entries in ledgers.values())
    assert api.book(program.program_id, clinician, [client], start, request_id=request_id).session_id == (
        session.session_id
    )
    assert db.claims.count_documents({"session_id": session.session_id}) == claims == 8
    with pytest.raises(grpc.RpcError) as taken:  # the client's hour is still the first booking's
        api.book(program.program_id, other_clinician, [client], start)
    assert reason_of(taken.value) == "CLIENT_DOUBLE_BOOKED"

    # the same request_id for other times is refused, and takes nothing from the first booking
    with pytest.raises(grpc.RpcError) as reused:
        api.book(program.program_id, clinician, [client], start + timedelta(hours=2), request_id=request_id)
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(reused.value) == "REQUEST_ID_REUSED"
    assert db.claims.count_documents({"session_id": session.session_id}) == claims
    assert {day: latest_ledger_entries(db, day) for day in stored["ledger_days"]} == ledgers
    assert db.sessions.find_one({"_id": session.session_id})["starts_at"] == stored["starts_at"]

    # a group's seats survive the same: capacity 2 still seats exactly one more client
    group_request = uid("group")

    def book_group(at: datetime) -> pb.Session:
        return api.book(
            program.program_id,
            other_clinician,
            [first_seat],
            at,
            kind=ev.SESSION_KIND_GROUP,
            capacity=2,
            request_id=group_request,
        )

    group = book_group(start + timedelta(hours=4))
    with pytest.raises(grpc.RpcError) as reused_group:
        book_group(start + timedelta(hours=6))
    assert reason_of(reused_group.value) == "REQUEST_ID_REUSED"
    seats = {"_id": {"$regex": f"^seat:{re.escape(group.session_id)}#"}, "client_id": {"$ne": ""}}
    assert db.session_facts.count_documents(seats) == 1
    seated = api.call(
        "BookGroupSeat",
        pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=group.session_id, client_id=second_seat),
    )
    assert sorted(seated.client_ids) == sorted([first_seat, second_seat])
    with pytest.raises(grpc.RpcError) as full:
        api.call(
            "BookGroupSeat",
            pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=group.session_id, client_id=api.client()),
        )
    assert reason_of(full.value) == "GROUP_FULL"

    # rescheduling with the request_id of another booking moves nothing
    moving = api.book(program.program_id, other_clinician, [client], start + timedelta(hours=8))
    with pytest.raises(grpc.RpcError) as borrowed:
        api.call(
            "RescheduleSession",
            pb.RescheduleSessionRequest(
                request_id=request_id,
                session_id=moving.session_id,
                new_starts_at=to_timestamp(start + timedelta(hours=9)),
            ),
        )
    assert reason_of(borrowed.value) == "REQUEST_ID_REUSED"
    assert db.sessions.find_one({"_id": moving.session_id})["status"] == "booked"
    assert db.claims.count_documents({"session_id": moving.session_id}) == 8
    assert db.claims.count_documents({"session_id": session.session_id}) == claims

    # a new time in the past is named as the request's own field
    with pytest.raises(grpc.RpcError) as past:
        api.call(
            "RescheduleSession",
            pb.RescheduleSessionRequest(
                request_id=uid("re"),
                session_id=moving.session_id,
                new_starts_at=to_timestamp(next_slot() - timedelta(days=1)),
            ),
        )
    assert past.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(past.value) == {"new_starts_at"}


def test_a_reschedule_retried_after_its_booking_was_made_completes_that_booking(api: Api, db) -> None:
    program = api.program()
    clinician, client = api.clinician(), api.client()
    session = api.book(program.program_id, clinician, [client], local_day_at(days_ahead=4, hour=13))
    request = pb.RescheduleSessionRequest(request_id=uid("re"), session_id=session.session_id, reason="RESCHEDULE")
    moved = api.call("RescheduleSession", request)  # the first free slot the rules allow
    # as if the first attempt had stopped after booking the new session: the old one still booked
    db.sessions.update_one(
        {"_id": session.session_id}, {"$set": {"status": "booked"}, "$unset": {"rescheduled_to": ""}}
    )
    again = api.call("RescheduleSession", request)  # the first free slot is now a later one
    assert again.session_id == moved.session_id and again.starts_at == moved.starts_at
    old = api.call("GetSession", pb.GetSessionRequest(session_id=session.session_id))
    assert old.status == "rescheduled" and old.rescheduled_to == moved.session_id


def test_a_booking_retried_after_availability_changed_returns_that_booking(api: Api) -> None:
    """A retry answers what its first attempt did. The clinician's and the client's availability
    changed after the booking (both are free only in the evening now): the retry still gets the
    booked session, not a refusal that would tell the caller no session was booked."""
    program = api.program()
    clinician, client = api.clinician(), api.client()
    start = local_day_at(days_ahead=5, hour=10)
    request_id = uid("book")
    booked = api.book(program.program_id, clinician, [client], start, request_id=request_id)
    evening = [pb.WeeklyWindow(weekday=day, start="20:00", end="22:00") for day in range(7)]
    api.clinician(clinician, windows=evening)
    api.client(client, windows=evening, consent=False)
    again = api.book(program.program_id, clinician, [client], start, request_id=request_id)
    assert again.session_id == booked.session_id and again.status == "booked"
    # a new request for that time is refused: the availability did change
    with pytest.raises(grpc.RpcError) as refused:
        api.book(program.program_id, clinician, [client], start)
    assert reason_of(refused.value) == "CLINICIAN_UNAVAILABLE"


def test_a_session_across_local_midnight_counts_toward_both_days(api: Api, db) -> None:
    program = api.program()
    clinician = api.clinician(min_gap_minutes=30)  # available every day 00:00-24:00
    client, other_client = api.client(), api.client()
    start = local_day_at(days_ahead=2, hour=23, minute=30)  # 23:30-00:30 in New York
    session = api.book(program.program_id, clinician, [client], start)
    assert session.status == "booked"
    first = start.astimezone(NEW_YORK).date()
    days = [first.isoformat(), (first + timedelta(days=1)).isoformat()]
    stored = db.sessions.find_one({"_id": session.session_id})
    assert stored["ledger_days"] == [
        f"{who}|{day}" for who in (f"clinician:{clinician}", f"client:{client}") for day in days
    ]

    # the next day's rules see it: 00:45 is 15 minutes after it ends, closer than the clinician's 30
    with pytest.raises(grpc.RpcError) as too_close:
        api.book(program.program_id, clinician, [other_client], start + timedelta(minutes=75))
    assert reason_of(too_close.value) == "MIN_GAP_BETWEEN_SESSIONS"
    api.call("CancelSession", pb.CancelSessionRequest(session_id=session.session_id, reason="moved"))
    assert api.book(program.program_id, clinician, [other_client], start + timedelta(minutes=75)).status == "booked"


def test_bad_input_is_refused_and_nothing_is_stored(api: Api, db) -> None:
    program = api.program()
    clinician, client = api.clinician(), api.client()
    past = next_slot(timedelta(hours=-3))
    sessions_before = db.sessions.count_documents({})

    def refused(code: grpc.StatusCode, **kw) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            api.book(**{"program_id": program.program_id, "clinician_id": clinician, "client_ids": [client], **kw})
        assert info.value.code() == code, info.value.details()
        return info.value

    err = refused(grpc.StatusCode.INVALID_ARGUMENT, start=past, minutes=0)
    assert {"ends_at", "starts_at"} <= fields_of(err)
    assert "starts_at" in fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, start=next_slot() + timedelta(minutes=7)))
    assert "ends_at" in fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, start=next_slot(), minutes=-60))
    refused(grpc.StatusCode.NOT_FOUND, program_id="no-such-program", start=next_slot(timedelta(days=1)))
    refused(grpc.StatusCode.NOT_FOUND, clinician_id="no-such-clinician", start=next_slot(timedelta(days=1)))
    refused(grpc.StatusCode.NOT_FOUND, client_ids=["no-such-client"], start=next_slot(timedelta(days=1)))
    assert db.sessions.count_documents({}) == sessions_before

    with pytest.raises(grpc.RpcError) as tz:
        api.call(
            "SetClinicianAvailability",
            pb.SetClinicianAvailabilityRequest(
                clinician_id=uid("clin"),
                time_zone="Mars/Olympus_Mons",
                state="NY",
                windows=[
                    pb.WeeklyWindow(weekday=0, start="09:00", end="12:00"),
                    pb.WeeklyWindow(weekday=0, start="11:00", end="13:00"),
                    pb.WeeklyWindow(weekday=1, start="12:00", end="09:00"),
                ],
            ),
        )
    assert tz.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"time_zone", "windows", "windows[2].end"} <= fields_of(tz.value)
    with pytest.raises(grpc.RpcError) as prog:
        api.call("CreateProgram", pb.CreateProgramRequest(request_id=uid("r"), name="x", time_zone="Nowhere/City"))
    assert {"time_zone", "level_of_care", "backup_line", "tracks"} <= fields_of(prog.value)
    with pytest.raises(grpc.RpcError) as role:
        api.book(program.program_id, clinician, [client], next_slot(timedelta(days=1)), role="partner")
    assert role.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_compliance_deny_is_failed_precondition_with_its_reasons(api: Api) -> None:
    program = api.program()
    clinician = api.clinician(licensed_in=("NY",))
    traveller = api.client(home_state="CA")
    at = next_slot(timedelta(days=1))
    with pytest.raises(grpc.RpcError) as info:
        api.book(program.program_id, clinician, [traveller], at)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(info.value) == "COMPLIANCE_DENIED"
    assert "NO_LICENSE_IN_STATE" in (info.value.details() or "")
    # compliance is asked while the slots are reserved: the refusal gave them back
    api.book(program.program_id, clinician, [api.client()], at)
    # refused twice over (the clinician is taken then, the client's state unlicensed): compliance's answer
    with pytest.raises(grpc.RpcError) as both:
        api.book(program.program_id, clinician, [traveller], at)
    assert reason_of(both.value) == "COMPLIANCE_DENIED"


def test_booking_fails_closed_when_compliance_is_unavailable(settings: Settings, db) -> None:
    lonely = ServiceProcess(
        "scheduler",
        env={"SCHEDULER_GRPC_PORT": str(NO_COMPLIANCE_PORT), "COMPLIANCE_TARGET": "127.0.0.1:9"},
        instance="-nocompliance",
    ).start()
    try:
        api = Api(settings, lonely.target, "127.0.0.1:9")
        program = api.program()
        clinician = api.clinician(licensed_in=())
        client = api.client(consent=False)
        with pytest.raises(grpc.RpcError) as info:
            api.book(program.program_id, clinician, [client], next_slot(timedelta(days=1)))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_of(info.value) == "COMPLIANCE_UNAVAILABLE"
        # the slots claimed while compliance was asked were given back, and no session was stored
        assert db.claims.count_documents({"_id": {"$regex": f"^client:{client}@"}}) == 0
        assert db.sessions.count_documents({"client_ids": client}) == 0
        api.close()
    finally:
        assert lonely.stop() == 0


def test_lifecycle_events_and_fhir_projection(api: Api, settings: Settings, db) -> None:
    sessions_tail = TopicTail(settings, "iop.scheduling.sessions.v1")
    fhir_tail = TopicTail(settings, "iop.scheduling.fhir.v1")
    try:
        program = api.program()
        clinician, client = api.clinician(), api.client()
        start = next_slot(timedelta(minutes=20))
        s = api.book(program.program_id, clinician, [client], start, minutes=120)
        assert len(s.breaks) == 1  # a 2-hour session has a built-in break
        sid = s.session_id
        with pytest.raises(grpc.RpcError) as early:
            api.call("StartSession", pb.StartSessionRequest(session_id=sid, clinician_state="NY"))
        assert reason_of(early.value) == "LOCATION_NOT_CONFIRMED"
        location = common_pb2.ClientLocation(state="NY", postal_code="10001", verified=True)
        checked = api.call(
            "CheckIn",
            pb.CheckInRequest(session_id=sid, client_id=client, location=location, privacy_attestation="alone"),
            role="client",
            subject=client,
        )
        assert checked.status == "checked_in"
        with pytest.raises(grpc.RpcError) as other:
            api.call(
                "CheckIn",
                pb.CheckInRequest(session_id=sid, client_id=client, location=location, privacy_attestation="alone"),
                role="client",
                subject="someone-else",
            )
        assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
        started = api.call("StartSession", pb.StartSessionRequest(session_id=sid, clinician_state="NY"))
        assert started.status == "in_progress"
        running_for(db, sid, 115)
        ended = api.call(
            "EndSession",
            pb.EndSessionRequest(
                session_id=sid,
                modality=common_pb2.MODALITY_MIXED,
                attendance=[
                    ev.ClientAttendance(client_id=client, minutes_attended=110, modality=common_pb2.MODALITY_MIXED)
                ],
            ),
            role="clinician",
            subject=clinician,
        )
        assert ended.status == "ended" and ended.modality == common_pb2.MODALITY_MIXED
        with pytest.raises(grpc.RpcError) as twice:
            api.call("CancelSession", pb.CancelSessionRequest(session_id=sid))
        assert reason_of(twice.value) == "SESSION_NOT_CANCELLABLE"

        wanted = ["SessionScheduled", "SessionCheckedIn", "SessionStarted", "SessionEnded"]
        seen = sessions_tail.wait(sid, lambda evs: [e.type.rsplit(".", 1)[1] for e in evs] == wanted)
        assert [e.type.rsplit(".", 1)[1] for e in seen] == wanted
        ended_event = seen[-1].payload()
        assert isinstance(ended_event, ev.SessionEnded)
        assert ended_event.attendance[0].minutes_attended == 110 and ended_event.level_of_care == "IOP_PSYCH"

        def finished(evs: list[CloudEvent]) -> bool:
            return any(json.loads(e.payload().json).get("status") == "finished" for e in evs)  # type: ignore[attr-defined]

        resources = [json.loads(e.payload().json) for e in fhir_tail.wait(sid, finished)]  # type: ignore[attr-defined]
        appointments = [Appointment.model_validate(r) for r in resources if r["resourceType"] == "Appointment"]
        encounters = [Encounter.model_validate(r) for r in resources if r["resourceType"] == "Encounter"]
        assert [a.status for a in appointments] == ["booked", "checked-in", "arrived", "fulfilled"]
        assert encounters[-1].status == "finished" and encounters[-1].length is not None
    finally:
        sessions_tail.close()
        fhir_tail.close()


def test_group_seats_capacity_and_roles(api: Api) -> None:
    program = api.program()
    clinician, co = api.clinician(), api.clinician()
    clients = [api.client() for _ in range(4)]
    start = local_day_at(days_ahead=3, hour=9)  # the sessions below, up to 6 h later, stay on one local day
    group = api.book(
        program.program_id,
        clinician,
        clients[:1],
        start,
        minutes=180,
        kind=ev.SESSION_KIND_GROUP,
        capacity=3,
        facilitators=[
            pb.Facilitator(clinician_id=clinician, role="lead"),
            pb.Facilitator(clinician_id=co, role="co_facilitator"),
        ],
        turn_taking=pb.TurnTaking(mode="raise_hand", speaking_time_limit_s=120, mute_on_entry=True),
    )
    assert group.capacity == 3 and group.turn_taking.mode == "raise_hand" and len(group.breaks) == 2
    # the co-facilitator is reserved too
    with pytest.raises(grpc.RpcError) as busy:
        api.book(program.program_id, co, [clients[3]], start + timedelta(minutes=60))
    assert reason_of(busy.value) == "CLINICIAN_DOUBLE_BOOKED"

    def seat(client: str) -> pb.Session:
        return api.call(
            "BookGroupSeat",
            pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=group.session_id, client_id=client),
        )

    seat(clients[1])
    full = seat(clients[2])
    assert sorted(full.client_ids) == sorted(clients[:3])
    with pytest.raises(grpc.RpcError) as no_seat:
        seat(clients[3])
    assert reason_of(no_seat.value) == "GROUP_FULL"
    with pytest.raises(grpc.RpcError) as shrink:
        api.call("UpdateGroupCapacity", pb.UpdateGroupCapacityRequest(session_id=group.session_id, capacity=2))
    assert reason_of(shrink.value) == "CAPACITY_BELOW_BOOKINGS"
    grown = api.call("UpdateGroupCapacity", pb.UpdateGroupCapacityRequest(session_id=group.session_id, capacity=4))
    assert grown.capacity == 4
    assert len(seat(clients[3]).client_ids) == 4
    # a client's daily screen time: 160 min of this group + a 2-hour individual session is over 240
    with pytest.raises(grpc.RpcError) as tired:
        api.book(program.program_id, api.clinician(), [clients[0]], start + timedelta(hours=4), minutes=120)
    assert reason_of(tired.value) == "MAX_DAILY_SCREEN_TIME_CLIENT"


def test_a_co_facilitator_is_on_screen_for_the_rules_and_in_the_schedule(api: Api) -> None:
    """A co-facilitator is a clinician on screen: the group counts toward their own fatigue
    rules and shows in their schedule, and they must be available."""
    program = api.program()
    lead = api.clinician()
    co = api.clinician(max_clinician_screen_minutes_per_day=240)
    start = local_day_at(days_ahead=4, hour=9)
    group = api.book(
        program.program_id,
        lead,
        [api.client()],
        start,
        minutes=180,
        kind=ev.SESSION_KIND_GROUP,
        capacity=4,
        facilitators=[pb.Facilitator(clinician_id=co, role="co_facilitator")],
    )
    # 160 on-screen minutes of the group + a 2-hour session is over the co-facilitator's own 240
    with pytest.raises(grpc.RpcError) as tired:
        api.book(program.program_id, co, [api.client()], start + timedelta(hours=5), minutes=120)
    assert reason_of(tired.value) == "MAX_DAILY_SCREEN_TIME_CLINICIAN"
    # the lead's own limit (the program's 360) still has room for it
    api.book(program.program_id, lead, [api.client()], start + timedelta(hours=5), minutes=120)

    view = pb.ScheduleViewRequest(
        owner_id=co, to=to_timestamp(start + timedelta(days=1)), **{"from": to_timestamp(start - timedelta(hours=1))}
    )
    schedule = api.call("GetClinicianSchedule", view, role="clinician", subject=co)
    assert [s.session_id for s in schedule.sessions] == [group.session_id]
    assert schedule.days[0].screen_minutes == 160

    # cancelling the group gives the co-facilitator's day back
    api.call("CancelSession", pb.CancelSessionRequest(session_id=group.session_id, reason="facilitator test"))
    api.book(program.program_id, co, [api.client()], start + timedelta(hours=5), minutes=120)

    weekday_mornings = [pb.WeeklyWindow(weekday=i, start="09:00", end="12:00") for i in range(5)]
    busy_afternoons = api.clinician(windows=weekday_mornings)
    evening = local_day_at(days_ahead=4, hour=18)
    with pytest.raises(grpc.RpcError) as unavailable:
        api.book(
            program.program_id,
            lead,
            [api.client()],
            evening,
            kind=ev.SESSION_KIND_GROUP,
            capacity=4,
            facilitators=[pb.Facilitator(clinician_id=busy_afternoons, role="co_facilitator")],
        )
    assert reason_of(unavailable.value) == "CLINICIAN_UNAVAILABLE"

    # moving a group proposes only slots its co-facilitator can take too
    days_ahead = next(n for n in range(2, 9) if local_day_at(days_ahead=n, hour=10).astimezone(NEW_YORK).weekday() < 5)
    morning = api.book(
        program.program_id,
        lead,
        [api.client()],
        local_day_at(days_ahead=days_ahead, hour=10),
        kind=ev.SESSION_KIND_GROUP,
        capacity=4,
        facilitators=[pb.Facilitator(clinician_id=busy_afternoons, role="co_facilitator")],
    )
    moved = api.call(
        "RescheduleSession",
        pb.RescheduleSessionRequest(request_id=uid("re"), session_id=morning.session_id, reason="RESCHEDULE"),
    )
    local = moved.starts_at.ToDatetime(tzinfo=UTC).astimezone(NEW_YORK)
    # inside the co-facilitator's weekday 09:00-12:00: a 60-minute session starts 09:00 to 11:00
    assert local.weekday() < 5 and (9, 0) <= (local.hour, local.minute) <= (11, 0), local


def test_a_treating_facilitator_needs_a_license_in_the_clients_states(api: Api) -> None:
    """A lead or co-facilitator treats the group's clients, so needs a license for their states
    (at booking and when a seat is added); an observer does not."""
    program = api.program()
    lead = api.clinician(licensed_in=("NY", "NJ"))
    new_jersey_only = api.clinician(licensed_in=("NJ",))
    new_york_only = api.clinician(licensed_in=("NY",))
    start = local_day_at(days_ahead=5, hour=9)

    def group(facilitator: str, role: str, hour: int) -> pb.Session:
        return api.book(
            program.program_id,
            lead,
            [api.client()],  # in New York
            start + timedelta(hours=hour),
            kind=ev.SESSION_KIND_GROUP,
            capacity=3,
            facilitators=[pb.Facilitator(clinician_id=facilitator, role=role)],
        )

    with pytest.raises(grpc.RpcError) as unlicensed:
        group(new_jersey_only, "co_facilitator", 0)
    assert reason_of(unlicensed.value) == "COMPLIANCE_DENIED"
    group(new_jersey_only, "observer", 2)  # watches, does not treat

    session = group(new_york_only, "co_facilitator", 4)
    with pytest.raises(grpc.RpcError) as seat_elsewhere:
        api.call(
            "BookGroupSeat",
            pb.BookGroupSeatRequest(
                request_id=uid("seat"), session_id=session.session_id, client_id=api.client(home_state="NJ")
            ),
        )
    assert reason_of(seat_elsewhere.value) == "COMPLIANCE_DENIED"


def test_session_scheduled_names_the_treating_facilitators(api: Api, settings: Settings) -> None:
    """SessionScheduled lists the clinicians besides the session's who treat its clients (lead,
    co_facilitator) with their roles, so compliance re-checks them as it does the clinician; the
    clinician listed as lead again is not repeated, and an observer (watches, does not treat) is not
    listed."""
    tail = TopicTail(settings, "iop.scheduling.sessions.v1")
    try:
        program = api.program()
        clinician, lead, co, observer = api.clinician(), api.clinician(), api.clinician(), api.clinician()
        group = api.book(
            program.program_id,
            clinician,
            [api.client()],
            local_day_at(days_ahead=6, hour=9),
            kind=ev.SESSION_KIND_GROUP,
            capacity=3,
            facilitators=[
                pb.Facilitator(clinician_id=clinician, role="lead"),
                pb.Facilitator(clinician_id=lead, role="lead"),
                pb.Facilitator(clinician_id=co, role="co_facilitator"),
                pb.Facilitator(clinician_id=observer, role="observer"),
            ],
        )
        seen = tail.wait(group.session_id, lambda evs: any(e.type.endswith(".SessionScheduled") for e in evs))
        (scheduled,) = [e.payload() for e in seen if e.type.endswith(".SessionScheduled")]
        assert isinstance(scheduled, ev.SessionScheduled)
        assert [(f.clinician_id, f.role) for f in scheduled.treating_facilitators] == [
            (lead, "lead"),
            (co, "co_facilitator"),
        ]
        individual = api.book(program.program_id, clinician, [api.client()], local_day_at(days_ahead=6, hour=14))
        seen = tail.wait(individual.session_id, lambda evs: any(e.subject == individual.session_id for e in evs))
        (alone,) = [e.payload() for e in seen if e.subject == individual.session_id]
        assert isinstance(alone, ev.SessionScheduled) and list(alone.treating_facilitators) == []
    finally:
        tail.close()


def test_a_group_does_not_start_while_a_co_facilitator_is_suspended(api: Api) -> None:
    """StartSession re-checks each lead and co-facilitator in the clients' verified locations, as it
    evaluates the session's clinician: a co-facilitator suspended since booking refuses the start
    (COMPLIANCE_DENIED, metadata facilitator_id); reinstated, the group starts. A suspended observer
    does not stop it (an observer does not treat)."""
    program = api.program()
    clinician, co, observer = api.clinician(), api.clinician(), api.clinician()
    client = api.client()
    group = api.book(
        program.program_id,
        clinician,
        [client],
        next_slot(timedelta(minutes=20)),
        kind=ev.SESSION_KIND_GROUP,
        capacity=3,
        facilitators=[
            pb.Facilitator(clinician_id=co, role="co_facilitator"),
            pb.Facilitator(clinician_id=observer, role="observer"),
        ],
    )
    api.call(
        "CheckIn",
        pb.CheckInRequest(
            session_id=group.session_id,
            client_id=client,
            location=common_pb2.ClientLocation(state="NY", postal_code="10001", verified=True),
            privacy_attestation="alone",
        ),
    )

    def board_action(clinician_id: str, status: str, ago: timedelta) -> None:
        listed = api.compliance.ListClinicianCredentials(
            compliance_pb2.ListClinicianCredentialsRequest(clinician_id=clinician_id), metadata=api.md(), timeout=10
        )
        api.compliance.UpdateLicenseStatus(
            compliance_pb2.UpdateLicenseStatusRequest(
                license_id=listed.licenses[0].license_id,
                status=status,
                effective_at=to_timestamp(datetime.now(UTC) - ago),
            ),
            metadata=api.md(),
            timeout=10,
        )

    board_action(co, "suspended", timedelta(minutes=2))
    board_action(observer, "suspended", timedelta(minutes=2))
    with pytest.raises(grpc.RpcError) as refused:
        api.call("StartSession", pb.StartSessionRequest(session_id=group.session_id, clinician_state="NY"))
    assert reason_of(refused.value) == "COMPLIANCE_DENIED"
    metadata = error_metadata(refused.value)
    assert metadata["facilitator_id"] == co and "LICENSE_SUSPENDED" in metadata["compliance_reasons"], metadata
    assert api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id)).status == "checked_in"

    board_action(co, "active", timedelta(minutes=1))
    started = api.call("StartSession", pb.StartSessionRequest(session_id=group.session_id, clinician_state="NY"))
    assert started.status == "in_progress"


def test_a_session_started_early_is_checked_from_when_it_starts(api: Api) -> None:
    """A session may start up to 60 minutes before its booked start: the treating clinicians must
    hold their licenses from then, not from the booked start. A co-facilitator (and, in another
    session, the clinician) suspended until the booked start refuses an early start (until
    2026-12-07 both were checked from the booked start only, so the group started with them
    suspended, and compliance's own SessionStarted re-check then denied it)."""
    program = api.program()
    clinician, co, other = api.clinician(), api.clinician(), api.clinician()
    start = next_slot(timedelta(minutes=20))

    def booked_and_checked_in(lead: str, facilitators: list[pb.Facilitator], at: datetime) -> str:
        client = api.client()
        group = api.book(
            program.program_id, lead, [client], at, kind=ev.SESSION_KIND_GROUP, capacity=3, facilitators=facilitators
        )
        api.call(
            "CheckIn",
            pb.CheckInRequest(
                session_id=group.session_id,
                client_id=client,
                location=common_pb2.ClientLocation(state="NY", postal_code="10001", verified=True),
                privacy_attestation="alone",
            ),
        )
        return str(group.session_id)

    def suspended_until(clinician_id: str, until: datetime) -> None:
        listed = api.compliance.ListClinicianCredentials(
            compliance_pb2.ListClinicianCredentialsRequest(clinician_id=clinician_id), metadata=api.md(), timeout=10
        )
        for status, at in (("suspended", datetime.now(UTC) - timedelta(minutes=2)), ("active", until)):
            api.compliance.UpdateLicenseStatus(
                compliance_pb2.UpdateLicenseStatusRequest(
                    license_id=listed.licenses[0].license_id, status=status, effective_at=to_timestamp(at)
                ),
                metadata=api.md(),
                timeout=10,
            )

    group = booked_and_checked_in(clinician, [pb.Facilitator(clinician_id=co, role="co_facilitator")], start)
    own = booked_and_checked_in(other, [], start)
    suspended_until(co, start)
    suspended_until(other, start)
    with pytest.raises(grpc.RpcError) as refused:
        api.call("StartSession", pb.StartSessionRequest(session_id=group, clinician_state="NY"))
    assert reason_of(refused.value) == "COMPLIANCE_DENIED"
    metadata = error_metadata(refused.value)
    assert metadata["facilitator_id"] == co and "LICENSE_SUSPENDED" in metadata["compliance_reasons"], metadata
    # the clinician's own session, started early the same way
    with pytest.raises(grpc.RpcError) as refused:
        api.call("StartSession", pb.StartSessionRequest(session_id=own, clinician_state="NY"))
    assert reason_of(refused.value) == "COMPLIANCE_DENIED", refused.value.details()
    assert "LICENSE_SUSPENDED" in error_metadata(refused.value)["compliance_reasons"]


def test_schedules_search_and_tech_checks(api: Api) -> None:
    program = api.program()
    weekday_mornings = [pb.WeeklyWindow(weekday=i, start="09:00", end="12:00") for i in range(5)]
    clinician = api.clinician(windows=weekday_mornings)
    client = api.client()
    frm = next_slot(timedelta(days=1))
    found = api.call(
        "SearchSlots",
        pb.SearchSlotsRequest(
            program_id=program.program_id,
            clinician_id=clinician,
            client_ids=[client],
            to=to_timestamp(frm + timedelta(days=7)),
            duration_minutes=60,
            kind=ev.SESSION_KIND_INDIVIDUAL,
            limit=3,
            **{"from": to_timestamp(frm)},
        ),
    )
    assert len(found.slots) == 3
    tz = datetime.now(UTC).astimezone().tzinfo
    assert tz is not None
    first = found.slots[0].starts_at.ToDatetime(tzinfo=UTC)
    from zoneinfo import ZoneInfo

    local = first.astimezone(ZoneInfo("America/New_York"))
    assert local.weekday() < 5 and 9 <= local.hour < 12
    booked = api.book(program.program_id, clinician, [client], first)
    again = api.call(
        "SearchSlots",
        pb.SearchSlotsRequest(
            program_id=program.program_id,
            clinician_id=clinician,
            client_ids=[client],
            to=to_timestamp(frm + timedelta(days=7)),
            duration_minutes=60,
            limit=3,
            **{"from": to_timestamp(frm)},
        ),
    )
    assert first not in [s.starts_at.ToDatetime(tzinfo=UTC) for s in again.slots]
    view = pb.ScheduleViewRequest(
        owner_id=clinician, to=to_timestamp(frm + timedelta(days=8)), **{"from": to_timestamp(frm)}
    )
    schedule = api.call("GetClinicianSchedule", view, role="clinician", subject=clinician)
    assert [s.session_id for s in schedule.sessions] == [booked.session_id]
    assert schedule.days[0].screen_minutes == 60
    client_view = pb.ScheduleViewRequest(
        owner_id=client, to=to_timestamp(frm + timedelta(days=8)), **{"from": to_timestamp(frm)}
    )
    mine = api.call("GetClientSchedule", client_view, role="client", subject=client)
    assert [t.trigger for t in mine.tech_checks] == ["FIRST_SESSION"]
    task = mine.tech_checks[0]
    done = api.call(
        "CompleteTechCheck",
        pb.CompleteTechCheckRequest(task_id=task.task_id, passed=True),
        role="client",
        subject=client,
    )
    assert done.status == "passed"
    # The same local hour on the next weekday (the clinician works weekdays): days are added in New
    # York's wall time, so a daylight-saving change between the two keeps the slot in its window.
    following = first.astimezone(ZoneInfo("America/New_York")) + timedelta(days=1)
    while following.weekday() >= 5:
        following += timedelta(days=1)
    second = api.book(program.program_id, clinician, [client], following.astimezone(UTC))
    assert list(second.tech_check_task_ids) == []  # passed: no new tech check before the next session


def test_peer_supervision_series_is_scheduled_and_tracked(api: Api) -> None:
    a, b, c = api.clinician(), api.clinician(), api.clinician()
    first = next_slot(timedelta(days=1))
    series = api.call(
        "CreateCareSeries",
        pb.CreateCareSeriesRequest(
            request_id=uid("care"),
            kind=pb.CARE_KIND_PEER_SUPERVISION,
            clinician_ids=[a, b, c],
            facilitator_id=a,
            first_starts_at=to_timestamp(first),
            duration_minutes=60,
            interval_days=7,
            occurrences=4,
            time_zone="America/New_York",
        ),
        role="supervisor",
    )
    assert len(series.sessions) == 4
    # supervision time is reserved: no client session on top of it
    program, client = api.program(), api.client()
    with pytest.raises(grpc.RpcError) as busy:
        api.book(program.program_id, b, [client], first)
    assert reason_of(busy.value) == "CLINICIAN_DOUBLE_BOOKED"
    attended = api.call(
        "RecordCareAttendance",
        pb.RecordCareAttendanceRequest(
            care_session_id=series.sessions[0].care_session_id, clinician_id=b, attended=True
        ),
        role="clinician",
        subject=b,
    )
    assert list(attended.attended) == [b]
    summary = api.call("GetCareSummary", pb.GetCareSummaryRequest(clinician_id=b), role="supervisor")
    assert summary.attended == 1 and summary.next_at.seconds > 0 and not summary.overdue


def test_one_trace_from_booking_through_compliance_to_the_published_event(api: Api, settings: Settings) -> None:
    program = api.program()
    clinician, client = api.clinician(), api.client()
    tracer = TracerProvider().get_tracer("test-client")
    with tracer.start_as_current_span("platform app: book", kind=SpanKind.CLIENT) as root:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        trace_id = format(root.get_span_context().trace_id, "032x")
    metadata = api.md() + list(carrier.items())
    start = next_slot(timedelta(days=4))
    api.book(program.program_id, clinician, [client], start, metadata=metadata)

    def complete(spans: list[dict]) -> bool:
        names = {(s["localEndpoint"]["serviceName"], s.get("kind"), s["name"].lower()) for s in spans}
        return ("compliance", "SERVER", "/iop.compliance.v1.complianceservice/evaluatesession") in names and any(
            n[0] == "scheduler" and n[1] == "PRODUCER" and n[2] == "iop.scheduling.sessions.v1 send" for n in names
        )

    spans = wait_for_trace(settings, trace_id, complete, timeout_s=60)
    assert complete(spans), sorted({(s["localEndpoint"]["serviceName"], s["name"]) for s in spans})
    by_id = {s["id"]: s for s in spans}
    booking = next(
        s
        for s in spans
        if s["name"].lower() == "/iop.scheduler.v1.schedulerservice/booksession" and s.get("kind") == "SERVER"
    )
    evaluate = next(s for s in spans if s["localEndpoint"]["serviceName"] == "compliance" and s.get("kind") == "SERVER")
    # compliance's server span descends from the booking's server span (through the scheduler's client span)
    parent = by_id.get(evaluate.get("parentId", ""))
    assert parent is not None and parent["localEndpoint"]["serviceName"] == "scheduler"
    assert (
        parent.get("parentId") == booking["id"] or by_id.get(parent.get("parentId", ""), {}).get("id") == booking["id"]
    )
    for s in spans:  # no PHI (client ids) in span attributes
        for value in (s.get("tags") or {}).values():
            assert client not in value, s


def _check_in(api: Api, session_id: str, client_id: str, attestation: str) -> None:
    """The client checks in from New York (verified)."""
    location = common_pb2.ClientLocation(state="NY", verified=True)
    api.call(
        "CheckIn",
        pb.CheckInRequest(
            session_id=session_id, client_id=client_id, location=location, privacy_attestation=attestation
        ),
    )


def test_connection_dropped_interrupts_and_requires_a_tech_check(api: Api, settings: Settings) -> None:
    program = api.program()
    clinician, client = api.clinician(), api.client()
    start = next_slot(timedelta(minutes=20))
    s = api.book(program.program_id, clinician, [client], start, minutes=60)
    _check_in(api, s.session_id, client, "headphones")
    api.call("StartSession", pb.StartSessionRequest(session_id=s.session_id, clinician_state="NY"))
    # what engagement publishes when the video platform reports the client gone
    dropped = engagement_events.ConnectionDropped(
        session_id=s.session_id, client_id=client, clinician_id=clinician, dropped_at=to_timestamp(datetime.now(UTC))
    )
    event = CloudEvent.new("/iop/engagement", s.session_id, dropped)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    for _ in range(2):  # delivered twice: the handler is idempotent
        producer.send(
            "iop.engagement.attendance.v1", key=s.session_id.encode(), value=event.data, headers=event.headers()
        )
    producer.flush()
    producer.close()
    deadline = time.monotonic() + 120  # a new consumer group first works through the topic's backlog
    seen = api.call("GetSession", pb.GetSessionRequest(session_id=s.session_id))
    while seen.status != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = api.call("GetSession", pb.GetSessionRequest(session_id=s.session_id))
    assert seen.status == "interrupted" and seen.interruption_reason == "DISCONNECTED"
    assert seen.proposed_slots
    moved = api.call(
        "RescheduleSession",
        pb.RescheduleSessionRequest(request_id=uid("re"), session_id=s.session_id, reason="DISCONNECTED"),
    )
    assert moved.starts_at == seen.proposed_slots[0].starts_at
    assert len(moved.tech_check_task_ids) == 1  # a failed session: tech check before the next one
    tasks = api.call("ListTechChecks", pb.ListTechChecksRequest(client_id=client), role="client", subject=client)
    assert "AFTER_FAILED_SESSION" in [t.trigger for t in tasks.tasks]


def test_a_disconnection_shows_a_tech_check_due_before_the_clients_next_session(api: Api) -> None:
    # the client's next session was booked weeks ahead, before the failure: it had no task, and
    # neither the client's schedule nor their tech checks showed one due
    program = api.program()
    clinician, client = api.clinician(), api.client()
    first = api.book(program.program_id, clinician, [client], next_slot(timedelta(minutes=20)))
    later = api.book(program.program_id, clinician, [client], next_slot(timedelta(days=3)))
    as_client = {"role": "client", "subject": client}
    (first_task,) = first.tech_check_task_ids
    done = api.call("CompleteTechCheck", pb.CompleteTechCheckRequest(task_id=first_task, passed=True), **as_client)
    assert done.status == "passed"
    tasks = api.call("ListTechChecks", pb.ListTechChecksRequest(client_id=client), **as_client).tasks
    covered = [(first.session_id, "passed"), (later.session_id, "passed")]
    assert [(t.session_id, t.status) for t in tasks] == covered  # one check: both sessions
    _check_in(api, first.session_id, client, "alone")
    api.call("InterruptSession", pb.InterruptSessionRequest(session_id=first.session_id, reason="DISCONNECTED"))
    view = pb.ScheduleViewRequest(
        owner_id=client,
        to=to_timestamp(later.starts_at.ToDatetime(tzinfo=UTC) + timedelta(days=1)),
        **{"from": to_timestamp(datetime.now(UTC))},
    )
    schedule = api.call("GetClientSchedule", view, **as_client)
    (due,) = [t for t in schedule.tech_checks if t.status == "open"]
    assert due.session_id == later.session_id and due.trigger == "AFTER_FAILED_SESSION"
    assert due.due_by.ToDatetime(tzinfo=UTC) == later.starts_at.ToDatetime(tzinfo=UTC) - timedelta(hours=2)
    seen = api.call("GetSession", pb.GetSessionRequest(session_id=later.session_id), **as_client)
    assert list(seen.tech_check_task_ids) == [due.task_id]
    tasks = api.call("ListTechChecks", pb.ListTechChecksRequest(client_id=client), **as_client).tasks
    assert [(t.session_id, t.status) for t in tasks] == [(first.session_id, "passed"), (later.session_id, "open")]
