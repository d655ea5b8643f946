"""The simulator's own ground truth, from its orders alone (it never imports `cancelguard.domain`).

For every order, as of a time: its final state, who cancelled and why, the requests, and the rule of the
attribution table (docs/architecture.md §3) that should decide it, by the `Rule` names of
`domain/attribution.py` written as plain strings:

- `rule`: with everything Amazon knows (what Orders API v2026-01-01's `cancellationExecution` says, plus
  the buyer messages);
- `rule_v0`: with what Orders API v0 and the buyer messages can tell (no canceller: v0 has no such
  field; item-level cancels are invisible; the Pending state is assumed seen, as ORDER_CHANGE shows it).

For every seller x marketplace: the CR of the live window (the 168 hours up to the end of the current
hour) and of Amazon's window (7 whole UTC days ending a day before today; India also 30), counting
orders by purchase date, denominator without orders still Pending and without buyer self-cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cancelguard.simulator.order_change import amazon_time
from cancelguard.simulator.spapi.world import (
    AMAZON,
    AMAZON_PAYMENT_OR_FRAUD_REASONS,
    BUYER,
    CANCELED,
    MARKETPLACES,
    MERCHANT,
    PENDING,
    SHIPPED,
    World,
)

COUNTED_RULES = frozenset(
    {
        "SELLER_CANCEL_UNSHIPPED",
        "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST",
        "INFORMAL_REQUEST_ONLY",
        "AMAZON_AUTO_CANCEL_NOT_SHIPPED",
        "PARTIAL_SELLER_CANCEL",
        "UNKNOWN_CANCELLER",
    }
)
NOT_IN_DENOMINATOR_RULES = frozenset({"BUYER_SELF_CANCEL", "CANCELLED_WHILE_PENDING", "AFN_NOT_IN_CR"})


@dataclass(frozen=True, slots=True)
class OrderTruth:
    seller_id: str
    marketplace_id: str
    amazon_order_id: str
    story: str
    channel: str
    purchased_at: datetime
    status: str  # v0 spelling, as of the truth's time
    cancelled: bool
    partial: bool
    cancelled_at: datetime | None
    cancelled_by: str
    cancel_reason: str
    formal_request: bool
    formal_request_reason: str
    informal_request: bool
    label_purchased: bool
    open_request: str  # "FORMAL" | "INFORMAL" | ""
    rule: str
    rule_v0: str

    @property
    def still_pending(self) -> bool:
        return self.status == PENDING

    def counted(self, rule: str) -> bool:
        return rule in COUNTED_RULES

    def in_denominator(self, rule: str) -> bool:
        return (
            self.channel == "MFN"
            and not self.still_pending
            and (rule in COUNTED_RULES or rule not in NOT_IN_DENOMINATOR_RULES)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seller_id": self.seller_id,
            "marketplace_id": self.marketplace_id,
            "amazon_order_id": self.amazon_order_id,
            "story": self.story,
            "channel": self.channel,
            "purchased_at": amazon_time(self.purchased_at),
            "status": self.status,
            "cancelled": self.cancelled,
            "partial": self.partial,
            "cancelled_at": amazon_time(self.cancelled_at) if self.cancelled_at else None,
            "cancelled_by": self.cancelled_by or None,
            "cancel_reason": self.cancel_reason,
            "formal_request": self.formal_request,
            "formal_request_reason": self.formal_request_reason,
            "informal_request": self.informal_request,
            "label_purchased": self.label_purchased,
            "open_request": self.open_request or None,
            "rule": self.rule,
            "rule_v0": self.rule_v0,
            "counted": self.counted(self.rule),
            "in_denominator": self.in_denominator(self.rule),
            "counted_v0": self.counted(self.rule_v0),
            "in_denominator_v0": self.in_denominator(self.rule_v0),
        }


def order_truths(world: World, as_of: datetime) -> list[OrderTruth]:
    asked: dict[tuple[str, str], bool] = {}
    for m in world.messages:
        if m.asks_to_cancel and m.sent_at <= as_of:
            asked[(m.seller_id, m.amazon_order_id)] = True
    out = []
    for (seller, order_id), order in sorted(world.orders.items()):
        history = order.history(as_of)
        if not history:
            continue  # not purchased yet at as_of
        now = history[-1]
        market = MARKETPLACES[order.marketplace_id]
        cancelled_items = [i for i in now.items if i.cancelled_by]
        cancelled = bool(cancelled_items)
        partial = cancelled and now.status != CANCELED
        cancelled_at = next((v.at for v in history if any(i.cancelled_by for i in v.items)), None)
        by = next(
            (who for who in (MERCHANT, AMAZON, BUYER) if any(i.cancelled_by == who for i in now.items)), ""
        )
        reason = next((i.cancel_reason for i in now.items if i.cancelled_by == by), "")
        requested_before = [
            i for v in history if cancelled_at is None or v.at <= cancelled_at for i in v.items if i.requested
        ]
        formal = bool(requested_before)
        left_pending = any(v.status not in (PENDING, CANCELED) for v in history)
        informal = asked.get((seller, order_id), False)
        label = order.label_at is not None and order.label_at <= as_of
        unshipped_open = (
            not cancelled and now.status not in (SHIPPED,) and all(i.shipped == 0 for i in now.items)
        )
        open_request = ""
        if unshipped_open and any(i.requested for i in now.items):
            open_request = "FORMAL"
        elif unshipped_open and informal:
            open_request = "INFORMAL"

        facts = _Facts(
            order.channel,
            now.status,
            cancelled,
            partial,
            by,
            reason,
            formal,
            informal,
            left_pending,
            cancelled_at is not None and cancelled_at - order.purchased_at <= market.self_cancel_window,
            market.formal_request_needs_buyer_canceled,
        )
        out.append(
            OrderTruth(
                seller,
                order.marketplace_id,
                order_id,
                order.story,
                order.channel,
                order.purchased_at,
                now.status,
                cancelled,
                partial,
                cancelled_at,
                by,
                reason,
                formal,
                requested_before[0].request_reason if formal else "",
                informal,
                label,
                open_request,
                full_rule(facts),
                v0_rule(facts),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class _Facts:
    channel: str
    status: str
    cancelled: bool
    partial: bool
    by: str
    reason: str
    formal: bool  # a formal request stood before the cancel
    informal: bool
    left_pending: bool
    within_self_cancel_window: bool
    needs_buyer_canceled: bool  # India: a formal request excludes only a BuyerCanceled cancel


def full_rule(f: _Facts) -> str:
    """The attribution table (architecture §3), knowing who cancelled."""
    if f.channel == "AFN":
        return "AFN_NOT_IN_CR"
    if not f.cancelled:
        return "NOT_CANCELLED"
    if f.by == BUYER:
        return "BUYER_SELF_CANCEL"
    if f.by == AMAZON and not f.left_pending:
        return "CANCELLED_WHILE_PENDING"
    if f.formal and (not f.needs_buyer_canceled or f.reason == "BuyerCanceled"):
        return "FORMAL_REQUEST_BEFORE_CANCEL"
    if f.by == AMAZON:
        if f.reason in AMAZON_PAYMENT_OR_FRAUD_REASONS:
            return "AMAZON_PAYMENT_OR_FRAUD"
        return "AMAZON_AUTO_CANCEL_NOT_SHIPPED"
    if f.partial:
        return "PARTIAL_SELLER_CANCEL"
    if f.reason == "BuyerCanceled":
        return "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST"
    if f.informal:
        return "INFORMAL_REQUEST_ONLY"
    return "SELLER_CANCEL_UNSHIPPED"


def v0_rule(f: _Facts) -> str:
    """The same table, with only what Orders API v0 and buyer messages tell: no canceller, no
    item-level cancels, the status history."""
    if f.channel == "AFN":
        return "AFN_NOT_IN_CR"
    if f.status != CANCELED:
        return "NOT_CANCELLED"
    if not f.left_pending or f.within_self_cancel_window:
        return "BUYER_SELF_CANCEL"
    if f.formal:
        return "FORMAL_REQUEST_BEFORE_CANCEL"
    if f.informal:
        return "INFORMAL_REQUEST_ONLY"
    return "UNKNOWN_CANCELLER"


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _day(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def windows_of(as_of: datetime, marketplace_id: str) -> list[tuple[str, int, datetime, datetime]]:
    """(kind, days, start inclusive, end exclusive) of the windows a marketplace is judged on."""
    live_end = _hour(as_of) + timedelta(hours=1)
    out = [("LIVE", 7, live_end - timedelta(hours=168), live_end)]
    aligned_end = _day(as_of) - timedelta(days=1)
    for days in MARKETPLACES[marketplace_id].windows_days:
        out.append(("AMAZON_ALIGNED", days, aligned_end - timedelta(days=days), aligned_end))
    return out


@dataclass(frozen=True, slots=True)
class WindowTruth:
    seller_id: str
    marketplace_id: str
    kind: str
    days: int
    start: datetime
    end: datetime
    orders: int
    cancellations: int
    orders_v0: int
    cancellations_v0: int

    @property
    def rate(self) -> Decimal:
        return Decimal(self.cancellations) / self.orders if self.orders else Decimal(0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seller_id": self.seller_id,
            "marketplace_id": self.marketplace_id,
            "kind": self.kind,
            "days": self.days,
            "start": amazon_time(self.start),
            "end": amazon_time(self.end),
            "orders": self.orders,
            "cancellations": self.cancellations,
            "rate": str(self.rate.quantize(Decimal("0.000001"))),
            "orders_v0": self.orders_v0,
            "cancellations_v0": self.cancellations_v0,
        }


def window_truths(world: World, as_of: datetime, orders: list[OrderTruth] | None = None) -> list[WindowTruth]:
    orders = order_truths(world, as_of) if orders is None else orders
    out = []
    for seller in sorted(world.sellers):
        for marketplace_id in world.sellers[seller].marketplace_ids:
            mine = [o for o in orders if o.seller_id == seller and o.marketplace_id == marketplace_id]
            for kind, days, start, end in windows_of(as_of, marketplace_id):
                inside = [o for o in mine if start <= o.purchased_at < end]
                out.append(
                    WindowTruth(
                        seller,
                        marketplace_id,
                        kind,
                        days,
                        start,
                        end,
                        sum(o.in_denominator(o.rule) for o in inside),
                        sum(o.counted(o.rule) and o.in_denominator(o.rule) for o in inside),
                        sum(o.in_denominator(o.rule_v0) for o in inside),
                        sum(o.counted(o.rule_v0) and o.in_denominator(o.rule_v0) for o in inside),
                    )
                )
    return out


def ground_truth(world: World, as_of: datetime, *, seed: int | None = None) -> dict[str, Any]:
    """The whole truth as one JSON document (what `/_sim/truth` and `--write-truth` give)."""
    orders = order_truths(world, as_of)
    return {
        "as_of": amazon_time(as_of),
        "seed": seed,
        "rules": "names of cancelguard.domain.attribution.Rule; rule: all Amazon knows (v2026 + messages), "
        "rule_v0: Orders API v0 + messages",
        "orders": [o.as_dict() for o in orders],
        "windows": [w.as_dict() for w in window_truths(world, as_of, orders)],
        "seller_cancels": [
            {
                "seller_id": c.seller_id,
                "marketplace_id": c.marketplace_id,
                "amazon_order_id": c.amazon_order_id,
                "submitted_at": amazon_time(c.submitted_at),
                "cancel_reason": c.reason,
                "order_item_ids": list(c.order_item_ids),
                "feed_id": c.feed_id or None,
            }
            for c in world.seller_cancels
            if c.submitted_at <= as_of
        ],
    }
