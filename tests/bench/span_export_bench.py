"""What span export costs a service's event loop: the SDK's BatchSpanProcessor with its OTLP/gRPC
exporter (the baseline) against the project's OtlpSpanProcessor (each span encoded as it ends,
span_queue.py), both sending to the same OTLP collector in another process.

    .venv/bin/python -m tests.bench.span_export_bench [--rate 2000] [--seconds 8] [--rounds 2]

In each round, one asyncio loop ends `--rate` spans per second (a gRPC server span with a store
span under it, their usual attributes), while a probe asks the loop to wake every millisecond and
records how late it woke: the time a request would wait behind the exporter. Reported per
processor: the probe's lateness p50/p99/max, this process's CPU per span, and the spans the
collector received (nothing may be dropped). The two processors alternate, `--rounds` times.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from concurrent import futures
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from services.plumbing.otlp_export import EXPORT_METHOD, OtlpSpanProcessor
from tests.bench.common import cpu_seconds, percentile


def serve_collector(port: Any, received: Any) -> None:
    """An OTLP/gRPC collector that counts the spans it receives (runs in its own process)."""
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    def export(request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with received.get_lock():
            received.value += count
        return ExportTraceServiceResponse()

    handler = grpc.unary_unary_rpc_method_handler(
        export, ExportTraceServiceRequest.FromString, ExportTraceServiceResponse.SerializeToString
    )
    service, method = EXPORT_METHOD[1:].split("/")
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {method: handler})])
    port.value = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.wait_for_termination()


async def one_round(processor: SpanProcessor, rate: float, seconds: float) -> tuple[list[float], int, float]:
    """(probe lateness in ms, spans ended, CPU seconds of this process) while ending `rate` spans/s."""
    provider = TracerProvider(resource=Resource.create({"service.name": "bench", "deployment.environment": "local"}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("iop.grpc.server")
    server_attributes = {
        "rpc.system": "grpc",
        "rpc.service": "iop.scheduler.v1.SchedulerService",
        "rpc.method": "BookSession",
        "net.peer.ip": "127.0.0.1",
        "net.peer.port": "50123",
    }
    store_attributes = {"db.system": "mongodb", "db.name": "iop_scheduler", "db.operation": "insert"}
    lateness: list[float] = []
    ended = 0
    stop_at = time.perf_counter() + seconds

    async def probe() -> None:
        while time.perf_counter() < stop_at:
            asked = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append((time.perf_counter() - asked - 0.001) * 1000)

    async def load() -> None:
        nonlocal ended
        started = time.perf_counter()
        while time.perf_counter() < stop_at:
            due = int((time.perf_counter() - started) * rate)
            while ended < due:
                with (
                    tracer.start_as_current_span(
                        "/iop.scheduler.v1.SchedulerService/BookSession",
                        kind=SpanKind.SERVER,
                        attributes=server_attributes,
                    ),
                    tracer.start_as_current_span(
                        "iop_scheduler.insert", kind=SpanKind.CLIENT, attributes=store_attributes
                    ),
                ):
                    pass
                ended += 2
            await asyncio.sleep(0.002)

    before = cpu_seconds(os.getpid())
    await asyncio.gather(probe(), load())
    provider.force_flush()
    used = cpu_seconds(os.getpid()) - before
    provider.shutdown()
    return lateness, ended, used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=2000, help="spans ended per second")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    port, received = context.Value("i", 0), context.Value("q", 0)
    collector = context.Process(target=serve_collector, args=(port, received), daemon=True)
    collector.start()
    while not port.value:
        time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port.value}"
    makers = {
        "SDK BatchSpanProcessor + OTLPSpanExporter (baseline)": lambda: BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True), schedule_delay_millis=500
        ),
        "OtlpSpanProcessor (span_queue)": lambda: OtlpSpanProcessor(endpoint, schedule_delay_s=0.5),
    }
    results: dict[str, list[tuple[list[float], int, float, int]]] = {name: [] for name in makers}
    for _ in range(args.rounds):
        for name, make in makers.items():
            before = received.value
            lateness, ended, used = asyncio.run(one_round(make(), args.rate, args.seconds))
            results[name].append((lateness, ended, used, received.value - before))
    collector.kill()
    print(
        f"\nspan export: {args.rate:.0f} spans/s for {args.seconds:g} s per round, {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs; the event loop's lateness when asked to wake every 1 ms"
    )
    print(f"{'processor':55} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'µs CPU/span':>12} {'exported':>10}")
    p99s = {}
    for name, rounds in results.items():
        lateness = [value for r in rounds for value in r[0]]
        ended, used, exported = sum(r[1] for r in rounds), sum(r[2] for r in rounds), sum(r[3] for r in rounds)
        p99s[name] = percentile(lateness, 99)
        print(
            f"{name:55} {percentile(lateness, 50):7.2f} {p99s[name]:7.2f} {max(lateness):7.2f} "
            f"{used / ended * 1e6:12.1f} {exported:>5}/{ended}"
        )
    baseline, ours = p99s.values()
    print(f"p99 lateness, ours / baseline: {ours / baseline:.2f}")


if __name__ == "__main__":
    main()
