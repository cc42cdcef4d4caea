"""Prometheus metrics: per RPC, per consumer, and consumer lag.

Needs the `prometheus-client` package (not yet in pyproject.toml: add `prometheus-client>=0.21`).

In a service process (the runner and the consumer base call these):

    metrics = get_metrics()                                    # one per process, default registry
    series = metrics.rpc("/pkg.Service/Method", "unary")     # per method; the gRPC server's
    series.started.inc(); series.done("OK", seconds)           #   CallInterceptor does this per call
    metrics.observe_event(group, topic, event_type, "applied", seconds)  # per handled record
    await metrics.observe_consumer_lag(group, aiokafka_consumer)          # after each commit
    serve(port)                                                # GET http://host:port/metrics

Series (names follow go-grpc-prometheus and kafka_exporter, so stock dashboards work):
    grpc_server_started_total{grpc_service, grpc_method, grpc_type}
    grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}   errors: grpc_code != "OK"
    grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}           histogram
    grpc_server_calls_in_flight, grpc_server_calls_waiting      load shedding (grpc_server.CallAdmission):
    grpc_server_max_concurrent_calls                             past the limit, RESOURCE_EXHAUSTED
    iop_consumer_events_total{group, topic, event_type, outcome}   outcome: applied | duplicate | ignored |
                                                                    retried | dead_lettered | failed
    iop_consumer_handling_seconds{group, topic, event_type}        histogram of handler time
    iop_consumer_lag{group, topic, partition}                      records behind, as the consumer sees it
    kafka_consumergroup_lag{consumergroup, topic, partition}       from the broker (lag exporter below)

A standalone lag exporter for every group on the broker (committed offsets vs ends):

    python -m services.plumbing.ops.metrics --lag-exporter --port 9308 [--group iop.]
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OUTCOMES = ("applied", "duplicate", "ignored", "retried", "dead_lettered", "failed")


def split_method(full_method: str) -> tuple[str, str]:
    """'/iop.scheduler.v1.SchedulerService/BookSession' -> ('iop.scheduler.v1.SchedulerService', 'BookSession')."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        rpc_labels = ["grpc_service", "grpc_method", "grpc_type"]
        self.rpc_started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", rpc_labels, registry=registry
        )
        self.rpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            [*rpc_labels, "grpc_code"],
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC (until the last response message).",
            rpc_labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.calls_in_flight = Gauge(
            "grpc_server_calls_in_flight", "Unary calls the server is running.", registry=registry
        )
        self.calls_waiting = Gauge(
            "grpc_server_calls_waiting", "Unary calls waiting for a place to run.", registry=registry
        )
        self.max_concurrent_calls = Gauge(
            "grpc_server_max_concurrent_calls",
            "The server's limit of unary calls at once (GRPC_MAX_CONCURRENT_CALLS).",
            registry=registry,
        )
        self.events = Counter(
            "iop_consumer_events",
            "Records handled by a consumer group, by outcome.",
            ["group", "topic", "event_type", "outcome"],
            registry=registry,
        )
        self.event_seconds = Histogram(
            "iop_consumer_handling_seconds",
            "Time a consumer's handler took for one event (all attempts).",
            ["group", "topic", "event_type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "iop_consumer_lag",
            "Records between a consumer's position and the partition's last stable offset.",
            ["group", "topic", "partition"],
            registry=registry,
        )

    # --- gRPC ---------------------------------------------------------------------------
    def rpc(self, full_method: str, kind: str) -> RpcSeries:
        """The series of one method ('/pkg.Service/Method'; kind 'unary' or 'server_stream'),
        recorded by the server's call interceptor (services/plumbing/grpc_server.py)."""
        service, method = split_method(full_method)
        return RpcSeries(self, service, method, kind)

    def watch_admission(self, limit: int, in_flight: Callable[[], float], waiting: Callable[[], float]) -> None:
        """Read a server's load-shedding state when scraped."""
        self.max_concurrent_calls.set(limit)
        self.calls_in_flight.set_function(in_flight)
        self.calls_waiting.set_function(waiting)

    # --- consumers ----------------------------------------------------------------------
    def observe_event(
        self, group: str, topic: str, event_type: str, outcome: str, seconds: float | None = None
    ) -> None:
        """One record handled by `group`: outcome in OUTCOMES; `seconds` = handler time when it ran."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {OUTCOMES}")
        self.events.labels(group, topic, event_type, outcome).inc()
        if seconds is not None:
            self.event_seconds.labels(group, topic, event_type).observe(seconds)

    async def observe_consumer_lag(self, group: str, consumer: Any) -> None:
        """Lag of every partition assigned to an aiokafka consumer (after a commit, say)."""
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is None:  # nothing fetched from that partition yet
                continue
            position = await consumer.position(tp)
            self.lag.labels(group, tp.topic, str(tp.partition)).set(max(0, end - position))


class RpcSeries:
    """The series of one RPC method (label children resolved once: `labels()` is a dict lookup
    under a lock on every call otherwise)."""

    def __init__(self, metrics: Metrics, service: str, method: str, kind: str) -> None:
        self._labels = (service, method, kind)
        self._handled = metrics.rpc_handled
        self._by_code: dict[str, Any] = {}
        self.started = metrics.rpc_started.labels(*self._labels)
        self.seconds = metrics.rpc_seconds.labels(*self._labels)

    def done(self, code: str, seconds: float) -> None:
        handled = self._by_code.get(code)
        if handled is None:
            handled = self._by_code[code] = self._handled.labels(*self._labels, code)
        handled.inc()
        self.seconds.observe(seconds)


_default: Metrics | None = None
_default_lock = threading.Lock()


def get_metrics() -> Metrics:
    """The process's metrics on the default registry (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


def metrics_port(service: str | None = None) -> int | None:
    """<SERVICE>_METRICS_PORT, else METRICS_PORT; None (metrics not served) when neither is set."""
    for name in ([f"{service.upper()}_METRICS_PORT"] if service else []) + ["METRICS_PORT"]:
        value = os.environ.get(name)
        if value:
            return int(value)
    return None


def serve(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> Any:
    """Serves GET /metrics on a daemon thread; returns the HTTP server (`.server_port`, `.shutdown()`)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server


class LagCollector(Collector):
    """kafka_consumergroup_lag for every group (with the prefix), computed from the broker at scrape time."""

    def __init__(self, bootstrap: str, group_prefix: str | None = None) -> None:
        self._bootstrap = bootstrap
        self._prefix = group_prefix

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from kafka import KafkaAdminClient

        from services.plumbing.ops.lag import collect

        family = GaugeMetricFamily(
            "kafka_consumergroup_lag",
            "Records between a group's committed offset and the partition's last stable offset.",
            labels=["consumergroup", "topic", "partition"],
        )
        admin = KafkaAdminClient(bootstrap_servers=self._bootstrap, client_id="iop-ops-lag-exporter")
        try:
            for row in collect(admin, self._prefix):
                family.add_metric([row.group, row.topic, str(row.partition)], row.lag)
        finally:
            admin.close()
        yield family


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.plumbing.ops.metrics")
    parser.add_argument("--lag-exporter", action="store_true", required=True, help="serve consumer-group lag")
    parser.add_argument("--port", type=int, default=9308)
    parser.add_argument("--addr", default="0.0.0.0")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--group", help="only groups whose id starts with this")
    args = parser.parse_args(argv)
    from services.plumbing.settings import get_settings

    registry = CollectorRegistry()
    registry.register(LagCollector(args.bootstrap or get_settings().kafka_bootstrap_servers, args.group))
    server = serve(args.port, args.addr, registry)
    print(f"serving kafka_consumergroup_lag on http://{args.addr}:{server.server_port}/metrics", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
