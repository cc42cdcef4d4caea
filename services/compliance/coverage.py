"""Coverage and reimbursement rules (pure): payer policies for virtual IOP.

Given a planned or completed session (or a client's attended day), decide whether the plan covers
it and which billing lines it carries: per-diem IOP code (S9480 psychiatric, H0015 substance use),
or per-service CPT codes (90853 group, 90832/90834/90837 individual by
minutes, none under 16 minutes; 90791 evaluation); the telehealth modifier (95 audio-video; 93 or FQ audio-only when the
plan covers audio-only); place of service 10 (client at home) or 02 (elsewhere); and every problem
(no authorization, authorization expired or exhausted, audio-only not covered, below minimum hours).
A line's revenue code follows the service's level of care (NUBC 0905 psychiatric IOP, 0906 chemical
dependency IOP), not the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from services.compliance.reference import Reference

VIDEO, AUDIO_ONLY, MIXED = "VIDEO", "AUDIO_ONLY", "MIXED"
POS_HOME, POS_NOT_HOME = "10", "02"
BLOCKING = frozenset(
    {
        "NO_PAYER_POLICY",
        "CODE_NOT_COVERED",
        "NO_PER_DIEM_CODE_FOR_LEVEL_OF_CARE",
        "NO_AUTHORIZATION",
        "AUTH_EXPIRED",
        "AUTH_EXHAUSTED",
        "AUDIO_ONLY_NOT_COVERED",
        "BELOW_MINIMUM_HOURS",
    }
)
# An individual psychotherapy session shorter than 90832's minimum (16 minutes): it carries no line.
# Not blocking: the day's other lines still bill (a day with no line at all is not covered).
UNDER_MINIMUM_TIME = "PSYCHOTHERAPY_BELOW_MINIMUM_TIME"
WARNINGS = frozenset({"AUTH_NEARLY_EXHAUSTED", "CONCURRENT_REVIEW_DUE", "WEEKLY_MINIMUM_NOT_MET", UNDER_MINIMUM_TIME})


@dataclass(frozen=True)
class PayerPolicy:
    plan_id: str
    payer_name: str
    line_of_business: str
    billing_mode: str  # per_diem | per_service
    per_diem_codes: dict[str, str]
    covered_codes: frozenset[str]
    video_modifier: str
    audio_only_covered: bool
    audio_only_modifier: str
    min_hours_per_day: float
    min_hours_per_week: float
    prior_auth_required: bool
    auth_warn_units: int
    concurrent_review_warn_days: int
    revenue_code: str  # not used: a line's revenue code follows its level of care (revenue_code())
    condition_codes: tuple[str, ...] = ()
    version: int = 1
    min_days_per_week: int = 0

    @staticmethod
    def from_document(d: dict[str, Any]) -> PayerPolicy:
        audio = d.get("audio_only") or {}
        return PayerPolicy(
            plan_id=str(d["plan_id"]),
            payer_name=str(d.get("payer_name", "")),
            line_of_business=str(d.get("line_of_business", "")),
            billing_mode=str(d["billing_mode"]),
            per_diem_codes={str(k): str(v) for k, v in (d.get("per_diem_codes") or {}).items()},
            covered_codes=frozenset(str(c) for c in d.get("covered_codes") or []),
            video_modifier=str(d.get("video_modifier", "")),
            audio_only_covered=bool(audio.get("covered", False)),
            audio_only_modifier=str(audio.get("modifier", "")),
            min_hours_per_day=float(d.get("min_hours_per_day", 0)),
            min_hours_per_week=float(d.get("min_hours_per_week", 0)),
            prior_auth_required=bool(d.get("prior_auth_required", False)),
            auth_warn_units=int(d.get("auth_warn_units", 0)),
            concurrent_review_warn_days=int(d.get("concurrent_review_warn_days", 0)),
            revenue_code=str(d.get("revenue_code", "")),
            condition_codes=tuple(str(c) for c in d.get("condition_codes") or []),
            version=int(d.get("version", 1)),
            min_days_per_week=int(d.get("min_days_per_week", 0)),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "payer_name": self.payer_name,
            "line_of_business": self.line_of_business,
            "billing_mode": self.billing_mode,
            "per_diem_codes": dict(self.per_diem_codes),
            "covered_codes": sorted(self.covered_codes),
            "video_modifier": self.video_modifier,
            "audio_only": {"covered": self.audio_only_covered, "modifier": self.audio_only_modifier},
            "min_hours_per_day": self.min_hours_per_day,
            "min_hours_per_week": self.min_hours_per_week,
            "prior_auth_required": self.prior_auth_required,
            "auth_warn_units": self.auth_warn_units,
            "concurrent_review_warn_days": self.concurrent_review_warn_days,
            "revenue_code": self.revenue_code,
            "condition_codes": list(self.condition_codes),
            "version": self.version,
            "min_days_per_week": self.min_days_per_week,
        }


@dataclass(frozen=True)
class Authorization:
    authorization_id: str
    payer_plan_id: str
    codes: frozenset[str]
    start_date: date
    end_date: date  # inclusive
    units: int
    units_used: int = 0
    concurrent_review_due: date | None = None
    billed_dates: frozenset[str] = frozenset()
    expires_at: datetime | None = None  # the end of end_date in the billing zone, as recorded

    @property
    def remaining(self) -> int:
        return self.units - self.units_used


@dataclass
class AuthCheck:
    authorization: Authorization | None
    problems: list[str] = field(default_factory=list)

    @property
    def authorization_id(self) -> str:
        return self.authorization.authorization_id if self.authorization else ""

    @property
    def remaining(self) -> int:
        return self.authorization.remaining if self.authorization else 0


@dataclass
class CoverageResult:
    covered: bool
    codes: list[str]
    modifiers: list[str]
    place_of_service: str
    problems: list[str]
    authorization_id: str = ""
    units_remaining: int = 0
    revenue_code: str = ""


@dataclass(frozen=True)
class BillingLine:
    code: str
    modifiers: tuple[str, ...]
    place_of_service: str
    revenue_code: str
    units: int = 1


@dataclass(frozen=True)
class AttendedSession:
    session_id: str
    kind: str  # SESSION_KIND_GROUP | SESSION_KIND_INDIVIDUAL | SESSION_KIND_EVALUATION
    minutes: int
    modality: str  # VIDEO | AUDIO_ONLY | MIXED


@dataclass
class DayBilling:
    lines: list[BillingLine]
    modality: str
    minutes: int
    covered: bool
    problems: list[str]
    authorization_id: str = ""
    units_remaining: int = 0
    condition_codes: list[str] = field(default_factory=list)


def billing_code(policy: PayerPolicy, service_code: str, level_of_care: str) -> str:
    """The code a session is billed under: the plan's per-diem code for the level of care, or the session's code."""
    if policy.billing_mode == "per_diem" and level_of_care in policy.per_diem_codes:
        return policy.per_diem_codes[level_of_care]
    return service_code


DEFAULT_LEVEL_OF_CARE = "IOP_PSYCH"


def revenue_code(ref: Reference, code: str, level_of_care: str) -> str:
    """The revenue code of a line: its level of care's (a per-diem code's own level, else the
    session's or day's, else the program's default, IOP_PSYCH)."""
    billing = ref.codes.get(code)
    level = (billing.level_of_care if billing else "") or level_of_care or DEFAULT_LEVEL_OF_CARE
    return ref.level_revenue_codes.get(level, "")


def individual_code(minutes: int, ref: Reference) -> str:
    """90832 / 90834 / 90837 by time spent (CPT time ranges); "" below 90832's 16 minutes, where
    CPT allows no psychotherapy code at all."""
    for code in ("90837", "90834", "90832"):
        c = ref.codes[code]
        if minutes >= c.min_minutes and (c.max_minutes is None or minutes <= c.max_minutes):
            return code
    return ""


def telehealth_modifiers(policy: PayerPolicy, modality: str) -> tuple[list[str], list[str]]:
    """(modifiers, problems) for a modality. MIXED (video that continued by phone) follows the audio-only rule."""
    if modality in (AUDIO_ONLY, MIXED):
        if not policy.audio_only_covered:
            return [], ["AUDIO_ONLY_NOT_COVERED"]
        return ([policy.audio_only_modifier] if policy.audio_only_modifier else []), []
    return ([policy.video_modifier] if policy.video_modifier else []), []


def check_authorization(policy: PayerPolicy, auths: Sequence[Authorization], code: str, day: date) -> AuthCheck:
    if not policy.prior_auth_required:
        return AuthCheck(None)
    candidates = [a for a in auths if a.payer_plan_id == policy.plan_id and code in a.codes]
    in_range = [a for a in candidates if a.start_date <= day <= a.end_date]
    if not in_range:
        if any(a.end_date < day for a in candidates):
            return AuthCheck(None, ["AUTH_EXPIRED"])
        return AuthCheck(None, ["NO_AUTHORIZATION"])
    iso = day.isoformat()
    # a day already counted against an authorization stays on it; otherwise the one with most units left
    billed = [a for a in in_range if iso in a.billed_dates]
    auth = billed[0] if billed else max(in_range, key=lambda a: (a.remaining, a.end_date))
    problems: list[str] = []
    already = iso in auth.billed_dates
    left_after = auth.remaining if already else auth.remaining - 1
    if left_after < 0:
        problems.append("AUTH_EXHAUSTED")
    elif left_after <= policy.auth_warn_units:
        problems.append("AUTH_NEARLY_EXHAUSTED")
    if auth.concurrent_review_due is not None and (auth.concurrent_review_due - day).days <= (
        policy.concurrent_review_warn_days
    ):
        problems.append("CONCURRENT_REVIEW_DUE")
    return AuthCheck(auth, problems)


def evaluate_coverage(
    ref: Reference,
    policy: PayerPolicy | None,
    auths: Sequence[Authorization],
    *,
    service_code: str,
    level_of_care: str,
    modality: str,
    place_of_service: str,
    day: date,
) -> CoverageResult:
    """Coverage of one planned or starting session."""
    if policy is None:
        return CoverageResult(False, [], [], place_of_service, ["NO_PAYER_POLICY"])
    # Under a per-diem plan the session's own code (group, individual, evaluation) is part of the
    # IOP day and billed as the per-diem code; otherwise the session's code is billed itself.
    code = billing_code(policy, service_code, level_of_care)
    problems: list[str] = []
    if code not in policy.covered_codes:
        problems.append("CODE_NOT_COVERED")
    modifiers, modality_problems = telehealth_modifiers(policy, modality)
    problems += modality_problems
    auth = check_authorization(policy, auths, code, day)
    problems += auth.problems
    per_diem = ref.codes.get(code) is not None and ref.codes[code].kind == "per_diem"
    return CoverageResult(
        covered=not any(p in BLOCKING for p in problems),
        codes=[code],
        modifiers=modifiers,
        place_of_service=place_of_service,
        problems=problems,
        authorization_id=auth.authorization_id,
        units_remaining=auth.remaining,
        revenue_code=revenue_code(ref, code, level_of_care)
        if per_diem or policy.line_of_business == "medicare"
        else "",
    )


def day_modality(sessions: list[AttendedSession]) -> str:
    kinds = {s.modality for s in sessions}
    if kinds == {VIDEO}:
        return VIDEO
    if kinds == {AUDIO_ONLY}:
        return AUDIO_ONLY
    return MIXED


def per_diem_code_for_day(policy: PayerPolicy, level_of_care: str) -> str:
    return policy.per_diem_codes.get(level_of_care, "")


def bill_day(
    ref: Reference,
    policy: PayerPolicy | None,
    auths: Sequence[Authorization],
    *,
    level_of_care: str,
    sessions: list[AttendedSession],
    day: date,
    place_of_service: str,
) -> DayBilling:
    """The billing lines and problems of one client's attended day."""
    minutes = sum(s.minutes for s in sessions)
    modality = day_modality(sessions)
    if policy is None:
        return DayBilling([], modality, minutes, False, ["NO_PAYER_POLICY"])
    problems: list[str] = []
    lines: list[BillingLine] = []
    auth_code = ""
    if policy.billing_mode == "per_diem":
        code = per_diem_code_for_day(policy, level_of_care)
        if not code:
            problems.append("NO_PER_DIEM_CODE_FOR_LEVEL_OF_CARE")
        else:
            if code not in policy.covered_codes:
                problems.append("CODE_NOT_COVERED")
            modifiers, modality_problems = telehealth_modifiers(policy, modality)
            problems += modality_problems
            lines.append(BillingLine(code, tuple(modifiers), place_of_service, revenue_code(ref, code, level_of_care)))
            auth_code = code
        if minutes < policy.min_hours_per_day * 60:
            problems.append("BELOW_MINIMUM_HOURS")
    else:
        for s in sessions:
            if s.kind == "SESSION_KIND_INDIVIDUAL":
                code = individual_code(s.minutes, ref)
                if not code:  # too short to bill: no line; the day's other sessions still bill
                    if UNDER_MINIMUM_TIME not in problems:
                        problems.append(UNDER_MINIMUM_TIME)
                    continue
            else:
                code = ref.session_kind_codes.get(s.kind, "")
            if not code or code not in policy.covered_codes:
                problems.append("CODE_NOT_COVERED")
                continue
            modifiers, modality_problems = telehealth_modifiers(policy, s.modality)
            problems += [p for p in modality_problems if p not in problems]
            lines.append(BillingLine(code, tuple(modifiers), place_of_service, revenue_code(ref, code, level_of_care)))
            auth_code = auth_code or code
    auth = check_authorization(policy, auths, auth_code, day) if auth_code else AuthCheck(None)
    problems += auth.problems
    return DayBilling(
        lines=lines,
        modality=modality,
        minutes=minutes,
        covered=bool(lines) and not any(p in BLOCKING for p in problems),
        problems=problems,
        authorization_id=auth.authorization_id,
        units_remaining=auth.remaining,
        condition_codes=list(policy.condition_codes),
    )


def week_of(day: date) -> tuple[date, date]:
    """The ISO week (Monday..Sunday) a service date falls in."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def weekly_problems(
    policy: PayerPolicy | None, day: date, minutes_by_day: dict[date, int], last_program_weekday: int
) -> list[str]:
    """From the program week's last day on, a week below the plan's minimum hours or days is flagged.

    `minutes_by_day`: the client's attended minutes per day of this ISO week up to and including `day`.
    """
    if policy is None or day.isoweekday() < last_program_weekday:
        return []
    hours = sum(minutes_by_day.values()) / 60
    days = sum(1 for m in minutes_by_day.values() if m > 0)
    if hours < policy.min_hours_per_week or days < policy.min_days_per_week:
        return ["WEEKLY_MINIMUM_NOT_MET"]
    return []
