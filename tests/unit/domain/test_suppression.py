"""Offer suppression risk (issue item 9): two consecutive seller cancellations for the same SKU within 30
days."""

from __future__ import annotations

from datetime import datetime

from cancelguard.domain.model import CancelledBy, Channel, Order, OrderStatus
from cancelguard.domain.policy import policy_for

from .builders import T0, US, D, H, story

AS_OF = T0 + D(20)


def seller_cancelled(order_id: str, at: datetime, sku: str = "SKU-1", reason: str = "NoInventory") -> Order:
    return (
        story(order_id=order_id, purchased_at=at, skus={"ITEM-1": sku})
        .unshipped(H(1))
        .seller_cancel(H(2), reason)
        .canceled(H(3))
        .order()
    )


def shipped(order_id: str, at: datetime, sku: str = "SKU-1") -> Order:
    return (
        story(order_id=order_id, purchased_at=at, skus={"ITEM-1": sku}).unshipped(H(1)).shipped(D(1)).order()
    )


def risks(*orders: Order, as_of: datetime = AS_OF):
    from cancelguard.domain.suppression import suppression_risks

    return suppression_risks(list(orders), policy_for(US), as_of)


def test_two_consecutive_seller_cancels_of_one_sku() -> None:
    found = risks(seller_cancelled("o2", T0 + D(5)), seller_cancelled("o1", T0 + D(1)))
    assert len(found) == 1
    assert (found[0].seller_sku, found[0].amazon_order_ids) == ("SKU-1", ("o1", "o2"))
    assert found[0].purchased_at == (T0 + D(1), T0 + D(5))
    assert "SKU-1" in found[0].explanation


def test_a_fulfilled_order_between_breaks_the_run() -> None:
    assert (
        risks(seller_cancelled("o1", T0 + D(1)), shipped("o2", T0 + D(2)), seller_cancelled("o3", T0 + D(3)))
        == []
    )


def test_different_skus_do_not_combine() -> None:
    assert risks(seller_cancelled("o1", T0 + D(1), "SKU-A"), seller_cancelled("o2", T0 + D(2), "SKU-B")) == []


def test_only_orders_placed_in_the_last_30_days() -> None:
    old = seller_cancelled("o1", AS_OF - D(31))
    recent = seller_cancelled("o2", AS_OF - D(1))
    assert risks(old, recent) == []
    assert len(risks(seller_cancelled("o1", AS_OF - D(29)), recent)) == 1


def test_orders_after_as_of_are_not_history_yet() -> None:
    assert risks(seller_cancelled("o1", T0 + D(1)), seller_cancelled("o2", AS_OF + D(1))) == []


def test_cancels_the_buyer_requested_do_not_count() -> None:
    requested = (
        story(order_id="o2", purchased_at=T0 + D(2), skus={"ITEM-1": "SKU-1"})
        .unshipped(H(1))
        .formal(H(2))
        .seller_cancel(H(3), "BuyerCanceled")
        .canceled(H(4))
        .order()
    )
    assert risks(seller_cancelled("o1", T0 + D(1)), requested, seller_cancelled("o3", T0 + D(3))) == []


def test_afn_orders_are_ignored() -> None:
    afn = (
        story(order_id="o2", purchased_at=T0 + D(2), channel=Channel.AFN, skus={"ITEM-1": "SKU-1"})
        .unshipped(H(1))
        .canceled_v2026(CancelledBy.MERCHANT, "NoInventory")
        .order()
    )
    assert len(risks(seller_cancelled("o1", T0 + D(1)), afn, seller_cancelled("o3", T0 + D(3)))) == 1


def test_partial_cancel_puts_only_the_cancelled_items_sku_at_risk() -> None:
    partial = (
        story(order_id="o2", purchased_at=T0 + D(2), items=("A", "B"), skus={"A": "SKU-1", "B": "SKU-2"})
        .unshipped(H(1))
        .canceled_v2026(CancelledBy.MERCHANT, "NoInventory", status=OrderStatus.UNSHIPPED, items=("B",))
        .order()
    )
    found = risks(
        seller_cancelled("o1", T0 + D(1), "SKU-1"), partial, seller_cancelled("o3", T0 + D(3), "SKU-2")
    )
    assert [(r.seller_sku, r.amazon_order_ids) for r in found] == [("SKU-2", ("o2", "o3"))]


def test_an_order_holding_the_sku_twice_is_one_order() -> None:
    # o2 holds SKU-1 on two items and the seller cancelled one of them: o1 and o2 are consecutive
    partial = (
        story(order_id="o2", purchased_at=T0 + D(2), items=("A", "B"), skus={"A": "SKU-1", "B": "SKU-1"})
        .unshipped(H(1))
        .canceled_v2026(CancelledBy.MERCHANT, "NoInventory", status=OrderStatus.UNSHIPPED, items=("B",))
        .order()
    )
    found = risks(seller_cancelled("o1", T0 + D(1)), partial)
    assert [r.amazon_order_ids for r in found] == [("o1", "o2")]
    # and the same order twice is never a pair by itself
    assert risks(partial) == []


def test_one_risk_per_sku_for_a_longer_run() -> None:
    found = risks(*(seller_cancelled(f"o{i}", T0 + D(i)) for i in range(1, 5)))
    assert [r.amazon_order_ids for r in found] == [("o1", "o2")]
