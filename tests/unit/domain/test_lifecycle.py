"""Applying events (issue item 2): idempotent, independent of arrival order, last writer wins on Amazon's
own time (never on arrival time), and a status never moves backwards."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from cancelguard.domain.lifecycle import apply, fold
from cancelguard.domain.model import (
    CancellationRequested,
    CancelledBy,
    ItemObservation,
    OrderEvent,
    OrderSnapshot,
    OrderStatus,
    RequestKind,
    Source,
)

from .builders import ARRIVAL, T0, D, H, M, key, story


def _canceled_story():
    return (
        story(items=("A", "B"))
        .pending(M(0))
        .unshipped(H(1))
        .formal(H(2), items=("A",), reason="Changed mind")
        .informal(H(2.5), language="de")
        .seller_cancel(H(3), "BuyerCanceled")
        .label(H(3.5))
        .canceled(H(4))
    )


def test_applying_an_event_twice_changes_nothing() -> None:
    events = _canceled_story().events
    once = fold(events)
    for event in events:
        assert apply(once, event) == once


def test_every_arrival_order_gives_the_same_state() -> None:
    events = _canceled_story().events
    expected = fold(events)
    for perm in itertools.permutations(events):
        assert fold(perm) == expected


def test_duplicates_with_fresh_arrival_times_change_nothing() -> None:
    events = _canceled_story().events
    redelivered = [replace(e, observed_at=ARRIVAL + D(3)) for e in events]
    assert fold(events + redelivered + events[::-1]) == fold(events)


def test_status_does_not_move_backwards_when_an_old_observation_arrives_late() -> None:
    s = story().pending(M(0)).unshipped(H(1)).shipped(D(1))
    pending, unshipped, shipped = s.events
    order = fold([pending, shipped, unshipped])  # the Unshipped poll arrives last
    assert order.status is OrderStatus.SHIPPED
    order = fold([shipped, pending])
    assert order.status is OrderStatus.SHIPPED


def test_cancelled_order_is_not_revived_by_a_late_unshipped_poll() -> None:
    s = story().unshipped(H(1)).canceled(H(5))
    unshipped, canceled = s.events
    assert fold([canceled, unshipped]).status is OrderStatus.CANCELED
    assert fold([canceled, unshipped]).canceled_at == T0 + H(5)


def test_between_terminal_statuses_amazons_later_time_wins_not_the_later_arrival() -> None:
    # Shipped, then InvoiceUnconfirmed in a marketplace that confirms invoices (same rank)
    s = story().shipped(D(1)).snapshot(OrderStatus.INVOICE_UNCONFIRMED, D(2))
    shipped, invoice = s.events
    shipped = replace(shipped, observed_at=ARRIVAL + D(10))  # the older observation arrives much later
    assert fold([invoice, shipped]).status is OrderStatus.INVOICE_UNCONFIRMED
    assert fold([shipped, invoice]).status is OrderStatus.INVOICE_UNCONFIRMED


def test_last_writer_wins_on_amazon_time_not_arrival_time() -> None:
    # the request flag goes up at 2h and back down at 6h; the 6h observation arrives first
    s = story().flag(True, H(2), reason="Found cheaper").flag(False, H(6))
    up, down = s.events
    up = replace(up, observed_at=ARRIVAL + H(1))
    down = replace(down, observed_at=ARRIVAL)
    for events in ([up, down], [down, up]):
        order = fold(events)
        assert not order.has_open_formal_request
        assert order.has_formal_request  # it was raised: that history is kept
        assert order.first_formal_request_at == T0 + H(2)
        assert order.buyer_cancel_reason == "Found cheaper"


def test_same_amazon_time_is_decided_by_event_id_in_any_arrival_order() -> None:
    a = OrderEvent(
        "a",
        key(),
        Source.ORDERS_V0,
        T0,
        ARRIVAL,
        OrderSnapshot(items=(ItemObservation("ITEM-1", seller_sku="OLD"),)),
    )
    b = OrderEvent(
        "b",
        key(),
        Source.ORDER_CHANGE,
        T0,
        ARRIVAL,
        OrderSnapshot(items=(ItemObservation("ITEM-1", seller_sku="NEW"),)),
    )
    assert fold([a, b]).items["ITEM-1"].sku == fold([b, a]).items["ITEM-1"].sku == "NEW"


def test_formal_request_that_clears_and_is_raised_again() -> None:
    s = story().flag(True, H(2)).flag(False, H(3)).flag(True, H(4), reason="Ordered by mistake")
    for perm in itertools.permutations(s.events):
        order = fold(perm)
        assert order.has_open_formal_request
        assert order.first_formal_request_at == T0 + H(2)
        assert order.buyer_cancel_reason == "Ordered by mistake"


def test_formal_request_cleared_is_no_longer_open() -> None:
    order = story().unshipped().formal(H(2)).flag(False, H(3)).order()
    assert not order.has_open_formal_request
    assert order.has_formal_request


def test_request_sources_are_all_kept() -> None:
    order = (
        story()
        .formal(H(2), source=Source.ORDER_CHANGE)
        .flag(True, H(2.1), source=Source.ORDERS_V0)
        .flag(True, H(2.2), source=Source.ORDER_REPORT)
        .order()
    )
    request = order.items["ITEM-1"].formal_request
    assert request is not None
    assert request.sources == {Source.ORDER_CHANGE, Source.ORDERS_V0, Source.ORDER_REPORT}


def test_multi_item_order_only_one_item_requested() -> None:
    order = story(items=("A", "B")).unshipped().formal(H(2), items=("B",)).order()
    assert not order.items["A"].has_formal_request
    assert order.items["B"].has_formal_request
    assert order.has_open_formal_request
    assert set(order.items) == {"A", "B"}


def test_item_observations_from_several_sources_merge() -> None:
    s = story(items=("A", "B")).unshipped(H(1))
    s.snapshot(
        None,
        H(30),
        source=Source.ORDERS_V2026,
        items=(ItemObservation("A", quantity_ordered=2, quantity_shipped=2),),
    )
    s.formal(H(2), items=("B",))
    for perm in itertools.permutations(s.events):
        order = fold(perm)
        assert order.items["A"].quantity_shipped == 2
        assert order.items["A"].sku == "SKU-A"  # kept from the first poll: the later one did not say
        assert order.items["B"].has_formal_request
        assert order.is_shipped  # an item shipped, whatever the order status says


def test_order_level_request_without_item_ids() -> None:
    event = OrderEvent(
        "r",
        key(),
        Source.ORDER_CHANGE,
        T0 + H(2),
        ARRIVAL,
        CancellationRequested(RequestKind.FORMAL, (), "Late delivery"),
    )
    order = fold([*story().unshipped().events, event])
    assert order.order_formal_request is not None
    assert order.has_open_formal_request
    assert order.buyer_cancel_reason == "Late delivery"


def test_informal_requests_are_deduplicated_by_message_id() -> None:
    s = story().informal(H(2), language="fr", message_id="m1").informal(H(2), language="fr", message_id="m1")
    order = s.order()
    assert len(order.informal_requests) == 1
    assert order.has_informal_request and not order.has_formal_request


def test_label_keeps_the_earliest_time() -> None:
    order = story().label(H(5)).label(H(3)).order()
    assert order.has_label and order.label_purchased_at == T0 + H(3)


def test_pending_history_is_kept_for_attribution() -> None:
    order = story().pending(M(0)).canceled(H(2)).order()
    assert order.seen_pending_at == T0 and order.left_pending_at is None and order.canceled_at == T0 + H(2)
    order = story().pending(M(0)).unshipped(H(1)).canceled(H(2)).order()
    assert order.left_pending_at == T0 + H(1)


def test_v2026_cancelled_by_is_recorded_per_item() -> None:
    order = (
        story(items=("A", "B"))
        .unshipped()
        .canceled_v2026(CancelledBy.MERCHANT, "NoInventory", status=OrderStatus.UNSHIPPED, items=("A",))
        .order()
    )
    assert [i.order_item_id for i in order.cancelled_items] == ["A"]
    assert order.items["A"].cancellation.cancelled_by is CancelledBy.MERCHANT
    assert not order.is_canceled


def test_purchase_time_is_the_earliest_any_source_gave() -> None:
    s = story().unshipped(H(1))
    late = replace(s.events[0], event_id="other", body=replace(s.events[0].body, purchased_at=T0 + M(1)))
    assert fold([late, *s.events]).purchased_at == T0


def test_event_for_another_order_is_refused() -> None:
    order = story(order_id="A").unshipped().order()
    other = story(order_id="B").unshipped().events[0]
    with pytest.raises(ValueError, match="is for"):
        apply(order, other)


def test_fold_of_nothing_is_nothing() -> None:
    assert fold([]) is None


def test_partially_shipped_from_the_status_or_from_the_items() -> None:
    s = story(items=("A", "B")).unshipped(H(1))
    s.snapshot(None, D(1), items=(ItemObservation("A", quantity_ordered=1, quantity_shipped=1),))
    order = s.order()
    assert order.is_partially_shipped and order.is_shipped and order.status is OrderStatus.UNSHIPPED
    assert story().snapshot(OrderStatus.PARTIALLY_SHIPPED, D(1)).order().is_partially_shipped
    assert not story(items=("A", "B")).shipped(D(1)).order().is_partially_shipped
    assert not story(items=("A", "B")).unshipped(H(1)).order().is_partially_shipped
