"""gRPC API of the scheduler (iop.scheduler.v1.SchedulerService): protos in, service layer, protos out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from pymongo.asynchronous.database import AsyncDatabase

from iop.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from services.plumbing import paging
from services.plumbing.audit import record_phi_access
from services.plumbing.auth import Principal, current_principal
from services.plumbing.errors import FieldViolations, NotFound, PermissionDenied
from services.plumbing.protos import request_time, to_timestamp
from services.plumbing.storage import Document
from services.scheduler import domain as d
from services.scheduler.booking import Scheduler
from services.scheduler.programs import Programs, TrackSpec
from services.scheduler.store import CLIENTS, CLINICIANS, tech_check_task_id

SERVICE = "iop.scheduler.v1.SchedulerService"
_BOOKERS = frozenset({"platform", "clinician", "supervisor"})
_ADMINS = frozenset({"platform", "supervisor"})
_STAFF = frozenset({"platform", "clinician", "supervisor"})
_WITH_CLIENT = frozenset({"platform", "clinician", "supervisor", "client"})
ACCESS = {
    f"/{SERVICE}/{name}": roles
    for name, roles in {
        "ScheduleSession": _BOOKERS,
        "BookSession": _BOOKERS,
        "BookGroupSeat": _BOOKERS,
        "GetSession": _WITH_CLIENT,
        "CreateProgram": _ADMINS,
        "GetProgram": _STAFF,
        "CreateCohort": _ADMINS,
        "AddCohortClient": _ADMINS,
        "RemoveCohortClient": _ADMINS,
        "SetClinicianAvailability": _STAFF,
        "SetClientAvailability": _WITH_CLIENT,
        "SearchSlots": _WITH_CLIENT,
        "UpdateGroupCapacity": _ADMINS,
        "CancelSession": _BOOKERS,
        "CheckIn": _WITH_CLIENT,
        "StartSession": _STAFF,
        "EndSession": _STAFF,
        "InterruptSession": _STAFF,
        "RescheduleSession": _BOOKERS,
        "ListTechChecks": _WITH_CLIENT,
        "CompleteTechCheck": _WITH_CLIENT,
        "GetClinicianSchedule": _STAFF,
        "GetClientSchedule": _WITH_CLIENT,
        "CreateCareSeries": _ADMINS,
        "RecordCareAttendance": _STAFF,
        "GetCareSummary": _STAFF,
    }.items()
}
MAX_VIEW = timedelta(days=62)
TECH_CHECK_PAGE, MAX_TECH_CHECK_PAGE = 100, 500  # ListTechChecks' page_size: 0, and the most
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _after_task(key: paging.Key | None, v: FieldViolations) -> tuple[datetime, str] | None:
    """The (due_by, id) of the task a ListTechChecks page token names, the last of the page before
    (None: the first page). A due time no date has is a page_token violation (until 2026-12-08,
    twelfth session, INTERNAL: OverflowError)."""
    if key is None:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=int(key[0])), str(key[1])
    except OverflowError:
        v.add("page_token", paging.NOT_A_TOKEN)
        return None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _ts(value: datetime | None) -> Any:
    return to_timestamp(_utc(value) if value else None)


def _rules(msg: scheduler_pb2.FatigueRules) -> dict[str, int]:
    return {f: int(getattr(msg, f)) for f in d.RULE_FIELDS if msg.HasField(f)}


def _rules_msg(rules: dict[str, int] | None) -> scheduler_pb2.FatigueRules:
    return scheduler_pb2.FatigueRules(**(rules or {}))


def _windows(items: Sequence[scheduler_pb2.WeeklyWindow]) -> list[tuple[int, str, str]]:
    return [(w.weekday, w.start, w.end) for w in items]


def _window_msgs(docs: Sequence[Document]) -> list[scheduler_pb2.WeeklyWindow]:
    return [scheduler_pb2.WeeklyWindow(weekday=w["weekday"], start=w["start"], end=w["end"]) for w in docs]


def _slot(doc: Document) -> scheduler_pb2.Slot:
    return scheduler_pb2.Slot(
        starts_at=_ts(doc["starts_at"]), ends_at=_ts(doc["ends_at"]), in_alone_window=doc["in_alone_window"]
    )


def session_message(doc: Document, only_client: str | None = None) -> scheduler_pb2.Session:
    """The session as a reply; with `only_client`, as someone may see it who may see that one client's
    part of it and no other client's (a client reading their group session: not who else is in it,
    nor where they checked in from, nor the slots proposed to another of them)."""
    turn = doc.get("turn_taking") or {}
    client_ids = list(doc["client_ids"])
    check_ins = list(doc.get("check_ins", []))
    # the tech checks of the clients booked (listed on the session) and seated (on their seats)
    seat_tasks = [t for x in doc.get("seats", []) for t in x.get("tech_check_task_ids", [])]
    task_ids = list(dict.fromkeys([*doc.get("tech_check_task_ids", []), *seat_tasks]))
    privacy_flagged = bool(doc.get("privacy_flagged", False))
    proposed = d.group_proposals(doc)  # the whole session's: what RescheduleSession takes
    per_client = d.client_proposals(doc)  # a group's, each client's own (their alone-windows)
    if only_client is not None:
        client_ids = [c for c in client_ids if c == only_client]
        check_ins = [c for c in check_ins if c["client_id"] == only_client]
        task_ids = [t for t in task_ids if t == tech_check_task_id(doc["_id"], only_client)]
        per_client = [p for p in per_client if p["client_id"] == only_client]
        if doc["kind"] == d.GROUP:  # the group is flagged for whichever client reported it
            privacy_flagged = only_client in doc.get("privacy_flagged_clients", [])
            # the group's proposals to those they were proposed to (a session stored before
            # `proposed_for` shows a group's client none), unless they lie in another client's
            # alone-windows (`proposed_alone_for`); a client's own come first
            bound_by_others = set(doc.get("proposed_alone_for", [])) - {only_client}
            if only_client not in doc.get("proposed_for", []) or bound_by_others:
                proposed = []
            if per_client:
                proposed = list(per_client[0]["slots"])
    return scheduler_pb2.Session(
        session_id=doc["_id"],
        program_id=doc["program_id"],
        clinician_id=doc["clinician_id"],
        client_ids=client_ids,
        starts_at=_ts(doc["starts_at"]),
        ends_at=_ts(doc["ends_at"]),
        kind=doc["kind"],
        status=doc["status"],
        backup_line=doc.get("backup_line", ""),
        capacity=doc.get("capacity", 0),
        facilitators=[
            scheduler_pb2.Facilitator(clinician_id=f["clinician_id"], role=f["role"])
            for f in doc.get("facilitators", [])
        ],
        turn_taking=scheduler_pb2.TurnTaking(
            mode=turn.get("mode", ""),
            speaking_time_limit_s=turn.get("speaking_time_limit_s", 0),
            mute_on_entry=turn.get("mute_on_entry", False),
        ),
        breaks=[
            scheduler_pb2.Break(starts_at=_ts(s), ends_at=_ts(e))
            for s, e in d.segments_from_docs(doc.get("breaks", []))
        ],
        check_ins=[
            scheduler_pb2.CheckInRecord(
                client_id=c["client_id"],
                location=c["location"],
                privacy_attestation=c["privacy_attestation"],
                checked_in_at=_ts(c["checked_in_at"]),
            )
            for c in check_ins
        ],
        tech_check_task_ids=task_ids,
        privacy_flagged=privacy_flagged,
        proposed_slots=[_slot(s) for s in proposed],
        interruption_reason=doc.get("interruption_reason", ""),
        rescheduled_to=doc.get("rescheduled_to", ""),
        rescheduled_from=doc.get("rescheduled_from", ""),
        modality=doc.get("modality", 0),
        overridden=bool(doc.get("override")),
        overridden_rules=doc.get("overridden_rules", []),
        cohort_id=doc.get("cohort_id", ""),
        client_proposals=[
            scheduler_pb2.ClientProposal(
                client_id=p["client_id"], slots=[_slot(s) for s in p["slots"]], reason=p.get("reason", "")
            )
            for p in per_client
        ],
    )


def _attendance(
    request: scheduler_pb2.EndSessionRequest | scheduler_pb2.InterruptSessionRequest,
) -> list[tuple[str, int, int]]:
    """An ending's or interruption's attendance as (client, minutes attended, modality)."""
    return [(a.client_id, a.minutes_attended, a.modality) for a in request.attendance]


def _program_message(doc: Document) -> scheduler_pb2.Program:
    return scheduler_pb2.Program(
        program_id=doc["_id"],
        name=doc["name"],
        time_zone=doc["time_zone"],
        level_of_care=doc["level_of_care"],
        backup_line=doc["backup_line"],
        tracks=[scheduler_pb2.Track(**t) for t in doc["tracks"]],
        fatigue_rules=_rules_msg(doc.get("fatigue_rules")),
        payer_plan_id=doc.get("payer_plan_id", ""),
    )


def _cohort_message(doc: Document) -> scheduler_pb2.Cohort:
    return scheduler_pb2.Cohort(
        cohort_id=doc["_id"],
        program_id=doc["program_id"],
        track_id=doc["track_id"],
        client_ids=doc["client_ids"],
        starts_on=_ts(doc["starts_on"]),
    )


def _client_message(doc: Document) -> scheduler_pb2.ClientProfile:
    return scheduler_pb2.ClientProfile(
        client_id=doc["_id"],
        time_zone=doc["time_zone"],
        windows=_window_msgs(doc["windows"]),
        alone_windows=_window_msgs(doc["alone_windows"]),
        home_state=doc["home_state"],
        payer_plan_id=doc.get("payer_plan_id", ""),
        tech_check_required=doc.get("tech_check_required", False),
        privacy_sensitive=doc.get("privacy_sensitive", False),
    )


def _task_message(doc: Document) -> scheduler_pb2.TechCheckTask:
    return scheduler_pb2.TechCheckTask(
        task_id=doc["_id"],
        client_id=doc["client_id"],
        session_id=doc["session_id"],
        due_by=_ts(doc["due_by"]),
        status=doc["status"],
        trigger=doc["trigger"],
    )


def _care_message(doc: Document) -> scheduler_pb2.CareSession:
    return scheduler_pb2.CareSession(
        care_session_id=doc["_id"],
        series_id=doc["series_id"],
        kind=doc["kind"],
        clinician_ids=doc["clinician_ids"],
        starts_at=_ts(doc["starts_at"]),
        ends_at=_ts(doc["ends_at"]),
        attended=doc["attended"],
        missed=doc["missed"],
    )


def session_request(request: scheduler_pb2.ScheduleSessionRequest) -> d.SessionRequest:
    return d.SessionRequest(
        request_id=request.request_id,
        program_id=request.program_id,
        clinician_id=request.clinician_id,
        client_ids=tuple(request.client_ids),
        starts_at=request_time(request, "starts_at"),
        ends_at=request_time(request, "ends_at"),
        kind=request.kind,
        capacity=request.capacity,
        facilitators=tuple((f.clinician_id, f.role) for f in request.facilitators),
        turn_taking_mode=request.turn_taking.mode,
        speaking_time_limit_s=request.turn_taking.speaking_time_limit_s,
        mute_on_entry=request.turn_taking.mute_on_entry,
        planned_modality=request.planned_modality or d.VIDEO,
        override_reason=request.override.reason,
        extra={"cohort_id": request.cohort_id},
    )


def _own_record_only(owner_id: str) -> None:
    """A client (a caller with no staff role) may touch their own records only."""
    principal = current_principal()
    if not principal.has_any(_STAFF) and principal.subject != owner_id:
        raise PermissionDenied("NOT_OWN_RECORD", "clients may only access their own records")


def _own_clinician_record_only(clinician_id: str) -> None:
    """A clinician (a caller who is neither supervisor nor platform) may touch their own records only:
    supervisors oversee every clinician's."""
    principal = current_principal()
    if not principal.has_any(_ADMINS) and principal.subject != clinician_id:
        raise PermissionDenied("NOT_OWN_RECORD", "clinicians may only access their own records")


# Care teams (docs/scheduler.md, *Who may read and change what*). Supervisors and the platform act on
# any session. A clinician reads a session they lead or facilitate, and acts on it (check-in, start,
# end, interrupt, cancel, reschedule, a group seat) only as its clinician or a treating facilitator
# (lead, co_facilitator): an observer watches. A client reads and checks in to the sessions they are
# booked into, and sees no other client's part of them.
NOT_ON_CARE_TEAM = "NOT_ON_CARE_TEAM"
OBSERVER_CANNOT_ACT = "OBSERVER_CANNOT_ACT"


def _is_clinician(principal: Principal) -> bool:
    return "clinician" in principal.roles


def _only_client(principal: Principal, session: Document, owner: str = "") -> str | None:
    """Whose part of `session` the caller sees: None for all of it (supervisor, platform, a clinician
    on its care team), else one client's: the schedule's `owner`, or the calling client's own."""
    if principal.has_any(_ADMINS) or (_is_clinician(principal) and d.on_care_team(session, principal.subject, False)):
        return None
    return owner or principal.subject


def _not_on_care_team() -> PermissionDenied:
    if _is_clinician(current_principal()):
        return PermissionDenied(
            NOT_ON_CARE_TEAM,
            "a clinician reads and acts on the sessions they lead or facilitate, and the records of clients they treat",
        )
    return PermissionDenied("NOT_OWN_RECORD", "a client reads and checks in to their own sessions only")


def _own_booking_only(request: scheduler_pb2.ScheduleSessionRequest) -> None:
    """A clinician books the sessions they will lead or treat in, not a colleague's."""
    principal = current_principal()
    if principal.has_any(_ADMINS) or not request.clinician_id.strip():
        return
    team = {
        "clinician_id": request.clinician_id,
        "facilitators": [{"clinician_id": f.clinician_id, "role": f.role} for f in request.facilitators],
    }
    if not d.on_care_team(team, principal.subject, acting=True):
        raise PermissionDenied(NOT_ON_CARE_TEAM, "a clinician books sessions they lead or co-facilitate")


def _view_range(request: scheduler_pb2.ScheduleViewRequest) -> tuple[datetime, datetime]:
    frm, to = request_time(request, "from"), request_time(request, "to")
    v = FieldViolations()
    v.require(bool(request.owner_id), "owner_id", "required")
    v.require(frm is not None, "from", "required")
    v.require(to is not None, "to", "required")
    if frm and to:
        v.require(frm < to, "to", "must be after from")
        v.require(to - frm <= MAX_VIEW, "to", "at most 62 days after from")
    v.raise_if_any()
    assert frm is not None and to is not None
    return frm, to


class SchedulerApi(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, scheduler: Scheduler, programs: Programs, db: AsyncDatabase[Document]) -> None:
        self._s = scheduler
        self._p = programs
        self._db = db

    async def _audit(self, action: str, resource_type: str, resource_id: str) -> None:
        await record_phi_access(self._db, current_principal(), action, resource_type, resource_id)

    async def _care_team_session(self, session_id: str, act: bool, clients_may: bool = False) -> Document | None:
        """The care-team check of a call on one session, before it reads or changes anything.
        Returns the session it read (None when it read none: a supervisor or the platform, or a
        blank id, which the service layer answers INVALID_ARGUMENT). A session that does not exist
        and one the caller may not touch get the same PERMISSION_DENIED: a refusal tells nothing of
        whether it exists. With `clients_may` (a read, a check-in) a client passes on a session they
        are booked into."""
        principal = current_principal()
        if principal.has_any(_ADMINS) or not session_id.strip():
            return None
        try:
            session = await self._s.session(session_id)
        except NotFound:
            raise _not_on_care_team() from None
        if _is_clinician(principal) and d.on_care_team(session, principal.subject, act):
            return session
        if clients_may and "client" in principal.roles and principal.subject in session["client_ids"]:
            return session
        if _is_clinician(principal) and d.on_care_team(session, principal.subject, False):
            raise PermissionDenied(OBSERVER_CANNOT_ACT, "an observer reads the session and changes nothing")
        raise _not_on_care_team()

    async def _treats(self, client_id: str) -> None:
        """A clinician reads and changes a client's records (schedule, tech checks) when they treat the
        client: lead or co-facilitate a session of theirs, not cancelled. Clients: their own only."""
        principal = current_principal()
        if principal.has_any(_ADMINS):
            return
        if not principal.has_any(_STAFF):
            _own_record_only(client_id)
            return
        if not client_id.strip() or not await self._s.store.treats(principal.subject, client_id):
            raise _not_on_care_team()

    def _reply(self, doc: Document) -> scheduler_pb2.Session:
        """A session as the caller may see it (a client: their own part of it)."""
        return session_message(doc, _only_client(current_principal(), doc))

    # ---------- programs and availability ----------

    async def CreateProgram(
        self, request: scheduler_pb2.CreateProgramRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Program:
        tracks = [
            TrackSpec(t.track_id, t.name, t.hours_per_day, t.min_days_per_week, t.max_days_per_week)
            for t in request.tracks
        ]
        doc = await self._p.create_program(
            request.request_id,
            request.name,
            request.time_zone,
            request.level_of_care,
            request.backup_line,
            tracks,
            _rules(request.fatigue_rules),
            request.payer_plan_id,
        )
        return _program_message(doc)

    async def GetProgram(
        self, request: scheduler_pb2.GetProgramRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Program:
        return _program_message(await self._p.program(request.program_id))

    async def CreateCohort(
        self, request: scheduler_pb2.CreateCohortRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Cohort:
        doc = await self._p.create_cohort(
            request.request_id,
            request.program_id,
            request.track_id,
            list(request.client_ids),
            request_time(request, "starts_on"),
        )
        return _cohort_message(doc)

    async def AddCohortClient(
        self, request: scheduler_pb2.AddCohortClientRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Cohort:
        return _cohort_message(await self._p.change_cohort(request.cohort_id, request.client_id, add=True))

    async def RemoveCohortClient(
        self, request: scheduler_pb2.RemoveCohortClientRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Cohort:
        return _cohort_message(await self._p.change_cohort(request.cohort_id, request.client_id, add=False))

    async def SetClinicianAvailability(
        self, request: scheduler_pb2.SetClinicianAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ClinicianProfile:
        # A clinician sets their own windows; fatigue rules (caps, gaps) are a supervisor's (or the
        # platform's) to set, and stay as they are when the request carries none.
        _own_clinician_record_only(request.clinician_id)
        rules = _rules(request.fatigue_rules) if request.HasField("fatigue_rules") else None
        if not current_principal().has_any(_ADMINS):
            if rules:
                raise PermissionDenied("RULES_REQUIRE_SUPERVISOR", "fatigue rules are set by a supervisor")
            rules = None
        doc = await self._p.set_clinician(
            request.clinician_id, request.time_zone, request.state, _windows(request.windows), rules
        )
        return scheduler_pb2.ClinicianProfile(
            clinician_id=doc["_id"],
            time_zone=doc["time_zone"],
            state=doc["state"],
            windows=_window_msgs(doc["windows"]),
            fatigue_rules=_rules_msg(doc.get("fatigue_rules")),
        )

    async def SetClientAvailability(
        self, request: scheduler_pb2.SetClientAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ClientProfile:
        await self._treats(request.client_id)  # a clinician: a client they treat (windows, alone-windows: PHI)
        doc = await self._p.set_client(
            request.client_id,
            request.time_zone,
            _windows(request.windows),
            _windows(request.alone_windows),
            request.home_state,
            request.payer_plan_id,
        )
        await self._audit("SetClientAvailability", "client", request.client_id)  # the profile is read back
        return _client_message(doc)

    # ---------- slots and bookings ----------

    async def SearchSlots(
        self, request: scheduler_pb2.SearchSlotsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.SearchSlotsResponse:
        principal = current_principal()
        if not principal.has_any(_STAFF) and list(request.client_ids) != [principal.subject]:
            # free and busy times are the clients' records too
            raise PermissionDenied("NOT_OWN_RECORD", "a client searches slots for themselves only (client_ids)")
        frm, to = request_time(request, "from"), request_time(request, "to")
        v = FieldViolations()
        v.require(bool(request.program_id.strip()), "program_id", "required")
        v.require(bool(request.clinician_id.strip()), "clinician_id", "required")
        d.validate_ids(request.client_ids, "client_ids", v)
        # bounds the care-team checks (a scan each) and the audits, which run at once
        v.require(len(request.client_ids) <= d.MAX_GROUP_SIZE, "client_ids", f"at most {d.MAX_GROUP_SIZE} (a group)")
        v.require(15 <= request.duration_minutes <= 240, "duration_minutes", "15 to 240")
        v.require(request.duration_minutes % 15 == 0, "duration_minutes", "a multiple of 15 (slot grid)")
        v.require(0 <= request.limit <= 100, "limit", "0 (default 10) to 100")
        v.require(frm is not None, "from", "required")
        v.require(to is not None, "to", "required")
        if frm and to:
            v.require(frm < to, "to", "must be after from")
            v.require(to - frm <= d.MAX_SEARCH_WINDOW, "to", "at most 31 days after from")
            v.require(to > datetime.now(UTC), "to", "must be in the future")
            d.validate_horizon(to, datetime.now(UTC), "to", v)
        v.raise_if_any()
        assert frm is not None and to is not None
        clients = list(dict.fromkeys(request.client_ids))
        if principal.has_any(_STAFF):  # a clinician: clients they treat only (a client: checked above)
            await asyncio.gather(*(self._treats(client_id) for client_id in clients))
        slots = await self._s.search_slots(
            request.program_id,
            request.clinician_id,
            list(request.client_ids),
            frm,
            to,
            timedelta(minutes=request.duration_minutes),
            request.kind,
            request.require_alone_window,
            request.limit or 10,
        )
        # their free times and alone-windows
        await asyncio.gather(*(self._audit("SearchSlots", "client", client_id) for client_id in clients))
        return scheduler_pb2.SearchSlotsResponse(slots=[_slot(s) for s in slots])

    async def ScheduleSession(
        self, request: scheduler_pb2.ScheduleSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        return await self.BookSession(request, context)

    async def BookSession(
        self, request: scheduler_pb2.ScheduleSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        _own_booking_only(request)
        req = session_request(request)
        if request.cohort_id:
            doc = await self._s.book_in_cohort(
                req, request.cohort_id, current_principal(), request.require_alone_window
            )
        else:
            doc = await self._s.book(req, current_principal(), request.require_alone_window)
        return session_message(doc)

    async def BookGroupSeat(
        self, request: scheduler_pb2.BookGroupSeatRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        await self._care_team_session(request.session_id, act=True)
        doc = await self._s.book_seat(
            request.request_id,
            request.session_id,
            request.client_id,
            request.require_alone_window,
            current_principal(),
            request.override.reason,
        )
        return session_message(doc)

    async def UpdateGroupCapacity(
        self, request: scheduler_pb2.UpdateGroupCapacityRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        return session_message(await self._s.update_capacity(request.session_id, request.capacity))

    async def GetSession(
        self, request: scheduler_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        doc = await self._care_team_session(request.session_id, act=False, clients_may=True)
        if doc is None:
            doc = await self._s.session(request.session_id)
        await self._audit("GetSession", "session", request.session_id)
        return self._reply(doc)

    async def CancelSession(
        self, request: scheduler_pb2.CancelSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        await self._care_team_session(request.session_id, act=True)
        return self._reply(await self._s.cancel(request.session_id, request.reason))

    async def CheckIn(
        self, request: scheduler_pb2.CheckInRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        _own_record_only(request.client_id)
        await self._care_team_session(request.session_id, act=True, clients_may=True)
        doc = await self._s.check_in(
            request.session_id, request.client_id, request.location, request.privacy_attestation, request.backup_phone
        )
        return self._reply(doc)

    async def StartSession(
        self, request: scheduler_pb2.StartSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        await self._care_team_session(request.session_id, act=True)
        return self._reply(await self._s.start(request.session_id, request.clinician_state))

    async def EndSession(
        self, request: scheduler_pb2.EndSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        await self._care_team_session(request.session_id, act=True)
        return self._reply(await self._s.end(request.session_id, request.modality, _attendance(request)))

    async def InterruptSession(
        self, request: scheduler_pb2.InterruptSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        await self._care_team_session(request.session_id, act=True)
        doc = await self._s.interrupt(
            request.session_id, request.reason, modality=request.modality, attendance=_attendance(request)
        )
        return self._reply(doc)

    async def RescheduleSession(
        self, request: scheduler_pb2.RescheduleSessionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Session:
        new_start = request_time(request, "new_starts_at")
        v = FieldViolations()
        d.validate_horizon(new_start, datetime.now(UTC), "new_starts_at", v)  # before anything is added to it
        v.raise_if_any()
        await self._care_team_session(request.session_id, act=True)
        doc = await self._s.reschedule(
            request.request_id,
            request.session_id,
            new_start,
            request.reason,
            current_principal(),
            request.override.reason,
        )
        return session_message(doc)

    # ---------- readiness ----------

    async def ListTechChecks(
        self, request: scheduler_pb2.ListTechChecksRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ListTechChecksResponse:
        v = FieldViolations()
        size = paging.page_size(request.page_size, TECH_CHECK_PAGE, MAX_TECH_CHECK_PAGE, v)
        listing = ("ListTechChecks", request.client_id)
        after = _after_task(paging.page_key(request.page_token, listing, (int, str), v), v)
        v.raise_if_any()
        await self._treats(request.client_id)
        if await self._s.store.get(CLIENTS, request.client_id) is None:
            raise NotFound("client", request.client_id)
        tasks = await self._s.store.tech_checks_of(request.client_id, after, limit=size + 1)
        await self._audit("ListTechChecks", "client", request.client_id)
        next_token = ""
        if len(tasks) > size:  # one more was read to know whether a page follows
            last = tasks[size - 1]
            due_ms = (_utc(last["due_by"]) - _EPOCH) // timedelta(milliseconds=1)
            next_token = paging.page_token(listing, [due_ms, last["_id"]])
        return scheduler_pb2.ListTechChecksResponse(
            tasks=[_task_message(t) for t in tasks[:size]], next_page_token=next_token
        )

    async def CompleteTechCheck(
        self, request: scheduler_pb2.CompleteTechCheckRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.TechCheckTask:
        task = await self._s.store.tech_checks.find_one({"_id": request.task_id}) if request.task_id else None
        if task is None:
            if not current_principal().has_any(_ADMINS):
                await self._treats("")  # refused as a task of a client not theirs: nothing told of its existence
            raise NotFound("tech_check", request.task_id)
        await self._treats(task["client_id"])
        if task["status"] == "open":
            task = await self._s.complete_tech_check(task, request.passed)
        return _task_message(task)

    # ---------- schedules ----------

    async def GetClinicianSchedule(
        self, request: scheduler_pb2.ScheduleViewRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ClinicianSchedule:
        frm, to = _view_range(request)
        _own_clinician_record_only(request.owner_id)
        clinician = await self._s.store.get(CLINICIANS, request.owner_id)
        if clinician is None:
            raise NotFound("clinician", request.owner_id)
        sessions = await self._s.with_facts(await self._s.store.sessions_of_clinician(request.owner_id, frm, to))
        care = await self._s.store.care_of(request.owner_id, frm, to)
        await self._audit("GetClinicianSchedule", "clinician", request.owner_id)
        rules = self._s.ref.default_rules.layered(clinician.get("fatigue_rules"))
        return scheduler_pb2.ClinicianSchedule(
            clinician_id=request.owner_id,
            time_zone=clinician["time_zone"],
            sessions=[session_message(s) for s in sessions],
            days=_day_loads(sessions, clinician["time_zone"], rules.back_to_back_gap_minutes),
            care_sessions=[_care_message(c) for c in care],
        )

    async def GetClientSchedule(
        self, request: scheduler_pb2.ScheduleViewRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ClientSchedule:
        frm, to = _view_range(request)
        await self._treats(request.owner_id)
        client = await self._s.store.get(CLIENTS, request.owner_id)
        if client is None:
            raise NotFound("client", request.owner_id)
        sessions = await self._s.with_facts(await self._s.store.sessions_of_client(request.owner_id, frm, to))
        # the tech checks of the sessions shown (the range bounds the view, as it does the sessions)
        tasks = await self._s.store.tech_checks_for(request.owner_id, [s["_id"] for s in sessions])
        await self._audit("GetClientSchedule", "client", request.owner_id)
        principal = current_principal()
        return scheduler_pb2.ClientSchedule(
            client_id=request.owner_id,
            time_zone=client["time_zone"],
            sessions=[session_message(s, _only_client(principal, s, request.owner_id)) for s in sessions],
            days=_day_loads(sessions, client["time_zone"], self._s.ref.default_rules.back_to_back_gap_minutes),
            tech_checks=[_task_message(t) for t in tasks],
        )

    # ---------- clinician care ----------

    async def CreateCareSeries(
        self, request: scheduler_pb2.CreateCareSeriesRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.CareSeries:
        series_id, sessions = await self._p.create_care_series(
            request.request_id,
            request.kind,
            list(request.clinician_ids),
            request.facilitator_id,
            request_time(request, "first_starts_at"),
            request.duration_minutes,
            request.interval_days,
            request.occurrences,
            request.time_zone,
        )
        return scheduler_pb2.CareSeries(
            series_id=series_id, kind=request.kind, sessions=[_care_message(s) for s in sessions]
        )

    async def RecordCareAttendance(
        self, request: scheduler_pb2.RecordCareAttendanceRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.CareSession:
        principal = current_principal()
        recorder = None if principal.has_any(_ADMINS) else principal.subject  # None: may record anyone's
        doc = await self._p.record_care_attendance(
            request.care_session_id, request.clinician_id, request.attended, recorder
        )
        return _care_message(doc)

    async def GetCareSummary(
        self, request: scheduler_pb2.GetCareSummaryRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.CareSummary:
        _own_clinician_record_only(request.clinician_id)
        summary = await self._p.care_summary(request.clinician_id)
        return scheduler_pb2.CareSummary(
            clinician_id=summary["clinician_id"],
            attended=summary["attended"],
            missed=summary["missed"],
            last_attended_at=_ts(summary["last_attended_at"]),
            next_at=_ts(summary["next_at"]),
            overdue=summary["overdue"],
        )


def _day_loads(sessions: Sequence[Document], time_zone: str, back_to_back_gap: int) -> list[scheduler_pb2.DayLoad]:
    tz = d.stored_zone(time_zone)
    by_day: dict[str, list[d.Booked]] = {}
    for s in sessions:
        if s["status"] in (d.CANCELLED, d.RESCHEDULED):
            continue
        booked = d.Booked(
            s["_id"],
            _utc(s["starts_at"]),
            _utc(s["ends_at"]),
            tuple(d.segments_from_docs(s.get("segments", []))),
        )
        by_day.setdefault(d.local_day(booked.start, tz), []).append(booked)
    out = []
    for day, bookings in sorted(by_day.items()):
        minutes, count, chain = d.day_load(bookings, back_to_back_gap)
        out.append(scheduler_pb2.DayLoad(date=day, screen_minutes=minutes, sessions=count, longest_back_to_back=chain))
    return out
