"""Prometheus metrics: the consumer hook and /metrics (the RPC series: tests/unit/test_grpc_server.py)."""

from __future__ import annotations

import httpx
import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from services.plumbing.ops.metrics import Metrics, metrics_port, serve  # noqa: E402

SERVICE = "test.metrics.v1.Echo"


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


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
