"""Audit trail of reads of protected health information (PHI).

Every gRPC method that returns PHI calls `record_phi_access` with who read what
and why; the record lives in the service's own `phi_access_audit` collection.
The audit log names resources by opaque id only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.auth import Principal
from services.plumbing.storage import Document, IndexSpec

AUDIT_COLLECTION = "phi_access_audit"
AUDIT_INDEXES = [
    IndexSpec(AUDIT_COLLECTION, [("resource_id", 1), ("at", -1)], name="resource_at"),
    IndexSpec(AUDIT_COLLECTION, [("principal", 1), ("at", -1)], name="principal_at"),
]


async def record_phi_access(
    db: AsyncDatabase[Document], principal: Principal, action: str, resource_type: str, resource_id: str
) -> None:
    await db[AUDIT_COLLECTION].insert_one(
        {
            "at": datetime.now(UTC),
            "principal": principal.subject,
            "roles": sorted(principal.roles),
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
        }
    )
