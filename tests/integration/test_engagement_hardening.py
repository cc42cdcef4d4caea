"""The engagement process against the real broker and store, on inputs a review found mishandled:
reused or odd submission ids, another clinician's risk factors, drops of a session running past
its scheduled end, event times in the future, out-of-range and oversized webhooks, check-in days."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from grpc_status import rpc_status

from iop.engagement.v1 import engagement_pb2 as pb
from iop.engagement.v1 import engagement_pb2_grpc
from services.engagement.store import CLINICIAN_SNAPSHOTS
from services.plumbing.errors import error_reason
from services.plumbing.settings import Settings
from tests.integration.test_engagement_support import (
    database,
    engagement_service,
)
from tests.support import ServiceProcess, auth_metadata

pytestmark = pytest.mark.integration

ATTENDANCE = "iop.engagement.attendance.v1"
OUTCOMES = "iop.engagement.outcomes.v1"
FHIR = "iop.engagement.fhir.v1"


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    proc = engagement_service().start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, f"engagement did not stop cleanly; see {proc.log_path}"


@pytest.fixture(scope="module")
def stub(service: ServiceProcess) -> Iterator[engagement_pb2_grpc.EngagementServiceStub]:
    with grpc.insecure_channel(service.target) as channel:
        yield engagement_pb2_grpc.EngagementServiceStub(channel)


# --- GetRiskFactors ---------------------------------------------------------------------------------


def test_a_clinician_reads_only_their_own_risk_factors(stub, settings: Settings) -> None:
    me, other = f"clin-{uuid.uuid4().hex[:6]}", f"clin-{uuid.uuid4().hex[:6]}"
    db = database(settings)
    for clinician in (me, other):
        db[CLINICIAN_SNAPSHOTS].insert_one(
            {
                "_id": clinician,
                "load": {},
                "risk": {"value": 0.9, "elevated": True, "factors": []},
                "latest": datetime.now(UTC).isoformat(),
            }
        )
    db.client.close()
    as_me = auth_metadata(settings, "clinician", me)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetClinicianEngagement(pb.GetClinicianEngagementRequest(clinician_id=other), metadata=as_me)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # the rule GetRiskFactors must follow too
    with pytest.raises(grpc.RpcError) as err:
        stub.GetRiskFactors(pb.GetRiskFactorsRequest(clinician_id=other), metadata=as_me)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(err.value)
    assert status is not None and error_reason(status) == "NOT_OWN_RECORD"
    assert stub.GetRiskFactors(pb.GetRiskFactorsRequest(clinician_id=me), metadata=as_me).subject_id == me
    supervisor = auth_metadata(settings, "supervisor")
    assert stub.GetRiskFactors(pb.GetRiskFactorsRequest(clinician_id=other), metadata=supervisor).score.elevated
