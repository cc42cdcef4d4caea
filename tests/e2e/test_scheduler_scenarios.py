"""PRODUCT.md scenarios 2 (privacy-compromised session) and 3 (burnout from a full virtual day), end to end.

Real scheduler and compliance processes on the real broker and store; compliance's
PrivacyCompromised event reaches the scheduler over Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from pymongo import MongoClient

from iop.compliance.v1 import compliance_pb2
from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from services.scheduler.topics import SESSIONS
from tests.integration.test_scheduler_api import TopicTail
from tests.integration.test_scheduler_support import (
    Api,
    local_day_at,
    next_slot,
    reason_of,
    rich_status,
    scheduler_with_compliance,
)

pytestmark = pytest.mark.e2e

NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[Api]:
    with scheduler_with_compliance(settings) as client:
        yield client


def in_windows(start: datetime, end: datetime, windows: list[pb.WeeklyWindow]) -> bool:
    ls, le = start.astimezone(NY), end.astimezone(NY)
    return any(
        w.weekday == ls.weekday() and w.start <= ls.strftime("%H:%M") and le.strftime("%H:%M") <= w.end for w in windows
    )


def test_scenario_3_burnout_back_to_back_groups_refused_or_overridden_with_audit(api: Api, settings: Settings) -> None:
    program = api.program()  # service defaults: at most 3 back-to-back sessions, 10-min min gap
    clinician = api.clinician()
    clients = [api.client() for _ in range(5)]
    day = 3

    def group(start: datetime, client: str, minutes: int = 60, role: str = "platform", **extra) -> pb.Session:
        return api.book(
            program.program_id,
            clinician,
            [client],
            start,
            minutes=minutes,
            kind=ev.SESSION_KIND_GROUP,
            capacity=8,
            role=role,
            **extra,
        )

    # a full virtual day: three video groups, 15 minutes apart (back-to-back)
    first = local_day_at(day, 9)
    for i in range(3):
        assert group(first + i * timedelta(minutes=75), clients[i]).status == "booked"
    fourth_start = first + 3 * timedelta(minutes=75)
    with pytest.raises(grpc.RpcError) as refused:
        group(fourth_start, clients[3])
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused.value) == "MAX_BACK_TO_BACK_SESSIONS"
    assert "MAX_BACK_TO_BACK_SESSIONS" in (refused.value.details() or "")
    # an override needs a supervisor
    with pytest.raises(grpc.RpcError) as not_allowed:
        group(
            fourth_start,
            clients[3],
            override=pb.SupervisorOverride(reason="cover for a colleague"),
            metadata=api.md("clinician", clinician),  # the session's own clinician
        )
    assert not_allowed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(not_allowed.value) == "OVERRIDE_REQUIRES_SUPERVISOR"
    # the supervisor's override is accepted and audited
    overridden = group(
        fourth_start,
        clients[3],
        role="supervisor",
        override=pb.SupervisorOverride(reason="colleague out sick; clinician agreed; extra break tomorrow"),
    )
    assert overridden.overridden and list(overridden.overridden_rules) == ["MAX_BACK_TO_BACK_SESSIONS"]
    mongo: MongoClient = MongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        audit = mongo[f"{settings.mongodb_database_prefix}scheduler"].override_audit.find_one(
            {"session_id": overridden.session_id}
        )
    finally:
        mongo.close()
    assert audit is not None
    assert audit["rules"] == ["MAX_BACK_TO_BACK_SESSIONS"] and "colleague out sick" in audit["reason"]
    assert audit["supervisor"] == "test-app" and "supervisor" in audit["roles"]

    # breaks are built into long sessions, and the daily cap still holds
    long_group = group(local_day_at(day, 15), clients[4], minutes=120)  # 110 minutes on screen
    assert len(long_group.breaks) == 1
    with pytest.raises(grpc.RpcError) as over_cap:  # 240 + 110 + 60 > 360 minutes on screen
        group(local_day_at(day, 18, 30), clients[0], minutes=60)
    assert reason_of(over_cap.value) == "MAX_DAILY_SCREEN_TIME_CLINICIAN"
    status = rich_status(over_cap.value)
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]

    view = pb.ScheduleViewRequest(
        owner_id=clinician, to=to_timestamp(local_day_at(day + 1, 0)), **{"from": to_timestamp(local_day_at(day, 0))}
    )
    schedule = api.call("GetClinicianSchedule", view, role="supervisor")
    assert len(schedule.sessions) == 5
    assert schedule.days[0].longest_back_to_back == 4 and schedule.days[0].screen_minutes == 350


def test_scenario_2_privacy_compromised_offers_alone_windows(api: Api, settings: Settings) -> None:
    program = api.program()
    clinician = api.clinician()
    alone_day = local_day_at(2, 12).astimezone(NY).weekday()  # the day of the bookings below
    alone = [pb.WeeklyWindow(weekday=alone_day, start="15:00", end="18:00")]
    teen = api.client(alone_windows=alone)
    peer = api.client()

    # 1) the teen is overheard at check-in of an individual session
    start = next_slot(timedelta(minutes=20))
    session = api.book(program.program_id, clinician, [teen], start, minutes=45)
    location = common_pb2.ClientLocation(state="NY", postal_code="10027", verified=True)
    flagged = api.call(
        "CheckIn",
        pb.CheckInRequest(
            session_id=session.session_id, client_id=teen, location=location, privacy_attestation="compromised"
        ),
        role="client",
        subject=teen,
    )
    assert flagged.privacy_flagged and flagged.status == "interrupted"
    assert flagged.interruption_reason == "PRIVACY_COMPROMISED"
    assert flagged.proposed_slots, "no slot proposed"
    for slot in flagged.proposed_slots:
        s, e = slot.starts_at.ToDatetime(tzinfo=UTC), slot.ends_at.ToDatetime(tzinfo=UTC)
        assert in_windows(s, e, alone) and slot.in_alone_window
    # the client is now privacy-sensitive: bookings outside alone-windows are refused
    with pytest.raises(grpc.RpcError) as not_alone:
        api.book(program.program_id, clinician, [teen], local_day_at(2, 10), minutes=45)
    assert reason_of(not_alone.value) == "CLIENT_NOT_ALONE"
    # rescheduling takes the first proposed slot, which satisfies every rule
    moved = api.call(
        "RescheduleSession",
        pb.RescheduleSessionRequest(
            request_id="re-" + session.session_id, session_id=session.session_id, reason="PRIVACY"
        ),
    )
    assert moved.rescheduled_from == session.session_id
    assert moved.starts_at == flagged.proposed_slots[0].starts_at
    old = api.call("GetSession", pb.GetSessionRequest(session_id=session.session_id))
    assert old.status == "rescheduled" and old.rescheduled_to == moved.session_id

    # 2) in a group, the teen reports being overheard to compliance; compliance publishes
    #    PrivacyCompromised and the scheduler flags the session for the teen over Kafka
    group = api.book(
        program.program_id,
        clinician,
        [peer],
        local_day_at(2, 16),  # inside the teen's alone-window: the teen is privacy-sensitive now
        minutes=60,
        kind=ev.SESSION_KIND_GROUP,
        capacity=6,
    )
    api.call(
        "BookGroupSeat",
        pb.BookGroupSeatRequest(request_id="seat-" + group.session_id, session_id=group.session_id, client_id=teen),
    )
    api.compliance.RecordPrivacyAttestation(
        compliance_pb2.RecordPrivacyAttestationRequest(
            session_id=group.session_id, client_id=teen, clinician_id=clinician, attestation="compromised"
        ),
        metadata=api.md("client", teen),
        timeout=10,
    )
    # a new consumer group starts at the topic's beginning: allow for the backlog other runs left
    deadline = time.monotonic() + 120
    seen = api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id))
    while not seen.privacy_flagged and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id))
    assert seen.privacy_flagged, "PrivacyCompromised from compliance never reached the scheduler"
    assert seen.status == "booked"  # the group goes on; the teen gets alone-window slots
    # the teen's own slots (the group's staff see them as the teen's, the teen as their proposals)
    (proposal,) = seen.client_proposals
    assert proposal.client_id == teen and proposal.slots and not seen.proposed_slots
    own = api.call("GetSession", pb.GetSessionRequest(session_id=group.session_id), role="client", subject=teen)
    assert list(own.proposed_slots) == list(proposal.slots)
    for slot in own.proposed_slots:
        assert in_windows(slot.starts_at.ToDatetime(tzinfo=UTC), slot.ends_at.ToDatetime(tzinfo=UTC), alone)


def test_scenario_2_a_late_privacy_report_reaches_the_session_booked_for_the_interrupted_one(
    api: Api, settings: Settings
) -> None:
    # the teen's session dropped, the care team moved it to a morning (the teen is alone only
    # 15-18), then the teen told compliance they had been overheard in it: the scheduler made the
    # teen privacy-sensitive, and the new session kept its morning, with no slots and no event
    program, clinician = api.program(), api.clinician()
    alone = [pb.WeeklyWindow(weekday=i, start="15:00", end="18:00") for i in range(7)]
    teen = api.client(alone_windows=alone)
    session = api.book(program.program_id, clinician, [teen], next_slot(timedelta(minutes=20)), minutes=45)
    location = common_pb2.ClientLocation(state="NY", postal_code="10027", verified=True)
    check_in = pb.CheckInRequest(
        session_id=session.session_id, client_id=teen, location=location, privacy_attestation="alone"
    )
    api.call("CheckIn", check_in, role="client", subject=teen)
    api.call("InterruptSession", pb.InterruptSessionRequest(session_id=session.session_id, reason="DISCONNECTED"))
    morning = local_day_at(2, 10)
    moved = api.call(
        "RescheduleSession",
        pb.RescheduleSessionRequest(
            request_id="re-" + session.session_id, session_id=session.session_id, new_starts_at=to_timestamp(morning)
        ),
    )
    tail = TopicTail(settings, SESSIONS.name)
    try:
        api.compliance.RecordPrivacyAttestation(
            compliance_pb2.RecordPrivacyAttestationRequest(
                session_id=session.session_id, client_id=teen, clinician_id=clinician, attestation="compromised"
            ),
            metadata=api.md("client", teen),
            timeout=10,
        )
        proposed = ev.RescheduleProposed.DESCRIPTOR.full_name
        # a new consumer group starts at the topic's beginning: allow for the backlog other runs left
        seen = tail.wait(moved.session_id, lambda es: any(e.type == proposed for e in es), timeout_s=120)
    finally:
        tail.close()
    (event,) = [ev.RescheduleProposed.FromString(e.data) for e in seen if e.type == proposed]
    assert event.client_id == teen and event.reason == "PRIVACY_COMPROMISED" and event.slots
    new = api.call("GetSession", pb.GetSessionRequest(session_id=moved.session_id))
    assert new.status == "booked" and new.starts_at == to_timestamp(morning)  # proposed, never moved
    assert new.privacy_flagged and list(new.proposed_slots) == [
        pb.Slot(starts_at=s.starts_at, ends_at=s.ends_at, in_alone_window=s.in_alone_window) for s in event.slots
    ]
    for slot in new.proposed_slots:
        assert in_windows(slot.starts_at.ToDatetime(tzinfo=UTC), slot.ends_at.ToDatetime(tzinfo=UTC), alone)
