"""gRPC server bootstrap: grpc.aio, health, reflection, auth, precise errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.plumbing.auth import authorize, reset_principal, set_principal, verify_token
from services.plumbing.errors import ServiceError
from services.plumbing.ops.metrics import get_metrics
from services.plumbing.settings import Settings

log = logging.getLogger(__name__)

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes every call, and maps ServiceError to a rich status."""

    def __init__(self, settings: Settings, access: dict[str, frozenset[str]]) -> None:
        self._settings = settings
        self._access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        metadata = {k: v for k, v in (details.invocation_metadata or ())}
        try:
            principal = verify_token(self._settings, metadata.get("authorization"))
            authorize(principal, details.method, self._access)
        except ServiceError as error:
            return _rejecting_handler(handler, error)
        return _wrapped_handler(handler, principal)


def _rejecting_handler(handler: grpc.RpcMethodHandler, error: ServiceError) -> grpc.RpcMethodHandler:
    async def reject(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(error.to_status())

    if handler.unary_stream:

        async def reject_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort_with_status(error.to_status())
            yield  # pragma: no cover

        return grpc.unary_stream_rpc_method_handler(
            reject_stream, handler.request_deserializer, handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(reject, handler.request_deserializer, handler.response_serializer)


def _wrapped_handler(handler: grpc.RpcMethodHandler, principal: Any) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = set_principal(principal)
            try:
                return await inner(request, context)
            except ServiceError as error:
                await context.abort_with_status(error.to_status())
            finally:
                reset_principal(token)

        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = set_principal(principal)
            try:
                async for item in inner_stream(request, context):
                    yield item
            except ServiceError as error:
                await context.abort_with_status(error.to_status())
            finally:
                reset_principal(token)

        return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer, handler.response_serializer)
    return handler  # client-streaming methods are not used by this platform


class GrpcServer:
    """A grpc.aio server with the library health service and reflection."""

    def __init__(self, settings: Settings, port: int, access: dict[str, frozenset[str]]) -> None:
        self.server = grpc.aio.server(
            interceptors=[get_metrics().interceptor(), ServiceInterceptor(settings, access)],
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
