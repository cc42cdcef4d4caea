"""Test support: settings for an isolated run, service processes, tokens, Zipkin queries.

Tests never fake Kafka or the store: they use the broker and store that
`make test` (deploy/local/infra.sh) starts, or the ones named by
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI. Each run uses its own database prefix.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from opentelemetry import propagate
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from services.plumbing.auth import mint_token
from services.plumbing.envelope import CloudEvent, KafkaHeaders
from services.plumbing.launcher import SERVICES as SERVICE_NAMES
from services.plumbing.launcher import wait_serving
from services.plumbing.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = uuid.uuid4().hex[:8]
LOG_DIR = ROOT / ".local" / "test-logs"

# Ports apart from the ones `make run` uses, so tests can run beside a running stack
# (IOP_TEST_PORT_BASE moves them, for test runs side by side).
# Below the ephemeral range (32768-60999), so an outgoing connection never holds a test port.
PORT_BASE = int(os.environ.get("IOP_TEST_PORT_BASE", "21050"))
SERVICES = ("scheduler", "engagement", "compliance", "crisis")
TEST_PORTS = {name: PORT_BASE + offset for offset, name in enumerate(SERVICES, start=1)}


def topic_partitions(consumer: KafkaConsumer, topic: str, timeout_s: float = 20) -> list[TopicPartition]:
    """The topic's partitions, in order, once the consumer's metadata has them (asserts it exists)."""
    deadline = time.monotonic() + timeout_s
    parts = consumer.partitions_for_topic(topic)
    while not parts and time.monotonic() < deadline:
        time.sleep(0.2)
        parts = consumer.partitions_for_topic(topic)
    assert parts, f"topic {topic} does not exist"
    return [TopicPartition(topic, p) for p in sorted(parts)]


def consumer_at_end(settings: Settings, topic: str) -> KafkaConsumer:
    """A consumer of every partition of `topic`, positioned at its current end: it reads what is
    published after this call."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    tps = topic_partitions(consumer, topic)
    consumer.assign(tps)
    consumer.seek_to_end(*tps)
    for tp in tps:
        consumer.position(tp)  # resolves the end now, not at the first poll
    return consumer


def start_group_at_end(settings: Settings, group_id: str, topic: str) -> None:
    """Commit `group_id` at the current end of `topic`, so a service started next with that group
    consumes what is published from now on, not every earlier run's events. A topic that does not
    exist yet has no earlier events: nothing to commit."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in tps})
    finally:
        consumer.close()


def isolated_environment(prefix: str | None = None) -> dict[str, str]:
    env = {
        "DEPLOYMENT_ENVIRONMENT": "test",
        "MONGODB_DATABASE_PREFIX": prefix or f"t{RUN_ID}_",
        "KAFKA_GROUP_PREFIX": f"t{RUN_ID}",
        "KAFKA_NEW_GROUP_START": "latest",
        # FerretDB on SQLite answers a service's first calls slowly on a loaded 2-core machine
        "GRPC_CLIENT_DEADLINE_S": "5",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OUTBOX_POLL_INTERVAL_S": "0.2",
        "CONSUMER_RETRY_BACKOFF_S": "0.05",
        "SHUTDOWN_GRACE_S": "2",
    }
    for name, port in TEST_PORTS.items():
        env[f"{name.upper()}_GRPC_PORT"] = str(port)
        env[f"{name.upper()}_TARGET"] = f"127.0.0.1:{port}"
    return env


def run_module(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the repository, in the run's isolated environment (and `env`)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **isolated_environment(), "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def isolated_settings(**overrides: Any) -> Settings:
    env = {**isolated_environment(), **overrides}
    return Settings(**env)  # type: ignore[arg-type]


def drop_databases(prefix: str = f"t{RUN_ID}") -> list[str]:
    """Drop the databases whose names start with `prefix` (by default every one this run wrote,
    all named `t<run id>...`), so a developer's local store does not grow with each test or
    benchmark run. Without a reachable store there is nothing to drop. Returns the names."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(isolated_settings().mongodb_uri, serverSelectionTimeoutMS=500)
    dropped: list[str] = []
    try:
        for name in mongo.list_database_names():
            if name.startswith(prefix):
                mongo.drop_database(name)
                dropped.append(name)
    except PyMongoError:
        pass
    finally:
        mongo.close()
    return dropped


def token(settings: Settings, role: str, subject: str = "test-user") -> str:
    return mint_token(settings, subject, [role])


def auth_metadata(settings: Settings, role: str, subject: str = "test-user") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(settings, role, subject)}")]


class ServiceProcess:
    """One service as a real OS process, started with `python -m services.<name>`."""

    def __init__(self, name: str, env: dict[str, str] | None = None, instance: str = "") -> None:
        self.name = name
        self.port = TEST_PORTS[name]
        self.env = {**os.environ, **isolated_environment(), **(env or {})}
        self.env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'gen' / 'python'}"
        self.target = f"127.0.0.1:{self.env[f'{name.upper()}_GRPC_PORT']}"
        self.log_path = LOG_DIR / f"{RUN_ID}-{name}{instance}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> ServiceProcess:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"], cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        self.wait_serving(timeout_s)
        return self

    def wait_serving(self, timeout_s: float) -> None:
        assert self.proc is not None
        try:
            wait_serving(self.target, SERVICE_NAMES[self.name], self.proc, timeout_s)
        except (RuntimeError, TimeoutError) as exc:
            raise type(exc)(f"{exc}; see {self.log_path}") from exc

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@contextlib.contextmanager
def until_stopped(proc: ServiceProcess) -> Iterator[ServiceProcess]:
    """A started service process for the block; then it must stop cleanly (drained), or the test
    fails naming its log."""
    try:
        yield proc
    finally:
        assert proc.stop() == 0, f"{proc.name} did not stop cleanly; see {proc.log_path}"


def zipkin_base(settings: Settings) -> str:
    return os.environ.get("ZIPKIN_QUERY_URL", settings.zipkin_endpoint.removesuffix("/api/v2/spans"))


def wait_for_trace(settings: Settings, trace_id: str, predicate: Any, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Poll Zipkin until the trace's spans satisfy `predicate` (or time out with what was seen). A
    Zipkin too loaded to answer one poll in time is asked again."""
    deadline = time.monotonic() + timeout_s
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(f"{zipkin_base(settings)}/api/v2/trace/{trace_id}", timeout=10)
        except httpx.HTTPError:
            time.sleep(1)
            continue
        if reply.status_code == 200:
            spans = reply.json()
            if predicate(spans):
                return spans
        time.sleep(0.5)
    return spans


def record_headers(event: CloudEvent) -> KafkaHeaders:
    """An event's envelope headers for a test's own producer (the services send through
    `bus.send_event`): the trace context is added by the aiokafka instrumentation when it is on,
    and here when it is not, so `traceparent` is always present."""
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    headers = event.headers()
    if not AIOKafkaInstrumentor().is_instrumented_by_opentelemetry:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.extend((k, v.encode()) for k, v in carrier.items())
    return headers
