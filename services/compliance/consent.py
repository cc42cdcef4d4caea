"""Consent and privacy rules (pure).

Telehealth consent is required for every virtual session; a release of information (ROI) for the
emergency contact is expected so the crisis plan can use it; consent forms are versioned and only
the versions in reference data are accepted. At session start the client attests their privacy:
alone, headphones, alternate_location (e.g. a car) or compromised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.compliance.reference import Reference

TELEHEALTH, RECORDING, ROI_EMERGENCY_CONTACT = "TELEHEALTH", "RECORDING", "ROI_EMERGENCY_CONTACT"
CONSENT_TYPES = frozenset({TELEHEALTH, RECORDING, ROI_EMERGENCY_CONTACT})
COMPROMISED, ALTERNATE_LOCATION = "compromised", "alternate_location"


@dataclass(frozen=True)
class Consent:
    consent_id: str
    consent_type: str
    form_version: str
    valid_from: datetime
    valid_until: datetime
    revoked_at: datetime | None = None

    def revoked_by(self, at: datetime, until: datetime | None = None) -> bool:
        """Revoked at `at`, or before `until` (the end of the session, exclusive) when given."""
        if self.revoked_at is None:
            return False
        return self.revoked_at <= at or (until is not None and self.revoked_at < until)

    def in_force(self, at: datetime, until: datetime | None = None) -> bool:
        """In force at `at` and, when `until` is given, for the whole of [at, until)."""
        covered = self.valid_from <= at < self.valid_until and (until is None or until <= self.valid_until)
        return covered and not self.revoked_by(at, until)


def consent_problems(
    ref: Reference, consents: Sequence[Consent], at: datetime, until: datetime | None = None
) -> list[str]:
    """Problems with the client's consents for a session from `at` to `until` (exclusive; None: the instant)."""
    problems: list[str] = []
    telehealth = [c for c in consents if c.consent_type == TELEHEALTH]
    accepted = ref.consent_forms[TELEHEALTH].accepted
    in_force = [c for c in telehealth if c.in_force(at, until)]
    if not telehealth:
        problems.append("NO_TELEHEALTH_CONSENT")
    elif any(c.form_version in accepted for c in in_force):
        pass
    elif in_force:
        problems.append("TELEHEALTH_CONSENT_VERSION_OUTDATED")
    elif any(c.in_force(at) and not c.revoked_by(at, until) for c in telehealth):  # lapses before the end
        problems.append("TELEHEALTH_CONSENT_EXPIRES_DURING_SESSION")
    elif any(c.revoked_by(at, until) for c in telehealth):
        problems.append("TELEHEALTH_CONSENT_REVOKED")
    elif any(c.valid_until <= at for c in telehealth):
        problems.append("TELEHEALTH_CONSENT_EXPIRED")
    else:
        problems.append("NO_TELEHEALTH_CONSENT")
    roi_accepted = ref.consent_forms[ROI_EMERGENCY_CONTACT].accepted
    if not any(
        c.consent_type == ROI_EMERGENCY_CONTACT and c.in_force(at, until) and c.form_version in roi_accepted
        for c in consents
    ):
        problems.append("NO_EMERGENCY_CONTACT_ROI")
    return problems


def privacy_problems(stage: str, attestation: str) -> list[str]:
    """Only session start carries an attestation."""
    if stage != "start":
        return []
    if not attestation:
        return ["PRIVACY_ATTESTATION_MISSING"]
    if attestation == COMPROMISED:
        return ["PRIVACY_COMPROMISED"]
    if attestation == ALTERNATE_LOCATION:
        return ["PRIVACY_ALTERNATE_LOCATION"]
    return []


def place_of_service(attestation: str) -> str:
    """10 when the client is at home (the default), 02 when they attest an alternate location."""
    return "02" if attestation == ALTERNATE_LOCATION else "10"
