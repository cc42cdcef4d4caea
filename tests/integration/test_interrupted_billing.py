"""InterruptSession takes the minutes each client attended before the interruption, checked as
EndSession's, and compliance bills them: from the scheduler, through SessionInterrupted on the
broker, to BillingReady, with real scheduler and compliance processes, the real store and broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from pymongo import MongoClient

from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from services.plumbing.settings import Settings
from tests.integration.test_compliance_api import SchedulerEvents, TopicTail, past_midweek
from tests.integration.test_compliance_rules import billed_here, own_plan, wait_until
from tests.integration.test_scheduler_guards import refused
from tests.integration.test_scheduler_support import (
    Api,
    fields_of,
    next_slot,
    reason_of,
    scheduler_with_compliance,
)

pytestmark = pytest.mark.integration

VIDEO = common_pb2.MODALITY_VIDEO
NEW_YORK_ALONE = common_pb2.ClientLocation(state="NY", postal_code="10001", verified=True)


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[Api]:
    with scheduler_with_compliance(settings) as client:
        yield client


@pytest.fixture(scope="module")
def dbs(settings: Settings) -> Iterator[tuple[Any, Any]]:
    """The scheduler's and compliance's databases."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    prefix = settings.mongodb_database_prefix
    yield mongo[f"{prefix}scheduler"], mongo[f"{prefix}compliance"]
    mongo.close()


def started(api: Api, program_id: str, clinician: str, client: str, start: datetime, minutes: int) -> str:
    """An individual session booked at `start`, checked in from New York and started."""
    session = api.book(program_id, clinician, [client], start, minutes=minutes).session_id
    check_in = pb.CheckInRequest(
        session_id=session, client_id=client, location=NEW_YORK_ALONE, privacy_attestation="alone"
    )
    api.call("CheckIn", check_in, role="client", subject=client)
    api.call("StartSession", pb.StartSessionRequest(session_id=session, clinician_state="NY"))
    return session


def on_a_closed_day(scheduler_db: Any, session: str) -> datetime:
    """A BillingReady goes out once the client's day is closed for billing (hours after its local
    midnight), and a session starts only now: its start is moved to a past day, whose attended
    minutes bill at once. Returns the start."""
    day = past_midweek()
    moved = scheduler_db.sessions.update_one({"_id": session}, {"$set": {"started_at": day}})
    assert moved.modified_count == 1
    return day


def running_for(scheduler_db: Any, session: str, minutes: int) -> None:
    """The session started `minutes` ago (moved back in the store: a test cannot wait that long)."""
    began = datetime.now(UTC) - timedelta(minutes=minutes)
    assert scheduler_db.sessions.update_one({"_id": session}, {"$set": {"started_at": began}}).modified_count == 1


def attendance(client: str, minutes: int) -> list[ev.ClientAttendance]:
    return [ev.ClientAttendance(client_id=client, minutes_attended=minutes)]


def test_minutes_before_an_interruption_are_billed_once_and_the_rescheduled_session_bills_its_own(
    api: Api, dbs: tuple[Any, Any], settings: Settings
) -> None:
    scheduler_db, compliance_db = dbs
    plan = own_plan(api.compliance, settings, "demo-medicare-ffs")  # per service: a code by minutes
    program, clinician, client = api.program(payer_plan_id=plan), api.clinician(), api.client()
    start = next_slot(timedelta(minutes=5))
    session = started(api, program.program_id, clinician, client, start, minutes=30)
    began = on_a_closed_day(scheduler_db, session)
    billing = TopicTail(settings, "iop.compliance.billing.v1")
    sessions = TopicTail(settings, "iop.scheduling.sessions.v1")
    producer = SchedulerEvents(settings)
    try:
        stop = pb.InterruptSessionRequest(
            session_id=session, reason="DISCONNECTED", modality=VIDEO, attendance=attendance(client, 20)
        )
        interrupted = api.call("InterruptSession", stop, role="clinician", subject=clinician)
        assert interrupted.status == "interrupted"
        assert api.call("InterruptSession", stop, role="clinician", subject=clinician) == interrupted  # a retry

        found = billing.wait_for(billed_here(client))
        assert len(found) == 1, [p for _, _, p in billing.seen]
        ready = found[0][2]
        assert [line.code for line in ready.lines] == ["90832"] and ready.covered, ready  # 16-37 minutes
        assert ready.minutes_attended == 20 and list(ready.session_ids) == [session], ready
        assert list(ready.condition_codes) == ["92"] and not ready.amended

        # the event carries the attendance and the billing context, as SessionEnded does
        (_, event, message) = sessions.wait_for(
            lambda key, e, p: key == session.encode() and isinstance(p, ev.SessionInterrupted)
        )[0]
        assert [(a.client_id, a.minutes_attended, a.modality) for a in message.attendance] == [(client, 20, VIDEO)]
        assert (message.payer_plan_id, message.level_of_care, message.kind) == (
            plan,
            "IOP_PSYCH",
            ev.SESSION_KIND_INDIVIDUAL,
        )
        assert message.clinician_id == clinician and message.started_at.ToDatetime(UTC) == began

        # redelivered, then the session moved (in order: same key): its minutes are billed once
        producer.send(session, message, event_id=event.id)
        move = pb.RescheduleSessionRequest(
            request_id=f"re-{session}", session_id=session, new_starts_at=interrupted.ends_at, reason="DISCONNECTED"
        )
        moved = api.call("RescheduleSession", move, role="clinician", subject=clinician)
        assert wait_until(
            lambda: (compliance_db.sessions.find_one({"_id": session}) or {}).get("status") == "rescheduled"
        )
        (day,) = compliance_db.billing_days.find({"client_id": client})
        assert [(e["session_id"], e["minutes"]) for e in day["entries"]] == [(session, 20)]

        # the new session bills its own minutes: the day amended, each session's minutes once
        api.call(
            "CheckIn",
            pb.CheckInRequest(
                session_id=moved.session_id, client_id=client, location=NEW_YORK_ALONE, privacy_attestation="alone"
            ),
            role="client",
            subject=client,
        )
        api.call("StartSession", pb.StartSessionRequest(session_id=moved.session_id, clinician_state="NY"))
        on_a_closed_day(scheduler_db, moved.session_id)
        end = pb.EndSessionRequest(session_id=moved.session_id, modality=VIDEO, attendance=attendance(client, 30))
        api.call("EndSession", end, role="clinician", subject=clinician)
        found = billing.wait_for(billed_here(client), count=2)
        assert len(found) == 2, [p for _, _, p in billing.seen]
        amended = found[1][2]
        assert amended.amended and amended.minutes_attended == 50, amended
        assert sorted(amended.session_ids) == sorted([session, moved.session_id])
        assert [line.code for line in amended.lines] == ["90832", "90832"], amended
    finally:
        billing.close()
        sessions.close()
        producer.close()


def test_an_interruptions_attendance_is_checked_as_an_endings_and_a_bad_one_stores_nothing(
    api: Api, dbs: tuple[Any, Any]
) -> None:
    scheduler_db, _ = dbs
    program, clinician, client = api.program(), api.clinician(), api.client()
    session = started(api, program.program_id, clinician, client, next_slot(timedelta(minutes=5)), minutes=30)
    running_for(scheduler_db, session, 25)

    def interrupt(modality: int, *rows: tuple[str, int, int]) -> pb.Session:
        request = pb.InterruptSessionRequest(
            session_id=session,
            reason="DISCONNECTED",
            modality=modality,  # type: ignore[arg-type]
            attendance=[ev.ClientAttendance(client_id=c, minutes_attended=m, modality=mod) for c, m, mod in rows],  # type: ignore[arg-type]
        )
        return api.call("InterruptSession", request, role="clinician", subject=clinician)

    cases = [
        ((VIDEO, (client, 20, 0), (client, 20, 0)), {"attendance[1].client_id"}),
        ((VIDEO, ("someone-else", 20, 0)), {"attendance[0].client_id"}),
        ((VIDEO, (client, 27, 0)), {"attendance[0].minutes_attended"}),  # longer than it ran (25, rounded up)
        ((VIDEO, (client, -5, 0)), {"attendance[0].minutes_attended"}),
        ((VIDEO, ("", 20, 0)), {"attendance[0].client_id"}),
        ((VIDEO, (client, 20, 9)), {"attendance[0].modality"}),
        ((0, (client, 20, 0)), {"modality"}),  # with attendance, the session's modality is required
        ((7, (client, 20, VIDEO)), {"modality"}),
    ]
    for args, expected in cases:
        assert fields_of(refused(grpc.StatusCode.INVALID_ARGUMENT, interrupt, *args)) == expected, args
    stored = scheduler_db.sessions.find_one({"_id": session})
    assert stored["status"] == "in_progress" and "attendance" not in stored
    assert interrupt(VIDEO, (client, 20, 0)).status == "interrupted"


def test_an_interruption_without_attendance_bills_nothing_and_later_attendance_is_refused(
    api: Api, dbs: tuple[Any, Any]
) -> None:
    _, compliance_db = dbs
    program, clinician, client = api.program(), api.clinician(), api.client()
    session = api.book(program.program_id, clinician, [client], next_slot(timedelta(minutes=5)), minutes=30).session_id
    check_in = pb.CheckInRequest(
        session_id=session, client_id=client, location=NEW_YORK_ALONE, privacy_attestation="alone"
    )
    api.call("CheckIn", check_in, role="client", subject=client)

    def interrupt(*rows: tuple[str, int]) -> pb.Session:
        request = pb.InterruptSessionRequest(
            session_id=session,
            reason="OTHER",
            modality=VIDEO if rows else 0,  # type: ignore[arg-type]
            attendance=[ev.ClientAttendance(client_id=c, minutes_attended=m) for c, m in rows],
        )
        return api.call("InterruptSession", request, role="clinician", subject=clinician)

    # checked in, not started: nobody attended any of it
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, interrupt, (client, 10))
    assert fields_of(err) == {"attendance[0].minutes_attended"}
    assert interrupt().status == "interrupted"  # no attendance given: nothing to bill
    assert interrupt().status == "interrupted"  # a retry
    # attendance given after the interruption is not silently dropped
    err = refused(grpc.StatusCode.FAILED_PRECONDITION, interrupt, (client, 0))
    assert reason_of(err) == "SESSION_ALREADY_INTERRUPTED"
    assert wait_until(lambda: (compliance_db.sessions.find_one({"_id": session}) or {}).get("status") == "interrupted")
    assert compliance_db.billing_days.count_documents({"client_id": client}) == 0


def test_minutes_before_an_interruption_are_at_most_the_minutes_the_session_ran(api: Api, dbs: tuple[Any, Any]) -> None:
    """A 60-minute session cut short after 10 minutes did not deliver 40: its booked length is no
    bound for the minutes before the interruption (40 would bill a 90834 for 10 minutes delivered)."""
    scheduler_db, _ = dbs
    program, clinician, client = api.program(), api.clinician(), api.client()
    session = started(api, program.program_id, clinician, client, next_slot(timedelta(minutes=5)), minutes=60)
    running_for(scheduler_db, session, 10)

    def interrupt(minutes: int) -> pb.Session:
        request = pb.InterruptSessionRequest(
            session_id=session, reason="DISCONNECTED", modality=VIDEO, attendance=attendance(client, minutes)
        )
        return api.call("InterruptSession", request, role="clinician", subject=clinician)

    err = refused(grpc.StatusCode.INVALID_ARGUMENT, interrupt, 40)
    assert fields_of(err) == {"attendance[0].minutes_attended"}
    assert (scheduler_db.sessions.find_one({"_id": session}) or {})["status"] == "in_progress"
    assert interrupt(10).status == "interrupted"  # the minutes it ran (rounded up) are the bound
