"""The scheduler's service layer: bookings and the session lifecycle.

Orchestrates pure rules (domain), the store (unique reservations, day ledgers,
outbox writes) and the compliance service. Nothing is stored when a request is
refused: reservations taken on the way are released before the error is raised.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from google.protobuf.message import Message

from iop.compliance.v1 import compliance_pb2
from iop.events.v1 import common_pb2, scheduling_pb2
from services.plumbing.auth import Principal
from services.plumbing.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.plumbing.outbox import OutgoingEvent
from services.plumbing.phones import PhoneError, normalize_phone
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document, to_millis
from services.scheduler import domain as d
from services.scheduler import fhir
from services.scheduler.store import (
    CHECK_INS,
    CLIENTS,
    CLINICIANS,
    PROGRAMS,
    SEAT_CLAIM,
    SEATS,
    SESSIONS_COLLECTION,
    Conflict,
    SchedulerStore,
    seat_key,
    seat_number,
    tech_check_task_id,
)
from services.scheduler.topics import FHIR, SESSIONS

log = logging.getLogger(__name__)
T = TypeVar("T")

Evaluate = Callable[[compliance_pb2.EvaluateSessionRequest], Awaitable[compliance_pb2.SessionEvaluation]]
CheckLicensure = Callable[[compliance_pb2.CheckLicensureRequest], Awaitable[compliance_pb2.LicensureDecision]]
# A rescheduled session keeps its length: both of its times come from the request's new_starts_at.
RESCHEDULED_TIME_FIELDS = {"starts_at": "new_starts_at", "ends_at": "new_starts_at"}
TREATING_ROLES = d.TREATING_ROLES  # each needs a license for the clients' states

LEDGER_ATTEMPTS = 8
CHECK_IN_OPENS = timedelta(minutes=60)
PROPOSAL_HORIZON = timedelta(days=14)
PROPOSALS = 5
# a session moved for a report on another session (_carry_privacy_report): slots from a day before it on
CARRIED_PROPOSALS_BEFORE = timedelta(days=1)
# the slot searches one report makes for those sessions: the client's next ones (each ~33 ms of CPU)
CARRIED_SEARCHES = 4
PRIVACY_CARRIED = "privacy_carried_clients"  # whose report on another session made a session's proposals
SEARCH_READ_AHEAD = 4  # candidates whose reservations a slot search reads at once, at first
SEARCH_READ_AHEAD_MAX = 64
TECH_CHECK_LEAD = timedelta(hours=2)
AFTER_FAILED_SESSION = "AFTER_FAILED_SESSION"  # a tech check's trigger (FIRST_SESSION: a new client's)


@dataclass(frozen=True)
class Participants:
    program: Document
    clinician: Document
    clients: list[Document]

    @property
    def clinician_tz(self) -> ZoneInfo:
        return _tz(self.clinician)


def _tz(profile: Document) -> ZoneInfo:
    return d.stored_zone(profile["time_zone"])  # validated when the profile was saved


@dataclass(frozen=True)
class LedgerOwner:
    """Someone whose day ledgers a booking enters: a clinician on screen (the session's clinician
    or a facilitator, each under their own rules) or a client (under the session's rules)."""

    owner: str  # d.clinician_owner(...) or d.client_owner(...)
    tz: ZoneInfo
    is_clinician: bool
    rules: d.Rules

    def violations(self, others: Sequence[d.Booked], booked: d.Booked) -> list[str]:
        if self.is_clinician:
            return d.clinician_violations(others, booked, self.rules)
        return d.client_violations(others, booked, self.rules)


def _background(work: Awaitable[T]) -> asyncio.Future[T]:
    """Start `work` now, to be awaited later or cancelled. An outcome nobody awaited (after a
    cancel or an earlier error) is retrieved here, so it is never reported as unhandled."""
    future = asyncio.ensure_future(work)
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


def treating_facilitators(session: Document) -> list[tuple[str, str]]:
    """(clinician id, role) of the session's facilitators who treat its clients (lead,
    co_facilitator) besides its clinician, each once (the first role listed), in the order booked."""
    found: dict[str, str] = {}
    for f in session.get("facilitators", []):
        if f["role"] in TREATING_ROLES and f["clinician_id"] != session["clinician_id"]:
            found.setdefault(f["clinician_id"], f["role"])
    return list(found.items())


def home_states(clients: Iterable[Document]) -> list[str]:
    return [str(c.get("home_state", "")) for c in clients]


def _tech_check_task(session_id: str, client_id: str, trigger: str, start: datetime) -> Document:
    """A client's tech-check task before a session (its id derives from both), opened now."""
    now = datetime.now(UTC)
    return {
        "_id": tech_check_task_id(session_id, client_id),
        "client_id": client_id,
        "session_id": session_id,
        "due_by": start - TECH_CHECK_LEAD,
        "status": "open",
        "trigger": trigger,
        "created_at": now,
        "opened_at": now,  # reopened after a failed session: then (SchedulerStore.open_tech_check)
    }


def _trigger(client: Document) -> str:
    """Why a client's tech check is due (their profile's `tech_check_trigger`)."""
    return str(client.get("tech_check_trigger") or "FIRST_SESSION")


def alone_bound(clients: Iterable[Document], must_be_alone: Collection[str]) -> list[str]:
    """The clients whose alone-windows the slots proposed to `clients` lie in: those who must be
    alone (whose privacy was compromised, or every client of a move that requires it) and the
    privacy-sensitive (alone-only since a report), alone-windows or not, and each other client who
    has alone-windows. A client without alone-windows who need not be alone does not bound them:
    until 2026-12-07 every client's did after compromised privacy or when any client had some, so
    such a client left a group with no proposals."""
    return [
        c["_id"] for c in clients if c["_id"] in must_be_alone or c.get("privacy_sensitive") or c.get("alone_windows")
    ]


@dataclass(frozen=True)
class Proposal:
    """Slots proposed after an interruption, and the clients whose alone-windows they lie in."""

    slots: list[Document]
    alone_for: list[str]


def derived_id(kind: str, request_id: str) -> str:
    """The id of what a request creates: a retry with the same request_id finds it by _id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:iop:scheduler:{kind}:{request_id}"))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _started_at(session: Document) -> datetime | None:
    started = session.get("started_at")
    return _utc(started) if started else None


def _check_attendance(session: Document, attendance: Sequence[tuple[str, int, int]], limit: int, bound: str) -> None:
    """An ending's or interruption's attendance against the session: each row one of its clients,
    once, minutes within `limit` (INVALID_ARGUMENT naming every row at fault)."""
    v = FieldViolations()
    for name, problem in d.attendance_violations(attendance, session["client_ids"], limit, bound):
        v.add(name, problem)
    v.raise_if_any()


def _attended(session: Document, modality: int, rows: Sequence[Document]) -> dict[str, Any]:
    """What SessionEnded, SessionInterrupted and SessionAttendanceRecorded carry: the attendance
    (stored rows: attendance_rows) and the session's billing context."""
    return {
        "session_id": session["_id"],
        "clinician_id": session["clinician_id"],
        "modality": modality,
        "attendance": [
            scheduling_pb2.ClientAttendance(
                client_id=r["client_id"], minutes_attended=r["minutes_attended"], modality=r["modality"]
            )
            for r in rows
        ],
        "program_id": session["program_id"],
        "payer_plan_id": session["payer_plan_id"],
        "level_of_care": session["level_of_care"],
        "kind": session["kind"],
        "started_at": to_timestamp(session.get("started_at")),
    }


def _interrupted_already(session: Document, rows: Sequence[Document]) -> bool:
    """Whether an interruption of the session is one already made: it is interrupted, or it was and
    has been rescheduled since and the call gives attendance (that interruption's)."""
    if session["status"] == d.INTERRUPTED:
        return True
    return bool(rows) and session["status"] == d.RESCHEDULED and session.get("interrupted_at") is not None


def _carried_from(session: Document) -> datetime:
    """Where slots for a session marked by a report on another session start (`privacy_carried_clients`):
    a day before its own time (never before now: Scheduler.proposal), so that a session weeks ahead
    is offered times near its own, not the next days. The report looks from there, and so does
    RescheduleSession without a new start when the report looked for none (CARRIED_SEARCHES)."""
    return _utc(session["starts_at"]) - CARRIED_PROPOSALS_BEFORE


def _profiles_due(client_ids: Sequence[str], reason: str) -> dict[str, str]:
    """The profile writes a failure of the session makes due ($set fields, one per client and
    reason, so that concurrent flags of other clients keep theirs): a tech check after a
    disconnection, alone-only after compromised privacy (Scheduler._write_profiles_due)."""
    if reason not in ("DISCONNECTED", "PRIVACY_COMPROMISED"):
        return {}
    return {f"profiles_due.{reason}.{d.proposal_key(c)}": c for c in client_ids}


def _same_attendance(rows: Sequence[Document], recorded: Sequence[Document]) -> bool:
    """Whether two attendances are the same rows, in any order."""

    def by_client(r: Sequence[Document]) -> list[tuple[str, int, int]]:
        return sorted((x["client_id"], x["minutes_attended"], x["modality"]) for x in r)

    return by_client(rows) == by_client(recorded)


def fhir_event(resource: dict[str, Any]) -> OutgoingEvent:
    """A FHIR resource on the scheduler's FHIR topic, keyed by the resource's own id."""
    return OutgoingEvent(
        FHIR.name,
        resource["id"],
        scheduling_pb2.FhirResourcePublished(
            resource_type=resource["resourceType"],
            resource_id=resource["id"],
            fhir_version=fhir.FHIR_VERSION,
            json=fhir.to_json(resource),
        ),
    )


def session_events(session: Document, *messages: Message) -> list[OutgoingEvent]:
    """Lifecycle events on the sessions topic plus the FHIR projection of the new state."""
    events = [OutgoingEvent(SESSIONS.name, session["_id"], m) for m in messages]
    events.append(fhir_event(fhir.appointment(session)))
    encounter = fhir.encounter(session)
    if encounter is not None:
        events.append(fhir_event(encounter))
    return events


class Scheduler:
    def __init__(
        self,
        store: SchedulerStore,
        reference: d.ReferenceData,
        evaluate: Evaluate,
        check_licensure: CheckLicensure,
        attendance_grace_min: int = d.DEFAULT_ATTENDANCE_GRACE_MIN,
    ) -> None:
        self.store = store
        self.ref = reference
        self._evaluate = evaluate
        self._check_licensure = check_licensure
        self._attendance_grace_min = attendance_grace_min
        self._programs: dict[str, Document] = {}

    # ---------- reads ----------

    async def session(self, session_id: str) -> Document:
        doc = await self.store.get(SESSIONS_COLLECTION, session_id) if session_id else None
        if doc is None:
            raise NotFound("session", session_id)
        return (await self.with_facts([doc]))[0]

    async def with_facts(self, docs: list[Document]) -> list[Document]:
        """Sessions with their roster (booked seats) and check-ins, which live in their own documents."""
        if not docs:
            return docs
        await asyncio.gather(*(self._facts(doc) for doc in docs))
        return docs

    async def _facts(self, doc: Document) -> None:
        # lookups by _id only: seat n < capacity, check-in per rostered client
        seats: list[Document] = []
        if doc["kind"] == d.GROUP:
            keys = [seat_key(doc["_id"], i) for i in range(int(doc.get("capacity", 0)))]
            found = await self.store.get_many(SEATS, keys)
            seats = [found[k] for k in keys if k in found]
        seated = [x for x in seats if x.get("client_id")]
        doc["client_ids"] = list(dict.fromkeys([*doc["client_ids"], *(x["client_id"] for x in seated)]))
        doc["seats"] = seated
        check_ins = await self.store.get_many(CHECK_INS, [f"{doc['_id']}:{c}" for c in doc["client_ids"]])
        doc["check_ins"] = sorted(check_ins.values(), key=lambda c: c["checked_in_at"])

    async def participants(self, program_id: str, clinician_id: str, client_ids: Sequence[str]) -> Participants:
        program, clinician, clients = await asyncio.gather(
            self._program(program_id),
            self.store.get(CLINICIANS, clinician_id),
            self.store.get_many(CLIENTS, client_ids),
        )
        if program is None:
            raise NotFound("program", program_id)
        if clinician is None:
            raise NotFound("clinician", clinician_id)
        for client_id in client_ids:
            if client_id not in clients:
                raise NotFound("client", client_id)
        return Participants(program, clinician, [clients[c] for c in client_ids])

    async def _program(self, program_id: str) -> Document | None:
        """Programs never change once created: cached per process."""
        program = self._programs.get(program_id)
        if program is None:
            program = await self.store.get(PROGRAMS, program_id)
            if program is not None:
                self._programs[program_id] = program
        return program

    async def check_cohort(self, cohort_id: str, program_id: str, client_ids: Sequence[str]) -> None:
        """A session names a cohort of its own program, and its clients are the cohort's."""
        cohort = await self.store.cohort(cohort_id)
        if cohort is None:
            raise NotFound("cohort", cohort_id)
        if cohort["program_id"] != program_id:
            raise FailedPrecondition("COHORT_NOT_IN_PROGRAM", "the cohort belongs to another program")
        for client_id in client_ids:
            if client_id not in cohort["client_ids"]:
                raise FailedPrecondition(
                    "CLIENT_NOT_IN_COHORT", "a client is not a member of the cohort", {"client_id": client_id}
                )

    async def book_in_cohort(
        self, req: d.SessionRequest, cohort_id: str, principal: Principal, require_alone: bool
    ) -> Document:
        """A booking that names a cohort: its clients must be the cohort's members, unless the
        request booked its session before. A retry then returns that booking (book() compares the
        request with it) although a client may have left the cohort since: sessions booked stay
        when a client leaves (change_cohort). Until 2026-12-07 such a retry was refused
        CLIENT_NOT_IN_COHORT, as if the booking had not been made. The earlier booking is looked
        for only when the cohort refuses the request: a new booking reads no more than the cohort."""
        d.validate_session_request(req, datetime.now(UTC))  # bad input first, as book() answers it
        try:
            await self.check_cohort(cohort_id, req.program_id, req.client_ids)
        except (NotFound, FailedPrecondition):
            if await self.store.get(SESSIONS_COLLECTION, derived_id("session", req.request_id)) is None:
                raise
        return await self.book(req, principal, require_alone)

    def rules_for(self, program: Document, clinician: Document | None) -> d.Rules:
        rules = self.ref.default_rules.layered(program.get("fatigue_rules"))
        return rules.layered(clinician.get("fatigue_rules")) if clinician else rules

    # ---------- booking ----------

    async def book(self, req: d.SessionRequest, principal: Principal, require_alone: bool) -> Document:
        now = datetime.now(UTC)
        d.validate_session_request(req, now)
        assert req.starts_at is not None and req.ends_at is not None
        session_id = derived_id("session", req.request_id)
        override = self._override(req.override_reason, principal)
        people = await self.participants(req.program_id, req.clinician_id, req.client_ids)
        extra = list(dict.fromkeys(f for f, _ in req.facilitators if f != req.clinician_id))
        known = await self.store.get_many(CLINICIANS, extra) if extra else {}
        for f in extra:
            if f not in known:
                raise NotFound("clinician", f)
        facilitators = [known[f] for f in extra]
        owners = [d.clinician_owner(req.clinician_id), *(d.clinician_owner(f) for f in extra)]
        owners += [d.client_owner(c) for c in req.client_ids]
        keys = [d.slot_key(o, at) for o in owners for at in d.slot_starts(req.starts_at, req.ends_at)]
        try:
            self._check_availability(people, req.starts_at, req.ends_at, require_alone)
            for facilitator in facilitators:
                self._check_clinician_window(facilitator, req.starts_at, req.ends_at)
        except FailedPrecondition:
            # a retry of a request that was booked before the availability changed: that booking;
            # one whose first attempt (passed before the change) holds the slots: in progress
            existing = await self.store.get(SESSIONS_COLLECTION, session_id)
            if existing is not None:
                return await self._retried(existing, req, people.clients)
            await self._raise_if_in_progress(session_id, keys)
            raise
        treating = {f for f, role in req.facilitators if role in TREATING_ROLES}
        # Compliance is asked while the slots are reserved (its answer decides before anything is
        # stored): a refusal gives the reservation back, as any other refusal does.
        compliance = _background(
            asyncio.gather(
                self._check_compliance(
                    people.program,
                    people.clinician,
                    people.clients,
                    req.kind,
                    req.starts_at,
                    req.ends_at,
                    req.planned_modality,
                ),
                self._check_facilitators_licensed(
                    [f for f in facilitators if f["_id"] in treating],
                    home_states(people.clients),
                    req.starts_at,
                    req.ends_at,
                ),
            )
        )
        rules = self.rules_for(people.program, people.clinician)
        breaks = d.break_plan(req.starts_at, req.ends_at, rules)
        booked = d.Booked(
            session_id,
            req.starts_at,
            req.ends_at,
            tuple(d.screen_segments(req.starts_at, req.ends_at, breaks, req.planned_modality == d.VIDEO)),
        )
        # every clinician on screen, facilitators too, under their own rules; clients under the session's
        ledger_owners = [LedgerOwner(d.clinician_owner(req.clinician_id), people.clinician_tz, True, rules)]
        ledger_owners += [
            LedgerOwner(d.clinician_owner(f["_id"]), _tz(f), True, self.rules_for(people.program, f))
            for f in facilitators
        ]
        ledger_owners += [LedgerOwner(d.client_owner(c["_id"]), _tz(c), False, rules) for c in people.clients]
        replaces = str(req.extra.get("rescheduled_from", ""))  # the session being moved does not count
        days = [day for _, day in self._ledger_days(ledger_owners, req.starts_at, req.ends_at)]
        try:
            violations = await self._reserve(
                session_id, keys, ledger_owners, booked, override is not None, exclude=replaces
            )
        except FailedPrecondition as refused:
            # a retry of a request that was booked: its own reservations are in the way
            existing = await self.store.get(SESSIONS_COLLECTION, session_id)
            if existing is not None:
                compliance.cancel()
                return await self._retried(existing, req, people.clients)
            await compliance  # compliance's refusal, or its silence, is the answer when there is one
            if refused.reason.endswith("_DOUBLE_BOOKED"):
                await self._raise_if_in_progress(session_id, keys)
            raise refused from None
        except BaseException:
            compliance.cancel()
            raise
        try:
            await compliance
        except BaseException:
            await self._give_back(session_id, keys, days, booked)
            raise
        tech_tasks = self._tech_check_tasks(session_id, people.clients, req.starts_at)
        doc: Document = {
            "_id": session_id,
            "request_id": req.request_id,
            "program_id": req.program_id,
            "cohort_id": "",
            "clinician_id": req.clinician_id,
            "client_ids": list(req.client_ids),
            "starts_at": req.starts_at,
            "ends_at": req.ends_at,
            "kind": req.kind,
            "status": d.BOOKED,
            "capacity": req.capacity if req.kind == d.GROUP else 1,
            "facilitators": [{"clinician_id": c, "role": r} for c, r in req.facilitators],
            "turn_taking": {
                "mode": req.turn_taking_mode,
                "speaking_time_limit_s": req.speaking_time_limit_s,
                "mute_on_entry": req.mute_on_entry,
            },
            "modality": req.planned_modality,
            "backup_line": people.program["backup_line"],
            "breaks": d.segment_docs(breaks),
            "segments": d.segment_docs(booked.segments),
            "slot_keys": keys,
            "ledger_days": days,
            "seat_keys": [],
            "tech_check_task_ids": [t["_id"] for t in tech_tasks],
            "privacy_flagged": False,
            "privacy_flagged_clients": [],
            "proposed_slots": [],
            "overridden_rules": violations if override else [],
            "override": override,
            "rules_version": self.ref.rules_version,
            "payer_plan_id": self._payer(people.program, people.clients),
            "level_of_care": people.program["level_of_care"],
            "created_at": now,
        }
        if req.kind == d.GROUP:
            doc["seat_keys"] = [seat_key(session_id, i) for i in range(len(req.client_ids))]
        seat_docs = [  # starts_at: the session's, by which a client's seats are read (seats_of_client)
            {
                "_id": key,
                "session_id": session_id,
                "client_id": c,
                "starts_at": req.starts_at,
                "slot_keys": [],
                "ledger_days": [],
                "at": now,
            }
            for key, c in zip(doc["seat_keys"], req.client_ids, strict=False)
        ]
        doc.update(req.extra)
        messages: list[Message] = [self._scheduled_event(doc)]
        if override and violations:
            messages.append(
                scheduling_pb2.FatigueOverrideApplied(
                    session_id=session_id,
                    clinician_id=req.clinician_id,
                    rules=violations,
                    supervisor_id=principal.subject,
                )
            )
        seats_taken: list[str] = []  # by this attempt: a retry of the request finds the first one's
        try:
            for seat in seat_docs:
                if await self.store.insert_fact(SEATS, seat, []):
                    seats_taken.append(seat["_id"])
            # The session and its tech-check tasks are written at once; the tasks of a session that
            # was not stored are taken back (their ids are the session's: nobody else's).
            session_write, tasks_write = await asyncio.gather(
                self.store.insert_once(SESSIONS_COLLECTION, doc, session_events(doc, *messages)),
                self.store.add_tech_checks(tech_tasks),
                return_exceptions=True,
            )
            if isinstance(session_write, BaseException):
                raise session_write
        except BaseException:
            await self._undo_unless_stored(doc, booked, seats_taken, [t["_id"] for t in tech_tasks])
            raise
        stored, created = session_write
        if not created:  # the same request_id was booked meanwhile: give back what this attempt took
            await self._undo(doc, booked, seats_taken)
            return await self._retried(stored, req, people.clients)
        if isinstance(tasks_write, BaseException):  # booked: a retry of the request writes the tasks
            raise tasks_write
        if override and violations:
            await self.store.audit_override(
                {
                    "_id": session_id,
                    "at": now,
                    "session_id": session_id,
                    "clinician_id": req.clinician_id,
                    "supervisor": principal.subject,
                    "roles": sorted(principal.roles),
                    "rules": violations,
                    "reason": override["reason"],
                    "rules_version": self.ref.rules_version,
                }
            )
        return stored

    async def _raise_if_in_progress(self, session_id: str, keys: Sequence[str]) -> None:
        """Aborted REQUEST_IN_PROGRESS when another attempt of this request (of a group seat: for the
        same client) holds some of its slots: it may still store the booking (or it stopped: its slots
        are released within minutes)."""
        if session_id in (await self.store.holders(keys)).values():
            raise Aborted(
                "REQUEST_IN_PROGRESS",
                "another attempt of this request holds its slots: in progress, or stopped (its slots are"
                " released within minutes); retry",
            ) from None

    def _override(self, reason: str, principal: Principal) -> Document | None:
        if not reason.strip():
            return None
        if "supervisor" not in principal.roles:
            raise PermissionDenied("OVERRIDE_REQUIRES_SUPERVISOR", "only a supervisor may override fatigue rules")
        return {"reason": reason.strip(), "supervisor": principal.subject, "at": datetime.now(UTC)}

    def _check_availability(self, people: Participants, start: datetime, end: datetime, require_alone: bool) -> None:
        self._check_clinician_window(people.clinician, start, end)
        for client in people.clients:
            self._check_client_window(client, start, end, require_alone)

    @staticmethod
    def _check_clinician_window(clinician: Document, start: datetime, end: datetime) -> None:
        if not d.within_windows(start, end, _tz(clinician), d.windows_from_docs(clinician["windows"])):
            raise FailedPrecondition(
                "CLINICIAN_UNAVAILABLE", "outside the clinician's availability", {"clinician_id": clinician["_id"]}
            )

    def _check_client_window(self, client: Document, start: datetime, end: datetime, require_alone: bool) -> None:
        tz = _tz(client)
        if not d.within_windows(start, end, tz, d.windows_from_docs(client["windows"])):
            raise FailedPrecondition(
                "CLIENT_UNAVAILABLE", "outside a client's availability", {"client_id": client["_id"]}
            )
        if (require_alone or client.get("privacy_sensitive")) and not d.within_windows(
            start, end, tz, d.windows_from_docs(client["alone_windows"])
        ):
            raise FailedPrecondition(
                "CLIENT_NOT_ALONE", "outside the windows when the client is alone", {"client_id": client["_id"]}
            )

    def _payer(self, program: Document, clients: Sequence[Document]) -> str:
        if len(clients) == 1 and clients[0].get("payer_plan_id"):
            return str(clients[0]["payer_plan_id"])
        return str(program.get("payer_plan_id", ""))

    async def _check_compliance(
        self,
        program: Document,
        clinician: Document,
        clients: Sequence[Document],
        kind: int,
        start: datetime,
        end: datetime,
        modality: int,
    ) -> None:
        """EvaluateSession (BOOKING) for every client, concurrently; raises on deny or no answer."""
        code = self.ref.service_code(program["level_of_care"], kind)
        requests = [
            compliance_pb2.EvaluateSessionRequest(
                clinician_id=clinician["_id"],
                client_id=c["_id"],
                client_location=common_pb2.ClientLocation(state=c.get("home_state", "")),
                clinician_state=clinician.get("state", ""),
                starts_at=to_timestamp(start),
                ends_at=to_timestamp(end),
                payer_plan_id=c.get("payer_plan_id") or program.get("payer_plan_id", ""),
                service_code=code,
                modality=modality,  # type: ignore[arg-type]
                stage=compliance_pb2.EVALUATION_STAGE_BOOKING,
                level_of_care=program["level_of_care"],
                kind=kind,  # type: ignore[arg-type]
            )
            for c in clients
        ]
        await asyncio.gather(*(self._evaluate(r) for r in requests))

    async def _check_facilitators_licensed(
        self,
        facilitators: Sequence[Document],
        states: Iterable[str],
        start: datetime,
        end: datetime,
        location_verified: bool = False,
    ) -> None:
        """CheckLicensure for every treating facilitator (besides the session's clinician, whom
        EvaluateSession covers) in each of the clients' `states` over the whole session,
        concurrently; raises unless all allowed (the refusal names the facilitator). At booking the
        states are the clients' home states; at start, their verified check-in locations."""
        requests = [
            compliance_pb2.CheckLicensureRequest(
                clinician_id=f["_id"],
                client_state=state,
                clinician_state=f.get("state", ""),
                at=to_timestamp(start),
                ends_at=to_timestamp(end),
                client_location_verified=location_verified,
            )
            for f in facilitators
            for state in sorted(set(states))
        ]
        await asyncio.gather(*(self._check_licensure(r) for r in requests))

    @staticmethod
    def _owner_days(owner: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[str]:
        """The day ledgers of `owner` that a session [start, end) goes into: every local day it
        touches, so a session across midnight counts toward the rules of both days."""
        return [f"{owner}|{day.isoformat()}" for day in d.local_days(start, end, tz)]

    @classmethod
    def _ledger_days(
        cls, owners: Iterable[LedgerOwner], start: datetime, end: datetime
    ) -> list[tuple[LedgerOwner, str]]:
        """(owner, day ledger) for every owner and local day of [start, end)."""
        return [(o, day) for o in owners for day in cls._owner_days(o.owner, o.tz, start, end)]

    async def _reserve(
        self,
        session_id: str,
        keys: list[str],
        ledger_owners: Sequence[LedgerOwner],
        booked: d.Booked,
        overridden: bool,
        exclude: str = "",
        seat_client: str = "",
    ) -> list[str]:
        """Claim the slots, then add the booking to every day ledger under the rules.

        `seat_client` names the client when the booking is a seat in a group session.
        Returns the rules the booking breaks (non-empty only with an override).
        """
        owner_days = self._ledger_days(ledger_owners, booked.start, booked.end)
        days = [day for _, day in owner_days]
        kind = SEAT_CLAIM if seat_client else "slot"
        # First the revisions this process knows, unread: a write on an outdated one fails and
        # the loop reads on from there. A refusal is only ever made on revisions read as the latest.
        # The first read goes with the claim (it does not depend on it; the write does).
        latest = False
        first_read = _background(self.store.ledgers_for(days, latest))
        try:
            await self.store.claim(
                keys, session_id, kind, ledger_days=days, client_id=seat_client, times=(booked.start, booked.end)
            )
        except Conflict as conflict:
            first_read.cancel()
            who = "CLINICIAN" if conflict.key.startswith("clinician:") else "CLIENT"
            raise FailedPrecondition(
                f"{who}_DOUBLE_BOOKED", f"the {who.lower()} already has a session in that slot"
            ) from None
        except BaseException:
            first_read.cancel()
            raise
        written: list[str] = []
        try:
            for attempt in range(LEDGER_ATTEMPTS):
                ledgers = await first_read if attempt == 0 else await self.store.ledgers_for(days, latest)
                violations: list[str] = []
                for owner, day in owner_days:
                    _, bookings = ledgers[day]
                    others = [b for b in bookings if b.session_id not in (session_id, exclude)]
                    violations += [v for v in owner.violations(others, booked) if v not in violations]
                if violations and not overridden:
                    if not latest:
                        latest = True
                        continue
                    raise FailedPrecondition(
                        violations[0],
                        f"booking breaks the fatigue rule {violations[0]}",
                        {"rules": ",".join(violations), "rules_version": self.ref.rules_version},
                    )
                pending = [day for day in days if day not in written]
                results = await asyncio.gather(
                    *(self.store.write_ledger(day, ledgers[day][0], [*ledgers[day][1], booked]) for day in pending)
                )
                written += [day for day, ok in zip(pending, results, strict=True) if ok]
                if all(results):
                    return violations
                # another booking changed a ledger meanwhile: take ours out and evaluate again
                latest = True
                await asyncio.gather(*(self.store.remove_from_ledger(day, session_id, booked) for day in written))
                written.clear()
            raise FailedPrecondition("SCHEDULE_CONTENTION", "too many concurrent bookings for this day; retry")
        except BaseException:
            await self._give_back(session_id, keys, written, booked)
            raise

    async def _give_back(self, session_id: str, keys: Sequence[str], days: Sequence[str], booked: d.Booked) -> None:
        """Undo this attempt's reservation: its entry in these day ledgers (not an earlier booking's
        of the same request, at other times), then its slot claims (all of them its own: a claim
        that failed took nothing)."""
        for day in days:
            await self.store.remove_from_ledger(day, session_id, booked)
        await self.store.release(keys, session_id)

    async def _undo(self, doc: Document, booked: d.Booked, seats_taken: Sequence[str]) -> None:
        await self._give_back(doc["_id"], doc["slot_keys"], doc["ledger_days"], booked)
        await self.store.delete_seats(seats_taken, doc["_id"])

    async def _undo_unless_stored(
        self, doc: Document, booked: d.Booked, seats_taken: Sequence[str], task_ids: Sequence[str]
    ) -> None:
        """After a failed session write: undo this attempt, unless the write went through although
        it reported an error (a connection lost after the store applied it); then the booking is
        made, and a retry of the request returns it. When the store cannot say, everything stays:
        the orphan sweep undoes it if the session was not stored."""
        try:
            stored = await self.store.get(SESSIONS_COLLECTION, doc["_id"])
        except Exception:
            log.warning("booking: a session write failed and its outcome is unknown; the orphan sweep decides")
            return
        if stored is None:
            await self.store.delete_tech_checks(task_ids)  # their ids are the session's: nobody else's
        elif (_utc(stored["starts_at"]), _utc(stored["ends_at"])) == (booked.start, booked.end):
            return  # ours (an attempt at the same times would have found our claims taken)
        await self._undo(doc, booked, seats_taken)

    async def _retried(self, existing: Document, req: d.SessionRequest, clients: Sequence[Document]) -> Document:
        """The answer to a request whose id booked `existing` before: that booking, when the request
        asks for the same one; ALREADY_EXISTS when the id is reused for another."""
        same = (
            existing["program_id"] == req.program_id
            and existing["clinician_id"] == req.clinician_id
            and list(existing["client_ids"]) == list(req.client_ids)
            and existing["kind"] == req.kind
            # (the care team too: a clinician not on the session must not get it by adding themselves)
            and [(f["clinician_id"], f["role"]) for f in existing.get("facilitators", [])] == list(req.facilitators)
            and (_utc(existing["starts_at"]), _utc(existing["ends_at"])) == (req.starts_at, req.ends_at)
            and existing.get("rescheduled_from", "") == req.extra.get("rescheduled_from", "")
            and existing.get("cohort_id", "") == req.extra.get("cohort_id", "")
        )
        if not same:
            raise AlreadyExists(
                "REQUEST_ID_REUSED",
                "this request_id booked another session; use a new request_id for a new booking",
                {"session_id": existing["_id"]},
            )
        return await self._complete_retried(existing, clients)

    def _tech_check_tasks(self, session_id: str, clients: Sequence[Document], start: datetime) -> list[Document]:
        """A task for each client who needs a tech check before this session."""
        return [
            _tech_check_task(session_id, c["_id"], _trigger(c), start)
            for c in clients
            if c.get("tech_check_required", True)
        ]

    async def _complete_retried(self, session: Document, clients: Sequence[Document]) -> Document:
        """A retry of a booking that was stored: the tech-check tasks its first attempt may not
        have written (they are written beside the session) are written now, as they were."""
        wanted = set(session.get("tech_check_task_ids", []))
        start = _utc(session["starts_at"])
        tasks = [
            t
            for t in (_tech_check_task(session["_id"], c["_id"], _trigger(c), start) for c in clients)
            if t["_id"] in wanted
        ]
        await self.store.add_tech_checks(tasks)
        return (await self.with_facts([session]))[0]

    def _scheduled_event(self, doc: Document) -> scheduling_pb2.SessionScheduled:
        return scheduling_pb2.SessionScheduled(
            session_id=doc["_id"],
            program_id=doc["program_id"],
            clinician_id=doc["clinician_id"],
            client_ids=doc["client_ids"],
            starts_at=to_timestamp(doc["starts_at"]),
            ends_at=to_timestamp(doc["ends_at"]),
            kind=doc["kind"],
            backup_line=doc["backup_line"],
            payer_plan_id=doc["payer_plan_id"],
            level_of_care=doc["level_of_care"],
            treating_facilitators=[
                scheduling_pb2.SessionFacilitator(clinician_id=clinician_id, role=role)
                for clinician_id, role in treating_facilitators(doc)
            ],
        )

    # ---------- group seats ----------

    async def book_seat(
        self, request_id: str, session_id: str, client_id: str, require_alone: bool, principal: Principal, reason: str
    ) -> Document:
        v = FieldViolations()
        v.require(bool(request_id.strip()), "request_id", "required (idempotency key)")
        v.require(bool(session_id.strip()), "session_id", "required")
        v.require(bool(client_id.strip()), "client_id", "required")
        v.raise_if_any()
        override = self._override(reason, principal)
        session = await self.session(session_id)
        if client_id in session["client_ids"]:
            return session
        if session["kind"] != d.GROUP:
            raise FailedPrecondition("NOT_A_GROUP_SESSION", "seats are booked on group sessions only")
        if session["status"] not in (d.BOOKED, d.CHECKED_IN):
            raise FailedPrecondition("SESSION_NOT_BOOKABLE", f"the session is {session['status']}")
        start, end = _utc(session["starts_at"]), _utc(session["ends_at"])
        if start <= datetime.now(UTC):
            raise FailedPrecondition("SESSION_ALREADY_STARTED", "the session has already begun")
        if session.get("cohort_id"):
            await self.check_cohort(session["cohort_id"], session["program_id"], [client_id])
        people = await self.participants(session["program_id"], session["clinician_id"], [client_id])
        client = people.clients[0]
        owner = d.client_owner(client_id)
        keys = [d.slot_key(owner, at) for at in d.slot_starts(start, end)]
        try:
            self._check_client_window(client, start, end, require_alone)
        except FailedPrecondition:  # an attempt that passed before the availability changed may seat them
            await self._raise_if_in_progress(session_id, keys)
            raise
        treating = [clinician_id for clinician_id, _ in treating_facilitators(session)]
        facilitators = list((await self.store.get_many(CLINICIANS, treating)).values()) if treating else []
        await asyncio.gather(
            self._check_compliance(
                people.program, people.clinician, [client], d.GROUP, start, end, session.get("modality", d.VIDEO)
            ),
            self._check_facilitators_licensed(facilitators, home_states([client]), start, end),
        )
        rules = self.rules_for(people.program, people.clinician)
        booked = d.Booked(session_id, start, end, tuple(d.segments_from_docs(session.get("segments", []))))
        seated = LedgerOwner(owner, _tz(client), False, rules)
        try:
            violations = await self._reserve(session_id, keys, [seated], booked, bool(override), seat_client=client_id)
        except FailedPrecondition as refused:
            if refused.reason == "CLIENT_DOUBLE_BOOKED":
                # this session's claims of the client's slots: another attempt seated them meanwhile,
                # or is seating them (in flight, or stopped: the sweep releases its claims)
                now_seated = await self.session(session_id)
                if client_id in now_seated["client_ids"]:
                    return now_seated
                await self._raise_if_in_progress(session_id, keys)
            raise
        days = self._owner_days(owner, _tz(client), start, end)
        tasks = self._tech_check_tasks(session_id, [client], start)
        after = {**session, "client_ids": [*session["client_ids"], client_id]}
        roster = scheduling_pb2.SessionRosterChanged(
            session_id=session_id, client_ids=after["client_ids"], added=[client_id], capacity=session["capacity"]
        )
        events = session_events(after, roster)
        seat = ""
        try:
            for i in range(int(session["capacity"])):
                key = seat_key(session_id, i)
                fact = {
                    "_id": key,
                    "session_id": session_id,
                    "client_id": client_id,
                    "starts_at": session["starts_at"],
                    "slot_keys": keys,
                    "ledger_days": days,
                    "tech_check_task_ids": [t["_id"] for t in tasks],
                    "at": datetime.now(UTC),
                }
                if await self.store.insert_fact(SEATS, fact, events):
                    seat = key
                    break
            if not seat:
                raise FailedPrecondition("GROUP_FULL", "every seat of this group is taken")
        except BaseException:
            await self._give_back(session_id, keys, days, booked)
            raise
        if tasks:
            await self.store.add_tech_checks(tasks)
        if override and violations:
            await self.store.audit_override(
                {
                    "_id": f"{session_id}:{client_id}",
                    "at": datetime.now(UTC),
                    "session_id": session_id,
                    "clinician_id": session["clinician_id"],
                    "supervisor": principal.subject,
                    "roles": sorted(principal.roles),
                    "rules": violations,
                    "reason": override["reason"],
                    "rules_version": self.ref.rules_version,
                }
            )
        return await self.session(session_id)

    async def update_capacity(self, session_id: str, capacity: int) -> Document:
        v = FieldViolations()
        v.require(bool(session_id.strip()), "session_id", "required")
        v.require(1 <= capacity <= d.MAX_GROUP_SIZE, "capacity", f"1 to {d.MAX_GROUP_SIZE}")
        v.raise_if_any()
        session = await self.session(session_id)
        if session["kind"] != d.GROUP:
            raise FailedPrecondition("NOT_A_GROUP_SESSION", "only group sessions have a capacity")
        if session["status"] not in (d.BOOKED, d.CHECKED_IN):
            raise FailedPrecondition("SESSION_NOT_BOOKABLE", f"the session is {session['status']}")
        old = int(session["capacity"])
        if capacity < len(session["client_ids"]):
            raise FailedPrecondition(
                "CAPACITY_BELOW_BOOKINGS", f"{len(session['client_ids'])} seats are booked; capacity {capacity} is less"
            )
        blocked: list[str] = []  # by this call
        if capacity < old:  # block the seats above the new capacity first, so no racer can take them
            for i in range(capacity, old):
                key = seat_key(session_id, i)
                block = {"_id": key, "session_id": session_id, "client_id": "", "kind": "capacity-block"}
                if await self.store.insert_fact(SEATS, block, []):
                    blocked.append(key)
                elif (await self.store.get(SEATS, key) or {}).get("client_id"):
                    await self.store.delete_seats(blocked, session_id)
                    raise FailedPrecondition("CAPACITY_BELOW_BOOKINGS", f"seat {i + 1} is booked")
        updated = await self.store.update_session(
            session_id,
            {"capacity": old},
            {"$set": {"capacity": capacity}},
            session_events({**session, "capacity": capacity}),
        )
        if updated is None:  # another change won: unblock what this call blocked below the capacity now
            now_capacity = int((await self.store.get(SESSIONS_COLLECTION, session_id) or {}).get("capacity", old))
            await self.store.delete_seats([k for k in blocked if seat_number(k) < now_capacity], session_id)
            raise FailedPrecondition("SESSION_CHANGED", "the session changed meanwhile; retry")
        if capacity > old:  # lift the blocks a former decrease left
            blocks = [seat_key(session_id, i) for i in range(old, capacity)]
            await self.store.seats.delete_many({"_id": {"$in": blocks}, "client_id": ""})
        return await self.session(session_id)

    # ---------- lifecycle ----------

    async def cancel(self, session_id: str, reason: str) -> Document:
        session = await self.session(session_id)
        if session["status"] == d.CANCELLED:
            return session
        if session["status"] not in (d.BOOKED, d.CHECKED_IN):
            raise FailedPrecondition("SESSION_NOT_CANCELLABLE", f"the session is {session['status']}")
        now = datetime.now(UTC)
        after = {**session, "status": d.CANCELLED, "cancel_reason": reason or "cancelled"}
        event = scheduling_pb2.SessionCancelled(
            session_id=session_id, reason=reason or "cancelled", cancelled_at=to_timestamp(now)
        )
        updated = await self.store.update_session(
            session_id,
            {"status": {"$in": [d.BOOKED, d.CHECKED_IN]}},
            {"$set": {"status": d.CANCELLED, "cancel_reason": after["cancel_reason"], "cancelled_at": now}},
            session_events(after, event),
        )
        if updated is None:
            raise FailedPrecondition("SESSION_CHANGED", "the session changed meanwhile; retry")
        await self._release_session(session)
        return (await self.with_facts([updated]))[0]

    async def _release_session(self, session: Document) -> None:
        seats = session.get("seats", [])
        # seats stored before 2026-12-02 name one `ledger_day`
        seat_days = [day for x in seats for day in x.get("ledger_days") or [x.get("ledger_day") or ""] if day]
        for day in [*session.get("ledger_days", []), *seat_days]:
            await self.store.remove_from_ledger(day, session["_id"])
        keys = [*session.get("slot_keys", []), *(k for x in seats for k in x.get("slot_keys", []))]
        await self.store.release(keys, session["_id"])

    async def check_in(
        self, session_id: str, client_id: str, location: common_pb2.ClientLocation, attestation: str, backup_phone: str
    ) -> Document:
        v = FieldViolations()
        v.require(bool(session_id), "session_id", "required")
        v.require(bool(client_id), "client_id", "required")
        v.require(location.state in d.US_STATES, "location.state", "must be a USPS state or territory code")
        v.require(location.verified, "location.verified", "the client must confirm the location")
        v.require(
            attestation in d.ATTESTATIONS,
            "privacy_attestation",
            "alone | headphones | alternate_location | compromised",
        )
        phone = ""  # none: the crisis service calls the number in the client's safety plan
        if backup_phone.strip():
            try:
                phone = normalize_phone(backup_phone)
            except PhoneError as exc:
                v.add("backup_phone", f"the client's callback number: {exc}")
        v.raise_if_any()
        session = await self.session(session_id)
        if client_id not in session["client_ids"]:
            raise FailedPrecondition("CLIENT_NOT_IN_SESSION", "the client is not booked on this session")
        if any(c["client_id"] == client_id for c in session["check_ins"]):
            return session
        if session["status"] not in d.ACTIVE_STATUSES:
            raise FailedPrecondition("SESSION_NOT_ACTIVE", f"the session is {session['status']}")
        now = datetime.now(UTC)
        if now < _utc(session["starts_at"]) - CHECK_IN_OPENS or now >= _utc(session["ends_at"]):
            raise FailedPrecondition("CHECK_IN_NOT_OPEN", "check-in opens 60 minutes before the start")
        record = {
            "_id": f"{session_id}:{client_id}",
            "session_id": session_id,
            "client_id": client_id,
            "location": {
                "state": location.state,
                "county_fips": location.county_fips,
                "postal_code": location.postal_code,
                "address_line": location.address_line,
                "city": location.city,
                "verified": location.verified,
            },
            "privacy_attestation": attestation,
            "backup_phone": phone,
            "checked_in_at": now,
        }
        status = d.CHECKED_IN if session["status"] == d.BOOKED else session["status"]
        after = {**session, "status": status, "check_ins": [*session["check_ins"], record]}
        checked_in = scheduling_pb2.SessionCheckedIn(
            session_id=session_id,
            client_id=client_id,
            location=location,
            privacy_attestation=attestation,
            checked_in_at=to_timestamp(now),
            backup_phone=phone,
        )
        # the check-in is its own document: many clients of a group check in at once
        if not await self.store.insert_fact(CHECK_INS, record, session_events(after, checked_in)):
            return await self.session(session_id)
        if session["status"] == d.BOOKED:
            await self.store.update_session(session_id, {"status": d.BOOKED}, {"$set": {"status": d.CHECKED_IN}}, [])
        if attestation == "compromised":
            await self.flag_client(session_id, client_id, "PRIVACY_COMPROMISED")
        return await self.session(session_id)

    async def start(self, session_id: str, clinician_state: str) -> Document:
        v = FieldViolations()
        v.require(bool(session_id), "session_id", "required")
        v.require(clinician_state in d.US_STATES, "clinician_state", "must be a USPS state or territory code")
        v.raise_if_any()
        session = await self.session(session_id)
        if session["status"] == d.IN_PROGRESS:
            return session
        if session["status"] not in (d.BOOKED, d.CHECKED_IN):
            raise FailedPrecondition("SESSION_NOT_STARTABLE", f"the session is {session['status']}")
        confirmed = [c for c in session["check_ins"] if c["location"].get("verified") and c["location"].get("state")]
        if not confirmed:
            raise FailedPrecondition("LOCATION_NOT_CONFIRMED", "no client has checked in with a confirmed location")
        now = datetime.now(UTC)
        if now < _utc(session["starts_at"]) - CHECK_IN_OPENS:
            raise FailedPrecondition("TOO_EARLY_TO_START", "a session starts at most 60 minutes early")
        treating = [clinician_id for clinician_id, _ in treating_facilitators(session)]
        program, clinician, facilitators = await asyncio.gather(
            self.store.get(PROGRAMS, session["program_id"]),
            self.store.get(CLINICIANS, session["clinician_id"]),
            self.store.get_many(CLINICIANS, treating),
        )
        assert program is not None and clinician is not None
        code = self.ref.service_code(program["level_of_care"], session["kind"])
        # the service runs from now when the session starts early (up to CHECK_IN_OPENS before
        # its booked start): the credentials must hold from then to the booked end
        start, end = min(now, _utc(session["starts_at"])), _utc(session["ends_at"])
        # the session's clinician by EvaluateSession, each lead and co-facilitator by CheckLicensure,
        # in every confirmed client's verified state: any refusal refuses the start
        await asyncio.gather(
            self._check_facilitators_licensed(
                [facilitators.get(f, {"_id": f}) for f in treating],  # no profile: checked all the same
                [c["location"]["state"] for c in confirmed],
                start,
                end,
                location_verified=True,
            ),
            *(
                self._evaluate(
                    compliance_pb2.EvaluateSessionRequest(
                        session_id=session_id,
                        clinician_id=session["clinician_id"],
                        client_id=c["client_id"],
                        client_location=common_pb2.ClientLocation(**c["location"]),
                        clinician_state=clinician_state,
                        starts_at=to_timestamp(start),
                        ends_at=to_timestamp(end),
                        payer_plan_id=session["payer_plan_id"],
                        service_code=code,
                        modality=session.get("modality", d.VIDEO),
                        stage=compliance_pb2.EVALUATION_STAGE_START,
                        privacy_attestation=c["privacy_attestation"],
                        level_of_care=session["level_of_care"],
                        kind=session["kind"],
                    )
                )
                for c in confirmed
            ),
        )
        after = {**session, "status": d.IN_PROGRESS, "started_at": now}
        event = scheduling_pb2.SessionStarted(
            session_id=session_id,
            clinician_id=session["clinician_id"],
            client_ids=[c["client_id"] for c in confirmed],
            started_at=to_timestamp(now),
            clinician_state=clinician_state,
            backup_line=session["backup_line"],
            program_id=session["program_id"],
        )
        updated = await self.store.update_session(
            session_id,
            {"status": {"$in": [d.BOOKED, d.CHECKED_IN]}},
            {"$set": {"status": d.IN_PROGRESS, "started_at": now, "clinician_state": clinician_state}},
            session_events(after, event),
        )
        if updated is None:
            raise FailedPrecondition("SESSION_CHANGED", "the session changed meanwhile; retry")
        return (await self.with_facts([updated]))[0]

    async def end(self, session_id: str, modality: int, attendance: Sequence[tuple[str, int, int]]) -> Document:
        v = FieldViolations()
        v.require(bool(session_id), "session_id", "required")
        for name, problem in d.attendance_shape_violations(modality, attendance, ending=True):
            v.add(name, problem)
        v.raise_if_any()
        session = await self.session(session_id)
        if session["status"] == d.ENDED:
            return session
        if session["status"] != d.IN_PROGRESS:
            raise FailedPrecondition("SESSION_NOT_IN_PROGRESS", f"the session is {session['status']}")
        now = datetime.now(UTC)
        limit = d.attendance_limit(_started_at(session), now, self._attendance_grace_min)
        _check_attendance(session, attendance, limit, d.ending_bound(self._attendance_grace_min))
        minutes = max((m for _, m, _ in attendance), default=0)
        rows = d.attendance_rows(modality, attendance)
        after = {**session, "status": d.ENDED, "ended_at": now, "minutes": minutes}
        event = scheduling_pb2.SessionEnded(ended_at=to_timestamp(now), **_attended(session, modality, rows))
        updated = await self.store.update_session(
            session_id,
            {"status": d.IN_PROGRESS},
            {
                "$set": {
                    "status": d.ENDED,
                    "ended_at": now,
                    "modality": modality,
                    "minutes": minutes,
                    "attendance": rows,
                }
            },
            session_events(after, event),
        )
        if updated is None:
            raise FailedPrecondition("SESSION_CHANGED", "the session changed meanwhile; retry")
        return (await self.with_facts([updated]))[0]

    async def interrupt(
        self,
        session_id: str,
        reason: str,
        client_id: str = "",
        modality: int = 0,
        attendance: Sequence[tuple[str, int, int]] = (),
    ) -> Document:
        """The session could not go on: flag it, require a tech check (disconnection), propose new slots.

        `attendance` (client, minutes, modality), what each client attended before the interruption,
        is validated as an ending's and published on SessionInterrupted (compliance bills it as an
        ended session's); none given, nothing of the session is billed. Interrupting again returns
        the session; attendance given then, also after a reschedule, is the interruption's when it
        had none (_attendance_after)."""
        v = FieldViolations()
        v.require(bool(session_id), "session_id", "required")
        v.require(reason in d.INTERRUPTION_REASONS, "reason", "DISCONNECTED | PRIVACY_COMPROMISED | OTHER")
        for name, problem in d.attendance_shape_violations(modality, attendance, ending=False):
            v.add(name, problem)
        v.raise_if_any()
        rows = d.attendance_rows(modality, attendance)
        session = await self.session(session_id)
        if _interrupted_already(session, rows):
            await self._write_profiles_due(session)  # a retry after a stop finishes them
            return await self._attendance_after(session, modality, attendance, rows)
        running: tuple[str, ...] = (d.CHECKED_IN, d.IN_PROGRESS)
        if reason == "PRIVACY_COMPROMISED":  # a client checked in unsafe: the session must not go ahead
            running = (d.BOOKED, d.CHECKED_IN, d.IN_PROGRESS)
        if session["status"] not in running:
            raise FailedPrecondition("SESSION_NOT_RUNNING", f"the session is {session['status']}")
        now = to_millis(datetime.now(UTC))  # as stored: attendance given later is published with it
        _check_attendance(session, attendance, d.minutes_run(_started_at(session), now), d.INTERRUPTION_BOUND)
        clients = [client_id] if client_id else list(session["client_ids"])
        # the clients it failed: every one interrupted, but for compromised privacy only those whose it was
        compromised = self._compromised(session, client_id) if reason == "PRIVACY_COMPROMISED" else []
        failed = compromised if reason == "PRIVACY_COMPROMISED" else clients
        proposal = await self.proposal(session, clients, compromised)
        slots = proposal.slots
        # A group's slots lie in the alone-windows of the clients who must be alone (after one
        # client's report, that client's): a client is shown them (reply and RescheduleProposed)
        # only when no other client's alone-windows bound them; the care team sees them all.
        bound = proposal.alone_for if session["kind"] == d.GROUP else []
        shown_to = [c for c in clients if set(bound) <= {c}]
        proposed = {"proposed_slots": slots, "proposed_for": clients, "proposed_alone_for": bound}
        after = {**session, "status": d.INTERRUPTED, "interrupted_at": now, "attendance": rows, **proposed}
        interrupted = scheduling_pb2.SessionInterrupted(
            reason=reason, interrupted_at=to_timestamp(now), **_attended(session, modality, rows)
        )
        messages: list[Message] = [interrupted]
        messages += [self._proposed_event(session_id, c, reason, slots) for c in shown_to]
        update: dict[str, Any] = {
            "$set": {
                "status": d.INTERRUPTED,
                "interrupted_at": now,
                "interruption_reason": reason,
                "attendance": rows,
                **proposed,
            }
        }
        if reason == "PRIVACY_COMPROMISED":
            update["$set"]["privacy_flagged"] = True
            if failed:
                update["$addToSet"] = {"privacy_flagged_clients": {"$each": failed}}
        elif reason == "DISCONNECTED":
            update["$set"]["dropped_clients"] = clients
        update["$set"].update(_profiles_due(failed, reason))
        updated = await self.store.update_session(
            session_id, {"status": {"$in": list(running)}}, update, session_events(after, *messages)
        )
        if updated is None:  # changed meanwhile: interrupted by another call or process, or ended
            session = await self.session(session_id)
            if _interrupted_already(session, rows):  # its attendance is still to be recorded
                await self._write_profiles_due(session)
                return await self._attendance_after(session, modality, attendance, rows)
            return session  # this interruption did not happen: no profile changes
        await self._write_profiles_due(updated)
        return (await self.with_facts([updated]))[0]

    async def _attendance_after(
        self, session: Document, modality: int, attendance: Sequence[tuple[str, int, int]], rows: list[Document]
    ) -> Document:
        """Attendance given for a session interrupted already (`rows`, none: a retry). An
        interruption without attendance (the scheduler's own on ConnectionDropped, InterruptSession
        without it) takes it once, also once the session was rescheduled: checked against the
        minutes it ran until the interruption, stored and published as SessionAttendanceRecorded
        (not a second SessionInterrupted: the interruption is the one published before, and the
        session keeps its status; compliance bills the minutes). The same attendance
        again returns the session; other attendance is refused (ATTENDANCE_ALREADY_RECORDED). Until
        2026-12-07 attendance given after the interruption was refused and never billed."""
        recorded = session.get("attendance") or []
        if not rows or _same_attendance(rows, recorded):
            return session
        if recorded:
            raise FailedPrecondition(
                "ATTENDANCE_ALREADY_RECORDED",
                "the attendance of this interruption was recorded already, with other minutes or modality",
            )
        interrupted_at = _utc(session["interrupted_at"])
        ran = d.minutes_run(_started_at(session), interrupted_at)
        _check_attendance(session, attendance, ran, d.INTERRUPTION_BOUND)
        now = datetime.now(UTC)
        event = scheduling_pb2.SessionAttendanceRecorded(
            interruption_reason=session.get("interruption_reason", ""),
            interrupted_at=to_timestamp(interrupted_at),
            recorded_at=to_timestamp(now),
            **_attended(session, modality, rows),
        )
        updated = await self.store.update_session(
            session["_id"],
            {"status": {"$in": [d.INTERRUPTED, d.RESCHEDULED]}, "attendance_recorded_at": {"$exists": False}},
            {"$set": {"attendance": rows, "attendance_recorded_at": now}},
            [OutgoingEvent(SESSIONS.name, session["_id"], event)],
        )
        if updated is None:  # another call recorded attendance first: the same, or refused
            return await self._attendance_after(await self.session(session["_id"]), modality, attendance, rows)
        return (await self.with_facts([updated]))[0]

    @staticmethod
    def _compromised(session: Document, client_id: str) -> list[str]:
        """Whose privacy an interruption for compromised privacy is for: the client named (their
        report), an individual session's client, or, for a group stopped as a whole (InterruptSession
        names no client), the clients who reported it for this session: a compromised check-in, or
        compliance's PrivacyCompromised (RecordPrivacyAttestation), including one that comes after.
        Their profiles become privacy-sensitive (alone-only); the group's other clients' do not. Until
        2026-12-07 every client of the group was marked, and could be booked only when alone from then on."""
        if client_id:
            return [client_id]
        if session["kind"] != d.GROUP:
            return list(session["client_ids"])
        checked_in = [c["client_id"] for c in session["check_ins"] if c["privacy_attestation"] == "compromised"]
        return list(dict.fromkeys([*session.get("privacy_flagged_clients", []), *checked_in]))

    async def _write_profiles_due(self, session: Document) -> None:
        """The clients' profiles after a session failed them (_profiles_due): a tech check due after
        a disconnection, alone-only after compromised privacy. The session records the failure (the
        interruption, the client's flag) and the profile writes it makes due in one write; they are
        made after it, and each is taken off the session once made. So a retry or a redelivered
        signal after a stop between the two finishes them, one that finds none due (a tech check
        completed since, say) writes nothing, and a failure whose record lost a race (to EndSession,
        to another interruption) changes no profile. The tech check is made due once per failed
        session (the profile records it: SchedulerStore.require_tech_check), so a retry after a stop
        between the two, the client having passed the check meanwhile, leaves it passed (until
        2026-12-07 it was due again, and the next booking made a task). Until 2026-12-07 the session went first with
        nothing due, and a retry, finding the failure recorded, left the profiles as they were (the
        client bookable where they are not alone, or without the tech check); in the eleventh
        session the profiles went first, and an interruption or a signal that lost its race to the
        end of the session still made a tech check due, or a client privacy-sensitive with no
        report on the session."""
        due: dict[str, dict[str, str]] = session.get("profiles_due") or {}
        for reason, clients in due.items():
            for key, client_id in clients.items():
                if reason == "DISCONNECTED":
                    await self.store.require_tech_check(client_id, session["_id"], AFTER_FAILED_SESSION)
                    await self._tech_check_before_next_session(client_id, session["_id"])
                elif reason == "PRIVACY_COMPROMISED":
                    await self.store.set_client_flags(client_id, {"privacy_sensitive": True})
                    await self._carry_privacy_report(client_id, session["_id"])
                await self.store.update_session(
                    session["_id"], {}, {"$unset": {f"profiles_due.{reason}.{key}": ""}}, []
                )
                if reason == "DISCONNECTED":
                    await self._forget_written_failures(client_id)

    async def _forget_written_failures(self, client_id: str) -> None:
        """The profile's `tech_check_failed_sessions` keeps a failed session while its profile writes
        are due (its `profiles_due` names the client): a retry or redelivery after a stop, the check
        passed meanwhile, then finds it there and leaves the check passed. Once they are done no
        retry writes the profile (nothing is due), so the failures whose writes are done are taken
        off, those of profiles stored before included, after each failure's writes. Until 2026-12-08
        every failed session stayed, one more on the profile at each disconnection, forever."""
        profile = await self.store.get(CLIENTS, client_id)
        failed = list((profile or {}).get("tech_check_failed_sessions", []))
        sessions = await self.store.get_many(SESSIONS_COLLECTION, failed)
        key = d.proposal_key(client_id)

        def still_due(session_id: str) -> bool:
            due = (sessions.get(session_id) or {}).get("profiles_due") or {}
            return key in (due.get("DISCONNECTED") or {})

        await self.store.forget_tech_check_failures(client_id, [s for s in failed if not still_due(s)])

    async def _tech_check_before_next_session(self, client_id: str, failed_session_id: str) -> None:
        """The tech check a failed session made due, before the client's next session that is
        booked already (the earliest booked or checked-in one not started yet, theirs or a seat in
        a group): its task is opened (created, or reopened when it was done before this failure;
        an open one stays as it is) and listed on the session, or on the client's seat. Once per
        failed session: a retry or a redelivery leaves a task done since as it is. With no session
        booked, the profile's flag makes the next booking's task. Until 2026-12-07 only bookings
        made after the failure got a task: the session booked weeks ahead, as an IOP's are, had
        none, and nobody was prompted to check the client's connection before it."""
        found = await self.store.next_session_of_client(client_id, datetime.now(UTC), failed_session_id)
        if found is None:
            return
        session, seat = found
        task = _tech_check_task(session["_id"], client_id, AFTER_FAILED_SESSION, _utc(session["starts_at"]))
        await self.store.open_tech_check(task, failed_session_id)
        await self.store.list_tech_check(session["_id"], seat, task["_id"])

    async def complete_tech_check(self, task: Document, passed: bool) -> Document:
        """The client's tech check done (CompleteTechCheck on `task`, open): passed, it is no longer
        due (the profile's flag is cleared) and the client's other open tasks before sessions not
        started yet are passed with it (`satisfied_by`): one check satisfies the requirement, as no
        booking after it makes a task. A task opened after this check (a failure since) stays open.
        Until 2026-12-07 those tasks stayed open, due before sessions the check had covered."""
        at = datetime.now(UTC)
        done = await self.store.complete_tech_check(task["_id"], "passed" if passed else "failed", at) or task
        if passed:
            await self.store.set_client_flags(task["client_id"], {"tech_check_required": False})
            await self.store.satisfy_tech_checks(task["client_id"], task["_id"], at, at - TECH_CHECK_LEAD)
        return done

    async def flag_client(self, session_id: str, client_id: str, reason: str) -> Document | None:
        """An event says a client's session went wrong (privacy or connection). Idempotent per
        session, client and reason: a client flagged for one reason (a whole group dropped, say) is
        still flagged for the other, also once the session is interrupted. Until 2026-12-07 a flag
        of either kind answered both, and an interrupted individual session ignored a later one: a
        client's compromised privacy reported after a disconnection was never flagged.

        A flag that proposes slots (a group's client, a session not running) is written only while
        the session's status is the one read before the slot search: a session ended, cancelled,
        moved, started or interrupted meanwhile is flagged again as it is then (recorded after the
        end, interrupted, or proposed for again). Until 2026-12-08 (twelfth session) it got the slots
        and a RescheduleProposed all the same, and a session started meanwhile went on."""
        try:
            session = await self.session(session_id)
        except NotFound:
            return None
        field = "privacy_flagged_clients" if reason == "PRIVACY_COMPROMISED" else "dropped_clients"
        if client_id in session.get(field, []):
            await self._write_profiles_due(session)  # a redelivery after a stop finishes them
            return session
        if client_id not in session["client_ids"]:
            return session
        if session["status"] in d.OVER_STATUSES:
            return await self._flag_after_the_end(session, client_id, reason)
        checked_in = any(c["client_id"] == client_id for c in session["check_ins"])
        running = session["status"] in (d.CHECKED_IN, d.IN_PROGRESS) or checked_in
        if session["kind"] != d.GROUP and running and session["status"] != d.INTERRUPTED:
            interrupted = await self.interrupt(session_id, reason, client_id)
            if client_id in interrupted.get(field, []):
                return interrupted
            # the interruption lost a race: to the end of the session, say (a late signal), or to
            # another interruption (the session is flagged for the client as once interrupted)
            return await self.flag_client(session_id, client_id, reason)
        due = _profiles_due([client_id], reason)
        as_read = {"status": session["status"]}  # what the path above was chosen on
        updated = await self._propose_to_client(session, client_id, reason, field, due, guard=as_read)
        if updated is None:
            now = await self.session(session_id)
            if client_id in now.get(field, []):  # flagged meanwhile (the same event, delivered twice)
                return now  # that delivery writes the profile
            # changed while its slots were looked for (ended, cancelled, moved, started,
            # interrupted): flagged as it is now
            return await self.flag_client(session_id, client_id, reason)
        await self._write_profiles_due(updated)
        return updated

    async def _propose_to_client(
        self,
        session: Document,
        client_id: str,
        reason: str,
        field: str,
        due: Document,
        frm: datetime | None = None,
        guard: Document | None = None,
        search: bool = True,
    ) -> Document | None:
        """Slots for one client of a session that goes on (not interrupted), in their alone-windows
        after compromised privacy: an individual session's own proposals, or the client's own in a
        group. Stored with the client added to `field` (what makes it once per client: None when
        `field` has them already, or the session no longer matches `guard`) and the profile writes
        `due`, and published as RescheduleProposed. Slots from `frm` on (default: now); none
        without `search`."""
        session_id = session["_id"]
        must_be_alone = [client_id] if reason == "PRIVACY_COMPROMISED" else []
        slots = await self.propose(session, [client_id], must_be_alone, frm) if search else []
        proposed: Document
        if session["kind"] == d.GROUP:
            # The slots are this client's (their alone-windows), not the group's: in a field of their
            # own, so that another client's flag (even at the same moment: FerretDB applies an update
            # as read-modify-write) keeps them, and this client's next flag replaces only theirs.
            key = d.proposal_key(client_id)
            own = {"client_id": client_id, "slots": slots, "reason": reason, "proposed_at": datetime.now(UTC)}
            proposed = {f"client_proposals.{key}": own}
        else:  # the session's one client: the session's proposals
            proposed = {"proposed_slots": slots, "proposed_for": [client_id]}
        update: dict[str, Any] = {"$push": {field: client_id}, "$set": {**proposed, **due}}
        if reason == "PRIVACY_COMPROMISED":
            update["$set"]["privacy_flagged"] = True
        return await self.store.update_session(
            session_id,
            {**(guard or {}), field: {"$ne": client_id}},
            update,
            [OutgoingEvent(SESSIONS.name, session_id, self._proposed_event(session_id, client_id, reason, slots))],
        )

    async def _carry_privacy_report(self, client_id: str, reported_session_id: str) -> None:
        """A client's compromised privacy, reported on one session, reaches their other sessions
        booked already: from the report on the client is privacy-sensitive (booked only in their
        alone-windows), so each session of theirs not started yet (booked or checked in; theirs, or
        a seat in a group) that lies outside their alone-windows gets slots in them, proposed as the
        report's own session's are (_propose_to_client: the proposals, `privacy_flagged`, one
        RescheduleProposed PRIVACY_COMPROMISED), from a day before its time on (never before now),
        and records the client in `privacy_carried_clients` (once per session and client). Nothing
        is moved or cancelled: the care team reschedules. A report that arrives after its session
        was moved (a disconnection, then RescheduleSession, then the late PrivacyCompromised) so
        reaches the new session. Until 2026-12-08 it reached none: the new session kept its time
        outside the client's alone-windows, and nothing told anyone.

        Slots are looked for the first CARRIED_SEARCHES of those sessions only (a search is ~33 ms
        of CPU, inside the CheckIn or InterruptSession that made the report); the later ones are
        marked and told with no slots, and RescheduleSession looks for theirs (_carried_from). A
        session that is no longer booked or checked in (cancelled, moved, started, interrupted), or
        for which the client reported compromised privacy, by the time the mark is written is not
        marked (it was, with slots and a RescheduleProposed, until 2026-12-08, twelfth session)."""
        client = await self.store.get(CLIENTS, client_id)
        if client is None:
            return
        tz, alone = _tz(client), d.windows_from_docs(client.get("alone_windows", []))
        now = datetime.now(UTC)
        upcoming = await self.store.upcoming_sessions_of_client(client_id, now, reported_session_id)
        outside = [
            s
            for s, _ in upcoming
            if not d.within_windows(_utc(s["starts_at"]), _utc(s["ends_at"]), tz, alone)
            and client_id not in [*s.get("privacy_flagged_clients", []), *s.get(PRIVACY_CARRIED, [])]
        ]
        # still booked (or checked in), and not reported for itself meanwhile
        guard = {"status": {"$in": [d.BOOKED, d.CHECKED_IN]}, "privacy_flagged_clients": {"$ne": client_id}}
        proposals = []
        for n, s in enumerate(outside):
            log.info("compromised privacy reported on another session: session %s marked", s["_id"])
            frm, search = _carried_from(s), n < CARRIED_SEARCHES
            proposals.append(
                self._propose_to_client(s, client_id, "PRIVACY_COMPROMISED", PRIVACY_CARRIED, {}, frm, guard, search)
            )
        await asyncio.gather(*proposals)

    async def _flag_after_the_end(self, session: Document, client_id: str, reason: str) -> Document:
        """A signal for a session that is over (ended, cancelled, or moved), delivered late: nothing
        to interrupt, and no slots to propose for it. A dropped connection is history. Compromised
        privacy still matters for the client's future bookings: their profile becomes privacy-sensitive
        and the session records the report. Until 2026-12-07 an individual session the client had
        checked in to was interrupted (refused SESSION_NOT_RUNNING: the event was retried and
        dead-lettered), and otherwise slots were proposed for the session that was over."""
        if reason != "PRIVACY_COMPROMISED":
            log.info("a dropped connection reported after the session was %s: nothing to interrupt", session["status"])
            return session
        updated = await self.store.update_session(
            session["_id"],
            {"privacy_flagged_clients": {"$ne": client_id}},
            {
                "$push": {"privacy_flagged_clients": client_id},
                "$set": {"privacy_flagged": True, **_profiles_due([client_id], reason)},
            },
            [],
        )
        if updated is None:
            return await self.session(session["_id"])
        await self._write_profiles_due(updated)
        return updated

    def _proposed_event(
        self, session_id: str, client_id: str, reason: str, slots: Sequence[Document]
    ) -> scheduling_pb2.RescheduleProposed:
        return scheduling_pb2.RescheduleProposed(
            session_id=session_id,
            client_id=client_id,
            reason=reason,
            slots=[
                scheduling_pb2.ProposedSlot(
                    starts_at=to_timestamp(s["starts_at"]),
                    ends_at=to_timestamp(s["ends_at"]),
                    in_alone_window=s["in_alone_window"],
                )
                for s in slots
            ],
        )

    async def reschedule(
        self,
        request_id: str,
        session_id: str,
        new_start: datetime | None,
        reason: str,
        principal: Principal,
        override: str,
    ) -> Document:
        v = FieldViolations()
        v.require(bool(request_id.strip()), "request_id", "required (idempotency key)")
        v.require(bool(session_id.strip()), "session_id", "required")
        v.raise_if_any()
        old = await self.session(session_id)
        if old["status"] == d.RESCHEDULED and old.get("rescheduled_to"):
            return await self.session(old["rescheduled_to"])
        if old["status"] not in (d.BOOKED, d.CHECKED_IN, d.INTERRUPTED):
            raise FailedPrecondition("SESSION_NOT_RESCHEDULABLE", f"the session is {old['status']}")
        duration = _utc(old["ends_at"]) - _utc(old["starts_at"])
        earlier = await self.store.get(SESSIONS_COLLECTION, derived_id("session", request_id))
        if new_start is None and earlier is not None and earlier.get("rescheduled_from") == session_id:
            # a retry of a reschedule whose booking was made: the slots proposed now may differ
            new_start = _utc(earlier["starts_at"])
        if new_start is None:
            if old["kind"] == d.GROUP and d.client_proposals(old) and not d.group_proposals(old):
                # one client's slots (their alone-windows) are not the group's time: the care team chooses
                raise FailedPrecondition(
                    "NEW_START_REQUIRED",
                    "the slots proposed for this group are single clients' (client_proposals), not the"
                    " group's: give new_starts_at",
                )
            alone = old["client_ids"] if self._moved_alone(old) else []  # as the booking below requires
            frm = _carried_from(old) if old.get(PRIVACY_CARRIED) else None  # else from now
            slots = d.group_proposals(old) or await self.propose(old, old["client_ids"], alone, frm)
            if not slots:
                raise FailedPrecondition("NO_SLOT_AVAILABLE", "no slot satisfies every rule in the next 14 days")
            new_start = _utc(slots[0]["starts_at"])
        req = d.SessionRequest(
            request_id=request_id,
            program_id=old["program_id"],
            clinician_id=old["clinician_id"],
            client_ids=tuple(old["client_ids"]),
            starts_at=new_start,
            ends_at=new_start + duration,
            kind=old["kind"],
            capacity=old["capacity"] if old["kind"] == d.GROUP else 0,
            facilitators=tuple((f["clinician_id"], f["role"]) for f in old.get("facilitators", [])),
            turn_taking_mode=old.get("turn_taking", {}).get("mode", ""),
            speaking_time_limit_s=old.get("turn_taking", {}).get("speaking_time_limit_s", 0),
            mute_on_entry=old.get("turn_taking", {}).get("mute_on_entry", False),
            planned_modality=d.VIDEO if old.get("modality", d.VIDEO) != d.AUDIO_ONLY else d.AUDIO_ONLY,
            override_reason=override,
            extra={"rescheduled_from": session_id, "cohort_id": old.get("cohort_id", "")},
        )
        try:
            new = await self.book(req, principal, require_alone=self._moved_alone(old))
        except InvalidArgument as refused:  # the new session's times are this request's new_starts_at
            raise InvalidArgument([(RESCHEDULED_TIME_FIELDS.get(f, f), why) for f, why in refused.violations]) from None
        after = {**old, "status": d.RESCHEDULED, "cancel_reason": reason or "rescheduled"}
        event = scheduling_pb2.SessionRescheduled(
            session_id=session_id,
            new_session_id=new["_id"],
            reason=reason or "rescheduled",
            new_starts_at=to_timestamp(new["starts_at"]),
        )
        updated = await self.store.update_session(
            session_id,
            {"status": {"$in": [d.BOOKED, d.CHECKED_IN, d.INTERRUPTED]}},
            {"$set": {"status": d.RESCHEDULED, "rescheduled_to": new["_id"], "cancel_reason": after["cancel_reason"]}},
            session_events(after, event),
        )
        if updated is not None and old["status"] in (d.BOOKED, d.CHECKED_IN):
            await self._release_session(old)
        if updated is not None:
            # A report written on the old session while the new one was booked (after its profile
            # reads, before it was stored) looked for the client's sessions before the new one
            # existed: it reaches the new one now, as a report that arrives after the move does
            # (_carry_privacy_report: a session in the client's alone-windows, or marked already,
            # is left as it is). Until 2026-12-08 (twelfth session) the new session kept its time
            # outside the client's alone-windows, with no slots proposed and nobody told.
            for client_id in updated.get("privacy_flagged_clients", []):
                await self._carry_privacy_report(client_id, session_id)
        return new

    @staticmethod
    def _moved_alone(old: Document) -> bool:
        """Whether every client of a session being moved must be alone at the new time: after
        compromised privacy, in a group only when all its clients reported it. A group's client who
        did is alone-only anyway (their profile is `privacy_sensitive` from then on); until
        2026-12-07 one client's report required every client of the group to be alone."""
        if not old.get("privacy_flagged"):
            return False
        if old["kind"] != d.GROUP:
            return True
        return set(old["client_ids"]) <= set(old.get("privacy_flagged_clients", []))

    # ---------- slot search and proposals ----------

    async def search_slots(
        self,
        program_id: str,
        clinician_id: str,
        client_ids: Sequence[str],
        frm: datetime,
        to: datetime,
        duration: timedelta,
        kind: int,
        require_alone: bool,
        limit: int,
        exclude_session: str = "",
        facilitator_ids: Sequence[str] = (),
        alone_for: Collection[str] = (),
    ) -> list[Document]:
        """Free slots for the clinician, the clients and (for a session being moved) its other
        facilitators: inside everyone's availability, unreserved, and within everyone's rules; in
        the alone-windows of every client with `require_alone`, else of the clients of `alone_for`
        and the privacy-sensitive."""
        people = await self.participants(program_id, clinician_id, client_ids)
        extra = [f for f in dict.fromkeys(facilitator_ids) if f != clinician_id]
        facilitators = list((await self.store.get_many(CLINICIANS, extra)).values()) if extra else []
        rules = self.rules_for(people.program, people.clinician)
        now = datetime.now(UTC)
        starts = d.candidate_starts(frm, to, duration, now)
        if not starts:
            return []
        # what the slot keys and the day ledgers are named by, and the rules each ledger is read under
        owners = [LedgerOwner(d.clinician_owner(clinician_id), people.clinician_tz, True, rules)]
        owners += [
            LedgerOwner(d.clinician_owner(f["_id"]), _tz(f), True, self.rules_for(people.program, f))
            for f in facilitators
        ]
        owners += [LedgerOwner(d.client_owner(c["_id"]), _tz(c), False, rules) for c in people.clients]
        clinician_windows = [(_tz(c), d.windows_from_docs(c["windows"])) for c in [people.clinician, *facilitators]]
        client_windows = [
            (
                _tz(c),
                d.windows_from_docs(c["windows"]),
                d.windows_from_docs(c["alone_windows"]),
                require_alone or c["_id"] in alone_for or bool(c.get("privacy_sensitive")),
            )
            for c in people.clients
        ]

        def in_windows(start: datetime, end: datetime) -> bool | None:
            """Pure part: availability and alone-windows; None refuses, else whether alone everywhere."""
            if not all(d.within_windows(start, end, tz, windows) for tz, windows in clinician_windows):
                return None
            alone_everywhere = True
            for tz, windows, alone_windows, must_be_alone in client_windows:
                if not d.within_windows(start, end, tz, windows):
                    return None
                alone = d.within_windows(start, end, tz, alone_windows)
                if must_be_alone and not alone:
                    return None
                alone_everywhere = alone_everywhere and alone
            return alone_everywhere and bool(people.clients)

        def slot_keys(candidate: d.Candidate) -> list[str]:
            return [d.slot_key(o.owner, at) for o in owners for at in d.slot_starts(candidate.start, candidate.end)]

        # Then reservations and fatigue rules, lazily (point reads, cached) until `limit` slots are found.
        # Reservations are read for the next few candidates at once, twice as many each time they
        # run out (a free first candidate costs one small read; a full week a few reads, not one each).
        candidates = d.search(starts, duration, in_windows, len(starts))
        taken: dict[str, bool] = {}
        ahead = SEARCH_READ_AHEAD
        ledgers: dict[str, list[d.Booked]] = {}
        out: list[Document] = []
        for i, candidate in enumerate(candidates):
            keys = slot_keys(candidate)
            if any(k not in taken for k in keys):
                following = (k for c in candidates[i + 1 : i + ahead] for k in slot_keys(c))
                unknown = [k for k in (*keys, *following) if k not in taken]
                reserved = await self.store.taken(unknown)
                taken.update({k: k in reserved for k in unknown})
                ahead = min(2 * ahead, SEARCH_READ_AHEAD_MAX)
            if any(taken[k] for k in keys):
                continue
            owner_days = self._ledger_days(owners, candidate.start, candidate.end)
            missing = [day for _, day in owner_days if day not in ledgers]
            for day, (_, bookings) in (await self.store.ledgers_for(missing)).items():
                ledgers[day] = [b for b in bookings if b.session_id != exclude_session]
            breaks = d.break_plan(candidate.start, candidate.end, rules)
            booked = d.Booked(
                "candidate",
                candidate.start,
                candidate.end,
                tuple(d.screen_segments(candidate.start, candidate.end, breaks, True)),
            )
            if any(owner.violations(ledgers[day], booked) for owner, day in owner_days):
                continue
            out.append(
                {"starts_at": candidate.start, "ends_at": candidate.end, "in_alone_window": candidate.in_alone_window}
            )
            if len(out) >= limit:
                break
        return out

    async def propose(
        self, session: Document, client_ids: Sequence[str], must_be_alone: Collection[str], frm: datetime | None = None
    ) -> list[Document]:
        """Next slots for the same clinician, clients and length that satisfy every rule (proposal)."""
        return (await self.proposal(session, client_ids, must_be_alone, frm)).slots

    async def proposal(
        self, session: Document, client_ids: Sequence[str], must_be_alone: Collection[str], frm: datetime | None = None
    ) -> Proposal:
        """Next slots for the same clinician, clients and length that satisfy every rule, and the
        clients whose alone-windows they lie in (alone_bound), from one read of the profiles: in the
        PROPOSAL_HORIZON from `frm` (default: now), never past the booking horizon.

        Only alone-windows qualify for the clients of `must_be_alone` (whose privacy was compromised)
        and the privacy-sensitive; for any other client they are required when the client has any.
        """
        clients = await self.store.get_many(CLIENTS, client_ids)
        alone_for = alone_bound([clients[c] for c in client_ids if c in clients], must_be_alone)
        now = datetime.now(UTC)
        frm = max(now, frm or now)
        duration = _utc(session["ends_at"]) - _utc(session["starts_at"])
        try:
            slots = await self.search_slots(
                session["program_id"],
                session["clinician_id"],
                [c for c in client_ids if c in clients],
                frm,
                min(frm + PROPOSAL_HORIZON, now + d.HORIZON),
                duration,
                session["kind"],
                False,
                PROPOSALS,
                exclude_session=session["_id"],
                facilitator_ids=[f["clinician_id"] for f in session.get("facilitators", [])],
                alone_for=alone_for,
            )
        except NotFound:
            log.warning("no proposals: a participant of the session has no profile")
            return Proposal([], [])
        return Proposal(slots, alone_for if slots else [])
