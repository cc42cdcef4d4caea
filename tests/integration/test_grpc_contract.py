"""gRPC bootstrap against a real service process: auth, precise errors, health, reflection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from iop.crisis.v1 import crisis_pb2, crisis_pb2_grpc
from iop.events.v1 import crisis_pb2 as crisis_events
from iop.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from services.plumbing.auth import mint_token
from services.plumbing.errors import bad_request_violations, error_reason
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.support import ServiceProcess, auth_metadata

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scheduler() -> Iterator[ServiceProcess]:
    proc = ServiceProcess("scheduler").start()
    yield proc
    proc.stop()


def rich_status(err: grpc.RpcError) -> status_pb2.Status:
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert st is not None, "no google.rpc.Status in trailers"
    return st


def call_schedule(target: str, request: scheduler_pb2.ScheduleSessionRequest, metadata: list) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as info:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).ScheduleSession(request, metadata=metadata, timeout=5)
    return info.value  # type: ignore[return-value]


def test_bad_input_gets_invalid_argument_with_every_field_violation(scheduler, settings: Settings) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    request = scheduler_pb2.ScheduleSessionRequest(
        request_id="r-bad",
        program_id="",
        clinician_id="clin-1",
        client_ids=["a", "a"],
        starts_at=to_timestamp(start),
        ends_at=to_timestamp(start - timedelta(minutes=5)),
    )
    err = call_schedule(scheduler.target, request, auth_metadata(settings, "platform"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {f for f, _ in bad_request_violations(rich_status(err))}
    assert {"program_id", "client_ids", "kind", "ends_at", "starts_at"} <= fields


def test_missing_bad_or_expired_token_is_unauthenticated(scheduler, settings: Settings) -> None:
    request = scheduler_pb2.ScheduleSessionRequest(request_id="r-auth")
    forged = Settings(IOP_JWT_SECRET="not-the-real-key-" + "x" * 32)  # type: ignore[call-arg]
    cases = {
        "MISSING_TOKEN": [],
        "MALFORMED_AUTHORIZATION": [("authorization", "Basic abc")],
        "INVALID_TOKEN": [("authorization", f"Bearer {mint_token(forged, 'u', ['platform'])}")],
        "TOKEN_EXPIRED": [("authorization", f"Bearer {mint_token(settings, 'u', ['platform'], ttl_s=-10)}")],
    }
    for reason, metadata in cases.items():
        err = call_schedule(scheduler.target, request, metadata)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, reason
        assert error_reason(rich_status(err)) == reason


def test_wrong_role_is_permission_denied(scheduler, settings: Settings) -> None:
    err = call_schedule(
        scheduler.target, scheduler_pb2.ScheduleSessionRequest(request_id="r"), auth_metadata(settings, "partner")
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(rich_status(err)) == "ROLE_NOT_ALLOWED"


def test_unknown_session_is_not_found(scheduler, settings: Settings) -> None:
    with grpc.insecure_channel(scheduler.target) as channel, pytest.raises(grpc.RpcError) as info:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).GetSession(
            scheduler_pb2.GetSessionRequest(session_id="nope"),
            metadata=auth_metadata(settings, "platform"),
            timeout=5,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_health_and_reflection_are_open_without_token(scheduler) -> None:
    with grpc.insecure_channel(scheduler.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(
            stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        )
    names = {s.name for s in replies[0].list_services_response.service}
    assert "iop.scheduler.v1.SchedulerService" in names and "grpc.health.v1.Health" in names


def test_bad_input_changes_nothing(settings: Settings) -> None:
    crisis = ServiceProcess("crisis").start()
    try:
        with grpc.insecure_channel(crisis.target) as channel:
            stub = crisis_pb2_grpc.CrisisServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.SetRiskLevel(
                    crisis_pb2.SetRiskLevelRequest(
                        client_id="k-untouched", level=crisis_events.RISK_LEVEL_HIGH, source="guess"
                    ),
                    metadata=auth_metadata(settings, "clinician"),
                    timeout=5,
                )
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            with pytest.raises(grpc.RpcError) as info:
                stub.GetRiskState(
                    crisis_pb2.GetRiskStateRequest(client_id="k-untouched"),
                    metadata=auth_metadata(settings, "supervisor"),
                    timeout=5,
                )
            assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    finally:
        crisis.stop()
