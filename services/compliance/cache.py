"""A small read-through cache with a time-to-live and single-flight loading.

EvaluateSession is on the scheduler's booking and session-start path and must answer in a few
milliseconds; the store answers a few hundred queries per second. Credential and client-record
snapshots are therefore cached for a short TTL (COMPLIANCE_READ_CACHE_TTL_S, default 2 s). Every
write made by this process invalidates the affected entry at once; a write made by another
instance becomes visible here within the TTL. Concurrent misses for one key share one load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    def __init__(self, ttl_s: float, max_entries: int = 50_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, asyncio.Future[T]]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl_s:
            pending = entry[1]
            if pending.done():
                return pending.result()
            return await asyncio.shield(pending)
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._entries[key] = (now, future)
        try:
            value = await load()
        except BaseException as exc:
            self._entries.pop(key, None)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody logs it as unhandled
            raise
        future.set_result(value)
        return value

    def invalidate(self, key: str) -> None:
        self._entries.pop(key, None)

    def _evict(self, now: float) -> None:
        for key in [k for k, (at, _) in self._entries.items() if now - at >= self._ttl_s]:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))
