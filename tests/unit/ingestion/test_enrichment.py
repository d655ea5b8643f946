"""Which ORDER_CHANGE notifications need an Orders API call, whether an answer shows what they announced,
and the v0 items-only snapshot the call for a v0 account gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cancelguard.accounts import OrdersApi
from cancelguard.domain.bounds import check_event
from cancelguard.domain.model import (
    CancelledBy,
    InvalidInput,
    ItemObservation,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
)
from cancelguard.ingestion.adapters.order_change import parse_order_change
from cancelguard.ingestion.adapters.orders_v0 import parse_order_items_v0
from cancelguard.ingestion.pollers.enrichment import (
    EnrichmentRequest,
    answered,
    needs_enrichment,
    retry_delay,
)
from cancelguard.simulator.order_change import NotificationItem, order_change_notification

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
KEY = OrderKey("A1SELLER", "ATVPDKIKX0DER", "111-0000000-0000001")


def notification(status: str, requested: bool) -> dict:
    return order_change_notification(
        seller_id=KEY.seller_account,
        amazon_order_id=KEY.amazon_order_id,
        marketplace_id=KEY.marketplace_id,
        change_type="BuyerRequestedChange" if requested else "OrderStatusChange",
        change_reason="Buyer Requested Cancel" if requested else f"Order status changed to {status}",
        time_of_change=NOW - timedelta(hours=1),
        order_status=status,
        purchase_date=NOW - timedelta(hours=5),
        fulfillment_type="MFN",
        latest_ship_date=NOW + timedelta(days=1),
        items=[NotificationItem("1", "SKU", 1, 0, requested)],
    )


@pytest.mark.parametrize(
    ("status", "requested", "wants"),
    [
        ("Unshipped", False, None),
        ("Shipped", False, None),
        ("Unshipped", True, (False, True)),
        ("Canceled", False, (True, False)),
        ("Canceled", True, (True, True)),
    ],
)
def test_what_a_notification_leaves_unsaid(
    status: str, requested: bool, wants: tuple[bool, bool] | None
) -> None:
    request = needs_enrichment(parse_order_change(notification(status, requested), observed_at=NOW))
    if wants is None:
        assert request is None
        return
    assert request is not None and (request.canceled, request.requested) == wants
    assert request.key == KEY and request.changed_at == NOW - timedelta(hours=1)
    assert request.purchased_at == NOW - timedelta(hours=5)


def _snapshot(status: OrderStatus | None, *, requested: bool | None, by: CancelledBy | None) -> OrderSnapshot:
    return OrderSnapshot(
        status=status,
        purchased_at=NOW,
        items=(ItemObservation("1", buyer_requested_cancel=requested, cancelled_by=by),),
    )


def test_an_answer_that_does_not_show_the_change_yet_is_asked_again() -> None:
    cancel = EnrichmentRequest(KEY, NOW, NOW, canceled=True, requested=False)
    request = EnrichmentRequest(KEY, NOW, NOW, canceled=False, requested=True)
    lagging = _snapshot(OrderStatus.UNSHIPPED, requested=False, by=None)
    cancelled = _snapshot(OrderStatus.CANCELED, requested=False, by=CancelledBy.MERCHANT)
    assert not answered(cancel, lagging, OrdersApi.V2026)
    assert answered(cancel, cancelled, OrdersApi.V2026)
    assert answered(cancel, _snapshot(None, requested=False, by=None), OrdersApi.V0)  # v0 never says who
    assert not answered(request, lagging, OrdersApi.V2026)
    assert answered(request, _snapshot(None, requested=True, by=None), OrdersApi.V0)


def test_retries_back_off_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]


V0_ITEMS = [
    {
        "ASIN": "B00551Q3CS",
        "OrderItemId": "05015851154158",
        "SellerSKU": "SKU-1",
        "QuantityOrdered": 1,
        "QuantityShipped": 0,
        "BuyerRequestedCancel": {"IsBuyerRequestedCancel": "true", "BuyerCancelReason": "Found cheaper"},
    }
]


def test_v0_items_alone_are_a_snapshot_as_of_when_they_were_read() -> None:
    event = parse_order_items_v0(V0_ITEMS, key=KEY, purchased_at=NOW - timedelta(days=1), observed_at=NOW)
    check_event(event, now=NOW)
    assert (
        event.occurred_at == NOW
        and event.event_id == f"orders-v0-items:{KEY.amazon_order_id}:{NOW.isoformat()}"
    )
    assert isinstance(event.body, OrderSnapshot) and event.body.status is None
    [item] = event.body.items
    assert (item.buyer_requested_cancel, item.buyer_cancel_reason) == (True, "Found cheaper")
    with pytest.raises(InvalidInput, match=r"OrderItems\[0\].*QuantityOrdered"):
        parse_order_items_v0(
            [{**V0_ITEMS[0], "QuantityOrdered": -1}], key=KEY, purchased_at=NOW, observed_at=NOW
        )
