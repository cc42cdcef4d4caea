"""Request validation (pure): every problem of a request is reported at once as field violations."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from services.compliance.coverage import PayerPolicy
from services.compliance.licensure import COMPACT_KINDS, LICENSE_PROFESSIONS, PROFESSIONS, STATUSES
from services.compliance.reference import Reference
from services.plumbing.errors import FieldViolations

LICENSE_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,19}$")
AUTH_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,39}$")
OPAQUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
FORM_VERSION = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")
# How far ahead of this server's clock a past fact's time (a signature, a verification) may be:
# the caller's clock may run a little fast, a fact from the future may not be recorded.
CLOCK_SKEW = timedelta(minutes=5)


def parse_day(v: FieldViolations, value: str, name: str, required: bool = True) -> date | None:
    if not value:
        if required:
            v.add(name, "required: YYYY-MM-DD")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        v.add(name, "must be a date YYYY-MM-DD")
        return None


def check_id(v: FieldViolations, value: str, name: str, required: bool = True) -> None:
    if not value:
        if required:
            v.add(name, "required")
        return
    if not OPAQUE_ID.match(value):
        v.add(name, "must be an opaque id: 1-128 characters A-Z a-z 0-9 . _ : -")


def check_state(v: FieldViolations, ref: Reference, value: str, name: str, required: bool = True) -> None:
    if not value:
        if required:
            v.add(name, "required: a USPS state or territory code, e.g. CA")
        return
    if value not in ref.states:
        v.add(name, "unknown state: must be a USPS state or territory code, e.g. CA")


def check_enum(v: FieldViolations, enum: EnumTypeWrapper, value: int, name: str) -> None:
    """An enum field holds one of its declared values (proto3 keeps whatever number it is sent)."""
    if value not in enum.values():
        v.add(name, f"unknown value {value}: one of {', '.join(enum.keys())}")


def check_not_future(v: FieldViolations, value: datetime | None, now: datetime, name: str) -> None:
    if value is not None and value > now + CLOCK_SKEW:
        v.add(name, "must not be in the future")


def check_range(
    v: FieldViolations, start: datetime | date | None, end: datetime | date | None, start_name: str, end_name: str
) -> None:
    if start is None:
        v.add(start_name, "required")
    if end is None:
        v.add(end_name, "required")
    if start is not None and end is not None and end <= start:
        v.add(end_name, f"must be after {start_name}")


def validate_license(
    ref: Reference,
    *,
    clinician_id: str,
    state: str,
    license_type: str,
    number: str,
    profession: str,
    status: str,
    issued_via: str,
    multistate: bool,
    valid_from: datetime | None,
    valid_until: datetime | None,
    verified_at: datetime | None,
    now: datetime,
) -> None:
    v = FieldViolations()
    check_id(v, clinician_id, "clinician_id")
    check_state(v, ref, state, "state")
    v.require(
        license_type in LICENSE_PROFESSIONS,
        "license_type",
        f"must be one of {', '.join(sorted(LICENSE_PROFESSIONS))}",
    )
    v.require(bool(LICENSE_NUMBER.match(number)), "license_number", "3-20 characters: A-Z, 0-9 and '-'")
    if profession:
        v.require(profession in PROFESSIONS, "profession", f"must be one of {', '.join(sorted(PROFESSIONS))}")
        if license_type in LICENSE_PROFESSIONS and profession in PROFESSIONS:
            v.require(
                LICENSE_PROFESSIONS[license_type] == profession,
                "profession",
                f"{license_type} is a {LICENSE_PROFESSIONS[license_type]} license",
            )
    if status:
        v.require(status in STATUSES, "status", f"must be one of {', '.join(sorted(STATUSES))}")
    v.require(issued_via in ("", "IMLC"), "issued_via", "must be empty or IMLC")
    if issued_via == "IMLC":
        v.require(LICENSE_PROFESSIONS.get(license_type) == "PHYSICIAN", "issued_via", "IMLC issues physician licenses")
    if multistate:
        v.require(
            LICENSE_PROFESSIONS.get(license_type) == "NURSE", "multistate", "only NLC nurse licenses are multistate"
        )
        if license_type in LICENSE_PROFESSIONS and state in ref.states:
            v.require(
                state in ref.compacts["NLC"].members, "multistate", "a multistate license needs an NLC home state"
            )
    check_range(v, valid_from, valid_until, "valid_from", "valid_until")
    check_not_future(v, verified_at, now, "verified_at")
    v.raise_if_any()


def validate_compact_credential(
    ref: Reference,
    *,
    clinician_id: str,
    compact: str,
    kind: str,
    home_state: str,
    privilege_state: str,
    number: str,
    profession: str,
    status: str,
    valid_from: datetime | None,
    valid_until: datetime | None,
    verified_at: datetime | None,
    now: datetime,
) -> None:
    v = FieldViolations()
    check_id(v, clinician_id, "clinician_id")
    kinds = COMPACT_KINDS.get(compact)
    if kinds is None:
        v.add("compact", f"must be one of {', '.join(sorted(COMPACT_KINDS))}")
    elif kind not in kinds:
        v.add("kind", f"{compact} credentials are {', '.join(sorted(kinds))}")
    check_state(v, ref, home_state, "home_state")
    needs_privilege_state = kind in ("PRIVILEGE", "REGISTRATION")
    check_state(v, ref, privilege_state, "privilege_state", required=needs_privilege_state)
    if privilege_state and not needs_privilege_state:
        v.add("privilege_state", "only privileges and registrations name a remote state")
    if needs_privilege_state and privilege_state and privilege_state == home_state:
        v.add("privilege_state", "a privilege is for a remote state, not the home state")
    v.require(bool(LICENSE_NUMBER.match(number)), "credential_number", "3-20 characters: A-Z, 0-9 and '-'")
    if kind == "REGISTRATION":
        v.require(profession in PROFESSIONS, "profession", f"required: one of {', '.join(sorted(PROFESSIONS))}")
    elif profession:
        v.add("profession", "only a registration names a profession (a compact implies its own)")
    if status:
        v.require(status in STATUSES, "status", f"must be one of {', '.join(sorted(STATUSES))}")
    check_range(v, valid_from, valid_until, "valid_from", "valid_until")
    check_not_future(v, verified_at, now, "verified_at")
    v.raise_if_any()


def validate_status_change(*, record_id: str, id_field: str, status: str, effective_at: datetime | None) -> None:
    v = FieldViolations()
    check_id(v, record_id, id_field)
    v.require(status in STATUSES, "status", f"required: one of {', '.join(sorted(STATUSES))}")
    v.require(effective_at is not None, "effective_at", "required: when the board action takes effect")
    v.raise_if_any()


def validate_policy(ref: Reference, p: PayerPolicy) -> None:
    v = FieldViolations()
    check_id(v, p.plan_id, "plan_id")
    v.require(bool(p.payer_name), "payer_name", "required")
    v.require(
        p.line_of_business in ("commercial", "medicaid", "medicare"),
        "line_of_business",
        "must be commercial, medicaid or medicare",
    )
    v.require(p.billing_mode in ("per_diem", "per_service"), "billing_mode", "must be per_diem or per_service")
    for level, code in p.per_diem_codes.items():
        v.require(level in ref.levels_of_care, f"per_diem_codes[{level}]", "unknown level of care")
        known = ref.codes.get(code)
        v.require(known is not None and known.kind == "per_diem", f"per_diem_codes[{level}]", "not a per-diem code")
    if p.billing_mode == "per_diem":
        v.require(bool(p.per_diem_codes), "per_diem_codes", "required for per_diem billing")
    v.require(bool(p.covered_codes), "covered_codes", "required")
    for code in sorted(p.covered_codes):
        v.require(code in ref.codes, "covered_codes", f"unknown billing code {code}")
    v.require(p.video_modifier in ("", "95"), "video_modifier", "must be 95 or empty")
    if p.audio_only_covered:
        v.require(p.audio_only_modifier in ("93", "FQ"), "audio_only.modifier", "must be 93 or FQ when covered")
    else:
        v.require(not p.audio_only_modifier, "audio_only.modifier", "must be empty when audio-only is not covered")
    v.require(0 <= p.min_hours_per_day <= 24, "min_hours_per_day", "must be 0-24")
    v.require(0 <= p.min_hours_per_week <= 168, "min_hours_per_week", "must be 0-168")
    v.require(0 <= p.min_days_per_week <= 7, "min_days_per_week", "must be 0-7")
    v.require(p.auth_warn_units >= 0, "auth_warn_units", "must be >= 0")
    v.require(p.concurrent_review_warn_days >= 0, "concurrent_review_warn_days", "must be >= 0")
    if p.revenue_code:  # not used (lines carry their level of care's code); a stored value is still a real one
        v.require(p.revenue_code in ref.revenue_codes, "revenue_code", f"must be one of {sorted(ref.revenue_codes)}")
    v.raise_if_any()
