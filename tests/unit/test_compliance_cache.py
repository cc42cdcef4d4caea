"""The read-through cache behind EvaluateSession: TTL, single flight, invalidation, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import TypeVar

import pytest

from services.compliance import cache as cache_module
from services.compliance.cache import TtlCache

T = TypeVar("T")


class Clock:
    """The cache's clock, moved by the test: a sleep of the test process cannot expire an entry."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


async def answer(pending: Awaitable[T]) -> T:
    """A cache answer that must come without waiting on a load: fails rather than hangs."""
    return await asyncio.wait_for(pending, 5)


async def test_concurrent_misses_share_one_load_and_hits_do_not_load() -> None:
    cache: TtlCache[int] = TtlCache(ttl_s=60)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return 42

    assert await asyncio.gather(*(cache.get("k", load) for _ in range(10))) == [42] * 10
    assert await cache.get("k", load) == 42
    assert loads == 1


async def test_expired_or_invalidated_entries_reload() -> None:
    cache: TtlCache[int] = TtlCache(ttl_s=0.01)
    values = [1, 2, 3, 4]

    async def load() -> int:
        return values.pop(0)

    assert await cache.get("k", load) == 1
    await asyncio.sleep(0.02)
    assert await cache.get("k", load) == 2
    cache = TtlCache(ttl_s=60)
    assert await cache.get("k", load) == 3
    assert await cache.get("k", load) == 3
    cache.invalidate("k")
    assert await cache.get("k", load) == 4


async def test_a_failed_load_is_not_cached() -> None:
    cache: TtlCache[int] = TtlCache(ttl_s=60)
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("store down")
        return 7

    with pytest.raises(ConnectionError):
        await cache.get("k", flaky)
    assert await cache.get("k", flaky) == 7


async def test_a_hit_past_the_refresh_point_reloads_in_the_background_and_answers_at_once(clock: Clock) -> None:
    cache: TtlCache[int] = TtlCache(ttl_s=0.2, refresh_after=0.5)
    values = [1, 2]
    started = asyncio.Event()
    release = asyncio.Event()

    async def load() -> int:
        value = values.pop(0)
        if value == 2:
            started.set()
            await release.wait()
        return value

    assert await cache.get("k", load) == 1
    clock.now += 0.12  # past the refresh point (half the TTL here), not expired
    assert await answer(cache.get("k", load)) == 1  # answered from the entry, a reload started
    await asyncio.wait_for(started.wait(), 5)
    assert await answer(cache.get("k", load)) == 1  # one reload at a time
    release.set()
    await asyncio.sleep(0.01)
    assert await answer(cache.get("k", load)) == 2
    assert values == []


async def test_a_background_reload_does_not_undo_an_invalidation(clock: Clock) -> None:
    cache: TtlCache[str] = TtlCache(ttl_s=0.2, refresh_after=0.5)
    store = {"k": "before"}
    reloading = asyncio.Event()
    release = asyncio.Event()
    slow = False

    async def load() -> str:
        read = store["k"]
        if slow:
            reloading.set()
            await release.wait()
        return read

    assert await cache.get("k", load) == "before"
    clock.now += 0.12
    slow = True
    assert await answer(cache.get("k", load)) == "before"  # starts a reload that reads "before"
    await asyncio.wait_for(reloading.wait(), 5)
    store["k"] = "after"  # a write by this process ...
    cache.invalidate("k")  # ... invalidates the entry
    slow = False
    release.set()
    await asyncio.sleep(0.01)
    assert await cache.get("k", load) == "after"  # the stale reload was not installed
