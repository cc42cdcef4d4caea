"""The crisis service as a real process, at its edges: bad numbers and bad input, reused request
ids, withdrawn consent, malformed events and events that arrive out of order.

The ladder's later rungs are an hour apart here, so nothing fires behind a test's back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from iop.crisis.v1 import crisis_pb2, crisis_pb2_grpc
from iop.events.v1 import common_pb2, engagement_pb2, scheduling_pb2
from iop.events.v1 import crisis_pb2 as ev
from services.crisis import events, topics
from services.crisis.alerts import Delivery
from services.crisis.api import _alert_message
from services.crisis.config import CrisisSettings
from services.crisis.domain import Risk, Status, Step, validate_plan
from services.crisis.link_stored_sessions import MIGRATION_ID as LINK_MIGRATION_ID
from services.crisis.link_stored_sessions import Counts as LinkCounts
from services.crisis.link_stored_sessions import Status as LinkStatus
from services.crisis.link_stored_sessions import link_stored_sessions
from services.crisis.paging import Pager
from services.crisis.reference import load_resources
from services.crisis.service import CrisisCore
from services.crisis.store import ALERT_RECORDS, CHECKINS, FIRST_PROBE, LATE_CHECKINS, CrisisStore, rung_id
from services.plumbing.bus import dead_letter_topic
from services.plumbing.consumer import PROCESSED_COLLECTION
from services.plumbing.errors import bad_request_violations, error_reason
from services.plumbing.migrations import MIGRATIONS_COLLECTION
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from services.plumbing.storage import Document
from tests.integration.test_crisis_support import (
    SF,
    Collector,
    Producer,
    alert_service,
    crisis_db,
    crisis_process,
    ensure_consumed_topics,
    for_client,
    high_risk_request,
    md,
    open_alert_directly,
    policy_file,
    producer_and_collector,
    safety_plan,
    skip_backlog,
    stub,
    uid,
)
from tests.support import ServiceProcess, isolated_environment

pytestmark = pytest.mark.integration
HOUSTON = common_pb2.ClientLocation(
    state="TX", county_fips="48201", postal_code="77002", address_line="9 Main St", city="Houston", verified=True
)
DEADLINE_S = 30  # the test's own calls (a fresh service's first store calls are slow on a loaded machine)


@pytest.fixture(scope="module")
def crisis(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[ServiceProcess]:
    asyncio.run(ensure_consumed_topics(settings))
    skip_backlog(settings)
    directory: Path = tmp_path_factory.mktemp("crisis-edges")
    env = {"CRISIS_POLICY_FILE": str(policy_file(directory, [0, 3600, 3600, 3600]))}
    with crisis_process(env) as proc:
        yield proc


@pytest.fixture
async def io(settings: Settings) -> AsyncIterator[tuple[Producer, Collector]]:
    async with producer_and_collector(settings) as producer_collector:
        yield producer_collector


async def rejected(call: Awaitable[object]) -> tuple[grpc.StatusCode, list[str]]:
    """The status code of a call expected to fail, and the fields its violations name."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    status = rpc_status.from_call(err.value)
    return err.value.code(), [f for f, _ in bad_request_violations(status)] if status else []


async def applied(settings: Settings, consumer: str, event_id: str) -> None:
    """Wait until the crisis consumer `consumer` (sessions, attendance, outcomes) applied the event."""
    marker = f"{isolated_environment()['KAFKA_GROUP_PREFIX']}.crisis.{consumer}:{event_id}"
    mongo, db = crisis_db(settings)
    try:
        for _ in range(150):
            if await db[PROCESSED_COLLECTION].find_one({"_id": marker}):
                return
            await asyncio.sleep(0.1)
    finally:
        await mongo.close()
    raise AssertionError(f"the crisis {consumer} consumer never applied {event_id}")


async def card_of(
    api: crisis_pb2_grpc.CrisisServiceStub, settings: Settings, client_id: str, until_session: str = ""
) -> crisis_pb2.CrisisCard:
    """The client's crisis card, as a supervisor reads it; with `until_session`, once the check-in of
    that session is on it."""
    for _ in range(150):
        card = await api.GetCrisisCard(
            crisis_pb2.GetCrisisCardRequest(client_id=client_id),
            metadata=md(settings, "supervisor"),
            timeout=DEADLINE_S,
        )
        if not until_session or card.location_session_id == until_session:
            return card
        await asyncio.sleep(0.1)
    raise AssertionError(f"the check-in of {until_session} never reached the crisis service")


def crisis_core(alerts: Any) -> CrisisCore:
    """The crisis core over an in-process alert service (check-ins, signals), as the service builds it."""
    return CrisisCore(
        alerts.store, alerts.relay, alerts, load_resources(CrisisSettings().resources_file), alerts.policies
    )


async def numbered_checkin(
    core: CrisisCore, client: str, n: int, backup_phone: str, t0: datetime, event_id: str = ""
) -> None:
    """The client's check-in `n` (session `<client>-s<n>`, in city-<n>, CA), `n` minutes after `t0`
    (event `event_id`, a fresh one by default)."""
    await core.record_checkin(
        event_id=event_id or uid("ev"),
        client_id=client,
        session_id=f"{client}-s{n}",
        location={"state": "CA", "county_fips": "06075", "city": f"city-{n}", "verified": True},
        backup_phone=backup_phone,
        at=t0 + timedelta(minutes=n),
    )


async def test_an_invalid_checkin_backup_phone_is_never_called(crisis, io, settings) -> None:
    producer, out = io
    client, session, clinician = uid("client"), uid("session"), uid("clin")
    channel, api = stub(crisis.target)
    async with channel:
        await api.SaveSafetyPlan(
            crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client)),  # backup phone 415-555-0134
            metadata=md(settings, "supervisor"),
            timeout=DEADLINE_S,
        )
        await api.AssessCssrs(high_risk_request(client), metadata=md(settings, "supervisor"), timeout=DEADLINE_S)
        await producer.session_live(session, client, clinician, backup_phone="555-0134 (bad)")
        card = await card_of(api, settings, client, until_session=session)
    assert card.backup_phone == "+14155550134", card  # the plan's number, normalized
    assert "INVALID_BACKUP_PHONE" in card.problems and "NO_BACKUP_PHONE" not in card.problems

    await producer.drop(session, client, clinician)
    opened = await out.wait_for(for_client(client, "AlertOpened"))
    assert opened and "INVALID_BACKUP_PHONE" in opened[0][2].problems, out.events
    tasks = await out.wait_for(for_client(client, "CrisisTaskCreated"), count=2)
    callback = next(t[2] for t in tasks if t[2].kind == "CALLBACK")
    assert callback.callback_phone == "+14155550134" and list(callback.problems) == ["INVALID_BACKUP_PHONE"]
    assert all(t[2].callback_phone in ("", "+14155550134") for t in tasks), [t[2] for t in tasks]


async def test_out_of_range_enums_and_blank_ids_are_invalid_argument(crisis, settings) -> None:
    client = uid("client")
    channel, api = stub(crisis.target)
    me = md(settings, "supervisor")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    async with channel:
        set_level = crisis_pb2.SetRiskLevelRequest(client_id=client, level=7, source="clinician-flag")  # type: ignore[arg-type]
        assert await rejected(api.SetRiskLevel(set_level, metadata=me, timeout=DEADLINE_S)) == (invalid, ["level"])
        q1_five = crisis_pb2.AssessCssrsRequest(
            client_id=client,
            wish_to_be_dead=5,  # type: ignore[arg-type]
            suicidal_thoughts=crisis_pb2.ANSWER_NO,
            suicidal_behavior=crisis_pb2.ANSWER_NO,
            behavior_recency=9,  # type: ignore[arg-type]
        )
        assert await rejected(api.AssessCssrs(q1_five, metadata=me, timeout=DEADLINE_S)) == (
            invalid,
            ["wish_to_be_dead", "behavior_recency"],
        )
        for call in (
            api.GetRiskState(crisis_pb2.GetRiskStateRequest(client_id=""), metadata=me, timeout=DEADLINE_S),
            api.GetSafetyPlan(crisis_pb2.GetSafetyPlanRequest(client_id=""), metadata=me, timeout=DEADLINE_S),
            api.ListSafetyPlanVersions(
                crisis_pb2.ListSafetyPlanVersionsRequest(client_id=""), metadata=me, timeout=DEADLINE_S
            ),
        ):
            assert await rejected(call) == (invalid, ["client_id"])
        blank_alert = api.GetAlert(crisis_pb2.GetAlertRequest(alert_id=""), metadata=me, timeout=DEADLINE_S)
        assert await rejected(blank_alert) == (invalid, ["alert_id"])
        version = crisis_pb2.GetSafetyPlanRequest(client_id=client, version=-1)
        assert await rejected(api.GetSafetyPlan(version, metadata=me, timeout=DEADLINE_S)) == (invalid, ["version"])
        fullwidth_fips = common_pb2.ClientLocation(state="CA", county_fips="\uff10\uff16\uff10\uff17\uff15")
        resources = crisis_pb2.GetLocalResourcesRequest(location=fullwidth_fips)
        assert await rejected(api.GetLocalResources(resources, metadata=me, timeout=DEADLINE_S)) == (
            invalid,
            ["location.county_fips"],
        )
        # nothing was recorded
        never = api.GetRiskState(crisis_pb2.GetRiskStateRequest(client_id=client), metadata=me, timeout=DEADLINE_S)
        assert (await rejected(never))[0] == grpc.StatusCode.NOT_FOUND


async def test_malformed_events_are_dead_lettered_not_applied(crisis, io, settings) -> None:
    producer, _ = io
    client = uid("signal")
    dead = await Collector(settings, [dead_letter_topic("crisis").name]).start()
    try:
        scheduler, engagement = "/iop/scheduler", "/iop/engagement"
        sent = [
            await producer.send(topics.SESSIONS_IN, "blank", scheduling_pb2.SessionEnded(session_id=""), scheduler),
            await producer.send(topics.SESSIONS_IN, "blank", scheduling_pb2.SessionCancelled(session_id=""), scheduler),
            await producer.send(
                topics.SESSIONS_IN, "blank", scheduling_pb2.SessionInterrupted(session_id="", reason="OTHER"), scheduler
            ),
            await producer.send(  # PHQ-9 item 9 is answered 0-3
                topics.OUTCOMES_IN,
                client,
                engagement_pb2.CrisisSignal(client_id=client, source="phq9-item9", value=99),
                engagement,
            ),
        ]
        ids = {e.id for e in sent}
        found = await dead.wait_for(lambda t, e, p: e.id in ids, count=len(ids), timeout_s=30)
        assert {f[1].id for f in found} == ids
    finally:
        await dead.stop()
    mongo, db = crisis_db(settings)
    try:
        assert await db.sessions.find_one({"_id": ""}) is None
        assert await db.client_records.count_documents({"client_id": client}) == 0  # no risk recorded
        assert await db.alerts.count_documents({"client_id": client}) == 0
    finally:
        await mongo.close()


async def test_a_raise_request_id_reused_for_another_client_reveals_nothing(crisis, settings) -> None:
    first_client, second_client, request_id = uid("px"), uid("py"), uid("req")
    channel, api = stub(crisis.target)
    as_a, as_b = md(settings, "clinician", "clin-A"), md(settings, "clinician", "clin-B")
    async with channel:
        raised = await api.RaiseAlert(
            crisis_pb2.RaiseAlertRequest(client_id=first_client, program_id="iop-test", request_id=request_id),
            metadata=as_a,
            timeout=DEADLINE_S,
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.RaiseAlert(
                crisis_pb2.RaiseAlertRequest(client_id=second_client, program_id="iop-test", request_id=request_id),
                metadata=as_b,
                timeout=DEADLINE_S,
            )
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(rpc_status.from_call(err.value)) == "REQUEST_ID_REUSED"
        answer = f"{err.value.details()} {err.value.trailing_metadata()}"
        assert first_client not in answer and raised.alert_id not in answer and "clin-A" not in answer

        card = await card_of(api, settings, second_client)
        assert not card.active_alert.alert_id  # nothing was opened for the second client
        retried = await api.RaiseAlert(  # a true retry returns the alert
            crisis_pb2.RaiseAlertRequest(client_id=first_client, program_id="iop-test", request_id=request_id),
            metadata=as_a,
            timeout=DEADLINE_S,
        )
        assert (retried.alert_id, retried.client_id) == (raised.alert_id, first_client)
        other_reason = crisis_pb2.RaiseAlertRequest(  # the same id for another request of the same client
            client_id=first_client, program_id="iop-test", request_id=request_id, reason="SOMETHING_ELSE"
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.RaiseAlert(other_reason, metadata=as_a, timeout=DEADLINE_S)
        assert error_reason(rpc_status.from_call(err.value)) == "REQUEST_ID_REUSED"
        fresh = await api.RaiseAlert(  # with its own request_id, the second client's alert opens
            crisis_pb2.RaiseAlertRequest(client_id=second_client, program_id="iop-test", request_id=uid("req")),
            metadata=as_b,
            timeout=DEADLINE_S,
        )
        assert fresh.client_id == second_client and fresh.alert_id != raised.alert_id


async def test_a_contact_attempt_request_id_reused_with_other_content_is_refused(crisis, settings) -> None:
    client = uid("pc")
    channel, api = stub(crisis.target)
    me = md(settings, "clinician", "clin-C")

    def attempt(outcome: str) -> crisis_pb2.RecordContactAttemptRequest:
        return crisis_pb2.RecordContactAttemptRequest(
            alert_id=alert.alert_id, target="CLIENT", outcome=outcome, request_id="att-1"
        )

    async with channel:
        alert = await api.RaiseAlert(
            crisis_pb2.RaiseAlertRequest(client_id=client, program_id="iop-test", request_id=uid("r")),
            metadata=me,
            timeout=DEADLINE_S,
        )
        first = await api.RecordContactAttempt(attempt("NO_ANSWER"), metadata=me, timeout=DEADLINE_S)
        assert [(c.target, c.outcome) for c in first.contact_attempts] == [("CLIENT", "NO_ANSWER")]
        # the caller must not believe "reached" was recorded: it was not, and the ladder runs on
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.RecordContactAttempt(attempt("REACHED"), metadata=me, timeout=DEADLINE_S)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(rpc_status.from_call(err.value)) == "REQUEST_ID_REUSED"
        now = await api.GetAlert(crisis_pb2.GetAlertRequest(alert_id=alert.alert_id), metadata=me, timeout=DEADLINE_S)
        assert [(c.target, c.outcome) for c in now.contact_attempts] == [("CLIENT", "NO_ANSWER")]
        assert now.status != ev.ALERT_STATUS_CONTACT_MADE and now.HasField("next_step_due_at")

        retried = await api.RecordContactAttempt(attempt("NO_ANSWER"), metadata=me, timeout=DEADLINE_S)
        assert len(retried.contact_attempts) == 1  # a true retry: OK, recorded once
        await api.ResolveAlert(
            crisis_pb2.ResolveAlertRequest(alert_id=alert.alert_id, resolution="OTHER"), metadata=me, timeout=DEADLINE_S
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.RecordContactAttempt(attempt("REACHED"), metadata=me, timeout=DEADLINE_S)
        assert error_reason(rpc_status.from_call(err.value)) == "REQUEST_ID_REUSED"


async def alert_with_a_consented_contact(
    api: Any, settings: Settings, me: Any, client: str
) -> tuple[crisis_pb2.Alert, str]:
    """A safety plan (version 1, by a supervisor) with an emergency contact the client consents to,
    then an alert raised for the client by `me` (who may then change the plan): (the alert, the
    contact's id)."""
    v1 = await api.SaveSafetyPlan(
        crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client)),
        metadata=md(settings, "supervisor"),
        timeout=DEADLINE_S,
    )
    alert = await api.RaiseAlert(
        crisis_pb2.RaiseAlertRequest(client_id=client, program_id="iop-test", request_id=uid("r")),
        metadata=me,
        timeout=DEADLINE_S,
    )
    return alert, v1.emergency_contacts[0].contact_id


async def test_consent_withdrawn_during_an_alert_is_honoured_by_the_api(crisis, settings) -> None:
    client = uid("pw")
    channel, api = stub(crisis.target)
    me = md(settings, "clinician", "clin-W")
    async with channel:
        alert, contact_id = await alert_with_a_consented_contact(api, settings, me, client)

        def attempt(request_id: str) -> crisis_pb2.RecordContactAttemptRequest:
            return crisis_pb2.RecordContactAttemptRequest(
                alert_id=alert.alert_id,
                target="EMERGENCY_CONTACT",
                outcome="NO_ANSWER",
                contact_id=contact_id,
                request_id=request_id,
            )

        await api.RecordContactAttempt(attempt("e0"), metadata=me, timeout=DEADLINE_S)  # consented: recorded
        await api.SaveSafetyPlan(  # v2: the client withdrew consent (the contact is gone)
            crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client, emergency_contacts=[]), expected_version=1),
            metadata=me,
            timeout=DEADLINE_S,
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.RecordContactAttempt(attempt("e1"), metadata=me, timeout=DEADLINE_S)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(rpc_status.from_call(err.value)) == "CONTACT_NOT_CONSENTED"
        retried = await api.RecordContactAttempt(attempt("e0"), metadata=me, timeout=DEADLINE_S)
        assert len(retried.contact_attempts) == 1  # a retry of what was recorded before is still OK


async def test_a_call_made_before_consent_was_withdrawn_can_be_recorded_after_it(crisis, settings) -> None:
    client = uid("pw")
    channel, api = stub(crisis.target)
    me = md(settings, "clinician", "clin-W")
    async with channel:
        alert, contact_id = await alert_with_a_consented_contact(api, settings, me, client)
        called_at = datetime.now(UTC)  # the clinician calls the contact, consented then
        await asyncio.sleep(0.05)
        await api.SaveSafetyPlan(  # v2: the client withdrew consent (the contact is gone)
            crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client, emergency_contacts=[]), expected_version=1),
            metadata=me,
            timeout=DEADLINE_S,
        )
        await asyncio.sleep(0.05)

        def attempt(request_id: str, at: datetime | None) -> crisis_pb2.RecordContactAttemptRequest:
            return crisis_pb2.RecordContactAttemptRequest(
                alert_id=alert.alert_id,
                target="EMERGENCY_CONTACT",
                outcome="NO_ANSWER",
                contact_id=contact_id,
                request_id=request_id,
                attempted_at=to_timestamp(at) if at else None,
            )

        # logged after the withdrawal, made before it: recorded, at its own time
        recorded = await api.RecordContactAttempt(attempt("e0", called_at), metadata=me, timeout=DEADLINE_S)
        assert [(a.contact_id, a.attempted_at.ToDatetime(tzinfo=UTC)) for a in recorded.contact_attempts] == [
            (contact_id, called_at.replace(microsecond=called_at.microsecond // 1000 * 1000))  # the store keeps ms
        ]
        for late in (datetime.now(UTC), None):  # made after the withdrawal (None: now)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await api.RecordContactAttempt(attempt(uid("e"), late), metadata=me, timeout=DEADLINE_S)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error_reason(rpc_status.from_call(err.value)) == "CONTACT_NOT_CONSENTED"
        opened_at = alert.opened_at.ToDatetime(tzinfo=UTC)
        for bad in (opened_at - timedelta(minutes=5), datetime.now(UTC) + timedelta(hours=1)):
            code, fields = await rejected(api.RecordContactAttempt(attempt(uid("e"), bad), metadata=me, timeout=5))
            assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["attempted_at"])
        final = await api.GetAlert(crisis_pb2.GetAlertRequest(alert_id=alert.alert_id), metadata=me, timeout=5)
    assert len(final.contact_attempts) == 1  # nothing refused was recorded


async def test_the_emergency_contact_rung_calls_only_contacts_consenting_now(settings, tmp_path) -> None:
    now = datetime.now(UTC)

    def plan(client_id: str, *contacts: tuple[str, str]) -> dict[str, Any]:
        raw = {
            "client_id": client_id,
            "warning_signs": ["pacing"],
            "emergency_contacts": [{"name": n, "phone": p, "consent_to_contact": True} for n, p in contacts],
        }
        violations, clean = validate_plan(raw)
        assert violations == []
        return clean

    async with alert_service(settings, tmp_path, "consent") as alerts:
        core = crisis_core(alerts)
        withdrawn, added = uid("withdrawn"), uid("added")
        for client in (withdrawn, added):
            await core.save_plan(plan(client, ("Sam", "415 555 0199")), 0, "clin", now)
            await open_alert_directly(alerts, f"alert-{client}", client, "TEST")
        await core.save_plan(plan(withdrawn), 1, "clin", now)  # consent withdrawn during the alert
        await core.save_plan(plan(added, ("Sam", "415 555 0199"), ("Lee", "415 555 0198")), 1, "clin", now)

        async def contact_rung(client: str, via_timer: bool) -> Document:
            alert_id = f"alert-{client}"
            await alerts.escalate_now(alert_id, uid("drop"), "DISCONNECTED_AGAIN", now)  # rung 1: on-call
            if via_timer:
                alert, records, st = await alerts.current(alert_id)
                assert await alerts._fire(alert, records, st)  # rung 2, as its timer fires it
            else:
                await alerts.escalate_now(alert_id, uid("drop"), "DISCONNECTED_AGAIN", now)  # rung 2 by a drop
            rung = await alerts.store.record(rung_id(alert_id, 2))
            assert rung is not None and rung["step"] == Step.EMERGENCY_CONTACT
            return rung

        def calls(rung: Document) -> list[str]:
            return [t["contact_phone"] for t in rung["tasks"] if t["kind"] == "EMERGENCY_CONTACT_CALL"]

        rung = await contact_rung(withdrawn, via_timer=True)
        assert rung["problems"] == ["NO_CONSENTED_EMERGENCY_CONTACT"] and calls(rung) == [""]
        rung = await contact_rung(added, via_timer=False)
        assert calls(rung) == ["+14155550199", "+14155550198"]  # a contact who consented after the alert opened too


async def test_an_older_checkin_arriving_later_does_not_become_the_location(crisis, io, settings) -> None:
    producer, _ = io
    client, newer, older = uid("po"), uid("new"), uid("old")
    now = datetime.now(UTC)
    # the newer check-in (Houston, now) arrives first; the older one (San Francisco, 3 h before, from
    # another session, so another partition) arrives second
    await producer.send(
        topics.SESSIONS_IN,
        newer,
        scheduling_pb2.SessionCheckedIn(
            session_id=newer,
            client_id=client,
            location=HOUSTON,
            privacy_attestation="alone",
            checked_in_at=to_timestamp(now),
            backup_phone="+17135550100",
        ),
        "/iop/scheduler",
    )
    channel, api = stub(crisis.target)
    async with channel:
        await card_of(api, settings, client, until_session=newer)
        late = await producer.send(
            topics.SESSIONS_IN,
            older,
            scheduling_pb2.SessionCheckedIn(
                session_id=older,
                client_id=client,
                location=SF,
                privacy_attestation="alone",
                checked_in_at=to_timestamp(now - timedelta(hours=3)),
                backup_phone="+14155550134",
            ),
            "/iop/scheduler",
        )
        await applied(settings, "sessions", late.id)
        card = await card_of(api, settings, client)
    assert (card.location.city, card.location_session_id) == ("Houston", newer), card
    assert card.resources.region_id == "US-TX-48201" and card.backup_phone == "+17135550100"


async def test_check_ins_applied_at_once_keep_the_latest_by_its_own_time(settings, tmp_path) -> None:
    """Check-ins of one client's sessions applied at the same moment (two partitions, one consumer
    batch) all find the same current check-in and are appended in whatever order their inserts
    land: the current location (what an emergency dispatch uses) is still the latest by time."""
    async with alert_service(settings, tmp_path, "checkins") as alerts:
        core = crisis_core(alerts)
        t0 = datetime.now(UTC)

        async def checkin(client: str, n: int, minutes: int) -> None:
            await core.record_checkin(
                event_id=uid("ev"),
                client_id=client,
                session_id=f"{client}-s{n}",
                location={"state": "CA", "county_fips": "06075", "city": f"city-{n}", "verified": True},
                backup_phone="+14155550134",
                at=t0 + timedelta(minutes=minutes),
            )

        for history in (0, FIRST_PROBE + 2):  # a short log, and one read past its first probe
            for order in itertools.permutations(range(3)):
                client = uid("ck")
                for n in range(history):
                    await checkin(client, 100 + n, n - 100)  # earlier sessions
                await asyncio.gather(*(checkin(client, n, n) for n in order))  # check-in n at t0 + n min
                current = await alerts.store.checkin(client)
                held = await alerts.store.client_records(client)
                assert current is not None and held.checkin is not None
                where = (current["location"]["city"], held.checkin["location"]["city"])
                assert where == ("city-2", "city-2"), (order, history)
                # a late check-in (older than the current one) is history and changes nothing
                await checkin(client, 9, -1)
                assert await alerts.store.checkin(client) == current


async def test_a_redelivered_checkin_that_is_no_longer_current_is_recorded_once(settings, tmp_path) -> None:
    """A redelivery changes nothing (the dedupe is by event id), also when the check-in is no longer
    the current one: neither one that was current before a later one came, nor one that came late."""
    async with alert_service(settings, tmp_path, "latecheckin") as alerts:
        core = crisis_core(alerts)
        t0 = datetime.now(UTC)

        async def checkin(client: str, event_id: str, minutes: int) -> None:
            await core.record_checkin(
                event_id=event_id,
                client_id=client,
                session_id=f"{client}-{event_id}",
                location={"state": "CA", "county_fips": "06075", "city": event_id, "verified": True},
                backup_phone="+14155550134",
                at=t0 + timedelta(minutes=minutes),
            )

        async def logged(client: str) -> tuple[list[str], list[str]]:
            """The event ids in the client's check-in log and in its late check-ins, in order."""
            docs = await alerts.store.per_client.find({"client_id": client}).sort("_id", 1).to_list()
            return (
                [d["event_id"] for d in docs if d["kind"] == CHECKINS],
                sorted(d["event_id"] for d in docs if d["kind"] == LATE_CHECKINS),
            )

        for history in (0, FIRST_PROBE + 2):  # a short log, and one read past its first probe
            client = uid("rd")
            earlier = [f"e{n}" for n in range(history)]
            for n, event_id in enumerate(earlier):
                await checkin(client, event_id, n - 100)
            await checkin(client, "x", 0)  # current, then no longer: a later check-in comes
            await checkin(client, "y", 60)
            await checkin(client, "x", 0)  # a redelivery of x
            assert await logged(client) == ([*earlier, "x", "y"], []), history
            await checkin(client, "late1", -10)  # two check-ins older than the current one arrive late
            await checkin(client, "late2", -20)
            for event_id, minutes in (("late1", -10), ("late2", -20), ("x", 0), ("late1", -10)):  # redeliveries
                await checkin(client, event_id, minutes)
            assert await logged(client) == ([*earlier, "x", "y"], ["late1", "late2"]), history
            current = await alerts.store.checkin(client)
            assert current is not None and current["event_id"] == "y"
            # a check-in of the same time as the current one (another session's), then a redelivery
            # of the one not picked as current: recorded once, the current one stays
            await checkin(client, "z", 60)
            current = await alerts.store.checkin(client)
            assert current is not None
            other = "y" if current["event_id"] == "z" else "z"
            await checkin(client, other, 60)
            assert await logged(client) == ([*earlier, "x", "y", "z"], ["late1", "late2"]), history
            again = await alerts.store.checkin(client)
            assert again is not None and again["event_id"] == current["event_id"]


async def test_a_drop_processed_after_the_sessions_end_is_judged_by_its_own_time(crisis, io, settings) -> None:
    producer, out = io
    clinician, ended_at = uid("clin"), datetime.now(UTC)
    # clients: dropped 2 min before the end; 2 min after it by the video platform's clock (ahead of
    # the scheduler's, or a lost connection reported late: within DROP_AFTER_END_TOLERANCE); 10 min after
    during, skewed, after = uid("pe"), uid("pe"), uid("pe")
    sessions = {client: uid("ps") for client in (during, skewed, after)}
    channel, api = stub(crisis.target)
    ends = []
    async with channel:
        for client, session in sessions.items():
            await api.AssessCssrs(high_risk_request(client), metadata=md(settings, "supervisor"), timeout=DEADLINE_S)
            await producer.session_live(session, client, clinician)
            ended = scheduling_pb2.SessionEnded(
                session_id=session, clinician_id=clinician, ended_at=to_timestamp(ended_at), program_id="iop-test"
            )
            ends.append(await producer.send(topics.SESSIONS_IN, session, ended, "/iop/scheduler"))
    for end in ends:  # the sessions' ends are applied first (the attendance topic lags behind)
        await applied(settings, "sessions", end.id)

    sent_at, drops = datetime.now(UTC), {}
    for client, offset in (
        (during, timedelta(minutes=-2)),
        (skewed, timedelta(minutes=2)),
        (after, timedelta(minutes=10)),
    ):
        drops[client] = await producer.send(
            topics.ATTENDANCE_IN,
            sessions[client],
            engagement_pb2.ConnectionDropped(
                session_id=sessions[client],
                client_id=client,
                dropped_at=to_timestamp(ended_at + offset),
                clinician_id=clinician,
                reason="connection_lost",
                program_id="iop-test",
            ),
            "/iop/engagement",
        )
    opened = await out.wait_for(for_client(during, "AlertOpened"))
    assert opened, "a high-risk client's drop during the session was ignored"
    alert = opened[0][2]
    # the response is timed from when the drop was processed: opened now, the next rung an hour on
    opened_at, due = alert.opened_at.ToDatetime(tzinfo=UTC), alert.next_step_due_at.ToDatetime(tzinfo=UTC)
    assert opened_at >= sent_at - timedelta(seconds=1) and due - opened_at == timedelta(hours=1)
    callback = await out.wait_for(for_client(during, "CrisisTaskCreated"))
    assert callback and callback[0][2].kind == "CALLBACK"
    assert await out.wait_for(for_client(skewed, "AlertOpened")), "a drop within the clocks' tolerance was ignored"
    await applied(settings, "attendance", drops[after].id)  # the drop after the end was applied: nothing for it
    assert out.matching(for_client(after, "AlertOpened")) == out.matching(for_client(after, "CrisisTaskCreated")) == []


async def send_crisis_signal(producer: Any, client: str, value: int) -> Any:
    """A PHQ-9 item 9 answer of `value` for `client`, as engagement publishes it (the sent event)."""
    return await producer.send(
        topics.OUTCOMES_IN,
        client,
        engagement_pb2.CrisisSignal(
            client_id=client, source="phq9-item9", value=value, observed_at=to_timestamp(datetime.now(UTC))
        ),
        "/iop/engagement",
    )


async def alert_opened_by_a_signal(producer: Any, out: Any, settings: Settings, client: str) -> str:
    """A first positive item 9 for `client`, applied by this test's crisis process (others read the
    topic too): the id of the alert it opened."""
    first = await send_crisis_signal(producer, client, 2)
    opened = await out.wait_for(for_client(client, "AlertOpened"))
    assert opened, "the first positive item 9 opened no alert"
    await applied(settings, "outcomes", first.id)
    return str(opened[0][2].alert_id)


async def test_a_positive_item_9_while_an_alert_is_active_is_noted_on_it(crisis, io, settings) -> None:
    producer, out = io
    client = uid("sig")

    alert_id = await alert_opened_by_a_signal(producer, out, settings, client)
    channel, api = stub(crisis.target)
    async with channel:
        before = await api.GetAlert(
            crisis_pb2.GetAlertRequest(alert_id=alert_id), metadata=md(settings, "supervisor"), timeout=DEADLINE_S
        )
        second = await send_crisis_signal(producer, client, 1)  # while the alert is active
        noted = await out.wait_for(  # (not the 3rd task: events are at least once, deduplicated by id)
            lambda topic, e, p: for_client(client, "CrisisTaskCreated")(topic, e, p) and p.kind == "CRISIS_SIGNAL"
        )
        task = noted[0][2] if noted else None
        assert task is not None, "no CRISIS_SIGNAL task"
        assert task.alert_id == alert_id and task.assignee_id
        await applied(settings, "outcomes", second.id)  # by this test's crisis process (others read the topic too)
        after = await api.GetAlert(
            crisis_pb2.GetAlertRequest(alert_id=alert_id), metadata=md(settings, "supervisor"), timeout=DEADLINE_S
        )
    assert (after.status, after.next_step_index, after.next_step_due_at) == (
        before.status,
        before.next_step_index,
        before.next_step_due_at,
    )  # the ladder is neither restarted nor moved
    assert [(g.trigger_event_id, g.reason, g.restarted_ladder) for g in after.signals] == [
        (second.id, "PHQ9_ITEM9_POSITIVE", False)
    ]  # the signal is on the alert
    assert list(before.signals) == [] and after.ladder_round == 0
    assert {e[2].alert_id for e in out.matching(for_client(client, "AlertOpened"))} == {alert_id}  # no second alert
    mongo, db = crisis_db(settings)
    try:
        records = await db.alert_records.find({"alert_id": alert_id, "kind": "SIGNAL"}).to_list()
        assert [(r["trigger_id"], r["reason"]) for r in records] == [(second.id, "PHQ9_ITEM9_POSITIVE")]
    finally:
        await mongo.close()


async def test_a_signal_is_noted_once_and_a_resolved_alert_is_not_noted_on(settings, tmp_path) -> None:
    async with alert_service(settings, tmp_path, "signal") as alerts:
        core = crisis_core(alerts)
        client, now = uid("sig"), datetime.now(UTC)

        async def signal(trigger_id: str) -> str:
            return await core.on_crisis_signal(trigger_id=trigger_id, client_id=client, value=2, now=now)

        first = await signal("s1")
        assert await signal("s2") == first and await signal("s2") == first  # noted, then a redelivery
        assert await signal("s1") == first  # a redelivery of the signal that opened it
        _, records, _ = await alerts.current(first)
        assert [r["trigger_id"] for r in records if r["kind"] == "SIGNAL"] == ["s2"]
        await alerts.resolve(first, "SAFE_AT_HOME", "clin")
        third = await signal("s3")  # after the alert was resolved: a new alert, not a note on the old one
        assert third and third != first
        _, records, _ = await alerts.current(first)
        assert [r["trigger_id"] for r in records if r["kind"] == "SIGNAL"] == ["s2"]


class RecordingPager(Pager):
    """The test's paging gateway: no HTTP, remembers the idempotency key of every page."""

    def __init__(self) -> None:
        super().__init__(None, 1)
        self.keys: list[str] = []

    async def page(
        self, *, idempotency_key: str, alert_id: str, step: str, route: str, assignee_id: str, task_ids: list[str]
    ) -> Delivery:
        self.keys.append(idempotency_key)
        return Delivery("EVENT_ONLY")


REACHED = {"target": "CLIENT", "outcome": "REACHED", "contact_id": ""}


async def test_a_signal_after_contact_restarts_the_ladder_once_and_a_rung_in_flight_moves_nothing(
    settings, tmp_path
) -> None:
    async with alert_service(settings, tmp_path, "restart") as alerts:
        pager = RecordingPager()
        alerts.pager = pager
        core = crisis_core(alerts)
        client = uid("rs")

        async def signal(trigger_id: str) -> str:
            return await core.on_crisis_signal(trigger_id=trigger_id, client_id=client, value=2, now=datetime.now(UTC))

        alert_id = await signal("s1")
        # the timer reads the alert to fire rung 1 (on-call), and records it only after what follows
        alert, in_flight, in_flight_state = await alerts.current(alert_id)
        await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin")
        # two new signals at once after the client was reached: ONE restart, the other noted on it
        assert await asyncio.gather(signal("s2"), signal("s3")) == [alert_id, alert_id]
        _, records, st = await alerts.current(alert_id)
        restarts = [r for r in records if r["kind"] == "RUNG" and r["round"] == 1]
        assert [(r["index"], r["trigger"], r["_id"]) for r in restarts] == [
            (0, "CRISIS_SIGNAL", rung_id(alert_id, 0, 1))
        ]
        restart = restarts[0]
        assert [t["kind"] for t in restart["tasks"]] == ["CALLBACK", "CRISIS_SIGNAL", "ON_CALL_NOTIFICATION"]
        noted = [r["trigger_id"] for r in records if r["kind"] == "SIGNAL"]
        assert sorted([restart["trigger_id"], *noted]) == ["s2", "s3"]
        # back to needing contact; the ladder runs again from its first rung, the next due from it
        assert (st.status, st.ladder_round, st.next_step) == (Status.ESCALATED, 1, 1)
        assert st.due_at == restart["at"] + timedelta(hours=1)
        header = await alerts.store.alert(alert_id)
        assert header is not None and (header["next_step"], header["due_at"]) == (1, st.due_at)

        # the rung in flight is recorded now, as round 0's: history, the restarted ladder is unmoved
        assert await alerts._fire(alert, in_flight, in_flight_state)
        assert await alerts.store.record(rung_id(alert_id, 1)) is not None
        _, records, after = await alerts.current(alert_id)
        assert after == st
        header = await alerts.store.alert(alert_id)
        assert header is not None and (header["next_step"], header["due_at"]) == (1, st.due_at)
        # round 1's rung 1 is a page of its own (the gateway would drop a repeated key)
        assert await alerts._fire(alert, records, after)
        assert pager.keys == [f"{alert_id}:1", f"{alert_id}:r1:1"]

        # reached again, then a redelivery of the signal that restarted it: no second restart
        await alerts.record_attempt(alert_id, {"attempt_id": "a2", **REACHED}, "clin")
        assert await signal(restart["trigger_id"]) == alert_id
        _, records, st = await alerts.current(alert_id)
        assert (st.status, st.ladder_round, st.due_at) == (Status.CONTACT_MADE, 1, None)
        assert len([r for r in records if r["kind"] == "SIGNAL"]) == 1
        # a new signal now restarts it again (round 2)
        await signal("s4")
        _, records, st = await alerts.current(alert_id)
        assert (st.status, st.ladder_round, st.next_step) == (Status.ESCALATED, 2, 1)
        shown = _alert_message(header, records)  # the Alert message lists them, and the current round
        shown_signals = [(g.trigger_event_id, g.restarted_ladder) for g in shown.signals]
        assert sorted(shown_signals[:2]) == sorted([(restart["trigger_id"], True), (noted[0], False)])  # at once
        assert shown_signals[2:] == [("s4", True)]
        assert (shown.ladder_round, shown.next_step_index, shown.status) == (2, 1, ev.ALERT_STATUS_ESCALATED)


async def test_a_signal_whose_clock_was_read_before_the_contact_still_restarts_the_ladder(settings, tmp_path) -> None:
    """The signal handler reads its clock, then the records; a contact stored in between is read
    (the client was reached: the ladder restarts), but the handler's time is before it. The
    restart is dated after the contact it answers, or the committed restart (its rung, tasks and
    AlertEscalated) would be folded as stopped by that contact, with no next rung due."""
    async with alert_service(settings, tmp_path, "restartrace") as alerts:
        core = crisis_core(alerts)
        client = uid("rr")
        alert_id = await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC))
        handler_clock = datetime.now(UTC)
        await asyncio.sleep(0.01)
        await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin")
        await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=handler_clock)
        header, records, st = await alerts.current(alert_id)
        assert (st.status, st.ladder_round, st.next_step) == (Status.ESCALATED, 1, 1)
        restart = next(r for r in records if r["_id"] == rung_id(alert_id, 0, 1))
        assert st.due_at == restart["at"] + timedelta(hours=1)
        assert header["due_at"] == st.due_at


async def test_a_positive_item_9_after_the_client_was_reached_restarts_outreach(crisis, io, settings) -> None:
    producer, out = io
    client = uid("sig")

    alert_id = await alert_opened_by_a_signal(producer, out, settings, client)
    channel, api = stub(crisis.target)
    me = md(settings, "supervisor")
    async with channel:
        reached = await api.RecordContactAttempt(
            crisis_pb2.RecordContactAttemptRequest(
                alert_id=alert_id, target="CLIENT", outcome="REACHED", request_id=uid("req")
            ),
            metadata=me,
            timeout=DEADLINE_S,
        )
        assert (reached.status, reached.HasField("next_step_due_at")) == (ev.ALERT_STATUS_CONTACT_MADE, False)
        second = await send_crisis_signal(producer, client, 1)
        escalated = await out.wait_for(for_client(client, "AlertEscalated"))
        assert escalated, "a positive item 9 after contact did not restart outreach"
        restart = escalated[0][2]
        assert (restart.step_index, restart.step, restart.trigger, restart.ladder_round) == (
            0,
            ev.LADDER_STEP_CLINICIAN_CALLBACK,
            "CRISIS_SIGNAL",
            1,
        )
        restarted = {  # task ids are derived: a partner (and this test) deduplicates by them
            f"{alert_id}:r1:0:callback": "CALLBACK",
            f"{alert_id}:{second.id}:signal": "CRISIS_SIGNAL",
            f"{alert_id}:{second.id}:notify-on-call": "ON_CALL_NOTIFICATION",
        }
        tasks = await out.wait_for(
            lambda topic, e, p: for_client(client, "CrisisTaskCreated")(topic, e, p) and p.task_id in restarted,
            count=len(restarted),
        )
        assert {t[2].task_id: t[2].kind for t in tasks} == restarted
        after = await api.GetAlert(crisis_pb2.GetAlertRequest(alert_id=alert_id), metadata=me, timeout=DEADLINE_S)
    assert (after.status, after.next_step_index) == (ev.ALERT_STATUS_ESCALATED, 1)
    due = restart.escalated_at.ToDatetime(tzinfo=UTC) + timedelta(hours=1)
    assert abs(after.next_step_due_at.ToDatetime(tzinfo=UTC) - due) < timedelta(milliseconds=1)  # the store keeps ms
    assert after.steps[0].trigger == "CRISIS_SIGNAL" and not after.steps[1].HasField("fired_at")
    assert after.ladder_round == 1  # the steps shown are the restarted ladder's
    assert [(g.trigger_event_id, g.reason, g.restarted_ladder) for g in after.signals] == [
        (second.id, "PHQ9_ITEM9_POSITIVE", True)
    ]
    assert {e[2].alert_id for e in out.matching(for_client(client, "AlertOpened"))} == {alert_id}  # no second alert
    mongo, db = crisis_db(settings)
    try:
        rung = await db.alert_records.find_one({"_id": rung_id(alert_id, 0, 1)})
        assert rung is not None and rung["trigger_id"] == second.id
    finally:
        await mongo.close()


async def test_a_contact_logged_with_a_clock_ahead_does_not_keep_the_ladder_stopped(crisis, io, settings) -> None:
    """A REACHED attempt whose `attempted_at` is ahead of the server's clock (the caller's clock runs
    ahead, within the API's tolerance) is taken as made now: a crisis signal processed within that
    minute restarts outreach, as after any contact (it used to count as before the contact, and the
    restarted ladder stayed stopped with no rung due)."""
    producer, out = io
    client = uid("sig")

    alert_id = await alert_opened_by_a_signal(producer, out, settings, client)
    channel, api = stub(crisis.target)
    me = md(settings, "supervisor")
    async with channel:
        reached = await api.RecordContactAttempt(
            crisis_pb2.RecordContactAttemptRequest(
                alert_id=alert_id,
                target="CLIENT",
                outcome="REACHED",
                request_id=uid("req"),
                attempted_at=to_timestamp(datetime.now(UTC) + timedelta(seconds=50)),
            ),
            metadata=me,
            timeout=DEADLINE_S,
        )
        recorded_by = datetime.now(UTC)
        assert reached.status == ev.ALERT_STATUS_CONTACT_MADE
        second = await send_crisis_signal(producer, client, 1)
        await applied(settings, "outcomes", second.id)
        after = await api.GetAlert(crisis_pb2.GetAlertRequest(alert_id=alert_id), metadata=me, timeout=DEADLINE_S)
    assert [(g.trigger_event_id, g.restarted_ladder) for g in after.signals] == [(second.id, True)]
    assert (after.status, after.ladder_round, after.next_step_index) == (ev.ALERT_STATUS_ESCALATED, 1, 1)
    assert after.HasField("next_step_due_at"), "the restarted ladder has no next rung due"
    assert after.contact_attempts[0].attempted_at.ToDatetime(tzinfo=UTC) <= recorded_by  # taken as made then


def rung_events(rung: Document, client: str) -> tuple[list[ev.AlertEscalated], list[ev.CrisisTaskCreated]]:
    """The AlertEscalated and CrisisTaskCreated events a stored rung carries in its outbox."""
    escalated, tasks = [], []
    for entry in rung["outbox"]:
        if entry["type"] == ev.AlertEscalated.DESCRIPTOR.full_name:
            escalated.append(ev.AlertEscalated.FromString(bytes(entry["data"])))
        elif entry["type"] == ev.CrisisTaskCreated.DESCRIPTOR.full_name:
            assert entry["key"] == client  # never the location or the phone
            tasks.append(ev.CrisisTaskCreated.FromString(bytes(entry["data"])))
    return escalated, tasks


async def test_an_escalation_after_a_new_checkin_dispatches_to_where_the_client_is_now(settings, tmp_path) -> None:
    """The client checked in from another verified location, with another callback number, after
    the alert opened: a repeat drop's rung, a restart by a crisis signal (and the restarted
    ladder's timer rungs) send their tasks, on-call and the events there, and the rung says so."""
    async with alert_service(settings, tmp_path, "whereisnow") as alerts:
        core = crisis_core(alerts)
        t0 = datetime.now(UTC) - timedelta(hours=3)
        drop_client, signal_client = uid("wd"), uid("ws")

        async def checkin(client: str, where: common_pb2.ClientLocation, phone: str, at: datetime) -> None:
            await core.record_checkin(
                event_id=uid("ev"),
                client_id=client,
                session_id=f"{client}-{where.city}",
                location=events.location_dict(where),
                backup_phone=phone,
                at=at,
            )

        async def rung_doc(rung: str) -> Document:
            doc = await alerts.store.per_client.database[ALERT_RECORDS].find_one({"_id": rung})
            assert doc is not None, rung
            return doc

        def dispatched_to_houston(rung: Document, client: str, step_index: int) -> None:
            escalated, tasks = rung_events(rung, client)
            assert [(e.step_index, e.location.city, e.callback_phone) for e in escalated] == [
                (step_index, "Houston", "+17135550100")
            ]
            assert escalated[0].location_session_id == f"{client}-Houston"
            assert escalated[0].location_verified_at.ToDatetime(tzinfo=UTC) == later.replace(
                microsecond=later.microsecond // 1000 * 1000
            )
            assert tasks and {(t.location.city, t.resources.region_id) for t in tasks} == {("Houston", "US-TX-48201")}
            assert {t.callback_phone for t in tasks} == {"+17135550100"}, [t.kind for t in tasks]
            assert {t["callback_phone"] for t in rung["tasks"]} == {"+17135550100"}

        later = t0 + timedelta(hours=2)
        for client in (drop_client, signal_client):
            await checkin(client, SF, "+14155550134", t0)

        # a repeat drop two hours after the alert opened, the client having checked in from Houston
        await open_alert_directly(alerts, f"alert-{drop_client}", drop_client, "TEST")
        await checkin(drop_client, HOUSTON, "713 555 0100", later)
        await checkin(drop_client, SF, "+14155550134", t0 + timedelta(hours=1))  # an older one, late: not used
        await alerts.escalate_now(f"alert-{drop_client}", uid("drop"), "DISCONNECTED_AGAIN", datetime.now(UTC))
        dispatched_to_houston(await rung_doc(rung_id(f"alert-{drop_client}", 1)), drop_client, 1)
        header, records, _ = await alerts.current(f"alert-{drop_client}")
        steps = _alert_message(header, records).steps
        assert [(s.location.city, s.callback_phone, s.location_session_id) for s in steps[:2]] == [
            ("San Francisco", "+14155550134", f"{drop_client}-San Francisco"),  # as opened
            ("Houston", "+17135550100", f"{drop_client}-Houston"),
        ]
        assert not steps[2].HasField("location") and steps[2].callback_phone == ""  # not fired

        # a crisis signal after the client was reached restarts the ladder from where they are now
        alert_id = await core.on_crisis_signal(trigger_id=uid("s"), client_id=signal_client, value=2, now=t0)
        await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin", t0 + timedelta(minutes=5))
        await checkin(signal_client, HOUSTON, "713 555 0100", later)
        await core.on_crisis_signal(trigger_id=uid("s"), client_id=signal_client, value=2, now=datetime.now(UTC))
        restart = await rung_doc(rung_id(alert_id, 0, 1))
        assert [t["kind"] for t in restart["tasks"]] == ["CALLBACK", "CRISIS_SIGNAL", "ON_CALL_NOTIFICATION"]
        dispatched_to_houston(restart, signal_client, 0)
        # the restarted ladder's next rungs, fired by their timers, go there too
        alert, records, st = await alerts.current(alert_id)
        assert await alerts._fire(alert, records, st)
        dispatched_to_houston(await rung_doc(rung_id(alert_id, 1, 1)), signal_client, 1)
        header, records, _ = await alerts.current(alert_id)
        shown = _alert_message(header, records)
        assert shown.ladder_round == 1
        assert [(s.location.city, s.callback_phone) for s in shown.steps[:2]] == [
            ("Houston", "+17135550100"),
            ("Houston", "+17135550100"),
        ]
        opened = await alerts.store.alert(alert_id)
        assert opened is not None and opened["context"]["location"]["city"] == "San Francisco"  # not updated


async def test_an_alert_id_taken_by_another_client_concurrently_leaves_no_slot(settings, tmp_path) -> None:
    """Two RaiseAlerts with one request_id for two clients at once: both found no alert, the first
    wrote it; the second must not be left holding the first client's alert as its active one."""
    async with alert_service(settings, tmp_path, "race") as alerts:
        first, second, alert_id = uid("px"), uid("py"), uid("raised")
        await open_alert_directly(alerts, alert_id, first, "TEST")
        alert, created = await alerts.open_alert(
            alert_id=alert_id,
            client_id=second,
            session_id="",
            program_id="",
            clinician_id="clin-B",
            reason="CLINICIAN_RAISED",
            risk=Risk.HIGH,
            trigger_event_id="",
            extra_assignees=[],
            now=datetime.now(UTC),
            known_absent=True,  # its lookup ran before the first client's insert
        )
        assert (
            not created and alert is not None and alert["client_id"] == first
        )  # the API refuses it (REQUEST_ID_REUSED)
        assert await alerts.store.active_alert(second) is None
        assert (await alerts.store.active_alert(first) or {}).get("_id") == alert_id


async def attempt_events(alerts: Any, alert_id: str, attempt_id: str) -> list[Any]:
    """The events a stored contact attempt carries in its outbox, as (type name, message)."""
    doc = await alerts.store.per_client.database[ALERT_RECORDS].find_one(
        {"alert_id": alert_id, "attempt_id": attempt_id}
    )
    assert doc is not None, attempt_id
    kinds = {m.DESCRIPTOR.full_name: m for m in (ev.AlertContactAttempted, ev.AlertContactMade)}
    return [
        (entry["type"].rsplit(".", 1)[-1], kinds[entry["type"]].FromString(bytes(entry["data"])))
        for entry in doc["outbox"]
    ]


async def test_a_reached_contact_dated_before_the_ladder_was_started_again_publishes_no_contact_made(
    settings, tmp_path
) -> None:
    """A REACHED attempt whose `attempted_at` is before the ladder was last started again (a crisis
    signal after an earlier contact, or a repeat drop) is history: the ladder keeps running
    (`fold_alert`), so no AlertContactMade goes out and the attempt says it did not stop the ladder.
    A REACHED attempt after the restart stops it, with AlertContactMade, as always."""
    async with alert_service(settings, tmp_path, "histcontact") as alerts:
        core = crisis_core(alerts)
        t0 = datetime.now(UTC) - timedelta(hours=1)

        # a crisis signal after contact restarted the ladder; a call made before the restart is logged
        client = uid("hc")
        alert_id = await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=t0)
        await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin", t0 + timedelta(minutes=5))
        await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=t0 + timedelta(minutes=20))
        await alerts.record_attempt(alert_id, {"attempt_id": "a2", **REACHED}, "clin", t0 + timedelta(minutes=10))
        header, records, st = await alerts.current(alert_id)
        assert (st.status, st.ladder_round) == (Status.ESCALATED, 1) and st.due_at is not None  # still running
        assert [kind for kind, _ in await attempt_events(alerts, alert_id, "a1")] == [
            "AlertContactAttempted",
            "AlertContactMade",
        ]
        history = await attempt_events(alerts, alert_id, "a2")
        assert [kind for kind, _ in history] == ["AlertContactAttempted"], history
        assert history[0][1].outcome == "REACHED" and not history[0][1].stopped_ladder
        shown = _alert_message(header, records)
        assert shown.status == ev.ALERT_STATUS_ESCALATED
        assert [(a.attempt_id, a.stopped_ladder) for a in shown.contact_attempts] == [("a1", True), ("a2", False)]
        # reached after the restart: the ladder stops
        await alerts.record_attempt(alert_id, {"attempt_id": "a3", **REACHED}, "clin", t0 + timedelta(minutes=25))
        _, _, st = await alerts.current(alert_id)
        assert st.status == Status.CONTACT_MADE
        made = await attempt_events(alerts, alert_id, "a3")
        assert [kind for kind, _ in made] == ["AlertContactAttempted", "AlertContactMade"] and made[0][1].stopped_ladder

        # a repeat drop escalated the ladder (its next rung, then, the ladder run out, a repeat)
        for drops in (1, 4):  # the fourth drop finds the ladder run out: a REPEAT record, no rung
            client = uid("hd")
            alert_id = f"alert-{client}"
            await open_alert_directly(alerts, alert_id, client, "TEST")
            await asyncio.sleep(0.01)
            called_at = datetime.now(UTC)  # after the opening, before the drops
            await asyncio.sleep(0.01)
            for _ in range(drops):
                await alerts.escalate_now(alert_id, uid("drop"), "DISCONNECTED_AGAIN", datetime.now(UTC))
            _, records, st = await alerts.current(alert_id)
            assert [r["kind"] for r in records][-1] == ("RUNG" if drops == 1 else "REPEAT")
            await alerts.record_attempt(alert_id, {"attempt_id": "b1", **REACHED}, "clin", called_at)
            header, records, st = await alerts.current(alert_id)
            assert st.status == Status.ESCALATED, (drops, st)
            history = await attempt_events(alerts, alert_id, "b1")
            assert [kind for kind, _ in history] == ["AlertContactAttempted"], (drops, history)
            assert [a.stopped_ladder for a in _alert_message(header, records).contact_attempts] == [False]


async def test_a_drop_whose_clock_was_read_before_the_contact_still_escalates_after_it(settings, tmp_path) -> None:
    """The drop handler reads its clock, then the client's records; a contact stored in between is
    read (the client was reached: a drop after contact starts the ladder again), but the handler's
    time is before it. The drop's rung (or, the ladder run out, its REPEAT) is dated after the
    contact it read, or its tasks and AlertEscalated would go out while the alert folds as stopped
    by that contact, with no next rung due."""
    async with alert_service(settings, tmp_path, "droprace") as alerts:
        core = crisis_core(alerts)
        for earlier_drops in (0, 3):  # 3: the ladder has run out, the drop is a REPEAT
            client = uid("dr")
            alert_id = f"alert-{client}"
            await open_alert_directly(alerts, alert_id, client, "TEST")
            for _ in range(earlier_drops):
                await alerts.escalate_now(alert_id, uid("drop"), "DISCONNECTED_AGAIN", datetime.now(UTC))
            handler_clock = datetime.now(UTC)
            await asyncio.sleep(0.01)
            await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin")
            outcome = await core.on_disconnect(
                trigger_id=uid("drop"),
                client_id=client,
                session_id=uid("session"),
                clinician_id="clin",
                program_id="",
                reason="CONNECTION_DROPPED",
                now=handler_clock,
            )
            assert outcome.alert_id == alert_id
            header, records, st = await alerts.current(alert_id)
            contact = next(r for r in records if r["kind"] == "ATTEMPT")
            assert st.status == Status.ESCALATED, (earlier_drops, st)
            if earlier_drops == 0:
                rung = next(r for r in records if r["_id"] == rung_id(alert_id, 1))
                assert rung["at"] > contact["at"] and rung["trigger"] == "DISCONNECTED_AGAIN"
                assert (st.next_step, st.due_at) == (2, rung["at"] + timedelta(hours=1))
                assert header["due_at"] == st.due_at
            else:
                repeat = [r for r in records if r["kind"] == "REPEAT"]
                assert len(repeat) == 1 and repeat[0]["at"] > contact["at"]
            assert [a.stopped_ladder for a in _alert_message(header, records).contact_attempts] == [True]


async def test_a_drop_racing_a_contact_agrees_with_the_fold(settings, tmp_path) -> None:
    """A repeat drop and a REACHED contact at once, on the real store, 20 times with staggered
    starts: whenever the drop read the contact, the alert needs contact again (ESCALATED, a next
    rung due); when it did not, its rung is dated before the contact, which stops the ladder. Either
    way the fold agrees with the dates of what was published."""
    async with alert_service(settings, tmp_path, "droprace2") as alerts:
        core = crisis_core(alerts)
        read_by_drop: list[bool] = []
        records_of = alerts.store.records

        async def records(alert: Document) -> list[Document]:
            found = await records_of(alert)
            task = asyncio.current_task()
            if task is not None and task.get_name() == "drop":
                read_by_drop.append(any(r["kind"] == "ATTEMPT" for r in found))
            return found

        alerts.store.records = records  # type: ignore[method-assign]
        for i in range(20):
            client = uid("rc")
            alert_id = f"alert-{client}"
            await open_alert_directly(alerts, alert_id, client, "TEST")
            read_by_drop.clear()

            async def drop(i: int = i, client: str = client) -> None:
                now = datetime.now(UTC)  # the handler's clock, read before the records
                await asyncio.sleep(0.001 * (i % 5))
                await core.on_disconnect(
                    trigger_id=uid("drop"),
                    client_id=client,
                    session_id=uid("session"),
                    clinician_id="clin",
                    program_id="",
                    reason="CONNECTION_DROPPED",
                    now=now,
                )

            async def contact(i: int = i, alert_id: str = alert_id) -> None:
                await asyncio.sleep(0.001 * (i % 7))
                await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin")

            await asyncio.gather(asyncio.create_task(drop(), name="drop"), contact())
            _, found, st = await alerts.current(alert_id)
            rung = next(r for r in found if r["_id"] == rung_id(alert_id, 1))
            reached = next(r for r in found if r["kind"] == "ATTEMPT")
            if read_by_drop[0]:
                assert rung["at"] > reached["at"], i
            expected = Status.ESCALATED if rung["at"] > reached["at"] else Status.CONTACT_MADE
            assert (st.status, st.due_at is not None) == (expected, expected == Status.ESCALATED), (i, st)


async def test_the_platform_role_reads_an_alert_without_where_the_client_is_or_their_number(
    crisis, io, settings
) -> None:
    """A fired rung on the Alert names where its tasks reached the client (location) and the number
    to call them back on: for the care team who reach them. The platform role (the apps' service
    account) may read an alert's state, not those: they are left out of its answer."""
    producer, _ = io
    client, session, clinician = uid("client"), uid("session"), uid("clin")
    channel, api = stub(crisis.target)
    async with channel:
        await producer.session_live(session, client, clinician)
        await card_of(api, settings, client, until_session=session)
        raised = await api.RaiseAlert(
            crisis_pb2.RaiseAlertRequest(client_id=client, session_id=session, request_id=uid("raise")),
            metadata=md(settings, "clinician", clinician),
            timeout=DEADLINE_S,
        )
        assert raised.steps[0].location.county_fips == SF.county_fips, raised
        assert raised.steps[0].callback_phone == "+14155550134", raised
        request = crisis_pb2.GetAlertRequest(alert_id=raised.alert_id)
        for role in ("clinician", "supervisor"):  # the session's clinician; a supervisor
            full = await api.GetAlert(request, metadata=md(settings, role, clinician), timeout=DEADLINE_S)
            assert full.steps[0].location == raised.steps[0].location, role
            assert full.steps[0].callback_phone == "+14155550134", role
        seen = await api.GetAlert(request, metadata=md(settings, "platform", "app-1"), timeout=DEADLINE_S)
    step = seen.steps[0]
    assert not step.HasField("location") and step.callback_phone == "", step
    # the rest of the alert is as the care team sees it
    for rung in full.steps:
        rung.ClearField("location")
        rung.ClearField("callback_phone")
    assert seen == full and step.location_session_id == session


async def test_every_call_answering_with_an_alert_records_a_phi_read(crisis, settings) -> None:
    """An Alert names the client, their risk and where its rungs reached them (PHI): every call that
    answers with one is a read of it, recorded in `phi_access_audit`, not GetAlert's alone."""
    client, clinician = uid("client"), uid("clin")
    mine = md(settings, "clinician", clinician)
    channel, api = stub(crisis.target)
    async with channel:
        raised = await api.RaiseAlert(
            crisis_pb2.RaiseAlertRequest(client_id=client, request_id=uid("raise")), metadata=mine, timeout=DEADLINE_S
        )
        alert_id = raised.alert_id
        await api.GetAlert(crisis_pb2.GetAlertRequest(alert_id=alert_id), metadata=mine, timeout=DEADLINE_S)
        await api.AcknowledgeAlert(
            crisis_pb2.AcknowledgeAlertRequest(alert_id=alert_id), metadata=mine, timeout=DEADLINE_S
        )
        await api.RecordContactAttempt(
            crisis_pb2.RecordContactAttemptRequest(
                alert_id=alert_id, target="CLIENT", outcome="REACHED", request_id=uid("attempt")
            ),
            metadata=mine,
            timeout=DEADLINE_S,
        )
        await api.ResolveAlert(
            crisis_pb2.ResolveAlertRequest(alert_id=alert_id, resolution="SAFE_AT_HOME"),
            metadata=mine,
            timeout=DEADLINE_S,
        )
    mongo, db = crisis_db(settings)
    try:
        audited = await db.phi_access_audit.find({"resource_id": alert_id}).to_list()
    finally:
        await mongo.close()
    assert sorted((a["action"], a["resource_type"], a["principal"]) for a in audited) == [
        (action, "alert", clinician)
        for action in sorted(["RaiseAlert", "GetAlert", "AcknowledgeAlert", "RecordContactAttempt", "ResolveAlert"])
    ], audited


async def test_a_checkin_without_a_number_keeps_the_clients_last_known_number(settings, tmp_path) -> None:
    """The scheduler's check-in asks for a callback number but does not require one. A later
    check-in without one keeps the number the client gave before, so an alert (or a rung fired
    from the new check-in) still has a number to call; a new number replaces it."""
    async with alert_service(settings, tmp_path, "checkinphone") as alerts:
        core = crisis_core(alerts)
        client, t0 = uid("cp"), datetime.now(UTC) - timedelta(minutes=10)

        async def checkin(n: int, backup_phone: str) -> None:
            await numbered_checkin(core, client, n, backup_phone, t0)

        await checkin(1, "+14155550101")
        await checkin(2, "")  # no number given at this session's check-in
        current = await alerts.store.checkin(client)
        assert current is not None and (current["session_id"], current["backup_phone"]) == (
            f"{client}-s2",
            "+14155550101",
        )
        alert_id = await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC))
        alert = await alerts.store.alert(alert_id)
        assert alert is not None
        assert alert["context"]["callback_phone"] == "+14155550101", alert["context"]
        assert "NO_BACKUP_PHONE" not in alert["problems"], alert["problems"]

        await checkin(3, "+14155550103")  # a new number replaces it, and is kept in turn
        await checkin(4, "")
        held = await alerts.store.client_records(client)
        assert held.checkin is not None and held.checkin["backup_phone"] == "+14155550103"


async def test_a_drop_racing_a_signal_restart_still_moves_the_restarted_ladder(settings, tmp_path) -> None:
    """The client was reached (the ladder stopped); then a drop and a crisis signal are handled at
    once, each reading the alert before the other's record is stored. The signal restarts the
    ladder (round 1, its first rung) and the drop fires the next rung of round 0, which the restart
    leaves as history: the drop's escalation moved nothing, and the emergency rungs came one rung
    (an hour here, 5 minutes by the default policy) later than had the drop come just after the
    restart. Whichever of the two is stored first, the drop's escalation is answered in the
    restarted round: its rung 1 fired for the drop, the next (emergency contact) due from it."""
    async with alert_service(settings, tmp_path, "droprestart") as alerts:
        core = crisis_core(alerts)
        dispatch = alerts.dispatch

        async def race(first: str, earlier_drops: int) -> None:
            client = uid("dx")
            alert_id = await core.on_crisis_signal(
                trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC)
            )
            for _ in range(earlier_drops):  # rung 1 (3: rungs 1-3, the ladder has run out)
                await alerts.escalate_now(alert_id, uid("drop"), "DISCONNECTED_AGAIN", datetime.now(UTC))
            await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin")
            drop_id, signal_id = uid("drop"), uid("s")
            arrived, both_read, first_done = 0, asyncio.Event(), asyncio.Event()

            async def after_both_read(alert: Document, index: int | None = None) -> Any:
                """Each handler reaches here after reading the alert: the first two wait for each
                other, then `first` stores its record before the other goes on."""
                nonlocal arrived
                arrived += 1
                if arrived <= 2:
                    if arrived == 2:
                        both_read.set()
                    await both_read.wait()
                    task = asyncio.current_task()
                    if task is not None and task.get_name() != first:
                        await first_done.wait()
                return await dispatch(alert, index)

            async def handled(name: str, work: Awaitable[object]) -> None:
                try:
                    await work
                finally:
                    if name == first:
                        first_done.set()

            drop = core.on_disconnect(
                trigger_id=drop_id,
                client_id=client,
                session_id=uid("session"),
                clinician_id="clin",
                program_id="",
                reason="CONNECTION_DROPPED",
                now=datetime.now(UTC),
            )
            signal = core.on_crisis_signal(trigger_id=signal_id, client_id=client, value=2, now=datetime.now(UTC))
            alerts.dispatch = after_both_read  # type: ignore[method-assign]
            try:
                await asyncio.gather(
                    asyncio.create_task(handled("drop", drop), name="drop"),
                    asyncio.create_task(handled("signal", signal), name="signal"),
                )
            finally:
                alerts.dispatch = dispatch  # type: ignore[method-assign]
            assert arrived >= 2, first
            header, records, st = await alerts.current(alert_id)
            rungs = {(r.get("round", 0), r["index"]): r for r in records if r["kind"] == "RUNG"}
            assert rungs[(1, 0)]["trigger_id"] == signal_id, first  # the restart
            # the drop as it read the alert (its next rung, or a REPEAT of a ladder run out): history
            history = rungs.get((0, 2)) if earlier_drops == 1 else next(r for r in records if r["kind"] == "REPEAT")
            assert history is not None and history["trigger_id"] == drop_id, (first, earlier_drops)
            answer = rungs.get((1, 1))
            case = (first, earlier_drops)
            assert answer is not None and answer["trigger_id"] == drop_id, (case, sorted(rungs))
            assert answer["trigger"] == "DISCONNECTED_AGAIN", case
            assert (st.status, st.ladder_round, st.next_step) == (Status.ESCALATED, 1, 2), (case, st)
            assert st.due_at == answer["at"] + timedelta(hours=1), case
            assert (header["next_step"], header["due_at"]) == (2, st.due_at), case

        for first, earlier_drops in itertools.product(("drop", "signal"), (1, 3)):  # which is stored first
            await race(first, earlier_drops)


async def test_a_repeat_stored_before_repeats_named_their_round_is_not_answered_again(settings, tmp_path) -> None:
    """REPEAT records named no round before 2026-12-07. An alert active then, whose restarted
    ladder (round 1) had run out and whose client dropped again (a REPEAT of round 1, nobody
    reached since), holds such a record: its round is unknown, not round 0, and it is no drop a
    restart overtook. The next event on the alert (here a redelivery of the signal that restarted
    it) answers nothing again: no second REPEAT, callback and on-call notification for that drop."""
    async with alert_service(settings, tmp_path, "legacyrepeat") as alerts:
        core = crisis_core(alerts)
        client, restart_id, drop_id = uid("lr"), uid("s"), uid("drop")
        alert_id = await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC))
        await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin")
        await core.on_crisis_signal(trigger_id=restart_id, client_id=client, value=2, now=datetime.now(UTC))
        for _ in range(3):  # round 1's rungs 1-3: its ladder has run out
            await alerts.escalate_now(alert_id, uid("drop"), "DISCONNECTED_AGAIN", datetime.now(UTC))
        await alerts.escalate_now(alert_id, drop_id, "DISCONNECTED_AGAIN", datetime.now(UTC))
        repeat = {"kind": "REPEAT", "trigger_id": drop_id}
        assert (await alerts.store.db[ALERT_RECORDS].find_one(repeat) or {}).get("round") == 1
        await alerts.store.db[ALERT_RECORDS].update_one(repeat, {"$unset": {"round": ""}})  # as stored before
        _, _, before = await alerts.current(alert_id)
        assert (before.status, before.ladder_round, before.next_step) == (Status.ESCALATED, 1, 4)

        await core.on_crisis_signal(trigger_id=restart_id, client_id=client, value=2, now=datetime.now(UTC))
        _, records, st = await alerts.current(alert_id)
        answers = [r for r in records if r.get("trigger_id") == drop_id]
        assert [r["kind"] for r in answers] == ["REPEAT"], answers
        assert st == before


async def test_deleting_a_safety_plan_records_a_phi_read(crisis, io, settings) -> None:
    """DeleteSafetyPlan is sent a client id and a version, and answers with the plan it retired:
    its coping strategies, the emergency contacts' names and numbers, the backup phone (read from
    the store, as ResolveAlert's answer is the whole alert). Like every answer with PHI it is a read
    recorded in `phi_access_audit`."""
    producer, _ = io
    client, author, deleter = uid("client"), uid("clin"), uid("clin")
    co_facilitator = scheduling_pb2.SessionFacilitator(clinician_id=deleter, role="co_facilitator")
    booked = await producer.scheduled(uid("session"), [client], author, facilitators=[co_facilitator])
    await applied(settings, "sessions", booked.id)  # both treat the client
    channel, api = stub(crisis.target)
    async with channel:
        await api.SaveSafetyPlan(
            crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client), expected_version=0),
            metadata=md(settings, "clinician", author),
            timeout=DEADLINE_S,
        )
        retired = await api.DeleteSafetyPlan(
            crisis_pb2.DeleteSafetyPlanRequest(client_id=client, expected_version=1),
            metadata=md(settings, "clinician", deleter),
            timeout=DEADLINE_S,
        )
    assert [c.name for c in retired.emergency_contacts] == ["Alex Doe"]  # what the answer holds
    mongo, db = crisis_db(settings)
    try:
        audited = await db.phi_access_audit.find({"resource_id": client, "principal": deleter}).to_list()
    finally:
        await mongo.close()
    assert [(a["action"], a["resource_type"]) for a in audited] == [("DeleteSafetyPlan", "client")], audited


async def test_two_lookers_answer_an_overtaken_drop_once_when_the_restarted_ladder_has_run_out(
    settings, tmp_path
) -> None:
    """A drop a restart overtook is answered by whoever looks after storing their record (the drop's
    handler, the signal's, a redelivery of either). When the restarted round's ladder has run out
    by then, the answer is a REPEAT of that round. Two lookers that both read the drop unanswered
    (held here after their reads) record it once: one REPEAT, one callback and on-call notification
    for the drop in that round. Until 2026-12-07 the second REPEAT took the next free position of
    the action log, and the same task ids went out twice."""
    async with alert_service(settings, tmp_path, "twolookers") as alerts:
        core = crisis_core(alerts)
        dispatch = alerts.dispatch
        client, drop_id = uid("tl"), uid("drop")
        alert_id = await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC))
        await alerts.record_attempt(alert_id, {"attempt_id": "a1", **REACHED}, "clin")
        drop_read, restarted = asyncio.Event(), asyncio.Event()
        answering, both_read = 0, asyncio.Event()

        async def held(alert: Document, index: int | None = None) -> Any:
            """The drop's first escalation waits, after its read, until the restart and round 1's
            rungs are stored; then the drop's own answer and the other looker's wait for each other
            after their reads."""
            nonlocal answering
            task = asyncio.current_task()
            name = task.get_name() if task is not None else ""
            if name == "drop" and not drop_read.is_set():
                drop_read.set()
                await restarted.wait()
            elif name in ("drop", "looker"):
                answering += 1
                if answering == 2:
                    both_read.set()
                await both_read.wait()
            return await dispatch(alert, index)

        alerts.dispatch = held  # type: ignore[method-assign]
        try:
            drop = asyncio.create_task(
                alerts.escalate_now(alert_id, drop_id, "DISCONNECTED_AGAIN", datetime.now(UTC)), name="drop"
            )
            await drop_read.wait()  # the drop read the ladder stopped by the contact
            await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC))
            for _ in range(3):  # round 1's rungs 1-3: its ladder has run out
                await alerts.escalate_now(alert_id, uid("drop"), "DISCONNECTED_AGAIN", datetime.now(UTC))
            restarted.set()
            while answering < 1 and not drop.done():  # the drop stored its rung and reads to answer it
                await asyncio.sleep(0.01)
            looker = asyncio.create_task(alerts.answer_overtaken_drops(alert_id), name="looker")
            await asyncio.wait_for(asyncio.gather(drop, looker), DEADLINE_S)
        finally:
            alerts.dispatch = dispatch  # type: ignore[method-assign]
        assert answering == 2
        _, records, st = await alerts.current(alert_id)
        answers = [(r["kind"], r.get("round"), r.get("index")) for r in records if r.get("trigger_id") == drop_id]
        assert answers == [("RUNG", 0, 1), ("REPEAT", 1, None)], answers
        repeat = next(r for r in records if r["kind"] == "REPEAT")
        assert sorted(t["task_id"] for t in repeat["tasks"]) == [
            f"{alert_id}:{drop_id}:callback",
            f"{alert_id}:{drop_id}:notify-on-call",
        ]
        assert (st.status, st.ladder_round, st.next_step, st.due_at) == (Status.ESCALATED, 1, 4, None), st


async def test_check_ins_applied_at_once_keep_the_number_of_the_latest_that_has_one(settings, tmp_path) -> None:
    """Two check-ins of a client applied at once (two sessions' events in one consumer batch), the
    older with a number and the newer without, both read the same current check-in. The newer
    becomes the current one, and the number kept for it is the older's (the latest check-in, by
    its own time, that has one), whichever insert lands first: until 2026-12-07 it was the number
    of the check-in both had read (an older one), or none. A check-in without a number after them
    keeps it in turn."""
    async with alert_service(settings, tmp_path, "racephone") as alerts:
        core = crisis_core(alerts)
        append_after = alerts.store.append_after
        t0 = datetime.now(UTC) - timedelta(minutes=30)

        async def checkin(client: str, n: int, backup_phone: str) -> None:
            await numbered_checkin(core, client, n, backup_phone, t0)

        async def race(first: str, before: str) -> None:
            client, arrived, both_read, first_done = uid("rp"), 0, asyncio.Event(), asyncio.Event()
            await checkin(client, 0, before)  # the current check-in both read

            async def held(kind: str, client_id: str, seq: int, make: Any) -> Document:
                """Both check-ins reach here after their reads; `first` is appended first."""
                nonlocal arrived
                arrived += 1
                if arrived == 2:
                    both_read.set()
                await both_read.wait()
                task = asyncio.current_task()
                if task is not None and task.get_name() != first:
                    await first_done.wait()
                try:
                    return await append_after(kind, client_id, seq, make)
                finally:
                    first_done.set()

            alerts.store.append_after = held  # type: ignore[method-assign]
            try:
                await asyncio.gather(
                    asyncio.create_task(checkin(client, 1, "+14155550101"), name="older"),
                    asyncio.create_task(checkin(client, 2, ""), name="newer"),
                )
            finally:
                alerts.store.append_after = append_after  # type: ignore[method-assign]
            case = (first, before)
            assert arrived == 2, case
            current, held_records = await alerts.store.checkin(client), await alerts.store.client_records(client)
            for doc in (current, held_records.checkin):
                assert doc is not None and doc["session_id"] == f"{client}-s2", case
                assert doc["backup_phone"] == "+14155550101", (case, doc["backup_phone"])
            await checkin(client, 3, "")
            current = await alerts.store.checkin(client)
            assert current is not None and current["session_id"] == f"{client}-s3", case
            assert current["backup_phone"] == "+14155550101", (case, current["backup_phone"])
            alert_id = await core.on_crisis_signal(
                trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC)
            )
            alert = await alerts.store.alert(alert_id)
            assert alert is not None and alert["context"]["callback_phone"] == "+14155550101", case

        for first, before in itertools.product(("older", "newer"), ("+14155550100", "")):
            await race(first, before)


async def test_a_check_in_arriving_late_gives_its_number_when_it_was_given_latest(settings, tmp_path) -> None:
    """A check-in delivered after a newer one that had no number (check-ins of different sessions
    come on different partitions) is history, but its number is the one the client gave most
    recently, by check-in time: the current check-in (still the newer) has it from then on, and an
    open alert's later rungs call it. Until late on 2026-12-07 the number was not taken up: the current
    check-in kept the older number it had, and so did every rung. A late check-in whose number was
    given before the current one's keeps nothing of it, and a redelivery changes nothing."""
    async with alert_service(settings, tmp_path, "latearrival") as alerts:
        core = crisis_core(alerts)
        client, t0 = uid("la"), datetime.now(UTC) - timedelta(minutes=30)

        async def checkin(n: int, backup_phone: str, event_id: str = "") -> None:
            await numbered_checkin(core, client, n, backup_phone, t0, event_id)

        async def log_size() -> int:
            return await alerts.store.per_client.count_documents({"client_id": client, "kind": CHECKINS})

        async def number_now() -> tuple[str, str]:
            current, held = await alerts.store.checkin(client), await alerts.store.client_records(client)
            assert current is not None and held.checkin is not None
            assert current["session_id"] == held.checkin["session_id"] == f"{client}-s3"  # still the newest
            assert current["backup_phone"] == held.checkin["backup_phone"]
            return current["backup_phone"], current["location"]["city"]

        await checkin(0, "+14155550100")
        await checkin(3, "")  # the newest check-in, without a number: it keeps s0's
        alert_id = await core.on_crisis_signal(trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC))
        alert = await alerts.store.alert(alert_id)
        assert alert is not None and alert["context"]["callback_phone"] == "+14155550100"

        await checkin(1, "+14155550101", "late")  # delivered after s3, given after s0's number
        assert await number_now() == ("+14155550101", "city-3")
        size = await log_size()
        await checkin(1, "+14155550101", "late")  # a redelivery
        await checkin(2, "")  # late, without a number
        await checkin(-1, "+14155550199")  # late, its number given before s1's
        assert await number_now() == ("+14155550101", "city-3")
        assert await log_size() == size

        drop_id = uid("drop")
        await alerts.escalate_now(alert_id, drop_id, "DISCONNECTED_AGAIN", datetime.now(UTC))
        _, records, _ = await alerts.current(alert_id)
        (rung,) = [r for r in records if r.get("trigger_id") == drop_id]
        assert rung["dispatched"]["callback_phone"] == "+14155550101", rung["dispatched"]
        assert rung["dispatched"]["location"]["city"] == "city-3", rung["dispatched"]
        assert {t["callback_phone"] for t in rung["tasks"] if t["kind"] == "CALLBACK"} == {"+14155550101"}

        await checkin(4, "")  # a newer check-in without a number keeps it in turn
        current = await alerts.store.checkin(client)
        assert current is not None and (current["session_id"], current["backup_phone"]) == (
            f"{client}-s4",
            "+14155550101",
        )


async def test_an_escalation_takes_the_number_a_check_in_applied_at_once_gave_after_the_alert_opened(
    settings, tmp_path
) -> None:
    """Two check-ins applied at once, the older with a number and the newer without: the newer is
    stored first, an alert opens from it (the number it kept, that of the check-in both read), and
    the older is stored after. The current check-in is still the newer, by its time, but its number
    is now the older's (`store.with_latest_number`): a later escalation calls that one. Until
    2026-12-07 the escalation kept the number the alert opened with, the check-in being no later by
    time, while the crisis card and a new alert had the newer number."""
    async with alert_service(settings, tmp_path, "latenumber") as alerts:
        core = crisis_core(alerts)
        append_after = alerts.store.append_after
        client, t0 = uid("ln"), datetime.now(UTC) - timedelta(minutes=30)

        async def checkin(n: int, backup_phone: str) -> None:
            await numbered_checkin(core, client, n, backup_phone, t0)

        await checkin(0, "+14155550100")  # the current check-in both read
        arrived, both_read, opened = 0, asyncio.Event(), asyncio.Event()
        alert_id = ""

        async def held(kind: str, client_id: str, seq: int, make: Any) -> Document:
            """Both check-ins reach here after their reads; the newer is appended, the alert opens,
            then the older is appended."""
            nonlocal arrived, alert_id
            arrived += 1
            if arrived == 2:
                both_read.set()
            await both_read.wait()
            task = asyncio.current_task()
            if task is not None and task.get_name() == "older":
                await opened.wait()
                return await append_after(kind, client_id, seq, make)
            doc = await append_after(kind, client_id, seq, make)
            alert_id = await core.on_crisis_signal(
                trigger_id=uid("s"), client_id=client, value=2, now=datetime.now(UTC)
            )
            opened.set()
            return doc

        alerts.store.append_after = held  # type: ignore[method-assign]
        try:
            await asyncio.wait_for(
                asyncio.gather(
                    asyncio.create_task(checkin(1, "+14155550101"), name="older"),
                    asyncio.create_task(checkin(2, ""), name="newer"),
                ),
                DEADLINE_S,
            )
        finally:
            alerts.store.append_after = append_after  # type: ignore[method-assign]
        alert = await alerts.store.alert(alert_id)
        assert alert is not None and alert["context"]["callback_phone"] == "+14155550100"
        current = await alerts.store.checkin(client)
        assert current is not None and current["session_id"] == f"{client}-s2"
        assert current["backup_phone"] == "+14155550101"

        drop_id = uid("drop")
        await alerts.escalate_now(alert_id, drop_id, "DISCONNECTED_AGAIN", datetime.now(UTC))
        _, records, _ = await alerts.current(alert_id)
        (rung,) = [r for r in records if r.get("trigger_id") == drop_id]
        assert rung["dispatched"]["callback_phone"] == "+14155550101", rung["dispatched"]
        phones = {t["callback_phone"] for t in rung["tasks"] if t["kind"] == "CALLBACK"}
        assert phones == {"+14155550101"}, rung["tasks"]


async def refused(call: Awaitable[object]) -> tuple[grpc.StatusCode, str | None]:
    """The status code and ErrorInfo reason of a call expected to fail."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), error_reason(rpc_status.from_call(err.value))


NOT_ON_CARE_TEAM = (grpc.StatusCode.PERMISSION_DENIED, "NOT_ON_CARE_TEAM")


def client_scoped_calls(
    api: crisis_pb2_grpc.CrisisServiceStub, client: str
) -> dict[str, Callable[[list[tuple[str, str]]], Awaitable[object]]]:
    """Every method that reads or changes one client's crisis data, as a call with the caller's
    metadata; in an order in which all of them succeed on a client with safety plan version 1."""
    return {
        "GetCrisisCard": lambda m: api.GetCrisisCard(
            crisis_pb2.GetCrisisCardRequest(client_id=client), metadata=m, timeout=DEADLINE_S
        ),
        "GetRiskState": lambda m: api.GetRiskState(
            crisis_pb2.GetRiskStateRequest(client_id=client), metadata=m, timeout=DEADLINE_S
        ),
        "GetSafetyPlan": lambda m: api.GetSafetyPlan(
            crisis_pb2.GetSafetyPlanRequest(client_id=client), metadata=m, timeout=DEADLINE_S
        ),
        "ListSafetyPlanVersions": lambda m: api.ListSafetyPlanVersions(
            crisis_pb2.ListSafetyPlanVersionsRequest(client_id=client), metadata=m, timeout=DEADLINE_S
        ),
        "SetRiskLevel": lambda m: api.SetRiskLevel(
            crisis_pb2.SetRiskLevelRequest(client_id=client, level=ev.RISK_LEVEL_MODERATE, source="clinician-flag"),
            metadata=m,
            timeout=DEADLINE_S,
        ),
        "AssessCssrs": lambda m: api.AssessCssrs(high_risk_request(client), metadata=m, timeout=DEADLINE_S),
        "SaveSafetyPlan": lambda m: api.SaveSafetyPlan(
            crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client, warning_signs=["pacing"]), expected_version=1),
            metadata=m,
            timeout=DEADLINE_S,
        ),
        "DeleteSafetyPlan": lambda m: api.DeleteSafetyPlan(
            crisis_pb2.DeleteSafetyPlanRequest(client_id=client, expected_version=2), metadata=m, timeout=DEADLINE_S
        ),
    }


async def a_client_with_a_plan_and_a_risk(api: crisis_pb2_grpc.CrisisServiceStub, settings: Settings) -> str:
    """A new client with safety plan version 1 and a HIGH risk, both set by a supervisor."""
    client, boss = uid("ct"), md(settings, "supervisor")
    await api.SaveSafetyPlan(
        crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client)), metadata=boss, timeout=DEADLINE_S
    )
    await api.AssessCssrs(high_risk_request(client), metadata=boss, timeout=DEADLINE_S)
    return client


async def read_by(settings: Settings, principal: str) -> list[Document]:
    """The PHI reads recorded for `principal`."""
    mongo, db = crisis_db(settings)
    try:
        return await db.phi_access_audit.find({"principal": principal}).to_list()
    finally:
        await mongo.close()


async def test_a_clinician_reaches_a_clients_crisis_data_only_on_their_care_team(crisis, io, settings) -> None:
    """Minimum necessary: a clinician reads and changes a client's crisis card, risk and safety plans
    only when they treat the client: the clinician or a treating facilitator of a session the client
    was booked on. Before that every such call is PERMISSION_DENIED NOT_ON_CARE_TEAM, and nothing is
    read, recorded as read or changed."""
    producer, _ = io
    session, clinician, co = uid("session"), uid("clin"), uid("clin")
    channel, api = stub(crisis.target)
    async with channel:
        client = await a_client_with_a_plan_and_a_risk(api, settings)
        calls = client_scoped_calls(api, client)
        mongo, db = crisis_db(settings)
        try:
            held = await db.client_records.find({"client_id": client}).sort("_id", 1).to_list()
            for name, call in calls.items():
                assert await refused(call(md(settings, "clinician", clinician))) == NOT_ON_CARE_TEAM, name
            assert await db.client_records.find({"client_id": client}).sort("_id", 1).to_list() == held
        finally:
            await mongo.close()
        assert await read_by(settings, clinician) == []

        booked = await producer.scheduled(
            session,
            [uid("other"), client],
            clinician,
            facilitators=[scheduling_pb2.SessionFacilitator(clinician_id=co, role="co_facilitator")],
        )
        await applied(settings, "sessions", booked.id)
        for call in calls.values():
            await call(md(settings, "clinician", clinician))  # each succeeds now
        card = await api.GetCrisisCard(  # a co-facilitator treats the session's clients too
            crisis_pb2.GetCrisisCardRequest(client_id=client),
            metadata=md(settings, "clinician", co),
            timeout=DEADLINE_S,
        )
    assert card.client_id == client and card.plan.version == 0 and "NO_SAFETY_PLAN" in card.problems  # retired
    assert {a["action"] for a in await read_by(settings, clinician)} == {
        "GetCrisisCard",
        "GetRiskState",
        "GetSafetyPlan",
        "ListSafetyPlanVersions",
        "DeleteSafetyPlan",
    }


async def test_an_on_call_clinician_paged_for_an_active_alert_reaches_the_client_without_a_session(
    crisis, settings
) -> None:
    """A clinician an active alert names (session clinician, on-call rotation, raiser) opens the
    client's crisis card and safety plan without a session with them; once the alert is resolved
    they no longer do, and still read that alert (they were on it). A clinician neither on the alert
    nor on the client's care team reads neither the alert nor the card."""
    on_call = md(settings, "clinician", "oncall-test")  # the ladder policy's on-call rotation (policy_file)
    stranger_id = uid("clin")
    stranger, boss = md(settings, "clinician", stranger_id), md(settings, "supervisor")
    channel, api = stub(crisis.target)
    async with channel:
        client = await a_client_with_a_plan_and_a_risk(api, settings)
        calls = client_scoped_calls(api, client)
        assert await refused(calls["GetCrisisCard"](on_call)) == NOT_ON_CARE_TEAM
        raised = await api.RaiseAlert(
            crisis_pb2.RaiseAlertRequest(client_id=client, request_id=uid("raise")), metadata=boss, timeout=DEADLINE_S
        )
        assert "oncall-test" in raised.assignees
        card = await calls["GetCrisisCard"](on_call)
        assert isinstance(card, crisis_pb2.CrisisCard) and card.active_alert.alert_id == raised.alert_id
        plan = await calls["GetSafetyPlan"](on_call)
        assert isinstance(plan, crisis_pb2.SafetyPlan) and plan.version == 1
        get_alert = crisis_pb2.GetAlertRequest(alert_id=raised.alert_id)
        assert (await api.GetAlert(get_alert, metadata=on_call, timeout=DEADLINE_S)).alert_id == raised.alert_id
        for name in ("GetCrisisCard", "GetSafetyPlan"):
            assert await refused(calls[name](stranger)) == NOT_ON_CARE_TEAM, name
        assert await refused(api.GetAlert(get_alert, metadata=stranger, timeout=DEADLINE_S)) == NOT_ON_CARE_TEAM

        await api.ResolveAlert(
            crisis_pb2.ResolveAlertRequest(alert_id=raised.alert_id, resolution="FALSE_ALARM"),
            metadata=boss,
            timeout=DEADLINE_S,
        )
        assert await refused(calls["GetCrisisCard"](on_call)) == NOT_ON_CARE_TEAM
        resolved = await api.GetAlert(get_alert, metadata=on_call, timeout=DEADLINE_S)
    assert resolved.status == ev.ALERT_STATUS_RESOLVED
    assert await read_by(settings, stranger_id) == []


async def test_a_cancelled_session_no_longer_counts_and_a_seat_taken_after_booking_does(crisis, io, settings) -> None:
    """The care team is the scheduler's: the clinicians of the sessions a client is booked on or
    seated in (a seat taken after the booking, SessionRosterChanged), cancelled sessions left out."""
    producer, _ = io
    booked_client, seated_client, lead = uid("ct"), uid("ct"), uid("clin")
    first, second = uid("session"), uid("session")
    mine = md(settings, "clinician", lead)
    channel, api = stub(crisis.target)

    def card(client: str) -> Awaitable[crisis_pb2.CrisisCard]:
        return api.GetCrisisCard(crisis_pb2.GetCrisisCardRequest(client_id=client), metadata=mine, timeout=DEADLINE_S)

    async def cancel(session: str) -> None:
        cancelled = scheduling_pb2.SessionCancelled(
            session_id=session, reason="test", cancelled_at=to_timestamp(datetime.now(UTC))
        )
        await applied(
            settings, "sessions", (await producer.send(topics.SESSIONS_IN, session, cancelled, "/iop/scheduler")).id
        )

    async with channel:
        await producer.scheduled(first, [booked_client], lead)
        await producer.scheduled(second, [booked_client], lead)
        roster = scheduling_pb2.SessionRosterChanged(
            session_id=second, client_ids=[booked_client, seated_client], added=[seated_client], capacity=8
        )
        await applied(
            settings, "sessions", (await producer.send(topics.SESSIONS_IN, second, roster, "/iop/scheduler")).id
        )
        for client in (booked_client, seated_client):
            assert (await card(client)).client_id == client

        await cancel(first)  # the second session still makes the lead the booked client's clinician
        assert (await card(booked_client)).client_id == booked_client
        await cancel(second)
        for client in (booked_client, seated_client):
            assert await refused(card(client)) == NOT_ON_CARE_TEAM, client


async def test_sessions_stored_before_the_care_team_was_kept_are_linked_once(settings, tmp_path) -> None:
    """The care team of the sessions stored before the sessions consumer kept it (2026-12-08) is
    linked at start, once per database: their clinicians treat their clients, a cancelled session's
    do not."""
    async with alert_service(settings, tmp_path, "backfill") as alerts:
        store = alerts.store
        client, clinician, only_cancelled = uid("bf"), uid("clin"), uid("clin")
        await store.sessions.insert_many(
            [
                {"_id": uid("s"), "clinician_id": clinician, "client_ids": [client], "status": "ended"},
                {"_id": uid("s"), "clinician_id": only_cancelled, "client_ids": [client], "status": "cancelled"},
            ]
        )
        assert not await store.treats(clinician, client)
        status, counts = await link_stored_sessions(store.db, "owner-1", pause_s=0)
        assert (status, counts) == (LinkStatus.COMPLETED, LinkCounts(scanned=2, linked=1, unlinked=0))
        assert await store.treats(clinician, client) and not await store.treats(only_cancelled, client)
        await store.sessions.insert_one({"_id": uid("s"), "clinician_id": only_cancelled, "client_ids": [client]})
        status, counts = await link_stored_sessions(store.db, "owner-2", pause_s=0)
        assert (status, counts) == (LinkStatus.ALREADY_COMPLETED, LinkCounts())  # what comes later, the consumer links
        assert not await store.treats(only_cancelled, client)


async def stored_sessions(store: CrisisStore, n: int, status: str = "ended") -> list[tuple[str, str, str]]:
    """`n` sessions stored without their care team, one client and one clinician each: (session,
    client, clinician), by session id."""
    made = sorted((uid("s"), uid("bf"), uid("clin")) for _ in range(n))
    await store.sessions.insert_many(
        [{"_id": s, "clinician_id": clin, "client_ids": [c], "status": status} for s, c, clin in made]
    )
    return made


async def test_the_link_of_stored_sessions_resumes_where_it_stopped_and_runs_in_one_process(
    settings, tmp_path, monkeypatch
) -> None:
    """The start-up link of stored sessions keeps its progress: a run stopped midway (a restart, a
    deploy, a store error) is resumed after the last chunk it recorded, not begun again from the
    first session, and while a process holds it (its lease, renewed as it runs) another process
    starting does not scan and link too. Until 2026-12-08 (twelfth session) every instance ran it
    whole at every start until one finished, one session at a time, with no record of progress."""
    async with alert_service(settings, tmp_path, "resume") as alerts:
        store = alerts.store
        made = await stored_sessions(store, 6)
        chunks = 0
        link = CrisisStore.link_stored_sessions

        async def failing_on_the_second_chunk(self: CrisisStore, ids: list[str]) -> tuple[int, int]:
            nonlocal chunks
            chunks += 1
            if chunks == 2:
                raise ConnectionError("the process stops here")
            return await link(self, ids)

        monkeypatch.setattr(CrisisStore, "link_stored_sessions", failing_on_the_second_chunk)
        with pytest.raises(ConnectionError):
            await link_stored_sessions(store.db, "stopped", chunk=2, pause_s=0)
        monkeypatch.undo()
        stopped = await store.db[MIGRATIONS_COLLECTION].find_one({"_id": LINK_MIGRATION_ID})
        assert stopped is not None
        assert (stopped["after"], stopped["scanned"], stopped["completed_at"]) == (made[1][0], 2, None)
        assert [await store.treats(clin, c) for _, c, clin in made] == [True, True, False, False, False, False]
        # the stopped process holds it until its lease runs out: a replica starting meanwhile waits
        assert await link_stored_sessions(store.db, "replica", pause_s=0) == (
            LinkStatus.RUNNING_ELSEWHERE,
            LinkCounts(),
        )
        past = datetime.now(UTC) - timedelta(seconds=1)
        await store.db[MIGRATIONS_COLLECTION].update_one({"_id": LINK_MIGRATION_ID}, {"$set": {"lease_until": past}})

        status, counts = await link_stored_sessions(store.db, "replica", chunk=2, pause_s=0)

        assert (status, counts) == (LinkStatus.COMPLETED, LinkCounts(scanned=4, linked=4))  # only what was left
        assert all([await store.treats(clin, c) for _, c, clin in made])
        done = await store.db[MIGRATIONS_COLLECTION].find_one({"_id": LINK_MIGRATION_ID})
        assert done is not None
        assert (done["scanned"], done["linked"], done["owner"]) == (6, 6, "replica")
        assert done["completed_at"] is not None


async def test_a_new_pass_links_what_an_older_replica_applied_and_unlinks_what_it_cancelled(settings, tmp_path) -> None:
    """During a rolling deploy from a version before the care team, an older replica applies some
    sessions' events without it: a booking not linked, a cancellation whose links stay. A new pass
    (`--again`) links the first and removes the second's links, a pair another session links kept."""
    async with alert_service(settings, tmp_path, "again") as alerts:
        store = alerts.store
        assert (await link_stored_sessions(store.db, "first", pause_s=0))[0] is LinkStatus.COMPLETED
        (_, client, clinician), *_ = await stored_sessions(store, 1)  # applied by an older replica
        cancelled, other = uid("s"), uid("s")
        for session in (cancelled, other):
            await store.sessions.insert_one({"_id": session, "clinician_id": clinician, "client_ids": [client]})
            await store.link_care_team(session, [client], [clinician])  # linked by this version
        await store.sessions.update_one({"_id": cancelled}, {"$set": {"status": "cancelled"}})  # by an older one
        lone, lone_clinician = uid("bf"), uid("clin")
        lonely = uid("s")
        await store.sessions.insert_one(
            {"_id": lonely, "clinician_id": lone_clinician, "client_ids": [lone], "status": "cancelled"}
        )
        await store.link_care_team(lonely, [lone], [lone_clinician])

        status, counts = await link_stored_sessions(store.db, "again", again=True, pause_s=0)

        assert status is LinkStatus.COMPLETED and (counts.linked, counts.unlinked) == (2, 2), counts
        assert await store.treats(clinician, client)  # the booking, and `other` still links the pair
        assert not await store.treats(lone_clinician, lone)  # only a cancelled session linked it
        assert await store.db.care_team_links.count_documents({"session_id": {"$in": [cancelled, lonely]}}) == 0


async def test_the_clinician_of_a_drop_on_an_active_alert_reaches_the_client_before_crisis_knows_the_session(
    crisis, io, settings
) -> None:
    """A client with an active alert (here raised by a supervisor: its assignees are the raiser and
    the on-call rotation) drops off a session booked seconds ago, whose SessionScheduled the crisis
    service has not applied yet. The drop escalates the alert, and its session's clinician, who saw
    the client drop, opens the crisis card and the plan: the drop names them with the client and
    the session (as a drop that opens an alert makes them its assignee). Until 2026-12-08 they were
    refused NOT_ON_CARE_TEAM until the sessions consumer caught up, and RaiseAlert, the break-glass
    path, answers ALERT_ALREADY_ACTIVE while an alert is active."""
    producer, _ = io
    session, clinician = uid("session"), uid("clin")
    mine, boss = md(settings, "clinician", clinician), md(settings, "supervisor")
    channel, api = stub(crisis.target)
    async with channel:
        client = await a_client_with_a_plan_and_a_risk(api, settings)
        calls = client_scoped_calls(api, client)
        raised = await api.RaiseAlert(
            crisis_pb2.RaiseAlertRequest(client_id=client, request_id=uid("raise")), metadata=boss, timeout=DEADLINE_S
        )
        assert clinician not in raised.assignees
        assert await refused(calls["GetCrisisCard"](mine)) == NOT_ON_CARE_TEAM
        dropped = await producer.drop(session, client, clinician)  # no SessionScheduled for it yet
        await applied(settings, "attendance", dropped.id)
        escalated = await api.GetAlert(
            crisis_pb2.GetAlertRequest(alert_id=raised.alert_id), metadata=boss, timeout=DEADLINE_S
        )
        assert [s.trigger for s in escalated.steps if s.fired_at.seconds][1:] == ["DISCONNECTED_AGAIN"], escalated
        card = await calls["GetCrisisCard"](mine)
        assert isinstance(card, crisis_pb2.CrisisCard) and card.active_alert.alert_id == raised.alert_id
        plan = await calls["GetSafetyPlan"](mine)
        assert isinstance(plan, crisis_pb2.SafetyPlan) and plan.version == 1
        # the session's own events link the same, and its cancellation takes it away again
        await producer.scheduled(session, [client], clinician)
        cancelled = scheduling_pb2.SessionCancelled(
            session_id=session, reason="test", cancelled_at=to_timestamp(datetime.now(UTC))
        )
        await applied(
            settings, "sessions", (await producer.send(topics.SESSIONS_IN, session, cancelled, "/iop/scheduler")).id
        )
        assert await refused(calls["GetCrisisCard"](mine)) == NOT_ON_CARE_TEAM


async def test_a_raise_alert_request_id_replayed_by_another_clinician_gets_nothing_of_the_alert(
    crisis, io, settings
) -> None:
    """RaiseAlert's request_id makes a retry get its alert. The same id sent by a clinician who is
    not on the alert (not its raiser, nor an assignee) and does not treat the client is no retry of
    theirs: it would hand them the whole alert (where the client is, their callback number) without
    raising anything (no page, no AlertOpened) and without making them an assignee. It is
    ALREADY_EXISTS REQUEST_ID_REUSED, nothing of the alert in the answer and no read recorded, as a
    reuse for another client is. The raiser's own retry, and a supervisor's, still get the alert."""
    producer, _ = io
    session, raiser, stranger_id = uid("session"), uid("clin"), uid("clin")
    stranger = md(settings, "clinician", stranger_id)
    channel, api = stub(crisis.target)
    async with channel:
        client = await a_client_with_a_plan_and_a_risk(api, settings)
        await producer.session_live(session, client, raiser)  # checked in: the alert has a location
        await card_of(api, settings, client, until_session=session)
        request = crisis_pb2.RaiseAlertRequest(client_id=client, session_id=session, request_id=uid("raise"))
        raised = await api.RaiseAlert(request, metadata=md(settings, "clinician", raiser), timeout=DEADLINE_S)
        assert raised.steps[0].callback_phone and raised.steps[0].location.county_fips, raised

        assert await refused(api.RaiseAlert(request, metadata=stranger, timeout=DEADLINE_S)) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "REQUEST_ID_REUSED",
        )
        for me in (md(settings, "clinician", raiser), md(settings, "supervisor")):
            again = await api.RaiseAlert(request, metadata=me, timeout=DEADLINE_S)
            assert again.alert_id == raised.alert_id
    assert await read_by(settings, stranger_id) == []
