"""Wiring of the crisis process."""

from __future__ import annotations

from iop.crisis.v1 import crisis_pb2_grpc

from services.crisis.api import ACCESS, RISK_STATE, SERVICE, CrisisApi
from services.crisis.topics import RISK
from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    api = CrisisApi(infra.db, infra.relay)
    infra.grpc.add_service(SERVICE, lambda s: crisis_pb2_grpc.add_CrisisServiceServicer_to_server(api, s))
    return []


DEFINITION = ServiceDefinition(
    name="crisis", topics=[RISK], indexes=[], outbox_collections=[RISK_STATE], access=ACCESS, wire=wire
)
