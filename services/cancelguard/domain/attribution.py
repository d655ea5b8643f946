"""Who cancelled an order, and whether it counts against the Cancellation Rate.

One rule per row of the table in docs (architecture §3, domain §5). `attribute` decides the verdict;
`contribution` says which CR buckets the order sits in (denominator and numerator), which is all the
metrics store needs to keep windows exact when facts arrive late.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from cancelguard.domain.model import (
    AttributionSource,
    CancelledBy,
    Channel,
    Order,
    is_buyer_canceled_reason,
)
from cancelguard.domain.policy import CancellationPolicy, WindowPlacement


class Verdict(enum.Enum):
    NOT_CANCELLED = "NOT_CANCELLED"
    COUNTED = "COUNTED"  # in the CR numerator
    EXCLUDED = "EXCLUDED"  # cancelled, but Amazon does not hold it against the seller
    NOT_APPLICABLE = "NOT_APPLICABLE"  # not an MFN order (or we do not know yet), so not in CR at all


class Rule(enum.Enum):
    """The row of the attribution table that decided."""

    NOT_CANCELLED = "NOT_CANCELLED"
    AFN_NOT_IN_CR = "AFN_NOT_IN_CR"
    CHANNEL_UNKNOWN = "CHANNEL_UNKNOWN"
    SELLER_CANCEL_UNSHIPPED = "SELLER_CANCEL_UNSHIPPED"
    FORMAL_REQUEST_BEFORE_CANCEL = "FORMAL_REQUEST_BEFORE_CANCEL"
    BUYER_CANCELED_WITHOUT_FORMAL_REQUEST = "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST"
    INFORMAL_REQUEST_ONLY = "INFORMAL_REQUEST_ONLY"
    BUYER_SELF_CANCEL = "BUYER_SELF_CANCEL"
    AMAZON_AUTO_CANCEL_NOT_SHIPPED = "AMAZON_AUTO_CANCEL_NOT_SHIPPED"
    AMAZON_PAYMENT_OR_FRAUD = "AMAZON_PAYMENT_OR_FRAUD"
    PARTIAL_SELLER_CANCEL = "PARTIAL_SELLER_CANCEL"
    CANCELLED_WHILE_PENDING = "CANCELLED_WHILE_PENDING"  # Amazon cancelled it before it left Pending
    UNKNOWN_CANCELLER = "UNKNOWN_CANCELLER"


@dataclass(frozen=True, slots=True)
class Attribution:
    verdict: Verdict
    rule: Rule
    cancelled_by: CancelledBy | None
    cancel_reason: str
    source: AttributionSource
    cancelled_at: datetime | None
    needs_review: bool
    explanation: str

    @property
    def counts(self) -> bool:
        return self.verdict is Verdict.COUNTED


# Amazon's cancels for payment or fraud reasons are not the seller's fault (third-party source).
_PAYMENT_OR_FRAUD = re.compile(r"payment|fraud|risk|verification|unauthori[sz]ed", re.IGNORECASE)


def attribute(order: Order, policy: CancellationPolicy) -> Attribution:
    if order.channel is Channel.AFN:
        return _verdict(
            Verdict.NOT_APPLICABLE,
            Rule.AFN_NOT_IN_CR,
            None,
            "",
            AttributionSource.NONE,
            None,
            "fulfilled by Amazon (AFN): the Cancellation Rate covers seller-fulfilled orders only",
        )
    cancelled_items = order.cancelled_items
    if not order.is_canceled and not cancelled_items:
        if order.channel is None:
            return _verdict(
                Verdict.NOT_APPLICABLE,
                Rule.CHANNEL_UNKNOWN,
                None,
                "",
                AttributionSource.NONE,
                None,
                "not seen from Amazon yet: fulfilment channel unknown",
            )
        return _NOT_CANCELLED
    if order.channel is None:
        return _verdict(
            Verdict.NOT_APPLICABLE,
            Rule.CHANNEL_UNKNOWN,
            None,
            "",
            AttributionSource.NONE,
            order.canceled_at,
            "cancelled, but the fulfilment channel is not known yet",
        )

    partial = not order.is_canceled
    by, reason, source, at = _who_cancelled(order, policy)

    if by is CancelledBy.BUYER:
        return _verdict(
            Verdict.EXCLUDED,
            Rule.BUYER_SELF_CANCEL,
            by,
            reason,
            source,
            at,
            "the buyer cancelled directly (while Pending or inside the self-cancel window): "
            "not in the Cancellation Rate",
        )
    if by is CancelledBy.AMAZON and _cancelled_while_pending(order):
        # Amazon's help: Pending orders are not in the rate; the seller cannot even cancel them yet
        return _verdict(
            Verdict.EXCLUDED,
            Rule.CANCELLED_WHILE_PENDING,
            by,
            reason,
            source,
            at,
            "Amazon cancelled the order while it was still Pending (never released to the "
            "seller): not in the Cancellation Rate",
        )
    if order.had_formal_request_at(at):
        if not policy.formal_request_needs_buyer_canceled_reason or is_buyer_canceled_reason(reason):
            return _verdict(
                Verdict.EXCLUDED,
                Rule.FORMAL_REQUEST_BEFORE_CANCEL,
                by,
                reason,
                source,
                at,
                "the buyer requested cancellation through Amazon (Request cancellation): "
                "excluded from the Cancellation Rate",
            )
        if by is CancelledBy.UNKNOWN or (by is CancelledBy.MERCHANT and not reason):
            return _verdict(
                Verdict.EXCLUDED,
                Rule.FORMAL_REQUEST_BEFORE_CANCEL,
                by,
                reason,
                source,
                at,
                "the buyer requested cancellation through Amazon; this marketplace excludes it "
                "only if the seller cancelled with reason BuyerCanceled, and the reason is not "
                "known: excluded, review it",
                needs_review=True,
            )
        # this marketplace (India) counts a requested order cancelled for any other reason, or by Amazon
    if by is CancelledBy.AMAZON:
        if _PAYMENT_OR_FRAUD.search(reason):
            if policy.exclude_payment_fraud_cancels:
                return _verdict(
                    Verdict.EXCLUDED,
                    Rule.AMAZON_PAYMENT_OR_FRAUD,
                    by,
                    reason,
                    source,
                    at,
                    "Amazon cancelled for a payment or fraud reason: not the seller's fault "
                    "(configurable: exclude_payment_fraud_cancels)",
                )
            return _verdict(
                Verdict.COUNTED,
                Rule.AMAZON_PAYMENT_OR_FRAUD,
                by,
                reason,
                source,
                at,
                "Amazon cancelled for a payment or fraud reason; this policy counts those "
                "(exclude_payment_fraud_cancels is off)",
            )
        return _verdict(
            Verdict.COUNTED,
            Rule.AMAZON_AUTO_CANCEL_NOT_SHIPPED,
            by,
            reason,
            source,
            at,
            "Amazon cancelled the order because it was not ship-confirmed in time: counts",
        )
    if by is CancelledBy.MERCHANT:
        if partial:
            return _verdict(
                Verdict.COUNTED,
                Rule.PARTIAL_SELLER_CANCEL,
                by,
                reason,
                source,
                at,
                "the seller cancelled part of the order: the order counts once",
            )
        if is_buyer_canceled_reason(reason):
            return _verdict(
                Verdict.COUNTED,
                Rule.BUYER_CANCELED_WITHOUT_FORMAL_REQUEST,
                by,
                reason,
                source,
                at,
                "cancelled with reason BuyerCanceled but the buyer never requested it "
                "through Amazon: Amazon counts it",
            )
        if order.has_informal_request:
            return _verdict(
                Verdict.COUNTED,
                Rule.INFORMAL_REQUEST_ONLY,
                by,
                reason,
                source,
                at,
                "the buyer asked only by message (informal request): a seller cancel counts",
            )
        return _verdict(
            Verdict.COUNTED,
            Rule.SELLER_CANCEL_UNSHIPPED,
            by,
            reason,
            source,
            at,
            "the seller cancelled an unshipped order without a buyer request: counts",
        )
    # Nobody says who cancelled (Orders API v0 has no such field): count it and flag it for review.
    if order.has_informal_request:
        return _verdict(
            Verdict.COUNTED,
            Rule.INFORMAL_REQUEST_ONLY,
            CancelledBy.UNKNOWN,
            reason,
            source,
            at,
            "cancelled after an informal request (buyer message) and no formal request: counts; "
            "who cancelled is not known",
            needs_review=True,
        )
    if partial:
        return _verdict(
            Verdict.COUNTED,
            Rule.PARTIAL_SELLER_CANCEL,
            CancelledBy.UNKNOWN,
            reason,
            source,
            at,
            "part of the order was cancelled and nothing says by whom: counted once, review it",
            needs_review=True,
        )
    return _verdict(
        Verdict.COUNTED,
        Rule.UNKNOWN_CANCELLER,
        CancelledBy.UNKNOWN,
        reason,
        source,
        at,
        "cancelled after it left Pending, with no buyer request and no cancel of ours on record: "
        "counted, and flagged for review",
        needs_review=True,
    )


def _cancelled_while_pending(order: Order) -> bool:
    """Seen Pending, cancelled, and never seen past Pending."""
    return order.is_canceled and order.seen_pending_at is not None and order.left_pending_at is None


def _verdict(
    verdict: Verdict,
    rule: Rule,
    by: CancelledBy | None,
    reason: str,
    source: AttributionSource,
    at: datetime | None,
    explanation: str,
    *,
    needs_review: bool = False,
) -> Attribution:
    return Attribution(verdict, rule, by, reason, source, at, needs_review, explanation)


# the verdict of most orders, made once (it is placed again after every event of the order)
_NOT_CANCELLED = _verdict(
    Verdict.NOT_CANCELLED, Rule.NOT_CANCELLED, None, "", AttributionSource.NONE, None, "not cancelled"
)


def _who_cancelled(
    order: Order, policy: CancellationPolicy
) -> tuple[CancelledBy, str, AttributionSource, datetime | None]:
    """Best evidence first: Amazon's cancelledBy, then the seller's own feed, then the status history."""
    items = order.cancelled_items
    cancel_times = [i.cancellation.stamp.at for i in items if i.cancellation is not None]
    at = order.canceled_at or (min(cancel_times) if cancel_times else None)

    # earliest first, so the reason reported does not depend on the order the items arrived in
    amazon_says = [
        c
        for _, _, c in sorted(
            (i.cancellation.stamp, i.order_item_id, i.cancellation)
            for i in items
            if i.cancellation is not None and i.cancellation.source is AttributionSource.AMAZON_CANCELLED_BY
        )
    ]
    if amazon_says:
        # the seller's fault dominates: one item cancelled by the merchant makes it a seller cancel
        for who in (CancelledBy.MERCHANT, CancelledBy.AMAZON, CancelledBy.BUYER):
            found = [c for c in amazon_says if c.cancelled_by is who]
            if found:
                return who, found[0].reason, AttributionSource.AMAZON_CANCELLED_BY, at

    # a feed sent after Amazon's cancel did not cause it (it will fail): it is no evidence
    feeds = [f for f in order.seller_cancels if at is None or f.submitted_at <= at]
    if feeds:
        feed = feeds[-1]
        return CancelledBy.MERCHANT, feed.reason, AttributionSource.SELLER_FEED, at

    if order.is_canceled:
        if _cancelled_while_pending(order):
            return CancelledBy.BUYER, "", AttributionSource.STATUS_HISTORY, at  # cancelled while Pending
        if (
            at is not None
            and order.purchased_at is not None
            and at - order.purchased_at <= policy.self_cancel_window
        ):
            # the window is a time since purchase: the buyer may cancel directly even once Unshipped
            return CancelledBy.BUYER, "", AttributionSource.STATUS_HISTORY, at
    return CancelledBy.UNKNOWN, "", AttributionSource.NONE, at


@dataclass(frozen=True, slots=True)
class Contribution:
    """Where the order sits in the CR buckets: None means it is not in that part of the rate."""

    denominator_at: datetime | None
    numerator_at: datetime | None


NO_CONTRIBUTION = Contribution(None, None)


def contribution(
    order: Order, policy: CancellationPolicy, attribution: Attribution | None = None
) -> Contribution:
    """The order's place in the rate. An order is in the numerator only if it is in the denominator."""
    if order.channel is not Channel.MFN or order.purchased_at is None:
        return NO_CONTRIBUTION
    attribution = attribution or attribute(order, policy)
    if attribution.verdict is Verdict.NOT_APPLICABLE:
        return NO_CONTRIBUTION
    # Pending orders, and orders the buyer cancelled directly, are not "orders" for the rate by default
    pending_like = (order.is_pending and order.left_pending_at is None) or attribution.rule in (
        Rule.BUYER_SELF_CANCEL,
        Rule.CANCELLED_WHILE_PENDING,
    )
    in_denominator = attribution.counts or not pending_like or policy.pending_in_denominator
    if not in_denominator:
        return NO_CONTRIBUTION
    numerator_at = None
    if attribution.counts:
        numerator_at = order.purchased_at
        if policy.window_placement is WindowPlacement.CANCEL_DATE and attribution.cancelled_at is not None:
            numerator_at = attribution.cancelled_at
    return Contribution(order.purchased_at, numerator_at)
