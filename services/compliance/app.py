"""Wiring of the compliance process."""

from __future__ import annotations

from iop.compliance.v1 import compliance_pb2_grpc

from services.compliance.api import ACCESS, INDEXES, SERVICE, ComplianceApi
from services.plumbing.consumer import EventConsumer
from services.plumbing.runner import Infrastructure, ServiceDefinition


async def wire(infra: Infrastructure) -> list[EventConsumer]:
    api = ComplianceApi(infra.db)
    infra.grpc.add_service(SERVICE, lambda s: compliance_pb2_grpc.add_ComplianceServiceServicer_to_server(api, s))
    return []


DEFINITION = ServiceDefinition(
    name="compliance", topics=[], indexes=INDEXES, outbox_collections=[], access=ACCESS, wire=wire
)
