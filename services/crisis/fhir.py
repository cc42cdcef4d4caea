"""FHIR R4B projections of crisis state, for partner EHRs (fhir.resources validates every resource).

Flag (an open crisis alert), RiskAssessment (a risk level), CarePlan (a safety plan version).
Resources reference the client as Patient/<client_id> (an opaque id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.riskassessment import RiskAssessment

from iop.events.v1 import crisis_pb2 as ev
from services.crisis.domain import PLAN_SECTIONS, Risk

FHIR_VERSION = "4.3.0"
RISK_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
SECTION_TITLES = {
    "warning_signs": "Warning signs",
    "internal_coping_strategies": "Internal coping strategies",
    "social_distractions": "People and social settings that provide distraction",
    "people_to_ask_for_help": "People whom I can ask for help",
    "professionals_and_agencies": "Professionals or agencies I can contact during a crisis",
    "environment_safety": "Making the environment safe",
}


def _iso(at: datetime) -> str:
    return at.isoformat()


def _wrap(resource_type: str, resource_id: str, client_id: str, json: str) -> ev.CrisisFhirResource:
    return ev.CrisisFhirResource(
        resource_type=resource_type, resource_id=resource_id, fhir_version=FHIR_VERSION, json=json, client_id=client_id
    )


def alert_flag(
    alert_id: str, client_id: str, active: bool, opened_at: datetime, ended_at: datetime | None
) -> ev.CrisisFhirResource:
    period: dict[str, str] = {"start": _iso(opened_at)}
    if ended_at is not None:
        period["end"] = _iso(ended_at)
    flag = Flag.model_validate(
        {
            "resourceType": "Flag",
            "id": alert_id,
            "status": "active" if active else "inactive",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                            "code": "safety",
                            "display": "Safety",
                        }
                    ]
                }
            ],
            "code": {"text": "Crisis alert: suicide/self-harm risk, escalation ladder running"},
            "subject": {"reference": f"Patient/{client_id}"},
            "period": period,
        }
    )
    return _wrap("Flag", alert_id, client_id, flag.model_dump_json())


def risk_assessment(
    assessment_id: str, client_id: str, level: Risk, source: str, reasons: list[str], at: datetime
) -> ev.CrisisFhirResource:
    code = {Risk.LOW: "low", Risk.MODERATE: "moderate", Risk.HIGH: "high"}.get(level, "low")
    resource = RiskAssessment.model_validate(
        {
            "resourceType": "RiskAssessment",
            "id": assessment_id,
            "status": "final",
            "method": {"text": source},
            "subject": {"reference": f"Patient/{client_id}"},
            "occurrenceDateTime": _iso(at),
            "basis": [],
            "prediction": [
                {
                    "outcome": {"text": "Suicide attempt or self-harm"},
                    "qualitativeRisk": {"coding": [{"system": RISK_SYSTEM, "code": code}]},
                    "rationale": ", ".join(reasons) or None,
                }
            ],
        }
    )
    return _wrap("RiskAssessment", assessment_id, client_id, resource.model_dump_json(exclude_none=True))


def safety_care_plan(plan: dict[str, Any]) -> ev.CrisisFhirResource:
    """The safety plan as a CarePlan: one activity per entry, coded by its Stanley-Brown section."""
    client_id = plan["client_id"]
    plan_id = f"safety-plan-{client_id}"
    activities = [
        {"detail": {"code": {"text": SECTION_TITLES[section]}, "status": "not-started", "description": item}}
        for section in PLAN_SECTIONS
        for item in plan.get(section) or []
    ]
    resource = CarePlan.model_validate(
        {
            "resourceType": "CarePlan",
            "id": plan_id,
            "meta": {"versionId": str(plan["version"])},
            "status": "revoked" if plan.get("retired") else "active",
            "intent": "plan",
            "title": "Safety plan (Stanley-Brown)",
            "category": [{"text": "Suicide safety plan"}],
            "subject": {"reference": f"Patient/{client_id}"},
            "created": _iso(plan["updated_at"]),
            "activity": activities or None,
        }
    )
    return _wrap("CarePlan", plan_id, client_id, resource.model_dump_json(exclude_none=True))
