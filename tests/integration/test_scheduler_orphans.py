"""The scheduler's orphan sweep against the real store: a booking whose process died after it
reserved its slots and entered its day ledgers, but before its session (or seat) was stored, gives
both back; reservations of stored bookings stay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database
from services.scheduler.domain import Booked
from services.scheduler.store import (
    CLAIMS,
    SEAT_CLAIM,
    SEATS,
    SESSIONS_COLLECTION,
    SchedulerStore,
    seat_key,
)

pytestmark = pytest.mark.integration

START = datetime(2030, 3, 4, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SchedulerStore]:
    client = mongo_client(settings)
    db = service_database(client, settings, f"orphans{uuid.uuid4().hex[:6]}")
    yield SchedulerStore(db)
    await client.drop_database(db.name)
    await client.close()


def keys(owner: str, start: datetime) -> list[str]:
    return [f"{owner}@{(start + timedelta(minutes=15 * n)):%Y%m%dT%H%M}" for n in range(4)]


async def test_a_booking_that_was_never_stored_gives_back_its_slots_and_ledger_entries(
    store: SchedulerStore,
) -> None:
    clinician_day, client_day, seat_client_day = (
        "clinician:c1|2030-03-04",
        "client:k1|2030-03-04",
        "client:k3|2030-03-04",
    )
    # stored: an individual session and a group session with one seated client (k2)
    await store.sessions.insert_one({"_id": "live", "capacity": 1})
    await store.sessions.insert_one({"_id": "group", "capacity": 2})
    await store.db[SEATS].insert_one({"_id": seat_key("group", 0), "session_id": "group", "client_id": "k2"})
    await store.claim(keys("clinician:c1", START), "live", "slot", ledger_days=[clinician_day])
    await store.claim(keys("client:k2", START + 2 * HOUR), "group", SEAT_CLAIM, client_id="k2")
    # never stored: the individual session "dead" and the seat of k3 in "group"
    await store.claim(
        keys("clinician:c1", START + HOUR) + keys("client:k1", START + HOUR),
        "dead",
        "slot",
        ledger_days=[clinician_day, client_day],
    )
    await store.claim(
        keys("client:k3", START + 2 * HOUR), "group", SEAT_CLAIM, ledger_days=[seat_client_day], client_id="k3"
    )
    live, dead, group = (
        Booked("live", START, START + HOUR),
        Booked("dead", START + HOUR, START + 2 * HOUR),
        Booked("group", START + 2 * HOUR, START + 3 * HOUR),
    )
    assert await store.write_ledger(clinician_day, 0, [live, dead])
    assert await store.write_ledger(client_day, 0, [dead])
    assert await store.write_ledger(seat_client_day, 0, [group])

    now = datetime.now(UTC)
    assert await store.release_orphans(now - timedelta(hours=1), now - timedelta(hours=1)) == 0  # outside the window
    released = await store.release_orphans(now - timedelta(minutes=1), now + timedelta(seconds=1))

    assert released == 12  # 8 slots of "dead" and 4 of k3's seat
    remaining = {c["_id"] for c in await store.db[CLAIMS].find({}, {"_id": 1}).to_list()}
    assert remaining == set(keys("clinician:c1", START) + keys("client:k2", START + 2 * HOUR))
    fresh = SchedulerStore(store.db)  # no cached revisions: what any process reads
    assert [b.session_id for b in (await fresh.ledger(clinician_day))[1]] == ["live"]
    assert (await fresh.ledger(client_day))[1] == []
    assert (await fresh.ledger(seat_client_day))[1] == []
    assert await store.db[SESSIONS_COLLECTION].count_documents({}) == 2  # stored bookings untouched
