"""The worker's faust flush waits for every buffered record before a commit may go ahead."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from services.engagement.worker import complete_producer_flush


class SlowChannel:
    """Hands a record to 'Kafka' after `delay_s`, longer than faust's 0.1 s flush patience."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay_s)
        self.published.append(fut.n)


def record(channel: SlowChannel, n: int) -> Any:
    return SimpleNamespace(n=n, message=SimpleNamespace(channel=channel))


async def test_flush_returns_only_when_every_record_was_handed_over() -> None:
    complete_producer_flush()
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    try:
        channel = SlowChannel(delay_s=0.25)
        for n in range(3):
            buffer.put(record(channel, n))  # type: ignore[arg-type]
        await buffer.flush()
        assert channel.published == [0, 1, 2]  # faust's own returned 0.1 s in, none handed over
        await buffer.flush()  # nothing left: returns at once
    finally:
        await buffer.stop()
