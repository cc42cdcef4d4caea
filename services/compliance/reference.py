"""Reference data of the compliance service: typed, versioned, loaded once at start.

The files live in services/compliance/data/ (see their headers for sources). Parsing is pure
(`parse_reference`); only `load_reference` reads the disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
EFFECTS = ("allow", "warn", "needs_review", "deny")


@dataclass(frozen=True)
class Compact:
    code: str
    name: str
    professions: frozenset[str]
    credential_kinds: frozenset[str]
    operational_from: date | None
    requires_clinician_in_home_state: bool
    members: dict[str, date]  # state -> active for practice under the compact since
    enacted: dict[str, date] = field(default_factory=dict)  # enacted, activation date not known yet

    def is_member(self, state: str, on: date) -> bool:
        since = self.members.get(state)
        return since is not None and since <= on

    def is_enacted_only(self, state: str, on: date) -> bool:
        """Enacted the compact but not (known to be) active on that date."""
        since = self.enacted.get(state)
        return since is not None and since <= on and not self.is_member(state, on)

    def is_operational(self, on: date) -> bool:
        return self.operational_from is not None and self.operational_from <= on


@dataclass(frozen=True)
class StateRules:
    code: str
    timezone: ZoneInfo  # where board dates are read
    telehealth_registration: bool = False
    other_timezones: tuple[ZoneInfo, ...] = ()  # the zones other parts of the state keep


@dataclass(frozen=True)
class BillingCode:
    code: str
    kind: str  # per_diem | group | individual | evaluation
    min_minutes: int = 0
    max_minutes: int | None = None
    level_of_care: str = ""  # a per-diem code's level of care (S9480 IOP_PSYCH, H0015 IOP_SUD)


@dataclass(frozen=True)
class ConsentForm:
    consent_type: str
    current: str
    accepted: frozenset[str]
    validity_days: int


@dataclass(frozen=True)
class Reference:
    version: str  # the combined data version every answer carries
    review_by: date  # after this date the licensure data counts as stale
    compacts: dict[str, Compact]
    states: dict[str, StateRules]
    codes: dict[str, BillingCode]
    revenue_codes: frozenset[str]
    modifiers: frozenset[str]
    places_of_service: frozenset[str]
    levels_of_care: frozenset[str]
    level_revenue_codes: dict[str, str]  # level of care -> NUBC revenue code of its lines
    session_kind_codes: dict[str, str]
    effects: dict[str, dict[str, str]]  # reason -> stage -> effect
    consent_forms: dict[str, ConsentForm]
    privacy_attestations: frozenset[str]
    verification_max_age: timedelta
    expiry_horizons_days: tuple[int, ...]
    default_timezone: ZoneInfo
    close_after: timedelta
    last_program_weekday: int
    seed_payer_policies: list[dict[str, Any]] = field(default_factory=list)

    def is_stale(self, at: datetime) -> bool:
        return at.date() > self.review_by

    def zone(self, state: str) -> ZoneInfo:
        rules = self.states.get(state)
        return rules.timezone if rules else self.default_timezone

    def state_date(self, state: str, at: datetime) -> date:
        """The date at `at` in the whole state: its date where the day begins last (a multi-zone
        state's westernmost zone). A date-based rule for the state, such as a compact membership's
        effective date, holds from that date's last midnight in the state (DST-aware)."""
        rules = self.states.get(state)
        if rules is None:
            return local_date(at, self.default_timezone)
        return min(local_date(at, zone) for zone in (rules.timezone, *rules.other_timezones))

    def effect(self, reason: str, stage: str) -> str:
        """How a reason weighs at a stage; an unlisted reason weighs as needs_review (fail closed)."""
        return self.effects.get(reason, {}).get(stage, "needs_review")


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _required_date(value: Any) -> date:
    parsed = _date(value)
    if parsed is None:
        raise ValueError("missing date in reference data")
    return parsed


def parse_reference(
    compacts: dict[str, Any],
    states: dict[str, Any],
    billing: dict[str, Any],
    policy: dict[str, Any],
    payers: dict[str, Any],
) -> Reference:
    parsed_compacts = {
        code: Compact(
            code=code,
            name=str(c["name"]),
            professions=frozenset(c["professions"]),
            credential_kinds=frozenset(c.get("credential_kinds") or []),
            operational_from=_date(c.get("operational_from")),
            requires_clinician_in_home_state=bool(c.get("requires_clinician_in_home_state", False)),
            members={st: _required_date(d) for st, d in (c.get("members") or {}).items()},
            enacted={st: _required_date(d) for st, d in (c.get("enacted") or {}).items()},
        )
        for code, c in compacts["compacts"].items()
    }
    parsed_states = {
        code: StateRules(
            code,
            ZoneInfo(s["timezone"]),
            bool(s.get("telehealth_registration", False)),
            tuple(ZoneInfo(z) for z in s.get("other_timezones") or []),
        )
        for code, s in states["states"].items()
    }
    codes = {
        str(code): BillingCode(
            str(code),
            c["kind"],
            int(c.get("min_minutes", 0)),
            c.get("max_minutes"),
            str(c.get("level_of_care", "")),
        )
        for code, c in billing["codes"].items()
    }
    level_revenue_codes = {str(level): str(c["revenue_code"]) for level, c in billing["levels_of_care"].items()}
    for level, revenue in level_revenue_codes.items():
        if revenue not in billing["revenue_codes"]:
            raise ValueError(f"level of care {level}: unknown revenue code {revenue}")
    for c in codes.values():
        if c.level_of_care and c.level_of_care not in level_revenue_codes:
            raise ValueError(f"code {c.code}: unknown level of care {c.level_of_care}")
    effects: dict[str, dict[str, str]] = {}
    for reason, by_stage in policy["effects"].items():
        for effect in by_stage.values():
            if effect not in EFFECTS:
                raise ValueError(f"unknown effect {effect!r} for {reason}")
        effects[reason] = dict(by_stage)
    forms = {
        t: ConsentForm(t, str(f["current"]), frozenset(f["accepted"]), int(f["validity_days"]))
        for t, f in policy["consent_forms"].items()
    }
    version = "/".join(
        f"{name}@{doc['version']}"
        for name, doc in (
            ("compacts", compacts),
            ("states", states),
            ("billing", billing),
            ("policy", policy),
            ("payers", payers),
        )
    )
    return Reference(
        version=version,
        review_by=min(_required_date(compacts["review_by"]), _required_date(states["review_by"])),
        compacts=parsed_compacts,
        states=parsed_states,
        codes=codes,
        revenue_codes=frozenset(billing["revenue_codes"]),
        modifiers=frozenset(billing["modifiers"]),
        places_of_service=frozenset(str(p) for p in billing["places_of_service"]),
        levels_of_care=frozenset(level_revenue_codes),
        level_revenue_codes=level_revenue_codes,
        session_kind_codes={k: str(v) for k, v in billing["session_kind_codes"].items()},
        effects=effects,
        consent_forms=forms,
        privacy_attestations=frozenset(policy["privacy_attestations"]),
        verification_max_age=timedelta(days=int(policy["credential_verification_max_age_days"])),
        expiry_horizons_days=tuple(sorted((int(h) for h in policy["expiry"]["horizons_days"]), reverse=True)),
        default_timezone=ZoneInfo(policy["billing"]["default_timezone"]),
        close_after=timedelta(hours=float(policy["billing"]["close_after_hours"])),
        last_program_weekday=int(policy["billing"]["last_program_weekday"]),
        seed_payer_policies=list(payers.get("plans") or []),
    )


def load_reference(data_dir: Path = DATA_DIR) -> Reference:
    def read(name: str) -> dict[str, Any]:
        with (data_dir / name).open() as f:
            doc: dict[str, Any] = yaml.safe_load(f)
        return doc

    return parse_reference(
        read("compacts.yaml"),
        read("states.yaml"),
        read("billing.yaml"),
        read("policy.yaml"),
        read("payer_policies.yaml"),
    )


def local_day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in a zone, as UTC instants (DST-aware)."""
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def local_date(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def billing_day(ref: Reference, started_at: datetime, client_state: str) -> tuple[date, datetime]:
    """The service date of a session (local date where the client was, else the default zone)
    and when that client's day closes for billing (local midnight after it + close delay)."""
    zone = ref.zone(client_state) if client_state else ref.default_timezone
    day = local_date(started_at, zone)
    return day, local_day_bounds(day, zone)[1] + ref.close_after
