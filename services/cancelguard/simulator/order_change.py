"""ORDER_CHANGE notifications in Amazon's own shape (schema OrderChangeNotification.json, payload 1.0).

Field names, enums and nesting follow the model file exactly; `tests/unit/simulator` validates what this
builds against the schema's required fields and enums.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_NAMESPACE = uuid.UUID("6b1d3c1e-58c4-4e0b-9a43-2f1e0a7d9c11")


def amazon_time(dt: datetime) -> str:
    """Amazon's format: 2022-11-29T19:42:04.284Z."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class NotificationItem:
    order_item_id: str
    seller_sku: str
    quantity: int
    quantity_shipped: int = 0
    buyer_requested_cancel: bool = False


def order_change_notification(
    *,
    seller_id: str,
    amazon_order_id: str,
    marketplace_id: str,
    change_type: str,  # BuyerRequestedChange | OrderStatusChange
    change_reason: str,
    time_of_change: datetime,
    order_status: str,  # v0 spelling: Pending, Unshipped, Shipped, Canceled, ...
    purchase_date: datetime,
    fulfillment_type: str,  # MFN | AFN
    latest_ship_date: datetime,
    items: list[NotificationItem],
    postal_code: str = "48110",
) -> dict[str, Any]:
    notification_id = str(
        uuid.uuid5(_NAMESPACE, f"{amazon_order_id}|{change_type}|{time_of_change.isoformat()}")
    )
    shipped = sum(1 for i in items if i.quantity_shipped >= i.quantity)
    return {
        "NotificationVersion": "1.0",
        "NotificationType": "ORDER_CHANGE",
        "PayloadVersion": "1.0",
        "EventTime": amazon_time(time_of_change),
        "Payload": {
            "OrderChangeNotification": {
                "NotificationLevel": "OrderLevel",
                "SellerId": seller_id,
                "AmazonOrderId": amazon_order_id,
                "OrderChangeType": change_type,
                "OrderChangeTrigger": {
                    "TimeOfOrderChange": amazon_time(time_of_change),
                    "ChangeReason": change_reason,
                },
                "Summary": {
                    "MarketplaceId": marketplace_id,
                    "OrderStatus": order_status,
                    "PurchaseDate": amazon_time(purchase_date),
                    "DestinationPostalCode": postal_code,
                    "FulfillmentType": fulfillment_type,
                    "OrderType": "StandardOrder",
                    "NumberOfItemsShipped": shipped,
                    "NumberOfItemsUnshipped": len(items) - shipped,
                    "LatestShipDate": amazon_time(latest_ship_date),
                    "OrderItems": [
                        {
                            "OrderItemId": i.order_item_id,
                            "SellerSKU": i.seller_sku,
                            "SupplySourceId": None,
                            "OrderItemStatus": "Shipped" if i.quantity_shipped >= i.quantity else "Unshipped",
                            "Quantity": i.quantity,
                            "QuantityShipped": i.quantity_shipped,
                            "IsBuyerRequestedCancel": i.buyer_requested_cancel,
                        }
                        for i in items
                    ],
                },
            }
        },
        "NotificationMetadata": {
            "ApplicationId": "amzn1.sellerapps.app.cancelguard-demo",
            "SubscriptionId": f"subscription-{seller_id.lower()}",
            "PublishTime": amazon_time(time_of_change),
            "NotificationId": notification_id,
        },
    }
