"""The compliance service as a real process, through gRPC, against the real store and broker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.message import Message
from grpc_status import rpc_status
from kafka import KafkaProducer
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from pymongo import MongoClient

from iop.compliance.v1 import compliance_pb2 as pb
from iop.compliance.v1 import compliance_pb2_grpc
from iop.events.v1 import common_pb2
from iop.events.v1 import compliance_pb2 as compliance_events  # noqa: F401  (registers the event types)
from iop.events.v1 import scheduling_pb2 as sev
from services.compliance.reference import load_reference
from services.plumbing.envelope import CloudEvent
from services.plumbing.errors import bad_request_violations, error_reason
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.support import (
    ServiceProcess,
    auth_metadata,
    consumer_at_end,
    isolated_settings,
    start_group_at_end,
    until_stopped,
    wait_for_trace,
)

pytestmark = pytest.mark.integration

SESSIONS_TOPIC = "iop.scheduling.sessions.v1"
# The tests' deadline on a call: not what they check (FerretDB answers a service's first calls slowly).
CALL_TIMEOUT_S = 30
NOW = datetime.now(UTC)


def past_midweek() -> datetime:
    """10:00 in California on a recent past Monday-Wednesday: the day is closed for billing (its
    sessions bill at once) and the program week is not (no weekly-minimum flag)."""
    california = ZoneInfo("America/Los_Angeles")
    # A billing day closes some hours after its local midnight (`close_after`): take the last day
    # already closed there (not in UTC), whenever the tests run, even at 01:00 in California.
    close_after = load_reference().close_after + timedelta(hours=1)
    day = (datetime.now(UTC).astimezone(california) - close_after).date() - timedelta(days=1)
    while day.weekday() > 2:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=california).astimezone(UTC)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- helpers shared with the e2e scenarios ------------------------------------------------------


class TopicTail:
    """Reads a topic from its current end: the events produced after it was opened."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer = consumer_at_end(settings, topic)
        self.seen: list[tuple[bytes | None, CloudEvent, Message]] = []

    def wait_for(
        self, predicate: Callable[[bytes | None, CloudEvent, Any], bool], count: int = 1, timeout_s: float = 30
    ) -> list[tuple[bytes | None, CloudEvent, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            matches = [m for m in self.seen if predicate(*m)]
            if len(matches) >= count:
                return matches
            for records in self.consumer.poll(timeout_ms=300).values():
                for r in records:
                    event = CloudEvent.from_kafka(r.headers, r.value)
                    self.seen.append((r.key, event, event.payload()))
        return [m for m in self.seen if predicate(*m)]

    def close(self) -> None:
        self.consumer.close()


class SchedulerEvents:
    """Produces the scheduler's events as the scheduler does: CloudEvents envelope, key = session_id."""

    def __init__(self, settings: Settings) -> None:
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")

    def send(self, session_id: str, message: Message, event_id: str | None = None) -> CloudEvent:
        event = CloudEvent.new("/iop/scheduler", session_id, message, event_id=event_id)
        self.producer.send(SESSIONS_TOPIC, key=session_id.encode(), value=event.data, headers=event.headers())
        self.producer.flush(10)
        return event

    def close(self) -> None:
        self.producer.close()


def start_compliance(**env: str) -> ServiceProcess:
    """A compliance process whose scheduler-events consumer starts at the topic's current end
    (`env`: more of its environment).

    Its consumer group is new for each test run, and a new group reads from the earliest offset:
    it would first replay every session other suites ever published. The group's offsets are
    committed at the end first, so the process sees the events this run produces.
    """
    proc = ServiceProcess("compliance", env={"COMPLIANCE_MONITOR_INTERVAL_S": "1", **env})
    start_group_at_end(isolated_settings(), f"{proc.env['KAFKA_GROUP_PREFIX']}.compliance.scheduling", SESSIONS_TOPIC)
    return proc.start()


def stub_for(proc: ServiceProcess) -> tuple[grpc.Channel, compliance_pb2_grpc.ComplianceServiceStub]:
    channel = grpc.insecure_channel(proc.target)
    return channel, compliance_pb2_grpc.ComplianceServiceStub(channel)


def record_license(stub, settings: Settings, clinician: str, state: str, **kw: Any) -> pb.License:
    fields: dict[str, Any] = {
        "clinician_id": clinician,
        "state": state,
        "license_type": "LPC",
        "license_number": f"LPC-{uuid.uuid4().hex[:8].upper()}",
        "valid_from": to_timestamp(NOW - timedelta(days=400)),
        "valid_until": to_timestamp(NOW + timedelta(days=400)),
    }
    fields.update(kw)
    return stub.RecordLicense(
        pb.RecordLicenseRequest(**fields), metadata=auth_metadata(settings, "platform"), timeout=CALL_TIMEOUT_S
    )


def ready_client(stub, settings: Settings, client: str, plan: str, units: int = 20) -> pb.Authorization:
    md = auth_metadata(settings, "platform")
    stub.RecordConsent(
        pb.RecordConsentRequest(
            client_id=client,
            consent_type="TELEHEALTH",
            form_version="telehealth-2025-01",
            signed_at=to_timestamp(NOW - timedelta(days=20)),
        ),
        metadata=md,
        timeout=CALL_TIMEOUT_S,
    )
    stub.RecordConsent(
        pb.RecordConsentRequest(
            client_id=client,
            consent_type="ROI_EMERGENCY_CONTACT",
            form_version="roi-ec-2025-01",
            signed_at=to_timestamp(NOW - timedelta(days=20)),
            contact_id=uid("contact"),
        ),
        metadata=md,
        timeout=CALL_TIMEOUT_S,
    )
    start = (NOW - timedelta(days=30)).date()
    return stub.RecordAuthorization(
        pb.RecordAuthorizationRequest(
            client_id=client,
            payer_plan_id=plan,
            auth_number=uid("PA"),
            codes=["S9480"],
            start_date=start.isoformat(),
            end_date=(start + timedelta(days=60)).isoformat(),
            units=units,
        ),
        metadata=md,
        timeout=CALL_TIMEOUT_S,
    )


def own_plan(stub, settings: Settings, seed: str) -> str:
    """A copy of a seed plan under a new id: only this test's process has it (another bills the
    same scheduler events with NO_PAYER_POLICY)."""
    md = auth_metadata(settings, "platform")
    plan = stub.GetPayerPolicy(pb.GetPayerPolicyRequest(plan_id=seed), metadata=md, timeout=CALL_TIMEOUT_S)
    plan.plan_id = uid("plan")
    return str(stub.UpsertPayerPolicy(plan, metadata=md, timeout=CALL_TIMEOUT_S).plan_id)


def billed_here(client: str) -> Any:
    return lambda key, ev, p: p.client_id == client and "NO_PAYER_POLICY" not in p.problems


def evaluate(stub, settings: Settings, **kw: Any) -> pb.SessionEvaluation:
    fields: dict[str, Any] = {
        "session_id": uid("s"),
        "starts_at": to_timestamp(NOW + timedelta(hours=3)),
        "ends_at": to_timestamp(NOW + timedelta(hours=6)),
        "payer_plan_id": "demo-commercial-ppo",
        "modality": common_pb2.MODALITY_VIDEO,
        "stage": pb.EVALUATION_STAGE_BOOKING,
    }
    fields.update(kw)
    return stub.EvaluateSession(
        pb.EvaluateSessionRequest(**fields), metadata=auth_metadata(settings, "platform"), timeout=CALL_TIMEOUT_S
    )


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value  # type: ignore[return-value]


# --- fixtures ------------------------------------------------------------------------------------


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


# --- tests ---------------------------------------------------------------------------------------


def test_evaluate_session_allows_a_ready_session_and_blocks_a_travelling_client(stub, settings: Settings) -> None:
    clinician, client = uid("clin"), uid("client")
    record_license(stub, settings, clinician, "CA")
    auth = ready_client(stub, settings, client, "demo-commercial-ppo")
    location = common_pb2.ClientLocation(state="CA", verified=True)
    ok = evaluate(
        stub,
        settings,
        clinician_id=clinician,
        client_id=client,
        client_location=location,
        stage=pb.EVALUATION_STAGE_START,
        privacy_attestation="headphones",
    )
    assert ok.decision == pb.DECISION_ALLOW, ok
    assert ok.licensure.reasons == ["LICENSED_IN_STATE"]
    assert list(ok.coverage.codes) == ["S9480"] and list(ok.coverage.modifiers) == ["95"]
    assert ok.coverage.authorization_id == auth.authorization_id and ok.coverage.revenue_code == "0905"
    assert ok.data_version.startswith("compacts@")

    travelled = evaluate(
        stub,
        settings,
        clinician_id=clinician,
        client_id=client,
        client_location=common_pb2.ClientLocation(state="NV", verified=True),
        stage=pb.EVALUATION_STAGE_START,
        privacy_attestation="alone",
    )
    assert travelled.decision == pb.DECISION_DENY
    assert {"NO_LICENSE_IN_STATE", "NO_COMPACT_PRIVILEGE"} <= set(travelled.licensure.reasons)


def test_evaluate_session_fails_closed_and_reports_privacy(stub, settings: Settings) -> None:
    clinician, client = uid("clin"), uid("client")
    record_license(stub, settings, clinician, "CA", verified_at=to_timestamp(NOW - timedelta(days=900)))
    ready_client(stub, settings, client, "demo-commercial-ppo")
    stale = evaluate(
        stub,
        settings,
        clinician_id=clinician,
        client_id=client,
        client_location=common_pb2.ClientLocation(state="CA", verified=True),
    )
    assert stale.decision == pb.DECISION_NEEDS_REVIEW
    assert "LICENSE_VERIFICATION_STALE" in stale.licensure.reasons

    unknown = evaluate(
        stub,
        settings,
        clinician_id=uid("nobody"),
        client_id=client,
        client_location=common_pb2.ClientLocation(state="CA", verified=True),
    )
    assert unknown.decision == pb.DECISION_DENY

    compromised = evaluate(
        stub,
        settings,
        clinician_id=clinician,
        client_id=client,
        client_location=common_pb2.ClientLocation(state="CA", verified=False),
        stage=pb.EVALUATION_STAGE_START,
        privacy_attestation="compromised",
    )
    assert compromised.decision == pb.DECISION_DENY
    assert list(compromised.privacy_problems) == ["PRIVACY_COMPROMISED"]
    assert "CLIENT_LOCATION_NOT_VERIFIED" in compromised.licensure.reasons


def test_bad_input_names_every_field_and_stores_nothing(stub, settings: Settings) -> None:
    clinician = uid("clin")
    md = auth_metadata(settings, "platform")
    err = rpc_error(
        lambda: stub.RecordLicense(
            pb.RecordLicenseRequest(
                clinician_id=clinician,
                state="XX",
                license_type="WIZARD",
                license_number="no spaces allowed",
                valid_from=to_timestamp(NOW),
                valid_until=to_timestamp(NOW - timedelta(days=1)),
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {f for f, _ in bad_request_violations(rpc_status.from_call(err))}  # type: ignore[arg-type]
    assert {"state", "license_type", "license_number", "valid_until"} <= fields
    listed = stub.ListClinicianCredentials(
        pb.ListClinicianCredentialsRequest(clinician_id=clinician), metadata=md, timeout=CALL_TIMEOUT_S
    )
    assert not listed.licenses

    err = rpc_error(
        lambda: evaluate(stub, settings, clinician_id=clinician, client_id="k", stage=0, service_code="99999")
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {f for f, _ in bad_request_violations(rpc_status.from_call(err))}  # type: ignore[arg-type]
    assert {"client_location.state", "stage", "service_code"} <= fields

    client = uid("client")
    err = rpc_error(
        lambda: stub.RecordAuthorization(
            pb.RecordAuthorizationRequest(
                client_id=client,
                payer_plan_id="demo-commercial-ppo",
                auth_number="P",
                codes=["S9999"],
                start_date="2026-12-31",
                end_date="2026-12-01",
                units=0,
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )
    )
    fields = {f for f, _ in bad_request_violations(rpc_status.from_call(err))}  # type: ignore[arg-type]
    assert {"auth_number", "codes", "end_date", "units"} <= fields
    ready_client(stub, settings, client, "demo-commercial-ppo")
    start = (NOW - timedelta(days=10)).date()
    err = rpc_error(
        lambda: stub.RecordAuthorization(
            pb.RecordAuthorizationRequest(
                client_id=client,
                payer_plan_id="demo-commercial-ppo",
                auth_number=uid("PA"),
                codes=["S9480"],
                start_date=start.isoformat(),
                end_date=(start + timedelta(days=5)).isoformat(),
                units=5,
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, "overlapping authorization"
    auths = stub.ListAuthorizations(pb.ListAuthorizationsRequest(client_id=client), metadata=md, timeout=CALL_TIMEOUT_S)
    assert len(auths.authorizations) == 1


def test_errors_and_roles(stub, settings: Settings) -> None:
    clinician = uid("clin")
    lic = record_license(stub, settings, clinician, "TX")
    err = rpc_error(lambda: record_license(stub, settings, uid("other"), "TX", license_number=lic.license_number))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(rpc_status.from_call(err)) == "LICENSE_EXISTS"  # type: ignore[arg-type]
    err = rpc_error(
        lambda: stub.EvaluateSession(
            pb.EvaluateSessionRequest(), metadata=auth_metadata(settings, "client"), timeout=CALL_TIMEOUT_S
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = rpc_error(
        lambda: stub.GetPayerPolicy(
            pb.GetPayerPolicyRequest(plan_id="no-such-plan"),
            metadata=auth_metadata(settings, "partner"),
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(
        lambda: stub.RevokeConsent(
            pb.RevokeConsentRequest(consent_id="nope"),
            metadata=auth_metadata(settings, "platform"),
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_payer_policy_upsert_validates_and_versions(stub, settings: Settings) -> None:
    md = auth_metadata(settings, "platform")
    seed = stub.GetPayerPolicy(
        pb.GetPayerPolicyRequest(plan_id="demo-commercial-hmo"), metadata=md, timeout=CALL_TIMEOUT_S
    )
    assert not seed.audio_only.covered
    plan = pb.PayerPolicy()
    plan.CopyFrom(seed)
    plan.plan_id = uid("plan")
    first = stub.UpsertPayerPolicy(plan, metadata=md, timeout=CALL_TIMEOUT_S)
    plan.audio_only.covered, plan.audio_only.modifier = True, "93"
    second = stub.UpsertPayerPolicy(plan, metadata=md, timeout=CALL_TIMEOUT_S)
    assert (first.version, second.version) == (1, 2) and second.audio_only.modifier == "93"
    bad = pb.PayerPolicy(plan_id=uid("plan"), billing_mode="barter", covered_codes=["S9999"], revenue_code="0001")
    err = rpc_error(lambda: stub.UpsertPayerPolicy(bad, metadata=md, timeout=CALL_TIMEOUT_S))
    fields = {f for f, _ in bad_request_violations(rpc_status.from_call(err))}  # type: ignore[arg-type]
    assert {"payer_name", "billing_mode", "covered_codes", "revenue_code", "line_of_business"} <= fields


def test_phi_reads_are_audited(stub, settings: Settings, db) -> None:
    client = uid("client")
    ready_client(stub, settings, client, "demo-commercial-ppo")
    consents = stub.ListConsents(
        pb.ListConsentsRequest(client_id=client),
        metadata=auth_metadata(settings, "clinician", "clin-audit"),
        timeout=CALL_TIMEOUT_S,
    )
    assert {c.consent_type for c in consents.consents} == {"TELEHEALTH", "ROI_EMERGENCY_CONTACT"}
    audit = list(db["phi_access_audit"].find({"resource_id": client}))
    assert [(a["principal"], a["action"]) for a in audit] == [("clin-audit", "ListConsents")]


def test_compromised_attestation_emits_privacy_compromised(stub, settings: Settings) -> None:
    tail = TopicTail(settings, "iop.compliance.privacy.v1")
    try:
        session, client = uid("s"), uid("client")
        stub.RecordPrivacyAttestation(
            pb.RecordPrivacyAttestationRequest(session_id=session, client_id=client, attestation="headphones"),
            metadata=auth_metadata(settings, "client", client),
            timeout=CALL_TIMEOUT_S,
        )
        stub.RecordPrivacyAttestation(
            pb.RecordPrivacyAttestationRequest(session_id=session, client_id=client, attestation="compromised"),
            metadata=auth_metadata(settings, "client", client),
            timeout=CALL_TIMEOUT_S,
        )
        err = rpc_error(
            lambda: stub.RecordPrivacyAttestation(
                pb.RecordPrivacyAttestationRequest(session_id=session, client_id=client, attestation="compromised"),
                metadata=auth_metadata(settings, "client", "someone-else"),
                timeout=CALL_TIMEOUT_S,
            )
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        found = tail.wait_for(
            lambda key, ev, p: ev.type == "iop.events.v1.PrivacyCompromised" and p.session_id == session
        )
        assert len(found) == 1
        key, _, payload = found[0]
        assert key == session.encode() and payload.client_id == client and payload.attestation == "compromised"
    finally:
        tail.close()


def test_expiry_warns_once_per_horizon_and_flags_booked_sessions(stub, settings: Settings, db) -> None:
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician = uid("clin")
        late_session = uid("s")
        producer.send(
            late_session,
            sev.SessionScheduled(
                session_id=late_session,
                clinician_id=clinician,
                client_ids=[uid("client")],
                starts_at=to_timestamp(NOW + timedelta(days=9)),
                ends_at=to_timestamp(NOW + timedelta(days=9, hours=3)),
                kind=sev.SESSION_KIND_GROUP,
            ),
        )
        cancelled = uid("s")
        producer.send(
            cancelled,
            sev.SessionScheduled(
                session_id=cancelled,
                clinician_id=clinician,
                client_ids=[uid("client")],
                starts_at=to_timestamp(NOW + timedelta(days=10)),
                ends_at=to_timestamp(NOW + timedelta(days=10, hours=3)),
                kind=sev.SESSION_KIND_GROUP,
            ),
        )
        producer.send(cancelled, sev.SessionCancelled(session_id=cancelled, reason="client request"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            consumed = db["sessions"].find_one({"_id": cancelled, "status": "cancelled"})
            if consumed and db["sessions"].find_one({"_id": late_session}):
                break
            time.sleep(0.1)
        assert db["sessions"].find_one({"_id": late_session}), "SessionScheduled was not consumed"
        expiring = record_license(
            stub, settings, clinician, "CA", valid_until=to_timestamp(NOW + timedelta(days=5, hours=1))
        )
        record_license(stub, settings, clinician, "OR", valid_until=to_timestamp(NOW + timedelta(days=45)))
        # the monitor runs every second in this test process
        found = tail.wait_for(
            lambda key, ev, p: (
                ev.type == "iop.events.v1.CredentialExpiring"
                and p.owner_id == clinician
                and late_session in p.affected_session_ids
            ),
            timeout_s=30,
        )
        assert found, f"no CredentialExpiring naming the booked session: {[p for _, _, p in tail.seen]}"
        time.sleep(3)  # several more monitor rounds
        tail.wait_for(lambda *_: False, timeout_s=1)
        mine = [
            p for _, ev, p in tail.seen if ev.type == "iop.events.v1.CredentialExpiring" and p.owner_id == clinician
        ]
        by_item = {(p.item_id, p.horizon_days) for p in mine}
        assert (expiring.license_id, 7) in by_item
        assert len([p for p in mine if p.item_id == expiring.license_id]) == 1, "warned more than once"
        assert {h for i, h in by_item if i != expiring.license_id} == {60}
        listed = stub.ListExpiring(
            pb.ListExpiringRequest(horizon_days=30, owner_id=clinician),
            metadata=auth_metadata(settings, "supervisor"),
            timeout=CALL_TIMEOUT_S,
        )
        assert [(i.item_id, list(i.affected_session_ids)) for i in listed.items] == [
            (expiring.license_id, [late_session])
        ]
    finally:
        tail.close()
        producer.close()


def test_a_session_booked_past_an_expiry_is_flagged_when_scheduled(stub, settings: Settings, db) -> None:
    clinician, client, session = uid("clin"), uid("client"), uid("s")
    short = record_license(stub, settings, clinician, "CA", valid_until=to_timestamp(NOW + timedelta(days=5)))
    long = record_license(stub, settings, clinician, "OR")
    authorization = ready_client(stub, settings, client, "demo-commercial-ppo")  # ends in 30 days
    producer = SchedulerEvents(settings)
    try:
        producer.send(
            session,
            sev.SessionScheduled(
                session_id=session,
                clinician_id=clinician,
                client_ids=[client],
                starts_at=to_timestamp(NOW + timedelta(days=35)),
                ends_at=to_timestamp(NOW + timedelta(days=35, hours=3)),
                kind=sev.SESSION_KIND_GROUP,
            ),
        )
        deadline = time.monotonic() + 60
        flags: list[str] = []
        while time.monotonic() < deadline and len(flags) < 2:
            flags = (db["sessions"].find_one({"_id": session}) or {}).get("flags", [])
            time.sleep(0.1)
    finally:
        producer.close()
    assert f"EXPIRES_BEFORE_SESSION:license:{short.license_id}" in flags
    assert f"EXPIRES_BEFORE_SESSION:authorization:{authorization.authorization_id}" in flags
    assert not [f for f in flags if long.license_id in f]


def test_attended_day_billing_is_idempotent_and_decrements_authorization(stub, settings: Settings) -> None:
    tail = TopicTail(settings, "iop.compliance.billing.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician, client, session = uid("clin"), uid("client"), uid("s")
        record_license(stub, settings, clinician, "CA")
        # the seed plan's copy: only this process has it, so the BillingReady of every other run's
        # process on the broker (its store without this client's authorization) says NO_PAYER_POLICY
        plan = own_plan(stub, settings, "demo-commercial-ppo")
        mine = billed_here(client)
        auth = ready_client(stub, settings, client, plan, units=10)
        started = past_midweek()
        producer.send(
            session,
            sev.SessionCheckedIn(
                session_id=session,
                client_id=client,
                location=common_pb2.ClientLocation(state="CA", verified=True),
                privacy_attestation="alone",
                checked_in_at=to_timestamp(started),
            ),
        )
        ended = sev.SessionEnded(
            session_id=session,
            clinician_id=clinician,
            started_at=to_timestamp(started),
            ended_at=to_timestamp(started + timedelta(hours=3)),
            modality=common_pb2.MODALITY_VIDEO,
            attendance=[
                sev.ClientAttendance(client_id=client, minutes_attended=180, modality=common_pb2.MODALITY_VIDEO)
            ],
            payer_plan_id=plan,
            level_of_care="IOP_PSYCH",
            kind=sev.SESSION_KIND_GROUP,
        )
        first = producer.send(session, ended)
        producer.send(session, ended, event_id=first.id)  # an at-least-once redelivery
        found = tail.wait_for(mine)
        assert found, "no BillingReady"
        key, _, ready = found[0]
        assert key == client.encode()
        assert ready.covered and [(line.code, list(line.modifiers), line.place_of_service) for line in ready.lines] == [
            ("S9480", ["95"], "10")
        ]
        assert ready.lines[0].revenue_code == "0905" and ready.minutes_attended == 180
        assert ready.authorization_id == auth.authorization_id and ready.authorization_units_remaining == 9
        assert ready.problems == [] and not ready.amended and list(ready.session_ids) == [session]
        # the service date is the local date where the client was (California), not the UTC date
        assert ready.service_date == started.astimezone(ZoneInfo("America/Los_Angeles")).date().isoformat()
        time.sleep(2)
        tail.wait_for(lambda *_: False, timeout_s=1)
        assert len([m for m in tail.seen if mine(*m)]) == 1, "the redelivery billed twice"
        auths = stub.ListAuthorizations(
            pb.ListAuthorizationsRequest(client_id=client),
            metadata=auth_metadata(settings, "platform"),
            timeout=CALL_TIMEOUT_S,
        )
        assert auths.authorizations[0].units_used == 1

        # a late individual session the same day re-reports the day (amended), without a second unit
        late = uid("s")
        producer.send(
            late,
            sev.SessionEnded(
                session_id=late,
                clinician_id=clinician,
                started_at=to_timestamp(started + timedelta(hours=4)),
                ended_at=to_timestamp(started + timedelta(hours=5)),
                modality=common_pb2.MODALITY_VIDEO,
                attendance=[sev.ClientAttendance(client_id=client, minutes_attended=50)],
                payer_plan_id=plan,
                kind=sev.SESSION_KIND_INDIVIDUAL,
            ),
        )
        amended = tail.wait_for(lambda key, ev, p: mine(key, ev, p) and p.amended)
        assert amended, "no amended BillingReady"
        again = amended[0][2]
        assert again.service_date == ready.service_date and again.minutes_attended == 230
        assert sorted(again.session_ids) == sorted([session, late]) and again.authorization_units_remaining == 9
        assert (ready.week_minutes_to_date, again.week_minutes_to_date, again.week_days_to_date) == (180, 230, 1)
    finally:
        tail.close()
        producer.close()


def test_revoked_consent_blocks_the_next_start_and_is_published(stub, settings: Settings, db) -> None:
    tail = TopicTail(settings, "iop.compliance.decisions.v1")
    fhir_tail = TopicTail(settings, "iop.compliance.fhir.v1")
    try:
        clinician, client = uid("clin"), uid("client")
        record_license(stub, settings, clinician, "CA")
        ready_client(stub, settings, client, "demo-commercial-ppo")
        request = {
            "clinician_id": clinician,
            "client_id": client,
            "client_location": common_pb2.ClientLocation(state="CA", verified=True),
            "stage": pb.EVALUATION_STAGE_START,
            "privacy_attestation": "alone",
        }
        assert evaluate(stub, settings, **request).decision == pb.DECISION_ALLOW  # now cached
        md = auth_metadata(settings, "platform")
        consents = stub.ListConsents(pb.ListConsentsRequest(client_id=client), metadata=md, timeout=CALL_TIMEOUT_S)
        telehealth = next(c for c in consents.consents if c.consent_type == "TELEHEALTH")
        revoked = stub.RevokeConsent(
            pb.RevokeConsentRequest(consent_id=telehealth.consent_id), metadata=md, timeout=CALL_TIMEOUT_S
        )
        assert revoked.revoked_at.seconds > 0
        again = rpc_error(
            lambda: stub.RevokeConsent(
                pb.RevokeConsentRequest(consent_id=telehealth.consent_id), metadata=md, timeout=CALL_TIMEOUT_S
            )
        )
        assert error_reason(rpc_status.from_call(again)) == "CONSENT_ALREADY_REVOKED"  # type: ignore[arg-type]
        blocked = evaluate(stub, settings, **request)  # the cache was invalidated by the revocation
        assert blocked.decision == pb.DECISION_DENY, blocked
        assert list(blocked.consent_problems) == ["TELEHEALTH_CONSENT_REVOKED"], blocked

        changes = tail.wait_for(
            lambda key, ev, p: ev.type == "iop.events.v1.ConsentChanged" and p.client_id == client, count=3
        )
        assert sorted((p.consent_type, p.status) for _, _, p in changes) == [
            ("ROI_EMERGENCY_CONTACT", "active"),
            ("TELEHEALTH", "active"),
            ("TELEHEALTH", "revoked"),
        ]
        assert {key for key, _, _ in changes} == {client.encode()}
        resources = fhir_tail.wait_for(
            lambda key, ev, p: key == client.encode() and p.resource_type == "Consent", count=3
        )
        states = sorted((json.loads(p.json)["id"], json.loads(p.json)["status"]) for _, _, p in resources)
        assert (telehealth.consent_id, "inactive") in states and len(states) == 3

        # EvaluateSession reads are audited too (batched, written within a fraction of a second)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            actions = [a["action"] for a in db["phi_access_audit"].find({"resource_id": client})]
            if actions.count("EvaluateSession") == 2:
                break
            time.sleep(0.2)
        assert actions.count("EvaluateSession") == 2 and "ListConsents" in actions
    finally:
        tail.close()
        fhir_tail.close()


def test_board_dates_are_whole_days_in_the_licensing_state(stub, settings: Settings) -> None:
    clinician = uid("clin")
    md = auth_metadata(settings, "platform")
    lic = stub.RecordLicense(
        pb.RecordLicenseRequest(
            clinician_id=clinician,
            state="HI",
            license_type="LCSW",
            license_number=f"SW-{uuid.uuid4().hex[:8].upper()}",
            issued_on="2024-01-01",
            expires_on="2026-12-31",
        ),
        metadata=md,
        timeout=CALL_TIMEOUT_S,
    )
    # Hawaii is UTC-10 all year: the license runs to 2027-01-01T10:00Z
    assert lic.valid_until.ToDatetime(tzinfo=UTC) == datetime(2027, 1, 1, 10, 0, tzinfo=UTC)
    assert lic.valid_from.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)

    def check(at: datetime) -> int:
        reply = stub.CheckLicensure(
            pb.CheckLicensureRequest(clinician_id=clinician, client_state="HI", at=to_timestamp(at)),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )
        return reply.decision

    assert check(datetime(2027, 1, 1, 9, 59, tzinfo=UTC)) == pb.DECISION_ALLOW
    assert check(datetime(2027, 1, 1, 10, 0, tzinfo=UTC)) == pb.DECISION_DENY
    err = rpc_error(
        lambda: stub.RecordLicense(
            pb.RecordLicenseRequest(
                clinician_id=clinician, state="HI", license_type="LCSW", license_number="SW-X1", expires_on="12/31/2026"
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )
    )
    fields = {f for f, _ in bad_request_violations(rpc_status.from_call(err))}  # type: ignore[arg-type]
    assert fields == {"issued_on", "expires_on"}


def test_evaluation_is_traced_without_phi(stub, settings: Settings) -> None:
    clinician, client = uid("clin"), uid("client")
    record_license(stub, settings, clinician, "CA")
    tracer = TracerProvider().get_tracer("test-client")
    with tracer.start_as_current_span("scheduler: start session", kind=SpanKind.CLIENT) as root:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        trace_id = format(root.get_span_context().trace_id, "032x")
    stub.EvaluateSession(
        pb.EvaluateSessionRequest(
            clinician_id=clinician,
            client_id=client,
            client_location=common_pb2.ClientLocation(state="CA", verified=True, city="Fresno"),
            starts_at=to_timestamp(NOW + timedelta(hours=1)),
            stage=pb.EVALUATION_STAGE_BOOKING,
        ),
        metadata=auth_metadata(settings, "platform") + list(carrier.items()),
        timeout=CALL_TIMEOUT_S,
    )
    # the server span ends after its children, so it can reach Zipkin in a later export batch
    spans = wait_for_trace(
        settings, trace_id, lambda ss: any(s["name"].lower().endswith("evaluatesession") for s in ss)
    )
    assert any(s["name"].lower().endswith("evaluatesession") for s in spans), spans
    for s in spans:
        for value in (s.get("tags") or {}).values():
            assert client not in value and "Fresno" not in value, s
