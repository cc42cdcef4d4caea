"""The paging gateway: the one outside dependency of the ladder (a telephony/SMS bridge over HTTP).

A rung is delivered to the gateway with an idempotency key (alert:rung). If the gateway is down or
slow, the ladder does NOT wait for it: the rung is recorded and its events published with
delivery_status FAILED and the reason, and the span is marked as an error (fail safe, visible).
Without CRISIS_PAGING_URL the tasks topic is the only delivery (EVENT_ONLY).
The payload names ids only (no phone numbers or names): the receiving app reads the task.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.plumbing.telemetry import current_span

if TYPE_CHECKING:
    from services.crisis.alerts import Delivery

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.crisis.paging")


class Pager:
    def __init__(self, url: str | None, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def page(
        self, *, idempotency_key: str, alert_id: str, step: str, route: str, assignee_id: str, task_ids: list[str]
    ) -> Delivery:
        from services.crisis.alerts import Delivery

        if not self.url:
            return Delivery("EVENT_ONLY")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        body = {
            "idempotency_key": idempotency_key,
            "alert_id": alert_id,
            "step": step,
            "route": route,
            "assignee_id": assignee_id,
            "task_ids": task_ids,
        }
        with current_span(tracer, "paging POST", kind=SpanKind.CLIENT) as span:
            span.set_attribute("server.address", self.url.split("/")[2] if "//" in self.url else self.url)
            headers: dict[str, str] = {"Idempotency-Key": idempotency_key}
            propagate.inject(headers)
            try:
                async with self._session.post(self.url, json=body, headers=headers) as reply:
                    span.set_attribute("http.response.status_code", reply.status)
                    if reply.status >= 300:
                        error = f"PAGING_HTTP_{reply.status}"
                        span.set_status(Status(StatusCode.ERROR, error))
                        return Delivery("FAILED", error)
                    return Delivery("DELIVERED")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"PAGING_UNAVAILABLE: {type(exc).__name__}"
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, error))
                log.warning("paging gateway unavailable for %s; the ladder advances anyway", alert_id)
                return Delivery("FAILED", error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
