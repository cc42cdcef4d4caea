"""The faust worker against the real broker: windows and scores from real topics, and a hard
restart (SIGKILL) in the middle of a stream with state recovered from the changelog and nothing
double counted."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from iop.events.v1 import engagement_pb2 as ev
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_engagement_support import (
    SESSIONS_TOPIC,
    SIGNALS_TOPIC,
    Tap,
    WorkerProcess,
    database,
    producer,
    publish,
    scheduled,
    wait_until,
)
from tests.support import topic_partitions

pytestmark = pytest.mark.integration

ATTENDANCE, ACTIVITY = "iop.engagement.attendance.v1", "iop.engagement.activity.v1"


def attendance(session_id: str, client: str, starts: datetime, status: str, clinician: str) -> ev.AttendanceRecorded:
    return ev.AttendanceRecorded(
        session_id=session_id,
        client_id=client,
        status=status,
        minutes_attended=0 if status == "absent" else 60,
        session_starts_at=to_timestamp(starts),
        clinician_id=clinician,
        attendance_id=f"{session_id}:{client}",
    )


def speaking(session_id: str, client: str, at: datetime, seconds: float) -> ev.VideoSignal:
    return ev.VideoSignal(
        signal_id=uuid.uuid4().hex,
        session_id=session_id,
        participant_id=client,
        kind="speaking",
        occurred_at=to_timestamp(at),
        value=seconds,
    )


class GroupOffsets:
    """A consumer group's committed offsets and topics' end offsets, as the broker has them."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.group = group
        self.admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        self.consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)

    def ends(self, topics: list[str]) -> dict[TopicPartition, int]:
        tps = [tp for topic in topics for tp in topic_partitions(self.consumer, topic)]
        return dict(self.consumer.end_offsets(tps))

    def committed(self) -> dict[TopicPartition, int]:
        """What the group has committed; nothing while its coordinator cannot say (asked again)."""
        try:
            raw = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        except KafkaError:  # coordinator loading or moving: a transient answer, not the test's failure
            return {}
        return {tp: om.offset for tp, om in raw.items() if om.offset >= 0}

    def wait_committed(self, targets: dict[TopicPartition, int], timeout_s: float = 60) -> dict[str, Any]:
        """Wait until the group has committed at least `targets`; returns what is still behind."""

        def behind() -> dict[str, Any]:
            committed = self.committed()
            return {str(tp): (committed.get(tp), o) for tp, o in targets.items() if committed.get(tp, -1) < o}

        deadline = time.monotonic() + timeout_s
        while (left := behind()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


def grown(ends: dict[TopicPartition, int], since: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The partitions written since `since`, with their end offsets."""
    return {tp: end for tp, end in ends.items() if end > since[tp]}


def test_worker_restart_mid_stream_recovers_state_without_double_counting(settings: Settings) -> None:
    client, clinician = f"c-{uuid.uuid4().hex[:8]}", f"k-{uuid.uuid4().hex[:8]}"
    live = f"s-live-{uuid.uuid4().hex[:6]}"
    # Every time in this test derives from this one instant, so that the day can turn meanwhile: the
    # worker's windows end at the day of the latest event (the facts' own times, and a scheduler event's
    # envelope time for the clinician), which is therefore now's day.
    now = datetime.now(UTC).replace(microsecond=0)
    first = WorkerProcess(settings, instance="-1")
    offsets = GroupOffsets(settings, first.app_id)
    killed = threading.Event()
    try:
        # the worker starts first: test runs read from "now" (ENGAGEMENT_WORKER_OFFSET_RESET=latest)
        first.start()
        inputs = [SESSIONS_TOPIC, ATTENDANCE, ACTIVITY]
        forwarded = [f"{first.app_id}-by-client", f"{first.app_id}-by-clinician"]  # the worker's internal topics
        at_start = offsets.ends([*inputs, SIGNALS_TOPIC, *forwarded])
        kp = producer(settings)
        # ten past sessions, out of event-time order, one every day; 4 absences among the latest 7 days
        days = list(range(10))
        days.reverse()
        for d in days:
            # noon UTC of the day 10 - d days ago: on that day whatever the clock says (the worker's
            # windows end at the day of the latest event, which is today)
            start = now.replace(hour=12, minute=0, second=0) - timedelta(days=10 - d)
            sid = f"{live}-{d}"
            publish(kp, SESSIONS_TOPIC, sid, scheduled(sid, clinician, [client], start), when=now)
            status = "absent" if d in (3, 5, 7, 9) else "on_time"
            publish(kp, ATTENDANCE, sid, attendance(sid, client, start, status, clinician), when=now)
        live_start = now - timedelta(minutes=50)
        publish(kp, SESSIONS_TOPIC, live, scheduled(live, clinician, [client], live_start), when=now)
        check_in = ev.CheckInRecorded(
            client_id=client, day=now.date().isoformat(), mood=3, recorded_at=to_timestamp(now)
        )
        publish(kp, ACTIVITY, client, check_in, when=now)
        before_stream = offsets.ends(inputs)

        total_signals, stop_at = 400, 150
        # the last 50 signals wait for the crash, so that it is mid-stream however slow the machine
        hold_at = total_signals - 50
        published = threading.Event()
        half = threading.Event()

        def stream() -> None:
            kp2 = producer(settings)
            for i in range(total_signals):
                at = live_start + timedelta(seconds=5 + i)
                msg = speaking(live, client, at, 1.5)
                ce = CloudEvent.new("/iop/engagement", live, msg, event_id=msg.signal_id)
                kp2.send(SIGNALS_TOPIC, key=live.encode(), value=ce.data, headers=ce.headers())
                if i == stop_at:
                    kp2.flush()
                    half.set()
                if i == hold_at:
                    killed.wait(600)  # set by the test's finally, whatever happens: the tail waits for the kill
                time.sleep(0.01)
            kp2.flush()
            kp2.close()
            published.set()

        feeder = threading.Thread(target=stream)
        feeder.start()
        assert half.wait(30)
        # The second worker resumes from the group's committed offsets, and where the group has none it
        # starts at the end (ENGAGEMENT_WORKER_OFFSET_RESET=latest): it would skip whatever the first one
        # had not committed at all. So the crash comes once the first worker has committed past every
        # record published before the stream (and so has sent what it forwarded from them to its internal
        # topics: a commit waits for the producer), then past those forwarded records, and past some of
        # the stream, whose state is then in the changelog.
        behind = offsets.wait_committed(grown(before_stream, at_start))
        assert not behind, f"the first worker never committed the records before the stream: {behind}"
        stream_started = {tp: at_start[tp] + 1 for tp in grown(offsets.ends([SIGNALS_TOPIC]), at_start)}
        behind = offsets.wait_committed(grown(offsets.ends(forwarded), at_start) | stream_started)
        assert not behind, f"the first worker never committed its forwarded records or the stream: {behind}"
        # hard crash mid-stream: what it folded since its last commit is neither committed nor flushed
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        first.stop()  # a no-op after the crash; else the test failed before it
        killed.set()
        offsets.close()
    second = WorkerProcess(settings, instance="-2").start()
    try:
        assert published.wait(60)
        feeder.join()
        publish(kp, ATTENDANCE, live, attendance(live, client, live_start, "on_time", clinician))
        kp.close()
        db = database(settings)

        def snapshot() -> dict | None:
            doc = db["client_engagement"].find_one({"_id": client})
            if (
                doc
                and doc["windows"]["7"]["speaking_minutes"] >= 10
                and doc["windows"]["28"]["sessions_expected"] == 11
            ):
                return doc
            return None

        if wait_until(snapshot, timeout_s=120) is None:
            seen = db["client_engagement"].find_one({"_id": client}) or {}
            windows = {
                w: {k: seen["windows"][w].get(k) for k in ("speaking_minutes", "sessions_expected")}
                for w in seen.get("windows", {})
            }
            pytest.fail(
                f"state never complete: {windows}; worker {db['worker_status'].find_one({'_id': second.app_id})}"
            )
        time.sleep(1.5)  # settled: nothing more arrives later
        doc = db["client_engagement"].find_one({"_id": client})
        assert doc is not None
        status = db["worker_status"].find_one({"_id": second.app_id})
        print("worker after restart:", status)
        w7, w28 = doc["windows"]["7"], doc["windows"]["28"]
        # every signal counted exactly once across the crash: 400 x 1.5 s = 10 minutes
        assert w7["speaking_minutes"] == pytest.approx(10.0)
        assert (w28["sessions_expected"], w28["absent"], w28["sessions_attended"]) == (11, 4, 7)
        assert (w7["sessions_expected"], w7["absent"]) == (7, 3)  # by event time: days 4..9 and today
        assert (w7["check_ins"], w7["mean_mood"]) == (1, 3.0)
        factors = {f["name"]: f for f in doc["risk"]["factors"]}
        assert factors["absence_rate_7d"]["value"] == pytest.approx(3 / 7, abs=1e-3)
        assert doc["risk"]["value"] == pytest.approx(sum(f["contribution"] for f in factors.values()), abs=1e-3)

        clin = wait_until(lambda: db["clinician_load"].find_one({"_id": clinician, "load.caseload": 1}), timeout_s=30)
        assert clin is not None and clin["load"]["sessions_7_days"] >= 7
    finally:
        second.stop()


def test_poison_records_are_dead_lettered_with_reason_and_the_worker_keeps_folding(settings: Settings) -> None:
    client, clinician = f"c-{uuid.uuid4().hex[:8]}", f"k-{uuid.uuid4().hex[:8]}"
    sid = f"s-poison-{uuid.uuid4().hex[:6]}"
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    dead_letters = Tap(settings, "iop.engagement.deadletter.v1")
    worker = WorkerProcess(settings, instance="-poison").start()
    try:
        kp = producer(settings)
        publish(kp, SESSIONS_TOPIC, sid, scheduled(sid, clinician, [client], starts))
        kp.send(SIGNALS_TOPIC, key=sid.encode(), value=b"\x00not an event")  # no CloudEvents headers
        bogus = ev.VideoSignal(signal_id=uuid.uuid4().hex, session_id=sid, participant_id=client, kind="bogus")
        publish(kp, SIGNALS_TOPIC, sid, bogus)
        # stamped two days after it was published (no received_at: the envelope's time): dead-lettered
        publish(kp, SIGNALS_TOPIC, sid, speaking(sid, client, datetime.now(UTC) + timedelta(days=2), 600.0))
        for i in range(2):  # the same batch as the poison, or the next one: both must count
            publish(kp, SIGNALS_TOPIC, sid, speaking(sid, client, starts + timedelta(minutes=i + 1), 30.0))
        publish(kp, ATTENDANCE, sid, attendance(sid, client, starts, "on_time", clinician))
        kp.flush()
        kp.close()

        def both_dead_lettered() -> list[Any] | None:
            mine = [
                r
                for r in dead_letters.records(0.3)
                if r.key == sid.encode() and ("dlq_consumer_group", worker.app_id.encode()) in r.headers
            ]
            return mine if len(mine) >= 3 else None

        poisoned = wait_until(both_dead_lettered, timeout_s=30)
        assert poisoned and len(poisoned) == 3, poisoned
        reasons = sorted(dict(r.headers)["dlq_error_message"].decode() for r in poisoned)
        assert "malformed VideoSignal: participant_id or kind" in reasons
        assert any(r.startswith("EVENT_TIME_IN_FUTURE") for r in reasons), reasons
        assert all(dict(r.headers)["dlq_original_topic"] == SIGNALS_TOPIC.encode() for r in poisoned)
        assert {r.value for r in poisoned} >= {b"\x00not an event"}

        db = database(settings)
        # the attendance may be folded before the signals (another topic); each later signal corrects it
        wait_until(
            lambda: db["client_engagement"].find_one({"_id": client, "windows.7.speaking_minutes": {"$gte": 1.0}}),
            timeout_s=30,
        )
        time.sleep(1.0)  # settled: nothing more arrives later
        doc = db["client_engagement"].find_one({"_id": client})
        assert doc is not None and doc["windows"]["7"]["speaking_minutes"] == pytest.approx(1.0)
    finally:
        worker.stop()
        dead_letters.close()


def test_a_check_in_for_a_far_future_day_is_dead_lettered_and_the_history_kept(settings: Settings) -> None:
    """A CheckInRecorded for 2099-01-01 moved the client's windows to 2099 and pruned every session."""
    client, clinician = f"c-{uuid.uuid4().hex[:8]}", f"k-{uuid.uuid4().hex[:8]}"
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    dead_letters = Tap(settings, "iop.engagement.deadletter.v1")
    worker = WorkerProcess(settings, instance="-checkin").start()
    try:
        kp = producer(settings)
        for i in range(2):
            sid = f"s-ci-{uuid.uuid4().hex[:6]}"
            publish(kp, ATTENDANCE, sid, attendance(sid, client, starts - timedelta(days=i), "absent", clinician))
        db = database(settings)
        assert wait_until(
            lambda: db["client_engagement"].find_one({"_id": client, "windows.7.sessions_expected": 2}), timeout_s=30
        ), "the worker never folded the attendance"
        far = ev.CheckInRecorded(
            check_in_id=f"{client}:2099-01-01",
            client_id=client,
            day="2099-01-01",
            mood=9,
            practice_done=True,
            recorded_at=to_timestamp(datetime.now(UTC)),
        )
        publish(kp, ACTIVITY, client, far)
        today = datetime.now(UTC).date().isoformat()
        sentinel = ev.CheckInRecorded(
            check_in_id=f"{client}:{today}",
            client_id=client,
            day=today,
            mood=4,
            recorded_at=to_timestamp(datetime.now(UTC)),
        )
        publish(kp, ACTIVITY, client, sentinel)
        kp.close()

        def dead_lettered() -> list[Any]:
            return [r for r in dead_letters.records(0.3) if r.key == client.encode()]

        records = wait_until(dead_lettered, timeout_s=30)
        assert records and len(records) == 1, records
        assert dict(records[0].headers)["dlq_error_message"].startswith(b"DAY_IN_FUTURE")
        # the sentinel check-in is folded after it; the sessions are still there
        doc = wait_until(
            lambda: db["client_engagement"].find_one({"_id": client, "windows.7.check_ins": 1}), timeout_s=30
        )
        assert doc is not None and doc["windows"]["7"]["sessions_expected"] == 2
        assert doc["windows"]["7"]["absent"] == 2 and doc["latest"][:4] != "2099"
        db.client.close()
    finally:
        worker.stop()
        dead_letters.close()
