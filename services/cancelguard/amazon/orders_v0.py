"""Orders API v0 (`models/orders-api-model/ordersV0.json`): getOrders, getOrderItems, getOrder.

Deprecated by Amazon for 2027-03-27 but still what many sellers poll. `getOrders` takes either the
Created family (`CreatedAfter`/`CreatedBefore`) or the LastUpdated family (`LastUpdatedAfter`/
`LastUpdatedBefore`), never both; `MarketplaceIds` is required (at most 50); "before" bounds must be at
least two minutes before now (Amazon answers 400 otherwise). Each answer is `{"payload": ...}`; pages
follow `NextToken`, which keeps the first request's filters. The response's `LastUpdatedBefore` (or
`CreatedBefore`) is the bound Amazon applied: the natural next cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cancelguard.amazon.operations import GET_ORDER_ITEMS, GET_ORDER_V0, GET_ORDERS
from cancelguard.amazon.shape import require

if TYPE_CHECKING:
    from cancelguard.amazon.client import SpApiClient

ORDER_STATUSES = (
    "PendingAvailability",
    "Pending",
    "Unshipped",
    "PartiallyShipped",
    "Shipped",
    "InvoiceUnconfirmed",
    "Canceled",
    "Unfulfillable",
)
FULFILLMENT_CHANNELS = ("AFN", "MFN")
ORDER_REQUIRED = ("AmazonOrderId", "LastUpdateDate", "OrderStatus", "PurchaseDate")
ORDER_ITEM_REQUIRED = ("ASIN", "OrderItemId", "QuantityOrdered")


@dataclass(frozen=True, slots=True)
class OrdersPage:
    # payload.Orders, as Amazon sent them: each one is checked by the adapter that reads it, so that one
    # malformed order is dead-lettered with its path and never holds back the rest of the page
    orders: list[Any]
    next_token: str | None
    last_updated_before: str | None  # the bound Amazon applied (LastUpdated family)
    created_before: str | None  # the bound Amazon applied (Created family)
    request_id: str


@dataclass(frozen=True, slots=True)
class OrderItemsPage:
    amazon_order_id: str
    order_items: list[Any]  # as Amazon sent them, checked by the adapter (like OrdersPage.orders)
    next_token: str | None


def check_choice(values: Sequence[str], allowed: tuple[str, ...], name: str) -> None:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {name} {bad}; expected one of {', '.join(allowed)}")


def check_order_filters(
    created_after: datetime | None,
    created_before: datetime | None,
    last_updated_after: datetime | None,
    last_updated_before: datetime | None,
    marketplace_ids: Sequence[str],
) -> None:
    """The model's rules, checked before spending a scarce getOrders/searchOrders token."""
    created = created_after is not None or created_before is not None
    updated = last_updated_after is not None or last_updated_before is not None
    if created and updated:
        raise ValueError("the Created and LastUpdated filters are mutually exclusive")
    if created_after is None and last_updated_after is None:
        raise ValueError("either created_after or last_updated_after is required")
    for after, before in ((created_after, created_before), (last_updated_after, last_updated_before)):
        if after is not None and before is not None and before < after:
            raise ValueError("a 'before' bound must be equal to or after its 'after' bound")
    if len(marketplace_ids) > 50:
        raise ValueError("at most 50 marketplace ids per request")


class OrdersV0:
    def __init__(self, client: SpApiClient) -> None:
        self._client = client

    async def get_orders(
        self,
        *,
        marketplace_ids: Sequence[str],
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        last_updated_after: datetime | None = None,
        last_updated_before: datetime | None = None,
        order_statuses: Sequence[str] = (),
        fulfillment_channels: Sequence[str] = (),
        amazon_order_ids: Sequence[str] = (),
        max_results_per_page: int = 100,
    ) -> AsyncIterator[OrdersPage]:
        """Every page of orders matching the filters, following NextToken."""
        if not marketplace_ids:
            raise ValueError("marketplace_ids is required")
        check_order_filters(
            created_after, created_before, last_updated_after, last_updated_before, marketplace_ids
        )
        if not 1 <= max_results_per_page <= 100:
            raise ValueError("max_results_per_page must be 1-100")
        check_choice(order_statuses, ORDER_STATUSES, "order status")
        check_choice(fulfillment_channels, FULFILLMENT_CHANNELS, "fulfillment channel")
        filters = {
            "MarketplaceIds": list(marketplace_ids),
            "CreatedAfter": created_after,
            "CreatedBefore": created_before,
            "LastUpdatedAfter": last_updated_after,
            "LastUpdatedBefore": last_updated_before,
            "OrderStatuses": list(order_statuses),
            "FulfillmentChannels": list(fulfillment_channels),
            "AmazonOrderIds": list(amazon_order_ids),
            "MaxResultsPerPage": max_results_per_page,
        }
        next_token: str | None = None
        while True:
            query = dict(filters) if next_token is None else {**filters, "NextToken": next_token}
            resp = await self._client.call(GET_ORDERS, query=query)
            op = GET_ORDERS.operation_id
            payload = require(op, resp.body, "$", "payload", dict)
            page = OrdersPage(
                require(op, payload, "$.payload", "Orders", list),
                require(op, payload, "$.payload", "NextToken", str, optional=True) or None,
                require(op, payload, "$.payload", "LastUpdatedBefore", str, optional=True),
                require(op, payload, "$.payload", "CreatedBefore", str, optional=True),
                resp.request_id,
            )
            yield page
            if page.next_token is None:
                return
            next_token = page.next_token

    async def get_order_items_pages(self, order_id: str) -> AsyncIterator[OrderItemsPage]:
        next_token: str | None = None
        op = GET_ORDER_ITEMS.operation_id
        while True:
            resp = await self._client.call(
                GET_ORDER_ITEMS, path_params={"orderId": order_id}, query={"NextToken": next_token}
            )
            payload = require(op, resp.body, "$", "payload", dict)
            page = OrderItemsPage(
                require(op, payload, "$.payload", "AmazonOrderId", str),
                require(op, payload, "$.payload", "OrderItems", list),
                require(op, payload, "$.payload", "NextToken", str, optional=True) or None,
            )
            yield page
            if page.next_token is None:
                return
            next_token = page.next_token

    async def get_order_items(self, order_id: str) -> list[Any]:
        """All of an order's items (with `BuyerRequestedCancel`), every page."""
        return [item async for page in self.get_order_items_pages(order_id) for item in page.order_items]

    async def get_order(self, order_id: str) -> dict[str, Any]:
        resp = await self._client.call(GET_ORDER_V0, path_params={"orderId": order_id})
        op = GET_ORDER_V0.operation_id
        order: dict[str, Any] = require(op, resp.body, "$", "payload", dict)
        for field in ORDER_REQUIRED:
            require(op, order, "$.payload", field, object)
        return order
