"""The gRPC servicers: validate, read from the store, apply the domain rules, convert.

Handlers stay thin; the rules live in cancelguard.domain and the SQL in cancelguard.metrics.store.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import grpc
from prometheus_client import Counter, Histogram

from cancelguard import db
from cancelguard.api import convert, validation
from cancelguard.api.errors import ApiError, abort, invalid, not_found
from cancelguard.api.wiring import Undecodable
from cancelguard.domain.actions import Intent, recommend
from cancelguard.domain.attribution import attribute
from cancelguard.domain.model import REASON_NO_INVENTORY, InvalidInput, Order, OrderKey
from cancelguard.domain.policy import CancellationPolicy, PolicyBook
from cancelguard.domain.projection import roll_off, what_if
from cancelguard.domain.requests import open_request
from cancelguard.domain.windows import (
    BUCKET,
    CancellationRate,
    Window,
    WindowKind,
    bucket_start,
    live_window,
    rate_status,
    window_for,
)
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

R = TypeVar("R")

_STORE_UNAVAILABLE = ApiError(
    grpc.StatusCode.UNAVAILABLE,
    "STORE_UNAVAILABLE",
    "the order store is not reachable right now; retry shortly",
)
_SCHEMA_MISSING = ApiError(
    grpc.StatusCode.UNAVAILABLE,
    "SCHEMA_MISSING",
    "the database schema is not there yet: start the metrics service (it applies the migrations) "
    "or run `cancelguard migrate`",
)
_INVALID_VALUE = ApiError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VALUE", "a request value is not valid")
_INTERNAL = ApiError(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; it was logged")


def error_for(exc: Exception, method: str) -> ApiError:
    """The documented answer to a failure. Only a bug of ours is INTERNAL (and is logged with its trace)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidInput):  # a domain rule refused a value the validation let through
        return ApiError(grpc.StatusCode.INVALID_ARGUMENT, exc.reason, str(exc))
    if db.is_transient(exc):  # health says so too (one warning per outage): nothing logged per call
        return _STORE_UNAVAILABLE
    if isinstance(exc, asyncpg.UndefinedTableError):
        log.error("schema missing", extra={"method": method, "error": str(exc)})
        return _SCHEMA_MISSING
    if db.is_record_error(exc):  # Postgres refused a value: bad input that got past validation
        log.warning("store refused a request value", extra={"method": method, "error": str(exc)[:500]})
        return _INVALID_VALUE
    log.error("unexpected error", exc_info=exc, extra={"method": method})
    return _INTERNAL


def rpc(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Times the call and answers every failure with its documented status and an ErrorInfo."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        start = time.perf_counter()
        code = "OK"
        try:
            if isinstance(request, Undecodable):
                raise ApiError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "UNDECODABLE_REQUEST",
                    f"the request is not a valid {name} request message: {request.error}",
                )
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            error = error_for(exc, name)
            code = error.code.name
            await abort(context, error)
        finally:
            RPCS.labels(name, code).inc()
            RPC_SECONDS.labels(name).observe(time.perf_counter() - start)
        raise AssertionError("unreachable")

    return wrapper


async def _rate(
    store: Store, seller: str, marketplace_id: str, window: Window, policy: CancellationPolicy
) -> CancellationRate:
    orders, cancellations = await store.bucket_totals(seller, marketplace_id, window.start, window.end)
    return CancellationRate(window, cancellations, orders, rate_status(cancellations, orders, policy))


class OrderService(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, store: Store, policies: PolicyBook, page_tokens: validation.PageTokens) -> None:
        self.store = store
        self.policies = policies
        self.page_tokens = page_tokens

    async def _order(
        self, request: orders_pb2.GetOrderRequest | orders_pb2.EvaluateCancellationRequest
    ) -> tuple[CancellationPolicy, Order]:
        policy = validation.policy(await self.store.policy_book(), request.marketplace_id)
        key = OrderKey(
            validation.identifier(request.seller_account, "seller_account"),
            request.marketplace_id,
            validation.identifier(request.amazon_order_id, "amazon_order_id"),
        )
        order = await self.store.get_order(key)
        if order is None:
            raise not_found(
                f"order {key.amazon_order_id}",
                {"seller_account": key.seller_account, "marketplace_id": key.marketplace_id},
            )
        return policy, order

    @rpc
    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        policy, order = await self._order(request)
        return convert.order_message(order, attribute(order, policy), recommend(order, policy))

    @rpc
    async def ListCancellationRequests(
        self, request: orders_pb2.ListCancellationRequestsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListCancellationRequestsResponse:
        policy = validation.policy(await self.store.policy_book(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        size = validation.page_size(request.page_size)
        query = {"rpc": "ListCancellationRequests", "seller": seller, "marketplace": request.marketplace_id}
        after = None
        if request.page_token:
            position = self.page_tokens.decode(request.page_token, query)
            after = (datetime.fromisoformat(position["at"]), position["id"])
        orders = await self.store.open_requests(seller, request.marketplace_id, after=after, limit=size + 1)
        response = orders_pb2.ListCancellationRequestsResponse()
        for order in orders[:size]:
            response.orders.append(
                convert.order_message(order, attribute(order, policy), recommend(order, policy))
            )
        if len(orders) > size:
            last = orders[size - 1]
            request_at = open_request(last)
            assert request_at is not None  # the store listed it for its open request
            response.next_page_token = self.page_tokens.encode(
                query, {"at": request_at.requested_at.isoformat(), "id": last.key.amazon_order_id}
            )
        return response

    @rpc
    async def EvaluateCancellation(
        self, request: orders_pb2.EvaluateCancellationRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.CancellationEvaluation:
        intent = _INTENTS.get(request.intent)
        if intent is None:
            raise invalid("intent", f"unknown value {request.intent}")
        policy, order = await self._order(request)
        key = order.key
        now = datetime.now(UTC)
        window = live_window(now, hours=policy.live_window_hours)
        current = await _rate(self.store, key.seller_account, key.marketplace_id, window, policy)
        action = recommend(order, policy, intent=intent, current_rate=current, now=now)
        response = orders_pb2.CancellationEvaluation(action=convert.action_message(action))
        if action.projected_rate is not None and action.current_rate is not None:
            response.current_rate.CopyFrom(
                convert.rate_message(key.seller_account, key.marketplace_id, action.current_rate, policy, now)
            )
            response.projected_rate.CopyFrom(
                convert.rate_message(
                    key.seller_account, key.marketplace_id, action.projected_rate, policy, now
                )
            )
        return response


_INTENTS = {
    orders_pb2.EvaluateCancellationRequest.INTENT_UNSPECIFIED: Intent.NONE,
    orders_pb2.EvaluateCancellationRequest.INTENT_NO_INVENTORY: Intent.CANCEL_NO_INVENTORY,
    orders_pb2.EvaluateCancellationRequest.INTENT_BUYER_CANCELED: Intent.CANCEL_BUYER_CANCELED,
}


def _window(
    policy: CancellationPolicy,
    window_kind: int,
    window_days: int,
    as_of: datetime,
    default: WindowKind = WindowKind.AMAZON_ALIGNED,
) -> Window:
    if window_kind != 0 and window_kind not in convert.WINDOW_FROM_PB:
        raise invalid("window_kind", f"unknown value {window_kind}")
    kind = convert.WINDOW_FROM_PB.get(window_kind, default)
    if window_days < 0:
        raise invalid("window_days", "must be >= 0")
    if window_days and kind is WindowKind.LIVE:
        raise invalid("window_days", "applies to Amazon-aligned windows only (the live window is 168 hours)")
    try:
        return window_for(kind, as_of, policy, window_days or None)
    except InvalidInput as exc:
        raise invalid("window_days", str(exc)) from None


def _as_of(request: Any, now: datetime) -> datetime:
    return validation.timestamp(request, "as_of", now) or now


class MetricsService(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: Store, policies: PolicyBook) -> None:
        self.store = store
        self.policies = policies

    @rpc
    async def GetCancellationRate(
        self, request: metrics_pb2.GetCancellationRateRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.CancellationRate:
        policy = validation.policy(await self.store.policy_book(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        now = datetime.now(UTC)
        window = _window(policy, request.window_kind, request.window_days, _as_of(request, now))
        rate = await _rate(self.store, seller, request.marketplace_id, window, policy)
        response = convert.rate_message(seller, request.marketplace_id, rate, policy, now)
        if window.kind is WindowKind.AMAZON_ALIGNED:  # Amazon's own figure for it, when reported
            figure = await self.store.amazon_figure(seller, request.marketplace_id, window.start, window.end)
            if figure is not None:
                response.amazon.CopyFrom(convert.amazon_message(figure))
        return response

    @rpc
    async def ProjectCancellationRate(
        self, request: metrics_pb2.ProjectCancellationRateRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.CancellationRateProjection:
        policy = validation.policy(await self.store.policy_book(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        order_ids = validation.order_ids(request.amazon_order_ids)
        reason = validation.text(request.cancel_reason, "cancel_reason", max_len=64) or REASON_NO_INVENTORY
        now = datetime.now(UTC)
        window = _window(policy, request.window_kind, request.window_days, now, default=WindowKind.LIVE)
        current = await _rate(self.store, seller, request.marketplace_id, window, policy)
        found = await self.store.get_orders(seller, request.marketplace_id, order_ids)
        result = what_if(
            current, [found[i] for i in order_ids if i in found], cancel_reason=reason, at=now, policy=policy
        )
        mkt = request.marketplace_id
        response = metrics_pb2.CancellationRateProjection(
            current=convert.rate_message(seller, mkt, result.current, policy, now),
            projected=convert.rate_message(seller, mkt, result.projected, policy, now),
        )
        effects = {e.key.amazon_order_id: e for e in result.effects}
        for order_id in order_ids:
            effect = effects.get(order_id)
            if effect is None:
                response.effects.add(
                    amazon_order_id=order_id, found=False, explanation="cancelguard has not seen this order"
                )
            else:
                response.effects.add(
                    amazon_order_id=order_id,
                    found=True,
                    cancelled_orders_delta=effect.numerator_delta,
                    total_orders_delta=effect.denominator_delta,
                    rule=effect.after.rule.value,
                    explanation=effect.explanation,
                )
        return response

    @rpc
    async def GetRollOff(
        self, request: metrics_pb2.GetRollOffRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.RollOff:
        policy = validation.policy(await self.store.policy_book(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        now = datetime.now(UTC)
        as_of = _as_of(request, now)
        window = _window(policy, request.window_kind, request.window_days, as_of)
        expected = None
        if request.HasField("expected_daily_orders"):
            expected = Decimal(str(validation.count(request.expected_daily_orders, "expected_daily_orders")))
        mkt = request.marketplace_id
        buckets = await self.store.buckets(seller, mkt, window.start, bucket_start(as_of) + BUCKET)
        counted = await self.store.counted_cancellations(seller, mkt, window.start, window.end)
        result = roll_off(
            as_of,
            buckets,
            counted,
            policy,
            kind=window.kind,
            days=request.window_days or None,
            expected_daily_orders=expected,
        )
        response = metrics_pb2.RollOff(
            current=convert.rate_message(seller, mkt, result.current, policy, now),
            under_warning_on=convert.day_timestamp(result.under_warning_on),
            under_threshold_on=convert.day_timestamp(result.under_threshold_on),
            assumed_daily_orders=float(result.assumed_daily_orders),
        )
        for leaving in result.leaving:
            response.leaving.add(
                amazon_order_id=leaving.amazon_order_id,
                counted_at=convert.timestamp(leaving.at),
                leaves_at=convert.timestamp(leaving.leaves_on),
            )
        for day in result.days:
            response.days.add(
                day=convert.day_timestamp(day.day),
                rate=convert.rate_message(seller, mkt, day.rate, policy, now),
            )
        return response

    @rpc
    async def ListSuppressionRisks(
        self, request: metrics_pb2.ListSuppressionRisksRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.ListSuppressionRisksResponse:
        policy = validation.policy(await self.store.policy_book(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        as_of = _as_of(request, datetime.now(UTC))
        risks = await self.store.suppression_risks(
            seller, request.marketplace_id, as_of, policy.suppression_days
        )
        response = metrics_pb2.ListSuppressionRisksResponse()
        for risk in risks:
            response.risks.add(
                seller_sku=risk.seller_sku,
                amazon_order_ids=risk.amazon_order_ids,
                explanation=risk.explanation,
            )
        return response
