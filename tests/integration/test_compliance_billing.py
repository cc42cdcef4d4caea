"""Billing of attended sessions against the real store: the scheduler's events that carry a session's
attendance (SessionEnded, SessionInterrupted, SessionAttendanceRecorded) through compliance's
handlers, as its consumer calls them.

A client is billed at most once per session. Until 2026-12-08 an attendance was de-duplicated by
event id only, so a second event carrying attendance for the same session and client (a scheduler
bug, a replay from another producer, an operator publishing again) billed the session twice."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from google.protobuf.message import Message

from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as sev
from services.compliance.billing import BillingDays
from services.compliance.handlers import SchedulingHandlers
from services.compliance.reference import billing_day, load_reference
from services.compliance.store import BILLED_ATTENDANCE, BILLING_DAYS, SESSIONS, ComplianceStore
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from services.plumbing.storage import Document
from tests.integration.test_compliance_api import past_midweek
from tests.integration.test_compliance_support import store_of_its_own, stored_events

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
VIDEO = common_pb2.MODALITY_VIDEO


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ComplianceStore]:
    async with store_of_its_own(settings, "billing") as s:
        yield s


def attendance(*rows: tuple[str, int]) -> list[sev.ClientAttendance]:
    return [sev.ClientAttendance(client_id=client, minutes_attended=minutes) for client, minutes in rows]


def billing_context(started: datetime) -> dict[str, object]:
    """The fields SessionEnded, SessionInterrupted and SessionAttendanceRecorded share."""
    return {
        "clinician_id": "clin-1",
        "started_at": to_timestamp(started),
        "modality": VIDEO,
        "payer_plan_id": "demo-medicare-ffs",
        "kind": sev.SESSION_KIND_GROUP,
    }


async def day_of(store: ComplianceStore, client: str, started: datetime) -> Document:
    """The client's attended day of a session started at `started` (no check-in: New York's date)."""
    on, _ = billing_day(REFERENCE, started, "")
    return await store.db[BILLING_DAYS].find_one({"_id": f"{client}:{on.isoformat()}"}) or {}


class SchedulerHandlersFor:
    """Compliance's scheduler-event handlers on `store`, called as its consumer calls them."""

    def __init__(self, store: ComplianceStore) -> None:
        self.handlers = SchedulingHandlers(store, REFERENCE, BillingDays(store, REFERENCE)).handlers()

    async def deliver(self, session_id: str, message: Message, event_id: str | None = None) -> str:
        event = CloudEvent.new("/iop/scheduler", session_id, message, event_id=event_id)
        await self.handlers[event.type](event, message)
        return event.id


async def test_a_sessions_attendance_is_billed_once_per_client_whatever_event_carries_it(
    store: ComplianceStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A group ends (two clients); then, for the same session, its SessionEnded again under the same
    id (a redelivery), SessionAttendanceRecorded with the same figures for one client (a duplicate),
    SessionInterrupted with other minutes for that client (a conflict), and SessionEnded again with
    the other client's session starting on the next day (a conflict across service dates: its day key
    is another one). Only the first attendance is billed, once, in its day; each conflict is kept with
    its figures, flags the session and is logged with ids only, once however often it is delivered."""
    caplog.set_level(logging.INFO, logger="services.compliance.handlers")
    await store.seed_policies(REFERENCE.seed_payer_policies)
    handlers = SchedulerHandlersFor(store)
    session = f"s-{uuid.uuid4().hex[:8]}"
    one, two = f"client-{uuid.uuid4().hex[:8]}", f"client-{uuid.uuid4().hex[:8]}"
    started = past_midweek()  # the day is closed for billing: each attendance bills at once
    context = billing_context(started)

    async def deliver(message: Message, event_id: str | None = None) -> str:
        return await handlers.deliver(session, message, event_id)

    ended = sev.SessionEnded(session_id=session, attendance=attendance((one, 50), (two, 50)), **context)  # type: ignore[arg-type]
    first = await deliver(ended)
    await deliver(ended, event_id=first)  # a redelivery
    same = await deliver(
        sev.SessionAttendanceRecorded(session_id=session, attendance=attendance((one, 50)), **context)  # type: ignore[arg-type]
    )
    other = sev.SessionInterrupted(session_id=session, reason="OTHER", attendance=attendance((one, 20)), **context)  # type: ignore[arg-type]
    differs = await deliver(other)
    await deliver(other, event_id=differs)  # a redelivery of the conflict
    next_day = {**context, "started_at": to_timestamp(started + timedelta(days=1))}
    moved = await deliver(sev.SessionEnded(session_id=session, attendance=attendance((two, 50)), **next_day))  # type: ignore[arg-type]

    for client in (one, two):
        day = await day_of(store, client, started)
        assert [(e["event_id"], e["session_id"], e["minutes"]) for e in day["entries"]] == [(first, session, 50)]
        assert day["reports"] == 1 and not day["dirty"], day  # reported once, never re-opened
        assert len(await stored_events(store, client, "iop.events.v1.BillingReady")) == 1
    assert await day_of(store, two, started + timedelta(days=1)) == {}, "billed again on the next day"

    # the conflicts are kept with their figures, and flag the session (once per event)
    claims = {d["client_id"]: d async for d in store.db[BILLED_ATTENDANCE].find({"session_id": session})}
    assert {c: d["entry"]["event_id"] for c, d in claims.items()} == {one: first, two: first}
    rejected = {
        c: [(r["event_id"], r["minutes"], r["day_id"]) for r in d.get("rejected", [])] for c, d in claims.items()
    }
    next_day_id = f"{two}:{billing_day(REFERENCE, started + timedelta(days=1), '')[0].isoformat()}"
    assert rejected == {
        one: [(differs, 20, (await day_of(store, one, started))["_id"])],
        two: [(moved, 50, next_day_id)],
    }
    copy = await store.db[SESSIONS].find_one({"_id": session}) or {}
    assert sorted(copy["flags"]) == sorted([f"ATTENDANCE_CONFLICT:client:{one}", f"ATTENDANCE_CONFLICT:client:{two}"])

    # logged with the ids, and no figures
    lines = [r.getMessage() for r in caplog.records if r.name == "services.compliance.handlers"]
    assert (
        lines.count(
            f"attendance of session {session} for client {one} in event {same} duplicates event {first}'s: billed once"
        )
        == 1
    )
    conflict = (
        "attendance of session {} for client {} in event {} differs from event {}'s, which is billed: "
        "not billed; session flagged ATTENDANCE_CONFLICT"
    )
    assert lines.count(conflict.format(session, one, differs, first)) == 2  # and again when redelivered
    assert lines.count(conflict.format(session, two, moved, first)) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "services.compliance.handlers"]
    assert len(warnings) == 3


async def test_a_day_of_several_sessions_bills_each_once_whatever_comes_again(store: ComplianceStore) -> None:
    """A client attends two sessions on one day (an IOP day often has a group and an individual
    session); then the first session's attendance comes again with the same figures (a duplicate),
    twice with other figures (two conflicts), one of them redelivered, and the second session's
    SessionEnded is redelivered under its id (as after a crash before the consumer's marker). The day
    holds each session once and is reported twice (the second session amends it), never again.

    Until 2026-12-08 the day's condition was `entries.session_id` / `entries.event_id` `$ne`, a path
    into an array of documents: FerretDB 1.24 (the local store) matches it whenever some entry differs,
    so in a day of two sessions every one of these events pushed the first session's entry again (the
    session billed twice, an amended BillingReady sent), and `rejected.event_id` kept a redelivered
    conflict twice once two were kept."""
    await store.seed_policies(REFERENCE.seed_payer_policies)
    handlers = SchedulerHandlersFor(store)
    first_session, second_session = f"s-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    client = f"client-{uuid.uuid4().hex[:8]}"
    started = past_midweek()  # the day is closed for billing: each attendance bills at once
    context = billing_context(started)
    later = {**context, "started_at": to_timestamp(started + timedelta(hours=4)), "kind": sev.SESSION_KIND_INDIVIDUAL}

    first = await handlers.deliver(
        first_session,
        sev.SessionEnded(session_id=first_session, attendance=attendance((client, 180)), **context),  # type: ignore[arg-type]
    )
    second_ended = sev.SessionEnded(session_id=second_session, attendance=attendance((client, 50)), **later)  # type: ignore[arg-type]
    second = await handlers.deliver(second_session, second_ended)
    await handlers.deliver(
        first_session,
        sev.SessionAttendanceRecorded(session_id=first_session, attendance=attendance((client, 180)), **context),  # type: ignore[arg-type]
    )
    conflicts = []
    for minutes in (20, 30):
        other = sev.SessionInterrupted(
            session_id=first_session,
            reason="OTHER",
            attendance=attendance((client, minutes)),
            **context,  # type: ignore[arg-type]
        )
        conflicts.append(await handlers.deliver(first_session, other))
    await handlers.deliver(first_session, other, event_id=conflicts[-1])  # a redelivery of the last conflict
    await handlers.deliver(second_session, second_ended, event_id=second)  # a redelivery of the second session

    day = await day_of(store, client, started)
    assert [(e["event_id"], e["session_id"], e["minutes"]) for e in day["entries"]] == [
        (first, first_session, 180),
        (second, second_session, 50),
    ], "a session billed twice in the day"
    assert day["reports"] == 2 and not day["dirty"], day  # the second session amended it; nothing since
    assert len(await stored_events(store, client, "iop.events.v1.BillingReady")) == 2
    claim = await store.db[BILLED_ATTENDANCE].find_one({"_id": f"{first_session}|{client}"}) or {}
    assert [(r["event_id"], r["minutes"]) for r in claim["rejected"]] == list(zip(conflicts, (20, 30), strict=True))
