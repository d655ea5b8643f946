"""The gRPC servicers: validate, read from the store, apply the domain rules, convert.

Handlers stay thin; the rules live in cancelguard.domain and the SQL in cancelguard.metrics.store.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import grpc
from prometheus_client import Counter, Histogram

from cancelguard.api import convert
from cancelguard.api.errors import ApiError, abort, invalid, not_found
from cancelguard.domain.actions import recommend
from cancelguard.domain.attribution import attribute
from cancelguard.domain.model import InvalidInput, OrderKey
from cancelguard.domain.policy import CancellationPolicy, PolicyBook, UnknownMarketplace
from cancelguard.domain.windows import CancellationRate, WindowKind, rate_status, window_for
from cancelguard.metrics.store import Store
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

log = logging.getLogger("cancelguard.api")

RPCS = Counter("cancelguard_api_rpcs_total", "RPCs handled", ["method", "code"])
RPC_SECONDS = Histogram(
    "cancelguard_api_rpc_seconds",
    "RPC latency",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100

R = TypeVar("R")

_STORE_DOWN = (
    TimeoutError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


def rpc(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Times the call, maps ApiError to its status, and turns anything unexpected into a logged INTERNAL."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        start = time.perf_counter()
        code = "OK"
        try:
            return await method(self, request, context)
        except ApiError as exc:
            code = exc.code.name
            await abort(context, exc)
        except _STORE_DOWN as exc:
            code = "UNAVAILABLE"
            log.warning("store unavailable", extra={"method": name, "error": str(exc)})
            await abort(
                context,
                ApiError(
                    grpc.StatusCode.UNAVAILABLE,
                    "STORE_UNAVAILABLE",
                    "the order store is not reachable right now; retry shortly",
                ),
            )
        except asyncpg.UndefinedTableError as exc:
            code = "UNAVAILABLE"
            log.error("schema missing", extra={"method": name, "error": str(exc)})
            await abort(
                context,
                ApiError(
                    grpc.StatusCode.UNAVAILABLE,
                    "SCHEMA_MISSING",
                    "the database schema is not there yet: start the metrics service "
                    "(it applies the migrations) or run `cancelguard migrate`",
                ),
            )
        except grpc.aio.AbortError:
            raise
        except Exception:
            code = "INTERNAL"
            log.exception("unexpected error", extra={"method": name})
            await abort(
                context, ApiError(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; it was logged")
            )
        finally:
            RPCS.labels(name, code).inc()
            RPC_SECONDS.labels(name).observe(time.perf_counter() - start)
        raise AssertionError("unreachable")

    return wrapper


def _required(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise invalid(field, "is required")
    if len(value) > 128:
        raise invalid(field, "is longer than 128 characters")
    return value


def _policy(policies: PolicyBook, marketplace_id: str) -> CancellationPolicy:
    marketplace_id = _required(marketplace_id, "marketplace_id")
    try:
        return policies.for_marketplace(marketplace_id)
    except UnknownMarketplace as exc:
        raise invalid("marketplace_id", str(exc), reason="UNKNOWN_MARKETPLACE") from None


class OrderService(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, store: Store, policies: PolicyBook) -> None:
        self.store = store
        self.policies = policies

    @rpc
    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        policy = _policy(self.policies, request.marketplace_id)
        key = OrderKey(
            _required(request.seller_account, "seller_account"),
            request.marketplace_id.strip(),
            _required(request.amazon_order_id, "amazon_order_id"),
        )
        order = await self.store.get_order(key)
        if order is None:
            raise not_found(
                f"order {key.amazon_order_id}",
                {"seller_account": key.seller_account, "marketplace_id": key.marketplace_id},
            )
        return convert.order_message(order, attribute(order, policy), recommend(order, policy))

    @rpc
    async def ListCancellationRequests(
        self, request: orders_pb2.ListCancellationRequestsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListCancellationRequestsResponse:
        policy = _policy(self.policies, request.marketplace_id)
        seller = _required(request.seller_account, "seller_account")
        if request.page_size < 0 or request.page_size > MAX_PAGE_SIZE:
            raise invalid("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        size = request.page_size or DEFAULT_PAGE_SIZE
        after = (
            decode_page_token(request.page_token, seller, request.marketplace_id)
            if request.page_token
            else None
        )
        orders = await self.store.open_requests(seller, request.marketplace_id, after=after, limit=size + 1)
        response = orders_pb2.ListCancellationRequestsResponse()
        for order in orders[:size]:
            response.orders.append(
                convert.order_message(order, attribute(order, policy), recommend(order, policy))
            )
        if len(orders) > size:
            last = orders[size - 1]
            at = (
                last.first_formal_request_at
                if last.has_open_formal_request
                else last.informal_requests[0].requested_at
            )
            assert at is not None
            response.next_page_token = encode_page_token(
                seller, request.marketplace_id, at, last.key.amazon_order_id
            )
        return response


def encode_page_token(seller: str, marketplace_id: str, at: datetime, order_id: str) -> str:
    raw = json.dumps({"s": seller, "m": marketplace_id, "at": at.isoformat(), "id": order_id})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_page_token(token: str, seller: str, marketplace_id: str) -> tuple[datetime, str]:
    """Opaque to clients (AIP-158); bound to the request's seller and marketplace."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        if raw["s"] != seller or raw["m"] != marketplace_id:
            raise ValueError("token is for another seller account or marketplace")
        return datetime.fromisoformat(raw["at"]), str(raw["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid("page_token", f"not a token from a previous response of this query ({exc})") from None


class MetricsService(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: Store, policies: PolicyBook) -> None:
        self.store = store
        self.policies = policies

    @rpc
    async def GetCancellationRate(
        self, request: metrics_pb2.GetCancellationRateRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.CancellationRate:
        policy = _policy(self.policies, request.marketplace_id)
        seller = _required(request.seller_account, "seller_account")
        kind = convert.WINDOW_FROM_PB.get(request.window_kind, WindowKind.AMAZON_ALIGNED)
        if request.window_kind not in (0, *convert.WINDOW_FROM_PB):
            raise invalid("window_kind", f"unknown value {request.window_kind}")
        if request.window_days < 0:
            raise invalid("window_days", "must be >= 0")
        if request.window_days and kind is WindowKind.LIVE:
            raise invalid(
                "window_days", "applies to Amazon-aligned windows only (the live window is 168 hours)"
            )
        now = datetime.now(UTC)
        as_of = now
        if request.HasField("as_of"):
            try:
                as_of = request.as_of.ToDatetime(tzinfo=UTC)
            except (ValueError, OverflowError) as exc:
                raise invalid("as_of", f"not a valid time: {exc}") from None
        try:
            window = window_for(kind, as_of, policy, request.window_days or None)
        except InvalidInput as exc:
            raise invalid("window_days", str(exc)) from None
        orders, cancellations = await self.store.bucket_totals(
            seller, request.marketplace_id, window.start, window.end
        )
        rate = CancellationRate(window, cancellations, orders, rate_status(cancellations, orders, policy))
        return convert.rate_message(seller, request.marketplace_id, rate, policy, now)
