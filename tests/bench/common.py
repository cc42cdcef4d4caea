"""Shared benchmark helpers: latency percentiles, a result table, the store's own rates."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import statistics
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


LOCAL = Path(__file__).resolve().parents[2] / ".local"
# The local infrastructure's processes (deploy/local/infra.sh), by their pid files.
INFRA_PID_FILES = {
    "Kafka": LOCAL / "kafka" / "kafka.pid",
    "FerretDB": LOCAL / "ferretdb" / "ferretdb.pid",
    "Zipkin": LOCAL / "zipkin" / "zipkin.pid",
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc), for a load-independent cost."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuAccount:
    """CPU seconds of this process (all its threads) and of the local infrastructure's processes
    that run here; infrastructure elsewhere (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI) is left out."""

    def __init__(self, **more: int) -> None:
        """`more`: other processes to count, by name (the services a benchmark started)."""
        self.pids = {"this process": os.getpid(), **more}
        for name, pid_file in INFRA_PID_FILES.items():
            try:
                pid = int(pid_file.read_text().strip())
                cpu_seconds(pid)
            except (OSError, ValueError):
                continue
            self.pids[name] = pid

    def read(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    @staticmethod
    def per_event_us(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, float]:
        return {name: (after[name] - before[name]) * 1e6 / max(events, 1) for name in before}


@dataclass
class Result:
    name: str
    throughput: float  # per second
    p50_ms: float
    p99_ms: float
    count: int
    cpu_us_per_event: dict[str, float] = field(default_factory=dict)  # by process, when measured

    @staticmethod
    def of(
        name: str, count: int, seconds: float, latencies_s: list[float], cpu: dict[str, float] | None = None
    ) -> Result:
        ms = [x * 1000 for x in latencies_s]
        throughput = count / seconds if seconds else 0.0
        return Result(name, throughput, percentile(ms, 50), percentile(ms, 99), count, cpu or {})

    def cpu_line(self, unit: str = "event") -> str:
        total = sum(self.cpu_us_per_event.values())
        parts = ", ".join(f"{name} {us:.0f}" for name, us in self.cpu_us_per_event.items())
        return f"{self.name}: {total:.0f} µs of CPU per {unit} ({parts})"


def table(title: str, rows: list[Result], unit: str = "events/s") -> str:
    out = [f"\n{title}", f"{'path':<44} {unit:>12} {'p50 ms':>9} {'p99 ms':>9} {'n':>7}"]
    out += [f"{r.name:<44} {r.throughput:>12.0f} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} {r.count:>7}" for r in rows]
    return "\n".join(out)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


@dataclass
class StoreRates:
    """The store's own rates for the commands the services' paths are made of."""

    finds_per_s: float
    inserts_per_s: float

    def bound(self, finds: float, writes: float) -> float:
        """Operations per second a path of `finds` lookups and `writes` writes could reach if the
        store did nothing else (its time per operation is the sum of its commands')."""
        return 1 / (finds / self.finds_per_s + writes / self.inserts_per_s)

    def line(self) -> str:
        return (
            f"store on its own ({STORE_CONCURRENCY} in flight): "
            f"{self.finds_per_s:,.0f} finds/s by _id, {self.inserts_per_s:,.0f} inserts/s"
        )


STORE_CONCURRENCY = 16


async def store_rates(settings: Settings, seconds: float = 3.0) -> StoreRates:
    """Raw pymongo against the configured store, in a scratch database: small documents inserted,
    then looked up by _id, STORE_CONCURRENCY at a time, each for `seconds`."""
    client = mongo_client(settings)  # as the services connect, without their tracing
    db = client[f"bench_store_{uuid.uuid4().hex[:8]}"]
    ids = itertools.count()
    inserted: list[int] = []

    async def timed(op: Callable[[], Awaitable[object]]) -> float:
        done = 0
        end = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal done
            while time.perf_counter() < end:
                await op()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(STORE_CONCURRENCY)))
        return done / (time.perf_counter() - started)

    async def insert() -> None:
        i = next(ids)
        await db.docs.insert_one({"_id": f"doc-{i}", "at": i, "payload": "x" * 200})
        inserted.append(i)

    async def find() -> None:
        await db.docs.find_one({"_id": f"doc-{inserted[next(ids) % len(inserted)]}"})

    try:
        inserts = await timed(insert)
        finds = await timed(find)
    finally:
        await client.drop_database(db.name)
        await client.close()
    return StoreRates(finds, inserts)


def store_commands(
    settings: Settings,
    service: str,
    root_span: str,
    traces: int = 20,
    end: float | None = None,
    within_s: float = 15 * 60,
) -> tuple[float, float] | None:
    """(lookups, writes) a user action sends the store, counted in the traces Zipkin holds for
    it: the median over the `traces` latest traces of `root_span` in `service` that began in the
    `within_s` seconds before `end` (epoch seconds; default now), every service's spans included.
    None when spans go elsewhere (OTLP) or Zipkin does not answer."""
    if settings.otel_exporter_otlp_endpoint:
        return None
    base = settings.zipkin_endpoint.removesuffix("/api/v2/spans")
    end_ms = int((end if end is not None else time.time()) * 1000)
    query = urllib.parse.urlencode(
        {
            "serviceName": service,
            "spanName": root_span,
            "limit": traces,
            "endTs": end_ms,
            "lookback": int(within_s * 1000),
        }
    )
    try:
        with urllib.request.urlopen(f"{base}/api/v2/traces?{query}", timeout=10) as answer:
            found: list[list[dict[str, Any]]] = json.load(answer)
    except OSError:
        return None
    if not found:
        return None
    lookups, writes = [], []
    for trace in found:
        commands = [s["tags"]["db.statement"] for s in trace if s.get("tags", {}).get("db.system") == "mongodb"]
        lookups.append(sum(c in ("find", "aggregate", "count") for c in commands))
        writes.append(len(commands) - lookups[-1])
    return statistics.median(lookups), statistics.median(writes)


def store_bound_report(rates: StoreRates, commands: tuple[float, float] | None, action: str) -> str:
    """The store's own rates, and what they allow for one `action` given its commands."""
    if commands is None:
        return f"{rates.line()}; {action}: commands not counted (no Zipkin traces to count them in)"
    finds, writes = commands
    return (
        f"{rates.line()}; {action} sends it {finds:g} lookups + {writes:g} writes in its trace: "
        f"at most {rates.bound(finds, writes):,.0f}/s if the store served nothing else"
    )


async def paced(
    call: Callable[[], Awaitable[object]],
    seconds: float,
    rate: float,
    failures: tuple[type[BaseException], ...] = (grpc.RpcError,),
) -> tuple[list[float], int, float]:
    """Open loop at `rate`/s: (latencies in ms of the calls that succeeded, failures, achieved rate).

    A call that raises one of `failures` counts as a failure. The load generator's own garbage
    collector is off meanwhile: its full collections pause this process for 10-30 ms, which every
    call in flight would count as server latency."""
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    n = int(seconds * rate)

    async def one() -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            await call()
            latencies.append((time.perf_counter() - t0) * 1000)
        except failures:
            errors += 1

    tasks = []
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for i in range(n):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return latencies, errors, n / elapsed
