"""The compliance service as the scheduler sees it: EvaluateSession (the session's clinician and
each client) and CheckLicensure (the group's other treating facilitators) over gRPC.

Deadline on every call, retries (the method is read-only and idempotent) through
the channel's service config, a platform-role service token. Safety decisions
fail closed: any failure to get an answer is UNAVAILABLE / COMPLIANCE_UNAVAILABLE.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf.message import Message

from iop.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from services.plumbing.errors import FailedPrecondition, Unavailable
from services.plumbing.grpc_client import ServiceToken, service_channel
from services.plumbing.settings import Settings

log = logging.getLogger(__name__)

COMPLIANCE_SERVICE = "iop.compliance.v1.ComplianceService"
COMPLIANCE_UNAVAILABLE = "COMPLIANCE_UNAVAILABLE"
COMPLIANCE_DENIED = "COMPLIANCE_DENIED"
COMPLIANCE_NEEDS_REVIEW = "COMPLIANCE_NEEDS_REVIEW"


class ComplianceGateway:
    def __init__(self, settings: Settings) -> None:
        self._timeout_s = settings.grpc_client_deadline_s
        self._channel = service_channel(
            settings.compliance_target,
            COMPLIANCE_SERVICE,
            ["EvaluateSession", "CheckLicensure"],
            ServiceToken(settings, "scheduler", ["platform"]),
            self._timeout_s,
        )
        self._stub = compliance_pb2_grpc.ComplianceServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def evaluate(self, request: compliance_pb2.EvaluateSessionRequest) -> compliance_pb2.SessionEvaluation:
        """The evaluation; raises Unavailable when there is none, FailedPrecondition on a deny."""
        evaluation: compliance_pb2.SessionEvaluation = await self._allowed(
            self._stub.EvaluateSession, request, "evaluate the session"
        )
        return evaluation

    async def check_licensure(self, request: compliance_pb2.CheckLicensureRequest) -> compliance_pb2.LicensureDecision:
        """The licensure decision; raises Unavailable when there is none, FailedPrecondition unless
        allowed, naming the facilitator checked (metadata `facilitator_id`, an opaque id)."""
        decision: compliance_pb2.LicensureDecision = await self._allowed(
            self._stub.CheckLicensure,
            request,
            "check a facilitator's licensure",
            {"facilitator_id": request.clinician_id},
        )
        return decision

    async def _allowed(self, method: Any, request: Message, what: str, names: dict[str, str] | None = None) -> Any:
        """Call `method`; fails closed (Unavailable) without an answer, FailedPrecondition unless
        allowed; `names` go into the refusal's metadata."""
        try:
            answer = await method(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            log.warning("compliance %s failed: %s", type(request).__name__, exc.code().name)
            raise Unavailable(
                COMPLIANCE_UNAVAILABLE,
                f"compliance could not {what}; refused, nothing changed (fails closed)",
                {"grpc_code": exc.code().name},
            ) from exc
        require_allowed(answer, names)
        return answer


def require_allowed(
    evaluation: compliance_pb2.SessionEvaluation | compliance_pb2.LicensureDecision,
    names: dict[str, str] | None = None,
) -> None:
    reasons = ",".join(evaluation.reasons)
    metadata = {**(names or {}), "compliance_reasons": reasons, "data_version": evaluation.data_version}
    if evaluation.decision == compliance_pb2.DECISION_ALLOW:
        return
    if evaluation.decision == compliance_pb2.DECISION_DENY:
        raise FailedPrecondition(COMPLIANCE_DENIED, f"compliance denied the session: {reasons}", metadata)
    if evaluation.decision == compliance_pb2.DECISION_NEEDS_REVIEW:
        raise FailedPrecondition(COMPLIANCE_NEEDS_REVIEW, f"compliance needs a review first: {reasons}", metadata)
    raise Unavailable(
        COMPLIANCE_UNAVAILABLE, "compliance gave no decision; refused, nothing changed (fails closed)", metadata
    )
