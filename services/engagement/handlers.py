"""Event handlers of the engagement service."""

from __future__ import annotations

from iop.events.v1 import scheduling_pb2

from services.engagement.store import AttendanceStore
from services.plumbing.consumer import Handler, PoisonEvent
from services.plumbing.envelope import CloudEvent


class SchedulingHandlers:
    def __init__(self, store: AttendanceStore) -> None:
        self._store = store

    async def session_scheduled(self, event: CloudEvent, payload: scheduling_pb2.SessionScheduled) -> None:
        if not payload.session_id or not payload.client_ids:
            raise PoisonEvent("SessionScheduled without session_id or client_ids")
        await self._store.expect_session(event.id, payload)

    def handlers(self) -> dict[str, Handler]:
        return {scheduling_pb2.SessionScheduled.DESCRIPTOR.full_name: self.session_scheduled}
