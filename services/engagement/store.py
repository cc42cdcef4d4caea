"""The engagement database: the attendance ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from iop.events.v1 import scheduling_pb2
from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.protos import to_datetime
from services.plumbing.storage import Document, IndexSpec

ATTENDANCE_COLLECTION = "session_attendance"
INDEXES = [IndexSpec(ATTENDANCE_COLLECTION, [("clinician_id", 1), ("starts_at", 1)], name="clinician_starts")]


class AttendanceStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._attendance = db[ATTENDANCE_COLLECTION]

    async def expect_session(self, event_id: str, scheduled: scheduling_pb2.SessionScheduled) -> None:
        """Open the ledger of a scheduled session: every client expected. Idempotent."""
        await self._attendance.update_one(
            {"_id": scheduled.session_id},
            {
                "$setOnInsert": {
                    "clinician_id": scheduled.clinician_id,
                    "program_id": scheduled.program_id,
                    "starts_at": to_datetime(scheduled.starts_at),
                    "ends_at": to_datetime(scheduled.ends_at),
                    "entries": [
                        {"client_id": c, "status": "expected", "minutes_attended": 0} for c in scheduled.client_ids
                    ],
                    "opened_by_event": event_id,
                    "opened_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )

    async def get(self, session_id: str) -> Document | None:
        return await self._attendance.find_one({"_id": session_id})
