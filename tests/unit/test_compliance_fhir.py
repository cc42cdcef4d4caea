"""The FHIR R4B Consent projection validates against fhir.resources and carries no PHI beyond opaque ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.consent import Consent

from services.compliance.fhir import consent, to_json

SIGNED = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def doc(consent_type: str, **kw: object) -> dict:
    fields: dict[str, object] = {
        "_id": "consent-1",
        "client_id": "client-opaque-1",
        "consent_type": consent_type,
        "form_version": "telehealth-2025-01",
        "signed_at": SIGNED,
        "valid_from": SIGNED,
        "valid_until": datetime(2027, 11, 1, 10, 0, tzinfo=UTC),
        "revoked_at": None,
        "contact_id": "",
    }
    fields.update(kw)
    return fields


@pytest.mark.parametrize(
    ("record", "status", "end", "category"),
    [
        (doc("TELEHEALTH"), "active", "2027-11-01T10:00:00Z", "59284-0"),
        (
            doc("TELEHEALTH", revoked_at=datetime(2026, 12, 1, tzinfo=UTC)),
            "inactive",
            "2026-12-01T00:00:00Z",
            "59284-0",
        ),
        (doc("ROI_EMERGENCY_CONTACT", contact_id="contact-9"), "active", "2027-11-01T10:00:00Z", "64292-6"),
    ],
)
def test_consent_resource(record: dict, status: str, end: str, category: str) -> None:
    resource = consent(record)
    Consent.model_validate(json.loads(to_json(resource)))  # a valid R4B Consent
    assert resource["status"] == status
    assert resource["patient"] == {"reference": "Patient/client-opaque-1"}
    assert resource["provision"]["period"]["end"] == end
    assert resource["category"][0]["coding"][0]["code"] == category
    if record["contact_id"]:
        # a logical reference: the platform publishes no contact details (PHI), so nothing to resolve
        assert resource["provision"]["actor"][0]["reference"] == {
            "type": "RelatedPerson",
            "identifier": {"system": "urn:iop:crisis:emergency-contact", "value": "contact-9"},
        }
