"""What a cohort booking reads, against the real store: a new booking that names a cohort reads
the cohort and nothing of the booking path's more than one without (no look for an earlier
booking of its request before it books: a retry finds its booking when its reservations are in
the way, as every booking's does)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from iop.compliance.v1 import compliance_pb2
from services.plumbing.auth import Principal
from services.plumbing.errors import FailedPrecondition
from services.plumbing.settings import Settings
from services.plumbing.storage import Document, service_database
from services.scheduler.booking import Scheduler
from services.scheduler.domain import INDIVIDUAL, SessionRequest, load_reference_data
from services.scheduler.programs import Programs, TrackSpec
from services.scheduler.store import SESSIONS_COLLECTION, SchedulerStore

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
ALL_WEEK = [(day, "00:00", "24:00") for day in range(7)]
PLATFORM = Principal("app", frozenset({"platform"}))


@dataclass
class Finds(monitoring.CommandListener):
    """The collections each `find` command read, in order, and the `_id`s of the documents the
    store answered by collection (`read`, over `find` and `getMore`)."""

    collections: list[str] = field(default_factory=list)
    read: dict[str, list[Any]] = field(default_factory=dict)
    _asked: dict[int, str] = field(default_factory=dict)  # collection, by the command's request id

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.collections.append(str(event.command["find"]))
            self._asked[event.request_id] = str(event.command["find"])
        elif event.command_name == "getMore":
            self._asked[event.request_id] = str(event.command["collection"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        collection = self._asked.pop(event.request_id, None)
        if collection is not None:
            cursor = event.reply.get("cursor", {})
            docs = cursor.get("firstBatch", cursor.get("nextBatch", []))
            self.read.setdefault(collection, []).extend(d.get("_id") for d in docs)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._asked.pop(event.request_id, None)


@dataclass
class Target:
    scheduler: Scheduler
    programs: Programs
    finds: Finds


@pytest.fixture
async def target(settings: Settings) -> AsyncIterator[Target]:
    finds = Finds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True, event_listeners=[finds])
    db = service_database(client, settings, f"cohortreads{uuid.uuid4().hex[:6]}")
    store = SchedulerStore(db)
    reference = load_reference_data()
    yield Target(Scheduler(store, reference, _allow, _licensed), Programs(store, reference), finds)
    await client.drop_database(db.name)
    await client.close()


async def _allow(request: compliance_pb2.EvaluateSessionRequest) -> compliance_pb2.SessionEvaluation:
    return compliance_pb2.SessionEvaluation(decision=compliance_pb2.DECISION_ALLOW)


async def _licensed(request: compliance_pb2.CheckLicensureRequest) -> compliance_pb2.LicensureDecision:
    return compliance_pb2.LicensureDecision(decision=compliance_pb2.DECISION_ALLOW)


async def test_a_new_cohort_booking_reads_no_session_before_it_books(target: Target) -> None:
    track = TrackSpec("t3x5", "3h x 3-5 days", 3, 3, 5)
    program = await target.programs.create_program(
        "p-1", "Adult IOP", "America/New_York", "IOP_PSYCH", "+15555550100", [track], {}, ""
    )
    await target.programs.set_clinician("c1", "America/New_York", "NY", ALL_WEEK, None)
    for client_id in ("k1", "k2"):
        await target.programs.set_client(client_id, "America/New_York", ALL_WEEK, [], "NY", "")
    cohort = await target.programs.create_cohort("cohort-1", program["_id"], "t3x5", ["k1"], datetime.now(UTC))
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)

    def request(request_id: str, client_id: str, at: datetime, cohort_id: str = cohort["_id"]) -> SessionRequest:
        return SessionRequest(
            request_id, program["_id"], "c1", (client_id,), at, at + HOUR, INDIVIDUAL, extra={"cohort_id": cohort_id}
        )

    # the same booking without a cohort, first (programs and profiles cached alike afterwards)
    target.finds.collections.clear()
    await target.scheduler.book(request("r-0", "k1", start, ""), PLATFORM, require_alone=False)
    without = list(target.finds.collections)

    with_cohort = request("r-1", "k1", start + 2 * HOUR)
    target.finds.collections.clear()
    booked = await target.scheduler.book_in_cohort(with_cohort, cohort["_id"], PLATFORM, require_alone=False)
    assert booked["cohort_id"] == cohort["_id"]
    assert SESSIONS_COLLECTION not in target.finds.collections, target.finds.collections
    assert len(target.finds.collections) <= len(without) + 1, (target.finds.collections, without)

    # a retry after the client left the cohort still answers with its booking; a new booking of
    # a client who is not a member is still refused
    await target.programs.change_cohort(cohort["_id"], "k1", add=False)
    again = await target.scheduler.book_in_cohort(with_cohort, cohort["_id"], PLATFORM, require_alone=False)
    assert again["_id"] == booked["_id"]
    with pytest.raises(FailedPrecondition) as refused:
        await target.scheduler.book_in_cohort(
            request("r-2", "k2", start + 4 * HOUR), cohort["_id"], PLATFORM, require_alone=False
        )
    assert refused.value.details[0].reason == "CLIENT_NOT_IN_COHORT"  # type: ignore[attr-defined]
