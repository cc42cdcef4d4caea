"""Tech checks against the real store: one passed check satisfies the client's other open tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.plumbing.storage import Document
from services.scheduler.domain import GROUP, INDIVIDUAL, SessionRequest
from services.scheduler.programs import TrackSpec
from services.scheduler.store import CLIENTS, TECH_CHECKS, tech_check_task_id
from tests.integration.test_scheduler_cohort_reads import ALL_WEEK, HOUR, PLATFORM, Target, target

__all__ = ["target"]  # the fixture, shared with the cohort-read tests

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


async def _task(target: Target, session: Document, client_id: str) -> Document | None:
    return await target.scheduler.store.get(TECH_CHECKS, tech_check_task_id(session["_id"], client_id))


async def _tasks(target: Target, client_id: str) -> list[tuple[str, str, str]]:
    """The client's tasks: (session, status, trigger), by due time."""
    return [
        (t["session_id"], t["status"], t["trigger"]) for t in await target.scheduler.store.tech_checks_of(client_id)
    ]


async def test_one_passed_check_passes_the_clients_other_tasks(target: Target) -> None:
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
