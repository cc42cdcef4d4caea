"""Prometheus metrics: the gRPC interceptor on a real loopback grpc.aio server, the consumer hook, /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from services.plumbing.ops.metrics import Metrics, metrics_port, serve  # noqa: E402

SERVICE = "test.metrics.v1.Echo"


def _identity(b: bytes) -> bytes:
    return b


class Deny(grpc.aio.ServerInterceptor):
    """Stands in for the auth interceptor (inner to the metrics one): rejects requests to /Denied."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if details.method.endswith("/Denied"):

            async def reject(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
                return b""

            return grpc.unary_unary_rpc_method_handler(reject, _identity, _identity)
        return handler


async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "missing")
    return b""


async def crash(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("bug")


async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(3):
        yield bytes([i])


@pytest.fixture
async def served() -> AsyncIterator[tuple[Metrics, grpc.aio.Channel]]:
    metrics = Metrics(prometheus_client.CollectorRegistry())
    server = grpc.aio.server(interceptors=[metrics.interceptor(), Deny()])
    handlers = {
        "Ok": grpc.unary_unary_rpc_method_handler(ok, _identity, _identity),
        "NotFound": grpc.unary_unary_rpc_method_handler(not_found, _identity, _identity),
        "Crash": grpc.unary_unary_rpc_method_handler(crash, _identity, _identity),
        "Denied": grpc.unary_unary_rpc_method_handler(ok, _identity, _identity),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, _identity, _identity),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield metrics, channel
    await channel.close()
    await server.stop(0)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_interceptor_counts_codes_and_times_every_rpc(served: tuple[Metrics, grpc.aio.Channel]) -> None:
    metrics, channel = served

    async def call(method: str) -> grpc.StatusCode:
        try:
            await channel.unary_unary(f"/{SERVICE}/{method}")(b"x", timeout=5)
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            return exc.code()

    assert await call("Ok") == grpc.StatusCode.OK
    assert await call("Ok") == grpc.StatusCode.OK
    assert await call("NotFound") == grpc.StatusCode.NOT_FOUND
    assert await call("Crash") == grpc.StatusCode.UNKNOWN
    assert await call("Denied") == grpc.StatusCode.PERMISSION_DENIED
    replies = [r async for r in channel.unary_stream(f"/{SERVICE}/Stream")(b"x", timeout=5)]
    assert len(replies) == 3

    unary = {"grpc_service": SERVICE, "grpc_type": "unary"}
    assert value(metrics, "grpc_server_started_total", grpc_method="Ok", **unary) == 2
    assert value(metrics, "grpc_server_handled_total", grpc_method="Ok", grpc_code="OK", **unary) == 2
    assert value(metrics, "grpc_server_handled_total", grpc_method="NotFound", grpc_code="NOT_FOUND", **unary) == 1
    assert value(metrics, "grpc_server_handled_total", grpc_method="Crash", grpc_code="UNKNOWN", **unary) == 1
    assert (
        value(metrics, "grpc_server_handled_total", grpc_method="Denied", grpc_code="PERMISSION_DENIED", **unary) == 1
    )
    assert value(metrics, "grpc_server_handling_seconds_count", grpc_method="Ok", **unary) == 2
    streamed = {"grpc_service": SERVICE, "grpc_method": "Stream", "grpc_type": "server_stream"}
    assert value(metrics, "grpc_server_handled_total", grpc_code="OK", **streamed) == 1


def test_consumer_hook_and_metrics_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics(prometheus_client.CollectorRegistry())
    metrics.observe_event(
        "iop.crisis.sessions", "iop.scheduling.sessions.v1", "iop.events.v1.SessionStarted", "applied", 0.004
    )
    metrics.observe_event(
        "iop.crisis.sessions", "iop.scheduling.sessions.v1", "iop.events.v1.SessionStarted", "dead_lettered"
    )
    with pytest.raises(ValueError):
        metrics.observe_event("g", "t", "e", "exploded")
    labels = {
        "group": "iop.crisis.sessions",
        "topic": "iop.scheduling.sessions.v1",
        "event_type": "iop.events.v1.SessionStarted",
    }
    assert value(metrics, "iop_consumer_events_total", outcome="applied", **labels) == 1
    assert value(metrics, "iop_consumer_events_total", outcome="dead_lettered", **labels) == 1
    assert value(metrics, "iop_consumer_handling_seconds_count", **labels) == 1

    server = serve(0, "127.0.0.1", metrics.registry)
    try:
        body = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    assert 'iop_consumer_events_total{event_type="iop.events.v1.SessionStarted"' in body

    monkeypatch.delenv("METRICS_PORT", raising=False)
    monkeypatch.delenv("CRISIS_METRICS_PORT", raising=False)
    assert metrics_port("crisis") is None
    monkeypatch.setenv("METRICS_PORT", "9464")
    assert metrics_port("crisis") == 9464
    monkeypatch.setenv("CRISIS_METRICS_PORT", "9467")
    assert metrics_port("crisis") == 9467
