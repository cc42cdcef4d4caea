"""Wiring of the compliance process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from iop.compliance.v1 import compliance_pb2_grpc
from services.compliance.api import ACCESS, SERVICE, ComplianceApi
from services.compliance.audit_log import BatchedAudit
from services.compliance.billing import BillingDays
from services.compliance.board_actions import BoardActions
from services.compliance.config import ComplianceSettings
from services.compliance.handlers import SchedulingHandlers
from services.compliance.monitor import ExpiryMonitor, run_periodic
from services.compliance.reference import load_reference
from services.compliance.store import INDEXES, OUTBOX_COLLECTIONS, ComplianceStore
from services.compliance.topics import PUBLISHED, SCHEDULING_SESSIONS
from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition

log = logging.getLogger(__name__)
REFERENCE = load_reference()
SETTINGS = ComplianceSettings()


@dataclass
class Parts:
    """What wire() builds and the background jobs use (wire runs first)."""

    audit: BatchedAudit | None = None
    store: ComplianceStore | None = None
    billing: BillingDays | None = None


PARTS = Parts()


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    store = ComplianceStore(infra.db, infra.source, SETTINGS.read_cache_ttl_s, infra.relay)
    await store.seed_policies(REFERENCE.seed_payer_policies)
    if linked := await store.link_unlisted():
        log.info("owner directory: linked %d records stored before it existed", linked)
    PARTS.audit = BatchedAudit(infra.db)
    api = ComplianceApi(store, REFERENCE, PARTS.audit)
    infra.grpc.add_service(SERVICE, lambda s: compliance_pb2_grpc.add_ComplianceServiceServicer_to_server(api, s))
    billing = BillingDays(store, REFERENCE)
    PARTS.store, PARTS.billing = store, billing
    scheduling = SchedulingHandlers(store, REFERENCE, billing)
    return [infra.consumer("scheduling", [SCHEDULING_SESSIONS], scheduling.handlers())]


async def periodic_jobs(infra: Infrastructure) -> None:
    """Closes attended days, watches expiries and settles the board actions' flag clean-ups a crash
    interrupted (ServiceDefinition.background)."""
    assert PARTS.store is not None and PARTS.billing is not None, "wire() runs before background jobs"
    await run_periodic(
        ExpiryMonitor(PARTS.store, REFERENCE), PARTS.billing, BoardActions(PARTS.store), SETTINGS.monitor_interval_s
    )


async def audit_flusher(infra: Infrastructure) -> None:
    """Writes the batched PHI-access audit records (and the last ones at shutdown)."""
    assert PARTS.audit is not None, "wire() builds the audit writer before background jobs start"
    await PARTS.audit.run()


DEFINITION = ServiceDefinition(
    name="compliance",
    topics=PUBLISHED,
    indexes=INDEXES,
    outbox_collections=OUTBOX_COLLECTIONS,
    access=ACCESS,
    wire=wire,
    background=[periodic_jobs, audit_flusher],
)
