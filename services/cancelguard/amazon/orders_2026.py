"""Orders API v2026-01-01 (`models/orders-api-model/orders_2026-01-01.json`): searchOrders, getOrder.

`includedData=CANCELLATION` adds `orderItems[].cancellation.cancellationRequest {requester, cancelReason}`
and `cancellationExecution {cancelledBy: BUYER|MERCHANT|AMAZON, cancelReason}`; `FULFILLMENT` adds
`fulfillment.fulfillmentStatus` (spelled `CANCELLED`) and `fulfilledBy` (`MERCHANT`/`AMAZON`). Exactly
one of `createdAfter`/`lastUpdatedAfter`; "before" bounds at least two minutes before now; pages follow
`pagination.nextToken`, passed back as `paginationToken` (valid 24 hours).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cancelguard.amazon.operations import GET_ORDER_2026, SEARCH_ORDERS
from cancelguard.amazon.orders_v0 import check_choice, check_order_filters
from cancelguard.amazon.shape import require

if TYPE_CHECKING:
    from cancelguard.amazon.client import SpApiClient

FULFILLMENT_STATUSES = (
    "PENDING_AVAILABILITY",
    "PENDING",
    "UNSHIPPED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "CANCELLED",
    "UNFULFILLABLE",
)
FULFILLED_BY = ("MERCHANT", "AMAZON")
INCLUDED_DATA = (
    "BUYER",
    "RECIPIENT",
    "PROCEEDS",
    "EXPENSE",
    "PROMOTION",
    "CANCELLATION",
    "FULFILLMENT",
    "PACKAGES",
    "TAX",
    "PAYMENT",
    "FULFILLMENT_ORDERS",
)
# what a CR engine needs: who cancelled and why, and the order's status and channel
DEFAULT_INCLUDED_DATA = ("CANCELLATION", "FULFILLMENT")


@dataclass(frozen=True, slots=True)
class SearchOrdersPage:
    orders: list[Any]  # as Amazon sent them, each checked by the adapter (see orders_v0.OrdersPage)
    next_token: str | None  # pagination.nextToken
    last_updated_before: str | None
    created_before: str | None
    request_id: str


class Orders2026:
    def __init__(self, client: SpApiClient) -> None:
        self._client = client

    async def search_orders(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        last_updated_after: datetime | None = None,
        last_updated_before: datetime | None = None,
        marketplace_ids: Sequence[str] = (),
        fulfillment_statuses: Sequence[str] = (),
        fulfilled_by: Sequence[str] = (),
        included_data: Sequence[str] = DEFAULT_INCLUDED_DATA,
        max_results_per_page: int = 100,
    ) -> AsyncIterator[SearchOrdersPage]:
        check_order_filters(
            created_after, created_before, last_updated_after, last_updated_before, marketplace_ids
        )
        if not 1 <= max_results_per_page <= 100:
            raise ValueError("max_results_per_page must be 1-100")
        check_choice(fulfillment_statuses, FULFILLMENT_STATUSES, "fulfillment status")
        check_choice(fulfilled_by, FULFILLED_BY, "fulfilledBy")
        check_choice(included_data, INCLUDED_DATA, "includedData")
        filters = {
            "createdAfter": created_after,
            "createdBefore": created_before,
            "lastUpdatedAfter": last_updated_after,
            "lastUpdatedBefore": last_updated_before,
            "marketplaceIds": list(marketplace_ids),
            "fulfillmentStatuses": list(fulfillment_statuses),
            "fulfilledBy": list(fulfilled_by),
            "includedData": list(included_data),
            "maxResultsPerPage": max_results_per_page,
        }
        token: str | None = None
        op = SEARCH_ORDERS.operation_id
        while True:
            query = dict(filters) if token is None else {**filters, "paginationToken": token}
            resp = await self._client.call(SEARCH_ORDERS, query=query)
            orders = require(op, resp.body, "$", "orders", list)
            pagination = require(op, resp.body, "$", "pagination", dict, optional=True) or {}
            next_token = require(op, pagination, "$.pagination", "nextToken", str, optional=True) or None
            yield SearchOrdersPage(
                orders,
                next_token,
                require(op, resp.body, "$", "lastUpdatedBefore", str, optional=True),
                require(op, resp.body, "$", "createdBefore", str, optional=True),
                resp.request_id,
            )
            if next_token is None:
                return
            token = next_token

    async def get_order(
        self, order_id: str, *, included_data: Sequence[str] = DEFAULT_INCLUDED_DATA
    ) -> dict[str, Any]:
        """The order, as Amazon sent it: the adapter checks its fields (see orders_v0.OrdersPage)."""
        check_choice(included_data, INCLUDED_DATA, "includedData")
        resp = await self._client.call(
            GET_ORDER_2026, path_params={"orderId": order_id}, query={"includedData": list(included_data)}
        )
        order: dict[str, Any] = require(GET_ORDER_2026.operation_id, resp.body, "$", "order", dict)
        return order
