"""Handlers of the scheduler's session lifecycle events (topic iop.scheduling.sessions.v1).

- SessionScheduled: remember the booked session with its treating facilitators (for expiry and
  board-action re-checks, the start re-check and billing defaults); flag it when booked past an
  item's expiry, or while a board action leaves a credential of its clinician or of a treating
  facilitator not active.
- SessionRosterChanged: a group seat taken or given back after booking: the copy's clients follow
  (`added`, `removed`), and a seated client's item expiring before the session flags it.
- SessionCheckedIn: remember the client's verified location and privacy attestation; a compromised
  attestation emits PrivacyCompromised (topic iop.compliance.privacy.v1).
- SessionStarted: re-check licensure for every checked-in client, from the start to the booked end,
  of the clinician (at the location the event gives) and of each treating facilitator (location
  unknown), and emit one LicensureChecked per clinician and client (topic iop.compliance.decisions.v1).
- SessionInterrupted / SessionCancelled / SessionRescheduled: the session is no longer booked.
- SessionEnded, SessionInterrupted with the attendance before the interruption, and
  SessionAttendanceRecorded (that attendance given after an interruption without it): add each
  client's attendance to their attended day, once per session and client (a later attendance of
  the same session is a duplicate, or with other figures a conflict: not billed, kept and the session
  flagged); a day whose close time has passed is closed at once (BillingReady on
  iop.compliance.billing.v1), others by the periodic job.

Every write is idempotent: keyed by the event id.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TypeAlias

from pymongo.errors import PyMongoError

from iop.events.v1 import common_pb2, scheduling_pb2
from services.compliance import events
from services.compliance.billing import BillingDays
from services.compliance.board_actions import in_force_when_expiring, inactive_during, session_flag
from services.compliance.consent import place_of_service
from services.compliance.licensure import (
    NEEDS_REVIEW,
    CompactCredential,
    License,
    LicensureQuery,
    LicensureResult,
    decide_licensure,
)
from services.compliance.reference import Reference, billing_day
from services.compliance.store import (
    AUTHORIZATIONS,
    COMPACT_CREDENTIALS,
    CONSENTS,
    EXPIRING,
    LICENSES,
    LIVE_STATUSES,
    SCHEDULED,
    STARTED,
    ComplianceStore,
)
from services.plumbing.consumer import Handler, PoisonEvent
from services.plumbing.envelope import CloudEvent
from services.plumbing.protos import to_datetime
from services.plumbing.storage import Document

log = logging.getLogger(__name__)

OBSERVER = "observer"  # a facilitator role that watches and does not treat
CLINICIAN_ROLE = "clinician"  # LicensureChecked.clinician_role of the session's clinician
# the flag of a session for which a client's attendance came again with other figures (not billed)
ATTENDANCE_CONFLICT = "ATTENDANCE_CONFLICT"

MODALITY_NAMES = {
    common_pb2.MODALITY_VIDEO: "VIDEO",
    common_pb2.MODALITY_AUDIO_ONLY: "AUDIO_ONLY",
    common_pb2.MODALITY_MIXED: "MIXED",
}


# the events that carry a session's attendance and billing context
Attended: TypeAlias = (
    scheduling_pb2.SessionEnded | scheduling_pb2.SessionInterrupted | scheduling_pb2.SessionAttendanceRecorded
)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def treating_facilitators(p: scheduling_pb2.SessionScheduled) -> list[tuple[str, str]]:
    """(clinician id, role) of the session's treating facilitators besides its clinician, each once.
    An observer is never checked (it does not treat), should a producer list one."""
    found: dict[str, str] = {}
    for f in p.treating_facilitators:
        if f.clinician_id and f.clinician_id != p.clinician_id and f.role != OBSERVER:
            found.setdefault(f.clinician_id, f.role)
    return list(found.items())


def billable_attendance(p: Attended) -> list[tuple[str, int, str]]:
    """(client, minutes, modality name) of each client who attended some of an ended or interrupted
    session: a row without a client or minutes bills nothing; a row's modality, else the session's,
    else VIDEO."""
    return [
        (a.client_id, a.minutes_attended, MODALITY_NAMES.get(a.modality) or MODALITY_NAMES.get(p.modality) or "VIDEO")
        for a in p.attendance
        if a.client_id and a.minutes_attended > 0
    ]


def billed_figures(attended: Document) -> tuple[str, str, int, str]:
    """What an attendance bills (claim_attendance's document): its day (the client and service date),
    kind, minutes and modality."""
    entry = attended["entry"]
    return attended["day_id"], entry["kind"], int(entry["minutes"]), entry["modality"]


def expires_before_session_ends(expires_at: datetime, starts_at: datetime, until: datetime | None) -> bool:
    """Whether an item expiring at `expires_at` stops covering a session [starts_at, until) before
    its end: it expires before the session starts, or during it (one expiring exactly at the end
    covers it: the range is half-open). Without an end, only the start counts."""
    return expires_at <= starts_at or (until is not None and expires_at < until)


class SchedulingHandlers:
    def __init__(self, store: ComplianceStore, ref: Reference, billing: BillingDays) -> None:
        self._store = store
        self._ref = ref
        self._billing = billing

    def handlers(self) -> dict[str, Handler]:
        return {
            scheduling_pb2.SessionScheduled.DESCRIPTOR.full_name: self.session_scheduled,
            scheduling_pb2.SessionRosterChanged.DESCRIPTOR.full_name: self.session_roster_changed,
            scheduling_pb2.SessionCheckedIn.DESCRIPTOR.full_name: self.session_checked_in,
            scheduling_pb2.SessionStarted.DESCRIPTOR.full_name: self.session_started,
            scheduling_pb2.SessionEnded.DESCRIPTOR.full_name: self.session_ended,
            scheduling_pb2.SessionInterrupted.DESCRIPTOR.full_name: self.session_interrupted,
            scheduling_pb2.SessionAttendanceRecorded.DESCRIPTOR.full_name: self.session_attendance_recorded,
            scheduling_pb2.SessionCancelled.DESCRIPTOR.full_name: self.session_cancelled,
            scheduling_pb2.SessionRescheduled.DESCRIPTOR.full_name: self.session_rescheduled,
        }

    async def session_interrupted(self, event: CloudEvent, p: scheduling_pb2.SessionInterrupted) -> None:
        """The session could not go on (lost connection, compromised privacy, clinician emergency): it
        is no longer booked nor treated in, so board actions and expiries stop naming and flagging it.
        The scheduler never ends or starts it again (it may reschedule it: SessionRescheduled, and the
        new session's own SessionScheduled). Its flags stay, as a cancelled session's do.

        The minutes each client attended before the interruption are billed as an ended session's
        (`attendance`, same codes and minimums); an event without attendance (none given, or
        published before 2026-12-07) bills nothing, until it is given later
        (SessionAttendanceRecorded). The new session of a reschedule bills only its own SessionEnded
        or SessionInterrupted."""
        if not p.session_id:
            raise PoisonEvent("SessionInterrupted without session_id")
        interrupted_at = to_datetime(p.interrupted_at) or event.time
        await self._store.apply_session_event(
            p.session_id,
            event.id,
            {"$set": {"status": "interrupted", "interrupted_at": interrupted_at, "interruption_reason": p.reason}},
        )
        await self._bill_attendance(event.id, p, interrupted_at)

    async def session_attendance_recorded(self, event: CloudEvent, p: scheduling_pb2.SessionAttendanceRecorded) -> None:
        """The attendance of a session interrupted without it, given later: billed as the
        interruption's would have been (once per session and client), and nothing else: the copy keeps its
        status (interrupted, or rescheduled since)."""
        if not p.session_id:
            raise PoisonEvent("SessionAttendanceRecorded without session_id")
        await self._bill_attendance(event.id, p, to_datetime(p.interrupted_at) or event.time)

    async def session_cancelled(self, event: CloudEvent, p: scheduling_pb2.SessionCancelled) -> None:
        """A cancelled session is no longer booked: expiry checks stop naming it."""
        if not p.session_id:
            raise PoisonEvent("SessionCancelled without session_id")
        await self._store.apply_session_event(p.session_id, event.id, {"$set": {"status": "cancelled"}})

    async def session_rescheduled(self, event: CloudEvent, p: scheduling_pb2.SessionRescheduled) -> None:
        """The old session is replaced (the new one arrives as its own SessionScheduled)."""
        if not p.session_id:
            raise PoisonEvent("SessionRescheduled without session_id")
        await self._store.apply_session_event(p.session_id, event.id, {"$set": {"status": "rescheduled"}})

    async def session_scheduled(self, event: CloudEvent, p: scheduling_pb2.SessionScheduled) -> None:
        starts_at, ends_at = to_datetime(p.starts_at), to_datetime(p.ends_at)
        if not p.session_id or not p.clinician_id or starts_at is None:
            raise PoisonEvent("SessionScheduled without session_id, clinician_id or starts_at")
        facilitators = treating_facilitators(p)
        # A SessionRosterChanged written in the scheduler's relay pass with this event can come
        # before it (same key, so in order here: never after it): its clients are kept, and a client
        # it removed is not seated again by this event's roster (as the scheduler saw it at booking).
        current = await self._store.session(p.session_id) or {}
        removed = set(current.get("removed_client_ids") or [])
        booked = [c for c in dict.fromkeys(p.client_ids) if c and c not in removed]
        clients = list(dict.fromkeys([*(current.get("client_ids") or []), *booked]))
        await self._store.apply_session_event(
            p.session_id,
            event.id,
            {
                "$set": {
                    "clinician_id": p.clinician_id,
                    # who else treats the clients: re-checked as the clinician is (their ids also
                    # flat, for the board-action and expiry lookups: store.treated_by)
                    "facilitators": [{"clinician_id": c, "role": role} for c, role in facilitators],
                    "facilitator_ids": [c for c, _ in facilitators],
                    "program_id": p.program_id,
                    "starts_at": starts_at,
                    "ends_at": ends_at,
                    "kind": scheduling_pb2.SessionKind.Name(p.kind),
                    "payer_plan_id": p.payer_plan_id,
                    "level_of_care": p.level_of_care,
                    "status": SCHEDULED,
                },
                # added to what roster changes applied before this event (a set: the same client once)
                "$addToSet": {"client_ids": {"$each": booked}},
            },
        )
        treating = [p.clinician_id, *(c for c, _ in facilitators)]
        await self._flag_for_recheck(p.session_id, treating, clients, starts_at, ends_at)

    async def session_roster_changed(self, event: CloudEvent, p: scheduling_pb2.SessionRosterChanged) -> None:
        """A client took (or gave back) a seat in a group after it was booked: the copy's
        `client_ids` follow (`added` and `removed` are authoritative; `client_ids` is the roster as
        that scheduler writer saw it, which a concurrent seat's writer did not), and a seated client's
        consent or authorization expiring before the session flags it, as at SessionScheduled. A
        removed client's flags are taken off. Applied once per event (a redelivery changes nothing);
        one that arrives before its SessionScheduled is kept for it (that event merges, and flags)."""
        if not p.session_id:
            raise PoisonEvent("SessionRosterChanged without session_id")
        added = [c for c in dict.fromkeys(p.added) if c]
        removed = [c for c in dict.fromkeys(p.removed) if c and c not in added]
        if removed:
            stale: list[str] = []
            for client_id in removed:
                consents, authorizations = await self._store.client_snapshot(client_id)
                stale += [f"EXPIRES_BEFORE_SESSION:{EXPIRING[CONSENTS]}:{x.consent_id}" for x in consents]
                stale += [
                    f"EXPIRES_BEFORE_SESSION:{EXPIRING[AUTHORIZATIONS]}:{x.authorization_id}" for x in authorizations
                ]
            update: dict[str, Document] = {
                "$pullAll": {"client_ids": removed},
                "$addToSet": {"removed_client_ids": {"$each": removed}},
            }
            if stale:
                update["$pullAll"]["flags"] = stale
            await self._store.apply_session_event(p.session_id, f"{event.id}|removed", update)
        if not added:
            return
        await self._store.apply_session_event(
            p.session_id,
            event.id,
            {
                "$addToSet": {"client_ids": {"$each": added}},
                "$pullAll": {"removed_client_ids": added},  # seated again after a removal
            },
        )
        session = await self._store.session(p.session_id) or {}
        starts_at = session.get("starts_at")
        if starts_at is None or session.get("status") not in LIVE_STATUSES:
            return  # not scheduled yet (its SessionScheduled flags), or no longer held
        ends_at = session.get("ends_at")
        await self._flag_for_recheck(
            p.session_id,
            [],  # the treating clinicians' items were checked at SessionScheduled
            added,
            _aware(starts_at),
            _aware(ends_at) if ends_at is not None else None,
        )

    async def _flag_for_recheck(
        self,
        session_id: str,
        clinician_ids: list[str],
        client_ids: list[str],
        starts_at: datetime,
        ends_at: datetime | None,
    ) -> None:
        """A session booked after an item's expiry warning, or a board action, went out is flagged
        for re-check too: an item expiring before it ends (EXPIRES_BEFORE_SESSION: before it starts
        or during it; until 2026-12-07 only before it starts), a license or
        compact credential a board action leaves not active during it (BOARD_ACTION_<STATUS>). A
        license or compact credential not in force when it expires is not flagged for its expiry
        when it is not active during the session either, as the expiry monitor does not warn of it
        (until 2026-12-07 it was: the session carried both flags). The credentials are those of
        every clinician who treats the clients (`clinician_ids`: the session's clinician and its
        treating facilitators).

        A clinician's credentials are read with every board action stored by then
        (store.credentials_with_actions: read now when the clinician has any board action, else the
        snapshot EvaluateSession and CheckLicensure cached when they checked the booking; the clients'
        records are those snapshots). The session's copy is written before (session_scheduled), and
        a board action looks up the booked sessions after it is stored (BoardActions.record), so one
        of the two sees the other: an action the booking's evaluation did not see (recorded by one
        instance less than the read cache's TTL before, the evaluating instance's snapshot cached
        earlier) is seen here, or was stored after this read and flags the session itself. Until
        2026-12-08 the cached snapshot was read here too, and such a session was flagged by neither:
        only the SessionStarted re-check caught it, with the client in the session.
        """
        now = datetime.now(UTC)
        clinician_items: list[tuple[str, str, License | CompactCredential]] = []
        for clinician_id in clinician_ids:
            licenses, credentials = await self._store.credentials_with_actions(clinician_id)
            clinician_items += [(EXPIRING[LICENSES], x.license_id, x) for x in licenses]
            clinician_items += [(EXPIRING[COMPACT_CREDENTIALS], x.credential_id, x) for x in credentials]
        until = ends_at if ends_at is not None and ends_at > starts_at else None
        expiring: list[tuple[str, str, datetime | None]] = []
        for item_type, item_id, item in clinician_items:
            status = inactive_during(item, starts_at, until)
            if status is not None and item.status_changes:
                await self._store.flag_sessions([session_id], session_flag(item_type, item_id, status))
            # as the expiry monitor and ListExpiring (in_force_at_expiry): a credential suspended or
            # revoked when it expires is not flagged for its expiry; not active during the session, it
            # has its BOARD_ACTION_ flag instead (none when recorded so, without a board action). One
            # reinstated only after its expiry, active during the session, keeps the expiry flag.
            if status is None or in_force_when_expiring(item, item.valid_until):
                expiring.append((item_type, item_id, item.valid_until))
        for client_id in client_ids:
            consents, authorizations = await self._store.client_snapshot(client_id)
            expiring += [(EXPIRING[CONSENTS], x.consent_id, x.valid_until) for x in consents]
            expiring += [(EXPIRING[AUTHORIZATIONS], x.authorization_id, x.expires_at) for x in authorizations]
        for item_type, item_id, expires_at in expiring:
            if (
                expires_at is not None
                and now < expires_at
                and expires_before_session_ends(expires_at, starts_at, until)
            ):
                await self._store.flag_sessions([session_id], f"EXPIRES_BEFORE_SESSION:{item_type}:{item_id}")

    async def session_checked_in(self, event: CloudEvent, p: scheduling_pb2.SessionCheckedIn) -> None:
        if not p.session_id or not p.client_id:
            raise PoisonEvent("SessionCheckedIn without session_id or client_id")
        at = to_datetime(p.checked_in_at) or event.time
        await self._store.apply_session_event(
            p.session_id,
            event.id,
            {
                "$push": {
                    "checkins": {
                        "client_id": p.client_id,
                        "state": p.location.state,
                        "verified": p.location.verified,
                        "attestation": p.privacy_attestation,
                        "at": at,
                    }
                }
            },
        )
        if p.privacy_attestation:
            session = await self._store.session(p.session_id)
            clinician_id = (session or {}).get("clinician_id", "")
            await self._store.record_attestation(
                p.session_id,
                p.client_id,
                event.id,
                {"attestation": p.privacy_attestation, "at": at, "by": "scheduler", "marker": event.id},
                events.privacy_events(p.session_id, p.client_id, clinician_id, p.privacy_attestation, at),
            )

    async def session_started(self, event: CloudEvent, p: scheduling_pb2.SessionStarted) -> None:
        started_at = to_datetime(p.started_at) or event.time
        if not p.session_id or not p.clinician_id:
            raise PoisonEvent("SessionStarted without session_id or clinician_id")
        await self._store.apply_session_event(
            p.session_id,
            event.id,
            {
                "$set": {
                    "status": STARTED,
                    "started_at": started_at,
                    "clinician_state": p.clinician_state,
                    "clinician_id": p.clinician_id,
                }
            },
        )
        session = await self._store.session(p.session_id) or {}
        ends_at = session.get("ends_at")  # as booked: the credentials must hold to the end
        if ends_at is not None and ends_at.tzinfo is None:
            ends_at = ends_at.replace(tzinfo=UTC)
        until = ends_at if ends_at is not None and ends_at > started_at else None
        latest: dict[str, Document] = {}
        for c in session.get("checkins") or []:
            latest[c["client_id"]] = c
        # Everyone who treats the clients: the clinician (where the event says they are) and each
        # treating facilitator kept from SessionScheduled. Where a facilitator is is not known here:
        # a basis that needs it (PSYPACT) answers needs_review CLINICIAN_LOCATION_UNKNOWN (fails closed).
        treating = [(p.clinician_id, CLINICIAN_ROLE, p.clinician_state)]
        for f in session.get("facilitators") or []:
            if f["clinician_id"] not in {c for c, _, _ in treating}:
                treating.append((f["clinician_id"], f["role"], ""))
        now = datetime.now(UTC)
        outgoing = []
        for clinician_id, role, clinician_state in treating:
            licenses, credentials = await self._store.read_credentials(clinician_id)
            for client_id in list(p.client_ids) or list(latest):
                checkin = latest.get(client_id)
                state = checkin["state"] if checkin else ""
                if state in self._ref.states:
                    query = LicensureQuery(
                        client_state=state,
                        at=started_at,
                        now=now,
                        clinician_state=clinician_state,
                        client_location_verified=bool(checkin and checkin["verified"]),
                        require_verified_location=True,
                        until=until,
                    )
                    result = decide_licensure(self._ref, licenses, credentials, query)
                else:  # no check-in location: fail closed
                    result = LicensureResult(NEEDS_REVIEW, ["CLIENT_LOCATION_MISSING"], data_version=self._ref.version)
                outgoing.append(
                    events.licensure_checked(p.session_id, clinician_id, client_id, state, result, now, role)
                )
        if outgoing:
            await self._store.add_session_events(p.session_id, f"started:{event.id}", outgoing)

    async def session_ended(self, event: CloudEvent, p: scheduling_pb2.SessionEnded) -> None:
        if not p.session_id:
            raise PoisonEvent("SessionEnded without session_id")
        ended_at = to_datetime(p.ended_at) or event.time
        await self._store.apply_session_event(
            p.session_id, event.id, {"$set": {"status": "ended", "ended_at": ended_at}}
        )
        await self._bill_attendance(event.id, p, ended_at)

    async def _bill_attendance(
        self,
        event_id: str,
        p: Attended,
        stopped_at: datetime,
    ) -> None:
        """Add each client's attended minutes of an ended or interrupted session to their attended
        day, once per session and client (store.claim_attendance: the first attendance counts; a
        redelivery of its event changes nothing, another event is _another_attendance); a day whose
        close time has passed is closed at once, others by the periodic job. What the event leaves
        out (start, kind, plan, level of care) is taken from compliance's copy of the session, and
        the service day and place of service from each client's check-in."""
        billable = billable_attendance(p)
        if not billable:
            return
        session = await self._store.session(p.session_id) or {}
        started_at = to_datetime(p.started_at) or session.get("started_at") or session.get("starts_at") or stopped_at
        if started_at.tzinfo is None:
            started_at = started_at.replace(tzinfo=UTC)
        checkins: dict[str, Document] = {}
        for c in session.get("checkins") or []:
            checkins[c["client_id"]] = c
        kind = scheduling_pb2.SessionKind.Name(p.kind) if p.kind else session.get("kind", "SESSION_KIND_GROUP")
        plan = p.payer_plan_id or session.get("payer_plan_id", "")
        level = p.level_of_care or session.get("level_of_care", "") or "IOP_PSYCH"
        now = datetime.now(UTC)
        for client_id, minutes, modality in billable:
            checkin = checkins.get(client_id) or {}
            service_day, close_at = billing_day(self._ref, started_at, checkin.get("state", ""))
            client_plan = plan or await self._plan_from_authorization(client_id, service_day)
            attended: Document = {
                "day_id": f"{client_id}:{service_day.isoformat()}",
                "entry": {
                    "event_id": event_id,
                    "session_id": p.session_id,
                    "kind": kind,
                    "minutes": minutes,
                    "modality": modality,
                },
                "base": {
                    "client_id": client_id,
                    "service_date": service_day.isoformat(),
                    "payer_plan_id": client_plan,
                    "level_of_care": level,
                    "place_of_service": place_of_service(checkin.get("attestation", "")),
                    "close_at": close_at,
                    "reports": 0,
                },
            }
            # The client's first attendance of the session is the one billed, whichever event and
            # service date a later one comes with. Each event writes it to its day (a no-op once
            # there), so a later event also completes a first one's write that a crash left undone.
            billed = await self._store.claim_attendance(p.session_id, client_id, attended)
            await self._store.add_to_billing_day(
                billed["day_id"], billed["entry"]["event_id"], billed["entry"], billed["base"]
            )
            if billed["entry"]["event_id"] != event_id:
                await self._another_attendance(client_id, billed, attended, now)
        try:
            await self._billing.close_due(now)
        except PyMongoError:  # the attendance is stored; the periodic job closes the day
            log.warning(
                "closing billing days after a session's attendance failed; left to the periodic job", exc_info=True
            )

    async def _another_attendance(self, client_id: str, billed: Document, attended: Document, now: datetime) -> None:
        """An attendance of a client for a session already billed for them, from another event (a
        scheduler bug, a replay from another producer, an operator publishing again): not billed. With
        the figures billed (service date, kind, minutes, modality) it is a duplicate; with others it is
        kept in the billed attendance's `rejected`, the session's copy is flagged
        ATTENDANCE_CONFLICT:client:<client id> and a warning names the ids (no figures: PHI)."""
        session_id, event_id = attended["entry"]["session_id"], attended["entry"]["event_id"]
        first = billed["entry"]["event_id"]
        if billed_figures(billed) == billed_figures(attended):
            log.info(
                "attendance of session %s for client %s in event %s duplicates event %s's: billed once",
                session_id,
                client_id,
                event_id,
                first,
            )
            return
        await self._store.reject_attendance(
            session_id, client_id, {**attended["entry"], "day_id": attended["day_id"], "at": now}
        )
        await self._store.apply_session_event(
            session_id,
            f"{event_id}|attendance_conflict|{client_id}",
            {"$addToSet": {"flags": f"{ATTENDANCE_CONFLICT}:client:{client_id}"}},
        )
        log.warning(
            "attendance of session %s for client %s in event %s differs from event %s's, which is billed: "
            "not billed; session flagged %s",
            session_id,
            client_id,
            event_id,
            first,
            ATTENDANCE_CONFLICT,
        )

    async def _plan_from_authorization(self, client_id: str, on: date) -> str:
        """A group's clients have their own payers: the plan of the client's authorization in force that day."""
        for d in await self._store.owned(AUTHORIZATIONS, client_id):
            if d["start_date"] <= on.isoformat() <= d["end_date"]:
                return str(d["payer_plan_id"])
        return ""
