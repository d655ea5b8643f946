"""Orders API v0 (ordersV0.json; its reads are deprecated for 2027-03-27) -> order snapshots.

`getOrders` returns `Order` objects without items; `getOrderItems` returns their `OrderItems`, where the
buyer's request is `BuyerRequestedCancel {IsBuyerRequestedCancel, BuyerCancelReason}` and the flag is
the *string* "true"/"false". The poller fetches items only for the orders that need them, so items are
optional: a snapshot without items says nothing about them. v0 never says who cancelled, so
`cancelled_by` stays unset and attribution falls back on the seller's feeds and the status history.

An `Order` carries no seller id: the poller passes the seller account it polls. The marketplace is the
order's `MarketplaceId`, or the poller's marketplace when the order lacks it.

The event id is the order id + `LastUpdateDate` (domain.md, Implications 2: a re-polled unchanged order
is a duplicate), with ":items" when the items were read, so two different observations never share an id.

`parse_order_items_v0` reads getOrderItems alone (what an ORDER_CHANGE notification's one enrichment
call returns): a snapshot of the items only, as of when they were read, since the answer has no time
of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cancelguard.domain import bounds
from cancelguard.domain.bounds import Reason, invalid
from cancelguard.domain.model import (
    ItemObservation,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    Source,
    parse_channel,
    parse_status,
)
from cancelguard.ingestion.adapters import (
    as_array,
    flag_at,
    identifier_at,
    load_json_object,
    marketplace_at,
    object_at,
    parsed_at,
    polled_event_id,
    quantity_at,
    text_at,
    time_at,
)

WHAT = "Orders API v0 order"
ITEMS = "Orders API v0 order items: OrderItems"
# Buyer personal data, never kept (not even in a dead letter): paths in an `Order`, and in a
# getOrderItems payload (its items' gift messages, Amazon Custom data); "[]": every entry.
PERSONAL_FIELDS = ("BuyerInfo", "ShippingAddress", "BuyerTaxInformation", "OrderItems[].BuyerInfo")


def _item(item: Any, where: str) -> ItemObservation:
    if not isinstance(item, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{where} must be an object")
    object_at(item, "BuyerRequestedCancel", where)
    return ItemObservation(
        order_item_id=identifier_at(item, "OrderItemId", where),
        seller_sku=text_at(item, "SellerSKU", where, max_len=bounds.MAX_SKU),
        quantity_ordered=quantity_at(item, "QuantityOrdered", where),
        quantity_shipped=quantity_at(item, "QuantityShipped", where),
        buyer_requested_cancel=flag_at(item, "BuyerRequestedCancel.IsBuyerRequestedCancel", where),
        buyer_cancel_reason=text_at(item, "BuyerRequestedCancel.BuyerCancelReason", where),
    )


def parse_order_v0(
    order: bytes | str | Mapping[str, Any],
    items: list[Any] | None = None,
    *,
    seller_account: str,
    observed_at: datetime,
    marketplace_id: str | None = None,
) -> OrderEvent:
    """One `Order` (getOrders/getOrder), with its `OrderItems` (getOrderItems, every page) when fetched,
    -> one snapshot event. Raises InvalidInput saying what is wrong and where."""
    doc = load_json_object(order, WHAT)
    now = observed_at
    order_id = identifier_at(doc, "AmazonOrderId", WHAT)
    updated_at = time_at(doc, "LastUpdateDate", WHAT, now=now)
    assert updated_at is not None
    marketplace = marketplace_at(doc, "MarketplaceId", WHAT, polled=marketplace_id)
    observations: tuple[ItemObservation, ...] = ()
    if items is not None:
        observations = tuple(_item(item, f"{ITEMS}[{n}]") for n, item in enumerate(as_array(items, ITEMS)))
    return OrderEvent(
        event_id=polled_event_id("orders-v0", order_id, updated_at) + (":items" if items is not None else ""),
        key=OrderKey(bounds.identifier(seller_account, "seller_account"), marketplace, order_id),
        source=Source.ORDERS_V0,
        occurred_at=updated_at,
        observed_at=observed_at,
        body=OrderSnapshot(
            status=parsed_at(doc, "OrderStatus", WHAT, parse_status),
            channel=parsed_at(doc, "FulfillmentChannel", WHAT, parse_channel, must=False),
            # required by the model, and without it the order would sit in no CR window
            purchased_at=time_at(doc, "PurchaseDate", WHAT, now=now),
            latest_ship_at=time_at(doc, "LatestShipDate", WHAT, now=now, planned=True, must=False),
            items=observations,
        ),
    )


def parse_order_items_v0(
    items: list[Any], *, key: OrderKey, purchased_at: datetime, observed_at: datetime
) -> OrderEvent:
    """getOrderItems' `OrderItems` (every page) alone -> a snapshot of the items, at `observed_at` (the
    answer says nothing of the order's status or time). `purchased_at` comes from the notification
    that asked for them: without it the snapshot would sit in no CR window."""
    observations = tuple(_item(item, f"{ITEMS}[{n}]") for n, item in enumerate(as_array(items, ITEMS)))
    return OrderEvent(
        event_id=f"orders-v0-items:{key.amazon_order_id}:{observed_at.isoformat()}",
        key=key,
        source=Source.ORDERS_V0,
        occurred_at=observed_at,
        observed_at=observed_at,
        body=OrderSnapshot(purchased_at=purchased_at, items=observations),
    )
