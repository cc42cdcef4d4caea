"""The scheduler's database: sessions, with their events in the same document."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from iop.events.v1 import scheduling_pb2
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.plumbing.outbox import OutgoingEvent, new_document_with_outbox
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document, IndexSpec
from services.scheduler.domain import SessionRequest
from services.scheduler.topics import SESSIONS

SESSIONS_COLLECTION = "sessions"
SOURCE = "/iop/scheduler"

INDEXES = [
    IndexSpec(SESSIONS_COLLECTION, [("request_id", 1)], unique=True, name="request_id_unique"),
    IndexSpec(SESSIONS_COLLECTION, [("clinician_id", 1), ("starts_at", 1)], name="clinician_starts"),
]


class SessionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sessions = db[SESSIONS_COLLECTION]

    async def create(self, req: SessionRequest) -> tuple[Document, bool]:
        """Insert the session and its SessionScheduled event in one write.

        Returns (session, created); a retry with the same request_id returns the
        session the first attempt created.
        """
        session_id = str(uuid.uuid4())
        event = scheduling_pb2.SessionScheduled(
            session_id=session_id,
            program_id=req.program_id,
            clinician_id=req.clinician_id,
            client_ids=list(req.client_ids),
            starts_at=to_timestamp(req.starts_at),
            ends_at=to_timestamp(req.ends_at),
            kind=req.kind,  # type: ignore[arg-type]
        )
        doc = {
            "_id": session_id,
            "request_id": req.request_id,
            "program_id": req.program_id,
            "clinician_id": req.clinician_id,
            "client_ids": list(req.client_ids),
            "starts_at": req.starts_at,
            "ends_at": req.ends_at,
            "kind": req.kind,
            "status": "scheduled",
            "created_at": datetime.now(UTC),
        }
        try:
            await self._sessions.insert_one(
                new_document_with_outbox(doc, SOURCE, [OutgoingEvent(SESSIONS.name, session_id, event)])
            )
            return doc, True
        except DuplicateKeyError:
            existing = await self._sessions.find_one({"request_id": req.request_id}, {"outbox": 0})
            if existing is None:  # pragma: no cover - the unique index said it exists
                raise
            return existing, False

    async def get(self, session_id: str) -> Document | None:
        return await self._sessions.find_one({"_id": session_id}, {"outbox": 0})
