"""FHIR R4B projection of consents for partner EHRs (pure: no I/O).

The client is referenced by opaque id only (Patient/<client_id>, the Patient the scheduler
publishes); an emergency-contact release names the contact by a logical reference (an
identifier, no literal RelatedPerson: the platform publishes no contact details, which are
PHI). Published as JSON on iop.compliance.fhir.v1 inside iop.events.v1.FhirResourcePublished.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.plumbing.storage import Document

FHIR_VERSION = "4.3.0"
ID_SYSTEM = "urn:iop:compliance:consent"
CONTACT_ID_SYSTEM = "urn:iop:crisis:emergency-contact"

# consent type -> (scope code, LOINC category code, display)
CONSENT_CODES = {
    "TELEHEALTH": ("treatment", "59284-0", "Patient Consent"),
    "RECORDING": ("patient-privacy", "59284-0", "Patient Consent"),
    "ROI_EMERGENCY_CONTACT": ("patient-privacy", "64292-6", "Release of information consent"),
}


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def consent(doc: Document) -> dict[str, Any]:
    scope, loinc, display = CONSENT_CODES[doc["consent_type"]]
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": doc["_id"],
        "identifier": [{"system": ID_SYSTEM, "value": doc["_id"]}],
        "status": "inactive" if doc.get("revoked_at") else "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": scope}]},
        "category": [
            {"coding": [{"system": "http://loinc.org", "code": loinc, "display": display}]},
            {"text": f"{doc['consent_type']} ({doc['form_version']})"},
        ],
        "patient": {"reference": f"Patient/{doc['client_id']}"},
        "dateTime": _iso(doc["signed_at"]),
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "period": {"start": _iso(doc["valid_from"]), "end": _iso(doc["revoked_at"] or doc["valid_until"])},
        },
    }
    if doc.get("contact_id"):
        resource["provision"]["actor"] = [
            {
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "ECON"}]},
                "reference": {
                    "type": "RelatedPerson",
                    "identifier": {"system": CONTACT_ID_SYSTEM, "value": doc["contact_id"]},
                },
            }
        ]
    return resource


def to_json(resource: dict[str, Any]) -> str:
    return json.dumps(resource, separators=(",", ":"), sort_keys=True)
