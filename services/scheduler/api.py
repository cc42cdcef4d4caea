"""gRPC API of the scheduler (iop.scheduler.v1.SchedulerService)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from iop.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.audit import record_phi_access
from services.plumbing.auth import current_principal
from services.plumbing.errors import NotFound
from services.plumbing.outbox import OutboxRelay
from services.plumbing.protos import to_datetime, to_timestamp
from services.plumbing.storage import Document
from services.scheduler.domain import SessionRequest, validate_session_request
from services.scheduler.store import SessionStore

SERVICE = "iop.scheduler.v1.SchedulerService"
ACCESS = {
    f"/{SERVICE}/ScheduleSession": frozenset({"platform", "clinician", "supervisor"}),
    f"/{SERVICE}/GetSession": frozenset({"platform", "clinician", "supervisor"}),
}


def session_message(doc: Document) -> scheduler_pb2.Session:
    return scheduler_pb2.Session(
        session_id=doc["_id"],
        program_id=doc["program_id"],
        clinician_id=doc["clinician_id"],
        client_ids=doc["client_ids"],
        starts_at=to_timestamp(doc["starts_at"]),
        ends_at=to_timestamp(doc["ends_at"]),
        kind=doc["kind"],
        status=doc["status"],
    )


class SchedulerApi(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, store: SessionStore, relay: OutboxRelay, db: AsyncDatabase[Document]) -> None:
        self._store = store
        self._relay = relay
        self._db = db

    async def ScheduleSession(
        self, request: scheduler_pb2.ScheduleSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        req = SessionRequest(
            request_id=request.request_id,
            program_id=request.program_id,
            clinician_id=request.clinician_id,
            client_ids=tuple(request.client_ids),
            starts_at=to_datetime(request.starts_at),
            ends_at=to_datetime(request.ends_at),
            kind=request.kind,
        )
        validate_session_request(req, datetime.now(UTC))
        doc, created = await self._store.create(req)
        if created:
            self._relay.notify()
        return session_message(doc)

    async def GetSession(
        self, request: scheduler_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        doc = await self._store.get(request.session_id)
        if doc is None:
            raise NotFound("session", request.session_id)
        await record_phi_access(self._db, current_principal(), "GetSession", "session", request.session_id)
        return session_message(doc)
