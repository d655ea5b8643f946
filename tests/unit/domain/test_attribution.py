"""Attribution (issue item 3): one case per row of the table in architecture.md §3, named after the rule,
plus the cases the issue and domain.md §5 add (v0 UNKNOWN, Japan's 5 minutes, India's reason rule,
the payment/fraud switch)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import pytest

from cancelguard.domain.attribution import Rule, Verdict, attribute, contribution
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import (
    AttributionSource,
    CancelledBy,
    Channel,
    ItemObservation,
    OrderStatus,
    Source,
)
from cancelguard.domain.policy import CancellationPolicy, WindowPlacement, policy_for

from .builders import IN, JP, T0, US, D, H, M, OrderStory, story

YES, NO, NA = Verdict.COUNTED, Verdict.EXCLUDED, Verdict.NOT_APPLICABLE


@dataclass(frozen=True)
class Case:
    build: Callable[[], OrderStory]
    verdict: Verdict
    rule: Rule
    by: CancelledBy | None
    in_denominator: bool = True
    needs_review: bool = False


def _cancelled_unshipped(reason: str) -> Callable[[], OrderStory]:
    return lambda: story().pending(M(0)).unshipped(H(1)).seller_cancel(H(3), reason).canceled(H(4))


# One entry per row of architecture.md §3, in the table's order; the id is the rule that decides.
TABLE = {
    # seller cancels an Unshipped order, any reason, no formal request -> yes
    "SELLER_CANCEL_UNSHIPPED-NoInventory": Case(
        _cancelled_unshipped("NoInventory"), YES, Rule.SELLER_CANCEL_UNSHIPPED, CancelledBy.MERCHANT
    ),
    "SELLER_CANCEL_UNSHIPPED-ShippingAddressUndeliverable": Case(
        _cancelled_unshipped("ShippingAddressUndeliverable"),
        YES,
        Rule.SELLER_CANCEL_UNSHIPPED,
        CancelledBy.MERCHANT,
    ),
    "SELLER_CANCEL_UNSHIPPED-v2026-cancelledBy-MERCHANT": Case(
        lambda: story().unshipped(H(1)).canceled_v2026(CancelledBy.MERCHANT, "NoInventory"),
        YES,
        Rule.SELLER_CANCEL_UNSHIPPED,
        CancelledBy.MERCHANT,
    ),
    # formal buyer request existed before the cancel (any item) -> no
    "FORMAL_REQUEST_BEFORE_CANCEL": Case(
        lambda: story().unshipped(H(1)).formal(H(2)).seller_cancel(H(3), "BuyerCanceled").canceled(H(4)),
        NO,
        Rule.FORMAL_REQUEST_BEFORE_CANCEL,
        CancelledBy.MERCHANT,
    ),
    "FORMAL_REQUEST_BEFORE_CANCEL-any-item": Case(
        lambda: (
            story(items=("A", "B"))
            .unshipped(H(1))
            .formal(H(2), items=("B",))
            .seller_cancel(H(3), "BuyerCanceled")
            .canceled(H(4))
        ),
        NO,
        Rule.FORMAL_REQUEST_BEFORE_CANCEL,
        CancelledBy.MERCHANT,
    ),
    "FORMAL_REQUEST_BEFORE_CANCEL-v0-flag-no-feed": Case(
        lambda: story().unshipped(H(1)).flag(True, H(2)).canceled(H(4)),
        NO,
        Rule.FORMAL_REQUEST_BEFORE_CANCEL,
        CancelledBy.UNKNOWN,
    ),
    "FORMAL_REQUEST_BEFORE_CANCEL-v2026-request-and-execution": Case(
        # the v2026 model example: requester BUYER, cancelledBy MERCHANT
        lambda: (
            story()
            .unshipped(H(1))
            .canceled_v2026(CancelledBy.MERCHANT, "Buyer requested cancellation", requested=True)
        ),
        NO,
        Rule.FORMAL_REQUEST_BEFORE_CANCEL,
        CancelledBy.MERCHANT,
    ),
    # seller picks BuyerCanceled without a formal request -> yes
    "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST": Case(
        _cancelled_unshipped("BuyerCanceled"),
        YES,
        Rule.BUYER_CANCELED_WITHOUT_FORMAL_REQUEST,
        CancelledBy.MERCHANT,
    ),
    # informal request only (messaging), seller cancels -> yes
    "INFORMAL_REQUEST_ONLY": Case(
        lambda: story().unshipped(H(1)).informal(H(2)).seller_cancel(H(3), "NoInventory").canceled(H(4)),
        YES,
        Rule.INFORMAL_REQUEST_ONLY,
        CancelledBy.MERCHANT,
    ),
    # buyer self-cancels while Pending / inside the self-cancel window -> no, and not in the denominator
    "BUYER_SELF_CANCEL-while-Pending": Case(
        lambda: story().pending(M(0)).canceled(H(3)),
        NO,
        Rule.BUYER_SELF_CANCEL,
        CancelledBy.BUYER,
        in_denominator=False,
    ),
    "BUYER_SELF_CANCEL-inside-window": Case(
        lambda: story().canceled(M(20)), NO, Rule.BUYER_SELF_CANCEL, CancelledBy.BUYER, in_denominator=False
    ),
    "BUYER_SELF_CANCEL-inside-window-already-Unshipped": Case(
        # the window is a time since purchase, whatever the status at the time
        lambda: story().unshipped(M(5)).canceled(M(25)),
        NO,
        Rule.BUYER_SELF_CANCEL,
        CancelledBy.BUYER,
        in_denominator=False,
    ),
    "BUYER_SELF_CANCEL-v2026-cancelledBy-BUYER": Case(
        lambda: story().pending(M(0)).canceled_v2026(CancelledBy.BUYER, "Changed mind", at=M(10)),
        NO,
        Rule.BUYER_SELF_CANCEL,
        CancelledBy.BUYER,
        in_denominator=False,
    ),
    # Amazon auto-cancels because the seller did not ship-confirm -> yes
    "AMAZON_AUTO_CANCEL_NOT_SHIPPED": Case(
        lambda: story().unshipped(H(1)).canceled_v2026(CancelledBy.AMAZON, "Not shipped in time", at=D(10)),
        YES,
        Rule.AMAZON_AUTO_CANCEL_NOT_SHIPPED,
        CancelledBy.AMAZON,
    ),
    # Amazon cancels for payment or fraud -> no (configurable)
    "AMAZON_PAYMENT_OR_FRAUD-payment": Case(
        lambda: story().unshipped(H(1)).canceled_v2026(CancelledBy.AMAZON, "Payment declined", at=H(6)),
        NO,
        Rule.AMAZON_PAYMENT_OR_FRAUD,
        CancelledBy.AMAZON,
    ),
    "AMAZON_PAYMENT_OR_FRAUD-fraud": Case(
        lambda: story().unshipped(H(1)).canceled_v2026(CancelledBy.AMAZON, "Suspected fraud", at=H(6)),
        NO,
        Rule.AMAZON_PAYMENT_OR_FRAUD,
        CancelledBy.AMAZON,
    ),
    # AFN (FBA) order -> not in CR at all
    "AFN_NOT_IN_CR": Case(
        lambda: (
            story(channel=Channel.AFN).unshipped(H(1)).canceled_v2026(CancelledBy.MERCHANT, "NoInventory")
        ),
        NA,
        Rule.AFN_NOT_IN_CR,
        None,
        in_denominator=False,
    ),
    # partial (item-level) seller cancel -> yes, the order counts once
    "PARTIAL_SELLER_CANCEL": Case(
        lambda: (
            story(items=("A", "B"))
            .unshipped(H(1))
            .canceled_v2026(
                CancelledBy.MERCHANT, "NoInventory", status=OrderStatus.PARTIALLY_SHIPPED, items=("A",)
            )
        ),
        YES,
        Rule.PARTIAL_SELLER_CANCEL,
        CancelledBy.MERCHANT,
    ),
    # issue item 3: v0 cannot say who cancelled an Unshipped order with no request and no feed of ours
    "UNKNOWN_CANCELLER-v0": Case(
        lambda: story().pending(M(0)).unshipped(H(1)).canceled(H(40)),
        YES,
        Rule.UNKNOWN_CANCELLER,
        CancelledBy.UNKNOWN,
        needs_review=True,
    ),
    # domain.md implication 7: cancelled while Pending is excluded, whoever cancelled it
    "CANCELLED_WHILE_PENDING-by-Amazon": Case(
        lambda: story().pending(M(0)).canceled_v2026(CancelledBy.AMAZON, "", at=H(3)),
        NO,
        Rule.CANCELLED_WHILE_PENDING,
        CancelledBy.AMAZON,
        in_denominator=False,
    ),
}


@pytest.mark.parametrize("case", TABLE.values(), ids=TABLE.keys())
def test_attribution_table(case: Case) -> None:
    order = case.build().order()
    policy = policy_for(US)
    result = attribute(order, policy)
    assert (result.verdict, result.rule, result.cancelled_by) == (case.verdict, case.rule, case.by)
    assert result.needs_review is case.needs_review
    assert result.explanation  # every verdict says why
    share = contribution(order, policy, result)
    assert (share.denominator_at is not None) is case.in_denominator
    assert (share.numerator_at is not None) is (case.verdict is YES)
    if share.numerator_at is not None:
        assert share.numerator_at == share.denominator_at == T0  # purchase date places both (default)


def test_every_rule_is_exercised_by_the_table() -> None:
    covered = {c.rule for c in TABLE.values()} | {Rule.NOT_CANCELLED, Rule.CHANNEL_UNKNOWN}
    assert covered == set(Rule)


def test_not_cancelled_order_is_in_the_denominator_only() -> None:
    order = story().unshipped(H(1)).order()
    result = attribute(order, policy_for(US))
    assert (result.verdict, result.rule) == (Verdict.NOT_CANCELLED, Rule.NOT_CANCELLED)
    share = contribution(order, policy_for(US))
    assert (share.denominator_at, share.numerator_at) == (T0, None)


def test_buyer_request_then_seller_ships_anyway_is_not_a_cancellation() -> None:
    order = story().unshipped(H(1)).formal(H(2)).shipped(D(1)).order()
    assert attribute(order, policy_for(US)).verdict is Verdict.NOT_CANCELLED


def test_channel_not_known_yet_is_not_applicable() -> None:
    from cancelguard.domain.model import OrderEvent, OrderSnapshot, Source

    from .builders import key

    event = OrderEvent(
        "e",
        key(),
        Source.ORDERS_V0,
        T0 + H(4),
        T0 + H(4),
        OrderSnapshot(status=OrderStatus.CANCELED, purchased_at=T0),
    )
    order = fold([event])
    result = attribute(order, policy_for(US))
    assert (result.verdict, result.rule) == (Verdict.NOT_APPLICABLE, Rule.CHANNEL_UNKNOWN)
    assert contribution(order, policy_for(US)).denominator_at is None


# --- self-cancel window per marketplace ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("marketplace_id", "cancelled_after", "verdict", "rule"),
    [
        pytest.param(US, M(29), NO, Rule.BUYER_SELF_CANCEL, id="US-29min-inside-30min-window"),
        pytest.param(US, M(30), NO, Rule.BUYER_SELF_CANCEL, id="US-30min-edge-inside"),
        pytest.param(US, M(31), YES, Rule.UNKNOWN_CANCELLER, id="US-31min-outside"),
        pytest.param(JP, M(4), NO, Rule.BUYER_SELF_CANCEL, id="JP-4min-inside-5min-window"),
        pytest.param(JP, M(10), YES, Rule.UNKNOWN_CANCELLER, id="JP-10min-outside-5min-window"),
    ],
)
def test_self_cancel_window_per_marketplace(marketplace_id: str, cancelled_after, verdict, rule) -> None:
    order = story(marketplace_id=marketplace_id).unshipped(M(1)).canceled(cancelled_after).order()
    result = attribute(order, policy_for(marketplace_id))
    assert (result.verdict, result.rule) == (verdict, rule)


def test_seller_cancel_inside_the_window_still_counts() -> None:
    # our own feed says the seller cancelled: the window is for the buyer's direct cancel only
    order = story().unshipped(M(1)).seller_cancel(M(5), "NoInventory").canceled(M(10)).order()
    assert attribute(order, policy_for(US)).rule is Rule.SELLER_CANCEL_UNSHIPPED


# --- India: excludes buyer requests only when cancelled with reason Buyer Cancelled --------------------


@pytest.mark.parametrize(
    ("build", "verdict", "rule", "review"),
    [
        pytest.param(
            lambda: (
                story(marketplace_id=IN)
                .unshipped(H(1))
                .formal(H(2))
                .seller_cancel(H(3), "BuyerCanceled")
                .canceled(H(4))
            ),
            NO,
            Rule.FORMAL_REQUEST_BEFORE_CANCEL,
            False,
            id="request+BuyerCanceled-excluded",
        ),
        pytest.param(
            lambda: (
                story(marketplace_id=IN)
                .unshipped(H(1))
                .formal(H(2))
                .seller_cancel(H(3), "NoInventory")
                .canceled(H(4))
            ),
            YES,
            Rule.SELLER_CANCEL_UNSHIPPED,
            False,
            id="request+NoInventory-counts",
        ),
        pytest.param(
            lambda: (
                story(marketplace_id=IN)
                .unshipped(H(1))
                .canceled_v2026(CancelledBy.MERCHANT, "Buyer requested cancellation", requested=True)
            ),
            NO,
            Rule.FORMAL_REQUEST_BEFORE_CANCEL,
            False,
            id="v2026-reason-spelling-excluded",
        ),
        pytest.param(
            lambda: (
                story(marketplace_id=IN)
                .unshipped(H(1))
                .formal(H(2))
                .canceled_v2026(CancelledBy.AMAZON, "Not shipped in time", at=D(3))
            ),
            YES,
            Rule.AMAZON_AUTO_CANCEL_NOT_SHIPPED,
            False,
            id="request+Amazon-auto-cancel-counts",
        ),
        pytest.param(
            lambda: story(marketplace_id=IN).unshipped(H(1)).flag(True, H(2)).canceled(H(4)),
            NO,
            Rule.FORMAL_REQUEST_BEFORE_CANCEL,
            True,
            id="request+reason-unknown-excluded-review",
        ),
    ],
)
def test_india_buyer_canceled_reason_rule(build, verdict, rule, review) -> None:
    result = attribute(build().order(), policy_for(IN))
    assert (result.verdict, result.rule, result.needs_review) == (verdict, rule, review)


def test_outside_india_a_formal_request_excludes_whatever_the_reason() -> None:
    order = story().unshipped(H(1)).formal(H(2)).seller_cancel(H(3), "NoInventory").canceled(H(4)).order()
    assert attribute(order, policy_for(US)).verdict is Verdict.EXCLUDED


# --- switches ----------------------------------------------------------------------------------------


def test_payment_fraud_switch_off_counts_and_says_so() -> None:
    order = story().unshipped(H(1)).canceled_v2026(CancelledBy.AMAZON, "Payment declined", at=H(6)).order()
    policy = replace(policy_for(US), exclude_payment_fraud_cancels=False)
    result = attribute(order, policy)
    assert (result.verdict, result.rule) == (Verdict.COUNTED, Rule.AMAZON_PAYMENT_OR_FRAUD)
    assert "exclude_payment_fraud_cancels" in result.explanation


def test_pending_in_denominator_switch() -> None:
    pending = story().pending(M(0)).order()
    self_cancel = story().pending(M(0)).canceled(H(1)).order()
    default = policy_for(US)
    switched = replace(default, pending_in_denominator=True)
    assert contribution(pending, default).denominator_at is None
    assert contribution(self_cancel, default).denominator_at is None
    assert contribution(pending, switched).denominator_at == T0
    assert contribution(self_cancel, switched).denominator_at == T0
    assert contribution(self_cancel, switched).numerator_at is None  # excluded stays out of the numerator


def test_cancel_date_placement_moves_the_numerator_only() -> None:
    order = story().unshipped(H(1)).seller_cancel(D(3), "NoInventory").canceled(D(3) + H(1)).order()
    policy = replace(policy_for(US), window_placement=WindowPlacement.CANCEL_DATE)
    share = contribution(order, policy)
    assert share.denominator_at == T0
    assert share.numerator_at == T0 + D(3) + H(1)


# --- partial cancels, sources, review flags ----------------------------------------------------------


def test_partial_cancel_of_two_items_counts_the_order_once() -> None:
    s = story(items=("A", "B", "C")).unshipped(H(1))
    s.canceled_v2026(CancelledBy.MERCHANT, "NoInventory", at=H(3), status=OrderStatus.UNSHIPPED, items=("A",))
    s.canceled_v2026(CancelledBy.MERCHANT, "NoInventory", at=H(5), status=OrderStatus.SHIPPED, items=("B",))
    order = s.order()
    assert len(order.cancelled_items) == 2
    result = attribute(order, policy_for(US))
    assert (result.verdict, result.rule) == (Verdict.COUNTED, Rule.PARTIAL_SELLER_CANCEL)
    share = contribution(order, policy_for(US))
    # one time, so the order lands in exactly one numerator bucket
    assert isinstance(share.numerator_at, datetime)


def test_partial_cancel_with_a_request_on_another_item_is_excluded() -> None:
    s = story(items=("A", "B")).unshipped(H(1)).formal(H(2), items=("B",))
    s.canceled_v2026(CancelledBy.MERCHANT, "BuyerCanceled", status=OrderStatus.UNSHIPPED, items=("B",))
    assert attribute(s.order(), policy_for(US)).rule is Rule.FORMAL_REQUEST_BEFORE_CANCEL


def test_amazons_cancelled_by_beats_our_feed_log() -> None:
    # we submitted a cancel feed, but Amazon says it auto-cancelled before our feed was processed
    order = (
        story()
        .unshipped(H(1))
        .seller_cancel(D(9), "NoInventory")
        .canceled_v2026(CancelledBy.AMAZON, "Not shipped in time", at=D(9) + H(1))
        .order()
    )
    result = attribute(order, policy_for(US))
    assert (result.cancelled_by, result.source) == (CancelledBy.AMAZON, AttributionSource.AMAZON_CANCELLED_BY)


def test_feed_submitted_after_the_cancel_did_not_cause_it() -> None:
    # v0 saw Canceled at 40h; our systems sent a BuyerCanceled feed later (it will fail): who cancelled
    # is still unknown, and the reason of a feed that came too late is not the cancel's reason
    order = story().unshipped(H(1)).canceled(H(40)).seller_cancel(H(41), "BuyerCanceled").order()
    result = attribute(order, policy_for(US))
    assert (result.rule, result.cancelled_by, result.needs_review) == (
        Rule.UNKNOWN_CANCELLER,
        CancelledBy.UNKNOWN,
        True,
    )


def test_feed_source_is_kept_for_audit() -> None:
    result = attribute(_cancelled_unshipped("NoInventory")().order(), policy_for(US))
    assert result.source is AttributionSource.SELLER_FEED
    assert result.cancel_reason == "NoInventory"
    assert result.cancelled_at == T0 + H(4)


def test_informal_request_and_unknown_canceller_counts_and_asks_for_review() -> None:
    order = story().unshipped(H(1)).informal(H(2)).canceled(H(30)).order()
    result = attribute(order, policy_for(US))
    assert (result.verdict, result.rule, result.needs_review) == (
        Verdict.COUNTED,
        Rule.INFORMAL_REQUEST_ONLY,
        True,
    )


def test_excluded_row_with_formal_request_stays_in_the_denominator() -> None:
    # the order reached the seller: it is one of "total orders"
    share = contribution(TABLE["FORMAL_REQUEST_BEFORE_CANCEL"].build().order(), policy_for(US))
    assert (share.denominator_at, share.numerator_at) == (T0, None)


def test_policy_default_is_purchase_date() -> None:
    assert CancellationPolicy().window_placement is WindowPlacement.PURCHASE_DATE


def test_formal_request_cleared_before_the_cancel_no_longer_excludes_it() -> None:
    # the flag went up at 2h and down at 3h; the seller cancelled at 5h with no request standing
    order = (
        story()
        .unshipped(H(1))
        .flag(True, H(2))
        .flag(False, H(3))
        .seller_cancel(H(4), "NoInventory")
        .canceled(H(5))
        .order()
    )
    result = attribute(order, policy_for(US))
    assert (result.verdict, result.rule) == (Verdict.COUNTED, Rule.SELLER_CANCEL_UNSHIPPED)


def test_formal_request_flag_down_after_the_cancel_still_excludes_it() -> None:
    # Amazon's data for the cancelled order shows the flag down: it stood when the order was cancelled
    order = (
        story()
        .unshipped(H(1))
        .flag(True, H(2))
        .seller_cancel(H(3), "BuyerCanceled")
        .canceled(H(4))
        .flag(False, H(6), status=OrderStatus.CANCELED)
        .order()
    )
    assert attribute(order, policy_for(US)).rule is Rule.FORMAL_REQUEST_BEFORE_CANCEL


def test_formal_request_first_seen_after_the_cancel_still_excludes_it() -> None:
    # v0 fetched the items only after the cancel: the flag must have been raised before it
    order = story().unshipped(H(1)).canceled(H(4)).flag(True, H(9), status=OrderStatus.CANCELED).order()
    assert attribute(order, policy_for(US)).rule is Rule.FORMAL_REQUEST_BEFORE_CANCEL


def test_reason_does_not_depend_on_the_order_items_arrived_in() -> None:
    # Amazon reports two items cancelled by the merchant, with different reasons, in two documents
    s = story(marketplace_id=IN, items=("A", "B")).unshipped(H(1)).formal(H(2), items=("A",))
    s.canceled_v2026(
        CancelledBy.MERCHANT, "BuyerCanceled", at=H(3), items=("A",), status=OrderStatus.UNSHIPPED
    )
    # this document lists item B alone, so B can be the first item the order state holds
    s.snapshot(
        OrderStatus.CANCELED,
        H(4),
        source=Source.ORDERS_V2026,
        items=(ItemObservation("B", cancelled_by=CancelledBy.MERCHANT, cancel_reason="NoInventory"),),
    )
    results = {
        (r.rule, r.cancel_reason)
        for r in (attribute(fold(perm), policy_for(IN)) for perm in itertools.permutations(s.events))
    }
    # the earliest cancellation's reason: requested and BuyerCanceled, so India excludes it
    assert results == {(Rule.FORMAL_REQUEST_BEFORE_CANCEL, "BuyerCanceled")}
