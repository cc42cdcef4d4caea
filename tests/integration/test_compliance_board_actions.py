"""Board actions (UpdateLicenseStatus, UpdateCompactCredentialStatus) against the real store.

FerretDB 1.x applies an update as read-modify-write of the whole document: two board actions pushed
onto one license concurrently, or one racing the expiry monitor's update of that license, lost the
suspension (the caller told OK) or the monitor's horizons and CredentialExpiring event. Each action
is now a document of its own; these tests race them many times over and require every write to
be visible afterwards, and that a snapshot still costs at most one grouped query more."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from iop.compliance.v1 import compliance_pb2 as pb
from iop.events.v1 import common_pb2
from iop.events.v1.compliance_pb2 import CredentialStatusChanged
from services.compliance import events
from services.compliance.billing import BillingDays
from services.compliance.board_actions import BoardActions
from services.compliance.handlers import SchedulingHandlers
from services.compliance.licensure import status_at
from services.compliance.reference import load_reference
from services.compliance.store import (
    BOARD_ACTIONS,
    COMPACT_CREDENTIALS,
    DIRECTORY,
    FLAG_CLEAN_UPS,
    LICENSES,
    ComplianceStore,
    board_action_id,
    license_from_doc,
)
from services.plumbing.envelope import CloudEvent
from services.plumbing.settings import Settings
from services.plumbing.storage import Document, service_database
from tests.integration.test_compliance_api import (
    SchedulerEvents,
    evaluate,
    record_license,
    start_compliance,
    stub_for,
    uid,
)
from tests.integration.test_compliance_rules import scheduled
from tests.integration.test_compliance_support import (
    NOW,
    board_action,
    license_doc,
    privilege_doc,
    store_of_its_own,
    stored_events,
)
from tests.support import until_stopped

pytestmark = pytest.mark.integration

REFERENCE = load_reference()

TRIALS = 25  # before the fix, a write was lost in about one trial in three


class Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += event.command_name == "find"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def finds() -> Finds:
    return Finds()


@pytest.fixture
async def store(settings: Settings, finds: Finds) -> AsyncIterator[ComplianceStore]:
    async with store_of_its_own(settings, "board", finds) as s:
        yield s


async def test_concurrent_board_actions_and_expiry_warnings_lose_nothing(store: ComplianceStore) -> None:
    """N board actions on one license and the expiry monitor's warning for it, all at once, over and
    over: every action, the horizons and the warning's event are there afterwards, and the engine
    sees the suspension in force now."""
    planned = [
        ("suspended", NOW - timedelta(minutes=1)),
        ("active", NOW + timedelta(days=5)),
        ("revoked", NOW + timedelta(days=9)),
        ("expired", NOW + timedelta(days=19)),
    ]
    for trial in range(TRIALS):
        clinician = f"clin-race-{trial}-{uuid.uuid4().hex[:6]}"
        lic = license_doc(clinician)
        await store.insert(LICENSES, lic)
        warning = events.credential_expiring(lic["_id"], "license", clinician, lic["expires_at"], 30, [])
        changes = [store.change_status(LICENSES, lic["_id"], board_action(s, at, f"by-{s}")) for s, at in planned]
        returned, marked = await asyncio.gather(
            asyncio.gather(*changes), store.mark_horizons(LICENSES, lic["_id"], 30, [30, 60], [warning])
        )
        assert marked, f"trial {trial}: the warning was not recorded"
        for doc, (status, at) in zip(returned, planned, strict=True):
            assert doc is not None
            assert (status, at) in [(c["status"], c["effective_at"]) for c in doc["status_changes"]], trial

        licenses, _ = await store.read_credentials(clinician)
        (parsed,) = licenses
        assert sorted(parsed.status_changes) == sorted((at, s) for s, at in planned), (
            f"trial {trial}: a board action was lost"
        )
        assert status_at(parsed, NOW) == "suspended", f"trial {trial}: the suspension is not in force"
        listed, _ = await store.clinician_credentials(clinician)
        assert sorted(c["recorded_by"] for c in listed[0]["status_changes"]) == sorted(f"by-{s}" for s, _ in planned)
        # the monitor's write: its horizon counts as notified, and its event is stored to be published
        assert not await store.mark_horizons(LICENSES, lic["_id"], 30, [30, 60], []), f"trial {trial}: horizons lost"
        assert len(await stored_events(store, clinician, "iop.events.v1.CredentialExpiring")) == 1, trial


async def test_a_board_action_is_recorded_once(store: ComplianceStore) -> None:
    """Retried, or sent twice at once, an action (record, status, effective time) is one entry, with
    the audit fields of the first; a try that stopped after its directory entry leaves no trace."""
    clinician = f"clin-once-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician)
    await store.insert(LICENSES, lic)
    at = NOW - timedelta(hours=1, microseconds=1234)  # kept to the millisecond, as the store does
    first = await store.change_status(LICENSES, lic["_id"], board_action("suspended", at, "first"))
    again = await store.change_status(LICENSES, lic["_id"], board_action("suspended", at, "second"))
    assert first is not None and again is not None
    assert [c["recorded_by"] for c in again["status_changes"]] == ["first"]
    await asyncio.gather(
        *(store.change_status(LICENSES, lic["_id"], board_action("revoked", NOW, f"r{n}")) for n in range(5))
    )
    # a try that stopped between its directory entry and its action, then retried
    stopped = board_action_id(LICENSES, lic["_id"], "expired", NOW)
    await store.db[DIRECTORY].insert_one({"_id": f"{BOARD_ACTIONS}|{clinician}|0015", "record_id": stopped})
    await store.change_status(LICENSES, lic["_id"], board_action("expired", NOW + timedelta(days=1)))  # another action
    await store.change_status(LICENSES, lic["_id"], board_action("expired", NOW))  # the retry
    (listed,), _ = await store.clinician_credentials(clinician)
    assert [(c["status"], c["effective_at"]) for c in listed["status_changes"]] == [
        ("suspended", at.replace(microsecond=at.microsecond // 1000 * 1000)),
        ("revoked", NOW),
        ("expired", NOW),  # the same instant as `revoked`, recorded later: in force from then on
        ("expired", NOW + timedelta(days=1)),
    ]
    assert await store.db[BOARD_ACTIONS].count_documents({"owner_id": clinician}) == 4
    assert await store.change_status(LICENSES, "no-such-license", board_action("revoked", NOW)) is None
    # the record itself is not written by board actions
    assert "status_changes" not in (await store.get(LICENSES, lic["_id"]) or {})


async def test_history_kept_in_the_record_by_the_first_version_is_still_read(store: ComplianceStore) -> None:
    clinician = f"clin-old-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician)
    lic["status_changes"] = [board_action("suspended", NOW - timedelta(days=2), "earlier version")]
    lic["status_keys"] = [f"suspended@{(NOW - timedelta(days=2)).isoformat()}"]
    await store.insert(LICENSES, lic)
    await store.change_status(LICENSES, lic["_id"], board_action("suspended", NOW - timedelta(days=2), "retry"))
    await store.change_status(LICENSES, lic["_id"], board_action("active", NOW - timedelta(days=1), "board-b"))
    (parsed,), _ = await store.read_credentials(clinician)
    assert parsed.status_changes == ((NOW - timedelta(days=2), "suspended"), (NOW - timedelta(days=1), "active"))
    (listed,), _ = await store.clinician_credentials(clinician)
    assert [c["recorded_by"] for c in listed["status_changes"]] == ["earlier version", "board-b"]


async def test_a_snapshot_reads_board_actions_with_one_grouped_query_more(store: ComplianceStore, finds: Finds) -> None:
    """Without board actions a clinician's snapshot is the directory query and one query per
    collection holding records; with them, one query more (all actions, of every record, together)."""
    clinician = f"clin-q-{uuid.uuid4().hex[:6]}"
    lic, cred = license_doc(clinician), privilege_doc(clinician)
    await store.insert(LICENSES, lic)
    await store.insert(COMPACT_CREDENTIALS, cred)
    finds.count = 0
    await store.credentials_snapshot(clinician)
    assert finds.count == 3  # directory, licenses, compact credentials
    await store.change_status(LICENSES, lic["_id"], board_action("suspended", NOW))
    await store.change_status(COMPACT_CREDENTIALS, cred["_id"], board_action("revoked", NOW))
    finds.count = 0
    licenses, credentials = await store.credentials_snapshot(clinician)
    assert finds.count == 4  # and the board actions
    assert status_at(licenses[0], NOW) == "suspended" and status_at(credentials[0], NOW) == "revoked"
    finds.count = 0
    await store.credentials_snapshot(clinician)
    assert finds.count == 0  # cached


async def test_a_board_action_and_its_event_are_one_insert_and_flag_the_sessions_once(store: ComplianceStore) -> None:
    """The same suspension sent five times at once: one action, one CredentialStatusChanged in its
    document's outbox, naming the booked session it affects, which is flagged once; the session
    before it takes effect and a cancelled one are not."""
    clinician = f"clin-ev-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician, expires_in=timedelta(days=200))
    await store.insert(LICENSES, lic)
    sessions = {
        "before": (NOW + timedelta(days=1), "scheduled"),
        "after": (NOW + timedelta(days=3), "scheduled"),
        "cancelled": (NOW + timedelta(days=3), "cancelled"),
    }
    for name, (starts_at, status) in sessions.items():
        await scheduled_session(store, f"{clinician}-{name}", clinician, starts_at, status=status)
    board = BoardActions(store)
    suspension = board_action("suspended", NOW + timedelta(days=2))
    await asyncio.gather(*(board.record(LICENSES, lic["_id"], suspension, NOW) for _ in range(5)))
    (stored,) = await stored_events(store, clinician, "iop.events.v1.CredentialStatusChanged")
    published = CredentialStatusChanged.FromString(stored["data"])
    assert (published.item_id, published.status) == (lic["_id"], "suspended")
    assert list(published.affected_session_ids) == [f"{clinician}-after"]
    assert await store.db[BOARD_ACTIONS].count_documents({"outbox.id": stored["id"]}) == 1
    flags = {d["_id"]: d.get("flags", []) async for d in store.db["sessions"].find({"clinician_id": clinician})}
    assert flags == {
        f"{clinician}-before": [],
        f"{clinician}-after": [f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"],
        f"{clinician}-cancelled": [],
    }
    # a reinstatement is published and flags nothing
    await board.record(LICENSES, lic["_id"], board_action("active", NOW + timedelta(days=4)), NOW)
    reinstated = [
        CredentialStatusChanged.FromString(e["data"])
        for e in await stored_events(store, clinician, "iop.events.v1.CredentialStatusChanged")
    ]
    assert sorted((p.status, list(p.affected_session_ids)) for p in reinstated) == [
        ("active", []),
        ("suspended", [f"{clinician}-after"]),
    ]
    assert await store.db["sessions"].count_documents({"clinician_id": clinician, "flags.1": {"$exists": True}}) == 0


async def test_an_action_sent_again_after_another_at_its_instant_is_in_force_again(store: ComplianceStore) -> None:
    """Suspended, reinstated, then suspended again, all from the same instant: the last call is in
    force (the second suspension was taken for a retry of the first and dropped, the caller told OK
    with the license active), is published once and flags the sessions it affects; sent again, it
    records and publishes nothing. The same the other way round (reinstated again)."""
    clinician = f"clin-again-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician, expires_in=timedelta(days=200))
    await store.insert(LICENSES, lic)
    session = f"{clinician}-s"
    starts_at = NOW + timedelta(days=2)
    await scheduled_session(store, session, clinician, starts_at)
    board = BoardActions(store)
    at = NOW - timedelta(hours=1)

    async def in_force() -> str:
        (parsed,), _ = await store.read_credentials(clinician)
        return status_at(parsed, NOW)

    async def published() -> list[tuple[str, list[str]]]:
        found = await stored_events(store, clinician, "iop.events.v1.CredentialStatusChanged")
        changes = [CredentialStatusChanged.FromString(e["data"]) for e in found]
        return sorted((p.status, list(p.affected_session_ids)) for p in changes)

    await board.record(LICENSES, lic["_id"], board_action("suspended", at, "first"), NOW)
    await asyncio.sleep(0.005)  # recorded in another millisecond
    await board.record(LICENSES, lic["_id"], board_action("active", at, "stayed"), NOW)
    assert await in_force() == "active"
    await store.db["sessions"].update_one({"_id": session}, {"$set": {"flags": []}})
    await asyncio.sleep(0.005)
    doc = await board.record(LICENSES, lic["_id"], board_action("suspended", at, "again"), NOW)
    assert doc is not None and status_at(license_from_doc(doc), NOW) == "suspended"  # the reply
    assert await in_force() == "suspended", "the second suspension was dropped"
    flags = (await store.db["sessions"].find_one({"_id": session}) or {}).get("flags")
    assert flags == [f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"]
    assert await published() == [("active", []), ("suspended", [session]), ("suspended", [session])]
    # sent again: a retry of the last call, nothing more
    await board.record(LICENSES, lic["_id"], board_action("suspended", at, "retry"), NOW)
    assert await store.db[BOARD_ACTIONS].count_documents({"owner_id": clinician}) == 3
    assert len(await published()) == 3
    (listed,), _ = await store.clinician_credentials(clinician)
    assert [c["recorded_by"] for c in listed["status_changes"]] == ["first", "stayed", "again"]
    # and reinstated again
    await asyncio.sleep(0.005)
    await board.record(LICENSES, lic["_id"], board_action("active", at, "stayed again"), NOW)
    assert await in_force() == "active"
    assert await store.db[BOARD_ACTIONS].count_documents({"owner_id": clinician}) == 4


async def scheduled_session(
    store: ComplianceStore, session_id: str, clinician: str, starts_at: datetime, **fields: object
) -> None:
    """Compliance's copy of a booked session of `clinician`, three hours long (as SessionScheduled stores it)."""
    await store.db["sessions"].insert_one(
        {
            "_id": session_id,
            "clinician_id": clinician,
            "starts_at": starts_at,
            "ends_at": starts_at + timedelta(hours=3),
            "status": "scheduled",
            **fields,
        }
    )


async def licensed_with_a_session(store: ComplianceStore, name: str) -> tuple[str, Document, str]:
    """A new clinician (id from `name`) with a license in force for 200 days and a session booked in
    three days: (clinician id, license, session id)."""
    clinician = f"{name}-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician, expires_in=timedelta(days=200))
    await store.insert(LICENSES, lic)
    session = f"{clinician}-s"
    await scheduled_session(store, session, clinician, NOW + timedelta(days=3))
    return clinician, lic, session


async def flags_of(store: ComplianceStore, session_id: str) -> list[str]:
    return list((await store.db["sessions"].find_one({"_id": session_id}) or {}).get("flags") or [])


async def test_a_reinstatement_takes_off_the_flags_it_supersedes(store: ComplianceStore) -> None:
    """A suspension flags the booked sessions and the one running; a reinstatement from before the
    booked ones takes their flag off and names them in its CredentialStatusChanged
    (cleared_session_ids). The running session was treated in while suspended: it keeps its flag."""
    clinician = f"clin-clear-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician, expires_in=timedelta(days=200))
    await store.insert(LICENSES, lic)
    booked, later, running = f"{clinician}-booked", f"{clinician}-later", f"{clinician}-running"
    await scheduled_session(store, booked, clinician, NOW + timedelta(days=3))
    await scheduled_session(store, later, clinician, NOW + timedelta(days=8))
    began = NOW - timedelta(minutes=30)
    await scheduled_session(store, running, clinician, began, status="started", started_at=began)
    board = BoardActions(store)
    flag = f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"
    await board.record(LICENSES, lic["_id"], board_action("suspended", NOW - timedelta(hours=1)), NOW)
    assert [await flags_of(store, s) for s in (booked, later, running)] == [[flag], [flag], [flag]]

    await board.record(LICENSES, lic["_id"], board_action("active", NOW + timedelta(days=1)), NOW)
    assert [await flags_of(store, s) for s in (booked, later, running)] == [[], [], [flag]]
    published = sorted(
        (p.status, list(p.affected_session_ids), sorted(p.cleared_session_ids))
        for p in (
            CredentialStatusChanged.FromString(e["data"])
            for e in await stored_events(store, clinician, "iop.events.v1.CredentialStatusChanged")
        )
    )
    assert published == [
        ("active", [], sorted([booked, later])),
        ("suspended", sorted([booked, later, running]), []),
    ]


async def test_a_reinstatement_read_before_a_new_suspension_leaves_its_flag(store: ComplianceStore) -> None:
    """Suspended from now, then reinstated from tomorrow and, at the same time, suspended again from
    the day after, before a session booked in three days. The interleaving concurrent calls can take
    (FerretDB 1.x: a flag is a read-modify-write of the session): the reinstatement is stored and
    reads the license's actions, the second suspension is stored and flags the session (already
    flagged: nothing changes), then the reinstatement takes off the flag its read found stale. The
    session is suspended during it: the flag must be on it afterwards."""
    _, lic, session = await licensed_with_a_session(store, "clin-clear-race")
    board = BoardActions(store)
    await board.record(LICENSES, lic["_id"], board_action("suspended", NOW), NOW)
    reinstated = await store.change_status(LICENSES, lic["_id"], board_action("active", NOW + timedelta(days=1)))
    assert reinstated is not None
    await board.record(LICENSES, lic["_id"], board_action("suspended", NOW + timedelta(days=2)), NOW)
    await board.settle_flags(LICENSES, "license", reinstated, NOW)
    assert await flags_of(store, session) == [f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"]


class Crash(Exception):
    """The process dying at a given step, as far as the store can tell."""


async def test_a_retry_after_a_crash_in_the_clean_up_puts_the_flag_back(
    store: ComplianceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving of the test above, with the reinstatement's call dying after it took the
    flag off and before it read the actions again to put back what a concurrent suspension needs.
    The flag is then off a session the license is suspended during. The caller, told nothing, sends
    the reinstatement again: the retry records nothing and derives every booked session's flags from
    the actions, so the flag is back (until 2026-12-07 the retry looked only at the sessions still
    flagged, found none, and the flag stayed lost). A booked session the suspension does not reach
    gets no flag."""
    clinician = f"clin-clear-crash-{uuid.uuid4().hex[:6]}"
    lic = license_doc(clinician, expires_in=timedelta(days=200))
    await store.insert(LICENSES, lic)
    session, before = f"{clinician}-s", f"{clinician}-before"
    await scheduled_session(store, session, clinician, NOW + timedelta(days=3))
    await scheduled_session(store, before, clinician, NOW + timedelta(days=1, hours=2))
    board = BoardActions(store)
    flag = f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"
    await board.record(LICENSES, lic["_id"], board_action("suspended", NOW), NOW)
    reinstatement = board_action("active", NOW + timedelta(days=1))
    reinstated = await store.change_status(LICENSES, lic["_id"], reinstatement)
    assert reinstated is not None
    await board.record(LICENSES, lic["_id"], board_action("suspended", NOW + timedelta(days=2)), NOW)
    assert await flags_of(store, session) == [flag]

    async def crash(collection: str, record: Document) -> list[Document]:
        raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(store, "record_actions", crash)  # the read after the removal
        with pytest.raises(Crash):
            await board.settle_flags(LICENSES, "license", reinstated, NOW)
    assert await flags_of(store, session) == []  # the window: lost until the clean-up runs again

    await board.record(LICENSES, lic["_id"], reinstatement, NOW)
    assert await flags_of(store, session) == [flag]
    assert await flags_of(store, before) == []
    assert await store.db[BOARD_ACTIONS].count_documents({"owner_id": clinician}) == 3


async def test_a_clean_up_a_crash_interrupted_is_settled_by_the_periodic_job(
    store: ComplianceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same crash inside the reinstatement's call, and no retry: the call began a clean-up before
    storing the action and never ended it, so the periodic job's next round (settle_pending) derives
    the sessions' flags from the actions and puts the concurrent suspension's flag back."""
    clinician, lic, session = await licensed_with_a_session(store, "clin-clear-sweep")
    board = BoardActions(store)
    flag = f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"
    await board.record(LICENSES, lic["_id"], board_action("suspended", NOW), NOW)
    reinstatement = board_action("active", NOW + timedelta(days=1))
    real_change_status, real_unflag, real_actions = store.change_status, store.unflag_session, store.record_actions
    removed: list[str] = []

    async def change_status(collection: str, record_id: str, change: Document, events: Any = None) -> Any:
        doc = await real_change_status(collection, record_id, change, events)
        if change is reinstatement:  # a suspension stored by a concurrent call once the reinstatement's read is done
            await board.record(LICENSES, lic["_id"], board_action("suspended", NOW + timedelta(days=2)), NOW)
        return doc

    async def unflag_session(session_id: str, flags: list[str]) -> None:
        await real_unflag(session_id, flags)
        removed.append(session_id)

    async def record_actions(collection: str, record: Document) -> list[Document]:
        if removed:
            raise Crash  # the first read after a removal: the put-back's
        return await real_actions(collection, record)

    with monkeypatch.context() as patched:
        patched.setattr(store, "change_status", change_status)
        patched.setattr(store, "unflag_session", unflag_session)
        patched.setattr(store, "record_actions", record_actions)
        with pytest.raises(Crash):
            await board.record(LICENSES, lic["_id"], reinstatement, NOW)
    assert removed == [session] and await flags_of(store, session) == []
    assert await store.db[FLAG_CLEAN_UPS].count_documents({"record_id": lic["_id"]}) == 1

    assert await board.settle_pending(datetime.now(UTC), older_than=timedelta(0), kept_for=timedelta(0)) == 1
    assert await flags_of(store, session) == [flag]
    assert await store.db[FLAG_CLEAN_UPS].count_documents({"record_id": lic["_id"]}) == 0
    assert await store.db[BOARD_ACTIONS].count_documents({"owner_id": clinician}) == 3


async def test_a_suspension_stored_before_a_crash_flags_in_the_next_round(
    store: ComplianceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suspension stored, and the call dying before it flags the booked session: the periodic job
    flags it (until 2026-12-07 only a retry did)."""
    clinician, lic, session = await licensed_with_a_session(store, "clin-flag-sweep")
    board = BoardActions(store)

    async def crash(*args: object) -> None:
        raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(board, "settle_flags", crash)
        with pytest.raises(Crash):
            await board.record(LICENSES, lic["_id"], board_action("suspended", NOW), NOW)
    assert await store.db[BOARD_ACTIONS].count_documents({"owner_id": clinician}) == 1
    assert await flags_of(store, session) == []

    assert await board.settle_pending(datetime.now(UTC), older_than=timedelta(0), kept_for=timedelta(0)) == 1
    assert await flags_of(store, session) == [f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"]
    assert await store.db[FLAG_CLEAN_UPS].count_documents({"record_id": lic["_id"]}) == 0


async def test_a_clean_up_still_under_way_is_settled_again_until_it_is_old(
    store: ComplianceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call slower than the sweep's 30 s (a slow store, a paused instance): the periodic job
    settles its clean-up before the call stores its action, and keeps the document; the call then
    stores a suspension and dies before flagging, and the next round flags the session. Until a
    later change on 2026-12-07 the first round deleted the document, and the flag was lost for good."""
    _, lic, session = await licensed_with_a_session(store, "clin-slow-sweep")
    board = BoardActions(store)
    token = await store.begin_clean_up(LICENSES, lic["_id"], datetime.now(UTC) - timedelta(minutes=1))
    assert await board.settle_pending(datetime.now(UTC)) == 1  # nothing to flag yet
    assert await store.db[FLAG_CLEAN_UPS].count_documents({"_id": token}) == 1  # the call may be under way

    async def begun(*args: object) -> str:
        return token  # the slow call began its clean-up before the sweep

    async def crash(*args: object) -> None:
        raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(store, "begin_clean_up", begun)
        patched.setattr(board, "settle_flags", crash)
        with pytest.raises(Crash):
            await board.record(LICENSES, lic["_id"], board_action("suspended", NOW), NOW)
    assert await flags_of(store, session) == []

    assert await board.settle_pending(datetime.now(UTC)) == 1
    assert await flags_of(store, session) == [f"BOARD_ACTION_SUSPENDED:license:{lic['_id']}"]
    assert await board.settle_pending(datetime.now(UTC), kept_for=timedelta(minutes=1)) == 1
    assert await store.db[FLAG_CLEAN_UPS].count_documents({"_id": token}) == 0  # old enough: ended


async def test_a_session_booked_on_another_instances_stale_snapshot_is_flagged(settings: Settings) -> None:
    """Two compliance instances on one store. B, a real process (its read cache kept 60 s rather than
    2 s, so the window does not depend on the machine's speed), has the clinician's credentials cached
    when instance A records a suspension (BoardActions.record on the shared store, what A's
    UpdateLicenseStatus runs; A is not a process here: each test process consumes the scheduler's
    topic in a group of its own, so A's consumer would flag the session itself). B's EvaluateSession
    still answers `allow` from its snapshot (within its TTL, by design), the session is booked on that
    answer, after A's action looked for the booked sessions, and its SessionScheduled reaches B's
    consumer: B must flag it. Until 2026-12-08 B read its cached snapshot there, and the session was
    flagged by neither instance: only the SessionStarted re-check caught it, with the client in it."""
    clinician, client = uid("clin"), uid("client")
    location = common_pb2.ClientLocation(state="CA", verified=True)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    producer = SchedulerEvents(settings)
    try:
        with until_stopped(start_compliance(COMPLIANCE_READ_CACHE_TTL_S="60")) as b:
            channel, stub_b = stub_for(b)
            try:
                a = ComplianceStore(service_database(mongo, settings, "compliance"), "/instance-a")
                lic = record_license(stub_b, settings, clinician, "CA")

                def licensure_in_b() -> int:
                    reply = evaluate(
                        stub_b, settings, clinician_id=clinician, client_id=client, client_location=location
                    )
                    return int(reply.licensure.decision)

                assert licensure_in_b() == pb.DECISION_ALLOW  # now cached in B
                suspension = board_action("suspended", NOW - timedelta(minutes=1))
                await BoardActions(a).record(LICENSES, lic.license_id, suspension, datetime.now(UTC))
                assert licensure_in_b() == pb.DECISION_ALLOW  # B's stale snapshot: the booking goes ahead

                session = uid("s")
                producer.send(session, scheduled(session, clinician, datetime.now(UTC) + timedelta(days=3)))
                copy: Document = {}
                for _ in range(600):  # consumed (a new group may first work through a backlog)
                    copy = await a.db["sessions"].find_one({"_id": session}) or {}
                    if copy.get("status") == "scheduled":
                        break
                    await asyncio.sleep(0.1)
                flag = f"BOARD_ACTION_SUSPENDED:license:{lic.license_id}"
                for _ in range(50):  # flagged by the handler that stored the copy, right after
                    if copy.get("flags") == [flag]:
                        break
                    await asyncio.sleep(0.1)
                    copy = await a.db["sessions"].find_one({"_id": session}) or {}
                assert copy.get("status") == "scheduled" and copy.get("flags") == [flag], copy
            finally:
                channel.close()
    finally:
        producer.close()
        await mongo.close()


async def test_a_session_booked_after_a_reinstatement_on_a_stale_snapshot_is_not_flagged(
    store: ComplianceStore,
) -> None:
    """The other way round, with the smallest reproduction: instance B (a second store object on the
    same database, with its handlers) cached the clinician's credentials while a suspension was in
    force; A reinstates the license; a session booked then reaches B's consumer. B must not flag it
    for the suspension, which no longer covers it (until 2026-12-08 it did, from its snapshot, after
    the reinstatement's pass: the flag stayed on)."""
    clinician, lic, _ = await licensed_with_a_session(store, "clin-stale-reinstated")
    board = BoardActions(store)
    await board.record(LICENSES, lic["_id"], board_action("suspended", NOW - timedelta(hours=2)), NOW)
    b = ComplianceStore(store.db, "/instance-b", read_cache_ttl_s=60)
    (cached,), _ = await b.credentials_snapshot(clinician)
    assert status_at(cached, NOW) == "suspended"
    await board.record(LICENSES, lic["_id"], board_action("active", NOW - timedelta(hours=1)), NOW)

    session = f"{clinician}-booked-after"
    booked = scheduled(session, clinician, NOW + timedelta(days=4))
    handlers = SchedulingHandlers(b, REFERENCE, BillingDays(b, REFERENCE))
    await handlers.session_scheduled(CloudEvent.new("/iop/scheduler", session, booked), booked)
    assert await flags_of(store, session) == []
