"""gRPC client channels: deadlines, retries by service config, bearer tokens.

Every call carries a deadline (`timeout=`; the service config's per-method
timeout is a backstop), capped at what is left of the deadline of the call
being served (`deadline.py`). Only methods declared idempotent are retried, on
UNAVAILABLE, with exponential backoff, and those retries stop while most
attempts fail (`retryThrottling`, one token count per process and target): a
dependency that is down does not get four times the calls. RESOURCE_EXHAUSTED
(a server shedding load) is never retried by the channel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc

from services.plumbing.auth import mint_token
from services.plumbing.deadline import capped_timeout
from services.plumbing.settings import Settings


def service_config(service: str, idempotent_methods: list[str], timeout_s: float) -> str:
    retry = {
        "maxAttempts": 4,
        "initialBackoff": "0.05s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    configs: list[dict[str, Any]] = [{"name": [{"service": service}], "timeout": f"{timeout_s}s"}]
    if idempotent_methods:
        configs.insert(
            0,
            {
                "name": [{"service": service, "method": m} for m in idempotent_methods],
                "timeout": f"{timeout_s}s",
                "retryPolicy": retry,
            },
        )
    # Each attempt that fails with a retryable code takes a token, each success gives back 0.1;
    # below 5 of 10 tokens nothing is retried (gRPC's retry throttling, per process and target).
    return json.dumps({"methodConfig": configs, "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}})


class _OutgoingCall(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the bearer token and caps the timeout at the served call's deadline."""

    def __init__(self, token_source: Callable[[], str]) -> None:
        self._token_source = token_source

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = list(details.metadata or [])
        metadata.append(("authorization", f"Bearer {self._token_source()}"))
        new_details = grpc.aio.ClientCallDetails(
            details.method, capped_timeout(details.timeout), metadata, details.credentials, details.wait_for_ready
        )
        return await continuation(new_details, request)


class ServiceToken:
    """A token for service-to-service calls, re-minted before it expires."""

    def __init__(self, settings: Settings, subject: str, roles: list[str], ttl_s: int = 3600) -> None:
        self._settings, self._subject, self._roles, self._ttl_s = settings, subject, roles, ttl_s
        self._token = ""
        self._expires = 0.0

    def __call__(self) -> str:
        now = time.time()
        if now > self._expires - 60:
            self._token = mint_token(self._settings, self._subject, self._roles, self._ttl_s)
            self._expires = now + self._ttl_s
        return self._token


def service_channel(
    target: str,
    service: str,
    idempotent_methods: list[str],
    token_source: Callable[[], str],
    timeout_s: float,
) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config(service, idempotent_methods, timeout_s)),
            ("grpc.keepalive_time_ms", 30000),
        ],
        interceptors=[_OutgoingCall(token_source)],
    )
