"""The scheduler's guards on input, ownership and all-or-nothing writes, against a real
compliance process, the real store and broker (defects found in review)."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from pymongo import MongoClient

from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from services.plumbing.envelope import CloudEvent
from services.plumbing.errors import bad_request_violations
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from services.scheduler import domain as d
from services.scheduler.topics import SESSIONS
from tests.integration.test_scheduler_support import (
    NEW_YORK,
    Api,
    fields_of,
    local_day_at,
    next_slot,
    reason_of,
    rich_status,
    running_for,
    scheduler_with_compliance,
    uid,
)
from tests.support import consumer_at_end

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[Api]:
    with scheduler_with_compliance(settings) as client:
        yield client


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator:
    mongo: MongoClient = MongoClient(settings.mongodb_uri, tz_aware=True)
    yield mongo[f"{settings.mongodb_database_prefix}scheduler"]
    mongo.close()


def refused(code: grpc.StatusCode, call, *args, **kw) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kw)
    assert info.value.code() == code, info.value.details()
    return info.value


def error_metadata(err: grpc.RpcError) -> dict[str, str]:
    for detail in rich_status(err).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


def care_series(api: Api, request_id: str, clinicians: list[str], first: datetime, **kw) -> pb.CareSeries:  # type: ignore[no-untyped-def]
    fields = {
        "request_id": request_id,
        "kind": pb.CARE_KIND_PEER_SUPERVISION,
        "clinician_ids": clinicians,
        "facilitator_id": clinicians[-1],
        "first_starts_at": to_timestamp(first),
        "duration_minutes": 60,
        "interval_days": 7,
        "occurrences": 4,
        "time_zone": "America/New_York",
        **kw,
    }
    return api.call("CreateCareSeries", pb.CreateCareSeriesRequest(**fields), role="supervisor")


# ---------- A. a refused care series stores nothing ----------


def test_a_refused_care_series_leaves_no_occurrence_claim_or_event(api: Api, db) -> None:
    a, b = api.clinician(), api.clinician()
    first = local_day_at(days_ahead=2, hour=8)
    # the second occurrence (a week later, 08:00 local) collides with b's client session
    program = api.program()
    blocker = api.book(program.program_id, b, [api.client()], local_day_at(days_ahead=9, hour=8))
    request_id = uid("care")
    err = refused(grpc.StatusCode.FAILED_PRECONDITION, care_series, api, request_id, [a, b], first)
    assert reason_of(err) == "CLINICIAN_DOUBLE_BOOKED"
    assert error_metadata(err) == {"occurrence": "2"}
    series_id = f"series-{uuid.uuid5(uuid.NAMESPACE_URL, request_id)}"
    care_ids = [f"{series_id}-{n:02d}" for n in range(4)]
    assert db.care_sessions.count_documents({"_id": {"$in": care_ids}}) == 0  # no occurrence, so no outbox event
    assert db.claims.count_documents({"session_id": {"$in": care_ids}}) == 0
    # a's time was given back: a client session at the first occurrence's time books
    api.book(program.program_id, a, [api.client()], first)
    api.call("CancelSession", pb.CancelSessionRequest(session_id=blocker.session_id, reason="make room"))
    # the first occurrence is a's now: the series is refused again, at occurrence 1, and stores nothing
    err = refused(grpc.StatusCode.FAILED_PRECONDITION, care_series, api, request_id, [a, b], first)
    assert reason_of(err) == "CLINICIAN_DOUBLE_BOOKED"
    assert db.claims.count_documents({"session_id": {"$in": care_ids}}) == 0
    later = care_series(api, uid("care"), [a, b], first + timedelta(hours=2))
    assert len(later.sessions) == 4
    assert db.claims.count_documents({"session_id": {"$in": [s.care_session_id for s in later.sessions]}}) == 32


def test_a_care_series_request_id_reused_with_other_content_is_refused(api: Api, db) -> None:
    a, b, c = api.clinician(), api.clinician(), api.clinician()
    first = local_day_at(days_ahead=3, hour=7)
    request_id = uid("care")
    series = care_series(api, request_id, [a, b], first)
    assert care_series(api, request_id, [a, b], first) == series  # a retry: the same series
    assert care_series(api, request_id, [b, a], first, facilitator_id=b) == series  # its members in another order
    care_ids = [s.care_session_id for s in series.sessions]
    claims_before = db.claims.count_documents({"session_id": {"$in": care_ids}})
    for other in (
        {"first": first + timedelta(hours=2)},
        {"clinicians": [a, c]},
        {"occurrences": 2},
        {"occurrences": 6},
        {"interval_days": 14},
        {"duration_minutes": 30},
        {"kind": pb.CARE_KIND_TEAM_CHECK_IN},
    ):
        clinicians = other.pop("clinicians", [a, b])
        at = other.pop("first", first)
        err = refused(grpc.StatusCode.ALREADY_EXISTS, care_series, api, request_id, clinicians, at, **other)
        assert reason_of(err) == "REQUEST_ID_REUSED", (clinicians, at, other)
        assert error_metadata(err) == {"series_id": series.series_id}
    # nothing of the refused requests was stored or reserved: the series is as it was, c is free
    assert db.claims.count_documents({"session_id": {"$in": care_ids}}) == claims_before
    assert db.care_sessions.count_documents({"series_id": series.series_id}) == 4
    assert api.book(api.program().program_id, c, [api.client()], first).status == "booked"
    assert api.book(api.program().program_id, a, [api.client()], first + timedelta(hours=2)).status == "booked"


# ---------- B. a booking's cohort ----------


def test_a_booking_names_a_known_cohort_of_its_program_with_its_clients(api: Api, db) -> None:
    program, other_program = api.program(), api.program()
    clinician = api.clinician()
    member, outsider = api.client(), api.client()

    ours, theirs = api.cohort(program.program_id, [member]), api.cohort(other_program.program_id, [member])
    start = local_day_at(days_ahead=3, hour=10)
    book = api.book
    err = refused(grpc.StatusCode.NOT_FOUND, book, program.program_id, clinician, [member], start, cohort_id="no-such")
    assert "cohort" in (err.details() or "")
    err = refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        book,
        program.program_id,
        clinician,
        [member],
        start,
        cohort_id=theirs.cohort_id,
    )
    assert reason_of(err) == "COHORT_NOT_IN_PROGRAM"
    err = refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        book,
        program.program_id,
        clinician,
        [outsider],
        start,
        cohort_id=ours.cohort_id,
    )
    assert reason_of(err) == "CLIENT_NOT_IN_COHORT"
    assert db.sessions.count_documents({"clinician_id": clinician}) == 0
    group = book(
        program.program_id,
        clinician,
        [member],
        start,
        kind=ev.SESSION_KIND_GROUP,
        capacity=4,
        cohort_id=ours.cohort_id,
    )
    assert group.cohort_id == ours.cohort_id
    # a seat in a cohort's group is for the cohort's clients
    seat = pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=group.session_id, client_id=outsider)
    assert reason_of(refused(grpc.StatusCode.FAILED_PRECONDITION, api.call, "BookGroupSeat", seat)) == (
        "CLIENT_NOT_IN_COHORT"
    )


def test_clients_join_and_leave_a_running_cohort(api: Api) -> None:
    program, clinician = api.program(), api.clinician()
    founder, newcomer = api.client(), api.client()
    cohort = api.cohort(program.program_id, [founder])
    start = local_day_at(days_ahead=4, hour=13)
    group = api.book(
        program.program_id,
        clinician,
        [founder],
        start,
        kind=ev.SESSION_KIND_GROUP,
        capacity=4,
        cohort_id=cohort.cohort_id,
    )

    def seat(client_id: str) -> pb.Session:
        request = pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=group.session_id, client_id=client_id)
        return api.call("BookGroupSeat", request)

    def change(method: str, cohort_id: str, client_id: str, role: str = "supervisor") -> pb.Cohort:
        request_type = pb.AddCohortClientRequest if method == "AddCohortClient" else pb.RemoveCohortClientRequest
        return api.call(method, request_type(cohort_id=cohort_id, client_id=client_id), role=role, subject="sup-1")

    assert reason_of(refused(grpc.StatusCode.FAILED_PRECONDITION, seat, newcomer)) == "CLIENT_NOT_IN_COHORT"
    # admitted: a member, once however often it is sent, and seated in the cohort's group
    for _ in range(2):
        assert list(change("AddCohortClient", cohort.cohort_id, newcomer).client_ids) == [founder, newcomer]
    assert newcomer in seat(newcomer).client_ids
    # discharged: no longer a member; a new cohort session does not take them
    for _ in range(2):
        assert list(change("RemoveCohortClient", cohort.cohort_id, newcomer).client_ids) == [founder]
    err = refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        api.book,
        program.program_id,
        clinician,
        [newcomer],
        start + timedelta(days=1),
        cohort_id=cohort.cohort_id,
    )
    assert reason_of(err) == "CLIENT_NOT_IN_COHORT"
    # bad input, unknown cohort or client, and roles
    for method in ("AddCohortClient", "RemoveCohortClient"):
        err = refused(grpc.StatusCode.INVALID_ARGUMENT, change, method, " ", "")
        assert fields_of(err) == {"cohort_id", "client_id"}
        err = refused(grpc.StatusCode.NOT_FOUND, change, method, "no-such-cohort", newcomer)
        assert "cohort" in (err.details() or "")
        for role in ("clinician", "client"):
            err = refused(grpc.StatusCode.PERMISSION_DENIED, change, method, cohort.cohort_id, newcomer, role=role)
            assert reason_of(err) == "ROLE_NOT_ALLOWED"
    err = refused(grpc.StatusCode.NOT_FOUND, change, "AddCohortClient", cohort.cohort_id, uid("client"))
    assert "client" in (err.details() or "")
    assert list(change("AddCohortClient", cohort.cohort_id, newcomer, role="platform").client_ids) == [
        founder,
        newcomer,
    ]


# ---------- C. time zones ----------


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "right/America/New_York", "posix/Asia/Tokyo"])
def test_only_iana_region_time_zones_are_accepted(api: Api, zone: str) -> None:
    clinician_req = pb.SetClinicianAvailabilityRequest(
        clinician_id=uid("clin"),
        time_zone=zone,
        state="NY",
        windows=[pb.WeeklyWindow(weekday=0, start="09:00", end="12:00")],
    )
    client_req = pb.SetClientAvailabilityRequest(
        client_id=uid("client"),
        time_zone=zone,
        home_state="NY",
        windows=[pb.WeeklyWindow(weekday=0, start="09:00", end="12:00")],
    )
    program_req = pb.CreateProgramRequest(
        request_id=uid("prog"),
        name="Adult IOP",
        time_zone=zone,
        level_of_care="IOP_PSYCH",
        backup_line="+15555550100",
        tracks=[pb.Track(track_id="t", name="t", hours_per_day=3, min_days_per_week=3, max_days_per_week=5)],
    )
    for method, request in [
        ("SetClinicianAvailability", clinician_req),
        ("SetClientAvailability", client_req),
        ("CreateProgram", program_req),
    ]:
        err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.call, method, request)
        assert fields_of(err) == {"time_zone"}, method
    a, b = api.clinician(), api.clinician()
    err = refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        care_series,
        api,
        uid("care"),
        [a, b],
        next_slot(timedelta(days=1)),
        time_zone=zone,
    )
    assert fields_of(err) == {"time_zone"}


def test_utc_is_a_time_zone(api: Api) -> None:
    assert api.clinician(time_zone="UTC")


def test_profiles_saved_with_a_zone_the_rule_now_refuses_still_book(api: Api, db) -> None:
    program, clinician, client = api.program(), api.clinician(), api.client()
    for collection, profile in (("clinicians", clinician), ("clients", client)):  # saved before 2026-12-07
        assert db[collection].update_one({"_id": profile}, {"$set": {"time_zone": "US/Eastern"}}).modified_count == 1
    assert api.book(program.program_id, clinician, [client], local_day_at(days_ahead=2, hour=14)).status == "booked"


# ---------- D. who may read and change what ----------


def test_a_client_searches_slots_for_themselves_only(api: Api) -> None:
    program, clinician = api.program(), api.clinician()
    me, someone = api.client(), api.client()
    frm = next_slot(timedelta(days=1))

    def search(client_ids: list[str]) -> pb.SearchSlotsResponse:
        request = pb.SearchSlotsRequest(
            program_id=program.program_id,
            clinician_id=clinician,
            client_ids=client_ids,
            to=to_timestamp(frm + timedelta(days=2)),
            duration_minutes=60,
            limit=2,
            **{"from": to_timestamp(frm)},
        )
        return api.call("SearchSlots", request, role="client", subject=me)

    assert len(search([me]).slots) == 2
    for other in ([someone], [me, someone], []):
        err = refused(grpc.StatusCode.PERMISSION_DENIED, search, other)
        assert reason_of(err) == "NOT_OWN_RECORD", other


def test_clinicians_set_their_own_windows_and_supervisors_their_fatigue_rules(api: Api) -> None:
    me = api.clinician(max_back_to_back_sessions=2)  # as a platform app would seed it
    other = api.clinician()
    windows = [pb.WeeklyWindow(weekday=i, start="08:00", end="18:00") for i in range(5)]

    def set_by(role: str, subject: str, clinician_id: str, **rules: int) -> pb.ClinicianProfile:
        request = pb.SetClinicianAvailabilityRequest(
            clinician_id=clinician_id, time_zone="America/New_York", state="NY", windows=windows
        )
        if rules:
            request.fatigue_rules.CopyFrom(pb.FatigueRules(**rules))
        return api.call("SetClinicianAvailability", request, role=role, subject=subject)

    err = refused(grpc.StatusCode.PERMISSION_DENIED, set_by, "clinician", me, other)
    assert reason_of(err) == "NOT_OWN_RECORD"
    err = refused(grpc.StatusCode.PERMISSION_DENIED, set_by, "clinician", me, me, max_back_to_back_sessions=9)
    assert reason_of(err) == "RULES_REQUIRE_SUPERVISOR"
    mine = set_by("clinician", me, me)
    assert len(mine.windows) == 5
    assert mine.fatigue_rules.max_back_to_back_sessions == 2  # the clinician's update kept the supervisor's rules
    assert set_by("supervisor", "sup-1", me, max_back_to_back_sessions=4).fatigue_rules.max_back_to_back_sessions == 4


def test_a_clinician_reads_their_own_schedule_and_records_their_own_care(api: Api) -> None:
    a, b, c = api.clinician(), api.clinician(), api.clinician()
    frm = next_slot(timedelta(days=1))
    view = pb.ScheduleViewRequest(owner_id=a, to=to_timestamp(frm + timedelta(days=7)), **{"from": to_timestamp(frm)})
    err = refused(
        grpc.StatusCode.PERMISSION_DENIED, api.call, "GetClinicianSchedule", view, role="clinician", subject=b
    )
    assert reason_of(err) == "NOT_OWN_RECORD"
    assert api.call("GetClinicianSchedule", view, role="clinician", subject=a).clinician_id == a
    assert api.call("GetClinicianSchedule", view, role="supervisor", subject="sup-1").clinician_id == a

    series = care_series(api, uid("care"), [a, b, c], local_day_at(days_ahead=2, hour=7))  # c facilitates
    care_id = series.sessions[0].care_session_id

    def record(subject: str, clinician_id: str) -> pb.CareSession:
        request = pb.RecordCareAttendanceRequest(care_session_id=care_id, clinician_id=clinician_id, attended=True)
        return api.call("RecordCareAttendance", request, role="clinician", subject=subject)

    err = refused(grpc.StatusCode.PERMISSION_DENIED, record, b, a)
    assert reason_of(err) == "NOT_OWN_RECORD"
    assert list(record(a, a).attended) == [a]
    assert sorted(record(c, b).attended) == sorted([a, b])  # the facilitator records the others
    summary = pb.GetCareSummaryRequest(clinician_id=a)
    err = refused(grpc.StatusCode.PERMISSION_DENIED, api.call, "GetCareSummary", summary, role="clinician", subject=b)
    assert reason_of(err) == "NOT_OWN_RECORD"
    assert api.call("GetCareSummary", summary, role="clinician", subject=a).attended == 1


def test_a_session_is_read_and_changed_by_its_care_team_and_its_clients_only(api: Api, db) -> None:
    program = api.program()
    lead, co, observer, stranger = api.clinician(), api.clinician(), api.clinician(), api.clinician()
    a, b, outsider = api.client(), api.client(), api.client()
    group = api.book(
        program.program_id,
        lead,
        [a, b],
        next_slot(timedelta(minutes=20)),
        kind=ev.SESSION_KIND_GROUP,
        capacity=3,
        facilitators=[
            pb.Facilitator(clinician_id=co, role="co_facilitator"),
            pb.Facilitator(clinician_id=observer, role="observer"),
        ],
    )
    sid, unknown = group.session_id, str(uuid.uuid4())
    location = common_pb2.ClientLocation(state="NY", verified=True)

    def as_(role: str, subject: str, method: str, request) -> pb.Session:  # type: ignore[no-untyped-def]
        return api.call(method, request, role=role, subject=subject)

    def denied(role: str, subject: str, method: str, request) -> str | None:  # type: ignore[no-untyped-def]
        return reason_of(refused(grpc.StatusCode.PERMISSION_DENIED, as_, role, subject, method, request))

    # reading: the session's clinician and facilitators (an observer too); a client their own part
    for clinician in (lead, co, observer):
        assert sorted(as_("clinician", clinician, "GetSession", pb.GetSessionRequest(session_id=sid)).client_ids) == (
            sorted([a, b])
        )
    mine = as_("client", a, "GetSession", pb.GetSessionRequest(session_id=sid))
    assert list(mine.client_ids) == [a]  # not who else is in the group
    assert all(t.endswith(a) for t in mine.tech_check_task_ids)
    # anyone else is refused alike whether the session exists or not: a refusal reveals nothing
    for session_id in (sid, unknown):
        read = pb.GetSessionRequest(session_id=session_id)
        assert denied("clinician", stranger, "GetSession", read) == "NOT_ON_CARE_TEAM"
        assert denied("client", outsider, "GetSession", read) == "NOT_OWN_RECORD"
    check_in = pb.CheckInRequest(session_id=sid, client_id=outsider, location=location, privacy_attestation="alone")
    assert denied("client", outsider, "CheckIn", check_in) == "NOT_OWN_RECORD"  # was CLIENT_NOT_IN_SESSION
    # acting: not a stranger, not an observer
    actions = [
        ("CheckIn", pb.CheckInRequest(session_id=sid, client_id=a, location=location, privacy_attestation="alone")),
        ("StartSession", pb.StartSessionRequest(session_id=sid, clinician_state="NY")),
        ("EndSession", pb.EndSessionRequest(session_id=sid, modality=common_pb2.MODALITY_VIDEO)),
        ("InterruptSession", pb.InterruptSessionRequest(session_id=sid, reason="OTHER")),
        ("CancelSession", pb.CancelSessionRequest(session_id=sid, reason="not mine")),
        ("RescheduleSession", pb.RescheduleSessionRequest(request_id=uid("re"), session_id=sid)),
        ("BookGroupSeat", pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=sid, client_id=outsider)),
    ]
    for method, request in actions:
        assert denied("clinician", stranger, method, request) == "NOT_ON_CARE_TEAM", method
        assert denied("clinician", observer, method, request) == "OBSERVER_CANNOT_ACT", method
    booking = pb.ScheduleSessionRequest(
        request_id=uid("book"),
        program_id=program.program_id,
        clinician_id=lead,
        client_ids=[outsider],
        starts_at=to_timestamp(local_day_at(days_ahead=5, hour=10)),
        ends_at=to_timestamp(local_day_at(days_ahead=5, hour=11)),
        kind=ev.SESSION_KIND_INDIVIDUAL,
    )
    assert denied("clinician", stranger, "BookSession", booking) == "NOT_ON_CARE_TEAM"  # not a colleague's sessions
    # nothing changed, and only the permitted reads were audited
    unchanged = api.call("GetSession", pb.GetSessionRequest(session_id=sid))
    assert unchanged.status == "booked" and sorted(unchanged.client_ids) == sorted([a, b])
    assert not unchanged.check_ins
    assert db.sessions.count_documents({"request_id": booking.request_id}) == 0
    audited = {r["principal"] for r in db.phi_access_audit.find({"resource_id": sid})}
    assert {lead, co, observer, a} <= audited and not {stranger, outsider} & audited
    # the care team acts, a client checks in to their own session and sees their own part of it
    checked = as_("client", a, "CheckIn", actions[0][1])
    assert [c.client_id for c in checked.check_ins] == [a] and list(checked.client_ids) == [a]
    assert as_("clinician", co, "StartSession", actions[1][1]).status == "in_progress"
    assert as_("clinician", lead, "BookSession", booking).clinician_id == lead


def test_a_seated_clients_tech_check_shows_in_the_session_to_whom_may_see_it(api: Api) -> None:
    # a client seated by BookGroupSeat has their task listed on their seat, not on the session:
    # GetSession showed the booked clients' tasks only
    program, lead, stranger = api.program(), api.clinician(), api.clinician()
    a, seated = api.client(), api.client()
    group = api.book(
        program.program_id, lead, [a], local_day_at(days_ahead=3, hour=14), kind=ev.SESSION_KIND_GROUP, capacity=3
    )
    sid = group.session_id
    seat = pb.BookGroupSeatRequest(request_id=uid("seat"), session_id=sid, client_id=seated)
    own_task, seated_task = f"tc-{sid}-{a}", f"tc-{sid}-{seated}"
    assert sorted(api.call("BookGroupSeat", seat).tech_check_task_ids) == sorted([own_task, seated_task])
    read = pb.GetSessionRequest(session_id=sid)
    for role, subject in (("platform", "test-app"), ("supervisor", "sup"), ("clinician", lead)):
        whole = api.call("GetSession", read, role=role, subject=subject)
        assert sorted(whole.tech_check_task_ids) == sorted([own_task, seated_task]), role
    # a client sees their own task only, as they see only themselves of the group
    assert list(api.call("GetSession", read, role="client", subject=seated).tech_check_task_ids) == [seated_task]
    assert list(api.call("GetSession", read, role="client", subject=a).tech_check_task_ids) == [own_task]
    err = refused(grpc.StatusCode.PERMISSION_DENIED, api.call, "GetSession", read, role="clinician", subject=stranger)
    assert reason_of(err) == "NOT_ON_CARE_TEAM"
    listed = api.call("ListTechChecks", pb.ListTechChecksRequest(client_id=seated), role="client", subject=seated)
    assert [t.task_id for t in listed.tasks] == [seated_task]  # the task GetSession names is the one listed


def test_a_clients_records_are_read_by_the_clinicians_who_treat_them(api: Api) -> None:
    program = api.program()
    lead, observer, stranger, colleague = api.clinician(), api.clinician(), api.clinician(), api.clinician()
    a, b = api.client(), api.client()
    start = local_day_at(days_ahead=2, hour=10)
    group = api.book(
        program.program_id,
        lead,
        [a, b],
        start,
        kind=ev.SESSION_KIND_GROUP,
        capacity=3,
        facilitators=[pb.Facilitator(clinician_id=observer, role="observer")],
    )
    individual = api.book(program.program_id, colleague, [a], start + timedelta(hours=3))
    view = pb.ScheduleViewRequest(
        owner_id=a, to=to_timestamp(start + timedelta(days=1)), **{"from": to_timestamp(start - timedelta(hours=1))}
    )
    tech_checks = pb.ListTechChecksRequest(client_id=a)
    for clinician in (stranger, observer):  # an observer watches a session and does not treat its clients
        for method, request in (("GetClientSchedule", view), ("ListTechChecks", tech_checks)):
            err = refused(
                grpc.StatusCode.PERMISSION_DENIED, api.call, method, request, role="clinician", subject=clinician
            )
            assert reason_of(err) == "NOT_ON_CARE_TEAM", (clinician, method)
    task_id = api.call("ListTechChecks", tech_checks).tasks[0].task_id
    err = refused(
        grpc.StatusCode.PERMISSION_DENIED,
        api.call,
        "CompleteTechCheck",
        pb.CompleteTechCheckRequest(task_id=task_id, passed=True),
        role="clinician",
        subject=stranger,
    )
    assert reason_of(err) == "NOT_ON_CARE_TEAM"
    seen = api.call("GetClientSchedule", view, role="clinician", subject=lead)
    by_id = {s.session_id: s for s in seen.sessions}
    assert sorted(by_id[group.session_id].client_ids) == sorted([a, b])  # the lead's own group, whole
    assert list(by_id[individual.session_id].client_ids) == [a]
    assert api.call("ListTechChecks", tech_checks, role="clinician", subject=lead).tasks
    # the client sees their own schedule, and of their group only themselves
    own = api.call("GetClientSchedule", view, role="client", subject=a)
    assert {s.session_id for s in own.sessions} == {group.session_id, individual.session_id}
    assert all(list(s.client_ids) == [a] for s in own.sessions)


def test_a_client_sees_no_slots_proposed_for_another_client_of_their_group(api: Api) -> None:
    # the slots proposed to a client who reported an unsafe place lie in that client's alone-windows:
    # when nobody else is home, which their group must not learn
    program, lead = api.program(), api.clinician()
    alone = [pb.WeeklyWindow(weekday=i, start="02:00", end="03:00") for i in range(7)]
    a, b = api.client(), api.client(alone_windows=alone)
    group = api.book(
        program.program_id, lead, [a, b], next_slot(timedelta(minutes=20)), kind=ev.SESSION_KIND_GROUP, capacity=3
    )
    location = common_pb2.ClientLocation(state="NY", verified=True)
    check_in = pb.CheckInRequest(
        session_id=group.session_id, client_id=b, location=location, privacy_attestation="compromised"
    )
    assert api.call("CheckIn", check_in, role="client", subject=b).proposed_slots  # b's own: b sees them
    read = pb.GetSessionRequest(session_id=group.session_id)
    assert all(s.in_alone_window for s in api.call("GetSession", read, role="client", subject=b).proposed_slots)
    staff = api.call("GetSession", read, role="clinician", subject=lead)  # the care team does, as b's
    assert [p.client_id for p in staff.client_proposals] == [b] and staff.client_proposals[0].slots
    assert not staff.proposed_slots  # not the group's: RescheduleSession does not take them
    assert not api.call("GetSession", read, role="client", subject=a).proposed_slots
    start = datetime.now(UTC) - timedelta(hours=1)
    view = pb.ScheduleViewRequest(
        owner_id=a, to=to_timestamp(start + timedelta(days=1)), **{"from": to_timestamp(start)}
    )
    (seen,) = api.call("GetClientSchedule", view, role="client", subject=a).sessions
    assert not seen.proposed_slots


def test_a_tech_check_that_does_not_exist_is_refused_as_one_the_caller_may_not_touch(api: Api) -> None:
    program, lead, stranger = api.program(), api.clinician(), api.clinician()
    a, b = api.client(), api.client()
    session = api.book(program.program_id, lead, [a], local_day_at(days_ahead=3, hour=11))
    (task_id,) = session.tech_check_task_ids
    for role, subject, reason in (("clinician", stranger, "NOT_ON_CARE_TEAM"), ("client", b, "NOT_OWN_RECORD")):
        answers = set()
        for tid in (task_id, f"tc-{session.session_id}-{b}", "tc-no-such-task"):
            request = pb.CompleteTechCheckRequest(task_id=tid, passed=True)
            err = refused(
                grpc.StatusCode.PERMISSION_DENIED, api.call, "CompleteTechCheck", request, role=role, subject=subject
            )
            answers.add((reason_of(err), err.details()))
        assert len(answers) == 1 and next(iter(answers))[0] == reason, answers  # alike: nothing told
    err = refused(
        grpc.StatusCode.NOT_FOUND, api.call, "CompleteTechCheck", pb.CompleteTechCheckRequest(task_id="tc-no-such-task")
    )
    assert "tech_check" in (err.details() or "")  # supervisors and the platform are told
    assert api.call("ListTechChecks", pb.ListTechChecksRequest(client_id=a)).tasks[0].status == "open"


def test_a_booking_sent_again_with_other_facilitators_is_another_booking(api: Api) -> None:
    # a clinician not on a session must not get it by sending its booking again, with themselves added
    program, lead, stranger = api.program(), api.clinician(), api.clinician()
    a = api.client()
    request_id = uid("book")
    start = local_day_at(days_ahead=6, hour=10)
    booked = api.book(program.program_id, lead, [a], start, request_id=request_id)
    replay = pb.ScheduleSessionRequest(
        request_id=request_id,
        program_id=program.program_id,
        clinician_id=lead,
        client_ids=[a],
        starts_at=to_timestamp(start),
        ends_at=to_timestamp(start + timedelta(minutes=60)),
        kind=ev.SESSION_KIND_INDIVIDUAL,
        facilitators=[pb.Facilitator(clinician_id=stranger, role="co_facilitator")],
    )
    err = refused(grpc.StatusCode.ALREADY_EXISTS, api.call, "BookSession", replay, role="clinician", subject=stranger)
    assert reason_of(err) == "REQUEST_ID_REUSED"
    assert error_metadata(err) == {"session_id": booked.session_id}
    # the same booking sent again by its clinician is still that booking
    again = api.book(program.program_id, lead, [a], start, request_id=request_id, metadata=api.md("clinician", lead))
    assert again.session_id == booked.session_id and not again.facilitators


def test_a_care_session_that_does_not_exist_is_refused_to_a_clinician_as_one_not_theirs(api: Api) -> None:
    a, b, outsider = api.clinician(), api.clinician(), api.clinician()
    series = care_series(api, uid("care"), [a, b], local_day_at(days_ahead=2, hour=6))
    care_id = series.sessions[0].care_session_id
    answers = set()
    for care_session_id in (care_id, f"{care_id}-no-such", "no-such-care-session"):
        request = pb.RecordCareAttendanceRequest(care_session_id=care_session_id, clinician_id=outsider, attended=True)
        err = refused(
            grpc.StatusCode.PERMISSION_DENIED,
            api.call,
            "RecordCareAttendance",
            request,
            role="clinician",
            subject=outsider,
        )
        answers.add((reason_of(err), err.details()))
    assert len(answers) == 1 and next(iter(answers))[0] == "NOT_OWN_RECORD", answers  # alike: nothing told
    missing = pb.RecordCareAttendanceRequest(care_session_id="no-such-care-session", clinician_id=a, attended=True)
    assert "care_session" in (
        refused(grpc.StatusCode.NOT_FOUND, api.call, "RecordCareAttendance", missing, role="supervisor").details() or ""
    )
    mine = pb.RecordCareAttendanceRequest(care_session_id=care_id, clinician_id=a, attended=True)
    assert list(api.call("RecordCareAttendance", mine, role="clinician", subject=a).attended) == [a]
    assert not api.call("RecordCareAttendance", mine, role="supervisor").missed


# ---------- E. backup phone at check-in ----------


def test_a_check_in_backup_phone_is_a_phone_number(api: Api, db) -> None:
    program, clinician, client = api.program(), api.clinician(), api.client()
    session = api.book(program.program_id, clinician, [client], next_slot(timedelta(minutes=20)))
    location = common_pb2.ClientLocation(state="NY", verified=True)

    def check_in(phone: str) -> pb.Session:
        request = pb.CheckInRequest(
            session_id=session.session_id,
            client_id=client,
            location=location,
            privacy_attestation="alone",
            backup_phone=phone,
        )
        return api.call("CheckIn", request, role="client", subject=client)

    for bad in ("call me maybe", "555-0143", "+0123456789", "(112) 555-0143"):
        assert fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, check_in, bad)) == {"backup_phone"}, bad
    assert db.session_facts.count_documents({"_id": f"{session.session_id}:{client}"}) == 0
    assert check_in("(212) 555-0143").status == "checked_in"
    stored = db.session_facts.find_one({"_id": f"{session.session_id}:{client}"})
    assert stored["backup_phone"] == "+12125550143"


# ---------- F. attendance at the end of a session ----------


def test_attendance_names_each_booked_client_once_within_the_minutes_the_session_ran(api: Api, db) -> None:
    program, clinician = api.program(), api.clinician()
    a, b = api.client(), api.client()
    start = next_slot(timedelta(minutes=20))
    session = api.book(program.program_id, clinician, [a, b], start, kind=ev.SESSION_KIND_GROUP, capacity=3)
    location = common_pb2.ClientLocation(state="NY", verified=True)
    check_in = pb.CheckInRequest(
        session_id=session.session_id, client_id=a, location=location, privacy_attestation="alone"
    )
    api.call("CheckIn", check_in)
    api.call("StartSession", pb.StartSessionRequest(session_id=session.session_id, clinician_state="NY"))
    running_for(db, session.session_id, 40)  # ended 20 minutes early: 41 ran (rounded up), 5 more are the grace

    def end(*rows: tuple[str, int]) -> pb.Session:
        attendance = [ev.ClientAttendance(client_id=c, minutes_attended=m) for c, m in rows]
        request = pb.EndSessionRequest(
            session_id=session.session_id, modality=common_pb2.MODALITY_VIDEO, attendance=attendance
        )
        return api.call("EndSession", request, role="clinician", subject=clinician)

    assert fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, end, (a, 40), (a, 40))) == {"attendance[1].client_id"}
    assert fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, end, (a, 1440))) == {"attendance[0].minutes_attended"}
    beyond = refused(grpc.StatusCode.INVALID_ARGUMENT, end, (a, 47))  # the booked 60 minutes did not run
    assert fields_of(beyond) == {"attendance[0].minutes_attended"}
    assert bad_request_violations(rich_status(beyond)) == [
        (
            "attendance[0].minutes_attended",
            "0 to 46 (the minutes the session ran since StartSession, plus 5 minutes' grace)",
        )
    ]
    assert fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, end, (uid("client"), 30))) == {"attendance[0].client_id"}
    assert fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, end, (a, -5))) == {"attendance[0].minutes_attended"}
    ended = end((a, 46), (b, 0))
    assert ended.status == "ended"


# ---------- G. blank ids ----------


def test_blank_ids_are_invalid_arguments_naming_their_place(api: Api) -> None:
    program, clinician, client = api.program(), api.clinician(), api.client()
    cohort = pb.CreateCohortRequest(
        request_id=uid("cohort"),
        program_id=program.program_id,
        track_id="t3x5",
        client_ids=[client, ""],
        starts_on=to_timestamp(datetime.now(UTC)),
    )
    assert "client_ids[1]" in fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, api.call, "CreateCohort", cohort))
    frm = next_slot(timedelta(days=1))
    search = pb.SearchSlotsRequest(
        program_id=program.program_id,
        clinician_id=clinician,
        client_ids=[""],
        to=to_timestamp(frm + timedelta(days=1)),
        duration_minutes=60,
        **{"from": to_timestamp(frm)},
    )
    assert "client_ids[0]" in fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, api.call, "SearchSlots", search))
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.book, program.program_id, clinician, [" "], frm)
    assert "client_ids[0]" in fields_of(err)
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, care_series, api, uid("care"), ["", clinician], frm)
    assert "clinician_ids[0]" in fields_of(err)


# ---------- H. fatigue rules that make no sense ----------


def test_fatigue_rules_that_would_refuse_every_booking_are_invalid(api: Api) -> None:
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.clinician, max_back_to_back_sessions=0)
    assert fields_of(err) == {"fatigue_rules.max_back_to_back_sessions"}
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.program, max_continuous_video_minutes=0)
    assert fields_of(err) == {"fatigue_rules.max_continuous_video_minutes"}
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.program, max_client_screen_minutes_per_day=5)
    assert fields_of(err) == {"fatigue_rules.max_client_screen_minutes_per_day"}


# ---------- I. a horizon for bookings, searches and series ----------


def test_bookings_searches_and_series_lie_within_two_years(api: Api) -> None:
    program, clinician = api.program(), api.clinician()
    tokyo = api.client(time_zone="Asia/Tokyo", home_state="NY")
    last_day = datetime(9999, 12, 31, 22, tzinfo=UTC)
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.book, program.program_id, clinician, [tokyo], last_day)
    assert "starts_at" in fields_of(err)
    in_three_years = next_slot(timedelta(days=3 * 365))
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.book, program.program_id, clinician, [tokyo], in_three_years)
    assert "starts_at" in fields_of(err)
    search = pb.SearchSlotsRequest(
        program_id=program.program_id,
        clinician_id=clinician,
        client_ids=[tokyo],
        to=to_timestamp(last_day),
        duration_minutes=60,
        **{"from": to_timestamp(last_day - timedelta(days=20))},
    )
    assert "to" in fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, api.call, "SearchSlots", search))
    session = api.book(program.program_id, clinician, [tokyo], next_slot(timedelta(days=1)))
    move = pb.RescheduleSessionRequest(
        request_id=uid("re"), session_id=session.session_id, new_starts_at=to_timestamp(last_day + timedelta(hours=1))
    )
    assert fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, api.call, "RescheduleSession", move)) == {
        "new_starts_at"
    }
    a, b = api.clinician(), api.clinician()
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, care_series, api, uid("care"), [a, b], in_three_years)
    assert "first_starts_at" in fields_of(err)
    # the last of 52 monthly occurrences would be four years away
    err = refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        care_series,
        api,
        uid("care"),
        [a, b],
        next_slot(timedelta(days=1)),
        interval_days=31,
        occurrences=52,
    )
    assert "occurrences" in fields_of(err)


# ---------- per-client proposals in a group ----------


def _alone_at(hour: int) -> list[pb.WeeklyWindow]:
    return [pb.WeeklyWindow(weekday=i, start=f"{hour:02d}:00", end=f"{hour + 1:02d}:00") for i in range(7)]


def _compromised(session_id: str, client_id: str) -> pb.CheckInRequest:
    location = common_pb2.ClientLocation(state="NY", verified=True)
    return pb.CheckInRequest(
        session_id=session_id, client_id=client_id, location=location, privacy_attestation="compromised"
    )


def _local_hours(slots) -> set[int]:  # type: ignore[no-untyped-def]
    return {s.starts_at.ToDatetime(tzinfo=UTC).astimezone(NEW_YORK).hour for s in slots}


def _group_of_three(api: Api) -> tuple[pb.Session, str, str, str, str]:
    """A group starting soon (check-in open) of a (alone 04-05), b (alone 02-03) and c (no alone-window)."""
    program, lead = api.program(), api.clinician()
    a, b, c = api.client(alone_windows=_alone_at(4)), api.client(alone_windows=_alone_at(2)), api.client()
    group = api.book(
        program.program_id, lead, [a, b, c], next_slot(timedelta(minutes=20)), kind=ev.SESSION_KIND_GROUP, capacity=4
    )
    return group, lead, a, b, c


def test_a_later_flag_of_another_client_of_a_group_keeps_the_earlier_clients_proposals(api: Api) -> None:
    group, lead, a, b, c = _group_of_three(api)
    read = pb.GetSessionRequest(session_id=group.session_id)
    api.call("CheckIn", _compromised(group.session_id, b), role="client", subject=b)
    api.call("CheckIn", _compromised(group.session_id, a), role="client", subject=a)
    own_b = api.call("GetSession", read, role="client", subject=b).proposed_slots
    own_a = api.call("GetSession", read, role="client", subject=a).proposed_slots
    assert own_b and _local_hours(own_b) == {2}, "b's proposals were lost when a was flagged"
    assert own_a and _local_hours(own_a) == {4}
    assert not api.call("GetSession", read, role="client", subject=c).proposed_slots
    # each client's own, and only their own, in client_proposals
    assert [p.client_id for p in api.call("GetSession", read, role="client", subject=b).client_proposals] == [b]
    assert not api.call("GetSession", read, role="client", subject=c).client_proposals
    # the care team sees every client's, and no group-wide proposal (no group-wide interruption)
    staff = api.call("GetSession", read, role="clinician", subject=lead)
    by_client = {p.client_id: p for p in staff.client_proposals}
    assert set(by_client) == {a, b}
    assert _local_hours(by_client[b].slots) == {2} and _local_hours(by_client[a].slots) == {4}
    assert by_client[b].reason == "PRIVACY_COMPROMISED"
    assert not staff.proposed_slots


def test_two_clients_of_a_group_flagged_at_once_both_keep_their_proposals(api: Api) -> None:
    # FerretDB applies an update as read-modify-write: each client's proposals are their own field
    for _ in range(3):
        group, lead, a, b, _c = _group_of_three(api)
        ready = threading.Barrier(2)

        def check_in(who: str, session_id: str = group.session_id, ready: threading.Barrier = ready) -> pb.Session:
            ready.wait()
            return api.call("CheckIn", _compromised(session_id, who), role="client", subject=who)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(check_in, (a, b)))
        read = pb.GetSessionRequest(session_id=group.session_id)
        assert _local_hours(api.call("GetSession", read, role="client", subject=a).proposed_slots) == {4}
        assert _local_hours(api.call("GetSession", read, role="client", subject=b).proposed_slots) == {2}
        staff = api.call("GetSession", read, role="clinician", subject=lead)
        assert {p.client_id for p in staff.client_proposals} == {a, b}


def test_a_reschedule_of_a_group_does_not_take_one_clients_proposals_as_the_groups_time(api: Api) -> None:
    group, lead, _a, b, _c = _group_of_three(api)
    api.call("CheckIn", _compromised(group.session_id, b), role="client", subject=b)
    move = pb.RescheduleSessionRequest(request_id=uid("re"), session_id=group.session_id, reason="privacy")
    err = refused(
        grpc.StatusCode.FAILED_PRECONDITION, api.call, "RescheduleSession", move, role="clinician", subject=lead
    )
    assert reason_of(err) == "NEW_START_REQUIRED"
    assert api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id)).status == "checked_in"
    # with a new start the group moves: b (flagged) must be alone then, a and c need not be
    (proposal,) = api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id)).client_proposals
    move.new_starts_at.CopyFrom(proposal.slots[0].starts_at)
    moved = api.call("RescheduleSession", move, role="clinician", subject=lead)
    assert moved.starts_at == proposal.slots[0].starts_at and moved.rescheduled_from == group.session_id


def test_a_group_interrupted_as_a_whole_moves_to_its_group_wide_proposals(api: Api) -> None:
    program, lead = api.program(), api.clinician()
    a, b = api.client(), api.client()
    group = api.book(
        program.program_id, lead, [a, b], next_slot(timedelta(minutes=20)), kind=ev.SESSION_KIND_GROUP, capacity=3
    )
    check_in = _compromised(group.session_id, a)
    check_in.privacy_attestation = "alone"
    api.call("CheckIn", check_in)
    interrupted = api.call(
        "InterruptSession",
        pb.InterruptSessionRequest(session_id=group.session_id, reason="OTHER"),
        role="clinician",
        subject=lead,
    )
    assert interrupted.proposed_slots
    for who in (a, b):
        seen = api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id), role="client", subject=who)
        assert list(seen.proposed_slots) == list(interrupted.proposed_slots)
    move = pb.RescheduleSessionRequest(request_id=uid("re"), session_id=group.session_id, reason="other")
    moved = api.call("RescheduleSession", move, role="clinician", subject=lead)
    assert moved.starts_at == interrupted.proposed_slots[0].starts_at


def test_proposals_stored_before_per_client_proposals_still_read(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # until this change flag_client stored a group client's slots as the session's `proposed_slots`
    # with `proposed_for: [client]`
    group, lead, a, b, _c = _group_of_three(api)
    start = local_day_at(days_ahead=3, hour=2)
    legacy = [{"starts_at": start, "ends_at": start + timedelta(hours=1), "in_alone_window": True}]
    db.sessions.update_one(
        {"_id": group.session_id}, {"$set": {"proposed_slots": legacy, "proposed_for": [b], "privacy_flagged": True}}
    )
    read = pb.GetSessionRequest(session_id=group.session_id)
    assert _local_hours(api.call("GetSession", read, role="client", subject=b).proposed_slots) == {2}
    assert not api.call("GetSession", read, role="client", subject=a).proposed_slots
    staff = api.call("GetSession", read, role="clinician", subject=lead)
    assert [p.client_id for p in staff.client_proposals] == [b] and not staff.proposed_slots
    move = pb.RescheduleSessionRequest(request_id=uid("re"), session_id=group.session_id, reason="privacy")
    err = refused(grpc.StatusCode.FAILED_PRECONDITION, api.call, "RescheduleSession", move)
    assert reason_of(err) == "NEW_START_REQUIRED"
    # a later flag of another client keeps b's
    api.call("CheckIn", _compromised(group.session_id, a), role="client", subject=a)
    assert _local_hours(api.call("GetSession", read, role="client", subject=b).proposed_slots) == {2}
    assert _local_hours(api.call("GetSession", read, role="client", subject=a).proposed_slots) == {4}


# ---------- a client's availability: their care team only ----------


def test_a_clients_availability_is_searched_and_set_by_the_clinicians_who_treat_them(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # a client's windows and alone-windows (when nobody else is home) are PHI: a clinician searches
    # slots for and sets the availability of the clients they treat, not any client
    program, lead, stranger = api.program(), api.clinician(), api.clinician()
    treated, unknown = api.client(alone_windows=_alone_at(2)), uid("client")
    api.book(program.program_id, lead, [treated], local_day_at(days_ahead=4, hour=10))
    frm = next_slot(timedelta(days=1))

    def search(subject: str, client_id: str) -> pb.SearchSlotsResponse:
        request = pb.SearchSlotsRequest(
            program_id=program.program_id,
            clinician_id=subject,
            client_ids=[client_id],
            to=to_timestamp(frm + timedelta(days=2)),
            duration_minutes=60,
            limit=2,
            require_alone_window=True,
            **{"from": to_timestamp(frm)},
        )
        return api.call("SearchSlots", request, role="clinician", subject=subject)

    def set_windows(subject: str, client_id: str) -> pb.ClientProfile:
        request = pb.SetClientAvailabilityRequest(
            client_id=client_id,
            time_zone="America/New_York",
            windows=[pb.WeeklyWindow(weekday=i, start="00:00", end="24:00") for i in range(7)],
            alone_windows=_alone_at(3),
            home_state="NY",
        )
        return api.call("SetClientAvailability", request, role="clinician", subject=subject)

    # a client they do not treat and one that does not exist are refused alike: nothing told
    for call in (search, set_windows):
        answers = set()
        for client_id in (treated, unknown):
            err = refused(grpc.StatusCode.PERMISSION_DENIED, call, stranger, client_id)
            answers.add((reason_of(err), err.details()))
        assert len(answers) == 1 and next(iter(answers))[0] == "NOT_ON_CARE_TEAM", (call, answers)
    assert db.clients.count_documents({"_id": unknown}) == 0
    assert _local_hours(search(lead, treated).slots) == {2}  # unchanged by the refused update
    assert _local_hours(set_windows(lead, treated).alone_windows and search(lead, treated).slots) == {3}
    audited = {(r["action"], r["principal"]) for r in db.phi_access_audit.find({"resource_id": treated})}
    assert {("SearchSlots", lead), ("SetClientAvailability", lead)} <= audited
    assert not {a for a in audited if a[1] == stranger}


def test_a_slot_search_names_no_more_clients_than_a_group_seats(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # the care-team checks of a search's clients (each a scan of the client's sessions) and their
    # PHI-read audits run at once: with no bound on client_ids, one call started as many scans as
    # it named ids, all of them, where the checks one after another stopped at the first refusal
    program, lead = api.program(), api.clinician()
    treated = api.client()
    api.book(program.program_id, lead, [treated], local_day_at(days_ahead=4, hour=10))
    frm = next_slot(timedelta(days=1))
    request = pb.SearchSlotsRequest(
        program_id=program.program_id,
        clinician_id=lead,
        client_ids=[treated, *(uid("client") for _ in range(d.MAX_GROUP_SIZE))],
        to=to_timestamp(frm + timedelta(days=2)),
        duration_minutes=60,
        **{"from": to_timestamp(frm)},
    )
    for role in ("clinician", "platform"):
        err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.call, "SearchSlots", request, role=role, subject=lead)
        assert fields_of(err) == {"client_ids"}
    assert db.phi_access_audit.count_documents({"resource_id": {"$in": list(request.client_ids[1:])}}) == 0
    del request.client_ids[d.MAX_GROUP_SIZE :]  # as many as a group seats
    request.client_ids[1:] = [api.client() for _ in range(d.MAX_GROUP_SIZE - 1)]
    assert api.call("SearchSlots", request, role="platform").slots


def test_a_clinician_treats_a_client_after_more_than_a_hundred_sessions_that_do_not_count(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # the care-team check of a client's records read the first 100 of the client's sessions with the
    # clinician; cancelled ones and ones the clinician only observed filled them
    program, lead, colleague = api.program(), api.clinician(), api.clinician()
    a = api.client()
    long_ago = datetime.now(UTC) - timedelta(days=400)
    past = [
        {
            "_id": uid("old"),
            "request_id": uid("old-req"),
            "program_id": program.program_id,
            "clinician_id": lead if i % 2 else colleague,
            "facilitators": [] if i % 2 else [{"clinician_id": lead, "role": "observer"}],
            "client_ids": [a],
            "kind": ev.SESSION_KIND_INDIVIDUAL,
            "status": "cancelled" if i % 2 else "ended",
            "starts_at": long_ago + timedelta(hours=i),
            "ends_at": long_ago + timedelta(hours=i, minutes=45),
        }
        for i in range(120)
    ]
    db.sessions.insert_many(past)
    tech_checks = pb.ListTechChecksRequest(client_id=a)
    err = refused(
        grpc.StatusCode.PERMISSION_DENIED, api.call, "ListTechChecks", tech_checks, role="clinician", subject=lead
    )
    assert reason_of(err) == "NOT_ON_CARE_TEAM"  # none of those makes the lead the client's clinician
    api.book(program.program_id, lead, [a], local_day_at(days_ahead=3, hour=9))
    assert api.call("ListTechChecks", tech_checks, role="clinician", subject=lead).tasks


def test_a_cohort_booking_sent_again_after_its_client_left_the_cohort_returns_its_booking(api: Api) -> None:
    # a retry of a booking that was made answers with that booking (sessions booked stay when a
    # client leaves the cohort); a new booking for the client who left is refused
    program, clinician = api.program(), api.clinician()
    member = api.client()
    cohort = api.cohort(program.program_id, [member])
    request_id, start = uid("book"), local_day_at(days_ahead=5, hour=14)

    def book(at: datetime, cohort_id: str = cohort.cohort_id, request: str = request_id) -> pb.Session:
        return api.book(program.program_id, clinician, [member], at, request_id=request, cohort_id=cohort_id)

    booked = book(start)
    leave = pb.RemoveCohortClientRequest(cohort_id=cohort.cohort_id, client_id=member)
    api.call("RemoveCohortClient", leave, role="supervisor", subject="sup-1")
    again = book(start)
    assert again.session_id == booked.session_id and again.cohort_id == cohort.cohort_id
    # the same request_id for another booking is still another booking, whatever the cohort says
    err = refused(grpc.StatusCode.ALREADY_EXISTS, book, start + timedelta(hours=2))
    assert reason_of(err) == "REQUEST_ID_REUSED" and error_metadata(err) == {"session_id": booked.session_id}
    err = refused(grpc.StatusCode.ALREADY_EXISTS, book, start, "")  # the cohort left out
    assert reason_of(err) == "REQUEST_ID_REUSED"
    err = refused(grpc.StatusCode.FAILED_PRECONDITION, book, start + timedelta(days=1), request=uid("book"))
    assert reason_of(err) == "CLIENT_NOT_IN_COHORT"


def test_a_group_interrupted_after_one_clients_report_shows_no_client_slots_bound_to_anothers_alone_windows(
    api: Api, settings: Settings
) -> None:
    # b reports an unsafe place at check-in: from then on b books only in b's alone-windows (04-05).
    # The care team stops the whole group: its proposals lie in b's alone-windows, when nobody else
    # is at b's home, which a must learn neither from its own view nor from its events.
    program, lead = api.program(), api.clinician()
    everywhere = [pb.WeeklyWindow(weekday=i, start="00:00", end="24:00") for i in range(7)]
    a, b = api.client(alone_windows=everywhere), api.client(alone_windows=_alone_at(4))
    group = api.book(
        program.program_id, lead, [a, b], next_slot(timedelta(minutes=20)), kind=ev.SESSION_KIND_GROUP, capacity=3
    )
    events = consumer_at_end(settings, SESSIONS.name)
    try:
        api.call("CheckIn", _compromised(group.session_id, b), role="client", subject=b)
        stop = pb.InterruptSessionRequest(session_id=group.session_id, reason="PRIVACY_COMPROMISED")
        interrupted = api.call("InterruptSession", stop, role="clinician", subject=lead)
        assert _local_hours(interrupted.proposed_slots) == {4}  # the care team's: the group's possible times
        read = pb.GetSessionRequest(session_id=group.session_id)
        assert not api.call("GetSession", read, role="client", subject=a).proposed_slots
        assert _local_hours(api.call("GetSession", read, role="client", subject=b).proposed_slots) == {4}
        frm = datetime.now(UTC) - timedelta(hours=1)
        view = pb.ScheduleViewRequest(
            owner_id=a, to=to_timestamp(frm + timedelta(days=1)), **{"from": to_timestamp(frm)}
        )
        (seen,) = api.call("GetClientSchedule", view, role="client", subject=a).sessions
        assert not seen.proposed_slots
        proposed: dict[str, set[int]] = {}
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while datetime.now(UTC) < deadline and "interrupted" not in proposed:
            for records in events.poll(timeout_ms=300).values():
                for r in records:
                    if r.key != group.session_id.encode():
                        continue
                    event = CloudEvent.from_kafka(r.headers, r.value)
                    if event.type == ev.SessionInterrupted.DESCRIPTOR.full_name:
                        proposed["interrupted"] = set()
                    elif event.type == ev.RescheduleProposed.DESCRIPTOR.full_name:
                        message = ev.RescheduleProposed.FromString(event.data)
                        proposed.setdefault(message.client_id, set()).update(_local_hours(message.slots))
    finally:
        events.close()
    assert "interrupted" in proposed, "no SessionInterrupted published"
    assert a not in proposed, f"a was sent slots inside b's alone-windows: {proposed}"
    assert proposed.get(b) == {4}


def test_a_schedule_view_holds_every_session_of_its_range(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # a schedule view (up to 62 days) read the first 500 sessions of its range: 520 (stored as they
    # are, 20 a day for 26 days) lost the last day's, and that day's load
    clinician, a = api.clinician(), api.client()
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=40)
    per_day, days = 20, 26
    past = [
        {
            "_id": uid("old"),
            "request_id": uid("old-req"),
            "program_id": "prog-past",
            "clinician_id": clinician,
            "facilitators": [],
            "client_ids": [a],
            "kind": ev.SESSION_KIND_INDIVIDUAL,
            "status": "ended",
            "starts_at": first + timedelta(days=day, minutes=15 * n),
            "ends_at": first + timedelta(days=day, minutes=15 * (n + 1)),
            "segments": [],
        }
        for day in range(days)
        for n in range(per_day)
    ]
    db.sessions.insert_many(past)
    view = pb.ScheduleViewRequest(
        owner_id=clinician, to=to_timestamp(first + timedelta(days=days)), **{"from": to_timestamp(first)}
    )
    seen = api.call("GetClinicianSchedule", view, role="clinician", subject=clinician)
    assert len(seen.sessions) == per_day * days
    assert sum(day.sessions for day in seen.days) == per_day * days
    view.owner_id = a
    assert len(api.call("GetClientSchedule", view, role="client", subject=a).sessions) == per_day * days


def test_a_clients_tech_checks_past_the_first_hundred_are_read(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # ListTechChecks read the first 100 of a client's tasks by due time, and GetClientSchedule showed
    # those whatever its range: with 120 done long ago, the one due before the client's next session
    # was in neither. Since 2026-12-08 they come page by page (100 a page unless asked, at most 500:
    # here 520 done).
    program, clinician, a = api.program(), api.clinician(), api.client()
    long_ago = datetime.now(UTC) - timedelta(days=600)
    done = [tech_check_doc(a, uid("tc-old"), long_ago + timedelta(days=i)) for i in range(520)]
    db.tech_checks.insert_many(done)
    start = local_day_at(days_ahead=3, hour=9)
    (due,) = api.book(program.program_id, clinician, [a], start).tech_check_task_ids
    pages = list_tech_check_pages(api, a, role="client", subject=a)
    assert [len(p.tasks) for p in pages] == [100] * 5 + [21]
    assert [t.task_id for p in pages for t in p.tasks] == [t["_id"] for t in done] + [due]
    widest = pb.ListTechChecksRequest(client_id=a, page_size=10_000)
    assert len(api.call("ListTechChecks", widest).tasks) == 500  # cut to the most a page answers
    frm = start - timedelta(days=1)
    view = pb.ScheduleViewRequest(owner_id=a, to=to_timestamp(start + timedelta(days=1)), **{"from": to_timestamp(frm)})
    seen = api.call("GetClientSchedule", view, role="client", subject=a)
    assert [t.task_id for t in seen.tech_checks] == [due]  # the view's range bounds its tech checks


def tech_check_doc(client_id: str, task_id: str, due_by: datetime) -> dict:  # type: ignore[type-arg]
    """A passed tech-check task as the store keeps one."""
    return {
        "_id": task_id,
        "client_id": client_id,
        "session_id": uid("old"),
        "due_by": due_by,
        "status": "passed",
        "trigger": "AFTER_FAILED_SESSION",
        "created_at": due_by,
    }


def list_tech_check_pages(
    api: Api, client_id: str, page_size: int = 0, page_token: str = "", **caller: str
) -> list[pb.ListTechChecksResponse]:
    """Every page of a client's tech checks from `page_token` (the first page), following next_page_token."""
    pages: list[pb.ListTechChecksResponse] = []
    while not pages or pages[-1].next_page_token:
        token = pages[-1].next_page_token if pages else page_token
        request = pb.ListTechChecksRequest(client_id=client_id, page_size=page_size, page_token=token)
        pages.append(api.call("ListTechChecks", request, **caller))
    return pages


def test_a_clients_tech_checks_come_page_by_page_after_the_last_task_seen(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # ListTechChecks answered every task of a client at once: unbounded in memory, latency and size
    # (gRPC refuses a reply over 4 MB). Pages start after the last task answered (due time, then id),
    # so tasks stored between two pages make none repeat or go missing, as an offset would.
    a, other = api.client(), api.client()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    stored = [tech_check_doc(a, f"tc-page-{a}-{n}", base + timedelta(days=n // 2)) for n in range(7)]  # ties
    db.tech_checks.insert_many(stored)
    ids = [t["_id"] for t in stored]
    first = api.call("ListTechChecks", pb.ListTechChecksRequest(client_id=a, page_size=3), role="client", subject=a)
    assert [t.task_id for t in first.tasks] == ids[:3] and first.next_page_token
    # meanwhile: one due before every task, one tied with the page's last and an id before it, one after all
    db.tech_checks.insert_many(
        [
            tech_check_doc(a, f"tc-page-{a}-0early", base - timedelta(days=1)),
            tech_check_doc(a, f"tc-page-{a}-1tied", stored[2]["due_by"]),
            tech_check_doc(a, f"tc-page-{a}-9late", base + timedelta(days=10)),
        ]
    )
    rest = list_tech_check_pages(api, a, page_size=3, page_token=first.next_page_token)
    assert [len(p.tasks) for p in rest] == [3, 2]  # the last page has no token
    assert [t.task_id for p in rest for t in p.tasks] == [*ids[3:], f"tc-page-{a}-9late"]  # no repeat, no gap
    everything = [t.task_id for p in list_tech_check_pages(api, a, page_size=4) for t in p.tasks]
    early, tied = f"tc-page-{a}-0early", f"tc-page-{a}-1tied"
    assert everything == [early, *ids[:2], tied, *ids[2:], f"tc-page-{a}-9late"]  # by due time, then id

    def token(key: list) -> str:  # type: ignore[type-arg]
        return base64.urlsafe_b64encode(json.dumps([["ListTechChecks", a], key]).encode()).decode()

    # refused: a negative size, a token that is not one, or not of this listing's key, another client's,
    # one whose due time no date has (INTERNAL, OverflowError, until 2026-12-08, twelfth session)

    refusals = [
        (pb.ListTechChecksRequest(client_id=a, page_size=-1), "page_size"),
        (pb.ListTechChecksRequest(client_id=a, page_token="not a token"), "page_token"),
        (pb.ListTechChecksRequest(client_id=a, page_token=token(["not a time"])), "page_token"),
        (pb.ListTechChecksRequest(client_id=other, page_token=first.next_page_token), "page_token"),
        (pb.ListTechChecksRequest(client_id=a, page_token=token([10**20, "tc-x"])), "page_token"),
        (pb.ListTechChecksRequest(client_id=a, page_token=token([-(10**16), "tc-x"])), "page_token"),
    ]
    for request, field in refusals:
        err = refused(grpc.StatusCode.INVALID_ARGUMENT, api.call, "ListTechChecks", request)
        assert fields_of(err) == {field}, request


def test_a_clinicians_care_past_the_first_five_hundred_sessions_counts(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # the care summary and the schedule view read the first 500 of a clinician's care sessions: with
    # 520 attended, the summary counted 500, saw no later attendance (overdue) and no upcoming session
    clinician, colleague = api.clinician(), api.clinician()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = now - timedelta(days=60)
    starts = [first + timedelta(hours=2 * i) for i in range(500)]  # the last 18 days ago
    starts += [now - timedelta(days=7, hours=-2 * i) for i in range(20)]  # the last 5 days ago
    db.care_sessions.insert_many(
        [
            {
                "_id": uid("care-old"),
                "request_id": uid("care-old-req"),
                "series_id": "series-past",
                "kind": pb.CARE_KIND_PEER_SUPERVISION,
                "clinician_ids": [clinician, colleague],
                "facilitator_id": colleague,
                "starts_at": at,
                "ends_at": at + timedelta(minutes=60),
                "attended": [clinician],
                "missed": [],
            }
            for at in starts
        ]
    )
    upcoming = local_day_at(days_ahead=5, hour=8)
    care_series(api, uid("care"), [clinician, colleague], upcoming)
    summary = api.call("GetCareSummary", pb.GetCareSummaryRequest(clinician_id=clinician), role="supervisor")
    assert summary.attended == 520 and summary.last_attended_at.ToDatetime(tzinfo=UTC) == starts[-1]
    assert summary.next_at.ToDatetime(tzinfo=UTC) == upcoming and not summary.overdue
    view = pb.ScheduleViewRequest(owner_id=clinician, to=to_timestamp(now), **{"from": to_timestamp(first)})
    seen = api.call("GetClinicianSchedule", view, role="clinician", subject=clinician)
    assert [c.starts_at.ToDatetime(tzinfo=UTC) for c in seen.care_sessions] == starts


def test_a_group_stopped_for_compromised_privacy_marks_only_the_clients_who_reported_it(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    # InterruptSession names no client: stopping a whole group for compromised privacy made every
    # client of it privacy-sensitive, so a client whose home was never in question could be booked
    # only when alone from then on (CLIENT_NOT_ALONE at any other time)
    program, lead, other_lead = api.program(), api.clinician(), api.clinician()
    a, b = api.client(), api.client(alone_windows=_alone_at(4))  # b reports an unsafe place at check-in
    c, e = api.client(), api.client(alone_windows=_alone_at(4))  # nobody reports
    soon = next_slot(timedelta(minutes=20))
    reported = api.book(program.program_id, lead, [a, b], soon, kind=ev.SESSION_KIND_GROUP, capacity=3)
    unreported = api.book(program.program_id, other_lead, [c, e], soon, kind=ev.SESSION_KIND_GROUP, capacity=3)
    api.call("CheckIn", _compromised(reported.session_id, b), role="client", subject=b)
    for group, by in ((reported, lead), (unreported, other_lead)):
        stop = pb.InterruptSessionRequest(session_id=group.session_id, reason="PRIVACY_COMPROMISED")
        assert api.call("InterruptSession", stop, role="clinician", subject=by).privacy_flagged
    marked = {x["_id"] for x in db.clients.find({"_id": {"$in": [a, b, c, e]}, "privacy_sensitive": True})}
    assert marked == {b}
    read = pb.GetSessionRequest(session_id=reported.session_id)
    assert not api.call("GetSession", read, role="client", subject=a).privacy_flagged  # flagged for b only
    assert api.call("GetSession", read, role="client", subject=b).privacy_flagged
    for client in (a, c, e):  # booked as before, when not alone
        api.book(program.program_id, api.clinician(), [client], local_day_at(days_ahead=4, hour=10))


@pytest.mark.parametrize(("reason", "attestation"), [("DISCONNECTED", "alone"), ("PRIVACY_COMPROMISED", "compromised")])
def test_a_client_without_alone_windows_who_need_not_be_alone_leaves_a_group_its_proposals(
    api: Api, reason: str, attestation: str
) -> None:
    # a group stopped as a whole was proposed slots in every client's alone-windows when any client
    # had some or after compromised privacy: c, with none and no report, left the group no proposal
    program, lead = api.program(), api.clinician()
    a, c = api.client(alone_windows=_alone_at(4)), api.client()
    group = api.book(
        program.program_id, lead, [a, c], next_slot(timedelta(minutes=20)), kind=ev.SESSION_KIND_GROUP, capacity=3
    )
    check_in = _compromised(group.session_id, a)
    check_in.privacy_attestation = attestation
    api.call("CheckIn", check_in, role="client", subject=a)
    stop = pb.InterruptSessionRequest(session_id=group.session_id, reason=reason)
    interrupted = api.call("InterruptSession", stop, role="clinician", subject=lead)
    assert _local_hours(interrupted.proposed_slots) == {4}  # in a's alone-windows, whoever reported
    read = pb.GetSessionRequest(session_id=group.session_id)
    assert _local_hours(api.call("GetSession", read, role="client", subject=a).proposed_slots) == {4}
    assert not api.call("GetSession", read, role="client", subject=c).proposed_slots  # they tell when a is alone
    move = pb.RescheduleSessionRequest(request_id=uid("re"), session_id=group.session_id, reason="moved")
    moved = api.call("RescheduleSession", move, role="clinician", subject=lead)
    assert moved.starts_at == interrupted.proposed_slots[0].starts_at
