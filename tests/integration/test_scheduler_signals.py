"""A session's signals (compromised privacy, a dropped connection) that arrive after the session
was interrupted, against the real store: each is the client's, and a signal of the other kind
still counts. An interruption or a signal whose process stopped before the clients' profiles were
written is finished by its retry (or redelivery). A signal delivered after the session ended is
consumed (not retried, not dead-lettered): a drop is history, compromised privacy still makes the
client privacy-sensitive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pymongo.errors import AutoReconnect

from iop.events.v1 import common_pb2, compliance_pb2, engagement_pb2, scheduling_pb2
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document
from services.scheduler.booking import CARRIED_SEARCHES
from services.scheduler.domain import GROUP, INDIVIDUAL, VIDEO, SessionRequest
from services.scheduler.handlers import SessionSignalHandlers
from services.scheduler.programs import TrackSpec
from services.scheduler.store import CLIENTS, SchedulerStore
from tests.integration.test_scheduler_cohort_reads import ALL_WEEK, HOUR, PLATFORM, Target, target
from tests.integration.test_scheduler_tech_checks import _book, _program, _soon

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


def _stops_at_the_first_profile_write(store: SchedulerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process stops when it first writes a client's profile (a flag, or the tech check due
    after a disconnection): what it wrote before stays."""

    async def stopped(client_id: str, *args: Any) -> None:
        monkeypatch.undo()
        raise AutoReconnect("the process stopped")

    monkeypatch.setattr(store, "set_client_flags", stopped)
    monkeypatch.setattr(store, "require_tech_check", stopped)


async def test_an_interruption_retried_after_its_process_stopped_flags_the_client(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the session was stored interrupted, the process stopped before b's profile was written: the
    # retry (the same request) answered "interrupted already", and b stayed bookable when not alone
    session = await _running(target, INDIVIDUAL, ("b",))
    _stops_at_the_first_profile_write(target.scheduler.store, monkeypatch)
    with pytest.raises(AutoReconnect):
        await target.scheduler.interrupt(session["_id"], "PRIVACY_COMPROMISED")
    retried = await target.scheduler.interrupt(session["_id"], "PRIVACY_COMPROMISED")
    assert retried["status"] == "interrupted" and retried["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("privacy_sensitive") is True


async def test_a_group_disconnection_retried_after_its_process_stopped_makes_every_tech_check_due(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = await _running(target, GROUP, ("a", "b"))
    for client_id in ("a", "b"):
        await target.scheduler.store.set_client_flags(client_id, {"tech_check_required": False})  # checked
    _stops_at_the_first_profile_write(target.scheduler.store, monkeypatch)
    with pytest.raises(AutoReconnect):
        await target.scheduler.interrupt(group["_id"], "DISCONNECTED")
    assert (await target.scheduler.interrupt(group["_id"], "DISCONNECTED"))["status"] == "interrupted"
    for client_id in ("a", "b"):
        assert (await _profile(target, client_id)).get("tech_check_required") is True


async def test_a_dropped_connection_redelivered_after_the_process_stopped_makes_the_tech_check_due(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the scheduler's own interruption (engagement's ConnectionDropped): the consumer delivers the
    # event again after the stop, and found the session interrupted for b already
    session = await _running(target, INDIVIDUAL, ("b",))
    await target.scheduler.store.set_client_flags("b", {"tech_check_required": False})
    _stops_at_the_first_profile_write(target.scheduler.store, monkeypatch)
    with pytest.raises(AutoReconnect):
        await target.scheduler.flag_client(session["_id"], "b", "DISCONNECTED")
    await target.scheduler.flag_client(session["_id"], "b", "DISCONNECTED")
    assert (await target.scheduler.session(session["_id"]))["status"] == "interrupted"
    assert (await _profile(target, "b")).get("tech_check_required") is True


async def test_a_group_clients_report_redelivered_after_the_process_stopped_makes_them_privacy_sensitive(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = await _running(target, GROUP, ("a", "b"))
    _stops_at_the_first_profile_write(target.scheduler.store, monkeypatch)
    with pytest.raises(AutoReconnect):
        await target.scheduler.flag_client(group["_id"], "b", "PRIVACY_COMPROMISED")
    await target.scheduler.flag_client(group["_id"], "b", "PRIVACY_COMPROMISED")
    assert (await target.scheduler.session(group["_id"]))["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("privacy_sensitive") is True


async def _ended(target: Target) -> Document:
    """An individual session of client b that ran and was ended, with b's tech check done since."""
    session = await _running(target, INDIVIDUAL, ("b",))
    await target.scheduler.start(session["_id"], "NY")
    ended = await target.scheduler.end(session["_id"], VIDEO, [("b", 0, VIDEO)])
    await target.scheduler.store.set_client_flags("b", {"tech_check_required": False})
    return ended


async def test_a_drop_delivered_after_the_session_ended_is_consumed_and_changes_nothing(target: Target) -> None:
    # the consumer interrupted the ended session: SESSION_NOT_RUNNING, so the event was retried
    # and dead-lettered
    ended = await _ended(target)
    handlers = SessionSignalHandlers(target.scheduler)
    dropped = engagement_pb2.ConnectionDropped(
        session_id=ended["_id"], client_id="b", dropped_at=to_timestamp(datetime.now(UTC)), reason="connection_lost"
    )
    for _ in range(2):  # and redelivered
        await handlers.connection_dropped(CloudEvent.new("/iop/engagement", ended["_id"], dropped), dropped)
    session = await target.scheduler.session(ended["_id"])
    assert session["status"] == "ended" and not session.get("dropped_clients")
    assert not session["proposed_slots"]  # an ended session is not moved
    assert (await _profile(target, "b")).get("tech_check_required") is False


async def test_compromised_privacy_reported_after_the_session_ended_makes_the_client_privacy_sensitive(
    target: Target,
) -> None:
    ended = await _ended(target)
    handlers = SessionSignalHandlers(target.scheduler)
    report = compliance_pb2.PrivacyCompromised(session_id=ended["_id"], client_id="b", attestation="compromised")
    for _ in range(2):
        await handlers.privacy_compromised(CloudEvent.new("/iop/compliance", ended["_id"], report), report)
    session = await target.scheduler.session(ended["_id"])
    assert session["status"] == "ended" and not session["proposed_slots"]
    assert session["privacy_flagged"] and session["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("privacy_sensitive") is True


def _meanwhile(target: Target, monkeypatch: pytest.MonkeyPatch, change: Callable[[Document], Awaitable[Any]]) -> None:
    """`change` happens to the session after an interruption read it as running, before the
    interruption is stored: the interruption loses the race."""
    proposal = target.scheduler.proposal

    async def changed_meanwhile(session: Document, *args: Any) -> Any:
        monkeypatch.undo()
        await change(session)
        return await proposal(session, *args)

    monkeypatch.setattr(target.scheduler, "proposal", changed_meanwhile)


def _ended_between_the_read_and_the_write(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The care team ends the session (its clients attended it) meanwhile."""

    async def end(session: Document) -> Any:
        return await target.scheduler.end(session["_id"], VIDEO, [(c, 0, VIDEO) for c in session["client_ids"]])

    _meanwhile(target, monkeypatch, end)


async def _started(target: Target, kind: int, clients: tuple[str, ...]) -> Document:
    session = await _running(target, kind, clients)
    await target.scheduler.start(session["_id"], "NY")
    for client_id in clients:
        await target.scheduler.store.set_client_flags(client_id, {"tech_check_required": False})  # checked
    return session


async def test_a_drop_whose_interruption_lost_the_race_to_the_end_of_the_session_is_history(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the profile went first: b's tech check became due for a session that ended, as a drop
    # delivered a moment later (after the end) does not make it
    session = await _started(target, INDIVIDUAL, ("b",))
    _ended_between_the_read_and_the_write(target, monkeypatch)
    await target.scheduler.flag_client(session["_id"], "b", "DISCONNECTED")
    stored = await target.scheduler.session(session["_id"])
    assert stored["status"] == "ended" and not stored.get("dropped_clients")
    assert (await _profile(target, "b")).get("tech_check_required") is False


async def test_a_report_whose_interruption_lost_the_race_to_the_end_of_the_session_is_recorded_on_it(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # b's profile became privacy-sensitive and the ended session never recorded b's report
    session = await _started(target, INDIVIDUAL, ("b",))
    _ended_between_the_read_and_the_write(target, monkeypatch)
    await target.scheduler.flag_client(session["_id"], "b", "PRIVACY_COMPROMISED")
    stored = await target.scheduler.session(session["_id"])
    assert stored["status"] == "ended" and stored["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("privacy_sensitive") is True


async def test_an_interruption_that_lost_the_race_to_the_end_of_the_session_makes_no_tech_check_due(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # InterruptSession DISCONNECTED answered with the ended session, and every client of the group
    # had a tech check due before their next session, after a session that ran to its end
    group = await _started(target, GROUP, ("a", "b"))
    _ended_between_the_read_and_the_write(target, monkeypatch)
    assert (await target.scheduler.interrupt(group["_id"], "DISCONNECTED"))["status"] == "ended"
    for client_id in ("a", "b"):
        assert (await _profile(target, client_id)).get("tech_check_required") is False


async def test_a_drop_whose_interruption_lost_the_race_to_another_interruption_flags_the_client(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the clinician stopped the session for another reason at the same moment: the drop was
    # answered with that interruption, and the session never recorded b's drop
    session = await _started(target, INDIVIDUAL, ("b",))
    _meanwhile(target, monkeypatch, lambda running: target.scheduler.interrupt(running["_id"], "OTHER"))
    await target.scheduler.flag_client(session["_id"], "b", "DISCONNECTED")
    stored = await target.scheduler.session(session["_id"])
    assert stored["interruption_reason"] == "OTHER" and stored["dropped_clients"] == ["b"]
    assert (await _profile(target, "b")).get("tech_check_required") is True


async def test_a_drop_redelivered_after_the_tech_check_was_completed_leaves_it_completed(target: Target) -> None:
    session = await _started(target, INDIVIDUAL, ("b",))
    await target.scheduler.flag_client(session["_id"], "b", "DISCONNECTED")
    assert (await _profile(target, "b")).get("tech_check_required") is True
    await target.scheduler.store.set_client_flags("b", {"tech_check_required": False})  # CompleteTechCheck
    await target.scheduler.flag_client(session["_id"], "b", "DISCONNECTED")
    await target.scheduler.interrupt(session["_id"], "DISCONNECTED")  # and a retry of an interruption
    assert (await _profile(target, "b")).get("tech_check_required") is False


async def _proposed_events(target: Target, session_id: str) -> list[scheduling_pb2.RescheduleProposed]:
    """The RescheduleProposed events in the session's outbox (what the relay publishes)."""
    doc = await target.scheduler.store.sessions.find_one({"_id": session_id}) or {}
    name = scheduling_pb2.RescheduleProposed.DESCRIPTOR.full_name
    return [scheduling_pb2.RescheduleProposed.FromString(e["data"]) for e in doc.get("outbox", []) if e["type"] == name]


def _local_hours(slots: list[Document]) -> set[int]:
    return {s["starts_at"].astimezone(NEW_YORK).hour for s in slots}


def _days_ahead_at(days: int, hour: int) -> datetime:
    return (datetime.now(NEW_YORK) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


async def test_compromised_privacy_reported_after_the_session_was_moved_reaches_the_session_booked_for_it(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # b dropped off, the care team moved the session to tomorrow 10:00 (b is alone only 04-05),
    # then b's report of being overheard in it arrived: b became privacy-sensitive, and the new
    # session kept its time outside b's alone-windows, with no slots proposed and nobody told
    dropped = await _running(target, INDIVIDUAL, ("b",))
    await target.scheduler.flag_client(dropped["_id"], "b", "DISCONNECTED")
    moved = await target.scheduler.reschedule("re-1", dropped["_id"], _days_ahead_at(1, 10), "", PLATFORM, "")
    handlers = SessionSignalHandlers(target.scheduler)
    report = compliance_pb2.PrivacyCompromised(session_id=dropped["_id"], client_id="b", attestation="compromised")
    _stops_at_the_first_proposal(target, monkeypatch)
    with pytest.raises(AutoReconnect):
        await handlers.privacy_compromised(CloudEvent.new("/iop/compliance", dropped["_id"], report), report)
    for _ in range(2):  # redelivered after the stop, and again
        await handlers.privacy_compromised(CloudEvent.new("/iop/compliance", dropped["_id"], report), report)
    assert (await _profile(target, "b")).get("privacy_sensitive") is True
    new = await target.scheduler.session(moved["_id"])
    assert new["status"] == "booked" and new["starts_at"] == moved["starts_at"]  # proposed, never moved
    assert new["privacy_flagged"] and new["privacy_carried_clients"] == ["b"]
    assert new["proposed_slots"] and _local_hours(new["proposed_slots"]) == {4}
    (event,) = await _proposed_events(target, moved["_id"])  # published once
    assert event.client_id == "b" and event.reason == "PRIVACY_COMPROMISED" and len(event.slots) == 5
    assert not (await target.scheduler.session(dropped["_id"])).get("profiles_due", {}).get("PRIVACY_COMPROMISED")


def _stops_at_the_first_proposal(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process stops when it first looks for slots to propose."""

    async def stopped(*args: Any) -> Any:
        monkeypatch.undo()
        raise AutoReconnect("the process stopped")

    monkeypatch.setattr(target.scheduler, "proposal", stopped)


async def test_compromised_privacy_reaches_the_clients_sessions_booked_outside_their_alone_windows(
    target: Target,
) -> None:
    # b, overheard at check-in, was privacy-sensitive from then on (booked only when alone, 04-05),
    # but b's sessions booked already at other times stayed as they were, with no slots proposed
    overheard = await _running(target, INDIVIDUAL, ("b",))
    program = overheard["program_id"]
    await target.programs.set_client("a", "America/New_York", ALL_WEEK, [], "NY", "")
    later = await _book(target, program, "r-later", ("b",), _days_ahead_at(2, 10))
    group = await _book(target, program, "r-group", ("a",), _days_ahead_at(2, 13), GROUP)
    await target.scheduler.book_seat("seat-b", group["_id"], "b", False, PLATFORM, "")
    alone = await _book(target, program, "r-alone", ("b",), _days_ahead_at(3, 4))
    await target.scheduler.check_in(overheard["_id"], "b", NY, "compromised", "")  # checked in alone before
    await target.scheduler.interrupt(overheard["_id"], "PRIVACY_COMPROMISED")  # and retried
    moved = await target.scheduler.session(later["_id"])
    assert moved["status"] == "booked" and moved["privacy_flagged"] and moved["privacy_carried_clients"] == ["b"]
    assert _local_hours(moved["proposed_slots"]) == {4}
    seated = await target.scheduler.session(group["_id"])
    (own,) = seated["client_proposals"].values()  # b's own: the group goes on
    assert own["client_id"] == "b" and own["reason"] == "PRIVACY_COMPROMISED" and _local_hours(own["slots"]) == {4}
    assert seated["privacy_carried_clients"] == ["b"] and not seated["privacy_flagged_clients"]  # not reported in it
    for session in (moved, seated):
        (event,) = await _proposed_events(target, session["_id"])
        assert event.client_id == "b" and event.reason == "PRIVACY_COMPROMISED"
    untouched = await target.scheduler.session(alone["_id"])  # in b's alone-window
    assert not untouched["proposed_slots"] and not untouched.get("privacy_carried_clients")
    assert not await _proposed_events(target, alone["_id"])


def _changed_while_a_report_reaches_them(
    target: Target, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Callable[[Document], Awaitable[Any]]]
) -> None:
    """Each of these sessions changes (`changes`, by session id) after a report of compromised
    privacy on another session read it as booked, while slots are looked for it."""
    proposal = target.scheduler.proposal

    async def changed_meanwhile(session: Document, *args: Any) -> Any:
        change = changes.pop(session["_id"], None)
        if change is not None:
            await change(session)
        return await proposal(session, *args)

    monkeypatch.setattr(target.scheduler, "proposal", changed_meanwhile)


async def test_a_report_reaches_no_session_cancelled_or_reported_meanwhile(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # b's late report looked for b's sessions booked outside b's alone-windows, and while it looked
    # for slots one was cancelled and b reported being overheard for the other: the cancelled one
    # got slots and a RescheduleProposed, and the reported one a second RescheduleProposed beside
    # its own report's (the write was conditional on the carried mark alone)
    ended = await _ended(target)
    cancelled = await _book(target, ended["program_id"], "r-cancelled", ("b",), _days_ahead_at(2, 10))
    reported = await _book(target, ended["program_id"], "r-reported", ("b",), _days_ahead_at(3, 10))
    changes: dict[str, Callable[[Document], Awaitable[Any]]] = {
        cancelled["_id"]: lambda s: target.scheduler.cancel(s["_id"], "the client asked"),
        reported["_id"]: lambda s: target.scheduler.flag_client(s["_id"], "b", "PRIVACY_COMPROMISED"),
    }
    _changed_while_a_report_reaches_them(target, monkeypatch, changes)
    await target.scheduler.flag_client(ended["_id"], "b", "PRIVACY_COMPROMISED")
    gone = await target.scheduler.session(cancelled["_id"])
    assert gone["status"] == "cancelled" and not gone.get("privacy_carried_clients") and not gone["proposed_slots"]
    assert not await _proposed_events(target, cancelled["_id"])
    own = await target.scheduler.session(reported["_id"])
    assert own["privacy_flagged_clients"] == ["b"] and not own.get("privacy_carried_clients")
    (event,) = await _proposed_events(target, reported["_id"])  # its own report's, once
    assert event.client_id == "b" and event.reason == "PRIVACY_COMPROMISED"


async def test_a_report_looks_for_slots_for_the_clients_next_sessions_only(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a report looked for slots for every session of the client booked outside their alone-windows,
    # inside the CheckIn or InterruptSession that made it: about 33 ms of CPU each (the slot search's
    # window checks), 1.7 s for 40 sessions and 3.4 s for 100 (measured 2026-12-08), which held the
    # call and every other call of the process meanwhile. The next CARRIED_SEARCHES get slots; the
    # others are marked and told (RescheduleProposed without slots), and RescheduleSession without
    # new_starts_at looks for slots from a day before the session's own time, as the report would have
    ended = await _ended(target)
    booked = [
        await _book(target, ended["program_id"], f"r-next-{n}", ("b",), _days_ahead_at(n + 1, 10))
        for n in range(CARRIED_SEARCHES + 3)
    ]
    searched: list[str] = []
    proposal = target.scheduler.proposal

    async def counted(session: Document, *args: Any) -> Any:
        searched.append(session["_id"])
        return await proposal(session, *args)

    monkeypatch.setattr(target.scheduler, "proposal", counted)
    await target.scheduler.flag_client(ended["_id"], "b", "PRIVACY_COMPROMISED")
    assert sorted(searched) == sorted(s["_id"] for s in booked[:CARRIED_SEARCHES])
    for n, session in enumerate(booked):
        marked = await target.scheduler.session(session["_id"])
        assert marked["privacy_flagged"] and marked["privacy_carried_clients"] == ["b"]
        (event,) = await _proposed_events(target, session["_id"])
        assert event.client_id == "b" and event.reason == "PRIVACY_COMPROMISED"
        assert bool(event.slots) == (n < CARRIED_SEARCHES), n
        assert _local_hours(marked["proposed_slots"]) == ({4} if n < CARRIED_SEARCHES else set())
    monkeypatch.undo()
    last = booked[-1]
    moved = await target.scheduler.reschedule("re-last", last["_id"], None, "", PLATFORM, "")
    assert moved["starts_at"].astimezone(NEW_YORK).hour == 4  # alone
    assert moved["starts_at"] >= last["starts_at"] - timedelta(days=1)  # near its own time, not tomorrow


@pytest.mark.parametrize("reason", ["DISCONNECTED", "PRIVACY_COMPROMISED"])
async def test_a_group_that_ended_while_a_clients_flag_looked_for_slots_gets_none(
    target: Target, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    # b dropped off (or reported being overheard) in a running group, and the care team ended the
    # group while slots were looked for b: the ended group got b's slots and a RescheduleProposed
    # (the flag's write was conditional on b not being flagged alone), and a drop made b's tech
    # check due, which a drop delivered a moment later (after the end) does not
    group = await _started(target, GROUP, ("a", "b"))
    _ended_between_the_read_and_the_write(target, monkeypatch)
    for _ in range(2):  # and redelivered
        await target.scheduler.flag_client(group["_id"], "b", reason)
    stored = await target.scheduler.session(group["_id"])
    assert stored["status"] == "ended" and not stored.get("client_proposals") and not stored.get("dropped_clients")
    assert not await _proposed_events(target, group["_id"])
    reported = reason == "PRIVACY_COMPROMISED"  # recorded on the ended session, as a late report is
    assert stored["privacy_flagged_clients"] == (["b"] if reported else [])
    profile = await _profile(target, "b")
    assert bool(profile.get("privacy_sensitive")) is reported and profile.get("tech_check_required") is False


async def test_a_session_cancelled_while_its_report_looked_for_slots_records_the_report_only(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # b reported being overheard ahead of a session booked for b, and it was cancelled while slots
    # were looked for it: the cancelled session got slots and a RescheduleProposed
    program = await _program(target, ("b",))
    ahead = await _book(target, program, "r-ahead", ("b",), _days_ahead_at(2, 10))
    _meanwhile(target, monkeypatch, lambda s: target.scheduler.cancel(s["_id"], "the client asked"))
    await target.scheduler.flag_client(ahead["_id"], "b", "PRIVACY_COMPROMISED")
    stored = await target.scheduler.session(ahead["_id"])
    assert stored["status"] == "cancelled" and stored["privacy_flagged_clients"] == ["b"]
    assert not stored["proposed_slots"] and not await _proposed_events(target, ahead["_id"])
    assert (await _profile(target, "b")).get("privacy_sensitive") is True


async def test_a_session_moved_while_its_report_looked_for_slots_leaves_the_report_to_the_new_one(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the care team moved the session while slots were looked for it after b's report: the old
    # session got slots and a RescheduleProposed, the new one (outside b's alone-windows) nothing
    program = await _program(target, ("b",))
    ahead = await _book(target, program, "r-ahead", ("b",), _days_ahead_at(2, 10))
    moved_to: list[Document] = []

    async def moved(session: Document) -> None:
        new_start = _days_ahead_at(3, 10)
        moved_to.append(await target.scheduler.reschedule("re-1", session["_id"], new_start, "", PLATFORM, ""))

    _meanwhile(target, monkeypatch, moved)
    await target.scheduler.flag_client(ahead["_id"], "b", "PRIVACY_COMPROMISED")
    old = await target.scheduler.session(ahead["_id"])
    assert old["status"] == "rescheduled" and old["privacy_flagged_clients"] == ["b"]
    assert not old["proposed_slots"] and not await _proposed_events(target, ahead["_id"])
    new = await target.scheduler.session(moved_to[0]["_id"])
    assert new["privacy_flagged"] and new["privacy_carried_clients"] == ["b"]  # the report reaches it
    (event,) = await _proposed_events(target, new["_id"])
    assert event.client_id == "b" and event.reason == "PRIVACY_COMPROMISED"


async def test_an_individual_session_started_while_its_report_looked_for_slots_is_interrupted(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # b reported being overheard before the session, then checked in and the session started while
    # slots were looked for it: the report was written on the running session, with slots and a
    # RescheduleProposed, and the session went on (a report on a running session interrupts it)
    program = await _program(target, ("b",))
    soon = await _book(target, program, "r-soon", ("b",), _soon())

    async def started(session: Document) -> None:
        await target.scheduler.check_in(session["_id"], "b", NY, "alone", "")
        await target.scheduler.start(session["_id"], "NY")

    _meanwhile(target, monkeypatch, started)
    await target.scheduler.flag_client(soon["_id"], "b", "PRIVACY_COMPROMISED")
    stored = await target.scheduler.session(soon["_id"])
    assert stored["status"] == "interrupted" and stored["interruption_reason"] == "PRIVACY_COMPROMISED"
    assert stored["privacy_flagged_clients"] == ["b"]
    (event,) = await _proposed_events(target, soon["_id"])  # the interruption's
    assert event.client_id == "b" and event.reason == "PRIVACY_COMPROMISED"


@pytest.mark.parametrize("kind", [INDIVIDUAL, GROUP])
async def test_a_report_on_a_session_being_moved_reaches_the_new_one(
    target: Target, monkeypatch: pytest.MonkeyPatch, kind: int
) -> None:
    # b reported being overheard while the care team's RescheduleSession was booking the new session
    # (after it read the old one and b's profile, before it stored the new one): the report was
    # written on the old session (still booked), looked for b's other sessions before the new one
    # existed, and the old one was then marked moved; the new session kept its time outside b's
    # alone-windows with no slots proposed and nobody told
    program = await _program(target, ("a", "b"))
    clients = ("b",) if kind == INDIVIDUAL else ("a", "b")
    ahead = await _book(target, program, "r-ahead", clients, _days_ahead_at(2, 10), kind)
    insert_once = target.scheduler.store.insert_once

    async def reported_meanwhile(collection: str, doc: Document, *args: Any) -> Any:
        if doc.get("rescheduled_from") == ahead["_id"]:
            monkeypatch.undo()
            await target.scheduler.flag_client(ahead["_id"], "b", "PRIVACY_COMPROMISED")
        return await insert_once(collection, doc, *args)

    monkeypatch.setattr(target.scheduler.store, "insert_once", reported_meanwhile)
    moved = await target.scheduler.reschedule("re-1", ahead["_id"], _days_ahead_at(3, 10), "", PLATFORM, "")
    old = await target.scheduler.session(ahead["_id"])
    assert old["status"] == "rescheduled" and old["privacy_flagged_clients"] == ["b"]
    assert (await _profile(target, "b")).get("privacy_sensitive") is True
    new = await target.scheduler.session(moved["_id"])
    assert new["privacy_flagged"] and new["privacy_carried_clients"] == ["b"]  # the report reaches it
    (event,) = await _proposed_events(target, new["_id"])
    assert event.client_id == "b" and event.reason == "PRIVACY_COMPROMISED"
