"""Tech checks after a failed session, against the real store: a disconnection makes a tech check
due before the client's next session, also one booked already (theirs, or a seat in a group); a
retry or redelivery opens no second task and leaves one done since as it is. One passed check
satisfies the client's other open tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from iop.events.v1 import common_pb2, engagement_pb2
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document
from services.scheduler.domain import GROUP, INDIVIDUAL, SessionRequest
from services.scheduler.handlers import SessionSignalHandlers
from services.scheduler.programs import TrackSpec
from services.scheduler.store import CLIENTS, SEATS, TECH_CHECKS, tech_check_task_id
from tests.integration.test_scheduler_cohort_reads import ALL_WEEK, HOUR, PLATFORM, Target, target

__all__ = ["target"]  # the fixture, shared with the cohort-read tests

NY = common_pb2.ClientLocation(state="NY", verified=True)
LEAD = timedelta(hours=2)


async def _program(target: Target, clients: tuple[str, ...]) -> str:
    track = TrackSpec("t3x5", "3h x 3-5 days", 3, 3, 5)
    program = await target.programs.create_program(
        "p-1", "Adult IOP", "America/New_York", "IOP_PSYCH", "+15555550100", [track], {}, ""
    )
    await target.programs.set_clinician("c1", "America/New_York", "NY", ALL_WEEK, None)
    for client_id in clients:
        await target.programs.set_client(client_id, "America/New_York", ALL_WEEK, [], "NY", "")
    return str(program["_id"])


def _soon() -> datetime:
    """A start on the slot grid within the hour (check-in open)."""
    now = datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=15 * (now.minute // 15 + 2))


async def _book(
    target: Target, program: str, request_id: str, clients: tuple[str, ...], start: datetime, kind: int = INDIVIDUAL
) -> Document:
    capacity = 4 if kind == GROUP else 0
    request = SessionRequest(request_id, program, "c1", clients, start, start + HOUR, kind, capacity=capacity)
    return await target.scheduler.book(request, PLATFORM, require_alone=False)


async def _checked(target: Target, client_id: str) -> None:
    """The client's tech check is done (not due at the bookings that follow)."""
    await target.scheduler.store.set_client_flags(client_id, {"tech_check_required": False})


async def _task(target: Target, session: Document, client_id: str) -> Document | None:
    return await target.scheduler.store.get(TECH_CHECKS, tech_check_task_id(session["_id"], client_id))


async def _tasks(target: Target, client_id: str) -> list[tuple[str, str, str]]:
    """The client's tasks: (session, status, trigger), by due time."""
    return [
        (t["session_id"], t["status"], t["trigger"]) for t in await target.scheduler.store.tech_checks_of(client_id)
    ]


async def _dropped_from(target: Target, program: str, client_id: str) -> Document:
    """An individual session of the client, starting soon, checked in; their tech check done before."""
    await _checked(target, client_id)
    first = await _book(target, program, "r-1", (client_id,), _soon())
    await target.scheduler.check_in(first["_id"], client_id, NY, "alone", "")
    return first


async def test_a_disconnection_opens_a_tech_check_before_the_clients_session_booked_already(target: Target) -> None:
    # the session booked before the failure got no task: nobody was prompted to check b's
    # connection before it, and b's schedule showed nothing due
    program = await _program(target, ("b",))
    first = await _dropped_from(target, program, "b")
    later = await _book(target, program, "r-2", ("b",), _soon() + timedelta(days=2))
    latest = await _book(target, program, "r-3", ("b",), _soon() + timedelta(days=4))
    assert later["tech_check_task_ids"] == [] and latest["tech_check_task_ids"] == []
    for _ in range(2):  # and InterruptSession retried
        await target.scheduler.interrupt(first["_id"], "DISCONNECTED")
    task = await _task(target, later, "b")
    assert task is not None and task["status"] == "open" and task["trigger"] == "AFTER_FAILED_SESSION"
    assert task["due_by"] == later["starts_at"] - LEAD  # as a task made at booking is
    assert (await target.scheduler.session(later["_id"]))["tech_check_task_ids"] == [task["_id"]]
    assert await _tasks(target, "b") == [(later["_id"], "open", "AFTER_FAILED_SESSION")]  # the next one only
    assert not (await target.scheduler.session(first["_id"])).get("profiles_due", {}).get("DISCONNECTED")


async def test_a_dropped_connection_redelivered_opens_one_tech_check_before_the_clients_group_seat(
    target: Target,
) -> None:
    program = await _program(target, ("a", "b"))
    first = await _dropped_from(target, program, "b")
    group = await _book(target, program, "r-g", ("a",), _soon() + timedelta(days=1), GROUP)
    await target.scheduler.book_seat("seat-b", group["_id"], "b", False, PLATFORM, "")
    assert await _tasks(target, "b") == []
    handlers = SessionSignalHandlers(target.scheduler)
    dropped = engagement_pb2.ConnectionDropped(
        session_id=first["_id"], client_id="b", dropped_at=to_timestamp(datetime.now(UTC)), reason="connection_lost"
    )
    for _ in range(2):  # delivered twice
        await handlers.connection_dropped(CloudEvent.new("/iop/engagement", first["_id"], dropped), dropped)
    assert (await target.scheduler.session(first["_id"]))["status"] == "interrupted"
    assert await _tasks(target, "b") == [(group["_id"], "open", "AFTER_FAILED_SESSION")]
    task_id = tech_check_task_id(group["_id"], "b")
    (seat,) = [x for x in (await target.scheduler.session(group["_id"]))["seats"] if x["client_id"] == "b"]
    assert (await target.scheduler.store.get(SEATS, seat["_id"]) or {})["tech_check_task_ids"] == [task_id]
    assert [t["trigger"] for t in await target.scheduler.store.tech_checks_of("a")] == ["FIRST_SESSION"]  # a's own


async def _interrupted_until_it_stops_at(
    target: Target, write: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Document, Document]:
    """Client b's session starting soon, interrupted DISCONNECTED by a process that stops at the
    store's `write` (its first call: what it wrote before stays), and b's session two days later."""
    program = await _program(target, ("b",))
    first = await _dropped_from(target, program, "b")
    later = await _book(target, program, "r-2", ("b",), _soon() + timedelta(days=2))

    async def stopped(*args: Any) -> None:
        monkeypatch.undo()
        raise AutoReconnect("the process stopped")

    monkeypatch.setattr(target.scheduler.store, write, stopped)
    with pytest.raises(AutoReconnect):
        await target.scheduler.interrupt(first["_id"], "DISCONNECTED")
    return first, later


async def test_an_interruption_retried_after_its_process_stopped_opens_the_tech_check(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, later = await _interrupted_until_it_stops_at(target, "open_tech_check", monkeypatch)
    assert await _tasks(target, "b") == []
    await target.scheduler.interrupt(first["_id"], "DISCONNECTED")
    assert await _tasks(target, "b") == [(later["_id"], "open", "AFTER_FAILED_SESSION")]


async def test_a_retry_after_the_tech_check_was_passed_leaves_it_passed(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the process stopped after it opened the task, before it took the write off the session
    # (profiles_due); the client passed the check meanwhile, then the interruption is retried
    first, later = await _interrupted_until_it_stops_at(target, "list_tech_check", monkeypatch)
    task = await _task(target, later, "b")
    assert task is not None
    await target.scheduler.complete_tech_check(task, passed=True)
    await target.scheduler.interrupt(first["_id"], "DISCONNECTED")
    assert await _tasks(target, "b") == [(later["_id"], "passed", "AFTER_FAILED_SESSION")]
    assert (await target.scheduler.session(later["_id"]))["tech_check_task_ids"] == [task["_id"]]
    # and the check stays passed: the retry made it due again, and the next booking made a task
    assert (await target.scheduler.store.get(CLIENTS, "b") or {})["tech_check_required"] is False
    booked = await _book(target, first["program_id"], "r-3", ("b",), _soon() + timedelta(days=4))
    assert booked["tech_check_task_ids"] == []


async def test_with_no_session_booked_the_next_booking_makes_the_tech_check(target: Target) -> None:
    program = await _program(target, ("b",))
    first = await _dropped_from(target, program, "b")
    await target.scheduler.interrupt(first["_id"], "DISCONNECTED")
    assert await _tasks(target, "b") == []
    later = await _book(target, program, "r-2", ("b",), _soon() + timedelta(days=2))
    assert later["tech_check_task_ids"] == [tech_check_task_id(later["_id"], "b")]
    assert await _tasks(target, "b") == [(later["_id"], "open", "AFTER_FAILED_SESSION")]


async def test_one_passed_check_passes_the_clients_other_tasks_and_a_failure_after_it_reopens_one(
    target: Target,
) -> None:
    # a new client's three sessions each got a first-session task; passing one left the others
    # open, due before sessions the check had covered
    program = await _program(target, ("b",))
    sessions = [await _book(target, program, "r-1", ("b",), _soon())]
    sessions += [await _book(target, program, f"r-{n}", ("b",), _soon() + timedelta(days=n)) for n in (2, 4)]
    second = await _task(target, sessions[1], "b")
    assert second is not None
    done = await target.scheduler.complete_tech_check(second, passed=True)
    assert done["status"] == "passed"
    assert [status for _, status, _ in await _tasks(target, "b")] == ["passed"] * 3
    assert (await target.scheduler.store.get(CLIENTS, "b") or {})["tech_check_required"] is False
    satisfied = await _task(target, sessions[2], "b")
    assert satisfied is not None and satisfied["satisfied_by"] == second["_id"]

    # the first session fails: the next one's task is due again, after the failure
    await target.scheduler.check_in(sessions[0]["_id"], "b", NY, "alone", "")
    await target.scheduler.interrupt(sessions[0]["_id"], "DISCONNECTED")
    assert await _tasks(target, "b") == [
        (sessions[0]["_id"], "passed", "FIRST_SESSION"),
        (sessions[1]["_id"], "open", "AFTER_FAILED_SESSION"),
        (sessions[2]["_id"], "passed", "FIRST_SESSION"),
    ]
    reopened = await _task(target, sessions[1], "b")
    assert reopened is not None and "completed_at" not in reopened and "satisfied_by" not in reopened


async def test_a_failed_check_leaves_the_other_tasks_open(target: Target) -> None:
    program = await _program(target, ("b",))
    sessions = [await _book(target, program, f"r-{n}", ("b",), _soon() + timedelta(days=n)) for n in (1, 2)]
    first = await _task(target, sessions[0], "b")
    assert first is not None
    assert (await target.scheduler.complete_tech_check(first, passed=False))["status"] == "failed"
    assert [status for _, status, _ in await _tasks(target, "b")] == ["failed", "open"]
    assert (await target.scheduler.store.get(CLIENTS, "b") or {})["tech_check_required"] is True


async def test_a_task_opened_after_a_check_was_passed_stays_open(target: Target) -> None:
    # a failure's task opened while a check was being completed: the check came before the failure
    program = await _program(target, ("b",))
    later = await _book(target, program, "r-2", ("b",), _soon() + timedelta(days=2))
    before = datetime.now(UTC) - timedelta(seconds=5)
    await target.scheduler.store.satisfy_tech_checks("b", "tc-other", before, before - LEAD)
    assert await _tasks(target, "b") == [(later["_id"], "open", "FIRST_SESSION")]


async def test_a_check_passed_leaves_the_task_of_a_session_started_early_as_it_was(target: Target) -> None:
    # a session starts up to an hour before its booked start: its task was passed by a check the
    # client did while it ran (its start still ahead), as if it had been done before it
    program = await _program(target, ("b",))
    running = await _book(target, program, "r-1", ("b",), _soon())
    later = await _book(target, program, "r-2", ("b",), _soon() + timedelta(days=2))
    await target.scheduler.check_in(running["_id"], "b", NY, "alone", "")
    assert (await target.scheduler.start(running["_id"], "NY"))["status"] == "in_progress"
    task = await _task(target, later, "b")
    assert task is not None
    await target.scheduler.complete_tech_check(task, passed=True)
    assert await _tasks(target, "b") == [
        (running["_id"], "open", "FIRST_SESSION"),
        (later["_id"], "passed", "FIRST_SESSION"),
    ]


async def test_a_second_failed_session_makes_the_check_due_again(target: Target) -> None:
    program = await _program(target, ("b",))
    first = await _dropped_from(target, program, "b")
    await target.scheduler.interrupt(first["_id"], "DISCONNECTED")
    later = await _book(target, program, "r-2", ("b",), _soon() + timedelta(days=2))
    task = await _task(target, later, "b")
    assert task is not None
    await target.scheduler.complete_tech_check(task, passed=True)
    assert (await target.scheduler.store.get(CLIENTS, "b") or {})["tech_check_required"] is False
    again = await _book(target, program, "r-3", ("b",), _soon() + timedelta(hours=3))
    await target.scheduler.store.update_session(again["_id"], {}, {"$set": {"status": "in_progress"}}, [])
    await target.scheduler.interrupt(again["_id"], "DISCONNECTED")
    assert (await target.scheduler.store.get(CLIENTS, "b") or {})["tech_check_required"] is True
    assert await _tasks(target, "b") == [(later["_id"], "open", "AFTER_FAILED_SESSION")]


async def test_failed_sessions_stay_on_the_profile_only_while_their_writes_are_due(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every disconnection appended its failed session to the profile's tech_check_failed_sessions,
    # forever: a client failing a session a day grew their profile by an id a day
    first, _ = await _interrupted_until_it_stops_at(target, "list_tech_check", monkeypatch)  # its write is due
    grown = [f"failed-before-{n}" for n in range(200)]  # a profile stored before, grown
    await target.scheduler.store.clients.update_one(
        {"_id": "b"}, {"$push": {"tech_check_failed_sessions": {"$each": grown}}}
    )
    handlers = SessionSignalHandlers(target.scheduler)
    for day in range(1, 13):
        session = await _book(
            target, first["program_id"], f"r-{day + 10}", ("b",), _soon() + timedelta(days=day, hours=3)
        )
        await target.scheduler.store.update_session(session["_id"], {}, {"$set": {"status": "in_progress"}}, [])
        dropped = engagement_pb2.ConnectionDropped(session_id=session["_id"], client_id="b", reason="connection_lost")
        for _ in range(2):  # delivered twice
            await handlers.connection_dropped(CloudEvent.new("/iop/engagement", session["_id"], dropped), dropped)
        assert (await target.scheduler.session(session["_id"]))["status"] == "interrupted"
    profile = await target.scheduler.store.get(CLIENTS, "b") or {}
    assert profile["tech_check_failed_sessions"] == [first["_id"]]  # the one whose write a retry finishes
    await _checked(target, "b")
    await target.scheduler.interrupt(first["_id"], "DISCONNECTED")  # the retry, after the check was passed
    profile = await target.scheduler.store.get(CLIENTS, "b") or {}
    assert profile["tech_check_required"] is False and profile["tech_check_failed_sessions"] == []
