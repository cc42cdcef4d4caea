"""A service started with OTEL_EXPORTER_OTLP_ENDPOINT (as docker-compose and Kubernetes start it)
sends its spans over OTLP/gRPC: here to a loopback collector, which sees a call's server span
under the service's resource."""

from __future__ import annotations

import time

import grpc
import pytest

from iop.compliance.v1 import compliance_pb2 as pb
from iop.compliance.v1 import compliance_pb2_grpc
from tests.support import ServiceProcess, auth_metadata, isolated_settings
from tests.unit.test_otlp_export import Collector

pytestmark = pytest.mark.integration


def test_a_service_exports_its_spans_over_otlp_when_told_to() -> None:
    collector = Collector()
    service = ServiceProcess(
        "compliance", env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    ).start()
    try:
        with grpc.insecure_channel(service.target) as channel:
            stub = compliance_pb2_grpc.ComplianceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetPayerPolicy(
                    pb.GetPayerPolicyRequest(plan_id="no-such-plan"),
                    metadata=auth_metadata(isolated_settings(), "partner"),
                    timeout=10,
                )
            assert refused.value.code() is grpc.StatusCode.NOT_FOUND
        method = "/iop.compliance.v1.ComplianceService/GetPayerPolicy"
        deadline = time.monotonic() + 20
        while method not in collector.names() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert method in collector.names()
        [resource] = {
            attribute.value.string_value
            for request in collector.requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            if any(span.name == method for span in scope_spans.spans)
            for attribute in resource_spans.resource.attributes
            if attribute.key == "service.name"
        }
        assert resource == "compliance"
    finally:
        assert service.stop() == 0, f"compliance did not stop cleanly; see {service.log_path}"
        collector.server.stop(0)
