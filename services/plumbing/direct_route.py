"""One high-rate HTTP route served straight from the ASGI server, in front of a FastAPI app.

FastAPI's routing and Starlette's middleware, with the OpenTelemetry ASGI middleware, cost about
three times the handler itself per request (a webhook at 1,000/s: 34 % of the engagement
process's CPU against 10 % in the handler; py-spy). `DirectRoute` serves one method and path with
a plain handler (a Starlette Request in, a Starlette Response out) and passes everything else to
the app. It makes the request's SERVER span itself, a child of the caller's `traceparent`, with
the instrumentor's name and attributes (method, route, target, URL, scheme, flavor, host and
port, server name, user agent, peer, status code), so traces look the same; like every
instrumented route here, its URL has no query string (telemetry.http_url_without_query).
Another method on its path gets 405 with `Allow`, as the app's router answers it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import sanitize_method
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.plumbing.telemetry import http_server_address, http_url_without_query, record_error

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("iop.http")

Handler = Callable[[Request], Awaitable[Response]]


class DirectRoute:
    """An ASGI app: `method path` goes to `handler`, everything else to `app`."""

    def __init__(self, app: ASGIApp, method: str, path: str, handler: Handler) -> None:
        self._app = app
        self._method = method
        self._path = path
        self._handler = handler
        self._span_name = f"{method} {path}"

    @staticmethod
    def _route_path(scope: Scope) -> str:
        """The path below the app's mount point (uvicorn puts `root_path` in front of `path`)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._route_path(scope) != self._path:
            await self._app(scope, receive, send)
            return
        method: str = scope["method"]
        routed = method == self._method
        if routed:
            span_method, span_name = method, self._span_name
        else:  # a method a client made up is "_OTHER", in an "HTTP <path>" span, as in the instrumentor
            span_method = sanitize_method(method)  # it reads the environment: not made per routed request
            span_name = f"{'HTTP' if span_method == '_OTHER' else span_method} {self._path}"
        request = Request(scope, receive)
        headers = request.headers
        server, server_port = http_server_address(scope)
        host = headers.get("host")
        attributes: dict[str, str | int] = {
            "http.method": span_method,
            "http.route": self._path,
            "http.target": self._path,
            "http.url": http_url_without_query(scope),
            "http.scheme": scope.get("scheme", "http"),
            "http.flavor": scope.get("http_version", "1.1"),
            "http.host": server,
            "net.host.port": server_port,
        }
        if host:
            attributes["http.server_name"] = host
        if user_agent := headers.get("user-agent"):
            attributes["http.user_agent"] = user_agent
        if client := scope.get("client"):
            attributes["net.peer.ip"], attributes["net.peer.port"] = client[0], client[1]
        with _tracer.start_as_current_span(
            span_name,
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                if routed:
                    response = await self._handler(request)
                else:  # the router's answer to a path it knows with a method it does not
                    response = JSONResponse(
                        {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": self._method}
                    )
            except Exception as exc:  # as Starlette's error middleware: a 500, the error on the span
                record_error(span, exc)
                log.error("%s failed: %s", self._span_name, type(exc).__name__)
                response = JSONResponse({"error": "INTERNAL"}, status_code=500)
            span.set_attribute("http.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            await response(scope, receive, send)
