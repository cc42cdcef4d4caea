"""Event handlers: the scheduler's session facts, engagement's disconnections and crisis signals.

Every handler is idempotent on its own (derived ids, conditional writes), on top of the
consumer base's de-duplication by event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from opentelemetry import trace
from pymongo.errors import PyMongoError

from iop.events.v1 import engagement_pb2, scheduling_pb2
from services.crisis.domain import PHQ9_ITEM_MAX, treating_clinicians
from services.crisis.events import location_dict
from services.crisis.service import CrisisCore, DropOutcome
from services.crisis.store import session_clinicians
from services.plumbing.consumer import Handler, PoisonEvent, delivery_is_first
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_datetime

log = logging.getLogger(__name__)
T = TypeVar("T")


async def store_retries(step: Callable[[], Awaitable[T]], attempts: int = 4) -> T:
    """Retry a safety-critical step on a transient store error (FerretDB on SQLite answers
    SQLITE_BUSY under write contention) before the consumer's own retries and dead letter.
    The steps are idempotent (derived ids, unique inserts), so a retry never doubles anything."""
    for attempt in range(attempts):
        try:
            return await step()
        except PyMongoError as exc:
            if attempt == attempts - 1:
                raise
            trace.get_current_span().add_event("store error; retrying", {"error.type": type(exc).__name__})
            await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


class CrisisHandlers:
    def __init__(self, core: CrisisCore) -> None:
        self.core = core
        self.store = core.store

    def session_handlers(self) -> dict[str, Handler]:
        return {
            "iop.events.v1.SessionScheduled": self.on_scheduled,
            "iop.events.v1.SessionCheckedIn": self.on_checked_in,
            "iop.events.v1.SessionStarted": self.on_started,
            "iop.events.v1.SessionEnded": self.on_ended,
            "iop.events.v1.SessionInterrupted": self.on_interrupted,
            "iop.events.v1.SessionCancelled": self.on_cancelled,
            "iop.events.v1.SessionRosterChanged": self.on_roster_changed,
        }

    def attendance_handlers(self) -> dict[str, Handler]:
        return {"iop.events.v1.ConnectionDropped": self.on_connection_dropped}

    def outcome_handlers(self) -> dict[str, Handler]:
        return {"iop.events.v1.CrisisSignal": self.on_crisis_signal}

    async def on_scheduled(self, event: CloudEvent, m: scheduling_pb2.SessionScheduled) -> None:
        """The session and who treats its clients (its care team: `CrisisApi` lets a clinician reach
        the crisis data of the clients they treat). A seat taken before this event came (a
        SessionRosterChanged of the scheduler's same relay pass) keeps its client."""
        if not m.session_id:
            raise PoisonEvent("SessionScheduled without session_id")
        stored = await self.store.session(m.session_id) or {}
        clients = list(dict.fromkeys([*m.client_ids, *stored.get("client_ids", [])]))
        treating = treating_clinicians(m.clinician_id, [(f.clinician_id, f.role) for f in m.treating_facilitators])
        fields = {
            "program_id": m.program_id,
            "clinician_id": m.clinician_id,
            "facilitator_ids": [c for c in treating if c != m.clinician_id],
            "client_ids": clients,
        }
        if m.backup_line:
            fields["backup_line"] = m.backup_line
        await self.store.upsert_session(m.session_id, fields, {"status": "scheduled"})
        if stored.get("status") != "cancelled":  # a redelivery after the cancellation links nobody
            await self.store.link_care_team(m.session_id, clients, treating)

    async def on_roster_changed(self, event: CloudEvent, m: scheduling_pb2.SessionRosterChanged) -> None:
        """A client took a seat in a group after it was booked: the group's treating clinicians treat
        them too (the scheduler counts seats). A seat given back (`removed`, which the scheduler does
        not publish) is left as it was."""
        if not m.session_id:
            raise PoisonEvent("SessionRosterChanged without session_id")
        added = [c for c in m.added if c]
        if not added:
            return
        session = await self.store.session(m.session_id) or {}
        clients = list(dict.fromkeys([*session.get("client_ids", []), *added]))
        await self.store.upsert_session(m.session_id, {"client_ids": clients}, {"status": "scheduled"})
        if session.get("status") != "cancelled":
            await self.store.link_care_team(m.session_id, added, session_clinicians(session))

    async def on_started(self, event: CloudEvent, m: scheduling_pb2.SessionStarted) -> None:
        if not m.session_id:
            raise PoisonEvent("SessionStarted without session_id")
        fields: dict[str, object] = {"status": "in_progress", "started_at": to_datetime(m.started_at) or event.time}
        for name, value in (
            ("clinician_id", m.clinician_id),
            ("backup_line", m.backup_line),
            ("program_id", m.program_id),
        ):
            if value:
                fields[name] = value
        if m.client_ids:
            fields["client_ids"] = list(m.client_ids)
        await self.store.upsert_session(m.session_id, fields, {})
        await self.store.link_care_team(m.session_id, list(m.client_ids), [m.clinician_id])  # who it names

    async def on_ended(self, event: CloudEvent, m: scheduling_pb2.SessionEnded) -> None:
        if not m.session_id:
            raise PoisonEvent("SessionEnded without session_id")
        ended_at = to_datetime(m.ended_at) or event.time  # a drop is judged against it (decide_on_drop)
        await self.store.upsert_session(m.session_id, {"status": "ended", "ended_at": ended_at}, {})

    async def on_cancelled(self, event: CloudEvent, m: scheduling_pb2.SessionCancelled) -> None:
        if not m.session_id:
            raise PoisonEvent("SessionCancelled without session_id")
        cancelled_at = to_datetime(m.cancelled_at) or event.time
        await self.store.upsert_session(m.session_id, {"status": "cancelled", "cancelled_at": cancelled_at}, {})
        # a cancelled session treats nobody, as in the scheduler's care team (after the status:
        # store.link_stored_sessions reads it again after linking)
        await self.store.unlink_care_team(m.session_id)

    async def on_interrupted(self, event: CloudEvent, m: scheduling_pb2.SessionInterrupted) -> None:
        if not m.session_id:
            raise PoisonEvent("SessionInterrupted without session_id")
        # The session stays "in progress" for crisis purposes: each client's own ConnectionDropped
        # (from engagement) drives the response, so one disconnection is never handled twice.
        await self.store.upsert_session(m.session_id, {"interrupted_reason": m.reason}, {})

    async def on_checked_in(self, event: CloudEvent, m: scheduling_pb2.SessionCheckedIn) -> None:
        if not m.session_id or not m.client_id:
            raise PoisonEvent("SessionCheckedIn without session_id or client_id")
        await self.core.record_checkin(
            event_id=event.id,
            client_id=m.client_id,
            session_id=m.session_id,
            location=location_dict(m.location),
            backup_phone=m.backup_phone,
            at=to_datetime(m.checked_in_at) or event.time,
        )

    async def on_connection_dropped(self, event: CloudEvent, m: engagement_pb2.ConnectionDropped) -> None:
        if not m.client_id:
            return  # a clinician's or an unmapped participant's drop: not a crisis matter
        # The drop is judged by when it happened (it may be processed after the session's end, which
        # comes on another topic); the response is timed from now, when it is processed: the alert
        # opens now and its ladder runs from now, so no rung is due in the past.
        dropped_at = to_datetime(m.dropped_at) or event.time
        now = datetime.now(UTC)
        calls = 0

        async def respond() -> DropOutcome:
            nonlocal calls
            calls += 1
            return await self.core.on_disconnect(
                trigger_id=event.id,
                client_id=m.client_id,
                session_id=m.session_id,
                clinician_id=m.clinician_id,
                program_id=m.program_id,
                reason="CONNECTION_DROPPED",
                now=now,
                dropped_at=dropped_at,
                first_delivery=calls == 1 and delivery_is_first(),  # a retry may follow a partial write
            )

        outcome = await store_retries(respond)
        trace.get_current_span().set_attribute("crisis.alert_id", outcome.alert_id)

    async def on_crisis_signal(self, event: CloudEvent, m: engagement_pb2.CrisisSignal) -> None:
        if not m.client_id:
            raise PoisonEvent("CrisisSignal without client_id")
        if not 0 <= m.value <= PHQ9_ITEM_MAX:
            # not an item-9 answer: neither a reason to raise risk nor one to ignore (the value is
            # not in the reason, which travels in the dead letter's headers)
            raise PoisonEvent(f"CrisisSignal value outside PHQ-9 item 9's 0-{PHQ9_ITEM_MAX}")
        await self.core.on_crisis_signal(
            trigger_id=event.id, client_id=m.client_id, value=m.value, now=datetime.now(UTC)
        )
