"""Wiring of the scheduler process."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from iop.scheduler.v1 import scheduler_pb2_grpc
from services.plumbing.bus import ensure_topics
from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition
from services.scheduler.api import ACCESS, SERVICE, SchedulerApi
from services.scheduler.booking import Scheduler
from services.scheduler.compliance_client import ComplianceGateway
from services.scheduler.config import get_scheduler_settings
from services.scheduler.domain import load_reference_data
from services.scheduler.handlers import SessionSignalHandlers
from services.scheduler.programs import Programs
from services.scheduler.seat_starts import backfill_until_done
from services.scheduler.store import INDEXES, OUTBOX_COLLECTIONS, SchedulerStore
from services.scheduler.topics import ATTENDANCE, FHIR, PRIVACY, SESSIONS

log = logging.getLogger(__name__)

ORPHAN_AGE = timedelta(minutes=2)
ORPHAN_SWEEP_S = 120.0  # a scan of recent claims (FerretDB reads the collection)


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    reference = load_reference_data()
    store = SchedulerStore(infra.db, infra.relay)
    compliance = ComplianceGateway(infra.settings)
    scheduler = Scheduler(
        store,
        reference,
        compliance.evaluate,
        compliance.check_licensure,
        attendance_grace_min=get_scheduler_settings().attendance_grace_min,
    )
    api = SchedulerApi(scheduler, Programs(store, reference), infra.db)
    infra.grpc.add_service(SERVICE, lambda s: scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(api, s))
    await ensure_topics(infra.settings, [PRIVACY, ATTENDANCE])  # consumed: must exist before subscribing
    signals = SessionSignalHandlers(scheduler)
    return [infra.consumer("session-signals", [PRIVACY.name, ATTENDANCE.name], signals.handlers())]


async def sweep_orphan_claims(infra: Infrastructure) -> None:
    """Undo the reservations of bookings that never got stored (a process died mid-booking):
    claims between 2 and 10 minutes old, and their bookings' entries in the day ledgers."""
    store = SchedulerStore(infra.db)
    while True:
        await asyncio.sleep(ORPHAN_SWEEP_S)
        try:
            now = datetime.now(UTC)
            released = await store.release_orphans(now - 5 * ORPHAN_AGE, now - ORPHAN_AGE)
            if released:
                log.warning("released %d orphaned slot reservations and their ledger entries", released)
        except Exception:
            log.warning("orphan sweep failed; will retry", exc_info=True)


async def backfill_seat_starts(infra: Infrastructure) -> None:
    """The seats stored before 2026-12-08 get their session's start, once per database (seat_starts)."""
    await backfill_until_done(infra.db)


DEFINITION = ServiceDefinition(
    name="scheduler",
    topics=[SESSIONS, FHIR],
    indexes=INDEXES,
    outbox_collections=OUTBOX_COLLECTIONS,
    access=ACCESS,
    wire=wire,
    background=[sweep_orphan_claims, backfill_seat_starts],
)
