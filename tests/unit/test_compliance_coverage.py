"""Table-driven tests of coverage, billing days, consent, privacy, the combined decision and expiry horizons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as sev
from services.compliance.consent import Consent, consent_problems, place_of_service, privacy_problems
from services.compliance.coverage import (
    AttendedSession,
    Authorization,
    CoverageResult,
    DayBilling,
    PayerPolicy,
    bill_day,
    evaluate_coverage,
    individual_code,
    week_of,
    weekly_problems,
)
from services.compliance.evaluation import combine
from services.compliance.handlers import billable_attendance
from services.compliance.licensure import ALLOW, DENY, NEEDS_REVIEW, LicensureResult
from services.compliance.monitor import horizons_crossed
from services.compliance.reference import billing_day, load_reference

REF = load_reference()
POLICIES = {p["plan_id"]: PayerPolicy.from_document(p) for p in REF.seed_payer_policies}
PPO = POLICIES["demo-commercial-ppo"]  # covers audio-only with 93
HMO = POLICIES["demo-commercial-hmo"]  # audio-only not covered for IOP
FQHC = POLICIES["demo-medicaid-fqhc"]  # audio-only with FQ
MEDICARE = POLICIES["demo-medicare-ffs"]  # per service, condition code 92
DAY = date(2026, 12, 2)


def auth(plan: PayerPolicy, units: int = 20, used: int = 0, **kw: object) -> Authorization:
    fields: dict[str, object] = {
        "authorization_id": f"auth-{plan.plan_id}",
        "payer_plan_id": plan.plan_id,
        "codes": frozenset({"S9480"}),
        "start_date": date(2026, 11, 1),
        "end_date": date(2026, 12, 31),
        "units": units,
        "units_used": used,
    }
    fields.update(kw)
    return Authorization(**fields)  # type: ignore[arg-type]


def day(*sessions: tuple[str, int, str]) -> list[AttendedSession]:
    return [AttendedSession(f"s{i}", kind, minutes, modality) for i, (kind, minutes, modality) in enumerate(sessions)]


GROUP = "SESSION_KIND_GROUP"
INDIVIDUAL = "SESSION_KIND_INDIVIDUAL"
FULL_VIDEO_DAY = day((GROUP, 120, "VIDEO"), (INDIVIDUAL, 60, "VIDEO"))

BILLING_CASES = [
    # (name, policy, auths, sessions, covered, codes, modifiers, problems)
    ("video day, PPO", PPO, [auth(PPO)], FULL_VIDEO_DAY, True, ["S9480"], [("95",)], []),
    (
        "audio-only fallback, payer covers it (93)",
        PPO,
        [auth(PPO)],
        day((GROUP, 120, "MIXED"), (INDIVIDUAL, 60, "VIDEO")),
        True,
        ["S9480"],
        [("93",)],
        [],
    ),
    (
        "audio-only fallback, FQHC covers it (FQ)",
        FQHC,
        [auth(FQHC)],
        day((GROUP, 180, "AUDIO_ONLY")),
        True,
        ["S9480"],
        [("FQ",)],
        [],
    ),
    (
        "audio-only fallback, payer does not cover it for IOP",
        HMO,
        [auth(HMO)],
        day((GROUP, 120, "MIXED"), (INDIVIDUAL, 60, "VIDEO")),
        False,
        ["S9480"],
        [()],
        ["AUDIO_ONLY_NOT_COVERED"],
    ),
    (
        "below minimum hours",
        PPO,
        [auth(PPO)],
        day((GROUP, 120, "VIDEO")),
        False,
        ["S9480"],
        [("95",)],
        ["BELOW_MINIMUM_HOURS"],
    ),
    ("no authorization", PPO, [], FULL_VIDEO_DAY, False, ["S9480"], [("95",)], ["NO_AUTHORIZATION"]),
    (
        "authorization ended",
        PPO,
        [auth(PPO, end_date=date(2026, 11, 30))],
        FULL_VIDEO_DAY,
        False,
        ["S9480"],
        [("95",)],
        ["AUTH_EXPIRED"],
    ),
    (
        "authorization exhausted",
        PPO,
        [auth(PPO, units=10, used=10)],
        FULL_VIDEO_DAY,
        False,
        ["S9480"],
        [("95",)],
        ["AUTH_EXHAUSTED"],
    ),
    (
        "warn before exhaustion",
        PPO,
        [auth(PPO, units=10, used=7)],
        FULL_VIDEO_DAY,
        True,
        ["S9480"],
        [("95",)],
        ["AUTH_NEARLY_EXHAUSTED"],
    ),
    (
        "concurrent review due",
        PPO,
        [auth(PPO, concurrent_review_due=date(2026, 12, 4))],
        FULL_VIDEO_DAY,
        True,
        ["S9480"],
        [("95",)],
        ["CONCURRENT_REVIEW_DUE"],
    ),
    (
        "Medicare per service: psychotherapy under 16 minutes carries no code (CPT time rule)",
        MEDICARE,
        [],
        day((INDIVIDUAL, 15, "VIDEO")),
        False,
        [],
        [],
        ["PSYCHOTHERAPY_BELOW_MINIMUM_TIME"],
    ),
    (
        "Medicare per service: the group is billed, the 10-minute individual session is not",
        MEDICARE,
        [],
        day((GROUP, 90, "VIDEO"), (INDIVIDUAL, 10, "VIDEO")),
        True,
        ["90853"],
        [("95",)],
        ["PSYCHOTHERAPY_BELOW_MINIMUM_TIME"],
    ),
    (
        "Medicare per service: group + individual lines, audio-only 93",
        MEDICARE,
        [],
        day((GROUP, 90, "VIDEO"), (INDIVIDUAL, 45, "AUDIO_ONLY")),
        True,
        ["90853", "90834"],
        [("95",), ("93",)],
        [],
    ),
]


@pytest.mark.parametrize(
    ("name", "policy", "auths", "sessions", "covered", "codes", "modifiers", "problems"), BILLING_CASES
)
def test_bill_day(name, policy, auths, sessions, covered, codes, modifiers, problems) -> None:
    result = bill_day(REF, policy, auths, level_of_care="IOP_PSYCH", sessions=sessions, day=DAY, place_of_service="10")
    assert result.covered is covered, (name, result)
    assert [line.code for line in result.lines] == codes, (name, result)
    assert [line.modifiers for line in result.lines] == modifiers, (name, result)
    assert result.problems == problems, (name, result)
    assert all(line.place_of_service == "10" and line.revenue_code == "0905" for line in result.lines)


def test_a_day_already_counted_stays_counted_without_double_decrement() -> None:
    counted = auth(PPO, units=10, used=10, billed_dates=frozenset({DAY.isoformat()}))
    result = bill_day(
        REF, PPO, [counted], level_of_care="IOP_PSYCH", sessions=FULL_VIDEO_DAY, day=DAY, place_of_service="10"
    )
    assert result.covered and result.units_remaining == 0 and "AUTH_EXHAUSTED" not in result.problems


def test_an_interrupted_sessions_attendance_bills_as_an_ended_sessions() -> None:
    rows = [
        sev.ClientAttendance(client_id="a", minutes_attended=40, modality=common_pb2.MODALITY_MIXED),
        sev.ClientAttendance(client_id="b", minutes_attended=20),  # the session's modality
        sev.ClientAttendance(client_id="c", minutes_attended=0),  # dropped before attending: nothing
        sev.ClientAttendance(client_id="", minutes_attended=30),
    ]
    video = common_pb2.MODALITY_VIDEO
    interrupted = sev.SessionInterrupted(session_id="s", reason="DISCONNECTED", modality=video, attendance=rows)
    ended = sev.SessionEnded(session_id="s", modality=video, attendance=rows)
    later = sev.SessionAttendanceRecorded(
        session_id="s", interruption_reason="DISCONNECTED", modality=video, attendance=rows
    )
    assert billable_attendance(interrupted) == billable_attendance(ended) == [("a", 40, "MIXED"), ("b", 20, "VIDEO")]
    assert billable_attendance(later) == billable_attendance(ended)  # given after the interruption
    # no attendance given (or an event from before 2026-12-07): nothing is billed
    assert billable_attendance(sev.SessionInterrupted(session_id="s", reason="DISCONNECTED")) == []
    assert billable_attendance(sev.SessionInterrupted(session_id="s", attendance=rows[:1])) == [("a", 40, "MIXED")]


def test_minutes_before_an_interruption_follow_the_minimums() -> None:
    def billed(policy: PayerPolicy, auths: list[Authorization], *sessions: tuple[str, int, str]) -> DayBilling:
        return bill_day(
            REF, policy, auths, level_of_care="IOP_PSYCH", sessions=day(*sessions), day=DAY, place_of_service="10"
        )

    # per service: an individual session cut at 40 minutes is a 90834, at 12 minutes no psychotherapy line
    cut = billed(MEDICARE, [], (INDIVIDUAL, 40, "VIDEO"))
    assert [line.code for line in cut.lines] == ["90834"] and cut.covered
    short = billed(MEDICARE, [], (INDIVIDUAL, 12, "VIDEO"))
    assert not short.lines and not short.covered
    assert short.problems == ["PSYCHOTHERAPY_BELOW_MINIMUM_TIME"]
    # per diem: 40 minutes before the interruption are below the day's 3 hours on their own; with the
    # rescheduled session that day, one S9480 for both sessions' minutes, each counted once
    alone = billed(PPO, [auth(PPO)], (GROUP, 40, "VIDEO"))
    assert "BELOW_MINIMUM_HOURS" in alone.problems and not alone.covered
    both = billed(PPO, [auth(PPO)], (GROUP, 40, "VIDEO"), (GROUP, 150, "VIDEO"))
    assert both.covered and [line.code for line in both.lines] == ["S9480"]
    assert both.minutes == 190


def test_medicare_carries_condition_code_92() -> None:
    result = bill_day(
        REF, MEDICARE, [], level_of_care="IOP_PSYCH", sessions=FULL_VIDEO_DAY, day=DAY, place_of_service="10"
    )
    assert result.condition_codes == ["92"]


def test_substance_use_level_bills_h0015() -> None:
    result = bill_day(
        REF,
        PPO,
        [auth(PPO, codes=frozenset({"H0015"}))],
        level_of_care="IOP_SUD",
        sessions=FULL_VIDEO_DAY,
        day=DAY,
        place_of_service="02",
    )
    assert [line.code for line in result.lines] == ["H0015"] and result.lines[0].place_of_service == "02"
    # NUBC 0906: intensive outpatient, chemical dependency (0905 is the psychiatric IOP's)
    assert result.lines[0].revenue_code == "0906"


def test_per_service_lines_carry_the_revenue_code_of_the_level_of_care() -> None:
    result = bill_day(
        REF, MEDICARE, [], level_of_care="IOP_SUD", sessions=FULL_VIDEO_DAY, day=DAY, place_of_service="10"
    )
    assert [(line.code, line.revenue_code) for line in result.lines] == [("90853", "0906"), ("90837", "0906")]


@pytest.mark.parametrize(
    ("code", "level", "revenue"),
    [
        ("S9480", "IOP_PSYCH", "0905"),
        ("H0015", "IOP_SUD", "0906"),
        ("H0015", "", "0906"),  # CheckCoverage names the code only: the per-diem code is its level's
        ("S9480", "", "0905"),
    ],
)
def test_planned_per_diem_coverage_carries_the_revenue_code_of_the_service(code: str, level: str, revenue: str) -> None:
    result = evaluate_coverage(
        REF,
        PPO,
        [auth(PPO, codes=frozenset({code}))],
        service_code=code,
        level_of_care=level,
        modality="VIDEO",
        place_of_service="10",
        day=DAY,
    )
    assert (result.codes, result.revenue_code, result.covered) == ([code], revenue, True)


@pytest.mark.parametrize(
    ("minutes", "code"),
    [(0, ""), (15, ""), (16, "90832"), (37, "90832"), (38, "90834"), (52, "90834"), (53, "90837"), (90, "90837")],
)
def test_individual_psychotherapy_code_by_time(minutes: int, code: str) -> None:
    assert individual_code(minutes, REF) == code


COVERAGE_CASES = [
    ("planned video session", PPO, "S9480", "VIDEO", True, ["95"], []),
    ("planned audio-only, HMO", HMO, "S9480", "AUDIO_ONLY", False, [], ["AUDIO_ONLY_NOT_COVERED"]),
    ("individual session inside a per-diem IOP day", HMO, "90834", "VIDEO", True, ["95"], []),
    ("code the plan does not cover", MEDICARE, "S9480", "VIDEO", False, ["95"], ["CODE_NOT_COVERED"]),
    ("no policy", None, "S9480", "VIDEO", False, [], ["NO_PAYER_POLICY"]),
]


@pytest.mark.parametrize(("name", "policy", "code", "modality", "covered", "modifiers", "problems"), COVERAGE_CASES)
def test_evaluate_coverage(name, policy, code, modality, covered, modifiers, problems) -> None:
    auths = [auth(policy)] if policy else []
    result = evaluate_coverage(
        REF,
        policy,
        auths,
        service_code=code,
        level_of_care="IOP_PSYCH",
        modality=modality,
        place_of_service="10",
        day=DAY,
    )
    assert (result.covered, result.modifiers, result.problems) == (covered, modifiers, problems), name


AT = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)


def consent(kind: str, version: str, **kw: object) -> Consent:
    fields: dict[str, object] = {
        "consent_id": f"c-{kind}",
        "consent_type": kind,
        "form_version": version,
        "valid_from": AT - timedelta(days=30),
        "valid_until": AT + timedelta(days=300),
    }
    fields.update(kw)
    return Consent(**fields)  # type: ignore[arg-type]


TELE = consent("TELEHEALTH", "telehealth-2025-01")
ROI = consent("ROI_EMERGENCY_CONTACT", "roi-ec-2025-01")
CONSENT_CASES = [
    ("all in force", [TELE, ROI], []),
    ("none", [], ["NO_TELEHEALTH_CONSENT", "NO_EMERGENCY_CONTACT_ROI"]),
    (
        "telehealth expired",
        [consent("TELEHEALTH", "telehealth-2025-01", valid_until=AT), ROI],
        ["TELEHEALTH_CONSENT_EXPIRED"],
    ),
    (
        "telehealth revoked",
        [consent("TELEHEALTH", "telehealth-2025-01", revoked_at=AT - timedelta(hours=1)), ROI],
        ["TELEHEALTH_CONSENT_REVOKED"],
    ),
    (
        "revoked later still in force now",
        [consent("TELEHEALTH", "telehealth-2025-01", revoked_at=AT + timedelta(hours=1)), ROI],
        [],
    ),
    (
        "outdated form version",
        [consent("TELEHEALTH", "telehealth-2019-01"), ROI],
        ["TELEHEALTH_CONSENT_VERSION_OUTDATED"],
    ),
]


@pytest.mark.parametrize(("name", "consents", "problems"), CONSENT_CASES)
def test_consent_problems(name, consents, problems) -> None:
    assert consent_problems(REF, consents, AT) == problems, name


SESSION_END = AT + timedelta(hours=3)
SESSION_CONSENT_CASES = [
    ("in force for the whole session", [TELE, ROI], []),
    (
        "telehealth consent ends mid-session",
        [consent("TELEHEALTH", "telehealth-2025-01", valid_until=AT + timedelta(hours=1)), ROI],
        ["TELEHEALTH_CONSENT_EXPIRES_DURING_SESSION"],
    ),
    (
        "re-signed after a revocation, the new one ends mid-session",
        [
            consent("TELEHEALTH", "telehealth-2025-01", revoked_at=AT - timedelta(days=2)),
            consent("TELEHEALTH", "telehealth-2025-01", consent_id="c-new", valid_until=AT + timedelta(hours=1)),
            ROI,
        ],
        ["TELEHEALTH_CONSENT_EXPIRES_DURING_SESSION"],
    ),
    ("ends as the session ends", [consent("TELEHEALTH", "telehealth-2025-01", valid_until=SESSION_END), ROI], []),
    (
        "emergency-contact release ends mid-session",
        [TELE, consent("ROI_EMERGENCY_CONTACT", "roi-ec-2025-01", valid_until=AT + timedelta(hours=2))],
        ["NO_EMERGENCY_CONTACT_ROI"],
    ),
    (
        "revoked before the session ends",
        [consent("TELEHEALTH", "telehealth-2025-01", revoked_at=AT + timedelta(hours=1)), ROI],
        ["TELEHEALTH_CONSENT_REVOKED"],
    ),
]


@pytest.mark.parametrize(("name", "consents", "problems"), SESSION_CONSENT_CASES)
def test_consent_must_cover_the_whole_session(name, consents, problems) -> None:
    assert consent_problems(REF, consents, AT, SESSION_END) == problems, name


def test_a_consent_ending_mid_session_blocks_the_start() -> None:
    licensed = LicensureResult(ALLOW, ["LICENSED_IN_STATE"])
    covered = CoverageResult(True, ["S9480"], ["95"], "10", [])
    problems = ["TELEHEALTH_CONSENT_EXPIRES_DURING_SESSION"]
    assert combine(REF, "start", licensed, covered, problems, []).decision == DENY
    assert combine(REF, "booking", licensed, covered, problems, []).decision == NEEDS_REVIEW


@pytest.mark.parametrize(
    ("stage", "attestation", "problems", "pos"),
    [
        ("start", "alone", [], "10"),
        ("start", "headphones", [], "10"),
        ("start", "alternate_location", ["PRIVACY_ALTERNATE_LOCATION"], "02"),
        ("start", "compromised", ["PRIVACY_COMPROMISED"], "10"),
        ("start", "", ["PRIVACY_ATTESTATION_MISSING"], "10"),
        ("booking", "", [], "10"),
    ],
)
def test_privacy(stage: str, attestation: str, problems: list[str], pos: str) -> None:
    assert privacy_problems(stage, attestation) == problems
    assert place_of_service(attestation) == pos


def _coverage(problems: list[str]) -> CoverageResult:
    return CoverageResult(not problems, ["S9480"], ["95"], "10", problems)


COMBINE_CASES = [
    ("all clear", ALLOW, [], [], [], "start", ALLOW),
    ("licensure deny wins", DENY, [], [], [], "start", DENY),
    ("compromised privacy at start denies", ALLOW, [], [], ["PRIVACY_COMPROMISED"], "start", DENY),
    (
        "missing telehealth consent at booking needs review",
        ALLOW,
        [],
        ["NO_TELEHEALTH_CONSENT"],
        [],
        "booking",
        NEEDS_REVIEW,
    ),
    ("missing telehealth consent at start denies", ALLOW, [], ["NO_TELEHEALTH_CONSENT"], [], "start", DENY),
    ("missing ROI only warns", ALLOW, [], ["NO_EMERGENCY_CONTACT_ROI"], [], "start", ALLOW),
    ("no authorization needs review", ALLOW, ["NO_AUTHORIZATION"], [], [], "booking", NEEDS_REVIEW),
    ("warnings keep allow", ALLOW, ["AUTH_NEARLY_EXHAUSTED", "CONCURRENT_REVIEW_DUE"], [], [], "start", ALLOW),
    ("unknown reason fails closed", ALLOW, ["SOMETHING_NEW"], [], [], "start", NEEDS_REVIEW),
    ("needs review licensure stays", NEEDS_REVIEW, [], [], [], "booking", NEEDS_REVIEW),
]


@pytest.mark.parametrize(("name", "lic", "cov", "consents", "privacy", "stage", "decision"), COMBINE_CASES)
def test_combined_decision_is_the_strictest(name, lic, cov, consents, privacy, stage, decision) -> None:
    result = combine(REF, stage, LicensureResult(lic, ["X"]), _coverage(cov), consents, privacy)
    assert result.decision == decision, name
    assert set(cov + consents + privacy) <= set(result.reasons)
    assert result.data_version == REF.version


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HORIZON_CASES = [
    (NOW + timedelta(days=61), []),
    (NOW + timedelta(days=60), [60]),
    (NOW + timedelta(days=30, seconds=1), [60]),
    (NOW + timedelta(days=30), [30, 60]),
    (NOW + timedelta(days=7), [7, 30, 60]),
    (NOW + timedelta(seconds=1), [7, 30, 60]),
    (NOW, []),  # expired: nothing more to warn about
]


@pytest.mark.parametrize(("expires_at", "crossed"), HORIZON_CASES)
def test_expiry_horizon_edges(expires_at: datetime, crossed: list[int]) -> None:
    assert horizons_crossed(REF.expiry_horizons_days, expires_at, NOW) == crossed


BILLING_DAY_CASES = [
    # (session start UTC, client's state, service date, day closes at UTC)
    (datetime(2026, 12, 2, 3, 0, tzinfo=UTC), "CA", date(2026, 12, 1), datetime(2026, 12, 2, 10, 0, tzinfo=UTC)),
    (datetime(2026, 12, 2, 3, 0, tzinfo=UTC), "NY", date(2026, 12, 1), datetime(2026, 12, 2, 7, 0, tzinfo=UTC)),
    (datetime(2026, 12, 2, 6, 0, tzinfo=UTC), "NY", date(2026, 12, 2), datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
    (datetime(2026, 12, 2, 9, 30, tzinfo=UTC), "HI", date(2026, 12, 1), datetime(2026, 12, 2, 12, 0, tzinfo=UTC)),
    (datetime(2026, 12, 2, 3, 0, tzinfo=UTC), "", date(2026, 12, 1), datetime(2026, 12, 2, 7, 0, tzinfo=UTC)),
    # the day DST ends in the US is 25 hours long
    (datetime(2026, 11, 1, 12, 0, tzinfo=UTC), "NY", date(2026, 11, 1), datetime(2026, 11, 2, 7, 0, tzinfo=UTC)),
]


@pytest.mark.parametrize(("started", "state", "day", "close_at"), BILLING_DAY_CASES)
def test_billing_day_is_local_to_the_client(started: datetime, state: str, day: date, close_at: datetime) -> None:
    assert billing_day(REF, started, state) == (day, close_at)


FRIDAY = date(2026, 12, 4)
WEEK_CASES = [
    # (day closed, minutes per day this week, problems)
    (FRIDAY, {date(2026, 11, 30): 180, date(2026, 12, 2): 180, FRIDAY: 180}, []),
    (FRIDAY, {date(2026, 11, 30): 180, FRIDAY: 180}, ["WEEKLY_MINIMUM_NOT_MET"]),  # 2 days, 6 h
    (FRIDAY, {date(2026, 11, 30): 300, FRIDAY: 300}, ["WEEKLY_MINIMUM_NOT_MET"]),  # 10 h but 2 days
    (date(2026, 12, 2), {date(2026, 12, 2): 60}, []),  # Wednesday: the week is not over yet
    (date(2026, 12, 6), {date(2026, 12, 6): 180}, ["WEEKLY_MINIMUM_NOT_MET"]),  # a Sunday session
]


@pytest.mark.parametrize(("day", "minutes", "problems"), WEEK_CASES)
def test_weekly_minimum(day: date, minutes: dict[date, int], problems: list[str]) -> None:
    assert weekly_problems(PPO, day, minutes, REF.last_program_weekday) == problems
    assert week_of(day)[0].weekday() == 0 and week_of(day)[0] <= day <= week_of(day)[1]


def test_medicare_has_no_days_per_week_minimum() -> None:
    assert weekly_problems(MEDICARE, FRIDAY, {date(2026, 11, 30): 300, FRIDAY: 300}, 5) == []
