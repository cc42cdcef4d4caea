"""Compliance rules through the real service (gRPC, real store and broker): request validation,
credential time ranges, board actions, billing codes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from grpc_status import rpc_status
from pymongo import MongoClient

from iop.compliance.v1 import compliance_pb2 as pb
from iop.compliance.v1 import compliance_pb2_grpc
from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as sev
from services.plumbing.errors import bad_request_violations
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_compliance_api import (
    CALL_TIMEOUT_S,
    NOW,
    SchedulerEvents,
    TopicTail,
    billed_here,
    evaluate,
    own_plan,
    past_midweek,
    ready_client,
    record_license,
    rpc_error,
    start_compliance,
    stub_for,
    uid,
)
from tests.support import TEST_PORTS, ServiceProcess, auth_metadata, until_stopped

pytestmark = pytest.mark.integration
# Every compliance process on the shared broker (other test runs too) consumes the scheduler's topic,
# each in its own group, and publishes what it decides from its own store. So a test tells this
# process's events apart by what only this store holds: a payer plan or a license of its own.


@pytest.fixture(scope="module")
def compliance() -> Iterator[ServiceProcess]:
    with until_stopped(start_compliance()) as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(compliance: ServiceProcess) -> Iterator[compliance_pb2_grpc.ComplianceServiceStub]:
    channel, s = stub_for(compliance)
    yield s
    channel.close()


@pytest.fixture(scope="module")
def db(compliance: ServiceProcess, settings: Settings) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    yield client[f"{compliance.env['MONGODB_DATABASE_PREFIX']}compliance"]
    client.close()


def violations(err: grpc.RpcError) -> set[str]:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err  # type: ignore[attr-defined]
    return {f for f, _ in bad_request_violations(rpc_status.from_call(err))}  # type: ignore[arg-type]


def board_acts(stub: Any, settings: Settings, license_id: str, status: str, effective_at: datetime) -> pb.License:
    """A board action on a license (a status from `effective_at`), as a supervisor sends it."""
    reply: pb.License = stub.UpdateLicenseStatus(
        pb.UpdateLicenseStatusRequest(license_id=license_id, status=status, effective_at=to_timestamp(effective_at)),
        metadata=auth_metadata(settings, "supervisor", "supervisor-7"),
        timeout=CALL_TIMEOUT_S,
    )
    return reply


def test_enum_values_out_of_range_are_invalid_arguments(stub, settings: Settings) -> None:
    location = common_pb2.ClientLocation(state="CA", verified=True)
    base: dict[str, Any] = {"clinician_id": uid("clin"), "client_id": uid("client"), "client_location": location}
    assert violations(rpc_error(lambda: evaluate(stub, settings, **base, kind=99))) == {"kind"}
    assert violations(rpc_error(lambda: evaluate(stub, settings, **base, modality=7))) == {"modality"}
    err = rpc_error(
        lambda: stub.CheckCoverage(
            pb.CheckCoverageRequest(
                client_id=uid("client"),
                payer_plan_id="demo-commercial-ppo",
                service_code="S9480",
                modality=42,  # type: ignore[arg-type]
                starts_at=to_timestamp(NOW),
                ends_at=to_timestamp(NOW),
            ),
            metadata=auth_metadata(settings, "platform"),
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert violations(err) == {"modality", "ends_at"}


def test_a_verification_in_the_future_is_refused_and_nothing_is_stored(stub, settings: Settings) -> None:
    clinician, md = uid("clin"), auth_metadata(settings, "platform")
    future = to_timestamp(NOW + timedelta(days=30))
    err = rpc_error(lambda: record_license(stub, settings, clinician, "CA", verified_at=future))
    assert violations(err) == {"verified_at"}
    err = rpc_error(
        lambda: stub.RecordCompactCredential(
            pb.RecordCompactCredentialRequest(
                clinician_id=clinician,
                compact="PSYPACT",
                kind="APIT",
                home_state="AZ",
                credential_number=f"APIT-{uid('n')[-6:].upper()}",
                valid_from=to_timestamp(NOW - timedelta(days=10)),
                valid_until=to_timestamp(NOW + timedelta(days=300)),
                verified_at=future,
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert violations(err) == {"verified_at"}
    listed = stub.ListClinicianCredentials(
        pb.ListClinicianCredentialsRequest(clinician_id=clinician), metadata=md, timeout=CALL_TIMEOUT_S
    )
    assert not listed.licenses and not listed.compact_credentials
    # a caller's clock a minute fast is not an error
    lic = record_license(
        stub, settings, clinician, "CA", verified_at=to_timestamp(datetime.now(UTC) + timedelta(minutes=1))
    )
    assert lic.verified_at.seconds > 0


def attended(session: str, client: str, started: datetime, minutes: int, kind: int, plan: str, level: str = ""):
    return sev.SessionEnded(
        session_id=session,
        clinician_id=uid("clin"),
        started_at=to_timestamp(started),
        ended_at=to_timestamp(started + timedelta(minutes=minutes)),
        modality=common_pb2.MODALITY_VIDEO,
        attendance=[sev.ClientAttendance(client_id=client, minutes_attended=minutes)],
        payer_plan_id=plan,
        level_of_care=level,
        kind=kind,  # type: ignore[arg-type]
    )


def test_psychotherapy_under_16_minutes_is_not_billed(stub, settings: Settings) -> None:
    plan = own_plan(stub, settings, "demo-medicare-ffs")
    tail = TopicTail(settings, "iop.compliance.billing.v1")
    producer = SchedulerEvents(settings)
    try:
        client, session = uid("client"), uid("s")
        ended = attended(session, client, past_midweek(), 12, sev.SESSION_KIND_INDIVIDUAL, plan)
        producer.send(session, ended)
        found = tail.wait_for(billed_here(client))
        assert found, "no BillingReady"
        ready = found[0][2]
        assert not ready.lines and not ready.covered, ready
        assert list(ready.problems) == ["PSYCHOTHERAPY_BELOW_MINIMUM_TIME"], ready
        assert ready.minutes_attended == 12
    finally:
        tail.close()
        producer.close()


def test_substance_use_iop_carries_revenue_code_0906(stub, settings: Settings) -> None:
    planned = evaluate(
        stub,
        settings,
        clinician_id=uid("clin"),
        client_id=uid("client"),
        client_location=common_pb2.ClientLocation(state="CA", verified=True),
        level_of_care="IOP_SUD",
    )
    assert (list(planned.coverage.codes), planned.coverage.revenue_code) == (["H0015"], "0906"), planned.coverage
    plan = own_plan(stub, settings, "demo-commercial-ppo")
    tail = TopicTail(settings, "iop.compliance.billing.v1")
    producer = SchedulerEvents(settings)
    try:
        client, session = uid("client"), uid("s")
        ended = attended(session, client, past_midweek(), 180, sev.SESSION_KIND_GROUP, plan, level="IOP_SUD")
        producer.send(session, ended)
        found = tail.wait_for(billed_here(client))
        assert found, "no BillingReady"
        ready = found[0][2]
        assert [(line.code, line.revenue_code) for line in ready.lines] == [("H0015", "0906")], ready
    finally:
        tail.close()
        producer.close()


def check_licensure(stub, settings: Settings, clinician: str, state: str, **kw: Any) -> pb.LicensureDecision:
    fields: dict[str, Any] = {
        "clinician_id": clinician,
        "client_state": state,
        "at": to_timestamp(NOW + timedelta(hours=2)),
        "client_location_verified": True,
    }
    fields.update(kw)
    return stub.CheckLicensure(
        pb.CheckLicensureRequest(**fields), metadata=auth_metadata(settings, "platform"), timeout=CALL_TIMEOUT_S
    )


def record_counseling_privilege(
    stub, settings: Settings, clinician: str, valid_until: datetime = NOW + timedelta(days=300)
) -> pb.CompactCredential:
    """A Counseling Compact privilege to practise in AZ from a MN home license, valid for 300 days
    unless `valid_until` says otherwise."""
    return stub.RecordCompactCredential(
        pb.RecordCompactCredentialRequest(
            clinician_id=clinician,
            compact="COUNSELING",
            kind="PRIVILEGE",
            home_state="MN",
            privilege_state="AZ",
            credential_number=f"CC-{uid('n')[-8:].upper()}",
            valid_from=to_timestamp(NOW - timedelta(days=30)),
            valid_until=to_timestamp(valid_until),
        ),
        metadata=auth_metadata(settings, "platform"),
        timeout=CALL_TIMEOUT_S,
    )


def record_registration(stub, settings: Settings, clinician: str, profession: str) -> pb.CompactCredential:
    return stub.RecordCompactCredential(
        pb.RecordCompactCredentialRequest(
            clinician_id=clinician,
            compact="TELEHEALTH_REGISTRATION",
            kind="REGISTRATION",
            home_state="GA",
            privilege_state="FL",
            profession=profession,
            credential_number=f"TPC-{uid('n')[-8:].upper()}",
            valid_from=to_timestamp(NOW - timedelta(days=30)),
            valid_until=to_timestamp(NOW + timedelta(days=300)),
        ),
        metadata=auth_metadata(settings, "platform"),
        timeout=CALL_TIMEOUT_S,
    )


def test_florida_registration_needs_a_usable_home_license_of_its_profession(stub, settings: Settings) -> None:
    current = uid("clin")
    record_license(stub, settings, current, "GA")
    reg = record_registration(stub, settings, current, "COUNSELOR")
    assert reg.profession == "COUNSELOR"
    allowed = check_licensure(stub, settings, current, "FL")
    assert (allowed.decision, list(allowed.reasons)) == (pb.DECISION_ALLOW, ["STATE_TELEHEALTH_REGISTRATION"])

    stale = uid("clin")
    record_license(stub, settings, stale, "GA", verified_at=to_timestamp(datetime(2019, 6, 1, tzinfo=UTC)))
    record_registration(stub, settings, stale, "COUNSELOR")
    reply = check_licensure(stub, settings, stale, "FL")
    assert reply.decision == pb.DECISION_NEEDS_REVIEW and "HOME_LICENSE_VERIFICATION_STALE" in reply.reasons, reply

    nurse = uid("clin")
    record_license(stub, settings, nurse, "GA", license_type="RN", license_number=f"RN-{uid('n')[-8:].upper()}")
    record_registration(stub, settings, nurse, "COUNSELOR")
    reply = check_licensure(stub, settings, nurse, "FL")
    assert reply.decision == pb.DECISION_DENY and "NO_CURRENT_HOME_STATE_LICENSE" in reply.reasons, reply


def record_psypact_psychologist(stub, settings: Settings, clinician: str, home: str = "AZ") -> None:
    md = auth_metadata(settings, "platform")
    since, until = datetime(2024, 1, 1, tzinfo=UTC), NOW + timedelta(days=300)
    record_license(
        stub,
        settings,
        clinician,
        home,
        license_type="PSYCHOLOGIST",
        license_number=f"PSY-{uid('n')[-8:].upper()}",
        valid_from=to_timestamp(since),
        valid_until=to_timestamp(until),
    )
    for kind in ("APIT", "E_PASSPORT"):
        stub.RecordCompactCredential(
            pb.RecordCompactCredentialRequest(
                clinician_id=clinician,
                compact="PSYPACT",
                kind=kind,
                home_state=home,
                credential_number=f"{kind.replace('_', '')[:4]}-{uid('n')[-8:].upper()}",
                valid_from=to_timestamp(since),
                valid_until=to_timestamp(until),
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )


def test_psypact_membership_starts_on_the_clients_local_date(stub, settings: Settings) -> None:
    """Michigan joined PSYPACT on 2025-04-01: an evening in Detroit on March 31 (April 1 in UTC) is not covered."""
    clinician = uid("clin")
    record_psypact_psychologist(stub, settings, clinician)
    detroit = ZoneInfo("America/Detroit")

    def check(at: datetime) -> pb.LicensureDecision:
        return check_licensure(stub, settings, clinician, "MI", at=to_timestamp(at), clinician_state="AZ")

    evening_before = check(datetime(2025, 3, 31, 20, 30, tzinfo=detroit))
    assert evening_before.decision == pb.DECISION_DENY, evening_before
    assert "PSYPACT_CLIENT_STATE_NOT_MEMBER" in evening_before.reasons
    assert check(datetime(2025, 4, 1, 9, 0, tzinfo=detroit)).decision == pb.DECISION_ALLOW


def test_credentials_and_consent_must_cover_the_whole_session(stub, settings: Settings) -> None:
    clinician, client, md = uid("clin"), uid("client"), auth_metadata(settings, "platform")
    start, end = NOW + timedelta(hours=1), NOW + timedelta(hours=4)
    record_license(stub, settings, clinician, "CA", valid_until=to_timestamp(NOW + timedelta(hours=2)))
    ready_client(stub, settings, client, "demo-commercial-ppo")
    session: dict[str, Any] = {
        "clinician_id": clinician,
        "client_id": client,
        "client_location": common_pb2.ClientLocation(state="CA", verified=True),
        "starts_at": to_timestamp(start),
        "ends_at": to_timestamp(end),
        "stage": pb.EVALUATION_STAGE_START,
        "privacy_attestation": "alone",
    }
    reply = evaluate(stub, settings, **session)
    assert reply.decision == pb.DECISION_DENY, reply
    assert "LICENSE_EXPIRES_DURING_SESSION" in reply.licensure.reasons, reply
    checked = check_licensure(stub, settings, clinician, "CA", at=to_timestamp(start), ends_at=to_timestamp(end))
    assert checked.decision == pb.DECISION_DENY and "LICENSE_EXPIRES_DURING_SESSION" in checked.reasons
    assert check_licensure(stub, settings, clinician, "CA", at=to_timestamp(start)).decision == pb.DECISION_ALLOW
    err = rpc_error(
        lambda: check_licensure(stub, settings, clinician, "CA", at=to_timestamp(end), ends_at=to_timestamp(start))
    )
    assert violations(err) == {"ends_at"}

    # a consent that lapses mid-session blocks the start (the license here holds all session)
    other, short = uid("clin"), uid("client")
    record_license(stub, settings, other, "CA")
    ready_client(stub, settings, short, "demo-commercial-ppo")
    consents = stub.ListConsents(pb.ListConsentsRequest(client_id=short), metadata=md, timeout=CALL_TIMEOUT_S)
    telehealth = next(c for c in consents.consents if c.consent_type == "TELEHEALTH")
    stub.RevokeConsent(pb.RevokeConsentRequest(consent_id=telehealth.consent_id), metadata=md, timeout=CALL_TIMEOUT_S)
    stub.RecordConsent(
        pb.RecordConsentRequest(
            client_id=short,
            consent_type="TELEHEALTH",
            form_version="telehealth-2025-01",
            signed_at=to_timestamp(NOW - timedelta(days=365)),
            valid_until=to_timestamp(NOW + timedelta(hours=2)),
        ),
        metadata=md,
        timeout=CALL_TIMEOUT_S,
    )
    reply = evaluate(stub, settings, **{**session, "clinician_id": other, "client_id": short})
    assert reply.decision == pb.DECISION_DENY, reply
    assert list(reply.consent_problems) == ["TELEHEALTH_CONSENT_EXPIRES_DURING_SESSION"], reply


def test_the_start_recheck_covers_the_booked_session(stub, settings: Settings, compliance: ServiceProcess) -> None:
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician, client, session = uid("clin"), uid("client"), uid("s")
        started = datetime.now(UTC)
        record_license(stub, settings, clinician, "CA", valid_until=to_timestamp(started + timedelta(hours=1)))
        producer.send(
            session,
            sev.SessionScheduled(
                session_id=session,
                clinician_id=clinician,
                client_ids=[client],
                starts_at=to_timestamp(started),
                ends_at=to_timestamp(started + timedelta(hours=3)),
                kind=sev.SESSION_KIND_GROUP,
            ),
        )
        check_in_and_start(producer, session, clinician, client, started)
        found = tail.wait_for(
            lambda key, ev, p: (
                ev.type == "iop.events.v1.LicensureChecked"
                and p.session_id == session
                # from a process whose store has the license (another answers NO_LICENSE_IN_STATE, ...)
                and bool({"LICENSED_IN_STATE", "LICENSE_EXPIRES_DURING_SESSION"} & set(p.reasons))
            )
        )
        assert found, "no LicensureChecked"
        checked = found[0][2]
        assert checked.decision == "deny" and "LICENSE_EXPIRES_DURING_SESSION" in checked.reasons, checked
    finally:
        tail.close()
        producer.close()


def test_a_board_action_is_recorded_audited_and_denies_the_next_evaluation(stub, settings: Settings) -> None:
    clinician, client = uid("clin"), uid("client")
    admin = auth_metadata(settings, "supervisor", "supervisor-7")
    lic = record_license(stub, settings, clinician, "CA")
    ready_client(stub, settings, client, "demo-commercial-ppo")
    session: dict[str, Any] = {
        "clinician_id": clinician,
        "client_id": client,
        "client_location": common_pb2.ClientLocation(state="CA", verified=True),
        "stage": pb.EVALUATION_STAGE_START,
        "privacy_attestation": "alone",
    }
    assert evaluate(stub, settings, **session).decision == pb.DECISION_ALLOW  # the snapshot is now cached

    # the same number again is still ALREADY_EXISTS: a board action is a status update, not a new record
    err = rpc_error(lambda: record_license(stub, settings, clinician, "CA", license_number=lic.license_number))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS

    suspend = pb.UpdateLicenseStatusRequest(
        license_id=lic.license_id, status="suspended", effective_at=to_timestamp(NOW - timedelta(minutes=1))
    )
    updated = stub.UpdateLicenseStatus(suspend, metadata=admin, timeout=CALL_TIMEOUT_S)
    assert updated.status == "suspended" and updated.license_id == lic.license_id
    assert [(c.status, c.recorded_by) for c in updated.status_changes] == [("suspended", "supervisor-7")]
    # at once, although the evaluation before it was cached: this process's write invalidated it
    denied = evaluate(stub, settings, **session)
    assert denied.decision == pb.DECISION_DENY, denied
    assert "LICENSE_SUSPENDED" in denied.licensure.reasons
    checked = check_licensure(stub, settings, clinician, "CA")
    assert checked.decision == pb.DECISION_DENY and "LICENSE_SUSPENDED" in checked.reasons
    # a retry records nothing twice; the history is listed with its audit fields
    stub.UpdateLicenseStatus(suspend, metadata=admin, timeout=CALL_TIMEOUT_S)
    listed = stub.ListClinicianCredentials(
        pb.ListClinicianCredentialsRequest(clinician_id=clinician), metadata=admin, timeout=CALL_TIMEOUT_S
    )
    (stored,) = listed.licenses
    assert [(c.status, c.recorded_by) for c in stored.status_changes] == [("suspended", "supervisor-7")]
    assert stored.status_changes[0].recorded_at.seconds > 0 and stored.status == "suspended"

    # a session before the suspension's effective time is still covered (the action is not retroactive)
    earlier = check_licensure(stub, settings, clinician, "CA", at=to_timestamp(NOW - timedelta(hours=2)))
    assert earlier.decision == pb.DECISION_ALLOW

    # errors: who may, what is wrong, what does not exist
    err = rpc_error(
        lambda: stub.UpdateLicenseStatus(
            suspend, metadata=auth_metadata(settings, "clinician", clinician), timeout=CALL_TIMEOUT_S
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = rpc_error(
        lambda: stub.UpdateLicenseStatus(
            pb.UpdateLicenseStatusRequest(license_id=lic.license_id, status="paused"),
            metadata=admin,
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert violations(err) == {"status", "effective_at"}
    err = rpc_error(
        lambda: stub.UpdateLicenseStatus(
            pb.UpdateLicenseStatusRequest(license_id=uid("nope"), status="revoked", effective_at=to_timestamp(NOW)),
            metadata=admin,
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_a_revoked_compact_privilege_denies(stub, settings: Settings) -> None:
    counselor = uid("clin")
    md = auth_metadata(settings, "platform")
    record_license(stub, settings, counselor, "MN")
    privilege = record_counseling_privilege(stub, settings, counselor)
    assert check_licensure(stub, settings, counselor, "AZ").decision == pb.DECISION_ALLOW
    revoked = stub.UpdateCompactCredentialStatus(
        pb.UpdateCompactCredentialStatusRequest(
            credential_id=privilege.credential_id, status="revoked", effective_at=to_timestamp(NOW)
        ),
        metadata=md,
        timeout=CALL_TIMEOUT_S,
    )
    assert revoked.status == "revoked" and [c.status for c in revoked.status_changes] == ["revoked"]
    reply = check_licensure(stub, settings, counselor, "AZ")
    assert reply.decision == pb.DECISION_DENY and "COUNSELING_PRIVILEGE_REVOKED" in reply.reasons, reply


def test_another_instance_sees_a_board_action_within_its_cache_ttl(
    stub, settings: Settings, compliance: ServiceProcess
) -> None:
    """Instance B cached the clinician's credentials; A records the suspension. Once B's read-cache
    TTL has passed since the write, B's next answer is a denial (an entry is never served older)."""
    ttl_s = 2.0
    other = ServiceProcess(
        "compliance",
        env={
            "MONGODB_DATABASE_PREFIX": compliance.env["MONGODB_DATABASE_PREFIX"],  # the same store
            "KAFKA_GROUP_PREFIX": f"{compliance.env['KAFKA_GROUP_PREFIX']}b",  # A keeps its partitions
            "COMPLIANCE_GRPC_PORT": str(TEST_PORTS["compliance"] + 5),  # inside this suite's block of ports
            "COMPLIANCE_READ_CACHE_TTL_S": str(ttl_s),
        },
        instance="-b",
    ).start()
    channel, stub_b = stub_for(other)
    try:
        clinician = uid("clin")
        lic = record_license(stub, settings, clinician, "CA")
        assert check_licensure(stub_b, settings, clinician, "CA").decision == pb.DECISION_ALLOW  # cached in B
        stub.UpdateLicenseStatus(
            pb.UpdateLicenseStatusRequest(license_id=lic.license_id, status="revoked", effective_at=to_timestamp(NOW)),
            metadata=auth_metadata(settings, "platform"),
            timeout=CALL_TIMEOUT_S,
        )
        time.sleep(ttl_s + 0.5)
        reply = check_licensure(stub_b, settings, clinician, "CA")
        assert reply.decision == pb.DECISION_DENY and "LICENSE_REVOKED" in reply.reasons, reply
    finally:
        channel.close()
        assert other.stop() == 0, f"compliance B did not stop cleanly; see {other.log_path}"


STATUS_CHANGED = "iop.events.v1.CredentialStatusChanged"


def wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def check_in_and_start(
    producer: SchedulerEvents, session: str, clinician: str, client: str, at: datetime, clinician_state: str = ""
) -> None:
    """The client checks in from a verified CA location, alone, and the session starts, both at `at`."""
    producer.send(
        session,
        sev.SessionCheckedIn(
            session_id=session,
            client_id=client,
            location=common_pb2.ClientLocation(state="CA", verified=True),
            privacy_attestation="alone",
            checked_in_at=to_timestamp(at),
        ),
    )
    producer.send(
        session,
        sev.SessionStarted(
            session_id=session,
            clinician_id=clinician,
            client_ids=[client],
            started_at=to_timestamp(at),
            clinician_state=clinician_state,
        ),
    )


def scheduled(
    session: str, clinician: str, starts_at: datetime, hours: int = 3, facilitators: tuple[tuple[str, str], ...] = ()
) -> sev.SessionScheduled:
    return sev.SessionScheduled(
        session_id=session,
        clinician_id=clinician,
        client_ids=[uid("client")],
        starts_at=to_timestamp(starts_at),
        ends_at=to_timestamp(starts_at + timedelta(hours=hours)),
        kind=sev.SESSION_KIND_GROUP,
        treating_facilitators=[sev.SessionFacilitator(clinician_id=c, role=role) for c, role in facilitators],
    )


def book(
    producer: SchedulerEvents,
    clinician: str,
    starts_at: datetime,
    hours: int = 3,
    facilitators: tuple[tuple[str, str], ...] = (),
) -> str:
    session = uid("s")
    producer.send(session, scheduled(session, clinician, starts_at, hours, facilitators))
    return session


def test_a_board_action_is_published_and_flags_the_booked_sessions_it_affects(
    stub, settings: Settings, db: Any
) -> None:
    """A suspension is published (CredentialStatusChanged, key clinician_id) and flags the booked
    sessions of the clinician that end after it takes effect, as an expiry does; a session booked
    during it is flagged when scheduled; a retry publishes nothing again; a reinstatement is
    published, flags nothing and takes the flag off the sessions it leaves the license active for
    throughout, naming them (cleared_session_ids); a compact privilege's revocation the same."""
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    admin = auth_metadata(settings, "supervisor", "supervisor-7")
    try:
        clinician = uid("clin")
        lic = record_license(stub, settings, clinician, "CA")
        suspended_from = NOW + timedelta(days=3)
        before = book(producer, clinician, NOW + timedelta(days=1))
        spanning = book(producer, clinician, suspended_from - timedelta(hours=1))
        after = book(producer, clinician, NOW + timedelta(days=5))
        cancelled = book(producer, clinician, NOW + timedelta(days=6))
        producer.send(cancelled, sev.SessionCancelled(session_id=cancelled, reason="client request"))
        assert wait_until(
            lambda: (
                bool(db["sessions"].find_one({"_id": cancelled, "status": "cancelled"}))
                and db["sessions"].count_documents({"_id": {"$in": [before, spanning, after]}}) == 3
            )
        ), "the sessions were not consumed"

        suspend = pb.UpdateLicenseStatusRequest(
            license_id=lic.license_id, status="suspended", effective_at=to_timestamp(suspended_from)
        )
        stub.UpdateLicenseStatus(suspend, metadata=admin, timeout=CALL_TIMEOUT_S)
        flag = f"BOARD_ACTION_SUSPENDED:license:{lic.license_id}"

        def flags(session: str) -> list[str]:
            return list((db["sessions"].find_one({"_id": session}) or {}).get("flags", []))

        # flagged before the call returns
        assert flags(spanning) == [flag] and flags(after) == [flag]
        assert flags(before) == [] and flags(cancelled) == []
        found = tail.wait_for(lambda key, ev, p: ev.type == STATUS_CHANGED and p.item_id == lic.license_id)
        assert len(found) == 1, [p for _, _, p in tail.seen]
        key, event, published = found[0]
        assert key == clinician.encode() and event.subject == clinician
        assert (published.item_type, published.clinician_id, published.status) == ("license", clinician, "suspended")
        assert abs(published.effective_at.ToDatetime(tzinfo=UTC) - suspended_from) < timedelta(milliseconds=1)
        assert sorted(published.affected_session_ids) == sorted([spanning, after])

        # booked after the action, during the suspension: flagged when the scheduler's event arrives
        late = book(producer, clinician, NOW + timedelta(days=8))
        assert wait_until(lambda: flags(late) == [flag]), flags(late)

        # a retry records and publishes nothing again; a reinstatement is published and flags nothing;
        # it takes the flag off the session it leaves the license active for throughout (until
        # 2026-12-07 flags stayed), not off those still suspended during part of them
        stub.UpdateLicenseStatus(suspend, metadata=admin, timeout=CALL_TIMEOUT_S)
        reinstate = pb.UpdateLicenseStatusRequest(
            license_id=lic.license_id, status="active", effective_at=to_timestamp(NOW + timedelta(days=7))
        )
        stub.UpdateLicenseStatus(reinstate, metadata=admin, timeout=CALL_TIMEOUT_S)
        assert flags(late) == []  # before the call returns
        found = tail.wait_for(lambda key, ev, p: ev.type == STATUS_CHANGED and p.item_id == lic.license_id, count=2)
        tail.wait_for(lambda *_: False, timeout_s=2)  # anything more
        mine = [p for _, ev, p in tail.seen if ev.type == STATUS_CHANGED and p.item_id == lic.license_id]
        assert [(p.status, list(p.affected_session_ids), list(p.cleared_session_ids)) for p in mine[1:]] == [
            ("active", [], [late])
        ], mine
        assert list(mine[0].cleared_session_ids) == []
        for session in (spanning, after):
            assert flags(session) == [flag]
        assert flags(before) == [] and flags(cancelled) == [] and flags(late) == []

        # a compact privilege withdrawn: the same
        md = auth_metadata(settings, "platform")
        privilege = record_counseling_privilege(stub, settings, clinician)
        stub.UpdateCompactCredentialStatus(
            pb.UpdateCompactCredentialStatusRequest(
                credential_id=privilege.credential_id, status="revoked", effective_at=to_timestamp(NOW)
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )
        revoked_flag = f"BOARD_ACTION_REVOKED:compact_credential:{privilege.credential_id}"
        assert all(revoked_flag in flags(s) for s in (before, spanning, after, late))
        assert flag in flags(after) and flag not in flags(late)  # another item's flags are not touched
        assert revoked_flag not in flags(cancelled)
        found = tail.wait_for(lambda key, ev, p: ev.type == STATUS_CHANGED and p.item_id == privilege.credential_id)
        assert len(found) == 1
        assert found[0][2].item_type == "compact_credential" and found[0][2].status == "revoked"
        assert sorted(found[0][2].affected_session_ids) == sorted([before, spanning, after, late])
    finally:
        tail.close()
        producer.close()


def session_flags(db: Any, session: str) -> list[str]:
    return list((db["sessions"].find_one({"_id": session}) or {}).get("flags", []))


def test_a_board_action_on_a_co_facilitator_flags_the_groups_they_treat_in(stub, settings: Settings, db: Any) -> None:
    """A co-facilitator's license suspended: the groups they co-facilitate or lead (listed in
    SessionScheduled's treating_facilitators) are flagged and named in CredentialStatusChanged, as
    their own sessions are; a group where they are listed as an observer and one without them are
    not; one booked during the suspension is flagged when scheduled. A redelivered SessionScheduled
    is applied once."""
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        co = uid("clin")
        lic = record_license(stub, settings, co, "CA")
        first = uid("s")
        message = scheduled(first, uid("clin"), NOW + timedelta(days=2), facilitators=((co, "co_facilitator"),))
        sent = producer.send(first, message)
        producer.send(first, message, event_id=sent.id)  # redelivered
        leading = book(producer, uid("clin"), NOW + timedelta(days=3), facilitators=((co, "lead"),))
        watching = book(producer, uid("clin"), NOW + timedelta(days=3), facilitators=((co, "observer"),))
        without = book(producer, uid("clin"), NOW + timedelta(days=3), facilitators=((uid("clin"), "lead"),))
        assert wait_until(
            lambda: db["sessions"].count_documents({"_id": {"$in": [first, leading, watching, without]}}) == 4
        ), "the sessions were not consumed"
        stored = db["sessions"].find_one({"_id": first}) or {}
        assert stored["facilitators"] == [{"clinician_id": co, "role": "co_facilitator"}]
        assert stored["facilitator_ids"] == [co] and stored["applied_events"].count(sent.id) == 1
        assert (db["sessions"].find_one({"_id": watching}) or {})["facilitator_ids"] == []

        board_acts(stub, settings, lic.license_id, "suspended", NOW + timedelta(days=1))
        flag = f"BOARD_ACTION_SUSPENDED:license:{lic.license_id}"
        assert session_flags(db, first) == [flag] and session_flags(db, leading) == [flag]
        assert session_flags(db, watching) == [] and session_flags(db, without) == []
        found = tail.wait_for(lambda key, ev, p: ev.type == STATUS_CHANGED and p.item_id == lic.license_id)
        assert len(found) == 1, [p for _, _, p in tail.seen]
        key, _, published = found[0]
        assert key == co.encode() and published.clinician_id == co
        assert sorted(published.affected_session_ids) == sorted([first, leading])

        # booked during the suspension: flagged when the scheduler's event arrives
        late = book(producer, uid("clin"), NOW + timedelta(days=8), facilitators=((co, "co_facilitator"),))
        assert wait_until(lambda: session_flags(db, late) == [flag]), session_flags(db, late)
    finally:
        tail.close()
        producer.close()


def test_a_co_facilitators_expiring_license_flags_the_groups_they_treat_in(stub, settings: Settings, db: Any) -> None:
    """A co-facilitator's license expiring before a group they co-facilitate: the expiry monitor's
    CredentialExpiring names the group and flags it, ListExpiring lists it, and a group booked
    after the license was recorded is flagged when scheduled."""
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        co = uid("clin")
        group = book(producer, uid("clin"), NOW + timedelta(days=9), facilitators=((co, "co_facilitator"),))
        observed = book(producer, uid("clin"), NOW + timedelta(days=9), facilitators=((co, "observer"),))
        assert wait_until(lambda: db["sessions"].count_documents({"_id": {"$in": [group, observed]}}) == 2), (
            "the sessions were not consumed"
        )
        expiring = record_license(stub, settings, co, "CA", valid_until=to_timestamp(NOW + timedelta(days=5)))
        flag = f"EXPIRES_BEFORE_SESSION:license:{expiring.license_id}"
        # the monitor runs every second in this test's process
        found = tail.wait_for(
            lambda key, ev, p: ev.type == "iop.events.v1.CredentialExpiring" and p.item_id == expiring.license_id
        )
        assert found, [p for _, _, p in tail.seen]
        assert list(found[0][2].affected_session_ids) == [group]
        assert wait_until(lambda: session_flags(db, group) == [flag]), session_flags(db, group)
        assert session_flags(db, observed) == []
        listed = stub.ListExpiring(
            pb.ListExpiringRequest(horizon_days=30, owner_id=co),
            metadata=auth_metadata(settings, "supervisor"),
            timeout=CALL_TIMEOUT_S,
        )
        assert [(i.item_id, list(i.affected_session_ids)) for i in listed.items] == [(expiring.license_id, [group])]

        later = book(producer, uid("clin"), NOW + timedelta(days=10), facilitators=((co, "lead"),))
        assert wait_until(lambda: session_flags(db, later) == [flag]), session_flags(db, later)
    finally:
        tail.close()
        producer.close()


def test_the_start_recheck_covers_the_treating_facilitators(stub, settings: Settings, db: Any) -> None:
    """At SessionStarted the licensure of each lead and co-facilitator is re-checked as the
    clinician's is, each in a LicensureChecked naming them (clinician_id, clinician_role): a
    co-facilitator suspended since booking is denied. An observer is not checked."""
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician, lead, co, observer = uid("clin"), uid("clin"), uid("clin"), uid("clin")
        client, session = uid("client"), uid("s")
        for someone in (clinician, lead, observer):
            record_license(stub, settings, someone, "CA")
        suspended = record_license(stub, settings, co, "CA")
        started = datetime.now(UTC)
        facilitators = ((lead, "lead"), (co, "co_facilitator"), (observer, "observer"))
        message = scheduled(session, clinician, started, facilitators=facilitators)
        message.client_ids[:] = [client]
        producer.send(session, message)
        board_acts(stub, settings, suspended.license_id, "suspended", started - timedelta(minutes=1))
        check_in_and_start(producer, session, clinician, client, started, clinician_state="CA")

        def mine(key: bytes | None, ev: Any, p: Any) -> bool:
            # from a process whose store has the licenses (another answers NO_LICENSE_IN_STATE, ...)
            return (
                ev.type == "iop.events.v1.LicensureChecked"
                and p.session_id == session
                and bool({"LICENSED_IN_STATE", "LICENSE_SUSPENDED"} & set(p.reasons))
            )

        found = tail.wait_for(mine, count=3)
        tail.wait_for(lambda *_: False, timeout_s=2)  # anything more
        checked = {(p.clinician_id, p.clinician_role): p for key, ev, p in tail.seen if mine(key, ev, p)}
        assert sorted(checked) == sorted([(clinician, "clinician"), (lead, "lead"), (co, "co_facilitator")]), found
        assert all(p.client_id == client and p.client_state == "CA" for p in checked.values())
        assert checked[(clinician, "clinician")].decision == "allow"
        assert checked[(lead, "lead")].decision == "allow"
        denied = checked[(co, "co_facilitator")]
        assert denied.decision == "deny" and "LICENSE_SUSPENDED" in denied.reasons, denied
    finally:
        tail.close()
        producer.close()


def test_a_client_seated_after_booking_is_on_the_session_and_flags_it(stub, settings: Settings, db: Any) -> None:
    """SessionRosterChanged: a client seated in a group after it was booked joins compliance's copy
    of the session (once, however often the event is delivered), their authorization expiring
    before the session flags it and ListExpiring names it; a seat taken before its SessionScheduled
    arrives (the scheduler's relay can publish it first) is kept by that event and flagged; a client
    removed from the roster leaves the copy with their flags."""
    producer = SchedulerEvents(settings)
    try:
        clinician, booked_client, seated = uid("clin"), uid("client"), uid("client")
        record_license(stub, settings, clinician, "CA")
        authorization = ready_client(stub, settings, seated, "demo-commercial-ppo")  # ends in 30 days
        flag = f"EXPIRES_BEFORE_SESSION:authorization:{authorization.authorization_id}"
        starts_at = NOW + timedelta(days=35)
        group = uid("s")
        message = scheduled(group, clinician, starts_at)
        message.client_ids[:] = [booked_client]
        producer.send(group, message)
        roster = sev.SessionRosterChanged(session_id=group, client_ids=[booked_client, seated], added=[seated])
        sent = producer.send(group, roster)
        producer.send(group, roster, event_id=sent.id)  # redelivered
        assert wait_until(lambda: flag in session_flags(db, group)), db["sessions"].find_one({"_id": group})
        stored = db["sessions"].find_one({"_id": group}) or {}
        assert stored["client_ids"] == [booked_client, seated] and stored["applied_events"].count(sent.id) == 1
        listed = stub.ListExpiring(
            pb.ListExpiringRequest(horizon_days=60, owner_id=seated),
            metadata=auth_metadata(settings, "supervisor"),
            timeout=CALL_TIMEOUT_S,
        )
        named = {i.item_id: list(i.affected_session_ids) for i in listed.items}
        assert named.get(authorization.authorization_id) == [group], named

        # the seat's event published before the group's SessionScheduled (empty roster at booking)
        early = uid("s")
        producer.send(early, sev.SessionRosterChanged(session_id=early, client_ids=[seated], added=[seated]))
        message = scheduled(early, clinician, starts_at)
        message.client_ids[:] = []
        producer.send(early, message)
        assert wait_until(lambda: flag in session_flags(db, early)), db["sessions"].find_one({"_id": early})
        assert (db["sessions"].find_one({"_id": early}) or {})["client_ids"] == [seated]

        # the seat given back: off the copy, with the flag it caused
        producer.send(group, sev.SessionRosterChanged(session_id=group, client_ids=[booked_client], removed=[seated]))
        assert wait_until(lambda: (db["sessions"].find_one({"_id": group}) or {})["client_ids"] == [booked_client])
        assert flag not in session_flags(db, group)
        listed = stub.ListExpiring(
            pb.ListExpiringRequest(horizon_days=60, owner_id=seated),
            metadata=auth_metadata(settings, "supervisor"),
            timeout=CALL_TIMEOUT_S,
        )
        named = {i.item_id: list(i.affected_session_ids) for i in listed.items}
        assert named.get(authorization.authorization_id) == [early], named
    finally:
        producer.close()


def test_a_board_action_and_an_expiry_during_a_session_in_progress_flag_and_name_it(
    stub, settings: Settings, db: Any
) -> None:
    """A session that has started (SessionStarted) is still treated in until its booked end: a
    suspension effective before that end flags it and names it in CredentialStatusChanged, as a
    booked session; a license expiring while it runs names it in CredentialExpiring and flags it.
    A session that ended, or whose booked end is before the action, is not touched."""
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician, co = uid("clin"), uid("clin")
        lic = record_license(stub, settings, clinician, "CA")
        began = datetime.now(UTC) - timedelta(minutes=30)

        def running(hours: float, facilitators: tuple[tuple[str, str], ...] = ()) -> str:
            session = uid("s")
            message = scheduled(session, clinician, began, facilitators=facilitators)
            message.ends_at.CopyFrom(to_timestamp(began + timedelta(hours=hours)))
            producer.send(session, message)
            producer.send(
                session,
                sev.SessionStarted(
                    session_id=session, clinician_id=clinician, client_ids=[], started_at=to_timestamp(began)
                ),
            )
            return session

        live = running(3, facilitators=((co, "co_facilitator"),))
        short = running(1)  # booked to end before the suspension takes effect
        ended = running(3)
        producer.send(ended, sev.SessionEnded(session_id=ended, clinician_id=clinician, ended_at=to_timestamp(NOW)))
        assert wait_until(
            lambda: (
                db["sessions"].count_documents({"_id": {"$in": [live, short]}, "status": "started"}) == 2
                and bool(db["sessions"].find_one({"_id": ended, "status": "ended"}))
            )
        ), "the sessions were not consumed"

        board_acts(stub, settings, lic.license_id, "suspended", datetime.now(UTC) + timedelta(hours=1))
        flag = f"BOARD_ACTION_SUSPENDED:license:{lic.license_id}"
        assert flag in session_flags(db, live)
        assert flag not in session_flags(db, short) and flag not in session_flags(db, ended)
        found = tail.wait_for(lambda key, ev, p: ev.type == STATUS_CHANGED and p.item_id == lic.license_id)
        assert len(found) == 1, [p for _, _, p in tail.seen]
        assert list(found[0][2].affected_session_ids) == [live]

        # the co-facilitator's license expires in an hour, while the session runs (the monitor runs
        # every second). Recorded only now that the session is stored: a warning sent before the
        # session was booked could not name it (the session is flagged at booking instead).
        expiring = record_license(
            stub, settings, co, "CA", valid_until=to_timestamp(datetime.now(UTC) + timedelta(hours=1))
        )
        found = tail.wait_for(
            lambda key, ev, p: ev.type == "iop.events.v1.CredentialExpiring" and p.item_id == expiring.license_id
        )
        assert found, [p for _, _, p in tail.seen]
        assert list(found[0][2].affected_session_ids) == [live]
        assert f"EXPIRES_BEFORE_SESSION:license:{expiring.license_id}" in session_flags(db, live)
    finally:
        tail.close()
        producer.close()


def test_list_expiring_leaves_out_a_credential_not_in_force_when_it_expires(stub, settings: Settings) -> None:
    """ListExpiring agrees with the expiry monitor: a license suspended by the board, or revoked from
    a date before its expiry, is not in force when it expires and is not listed; one whose
    reinstatement takes effect before its expiry is, as is one no board acted on."""
    clinician = uid("clin")
    expires = to_timestamp(NOW + timedelta(days=5))
    plain, suspended, revoked_later, reinstated = (
        record_license(stub, settings, clinician, state, valid_until=expires) for state in ("CA", "OR", "WA", "NV")
    )

    board_acts(stub, settings, suspended.license_id, "suspended", NOW)
    board_acts(stub, settings, revoked_later.license_id, "revoked", NOW + timedelta(days=2))
    board_acts(stub, settings, reinstated.license_id, "suspended", NOW)
    board_acts(stub, settings, reinstated.license_id, "active", NOW + timedelta(days=1))
    listed = stub.ListExpiring(
        pb.ListExpiringRequest(horizon_days=30, owner_id=clinician),
        metadata=auth_metadata(settings, "supervisor"),
        timeout=CALL_TIMEOUT_S,
    )
    assert sorted(i.item_id for i in listed.items) == sorted([plain.license_id, reinstated.license_id]), listed


def test_booking_flags_no_expiry_of_a_credential_not_in_force_when_it_expires(
    stub, settings: Settings, db: Any
) -> None:
    """A session booked after its clinician's licenses and privilege expire is flagged as the expiry
    monitor and ListExpiring see them: EXPIRES_BEFORE_SESSION for a license in force when it expires
    (no board action, or reinstated before then); a license suspended or revoked at its expiry, and a
    revoked privilege, carry their BOARD_ACTION_<STATUS> flag only (until 2026-12-07 they carried both).
    The items expire beyond the monitor's horizons: only the booking flags."""
    admin = auth_metadata(settings, "supervisor", "supervisor-7")
    producer = SchedulerEvents(settings)
    try:
        clinician = uid("clin")
        expires_at = NOW + timedelta(days=90)
        plain, suspended, revoked_later, reinstated = (
            record_license(stub, settings, clinician, state, valid_until=to_timestamp(expires_at))
            for state in ("CA", "OR", "WA", "NV")
        )
        privilege = record_counseling_privilege(stub, settings, clinician, valid_until=expires_at)

        board_acts(stub, settings, suspended.license_id, "suspended", NOW)
        board_acts(stub, settings, revoked_later.license_id, "revoked", NOW + timedelta(days=30))
        board_acts(stub, settings, reinstated.license_id, "suspended", NOW)
        board_acts(stub, settings, reinstated.license_id, "active", NOW + timedelta(days=10))
        stub.UpdateCompactCredentialStatus(
            pb.UpdateCompactCredentialStatusRequest(
                credential_id=privilege.credential_id, status="revoked", effective_at=to_timestamp(NOW)
            ),
            metadata=admin,
            timeout=CALL_TIMEOUT_S,
        )
        session = book(producer, clinician, expires_at + timedelta(days=5))
        expected = sorted(
            [
                f"EXPIRES_BEFORE_SESSION:license:{plain.license_id}",
                f"EXPIRES_BEFORE_SESSION:license:{reinstated.license_id}",
                f"BOARD_ACTION_SUSPENDED:license:{suspended.license_id}",
                f"BOARD_ACTION_REVOKED:license:{revoked_later.license_id}",
                f"BOARD_ACTION_REVOKED:compact_credential:{privilege.credential_id}",
            ]
        )
        assert wait_until(lambda: set(expected) <= set(session_flags(db, session))), session_flags(db, session)
        time.sleep(1)  # anything more the booking's handler flags
        assert sorted(session_flags(db, session)) == expected
    finally:
        producer.close()


def test_an_expiry_during_a_booked_session_names_and_flags_it(stub, settings: Settings, db: Any) -> None:
    """A license expiring during a booked session (it starts before the expiry and ends after it)
    does not cover it: CredentialExpiring names it and flags it, ListExpiring lists it, and one such
    session booked after the warning is flagged when scheduled. A session over before the expiry is
    not touched."""
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician = uid("clin")
        expires_at = NOW + timedelta(days=5)
        before = book(producer, clinician, expires_at - timedelta(hours=4))  # ends an hour before
        spanning = book(producer, clinician, expires_at - timedelta(hours=1))
        after = book(producer, clinician, NOW + timedelta(days=9))
        assert wait_until(lambda: db["sessions"].count_documents({"_id": {"$in": [before, spanning, after]}}) == 3), (
            "the sessions were not consumed"
        )
        # recorded once the sessions are stored: the monitor runs every second in this test's process
        expiring = record_license(stub, settings, clinician, "CA", valid_until=to_timestamp(expires_at))
        flag = f"EXPIRES_BEFORE_SESSION:license:{expiring.license_id}"
        found = tail.wait_for(
            lambda key, ev, p: ev.type == "iop.events.v1.CredentialExpiring" and p.item_id == expiring.license_id
        )
        assert found, [p for _, _, p in tail.seen]
        assert sorted(found[0][2].affected_session_ids) == sorted([spanning, after])
        assert wait_until(lambda: session_flags(db, spanning) == [flag]), session_flags(db, spanning)
        assert session_flags(db, after) == [flag] and session_flags(db, before) == []
        listed = stub.ListExpiring(
            pb.ListExpiringRequest(horizon_days=30, owner_id=clinician),
            metadata=auth_metadata(settings, "supervisor"),
            timeout=CALL_TIMEOUT_S,
        )
        assert [(i.item_id, sorted(i.affected_session_ids)) for i in listed.items] == [
            (expiring.license_id, sorted([spanning, after]))
        ]

        late = book(producer, clinician, expires_at - timedelta(minutes=30))
        assert wait_until(lambda: session_flags(db, late) == [flag]), session_flags(db, late)
    finally:
        tail.close()
        producer.close()


def test_an_interrupted_session_is_no_longer_named_or_flagged(stub, settings: Settings, db: Any) -> None:
    """SessionInterrupted: the scheduler neither ends nor starts the session again (it may
    reschedule it, as a new session), so compliance's copy is no longer live: a suspension effective
    before its booked end names and flags the sessions still running or booked, not the one
    interrupted while running nor the one interrupted before it started (compromised privacy at
    check-in). A redelivered SessionInterrupted is applied once."""
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician = uid("clin")
        lic = record_license(stub, settings, clinician, "CA")
        began = datetime.now(UTC) - timedelta(minutes=30)

        def running() -> str:
            session = uid("s")
            producer.send(session, scheduled(session, clinician, began))
            producer.send(
                session,
                sev.SessionStarted(
                    session_id=session, clinician_id=clinician, client_ids=[], started_at=to_timestamp(began)
                ),
            )
            return session

        live, dropped = running(), running()
        interrupted = sev.SessionInterrupted(
            session_id=dropped, reason="DISCONNECTED", interrupted_at=to_timestamp(datetime.now(UTC))
        )
        sent = producer.send(dropped, interrupted)
        producer.send(dropped, interrupted, event_id=sent.id)  # redelivered
        booked = book(producer, clinician, NOW + timedelta(days=1))
        unsafe = book(producer, clinician, NOW + timedelta(days=1))
        producer.send(
            unsafe,
            sev.SessionInterrupted(
                session_id=unsafe, reason="PRIVACY_COMPROMISED", interrupted_at=to_timestamp(datetime.now(UTC))
            ),
        )
        assert wait_until(
            lambda: (
                db["sessions"].count_documents({"_id": {"$in": [dropped, unsafe]}, "status": "interrupted"}) == 2
                and db["sessions"].count_documents({"_id": {"$in": [live, booked]}}) == 2
            )
        ), "the sessions were not consumed"
        stored = db["sessions"].find_one({"_id": dropped}) or {}
        assert stored["interruption_reason"] == "DISCONNECTED" and stored["applied_events"].count(sent.id) == 1

        board_acts(stub, settings, lic.license_id, "suspended", datetime.now(UTC) + timedelta(hours=1))
        flag = f"BOARD_ACTION_SUSPENDED:license:{lic.license_id}"
        assert session_flags(db, live) == [flag] and session_flags(db, booked) == [flag]
        assert session_flags(db, dropped) == [] and session_flags(db, unsafe) == []
        found = tail.wait_for(lambda key, ev, p: ev.type == STATUS_CHANGED and p.item_id == lic.license_id)
        assert len(found) == 1, [p for _, _, p in tail.seen]
        assert sorted(found[0][2].affected_session_ids) == sorted([live, booked])
    finally:
        tail.close()
        producer.close()
