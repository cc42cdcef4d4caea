"""The worker's two faust patches for the end of a recovery (`resume_streams_without_dropping_records`),
checked on stand-ins for faust's Recovery and aiokafka's fetcher: the restart test against the real
broker (tests/integration/test_engagement_worker.py) catches their races only now and then."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from services.engagement.worker import (
    FETCH_MAX_WAIT_MS,
    fetch_without_long_holds,
    resume_streams_without_dropping_records,
)


class _Events:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.active: set[str] = {"changelog-0"}


def _recovery(events: _Events) -> Any:
    """A stand-in for faust's Recovery with what on_recovery_completed touches; records the steps."""

    async def perform_seek() -> None:
        await asyncio.sleep(0)  # the real one waits for the broker: other tasks (the fetcher) run meanwhile
        events.log.append("seek" + (" while streams fetched" if "stream-0" in events.active else ""))

    async def noop() -> None:
        return None

    def resume_partitions(tps: set[str]) -> None:
        events.active.update(tps)
        events.log.append(f"resume {sorted(tps)}")

    consumer = SimpleNamespace(
        assignment=lambda: {"stream-0", "changelog-0"},
        perform_seek=perform_seek,
        resume_flow=lambda: events.log.append("resume_flow"),
        resume_partitions=resume_partitions,
    )

    async def wait(coro: Any, **_: Any) -> None:
        await coro

    tables = SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None)
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=1,
        conf=SimpleNamespace(broker_request_timeout=1.0),
        on_rebalance_complete=SimpleNamespace(send=noop),
        flow_control=SimpleNamespace(resume=lambda: events.log.append("clear queues")),
        _fetcher=SimpleNamespace(maybe_start=noop),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )
    return SimpleNamespace(
        app=app,
        log=SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, dev=lambda *a: None),
        tables=tables,
        actives_for_table={},
        standbys_for_table={},
        completed=asyncio.Event(),
        _set_recovery_ended=lambda: None,
        _wait=wait,
        _is_changelog_tp=lambda tp: tp.startswith("changelog"),
    )


async def test_recovery_seeks_and_clears_the_queues_before_the_stream_partitions_resume() -> None:
    resume_streams_without_dropping_records()
    events = _Events()
    await Recovery.on_recovery_completed(_recovery(events), generation_id=1)  # type: ignore[arg-type]
    # faust 0.15.3: "resume ['stream-0']", "seek while streams fetched", "clear queues": what the
    # fetcher queued during the seek was cleared, and never read again
    assert events.log == ["seek", "clear queues", "resume_flow", "resume ['stream-0']"]


async def test_a_fetch_asks_aiokafka_for_the_partitions_active_when_it_started() -> None:
    resume_streams_without_dropping_records()
    active = {"changelog-0"}
    asked: list[Any] = []

    async def fetched_records(partitions: Any, **_: Any) -> dict[str, list[int]]:
        asked.append(partitions)
        active.clear()  # the changelog partitions are paused while the fetch waits
        # aiokafka: an empty set means every partition, the paused stream partition too
        return {tp: [1] for tp in ("changelog-0", "stream-0") if not partitions or tp in partitions}

    fetcher = SimpleNamespace(
        _closed=False, fetched_records=fetched_records, _subscriptions=SimpleNamespace(fetch_context=nullcontext)
    )
    thread = SimpleNamespace(consumer=SimpleNamespace(flow_active=True))
    consumer = SimpleNamespace(_closed=False, _fetcher=fetcher)
    fetch = AIOKafkaConsumerThread._fetch_records
    got = await fetch(thread, consumer, active, timeout=1.0, max_records=10)  # type: ignore[arg-type]
    assert got == {"changelog-0": [1]}  # faust 0.15.3 also returned (and then discarded) stream-0's records
    assert await fetch(thread, consumer, set(), timeout=1.0, max_records=10) == {}  # type: ignore[arg-type]
    assert len(asked) == 1  # an empty set fetches nothing


def test_the_worker_consumer_asks_the_broker_to_hold_an_empty_fetch_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """faust creates its consumer with fetch_max_wait_ms=1500: a fetch for idle partitions then held
    the signals behind it for up to 1.5 s (docs/engagement.md)."""
    created = SimpleNamespace(_fetch_max_wait_ms=1500)  # what faust's own method builds
    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, transport: created)
    monkeypatch.delattr(AIOKafkaConsumerThread, "_iop_short_fetch_wait", raising=False)
    fetch_without_long_holds()
    consumer = AIOKafkaConsumerThread._create_worker_consumer(SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    assert consumer is created and consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS <= 100
