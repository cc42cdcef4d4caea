"""The five scenarios of PRODUCT.md, each one user story and one trace, on the running platform."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from demo.day import Day, local, next_slot
from demo.platform import Platform, ScenarioResult, reason_of, uid
from iop.compliance.v1 import compliance_pb2 as cpb
from iop.crisis.v1 import crisis_pb2 as kpb
from iop.engagement.v1 import engagement_pb2 as epb
from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as sev
from iop.scheduler.v1 import scheduler_pb2 as spb

Say = Callable[[str], None]
BILLING_TOPIC = "iop.compliance.billing.v1"


def risk_level_name(level: int) -> str:
    return kpb.RiskState.DESCRIPTOR.fields_by_name["level"].enum_type.values_by_number[level].name


def wait_for(probe: Callable[[], Any], timeout_s: float = 30, every_s: float = 0.5) -> Any:
    """Poll until `probe` returns something truthy (gRPC NOT_FOUND counts as not yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = probe()
            if value:
                return value
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() > deadline:
            return None
        time.sleep(every_s)


def on_crisis_care_team(p: Platform, clinician: str, client: str) -> bool:
    """Whether the crisis service lets the clinician reach the client's crisis data yet."""
    try:
        p.call(p.crisis, "GetCrisisCard", kpb.GetCrisisCardRequest(client_id=client), "clinician", clinician)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        return False
    return True


def check_in_and_start(
    p: Platform, session: spb.Session, clients: dict[str, common_pb2.ClientLocation], state: str
) -> spb.Session:
    for client_id, location in clients.items():
        p.call(
            p.scheduler,
            "CheckIn",
            spb.CheckInRequest(
                session_id=session.session_id,
                client_id=client_id,
                location=location,
                privacy_attestation="headphones",
                backup_phone="+14155550134",
            ),
            role="client",
            subject=client_id,
        )
    started: spb.Session = p.call(
        p.scheduler,
        "StartSession",
        spb.StartSessionRequest(session_id=session.session_id, clinician_state=state),
        role="clinician",
        subject=session.clinician_id,  # a session is started by its care team
    )
    return started


def disconnection_during_crisis(p: Platform, day: Day, say: Say, result: ScenarioResult) -> None:
    program = day.program("Adult virtual IOP (Pacific)", "America/Los_Angeles", "demo-medicare-ffs")
    clinician = day.clinician("CA", ["CA"], "America/Los_Angeles", license_type="LCSW")
    client = day.client("CA", "demo-medicare-ffs", "America/Los_Angeles")
    plan = kpb.SafetyPlan(
        client_id=client,
        warning_signs=["withdrawing from friends", "not sleeping"],
        internal_coping_strategies=["walk the dog", "box breathing"],
        social_distractions=["coffee shop on 24th St"],
        people_to_ask_for_help=["sister"],
        professionals_and_agencies=["988", "IOP clinician"],
        environment_safety=["medications locked away by partner"],
        emergency_contacts=[
            kpb.EmergencyContact(
                name="Alex Doe", relationship="partner", phone="(415) 555-0199", consent_to_contact=True
            )
        ],
        backup_phone="415-555-0134",
        time_zone="America/Los_Angeles",
        program_id="demo-crisis",
    )
    session = day.book(program, clinician, [client], next_slot())
    # the booking makes the clinician one who treats the client (the crisis service learns it from
    # the scheduler's SessionScheduled): from then on they reach the client's crisis data
    if not wait_for(lambda: on_crisis_care_team(p, clinician, client), 30):
        result.ok = False
        result.outcomes.append("the crisis service never learned that the clinician treats the client")
        return
    p.call(p.crisis, "SaveSafetyPlan", kpb.SaveSafetyPlanRequest(plan=plan), role="clinician", subject=clinician)
    yes, no = kpb.ANSWER_YES, kpb.ANSWER_NO
    risk = p.call(
        p.crisis,
        "AssessCssrs",
        kpb.AssessCssrsRequest(
            client_id=client,
            wish_to_be_dead=yes,
            suicidal_thoughts=yes,
            thoughts_with_method=yes,
            intent=yes,
            plan_with_intent=no,
            suicidal_behavior=no,
        ),
        role="clinician",
        subject=clinician,
    )
    say(f"C-SSRS screen: risk level {risk_level_name(risk.level)}")
    san_francisco = common_pb2.ClientLocation(
        state="CA",
        county_fips="06075",
        postal_code="94110",
        city="San Francisco",
        address_line="1 Valencia St",
        verified=True,
    )
    check_in_and_start(p, session, {client: san_francisco}, "CA")
    say("session live; client checked in from San Francisco with a callback number")
    wait_for(
        lambda: (
            p.call(
                p.crisis,
                "GetCrisisCard",
                kpb.GetCrisisCardRequest(client_id=client),
                role="clinician",
                subject=clinician,
            ).location_session_id
            == session.session_id
        ),
        30,
    )
    live = wait_for(
        lambda: p.call(
            p.engagement,
            "GetSessionAttendance",
            epb.GetSessionAttendanceRequest(session_id=session.session_id),
            role="clinician",
        ).HasField("started_at"),
        60,
    )
    if not live:
        say("engagement has not seen the session start yet (consumer lag); the drop may not count as live")
    for participant in (clinician, client):
        p.webhook("meeting.participant_joined", session.session_id, participant).raise_for_status()
    p.webhook("meeting.participant_left", session.session_id, client, leave_reason="Connection lost").raise_for_status()
    dropped_at = time.monotonic()
    say("video platform webhook: the client dropped off (connection lost)")
    card = wait_for(
        lambda: (
            (
                c := p.call(
                    p.crisis,
                    "GetCrisisCard",
                    kpb.GetCrisisCardRequest(client_id=client),
                    role="clinician",
                    subject=clinician,
                )
            ).active_alert.alert_id
            and c
        ),
        30,
        0.1,
    )
    if not card:
        result.ok = False
        result.outcomes.append("no crisis alert was opened for the drop")
        return
    result.outcomes.append(
        f"crisis alert opened {time.monotonic() - dropped_at:.1f} s after the webhook; callback task on the backup line"
    )
    alert_id = card.active_alert.alert_id
    say(f"alert {alert_id} open: clinician callback on {card.backup_phone}, on-call notified")
    ladder = wait_for(
        lambda: (
            (
                a := p.call(
                    p.crisis, "GetAlert", kpb.GetAlertRequest(alert_id=alert_id), role="clinician", subject=clinician
                )
            ).next_step_index
            >= 4
            and a
        ),
        60,
    )
    if ladder:
        result.outcomes.append(
            f"nobody reached the client: the ladder moved through {len(ladder.steps)} rungs, "
            "last: local emergency services for the verified location (San Francisco)"
        )
        say("ladder: on-call clinician -> emergency contact -> local emergency services")
    else:
        result.ok = False
        result.outcomes.append("the escalation ladder did not finish within 60 s")


def privacy_compromised(p: Platform, day: Day, say: Say, result: ScenarioResult) -> None:
    program = day.program("Adolescent virtual IOP", "America/New_York", "demo-commercial-ppo")
    clinician = day.clinician("NY", ["NY"], "America/New_York")
    alone_day = (datetime.now(UTC) + timedelta(days=2)).astimezone().weekday()
    alone = [spb.WeeklyWindow(weekday=alone_day, start="15:00", end="18:00")]
    teen = day.client("NY", "demo-commercial-ppo", "America/New_York", alone_windows=alone)
    session = day.book(program, clinician, [teen], next_slot(), minutes=45)
    location = common_pb2.ClientLocation(state="NY", postal_code="10027", city="New York", verified=True)
    flagged = p.call(
        p.scheduler,
        "CheckIn",
        spb.CheckInRequest(
            session_id=session.session_id, client_id=teen, location=location, privacy_attestation="compromised"
        ),
        role="client",
        subject=teen,
    )
    say("the teen reports being overheard at check-in")
    result.outcomes.append(f"attestation recorded, session {flagged.status} ({flagged.interruption_reason})")
    result.outcomes.append(
        f"{len(flagged.proposed_slots)} slots offered, all inside the teen's alone-window (15:00-18:00)"
    )
    moved = p.call(
        p.scheduler,
        "RescheduleSession",
        spb.RescheduleSessionRequest(request_id=uid("reschedule"), session_id=session.session_id, reason="PRIVACY"),
    )
    start = moved.starts_at.ToDatetime(tzinfo=UTC).astimezone(
        local(datetime.now(UTC).date(), 0, 0, "America/New_York").tzinfo
    )
    result.outcomes.append(f"rescheduled to {start:%a %H:%M} (client time zone)")
    say("rescheduled into the alone-window")
    result.ok = bool(
        flagged.privacy_flagged and flagged.proposed_slots and moved.rescheduled_from == session.session_id
    )


def burnout(p: Platform, day: Day, say: Say, result: ScenarioResult) -> None:
    program = day.program("Adult virtual IOP (Eastern)", "America/New_York", "demo-commercial-ppo")
    clinician = day.clinician("NY", ["NY"], "America/New_York")
    clients = [day.client("NY", "demo-commercial-ppo", "America/New_York") for _ in range(4)]
    tomorrow = (datetime.now(UTC) + timedelta(days=3)).date()
    first = local(tomorrow, 9, 0, "America/New_York")
    for i in range(3):
        day.book(
            program, clinician, [clients[i]], first + i * timedelta(minutes=75), kind=sev.SESSION_KIND_GROUP, capacity=8
        )
    say("three video groups booked back to back")
    fourth = first + 3 * timedelta(minutes=75)
    try:
        day.book(program, clinician, [clients[3]], fourth, kind=sev.SESSION_KIND_GROUP, capacity=8)
        result.ok = False
        result.outcomes.append("a fourth back-to-back group was accepted without an override")
        return
    except grpc.RpcError as err:
        result.outcomes.append(f"4th back-to-back group refused: {reason_of(err)}")
        say(f"4th group refused: {reason_of(err)}")
    overridden = day.book(
        program,
        clinician,
        [clients[3]],
        fourth,
        kind=sev.SESSION_KIND_GROUP,
        capacity=8,
        role="supervisor",
        override=spb.SupervisorOverride(reason="colleague out sick; extra break tomorrow"),
    )
    result.outcomes.append(
        f"supervisor override accepted and audited (rules: {', '.join(overridden.overridden_rules)})"
    )
    long_group = day.book(
        program,
        clinician,
        [clients[0]],
        local(tomorrow, 15, 0, "America/New_York"),
        minutes=120,
        kind=sev.SESSION_KIND_GROUP,
        capacity=8,
    )
    result.outcomes.append(f"a 2-hour group gets {len(long_group.breaks)} break built in")
    engagement = wait_for(
        lambda: p.call(
            p.engagement,
            "GetClinicianEngagement",
            epb.GetClinicianEngagementRequest(clinician_id=clinician),
            role="supervisor",
        ),
        20,
    )
    if engagement:
        result.outcomes.append(
            f"engagement: burnout-risk score {engagement.burnout_risk.value:.2f} "
            f"({', '.join(f.name for f in engagement.burnout_risk.factors[:3])})"
        )


def client_travels(p: Platform, day: Day, say: Say, result: ScenarioResult) -> None:
    program = day.program("Adult virtual IOP (Upper Midwest)", "America/Chicago", "demo-commercial-ppo")
    counselor = day.clinician("AZ", ["AZ"], "America/Phoenix")
    day.compact_privilege(counselor, "AZ", "MN")  # the Counseling Compact is operating in AZ and MN
    client = day.client("MN", "demo-commercial-ppo", "America/Chicago")
    session = day.book(program, counselor, [client], next_slot())
    say("booked: Arizona counselor, Minnesota client (Counseling Compact privilege for MN)")
    wisconsin = common_pb2.ClientLocation(state="WI", city="Madison", postal_code="53703", verified=True)
    try:
        check_in_and_start(p, session, {client: wisconsin}, "AZ")
        result.ok = False
        result.outcomes.append("the session started although the client is in Wisconsin")
    except grpc.RpcError as err:
        result.outcomes.append(f"client joins from Wisconsin: session start blocked, reason {reason_of(err)}")
        say(f"client checks in from Wisconsin: start blocked ({reason_of(err)})")
    licensure = p.call(
        p.compliance,
        "CheckLicensure",
        cpb.CheckLicensureRequest(clinician_id=counselor, client_state="WI", at=session.starts_at),
    )
    result.outcomes.append(f"licensure for WI: {cpb.Decision.Name(licensure.decision)} {list(licensure.reasons)}")
    home = p.call(
        p.compliance,
        "CheckLicensure",
        cpb.CheckLicensureRequest(clinician_id=counselor, client_state="MN", at=session.starts_at),
    )
    result.outcomes.append(f"licensure for MN (home): {cpb.Decision.Name(home.decision)} {list(home.reasons)}")


def audio_only(p: Platform, day: Day, say: Say, result: ScenarioResult) -> None:
    """Video fails and the group finishes by phone. Compliance applies each payer's audio-only rule;
    the per-diem BillingReady event follows when the client's service day closes (local midnight
    plus the close delay), so the demo shows the same rule through CheckCoverage right away."""
    home = common_pb2.ClientLocation(state="NY", city="Albany", postal_code="12203", verified=True)
    for label, plan in (
        ("plan covering audio-only", "demo-commercial-ppo"),
        ("plan not covering it", "demo-commercial-hmo"),
    ):
        program = day.program(f"Adult virtual IOP ({plan})", "America/New_York", plan)
        clinician = day.clinician("NY", ["NY"], "America/New_York")
        client = day.client("NY", plan, "America/New_York")
        session = day.book(
            program, clinician, [client], next_slot(), minutes=180, kind=sev.SESSION_KIND_GROUP, capacity=8
        )
        check_in_and_start(p, session, {client: home}, "NY")
        ended = p.call(
            p.scheduler,
            "EndSession",
            spb.EndSessionRequest(
                session_id=session.session_id,
                modality=common_pb2.MODALITY_AUDIO_ONLY,
                attendance=[
                    sev.ClientAttendance(
                        client_id=client, minutes_attended=180, modality=common_pb2.MODALITY_AUDIO_ONLY
                    )
                ],
            ),
            role="clinician",
            subject=clinician,
        )
        coverage = p.call(
            p.compliance,
            "CheckCoverage",
            cpb.CheckCoverageRequest(
                client_id=client,
                payer_plan_id=plan,
                service_code="S9480",
                modality=common_pb2.MODALITY_AUDIO_ONLY,
                starts_at=session.starts_at,
                ends_at=session.ends_at,
                place_of_service="10",
            ),
        )
        verdict = "covered" if coverage.covered else f"NOT covered ({', '.join(coverage.problems)})"
        codes = f"codes {'/'.join(coverage.codes)} modifiers {'/'.join(coverage.modifiers) or '-'}"
        result.outcomes.append(f"{label} ({plan}): {verdict}; {codes}; session {ended.status}")
        if plan == "demo-commercial-ppo" and not coverage.covered:
            result.ok = False
        if plan == "demo-commercial-hmo" and coverage.covered:
            result.ok = False
    result.outcomes.append(f"BillingReady per client follows on {BILLING_TOPIC} when the service day closes")
    say("two 3-hour groups lost video and finished by phone (audio-only); each payer's rule applied")
