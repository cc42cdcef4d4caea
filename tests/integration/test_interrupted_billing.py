"""InterruptSession takes the minutes each client attended before the interruption, checked as
EndSession's, with real scheduler and compliance processes, the real store and broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from pymongo import MongoClient

from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from services.plumbing.settings import Settings
from tests.integration.test_compliance_rules import wait_until
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


def test_an_interruptions_attendance_is_checked_as_an_endings_and_a_bad_one_stores_nothing(
    api: Api, dbs: tuple[Any, Any]
) -> None:
    scheduler_db, _ = dbs
    program, clinician, client = api.program(), api.clinician(), api.client()
    session = started(api, program.program_id, clinician, client, next_slot(timedelta(minutes=5)), minutes=30)

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
        ((VIDEO, (client, 31, 0)), {"attendance[0].minutes_attended"}),  # longer than the session
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
