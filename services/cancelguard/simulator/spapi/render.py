"""The simulated orders in Amazon's shapes, field for field.

- Orders API v0 (`ordersV0.json`): `Order`, `OrderItem` with `BuyerRequestedCancel`
  (`IsBuyerRequestedCancel` the *string* "true"/"false"); times like 2017-01-20T19:49:35Z.
- Orders API v2026-01-01 (`orders_2026-01-01.json`): `Order` with `salesChannel`, `fulfillment`
  (`fulfillmentStatus` CANCELLED, `fulfilledBy` MERCHANT/AMAZON), `orderItems[].cancellation`; the optional
  blocks only when `includedData` asks for them.
- Order report flat files (docs/domain.md §4): tab-separated, one row per item.
- `GET_V2_SELLER_PERFORMANCE_REPORT` (`accountHealthReport-2020-11-18.json`): every required field.
- `ORDER_CHANGE` (`OrderChangeNotification.json`) through `simulator/order_change.py`.

Personal data in these documents is invented ("Example Street", `...@marketplace.amazon.com`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cancelguard.simulator.order_change import NotificationItem, order_change_notification
from cancelguard.simulator.spapi.truth import WindowTruth
from cancelguard.simulator.spapi.world import (
    CANCELED,
    MARKETPLACES,
    PENDING,
    SHIPPED,
    SimOrder,
    Version,
)

V2026_STATUS = {
    "PendingAvailability": "PENDING_AVAILABILITY",
    PENDING: "PENDING",
    "Unshipped": "UNSHIPPED",
    "PartiallyShipped": "PARTIALLY_SHIPPED",
    SHIPPED: "SHIPPED",
    "InvoiceUnconfirmed": "SHIPPED",
    CANCELED: "CANCELLED",
    "Unfulfillable": "UNFULFILLABLE",
}
V2026_FULFILLED_BY = {"MFN": "MERCHANT", "AFN": "AMAZON"}


def iso(ts: datetime) -> str:
    """2026-11-20T12:00:00Z: the Orders APIs' format."""
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def report_time(ts: datetime) -> str:
    """2026-11-20T12:00:00+00:00: the order reports' format."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _money(amount: Decimal | str, currency: str) -> dict[str, str]:
    return {"CurrencyCode": currency, "Amount": f"{Decimal(amount):.2f}"}


def _total(order: SimOrder) -> Decimal:
    return sum((Decimal(i.unit_price) * i.quantity for i in order.items), Decimal(0))


# --- Orders API v0 -------------------------------------------------------------------------------


def v0_order(order: SimOrder, v: Version) -> dict[str, Any]:
    market = MARKETPLACES[order.marketplace_id]
    live = [(i, s) for i, s in zip(order.items, v.items, strict=True) if not s.cancelled_by]
    shipped = sum(s.shipped for _, s in live)
    unshipped = 0 if v.status == CANCELED else sum(i.quantity for i, _ in live) - shipped
    doc: dict[str, Any] = {
        "AmazonOrderId": order.amazon_order_id,
        "PurchaseDate": iso(order.purchased_at),
        "LastUpdateDate": iso(v.at),
        "OrderStatus": v.status,
        "FulfillmentChannel": order.channel,
        "SalesChannel": market.sales_channel,
        "ShipServiceLevel": "Std Dom",
        "NumberOfItemsShipped": shipped,
        "NumberOfItemsUnshipped": unshipped,
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "MarketplaceId": order.marketplace_id,
        "ShipmentServiceLevelCategory": "Standard",
        "OrderType": "StandardOrder",
        "EarliestShipDate": iso(order.earliest_ship_at),
        "LatestShipDate": iso(order.latest_ship_at),
        "EarliestDeliveryDate": iso(order.latest_ship_at + timedelta(days=1)),
        "LatestDeliveryDate": iso(order.latest_ship_at + timedelta(days=4)),
        "IsBusinessOrder": False,
        "IsPrime": order.is_prime,
        "IsPremiumOrder": False,
        "IsGlobalExpressEnabled": False,
        "IsReplacementOrder": False,
        "IsSoldByAB": False,
        "IsIBA": False,
        "IsISPU": False,
        "IsAccessPointOrder": False,
        "HasRegulatedItems": False,
    }
    if v.status != PENDING:  # the model's Pending example carries no total and no address
        doc["OrderTotal"] = _money(_total(order), market.currency)
        b = order.buyer
        doc["ShippingAddress"] = {
            "City": b.city,
            "StateOrRegion": b.state,
            "PostalCode": b.postal_code,
            "CountryCode": b.country,
        }
        doc["BuyerInfo"] = {"BuyerEmail": b.email}
    return doc


def v0_order_items(order: SimOrder, v: Version) -> list[dict[str, Any]]:
    currency = MARKETPLACES[order.marketplace_id].currency
    out = []
    for item, state in zip(order.items, v.items, strict=True):
        doc: dict[str, Any] = {
            "ASIN": item.asin,
            "SellerSKU": item.seller_sku,
            "OrderItemId": item.order_item_id,
            "Title": item.title,
            "QuantityOrdered": item.quantity,
            "QuantityShipped": state.shipped,
            "ProductInfo": {"NumberOfItems": "1"},
            "IsGift": "false",
            "ConditionId": "New",
            "ConditionSubtypeId": "New",
            "IsTransparency": False,
            "SerialNumberRequired": False,
            "BuyerRequestedCancel": {
                "IsBuyerRequestedCancel": "true" if state.requested else "false",
                "BuyerCancelReason": state.request_reason,
            },
        }
        if v.status != PENDING:  # getOrderItems omits pricing while Pending (model note)
            doc["ItemPrice"] = _money(Decimal(item.unit_price) * item.quantity, currency)
            doc["ItemTax"] = _money("0", currency)
            doc["PromotionDiscount"] = _money("0", currency)
        out.append(doc)
    return out


# --- Orders API v2026-01-01 ------------------------------------------------------------------------


def v2026_order(order: SimOrder, v: Version, included: Iterable[str]) -> dict[str, Any]:
    included = set(included)
    market = MARKETPLACES[order.marketplace_id]
    b = order.buyer

    def money(amount: Decimal | str) -> dict[str, str]:
        return {"amount": f"{Decimal(amount):.2f}", "currencyCode": market.currency}

    items = []
    for item, state in zip(order.items, v.items, strict=True):
        doc: dict[str, Any] = {
            "orderItemId": item.order_item_id,
            "quantityOrdered": item.quantity,
            "programs": [],
            "product": {
                "asin": item.asin,
                "title": item.title,
                "sellerSku": item.seller_sku,
                "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
                "price": {"unitPrice": money(item.unit_price)},
            },
        }
        if "PROCEEDS" in included and v.status != PENDING:
            doc["proceeds"] = {"proceedsTotal": money(Decimal(item.unit_price) * item.quantity)}
        if "CANCELLATION" in included and (state.requested or state.cancelled_by):
            cancellation: dict[str, Any] = {}
            if state.requested:
                cancellation["cancellationRequest"] = {
                    "requester": "BUYER",
                    "cancelReason": state.request_reason,
                }
            if state.cancelled_by:
                cancellation["cancellationExecution"] = {
                    "cancelledBy": state.cancelled_by,
                    "cancelReason": state.cancel_reason,
                }
            doc["cancellation"] = cancellation
        if "FULFILLMENT" in included:
            remaining = 0 if state.cancelled_by else item.quantity - state.shipped
            doc["fulfillment"] = {"quantityFulfilled": state.shipped, "quantityUnfulfilled": remaining}
        items.append(doc)
    out: dict[str, Any] = {
        "orderId": order.amazon_order_id,
        "createdTime": iso(order.purchased_at),
        "lastUpdatedTime": iso(v.at),
        "programs": ["PRIME"] if order.is_prime else [],
        "salesChannel": {
            "channelName": "AMAZON",
            "marketplaceId": order.marketplace_id,
            "marketplaceName": market.sales_channel,
        },
        "orderItems": items,
    }
    if "BUYER" in included:
        out["buyer"] = {"buyerName": b.name, "buyerEmail": b.email}
    if "RECIPIENT" in included and v.status != PENDING:
        out["recipient"] = {
            "deliveryAddress": {
                "name": b.name,
                "addressLine1": b.address_line1,
                "city": b.city,
                "stateOrRegion": b.state,
                "postalCode": b.postal_code,
                "countryCode": b.country,
                "phone": b.phone,
                "addressType": "RESIDENTIAL",
            }
        }
    if "PROCEEDS" in included and v.status != PENDING:
        out["proceeds"] = {"grandTotal": money(_total(order))}
    if "FULFILLMENT" in included:
        out["fulfillment"] = {
            "fulfillmentStatus": V2026_STATUS[v.status],
            "fulfilledBy": V2026_FULFILLED_BY[order.channel],
            "fulfillmentServiceLevel": "STANDARD",
            "shipByWindow": {
                "earliestDateTime": iso(order.earliest_ship_at),
                "latestDateTime": iso(order.latest_ship_at),
            },
            "deliverByWindow": {
                "earliestDateTime": iso(order.latest_ship_at + timedelta(days=1)),
                "latestDateTime": iso(order.latest_ship_at + timedelta(days=4)),
            },
        }
    if "PACKAGES" in included:
        packages = []
        if order.label_at is not None and order.label_at <= v.at:
            shipped = any(s.shipped for s in v.items)
            packages.append(
                {
                    "packageReferenceId": "1",
                    "createdTime": iso(order.label_at),
                    "packageStatus": {"status": "SHIPPED" if shipped else "PENDING"},
                    "carrier": "SIMULATED_CARRIER",
                    "trackingNumber": f"SIM{order.amazon_order_id.replace('-', '')}",
                    "packageItems": [
                        {"orderItemId": i.order_item_id, "quantity": i.quantity} for i in order.items
                    ],
                }
            )
        out["packages"] = packages
    return out


# --- ORDER_CHANGE ------------------------------------------------------------------------------------


def order_change(order: SimOrder, v: Version) -> dict[str, Any]:
    return order_change_notification(
        seller_id=order.seller_id,
        amazon_order_id=order.amazon_order_id,
        marketplace_id=order.marketplace_id,
        change_type=v.change_type,
        change_reason=v.change_reason,
        time_of_change=v.at,
        order_status=v.status,
        purchase_date=order.purchased_at,
        fulfillment_type=order.channel,
        latest_ship_date=order.latest_ship_at,
        items=[
            NotificationItem(i.order_item_id, i.seller_sku, i.quantity, s.shipped, s.requested)
            for i, s in zip(order.items, v.items, strict=True)
        ],
        postal_code=order.buyer.postal_code,
    )


# --- order report flat files -----------------------------------------------------------------------

UNSHIPPED_COLUMNS = (
    "order-id", "order-item-id", "purchase-date", "payments-date", "reporting-date", "promise-date",
    "days-past-promise", "buyer-email", "buyer-name", "buyer-phone-number", "sku", "product-name",
    "quantity-purchased", "quantity-shipped", "quantity-to-ship", "ship-service-level", "recipient-name",
    "ship-address-1", "ship-address-2", "ship-address-3", "ship-city", "ship-state", "ship-postal-code",
    "ship-country", "is-business-order", "purchase-order-number", "price-designation", "is-prime",
    "is-buyer-requested-cancellation", "buyer-requested-cancel-reason", "verge-of-cancellation",
    "verge-of-lateShipment", "sales-channel",
)  # fmt: skip
ALL_ORDERS_COLUMNS = (
    "amazon-order-id", "merchant-order-id", "purchase-date", "last-updated-date", "order-status",
    "fulfillment-channel", "sales-channel", "order-channel", "ship-service-level", "product-name", "sku",
    "asin", "item-status", "quantity", "currency", "item-price", "item-tax", "shipping-price",
    "shipping-tax", "gift-wrap-price", "gift-wrap-tax", "item-promotion-discount",
    "ship-promotion-discount", "ship-city", "ship-state", "ship-postal-code", "ship-country",
    "promotion-ids", "is-business-order", "purchase-order-number", "price-designation",
)  # fmt: skip
# the All Orders report's display values (docs/domain.md §4: "Amazon"/"Merchant")
REPORT_CHANNEL = {"MFN": "Merchant", "AFN": "Amazon"}
REPORT_ORDER_STATUS = {CANCELED: "Cancelled", "PartiallyShipped": "Shipping"}


def _tsv(columns: tuple[str, ...], rows: Iterable[dict[str, str]]) -> str:
    def clean(value: str) -> str:
        return value.replace("\t", " ").replace("\n", " ")

    lines = ["\t".join(columns)]
    lines += ["\t".join(clean(row.get(c, "")) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def unshipped_orders_report(orders: Iterable[tuple[SimOrder, Version]], as_of: datetime) -> str:
    """GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING: MFN orders not yet confirmed shipped, per item."""
    rows = []
    for order, v in orders:
        if order.channel != "MFN" or v.status not in ("Unshipped", "PartiallyShipped"):
            continue
        b = order.buyer
        days_past = (as_of - order.latest_ship_at).days
        for item, state in zip(order.items, v.items, strict=True):
            to_ship = 0 if state.cancelled_by else item.quantity - state.shipped
            if to_ship <= 0:
                continue
            rows.append({
                "order-id": order.amazon_order_id,
                "order-item-id": item.order_item_id,
                "purchase-date": report_time(order.purchased_at),
                "payments-date": report_time(order.purchased_at + timedelta(minutes=35)),
                "reporting-date": report_time(as_of),
                "promise-date": report_time(order.latest_ship_at),
                "days-past-promise": str(days_past),
                "buyer-email": b.email,
                "buyer-name": b.name,
                "buyer-phone-number": b.phone,
                "sku": item.seller_sku,
                "product-name": item.title,
                "quantity-purchased": str(item.quantity),
                "quantity-shipped": str(state.shipped),
                "quantity-to-ship": str(to_ship),
                "ship-service-level": "Standard",
                "recipient-name": b.name,
                "ship-address-1": b.address_line1,
                "ship-city": b.city,
                "ship-state": b.state,
                "ship-postal-code": b.postal_code,
                "ship-country": b.country,
                "is-business-order": "false",
                "is-prime": "true" if order.is_prime else "false",
                "is-buyer-requested-cancellation": "true" if state.requested else "false",
                "buyer-requested-cancel-reason": state.request_reason,
                "verge-of-cancellation": "true" if days_past >= 2 else "false",
                "verge-of-lateShipment": "true" if days_past >= 0 else "false",
                "sales-channel": MARKETPLACES[order.marketplace_id].sales_channel,
            })  # fmt: skip
    return _tsv(UNSHIPPED_COLUMNS, rows)


def all_orders_report(orders: Iterable[tuple[SimOrder, Version]]) -> str:
    """GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL: every order updated in the range, per item."""
    rows = []
    for order, v in orders:
        market = MARKETPLACES[order.marketplace_id]
        for item, state in zip(order.items, v.items, strict=True):
            price = Decimal(item.unit_price) * item.quantity
            if state.cancelled_by:
                item_status = "Cancelled"
            elif state.shipped >= item.quantity:
                item_status = "Shipped"
            else:
                item_status = "Unshipped"
            rows.append({
                "amazon-order-id": order.amazon_order_id,
                "purchase-date": report_time(order.purchased_at),
                "last-updated-date": report_time(v.at),
                "order-status": REPORT_ORDER_STATUS.get(v.status, v.status),
                "fulfillment-channel": REPORT_CHANNEL[order.channel],
                "sales-channel": market.sales_channel,
                "ship-service-level": "Standard",
                "product-name": item.title,
                "sku": item.seller_sku,
                "asin": item.asin,
                "item-status": item_status,
                "quantity": str(item.quantity),
                "currency": market.currency,
                "item-price": "" if v.status == PENDING else f"{price:.2f}",
                "item-tax": "" if v.status == PENDING else "0.00",
                "ship-city": order.buyer.city,
                "ship-state": order.buyer.state,
                "ship-postal-code": order.buyer.postal_code,
                "ship-country": order.buyer.country,
                "is-business-order": "false",
            })  # fmt: skip
    return _tsv(ALL_ORDERS_COLUMNS, rows)


# --- seller performance report -------------------------------------------------------------------


def _range(start: datetime, end: datetime) -> dict[str, str]:
    """Amazon prints a range of whole days as 00:00Z .. 23:59Z of the last day."""
    return {
        "reportingDateFrom": start.strftime("%Y-%m-%dT%H:%MZ"),
        "reportingDateTo": (end - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ"),
    }


def seller_performance_report(marketplace_windows: dict[str, WindowTruth], as_of: datetime) -> dict[str, Any]:
    """GET_V2_SELLER_PERFORMANCE_REPORT: Amazon's own preFulfillmentCancellationRate per marketplace,
    from the simulator's truth; the other metrics are present (the schema requires them) and quiet."""
    day = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    long = _range(day - timedelta(days=180), day)
    month = _range(day - timedelta(days=30), day)

    def violation() -> dict[str, Any]:
        return {
            "reportingDateRange": long,
            "defectsCount": 0,
            "status": "GOOD",
            "targetValue": 0,
            "targetCondition": "EQUALS",
        }

    def odr(kind: str) -> dict[str, Any]:
        return {
            "reportingDateRange": _range(day - timedelta(days=60), day),
            "orderCount": 0,
            "orderWithDefects": {"count": 0, "status": "NONE"},
            "claims": {"count": 0, "status": "NONE"},
            "chargebacks": {"count": 0, "status": "NONE"},
            "negativeFeedback": {"count": 0, "status": "NONE"},
            "fulfillmentType": kind,
            "status": "NONE",
            "rate": 0,
            "targetValue": 0.01,
            "targetCondition": "LESS_THAN",
        }

    metrics = []
    statuses = []
    for marketplace_id, w in marketplace_windows.items():
        target = float(MARKETPLACES[marketplace_id].target)
        rate = float(w.rate)
        good = rate < target
        statuses.append({"marketplaceId": marketplace_id, "status": "NORMAL" if good else "AT_RISK"})
        metrics.append(
            {
                "marketplaceId": marketplace_id,
                "preFulfillmentCancellationRate": {
                    "reportingDateRange": _range(w.start, w.end),
                    "orderCount": w.orders,
                    "cancellationCount": w.cancellations,
                    "status": "GOOD" if good else "BAD",
                    "rate": round(rate, 6),
                    "targetValue": target,
                    "targetCondition": "LESS_THAN",
                },
                "invoiceDefectRate": {
                    "reportingDateRange": month,
                    "orderCount": 0,
                    "invoiceDefect": {"count": 0, "status": "NONE"},
                    "missingInvoice": {"count": 0, "status": "NONE"},
                    "lateInvoice": {"count": 0, "status": "NONE"},
                    "status": "NONE",
                    "rate": 0,
                    "targetValue": 0.05,
                    "targetCondition": "LESS_THAN",
                },
                "lateShipmentRate": {
                    "reportingDateRange": month,
                    "orderCount": w.orders,
                    "lateShipmentCount": 0,
                    "status": "GOOD",
                    "rate": 0,
                    "targetValue": 0.04,
                    "targetCondition": "LESS_THAN",
                },
                "orderDefectRate": {"mfn": odr("mfn"), "afn": odr("afn")},
                "onTimeDeliveryRate": {
                    "reportingDateRange": month,
                    "shipmentCountWithValidTracking": 0,
                    "onTimeDeliveryCount": 0,
                    "status": "NONE",
                    "rate": 0,
                    "targetValue": 0.9,
                    "targetCondition": "GREATER_THAN",
                },
                "unitOnTimeDeliveryRate": {
                    "reportingDateRange": month,
                    "status": "NONE",
                    "targetValue": 0.9,
                    "targetCondition": "GREATER_THAN",
                    "unitOnTimeDeliveryCount": 0,
                    "totalUnitCount": 0,
                    "rate": 0,
                },
                "validTrackingRate": {
                    "reportingDateRange": month,
                    "shipmentCount": 0,
                    "validTrackingCount": 0,
                    "status": "NONE",
                    "rate": 0,
                    "targetValue": 0.95,
                    "targetCondition": "GREATER_THAN",
                },
                "warningStates": [],
                "accountHealthRating": {"reportingDateRange": long, "accountHealthRatingStatus": "GREAT"},
                "listingPolicyViolations": violation(),
                "productAuthenticityCustomerComplaints": violation(),
                "productConditionCustomerComplaints": violation(),
                "productSafetyCustomerComplaints": violation(),
                "receivedIntellectualPropertyComplaints": violation(),
                "restrictedProductPolicyViolations": violation(),
                "suspectedIntellectualPropertyViolations": violation(),
                "foodAndProductSafetyIssues": violation(),
                "otherPolicyViolations": violation(),
                "documentRequests": violation(),
            }
        )
    return {"accountStatuses": statuses, "performanceMetrics": metrics}
