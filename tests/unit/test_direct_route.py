"""services.plumbing.direct_route.DirectRoute: one route served ahead of a FastAPI app, with the
SERVER span the OpenTelemetry instrumentor would make; every other request reaches the app."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.plumbing import direct_route, telemetry
from services.plumbing.direct_route import DirectRoute
from services.plumbing.telemetry import instrument_fastapi

PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(direct_route, "_tracer", provider.get_tracer("test"))
    return exporter


def client(app: DirectRoute) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def routed() -> DirectRoute:
    app = FastAPI()

    @app.get("/other")
    async def other() -> dict[str, str]:
        return {"served_by": "fastapi"}

    async def hook(request: Request) -> Response:
        body = await request.body()
        if body == b"boom":
            raise RuntimeError("handler failed")
        return JSONResponse({"echo": body.decode(), "signature": request.headers.get("x-sig")}, status_code=202)

    return DirectRoute(app, "POST", "/hook", hook)


async def test_the_route_is_served_by_its_handler_in_a_server_span_continuing_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    async with client(routed()) as http:
        reply = await http.post(
            "/hook", content=b"payload", headers={"x-sig": "s1", "traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}
        )
    assert (reply.status_code, reply.json()) == (202, {"echo": "payload", "signature": "s1"})
    [span] = spans.get_finished_spans()
    assert (span.name, span.kind) == ("POST /hook", SpanKind.SERVER)
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_SPAN
    assert span.context is not None and f"{span.context.trace_id:032x}" == PARENT_TRACE
    attributes = dict(span.attributes or {})
    assert (attributes["http.method"], attributes["http.route"], attributes["http.status_code"]) == (
        "POST",
        "/hook",
        202,
    )
    assert (attributes["http.url"], attributes["http.server_name"]) == ("http://test/hook", "test")
    assert span.status.status_code is StatusCode.UNSET


async def test_other_paths_and_methods_reach_the_app(spans: InMemorySpanExporter) -> None:
    async with client(routed()) as http:
        assert (await http.get("/other")).json() == {"served_by": "fastapi"}
    assert spans.get_finished_spans() == ()  # not instrumented here: no span of the route's


async def test_another_method_on_the_route_gets_405_with_allow_as_from_the_router(
    spans: InMemorySpanExporter,
) -> None:
    async with client(routed()) as http:
        reply = await http.get("/hook")
    assert (reply.status_code, reply.headers["allow"], reply.json()) == (405, "POST", {"detail": "Method Not Allowed"})
    [span] = spans.get_finished_spans()
    assert (span.name, dict(span.attributes or {})["http.status_code"]) == ("GET /hook", 405)
    assert span.status.status_code is StatusCode.UNSET  # the caller's error, not the server's


async def test_a_handler_that_raises_gets_a_500_and_the_error_on_its_span(spans: InMemorySpanExporter) -> None:
    async with client(routed()) as http:
        reply = await http.post("/hook", content=b"boom")
    assert (reply.status_code, reply.json()) == (500, {"error": "INTERNAL"})
    [span] = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    assert dict(span.attributes or {})["http.status_code"] == 500


async def test_the_route_is_found_below_a_root_path(spans: InMemorySpanExporter) -> None:
    """uvicorn with --root-path puts it in front of the request's path."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=routed(), root_path="/engagement"), base_url="http://test"
    ) as http:
        reply = await http.post("/engagement/hook", content=b"x")
    assert reply.status_code == 202
    assert [s.name for s in spans.get_finished_spans()] == ["POST /hook"]


@pytest.mark.parametrize(("method", "status"), [("POST", 202), ("GET", 405), ("FOO", 405)])
async def test_its_span_is_the_one_the_instrumented_app_makes_for_the_same_request(
    spans: InMemorySpanExporter, method: str, status: int
) -> None:
    """Same name and attributes as FastAPI's instrumented route, a made-up method and a query
    string included (the URL never carries the query: the dashboard's token comes in one)."""
    provider = TracerProvider()
    instrumented_spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(instrumented_spans))
    instrumented = FastAPI()

    @instrumented.post("/hook")
    async def hook() -> Response:
        return JSONResponse({}, status_code=202)

    instrument_fastapi(instrumented, tracer_provider=provider)
    request = {"url": "/hook?access_token=secret", "headers": {"user-agent": "ua"}}
    for app in (instrumented, routed()):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 4321)), base_url="http://svc:8080"
        ) as http:
            reply = await http.request(method, **request)  # type: ignore[arg-type]
            assert reply.status_code == status
    [theirs] = instrumented_spans.get_finished_spans()
    [ours] = spans.get_finished_spans()
    assert ours.name == theirs.name
    assert dict(ours.attributes or {}) == dict(theirs.attributes or {})
    assert "secret" not in str(dict(ours.attributes or {}))


def test_the_request_hook_takes_the_query_out_of_either_conventions_url() -> None:
    """The instrumentation's old conventions put the query in `http.url`, the stable ones (opted in
    with OTEL_SEMCONV_STABILITY_OPT_IN=http) in `url.query`: neither keeps it."""
    provider = TracerProvider()
    scope = {"scheme": "http", "path": "/dashboard", "headers": [(b"host", b"svc")], "server": ("10.0.0.2", 8080)}
    for attribute, value in (
        ("http.url", "http://svc/dashboard?access_token=secret"),
        ("url.query", "access_token=secret"),
    ):
        span = provider.get_tracer("t").start_span("GET /dashboard", attributes={attribute: value})
        telemetry._url_without_query(span, scope)
        span.end()
        recorded = dict(span.attributes or {})  # type: ignore[attr-defined]
        assert "secret" not in str(recorded), recorded
        assert set(recorded) == {attribute}  # the other convention's attribute is not added
    assert telemetry.http_url_without_query(scope) == "http://svc/dashboard"
