"""ORDER_CHANGE notifications (Notifications API, schema OrderChangeNotification.json) -> order events.

One notification is one snapshot of the order (OrderLevel: all items; OrderItemLevel: one item). The
request flag `Summary.OrderItems[].IsBuyerRequestedCancel` is a JSON boolean here; the notification
carries no buyer reason (fetch it from the Orders API). `DestinationPostalCode` is personal data and is
dropped here, at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cancelguard.domain.model import (
    InvalidInput,
    ItemObservation,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    Source,
    parse_bool,
    parse_channel,
    parse_status,
    parse_time,
)
from cancelguard.ingestion.adapters import load_json_object

NOTIFICATION_TYPE = "ORDER_CHANGE"


_CHANGE = "Payload.OrderChangeNotification"
_SUMMARY = f"{_CHANGE}.Summary"


def _get(doc: Any, path: str) -> Any:
    """The value at a dotted path from the top of the notification; errors name the whole path."""
    node = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise InvalidInput(f"ORDER_CHANGE notification has no {path}")
        node = node[part]
    return node


def _text(doc: Any, path: str) -> str:
    value = _get(doc, path)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"ORDER_CHANGE notification: {path} must be a non-empty string, got {value!r}")
    return value.strip()


def _int(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"ORDER_CHANGE notification: {path} must be a whole number >= 0, got {value!r}")
    return value


def parse_order_change(raw: bytes | str | Mapping[str, Any], *, observed_at: datetime) -> OrderEvent:
    """One notification -> one order event. Raises InvalidInput saying what is wrong."""
    doc = load_json_object(raw, "ORDER_CHANGE notification")
    if doc.get("NotificationType") != NOTIFICATION_TYPE:
        raise InvalidInput(f"expected NotificationType ORDER_CHANGE, got {doc.get('NotificationType')!r}")

    notification_id = _text(doc, "NotificationMetadata.NotificationId")
    summary = _get(doc, _SUMMARY)
    when = _get(doc, f"{_CHANGE}.OrderChangeTrigger.TimeOfOrderChange") or _text(doc, "EventTime")

    items = []
    raw_items = _get(doc, f"{_SUMMARY}.OrderItems")
    if not isinstance(raw_items, list):
        raise InvalidInput("ORDER_CHANGE notification: Summary.OrderItems must be a list")
    for n, item in enumerate(raw_items):
        where = f"Summary.OrderItems[{n}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"ORDER_CHANGE notification: {where} must be an object")
        flag = item.get("IsBuyerRequestedCancel")
        item_id = item.get("OrderItemId")
        if not isinstance(item_id, str) or not item_id.strip():
            raise InvalidInput(f"ORDER_CHANGE notification: {where}.OrderItemId must be a non-empty string")
        items.append(
            ItemObservation(
                order_item_id=item_id.strip(),
                seller_sku=str(item.get("SellerSKU") or ""),
                quantity_ordered=_int(item.get("Quantity"), f"{where}.Quantity"),
                quantity_shipped=_int(item.get("QuantityShipped"), f"{where}.QuantityShipped"),
                buyer_requested_cancel=None if flag is None else parse_bool(flag),
            )
        )

    purchase = summary.get("PurchaseDate")
    ship_by = summary.get("LatestShipDate")
    return OrderEvent(
        event_id=f"order-change:{notification_id}",
        key=OrderKey(
            seller_account=_text(doc, f"{_CHANGE}.SellerId"),
            marketplace_id=_text(doc, f"{_SUMMARY}.MarketplaceId"),
            amazon_order_id=_text(doc, f"{_CHANGE}.AmazonOrderId"),
        ),
        source=Source.ORDER_CHANGE,
        occurred_at=parse_time(when, "OrderChangeTrigger.TimeOfOrderChange"),
        observed_at=observed_at,
        body=OrderSnapshot(
            status=parse_status(_get(doc, f"{_SUMMARY}.OrderStatus")),
            channel=parse_channel(_get(doc, f"{_SUMMARY}.FulfillmentType")),
            purchased_at=parse_time(purchase, "Summary.PurchaseDate") if purchase else None,
            latest_ship_at=parse_time(ship_by, "Summary.LatestShipDate") if ship_by else None,
            items=tuple(items),
        ),
    )
