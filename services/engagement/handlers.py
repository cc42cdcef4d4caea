"""Event handlers of the engagement service: the attendance ledger.

One consumer group reads the scheduler's session facts and the accepted video
signals. Each signal is appended to its session's ledger document together with
the recomputed attendance and, for a drop during an active session that the webhook did not
publish already (or a reconnection delivered after the next outage's drop, which it reveals), the
ConnectionDropped event: one document write (outbox), published at once.
"""

from __future__ import annotations

from datetime import datetime

from iop.events.v1 import common_pb2, scheduling_pb2
from iop.events.v1 import engagement_pb2 as ev
from services.engagement.domain import (
    LEDGER_KINDS,
    LEFT,
    Attendance,
    LastSeen,
    LedgerSignal,
    attendance_for,
    drop_after_reconnection,
    drop_event_id,
    drop_is_current,
    event_time_problem,
    is_connected_sign,
    is_drop,
    is_normal_leave,
    kept_leave_reason,
)
from services.engagement.rules import Rules
from services.engagement.store import ATTENDANCE_COLLECTION, AttendanceStore, ConnectionStore, aware, ledger_signals
from services.engagement.topics import ATTENDANCE
from services.plumbing.consumer import Handler, PoisonEvent, Wanted
from services.plumbing.envelope import CloudEvent
from services.plumbing.outbox import OutboxRelay, OutgoingEvent
from services.plumbing.protos import to_datetime, to_timestamp
from services.plumbing.storage import Document

MODALITIES: dict[int, str] = {common_pb2.MODALITY_AUDIO_ONLY: "audio_only", common_pb2.MODALITY_MIXED: "mixed"}


def entry_doc(a: Attendance) -> Document:
    return {
        "client_id": a.client_id,
        "status": a.status,
        "minutes_attended": round(a.minutes),
        "disconnections": a.disconnections,
        "reconnections": a.reconnections,
        "modality": a.modality,
        "present": a.present,
    }


def compute_entries(
    doc: Document, signals: list[LedgerSignal], ended_at: datetime | None, rules: Rules
) -> list[Attendance]:
    starts_at, ends_at = aware(doc["starts_at"]), aware(doc["ends_at"])
    assert starts_at is not None and ends_at is not None
    return [attendance_for(c, signals, starts_at, ends_at, ended_at, rules) for c in doc.get("client_ids", [])]


def ledger_signal(payload: ev.VideoSignal, fallback: datetime, rules: Rules) -> LedgerSignal:
    """The ledger's record of a signal; a leave's reason as the service keeps it (`kept_leave_reason`:
    the webhook publishes it so; a signal published before 2026-12-07 may hold the platform's text)."""
    return LedgerSignal(
        signal_id=payload.signal_id,
        participant_id=payload.participant_id,
        kind=payload.kind,
        at=to_datetime(payload.occurred_at) or fallback,
        value=payload.value,
        leave_reason=kept_leave_reason(payload.leave_reason, rules) if payload.kind == LEFT else "",
        modality=payload.modality,
    )


def connection_dropped(
    doc: Document,
    signal: LedgerSignal,
    signals: list[LedgerSignal],
    rules: Rules,
    seen: LastSeen | None = None,
) -> ev.ConnectionDropped | None:
    """The ConnectionDropped a signal causes in this session's ledger, if any.

    Used twice with the same event id (drop_event_id): by the webhook, before it publishes the
    signal (the fast path, before it answers; the signal then carries the drop's id), and by the
    ledger, through the outbox in the same write as the signal, for a drop the webhook did not
    publish (the durable path: its read of the ledger was older than the ledger's). Consumers
    de-duplicate by event id. `seen`: when the webhook last saw the participant connected
    (ConnectionStore), which may be newer than the ledger's signals.
    """
    starts_at, ends_at = aware(doc["starts_at"]), aware(doc["ends_at"])
    assert starts_at is not None and ends_at is not None
    if (
        signal.participant_id in doc.get("client_ids", [])
        and is_drop(signal, rules)
        and drop_is_current(
            signal,
            signals,
            starts_at,
            ends_at,
            bool(doc.get("ended")),
            aware(doc.get("started_at")),
            rules=rules,
            seen=seen,
        )
    ):
        return dropped_event(doc, signal)
    return None


def dropped_event(doc: Document, signal: LedgerSignal) -> ev.ConnectionDropped:
    return ev.ConnectionDropped(
        session_id=doc["_id"],
        client_id=signal.participant_id,
        dropped_at=to_timestamp(signal.at),
        clinician_id=doc.get("clinician_id", ""),
        reason="connection_lost",  # not the platform's wording: it can name the participant
        program_id=doc.get("program_id", ""),
    )


class LedgerHandlers:
    def __init__(self, store: AttendanceStore, connections: ConnectionStore, relay: OutboxRelay, rules: Rules) -> None:
        self._store = store
        self._connections = connections
        self._relay = relay
        self._rules = rules

    async def session_scheduled(self, event: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        if not payload.session_id:
            raise PoisonEvent("SessionScheduled without session_id")
        if to_datetime(payload.starts_at) is None or to_datetime(payload.ends_at) is None:
            raise PoisonEvent("SessionScheduled without starts_at/ends_at")
        await self._store.expect_session(event.id, payload)

    async def session_roster_changed(self, event: CloudEvent, payload: scheduling_pb2.SessionRosterChanged) -> None:
        # Same topic and key as SessionScheduled, so the ledger exists unless that event was lost.
        if not await self._store.set_roster(payload.session_id, list(payload.client_ids)):
            raise PoisonEvent(f"UNKNOWN_SESSION: roster for session {payload.session_id!r} that was never scheduled")

    async def session_started(self, event: CloudEvent, payload: scheduling_pb2.SessionStarted) -> None:
        # Same topic and key as SessionScheduled, so it always comes after it: a session this ledger
        # does not know was booked before the ledger existed. Nothing to record (not an error).
        await self._store.mark_started(payload.session_id, to_datetime(payload.started_at))

    async def session_cancelled(self, event: CloudEvent, payload: scheduling_pb2.SessionCancelled) -> None:
        await self._store.cancel(payload.session_id)

    async def session_ended(self, event: CloudEvent, payload: scheduling_pb2.SessionEnded) -> None:
        doc = await self._store.get(payload.session_id)
        if doc is None or doc.get("ended"):
            return  # booked before this ledger existed (see session_started), or already closed
        ended_at = to_datetime(payload.ended_at) or event.time
        entries = compute_entries(doc, ledger_signals(doc), ended_at, self._rules)
        reported = {a.client_id: a for a in payload.attendance}
        events = []
        for a in entries:
            told = reported[a.client_id].modality if a.client_id in reported else 0
            if told in MODALITIES and a.modality != "none":
                a.modality = MODALITIES[told]  # the scheduler knows when the session fell back to the phone
            events.append(
                OutgoingEvent(
                    ATTENDANCE.name,
                    payload.session_id,
                    ev.AttendanceRecorded(
                        session_id=payload.session_id,
                        client_id=a.client_id,
                        status=a.status,
                        minutes_attended=round(a.minutes),
                        disconnections=a.disconnections,
                        reconnections=a.reconnections,
                        modality=a.modality,
                        session_starts_at=to_timestamp(aware(doc["starts_at"])),
                        program_id=doc.get("program_id", ""),
                        clinician_id=doc.get("clinician_id", ""),
                        attendance_id=f"{payload.session_id}:{a.client_id}",
                    ),
                )
            )
        written = await self._store.finalize(payload.session_id, ended_at, [entry_doc(a) for a in entries], events)
        if written is not None:
            self._relay.notify(ATTENDANCE_COLLECTION, payload.session_id, written)

    async def video_signal(self, event: CloudEvent, payload: ev.VideoSignal) -> None:
        if payload.kind not in LEDGER_KINDS:
            return  # participation signals (camera, speaking, chat) are the faust worker's business
        doc = await self._store.get(payload.session_id)
        if doc is None:
            raise PoisonEvent(f"UNKNOWN_SESSION: signal for session {payload.session_id!r} that was never scheduled")
        participants = {*doc.get("client_ids", []), doc.get("clinician_id", "")}
        if payload.participant_id not in participants:
            raise PoisonEvent("UNKNOWN_PARTICIPANT: signal for a participant not expected in this session")
        if payload.signal_id in doc.get("signal_ids", []):
            return  # a replay changes nothing
        signal = ledger_signal(payload, event.time, self._rules)
        problem = event_time_problem(
            signal.at, to_datetime(payload.received_at) or event.time, self._rules.max_event_ahead_s
        )
        if problem:
            raise PoisonEvent(problem)
        signals = [*ledger_signals(doc), signal]
        ended = bool(doc.get("ended"))
        entries = compute_entries(doc, signals, aware(doc.get("ended_at")) if ended else None, self._rules)
        client = signal.participant_id in doc.get("client_ids", [])
        dropped, drop_id = None, drop_event_id(signal.signal_id)
        if is_drop(signal, self._rules) and client:
            seen = await self._connections.latest(payload.session_id, signal.participant_id)
            dropped = connection_dropped(doc, signal, signals, self._rules, seen)
            if dropped is not None and payload.connection_dropped_event_id == drop_id:
                dropped = None  # the webhook published this drop, and the broker had it, before this signal
        elif (is_connected_sign(signal, self._rules) or is_normal_leave(signal, self._rules)) and client:
            # a reconnection delivered after the next drop: that drop was a new outage after all; so
            # is a leave of the client's own (it ends a quality dip: the drop after it starts an outage
            # of its own); any normal leave can show a reading of 0 that started an outage was no drop
            revealed = self._drop_after_reconnection(doc, signal, signals, LastSeen())
            if revealed is not None:  # (only then the webhook's view, which can show it is over)
                seen = await self._connections.latest(payload.session_id, signal.participant_id)
                revealed = self._drop_after_reconnection(doc, signal, signals, seen)
            if revealed is not None:
                dropped, drop_id = dropped_event(doc, revealed), drop_event_id(revealed.signal_id)
        events = [] if dropped is None else [OutgoingEvent(ATTENDANCE.name, payload.session_id, dropped)]
        ids = [] if dropped is None else [drop_id]
        added = await self._store.add_signal(payload.session_id, signal, [entry_doc(a) for a in entries], events, ids)
        if added is not None and events:
            self._relay.notify(ATTENDANCE_COLLECTION, payload.session_id, added)

    def _drop_after_reconnection(
        self, doc: Document, sign: LedgerSignal, signals: list[LedgerSignal], seen: LastSeen
    ) -> LedgerSignal | None:
        starts_at, ends_at = aware(doc["starts_at"]), aware(doc["ends_at"])
        assert starts_at is not None and ends_at is not None
        ended, started_at = bool(doc.get("ended")), aware(doc.get("started_at"))
        return drop_after_reconnection(
            sign, signals, starts_at, ends_at, ended, started_at, rules=self._rules, seen=seen
        )

    def wanted(self) -> dict[str, Wanted]:
        """The video signals attendance is computed from; the consumer skips the others (camera,
        speaking, chat: the faust worker's), most of the stream, without claiming or marking them."""
        return {ev.VideoSignal.DESCRIPTOR.full_name: lambda payload: payload.kind in LEDGER_KINDS}

    def handlers(self) -> dict[str, Handler]:
        return {
            scheduling_pb2.SessionScheduled.DESCRIPTOR.full_name: self.session_scheduled,
            scheduling_pb2.SessionRosterChanged.DESCRIPTOR.full_name: self.session_roster_changed,
            scheduling_pb2.SessionStarted.DESCRIPTOR.full_name: self.session_started,
            scheduling_pb2.SessionCancelled.DESCRIPTOR.full_name: self.session_cancelled,
            scheduling_pb2.SessionEnded.DESCRIPTOR.full_name: self.session_ended,
            ev.VideoSignal.DESCRIPTOR.full_name: self.video_signal,
        }
