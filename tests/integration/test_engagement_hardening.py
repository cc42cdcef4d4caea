"""The engagement process against the real broker and store, on inputs a review found mishandled:
reused or odd submission ids, another clinician's risk factors, drops of a session running past
its scheduled end, event times in the future, out-of-range and oversized webhooks, check-in days."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.message import Message
from grpc_status import rpc_status

from iop.engagement.v1 import engagement_pb2 as pb
from iop.engagement.v1 import engagement_pb2_grpc
from iop.events.v1 import engagement_pb2 as ev
from iop.events.v1 import scheduling_pb2
from services.engagement.config import DEV_WEBHOOK_SECRET
from services.engagement.domain import sign
from services.engagement.store import CLINICIAN_SNAPSHOTS
from services.plumbing.envelope import CloudEvent
from services.plumbing.errors import bad_request_violations, error_reason
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_engagement_support import (
    HTTP_PORT,
    SESSIONS_TOPIC,
    SIGNALS_TOPIC,
    Tap,
    database,
    engagement_service,
    post_webhook,
    producer,
    publish,
    scheduled,
    wait_until,
    zoom_body,
)
from tests.support import ServiceProcess, auth_metadata, until_stopped

pytestmark = pytest.mark.integration

ATTENDANCE = "iop.engagement.attendance.v1"
OUTCOMES = "iop.engagement.outcomes.v1"
FHIR = "iop.engagement.fhir.v1"


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    with until_stopped(engagement_service().start()) as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(service: ServiceProcess) -> Iterator[engagement_pb2_grpc.EngagementServiceStub]:
    with grpc.insecure_channel(service.target) as channel:
        yield engagement_pb2_grpc.EngagementServiceStub(channel)


# --- GetRiskFactors ---------------------------------------------------------------------------------


def test_a_clinician_reads_only_their_own_risk_factors(stub, settings: Settings) -> None:
    me, other = f"clin-{uuid.uuid4().hex[:6]}", f"clin-{uuid.uuid4().hex[:6]}"
    db = database(settings)
    for clinician in (me, other):
        db[CLINICIAN_SNAPSHOTS].insert_one(
            {
                "_id": clinician,
                "load": {},
                "risk": {"value": 0.9, "elevated": True, "factors": []},
                "latest": datetime.now(UTC).isoformat(),
            }
        )
    db.client.close()
    as_me = auth_metadata(settings, "clinician", me)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetClinicianEngagement(pb.GetClinicianEngagementRequest(clinician_id=other), metadata=as_me)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # the rule GetRiskFactors must follow too
    with pytest.raises(grpc.RpcError) as err:
        stub.GetRiskFactors(pb.GetRiskFactorsRequest(clinician_id=other), metadata=as_me)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(err.value)
    assert status is not None and error_reason(status) == "NOT_OWN_RECORD"
    assert stub.GetRiskFactors(pb.GetRiskFactorsRequest(clinician_id=me), metadata=as_me).subject_id == me
    supervisor = auth_metadata(settings, "supervisor")
    assert stub.GetRiskFactors(pb.GetRiskFactorsRequest(clinician_id=other), metadata=supervisor).score.elevated


# --- SubmitOutcome: a submission id used again ------------------------------------------------------


def phq9(submission_id: str, client_id: str, items: list[int]) -> pb.SubmitOutcomeRequest:
    return pb.SubmitOutcomeRequest(
        submission_id=submission_id, client_id=client_id, instrument=pb.INSTRUMENT_PHQ9, item_scores=items
    )


def crisis_signals(tap: Tap, client_id: str, wait_s: float = 1.0) -> list[ev.CrisisSignal]:
    tap.records(wait_s)
    return [p for _, p in tap._matching(lambda ce, p: isinstance(p, ev.CrisisSignal) and p.client_id == client_id)]


def test_a_submission_id_used_again_is_a_retry_only_with_the_same_answers(stub, settings: Settings) -> None:
    submission = f"s-{uuid.uuid4().hex[:8]}"
    a, b = f"ca-{uuid.uuid4().hex[:6]}", f"cb-{uuid.uuid4().hex[:6]}"
    outcomes = Tap(settings, OUTCOMES)
    a_items = [3, 3, 3, 3, 3, 3, 3, 3, 0]
    first = stub.SubmitOutcome(phq9(submission, a, a_items), metadata=auth_metadata(settings, "client", a))
    assert first.client_id == a and not first.crisis_signal
    # Client B's own PHQ-9 under the same id: B's record, not A's; and B's crisis signal goes out
    b_record = stub.SubmitOutcome(
        phq9(submission, b, [0, 0, 0, 0, 0, 0, 0, 0, 3]), metadata=auth_metadata(settings, "client", b)
    )
    assert b_record.client_id == b and list(b_record.item_scores) == [0] * 8 + [3]
    assert b_record.total_score == 3 and b_record.crisis_signal and b_record.submission_id == submission
    assert outcomes.poll(lambda ce, p: isinstance(p, ev.CrisisSignal) and p.client_id == b, timeout_s=30)
    # A's id again with other answers (item 9 = 3): not answered with the stored record; refused
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitOutcome(phq9(submission, a, [0] * 8 + [3]), metadata=auth_metadata(settings, "client", a))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    status = rpc_status.from_call(err.value)
    assert status is not None and error_reason(status) == "SUBMISSION_ID_REUSED"
    assert a not in err.value.details() and "24" not in err.value.details()  # nothing of the stored record
    # the same answers again (a retry, here by a clinician): the stored record, nothing more published
    again = stub.SubmitOutcome(phq9(submission, a, a_items), metadata=auth_metadata(settings, "clinician"))
    assert (again.client_id, list(again.item_scores), again.total_score) == (a, a_items, 24)
    assert crisis_signals(outcomes, a) == []
    assert len(crisis_signals(outcomes, b, 0)) == 1
    histories = {
        c: stub.GetOutcomeHistory(
            pb.GetOutcomeHistoryRequest(client_id=c), metadata=auth_metadata(settings, "client", c)
        )
        for c in (a, b)
    }
    assert [(r.client_id, r.total_score) for r in histories[a].records] == [(a, 24)]
    assert [(r.client_id, r.total_score) for r in histories[b].records] == [(b, 3)]
    outcomes.close()


def test_a_submission_id_a_fhir_id_may_not_hold_is_stored_with_its_crisis_signal(stub, settings: Settings) -> None:
    """`_` and `:` are not allowed in a FHIR id, which the submission id used to be: the call failed
    with UNKNOWN (pydantic's text, with the id, in its details), nothing was stored, and the crisis
    signal was lost. The Observation's id is now the outcome's key; the submission id its identifier."""
    outcomes, fhir = Tap(settings, OUTCOMES), Tap(settings, FHIR)
    for submission in (f"sub_{uuid.uuid4().hex[:8]}", f"app:{uuid.uuid4().hex[:8]}"):
        client = f"c-{uuid.uuid4().hex[:6]}"
        record = stub.SubmitOutcome(
            phq9(submission, client, [1] * 8 + [3]), metadata=auth_metadata(settings, "clinician")
        )
        assert record.submission_id == submission and record.crisis_signal

        def its_crisis_signal(ce: CloudEvent, p: Message, c: str = client) -> bool:
            return isinstance(p, ev.CrisisSignal) and p.client_id == c

        crisis = outcomes.poll(its_crisis_signal, timeout_s=30)
        assert crisis is not None and crisis[1].submission_id == submission

        def published(c: str = client) -> dict | None:
            return next((json.loads(r.value) for r in fhir.records(0.3) if r.key == c.encode()), None)

        obs = wait_until(published, timeout_s=30)
        assert obs is not None and obs["identifier"] == [
            {"system": "urn:iop:outcome-submission-id", "value": submission}
        ]
        assert len(obs["id"]) <= 64 and all(ch.isalnum() or ch in "-." for ch in obs["id"])
    outcomes.close()
    fhir.close()


@pytest.mark.parametrize("submission", ["s 1", "x" * 129, "ünï", "-s", "s/1"])
def test_a_submission_id_outside_the_id_format_is_invalid_argument(stub, settings: Settings, submission: str) -> None:
    client = f"c-{uuid.uuid4().hex[:6]}"
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitOutcome(phq9(submission, client, [1] * 8 + [3]), metadata=auth_metadata(settings, "clinician"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert status is not None and [f for f, _ in bad_request_violations(status)] == ["submission_id"]
    assert submission not in err.value.details()
    history = stub.GetOutcomeHistory(
        pb.GetOutcomeHistoryRequest(client_id=client), metadata=auth_metadata(settings, "clinician")
    )
    assert not history.records


# --- ConnectionDropped after the scheduled end ------------------------------------------------------


def open_session(
    settings: Settings,
    stub,
    clients: list[str],
    starts_at: datetime,
    minutes: int = 60,
    started_at: datetime | None = None,
) -> str:
    session_id = f"s-{uuid.uuid4().hex[:10]}"
    kp = producer(settings)
    publish(kp, SESSIONS_TOPIC, session_id, scheduled(session_id, "clin-h", clients, starts_at, minutes))
    if started_at is not None:
        started = scheduling_pb2.SessionStarted(session_id=session_id, started_at=to_timestamp(started_at))
        publish(kp, SESSIONS_TOPIC, session_id, started)
    kp.close()

    def ready() -> bool:
        try:
            reply = stub.GetSessionAttendance(
                pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
            )
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            return False
        return started_at is None or reply.HasField("started_at")

    assert wait_until(ready), "the ledger never opened the session"
    return session_id


def test_a_drop_after_the_scheduled_end_of_a_session_still_running_is_reported(
    service, stub, settings: Settings
) -> None:
    """Scheduled 63 minutes ago for 60 minutes, started 8 minutes late, not ended: the client's
    connection drops now, 3 minutes past the scheduled end. It was not reported."""
    now = datetime.now(UTC)
    session_id = open_session(
        settings, stub, ["c-1"], now - timedelta(minutes=63), started_at=now - timedelta(minutes=55)
    )
    drops = Tap(settings, ATTENDANCE)
    joined = zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=54))
    assert post_webhook(joined).is_success
    left = post_webhook(zoom_body("meeting.participant_left", session_id, "c-1", now, leave_reason="Connection lost"))
    assert left.status_code == 200, left.text
    found = drops.poll(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id, timeout_s=30)
    assert found is not None, "no ConnectionDropped for a drop in a session running past its scheduled end"
    assert found[1].client_id == "c-1"
    drops.close()


# --- webhooks: values out of range, odd headers -----------------------------------------------------


def webhook_url() -> str:
    return f"http://127.0.0.1:{HTTP_PORT}/webhooks/video"


def qos_at(session_id: str, event_ts: int) -> bytes:
    participant = {"customer_key": "c-1", "connection_quality": 0}
    return json.dumps(
        {
            "event": "meeting.participant_qos",
            "event_ts": event_ts,
            "payload": {"object": {"id": session_id, "participant": participant}},
        }
    ).encode()


def assert_only_the_sentinel_was_published(signals: Tap, session_id: str) -> None:
    """A good webhook for the session goes through last, and it is the only record of the session."""
    accepted = post_webhook(zoom_body("meeting.chat_message_sent", session_id, "c-1"))
    assert accepted.status_code == 200, accepted.text
    assert signals.poll(lambda ce, p: p.session_id == session_id, timeout_s=30) is not None
    assert len([r for r in signals.records(1.0) if r.key == session_id.encode()]) == 1


def test_out_of_range_values_and_odd_headers_are_refused_not_errors(service, settings: Settings) -> None:
    session_id = f"s-odd-{uuid.uuid4().hex[:8]}"
    signals = Tap(settings, SIGNALS_TOPIC)
    for event_ts in (10**15, 10**20, 2**63):  # ValueError, OSError, ... in datetime.fromtimestamp: 500s
        reply = post_webhook(qos_at(session_id, event_ts))
        assert reply.status_code == 422, (event_ts, reply.status_code, reply.text)
        assert reply.json()["error"] == "MALFORMED_WEBHOOK"
    for payload in ([1], None, "x", {"plainToken": ""}):  # a list was an AttributeError: 500
        body = json.dumps({"event": "endpoint.url_validation", "payload": payload}).encode()
        reply = post_webhook(body)
        assert reply.status_code == 422, (payload, reply.status_code, reply.text)
    deep = b"[" * 20000 + b"]" * 20000  # deeper than the JSON decoder goes: RecursionError
    assert post_webhook(deep).status_code == 422
    # a non-ASCII signature: hmac.compare_digest raised TypeError (500)
    ts = str(int(time.time()))
    body = zoom_body("meeting.chat_message_sent", session_id, "c-1")
    for signature in ("v0=\xe9t\xe9".encode("latin-1"), "v0=\u2603".encode()):
        headers = {b"x-zm-request-timestamp": ts.encode(), b"x-zm-signature": signature}
        reply = httpx.post(webhook_url(), content=body, headers=headers)
        assert reply.status_code == 401 and reply.json()["error"] == "BAD_SIGNATURE", reply.text
    assert_only_the_sentinel_was_published(signals, session_id)
    signals.close()


# --- event times in the future ----------------------------------------------------------------------


def test_a_join_time_in_the_future_is_refused_and_does_not_silence_a_later_drop(
    service, stub, settings: Settings
) -> None:
    """A join stamped two days (or the year 9999) ahead was accepted; the real drop that followed
    then read as 'rejoined since' and raised no ConnectionDropped."""
    now = datetime.now(UTC)
    session_id = open_session(settings, stub, ["c-1"], now - timedelta(minutes=10))
    drops, signals = Tap(settings, ATTENDANCE), Tap(settings, SIGNALS_TOPIC)
    assert post_webhook(
        zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=9))
    ).is_success
    for ahead in (now + timedelta(days=2), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)):
        body = zoom_body("meeting.participant_joined", session_id, "c-1", now, join_time=ahead.isoformat())
        reply = post_webhook(body)
        assert reply.status_code == 422, reply.text
        assert reply.json()["detail"][0]["field"] == "payload.object.participant.join_time"
    reply = post_webhook(zoom_body("meeting.participant_video_on", session_id, "c-1", now + timedelta(days=2)))
    assert reply.status_code == 422 and reply.json()["detail"][0]["field"] == "event_ts"
    dropped = post_webhook(
        zoom_body("meeting.participant_left", session_id, "c-1", now, leave_reason="Connection lost")
    )
    assert dropped.status_code == 200, dropped.text
    found = drops.poll(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id, timeout_s=30)
    assert found is not None, "the drop was not reported"
    # published: the first join and the drop, none of the refused ones
    signals.records(1.0)
    kinds = sorted(p.kind for _, p in signals._matching(lambda ce, p: p.session_id == session_id))
    assert kinds == ["participant_joined", "participant_left"], kinds
    drops.close()
    signals.close()


def test_a_signal_with_an_event_time_far_after_its_receipt_is_dead_lettered_by_the_ledger(
    service, stub, settings: Settings
) -> None:
    """The consumer side: a VideoSignal from elsewhere than the webhook, stamped two days after it
    was received, is dead-lettered with its reason; the ledger does not record it."""
    now = datetime.now(UTC)
    session_id = open_session(settings, stub, ["c-1"], now - timedelta(minutes=10))
    dead_letters, drops = Tap(settings, "iop.engagement.deadletter.v1"), Tap(settings, ATTENDANCE)
    kp = producer(settings)

    def signal(kind: str, at: datetime, **fields: Any) -> ev.VideoSignal:
        return ev.VideoSignal(
            signal_id=uuid.uuid4().hex,
            session_id=session_id,
            participant_id="c-1",
            kind=kind,
            occurred_at=to_timestamp(at),
            received_at=to_timestamp(now),
            **fields,
        )

    publish(kp, SIGNALS_TOPIC, session_id, signal("participant_joined", now - timedelta(minutes=9)))
    publish(kp, SIGNALS_TOPIC, session_id, signal("participant_joined", now + timedelta(days=2)))
    publish(kp, SIGNALS_TOPIC, session_id, signal("participant_left", now, leave_reason="Connection lost"))
    kp.close()

    def mine() -> list:
        return [r for r in dead_letters.records(0.3) if r.key == session_id.encode()]

    records = wait_until(mine, timeout_s=30)
    assert records and len(records) == 1, records
    assert dict(records[0].headers)["dlq_error_message"].startswith(b"EVENT_TIME_IN_FUTURE")
    found = drops.poll(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id, timeout_s=30)
    assert found is not None, "the ledger did not report the drop"
    dead_letters.close()
    drops.close()


# --- webhook body size ------------------------------------------------------------------------------


def test_a_webhook_body_over_the_limit_is_413_and_nothing_is_published(service, settings: Settings) -> None:
    session_id = f"s-big-{uuid.uuid4().hex[:8]}"
    signals = Tap(settings, SIGNALS_TOPIC)
    body = json.loads(zoom_body("meeting.chat_message_sent", session_id, "c-1"))
    big = json.dumps({**body, "pad": "x" * 200_000}).encode()  # signed, well-formed, too large
    reply = post_webhook(big)
    assert reply.status_code == 413 and reply.json()["error"] == "BODY_TOO_LARGE", reply.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]

    ts = str(int(time.time()))
    headers = {"x-zm-request-timestamp": ts, "x-zm-signature": sign(DEV_WEBHOOK_SECRET, ts, big)}
    streamed = httpx.post(webhook_url(), content=chunks(), headers=headers, timeout=10)
    assert streamed.status_code == 413, streamed.text
    at_limit = json.dumps({**body, "pad": "x" * (65_536 - len(json.dumps({**body, "pad": ""})))}).encode()
    assert len(at_limit) == 65_536 and post_webhook(at_limit).status_code == 200
    signals.poll(lambda ce, p: p.session_id == session_id, timeout_s=30)
    assert len([r for r in signals.records(1.0) if r.key == session_id.encode()]) == 1  # the one at the limit
    signals.close()


# --- check-in days ----------------------------------------------------------------------------------


def test_check_in_days_must_be_dates_near_today(stub, settings: Settings) -> None:
    client = f"c-{uuid.uuid4().hex[:6]}"
    today = datetime.now(UTC).date()
    for day in ("9999-01-01", "2026-1-5", (today + timedelta(days=2)).isoformat(), "1900-01-01"):
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitCheckIn(
                pb.SubmitCheckInRequest(client_id=client, day=day, mood=5), metadata=auth_metadata(settings, "platform")
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, day
        status = rpc_status.from_call(err.value)
        assert status is not None and [f for f, _ in bad_request_violations(status)] == ["day"]
    tomorrow = (today + timedelta(days=1)).isoformat()
    reply = stub.SubmitCheckIn(
        pb.SubmitCheckInRequest(client_id=client, day=tomorrow, mood=5), metadata=auth_metadata(settings, "platform")
    )
    assert reply.day == tomorrow
