"""Wiring of the engagement process."""

from __future__ import annotations

from iop.engagement.v1 import engagement_pb2_grpc

from services.engagement.api import ACCESS, SERVICE, EngagementApi
from services.engagement.handlers import SchedulingHandlers
from services.engagement.store import INDEXES, AttendanceStore
from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition
from services.scheduler.topics import SESSIONS


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    store = AttendanceStore(infra.db)
    api = EngagementApi(store, infra.db)
    infra.grpc.add_service(SERVICE, lambda s: engagement_pb2_grpc.add_EngagementServiceServicer_to_server(api, s))
    scheduling = SchedulingHandlers(store)
    return [infra.consumer("scheduling", [SESSIONS.name], scheduling.handlers())]


DEFINITION = ServiceDefinition(
    name="engagement",
    topics=[],
    indexes=INDEXES,
    outbox_collections=[],
    access=ACCESS,
    wire=wire,
)
