"""gRPC errors with an ErrorInfo on every one (AIP-193), sent as rich status details (grpcio-status).

Clients read `grpc_status.rpc_status.from_call(call)` for the details; the plain message already says
what went wrong and what to do.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "cancelguard.api"

_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
}


class ApiError(Exception):
    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        *,
        field: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason  # UPPER_SNAKE_CASE, stable: clients branch on it
        self.message = message
        self.field = field
        self.metadata = metadata or {}

    def to_status(self) -> grpc.Status:
        details = []
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
        if self.field:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=self.field, description=self.message)
                ]
            )
            packed = any_pb2.Any()
            packed.Pack(bad)
            details.append(packed)
        status = status_pb2.Status(code=_CODES[self.code], message=self.message, details=details)
        return rpc_status.to_status(status)


def invalid(field: str, message: str, reason: str = "INVALID_ARGUMENT") -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, reason, f"{field}: {message}", field=field)


def not_found(what: str, metadata: dict[str, str]) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, "NOT_FOUND", f"{what} not found", metadata=metadata)


async def abort(context: grpc.aio.ServicerContext, error: ApiError) -> NoReturn:
    await context.abort_with_status(error.to_status())
    raise AssertionError("abort_with_status returned")  # it always raises
