"""Versioned reference data: crisis resources per location and escalation ladders per program.

Loaded once at start from services/crisis/data/*.yaml (validated: a bad file stops the service
from starting rather than misrouting a crisis later).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.crisis.domain import (
    LadderPolicy,
    LadderStepSpec,
    Step,
    to_windows,
    valid_time_zone,
    validate_windows,
)
from services.plumbing.phones import PhoneError, normalize_phone


class ReferenceDataError(RuntimeError):
    pass


class NoResourcesForLocation(LookupError):
    def __init__(self, state: str, county_fips: str, version: str) -> None:
        super().__init__(f"no crisis resources for state {state or '?'} county {county_fips or '?'} (data {version})")
        self.state = state
        self.county_fips = county_fips
        self.version = version


@dataclass(frozen=True)
class ResourceCatalog:
    version: str
    regions: dict[tuple[str, str], dict[str, Any]]

    def lookup(self, state: str, county_fips: str) -> dict[str, Any]:
        """The resources for a verified location, or NoResourcesForLocation (never a guess)."""
        region = self.regions.get((state.upper(), county_fips))
        if region is None:
            raise NoResourcesForLocation(state, county_fips, self.version)
        return region


def _phone(value: Any, where: str) -> str:
    try:
        return normalize_phone(str(value))
    except PhoneError as exc:
        raise ReferenceDataError(f"{where}: {exc}") from exc


def load_resources(path: Path) -> ResourceCatalog:
    raw = yaml.safe_load(path.read_text())
    version = str(raw.get("version") or "")
    if not version:
        raise ReferenceDataError(f"{path}: version is required")
    regions: dict[tuple[str, str], dict[str, Any]] = {}
    for i, r in enumerate(raw.get("regions") or []):
        where = f"{path.name} regions[{i}]"
        state, fips = str(r.get("state", "")), str(r.get("county_fips", ""))
        if len(state) != 2 or len(fips) != 5 or not fips.isdigit():
            raise ReferenceDataError(f"{where}: state (USPS code) and 5-digit county_fips are required")
        if (state, fips) in regions:
            raise ReferenceDataError(f"{where}: duplicate region {state}/{fips}")
        mobile = r.get("mobile_crisis") or {}
        eds = r.get("emergency_departments") or []
        if not eds or not mobile:
            raise ReferenceDataError(f"{where}: mobile_crisis and emergency_departments are required")
        regions[(state, fips)] = {
            "region_id": str(r["region_id"]),
            "lifeline": str(r.get("lifeline", "988")),
            "emergency_number": str(r.get("emergency_number", "911")),
            "emergency_routing": (
                f"{r.get('emergency_number', '911')} reaches the PSAP of the caller's own location; from elsewhere "
                f"call {r['psap_name']} at {_phone(r['psap_phone'], where + '.psap_phone')}"
            ),
            "psap_name": str(r["psap_name"]),
            "psap_phone": _phone(r["psap_phone"], where + ".psap_phone"),
            "mobile_crisis": {
                "name": str(mobile["name"]),
                "phone": _phone(mobile["phone"], where + ".mobile_crisis.phone"),
                "hours": str(mobile.get("hours", "")),
            },
            "emergency_departments": [
                {"name": str(e["name"]), "address": str(e["address"]), "phone": _phone(e["phone"], where + ".ed")}
                for e in eds
            ],
            "data_version": version,
            "illustrative": bool(r.get("illustrative", True)),
        }
    return ResourceCatalog(version, regions)


def _policy(raw: dict[str, Any], where: str) -> LadderPolicy:
    steps = []
    for i, s in enumerate(raw.get("steps") or []):
        try:
            kind = Step[str(s["step"])]
        except KeyError as exc:
            raise ReferenceDataError(f"{where}.steps[{i}]: unknown step {s.get('step')!r}") from exc
        after = float(s.get("after_s", 0))
        if after < 0:
            raise ReferenceDataError(f"{where}.steps[{i}]: after_s must be >= 0")
        steps.append(LadderStepSpec(kind, after))
    if not steps:
        raise ReferenceDataError(f"{where}: a ladder needs at least one step")
    windows = raw.get("default_windows") or []
    tz = str(raw.get("time_zone", ""))
    problems = validate_windows(windows, tz)
    if problems or (tz and not valid_time_zone(tz)):
        raise ReferenceDataError(f"{where}: {problems}")
    if not raw.get("on_call_id"):
        raise ReferenceDataError(f"{where}: on_call_id is required")
    return LadderPolicy(str(raw["policy_id"]), tuple(steps), str(raw["on_call_id"]), tuple(to_windows(windows)), tz)


@dataclass(frozen=True)
class PolicyBook:
    version: str
    default: LadderPolicy
    programs: dict[str, LadderPolicy]

    def for_program(self, program_id: str) -> LadderPolicy:
        return self.programs.get(program_id, self.default)

    def by_id(self, policy_id: str) -> LadderPolicy | None:
        if self.default.policy_id == policy_id:
            return self.default
        return next((p for p in self.programs.values() if p.policy_id == policy_id), None)


def load_policies(path: Path) -> PolicyBook:
    raw = yaml.safe_load(path.read_text())
    version = str(raw.get("version") or "")
    if not version or "default" not in raw:
        raise ReferenceDataError(f"{path}: version and default are required")
    default = _policy(raw["default"], f"{path.name} default")
    programs = {str(k): _policy(v, f"{path.name} programs.{k}") for k, v in (raw.get("programs") or {}).items()}
    return PolicyBook(version, default, programs)
