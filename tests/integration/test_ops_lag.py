"""Consumer-lag report (and the lag metrics) against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from services.plumbing.bus import Topic, ensure_topics, reliable_producer
from services.plumbing.ops import lag
from services.plumbing.settings import Settings
from tests.support import ROOT, RUN_ID

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    name = f"t{RUN_ID}.ops.lag{uuid.uuid4().hex[:8]}.v1"
    await ensure_topics(settings, [Topic(name, "k", "lag test", partitions=3)])
    producer: AIOKafkaProducer = reliable_producer(settings, "test-lag-producer")
    await producer.start()
    try:
        for i in range(12):
            await producer.send_and_wait(name, b"v", key=f"k{i}".encode())
    finally:
        await producer.stop()
    yield name
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_topics([name], raise_errors=False)
    finally:
        admin.close()


def commit_some(bootstrap: str, topic: str, group: str, n: int) -> dict[int, int]:
    """A group that read `n` records and committed them (partitions it did not reach stay uncommitted)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    seen: list = []  # type: ignore[type-arg]
    try:
        while len(seen) < n:
            for rs in consumer.poll(timeout_ms=500, max_records=n - len(seen)).values():
                seen.extend(rs)
        offsets: dict[int, int] = {}
        for r in seen:
            offsets[r.partition] = max(offsets.get(r.partition, 0), r.offset + 1)
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
        return offsets
    finally:
        consumer.close(autocommit=False)


async def test_lag_per_group_topic_and_partition(settings: Settings, topic: str) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    group = f"t{RUN_ID}.ops.lagged{uuid.uuid4().hex[:6]}"
    committed = await asyncio.to_thread(commit_some, bootstrap, topic, group, 5)

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        rows = await asyncio.to_thread(lag.collect, admin, group)
        ends = await asyncio.to_thread(
            lambda: KafkaConsumer(bootstrap_servers=bootstrap).end_offsets([TopicPartition(topic, p) for p in range(3)])
        )
    finally:
        admin.close()
    assert [(r.topic, r.partition) for r in rows] == [(topic, p) for p in range(3)]  # uncommitted ones too
    for r in rows:
        assert r.group == group and r.state == "Empty"
        assert r.committed == committed.get(r.partition)
        assert r.end == ends[TopicPartition(topic, r.partition)]
        assert r.lag == r.end - (committed.get(r.partition) or 0)
    (summary,) = lag.by_topic(rows)
    assert summary.lag == 12 - 5 and summary.partitions == 3

    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}", "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.plumbing.ops.lag", "--group", group, "--json", "--fail-above", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr  # 7 > 5
    assert [json.loads(line)["lag"] for line in out.stdout.splitlines()] == [7]

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_groups([group])
    finally:
        admin.close()


async def test_a_running_group_that_never_committed_lags_by_everything(settings: Settings, topic: str) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from services.plumbing.ops.metrics import LagCollector, Metrics

    bootstrap = settings.kafka_bootstrap_servers
    group = f"t{RUN_ID}.ops.running{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        got = 0
        deadline = asyncio.get_running_loop().time() + 15
        fetched_all = False  # every partition fetched once, so the consumer knows each one's end
        while not (got >= 4 and fetched_all) and asyncio.get_running_loop().time() < deadline:
            got += sum(len(rs) for rs in (await consumer.getmany(timeout_ms=300, max_records=4)).values())
            assignment = consumer.assignment()
            fetched_all = bool(assignment) and all(consumer.highwater(tp) is not None for tp in assignment)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            rows = await asyncio.to_thread(lag.collect, admin, group)
        finally:
            admin.close()
        assert {r.state for r in rows} == {"Stable"}
        assert sum(r.lag for r in rows) == 12 and all(r.committed is None for r in rows)

        # The consumer's own view (its position, not its commits) and the broker view as Prometheus series.
        metrics = Metrics(prometheus_client.CollectorRegistry())
        await metrics.observe_consumer_lag(group, consumer)
        seen = sum(
            metrics.registry.get_sample_value("iop_consumer_lag", {"group": group, "topic": topic, "partition": str(p)})
            or 0
            for p in range(3)
        )
        assert seen == 12 - got
        registry = prometheus_client.CollectorRegistry()
        registry.register(LagCollector(bootstrap, group))
        exported = sum(
            registry.get_sample_value(
                "kafka_consumergroup_lag", {"consumergroup": group, "topic": topic, "partition": str(p)}
            )
            or 0
            for p in range(3)
        )
        assert exported == 12
    finally:
        await consumer.stop()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_groups([group])
    except Exception:
        pass
    finally:
        admin.close()
