"""Compliance rules through the real service (gRPC, real store and broker): request validation,
credential time ranges, board actions, billing codes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from iop.compliance.v1 import compliance_pb2 as pb
from iop.compliance.v1 import compliance_pb2_grpc
from iop.events.v1 import common_pb2
from services.plumbing.errors import bad_request_violations
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_compliance_api import (
    CALL_TIMEOUT_S,
    NOW,
    evaluate,
    rpc_error,
    start_compliance,
    stub_for,
    uid,
)
from tests.support import ServiceProcess, auth_metadata

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def compliance() -> Iterator[ServiceProcess]:
    proc = start_compliance()
    yield proc
    assert proc.stop() == 0, f"compliance did not stop cleanly; see {proc.log_path}"


@pytest.fixture(scope="module")
def stub(compliance: ServiceProcess) -> Iterator[compliance_pb2_grpc.ComplianceServiceStub]:
    channel, s = stub_for(compliance)
    yield s
    channel.close()


def violations(err: grpc.RpcError) -> set[str]:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err  # type: ignore[attr-defined]
    return {f for f, _ in bad_request_violations(rpc_status.from_call(err))}  # type: ignore[arg-type]


def test_enum_values_out_of_range_are_invalid_arguments(stub, settings: Settings) -> None:
    location = common_pb2.ClientLocation(state="CA", verified=True)
    base: dict[str, Any] = {"clinician_id": uid("clin"), "client_id": uid("client"), "client_location": location}
    assert violations(rpc_error(lambda: evaluate(stub, settings, **base, kind=99))) == {"kind"}
    assert violations(rpc_error(lambda: evaluate(stub, settings, **base, modality=7))) == {"modality"}
    err = rpc_error(
        lambda: stub.CheckCoverage(
            pb.CheckCoverageRequest(
                client_id=uid("client"),
                payer_plan_id="demo-commercial-ppo",
                service_code="S9480",
                modality=42,  # type: ignore[arg-type]
                starts_at=to_timestamp(NOW),
                ends_at=to_timestamp(NOW),
            ),
            metadata=auth_metadata(settings, "platform"),
            timeout=CALL_TIMEOUT_S,
        )
    )
    assert violations(err) == {"modality", "ends_at"}
