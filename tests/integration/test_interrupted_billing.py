"""InterruptSession takes the minutes each client attended before the interruption, checked as
EndSession's, and compliance bills them: from the scheduler, through SessionInterrupted on the
broker, to BillingReady, with real scheduler and compliance processes, the real store and broker.
A session interrupted without attendance (by the scheduler itself on a ConnectionDropped) takes it
once later, also once rescheduled: published as SessionAttendanceRecorded (not a second
SessionInterrupted), and it is billed once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from kafka import KafkaProducer
from pymongo import MongoClient

from iop.compliance.v1 import compliance_pb2
from iop.events.v1 import common_pb2
from iop.events.v1 import engagement_pb2 as engagement_events
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from partner.consumer import message_types_from_contract
from partner.envelope import decode
from partner.mirror import Accepted, Mirror
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from services.plumbing.storage import mongo_client, service_database
from services.scheduler.booking import Scheduler
from services.scheduler.domain import load_reference_data
from services.scheduler.store import SchedulerStore
from tests.integration.test_compliance_api import SchedulerEvents, TopicTail, billed_here, own_plan, past_midweek
from tests.integration.test_compliance_rules import wait_until
from tests.integration.test_scheduler_guards import refused
from tests.integration.test_scheduler_support import (
    Api,
    fields_of,
    next_slot,
    reason_of,
    running_for,
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


def test_an_interruption_without_attendance_bills_nothing_and_takes_attendance_once_later(
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
    # attendance given after the interruption is checked against it (not started: 0 minutes), then
    # recorded once: the same again is a retry, another one refused
    err = refused(grpc.StatusCode.INVALID_ARGUMENT, interrupt, (client, 10))
    assert fields_of(err) == {"attendance[0].minutes_attended"}
    assert interrupt((client, 0)).status == "interrupted"
    assert interrupt((client, 0)).status == "interrupted"
    assert interrupt().status == "interrupted"
    moved = pb.InterruptSessionRequest(
        session_id=session, reason="OTHER", modality=common_pb2.MODALITY_AUDIO_ONLY, attendance=attendance(client, 0)
    )
    err = refused(grpc.StatusCode.FAILED_PRECONDITION, api.call, "InterruptSession", moved, "clinician", clinician)
    assert reason_of(err) == "ATTENDANCE_ALREADY_RECORDED"
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


def connection_dropped(settings: Settings, session: str, client: str, clinician: str) -> None:
    """What engagement publishes when the video platform reports the client gone: the scheduler
    interrupts a running individual session itself, without attendance."""
    dropped = engagement_events.ConnectionDropped(
        session_id=session, client_id=client, clinician_id=clinician, dropped_at=to_timestamp(datetime.now(UTC))
    )
    event = CloudEvent.new("/iop/engagement", session, dropped)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    try:
        producer.send("iop.engagement.attendance.v1", key=session.encode(), value=event.data, headers=event.headers())
        producer.flush(10)
    finally:
        producer.close()


def dropped_on_a_closed_day(api: Api, scheduler_db: Any, settings: Settings, plan: str) -> tuple[str, str, str]:
    """An individual session of a program billed under `plan`, started on a past day (its minutes
    bill at once), which the scheduler interrupts itself on the client's ConnectionDropped, without
    attendance. Returns the clinician, the client and the session."""
    program, clinician, client = api.program(payer_plan_id=plan), api.clinician(), api.client()
    session = started(api, program.program_id, clinician, client, next_slot(timedelta(minutes=5)), minutes=30)
    on_a_closed_day(scheduler_db, session)
    connection_dropped(settings, session, client, clinician)
    # a new consumer group first works through the topic's backlog
    stored = lambda: scheduler_db.sessions.find_one({"_id": session}) or {}  # noqa: E731
    assert wait_until(lambda: stored().get("status") == "interrupted", timeout_s=120)
    assert stored()["interruption_reason"] == "DISCONNECTED" and stored()["attendance"] == []
    return clinician, client, session


def mirrored(tail: TopicTail, session: str, path: Path) -> Mirror:
    """The reference partner consumer's mirror of the session's events the tail saw (decoded and
    stored as the partner does: `latest` is the newest event of the key by ce_time)."""
    mirror = Mirror(path)
    accepted = [
        Accepted(tail.topic, 0, offset, session, decode(e.headers(), e.data))
        for offset, (key, e, _) in enumerate(tail.seen)
        if key == session.encode()
    ]
    mirror.write_batch(accepted, [])
    return mirror


def types_of(tail: TopicTail, session: str) -> list[str]:
    return [e.type for key, e, _ in tail.seen if key == session.encode()]


def given_late(session: str, client: str, minutes: int) -> pb.InterruptSessionRequest:
    return pb.InterruptSessionRequest(
        session_id=session, reason="DISCONNECTED", modality=VIDEO, attendance=attendance(client, minutes)
    )


def test_attendance_given_after_the_scheduler_interrupted_a_dropped_session_itself_is_billed_once(
    api: Api, dbs: tuple[Any, Any], settings: Settings
) -> None:
    scheduler_db, compliance_db = dbs
    plan = own_plan(api.compliance, settings, "demo-medicare-ffs")  # per service: a code by minutes
    billing = TopicTail(settings, "iop.compliance.billing.v1")
    sessions = TopicTail(settings, "iop.scheduling.sessions.v1")
    producer = SchedulerEvents(settings)
    try:
        clinician, client, session = dropped_on_a_closed_day(api, scheduler_db, settings, plan)

        def interrupted(key: bytes | None, e: CloudEvent, p: Any) -> bool:
            return key == session.encode() and isinstance(p, ev.SessionInterrupted)

        def recorded(key: bytes | None, e: CloudEvent, p: Any) -> bool:
            return key == session.encode() and isinstance(p, ev.SessionAttendanceRecorded)

        (first,) = [p for _, _, p in sessions.wait_for(interrupted)]
        assert not first.attendance

        reply = api.call("InterruptSession", given_late(session, client, 20), role="clinician", subject=clinician)
        assert reply.status == "interrupted"
        found = billing.wait_for(billed_here(client))
        assert len(found) == 1, [p for _, _, p in billing.seen]
        ready = found[0][2]
        assert [line.code for line in ready.lines] == ["90832"] and ready.covered, ready  # 16-37 minutes
        assert ready.minutes_attended == 20 and list(ready.session_ids) == [session], ready

        # published once, as the attendance of the interruption published before: not a second one
        ((_, event, late),) = sessions.wait_for(recorded)
        assert late.recorded_at.ToDatetime(UTC) > first.interrupted_at.ToDatetime(UTC)
        assert (late.interruption_reason, late.interrupted_at, late.started_at) == (
            first.reason,
            first.interrupted_at,
            first.started_at,
        )
        assert [(a.client_id, a.minutes_attended, a.modality) for a in late.attendance] == [(client, 20, VIDEO)]
        assert (late.payer_plan_id, late.clinician_id, late.kind) == (plan, clinician, ev.SESSION_KIND_INDIVIDUAL)

        # redelivered: billed once; the same attendance again is a retry, other minutes are
        # refused; neither is published or billed
        producer.send(session, late, event_id=event.id)
        assert api.call("InterruptSession", given_late(session, client, 20), role="clinician", subject=clinician)
        err = refused(
            grpc.StatusCode.FAILED_PRECONDITION,
            api.call,
            "InterruptSession",
            given_late(session, client, 25),
            "clinician",
            clinician,
        )
        assert reason_of(err) == "ATTENDANCE_ALREADY_RECORDED"
        assert len(sessions.wait_for(recorded, count=3, timeout_s=3)) == 2  # the scheduler's, the redelivery
        assert len(sessions.wait_for(interrupted)) == 1
        assert len(billing.wait_for(billed_here(client), count=2, timeout_s=3)) == 1
        (day,) = compliance_db.billing_days.find({"client_id": client})
        assert [(e["session_id"], e["minutes"]) for e in day["entries"]] == [(session, 20)]
        assert (compliance_db.sessions.find_one({"_id": session}) or {})["status"] == "interrupted"
    finally:
        billing.close()
        sessions.close()
        producer.close()


def test_attendance_given_after_a_dropped_session_was_rescheduled_is_billed_and_the_move_stays(
    api: Api, dbs: tuple[Any, Any], settings: Settings, tmp_path: Path
) -> None:
    scheduler_db, compliance_db = dbs
    plan = own_plan(api.compliance, settings, "demo-medicare-ffs")
    billing = TopicTail(settings, "iop.compliance.billing.v1")
    sessions = TopicTail(settings, "iop.scheduling.sessions.v1")
    try:
        clinician, client, session = dropped_on_a_closed_day(api, scheduler_db, settings, plan)
        move = pb.RescheduleSessionRequest(request_id=f"re-{session}", session_id=session, reason="DISCONNECTED")
        moved = api.call("RescheduleSession", move, role="clinician", subject=clinician)
        assert wait_until(
            lambda: (compliance_db.sessions.find_one({"_id": session}) or {}).get("status") == "rescheduled"
        )
        # without attendance, a rescheduled session is not interrupted again
        err = refused(
            grpc.StatusCode.FAILED_PRECONDITION,
            api.call,
            "InterruptSession",
            pb.InterruptSessionRequest(session_id=session, reason="DISCONNECTED"),
            "clinician",
            clinician,
        )
        assert reason_of(err) == "SESSION_NOT_RUNNING"

        reply = api.call("InterruptSession", given_late(session, client, 40), role="clinician", subject=clinician)
        assert reply.status == "rescheduled" and reply.rescheduled_to == moved.session_id
        found = billing.wait_for(billed_here(client))
        assert len(found) == 1, [p for _, _, p in billing.seen]
        ready = found[0][2]
        assert [line.code for line in ready.lines] == ["90834"] and list(ready.session_ids) == [session], ready
        # compliance's copy is still the moved session's, not interrupted again
        assert (compliance_db.sessions.find_one({"_id": session}) or {})["status"] == "rescheduled"

        # the session's events say what happened, in order: one interruption, the move, then its
        # attendance; a partner's mirror counts one interruption, and its newest event claims no
        # status (it was a second SessionInterrupted, newer than the SessionRescheduled)
        sessions.wait_for(lambda key, e, p: key == session.encode() and isinstance(p, ev.SessionAttendanceRecorded))
        lifecycle = [t for t in types_of(sessions, session) if t != ev.RescheduleProposed.DESCRIPTOR.full_name]
        assert lifecycle[-3:] == [
            ev.SessionInterrupted.DESCRIPTOR.full_name,
            ev.SessionRescheduled.DESCRIPTOR.full_name,
            ev.SessionAttendanceRecorded.DESCRIPTOR.full_name,
        ], lifecycle
        assert lifecycle.count(ev.SessionInterrupted.DESCRIPTOR.full_name) == 1, lifecycle
        mirror = mirrored(sessions, session, tmp_path / "partner.db")
        try:
            latest = mirror.latest(sessions.topic, session)
            assert latest is not None and latest["ce_type"] == "iop.events.v1.SessionAttendanceRecorded", latest
            declared = message_types_from_contract()[sessions.topic]  # docs/asyncapi.yaml
            assert {t for _, t in mirror.event_types()} <= declared, mirror.event_types()
        finally:
            mirror.close()
        with closing(sqlite3.connect(tmp_path / "partner.db")) as db:  # as a partner's EHR counts them
            query = "SELECT COUNT(*) FROM events WHERE key = ? AND ce_type = 'iop.events.v1.SessionInterrupted'"
            assert db.execute(query, (session,)).fetchone() == (1,)

        # the new session is not the interrupted one: attendance on it is its own
        err = refused(
            grpc.StatusCode.FAILED_PRECONDITION,
            api.call,
            "InterruptSession",
            given_late(moved.session_id, client, 40),
            "clinician",
            clinician,
        )
        assert reason_of(err) == "SESSION_NOT_RUNNING"
    finally:
        billing.close()
        sessions.close()


async def _no_evaluation(request: compliance_pb2.EvaluateSessionRequest) -> compliance_pb2.SessionEvaluation:
    raise AssertionError("an interruption asks compliance nothing")


async def _no_licensure_check(request: compliance_pb2.CheckLicensureRequest) -> compliance_pb2.LicensureDecision:
    raise AssertionError("an interruption asks compliance nothing")


async def test_attendance_that_loses_the_race_to_the_schedulers_own_interruption_is_recorded(
    api: Api, dbs: tuple[Any, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scheduler processes: this one takes the clinician's InterruptSession with attendance,
    and between its read and its write the other interrupts the session without attendance (its
    ConnectionDropped consumer, here the service's InterruptSession). The attendance is recorded as
    attendance after the interruption; it was answered with the session and dropped."""
    scheduler_db, _ = dbs
    program, clinician, client = api.program(), api.clinician(), api.client()
    session = started(api, program.program_id, clinician, client, next_slot(timedelta(minutes=5)), minutes=30)
    running_for(scheduler_db, session, 25)
    mongo = mongo_client(settings)
    store = SchedulerStore(service_database(mongo, settings, "scheduler"))
    scheduler = Scheduler(store, load_reference_data(), _no_evaluation, _no_licensure_check)
    update_session = store.update_session
    raced: list[bool] = []

    async def the_other_process_first(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            request = pb.InterruptSessionRequest(session_id=session, reason="DISCONNECTED")
            api.call("InterruptSession", request, role="clinician", subject=clinician)
        return await update_session(*args, **kwargs)

    monkeypatch.setattr(store, "update_session", the_other_process_first)
    try:
        done = await scheduler.interrupt(session, "DISCONNECTED", modality=VIDEO, attendance=[(client, 20, 0)])
    finally:
        await mongo.close()
    assert raced and done["status"] == "interrupted"
    stored = scheduler_db.sessions.find_one({"_id": session})
    assert stored["attendance"] == [{"client_id": client, "minutes_attended": 20, "modality": VIDEO}]
    assert stored.get("attendance_recorded_at")
