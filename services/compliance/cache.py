"""A small read-through cache with a time-to-live, single-flight loading and refresh-ahead.

EvaluateSession is on the scheduler's booking and session-start path and must answer in a few
milliseconds; the store answers a few hundred queries per second. Credential and client-record
snapshots are therefore cached for a short TTL (COMPLIANCE_READ_CACHE_TTL_S, default 2 s). Every
write made by this process invalidates the affected entry at once; a write made by another
instance becomes visible here within the TTL. Concurrent misses for one key share one load.

A hit on an entry past three quarters of its TTL reloads it in the background and answers from the
entry it has, so a key in steady use is never waited for: no request pays for its expiry. (At half
the TTL, a key in steady use was reloaded twice as often as it expires: on a booking benchmark,
about one store read per booking.) The reloaded
snapshot counts from when its load began, and it is dropped if the entry was invalidated (or
replaced) meanwhile, so nothing is served older than the TTL and no write is hidden.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    loaded_at: float  # when the load that produced the value began
    value: asyncio.Future[T]
    refreshing: bool = field(default=False)


class TtlCache(Generic[T]):
    def __init__(self, ttl_s: float, max_entries: int = 50_000, refresh_after: float = 0.75) -> None:
        self._ttl_s = ttl_s
        self._refresh_after_s = ttl_s * refresh_after
        self._max_entries = max_entries
        self._entries: dict[str, _Entry[T]] = {}
        self._refreshes: set[asyncio.Task[None]] = set()

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry.loaded_at < self._ttl_s:
            if not entry.value.done():
                return await asyncio.shield(entry.value)
            if now - entry.loaded_at >= self._refresh_after_s and not entry.refreshing:
                entry.refreshing = True
                task = asyncio.create_task(self._refresh(key, entry, load))
                self._refreshes.add(task)
                task.add_done_callback(self._refreshes.discard)
            return entry.value.result()
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._entries[key] = _Entry(now, future)
        try:
            value = await load()
        except BaseException as exc:
            self._entries.pop(key, None)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody logs it as unhandled
            raise
        future.set_result(value)
        return value

    async def _refresh(self, key: str, entry: _Entry[T], load: Callable[[], Awaitable[T]]) -> None:
        started = time.monotonic()
        try:
            value = await load()
        except Exception:
            entry.refreshing = False  # keep the entry until it expires; a later hit tries again
            return
        if self._entries.get(key) is entry:  # not invalidated or replaced while loading
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._entries[key] = _Entry(started, future)

    def invalidate(self, key: str) -> None:
        self._entries.pop(key, None)

    def _evict(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.loaded_at >= self._ttl_s]:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))
