"""The service channels' retry policy on a real loopback grpc.aio server: idempotent methods are
retried on UNAVAILABLE, and those retries stop while most attempts fail (a dependency that is
down does not get four times the calls)."""

from __future__ import annotations

import grpc

from services.plumbing.grpc_client import service_channel

SERVICE = "test.retries.v1.Flaky"


def _identity(b: bytes) -> bytes:
    return b


async def test_retries_of_an_idempotent_method_stop_while_most_calls_fail() -> None:
    attempts = 0

    async def unavailable(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal attempts
        attempts += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        return b""

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(unavailable, _identity, _identity)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Get": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = service_channel(f"127.0.0.1:{port}", SERVICE, ["Get"], lambda: "token", timeout_s=5)
    get = channel.unary_unary(f"/{SERVICE}/Get", _identity, _identity)
    try:
        first_call_attempts = 0
        for n in range(20):
            try:
                await get(b"", timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() is grpc.StatusCode.UNAVAILABLE
            if n == 0:
                first_call_attempts = attempts
    finally:
        await channel.close()
        await server.stop(0)
    assert first_call_attempts > 1  # the method is retried...
    assert attempts < 20 + 3 * 5  # ...until the failures use up the retry tokens: not 4 x 20 attempts
