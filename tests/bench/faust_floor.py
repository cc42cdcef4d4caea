"""The floor of faust's own cost: a faust worker whose agent only counts the records of a topic.

    .venv/bin/python -m tests.bench.faust_floor --topic T --count N --stats PATH

Run by `engagement_bench` over the same records as the raw aiokafka loop and the engagement
worker. The agent takes records in batches, as the engagement worker does (`stream.take`), with
raw bytes (no deserialization), no tables and no changelog: what any faust agent pays per record
(fetcher, conductor, stream, acks) before it does anything. When the worker reaches `count`
records it writes the count, the size of its first batch and the perf_counter seconds at the
first and the last batch to PATH as JSON; the benchmark then stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import faust
import uvloop

from services.engagement.worker import fetch_without_long_holds


def floor_app(broker: str, app_id: str, topic: str, count: int, stats: Path, datadir: str) -> faust.App:
    app = faust.App(
        app_id,
        broker=[f"kafka://{h.strip()}" for h in broker.split(",")],
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        stream_wait_empty=False,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = 0
    first = 0.0
    first_batch = 0

    @app.agent(source)
    async def count_records(stream: Any) -> None:
        nonlocal seen, first, first_batch
        async for values in stream.take(500, within=0.05):
            if not first:
                first, first_batch = time.perf_counter(), len(values)
            seen += len(values)
            if seen >= count:
                figures = {"count": seen, "first_batch": first_batch, "first": first, "last": time.perf_counter()}
                await asyncio.to_thread(stats.write_text, json.dumps(figures))

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the engagement worker runs
    fetch_without_long_holds()  # the engagement worker's consumer setting
    datadir = tempfile.mkdtemp(prefix="faust-floor-")
    app = floor_app(args.broker, args.app_id, args.topic, args.count, args.stats, datadir)
    faust.Worker(app, loglevel="WARNING", override_logging=False, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
