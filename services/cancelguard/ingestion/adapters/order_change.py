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
# the paths read from every notification, spelled once
_ID = "NotificationMetadata.NotificationId"
_WHEN = f"{_CHANGE}.OrderChangeTrigger.TimeOfOrderChange"
_ITEMS = f"{_SUMMARY}.OrderItems"
_SELLER = f"{_CHANGE}.SellerId"
_MARKETPLACE = f"{_SUMMARY}.MarketplaceId"
_ORDER = f"{_CHANGE}.AmazonOrderId"
_STATUS = f"{_SUMMARY}.OrderStatus"
_CHANNEL = f"{_SUMMARY}.FulfillmentType"
_PURCHASED = f"{_SUMMARY}.PurchaseDate"
_SHIP_BY = f"{_SUMMARY}.LatestShipDate"


def _item(item: Any, n: int) -> ItemObservation:
    what = f"{WHAT}: {_ITEMS}[{n}]"
    if not isinstance(item, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{what} must be an object")
    flag = item.get("IsBuyerRequestedCancel")
    return ItemObservation(
        order_item_id=identifier_at(item, "OrderItemId", what),
        seller_sku=text_at(item, "SellerSKU", what, max_len=bounds.MAX_SKU),
        quantity_ordered=quantity_at(item, "Quantity", what),
        quantity_shipped=quantity_at(item, "QuantityShipped", what),
        buyer_requested_cancel=None if flag is None else parse_bool(flag),
    )


def parse_order_change(raw: bytes | str | Mapping[str, Any], *, observed_at: datetime) -> OrderEvent:
    """One notification -> one order event. Raises InvalidInput saying what is wrong and where."""
    doc = load_json_object(raw, WHAT)
    kind = doc.get("NotificationType")
    if kind != NOTIFICATION_TYPE:
        raise invalid(Reason.WRONG_TYPE, f"expected NotificationType ORDER_CHANGE, got {bounds.shown(kind)}")
    now = observed_at
    notification_id = identifier_at(doc, _ID, WHAT, max_len=128)
    # TimeOfOrderChange may be null (schema: string or null): then the notification's EventTime
    when = time_at(doc, _WHEN, WHAT, now=now, must=False)
    if when is None:
        when = time_at(doc, "EventTime", WHAT, now=now)
    raw_items = array_at(doc, _ITEMS, WHAT)
    items = tuple(_item(item, n) for n, item in enumerate(raw_items))
    assert when is not None
    return OrderEvent(
        event_id=f"order-change:{notification_id}",
        key=OrderKey(
            seller_account=identifier_at(doc, _SELLER, WHAT),
            marketplace_id=identifier_at(doc, _MARKETPLACE, WHAT),
            amazon_order_id=identifier_at(doc, _ORDER, WHAT),
        ),
        source=Source.ORDER_CHANGE,
        occurred_at=when,
        observed_at=observed_at,
        body=OrderSnapshot(
            status=parse_status(required(doc, _STATUS, WHAT)),
            channel=parse_channel(required(doc, _CHANNEL, WHAT)),
            # required by the schema, and without it the order would sit in no CR window
            purchased_at=time_at(doc, _PURCHASED, WHAT, now=now),
            latest_ship_at=time_at(doc, _SHIP_BY, WHAT, now=now, planned=True, must=False),
            items=items,
        ),
    )
