"""The simulated Amazon: seller accounts, their orders and how each order changes over time.

An order is a list of versions, each the whole order as Amazon holds it after one change: `at` is
Amazon's time for the change (what the Orders API calls LastUpdateDate), `visible_at` when the Orders API
starts showing it (Amazon's search index lags; usually seconds, sometimes minutes, which is why pollers
overlap their cursors). Stories run past the simulator's "now": as the clock advances, orders ship, get
auto-cancelled and so on. A seller's cancel feed replaces an order's future with a cancel.

Nothing here imports `cancelguard.domain`: the simulator's truth must stay independent of the code it
checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

# Orders API v0 spellings; the v2026 renderer maps them.
PENDING, UNSHIPPED, PARTIALLY_SHIPPED, SHIPPED, CANCELED = (
    "Pending",
    "Unshipped",
    "PartiallyShipped",
    "Shipped",
    "Canceled",
)
BUYER, MERCHANT, AMAZON = "BUYER", "MERCHANT", "AMAZON"

# Amazon's own cancel reasons in the simulator (v2026 cancellationExecution.cancelReason is free text)
AMAZON_REASON_NOT_SHIPPED = "Order not ship-confirmed by the latest ship date"
AMAZON_REASON_PAYMENT = "Payment authorization failed"
AMAZON_REASON_FRAUD = "Order flagged by fraud risk review"
AMAZON_PAYMENT_OR_FRAUD_REASONS = frozenset({AMAZON_REASON_PAYMENT, AMAZON_REASON_FRAUD})
BUYER_SELF_CANCEL_REASON = "Buyer cancelled the order"


@dataclass(frozen=True, slots=True)
class Marketplace:
    marketplace_id: str
    country: str
    sales_channel: str  # v0 SalesChannel, v2026 marketplaceName
    currency: str
    language: str
    self_cancel_window: timedelta  # buyer may cancel directly this long after purchase
    target: str  # Amazon's CR target, as a decimal string
    formal_request_needs_buyer_canceled: bool = False  # India
    windows_days: tuple[int, ...] = (7,)


_M = timedelta(minutes=1)
MARKETPLACES = {
    m.marketplace_id: m
    for m in (
        Marketplace("ATVPDKIKX0DER", "US", "Amazon.com", "USD", "en", 30 * _M, "0.025"),
        Marketplace("A2EUQ1WTGCTBG2", "CA", "Amazon.ca", "CAD", "en", 30 * _M, "0.025"),
        Marketplace("A1F83G8C2ARO7P", "GB", "Amazon.co.uk", "GBP", "en", 30 * _M, "0.025"),
        Marketplace("A1PA6795UKMFR9", "DE", "Amazon.de", "EUR", "de", 30 * _M, "0.025"),
        Marketplace("A13V1IB3VIYZZH", "FR", "Amazon.fr", "EUR", "fr", 30 * _M, "0.025"),
        Marketplace("A1VC38T7YXB528", "JP", "Amazon.co.jp", "JPY", "ja", 5 * _M, "0.025"),
        Marketplace("A21TJRUUN4KGV", "IN", "Amazon.in", "INR", "en", 30 * _M, "0.02", True, (7, 30)),
    )
}


@dataclass(frozen=True, slots=True)
class ItemState:
    shipped: int = 0
    requested: bool = False  # the buyer's formal cancellation request
    request_reason: str = ""
    cancelled_by: str = ""  # "" | BUYER | MERCHANT | AMAZON
    cancel_reason: str = ""


@dataclass(frozen=True, slots=True)
class Version:
    at: datetime
    visible_at: datetime
    status: str
    items: tuple[ItemState, ...]
    change_type: str = "OrderStatusChange"  # ORDER_CHANGE OrderChangeType
    change_reason: str = ""


@dataclass(frozen=True, slots=True)
class SimItem:
    order_item_id: str
    asin: str
    seller_sku: str
    title: str
    quantity: int
    unit_price: str  # decimal string in the marketplace's currency


@dataclass(frozen=True, slots=True)
class Buyer:
    """Clearly fake personal data, in the places Amazon would put real data."""

    name: str
    email: str
    phone: str
    address_line1: str
    city: str
    state: str
    postal_code: str
    country: str


@dataclass(slots=True)
class SimOrder:
    seller_id: str
    marketplace_id: str
    amazon_order_id: str
    channel: str  # MFN | AFN
    purchased_at: datetime
    earliest_ship_at: datetime
    latest_ship_at: datetime
    items: tuple[SimItem, ...]
    buyer: Buyer
    story: str
    versions: list[Version]
    label_at: datetime | None = None
    is_prime: bool = False

    def current(self, t: datetime) -> Version | None:
        """Amazon's own state at t (what its truth is), ignoring the API's lag."""
        found = None
        for v in self.versions:
            if v.at <= t:
                found = v
        return found

    def visible(self, t: datetime) -> Version | None:
        """What the Orders API shows at t: the latest change it has indexed by then."""
        seen = [v for v in self.versions if v.visible_at <= t]
        return max(seen, key=lambda v: v.at) if seen else None

    def history(self, t: datetime) -> list[Version]:
        return [v for v in self.versions if v.at <= t]


@dataclass(frozen=True, slots=True)
class BuyerMessage:
    message_id: str
    seller_id: str
    marketplace_id: str
    amazon_order_id: str
    sent_at: datetime
    text: str
    asks_to_cancel: bool

    def as_record(self) -> dict[str, str]:
        """The helpdesk record the ingestion service reads (topic buyer-messages.raw)."""
        from cancelguard.simulator.order_change import amazon_time

        return {
            "message_id": self.message_id,
            "seller_account": self.seller_id,
            "marketplace_id": self.marketplace_id,
            "amazon_order_id": self.amazon_order_id,
            "sent_at": amazon_time(self.sent_at),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class SellerCancel:
    """The seller's own record of a cancel it sent (through its tools or a feed to the simulator)."""

    seller_id: str
    marketplace_id: str
    amazon_order_id: str
    submitted_at: datetime
    reason: str
    order_item_ids: tuple[str, ...]
    feed_id: str = ""


@dataclass(frozen=True, slots=True)
class SellerAccount:
    seller_id: str
    marketplace_ids: tuple[str, ...]
    refresh_token: str  # fake: the simulator's LWA accepts it


@dataclass
class World:
    sellers: dict[str, SellerAccount]
    orders: dict[tuple[str, str], SimOrder] = field(default_factory=dict)  # (seller, order id)
    messages: list[BuyerMessage] = field(default_factory=list)
    seller_cancels: list[SellerCancel] = field(default_factory=list)

    def add(self, order: SimOrder) -> None:
        self.orders[(order.seller_id, order.amazon_order_id)] = order

    def orders_of(self, seller_id: str) -> list[SimOrder]:
        return [o for (s, _), o in self.orders.items() if s == seller_id]

    def cancel_by_seller(
        self,
        order: SimOrder,
        reasons: dict[str, str],  # order item id -> CancelReason
        at: datetime,
        lag: timedelta,
        feed_id: str,
    ) -> None:
        """Apply a seller's cancel at `at` (the caller checked it is allowed). Cancelling every item
        cancels the order and drops its future; cancelling some keeps the rest of its story."""
        now = order.current(at)
        assert now is not None
        index = {item.order_item_id: i for i, item in enumerate(order.items)}

        def cancelled(items: tuple[ItemState, ...]) -> tuple[ItemState, ...]:
            out = list(items)
            for item_id, reason in reasons.items():
                out[index[item_id]] = replace(
                    out[index[item_id]], cancelled_by=MERCHANT, cancel_reason=reason
                )
            return tuple(out)

        items = cancelled(now.items)
        whole = all(i.cancelled_by for i in items)
        past = [v for v in order.versions if v.at <= at]
        future = [] if whole else [replace(v, items=cancelled(v.items)) for v in order.versions if v.at > at]
        change = Version(
            at,
            at + lag,
            CANCELED if whole else now.status,
            items,
            change_reason="Order status changed to Canceled" if whole else "Item cancelled",
        )
        order.versions = [*past, change, *future]
        self.seller_cancels.append(
            SellerCancel(
                order.seller_id,
                order.marketplace_id,
                order.amazon_order_id,
                at,
                next(iter(reasons.values())),
                tuple(reasons),
                feed_id,
            )
        )
