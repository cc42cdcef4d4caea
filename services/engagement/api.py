"""gRPC API of the engagement service (iop.engagement.v1.EngagementService)."""

from __future__ import annotations

import grpc
from iop.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from pymongo.asynchronous.database import AsyncDatabase

from services.engagement.store import AttendanceStore
from services.plumbing.audit import record_phi_access
from services.plumbing.auth import current_principal
from services.plumbing.errors import FieldViolations, NotFound
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document

SERVICE = "iop.engagement.v1.EngagementService"
ACCESS = {
    f"/{SERVICE}/GetSessionAttendance": frozenset({"platform", "clinician", "supervisor"}),
}

STATUS = {
    "expected": engagement_pb2.ATTENDANCE_STATUS_EXPECTED,
    "on_time": engagement_pb2.ATTENDANCE_STATUS_ON_TIME,
    "late": engagement_pb2.ATTENDANCE_STATUS_LATE,
    "left_early": engagement_pb2.ATTENDANCE_STATUS_LEFT_EARLY,
    "absent": engagement_pb2.ATTENDANCE_STATUS_ABSENT,
}


class EngagementApi(engagement_pb2_grpc.EngagementServiceServicer):
    def __init__(self, store: AttendanceStore, db: AsyncDatabase[Document]) -> None:
        self._store = store
        self._db = db

    async def GetSessionAttendance(
        self, request: engagement_pb2.GetSessionAttendanceRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.SessionAttendance:
        v = FieldViolations()
        v.require(bool(request.session_id), "session_id", "required")
        v.raise_if_any()
        doc = await self._store.get(request.session_id)
        if doc is None:
            raise NotFound("session_attendance", request.session_id)
        await record_phi_access(self._db, current_principal(), "GetSessionAttendance", "session", request.session_id)
        return engagement_pb2.SessionAttendance(
            session_id=doc["_id"],
            clinician_id=doc["clinician_id"],
            starts_at=to_timestamp(doc["starts_at"]),
            ends_at=to_timestamp(doc["ends_at"]),
            entries=[
                engagement_pb2.AttendanceEntry(
                    client_id=e["client_id"], status=STATUS[e["status"]], minutes_attended=e["minutes_attended"]
                )
                for e in doc["entries"]
            ],
        )
