"""gRPC API of the crisis service (iop.crisis.v1.CrisisService)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from pymongo.asynchronous.database import AsyncDatabase

from iop.crisis.v1 import crisis_pb2, crisis_pb2_grpc
from iop.events.v1 import crisis_pb2 as crisis_events
from services.crisis import events
from services.crisis.alerts import AlertService, all_records, derived_id, state_of
from services.crisis.domain import (
    CONTACT_OUTCOMES,
    CONTACT_TARGETS,
    RESOLUTIONS,
    Answer,
    CssrsAnswers,
    Recency,
    RequestIdReused,
    Risk,
    Status,
    TransitionError,
    attempt_stopped_ladder,
    cssrs_risk,
    is_signal,
    may_act_on,
    pick_callback_phone,
    validate_cssrs,
    validate_plan,
)
from services.crisis.reference import NoResourcesForLocation
from services.crisis.service import CrisisCore, VersionConflict, enum_value, routing_for
from services.plumbing.audit import record_phi_access
from services.plumbing.auth import Principal, current_principal
from services.plumbing.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.plumbing.protos import request_time, to_timestamp
from services.plumbing.storage import Document

SERVICE = "iop.crisis.v1.CrisisService"
CARE_TEAM = frozenset({"clinician", "supervisor"})
ACCESS = {
    f"/{SERVICE}/SetRiskLevel": CARE_TEAM,
    f"/{SERVICE}/GetRiskState": frozenset({"clinician", "supervisor", "platform"}),
    f"/{SERVICE}/AssessCssrs": CARE_TEAM,
    f"/{SERVICE}/SaveSafetyPlan": CARE_TEAM,
    f"/{SERVICE}/GetSafetyPlan": frozenset({"client", "clinician", "supervisor"}),
    f"/{SERVICE}/ListSafetyPlanVersions": CARE_TEAM,
    f"/{SERVICE}/DeleteSafetyPlan": CARE_TEAM,
    f"/{SERVICE}/GetLocalResources": frozenset({"client", "clinician", "supervisor", "platform"}),
    f"/{SERVICE}/RouteContact": frozenset({"client", "clinician", "supervisor", "platform"}),
    f"/{SERVICE}/RaiseAlert": CARE_TEAM,
    f"/{SERVICE}/GetAlert": frozenset({"clinician", "supervisor", "platform"}),
    f"/{SERVICE}/AcknowledgeAlert": CARE_TEAM,
    f"/{SERVICE}/RecordContactAttempt": CARE_TEAM,
    f"/{SERVICE}/ResolveAlert": CARE_TEAM,
    f"/{SERVICE}/GetCrisisCard": CARE_TEAM,
}
# Who reads where the client is and the number to call them back on, wherever a response carries
# them (an Alert's fired rungs; the crisis card and the safety plan are theirs alone): the people
# who reach the client. Others allowed a method (the platform role, the apps' service account, on
# GetAlert) get its answer with those fields left out.
WHEREABOUTS_READERS = CARE_TEAM
NOT_ON_CARE_TEAM = "NOT_ON_CARE_TEAM"
CLOCK_SKEW = timedelta(minutes=1)  # how far ahead of ours a caller's clock may be (an attempt's time)
STATE = re.compile(r"[A-Za-z]{2}")
FIPS = re.compile(r"[0-9]{5}")
SOURCES = frozenset({"c-ssrs", "phq9-item9", "clinician-flag"})
# Enum fields arrive as plain numbers (proto3 keeps unknown values): each is checked against the
# values it may take before it becomes a domain enum, so a bad one is INVALID_ARGUMENT, not UNKNOWN.
LEVELS = frozenset({int(Risk.LOW), int(Risk.MODERATE), int(Risk.HIGH)})
ANSWERS = frozenset(int(a) for a in Answer)
RECENCIES = frozenset(int(r) for r in Recency)
ANSWER_FIELDS = (
    "wish_to_be_dead",
    "suicidal_thoughts",
    "thoughts_with_method",
    "intent",
    "plan_with_intent",
    "suicidal_behavior",
)
PLAN_FIELDS = (
    "warning_signs",
    "internal_coping_strategies",
    "social_distractions",
    "people_to_ask_for_help",
    "professionals_and_agencies",
    "environment_safety",
)


def _risk_state(doc: Document) -> crisis_pb2.RiskState:
    return crisis_pb2.RiskState(
        client_id=doc["client_id"],
        level=doc["level"],
        source=doc.get("source", ""),
        updated_at=to_timestamp(doc.get("at")),
        reasons=doc.get("reasons", []),
    )


def _plan_message(doc: Document, client_id: str) -> crisis_pb2.SafetyPlan:
    return crisis_pb2.SafetyPlan(
        client_id=client_id,
        version=doc["version"],
        **{f: doc.get(f, []) for f in PLAN_FIELDS},
        emergency_contacts=[_contact_message(c) for c in doc.get("emergency_contacts", [])],
        backup_phone=doc.get("backup_phone", ""),
        contact_windows=[crisis_pb2.ContactWindow(**w) for w in doc.get("contact_windows", [])],
        time_zone=doc.get("time_zone", ""),
        program_id=doc.get("program_id", ""),
        updated_by=doc.get("updated_by", ""),
        updated_at=to_timestamp(doc.get("updated_at")),
        retired=doc.get("retired", False),
    )


def _contact_message(c: dict[str, Any]) -> crisis_pb2.EmergencyContact:
    return crisis_pb2.EmergencyContact(
        contact_id=c.get("contact_id", ""),
        name=c.get("name", ""),
        relationship=c.get("relationship", ""),
        phone=c.get("phone", ""),
        consent_to_contact=c.get("consent_to_contact", False),
        consent_recorded_at=to_timestamp(c.get("consent_recorded_at")),
    )


def _alert_message(doc: Document, records: list[Document]) -> crisis_pb2.Alert:
    records = all_records(doc, records)
    st = state_of(doc, records)
    # the steps of the current round (a crisis signal after contact restarts the ladder)
    fired = {r["index"]: r for r in records if r["kind"] == "RUNG" and r.get("round", 0) == st.ladder_round}
    attempts = sorted((r for r in records if r["kind"] == "ATTEMPT"), key=lambda r: r["at"])
    return crisis_pb2.Alert(
        alert_id=doc["_id"],
        client_id=doc["client_id"],
        session_id=doc.get("session_id", ""),
        program_id=doc.get("program_id", ""),
        status=enum_value(st.status),
        reason=doc.get("reason", ""),
        risk_level=doc.get("risk_level", 0),
        assignees=list(dict.fromkeys([*doc.get("assignees", []), *(r.get("assignee_id", "") for r in fired.values())])),
        next_step_index=st.next_step,
        next_step_due_at=to_timestamp(st.due_at) if st.due_at else None,
        steps=[
            crisis_pb2.LadderStepState(
                index=i,
                step=s["step"],
                delay_s=int(s["after_s"]),
                fired_at=to_timestamp(fired[i]["at"]) if i in fired else None,
                trigger=fired[i]["trigger"] if i in fired else "",
                delivery_status=fired[i]["delivery_status"] if i in fired else "",
                **(events.dispatched_message_fields(fired[i], doc) if i in fired else {}),
            )
            for i, s in enumerate(doc["policy"]["steps"])
        ],
        contact_attempts=[
            crisis_pb2.ContactAttempt(
                attempt_id=a["attempt_id"],
                target=a["target"],
                outcome=a["outcome"],
                recorded_by=a.get("by", ""),
                attempted_at=to_timestamp(a.get("at")),
                contact_id=a.get("contact_id", ""),
                stopped_ladder=attempt_stopped_ladder(a, doc["opened_at"], records),
            )
            for a in attempts
        ],
        opened_at=to_timestamp(doc.get("opened_at")),
        acknowledged_by=st.acknowledged_by,
        resolution=st.resolution,
        problems=doc.get("problems", []),
        signals=[
            crisis_pb2.AlertSignal(
                reason=r.get("reason", ""),
                noted_at=to_timestamp(r["at"]),
                trigger_event_id=r.get("trigger_id", ""),
                restarted_ladder=r["kind"] == "RUNG",
            )
            for r in sorted((r for r in records if is_signal(r)), key=lambda r: r["at"])
        ],
        ladder_round=st.ladder_round,
    )


def _for_reader(alert: crisis_pb2.Alert, principal: Principal) -> crisis_pb2.Alert:
    """The Alert as `principal` may read it: whole for the care team; for others allowed the
    method, without where each fired rung reached the client (`location`) and the number it calls
    them back on (`callback_phone`). The rung's check-in (session id, time) stays: ids, not PHI."""
    if principal.has_any(WHEREABOUTS_READERS):
        return alert
    for step in alert.steps:
        step.ClearField("location")
        step.ClearField("callback_phone")
    return alert


def _plan_from_request(p: crisis_pb2.SafetyPlan) -> dict[str, Any]:
    out: dict[str, Any] = {"client_id": p.client_id}
    for f in PLAN_FIELDS:
        out[f] = list(getattr(p, f))
    out["emergency_contacts"] = [
        {
            "contact_id": c.contact_id,
            "name": c.name,
            "relationship": c.relationship,
            "phone": c.phone,
            "consent_to_contact": c.consent_to_contact,
            "consent_recorded_at": request_time(
                c, "consent_recorded_at", f"plan.emergency_contacts[{i}].consent_recorded_at"
            ),
        }
        for i, c in enumerate(p.emergency_contacts)
    ]
    out["backup_phone"] = p.backup_phone
    out["contact_windows"] = [{"weekdays": list(w.weekdays), "start": w.start, "end": w.end} for w in p.contact_windows]
    out["time_zone"] = p.time_zone
    out["program_id"] = p.program_id
    return out


def _same_raise(alert: Document, request: crisis_pb2.RaiseAlertRequest) -> None:
    """A RaiseAlert whose request_id opened `alert`: a retry gets the alert; a reuse of the id for
    another request (another client above all) is ALREADY_EXISTS and learns nothing of the alert."""
    same = (
        alert["client_id"] == request.client_id
        and alert.get("session_id", "") == request.session_id
        and alert.get("reason", "") == (request.reason or "CLINICIAN_RAISED")
        and (not request.program_id or alert.get("program_id", "") == request.program_id)
    )
    if not same:
        raise _request_id_reused()


def _request_id_reused() -> AlreadyExists:
    return AlreadyExists(
        "REQUEST_ID_REUSED", "this request_id raised another alert; use a new request_id for a new alert"
    )


def _require_id(field: str, value: str) -> None:
    """A lookup by a blank id is a bad request (INVALID_ARGUMENT), not a missing resource (NOT_FOUND)."""
    v = FieldViolations()
    v.require(bool(value), field, "required")
    v.raise_if_any()


def _transition_error(exc: TransitionError) -> FailedPrecondition:
    return FailedPrecondition(exc.reason, exc.message)


def _clinician_only(principal: Principal, method: str) -> bool:
    """Whether `principal` is let into `method` by the clinician role alone (not as a supervisor, nor
    as the platform where the method admits it): then only the clients they may reach are theirs."""
    wider = ACCESS[f"/{SERVICE}/{method}"] - {"clinician", "client"}
    return "clinician" in principal.roles and not principal.has_any(wider)


def _on_active_alert(principal: Principal, alert: Document | None) -> bool:
    """Whether `alert` (the client's active alert as read, or None) is active and names the caller
    among its assignees (session clinician, on-call rotation, raiser)."""
    return alert is not None and bool(alert.get("active")) and principal.subject in alert.get("assignees", [])


async def _true() -> bool:
    return True


def _not_on_care_team() -> PermissionDenied:
    return PermissionDenied(
        NOT_ON_CARE_TEAM,
        "a clinician reaches the crisis data of a client they treat (a session of theirs they lead or "
        "co-facilitate) or whose active alert they are on, and the alerts they are on",
    )


class CrisisApi(crisis_pb2_grpc.CrisisServiceServicer):
    def __init__(self, db: AsyncDatabase[Document], core: CrisisCore, alerts: AlertService) -> None:
        self._db = db
        self._core = core
        self._alerts = alerts
        self._store = core.store

    async def _audit(self, principal: Principal, action: str, resource_type: str, resource_id: str) -> None:
        await record_phi_access(self._db, principal, action, resource_type, resource_id)

    async def _caller_reaching(self, method: str, client_id: str) -> Principal:
        """The caller of `method`, who may reach the client's crisis data (card, risk, safety plans).
        Minimum necessary: a clinician does only when they treat the client (`store.treats`: one
        find) or the client's active alert names them (session clinician, on-call rotation, raiser),
        so the on-call clinician paged for a crisis opens the card and the plan; else
        PERMISSION_DENIED NOT_ON_CARE_TEAM, before anything is read, recorded or changed."""
        principal = current_principal()
        if not _clinician_only(principal, method) or await self._store.treats(principal.subject, client_id):
            return principal
        if not _on_active_alert(principal, await self._store.active_alert(client_id)):
            raise _not_on_care_team()
        return principal

    # ------------------------------------------------------------------ risk

    async def SetRiskLevel(
        self, request: crisis_pb2.SetRiskLevelRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.RiskState:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.require(request.level in LEVELS, "level", "required: LOW, MODERATE or HIGH")
        v.require(request.source in SOURCES, "source", f"must be one of {', '.join(sorted(SOURCES))}")
        v.raise_if_any()
        principal = await self._caller_reaching("SetRiskLevel", request.client_id)
        doc = await self._core.set_risk(
            request.client_id,
            Risk(request.level),
            request.source,
            [f"SET_BY_{request.source.upper()}"],
            principal.subject,
            datetime.now(UTC),
        )
        return _risk_state(doc)

    async def GetRiskState(
        self, request: crisis_pb2.GetRiskStateRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.RiskState:
        _require_id("client_id", request.client_id)
        principal = await self._caller_reaching("GetRiskState", request.client_id)
        doc = await self._store.risk(request.client_id)
        if doc is None:
            raise NotFound("risk_state", request.client_id)
        await self._audit(principal, "GetRiskState", "client", request.client_id)
        return _risk_state(doc)

    async def AssessCssrs(
        self, request: crisis_pb2.AssessCssrsRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.CssrsAssessment:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        for name in ANSWER_FIELDS:
            v.require(
                getattr(request, name) in ANSWERS, name, "one of ANSWER_UNSPECIFIED (not asked), ANSWER_NO, ANSWER_YES"
            )
        v.require(
            request.behavior_recency in RECENCIES,
            "behavior_recency",
            "one of BEHAVIOR_RECENCY_UNSPECIFIED, BEHAVIOR_RECENCY_WITHIN_3_MONTHS, BEHAVIOR_RECENCY_OVER_3_MONTHS_AGO",
        )
        v.raise_if_any()
        answers = CssrsAnswers(
            Answer(request.wish_to_be_dead),
            Answer(request.suicidal_thoughts),
            Answer(request.thoughts_with_method),
            Answer(request.intent),
            Answer(request.plan_with_intent),
            Answer(request.suicidal_behavior),
            Recency(request.behavior_recency),
        )
        for field, description in validate_cssrs(answers):
            v.add(field, description)
        v.raise_if_any()
        principal = await self._caller_reaching("AssessCssrs", request.client_id)
        level, reasons = cssrs_risk(answers)
        doc = await self._core.set_risk(
            request.client_id, level, "c-ssrs", reasons, principal.subject, datetime.now(UTC)
        )
        return crisis_pb2.CssrsAssessment(
            client_id=request.client_id, level=enum_value(level), reasons=reasons, state=_risk_state(doc)
        )

    # ------------------------------------------------------------------ safety plans

    async def SaveSafetyPlan(
        self, request: crisis_pb2.SaveSafetyPlanRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.SafetyPlan:
        violations, plan = validate_plan(_plan_from_request(request.plan))
        v = FieldViolations()
        for field, description in violations:
            v.add(field, description)
        v.require(request.expected_version >= 0, "expected_version", "must be >= 0")
        v.raise_if_any()
        principal = await self._caller_reaching("SaveSafetyPlan", request.plan.client_id)
        try:
            doc = await self._core.save_plan(plan, request.expected_version, principal.subject, datetime.now(UTC))
        except VersionConflict as exc:
            raise FailedPrecondition(
                "PLAN_VERSION_CONFLICT",
                f"expected version {request.expected_version}, the plan is at version {exc.current}",
                {"current_version": str(exc.current)},
            ) from exc
        return _plan_message(doc, request.plan.client_id)

    def _check_plan_reader(self, principal: Principal, client_id: str) -> None:
        if not principal.has_any(CARE_TEAM) and principal.subject != client_id:
            raise PermissionDenied("NOT_OWN_PLAN", "a client may read only their own safety plan")

    async def GetSafetyPlan(
        self, request: crisis_pb2.GetSafetyPlanRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.SafetyPlan:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.require(request.version >= 0, "version", "a plan version (1, 2, ...), or 0 for the current one")
        v.raise_if_any()
        self._check_plan_reader(current_principal(), request.client_id)
        principal = await self._caller_reaching("GetSafetyPlan", request.client_id)
        doc = await self._store.plan(request.client_id)
        if doc is None:
            raise NotFound("safety_plan", request.client_id)
        if request.version and request.version != doc["version"]:
            versions = await self._store.plan_versions(request.client_id)
            doc = next((h for h in versions if h["version"] == request.version), None)
            if doc is None:
                raise NotFound("safety_plan_version", f"{request.client_id}@{request.version}")
        await self._audit(principal, "GetSafetyPlan", "client", request.client_id)
        return _plan_message(doc, request.client_id)

    async def ListSafetyPlanVersions(
        self, request: crisis_pb2.ListSafetyPlanVersionsRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.ListSafetyPlanVersionsResponse:
        _require_id("client_id", request.client_id)
        principal = await self._caller_reaching("ListSafetyPlanVersions", request.client_id)
        versions = await self._store.plan_versions(request.client_id)
        if not versions:
            raise NotFound("safety_plan", request.client_id)
        await self._audit(principal, "ListSafetyPlanVersions", "client", request.client_id)
        return crisis_pb2.ListSafetyPlanVersionsResponse(
            versions=[_plan_message(d, request.client_id) for d in versions]
        )

    async def DeleteSafetyPlan(
        self, request: crisis_pb2.DeleteSafetyPlanRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.SafetyPlan:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.require(request.expected_version > 0, "expected_version", "required: the version being retired")
        v.raise_if_any()
        principal = await self._caller_reaching("DeleteSafetyPlan", request.client_id)
        try:
            doc = await self._core.retire_plan(
                request.client_id, request.expected_version, principal.subject, datetime.now(UTC)
            )
        except LookupError as exc:
            raise NotFound("safety_plan", request.client_id) from exc
        except VersionConflict as exc:
            raise FailedPrecondition(
                "PLAN_VERSION_CONFLICT",
                f"expected version {request.expected_version}, the plan is at version {exc.current}",
                {"current_version": str(exc.current)},
            ) from exc
        # the answer is the plan retired, read from the store (contacts, numbers): a PHI read
        await self._audit(principal, "DeleteSafetyPlan", "client", request.client_id)
        return _plan_message(doc, request.client_id)

    # ------------------------------------------------------------------ resources and routing

    async def GetLocalResources(
        self, request: crisis_pb2.GetLocalResourcesRequest, context: grpc.aio.ServicerContext
    ) -> crisis_events.CrisisResources:
        loc = request.location
        v = FieldViolations()
        v.require(bool(STATE.fullmatch(loc.state)), "location.state", "required: a USPS state code, e.g. CA")
        v.require(bool(FIPS.fullmatch(loc.county_fips)), "location.county_fips", "required: 5 digits 0-9")
        v.raise_if_any()
        try:
            return events.resources_message(self._core.catalog.lookup(loc.state, loc.county_fips))
        except NoResourcesForLocation as exc:
            raise FailedPrecondition(
                "NO_RESOURCES_FOR_LOCATION",
                f"no crisis resources on file for {exc.state}/{exc.county_fips}: use 988 and the local PSAP, "
                "and report the gap",
                {"state": exc.state, "county_fips": exc.county_fips, "data_version": exc.version},
            ) from exc

    async def RouteContact(
        self, request: crisis_pb2.RouteContactRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.ContactRouting:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.raise_if_any()
        principal = current_principal()
        if not principal.has_any(CARE_TEAM | {"platform"}) and principal.subject != request.client_id:
            raise PermissionDenied("NOT_OWN_ROUTING", "a client may ask only for their own contact routing")
        plan = await self._store.plan(request.client_id)
        checkin = await self._store.checkin(request.client_id) or {}
        clinician_id = request.clinician_id or checkin.get("clinician_id", "")
        at = request_time(request, "at") or datetime.now(UTC)
        route, assignee, within, reason = routing_for(
            self._core.policies, plan, checkin.get("program_id", ""), clinician_id, at
        )
        return crisis_pb2.ContactRouting(
            route=enum_value(route), assignee_id=assignee, within_window=within, reason=reason
        )

    # ------------------------------------------------------------------ alerts

    async def _alert_for_actor(self, alert_id: str) -> tuple[Document, Principal]:
        _require_id("alert_id", alert_id)
        alert = await self._store.alert(alert_id)
        if alert is None:
            raise NotFound("alert", alert_id)
        principal = current_principal()
        if not may_act_on(alert.get("assignees", []), principal.subject, principal.roles):
            raise PermissionDenied(
                "NOT_ALERT_ASSIGNEE", "only the alert's clinician, the on-call clinician or a supervisor may act on it"
            )
        return alert, principal

    async def _alert_answer(self, alert: Document, principal: Principal, action: str) -> crisis_pb2.Alert:
        """`alert` with its records as the answer to `action`, as `principal` may read it: an Alert
        is PHI (the client, their risk, where its rungs reached them), so every answer with one is
        an audited read, whichever call gives it."""
        message = _alert_message(alert, await self._store.records(alert))
        await self._audit(principal, action, "alert", alert["_id"])
        return _for_reader(message, principal)

    async def _fresh_alert(self, alert_id: str, principal: Principal, action: str) -> crisis_pb2.Alert:
        """The alert as it is now (read, or just changed by `action`), as `_alert_answer`."""
        alert = await self._store.alert(alert_id)
        if alert is None:
            raise NotFound("alert", alert_id)
        return await self._alert_answer(alert, principal, action)

    async def RaiseAlert(
        self, request: crisis_pb2.RaiseAlertRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.Alert:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.require(bool(request.request_id), "request_id", "required (idempotency key)")
        v.raise_if_any()
        principal = current_principal()
        alert_id = derived_id("raised", request.request_id)
        existing = await self._store.alert(alert_id)
        if existing is not None:
            await self._retry_of(existing, request, principal)
        else:
            active = await self._store.active_alert(request.client_id)
            if active is not None:
                raise FailedPrecondition(
                    "ALERT_ALREADY_ACTIVE", "the client already has an active alert", {"alert_id": active["_id"]}
                )
        current = await self._store.risk(request.client_id)
        risk = Risk(current["level"]) if current else Risk.UNSPECIFIED
        alert, created = await self._alerts.open_alert(
            alert_id=alert_id,
            client_id=request.client_id,
            session_id=request.session_id,
            program_id=request.program_id,
            clinician_id=principal.subject if "clinician" in principal.roles else "",
            reason=request.reason or "CLINICIAN_RAISED",
            risk=risk,
            trigger_event_id="",
            extra_assignees=[principal.subject],
            now=datetime.now(UTC),
        )
        if alert is None:
            active = await self._store.active_alert(request.client_id)
            raise FailedPrecondition(
                "ALERT_ALREADY_ACTIVE",
                "the client already has an active alert",
                {"alert_id": active["_id"] if active else ""},
            )
        if not created:  # a concurrent request with this id wrote it
            await self._retry_of(alert, request, principal)
        return await self._alert_answer(alert, principal, "RaiseAlert")

    async def _retry_of(self, alert: Document, request: crisis_pb2.RaiseAlertRequest, principal: Principal) -> None:
        """A RaiseAlert whose request_id opened `alert` already: a retry of that request gets the alert,
        when its caller reads it (`_reads_alert`: the raiser is an assignee). Another clinician sending
        the same id raises nothing (no page, no AlertOpened, not made an assignee), so it is no
        break-glass: until 2026-12-08 (twelfth session) they got the whole alert, where the client is
        and their number. ALREADY_EXISTS REQUEST_ID_REUSED, as a reuse for another client."""
        _same_raise(alert, request)
        if not await self._reads_alert(principal, "RaiseAlert", alert):
            raise _request_id_reused()

    async def _reads_alert(self, principal: Principal, method: str, alert: Document) -> bool:
        """Whether the caller of `method` reads `alert`: a clinician (by that role alone) as one of its
        assignees or on its client's care team (`store.treats`, one find); every other role `method`
        admits (its answer trimmed for the platform role: `_for_reader`)."""
        return (
            not _clinician_only(principal, method)
            or principal.subject in alert.get("assignees", [])
            or await self._store.treats(principal.subject, alert["client_id"])
        )

    async def GetAlert(
        self, request: crisis_pb2.GetAlertRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.Alert:
        _require_id("alert_id", request.alert_id)
        alert = await self._store.alert(request.alert_id)
        if alert is None:
            raise NotFound("alert", request.alert_id)
        principal = current_principal()
        if not await self._reads_alert(principal, "GetAlert", alert):
            raise _not_on_care_team()
        return await self._alert_answer(alert, principal, "GetAlert")

    async def AcknowledgeAlert(
        self, request: crisis_pb2.AcknowledgeAlertRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.Alert:
        alert, principal = await self._alert_for_actor(request.alert_id)
        try:
            await self._alerts.acknowledge(alert["_id"], principal.subject)
            return await self._fresh_alert(alert["_id"], principal, "AcknowledgeAlert")
        except TransitionError as exc:
            raise _transition_error(exc) from exc

    async def RecordContactAttempt(
        self, request: crisis_pb2.RecordContactAttemptRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.Alert:
        v = FieldViolations()
        v.require(bool(request.alert_id), "alert_id", "required")
        v.require(request.target in CONTACT_TARGETS, "target", f"one of {', '.join(sorted(CONTACT_TARGETS))}")
        v.require(request.outcome in CONTACT_OUTCOMES, "outcome", f"one of {', '.join(sorted(CONTACT_OUTCOMES))}")
        v.require(
            request.target != "EMERGENCY_CONTACT" or bool(request.contact_id),
            "contact_id",
            "required for an EMERGENCY_CONTACT attempt",
        )
        v.require(bool(request.request_id), "request_id", "required (idempotency key)")
        attempted_at = request_time(request, "attempted_at")
        now = datetime.now(UTC)
        v.require(
            attempted_at is None or attempted_at <= now + CLOCK_SKEW,
            "attempted_at",
            "in the future: the time the attempt was made, or unset for now",
        )
        v.raise_if_any()
        alert, principal = await self._alert_for_actor(request.alert_id)
        if attempted_at is not None and attempted_at < alert["opened_at"]:
            raise InvalidArgument([("attempted_at", "before the alert opened")])
        attempt = {
            "attempt_id": derived_id("attempt", request.alert_id, request.request_id),
            "target": request.target,
            "outcome": request.outcome,
            "contact_id": request.contact_id,
        }
        try:
            await self._alerts.record_attempt(alert["_id"], attempt, principal.subject, attempted_at)
            return await self._fresh_alert(alert["_id"], principal, "RecordContactAttempt")
        except TransitionError as exc:
            raise _transition_error(exc) from exc
        except RequestIdReused as exc:
            raise AlreadyExists(
                "REQUEST_ID_REUSED",
                "this request_id recorded another contact attempt (target, outcome or contact); "
                "a new attempt needs a new request_id",
            ) from exc

    async def ResolveAlert(
        self, request: crisis_pb2.ResolveAlertRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.Alert:
        v = FieldViolations()
        v.require(bool(request.alert_id), "alert_id", "required")
        v.require(request.resolution in RESOLUTIONS, "resolution", f"one of {', '.join(sorted(RESOLUTIONS))}")
        v.raise_if_any()
        alert, principal = await self._alert_for_actor(request.alert_id)
        try:
            await self._alerts.resolve(alert["_id"], request.resolution, principal.subject)
            return await self._fresh_alert(alert["_id"], principal, "ResolveAlert")
        except TransitionError as exc:
            raise _transition_error(exc) from exc

    # ------------------------------------------------------------------ the crisis card

    async def GetCrisisCard(
        self, request: crisis_pb2.GetCrisisCardRequest, context: grpc.aio.ServicerContext
    ) -> crisis_pb2.CrisisCard:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.raise_if_any()
        client_id = request.client_id
        # The check of `_caller_reaching`, on what the card reads anyway: the care-team find goes
        # with the read of the client's records (which names the active alert), and the active
        # alert the card shows is the one the check looks at. So the on-call clinician's first look
        # during a crisis costs one find more than before the care team was kept, and no round
        # trip more; until 2026-12-08 (twelfth session) the check's three reads went one after
        # another before the card's own. A refusal answers and records nothing of what was read.
        principal = current_principal()
        scoped = _clinician_only(principal, "GetCrisisCard")
        treats, held = await asyncio.gather(
            self._store.treats(principal.subject, client_id) if scoped else _true(),
            self._store.client_records(client_id),
        )
        active = await self._store.alert(held.active_alert_id) if held.active_alert_id else None
        if not treats and not _on_active_alert(principal, active):
            raise _not_on_care_team()
        plan, checkin, risk = held.plan, held.checkin, held.risk
        await self._audit(principal, "GetCrisisCard", "client", client_id)
        problems: list[str] = []
        card = crisis_pb2.CrisisCard(client_id=client_id)
        if plan is None or plan.get("retired"):
            problems.append("NO_SAFETY_PLAN")
        else:
            card.plan.CopyFrom(_plan_message(plan, client_id))
            card.emergency_contacts.extend(
                _contact_message(c) for c in plan.get("emergency_contacts", []) if c.get("consent_to_contact")
            )
        if not checkin:
            problems.append("NO_VERIFIED_LOCATION")
        else:
            card.location.CopyFrom(events.location_message(checkin["location"]))
            card.location_session_id = checkin.get("session_id", "")
            card.location_verified_at.CopyFrom(to_timestamp(checkin.get("at")))
            if checkin.get("resources"):
                card.resources.CopyFrom(events.resources_message(checkin["resources"]))
            else:
                problems.append(checkin.get("resources_problem") or "NO_RESOURCES_FOR_LOCATION")
        live_plan = plan if plan is not None and not plan.get("retired") else None
        card.backup_phone, phone_problems = pick_callback_phone(
            (checkin or {}).get("backup_phone", ""), (live_plan or {}).get("backup_phone", "")
        )
        problems.extend(phone_problems)
        if risk is not None:
            card.risk.CopyFrom(_risk_state(risk))
        if active is not None:
            records = await self._store.records(active)
            if state_of(active, records).status != Status.RESOLVED:
                card.active_alert.CopyFrom(_alert_message(active, records))
        card.problems.extend(problems)
        return card
