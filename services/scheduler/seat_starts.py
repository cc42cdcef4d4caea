"""One-off backfill: the start of its session on every seat stored before 2026-12-08 (twelfth
session), by which a client's seats are read since (SchedulerStore.seats_of_client). The scheduler
runs it at start, in the background, until it has completed once for its database (its record is
`seat_starts` in `migrations`); until then a client's schedule reads every seat of the client, as
before. Run it by hand after a rolling deploy from a version before (docs/runbook.md, *Seats stored
before 2026-12-08*): it is safe to run again, and while the service runs.

    python -m services.scheduler.seat_starts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.logs import configure_logging
from services.plumbing.settings import get_settings
from services.plumbing.storage import Document, mongo_client, service_database
from services.scheduler.store import SchedulerStore

log = logging.getLogger(__name__)


async def backfill_until_done(db: AsyncDatabase[Document], retry_s: float = 10.0) -> None:
    """The service's background run: nothing once the record exists; otherwise the backfill,
    retried after a failure (the store, most likely) rather than stopping the service."""
    store = SchedulerStore(db)
    while True:
        try:
            if not await store.seat_starts_backfilled():
                given = await store.backfill_seat_starts()
                log.info("seat starts backfilled: %d seats given their session's start", given)
            return
        except Exception as exc:
            log.warning("seat start backfill failed (%s); retrying in %.0f s", type(exc).__name__, retry_s)
            await asyncio.sleep(retry_s)


async def _command() -> int:
    settings = get_settings()
    mongo = mongo_client(settings)
    try:
        given = await SchedulerStore(service_database(mongo, settings, "scheduler")).backfill_seat_starts()
        print(json.dumps({"seats_given_their_start": given}))
        return 0
    finally:
        await mongo.close()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m services.scheduler.seat_starts",
        description="Give every seat stored without its session's start that start (safe to run again).",
    ).parse_args(argv)
    configure_logging("scheduler")
    return asyncio.run(_command())


if __name__ == "__main__":
    raise SystemExit(main())
