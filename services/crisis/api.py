"""gRPC API of the crisis service (iop.crisis.v1.CrisisService)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from iop.crisis.v1 import crisis_pb2, crisis_pb2_grpc
from iop.events.v1 import crisis_pb2 as crisis_events
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.crisis.topics import RISK
from services.plumbing.audit import record_phi_access
from services.plumbing.auth import current_principal
from services.plumbing.errors import FieldViolations, NotFound
from services.plumbing.outbox import OutboxRelay, OutgoingEvent, with_outbox
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document

SERVICE = "iop.crisis.v1.CrisisService"
ACCESS = {
    f"/{SERVICE}/SetRiskLevel": frozenset({"clinician", "supervisor"}),
    f"/{SERVICE}/GetRiskState": frozenset({"clinician", "supervisor", "platform"}),
}
RISK_STATE = "risk_state"
SOURCES = frozenset({"c-ssrs", "phq9-item9", "clinician-flag"})
SOURCE = "/iop/crisis"


class CrisisApi(crisis_pb2_grpc.CrisisServiceServicer):
    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self._db = db
        self._risk = db[RISK_STATE]
        self._relay = relay

    async def SetRiskLevel(
        self, request: crisis_pb2.SetRiskLevelRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.RiskState:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.require(request.level != crisis_events.RISK_LEVEL_UNSPECIFIED, "level", "required: LOW, MODERATE or HIGH")
        v.require(request.source in SOURCES, "source", f"must be one of {', '.join(sorted(SOURCES))}")
        v.raise_if_any()
        principal = current_principal()
        now = datetime.now(UTC)
        current = await self._risk.find_one({"_id": request.client_id}, {"level": 1})
        previous = current["level"] if current else crisis_events.RISK_LEVEL_UNSPECIFIED
        update: dict[str, object] = {"$set": {"level": request.level, "source": request.source, "updated_at": now}}
        if previous != request.level:
            changed = crisis_events.RiskLevelChanged(
                client_id=request.client_id,
                previous_level=previous,
                level=request.level,
                source=request.source,
                recorded_by=principal.subject,
                changed_at=to_timestamp(now),
            )
            update = with_outbox(update, SOURCE, [OutgoingEvent(RISK.name, request.client_id, changed)])
        doc = await self._risk.find_one_and_update(
            {"_id": request.client_id}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None  # upsert=True always returns the document
        if previous != request.level:
            self._relay.notify()
        return crisis_pb2.RiskState(
            client_id=doc["_id"], level=doc["level"], source=doc["source"], updated_at=to_timestamp(doc["updated_at"])
        )

    async def GetRiskState(
        self, request: crisis_pb2.GetRiskStateRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.RiskState:
        doc = await self._risk.find_one({"_id": request.client_id}, {"outbox": 0})
        if doc is None:
            raise NotFound("risk_state", request.client_id)
        await record_phi_access(self._db, current_principal(), "GetRiskState", "client", request.client_id)
        return crisis_pb2.RiskState(
            client_id=doc["_id"], level=doc["level"], source=doc["source"], updated_at=to_timestamp(doc["updated_at"])
        )
