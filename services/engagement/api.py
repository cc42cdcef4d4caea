"""gRPC API of the engagement service (iop.engagement.v1.EngagementService)."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from opentelemetry import propagate
from pymongo.asynchronous.database import AsyncDatabase

from iop.engagement.v1 import engagement_pb2 as pb
from iop.engagement.v1 import engagement_pb2_grpc
from iop.events.v1 import engagement_pb2 as ev
from services.engagement.domain import (
    check_in_violations,
    opaque_id_violations,
    outcome_trend,
    outcome_violations,
    score_outcome,
)
from services.engagement.fhir import observation, observation_json
from services.engagement.fhir_relay import FhirRelay
from services.engagement.rules import Instrument, Rules
from services.engagement.store import (
    CHECK_INS_COLLECTION,
    OUTCOMES_COLLECTION,
    AttendanceStore,
    CheckInStore,
    OutcomeStore,
    SnapshotStore,
    aware,
    outcome_key,
)
from services.engagement.topics import ACTIVITY, OUTCOMES
from services.plumbing.audit import record_phi_access
from services.plumbing.auth import Principal, current_principal
from services.plumbing.errors import AlreadyExists, FieldViolations, NotFound, PermissionDenied
from services.plumbing.outbox import OutboxRelay, OutgoingEvent
from services.plumbing.protos import request_time, to_timestamp
from services.plumbing.storage import Document

log = logging.getLogger(__name__)

SERVICE = "iop.engagement.v1.EngagementService"
STAFF = frozenset({"platform", "clinician", "supervisor"})
ACCESS = {
    f"/{SERVICE}/GetSessionAttendance": STAFF,
    f"/{SERVICE}/SubmitOutcome": frozenset({"client", "clinician", "platform"}),
    f"/{SERVICE}/GetOutcomeHistory": frozenset({"client", "clinician", "supervisor", "platform"}),
    f"/{SERVICE}/SubmitCheckIn": frozenset({"client", "platform"}),
    f"/{SERVICE}/GetClientEngagement": STAFF,
    f"/{SERVICE}/GetClinicianEngagement": frozenset({"clinician", "supervisor", "platform"}),
    f"/{SERVICE}/GetRiskFactors": STAFF,
}

STATUS = {
    "expected": pb.ATTENDANCE_STATUS_EXPECTED,
    "on_time": pb.ATTENDANCE_STATUS_ON_TIME,
    "late": pb.ATTENDANCE_STATUS_LATE,
    "left_early": pb.ATTENDANCE_STATUS_LEFT_EARLY,
    "absent": pb.ATTENDANCE_STATUS_ABSENT,
}
_SKEW = timedelta(minutes=5)  # clock skew allowed on completed_at
INSTRUMENT_NAMES = {pb.INSTRUMENT_PHQ9: "PHQ-9", pb.INSTRUMENT_GAD7: "GAD-7"}
INSTRUMENT_ENUMS = {v: k for k, v in INSTRUMENT_NAMES.items()}


def own_data_only(principal: Principal, staff: frozenset[str], subject_id: str) -> None:
    """Clients (and clinicians on clinician data) may read only their own records."""
    if not principal.has_any(staff) and principal.subject != subject_id:
        raise PermissionDenied("NOT_OWN_RECORD", "this principal may read only its own records")


def same_submission(stored: Document, new: Document) -> bool:
    """Whether a request under a stored submission id is a retry of it (the same client,
    instrument and answers: the stored record is the answer) or another submission."""
    return all(stored.get(k) == new[k] for k in ("client_id", "instrument", "item_scores"))


def window_pb(w: dict[str, Any]) -> pb.WindowStats:
    return pb.WindowStats(
        days=w["days"],
        sessions_expected=w["sessions_expected"],
        sessions_attended=w["sessions_attended"],
        late=w["late"],
        left_early=w["left_early"],
        absent=w["absent"],
        attendance_rate=w["attendance_rate"],
        minutes_attended=int(w["minutes_attended"]),
        disconnections=w["disconnections"],
        speaking_minutes=w["speaking_minutes"],
        chat_messages=w["chat_messages"],
        camera_on_ratio=w["camera_on_ratio"],
        check_ins=w["check_ins"],
        mean_mood=w["mean_mood"],
        practice_days=w["practice_days"],
        practice_rate=w["practice_rate"],
    )


def risk_pb(score: str, risk: dict[str, Any], latest: str | None) -> pb.RiskScore:
    as_of = datetime.fromisoformat(latest) if latest else None
    return pb.RiskScore(
        score=score,
        value=float(risk.get("value", 0.0)),
        elevated=bool(risk.get("elevated", False)),
        factors=[
            pb.Factor(
                name=f["name"],
                value=f["value"],
                weight=f["weight"],
                contribution=f["contribution"],
                explanation=f["explanation"],
            )
            for f in risk.get("factors", [])
        ],
        as_of=to_timestamp(as_of),
    )


class EngagementApi(engagement_pb2_grpc.EngagementServiceServicer):
    def __init__(
        self,
        db: AsyncDatabase[Document],
        rules: Rules,
        relay: OutboxRelay,
        fhir: FhirRelay,
        source: str,
    ) -> None:
        self._db = db
        self._rules = rules
        self._relay = relay
        self._fhir = fhir
        self._attendance = AttendanceStore(db, source)
        self._outcomes = OutcomeStore(db, source)
        self._check_ins = CheckInStore(db, source)
        self._snapshots = SnapshotStore(db)

    def _instrument(self, value: int) -> Instrument | None:
        instruments: dict[int, Instrument] = {
            pb.INSTRUMENT_PHQ9: self._rules.phq9,
            pb.INSTRUMENT_GAD7: self._rules.gad7,
        }
        return instruments.get(value)

    async def GetSessionAttendance(
        self, request: pb.GetSessionAttendanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.SessionAttendance:
        v = FieldViolations()
        v.require(bool(request.session_id), "session_id", "required")
        v.raise_if_any()
        doc = await self._attendance.get(request.session_id)
        if doc is None:
            raise NotFound("session_attendance", request.session_id)
        await record_phi_access(self._db, current_principal(), "GetSessionAttendance", "session", request.session_id)
        return pb.SessionAttendance(
            session_id=doc["_id"],
            clinician_id=doc["clinician_id"],
            starts_at=to_timestamp(aware(doc["starts_at"])),
            ends_at=to_timestamp(aware(doc["ends_at"])),
            ended=bool(doc.get("ended")),
            started_at=to_timestamp(aware(doc["started_at"])) if doc.get("started_at") else None,
            entries=[
                pb.AttendanceEntry(
                    client_id=e["client_id"],
                    status=STATUS[e["status"]],
                    minutes_attended=e["minutes_attended"],
                    disconnections=e.get("disconnections", 0),
                    reconnections=e.get("reconnections", 0),
                    modality=e.get("modality", "none"),
                    present=e.get("present", False),
                )
                for e in doc["entries"]
            ],
        )

    async def SubmitOutcome(
        self, request: pb.SubmitOutcomeRequest, context: grpc.aio.ServicerContext
    ) -> pb.OutcomeRecord:
        principal = current_principal()
        instrument = self._instrument(request.instrument)
        v = FieldViolations()
        v.require(bool(request.submission_id), "submission_id", "required")
        v.require(bool(request.client_id), "client_id", "required")
        ids = {"submission_id": request.submission_id, "client_id": request.client_id, "session_id": request.session_id}
        for field, problem in opaque_id_violations({k: value for k, value in ids.items() if value}):
            v.add(field, problem)
        items = list(request.item_scores)
        for field, problem in outcome_violations(instrument, items, self._rules):
            v.add(field, problem)
        completed_at = request_time(request, "completed_at") or datetime.now(UTC)
        v.require(completed_at <= datetime.now(UTC).replace(microsecond=0) + _SKEW, "completed_at", "in the future")
        v.raise_if_any()
        assert instrument is not None
        if "client" in principal.roles and not principal.has_any(STAFF) and principal.subject != request.client_id:
            raise PermissionDenied("NOT_OWN_RECORD", "a client may submit only their own answers")
        scored = score_outcome(instrument, items)
        recorded = ev.OutcomeRecorded(
            client_id=request.client_id,
            instrument=instrument.name,
            total_score=scored.total,
            item_scores=items,
            recorded_at=to_timestamp(completed_at),
            submission_id=request.submission_id,
            session_id=request.session_id,
            severity=scored.severity,
        )
        events = [OutgoingEvent(OUTCOMES.name, request.client_id, recorded)]
        if scored.item9_positive:
            events.insert(
                0,
                OutgoingEvent(
                    OUTCOMES.name,
                    request.client_id,
                    ev.CrisisSignal(
                        client_id=request.client_id,
                        source="phq9-item9",
                        value=items[8],
                        observed_at=to_timestamp(completed_at),
                        submission_id=request.submission_id,
                    ),
                ),
            )
        key = outcome_key(request.client_id, request.submission_id)
        fhir: str | None = None
        try:
            fhir = observation_json(
                observation(
                    key,
                    request.client_id,
                    instrument,
                    items,
                    scored.total,
                    completed_at,
                    request.session_id,
                    request.submission_id,
                )
            )
        except Exception as exc:  # the partners' projection must not cost the outcome or its crisis signal
            log.warning("FHIR Observation not built (%s); the outcome is stored without it", type(exc).__name__)
        trace: dict[str, str] = {}
        propagate.inject(trace)
        doc = {
            "_id": key,
            "submission_id": request.submission_id,
            "client_id": request.client_id,
            "instrument": instrument.name,
            "item_scores": items,
            "total": scored.total,
            "severity": scored.severity,
            "crisis_signal": scored.item9_positive,
            "completed_at": completed_at,
            "session_id": request.session_id,
            "submitted_by": principal.subject,
            "fhir": fhir,
            "fhir_pending": fhir is not None,
            "fhir_trace": trace,
        }
        stored = await self._outcomes.insert(doc, events)
        if stored is doc:
            self._relay.notify(OUTCOMES_COLLECTION, key)
            if fhir is not None:
                with contextlib.suppress(Exception):  # the background relay publishes it if this fails
                    await self._fhir.publish(doc)
        elif not same_submission(stored, doc):
            # Not a retry: other answers under an id this client used already. Refused, and nothing
            # of the stored record is told (nor stored, nor published: the app must use a new id).
            raise AlreadyExists(
                "SUBMISSION_ID_REUSED",
                "this submission_id was already used for other answers; submit them under a new submission_id",
            )
        return self._outcome_pb(stored)

    def _outcome_pb(self, doc: Document) -> pb.OutcomeRecord:
        return pb.OutcomeRecord(
            submission_id=doc.get("submission_id", doc["_id"]),  # before 2026-12-07: the _id
            client_id=doc["client_id"],
            instrument=INSTRUMENT_ENUMS[doc["instrument"]],
            item_scores=doc["item_scores"],
            total_score=doc["total"],
            severity=doc["severity"],
            completed_at=to_timestamp(aware(doc["completed_at"])),
            crisis_signal=bool(doc.get("crisis_signal")),
        )

    async def GetOutcomeHistory(
        self, request: pb.GetOutcomeHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.OutcomeHistory:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.require(
            request.instrument == pb.INSTRUMENT_UNSPECIFIED or request.instrument in INSTRUMENT_NAMES,
            "instrument",
            "unknown instrument",
        )
        v.raise_if_any()
        principal = current_principal()
        own_data_only(principal, STAFF, request.client_id)
        docs = await self._outcomes.history(request.client_id, INSTRUMENT_NAMES.get(request.instrument))
        await record_phi_access(self._db, principal, "GetOutcomeHistory", "client", request.client_id)
        trends = []
        for name, enum in INSTRUMENT_ENUMS.items():
            points = [(aware(d["completed_at"]), d["total"]) for d in docs if d["instrument"] == name]
            trend = outcome_trend([(t, s) for t, s in points if t is not None], self._rules.trend_min_change)
            if trend is not None:
                trends.append(
                    pb.OutcomeTrend(
                        instrument=enum,
                        first_total=trend.first,
                        latest_total=trend.latest,
                        change=trend.change,
                        direction=trend.direction,
                        slope_per_week=trend.slope_per_week,
                    )
                )
        return pb.OutcomeHistory(
            client_id=request.client_id, records=[self._outcome_pb(d) for d in docs], trends=trends
        )

    async def SubmitCheckIn(self, request: pb.SubmitCheckInRequest, context: grpc.aio.ServicerContext) -> pb.CheckIn:
        v = FieldViolations()
        for field, problem in check_in_violations(
            request.client_id,
            request.day,
            request.mood,
            request.practice_minutes,
            datetime.now(UTC).date(),
            self._rules,
        ):
            v.add(field, problem)
        v.raise_if_any()
        principal = current_principal()
        own_data_only(principal, frozenset({"platform"}), request.client_id)
        check_in_id = f"{request.client_id}:{request.day}"
        now = datetime.now(UTC)
        event = ev.CheckInRecorded(
            check_in_id=check_in_id,
            client_id=request.client_id,
            day=request.day,
            mood=request.mood,
            practice_done=request.practice_done,
            practice_minutes=request.practice_minutes,
            recorded_at=to_timestamp(now),
        )
        await self._check_ins.upsert(
            {
                "_id": check_in_id,
                "client_id": request.client_id,
                "day": request.day,
                "mood": request.mood,
                "practice_done": request.practice_done,
                "practice_minutes": request.practice_minutes,
                "recorded_at": now,
            },
            [OutgoingEvent(ACTIVITY.name, request.client_id, event)],
        )
        self._relay.notify(CHECK_INS_COLLECTION, check_in_id)
        return pb.CheckIn(
            check_in_id=check_in_id,
            client_id=request.client_id,
            day=request.day,
            mood=request.mood,
            practice_done=request.practice_done,
            practice_minutes=request.practice_minutes,
        )

    async def GetClientEngagement(
        self, request: pb.GetClientEngagementRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClientEngagement:
        v = FieldViolations()
        v.require(bool(request.client_id), "client_id", "required")
        v.raise_if_any()
        doc = await self._snapshots.client(request.client_id)
        if doc is None:
            raise NotFound("client_engagement", request.client_id)
        await record_phi_access(self._db, current_principal(), "GetClientEngagement", "client", request.client_id)
        return pb.ClientEngagement(
            client_id=request.client_id,
            last_7_days=window_pb(doc["windows"]["7"]),
            last_28_days=window_pb(doc["windows"]["28"]),
            engagement_risk=risk_pb("client_engagement_risk", doc.get("risk", {}), doc.get("latest")),
        )

    async def GetClinicianEngagement(
        self, request: pb.GetClinicianEngagementRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClinicianEngagement:
        v = FieldViolations()
        v.require(bool(request.clinician_id), "clinician_id", "required")
        v.raise_if_any()
        principal = current_principal()
        own_data_only(principal, frozenset({"supervisor", "platform"}), request.clinician_id)
        doc = await self._snapshots.clinician(request.clinician_id)
        if doc is None:
            raise NotFound("clinician_engagement", request.clinician_id)
        await record_phi_access(self._db, principal, "GetClinicianEngagement", "clinician", request.clinician_id)
        load = doc["load"]
        return pb.ClinicianEngagement(
            clinician_id=request.clinician_id,
            on_screen_hours_today=load["on_screen_hours_today"],
            on_screen_hours_7_days=load["on_screen_hours_7_days"],
            back_to_back_today=load["back_to_back_today"],
            max_back_to_back_7_days=load["max_back_to_back_7_days"],
            caseload=load["caseload"],
            sessions_7_days=load["sessions_7_days"],
            burnout_risk=risk_pb("clinician_burnout_risk", doc.get("risk", {}), doc.get("latest")),
        )

    async def GetRiskFactors(
        self, request: pb.GetRiskFactorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RiskFactors:
        which = request.WhichOneof("subject")
        v = FieldViolations()
        v.require(
            which is not None and bool(getattr(request, which or "client_id")),
            "subject",
            "client_id or clinician_id required",
        )
        v.raise_if_any()
        subject = getattr(request, which or "client_id")
        principal = current_principal()
        if which == "clinician_id":  # the rule of GetClinicianEngagement: a clinician reads only their own
            own_data_only(principal, frozenset({"supervisor", "platform"}), subject)
        if which == "client_id":
            doc = await self._snapshots.client(subject)
            name = "client_engagement_risk"
        else:
            doc = await self._snapshots.clinician(subject)
            name = "clinician_burnout_risk"
        if doc is None:
            raise NotFound(which or "subject", subject)
        await record_phi_access(self._db, principal, "GetRiskFactors", which or "subject", subject)
        return pb.RiskFactors(subject_id=subject, score=risk_pb(name, doc.get("risk", {}), doc.get("latest")))
