"""Pure licensure rules: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from services.plumbing.errors import FieldViolations

US_STATES = frozenset(
    (
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
        "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP"
    ).split()
)
LICENSE_TYPES = frozenset({"PSYCHOLOGIST", "LPC", "LMHC", "LCSW", "LMFT", "MD", "DO", "RN", "NP", "LCADC"})
LICENSE_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,19}$")

ALLOW, DENY, NEEDS_REVIEW = 1, 2, 3


@dataclass(frozen=True)
class LicenseRecord:
    license_id: str
    state: str
    license_type: str
    valid_from: datetime
    valid_until: datetime


def validate_license(
    clinician_id: str,
    state: str,
    license_type: str,
    number: str,
    valid_from: datetime | None,
    valid_until: datetime | None,
) -> None:
    v = FieldViolations()
    v.require(bool(clinician_id), "clinician_id", "required")
    v.require(state in US_STATES, "state", "must be a USPS state or territory code, e.g. CA")
    v.require(license_type in LICENSE_TYPES, "license_type", f"must be one of {', '.join(sorted(LICENSE_TYPES))}")
    v.require(bool(LICENSE_NUMBER.match(number)), "license_number", "3-20 characters: A-Z, 0-9 and '-'")
    v.require(valid_from is not None, "valid_from", "required")
    v.require(valid_until is not None, "valid_until", "required")
    if valid_from and valid_until and valid_until <= valid_from:
        v.add("valid_until", "must be after valid_from")
    v.raise_if_any()


def decide_licensure(licenses: list[LicenseRecord], client_state: str, at: datetime) -> tuple[int, list[str], str]:
    """Allowed only with a license for the client's state valid at the time of service.

    Returns (decision, reasons, basis license id).
    """
    in_state = [lic for lic in licenses if lic.state == client_state]
    if not in_state:
        return DENY, ["NO_LICENSE_IN_STATE"], ""
    for lic in in_state:
        if lic.valid_from <= at < lic.valid_until:
            return ALLOW, ["LICENSED_IN_STATE"], lic.license_id
    if any(at >= lic.valid_until for lic in in_state):
        return DENY, ["LICENSE_EXPIRED"], ""
    return DENY, ["LICENSE_NOT_YET_VALID"], ""
