"""Engagement benchmark: webhook -> Kafka -> faust aggregate, against a raw aiokafka consume loop.

    .venv/bin/python -m tests.bench.engagement_bench [--signals 30000] [--rate 1000] [--seconds 15]

1. Worker throughput: N VideoSignals are produced to a benchmark signals topic, then the faust
   worker (`python -m services.engagement.worker`, one process) folds them into its changelog-backed
   `sessions` table; sustained signals/s from its first to its last signal.
   Baseline in the same run: a raw aiokafka consume loop (one consumer, same topic, same records)
   that decodes the CloudEvents envelope and the protobuf payload and does nothing else.
   Also in the same run, over the same records: a faust agent that only counts them
   (tests.bench.faust_floor), the part of the worker's cost that is faust's own.
2. End to end at a fixed rate: signed webhooks are POSTed to the engagement process at --rate per
   second; each is verified, de-duplicated (receipt in the store), published with acks=all, consumed
   by the worker and aggregated. Latency = the worker's aggregate time minus the webhook's event
   time (set by this client when it sends), so it includes HTTP, the store write, Kafka and faust.

Loopback only, bounded in time. Telemetry export is off in the processes under test (both sides),
so the figures measure the pipeline, not the trace exporter. Uses its own topic
(ENGAGEMENT_SIGNALS_TOPIC) and consumer groups, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from iop.events.v1 import engagement_pb2 as ev
from services.engagement.config import DEV_WEBHOOK_SECRET
from services.engagement.domain import sign
from services.engagement.worker_status import wait_ready
from services.plumbing.bus import Topic, ensure_topics
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.support import drop_databases

ROOT = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:6]
TOPIC = f"bench-{RUN}.engagement.signals.v1"
PREFIX = f"bench{RUN}"
GRPC_PORT = int(os.environ.get("IOP_TEST_PORT_BASE", "27050")) + 40  # below the ephemeral range
HTTP_PORT = GRPC_PORT + 1
MAX_IN_FLIGHT = 200


def env(stats: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
        "DEPLOYMENT_ENVIRONMENT": "test",
        "IOP_TELEMETRY_ENABLED": "false",
        "KAFKA_GROUP_PREFIX": PREFIX,
        "MONGODB_DATABASE_PREFIX": f"{PREFIX}_",
        "ENGAGEMENT_SIGNALS_TOPIC": TOPIC,
        "ENGAGEMENT_GRPC_PORT": str(GRPC_PORT),
        "ENGAGEMENT_HTTP_PORT": str(HTTP_PORT),
        "ENGAGEMENT_WORKER_STATS_PATH": str(stats),
        "ENGAGEMENT_WORKER_OFFSET_RESET": "latest",
        "ENGAGEMENT_LEDGER_START": "latest",
        "LOG_LEVEL": "WARNING",
    }


def signal(session: str, participant: str, seconds: float) -> CloudEvent:
    msg = ev.VideoSignal(
        signal_id=uuid.uuid4().hex,
        session_id=session,
        participant_id=participant,
        kind="speaking",
        occurred_at=to_timestamp(datetime.now(UTC)),
        value=seconds,
    )
    return CloudEvent.new("/iop/engagement", session, msg, event_id=msg.signal_id)


async def produce(settings: Settings, n: int, sessions: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for i in range(n):
            s = f"bs-{RUN}-{i % sessions}"
            ce = signal(s, f"p{i % 10}", 1.0)
            futures.append(await producer.send(TOPIC, value=ce.data, key=s.encode(), headers=ce.headers()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def baseline(settings: Settings, n: int) -> float:
    """Raw aiokafka: consume the same n records, decode envelope + payload. Returns records/s."""
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{PREFIX}.baseline",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen, start = 0, 0.0
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for r in records:
                    if not start:
                        start = time.perf_counter()
                    CloudEvent.from_kafka(r.headers, r.value).payload()
                    seen += 1
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def faust_floor(settings: Settings, environ: dict[str, str], n: int, tmp: Path) -> float:
    """A faust worker whose agent only counts the same n records (tests.bench.faust_floor): what faust
    costs per record before any work. Returns records/s from its first batch to its last."""
    stats = tmp / "floor-stats.json"
    args = ["tests.bench.faust_floor", "--broker", settings.kafka_bootstrap_servers, "--app-id", f"{PREFIX}.floor"]
    proc = start([*args, "--topic", TOPIC, "--count", str(n), "--stats", str(stats)], environ, tmp / "floor.log")
    try:
        deadline = time.monotonic() + 90
        while not stats.exists() and time.monotonic() < deadline and proc.poll() is None:
            await asyncio.sleep(0.2)
        if not stats.exists():
            return 0.0
        figures = json.loads(stats.read_text())
        return float(figures["count"] - figures["first_batch"]) / (figures["last"] - figures["first"])
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)


def applied_signals(path: Path) -> int:
    """The worker's count of applied signals (services.engagement.worker.write_stats)."""
    try:
        return int(json.loads(path.read_text())["signals"])
    except (OSError, ValueError, KeyError):
        return 0


def latencies(path: Path) -> list[float]:
    """The worker's per-signal latencies so far, in the order applied."""
    try:
        return [float(line) for line in path.with_name(path.name + ".latencies").read_text().split()]
    except OSError:
        return []


async def worker_rate(stats: Path, n: int, timeout_s: float) -> tuple[float, int]:
    """Poll the worker's figures until n signals were applied; signals/s first-to-last."""
    first_t, first_n = 0.0, 0
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = applied_signals(stats)
        if count and not first_t:
            first_t, first_n = time.perf_counter(), count
        if count >= n:
            break
        await asyncio.sleep(0.1)
    if count <= first_n:
        return 0.0, count
    return (count - first_n) / (time.perf_counter() - first_t), count


async def drive_webhooks(rate: int, seconds: int) -> tuple[int, list[float], int, int]:
    """POST signed webhooks at `rate`/s for `seconds`; returns (accepted, http latencies ms, errors, shed).

    The driver is aiohttp: httpx's connection pool spent more CPU per request than the service under
    test (this process at ~90% of a core for under 100 requests/s), so it measured itself."""
    accepted, errors, shed = 0, 0, 0
    http_ms: list[float] = []
    url = f"http://127.0.0.1:{HTTP_PORT}/webhooks/video"
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as client:
        in_flight: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            nonlocal accepted, errors
            now = time.time()
            body = json.dumps(
                {
                    "event": "meeting.participant_speaking",
                    "event_ts": int(now * 1000),
                    "payload": {
                        "object": {
                            "id": f"bw-{RUN}-{i % 50}",
                            "participant": {"customer_key": f"p{i % 10}", "speaking_seconds": 1.0},
                        }
                    },
                    "n": i,
                }
            ).encode()
            ts = str(int(now))
            headers = {
                "content-type": "application/json",
                "x-zm-request-timestamp": ts,
                "x-zm-signature": sign(DEV_WEBHOOK_SECRET, ts, body),
            }
            t0 = time.perf_counter()
            try:
                async with client.post(url, data=body, headers=headers) as reply:
                    await reply.read()
                    http_ms.append((time.perf_counter() - t0) * 1000)
                    if reply.status == 200:
                        accepted += 1
                    else:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

        start = time.perf_counter()
        for i in range(rate * seconds):
            target = start + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= MAX_IN_FLIGHT:  # the service is not keeping up: shed, do not queue
                shed += 1
                continue
            task = asyncio.create_task(one(i))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
    return accepted, http_ms, errors, shed


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def start(args: list[str], environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=environ, stdout=handle, stderr=handle)


async def wait_http(timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{HTTP_PORT}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise TimeoutError("engagement HTTP did not come up")


async def cleanup(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith((f"bench-{RUN}.", f"{PREFIX}."))]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
    from pymongo import AsyncMongoClient

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    await mongo.drop_database(f"{PREFIX}_engagement")
    await mongo.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    settings = Settings()
    tmp = Path(tempfile.mkdtemp(prefix="engagement-bench-"))
    stats = tmp / "worker-stats.json"
    environ = env(stats)
    load = os.getloadavg()
    await ensure_topics(settings, [Topic(TOPIC, "session_id", "engagement benchmark signals")])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # 1. throughput: a backlog of N signals, then the worker and the baseline drain it
        # the worker starts at "now" (no replay of the shared topics' history), then the backlog lands
        started = datetime.now(UTC)
        procs.append(start(["services.engagement.worker"], environ, tmp / "worker.log"))
        worker_settings = Settings(**environ)  # type: ignore[arg-type]
        await asyncio.to_thread(wait_ready, worker_settings, procs[-1], started)
        await produce(settings, args.signals, sessions=300)
        rate, applied = await worker_rate(stats, args.signals, timeout_s=45)
        base = await baseline(settings, args.signals)  # same records, while the worker is idle
        floor = await faust_floor(settings, environ, args.signals, tmp)  # same records again
        # 2. end to end at a fixed rate through the webhook
        procs.append(start(["services.engagement"], environ, tmp / "service.log"))
        await wait_http()
        before = len(latencies(stats))
        accepted, http_ms, errors, shed = await drive_webhooks(args.rate, args.seconds)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(latencies(stats)) < before + accepted:
            await asyncio.sleep(0.2)
        e2e = latencies(stats)[before:]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(20)
        with contextlib.suppress(Exception):  # a busy broker must not keep the benchmark from ending
            await asyncio.wait_for(cleanup(settings), timeout=30)
    achieved = accepted / args.seconds
    print(f"engagement benchmark (loopback, load average at start {load[0]:.1f}/{load[1]:.1f}, {os.cpu_count()} cores)")
    print(f"{'measure':58} {'value':>12}")
    print(f"{'raw aiokafka consume loop + decode (baseline), signals/s':58} {base:12.0f}")
    print(f"{'faust worker aggregate, signals/s (1 worker process)':58} {rate:12.0f}")
    print(f"{'ratio worker / baseline':58} {rate / base if base else 0:12.1%}")
    print(f"{'faust agent that only counts the records, signals/s':58} {floor:12.0f}")
    print(f"{'ratio counting agent / baseline (faust alone)':58} {floor / base if base else 0:12.1%}")
    print(f"{'signals applied by the worker (of ' + str(args.signals) + ')':58} {applied:12d}")
    print(f"{'webhooks offered / accepted per second':58} {args.rate:5d} / {achieved:6.0f}")
    print(f"{'webhook errors / shed (more than ' + str(MAX_IN_FLIGHT) + ' in flight)':58} {errors:5d} / {shed:6d}")
    print(f"{'webhook HTTP latency p50 / p99, ms':58} {pct(http_ms, 50):5.0f} / {pct(http_ms, 99):5.0f}")
    print(f"{'end to end webhook -> faust aggregate p50 / p99, ms':58} {pct(e2e, 50):5.0f} / {pct(e2e, 99):5.0f}")
    print(f"{'end to end samples':58} {len(e2e):12d}")
    if e2e:
        print(f"{'end to end mean, ms':58} {statistics.fmean(e2e):12.0f}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    finally:
        drop_databases(PREFIX)
