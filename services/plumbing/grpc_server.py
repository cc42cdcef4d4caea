"""gRPC server bootstrap: grpc.aio, health, reflection; per call: tracing, metrics, auth, precise errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace import Status as SpanStatus

from services.plumbing.auth import Principal, authorize, reset_principal, set_principal, verify_token
from services.plumbing.deadline import enter_call, leave_call
from services.plumbing.errors import ResourceExhausted, ServiceError
from services.plumbing.ops.metrics import Metrics, RpcSeries, get_metrics, split_method
from services.plumbing.settings import Settings
from services.plumbing.telemetry import record_error

log = logging.getLogger(__name__)

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


# Server-side codes that mark a span as an error (OpenTelemetry's gRPC conventions: the others,
# INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED..., are the caller's problem, not the server's).
ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def _status_code(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    """The code the call ended with; `default` when the handler set none (OK when it returned,
    UNKNOWN when it raised: grpc.aio sets that after the interceptor has returned)."""
    code = context.code()
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return code
    return _CODES_BY_VALUE.get(code, default)  # some versions hand back the integer value


def _peer_attributes(peer: str) -> dict[str, str]:
    """'ipv4:127.0.0.1:5000', 'ipv6:[::1]:5000' (the first of a list) -> net.peer.* attributes."""
    if not peer.startswith(("ipv4:", "ipv6:")):
        return {}
    address, _, port = peer.split(",", 1)[0].partition(":")[2].rpartition(":")
    ip = urllib.parse.unquote(address)
    attributes = {"net.peer.ip": ip, "net.peer.port": port}
    if ip in ("[::1]", "127.0.0.1"):
        attributes["net.peer.name"] = "localhost"
    return attributes


@functools.lru_cache(maxsize=1024)  # one entry per method and client connection (never mutated)
def _span_attributes(method: _Method, peer: str, user_agent: str | None) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {**method.attributes, **_peer_attributes(peer)}
    if user_agent:
        attributes["rpc.user_agent"] = user_agent
    return attributes


class CallAdmission:
    """Load shedding: at most `limit` unary calls of a server's own methods run at once.

    Past the limit a call waits for a place, in arrival order, for up to `wait_s` (or what is
    left of its deadline, if less), and at most `limit` calls wait: a short burst is smoothed,
    not refused. A call still waiting then, or one that finds `limit` calls waiting, is refused
    with RESOURCE_EXHAUSTED before its handler runs: it changes nothing and costs the server a
    fraction of a millisecond. Without a limit an overloaded server starts every call, all of
    them slow down together, and past their deadlines the work done for them is wasted:
    bookings offered at twice the capacity completed at about half of it. With the limit it
    keeps completing calls at about its capacity and tells the others to come back
    (RetryInfo). Health and reflection are always admitted; server streams (long-lived) are
    not counted.
    """

    def __init__(self, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._places = asyncio.Semaphore(limit)
        self.running = 0
        self.waiting = 0
        # the same for every refused call: built once, not on the overloaded path
        self.refusal = ResourceExhausted(
            "SERVER_AT_CAPACITY",
            f"the server is running its maximum of {limit} calls; not applied, retry later",
            retry_after_s=max(wait_s, 0.1),
            metadata={"max_concurrent_calls": str(limit)},
        ).to_status()

    async def enter(self, context: grpc.aio.ServicerContext) -> bool:
        """Take a place (True), or False when none came free in time."""
        if not self._places.locked():
            await self._places.acquire()  # a free place: taken without waiting
            self.running += 1
            return True
        if self.waiting >= self.limit:  # as many already wait: refused at once, without a timer
            return False
        remaining = context.time_remaining()
        wait = self.wait_s if remaining is None else min(self.wait_s, remaining)
        self.waiting += 1
        try:
            async with asyncio.timeout(wait):  # in this task: a cancelled call is never admitted
                await self._places.acquire()
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1
        self.running += 1
        return True

    def leave(self) -> None:
        self.running -= 1
        self._places.release()


@dataclass(frozen=True, eq=False)  # hashed by identity: one per method and interceptor
class _Method:
    """What every call of one method shares: its span attributes and its metric series."""

    name: str
    open: bool  # health and reflection: no token needed
    attributes: dict[str, str | int]
    unary: RpcSeries
    server_stream: RpcSeries


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Every call, in one wrapper around the method's handler:
    - a SERVER span named by the method, a child of the caller's `traceparent` (OpenTelemetry's
      RPC conventions: rpc.system/service/method, rpc.grpc.status_code, net.peer.*);
    - the RPC metrics (started, handled by code, handling time), including calls that auth rejects;
    - authentication (bearer JWT) and authorization (the service's role table); health and
      reflection stay open;
    - the call's deadline, for the calls its handler makes (`deadline.py`);
    - load shedding (CallAdmission): past the server's limit of calls in flight, a call is
      refused with RESOURCE_EXHAUSTED before its handler runs;
    - a ServiceError raised by the handler becomes a status with rich details.

    One interceptor rather than three (OpenTelemetry's grpc.aio server instrumentation, a metrics
    one and an auth one): each of those re-created the method handler and added a coroutine and a
    context wrapper to every call; together they cost more server CPU than the bare grpc.aio call.
    """

    def __init__(
        self,
        settings: Settings,
        access: dict[str, frozenset[str]],
        metrics: Metrics,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._settings = settings
        self._access = access
        self._metrics = metrics
        self._admission = CallAdmission(settings.grpc_max_concurrent_calls, settings.grpc_admission_wait_s)
        # the process's gauges follow the last interceptor made: one gRPC server per service process
        metrics.watch_admission(self._admission.limit, lambda: self._admission.running, lambda: self._admission.waiting)
        self._tracer = tracer or trace.get_tracer("iop.grpc.server")
        self._methods: dict[str, _Method] = {}

    def _method(self, name: str) -> _Method:
        method = self._methods.get(name)
        if method is None:
            service, short = split_method(name)
            method = _Method(
                name=name,
                open=name.startswith(OPEN_PREFIXES),
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": short},
                unary=self._metrics.rpc(name, "unary"),
                server_stream=self._metrics.rpc(name, "server_stream"),
            )
            self._methods[name] = method
        return method

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = self._method(details.method)
        metadata = dict(details.invocation_metadata or ())
        principal: Principal | None = None
        rejected: ServiceError | None = None
        if not method.open:
            try:
                principal = verify_token(self._settings, metadata.get("authorization"))
                authorize(principal, method.name, self._access)
            except ServiceError as error:
                rejected = error
        admission = None if method.open else self._admission
        call = _Call(self._tracer, method, metadata, principal, rejected, admission)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                call.server_stream(handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        return handler  # client-streaming methods are not used by this platform


class _Call:
    """One call of a method, and the context manager around its handler: the SERVER span, the
    caller's principal and the metrics (a plain class: cheaper per call than a contextlib
    generator). The handler does not run for a refused call."""

    def __init__(
        self,
        tracer: trace.Tracer,
        method: _Method,
        metadata: dict[str, str],
        principal: Principal | None,
        rejected: ServiceError | None,
        admission: CallAdmission | None,
    ) -> None:
        self.tracer = tracer
        self.method = method
        self.metadata = metadata
        self.principal = principal
        self.rejected = rejected
        self.admission = admission

    def observed(self, context: grpc.aio.ServicerContext, series: RpcSeries) -> _Call:
        self.context = context
        self.series = series
        return self

    async def refuse_if_rejected(self, context: grpc.aio.ServicerContext) -> None:
        if self.rejected is not None:
            await context.abort_with_status(self.rejected.to_status())

    def unary(self, inner: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self.observed(context, self.method.unary):
                await self.refuse_if_rejected(context)
                admission = self.admission
                if admission is not None and not await admission.enter(context):
                    await context.abort_with_status(admission.refusal)
                try:
                    return await inner(request, context)
                except ServiceError as error:
                    await context.abort_with_status(error.to_status())
                except Exception as error:
                    await self.abort_unexpected(context, error)
                finally:
                    if admission is not None:
                        admission.leave()

        return call

    def server_stream(self, inner: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with self.observed(context, self.method.server_stream):
                await self.refuse_if_rejected(context)
                try:
                    async for item in inner(request, context):
                        yield item
                except ServiceError as error:
                    await context.abort_with_status(error.to_status())
                except Exception as error:
                    await self.abort_unexpected(context, error)

        return call

    async def abort_unexpected(self, context: grpc.aio.ServicerContext, error: Exception) -> None:
        """A failure no handler expected: INTERNAL, with its type only. grpc.aio would answer UNKNOWN
        with the error's message, and a message may quote request or stored data (PHI); the span
        and the log get its type and where it was raised."""
        record_error(self.span, error)
        log.error("%s failed: %s", self.method.name, type(error).__name__, exc_info=error)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__})")

    def __enter__(self) -> None:
        metadata = self.metadata
        self.series.started.inc()
        self.started = time.perf_counter()
        carrier = {k: metadata[k] for k in _TRACE_HEADERS if k in metadata}
        parent = propagate.extract(carrier) if carrier else None
        attributes = _span_attributes(self.method, self.context.peer(), metadata.get("user-agent"))
        self.span = self.tracer.start_span(
            self.method.name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        self.trace_token = otel_context.attach(trace.set_span_in_context(self.span, parent))
        self.principal_token = set_principal(self.principal)
        self.deadline_token = enter_call(self.context.time_remaining())

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        context, span = self.context, self.span
        code = _status_code(context, grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in ERROR_CODES:
            span.set_status(SpanStatus(StatusCode.ERROR, f"{code}:{context.details() or ''}"))
        if error is not None and not isinstance(error, grpc.aio.AbortError | asyncio.CancelledError | GeneratorExit):
            record_error(span, error)
        span.end()
        self.series.done(code.name, time.perf_counter() - self.started)
        # Last, as they can fail: a server stream whose client went away is closed by the event
        # loop's async-generator finalizer, in another context than the one these were set in.
        with contextlib.suppress(ValueError):
            leave_call(self.deadline_token)
            reset_principal(self.principal_token)
        otel_context.detach(self.trace_token)  # logs, never raises, in another context


class GrpcServer:
    """A grpc.aio server with the library health service and reflection."""

    def __init__(self, settings: Settings, port: int, access: dict[str, frozenset[str]]) -> None:
        self.server = grpc.aio.server(
            interceptors=[CallInterceptor(settings, access, get_metrics())],
            options=[("grpc.so_reuseport", 0), ("grpc.max_concurrent_streams", 1000)],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = []
        self.address = f"{settings.grpc_host}:{port}"
        self.port = self.server.add_insecure_port(self.address)
        if self.port == 0:
            raise RuntimeError(f"cannot bind gRPC server to {self.address}")

    def add_service(self, full_name: str, register: Callable[[grpc.aio.Server], None]) -> None:
        register(self.server)
        self._service_names.append(full_name)

    async def start(self) -> None:
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        await self.server.start()
        for name in ["", *self._service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING first so load balancers stop routing, then drain calls."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
