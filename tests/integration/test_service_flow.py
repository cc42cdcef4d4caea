"""Real service processes, the real broker and store, and the real trace UI.

A gRPC call to the scheduler (which asks compliance) changes state and emits an
event through the outbox; the engagement service consumes it and persists the
effect; the whole chain is ONE trace in Zipkin.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from iop.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from iop.scheduler.v1 import scheduler_pb2
from services.plumbing.settings import Settings
from tests.integration.test_scheduler_support import Api, local_day_at
from tests.support import ServiceProcess, auth_metadata, wait_for_trace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, ServiceProcess]]:
    # compliance first: the scheduler asks it before every booking
    procs = {name: ServiceProcess(name) for name in ("compliance", "scheduler", "engagement")}
    try:
        for p in procs.values():
            p.start()
        yield procs
    finally:
        for p in procs.values():
            assert p.stop() == 0, f"{p.name} did not shut down cleanly; see {p.log_path}"


@pytest.fixture(scope="module")
def api(stack: dict[str, ServiceProcess], settings: Settings) -> Iterator[Api]:
    client = Api(settings, stack["scheduler"].target, stack["compliance"].target)
    yield client
    client.close()


def booking(api: Api, metadata: list[tuple[str, str]] | None = None) -> scheduler_pb2.Session:
    program = api.program()
    clinician, client = api.clinician(), api.client()
    return api.book(program.program_id, clinician, [client], local_day_at(days_ahead=1, hour=10), metadata=metadata)


def test_grpc_call_outbox_event_consumer_effect_is_one_trace(stack, api: Api, settings: Settings) -> None:
    tracer = TracerProvider().get_tracer("test-client")
    with tracer.start_as_current_span("platform app: schedule a group", kind=SpanKind.CLIENT) as root:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        trace_id = format(root.get_span_context().trace_id, "032x")
    metadata = auth_metadata(settings, "platform") + list(carrier.items())

    session = booking(api, metadata)
    assert session.status == "booked"
    (client_id,) = session.client_ids

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
                    timeout=30,
                )
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.NOT_FOUND
                time.sleep(0.1)
    assert attendance is not None, "engagement never applied SessionScheduled"
    assert [e.client_id for e in attendance.entries] == [client_id]
    assert {e.status for e in attendance.entries} == {engagement_pb2.ATTENDANCE_STATUS_EXPECTED}

    def complete(spans: list[dict]) -> bool:
        # each service exports its spans in its own batches: wait for all three services' parts
        seen = {(s["localEndpoint"]["serviceName"], s.get("kind"), s["name"].lower()) for s in spans}
        return (
            ("scheduler", "SERVER", "/iop.scheduler.v1.schedulerservice/booksession") in seen
            and any(svc == "engagement" and name.endswith("process") for svc, _, name in seen)
            and any(svc == "compliance" and kind == "SERVER" and "evaluatesession" in name for svc, kind, name in seen)
        )

    spans = wait_for_trace(settings, trace_id, complete)
    by_service: dict[str, list[dict]] = {}
    for s in spans:
        by_service.setdefault(s["localEndpoint"]["serviceName"], []).append(s)
    names = {svc: {(s.get("kind"), s["name"]) for s in ss} for svc, ss in by_service.items()}
    assert ("SERVER", "/iop.scheduler.v1.schedulerservice/booksession") in {
        (k, n.lower()) for k, n in names.get("scheduler", set())
    }, names
    assert ("PRODUCER", "iop.scheduling.sessions.v1 send") in names["scheduler"], names
    assert ("CONSUMER", "iop.scheduling.sessions.v1 process") in names["engagement"], names
    assert {s["traceId"] for s in spans} == {trace_id}
    # the consumer's processing span is a child of the producer's span
    producer = next(s for s in by_service["scheduler"] if s.get("kind") == "PRODUCER")
    process = next(s for s in by_service["engagement"] if s["name"].endswith("process"))
    assert process["parentId"] == producer["id"]
    # the booking asked compliance inside the same trace
    assert any(s.get("kind") == "SERVER" and "evaluatesession" in s["name"].lower() for s in by_service["compliance"])
    # no PHI in any span attribute: the client id never appears
    for s in spans:
        for value in (s.get("tags") or {}).values():
            assert client_id not in value, s


def test_retry_with_same_request_id_returns_same_session(api: Api) -> None:
    program = api.program()
    clinician, client = api.clinician(), api.client()
    start = local_day_at(days_ahead=2, hour=10)
    first = api.book(program.program_id, clinician, [client], start, request_id="same-request-" + clinician)
    again = api.book(program.program_id, clinician, [client], start, request_id="same-request-" + clinician)
    assert first.session_id == again.session_id


def test_service_drains_and_stops_cleanly_on_sigterm(settings: Settings) -> None:
    proc = ServiceProcess("crisis").start()
    assert proc.stop() == 0
