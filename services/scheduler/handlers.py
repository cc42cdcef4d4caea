"""Event handlers of the scheduler: compromised privacy and dropped connections.

Both flag the session for the client and propose the next slots that satisfy
every rule (alone-windows included). Writes are idempotent per session+client
(conditional updates), so a redelivered event changes nothing.
"""

from __future__ import annotations

import logging

from iop.events.v1 import compliance_pb2, engagement_pb2
from services.plumbing.consumer import Handler, PoisonEvent
from services.plumbing.envelope import CloudEvent
from services.scheduler.booking import Scheduler

log = logging.getLogger(__name__)


class SessionSignalHandlers:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    async def privacy_compromised(self, event: CloudEvent, payload: compliance_pb2.PrivacyCompromised) -> None:
        await self._flag(payload.session_id, payload.client_id, "PRIVACY_COMPROMISED")

    async def connection_dropped(self, event: CloudEvent, payload: engagement_pb2.ConnectionDropped) -> None:
        await self._flag(payload.session_id, payload.client_id, "DISCONNECTED")

    async def _flag(self, session_id: str, client_id: str, reason: str) -> None:
        if not session_id or not client_id:
            raise PoisonEvent(f"{reason} event without session_id or client_id")
        flagged = await self._scheduler.flag_client(session_id, client_id, reason)
        if flagged is None:
            # not a session of this scheduler (e.g. a video-platform test room): nothing to flag
            log.debug("%s for a session the scheduler does not know; ignored", reason)

    def handlers(self) -> dict[str, Handler]:
        return {
            compliance_pb2.PrivacyCompromised.DESCRIPTOR.full_name: self.privacy_compromised,
            engagement_pb2.ConnectionDropped.DESCRIPTOR.full_name: self.connection_dropped,
        }
