"""gRPC errors with an ErrorInfo on every one (AIP-193), sent as rich status details (grpcio-status).

Clients read `grpc_status.rpc_status.from_call(call)` for the details; the plain message already says
what went wrong and what to do.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from cancelguard import db
from cancelguard.domain.model import InvalidInput

log = logging.getLogger("cancelguard.api")

DOMAIN = "cancelguard.api"

_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
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


def failed_precondition(reason: str, message: str, metadata: dict[str, str] | None = None) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, reason, message, metadata=metadata)


# Authentication and authorization: the same answer whatever exists behind them.
NO_CREDENTIALS = ApiError(
    grpc.StatusCode.UNAUTHENTICATED,
    "MISSING_CREDENTIALS",
    "send the calling service's token as metadata `authorization: Bearer <token>`",
)
BAD_CREDENTIALS = ApiError(
    grpc.StatusCode.UNAUTHENTICATED,
    "BAD_CREDENTIALS",
    "the bearer token is not one of a calling service's tokens",
)


def not_allowed(seller_account: str) -> ApiError:
    return ApiError(
        grpc.StatusCode.PERMISSION_DENIED,
        "SELLER_ACCOUNT_NOT_ALLOWED",
        f"this caller may not see or act for seller account {seller_account!r}",
        field="seller_account",
        metadata={"seller_account": seller_account[:64]},
    )


def overloaded(limit: int) -> ApiError:
    return ApiError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "OVERLOADED",
        f"this server is handling its limit of {limit} calls at once; retry with backoff",
        metadata={"limit": str(limit)},
    )


STORE_UNAVAILABLE = ApiError(
    grpc.StatusCode.UNAVAILABLE,
    "STORE_UNAVAILABLE",
    "the order store is not reachable right now; retry shortly",
)
EVENTS_UNAVAILABLE = ApiError(
    grpc.StatusCode.UNAVAILABLE,
    "EVENTS_UNAVAILABLE",
    "the event stream (Kafka) is not reachable right now; retry shortly with the same request_id",
)
SHUTTING_DOWN = ApiError(
    grpc.StatusCode.UNAVAILABLE,
    "SHUTTING_DOWN",
    "this server is shutting down; reconnect (a watch: with the last resume_token)",
)
_SCHEMA_MISSING = ApiError(
    grpc.StatusCode.UNAVAILABLE,
    "SCHEMA_MISSING",
    "the database schema is not there yet: start the metrics service (it applies the migrations) "
    "or run `cancelguard migrate`",
)
_INVALID_VALUE = ApiError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VALUE", "a request value is not valid")
_DEADLINE = ApiError(
    grpc.StatusCode.UNAVAILABLE,
    "DEADLINE_TOO_SHORT",
    "the store did not answer within the call's deadline; retry with a longer one",
)
_INTERNAL = ApiError(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; it was logged")


def error_for(exc: BaseException, method: str) -> ApiError:
    """The documented answer to a failure. Only a bug of ours is INTERNAL (and is logged with its trace)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidInput):  # a domain rule refused a value the validation let through
        return ApiError(grpc.StatusCode.INVALID_ARGUMENT, exc.reason, str(exc))
    if isinstance(exc, asyncpg.QueryCanceledError):  # the statement timeout (the call's deadline) fired
        return _DEADLINE
    if db.is_transient(exc):  # health says so too (one warning per outage): nothing logged per call
        return STORE_UNAVAILABLE
    if isinstance(exc, asyncpg.UndefinedTableError):
        log.error("schema missing", extra={"method": method, "error": str(exc)})
        return _SCHEMA_MISSING
    if db.is_record_error(exc):  # Postgres refused a value: bad input that got past validation
        log.warning("store refused a request value", extra={"method": method, "error": str(exc)[:500]})
        return _INVALID_VALUE
    log.error("unexpected error", exc_info=exc, extra={"method": method})
    return _INTERNAL
