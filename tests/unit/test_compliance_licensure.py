"""Table-driven tests of the licensure rules engine against the repo's reference data."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.compliance.licensure import (
    ACTIVE,
    ALLOW,
    DENY,
    NEEDS_REVIEW,
    CompactCredential,
    License,
    LicensureQuery,
    decide_licensure,
    status_at,
)
from services.compliance.reference import Reference, load_reference, local_day_bounds
from services.compliance.store import with_status_changes

REF = load_reference()
AT = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)  # a Wednesday afternoon session
NOW = AT - timedelta(days=1)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
FAR = datetime(2030, 1, 1, tzinfo=UTC)


def lic(state: str, license_type: str = "LPC", profession: str = "COUNSELOR", **kw: object) -> License:
    fields: dict[str, object] = {
        "license_id": f"lic-{state}-{license_type}",
        "state": state,
        "license_type": license_type,
        "profession": profession,
        "valid_from": LONG_AGO,
        "valid_until": FAR,
        "verified_at": NOW - timedelta(days=30),
    }
    fields.update(kw)
    return License(**fields)  # type: ignore[arg-type]


def cred(compact: str, kind: str, home: str, privilege: str = "", **kw: object) -> CompactCredential:
    fields: dict[str, object] = {
        "credential_id": f"{compact}-{kind}-{privilege or home}",
        "compact": compact,
        "kind": kind,
        "home_state": home,
        "privilege_state": privilege,
        "valid_from": LONG_AGO,
        "valid_until": FAR,
        "verified_at": NOW - timedelta(days=30),
    }
    fields.update(kw)
    return CompactCredential(**fields)  # type: ignore[arg-type]


def q(client_state: str, **kw: object) -> LicensureQuery:
    fields: dict[str, object] = {"client_state": client_state, "at": AT, "now": NOW}
    fields.update(kw)
    return LicensureQuery(**fields)  # type: ignore[arg-type]


PSY_HOME = lic("AZ", "PSYCHOLOGIST", "PSYCHOLOGIST")
APIT = cred("PSYPACT", "APIT", "AZ")
EPASS = cred("PSYPACT", "E_PASSPORT", "AZ")
FL_REG = cred("TELEHEALTH_REGISTRATION", "REGISTRATION", "GA", "FL", profession="COUNSELOR")

CASES = [
    # (name, licenses, credentials, query, decision, reason expected in reasons, basis prefix)
    ("direct license", [lic("CA")], [], q("CA"), ALLOW, "LICENSED_IN_STATE", "lic-CA"),
    ("client travels: no license, no privilege", [lic("CA")], [], q("NV"), DENY, "NO_LICENSE_IN_STATE", ""),
    ("travel reason names the missing privilege", [lic("CA")], [], q("NV"), DENY, "NO_COMPACT_PRIVILEGE", ""),
    (
        "expired license",
        [lic("CA", valid_until=AT - timedelta(seconds=1))],
        [],
        q("CA"),
        DENY,
        "LICENSE_EXPIRED",
        "",
    ),
    (
        "license not yet valid",
        [lic("CA", valid_from=AT + timedelta(days=1))],
        [],
        q("CA"),
        DENY,
        "LICENSE_NOT_YET_VALID",
        "",
    ),
    ("suspended license", [lic("CA", status="suspended")], [], q("CA"), DENY, "LICENSE_SUSPENDED", ""),
    (
        "stale verification fails closed",
        [lic("CA", verified_at=NOW - timedelta(days=500))],
        [],
        q("CA"),
        NEEDS_REVIEW,
        "LICENSE_VERIFICATION_STALE",
        "",
    ),
    (
        "never verified fails closed",
        [lic("CA", verified_at=None)],
        [],
        q("CA"),
        NEEDS_REVIEW,
        "LICENSE_VERIFICATION_STALE",
        "",
    ),
    (
        "unverified location at start",
        [lic("CA")],
        [],
        q("CA", client_location_verified=False, require_verified_location=True),
        NEEDS_REVIEW,
        "CLIENT_LOCATION_NOT_VERIFIED",
        "",
    ),
    # PSYPACT
    (
        "PSYPACT APIT, psychologist at home",
        [PSY_HOME],
        [APIT, EPASS],
        q("TX", clinician_state="AZ"),
        ALLOW,
        "PSYPACT_APIT",
        "PSYPACT",
    ),
    (
        "PSYPACT psychologist travelling",
        [PSY_HOME],
        [APIT, EPASS],
        q("TX", clinician_state="CA"),
        DENY,
        "PSYPACT_CLINICIAN_NOT_IN_HOME_STATE",
        "",
    ),
    (
        "PSYPACT clinician location unknown",
        [PSY_HOME],
        [APIT, EPASS],
        q("TX"),
        NEEDS_REVIEW,
        "CLINICIAN_LOCATION_UNKNOWN",
        "",
    ),
    (
        "PSYPACT client state not a member",
        [PSY_HOME],
        [APIT, EPASS],
        q("CA", clinician_state="AZ"),
        DENY,
        "PSYPACT_CLIENT_STATE_NOT_MEMBER",
        "",
    ),
    (
        "PSYPACT without E.Passport",
        [PSY_HOME],
        [APIT],
        q("TX", clinician_state="AZ"),
        DENY,
        "PSYPACT_NO_CURRENT_E_PASSPORT",
        "",
    ),
    (
        "PSYPACT E.Passport expired",
        [PSY_HOME],
        [APIT, replace(EPASS, valid_until=AT - timedelta(days=1))],
        q("TX", clinician_state="AZ"),
        DENY,
        "PSYPACT_E_PASSPORT_EXPIRED",
        "",
    ),
    (
        "PSYPACT without home license",
        [],
        [APIT, EPASS],
        q("TX", clinician_state="AZ"),
        DENY,
        "NO_CURRENT_HOME_STATE_LICENSE",
        "",
    ),
    (
        "PSYPACT member not yet effective (MI joined 2025-04-01)",
        [PSY_HOME],
        [APIT, EPASS],
        q("MI", clinician_state="AZ", at=datetime(2025, 3, 15, tzinfo=UTC), now=datetime(2025, 3, 14, tzinfo=UTC)),
        DENY,
        "PSYPACT_CLIENT_STATE_NOT_MEMBER",
        "",
    ),
    (
        "PSYPACT member effective (MI)",
        [PSY_HOME],
        [APIT, EPASS],
        q("MI", clinician_state="AZ"),
        ALLOW,
        "PSYPACT_APIT",
        "PSYPACT",
    ),
    # Counseling Compact (live 2025-09-30 with AZ and MN; other enacted states not yet known active)
    (
        "Counseling privilege for the client's state",
        [lic("MN")],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ")],
        q("AZ"),
        ALLOW,
        "COUNSELING_COMPACT_PRIVILEGE",
        "COUNSELING",
    ),
    (
        "Counseling privilege is per state",
        [lic("MN")],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ")],
        q("CO"),
        DENY,
        "NO_COUNSELING_PRIVILEGE_FOR_STATE",
        "",
    ),
    (
        "Counseling privilege into an enacted state not yet active",
        [lic("MN")],
        [cred("COUNSELING", "PRIVILEGE", "MN", "KY")],
        q("KY"),
        NEEDS_REVIEW,
        "COUNSELING_STATE_NOT_YET_ACTIVE",
        "",
    ),
    (
        "Counseling privilege into a non-member",
        [lic("MN")],
        [cred("COUNSELING", "PRIVILEGE", "MN", "NY")],
        q("NY"),
        DENY,
        "COUNSELING_COMPACT_STATE_NOT_MEMBER",
        "",
    ),
    (
        "Counseling privilege before privileges were issued",
        [lic("MN")],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ")],
        q("AZ", at=datetime(2025, 9, 29, tzinfo=UTC), now=datetime(2025, 9, 28, tzinfo=UTC)),
        NEEDS_REVIEW,
        "COUNSELING_NOT_OPERATIONAL",
        "",
    ),
    (
        "Counseling privilege with expired home license",
        [lic("MN", valid_until=AT - timedelta(days=3))],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ")],
        q("AZ"),
        DENY,
        "NO_CURRENT_HOME_STATE_LICENSE",
        "",
    ),
    # NLC
    (
        "NLC multistate RN",
        [lic("TX", "RN", "NURSE", multistate=True)],
        [],
        q("FL"),
        ALLOW,
        "NLC_MULTISTATE_LICENSE",
        "lic-TX",
    ),
    (
        "NLC into a non-member",
        [lic("TX", "RN", "NURSE", multistate=True)],
        [],
        q("CA"),
        DENY,
        "NLC_CLIENT_STATE_NOT_MEMBER",
        "",
    ),
    ("single-state RN is not multistate", [lic("TX", "RN", "NURSE")], [], q("FL"), DENY, "NO_LICENSE_IN_STATE", ""),
    # IMLC
    (
        "IMLC-issued license",
        [lic("CO", "MD", "PHYSICIAN", issued_via="IMLC")],
        [],
        q("CO"),
        ALLOW,
        "IMLC_ISSUED_LICENSE",
        "lic-CO",
    ),
    (
        "IMLC license in a state that was not a member at issue",
        [lic("NY", "MD", "PHYSICIAN", issued_via="IMLC")],
        [],
        q("NY"),
        NEEDS_REVIEW,
        "IMLC_STATE_NOT_MEMBER_AT_ISSUE",
        "",
    ),
    (
        "IMLC license does not reach other states",
        [lic("CO", "MD", "PHYSICIAN", issued_via="IMLC")],
        [],
        q("UT"),
        DENY,
        "NO_LICENSE_IN_STATE",
        "",
    ),
    # Social Work Compact (not operational in this data version) and APRN (never operational)
    (
        "Social Work multistate before operation",
        [lic("OH", "LCSW", "SOCIAL_WORKER")],
        [cred("SOCIAL_WORK", "MULTISTATE", "OH")],
        q("KY"),
        NEEDS_REVIEW,
        "SOCIAL_WORK_NOT_OPERATIONAL",
        "",
    ),
    (
        "APRN compact not operational",
        [lic("UT", "NP", "NURSE_PRACTITIONER")],
        [cred("APRN", "MULTISTATE", "UT")],
        q("DE"),
        NEEDS_REVIEW,
        "APRN_NOT_OPERATIONAL",
        "",
    ),
    # state telehealth registration
    (
        "Florida out-of-state telehealth registration",
        [lic("GA")],
        [FL_REG],
        q("FL"),
        ALLOW,
        "STATE_TELEHEALTH_REGISTRATION",
        "TELEHEALTH",
    ),
    (
        "Florida registration on a home license verified long ago fails closed",
        [lic("GA", verified_at=datetime(2019, 6, 1, tzinfo=UTC))],
        [FL_REG],
        q("FL"),
        NEEDS_REVIEW,
        "HOME_LICENSE_VERIFICATION_STALE",
        "",
    ),
    (
        "Florida counselor registration on a nurse's home license",
        [lic("GA", "RN", "NURSE")],
        [FL_REG],
        q("FL"),
        DENY,
        "NO_CURRENT_HOME_STATE_LICENSE",
        "",
    ),
    (
        "Florida nurse registration on a nurse's home license",
        [lic("GA", "RN", "NURSE")],
        [replace(FL_REG, profession="NURSE")],
        q("FL"),
        ALLOW,
        "STATE_TELEHEALTH_REGISTRATION",
        "TELEHEALTH",
    ),
    (
        "Florida registration on a suspended home license",
        [lic("GA", status="suspended")],
        [FL_REG],
        q("FL"),
        DENY,
        "HOME_LICENSE_SUSPENDED",
        "",
    ),
    (
        "Florida registration recorded without its profession fails closed",
        [lic("GA")],
        [replace(FL_REG, profession="")],
        q("FL"),
        NEEDS_REVIEW,
        "TELEHEALTH_REGISTRATION_PROFESSION_UNKNOWN",
        "",
    ),
    (
        "registration in a state without that pathway",
        [lic("GA")],
        [cred("TELEHEALTH_REGISTRATION", "REGISTRATION", "GA", "NY", profession="COUNSELOR")],
        q("NY"),
        DENY,
        "STATE_HAS_NO_TELEHEALTH_REGISTRATION",
        "",
    ),
]


@pytest.mark.parametrize(("name", "licenses", "credentials", "query", "decision", "reason", "basis"), CASES)
def test_licensure_rules(name, licenses, credentials, query, decision, reason, basis) -> None:
    result = decide_licensure(REF, licenses, credentials, query)
    assert result.decision == decision, (name, result)
    assert reason in result.reasons, (name, result)
    assert result.basis.startswith(basis) if basis else result.basis == "", (name, result)
    assert result.data_version == REF.version


def test_social_work_compact_allows_once_operational() -> None:
    compacts = dict(REF.compacts)
    compacts["SOCIAL_WORK"] = replace(compacts["SOCIAL_WORK"], operational_from=date(2026, 7, 1))
    ref = replace(REF, compacts=compacts)
    result = decide_licensure(
        ref, [lic("OH", "LCSW", "SOCIAL_WORKER")], [cred("SOCIAL_WORK", "MULTISTATE", "OH")], q("KY")
    )
    assert (result.decision, result.reasons) == (ALLOW, ["SOCIAL_WORK_MULTISTATE_LICENSE"])


def test_stale_reference_data_never_allows() -> None:
    stale: Reference = replace(REF, review_by=NOW.date() - timedelta(days=1))
    result = decide_licensure(stale, [lic("CA")], [], q("CA"))
    assert (result.decision, result.reasons) == (NEEDS_REVIEW, ["REFERENCE_DATA_STALE"])


def test_state_without_reference_data_never_allows() -> None:
    states = {k: v for k, v in REF.states.items() if k != "CA"}
    result = decide_licensure(replace(REF, states=states), [lic("CA")], [], q("CA"))
    assert result.decision == NEEDS_REVIEW


EXPIRY_EDGES = [
    # license expires_on 2026-12-31 in the licensing state's zone; session instants around midnight
    ("CA", datetime(2027, 1, 1, 7, 59, tzinfo=UTC), ALLOW),  # 23:59 PST on Dec 31
    ("CA", datetime(2027, 1, 1, 8, 0, tzinfo=UTC), DENY),  # 00:00 PST on Jan 1
    ("NY", datetime(2027, 1, 1, 4, 59, tzinfo=UTC), ALLOW),  # 23:59 EST
    ("NY", datetime(2027, 1, 1, 5, 0, tzinfo=UTC), DENY),
    ("HI", datetime(2027, 1, 1, 9, 59, tzinfo=UTC), ALLOW),  # HST is UTC-10
    ("AZ", datetime(2027, 1, 1, 6, 59, tzinfo=UTC), ALLOW),  # MST, no DST
]


@pytest.mark.parametrize(("state", "at", "decision"), EXPIRY_EDGES)
def test_license_expiry_is_end_of_day_in_the_licensing_state(state: str, at: datetime, decision: str) -> None:
    start, _ = local_day_bounds(date(2024, 1, 1), REF.zone(state))
    _, end = local_day_bounds(date(2026, 12, 31), REF.zone(state))
    license_ = lic(state, valid_from=start, valid_until=end)
    result = decide_licensure(REF, [license_], [], q(state, at=at, now=at - timedelta(days=1)))
    assert result.decision == decision, result


def test_day_bounds_follow_daylight_saving() -> None:
    # 2026-03-08: US DST starts, the day in New York is 23 hours long
    start, end = local_day_bounds(date(2026, 3, 8), REF.zone("NY"))
    assert end - start == timedelta(hours=23)


def test_the_reference_data_is_not_due_for_review_within_30_days() -> None:
    """Past `review_by` every licensure answer is NEEDS_REVIEW and every booking is refused (fail
    closed, by design): this fails a month ahead, by name, instead of the booking tests failing on the day."""
    due_in = REF.review_by - datetime.now(UTC).date()
    assert due_in > timedelta(days=30), (
        f"services/compliance/data/compacts.yaml and states.yaml are due for review on {REF.review_by}: check "
        "the compacts' member states and effective dates against their commissions, then move review_by"
    )


# --- compact effective dates are local dates in the state ----------------------------------------

DETROIT = ZoneInfo("America/Detroit")


def psypact_into(state: str, at: datetime, ref: Reference = REF) -> tuple[str, list[str]]:
    """A psychologist at home in AZ (PSYPACT since 2020) treating a client in `state` at `at`."""
    at = at.astimezone(UTC)  # as the API delivers it
    verified = at - timedelta(days=30)
    result = decide_licensure(
        ref,
        [replace(PSY_HOME, verified_at=verified)],
        [replace(APIT, verified_at=verified), replace(EPASS, verified_at=verified)],
        q(state, at=at, now=at - timedelta(days=1), clinician_state="AZ"),
    )
    return result.decision, result.reasons


def test_michigan_psypact_membership_starts_on_its_date_in_michigan_not_in_utc() -> None:
    # Michigan joined PSYPACT on 2025-04-01. 20:30 in Detroit on March 31 is already April 1 in UTC.
    evening_before = datetime(2025, 3, 31, 20, 30, tzinfo=DETROIT)
    assert evening_before.astimezone(UTC).date() == date(2025, 4, 1)
    decision, reasons = psypact_into("MI", evening_before)
    assert (decision, "PSYPACT_CLIENT_STATE_NOT_MEMBER" in reasons) == (DENY, True), reasons
    assert psypact_into("MI", datetime(2025, 4, 1, 9, 0, tzinfo=DETROIT))[0] == ALLOW


def test_a_multi_zone_state_counts_a_date_from_its_last_midnight() -> None:
    # Michigan's Upper Peninsula counties on Central time (America/Menominee) reach April 1 an hour
    # after Detroit: until then the date has not begun in the whole state.
    assert psypact_into("MI", datetime(2025, 4, 1, 0, 30, tzinfo=DETROIT))[0] == DENY
    assert psypact_into("MI", datetime(2025, 4, 1, 0, 0, tzinfo=ZoneInfo("America/Menominee")))[0] == ALLOW


@pytest.mark.parametrize(
    ("since", "before", "from_"),
    [
        # spring forward (Central midnight is 06:00 UTC the day before and after the change)
        (date(2026, 3, 8), datetime(2026, 3, 8, 5, 59, tzinfo=UTC), datetime(2026, 3, 8, 6, 0, tzinfo=UTC)),
        # fall back: midnight of the change day is still daylight time (CDT, UTC-5)
        (date(2026, 11, 1), datetime(2026, 11, 1, 4, 59, tzinfo=UTC), datetime(2026, 11, 1, 5, 0, tzinfo=UTC)),
    ],
)
def test_a_membership_date_follows_daylight_saving(since: date, before: datetime, from_: datetime) -> None:
    compacts = dict(REF.compacts)
    members = {**compacts["PSYPACT"].members, "MI": since}
    compacts["PSYPACT"] = replace(compacts["PSYPACT"], members=members)
    ref = replace(REF, compacts=compacts)
    assert psypact_into("MI", before, ref)[0] == DENY
    assert psypact_into("MI", from_, ref)[0] == ALLOW


def test_the_home_state_membership_is_read_on_the_home_states_date() -> None:
    # the home state (MI, Central in the west) joins at its own local midnight, the client's state (AZ) is long a member
    home = lic("MI", "PSYCHOLOGIST", "PSYCHOLOGIST", license_id="lic-MI")
    creds = [replace(APIT, home_state="MI"), replace(EPASS, home_state="MI")]

    def at(instant: datetime) -> str:
        instant = instant.astimezone(UTC)
        query = q("AZ", at=instant, now=instant - timedelta(days=1), clinician_state="MI")
        stamped = [replace(c, verified_at=instant - timedelta(days=1)) for c in creds]
        return decide_licensure(REF, [replace(home, verified_at=instant - timedelta(days=1))], stamped, query).decision

    assert at(datetime(2025, 3, 31, 23, 30, tzinfo=ZoneInfo("America/Menominee"))) == DENY
    assert at(datetime(2025, 4, 1, 0, 0, tzinfo=ZoneInfo("America/Menominee"))) == ALLOW


def test_a_compact_is_operational_from_its_date_in_the_clients_state() -> None:
    # Counseling Compact privileges from 2025-09-30: 22:00 in Arizona the day before is that date in UTC.
    evening_before = datetime(2025, 9, 29, 22, 0, tzinfo=ZoneInfo("America/Phoenix")).astimezone(UTC)
    home = lic("MN", verified_at=evening_before - timedelta(days=1))
    privilege = cred("COUNSELING", "PRIVILEGE", "MN", "AZ", verified_at=evening_before - timedelta(days=1))
    query = q("AZ", at=evening_before, now=evening_before - timedelta(days=1))
    result = decide_licensure(REF, [home], [privilege], query)
    assert result.decision == NEEDS_REVIEW and "COUNSELING_NOT_OPERATIONAL" in result.reasons, result


# --- validity covers the whole session [at, until) ------------------------------------------------

UNTIL = AT + timedelta(hours=3)
MID = AT + timedelta(hours=1)
SESSION_CASES = [
    # (name, licenses, credentials, query, decision, reason)
    ("license in force all session", [lic("CA")], [], q("CA", until=UNTIL), ALLOW, "LICENSED_IN_STATE"),
    (
        "license expires mid-session",
        [lic("CA", valid_until=MID)],
        [],
        q("CA", until=UNTIL),
        DENY,
        "LICENSE_EXPIRES_DURING_SESSION",
    ),
    (
        "license ends as the session ends (half-open)",
        [lic("CA", valid_until=UNTIL)],
        [],
        q("CA", until=UNTIL),
        ALLOW,
        "LICENSED_IN_STATE",
    ),
    (
        "counseling privilege expires mid-session",
        [lic("MN")],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ", valid_until=MID)],
        q("AZ", until=UNTIL),
        DENY,
        "COUNSELING_PRIVILEGE_EXPIRES_DURING_SESSION",
    ),
    (
        "home license under a privilege expires mid-session",
        [lic("MN", valid_until=MID)],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ")],
        q("AZ", until=UNTIL),
        DENY,
        "HOME_LICENSE_EXPIRES_DURING_SESSION",
    ),
    (
        "E.Passport expires mid-session",
        [PSY_HOME],
        [APIT, replace(EPASS, valid_until=MID)],
        q("TX", clinician_state="AZ", until=UNTIL),
        DENY,
        "PSYPACT_E_PASSPORT_EXPIRES_DURING_SESSION",
    ),
]


@pytest.mark.parametrize(("name", "licenses", "credentials", "query", "decision", "reason"), SESSION_CASES)
def test_validity_must_cover_the_whole_session(name, licenses, credentials, query, decision, reason) -> None:
    result = decide_licensure(REF, licenses, credentials, query)
    assert (result.decision, reason in result.reasons) == (decision, True), (name, result)


# --- board actions: a status from its effective time on --------------------------------------------

BEFORE, AFTER = AT - timedelta(days=2), UNTIL + timedelta(minutes=1)
BOARD_CASES = [
    # (name, licenses, credentials, query, decision, reason)
    (
        "license suspended before the session",
        [lic("CA", status_changes=((BEFORE, "suspended"),))],
        [],
        q("CA", until=UNTIL),
        DENY,
        "LICENSE_SUSPENDED",
    ),
    (
        "license suspended from a time after the session",
        [lic("CA", status_changes=((AFTER, "suspended"),))],
        [],
        q("CA", until=UNTIL),
        ALLOW,
        "LICENSED_IN_STATE",
    ),
    (
        "license suspended mid-session",
        [lic("CA", status_changes=((MID, "suspended"),))],
        [],
        q("CA", until=UNTIL),
        DENY,
        "LICENSE_SUSPENDED",
    ),
    (
        "license revoked by the board",
        [lic("CA", status_changes=((BEFORE, "revoked"),))],
        [],
        q("CA"),
        DENY,
        "LICENSE_REVOKED",
    ),
    (
        "license lapsed before its printed expiry",
        [lic("CA", status_changes=((BEFORE, "expired"),))],
        [],
        q("CA"),
        DENY,
        "LICENSE_EXPIRED",
    ),
    (
        "license suspended, then reinstated before the session",
        [lic("CA", status_changes=((BEFORE, "suspended"), (AT - timedelta(days=1), "active")))],
        [],
        q("CA", until=UNTIL),
        ALLOW,
        "LICENSED_IN_STATE",
    ),
    (
        "two actions at one instant: the later recorded holds",
        [lic("CA", status_changes=((BEFORE, "suspended"), (BEFORE, "active")))],
        [],
        q("CA"),
        ALLOW,
        "LICENSED_IN_STATE",
    ),
    (
        "actions recorded out of order apply in effective order",
        [lic("CA", status_changes=((AT - timedelta(hours=1), "suspended"), (BEFORE, "active")))],
        [],
        q("CA"),
        DENY,
        "LICENSE_SUSPENDED",
    ),
    (
        "counseling privilege revoked",
        [lic("MN")],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ", status_changes=((BEFORE, "revoked"),))],
        q("AZ"),
        DENY,
        "COUNSELING_PRIVILEGE_REVOKED",
    ),
    (
        "home license under a privilege suspended",
        [lic("MN", status_changes=((BEFORE, "suspended"),))],
        [cred("COUNSELING", "PRIVILEGE", "MN", "AZ")],
        q("AZ"),
        DENY,
        "HOME_LICENSE_SUSPENDED",
    ),
]


@pytest.mark.parametrize(("name", "licenses", "credentials", "query", "decision", "reason"), BOARD_CASES)
def test_a_board_action_holds_from_its_effective_time(name, licenses, credentials, query, decision, reason) -> None:
    result = decide_licensure(REF, licenses, credentials, query)
    assert (result.decision, reason in result.reasons) == (decision, True), (name, result)


def test_board_actions_stored_apart_apply_in_effective_then_recorded_order() -> None:
    """Board actions are documents of their own (store.with_status_changes orders them for status_at):
    by effective time, then recorded time; of two recorded in the same millisecond for one instant,
    the non-active one holds (fail closed). One kept in the record by the first version still counts;
    its copy right after it (a retry) is left out, the same action recorded after another one at its
    instant is in force again (the last call holds)."""

    def change(status: str, effective_at: datetime, recorded_at: datetime) -> dict[str, object]:
        return {"status": status, "effective_at": effective_at, "recorded_at": recorded_at, "recorded_by": "b"}

    record = {"status_changes": [change("suspended", BEFORE, NOW - timedelta(days=3))]}  # the first version's
    actions = [
        change("suspended", BEFORE, NOW - timedelta(days=3) + timedelta(minutes=1)),  # its retry: a copy
        change("active", BEFORE, NOW - timedelta(days=2)),  # reinstated later, for the same instant
        change("revoked", AT - timedelta(hours=1), NOW),
        change("active", AT - timedelta(hours=1), NOW),  # the same millisecond: revoked holds
    ]
    merged = with_status_changes(record, actions)["status_changes"]
    assert [(c["effective_at"], c["status"]) for c in merged] == [
        (BEFORE, "suspended"),
        (BEFORE, "active"),
        (AT - timedelta(hours=1), "active"),
        (AT - timedelta(hours=1), "revoked"),
    ]
    assert merged[0]["recorded_at"] == NOW - timedelta(days=3)  # the first of the copies
    changes = tuple((c["effective_at"], c["status"]) for c in merged)
    assert status_at(lic("CA", status_changes=changes), AT - timedelta(hours=2)) == ACTIVE
    assert status_at(lic("CA", status_changes=changes), AT) == "revoked"
    # suspended again from the same instant after the reinstatement: in force (until 2026-12-07 it
    # was left out as a copy of the first suspension, and the reinstatement held)
    again = with_status_changes(record, [*actions, change("suspended", BEFORE, NOW - timedelta(days=1))])
    changes = tuple((c["effective_at"], c["status"]) for c in again["status_changes"])
    assert status_at(lic("CA", status_changes=changes), AT - timedelta(hours=2)) == "suspended"
