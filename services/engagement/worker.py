"""The engagement stream processor: a faust worker, its own process.

    python -m services.engagement.worker

Agents and changelog-backed tables (faust app id "<KAFKA_GROUP_PREFIX>.engagement.worker";
the tables' changelog topics are "<app id>-<table>-changelog"):

- `session_agent` reads the topics keyed by session id (accepted video signals, attendance,
  the scheduler's session facts) into the `sessions` table: live participation per participant
  (speaking time, chat, camera, connection quality). At a session's AttendanceRecorded it forwards
  the client's attendance + participation to the internal by-client topic; session facts go to
  the internal by-clinician topic (re-keying, faust's group_by done explicitly).
- `client_agent` (by-client + iop.engagement.activity.v1, keyed by client id) keeps the `clients`
  table: sessions and daily check-ins of the last 28 days; the 7/28-day windows and the explainable
  engagement-risk score; emits ScoreThresholdCrossed (hysteresis) and OutreachTaskCreated.
- `clinician_agent` (by-clinician) keeps the `clinicians` table: the calendar of the last 28 days;
  on-screen hours, back-to-back sessions, caseload and the burnout-risk score; emits
  ScoreThresholdCrossed.

Guarantees: at least once. Table state survives restarts and rebalances through the changelog.
Nothing is double counted: facts are stored keyed by their own id (session, day), and signals
carry the source offset last folded into each session's state, so a replay after a crash skips
what the changelog already holds. Events are sent (and acknowledged) before the state that
records them, with deterministic ids, so a replay re-sends the same ids (consumers de-duplicate).
Windows use event time (the facts' own timestamps), never arrival time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import uvloop
from faust.streams import _current_event as faust_current_event
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from google.protobuf.message import Message
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pymongo import ReplaceOne

from iop.events.v1 import engagement_pb2 as ev
from iop.events.v1 import scheduling_pb2
from services.engagement import scoring
from services.engagement.config import EngagementConfig, get_config
from services.engagement.domain import event_time_problem
from services.engagement.rules import Rules, load_rules
from services.engagement.store import CLIENT_SNAPSHOTS, CLINICIAN_SNAPSHOTS
from services.engagement.topics import ACTIVITY, ALL, ATTENDANCE, SCORES, SIGNALS
from services.engagement.worker_status import WORKER_STATUS, app_id
from services.plumbing.bus import Topic, dead_letter_topic, ensure_topics
from services.plumbing.envelope import CloudEvent, EnvelopeError, KafkaHeaders
from services.plumbing.logs import configure_logging
from services.plumbing.protos import to_datetime, to_timestamp
from services.plumbing.settings import Settings, get_settings
from services.plumbing.storage import mongo_client, service_database
from services.plumbing.telemetry import current_span, setup_telemetry, shutdown_telemetry
from services.scheduler.topics import SESSIONS

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.engagement.worker")

SOURCE = "/iop/engagement/worker"


def _iso(value: datetime | None) -> str:
    return (value or datetime.now(UTC)).astimezone(UTC).isoformat()


def _headers(raw: Any) -> KafkaHeaders:
    if isinstance(raw, Mapping):
        return [(k, v) for k, v in raw.items() if v is not None]
    return [(k, v) for k, v in (raw or []) if v is not None]


def _trace_headers() -> dict[str, bytes]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v.encode() for k, v in carrier.items()}


class _Getter:
    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        for k, v in carrier:
            if k == key:
                return [v.decode()]
        return None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [k for k, _ in carrier]


_getter = _Getter()


class EngagementWorker:
    """The faust app and its agents, tables and timers."""

    def __init__(self, settings: Settings, config: EngagementConfig, rules: Rules) -> None:
        self.settings = settings
        self.config = config
        self.rules = rules
        self.app_id = app_id(settings)
        self.signals_topic = config.signals_topic
        self.app = faust.App(
            self.app_id,
            broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(",")],
            store="memory://",
            datadir=f"{config.worker_datadir}/{app_id(settings)}",
            topic_partitions=settings.kafka_topic_partitions,
            topic_replication_factor=settings.kafka_replication_factor,
            web_enabled=False,
            producer_acks=-1,
            consumer_auto_offset_reset=config.worker_offset_reset,
            broker_commit_interval=1.0,
            stream_wait_empty=False,
            table_standby_replicas=0,
            # a crashed worker's partitions move to the others after this long
            broker_session_timeout=config.worker_session_timeout_s,
            broker_heartbeat_interval=max(1.0, config.worker_session_timeout_s / 4),
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.source = self.app.topic(self.signals_topic, ATTENDANCE.name, SESSIONS.name, **raw)
        self.by_client = self.app.topic(f"{self.app_id}-by-client", internal=True, **raw)
        self.by_clinician = self.app.topic(f"{self.app_id}-by-clinician", internal=True, **raw)
        self.client_source = self.app.topic(f"{self.app_id}-by-client", ACTIVITY.name, **raw)
        self.scores = self.app.topic(SCORES.name, **raw)
        self.dead_letters = self.app.topic(dead_letter_topic("engagement").name, **raw)
        schema: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")
        table: dict[str, Any] = {"default": None, "schema": schema, "partitions": settings.kafka_topic_partitions}
        self.sessions = self.app.Table("sessions", **table)
        self.clients = self.app.Table("clients", **table)
        self.clinicians = self.app.Table("clinicians", **table)
        self.dirty_clients: set[str] = set()
        self.dirty_clinicians: set[str] = set()
        self.latencies_ms: list[float] = []
        self.signals_applied = 0
        self.skipped_replays = 0
        self._mongo = mongo_client(settings)
        self._db = service_database(self._mongo, settings, "engagement")
        self.app.agent(self.source, name="session_agent")(self.session_agent)
        self.app.agent(self.client_source, name="client_agent")(self.client_agent)
        self.app.agent(self.by_clinician, name="clinician_agent")(self.clinician_agent)
        self.app.timer(config.worker_flush_interval_s)(self.flush)

    # --- helpers ------------------------------------------------------------------------------------

    def _span(self, event: Any, headers: KafkaHeaders, attributes: dict[str, str]) -> Any:
        """Process a record inside a span whose parent is the producer's context (`traceparent`).
        No spans when this process exports none (IOP_TELEMETRY_ENABLED=false): they would cost
        a third of the per-record time for nothing."""
        if not self.settings.telemetry_enabled:
            return contextlib.nullcontext()
        return current_span(
            tracer,
            f"{event.message.topic} process",
            context=propagate.extract(headers, getter=_getter),  # type: ignore[arg-type]
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": event.message.topic,
                "messaging.consumer.group.name": self.app_id,
                **attributes,
            },
        )

    async def _dead_letter(self, event: Any, reason: str) -> None:
        headers = {k: v for k, v in _headers(event.headers)}
        headers.update(
            {
                "dlq_original_topic": event.message.topic.encode(),
                "dlq_original_partition": str(event.message.partition).encode(),
                "dlq_original_offset": str(event.message.offset).encode(),
                "dlq_consumer_group": self.app_id.encode(),
                "dlq_error_type": b"PoisonEvent",
                "dlq_error_message": reason[:500].encode(),
                "dlq_attempts": b"0",
                "dlq_time": datetime.now(UTC).isoformat().encode(),
            }
        )
        await self.dead_letters.send(key=event.key, value=event.value, headers=headers)

    async def _decode_or_dead_letter(self, event: Any, headers: KafkaHeaders) -> tuple[CloudEvent, Message] | None:
        try:
            ce = CloudEvent.from_kafka(headers, event.value)
            return ce, ce.payload()
        except EnvelopeError as exc:
            await self._dead_letter(event, str(exc))
            return None

    async def _emit(self, key: str, message: Message, event_id: str) -> None:
        """Publish an engagement event and wait for the broker's acknowledgement."""
        ce = CloudEvent.new(SOURCE, key, message, event_id=event_id)
        headers = {k: v for k, v in ce.headers()}
        headers.update(_trace_headers())
        fut = await self.scores.send(key=key.encode(), value=ce.data, headers=headers)
        await fut

    async def _forward(self, topic: Any, key: str, fact: dict[str, Any]) -> None:
        await topic.send(key=key.encode(), value=json.dumps(fact).encode(), headers=_trace_headers())

    async def _forward_attendance(self, state: scoring.State, client_id: str, recorded: dict[str, Any]) -> None:
        """The client's attendance in this session with its participation, keyed by session (replaces)."""
        fact = {
            "type": "attendance",
            "session_id": recorded["session_id"],
            "day": recorded["at"][:10],
            "at": recorded["at"],
            "status": recorded["status"],
            "minutes": recorded["minutes"],
            "disconnections": recorded["disconnections"],
            **scoring.participation_summary(state, client_id, recorded["minutes"], recorded["until"]),
        }
        await self._forward(self.by_client, client_id, fact)

    # --- sessions -------------------------------------------------------------------------------------

    async def session_agent(self, stream: Any) -> None:
        """Fold the session-keyed records in batches: each session's state is written to the
        table (one changelog record) once per batch, not once per record. The batch's offsets are
        acknowledged by faust only after this body has handed every write to the producer buffer,
        and the pre-commit flush waits for that buffer (`complete_producer_flush`)."""
        batches = stream.take_events(self.config.worker_batch_max, within=self.config.worker_batch_within_s)
        async for batch in batches:
            touched: dict[str, tuple[Any, scoring.State]] = {}
            for event in batch:
                headers = _headers(event.headers)
                decoded = await self._decode_or_dead_letter(event, headers)
                if decoded is None:
                    continue
                ce, payload = decoded
                session_id = ce.subject or (event.key or b"").decode()
                known = touched.get(session_id)
                state = known[1] if known else self.sessions.get(session_id) or scoring.new_session()
                with self._span(event, headers, {"messaging.message.id": ce.id, "cloudevents.event_type": ce.type}):
                    if await self._on_session_event(event, ce, payload, state):
                        touched[session_id] = (event, state)
            for session_id, (event, state) in touched.items():
                with changelog_partition_of(event):
                    self.sessions[session_id] = state

    async def _on_session_event(self, event: Any, ce: CloudEvent, payload: Message, state: scoring.State) -> bool:
        """Fold one record into its session's state; False when there is nothing to store."""
        topic, offset = event.message.topic, event.message.offset
        signal_id = payload.signal_id if isinstance(payload, ev.VideoSignal) else ""
        if scoring.already_applied(state, topic, offset, signal_id):
            self.skipped_replays += 1
            return False
        if isinstance(payload, ev.VideoSignal):
            if not payload.participant_id or payload.kind not in (
                "participant_joined",
                "participant_left",
                "camera_on",
                "camera_off",
                "speaking",
                "chat",
                "connection_quality",
            ):
                await self._dead_letter(event, "malformed VideoSignal: participant_id or kind")
                return False
            at = to_datetime(payload.occurred_at) or ce.time
            problem = event_time_problem(at, to_datetime(payload.received_at) or ce.time, self.rules.max_event_ahead_s)
            if problem:
                await self._dead_letter(event, problem)
                return False
            scoring.apply_signal(state, payload.participant_id, payload.kind, _iso(at), payload.value)
            self.signals_applied += 1
            if self.config.worker_stats_path:
                self.latencies_ms.append((time.time() - at.timestamp()) * 1000)
            recorded = state.get("attendance", {}).get(payload.participant_id)
            if recorded is not None:  # a signal that arrived after the attendance: correct the client's fact
                await self._forward_attendance(state, payload.participant_id, recorded)
        elif isinstance(payload, ev.AttendanceRecorded):
            starts = to_datetime(payload.session_starts_at) or ce.time
            recorded = {
                "session_id": payload.session_id,
                "at": _iso(starts),
                "status": payload.status,
                "minutes": payload.minutes_attended,
                "disconnections": payload.disconnections,
                "until": state.get("ends_at") or state.get("latest") or _iso(ce.time),
            }
            state.setdefault("attendance", {})[payload.client_id] = recorded
            await self._forward_attendance(state, payload.client_id, recorded)
        elif isinstance(payload, scheduling_pb2.SessionScheduled):
            state.update(
                clinician_id=payload.clinician_id,
                client_ids=list(payload.client_ids),
                starts_at=_iso(to_datetime(payload.starts_at)),
                ends_at=_iso(to_datetime(payload.ends_at)),
            )
            await self._forward(
                self.by_clinician,
                payload.clinician_id,
                {
                    "type": "session",
                    "session_id": payload.session_id,
                    "at": _iso(ce.time),
                    "fact": {
                        "start": state["starts_at"],
                        "end": state["ends_at"],
                        "clients": list(payload.client_ids),
                        "status": "scheduled",
                    },
                },
            )
        elif isinstance(payload, scheduling_pb2.SessionEnded) and payload.clinician_id:
            started = to_datetime(payload.started_at)
            ended = to_datetime(payload.ended_at) or ce.time
            await self._forward(
                self.by_clinician,
                payload.clinician_id,
                {
                    "type": "session",
                    "session_id": payload.session_id,
                    "at": _iso(ended),
                    "fact": {
                        "start": _iso(started) if started else state.get("starts_at", _iso(ended)),
                        "end": _iso(ended),
                        "clients": state.get("client_ids", [a.client_id for a in payload.attendance]),
                        "status": "ended",
                    },
                },
            )
        elif isinstance(payload, scheduling_pb2.SessionCancelled) and state.get("clinician_id"):
            await self._forward(
                self.by_clinician,
                state["clinician_id"],
                {"type": "session", "session_id": payload.session_id, "at": _iso(ce.time), "fact": None},
            )
        scoring.mark_applied(state, topic, offset, signal_id)
        return True

    # --- clients --------------------------------------------------------------------------------------

    async def client_agent(self, stream: Any) -> None:
        async for event in stream.events():
            headers = _headers(event.headers)
            client_id = (event.key or b"").decode()
            with self._span(event, headers, {}):
                state = self.clients.get(client_id) or scoring.new_client()
                if event.message.topic == ACTIVITY.name:
                    decoded = await self._decode_or_dead_letter(event, headers)
                    if decoded is None:
                        continue
                    payload = decoded[1]
                    if not isinstance(payload, ev.CheckInRecorded):
                        continue
                    fact = {
                        "mood": payload.mood,
                        "practice_done": payload.practice_done,
                        "practice_minutes": payload.practice_minutes,
                    }
                    at = _iso(to_datetime(payload.recorded_at))
                    problem = scoring.apply_check_in(state, payload.day, fact, at, self.rules.check_in_max_days_ahead)
                    if problem:  # out of range: dead-lettered, the client's state untouched
                        await self._dead_letter(event, problem)
                        continue
                else:
                    fact = json.loads(event.value)
                    scoring.apply_attendance(state, fact["session_id"], fact)
                await self._score_client(client_id, state)
                self.clients[client_id] = state
                self.dirty_clients.add(client_id)

    async def _score_client(self, client_id: str, state: scoring.State) -> None:
        factors = scoring.client_factors(state, self.rules)
        risk = state.setdefault("risk", {})
        risk["factors"] = [f.as_dict() for f in factors]
        at = to_timestamp(datetime.fromisoformat(state["latest"])) if state.get("latest") else to_timestamp(None)
        crossing = scoring.apply_hysteresis(
            risk, scoring.score(factors), self.rules.client_threshold_up, self.rules.client_threshold_down
        )
        pb_factors = [
            ev.ScoreFactor(name=f.name, value=f.value, weight=f.weight, explanation=f.explanation) for f in factors
        ]
        if crossing is not None:
            await self._emit(
                client_id,
                ev.ScoreThresholdCrossed(
                    subject_id=client_id,
                    score="client_engagement_risk",
                    value=crossing.value,
                    direction=crossing.direction,
                    factors=pb_factors,
                    at=at,
                ),
                _event_id(f"{client_id}:client_engagement_risk:{crossing.sequence}"),
            )
            if crossing.direction == "up":
                task_id = _event_id(f"outreach:{client_id}:{crossing.sequence}")
                await self._emit(
                    client_id,
                    ev.OutreachTaskCreated(
                        task_id=task_id,
                        client_id=client_id,
                        reason="engagement_risk_elevated",
                        at=at,
                        factors=pb_factors,
                        channel="outreach",
                    ),
                    task_id,
                )
        nudge_day = scoring.needs_nudge(state, self.rules)
        if nudge_day is not None:
            task_id = _event_id(f"nudge:{client_id}:{nudge_day}")
            await self._emit(
                client_id,
                ev.OutreachTaskCreated(
                    task_id=task_id,
                    client_id=client_id,
                    reason="consecutive_absences",
                    at=at,
                    factors=pb_factors,
                    channel="nudge",
                ),
                task_id,
            )

    # --- clinicians -----------------------------------------------------------------------------------

    async def clinician_agent(self, stream: Any) -> None:
        async for event in stream.events():
            headers = _headers(event.headers)
            clinician_id = (event.key or b"").decode()
            with self._span(event, headers, {}):
                fact = json.loads(event.value)
                state = self.clinicians.get(clinician_id) or scoring.new_clinician()
                scoring.apply_clinician_session(state, fact["session_id"], fact["fact"], fact["at"])
                load = scoring.clinician_load(state, self.rules)
                factors = scoring.burnout_factors(load, self.rules)
                risk = state.setdefault("risk", {})
                risk["factors"] = [f.as_dict() for f in factors]
                state["load"] = load
                crossing = scoring.apply_hysteresis(
                    risk, scoring.score(factors), self.rules.burnout_threshold_up, self.rules.burnout_threshold_down
                )
                if crossing is not None:
                    await self._emit(
                        clinician_id,
                        ev.ScoreThresholdCrossed(
                            subject_id=clinician_id,
                            score="clinician_burnout_risk",
                            value=crossing.value,
                            direction=crossing.direction,
                            factors=[
                                ev.ScoreFactor(name=f.name, value=f.value, weight=f.weight, explanation=f.explanation)
                                for f in factors
                            ],
                            at=to_timestamp(datetime.fromisoformat(state["latest"])),
                        ),
                        _event_id(f"{clinician_id}:clinician_burnout_risk:{crossing.sequence}"),
                    )
                self.clinicians[clinician_id] = state
                self.dirty_clinicians.add(clinician_id)

    # --- read-side snapshots, status, benchmark figures ------------------------------------------------

    async def flush(self) -> None:
        now = datetime.now(UTC)
        clients, self.dirty_clients = self.dirty_clients, set()
        clinicians, self.dirty_clinicians = self.dirty_clinicians, set()
        try:
            ops = []
            for cid in clients:
                state = self.clients.get(cid)
                if state:
                    windows = {str(d): scoring.client_window(state, d) for d in scoring.WINDOWS}
                    ops.append(
                        ReplaceOne(
                            {"_id": cid},
                            {
                                "windows": windows,
                                "risk": state.get("risk", {}),
                                "latest": state.get("latest"),
                                "updated_at": now,
                            },
                            upsert=True,
                        )
                    )
            if ops:
                await self._db[CLIENT_SNAPSHOTS].bulk_write(ops, ordered=False)
            ops = []
            for cid in clinicians:
                state = self.clinicians.get(cid)
                if state:
                    ops.append(
                        ReplaceOne(
                            {"_id": cid},
                            {
                                "load": state.get("load", {}),
                                "risk": state.get("risk", {}),
                                "latest": state.get("latest"),
                                "updated_at": now,
                            },
                            upsert=True,
                        )
                    )
            if ops:
                await self._db[CLINICIAN_SNAPSHOTS].bulk_write(ops, ordered=False)
            await self._db[WORKER_STATUS].replace_one(
                {"_id": self.app_id},
                {
                    "updated_at": now,
                    "rebalancing": bool(getattr(self.app, "rebalancing", False)),
                    "assigned": len(self.app.assignor.assigned_actives()),
                    "signals_applied": self.signals_applied,
                    "skipped_replays": self.skipped_replays,
                },
                upsert=True,
            )
        except Exception:
            self.dirty_clients |= clients
            self.dirty_clinicians |= clinicians
            log.warning("snapshot flush failed; will retry", exc_info=True)
        if self.config.worker_stats_path:
            latencies, self.latencies_ms = self.latencies_ms, []
            await asyncio.to_thread(write_stats, Path(self.config.worker_stats_path), self.signals_applied, latencies)


def write_stats(path: Path, signals: int, new_latencies_ms: list[float]) -> None:
    """Benchmarks only: the signal count (`path`, JSON) and the latencies since the last call,
    appended one per line to `<path>.latencies` (rewriting them all each time cost the worker
    measurable CPU during the run it measures)."""
    if new_latencies_ms:
        with path.with_name(path.name + ".latencies").open("a") as lines:
            lines.write("".join(f"{ms:.3f}\n" for ms in new_latencies_ms))
    path.write_text(json.dumps({"signals": signals}))


@contextlib.contextmanager
def changelog_partition_of(event: Any) -> Iterator[None]:
    """Table writes in this block go to `event`'s partition of the changelog.

    faust takes a table write's changelog partition from the task's current event (a context
    variable), which a batch leaves at no event or the wrong one. Only the context variable is set:
    the stream's own `current_event` attribute belongs to the task that fills the take buffer
    (setting it from here made that task file a later record under an earlier one, so the later
    one was never processed)."""
    token = faust_current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_current_event.reset(token)


def _event_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"iop:engagement:{name}"))


def worker_topics(settings: Settings, config: EngagementConfig) -> list[Topic]:
    """Everything the worker reads or writes, created before it starts (internal topics too)."""
    signals = Topic(config.signals_topic, SIGNALS.key, SIGNALS.description)
    internal = [
        Topic(f"{app_id(settings)}-by-{what}", f"{what}_id", f"engagement worker: facts re-keyed by {what} id")
        for what in ("client", "clinician")
    ]
    return [*[t for t in ALL if t.name != SIGNALS.name], signals, SESSIONS, dead_letter_topic("engagement"), *internal]


def complete_producer_flush() -> None:
    """Make faust's pre-commit flush wait for every buffered record (this process only).

    faust commits offsets after `ProducerBuffer.flush()`, which returns once no record was handed
    to the Kafka producer for 0.1 s, even with records still buffered, and does not count the
    record being handed over. A commit could then cover events whose table changelog records
    were still in the buffer, and a crash lose their effect (a window for losing a signal; the
    restart test's lost signals were the recovery race patched below). Patched: flush returns
    when the buffer is empty and nothing is being handed over; a stopped buffer with records left
    fails the flush (and so the commit), as in faust.
    """
    if getattr(ProducerBuffer, "_iop_complete_flush", False):
        return
    hand_over = ProducerBuffer._send_pending

    async def counted_hand_over(self: ProducerBuffer, fut: Any) -> None:
        self._iop_handing_over = getattr(self, "_iop_handing_over", 0) + 1  # type: ignore[attr-defined]
        try:
            await hand_over(self, fut)
        finally:
            self._iop_handing_over -= 1  # type: ignore[attr-defined]

    async def complete_flush(self: ProducerBuffer) -> None:
        while self.size or getattr(self, "_iop_handing_over", 0):
            if self.state != "running":
                raise RuntimeError("cannot flush: the producer buffer is not running")
            self.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)

    ProducerBuffer._send_pending = counted_hand_over  # type: ignore[method-assign]
    ProducerBuffer.flush = complete_flush  # type: ignore[method-assign]
    ProducerBuffer._iop_complete_flush = True  # type: ignore[attr-defined]


# How long the broker may hold a fetch that finds no records (faust 0.15 hard-codes 1,500 ms).
FETCH_MAX_WAIT_MS = 100


def fetch_without_long_holds() -> None:
    """The worker's consumer asks the broker to hold an empty fetch FETCH_MAX_WAIT_MS at most.

    aiokafka has one fetch in flight per broker, and asks in it only for the partitions whose
    records it has handed on. While this worker is behind on the signals partitions, the fetch it
    sends covers the idle ones (the internal topics, the other sources); the broker holds that
    fetch until data comes or fetch_max_wait_ms passes, and the signals, read meanwhile, wait
    for it. With faust's 1,500 ms the worker then read a 1.5 s backlog at once, fell behind again,
    and repeated: end-to-end latency went 0.5-1.7 s in a sawtooth from a few seconds into the
    benchmark's 1,000 signals/s, in about half the runs on 2026-12-07 (a fetch that returned
    nothing after 1.0 s, with 1,000 signals/s arriving, then 1,500-1,700 records).
    """
    if getattr(AIOKafkaConsumerThread, "_iop_short_fetch_wait", False):
        return
    create = AIOKafkaConsumerThread._create_worker_consumer

    def create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
    AIOKafkaConsumerThread._iop_short_fetch_wait = True  # type: ignore[attr-defined]


def resume_streams_without_dropping_records() -> None:
    """Resume the stream partitions after a rebalance so that no record is dropped (this process only).

    Two faust 0.15.3 defects, each of which made the restart test lose signals:

    - At the end of a recovery `Recovery.on_recovery_completed` resumes the stream partitions, then
      awaits `perform_seek()` (one committed-offset request per assigned partition, tens of ms), then
      calls `flow_control.resume()`, which clears every agent's queue even when the flow is already
      running. A record fetched and queued during the seek was dropped by that clear, with its read
      offset already past it, so nothing read it again; faust's commit then stepped over the
      one-offset hole (its head-gap check lets a gap of one through), so the loss outlived a
      restart too. Patched: seek while the stream partitions are still paused, clear the queues,
      and only then resume the stream partitions (no await in between), so the clear can only hit
      records of the previous assignment.
    - The fetcher hands its live set of active partitions to aiokafka's `fetched_records`, which
      reads an empty set as "all partitions". When the set empties while a fetch waits (the
      changelog partitions are paused at the end of the changelog reading), aiokafka returns the
      records of the paused stream partitions and moves their positions on; faust discards the
      records as not active. The seek above would then have been undone. Patched: each fetch asks
      for a copy of the set taken as it starts, and an empty set fetches nothing.
    """
    if getattr(Recovery, "_iop_safe_resume", False):
        return

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        # faust's own steps, in its order, but for the stream partitions: seek, clear, resume
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                f"Recovery rebalancing again app id {self.app.consumer_generation_id} param {generation_id}"
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        self.completed.set()
        self.app.flow_control.resume()  # clears the agents' queues
        consumer.resume_flow()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        await self.app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    fetch = AIOKafkaConsumerThread._fetch_records

    async def fetch_active(self: AIOKafkaConsumerThread, consumer: Any, active_partitions: Any, **limits: Any) -> Any:
        if active_partitions is not None:  # None (a client-only app): every partition, as in faust
            active_partitions = frozenset(active_partitions)
            if not active_partitions:
                return {}
        return await fetch(self, consumer, active_partitions, **limits)

    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    AIOKafkaConsumerThread._fetch_records = fetch_active  # type: ignore[method-assign,assignment]
    Recovery._iop_safe_resume = True  # type: ignore[attr-defined]


def main() -> None:
    # The worker's loop is uvloop, as the services' (runner.main): faust and aiokafka schedule
    # several callbacks per record, and asyncio's pure-Python loop ran them at ~15 % of the CPU.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    settings = get_settings()
    config = get_config()
    settings.check_production_safety()
    configure_logging("engagement-worker")
    asyncio.run(ensure_topics(settings, worker_topics(settings, config)))
    setup_telemetry("engagement-worker", settings, instrument=False)
    Path(config.worker_datadir, app_id(settings)).mkdir(parents=True, exist_ok=True)
    complete_producer_flush()
    resume_streams_without_dropping_records()
    fetch_without_long_holds()
    worker = EngagementWorker(settings, config, load_rules())
    try:
        faust.Worker(
            worker.app, loglevel="WARNING", override_logging=False, redirect_stdouts=False
        ).execute_from_commandline()
    finally:
        shutdown_telemetry()


if __name__ == "__main__":
    main()
