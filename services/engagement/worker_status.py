"""Where the engagement stream worker reports its state, and when it is ready.

The worker writes `worker_status` on every flush. It is ready once a status written after its
start shows partitions assigned and no rebalance in progress. Whoever starts a worker and then
produces what it must read waits for that first: the launcher before the demo, and the tests.
A worker whose group starts at the latest offsets would otherwise miss the first events.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from typing import Any

from pymongo import MongoClient

from services.plumbing.settings import Settings

WORKER_STATUS = "worker_status"


def app_id(settings: Settings) -> str:
    return f"{settings.kafka_group_prefix}.engagement.worker"


def is_ready(status: dict[str, Any] | None, since: datetime) -> bool:
    """A status written after `since`, with partitions assigned and no rebalance in progress."""
    return bool(status and status["updated_at"] > since and status["assigned"] > 0 and not status["rebalancing"])


def wait_ready(settings: Settings, proc: subprocess.Popen[bytes], since: datetime, timeout_s: float = 90) -> None:
    """Return once the worker `proc`, started at `since`, is ready; raise if it exits or times out."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    status = mongo[f"{settings.mongodb_database_prefix}engagement"][WORKER_STATUS]
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the engagement worker exited with {proc.returncode}")
            if is_ready(status.find_one({"_id": app_id(settings)}), since):
                return
            time.sleep(0.3)
    finally:
        mongo.close()
    raise TimeoutError(f"the engagement worker was not ready within {timeout_s:.0f} s")
