"""The demo's view of the platform: gRPC stubs with role tokens, the webhook, trace context."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
from grpc_status import rpc_status
from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from iop.compliance.v1 import compliance_pb2_grpc
from iop.crisis.v1 import crisis_pb2_grpc
from iop.engagement.v1 import engagement_pb2_grpc
from iop.scheduler.v1 import scheduler_pb2_grpc
from services.engagement.config import EngagementConfig
from services.engagement.domain import sign
from services.plumbing.auth import mint_token
from services.plumbing.errors import error_reason
from services.plumbing.settings import Settings
from services.plumbing.zipkin_export import ZipkinSpanProcessor


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def reason_of(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    return (error_reason(status) if status else None) or err.code().name


@dataclass
class ScenarioResult:
    number: int
    title: str
    trace_id: str = ""
    outcomes: list[str] = field(default_factory=list)
    ok: bool = True


class Platform:
    """Synchronous clients for the four services, as a platform app would hold them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._channels = {
            name: grpc.insecure_channel(getattr(settings, f"{name}_target"))
            for name in ("scheduler", "engagement", "compliance", "crisis")
        }
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self._channels["scheduler"])
        self.engagement = engagement_pb2_grpc.EngagementServiceStub(self._channels["engagement"])
        self.compliance = compliance_pb2_grpc.ComplianceServiceStub(self._channels["compliance"])
        self.crisis = crisis_pb2_grpc.CrisisServiceStub(self._channels["crisis"])
        self.engagement_config = EngagementConfig()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "demo-driver"}))
        self.provider.add_span_processor(ZipkinSpanProcessor(settings.zipkin_endpoint))
        self.tracer = self.provider.get_tracer("iop.demo")

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self.provider.shutdown()

    def md(self, role: str = "platform", subject: str = "demo-app") -> list[tuple[str, str]]:
        """Bearer token for the role, plus the current trace context."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        token = mint_token(self.settings, subject, [role])
        return [("authorization", f"Bearer {token}"), *carrier.items()]

    def call(self, stub: Any, method: str, request: Any, role: str = "platform", subject: str = "demo-app") -> Any:
        return getattr(stub, method)(request, metadata=self.md(role, subject), timeout=15)

    @contextmanager
    def scenario(self, result: ScenarioResult) -> Iterator[None]:
        """One user story = one root span = one trace."""
        with self.tracer.start_as_current_span(f"demo: {result.title}", kind=SpanKind.CLIENT) as span:
            result.trace_id = format(span.get_span_context().trace_id, "032x")
            yield

    def webhook(self, event: str, session_id: str, participant_id: str, **participant: Any) -> httpx.Response:
        """A Zoom-shaped, HMAC-signed video-platform webhook to the engagement service."""
        at = datetime.now(UTC)
        fields: dict[str, Any] = {"customer_key": participant_id, **participant}
        if event.endswith("joined"):
            fields.setdefault("join_time", at.isoformat())
        if event.endswith("left"):
            fields.setdefault("leave_time", at.isoformat())
        body = json.dumps(
            {
                "event": event,
                "event_ts": int(at.timestamp() * 1000),
                "payload": {"account_id": "demo", "object": {"id": session_id, "participant": fields}},
                "nonce": uuid.uuid4().hex,
            }
        ).encode()
        ts = str(int(time.time()))
        signature = sign(self.engagement_config.webhook_secret, ts, body)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers = {"x-zm-request-timestamp": ts, "x-zm-signature": signature, "content-type": "application/json"}
        url = f"http://127.0.0.1:{self.engagement_config.http_port}/webhooks/video"
        return httpx.post(url, content=body, headers={**headers, **carrier}, timeout=10)
