"""Wiring of the scheduler process."""

from __future__ import annotations

from iop.scheduler.v1 import scheduler_pb2_grpc

from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition
from services.scheduler.api import ACCESS, SERVICE, SchedulerApi
from services.scheduler.store import INDEXES, SESSIONS_COLLECTION, SessionStore
from services.scheduler.topics import SESSIONS


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    api = SchedulerApi(SessionStore(infra.db), infra.relay, infra.db)
    infra.grpc.add_service(SERVICE, lambda s: scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(api, s))
    return []


DEFINITION = ServiceDefinition(
    name="scheduler",
    topics=[SESSIONS],
    indexes=INDEXES,
    outbox_collections=[SESSIONS_COLLECTION],
    access=ACCESS,
    wire=wire,
)
