"""ORDER_CHANGE notifications (Notifications API, schema OrderChangeNotification.json) -> order events.

One notification is one snapshot of the order (OrderLevel: all items; OrderItemLevel: one item). The
request flag `Summary.OrderItems[].IsBuyerRequestedCancel` is a JSON boolean here; the notification
carries no buyer reason (fetch it from the Orders API). `DestinationPostalCode` is personal data and is
dropped here, at the edge (and removed from dead letters: `PERSONAL_FIELDS`).
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
    parse_bool,
    parse_channel,
    parse_status,
)
from cancelguard.ingestion.adapters import (
    array_at,
    identifier_at,
    load_json_object,
    quantity_at,
    required,
    text_at,
    time_at,
)

NOTIFICATION_TYPE = "ORDER_CHANGE"
WHAT = "ORDER_CHANGE notification"
# Dotted paths of buyer personal data: never kept, not even in a dead letter.
PERSONAL_FIELDS = ("Payload.OrderChangeNotification.Summary.DestinationPostalCode",)

_CHANGE = "Payload.OrderChangeNotification"
_SUMMARY = f"{_CHANGE}.Summary"


def _item(item: Any, where: str) -> ItemObservation:
    if not isinstance(item, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{WHAT}: {where} must be an object")
    flag = item.get("IsBuyerRequestedCancel")
    return ItemObservation(
        order_item_id=identifier_at(item, "OrderItemId", f"{WHAT}: {where}"),
        seller_sku=text_at(item, "SellerSKU", f"{WHAT}: {where}", max_len=bounds.MAX_SKU),
        quantity_ordered=quantity_at(item, "Quantity", f"{WHAT}: {where}"),
        quantity_shipped=quantity_at(item, "QuantityShipped", f"{WHAT}: {where}"),
        buyer_requested_cancel=None if flag is None else parse_bool(flag),
    )


def parse_order_change(raw: bytes | str | Mapping[str, Any], *, observed_at: datetime) -> OrderEvent:
    """One notification -> one order event. Raises InvalidInput saying what is wrong and where."""
    doc = load_json_object(raw, WHAT)
    kind = doc.get("NotificationType")
    if kind != NOTIFICATION_TYPE:
        raise invalid(Reason.WRONG_TYPE, f"expected NotificationType ORDER_CHANGE, got {bounds.shown(kind)}")
    now = observed_at
    notification_id = identifier_at(doc, "NotificationMetadata.NotificationId", WHAT, max_len=128)
    # TimeOfOrderChange may be null (schema: string or null): then the notification's EventTime
    when = time_at(doc, f"{_CHANGE}.OrderChangeTrigger.TimeOfOrderChange", WHAT, now=now, must=False)
    if when is None:
        when = time_at(doc, "EventTime", WHAT, now=now)
    raw_items = array_at(doc, f"{_SUMMARY}.OrderItems", WHAT)
    items = tuple(_item(item, f"{_SUMMARY}.OrderItems[{n}]") for n, item in enumerate(raw_items))
    assert when is not None
    return OrderEvent(
        event_id=f"order-change:{notification_id}",
        key=OrderKey(
            seller_account=identifier_at(doc, f"{_CHANGE}.SellerId", WHAT),
            marketplace_id=identifier_at(doc, f"{_SUMMARY}.MarketplaceId", WHAT),
            amazon_order_id=identifier_at(doc, f"{_CHANGE}.AmazonOrderId", WHAT),
        ),
        source=Source.ORDER_CHANGE,
        occurred_at=when,
        observed_at=observed_at,
        body=OrderSnapshot(
            status=parse_status(required(doc, f"{_SUMMARY}.OrderStatus", WHAT)),
            channel=parse_channel(required(doc, f"{_SUMMARY}.FulfillmentType", WHAT)),
            # required by the schema, and without it the order would sit in no CR window
            purchased_at=time_at(doc, f"{_SUMMARY}.PurchaseDate", WHAT, now=now),
            latest_ship_at=time_at(
                doc, f"{_SUMMARY}.LatestShipDate", WHAT, now=now, planned=True, must=False
            ),
            items=items,
        ),
    )
