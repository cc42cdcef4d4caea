"""A session evaluated as a whole (pure): licensure + coverage + consent + privacy.

The overall decision is the strictest of the parts: the licensure engine's own decision, and the
effect reference data (policy.yaml) gives each coverage, consent and privacy reason at the stage
(booking or start). Warnings are reported in `reasons` without changing the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.compliance.coverage import CoverageResult
from services.compliance.licensure import ALLOW, DENY, NEEDS_REVIEW, LicensureResult
from services.compliance.reference import Reference

BOOKING, START = "booking", "start"
_RANK = {"allow": 0, "warn": 0, NEEDS_REVIEW: 1, DENY: 2}


@dataclass
class Evaluation:
    decision: str
    licensure: LicensureResult
    coverage: CoverageResult
    consent_problems: list[str]
    privacy_problems: list[str]
    reasons: list[str]
    data_version: str


def combine(
    ref: Reference,
    stage: str,
    licensure: LicensureResult,
    coverage: CoverageResult,
    consent_problems: list[str],
    privacy_problems: list[str],
) -> Evaluation:
    decision = licensure.decision
    reasons = list(licensure.reasons)
    for reason in [*coverage.problems, *consent_problems, *privacy_problems]:
        effect = ref.effect(reason, stage)
        if _RANK[effect] > _RANK[decision]:
            decision = effect if effect in (DENY, NEEDS_REVIEW) else decision
        if reason not in reasons:
            reasons.append(reason)
    return Evaluation(
        decision=decision if decision in (ALLOW, DENY, NEEDS_REVIEW) else NEEDS_REVIEW,
        licensure=licensure,
        coverage=coverage,
        consent_problems=consent_problems,
        privacy_problems=privacy_problems,
        reasons=reasons,
        data_version=ref.version,
    )
