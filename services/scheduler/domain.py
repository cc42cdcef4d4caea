"""Pure scheduling rules: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.plumbing.errors import FieldViolations

MAX_SESSION_LENGTH = timedelta(hours=4)
MAX_GROUP_SIZE = 15


@dataclass(frozen=True)
class SessionRequest:
    request_id: str
    program_id: str
    clinician_id: str
    client_ids: tuple[str, ...]
    starts_at: datetime | None
    ends_at: datetime | None
    kind: int  # iop.events.v1.SessionKind


GROUP, INDIVIDUAL, EVALUATION = 1, 2, 3


def validate_session_request(req: SessionRequest, now: datetime) -> None:
    """Raises InvalidArgument naming every problem with the request."""
    v = FieldViolations()
    v.require(bool(req.request_id.strip()), "request_id", "required (idempotency key)")
    v.require(bool(req.program_id.strip()), "program_id", "required")
    v.require(bool(req.clinician_id.strip()), "clinician_id", "required")
    v.require(len(req.client_ids) > 0, "client_ids", "at least one client is required")
    v.require(all(c.strip() for c in req.client_ids), "client_ids", "client ids must be non-empty")
    v.require(len(set(req.client_ids)) == len(req.client_ids), "client_ids", "client ids must be unique")
    v.require(req.kind in (GROUP, INDIVIDUAL, EVALUATION), "kind", "must be GROUP, INDIVIDUAL or EVALUATION")
    if req.kind in (INDIVIDUAL, EVALUATION):
        v.require(len(req.client_ids) <= 1, "client_ids", "an individual session has exactly one client")
    if req.kind == GROUP:
        v.require(len(req.client_ids) <= MAX_GROUP_SIZE, "client_ids", f"a group has at most {MAX_GROUP_SIZE} clients")
    if req.starts_at is None:
        v.add("starts_at", "required")
    if req.ends_at is None:
        v.add("ends_at", "required")
    if req.starts_at is not None and req.ends_at is not None:
        if req.ends_at <= req.starts_at:
            v.add("ends_at", "must be after starts_at")
        elif req.ends_at - req.starts_at > MAX_SESSION_LENGTH:
            v.add("ends_at", f"a session lasts at most {MAX_SESSION_LENGTH}")
        if req.starts_at < now:
            v.add("starts_at", "must not be in the past")
    v.raise_if_any()
