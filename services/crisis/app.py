"""Wiring of the crisis process."""

from __future__ import annotations

from iop.crisis.v1 import crisis_pb2_grpc
from services.crisis import topics
from services.crisis.alerts import AlertService
from services.crisis.api import ACCESS, SERVICE, CrisisApi
from services.crisis.config import get_crisis_settings
from services.crisis.handlers import CrisisHandlers
from services.crisis.ladder import LadderTimer
from services.crisis.link_stored_sessions import link_until_done
from services.crisis.paging import Pager
from services.crisis.reference import load_policies, load_resources
from services.crisis.service import CrisisCore
from services.crisis.store import INDEXES, OUTBOX_COLLECTIONS, CrisisStore
from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition

_alerts: dict[int, AlertService] = {}  # per Infrastructure, for the background job


def build(infra: Infrastructure) -> tuple[CrisisCore, AlertService]:
    settings = get_crisis_settings()
    catalog = load_resources(settings.resources_file)
    policies = load_policies(settings.policy_file)
    store = CrisisStore(infra.db)
    pager = Pager(settings.paging_url, settings.paging_timeout_s)
    alerts = AlertService(store, infra.relay, policies, pager, settings.instance_id, settings.lease_s)
    return CrisisCore(store, infra.relay, alerts, catalog, policies), alerts


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    core, alerts = build(infra)
    _alerts[id(infra)] = alerts
    api = CrisisApi(infra.db, core, alerts)
    infra.grpc.add_service(SERVICE, lambda s: crisis_pb2_grpc.add_CrisisServiceServicer_to_server(api, s))
    handlers = CrisisHandlers(core)
    consumers = [
        infra.consumer("sessions", [topics.SESSIONS_IN], handlers.session_handlers()),
        infra.consumer("outcomes", [topics.OUTCOMES_IN], handlers.outcome_handlers()),
    ]
    # Several consumers in one group split the partitions of the disconnection topic between them.
    consumers += [
        infra.consumer("attendance", [topics.ATTENDANCE_IN], handlers.attendance_handlers())
        for _ in range(max(1, get_crisis_settings().drop_consumers))
    ]
    return consumers


async def ladder_timer(infra: Infrastructure) -> None:
    """The escalation ladder's durable timers (every instance runs one; claims make it safe)."""
    alerts = _alerts[id(infra)]
    try:
        await LadderTimer(alerts, get_crisis_settings()).run()
    finally:
        await alerts.pager.close()


async def care_team_backfill(infra: Infrastructure) -> None:
    """The care team of sessions stored without it (link_stored_sessions.py), until it has completed
    once for the database; in the background, so the service is ready meanwhile, and retried after a
    failure rather than stopping the service, whose ladder matters more."""
    await link_until_done(infra.db)


DEFINITION = ServiceDefinition(
    name="crisis",
    topics=topics.ALL,
    indexes=INDEXES,
    outbox_collections=OUTBOX_COLLECTIONS,
    access=ACCESS,
    wire=wire,
    background=[ladder_timer, care_team_backfill],
)
