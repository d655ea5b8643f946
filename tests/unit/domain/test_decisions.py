"""DecideCancellation's rule: Unshipped only; BuyerCanceled only with an open formal request; the cost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cancelguard.domain.decisions import CancelRefused, decide_cancellation
from cancelguard.domain.model import CancelledBy, Channel, OrderStatus
from cancelguard.domain.policy import policy_for
from cancelguard.domain.projection import what_if
from cancelguard.domain.windows import CancellationRate, RateStatus, live_window

from .builders import US, H, story

POLICY = policy_for(US)
NOW = datetime(2024, 3, 11, 8, 0, tzinfo=UTC)
BOUGHT = NOW - H(4)


def _current(orders: int = 100, cancelled: int = 1) -> CancellationRate:
    return CancellationRate(live_window(NOW), cancelled, orders, RateStatus.GOOD)


def _decide(order, reason: str, items: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return decide_cancellation(
        order, POLICY, cancel_reason=reason, order_item_ids=items, current_rate=_current(), at=NOW
    )


def _refused(order, reason: str, items: tuple[str, ...] = ()) -> CancelRefused:  # type: ignore[no-untyped-def]
    with pytest.raises(CancelRefused) as err:
        _decide(order, reason, items)
    return err.value


def test_no_inventory_is_allowed_and_shows_what_it_costs() -> None:
    decision = _decide(story(purchased_at=BOUGHT).unshipped().order(), "NoInventory")
    assert decision.counts_against_cr and decision.order_item_ids == ("ITEM-1",)
    assert (decision.projected_rate.numerator, decision.projected_rate.denominator) == (2, 100)
    assert "1/100" in decision.explanation and "2/100" in decision.explanation


def test_buyer_canceled_without_a_formal_request_is_refused_with_its_cost() -> None:
    refused = _refused(story(purchased_at=BOUGHT).unshipped().order(), "BuyerCanceled")
    assert refused.reason == "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST" and not refused.invalid
    assert refused.projected_rate is not None and refused.projected_rate.numerator == 2


def test_buyer_canceled_with_an_open_formal_request_costs_nothing() -> None:
    order = story(purchased_at=BOUGHT).unshipped().formal(H(2)).order()
    decision = _decide(order, "BuyerCanceled")
    assert not decision.counts_against_cr and decision.projected_rate.numerator == 1


def test_an_informal_request_alone_does_not_make_buyer_canceled_free() -> None:
    order = story(purchased_at=BOUGHT).unshipped().informal(H(2)).order()
    assert _refused(order, "BuyerCanceled").reason == "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST"


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda s: s.unshipped().shipped(), "ORDER_SHIPPED"),
        (lambda s: s.unshipped().label(), "ORDER_SHIPPED"),
        (lambda s: s.pending(), "NOT_UNSHIPPED"),
        (lambda s: s.unshipped().canceled(), "ALREADY_CANCELLED"),
    ],
)
def test_only_an_unshipped_order_without_a_label_can_be_cancelled(build, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert _refused(build(story(purchased_at=BOUGHT)).order(), "NoInventory").reason == reason


def test_afn_and_unknown_items() -> None:
    afn = story(purchased_at=BOUGHT, channel=Channel.AFN).unshipped().order()
    assert _refused(afn, "NoInventory").reason == "NOT_SELLER_FULFILLED"
    refused = _refused(story(purchased_at=BOUGHT).unshipped().order(), "NoInventory", ("NOPE",))
    assert refused.reason == "UNKNOWN_ITEM" and refused.invalid


def test_items_cancelled_already_are_left_out_or_refused() -> None:
    """Amazon refuses a cancel of an item it cancelled already: the default names only the others."""
    partly = (
        story(purchased_at=BOUGHT, items=("ITEM-1", "ITEM-2"))
        .unshipped()
        .canceled_v2026(
            CancelledBy.BUYER, "BuyerCanceled", H(2), status=OrderStatus.UNSHIPPED, items=("ITEM-1",)
        )
        .order()
    )
    assert _decide(partly, "NoInventory").order_item_ids == ("ITEM-2",)
    refused = _refused(partly, "NoInventory", ("ITEM-1", "ITEM-2"))
    assert refused.reason == "ITEM_ALREADY_CANCELLED" and refused.invalid and "ITEM-1" in refused.message


def test_what_if_says_an_order_outside_the_window_counts_elsewhere() -> None:
    old = story(purchased_at=NOW - H(24 * 9)).unshipped().order()
    effect = what_if(_current(), [old], cancel_reason="NoInventory", at=NOW, policy=POLICY).effects[0]
    assert effect.counts and not effect.in_window and effect.numerator_delta == 0
    assert "outside this window" in effect.explanation
