"""Licensure rules engine (pure): may clinician C treat a client located in state S from time T
to its end (every credential must hold for the whole session)?

Telehealth happens where the client physically is, so the clinician needs, for the client's
state at the time of service, one of these bases:

- a direct license in that state (including one issued through the IMLC expedited pathway),
- an NLC multistate nurse license from an NLC home state, the client's state being an NLC member,
- PSYPACT: an APIT plus a current E.Passport, a home-state psychologist license, both states
  PSYPACT members, and the psychologist physically in the home state during the session,
- a Counseling Compact privilege to practice for that state, on a home-state counselor license,
- a Social Work Compact (or APRN Compact) multistate license, when that compact is operational,
- a state telehealth registration where the state's rules provide one (e.g. Florida s. 456.47), on
  a usable home-state license of the profession registered.

The engine fails closed: stale reference data, an unverified client location, a stale credential
verification or an unknown clinician location never produce an allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.compliance.reference import Compact, Reference, local_date

ALLOW, DENY, NEEDS_REVIEW = "allow", "deny", "needs_review"
ACTIVE = "active"

LICENSE_PROFESSIONS = {
    "PSYCHOLOGIST": "PSYCHOLOGIST",
    "LPC": "COUNSELOR",
    "LMHC": "COUNSELOR",
    "LPCC": "COUNSELOR",
    "LCPC": "COUNSELOR",
    "LCSW": "SOCIAL_WORKER",
    "LMSW": "SOCIAL_WORKER",
    "LMFT": "MARRIAGE_FAMILY_THERAPIST",
    "MD": "PHYSICIAN",
    "DO": "PHYSICIAN",
    "RN": "NURSE",
    "LPN": "NURSE",
    "NP": "NURSE_PRACTITIONER",
    "LCADC": "ADDICTION_COUNSELOR",
}
PROFESSIONS = frozenset(LICENSE_PROFESSIONS.values())
STATUSES = frozenset({"active", "inactive", "suspended", "revoked", "expired"})
COMPACT_KINDS = {
    "PSYPACT": frozenset({"APIT", "E_PASSPORT"}),
    "COUNSELING": frozenset({"PRIVILEGE"}),
    "SOCIAL_WORK": frozenset({"MULTISTATE"}),
    "APRN": frozenset({"MULTISTATE"}),
    "TELEHEALTH_REGISTRATION": frozenset({"REGISTRATION"}),
}


@dataclass(frozen=True)
class License:
    license_id: str
    state: str
    license_type: str
    profession: str
    valid_from: datetime
    valid_until: datetime
    status: str = ACTIVE
    multistate: bool = False
    issued_via: str = ""
    verified_at: datetime | None = None
    status_changes: tuple[tuple[datetime, str], ...] = ()  # board actions (effective_at, status), as recorded


@dataclass(frozen=True)
class CompactCredential:
    credential_id: str
    compact: str
    kind: str
    home_state: str
    privilege_state: str
    valid_from: datetime
    valid_until: datetime
    status: str = ACTIVE
    verified_at: datetime | None = None
    profession: str = ""  # a telehealth registration's: the profession it registers (its home license's)
    status_changes: tuple[tuple[datetime, str], ...] = ()  # board actions (effective_at, status), as recorded


@dataclass(frozen=True)
class LicensureQuery:
    client_state: str
    at: datetime  # time of service (its start)
    now: datetime  # when the question is asked (for staleness)
    clinician_state: str = ""  # where the clinician physically is; "" when unknown
    client_location_verified: bool = True
    require_verified_location: bool = False  # at session start
    until: datetime | None = None  # the end of the service (exclusive): credentials must cover [at, until)


@dataclass
class LicensureResult:
    decision: str
    reasons: list[str]
    basis: str = ""
    data_version: str = ""


@dataclass
class _Findings:
    deny: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)

    def add(self, reason: str, review: bool = False) -> None:
        target = self.review if review else self.deny
        if reason not in target:
            target.append(reason)


def decide_licensure(
    ref: Reference, licenses: Sequence[License], credentials: Sequence[CompactCredential], q: LicensureQuery
) -> LicensureResult:
    version = ref.version
    if q.client_state not in ref.states:
        return LicensureResult(NEEDS_REVIEW, ["NO_REFERENCE_DATA_FOR_STATE"], data_version=version)
    if ref.is_stale(q.now) or ref.is_stale(q.at) or (q.until is not None and ref.is_stale(q.until)):
        return LicensureResult(NEEDS_REVIEW, ["REFERENCE_DATA_STALE"], data_version=version)
    if q.require_verified_location and not q.client_location_verified:
        return LicensureResult(NEEDS_REVIEW, ["CLIENT_LOCATION_NOT_VERIFIED"], data_version=version)

    findings = _Findings()
    for check in (_direct_license, _nlc, _psypact, _counseling, _multistate_compacts, _telehealth_registration):
        basis = check(ref, licenses, credentials, q, findings)
        if basis is not None:
            basis_id, reason = basis
            return LicensureResult(ALLOW, [reason], basis_id, version)

    reasons: list[str] = []
    if not any(lic.state == q.client_state for lic in licenses):
        reasons.append("NO_LICENSE_IN_STATE")
    reasons.append("NO_COMPACT_PRIVILEGE")
    reasons += [r for r in findings.deny + findings.review if r not in reasons]
    decision = NEEDS_REVIEW if findings.review else DENY
    return LicensureResult(decision, reasons, data_version=version)


def status_at(item: License | CompactCredential, at: datetime) -> str:
    """The status in force at `at`: the last board action effective by then (of two effective at
    the same instant, the later recorded), else the status the credential was recorded with."""
    status = item.status
    for effective_at, changed in sorted(item.status_changes, key=lambda change: change[0]):  # stable sort
        if effective_at > at:
            break
        status = changed
    return status


def statuses_during(item: License | CompactCredential, start: datetime, until: datetime | None) -> list[str]:
    """The statuses in force during [start, until) (at `start` only without an end), in time order."""
    instants = [start]
    if until is not None:
        instants += sorted(e for e, _ in item.status_changes if start < e < until)
    return [status_at(item, instant) for instant in instants]


def _statuses_during(item: License | CompactCredential, q: LicensureQuery) -> list[str]:
    """The statuses in force during the time of service, in time order."""
    return statuses_during(item, q.at, q.until)


def _verified_recently(ref: Reference, verified_at: datetime | None, now: datetime) -> bool:
    return verified_at is not None and now - verified_at <= ref.verification_max_age


def _usable(
    ref: Reference, item: License | CompactCredential, q: LicensureQuery, findings: _Findings, label: str
) -> bool:
    """Current and active for the whole time of service [at, until), and verified recently; records why not."""
    inactive = next((status for status in _statuses_during(item, q) if status != ACTIVE), None)
    if inactive is not None:
        findings.add(f"{label}_{inactive.upper()}")
        return False
    if q.at < item.valid_from:
        findings.add(f"{label}_NOT_YET_VALID")
        return False
    if q.at >= item.valid_until:
        findings.add(f"{label}_EXPIRED")
        return False
    if q.until is not None and q.until > item.valid_until:
        findings.add(f"{label}_EXPIRES_DURING_SESSION")
        return False
    if not _verified_recently(ref, item.verified_at, q.now):
        findings.add(f"{label}_VERIFICATION_STALE", review=True)
        return False
    return True


def _member(ref: Reference, compact: Compact, state: str, q: LicensureQuery) -> bool:
    """A member of the compact on the state's own date at the time of service (not the UTC date)."""
    return compact.is_member(state, ref.state_date(state, q.at))


def _direct_license(
    ref: Reference,
    licenses: Sequence[License],
    credentials: Sequence[CompactCredential],
    q: LicensureQuery,
    findings: _Findings,
) -> tuple[str, str] | None:
    for lic in licenses:
        if lic.state != q.client_state or not _usable(ref, lic, q, findings, "LICENSE"):
            continue
        if lic.issued_via == "IMLC":
            imlc = ref.compacts["IMLC"]
            if not imlc.is_member(lic.state, local_date(lic.valid_from, ref.zone(lic.state))):  # issue date
                findings.add("IMLC_STATE_NOT_MEMBER_AT_ISSUE", review=True)
                continue
            return lic.license_id, "IMLC_ISSUED_LICENSE"
        return lic.license_id, "LICENSED_IN_STATE"
    return None


def _home_license(
    ref: Reference, licenses: Sequence[License], state: str, profession: str, q: LicensureQuery, findings: _Findings
) -> License | None:
    for lic in licenses:
        if lic.state == state and lic.profession == profession and _usable(ref, lic, q, findings, "HOME_LICENSE"):
            return lic
    findings.add("NO_CURRENT_HOME_STATE_LICENSE")
    return None


def _nlc(
    ref: Reference,
    licenses: Sequence[License],
    credentials: Sequence[CompactCredential],
    q: LicensureQuery,
    findings: _Findings,
) -> tuple[str, str] | None:
    nlc = ref.compacts["NLC"]
    for lic in licenses:
        if not lic.multistate or lic.profession not in nlc.professions:
            continue
        if not _member(ref, nlc, lic.state, q):
            findings.add("NLC_HOME_STATE_NOT_MEMBER")
            continue
        if not _member(ref, nlc, q.client_state, q):
            findings.add("NLC_CLIENT_STATE_NOT_MEMBER")
            continue
        if _usable(ref, lic, q, findings, "NLC_LICENSE"):
            return lic.license_id, "NLC_MULTISTATE_LICENSE"
    return None


def _compact_ready(ref: Reference, code: str, q: LicensureQuery, findings: _Findings) -> bool:
    compact = ref.compacts[code]
    if not compact.is_operational(ref.state_date(q.client_state, q.at)):  # practice is where the client is
        findings.add(f"{code}_NOT_OPERATIONAL", review=True)
        return False
    return True


def _psypact(
    ref: Reference,
    licenses: Sequence[License],
    credentials: Sequence[CompactCredential],
    q: LicensureQuery,
    findings: _Findings,
) -> tuple[str, str] | None:
    apits = [c for c in credentials if c.compact == "PSYPACT" and c.kind == "APIT"]
    if not apits or not _compact_ready(ref, "PSYPACT", q, findings):
        return None
    psypact = ref.compacts["PSYPACT"]
    for apit in apits:
        if not _usable(ref, apit, q, findings, "PSYPACT_APIT"):
            continue
        passports = [c for c in credentials if c.compact == "PSYPACT" and c.kind == "E_PASSPORT"]
        if not any(_usable(ref, p, q, findings, "PSYPACT_E_PASSPORT") for p in passports):
            findings.add("PSYPACT_NO_CURRENT_E_PASSPORT")
            continue
        if not _member(ref, psypact, apit.home_state, q):
            findings.add("PSYPACT_HOME_STATE_NOT_MEMBER")
            continue
        if not _member(ref, psypact, q.client_state, q):
            findings.add("PSYPACT_CLIENT_STATE_NOT_MEMBER")
            continue
        if _home_license(ref, licenses, apit.home_state, "PSYCHOLOGIST", q, findings) is None:
            continue
        if not q.clinician_state:
            findings.add("CLINICIAN_LOCATION_UNKNOWN", review=True)
            continue
        if q.clinician_state != apit.home_state:
            findings.add("PSYPACT_CLINICIAN_NOT_IN_HOME_STATE")
            continue
        return apit.credential_id, "PSYPACT_APIT"
    return None


def _counseling(
    ref: Reference,
    licenses: Sequence[License],
    credentials: Sequence[CompactCredential],
    q: LicensureQuery,
    findings: _Findings,
) -> tuple[str, str] | None:
    privileges = [c for c in credentials if c.compact == "COUNSELING" and c.kind == "PRIVILEGE"]
    if not privileges or not _compact_ready(ref, "COUNSELING", q, findings):
        return None
    compact = ref.compacts["COUNSELING"]
    for p in privileges:
        if p.privilege_state != q.client_state:
            continue
        if not _usable(ref, p, q, findings, "COUNSELING_PRIVILEGE"):
            continue
        days = {st: ref.state_date(st, q.at) for st in (p.home_state, q.client_state)}
        if not all(compact.is_member(st, day) for st, day in days.items()):
            if all(compact.is_member(st, day) or compact.is_enacted_only(st, day) for st, day in days.items()):
                findings.add("COUNSELING_STATE_NOT_YET_ACTIVE", review=True)  # no known activation date
            else:
                findings.add("COUNSELING_COMPACT_STATE_NOT_MEMBER")
            continue
        if _home_license(ref, licenses, p.home_state, "COUNSELOR", q, findings) is None:
            continue
        return p.credential_id, "COUNSELING_COMPACT_PRIVILEGE"
    if not any(p.privilege_state == q.client_state for p in privileges):
        findings.add("NO_COUNSELING_PRIVILEGE_FOR_STATE")
    return None


def _multistate_compacts(
    ref: Reference,
    licenses: Sequence[License],
    credentials: Sequence[CompactCredential],
    q: LicensureQuery,
    findings: _Findings,
) -> tuple[str, str] | None:
    for code, profession in (("SOCIAL_WORK", "SOCIAL_WORKER"), ("APRN", "NURSE_PRACTITIONER")):
        multistate = [c for c in credentials if c.compact == code and c.kind == "MULTISTATE"]
        if not multistate or not _compact_ready(ref, code, q, findings):
            continue
        compact = ref.compacts[code]
        for m in multistate:
            if not _usable(ref, m, q, findings, f"{code}_MULTISTATE"):
                continue
            if not (_member(ref, compact, m.home_state, q) and _member(ref, compact, q.client_state, q)):
                findings.add(f"{code}_STATE_NOT_MEMBER")
                continue
            if _home_license(ref, licenses, m.home_state, profession, q, findings) is None:
                continue
            return m.credential_id, f"{code}_MULTISTATE_LICENSE"
    return None


def _telehealth_registration(
    ref: Reference,
    licenses: Sequence[License],
    credentials: Sequence[CompactCredential],
    q: LicensureQuery,
    findings: _Findings,
) -> tuple[str, str] | None:
    rules = ref.states[q.client_state]
    regs = [c for c in credentials if c.compact == "TELEHEALTH_REGISTRATION" and c.privilege_state == q.client_state]
    if not regs:
        return None
    if not rules.telehealth_registration:
        findings.add("STATE_HAS_NO_TELEHEALTH_REGISTRATION")
        return None
    for reg in regs:
        if not _usable(ref, reg, q, findings, "TELEHEALTH_REGISTRATION"):
            continue
        if not reg.profession:  # recorded before registrations named one: which license backs it is unknown
            findings.add("TELEHEALTH_REGISTRATION_PROFESSION_UNKNOWN", review=True)
            continue
        if _home_license(ref, licenses, reg.home_state, reg.profession, q, findings) is None:
            continue
        return reg.credential_id, "STATE_TELEHEALTH_REGISTRATION"
    return None
