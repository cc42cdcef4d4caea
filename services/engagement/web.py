"""The engagement service's HTTP side (FastAPI, inside the service process next to gRPC).

- POST /webhooks/video: signed video-platform webhooks. Verified (401), validated (422),
  de-duplicated (receipt per delivery id), then published to iop.engagement.signals.v1
  with the acks=all producer BEFORE answering 200: nothing acknowledged is lost. Served ahead
  of FastAPI's routing and middleware (plumbing/direct_route.py).
- GET /dashboard (HTML with SVG charts) and GET /dashboard/api/overview (JSON), for supervisors:
  an Authorization header or the cookie the sign-in form (POST /dashboard/session) sets; a token
  in the URL (`?access_token=`) only in development, for that one request (a GET never signs in).
- GET /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp

from iop.events.v1.engagement_pb2 import VideoSignal
from services.engagement.config import EngagementConfig
from services.engagement.dashboard import build_overview, render_page, render_sign_in
from services.engagement.domain import (
    JOINED,
    LastSeen,
    drop_event_id,
    ends_dip,
    is_connected_sign,
    is_drop,
    is_normal_leave,
    signature_problem,
    webhook_event_id,
    zoom_url_validation,
)
from services.engagement.handlers import connection_dropped, ledger_signal
from services.engagement.rules import Rules
from services.engagement.store import (
    AttendanceStore,
    ConnectionStore,
    OutcomeStore,
    ReceiptStore,
    SnapshotStore,
    ledger_signals,
)
from services.engagement.topics import ATTENDANCE
from services.engagement.webhooks import URL_VALIDATION, UnusableWebhook, Webhook, to_signal
from services.plumbing.audit import record_phi_access
from services.plumbing.auth import Principal, verify_token
from services.plumbing.bus import send_event
from services.plumbing.direct_route import DirectRoute
from services.plumbing.envelope import CloudEvent
from services.plumbing.errors import PermissionDenied, ServiceError
from services.plumbing.settings import Settings
from services.plumbing.storage import Document
from services.plumbing.telemetry import instrument_fastapi

log = logging.getLogger(__name__)

DASHBOARD_ROLES = frozenset({"supervisor", "platform"})
# The browser's credential for the dashboard: the bearer token, set by the sign-in (web.py).
DASHBOARD_COOKIE = "iop_dashboard_token"
NO_STORE = {
    "cache-control": "no-store",  # PHI: no copy in the browser's or a proxy's cache
    "x-frame-options": "DENY",  # not in another site's frame (clickjacking): older browsers
    "content-security-policy": "frame-ancestors 'none'",  # the same: current browsers
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def _problem(status: int, reason: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": reason, "detail": detail}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is known to be larger than `limit` bytes (by its
    Content-Length, or while it streams in): nothing more of it is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: Settings,
    config: EngagementConfig,
    rules: Rules,
    db: AsyncDatabase[Document],
    producer: AIOKafkaProducer,
    source: str,
) -> ASGIApp:
    app = FastAPI(
        title="IOP engagement",
        version=settings.service_version,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own telemetry (0.16x) stays off: the OpenTelemetry instrumentor makes the one
        # server span (instrument_fastapi), and FastAPI's logs of failures would carry their input.
        # On, it stood down for the instrumentor per request, at 2 % of the process's CPU.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    receipts = ReceiptStore(db)
    attendance = AttendanceStore(db, source)
    outcomes = OutcomeStore(db, source)
    snapshots = SnapshotStore(db)
    connections = ConnectionStore(db)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def video_webhook(request: Request) -> Response:
        """POST /webhooks/video, served ahead of FastAPI's stack (direct_route.py)."""
        body = await read_body(request, rules.max_body_bytes)
        if body is None:
            return _problem(413, "BODY_TOO_LARGE", {"max_bytes": rules.max_body_bytes})
        problem = signature_problem(
            config.webhook_secret,
            request.headers.get("x-zm-request-timestamp"),
            request.headers.get("x-zm-signature"),
            body,
            time.time(),
            rules.max_clock_skew_s,
        )
        if problem:
            return _problem(401, problem)
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            return _problem(422, "MALFORMED_JSON")
        if isinstance(raw, dict) and raw.get("event") == URL_VALIDATION:
            payload = raw.get("payload")
            token = payload.get("plainToken") if isinstance(payload, dict) else None
            if not isinstance(token, str) or not token:
                return _problem(422, "MALFORMED_WEBHOOK", [{"field": "payload.plainToken", "problem": "required"}])
            return JSONResponse(zoom_url_validation(config.webhook_secret, token))
        try:
            hook = Webhook.model_validate(raw)
            event_id = webhook_event_id(body)
            signal = to_signal(hook, event_id, datetime.now(UTC), rules)
        except ValidationError as exc:
            violations = [{"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()]
            return _problem(422, "MALFORMED_WEBHOOK", violations)
        except UnusableWebhook as exc:
            return _problem(422, "MALFORMED_WEBHOOK", [{"field": exc.field, "problem": exc.problem}])
        except (ValueError, OverflowError, OSError):  # a time the conversions cannot hold (validated: not expected)
            return _problem(422, "MALFORMED_WEBHOOK", [{"field": "payload", "problem": "a value out of range"}])
        seen = ledger_signal(signal, datetime.now(UTC), rules)
        # A drop: read the session's ledger, and when the webhook last saw the participant connected,
        # while the receipt is written (the fast path).
        drop = is_drop(seen, rules)
        ledger = asyncio.create_task(attendance.get(signal.session_id)) if drop else None
        last_seen = asyncio.create_task(connections.latest(signal.session_id, seen.participant_id)) if drop else None
        # A sign the participant is connected (a join, a quality reading above 0) or a leave of their
        # own (it ends a quality dip): recorded before the answer, so the fast path of a drop delivered
        # after it does not take the ledger consumer's older view (without this rejoin, or this leave)
        # for the truth. A host's action (removal, a move between rooms, the end of the meeting) is
        # recorded apart (`removed`): it proves nothing about the client's connection, and a dip
        # before it is still to be reported, but a reading of 0 after it is no drop, as in the ledger.
        removed = is_normal_leave(seen, rules) and not ends_dip(seen, rules)
        connected = (
            asyncio.create_task(
                connections.mark(
                    signal.session_id,
                    seen.participant_id,
                    seen.at,
                    joined=seen.kind == JOINED,
                    left=ends_dip(seen, rules),
                    removed=removed,
                )
            )
            if is_connected_sign(seen, rules) or ends_dip(seen, rules) or removed
            else None
        )
        try:
            claim = await receipts.claim(event_id, signal.session_id)
            if claim == "published":
                return JSONResponse({"status": "duplicate", "signal_id": event_id})
            if ledger is not None and last_seen is not None:
                # The crisis service waits for this one: it goes first, and the signal names it
                # once the broker has it, so the ledger does not publish it a second time.
                signal.connection_dropped_event_id = await publish_drop_now(signal, await ledger, await last_seen)
            event = CloudEvent.new(source, signal.session_id, signal, event_id=event_id)
            await (await send_event(producer, config.signals_topic, event))  # acknowledged by the broker (acks=all)
            if connected is not None:
                await connected
        finally:
            for task in (ledger, last_seen, connected):
                if task is not None and not task.done():
                    task.cancel()
        # Published and acknowledged by the broker: answer now; the receipt's status is written with
        # the next batch (if that write is lost, a replay is published again and de-duplicated by event id).
        receipts.mark_published(event_id)
        return JSONResponse({"status": "accepted", "signal_id": event_id})

    async def publish_drop_now(signal: VideoSignal, doc: Document | None, last_seen: LastSeen) -> str:
        """The fast path of ConnectionDropped (the crisis service waits for it): straight from the
        webhook, with the id the ledger's outbox would use for the same drop. Returns that id once
        the broker has acknowledged the event, or "" when the signal is not a drop."""
        if doc is None or signal.signal_id in doc.get("signal_ids", []):
            return ""
        drop = ledger_signal(signal, datetime.now(UTC), rules)
        dropped = connection_dropped(doc, drop, [*ledger_signals(doc), drop], rules, last_seen)
        if dropped is None:
            return ""
        event = CloudEvent.new(source, signal.session_id, dropped, event_id=drop_event_id(signal.signal_id))
        await (await send_event(producer, ATTENDANCE.name, event))
        return event.id

    development = settings.is_development()

    def _token_in_url(request: Request) -> Response | None:
        """Outside development a bearer token in a URL is refused: URLs end up in proxy and access
        logs and in browser history, and the token reads PHI."""
        if development or "access_token" not in request.query_params:
            return None
        return _problem(
            400,
            "TOKEN_IN_URL",
            "a token is not accepted in the URL here; sign in at /dashboard or send an Authorization "
            "header, and treat this token as exposed",
        )

    def _credentials(request: Request) -> str | None:
        """The Authorization header, else the dashboard's cookie, else (development only) the
        `?access_token=` of a browser opening the page: a credential for that request only, never
        kept (a GET that signed in was login CSRF: any page could sign a browser in with a link)."""
        header = request.headers.get("authorization")
        if header:
            return header
        cookie = request.cookies.get(DASHBOARD_COOKIE)
        if cookie:
            return f"Bearer {cookie}"
        query = request.query_params.get("access_token")
        return f"Bearer {query}" if query and development else None

    def _principal(authorization: str | None) -> Principal:
        principal = verify_token(settings, authorization)
        if not principal.has_any(DASHBOARD_ROLES):
            raise PermissionDenied("ROLE_NOT_ALLOWED", "the dashboard requires supervisor or platform")
        return principal

    def _cross_site(request: Request) -> Response | None:
        """A form POST that another site's page made (login CSRF: the browser then shows, and the
        audit records, another principal; or a sign-out) is refused: the browser's Sec-Fetch-Site
        must say same-origin, or, from a browser that does not send it, the Origin must be this
        host. Neither header: not a browser form of ours (scripts send an Authorization header)."""
        fetch_site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        if fetch_site is not None:
            same = fetch_site == "same-origin"
        else:
            same = origin is not None and urlsplit(origin).netloc == request.headers.get("host")
        if same:
            return None
        return _problem(403, "CROSS_SITE_REQUEST", "sign in and out from the dashboard's own pages")

    def _signed_in(token: str) -> Response:
        """Back to the page without the token in its URL, the token in the dashboard's cookie:
        HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it),
        Secure outside development (never over plain HTTP), for the dashboard's paths only; it
        lasts as long as the browser session and is worth nothing after the token's own expiry."""
        response = RedirectResponse("/dashboard", status_code=303, headers=NO_STORE)
        response.set_cookie(
            DASHBOARD_COOKIE,
            token,
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=not development,
        )
        return response

    def _sign_in_page(status: int, message: str) -> Response:
        return HTMLResponse(render_sign_in(message), status_code=status, headers=NO_STORE)

    async def _overview(principal: Principal) -> dict[str, Any]:
        overview = build_overview(
            await attendance.recent(),
            await outcomes.all_recent(),
            await snapshots.clients(),
            await snapshots.clinicians(),
        )
        await record_phi_access(db, principal, "DashboardOverview", "program", "*")
        return overview

    @app.get("/dashboard/api/overview")
    async def overview_json(request: Request) -> Response:
        refused = _token_in_url(request)
        if refused is not None:
            return refused
        try:
            principal = _principal(_credentials(request))
        except ServiceError as exc:
            return _problem(403 if exc.code.name == "PERMISSION_DENIED" else 401, exc.message)
        return JSONResponse(await _overview(principal), headers=NO_STORE)

    @app.get("/dashboard")
    async def dashboard_page(request: Request) -> Response:
        refused = _token_in_url(request)
        if refused is not None:
            return refused
        authorization = _credentials(request)
        if authorization is None:
            return _sign_in_page(401, "")
        try:
            principal = _principal(authorization)
        except PermissionDenied as exc:
            return _sign_in_page(403, exc.message)
        except ServiceError as exc:
            return _sign_in_page(401, exc.message)
        return HTMLResponse(render_page(await _overview(principal)), headers=NO_STORE)

    @app.post("/dashboard/session")
    async def dashboard_sign_in(request: Request) -> Response:
        """The sign-in form's POST (`access_token=<token>`, form-encoded): the token goes into the
        dashboard's cookie, never into a URL."""
        refused = _cross_site(request)
        if refused is not None:
            return refused
        body = await read_body(request, 16 * 1024)
        if body is None:
            return _problem(413, "BODY_TOO_LARGE")
        token = parse_qs(body.decode("latin-1")).get("access_token", [""])[0].strip()
        try:
            _principal(f"Bearer {token}" if token else None)
        except PermissionDenied as exc:
            return _sign_in_page(403, exc.message)
        except ServiceError as exc:
            return _sign_in_page(401, exc.message)
        return _signed_in(token)

    @app.post("/dashboard/signout")
    async def dashboard_sign_out(request: Request) -> Response:
        refused = _cross_site(request)
        if refused is not None:
            return refused
        response = RedirectResponse("/dashboard", status_code=303, headers=NO_STORE)
        response.delete_cookie(DASHBOARD_COOKIE, path="/dashboard")
        return response

    instrument_fastapi(app)
    return DirectRoute(app, "POST", "/webhooks/video", video_webhook)


class _Server(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()  # the service runner owns SIGTERM/SIGINT


async def serve(app: ASGIApp, config: EngagementConfig) -> None:
    server = _Server(
        uvicorn.Config(
            app,
            host=config.http_host,
            port=config.http_port,
            log_config=None,
            access_log=False,
            http="httptools",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    log.info("engagement HTTP on %s:%d", config.http_host, config.http_port)
    try:
        await server.serve()
    finally:
        server.should_exit = True
