"""FHIR R4B projection of sessions (Appointment, Encounter) and of the people in them
(Patient, Practitioner) for partner EHRs. Pure: no I/O.

Participants are referenced by opaque ids only (Patient/<client_id>,
Practitioner/<clinician_id>); no names, addresses or phone numbers. The Patient and
Practitioner resources carry just that id (as `id` and as an identifier partners map to
their own records), so every reference a partner receives resolves to a resource it
received too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.scheduler import domain as d

FHIR_VERSION = "4.3.0"
ID_SYSTEM = "urn:iop:scheduler:session"
CLIENT_ID_SYSTEM = "urn:iop:client-id"
CLINICIAN_ID_SYSTEM = "urn:iop:clinician-id"

APPOINTMENT_STATUS = {
    d.BOOKED: "booked",
    d.CHECKED_IN: "checked-in",
    d.IN_PROGRESS: "arrived",
    d.ENDED: "fulfilled",
    d.INTERRUPTED: "noshow",
    d.CANCELLED: "cancelled",
    d.RESCHEDULED: "cancelled",
}
ENCOUNTER_STATUS = {
    d.CHECKED_IN: "arrived",
    d.IN_PROGRESS: "in-progress",
    d.ENDED: "finished",
    d.INTERRUPTED: "finished",
}
KIND_CODES = {
    d.GROUP: ("GROUP", "Group therapy session"),
    d.INDIVIDUAL: ("ROUTINE", "Individual therapy session"),
    d.EVALUATION: ("CHECKUP", "Evaluation"),
}


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def patient(client_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": client_id,
        "identifier": [{"system": CLIENT_ID_SYSTEM, "value": client_id}],
        "active": True,
    }


def practitioner(clinician_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": clinician_id,
        "identifier": [{"system": CLINICIAN_ID_SYSTEM, "value": clinician_id}],
        "active": True,
    }


def appointment(session: dict[str, Any]) -> dict[str, Any]:
    code, display = KIND_CODES.get(session["kind"], ("ROUTINE", "Session"))
    participants: list[dict[str, Any]] = [
        {
            "actor": {"reference": f"Practitioner/{session['clinician_id']}"},
            "required": "required",
            "status": "accepted",
        }
    ]
    participants += [
        {"actor": {"reference": f"Patient/{c}"}, "required": "required", "status": "accepted"}
        for c in session.get("client_ids", [])
    ]
    minutes = int((session["ends_at"] - session["starts_at"]).total_seconds() // 60)
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": session["_id"],
        "identifier": [{"system": ID_SYSTEM, "value": session["_id"]}],
        "status": APPOINTMENT_STATUS[session["status"]],
        "appointmentType": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": code, "display": display}]
        },
        "serviceType": [{"text": f"virtual IOP {d.KIND_NAMES.get(session['kind'], 'SESSION').lower()}"}],
        "start": _iso(session["starts_at"]),
        "end": _iso(session["ends_at"]),
        "minutesDuration": minutes,
        "participant": participants,
    }
    if session["status"] in (d.CANCELLED, d.RESCHEDULED) and session.get("cancel_reason"):
        resource["cancelationReason"] = {"text": session["cancel_reason"]}
    return resource


def encounter(session: dict[str, Any]) -> dict[str, Any] | None:
    """The Encounter of a session that took place (None before check-in)."""
    status = ENCOUNTER_STATUS.get(session["status"])
    if status is None:
        return None
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": session["_id"],
        "identifier": [{"system": ID_SYSTEM, "value": session["_id"]}],
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual"},
        "participant": [{"individual": {"reference": f"Practitioner/{session['clinician_id']}"}}],
        "appointment": [{"reference": f"Appointment/{session['_id']}"}],
    }
    clients = session.get("client_ids", [])
    if len(clients) == 1:
        resource["subject"] = {"reference": f"Patient/{clients[0]}"}
    elif clients:
        resource["extension"] = [
            {"url": "urn:iop:fhir:group-participant", "valueReference": {"reference": f"Patient/{c}"}} for c in clients
        ]
    period: dict[str, str] = {}
    if session.get("started_at"):
        period["start"] = _iso(session["started_at"])
    if session.get("ended_at"):
        period["end"] = _iso(session["ended_at"])
    elif session.get("interrupted_at"):
        period["end"] = _iso(session["interrupted_at"])
    if period:
        resource["period"] = period
    if session["status"] == d.INTERRUPTED:
        resource["statusHistory"] = [
            {"status": "in-progress", "period": period or {"start": _iso(session["starts_at"])}}
        ]
    if session.get("minutes"):
        resource["length"] = {
            "value": session["minutes"],
            "unit": "min",
            "system": "http://unitsofmeasure.org",
            "code": "min",
        }
    return resource


def to_json(resource: dict[str, Any]) -> str:
    return json.dumps(resource, separators=(",", ":"), sort_keys=True)
