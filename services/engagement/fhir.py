"""FHIR R4B Observation projection of PHQ-9 / GAD-7 results (fhir.resources), for partner EHRs.

The resource references the patient by the platform's opaque client id (Patient/<client_id>,
the Patient the scheduler publishes, with the identifier system below that partners map to
their own records) and, for a questionnaire taken in a session, that session's
Encounter/<session_id>.

The resource id is the stored outcome's id (a uuid, always a valid FHIR id: `[A-Za-z0-9\-.]{1,64}`),
not the app's submission id, which may hold characters a FHIR id may not (`_`, `:`); the
submission id travels as the Observation's identifier.
"""

from __future__ import annotations

from datetime import datetime

from fhir.resources.R4B.observation import Observation

from services.engagement.rules import Instrument

LOINC = "http://loinc.org"
CLIENT_ID_SYSTEM = "urn:iop:client-id"
SUBMISSION_ID_SYSTEM = "urn:iop:outcome-submission-id"
SURVEY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "survey",
    "display": "Survey",
}


def observation(
    resource_id: str,
    client_id: str,
    instrument: Instrument,
    items: list[int],
    total: int,
    completed_at: datetime,
    session_id: str = "",
    submission_id: str = "",
) -> Observation:
    components = []
    if instrument.loinc_item9 and len(items) >= 9:
        components.append(
            {
                "code": {"coding": [{"system": LOINC, "code": instrument.loinc_item9}]},
                "valueInteger": items[8],
            }
        )
    return Observation.model_validate(
        {
            "resourceType": "Observation",
            "id": resource_id,
            "identifier": [{"system": SUBMISSION_ID_SYSTEM, "value": submission_id}] if submission_id else None,
            "status": "final",
            "category": [{"coding": [SURVEY]}],
            "code": {
                "coding": [
                    {"system": LOINC, "code": instrument.loinc_total, "display": f"{instrument.name} total score"}
                ],
                "text": f"{instrument.name} total score",
            },
            "subject": {
                "reference": f"Patient/{client_id}",
                "identifier": {"system": CLIENT_ID_SYSTEM, "value": client_id},
            },
            "encounter": {"reference": f"Encounter/{session_id}"} if session_id else None,
            "effectiveDateTime": completed_at.isoformat(),
            "valueInteger": total,
            "component": components or None,
        }
    )


def observation_json(obs: Observation) -> str:
    return obs.model_dump_json(exclude_none=True)
