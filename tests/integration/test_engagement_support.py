"""Helpers for the engagement tests (no tests here): the worker process, signed webhooks,
publishing events as the scheduler does, and taps on topics. All against the real broker/store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from google.protobuf.message import Message
from kafka import KafkaProducer
from pymongo import MongoClient

from iop.events.v1 import engagement_pb2 as ev
from iop.events.v1 import scheduling_pb2
from services.engagement.config import DEV_WEBHOOK_SECRET
from services.engagement.domain import sign
from services.engagement.worker_status import wait_ready
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.support import LOG_DIR, PORT_BASE, ROOT, RUN_ID, ServiceProcess, consumer_at_end, isolated_environment

HTTP_PORT = PORT_BASE + 32
SESSIONS_TOPIC = "iop.scheduling.sessions.v1"
# Each test run's accepted signals go to its own topic (ENGAGEMENT_SIGNALS_TOPIC), so a run's consumers
# do not re-read (and dead-letter) every earlier run's signals for sessions they never saw. The code path
# is the same as with the contract topic iop.engagement.signals.v1.
SIGNALS_TOPIC = f"t{RUN_ID}.engagement.signals.v1"


def engagement_env() -> dict[str, str]:
    return {
        "ENGAGEMENT_HTTP_PORT": str(HTTP_PORT),
        "ENGAGEMENT_WORKER_FLUSH_S": "0.3",
        "ENGAGEMENT_SIGNALS_TOPIC": SIGNALS_TOPIC,
        # the shared broker holds every earlier run's sessions: a run's consumers start at "now"
        "ENGAGEMENT_LEDGER_START": "latest",
        "ENGAGEMENT_WORKER_OFFSET_RESET": "latest",
    }


def engagement_service() -> ServiceProcess:
    return ServiceProcess("engagement", env=engagement_env())


def database(settings: Settings) -> Any:
    return MongoClient(settings.mongodb_uri, tz_aware=True)[f"{settings.mongodb_database_prefix}engagement"]


class WorkerProcess:
    """`python -m services.engagement.worker` as a real OS process."""

    def __init__(self, settings: Settings, instance: str = "") -> None:
        self.settings = settings
        self.env = {**os.environ, **isolated_environment(), **engagement_env()}
        self.env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'gen' / 'python'}"
        self.log_path = LOG_DIR / f"{RUN_ID}-engagement-worker{instance}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.app_id = f"{self.env['KAFKA_GROUP_PREFIX']}.engagement.worker"

    def start(self, timeout_s: float = 60) -> WorkerProcess:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        started = datetime.now(UTC)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.engagement.worker"], cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        try:
            wait_ready(self.settings, self.proc, started, timeout_s)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise type(exc)(f"{exc}; see {self.log_path}") from exc
        return self

    def stop(self, sig: int = 15, timeout_s: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


# --- webhooks -----------------------------------------------------------------------------------------


def zoom_body(event: str, session_id: str, participant_id: str, at: datetime | None = None, **fields: Any) -> bytes:
    at = at or datetime.now(UTC)
    participant: dict[str, Any] = {"customer_key": participant_id, "user_name": "never stored", **fields}
    if event == "meeting.participant_joined":
        participant.setdefault("join_time", at.isoformat())
    if event == "meeting.participant_left":
        participant.setdefault("leave_time", at.isoformat())
    body = {
        "event": event,
        "event_ts": int(at.timestamp() * 1000),
        "payload": {"account_id": "acct-1", "object": {"id": session_id, "participant": participant}},
        "nonce": uuid.uuid4().hex,  # distinct deliveries of identical facts stay distinct
    }
    return json.dumps(body).encode()


def post_webhook(
    body: bytes,
    secret: str = DEV_WEBHOOK_SECRET,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sent = {"x-zm-request-timestamp": ts, "x-zm-signature": sign(secret, ts, body), "content-type": "application/json"}
    sent.update(headers or {})
    url = f"http://127.0.0.1:{HTTP_PORT}/webhooks/video"
    if client is not None:
        return client.post(url, content=body, headers=sent)
    return httpx.post(url, content=body, headers=sent, timeout=10)


# --- events -------------------------------------------------------------------------------------------


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")


def publish(kp: KafkaProducer, topic: str, key: str, message: Message, when: datetime | None = None) -> str:
    event = CloudEvent.new("/iop/scheduler", key, message)
    if when is not None:
        event = CloudEvent(event.id, event.type, event.source, event.subject, when, event.data)
    kp.send(topic, key=key.encode(), value=event.data, headers=event.headers()).get(timeout=10)
    return event.id


def scheduled(
    session_id: str,
    clinician_id: str,
    clients: list[str],
    starts_at: datetime,
    minutes: int = 60,
    program: str = "prog-e",
) -> scheduling_pb2.SessionScheduled:
    return scheduling_pb2.SessionScheduled(
        session_id=session_id,
        program_id=program,
        clinician_id=clinician_id,
        client_ids=clients,
        starts_at=to_timestamp(starts_at),
        ends_at=to_timestamp(starts_at + timedelta(minutes=minutes)),
        kind=scheduling_pb2.SESSION_KIND_GROUP,
    )


class Tap:
    """Reads a topic from its current end: what gets published after the tap was opened."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer = consumer_at_end(settings, topic)
        self.seen: list[tuple[CloudEvent | None, Any]] = []

    def poll(
        self, predicate: Callable[[CloudEvent, Message], bool], timeout_s: float = 15
    ) -> tuple[CloudEvent, Message] | None:
        deadline = time.monotonic() + timeout_s
        while True:
            for match in self._matching(predicate):
                return match
            if time.monotonic() >= deadline:
                return None
            for records in self.consumer.poll(timeout_ms=100).values():
                for r in records:
                    try:
                        self.seen.append((CloudEvent.from_kafka(r.headers, r.value), r))
                    except Exception:
                        self.seen.append((None, r))

    def _matching(self, predicate: Callable[[CloudEvent, Message], bool]) -> list[tuple[CloudEvent, Message]]:
        out = []
        for ce, _ in self.seen:
            if ce is None:
                continue
            try:
                payload = ce.payload()
            except Exception:
                continue
            if predicate(ce, payload):
                out.append((ce, payload))
        return out

    def records(self, wait_s: float = 1.0) -> list[Any]:
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            for records in self.consumer.poll(timeout_ms=100).values():
                for r in records:
                    try:
                        self.seen.append((CloudEvent.from_kafka(r.headers, r.value), r))
                    except Exception:
                        self.seen.append((None, r))
        return [r for _, r in self.seen]

    def close(self) -> None:
        self.consumer.close()


def wait_until(check: Callable[[], Any], timeout_s: float = 20, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    return check()


# A record's broker timestamp (CreateTime) is its producer's clock, this host's, in whole milliseconds,
# truncated: 1 ms, plus headroom. No more: the ledger's slow path publishes a drop only a few ms after
# the webhook answered (5-15 ms on a developer machine), and a wide tolerance would let it through.
CLOCK_TOLERANCE_S = 0.002


def assert_drop_published_by_the_webhook(
    drops: Tap, signals: Tap, session_id: str, signal_id: str, sent: float, answered: float
) -> tuple[CloudEvent, Any, Any]:
    """The crisis service needs a drop's ConnectionDropped within a second of the webhook; that target
    is measured by the benchmarks (tests/bench/crisis_bench.py: webhook -> AlertOpened;
    engagement_bench.py), not in a test, where a slow CI machine would make a wall-clock bound flaky.
    Checked here is what makes it fast: the webhook published the drop itself (the fast path) and had
    the broker's acknowledgement before it answered (at `answered`, time.time()), rather than leaving it
    to the ledger's consumer and outbox (the slow path); and the signal it published names that drop.
    Returns the ConnectionDropped's envelope, payload and record."""
    found = drops.poll(lambda ce, p: isinstance(p, ev.ConnectionDropped) and p.session_id == session_id, timeout_s=30)
    assert found is not None, "no ConnectionDropped"
    record = next(r for ce, r in drops.seen if ce is not None and ce.id == found[0].id)
    produced = record.timestamp / 1000
    assert sent - CLOCK_TOLERANCE_S <= produced <= answered + CLOCK_TOLERANCE_S, (
        f"ConnectionDropped produced {produced - sent:+.3f} s after the request was sent, "
        f"but the reply came {answered - sent:.3f} s after it: not published before the webhook answered"
    )
    published = signals.poll(lambda ce, p: isinstance(p, ev.VideoSignal) and p.signal_id == signal_id, timeout_s=30)
    assert published is not None, "the webhook's signal was not published"
    assert published[1].connection_dropped_event_id == found[0].id, "the webhook did not publish the drop itself"
    return found[0], found[1], record
