"""Two real service processes, the real broker and store, and the real trace UI.

A gRPC call to the scheduler changes state and emits an event through the
outbox; the engagement service consumes it and persists the effect; the whole
chain is ONE trace in Zipkin.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from iop.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.support import ServiceProcess, auth_metadata, next_slot, wait_for_trace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, ServiceProcess]]:
    procs = {name: ServiceProcess(name) for name in ("scheduler", "engagement")}
    try:
        for p in procs.values():
            p.start()
        yield procs
    finally:
        for p in procs.values():
            assert p.stop() == 0, f"{p.name} did not shut down cleanly; see {p.log_path}"


def schedule_request(**overrides: object) -> scheduler_pb2.ScheduleSessionRequest:
    start = next_slot(days_ahead=1)
    fields: dict[str, object] = {
        "request_id": str(uuid.uuid4()),
        "program_id": "prog-1",
        "clinician_id": "clin-1",
        "client_ids": ["client-1", "client-2"],
        "starts_at": to_timestamp(start),
        "ends_at": to_timestamp(start + timedelta(hours=1)),
        "kind": ev.SESSION_KIND_GROUP,
    }
    fields.update(overrides)
    return scheduler_pb2.ScheduleSessionRequest(**fields)  # type: ignore[arg-type]


def test_grpc_call_outbox_event_consumer_effect_is_one_trace(stack, settings: Settings) -> None:
    tracer = TracerProvider().get_tracer("test-client")
    with tracer.start_as_current_span("platform app: schedule a group", kind=SpanKind.CLIENT) as root:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        trace_id = format(root.get_span_context().trace_id, "032x")
    metadata = auth_metadata(settings, "platform") + list(carrier.items())

    with grpc.insecure_channel(stack["scheduler"].target) as channel:
        session = scheduler_pb2_grpc.SchedulerServiceStub(channel).ScheduleSession(
            schedule_request(), metadata=metadata, timeout=5
        )
    assert session.status == "scheduled"

    # the consumer's effect, read back through the engagement service's API
    attendance = None
    with grpc.insecure_channel(stack["engagement"].target) as channel:
        stub = engagement_pb2_grpc.EngagementServiceStub(channel)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                attendance = stub.GetSessionAttendance(
                    engagement_pb2.GetSessionAttendanceRequest(session_id=session.session_id),
                    metadata=auth_metadata(settings, "clinician"),
                    timeout=5,
                )
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.NOT_FOUND
                time.sleep(0.1)
    assert attendance is not None, "engagement never applied SessionScheduled"
    assert sorted(e.client_id for e in attendance.entries) == ["client-1", "client-2"]
    assert {e.status for e in attendance.entries} == {engagement_pb2.ATTENDANCE_STATUS_EXPECTED}

    def complete(spans: list[dict]) -> bool:
        return any(s["localEndpoint"]["serviceName"] == "engagement" and s["name"].endswith("process") for s in spans)

    spans = wait_for_trace(settings, trace_id, complete)
    by_service: dict[str, list[dict]] = {}
    for s in spans:
        by_service.setdefault(s["localEndpoint"]["serviceName"], []).append(s)
    names = {svc: {(s.get("kind"), s["name"]) for s in ss} for svc, ss in by_service.items()}
    assert ("SERVER", "/iop.scheduler.v1.schedulerservice/schedulesession") in {
        (k, n.lower()) for k, n in names.get("scheduler", set())
    }, names
    assert ("PRODUCER", "iop.scheduling.sessions.v1 send") in names["scheduler"], names
    assert ("CONSUMER", "iop.scheduling.sessions.v1 process") in names["engagement"], names
    assert {s["traceId"] for s in spans} == {trace_id}
    # the consumer's processing span is a child of the producer's span
    producer = next(s for s in by_service["scheduler"] if s.get("kind") == "PRODUCER")
    process = next(s for s in by_service["engagement"] if s["name"].endswith("process"))
    assert process["parentId"] == producer["id"]
    # no PHI in any span attribute: the client ids never appear
    for s in spans:
        for value in (s.get("tags") or {}).values():
            assert "client-1" not in value and "client-2" not in value, s


def test_retry_with_same_request_id_returns_same_session(stack, settings: Settings) -> None:
    request = schedule_request()
    with grpc.insecure_channel(stack["scheduler"].target) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        first = stub.ScheduleSession(request, metadata=auth_metadata(settings, "platform"), timeout=5)
        again = stub.ScheduleSession(request, metadata=auth_metadata(settings, "platform"), timeout=5)
    assert first.session_id == again.session_id


def test_service_drains_and_stops_cleanly_on_sigterm(settings: Settings) -> None:
    proc = ServiceProcess("crisis").start()
    assert proc.stop() == 0
