"""PRODUCT.md scenarios 4 (client travels) and 5 (audio-only fallback) through Kafka.

The scheduler's lifecycle events are produced to iop.scheduling.sessions.v1 with the project's
CloudEvents envelope, exactly as the scheduler publishes them; a real compliance process consumes
them and its decisions come out on its own topics, read back from the real broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from iop.compliance.v1 import compliance_pb2 as pb
from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as sev
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_compliance_api import (
    NOW,
    SchedulerEvents,
    TopicTail,
    billed_here,
    evaluate,
    past_midweek,
    ready_client,
    record_license,
    start_compliance,
    stub_for,
    uid,
)
from tests.support import ServiceProcess, auth_metadata, until_stopped

pytestmark = pytest.mark.e2e

# What licensure answers for a clinician with no credential at all (a compliance process of another
# test run on the shared broker consumes this run's scheduler events with a store of its own)
NO_CREDENTIALS_AT_ALL = {"NO_LICENSE_IN_STATE", "NO_COMPACT_PRIVILEGE"}


@pytest.fixture(scope="module")
def compliance() -> Iterator[ServiceProcess]:
    with until_stopped(start_compliance()) as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(compliance: ServiceProcess):
    channel, s = stub_for(compliance)
    yield s
    channel.close()


def test_scenario_4_client_travels_to_a_state_where_the_clinician_has_no_privilege(stub, settings: Settings) -> None:
    decisions = TopicTail(settings, "iop.compliance.decisions.v1")
    scheduler = SchedulerEvents(settings)
    try:
        # A counselor licensed in Minnesota with a Counseling Compact privilege for Arizona.
        counselor, client, session = uid("clin"), uid("client"), uid("s")
        record_license(stub, settings, counselor, "MN")
        stub.RecordCompactCredential(
            pb.RecordCompactCredentialRequest(
                clinician_id=counselor,
                compact="COUNSELING",
                kind="PRIVILEGE",
                home_state="MN",
                privilege_state="AZ",
                credential_number=f"CC-{uid('p')[-8:].upper()}",
                valid_from=to_timestamp(NOW - timedelta(days=60)),
                valid_until=to_timestamp(NOW + timedelta(days=300)),
            ),
            metadata=auth_metadata(settings, "platform"),
            timeout=30,
        )
        ready_client(stub, settings, client, "demo-commercial-ppo")
        starts = datetime.now(UTC) + timedelta(minutes=5)  # not the module's NOW: minutes may have passed

        # Booked while the client is at home in Arizona: allowed on the compact privilege.
        booked = evaluate(
            stub,
            settings,
            session_id=session,
            clinician_id=counselor,
            client_id=client,
            client_location=common_pb2.ClientLocation(state="AZ"),
            starts_at=to_timestamp(starts),
        )
        assert booked.decision == pb.DECISION_ALLOW, booked
        assert booked.licensure.reasons == ["COUNSELING_COMPACT_PRIVILEGE"]
        scheduler.send(
            session,
            sev.SessionScheduled(
                session_id=session,
                clinician_id=counselor,
                client_ids=[client],
                starts_at=to_timestamp(starts),
                ends_at=to_timestamp(starts + timedelta(hours=1)),
                kind=sev.SESSION_KIND_INDIVIDUAL,
                payer_plan_id="demo-commercial-ppo",
                level_of_care="IOP_PSYCH",
            ),
        )

        # The client joins from Colorado (where the counselor has no license and no privilege).
        colorado = common_pb2.ClientLocation(state="CO", verified=True)
        at_start = evaluate(
            stub,
            settings,
            session_id=session,
            clinician_id=counselor,
            client_id=client,
            client_location=colorado,
            clinician_state="MN",
            starts_at=to_timestamp(starts),
            stage=pb.EVALUATION_STAGE_START,
            privacy_attestation="alone",
        )
        assert at_start.decision == pb.DECISION_DENY
        assert {"NO_LICENSE_IN_STATE", "NO_COMPACT_PRIVILEGE", "NO_COUNSELING_PRIVILEGE_FOR_STATE"} <= set(
            at_start.licensure.reasons
        )
        scheduler.send(
            session,
            sev.SessionCheckedIn(
                session_id=session,
                client_id=client,
                location=colorado,
                privacy_attestation="alone",
                checked_in_at=to_timestamp(starts),
            ),
        )
        scheduler.send(
            session,
            sev.SessionStarted(
                session_id=session,
                clinician_id=counselor,
                client_ids=[client],
                started_at=to_timestamp(starts),
                clinician_state="MN",
            ),
        )
        found = decisions.wait_for(
            lambda key, ev, p: (
                ev.type == "iop.events.v1.LicensureChecked"
                and p.session_id == session
                # from this run's process, whose store has the counselor's license and privilege: the
                # process of another run on the broker, without them, finds no basis and nothing else
                and bool(set(p.reasons) - NO_CREDENTIALS_AT_ALL)
            )
        )
        assert found, "no LicensureChecked for the session"
        key, _, checked = found[0]
        assert key == session.encode()
        assert (checked.decision, checked.client_state, checked.client_id) == ("deny", "CO", client)
        assert "NO_COUNSELING_PRIVILEGE_FOR_STATE" in checked.reasons and checked.data_version

        # Routed to an in-state clinician: licensed in Colorado, allowed.
        in_state = uid("clin")
        record_license(stub, settings, in_state, "CO")
        routed = evaluate(
            stub,
            settings,
            session_id=session,
            clinician_id=in_state,
            client_id=client,
            client_location=colorado,
            starts_at=to_timestamp(starts),
            stage=pb.EVALUATION_STAGE_START,
            privacy_attestation="alone",
        )
        assert routed.decision == pb.DECISION_ALLOW and routed.licensure.reasons == ["LICENSED_IN_STATE"]
    finally:
        decisions.close()
        scheduler.close()


def test_scenario_5_audio_only_fallback_follows_each_payers_rule(stub, settings: Settings) -> None:
    billing = TopicTail(settings, "iop.compliance.billing.v1")
    scheduler = SchedulerEvents(settings)
    try:
        clinician, session = uid("clin"), uid("s")
        covers = uid("client")  # plan that covers audio-only (modifier 93)
        does_not = uid("client")  # plan that does not cover audio-only for IOP
        record_license(stub, settings, clinician, "CA")
        ready_client(stub, settings, covers, "demo-commercial-ppo")
        ready_client(stub, settings, does_not, "demo-commercial-hmo")
        starts = past_midweek()  # a past day: it closes for billing at once
        scheduler.send(
            session,
            sev.SessionScheduled(
                session_id=session,
                clinician_id=clinician,
                client_ids=[covers, does_not],
                starts_at=to_timestamp(starts),
                ends_at=to_timestamp(starts + timedelta(hours=3)),
                kind=sev.SESSION_KIND_GROUP,
                level_of_care="IOP_PSYCH",
            ),
        )
        for client in (covers, does_not):
            scheduler.send(
                session,
                sev.SessionCheckedIn(
                    session_id=session,
                    client_id=client,
                    location=common_pb2.ClientLocation(state="CA", verified=True),
                    privacy_attestation="headphones",
                    checked_in_at=to_timestamp(starts),
                ),
            )
        scheduler.send(
            session,
            sev.SessionStarted(
                session_id=session,
                clinician_id=clinician,
                client_ids=[covers, does_not],
                started_at=to_timestamp(starts),
                clinician_state="CA",
            ),
        )
        # Video failed mid-session and the group continued by phone.
        scheduler.send(
            session,
            sev.SessionEnded(
                session_id=session,
                clinician_id=clinician,
                started_at=to_timestamp(starts),
                ended_at=to_timestamp(starts + timedelta(hours=3)),
                modality=common_pb2.MODALITY_MIXED,
                attendance=[
                    sev.ClientAttendance(client_id=c, minutes_attended=180, modality=common_pb2.MODALITY_MIXED)
                    for c in (covers, does_not)
                ],
                level_of_care="IOP_PSYCH",
                kind=sev.SESSION_KIND_GROUP,
            ),
        )
        # this run's process (another run's, without these clients' authorizations, finds no plan
        # for the group and bills NO_PAYER_POLICY)
        found = billing.wait_for(
            lambda key, ev, p: billed_here(covers)(key, ev, p) or billed_here(does_not)(key, ev, p), count=2
        )
        by_client = {p.client_id: (key, p) for key, _, p in found}
        assert set(by_client) == {covers, does_not}, found

        key, ok = by_client[covers]
        assert key == covers.encode()
        assert ok.covered and ok.payer_plan_id == "demo-commercial-ppo" and ok.problems == []
        assert [(line.code, list(line.modifiers), line.place_of_service, line.revenue_code) for line in ok.lines] == [
            ("S9480", ["93"], "10", "0905")
        ]
        assert ok.modality == common_pb2.MODALITY_MIXED and ok.minutes_attended == 180

        _, refused = by_client[does_not]
        assert not refused.covered and refused.payer_plan_id == "demo-commercial-hmo"
        assert "AUDIO_ONLY_NOT_COVERED" in refused.problems
        assert [list(line.modifiers) for line in refused.lines] == [[]]
        # a day that is not billable does not use an authorized unit; a billable one does
        assert (refused.authorization_units_remaining, ok.authorization_units_remaining) == (20, 19)
    finally:
        billing.close()
        scheduler.close()
