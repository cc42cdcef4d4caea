"""A session's signals (compromised privacy, a dropped connection) that arrive after the session
was interrupted, against the real store: each is the client's, and a signal of the other kind
still counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from iop.events.v1 import common_pb2
from services.plumbing.storage import Document
from services.scheduler.domain import GROUP, INDIVIDUAL, SessionRequest
from services.scheduler.programs import TrackSpec
from services.scheduler.store import CLIENTS
from tests.integration.test_scheduler_cohort_reads import ALL_WEEK, HOUR, PLATFORM, Target, target

__all__ = ["target"]  # the fixture, shared with the cohort-read tests

ALONE_AT_4 = [(day, "04:00", "05:00") for day in range(7)]
NEW_YORK = ZoneInfo("America/New_York")
NY = common_pb2.ClientLocation(state="NY", verified=True)


async def _running(target: Target, kind: int, clients: tuple[str, ...]) -> Document:
    """A session of these clients, starting soon, every client checked in alone (b is alone 04-05)."""
    track = TrackSpec("t3x5", "3h x 3-5 days", 3, 3, 5)
    program = await target.programs.create_program(
        "p-1", "Adult IOP", "America/New_York", "IOP_PSYCH", "+15555550100", [track], {}, ""
    )
    await target.programs.set_clinician("c1", "America/New_York", "NY", ALL_WEEK, None)
    for client_id in clients:
        alone = ALONE_AT_4 if client_id == "b" else []
        await target.programs.set_client(client_id, "America/New_York", ALL_WEEK, alone, "NY", "")
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=15 * (now.minute // 15 + 2))
    capacity = len(clients) + 1 if kind == GROUP else 0
    request = SessionRequest("r-1", program["_id"], "c1", clients, start, start + HOUR, kind, capacity=capacity)
    session = await target.scheduler.book(request, PLATFORM, require_alone=False)
    for client_id in clients:
        await target.scheduler.check_in(session["_id"], client_id, NY, "alone", "")
    return session


async def _profile(target: Target, client_id: str) -> Any:
    return await target.scheduler.store.get(CLIENTS, client_id)


async def test_compromised_privacy_reported_after_a_group_was_stopped_for_a_disconnection_counts(
    target: Target,
) -> None:
    # the group stopped as a whole (every client dropped): b then tells compliance that they were
    # overheard. Every dropped client counted as flagged, so b's report changed nothing: b stayed
    # bookable when not alone, and got no slots in their alone-windows
    group = await _running(target, GROUP, ("a", "b"))
    await target.scheduler.interrupt(group["_id"], "DISCONNECTED")
    await target.scheduler.flag_client(group["_id"], "b", "PRIVACY_COMPROMISED")
    session = await target.scheduler.session(group["_id"])
    assert session["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("privacy_sensitive") is True
    assert not (await _profile(target, "a")).get("privacy_sensitive")
    (own,) = session["client_proposals"].values()
    assert own["client_id"] == "b" and own["reason"] == "PRIVACY_COMPROMISED" and own["slots"]


async def test_a_drop_after_a_group_clients_report_of_compromised_privacy_counts(target: Target) -> None:
    # b reported being overheard and then dropped off: the report answered the drop, and b got no
    # tech check before the next session
    group = await _running(target, GROUP, ("a", "b"))
    await target.scheduler.flag_client(group["_id"], "b", "PRIVACY_COMPROMISED")
    await target.scheduler.store.set_client_flags("b", {"tech_check_required": False})  # checked since
    await target.scheduler.flag_client(group["_id"], "b", "DISCONNECTED")
    session = await target.scheduler.session(group["_id"])
    assert session["dropped_clients"] == ["b"] and session["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("tech_check_required") is True


async def test_compromised_privacy_reported_after_an_individual_session_dropped_counts(target: Target) -> None:
    # the session was interrupted by the drop; the interruption answered the later report (already
    # interrupted) and nothing was flagged
    session = await _running(target, INDIVIDUAL, ("b",))
    await target.scheduler.flag_client(session["_id"], "b", "DISCONNECTED")
    assert (await target.scheduler.session(session["_id"]))["status"] == "interrupted"
    await target.scheduler.flag_client(session["_id"], "b", "PRIVACY_COMPROMISED")
    flagged = await target.scheduler.session(session["_id"])
    assert flagged["privacy_flagged"] and flagged["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("privacy_sensitive") is True
    local_hours = {s["starts_at"].astimezone(NEW_YORK).hour for s in flagged["proposed_slots"]}
    assert local_hours == {4}  # b's alone-windows only, as the reschedule now requires
