"""Orders API v2026-01-01 (orders_2026-01-01.json) -> order snapshots that say who cancelled.

`searchOrders` and `getOrder` return the same `Order`. Requested with `includedData=FULFILLMENT,
CANCELLATION` (items are always included), it carries:
- `fulfillment.fulfillmentStatus` (v2026 spellings: CANCELLED, PARTIALLY_SHIPPED, ...), `fulfilledBy`
  MERCHANT/AMAZON, and the ship-by date as `shipByWindow.latestDateTime`;
- per item, `cancellation.cancellationRequest {requester: BUYER, cancelReason}`: the formal request, and
  `cancellation.cancellationExecution {cancelledBy: BUYER|MERCHANT|AMAZON, cancelReason}`: who cancelled
  and why, which is what lets attribution tell a seller's NoInventory from an Amazon auto-cancel or a
  payment cancel; `fulfillment.quantityFulfilled`: the units shipped.

With CANCELLATION requested, an item without `cancellationRequest` has no request (the flag reads
false, so a withdrawn request clears); without it, the flag reads as unknown. An `Order` carries no
seller id: the poller passes the seller account it polls. The event id is the order id +
`lastUpdatedTime`, like v0's.
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
    parse_cancelled_by,
    parse_channel,
    parse_status,
)
from cancelguard.ingestion.adapters import (
    array_at,
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

WHAT = "Orders API v2026-01-01 order"
# Buyer personal data, never kept (not even in a dead letter): paths in an `Order`, "[]" = every entry.
PERSONAL_FIELDS = (
    "buyer",
    "recipient",
    "tax.taxRegistrations",
    "orderItems[].product.customization",
    "orderItems[].fulfillment.packing.giftOption",
)

_REQUEST = "cancellation.cancellationRequest"
_EXECUTION = "cancellation.cancellationExecution"


def _requester(value: object) -> str:
    # The model's only value: a request from anyone else is not the buyer's formal request.
    if not isinstance(value, str) or value.strip().upper() != "BUYER":
        raise invalid(Reason.UNKNOWN_VALUE, f"unknown requester {bounds.shown(value)}; expected BUYER")
    return value


def _item(item: Any, where: str, *, cancellation_included: bool) -> ItemObservation:
    if not isinstance(item, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{where} must be an object")
    object_at(item, "cancellation", where)
    requested: bool | None = False if cancellation_included else None
    if object_at(item, _REQUEST, where) is not None:
        parsed_at(item, f"{_REQUEST}.requester", where, _requester)
        requested = True
    cancelled_by = None
    if object_at(item, _EXECUTION, where) is not None:
        cancelled_by = parsed_at(item, f"{_EXECUTION}.cancelledBy", where, parse_cancelled_by)
    object_at(item, "product", where)
    object_at(item, "fulfillment", where)
    return ItemObservation(
        order_item_id=identifier_at(item, "orderItemId", where),
        seller_sku=text_at(item, "product.sellerSku", where, max_len=bounds.MAX_SKU),
        quantity_ordered=quantity_at(item, "quantityOrdered", where),
        quantity_shipped=quantity_at(item, "fulfillment.quantityFulfilled", where),
        buyer_requested_cancel=requested,
        buyer_cancel_reason=text_at(item, f"{_REQUEST}.cancelReason", where),
        cancelled_by=cancelled_by,
        cancel_reason=text_at(item, f"{_EXECUTION}.cancelReason", where),
    )


def parse_order_v2026(
    order: bytes | str | Mapping[str, Any],
    *,
    seller_account: str,
    observed_at: datetime,
    marketplace_id: str | None = None,
    cancellation_included: bool = True,
) -> OrderEvent:
    """One `Order` (searchOrders `orders[]`, getOrder `order`) -> one snapshot event. Raises
    InvalidInput saying what is wrong and where."""
    doc = load_json_object(order, WHAT)
    now = observed_at
    order_id = identifier_at(doc, "orderId", WHAT)
    updated_at = time_at(doc, "lastUpdatedTime", WHAT, now=now)
    assert updated_at is not None
    object_at(doc, "salesChannel", WHAT)
    marketplace = marketplace_at(doc, "salesChannel.marketplaceId", WHAT, polled=marketplace_id)
    if object_at(doc, "fulfillment", WHAT) is None:
        raise invalid(Reason.MISSING_FIELD, f"{WHAT} has no fulfillment (request includedData=FULFILLMENT)")
    object_at(doc, "fulfillment.shipByWindow", WHAT)
    raw_items = array_at(doc, "orderItems", WHAT)
    items = tuple(
        _item(item, f"{WHAT}: orderItems[{n}]", cancellation_included=cancellation_included)
        for n, item in enumerate(raw_items)
    )
    return OrderEvent(
        event_id=polled_event_id("orders-v2026", order_id, updated_at)
        + ("" if cancellation_included else ":without-cancellation"),
        key=OrderKey(bounds.identifier(seller_account, "seller_account"), marketplace, order_id),
        source=Source.ORDERS_V2026,
        occurred_at=updated_at,
        observed_at=observed_at,
        body=OrderSnapshot(
            status=parsed_at(doc, "fulfillment.fulfillmentStatus", WHAT, parse_status),
            channel=parsed_at(doc, "fulfillment.fulfilledBy", WHAT, parse_channel, must=False),
            # required by the model, and without it the order would sit in no CR window
            purchased_at=time_at(doc, "createdTime", WHAT, now=now),
            latest_ship_at=time_at(
                doc, "fulfillment.shipByWindow.latestDateTime", WHAT, now=now, planned=True, must=False
            ),
            items=items,
        ),
    )
