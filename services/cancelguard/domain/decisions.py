"""May the seller cancel this order with this reason now, and what does it cost? The rule behind
DecideCancellation (domain §3, §5; Seller Central: "The Cancel order option is available for Unshipped
orders only"):

- only an MFN order that is Unshipped, with no item shipped and no label bought, can be cancelled;
- `BuyerCanceled` only while a formal request (Amazon's flag) is open: without one it still counts
  against the Cancellation Rate and misstates the reason, so it is refused, with what it would cost;
- any other reason of the feed's list is accepted, and its cost shown (NoInventory counts);
- the items cancelled are the order's items (all by default), each known to cancelguard: the feed
  names each one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cancelguard.domain.attribution import attribute
from cancelguard.domain.model import REASON_BUYER_CANCELED, Channel, Order, OrderStatus
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.projection import simulate_seller_cancel, what_if
from cancelguard.domain.windows import CancellationRate


@dataclass(frozen=True, slots=True)
class CancelDecision:
    cancel_reason: str
    order_item_ids: tuple[str, ...]
    counts_against_cr: bool
    explanation: str
    current_rate: CancellationRate
    projected_rate: CancellationRate


class CancelRefused(Exception):
    """The cancel is not allowed. `reason` is stable (clients branch on it); `invalid` marks a fault of
    the request itself (an unknown item) rather than of the order's state; the rates say what the cancel
    would have cost, when that is the point."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        invalid: bool = False,
        current_rate: CancellationRate | None = None,
        projected_rate: CancellationRate | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.invalid = invalid
        self.current_rate = current_rate
        self.projected_rate = projected_rate


def decide_cancellation(
    order: Order,
    policy: CancellationPolicy,
    *,
    cancel_reason: str,
    order_item_ids: Sequence[str],
    current_rate: CancellationRate,
    at: datetime,
) -> CancelDecision:
    """The decision, or CancelRefused. `current_rate` is the window the cost is shown in."""
    _check_cancellable(order)
    known = sorted(order.items)
    if not known:
        raise CancelRefused(
            "ITEMS_UNKNOWN",
            "cancelguard knows no item of this order yet, and the cancel feed names each item: "
            "wait until Amazon's order data (with its items) has arrived",
        )
    unknown = [i for i in order_item_ids if i not in order.items]
    if unknown:
        raise CancelRefused(
            "UNKNOWN_ITEM", f"not items of this order: {', '.join(unknown[:5])}", invalid=True
        )
    # Amazon refuses a cancel of an item it cancelled already (90106): name only the others
    gone = sorted(i for i in set(order_item_ids) if order.items[i].cancellation is not None)
    if gone:
        raise CancelRefused(
            "ITEM_ALREADY_CANCELLED", f"already cancelled: {', '.join(gone[:5])}", invalid=True
        )
    items = tuple(sorted(set(order_item_ids))) or tuple(
        i for i in known if order.items[i].cancellation is None
    )
    projected = what_if(current_rate, [order], cancel_reason=cancel_reason, at=at, policy=policy).projected
    after = attribute(simulate_seller_cancel(order, cancel_reason, at), policy)
    if cancel_reason == REASON_BUYER_CANCELED and not order.has_open_formal_request:
        raise CancelRefused(
            "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST",
            "no open formal buyer request on this order: cancelling with BuyerCanceled would still count "
            f"against your Cancellation Rate ({_rate(current_rate)} -> {_rate(projected)} in the live "
            "window) and misstate the reason; wait for the buyer's request through Amazon, or use the "
            "true reason",
            current_rate=current_rate,
            projected_rate=projected,
        )
    if after.counts:
        explanation = (
            f"cancelling with {cancel_reason} counts against your Cancellation Rate: "
            f"{_rate(current_rate)} -> {_rate(projected)} in the live window; {after.explanation}"
        )
    else:
        explanation = (
            f"cancelling with {cancel_reason} does not count against your Cancellation Rate: "
            f"{after.explanation}"
        )
    return CancelDecision(cancel_reason, items, after.counts, explanation, current_rate, projected)


def _check_cancellable(order: Order) -> None:
    if order.channel is Channel.AFN:
        raise CancelRefused(
            "NOT_SELLER_FULFILLED", "fulfilled by Amazon (AFN): Amazon handles its cancellation"
        )
    if order.status is None or order.channel is None:
        raise CancelRefused(
            "ORDER_NOT_SEEN", "not seen from Amazon yet: wait for the order to arrive from the Orders API"
        )
    if order.is_canceled:
        raise CancelRefused("ALREADY_CANCELLED", "the order is already cancelled")
    if order.is_shipped or order.has_label:
        why = "shipped" if order.is_shipped else "a shipping label was bought"
        raise CancelRefused(
            "ORDER_SHIPPED",
            f"the order cannot be cancelled: {why}; refund it, or ask the buyer to return it",
        )
    if order.status is not OrderStatus.UNSHIPPED:
        raise CancelRefused(
            "NOT_UNSHIPPED",
            f"only Unshipped orders can be cancelled; this one is {order.status.value}"
            + (" (the buyer can still cancel it directly)" if order.is_pending else ""),
        )


def _rate(rate: CancellationRate) -> str:
    return f"{rate.numerator}/{rate.denominator} = {float(rate.rate):.2%}"
