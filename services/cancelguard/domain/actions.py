"""What the seller's systems should do with an order now, why, and what it costs in CR.

`recommend(order, policy)` answers "what now?"; with an `intent` it answers "may I cancel it this way?".
The answers follow Amazon's help pages (domain §3, §5, §7):
- formal request on an Unshipped order without a label: cancel with reason BuyerCanceled (no CR effect);
- informal request only: do not cancel; ask the buyer to use Your Orders > Request cancellation;
- shipped, or a label bought: cannot cancel; the buyer returns it for a refund;
- no stock: NoInventory, which counts; never advise asking the buyer to request a cancellation;
- BuyerCanceled without a formal request: refuse, it counts anyway;
- Pending: nothing to do, the buyer can still cancel directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cancelguard.domain.attribution import attribute
from cancelguard.domain.model import (
    REASON_BUYER_CANCELED,
    REASON_NO_INVENTORY,
    Channel,
    Order,
    OrderStatus,
    RequestKind,
)
from cancelguard.domain.policy import CancellationPolicy, marketplace
from cancelguard.domain.projection import what_if
from cancelguard.domain.replies import FALLBACK_LANGUAGE, ReplyKind, reply_text
from cancelguard.domain.requests import open_request
from cancelguard.domain.windows import CancellationRate


class Intent(enum.Enum):
    NONE = "NONE"  # what should we do with this order?
    CANCEL_NO_INVENTORY = "CANCEL_NO_INVENTORY"  # we cannot fulfil it (out of stock)
    CANCEL_BUYER_CANCELED = "CANCEL_BUYER_CANCELED"  # we want to cancel it as "buyer cancelled"


class ActionCode(enum.Enum):
    FULFIL = "FULFIL"  # nothing special: ship it
    WAIT_PENDING = "WAIT_PENDING"  # Pending: nothing to do, the buyer can still cancel directly
    CANCEL_BUYER_CANCELED = "CANCEL_BUYER_CANCELED"  # formal request: cancel with BuyerCanceled, no CR effect
    ASK_FOR_FORMAL_REQUEST = "ASK_FOR_FORMAL_REQUEST"  # informal request: reply, do not cancel
    ADVISE_RETURN = "ADVISE_RETURN"  # shipped or labelled: cannot cancel, buyer returns it
    CANCEL_NO_INVENTORY = "CANCEL_NO_INVENTORY"  # allowed, counts against CR
    # no formal request: BuyerCanceled would count anyway
    REFUSE_BUYER_CANCELED_REASON = "REFUSE_BUYER_CANCELED_REASON"
    CANNOT_CANCEL_SHIPPED = "CANNOT_CANCEL_SHIPPED"  # seller wants to cancel a shipped order: refund instead
    ALREADY_CANCELLED = "ALREADY_CANCELLED"
    NOT_APPLICABLE = "NOT_APPLICABLE"  # AFN, or not seen from Amazon yet


@dataclass(frozen=True, slots=True)
class Recommendation:
    code: ActionCode
    cancel_reason: str  # the CancelReason to send in the cancel feed, "" when not cancelling
    order_item_ids: tuple[str, ...]  # the items the action is about (all items when empty)
    counts_against_cr: bool  # would doing this add the order to the CR numerator?
    explanation: str
    reply_kind: ReplyKind | None = None
    reply_language: str = ""
    reply_text: str = ""
    current_rate: CancellationRate | None = None
    # the rate if the seller cancelled this order now (for the informal request: what cancelling would cost)
    projected_rate: CancellationRate | None = None


def recommend(
    order: Order,
    policy: CancellationPolicy,
    *,
    intent: Intent = Intent.NONE,
    current_rate: CancellationRate | None = None,
    now: datetime | None = None,
) -> Recommendation:
    """The action to take. `current_rate`, when given, is a window's rate (the live window, or the one the
    order sits in): a cancel that would count then shows the rate it would cause in that window. `now`
    places the cancel in time (it matters only for the cancel-date window placement); by default, inside
    that window."""
    if order.channel is Channel.AFN:
        return Recommendation(
            ActionCode.NOT_APPLICABLE,
            "",
            (),
            False,
            "fulfilled by Amazon (AFN): Amazon handles cancellations; not in CR",
        )
    if order.status is None or order.channel is None:
        return Recommendation(
            ActionCode.NOT_APPLICABLE,
            "",
            (),
            False,
            "not seen from Amazon yet: wait for the order to arrive from the Orders API",
        )
    if order.is_canceled:
        verdict = attribute(order, policy)
        return Recommendation(
            ActionCode.ALREADY_CANCELLED, "", (), verdict.counts, f"already cancelled: {verdict.explanation}"
        )

    requested_items = tuple(sorted(i.order_item_id for i in order.items.values() if i.has_formal_request))
    # the items to cancel now: those whose request is still open (an order-level request: all of them)
    open_items = tuple(
        sorted(
            i.order_item_id
            for i in order.items.values()
            if i.formal_request is not None and i.formal_request.is_open
        )
    )
    language = _reply_language(order)

    if order.status in (OrderStatus.PENDING, OrderStatus.PENDING_AVAILABILITY):
        return Recommendation(
            ActionCode.WAIT_PENDING,
            "",
            (),
            False,
            "Pending: nothing to do; the buyer can still cancel directly, which does not count against you",
        )

    if order.is_shipped or order.has_label:
        why = "shipped" if order.is_shipped else "a shipping label was bought"
        if order.has_formal_request or order.has_informal_request:
            return _with_reply(
                Recommendation(
                    ActionCode.ADVISE_RETURN,
                    "",
                    requested_items,
                    False,
                    f"the buyer asked to cancel but the order is {why}: it cannot be cancelled; "
                    "ask the buyer "
                    "to refuse the delivery or return it for a refund (a refund does not count in CR)",
                ),
                ReplyKind.RETURN_INSTEAD,
                language,
                order,
            )
        if intent is not Intent.NONE:
            return Recommendation(
                ActionCode.CANNOT_CANCEL_SHIPPED,
                "",
                (),
                False,
                f"the order is {why}: it cannot be cancelled any more; refund it instead",
            )
        return Recommendation(ActionCode.FULFIL, "", (), False, f"{why}: nothing to do")

    # Unshipped, no label: it can be cancelled. What is asked of the seller is the open request.
    request = open_request(order)
    if request is not None and request.kind is RequestKind.FORMAL:
        order_level = order.order_formal_request is not None and order.order_formal_request.is_open
        return Recommendation(
            ActionCode.CANCEL_BUYER_CANCELED,
            REASON_BUYER_CANCELED,
            () if order_level else open_items,
            False,
            "the buyer requested cancellation through Amazon: cancel with reason "
            "BuyerCanceled; it does not count against your Cancellation Rate",
        )

    counted = _projected(order, current_rate, policy, now)
    if intent is Intent.CANCEL_BUYER_CANCELED:
        return Recommendation(
            ActionCode.REFUSE_BUYER_CANCELED_REASON,
            "",
            (),
            True,
            "no formal buyer request on this order: cancelling with reason BuyerCanceled "
            "still counts against your Cancellation Rate (Amazon's rule), and misstates "
            "the reason; wait for the buyer's request or use the true reason",
            current_rate=current_rate,
            projected_rate=counted,
        )
    if intent is Intent.CANCEL_NO_INVENTORY:
        return Recommendation(
            ActionCode.CANCEL_NO_INVENTORY,
            REASON_NO_INVENTORY,
            (),
            True,
            "cancel with reason NoInventory: this counts against your Cancellation Rate",
            current_rate=current_rate,
            projected_rate=counted,
        )
    if request is not None and request.kind is RequestKind.INFORMAL:
        return _with_reply(
            Recommendation(
                ActionCode.ASK_FOR_FORMAL_REQUEST,
                "",
                (),
                False,
                "the buyer asked to cancel by message only: do not cancel (that would count against your "
                "Cancellation Rate); ask the buyer to use Your Orders > Request cancellation, "
                "then cancel with "
                "BuyerCanceled",
                current_rate=current_rate,
                projected_rate=counted,
            ),
            ReplyKind.ASK_FORMAL_REQUEST,
            language,
            order,
        )
    return Recommendation(ActionCode.FULFIL, "", (), False, "no cancellation request: ship it")


def _reply_language(order: Order) -> str:
    """Reply in the language the buyer last wrote in if we have replies in it, else the marketplace's."""
    written = [r.language for r in order.informal_requests if r.language]
    for language in (*written[-1:], marketplace(order.key.marketplace_id).language):
        code = language.strip().replace("_", "-").split("-")[0].lower()
        if _have_replies_in(code):
            return code
    return FALLBACK_LANGUAGE


def _have_replies_in(code: str) -> bool:
    # replies.py falls back to English for a language it lacks: a text unlike the English one is native
    kind = ReplyKind.ASK_FORMAL_REQUEST
    return code == FALLBACK_LANGUAGE or (
        reply_text(kind, code, order_id="") != reply_text(kind, FALLBACK_LANGUAGE, order_id="")
    )


def _with_reply(rec: Recommendation, kind: ReplyKind, language: str, order: Order) -> Recommendation:
    text = reply_text(kind, language, order_id=order.key.amazon_order_id)
    return replace(rec, reply_kind=kind, reply_language=language, reply_text=text)


def _projected(
    order: Order, current: CancellationRate | None, policy: CancellationPolicy, now: datetime | None
) -> CancellationRate | None:
    """The rate if the seller cancelled the order now (any reason: without an open formal request, every
    seller cancel counts). The order changes the window only if it sits in it."""
    if current is None:
        return None
    at = now or current.window.end - timedelta(microseconds=1)
    return what_if(current, [order], cancel_reason=REASON_NO_INVENTORY, at=at, policy=policy).projected
