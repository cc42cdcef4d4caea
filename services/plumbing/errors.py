"""Precise gRPC errors with google.rpc rich details.

Service code raises these; the server interceptor turns them into a status with
`google.rpc.BadRequest` field violations (INVALID_ARGUMENT) or
`google.rpc.ErrorInfo` carrying a machine-readable reason (the others).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "iop"


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    rpc_code: int = code_pb2.UNKNOWN

    def __init__(self, message: str, details: list[Message] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_status(self) -> grpc.Status:
        anys = []
        for d in self.details:
            a = any_pb2.Any()
            a.Pack(d)
            anys.append(a)
        return rpc_status.to_status(status_pb2.Status(code=self.rpc_code, message=self.message, details=anys))


def _error_info(reason: str, metadata: dict[str, str] | None) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {})


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    rpc_code = code_pb2.INVALID_ARGUMENT

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
            ]
        )
        summary = "; ".join(f"{f}: {d}" for f, d in violations)
        super().__init__(f"invalid argument: {summary}", [request])


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    rpc_code = code_pb2.NOT_FOUND

    def __init__(self, resource_type: str, resource_id: str) -> None:
        info = error_details_pb2.ResourceInfo(resource_type=resource_type, resource_name=resource_id)
        super().__init__(f"{resource_type} {resource_id} not found", [info])


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    rpc_code = code_pb2.ALREADY_EXISTS

    def __init__(self, reason: str, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, [_error_info(reason, metadata)])


class FailedPrecondition(ServiceError):
    """A rule denied the request; `reason` is machine-readable (UPPER_SNAKE_CASE)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    rpc_code = code_pb2.FAILED_PRECONDITION

    def __init__(self, reason: str, message: str, metadata: dict[str, str] | None = None) -> None:
        self.reason = reason
        super().__init__(message, [_error_info(reason, metadata)])


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    rpc_code = code_pb2.PERMISSION_DENIED

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, [_error_info(reason, None)])


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED
    rpc_code = code_pb2.UNAUTHENTICATED

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, [_error_info(reason, None)])


class Unavailable(ServiceError):
    """A dependency is down; safety decisions fail closed with this."""

    code = grpc.StatusCode.UNAVAILABLE
    rpc_code = code_pb2.UNAVAILABLE

    def __init__(self, reason: str, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, [_error_info(reason, metadata)])


class Aborted(ServiceError):
    """A concurrency conflict: nothing was applied; the same request may succeed if retried."""

    code = grpc.StatusCode.ABORTED
    rpc_code = code_pb2.ABORTED

    def __init__(self, reason: str, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, [_error_info(reason, metadata)])


class ResourceExhausted(ServiceError):
    """The server is at capacity: not applied, retry after `retry_after_s` (google.rpc.RetryInfo).
    Clients' retry policies do not retry this code on their own (they retry UNAVAILABLE), so a
    refusal under overload does not come back at once as more load."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    rpc_code = code_pb2.RESOURCE_EXHAUSTED

    def __init__(self, reason: str, message: str, retry_after_s: float, metadata: dict[str, str] | None = None) -> None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(retry_after_s * 1e9))
        super().__init__(message, [_error_info(reason, metadata), retry])


class FieldViolations:
    """Collects every problem with a request before answering, so one reply names them all."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def require(self, condition: bool, field: str, description: str) -> None:
        if not condition:
            self.add(field, description)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def bad_request_violations(call_status: status_pb2.Status) -> list[tuple[str, str]]:
    """For clients and tests: the field violations inside a rich status."""
    out: list[tuple[str, str]] = []
    for detail in call_status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.extend((v.field, v.description) for v in br.field_violations)
    return out


def error_reason(call_status: status_pb2.Status) -> str | None:
    for detail in call_status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None
