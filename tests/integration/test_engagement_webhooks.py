"""The engagement process against the real broker and store: signed webhooks, the attendance
ledger, connection-dropped events, dead letters, outcomes (PHQ-9 / GAD-7, FHIR) and check-ins."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_status import rpc_status

from iop.engagement.v1 import engagement_pb2 as pb
from iop.engagement.v1 import engagement_pb2_grpc
from iop.events.v1 import engagement_pb2 as ev
from iop.events.v1 import scheduling_pb2
from services.engagement.domain import drop_event_id
from services.engagement.store import ATTENDANCE_COLLECTION, OUTCOMES_COLLECTION
from services.plumbing.envelope import CloudEvent
from services.plumbing.errors import bad_request_violations
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_engagement_support import (
    SESSIONS_TOPIC,
    SIGNALS_TOPIC,
    Tap,
    assert_drop_published_by_the_webhook,
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


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    with until_stopped(engagement_service().start()) as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(service: ServiceProcess) -> Iterator[engagement_pb2_grpc.EngagementServiceStub]:
    with grpc.insecure_channel(service.target) as channel:
        yield engagement_pb2_grpc.EngagementServiceStub(channel)


def open_session(settings: Settings, stub, clients: list[str], started_min_ago: int = 5) -> str:
    session_id = f"s-{uuid.uuid4().hex[:10]}"
    start = datetime.now(UTC) - timedelta(minutes=started_min_ago)
    kp = producer(settings)
    publish(kp, SESSIONS_TOPIC, session_id, scheduled(session_id, "clin-w", clients, start))
    kp.close()

    def ready() -> bool:
        try:
            stub.GetSessionAttendance(
                pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
            )
            return True
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            return False

    assert wait_until(ready), "the ledger never opened the session"
    return session_id


def keep_the_ledger_busy(settings: Settings, session_id: str, at: datetime) -> None:
    """150 quality readings of the session's clinician stamped `at`, ahead of what the test sends:
    the ledger consumer applies the webhooks' signals seconds after their answers, as under load or
    after a rebalance."""
    kp = producer(settings)
    for n in range(150):
        reading = ev.VideoSignal(
            signal_id=f"busy-{session_id}-{n}",
            session_id=session_id,
            participant_id="clin-w",
            kind="connection_quality",
            value=4,
            occurred_at=to_timestamp(at),
        )
        publish(kp, SIGNALS_TOPIC, session_id, reading)
    kp.close()


def test_unsigned_bad_stale_and_malformed_webhooks_are_rejected_and_nothing_is_published(
    service, stub, settings: Settings
) -> None:
    session_id = open_session(settings, stub, ["c-1"])
    tap = Tap(settings, SIGNALS_TOPIC)
    good = zoom_body("meeting.participant_joined", session_id, "c-1")
    no_headers = post_webhook(good, headers={"x-zm-signature": "", "x-zm-request-timestamp": ""})
    assert no_headers.status_code == 401 and no_headers.json()["error"] == "MISSING_SIGNATURE"
    assert post_webhook(good, secret="not-the-secret").json()["error"] == "BAD_SIGNATURE"
    stale = post_webhook(good, timestamp=int(time.time()) - 3600)
    assert stale.status_code == 401 and stale.json()["error"] == "STALE_TIMESTAMP"
    assert post_webhook(b"{not json").status_code == 422
    missing = post_webhook(json.dumps({"event": "meeting.participant_joined", "event_ts": 1, "payload": {}}).encode())
    assert missing.status_code == 422 and missing.json()["error"] == "MALFORMED_WEBHOOK"
    assert any("payload.object" in v["field"] for v in missing.json()["detail"])
    unsupported = post_webhook(zoom_body("meeting.participant_teleported", session_id, "c-1"))
    assert unsupported.status_code == 422
    no_seconds = post_webhook(zoom_body("meeting.participant_speaking", session_id, "c-1"))
    assert no_seconds.status_code == 422
    # the sentinel: a good one goes through, and it is the only record for this session
    accepted = post_webhook(good)
    assert accepted.status_code == 200, accepted.text
    assert tap.poll(lambda ce, p: p.session_id == session_id) is not None
    records = [r for r in tap.records(1.0) if r.key == session_id.encode()]
    assert len(records) == 1
    assert b"never stored" not in records[0].value  # the participant's name is not published
    tap.close()


def test_replayed_webhook_is_acknowledged_but_published_once(service, stub, settings: Settings) -> None:
    session_id = open_session(settings, stub, ["c-1"])
    tap = Tap(settings, SIGNALS_TOPIC)
    body = zoom_body("meeting.chat_message_sent", session_id, "c-1", chat_messages=2)
    first, again = post_webhook(body), post_webhook(body)
    assert first.json()["status"] == "accepted" and again.json()["status"] == "duplicate"
    assert first.json()["signal_id"] == again.json()["signal_id"]
    assert tap.poll(lambda ce, p: p.session_id == session_id, timeout_s=30) is not None
    assert len([r for r in tap.records(1.0) if r.key == session_id.encode()]) == 1
    tap.close()


def test_drop_during_active_session_emits_connection_dropped_before_the_webhook_answers(
    service, stub, settings: Settings
) -> None:
    session_id = open_session(settings, stub, ["c-1", "c-2"])
    tap = Tap(settings, "iop.engagement.attendance.v1")
    signals = Tap(settings, SIGNALS_TOPIC)
    now = datetime.now(UTC)
    assert post_webhook(
        zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=4))
    ).is_success
    assert post_webhook(
        zoom_body("meeting.participant_joined", session_id, "c-2", now - timedelta(minutes=4))
    ).is_success
    # a normal leave is not a drop
    assert post_webhook(
        zoom_body(
            "meeting.participant_left", session_id, "c-2", now - timedelta(minutes=1), leave_reason="left the meeting"
        )
    ).is_success
    sent = time.time()
    dropped = post_webhook(
        zoom_body("meeting.participant_left", session_id, "c-1", now, leave_reason="Connection lost")
    )
    answered = time.time()
    assert dropped.status_code == 200, dropped.text
    envelope, drop, _ = assert_drop_published_by_the_webhook(
        tap, signals, session_id, dropped.json()["signal_id"], sent, answered
    )
    signals.close()
    assert drop.client_id == "c-1" and drop.clinician_id == "clin-w"
    assert drop.reason == "connection_lost"  # not the platform's wording: it can name the participant
    assert envelope.subject == session_id
    assert not [p for _, p in tap._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.client_id == "c-2")]

    def entry() -> pb.AttendanceEntry:
        reply = stub.GetSessionAttendance(
            pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
        )
        return next(e for e in reply.entries if e.client_id == "c-1")

    # rejoin; once the ledger has the rejoin, a drop delivered late (its event time is before the rejoin)
    # raises nothing. (Posted before the ledger has the rejoin, see
    # test_a_late_drop_right_after_a_rejoin_raises_nothing_on_the_webhook_fast_path.)
    assert post_webhook(
        zoom_body("meeting.participant_joined", session_id, "c-1", now + timedelta(seconds=30))
    ).is_success

    def rejoined() -> bool:
        e = entry()
        return e.reconnections == 1 and e.present

    assert wait_until(rejoined, timeout_s=30), "the ledger never recorded the rejoin"
    late = zoom_body("meeting.participant_qos", session_id, "c-1", now + timedelta(seconds=10), connection_quality=0)
    late_reply = post_webhook(late)
    assert late_reply.is_success
    # the positive control for "nothing more": the ledger has recorded the late drop too
    db = database(settings)
    recorded_late = wait_until(
        lambda: db[ATTENDANCE_COLLECTION].find_one({"_id": session_id, "signal_ids": late_reply.json()["signal_id"]}),
        timeout_s=30,
    )
    db.client.close()
    assert recorded_late, "the ledger never recorded the late drop"
    e = entry()
    assert (e.reconnections, e.present, e.disconnections) == (1, True, 1)
    assert e.status == pb.ATTENDANCE_STATUS_ON_TIME
    # the ledger recorded the drop and did not publish it again: the webhook had (one record)
    tap.records(1.0)
    drops = tap._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert len(drops) == 1, drops

    # the session ends: final attendance per client
    kp = producer(settings)
    publish(
        kp,
        SESSIONS_TOPIC,
        session_id,
        scheduling_pb2.SessionEnded(
            session_id=session_id, clinician_id="clin-w", ended_at=to_timestamp(now + timedelta(minutes=55))
        ),
    )
    kp.close()
    recorded = {}
    for client in ("c-1", "c-2"):

        def final(ce: CloudEvent, p: Message, c: str = client) -> bool:
            return isinstance(p, ev.AttendanceRecorded) and p.session_id == session_id and p.client_id == c

        hit = tap.poll(final, timeout_s=30)
        assert hit is not None
        recorded[client] = hit[1]
    assert recorded["c-1"].status == "on_time" and recorded["c-1"].disconnections == 1
    assert recorded["c-2"].status == "left_early"
    tap.close()


def test_a_quality_dip_then_recovery_is_one_drop_and_a_reconnection_in_the_ledger(
    service, stub, settings: Settings
) -> None:
    """A connection-quality reading of 0 is a drop (ConnectionDropped, from the webhook); readings of
    0 while it lasts raise no more (the crisis service would escalate on each); the quality coming
    back is the reconnection: the client is present again and their minutes count. (The recovery
    used to leave the client "left": not present, the rest of the session missing from the minutes.)"""
    session_id = open_session(settings, stub, ["c-1"])
    drops = Tap(settings, "iop.engagement.attendance.v1")
    signals = Tap(settings, SIGNALS_TOPIC)
    now = datetime.now(UTC)
    db = database(settings)

    def post_recorded(body: bytes) -> str:
        reply = post_webhook(body)
        assert reply.status_code == 200, reply.text
        signal_id = reply.json()["signal_id"]
        found = wait_until(
            lambda: db[ATTENDANCE_COLLECTION].find_one({"_id": session_id, "signal_ids": signal_id}), timeout_s=30
        )
        assert found, "the ledger never recorded the signal"
        return str(signal_id)

    def qos(minutes: float, quality: int) -> bytes:
        at = now + timedelta(minutes=minutes)
        return zoom_body("meeting.participant_qos", session_id, "c-1", at, connection_quality=quality)

    def entry() -> pb.AttendanceEntry:
        reply = stub.GetSessionAttendance(
            pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
        )
        return next(e for e in reply.entries if e.client_id == "c-1")

    post_recorded(zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=4)))
    sent = time.time()
    dip = post_webhook(qos(-3, 0))
    answered = time.time()
    assert dip.status_code == 200, dip.text
    _, drop, _ = assert_drop_published_by_the_webhook(
        drops, signals, session_id, dip.json()["signal_id"], sent, answered
    )
    assert drop.client_id == "c-1" and drop.reason == "connection_lost"
    signals.close()
    wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one({"_id": session_id, "signal_ids": dip.json()["signal_id"]}))
    post_recorded(qos(-2.5, 0))  # still lost: the same outage
    post_recorded(qos(-2, 3))  # back
    e = entry()
    assert (e.present, e.disconnections, e.reconnections) == (True, 1, 1), e
    drops.records(1.0)
    published = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert len(published) == 1, published

    kp = producer(settings)
    ended = scheduling_pb2.SessionEnded(
        session_id=session_id, clinician_id="clin-w", ended_at=to_timestamp(now + timedelta(minutes=55))
    )
    publish(kp, SESSIONS_TOPIC, session_id, ended)
    kp.close()
    drops.close()

    def final() -> pb.SessionAttendance | None:
        # this run's ledger, not AttendanceRecorded: the attendance and sessions topics are shared,
        # and a concurrent test run's engagement service finalizes this session too (without its signals)
        reply = stub.GetSessionAttendance(
            pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
        )
        return reply if reply.ended else None

    ledger = wait_until(final, timeout_s=30)
    assert ledger is not None, "the session never ended on the ledger"
    e = ledger.entries[0]
    # joined 1 min after the start, out from -3 to -2 min, then to the end: 1 + 57 minutes
    assert (e.status, e.minutes_attended) == (pb.ATTENDANCE_STATUS_ON_TIME, 58)
    assert (e.disconnections, e.reconnections, e.present) == (1, 1, False)
    db.client.close()


def test_a_dip_delivered_after_a_normal_leave_raises_nothing(service, stub, settings: Settings) -> None:
    """The platform's quality readings often come after its participant_left. A client whose quality
    dipped to 0 and who then left the meeting normally (c-1: without the quality back; c-2: with it,
    delivered last) left as planned: the dip, delivered after the leave, used to raise a
    ConnectionDropped (and a crisis alert). A dip delivered while it is the news still raises one (c-3)."""
    session_id = open_session(settings, stub, ["c-1", "c-2", "c-3"], started_min_ago=15)
    drops = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)

    def recorded(reply) -> None:  # type: ignore[no-untyped-def]
        assert reply.status_code == 200, reply.text
        signal = {"_id": session_id, "signal_ids": reply.json()["signal_id"]}
        assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(signal), timeout_s=30), "not recorded"

    def qos(client: str, minutes: float, quality: int) -> bytes:
        at = now + timedelta(minutes=minutes)
        return zoom_body("meeting.participant_qos", session_id, client, at, connection_quality=quality)

    for client in ("c-1", "c-2", "c-3"):
        recorded(post_webhook(zoom_body("meeting.participant_joined", session_id, client, now - timedelta(minutes=10))))
    for client in ("c-1", "c-2"):
        left = zoom_body(
            "meeting.participant_left", session_id, client, now - timedelta(minutes=1), leave_reason="left the meeting"
        )
        recorded(post_webhook(left))  # the ledger has the leave: both paths judge the dip with it
    for client in ("c-1", "c-2"):
        recorded(post_webhook(qos(client, -4, 0)))
    recorded(post_webhook(qos("c-2", -3, 4)))
    assert post_webhook(qos("c-3", -2, 0)).status_code == 200
    assert drops.poll(
        lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id and p.client_id == "c-3"
    ), "the dip as it happened was not reported"
    drops.records(1.0)
    reported = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert [p.client_id for _, p in reported] == ["c-3"], reported
    drops.close()
    db.client.close()


def test_a_dip_delivered_right_after_a_normal_leave_raises_nothing_on_the_webhook_fast_path(
    service, stub, settings: Settings
) -> None:
    """As above, with the dip delivered right after the leave, before the ledger consumer has applied
    it: the webhook records a normal leave as it records a rejoin, and the fast path judges the dip
    with it (it used to report the dip from the consumer's view, without the leave)."""
    session_id = open_session(settings, stub, ["c-1"], started_min_ago=15)
    drops = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)
    joined = post_webhook(zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=10)))
    assert joined.status_code == 200, joined.text
    recorded = {"_id": session_id, "signal_ids": joined.json()["signal_id"]}
    assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(recorded), timeout_s=30), "the join was not recorded"
    # the ledger consumer busy with this session (the clinician's quality readings), as under load
    keep_the_ledger_busy(settings, session_id, now - timedelta(minutes=5))
    left = zoom_body(
        "meeting.participant_left", session_id, "c-1", now - timedelta(minutes=1), leave_reason="left the meeting"
    )
    dip = zoom_body("meeting.participant_qos", session_id, "c-1", now - timedelta(minutes=4), connection_quality=0)
    for body in (left, dip):
        reply = post_webhook(body)
        assert reply.status_code == 200, reply.text
    last = {"_id": session_id, "signal_ids": reply.json()["signal_id"]}
    assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(last), timeout_s=30), "the dip was not recorded"
    drops.records(1.0)
    reported = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert reported == [], reported
    drops.close()
    db.client.close()


def test_a_reading_of_0_after_the_host_ended_the_meeting_raises_nothing_on_the_webhook_fast_path(
    service, stub, settings: Settings
) -> None:
    """The host ends the meeting (c-1) or moves a client to a breakout room (c-2), and a reading of 0
    stamped after it is delivered right after it, before the ledger consumer has applied it. The
    client is out of the meeting: the ledger takes the reading for no drop, and so must the fast
    path. The webhook recorded only the client's own leave, and the fast path reported the reading
    from the consumer's view without the host's action (a crisis alert for every client of a meeting
    the host ended, at its end). A dip stamped before the host's action (c-3) is still reported."""
    clients = {
        "c-1": "left the meeting. Reason : Host ended the meeting.",
        "c-2": "left the meeting. Reason : left the meeting to join breakout room",
        "c-3": "left the meeting. Reason : Removed by host.",
    }
    session_id = open_session(settings, stub, list(clients), started_min_ago=15)
    drops = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)
    joins = []
    for client in clients:
        joined = post_webhook(zoom_body("meeting.participant_joined", session_id, client, now - timedelta(minutes=10)))
        assert joined.status_code == 200, joined.text
        joins.append(joined.json()["signal_id"])
    recorded = {"_id": session_id, "signal_ids": {"$all": joins}}
    assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(recorded), timeout_s=30), "joins not recorded"
    # the ledger consumer busy with this session (the clinician's quality readings), as under load
    keep_the_ledger_busy(settings, session_id, now - timedelta(minutes=5))
    dips = {}
    for client, reason in clients.items():
        at = now - timedelta(minutes=2)
        left = zoom_body("meeting.participant_left", session_id, client, at, leave_reason=reason)
        dip_min = -4 if client == "c-3" else -1
        dip = zoom_body(
            "meeting.participant_qos", session_id, client, now + timedelta(minutes=dip_min), connection_quality=0
        )
        for body in (left, dip):
            reply = post_webhook(body)
            assert reply.status_code == 200, reply.text
        dips[client] = reply.json()["signal_id"]
    everything = {"_id": session_id, "signal_ids": {"$all": list(dips.values())}}
    assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(everything), timeout_s=30), "not recorded"
    drops.records(1.0)
    reported = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert {ce.id for ce, _ in reported} == {drop_event_id(dips["c-3"])}, reported
    drops.close()
    db.client.close()


def test_a_dip_delivered_after_the_host_removed_or_moved_the_client_is_reported(
    service, stub, settings: Settings
) -> None:
    """A host removing a frozen client (c-1, also in Zoom's wording: c-2) or moving them to a breakout
    room (c-3) proves nothing about their connection: a dip to 0 before it, delivered after it (the
    ledger has the leave), is reported; it used to raise nothing, as after a leave of the client's
    own, which still raises nothing (c-4). The host's action itself raises nothing."""
    clients = {
        "c-1": "removed by host",
        "c-2": "left the meeting. Reason : removed by host",
        "c-3": "moved to breakout room",
        "c-4": "left the meeting",
    }
    session_id = open_session(settings, stub, list(clients), started_min_ago=15)
    drops = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)

    def recorded(reply) -> str:  # type: ignore[no-untyped-def]
        assert reply.status_code == 200, reply.text
        signal = {"_id": session_id, "signal_ids": reply.json()["signal_id"]}
        assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(signal), timeout_s=30), "not recorded"
        return str(reply.json()["signal_id"])

    dips = {}
    for client, reason in clients.items():
        recorded(post_webhook(zoom_body("meeting.participant_joined", session_id, client, now - timedelta(minutes=10))))
        a_minute_ago = now - timedelta(minutes=1)
        left = zoom_body("meeting.participant_left", session_id, client, a_minute_ago, leave_reason=reason)
        recorded(post_webhook(left))  # the ledger has the leave: both paths judge the dip with it
    for client in clients:
        dip = zoom_body("meeting.participant_qos", session_id, client, now - timedelta(minutes=4), connection_quality=0)
        dips[client] = recorded(post_webhook(dip))
    drops.records(2.0)
    reported = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert sorted({ce.id: p.client_id for ce, p in reported}.values()) == ["c-1", "c-2", "c-3"], reported
    assert {ce.id for ce, p in reported if p.client_id == "c-1"} == {drop_event_id(dips["c-1"])}
    entries = {
        e.client_id: e
        for e in stub.GetSessionAttendance(
            pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
        ).entries
    }
    assert all((e.disconnections, e.present) == (1, False) for e in entries.values()), entries
    drops.close()
    db.client.close()


def test_a_lost_connection_that_reopens_a_dip_judged_over_is_reported(service, stub, settings: Settings) -> None:
    """Join, a dip to 0, a lost connection, a quality reading above 0 after it (a late report: after
    a participant_left only a join brings the client back). Delivered reading, dip, lost connection:
    the dip was history when it came (the reading ended it), and the lost connection, which reopens
    the outage, was taken for the dip's, which "raised it": the disconnection was never reported."""
    session_id = open_session(settings, stub, ["c-1"], started_min_ago=15)
    drops = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)

    def recorded(body: bytes) -> str:
        reply = post_webhook(body)
        assert reply.status_code == 200, reply.text
        signal = {"_id": session_id, "signal_ids": reply.json()["signal_id"]}
        assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(signal), timeout_s=30), "not recorded"
        return str(reply.json()["signal_id"])

    def qos(minutes: float, quality: int) -> bytes:
        at = now + timedelta(minutes=minutes)
        return zoom_body("meeting.participant_qos", session_id, "c-1", at, connection_quality=quality)

    recorded(zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=10)))
    recorded(qos(-2, 4))
    recorded(qos(-4, 0))
    at = now - timedelta(minutes=3)
    lost = recorded(zoom_body("meeting.participant_left", session_id, "c-1", at, leave_reason="Connection lost"))
    drops.records(1.0)
    reported = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert [ce.id for ce, _ in reported] == [drop_event_id(lost)], reported
    drops.close()
    db.client.close()


def test_zoom_wording_of_a_lost_connection_is_reported(service, stub, settings: Settings) -> None:
    """Zoom words every leave reason as "left the meeting. Reason : <reason>"; matched as a substring,
    "left the meeting" made a network error a normal leave, and it raised nothing. The host ending
    the meeting in the same wording is still no drop."""
    session_id = open_session(settings, stub, ["c-1", "c-2"])
    tap = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    for client in ("c-1", "c-2"):
        joined = zoom_body("meeting.participant_joined", session_id, client, now - timedelta(minutes=4))
        assert post_webhook(joined).status_code == 200
    ended = "left the meeting. Reason : Host ended the meeting."
    assert post_webhook(zoom_body("meeting.participant_left", session_id, "c-2", now, leave_reason=ended)).is_success
    zoom_lost = "left the meeting. Reason : Network connection error. "
    lost = post_webhook(zoom_body("meeting.participant_left", session_id, "c-1", now, leave_reason=zoom_lost))
    assert lost.status_code == 200, lost.text
    assert tap.poll(
        lambda ce, p: isinstance(p, ev.ConnectionDropped) and ce.id == drop_event_id(lost.json()["signal_id"])
    ), "Zoom's wording of a lost connection was not reported"
    tap.records(1.0)
    reported = tap._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert [p.client_id for _, p in reported] == ["c-1"], reported
    tap.close()


def zoom_leaves_reported(stub: Any, settings: Settings, leaves: dict[str, str], lost: str) -> dict[str, int]:
    """Each client of a session joins, then leaves with its `leave_reason` (the whole text Zoom
    sends); once every leave is recorded and the drop of `lost` (a lost connection, the control) is
    reported, each client's disconnections in the attendance, after checking that ConnectionDropped
    was published for exactly the clients with one."""
    session_id = open_session(settings, stub, list(leaves))
    tap = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)
    for client in leaves:
        joined = zoom_body("meeting.participant_joined", session_id, client, now - timedelta(minutes=4))
        assert post_webhook(joined).status_code == 200
    left = {}
    for client, text in leaves.items():
        reply = post_webhook(zoom_body("meeting.participant_left", session_id, client, now, leave_reason=text))
        assert reply.status_code == 200, reply.text
        left[client] = reply.json()["signal_id"]
    everything = {"_id": session_id, "signal_ids": {"$all": list(left.values())}}
    assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(everything), timeout_s=30), "not recorded"
    assert tap.poll(lambda ce, p: isinstance(p, ev.ConnectionDropped) and ce.id == drop_event_id(left[lost]))
    tap.records(2.0)  # the ledger's outbox publishes what the webhook did not
    reported = tap._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    entries = {
        e.client_id: e.disconnections
        for e in stub.GetSessionAttendance(
            pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
        ).entries
    }
    assert sorted({p.client_id for _, p in reported}) == sorted(c for c, n in entries.items() if n), reported
    tap.close()
    db.client.close()
    return entries


def test_zoom_wording_of_the_host_closing_the_meeting_raises_nothing(service, stub, settings: Settings) -> None:
    """Zoom's reasons for a leave that is no lost connection, in its webhook wording: the host
    closing the meeting (every client in it leaves so), starting a new one, never joining, the free
    minutes running out, a client leaving the waiting room. Matched against the reason itself, none
    was a normal leave: each raised a ConnectionDropped (a crisis alert) and counted as a
    disconnection. A network error (c-6) is still reported."""
    reasons = {
        "c-1": "Host closed the meeting.",
        "c-2": "Host started a new meeting.",
        "c-3": "Host did not join.",
        "c-4": "Exceeded free meeting minutes limit.",
        "c-5": "Leave waiting room.",
        "c-6": "Network connection error.",
    }
    leaves = {client: f"left the meeting. Reason : {reason}" for client, reason in reasons.items()}
    entries = zoom_leaves_reported(stub, settings, leaves, lost="c-6")
    assert entries == {c: int(c == "c-6") for c in leaves}, entries


def test_a_zoom_leave_with_an_empty_reason_raises_nothing(service, stub, settings: Settings) -> None:
    """A participant_left worded "left the meeting. Reason :" with nothing after it (c-1, c-2): Zoom
    says the participant left and names no lost connection, so it is a normal leave. It raised a
    ConnectionDropped (a crisis alert) and counted as a disconnection. A leave with no reason at
    all (c-3) and a network error (c-4) are still reported."""
    leaves = {
        "c-1": "left the meeting. Reason :",
        "c-2": "left the meeting. Reason : ",
        "c-3": "",
        "c-4": "left the meeting. Reason : Network connection error.",
    }
    entries = zoom_leaves_reported(stub, settings, leaves, lost="c-4")
    assert entries == {"c-1": 0, "c-2": 0, "c-3": 1, "c-4": 1}, entries


def test_a_display_name_in_a_zoom_leave_reason_does_not_make_a_lost_connection_a_normal_leave(
    service, stub, settings: Settings
) -> None:
    """Zoom names the participant in "$name got disconnected from the meeting." (the display name is
    the client's own text, which the webhook never reads but Zoom passes on in `leave_reason`).
    Matched as a substring, a name holding a normal reason ("left the meeting", "Host ended the
    meeting") made the lost connection a normal leave: no ConnectionDropped, no crisis alert, no
    disconnection (c-1 to c-3). Zoom's moves between breakout rooms and the client's own leave, in
    its webhook wording, are still normal leaves (c-4 to c-6), and so is the client's own leave
    under their display name, Zoom's "$name left the meeting." (c-7, c-8): matched whole, the name
    made it a drop (rules 2026-12-07.4), a ConnectionDropped for every client who left so."""
    zoom = "left the meeting. Reason : "
    leaves = {
        "c-1": zoom + "Eve left the meeting got disconnected from the meeting.",
        "c-2": zoom + "Host ended the meeting got disconnected from the meeting.",
        "c-3": zoom + "x. Reason : left the meeting got disconnected from the meeting.",
        "c-4": zoom + "left the meeting to join breakout room",
        "c-5": zoom + "left the meeting leave breakout room to join main meeting",
        "c-6": zoom + "left the meeting",
        "c-7": "Eve Example left the meeting.",
        "c-8": zoom + "Eve Example left the meeting.",
    }
    entries = zoom_leaves_reported(stub, settings, leaves, lost="c-1")
    assert entries == {"c-1": 1, "c-2": 1, "c-3": 1, "c-4": 0, "c-5": 0, "c-6": 0, "c-7": 0, "c-8": 0}, entries


def test_a_display_name_in_a_zoom_leave_reason_is_neither_published_nor_stored(
    service, stub, settings: Settings
) -> None:
    """Zoom's "$name got disconnected from the meeting." carries the client's display name (PHI).
    The webhook publishes the leave reason on the signals topic, the ledger stores it and a
    ConnectionDropped carried it to the crisis service and partners: now only a wording of the
    rules' (a normal leave's reason) is kept, and a lost connection's text is not."""
    name = f"Zed Quixote {uuid.uuid4().hex[:6]}"
    signals, attendance = Tap(settings, SIGNALS_TOPIC), Tap(settings, "iop.engagement.attendance.v1")
    leaves = {
        "c-1": f"left the meeting. Reason : {name} got disconnected from the meeting.",
        "c-2": f"{name} left the meeting. Reason : Host ended the meeting.",
    }
    assert zoom_leaves_reported(stub, settings, leaves, lost="c-1") == {"c-1": 1, "c-2": 0}
    published = [r for tap in (signals, attendance) for r in tap.records(2.0)]
    assert published and not [r for r in published if name.encode() in r.value], "a name was published"
    signals.close()
    attendance.close()
    db = database(settings)
    stored = db[ATTENDANCE_COLLECTION].find_one({"signals.r": {"$regex": name}})
    db.client.close()
    assert stored is None, "a name was stored"


def test_a_late_drop_right_after_a_rejoin_raises_nothing_on_the_webhook_fast_path(
    service, stub, settings: Settings
) -> None:
    """The fast path decides from the ledger as the ledger consumer has it, which lags the webhooks
    it has already answered. A participant leaves, rejoins, and a drop stamped before the rejoin is
    delivered right after it: the consumer has not applied the rejoin yet, and the webhook reported
    a drop for a client who was connected (and the crisis service opened an alert on it). Now the
    webhook records the time it saw each participant connected (a join, a quality reading above 0)
    on the session's ledger before it answers, and both paths take it into account."""
    session_id = open_session(settings, stub, ["c-1", "c-2"])
    drops = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)
    joins = [
        post_webhook(zoom_body("meeting.participant_joined", session_id, client, now - timedelta(minutes=4)))
        for client in ("c-1", "c-2")
    ]
    assert [r.status_code for r in joins] == [200, 200]
    both = {"_id": session_id, "signal_ids": {"$all": [r.json()["signal_id"] for r in joins]}}
    assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(both), timeout_s=30), "the joins were not recorded"
    db.client.close()
    # The ledger consumer busy with this session (a burst of the clinician's quality readings), as
    # under load or after a rebalance: it applies the webhooks' signals seconds after their answers.
    keep_the_ledger_busy(settings, session_id, now - timedelta(minutes=3))

    def late_qos(client: str) -> bytes:
        return zoom_body(
            "meeting.participant_qos", session_id, client, now + timedelta(seconds=10), connection_quality=0
        )

    # c-1 leaves the meeting and comes back; a reading of 0 from while they were away arrives last
    c1 = [
        zoom_body("meeting.participant_left", session_id, "c-1", now, leave_reason="left the meeting"),
        zoom_body("meeting.participant_joined", session_id, "c-1", now + timedelta(seconds=30)),
        late_qos("c-1"),
    ]
    # c-2's connection drops (that one is an alarm), they rejoin, the late reading arrives last
    c2 = [
        zoom_body("meeting.participant_left", session_id, "c-2", now, leave_reason="Connection lost"),
        zoom_body("meeting.participant_joined", session_id, "c-2", now + timedelta(seconds=30)),
        late_qos("c-2"),
    ]
    for body in (*c1, *c2):
        reply = post_webhook(body)
        assert reply.status_code == 200, reply.text
    assert drops.poll(
        lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id and p.client_id == "c-2"
    ), "the real drop was not reported"
    drops.records(2.0)
    reported = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    assert [(p.client_id, p.reason) for _, p in reported] == [("c-2", "connection_lost")], reported
    drops.close()


def test_a_rejoin_delivered_after_the_next_drop_reports_that_drop(service, stub, settings: Settings) -> None:
    """Drop, rejoin, drop again, with the rejoin delivered last (the platform's retry of it, say):
    the second drop came while the client looked still out from the first, and was taken for the
    same outage. The late rejoin shows it was a new one, current (the client is out now): the
    ledger reports it then, once (it used to be reported never: one alarm for two disconnections)."""
    session_id = open_session(settings, stub, ["c-1"])
    drops = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    db = database(settings)

    def left(at: datetime) -> bytes:
        return zoom_body("meeting.participant_left", session_id, "c-1", at, leave_reason="Connection lost")

    posted = [
        post_webhook(zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=4))),
        post_webhook(left(now - timedelta(minutes=3))),
        post_webhook(left(now - timedelta(minutes=1))),
    ]
    assert [r.status_code for r in posted] == [200, 200, 200]
    first, second = posted[1].json()["signal_id"], posted[2].json()["signal_id"]
    recorded = {"_id": session_id, "signal_ids": {"$all": [r.json()["signal_id"] for r in posted]}}
    assert wait_until(lambda: db[ATTENDANCE_COLLECTION].find_one(recorded), timeout_s=30)

    def dropped() -> list[tuple[str, datetime]]:
        drops.records(0.5)
        found = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
        return [(ce.id, p.dropped_at.ToDatetime(UTC)) for ce, p in found]

    assert [i for i, _ in dropped()] == [drop_event_id(first)]  # one outage as far as anyone knows
    rejoin = post_webhook(zoom_body("meeting.participant_joined", session_id, "c-1", now - timedelta(minutes=2)))
    assert rejoin.status_code == 200, rejoin.text
    assert wait_until(lambda: len(dropped()) >= 2, timeout_s=30), "the second outage was never reported"
    drops.records(1.0)
    assert [i for i, _ in dropped()] == [drop_event_id(first), drop_event_id(second)]
    db.client.close()
    drops.close()


class ReplayedSession:
    """A live session of client c-1, started 15 minutes ago, whose webhooks a test delivers one at a
    time in the order it chooses (times in minutes before the test began), each once the ledger
    consumer has recorded the one before; and the ConnectionDropped reported for it."""

    def __init__(self, settings: Settings, stub: Any) -> None:
        self.session_id = open_session(settings, stub, ["c-1"], started_min_ago=15)
        self.drops = Tap(settings, "iop.engagement.attendance.v1")
        self.now = datetime.now(UTC)
        self.db = database(settings)

    def _deliver(self, event: str, minutes_ago: int, **participant: Any) -> str:
        """Post the webhook and wait until the ledger consumer has recorded its signal; its signal id."""
        at = self.now - timedelta(minutes=minutes_ago)
        reply = post_webhook(zoom_body(event, self.session_id, "c-1", at, **participant))
        assert reply.status_code == 200, reply.text
        signal_id: str = reply.json()["signal_id"]
        recorded = {"_id": self.session_id, "signal_ids": signal_id}
        assert wait_until(lambda: self.db[ATTENDANCE_COLLECTION].find_one(recorded), timeout_s=30), "not recorded"
        return signal_id

    def join(self, minutes_ago: int) -> str:
        return self._deliver("meeting.participant_joined", minutes_ago)

    def leave(self, minutes_ago: int, reason: str) -> str:
        return self._deliver("meeting.participant_left", minutes_ago, leave_reason=reason)

    def reading(self, minutes_ago: int, quality: int) -> str:
        return self._deliver("meeting.participant_qos", minutes_ago, connection_quality=quality)

    def dropped(self) -> list[str]:
        return reported_drop_ids(self.drops, self.session_id)

    def close(self) -> None:
        self.db.client.close()
        self.drops.close()


def reported_drop_ids(drops: Tap, session_id: str) -> list[str]:
    """The event ids of the ConnectionDropped reported for the session so far, in order."""
    drops.records(0.5)
    found = drops._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)
    return [ce.id for ce, _ in found]


def test_a_normal_leave_delivered_after_the_next_drop_reports_that_drop(service, stub, settings: Settings) -> None:
    """Dip to 0, leave normally, rejoin, lose the connection, with the leave and the rejoin delivered
    last (the platform's retries of them, say), the ledger having applied the others: the lost
    connection came while the client looked still out from the dip, and was taken for the same
    outage. The late normal leave ends the dip (the client left themselves) and shows the lost
    connection was a new outage, current: the ledger reports it then. Until the leave ended a dip
    (2026-12-07), the late rejoin revealed it; after that, the rejoin's check found the leave already
    splitting the outage and nobody reported it."""
    replay = ReplayedSession(settings, stub)
    replay.join(10)
    dip = replay.reading(8, 0)
    lost = replay.leave(2, "Connection lost")
    assert replay.dropped() == [drop_event_id(dip)]  # one outage as far as anyone knows
    replay.leave(6, "left the meeting")
    replay.join(4)
    assert wait_until(lambda: len(replay.dropped()) >= 2, timeout_s=30), "the lost connection was never reported"
    replay.drops.records(1.0)
    assert replay.dropped() == [drop_event_id(dip), drop_event_id(lost)]
    replay.close()


def test_a_lost_connection_delivered_after_a_reading_of_0_stamped_after_it_is_reported(
    service, stub, settings: Settings
) -> None:
    """Join, leave normally, rejoin, lose the connection, a reading of 0 after that; the rejoin
    delivered last (a retry), the reading of 0 before the lost connection. When it came the
    reading looked like one from after the normal leave (no drop: it raised nothing); the lost
    connection then fell in its outage and was taken for one that had been reported: nobody
    reported the client's disconnection (the rejoin, last, found the lost connection the first of
    its outage already)."""
    replay = ReplayedSession(settings, stub)
    replay.join(10)
    replay.leave(8, "left the meeting")
    replay.reading(3, 0)
    assert replay.dropped() == []  # as far as anyone knows, a reading from after the leave
    lost = replay.leave(4, "Connection lost")
    assert wait_until(lambda: replay.dropped() != [], timeout_s=30), "the lost connection was never reported"
    replay.join(6)
    replay.drops.records(1.0)
    assert replay.dropped() == [drop_event_id(lost)]
    replay.close()


def test_a_drop_the_webhook_did_not_publish_is_published_by_the_ledger(service, stub, settings: Settings) -> None:
    """The durable path: a drop signal that names no ConnectionDropped (the webhook's read of the
    ledger was older than the ledger's own) gets its event from the ledger's outbox, once."""
    session_id = open_session(settings, stub, ["c-1"])
    tap = Tap(settings, "iop.engagement.attendance.v1")
    now = datetime.now(UTC)
    kp = producer(settings)
    joined = ev.VideoSignal(
        signal_id=f"join-{session_id}",
        session_id=session_id,
        participant_id="c-1",
        kind="participant_joined",
        occurred_at=to_timestamp(now - timedelta(minutes=3)),
    )
    publish(kp, SIGNALS_TOPIC, session_id, joined)
    left = ev.VideoSignal(
        signal_id=f"drop-{session_id}",
        session_id=session_id,
        participant_id="c-1",
        kind="participant_left",
        occurred_at=to_timestamp(now),
        leave_reason="Connection lost",
    )
    publish(kp, SIGNALS_TOPIC, session_id, left)
    publish(kp, SIGNALS_TOPIC, session_id, left)  # the same signal again, in a new envelope: still one drop
    # then a rejoin, after both copies in the session's partition: once the ledger has it, it has had both
    rejoined = ev.VideoSignal(
        signal_id=f"rejoin-{session_id}",
        session_id=session_id,
        participant_id="c-1",
        kind="participant_joined",
        occurred_at=to_timestamp(now + timedelta(minutes=1)),
    )
    publish(kp, SIGNALS_TOPIC, session_id, rejoined)
    kp.close()
    found = tap.poll(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id, timeout_s=30)
    assert found is not None, "the ledger did not publish the drop"
    assert found[1].client_id == "c-1" and found[1].reason == "connection_lost"

    def rejoin_recorded() -> bool:
        reply = stub.GetSessionAttendance(
            pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
        )
        return any(e.client_id == "c-1" and e.reconnections == 1 and e.present for e in reply.entries)

    assert wait_until(rejoin_recorded, timeout_s=30), "the ledger never recorded the rejoin"
    tap.records(1.0)
    assert len(tap._matching(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id)) == 1
    tap.close()


def test_signal_for_unknown_session_is_dead_lettered_with_reason(service, settings: Settings) -> None:
    tap = Tap(settings, "iop.engagement.deadletter.v1")
    session_id = f"s-unknown-{uuid.uuid4().hex[:8]}"
    assert post_webhook(zoom_body("meeting.participant_joined", session_id, "c-9")).status_code == 200

    def mine() -> list:
        return [r for r in tap.records(0.3) if r.key == session_id.encode()]

    records = wait_until(mine, timeout_s=30)
    assert records, "no dead letter"
    headers = dict(records[0].headers)
    assert headers["dlq_error_type"] == b"PoisonEvent"
    assert headers["dlq_error_message"].startswith(b"UNKNOWN_SESSION")
    tap.close()


def test_outcomes_are_validated_item_by_item(stub, settings: Settings) -> None:
    request = pb.SubmitOutcomeRequest(
        submission_id=str(uuid.uuid4()),
        client_id="c-1",
        instrument=pb.INSTRUMENT_PHQ9,
        item_scores=[0, 1, 4, 2, -1, 0, 0, 0],
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitOutcome(request, metadata=auth_metadata(settings, "clinician"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert status is not None
    fields = {f for f, _ in bad_request_violations(status)}
    assert fields == {"item_scores", "item_scores[2]", "item_scores[4]"}
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitOutcome(
            pb.SubmitOutcomeRequest(client_id="c-1", item_scores=[1] * 7), metadata=auth_metadata(settings, "clinician")
        )
    status = rpc_status.from_call(err.value)
    assert status is not None
    assert {f for f, _ in bad_request_violations(status)} == {"submission_id", "instrument"}
    # nothing was stored
    history = stub.GetOutcomeHistory(
        pb.GetOutcomeHistoryRequest(client_id="c-1"), metadata=auth_metadata(settings, "clinician")
    )
    assert request.submission_id not in {r.submission_id for r in history.records}
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitCheckIn(
            pb.SubmitCheckInRequest(client_id="c-1", day="29-11-2026", mood=11, practice_minutes=-5),
            metadata=auth_metadata(settings, "platform"),
        )
    status = rpc_status.from_call(err.value)
    assert status is not None
    assert {f for f, _ in bad_request_violations(status)} == {"day", "mood", "practice_minutes"}


def test_positive_phq9_item9_raises_crisis_signal_and_fhir_observation(stub, settings: Settings) -> None:
    client = f"c-{uuid.uuid4().hex[:8]}"
    outcomes, fhir = Tap(settings, "iop.engagement.outcomes.v1"), Tap(settings, "iop.engagement.fhir.v1")
    earlier = datetime.now(UTC) - timedelta(days=14)
    stub.SubmitOutcome(
        pb.SubmitOutcomeRequest(
            submission_id=str(uuid.uuid4()),
            client_id=client,
            instrument=pb.INSTRUMENT_PHQ9,
            item_scores=[3, 3, 2, 2, 2, 2, 2, 2, 0],
            completed_at=to_timestamp(earlier),
        ),
        metadata=auth_metadata(settings, "clinician"),
    )
    submission = str(uuid.uuid4())
    record = stub.SubmitOutcome(
        pb.SubmitOutcomeRequest(
            submission_id=submission,
            client_id=client,
            instrument=pb.INSTRUMENT_PHQ9,
            item_scores=[1, 1, 1, 1, 1, 1, 1, 1, 2],
        ),
        metadata=auth_metadata(settings, "client", subject=client),
    )
    assert record.total_score == 10 and record.severity == "moderate" and record.crisis_signal
    # The crisis signal leaves through the outcome's outbox, right after the reply; how fast is the
    # benchmarks' business (a slow machine only delays it). Here: it arrives, it is this submission's,
    # and it is the event stored with the submission (once, below).
    crisis = outcomes.poll(lambda ce, p: isinstance(p, ev.CrisisSignal) and p.submission_id == submission, timeout_s=30)
    assert crisis is not None, "no CrisisSignal for a positive PHQ-9 item 9"
    assert crisis[1].source == "phq9-item9" and crisis[1].value == 2
    assert crisis[1].client_id == client and crisis[0].subject == client

    def observation() -> dict | None:
        for r in fhir.records(0.3):
            if r.key == client.encode() and submission in [i["value"] for i in json.loads(r.value)["identifier"]]:
                assert dict(r.headers)["content-type"] == b"application/fhir+json"
                return json.loads(r.value)
        return None

    obs = wait_until(observation, timeout_s=30)
    assert obs is not None
    assert obs["code"]["coding"][0]["code"] == "44261-6" and obs["valueInteger"] == 10
    assert obs["component"][0]["code"]["coding"][0]["code"] == "44260-8" and obs["component"][0]["valueInteger"] == 2
    # the same submission again: the same record, no second crisis signal
    again = stub.SubmitOutcome(
        pb.SubmitOutcomeRequest(
            submission_id=submission,
            client_id=client,
            instrument=pb.INSTRUMENT_PHQ9,
            item_scores=[1, 1, 1, 1, 1, 1, 1, 1, 2],
        ),
        metadata=auth_metadata(settings, "clinician"),
    )
    assert again.total_score == 10
    history = stub.GetOutcomeHistory(
        pb.GetOutcomeHistoryRequest(client_id=client), metadata=auth_metadata(settings, "supervisor")
    )
    assert [r.total_score for r in history.records] == [18, 10]
    trend = next(t for t in history.trends if t.instrument == pb.INSTRUMENT_PHQ9)
    assert trend.direction == "improving" and trend.change == -8
    # exactly once: the submission holds one crisis event, the one published, and nothing published another
    db = database(settings)
    stored = db[OUTCOMES_COLLECTION].find_one({"client_id": client, "submission_id": submission}, {"outbox": 1})
    db.client.close()
    assert stored is not None
    stored_crises = [e["id"] for e in stored["outbox"] if e["type"] == ev.CrisisSignal.DESCRIPTOR.full_name]
    assert stored_crises == [crisis[0].id], stored_crises
    outcomes.records(1.0)
    crises = outcomes._matching(lambda ce, p: isinstance(p, ev.CrisisSignal) and p.submission_id == submission)
    assert [ce.id for ce, _ in crises] == [crisis[0].id], crises
    # a client may not read another client's history
    with pytest.raises(grpc.RpcError) as err:
        stub.GetOutcomeHistory(
            pb.GetOutcomeHistoryRequest(client_id=client), metadata=auth_metadata(settings, "client", subject="c-other")
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    outcomes.close()
    fhir.close()
