"""A seeded scenario: sellers x marketplaces x days of orders, each following one story.

Stories cover what a Cancellation Rate engine must tell apart: shipments (some with a label bought first,
some shipped in parts), formal requests (cancelled, left open, after a label, shipped anyway), informal
requests by buyer message (open, cancelled), seller cancels with every CancelReason, partial cancels of
multi-item orders, Amazon's auto-cancels for missed ship-confirm, payment and fraud cancels, buyer
self-cancels while Pending, FBA orders, and requests after shipment. Each change reaches the API after a
lag (sometimes minutes: late updates) and its ORDER_CHANGE notification after another (sometimes out of
order, sometimes twice). The same seed gives the same world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from cancelguard.amazon.feed_xml import CancelReason
from cancelguard.simulator.scenario import MESSAGES
from cancelguard.simulator.spapi.world import (
    AMAZON,
    AMAZON_REASON_FRAUD,
    AMAZON_REASON_NOT_SHIPPED,
    AMAZON_REASON_PAYMENT,
    BUYER,
    BUYER_SELF_CANCEL_REASON,
    CANCELED,
    MARKETPLACES,
    MERCHANT,
    PARTIALLY_SHIPPED,
    PENDING,
    SHIPPED,
    UNSHIPPED,
    Buyer,
    BuyerMessage,
    ItemState,
    SellerAccount,
    SellerCancel,
    SimItem,
    SimOrder,
    Version,
    World,
)

# seller cancels cycle through every CancelReason of OrderAcknowledgement.xsd
CANCEL_REASONS = tuple(r.value for r in CancelReason)
BUYER_REASONS = (
    "Found cheaper somewhere else.",
    "Ordered by mistake",
    "Changed mind about purchase",
    "Delivery takes too long",
)

# story -> share of orders; the rest ship normally
STORY_MIX = {
    "fba": 0.08,
    "formal_request_cancelled": 0.05,
    "formal_request_open": 0.02,
    "formal_request_after_label": 0.015,
    "formal_request_shipped_anyway": 0.01,
    "informal_request_open": 0.015,
    "informal_request_cancelled": 0.015,
    "seller_cancelled": 0.035,
    "partial_seller_cancel": 0.015,
    "amazon_auto_cancel": 0.012,
    "amazon_fraud_cancel": 0.008,
    "payment_declined_pending": 0.012,
    "self_cancel_pending": 0.02,
    "request_after_shipment": 0.01,
}
SHIPPED_STORY = "shipped"

FIRST_NAMES = ("Alex", "Sam", "Robin", "Kim", "Jordan", "Taylor", "Mika", "Yuki")
LAST_NAMES = ("Example", "Sample", "Placeholder", "Testperson", "Fictional")
CITIES = {
    "US": ("Springfield", "IL"),
    "CA": ("Exampleton", "ON"),
    "GB": ("Sampleford", ""),
    "DE": ("Musterstadt", "BY"),
    "FR": ("Exempleville", ""),
    "JP": ("Tameshi-shi", "Tokyo"),
    "IN": ("Udaharan", "MH"),
}
PRICES = {
    "USD": (8, 120),
    "CAD": (10, 150),
    "GBP": (6, 100),
    "EUR": (7, 110),
    "JPY": (900, 15000),
    "INR": (300, 9000),
}

DEFAULT_SELLERS = ("A1SIMSELLER01", "A2SIMSELLER02", "A3SIMSELLER03")
DEFAULT_MARKETPLACES = ("ATVPDKIKX0DER", "A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1VC38T7YXB528")


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    now: datetime  # purchases fall in the `days` before it; stories go on after it
    seed: int = 7
    days: int = 7
    sellers: tuple[str, ...] = DEFAULT_SELLERS
    marketplaces: tuple[str, ...] = DEFAULT_MARKETPLACES
    orders_per_day: int = 12  # per seller x marketplace, +-25%
    # nothing happens after this time (stories stop there): a world that a poller, given a few minutes
    # past it, can read completely, so that its truth is final (the demo)
    horizon: datetime | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("ScenarioSpec.now must be timezone-aware (UTC)")
        unknown = [m for m in self.marketplaces if m not in MARKETPLACES]
        if unknown:
            raise ValueError(
                f"the simulator does not know marketplaces {unknown}; known: {sorted(MARKETPLACES)}"
            )
        if self.days < 1 or self.orders_per_day < 1 or not self.sellers or not self.marketplaces:
            raise ValueError("a scenario needs at least one seller, marketplace, day and order per day")


def generate_world(spec: ScenarioSpec) -> World:
    rng = random.Random(spec.seed)
    world = World({s: SellerAccount(s, spec.marketplaces, f"Atzr|sim-refresh-{s}") for s in spec.sellers})
    reasons = _Cycle(CANCEL_REASONS)
    used_ids: set[str] = set()
    for seller in spec.sellers:
        for marketplace_id in spec.marketplaces:
            for day in range(spec.days):
                start = spec.now - timedelta(days=spec.days - day)
                count = max(1, round(spec.orders_per_day * rng.uniform(0.75, 1.25)))
                for _ in range(count):
                    purchased = (start + timedelta(seconds=rng.uniform(0, 86400))).replace(microsecond=0)
                    _Story(world, rng, reasons, used_ids, seller, marketplace_id, purchased).tell()
    if spec.horizon is not None:
        _stop_at(world, spec.horizon)
    return world


def _stop_at(world: World, horizon: datetime) -> None:
    for key, order in list(world.orders.items()):
        order.versions = [v for v in order.versions if v.at <= horizon]
        if not order.versions:
            del world.orders[key]
        elif order.label_at is not None and order.label_at > horizon:
            order.label_at = None
    world.messages = [m for m in world.messages if m.sent_at <= horizon]
    world.seller_cancels = [c for c in world.seller_cancels if c.submitted_at <= horizon]


class _Cycle:
    def __init__(self, values: tuple[str, ...]) -> None:
        self.values, self.n = values, 0

    def next(self) -> str:
        self.n += 1
        return self.values[(self.n - 1) % len(self.values)]


def _pick_story(rng: random.Random) -> str:
    roll = rng.random()
    for story, share in STORY_MIX.items():
        if roll < share:
            return story
        roll -= share
    return SHIPPED_STORY


class _Story:
    """Builds one order's versions as its story unfolds."""

    def __init__(
        self,
        world: World,
        rng: random.Random,
        reasons: _Cycle,
        used_ids: set[str],
        seller: str,
        marketplace_id: str,
        purchased: datetime,
    ) -> None:
        self.world, self.rng, self.reasons = world, rng, reasons
        self.market = MARKETPLACES[marketplace_id]
        self.story = _pick_story(rng)
        order_id = _order_id(rng)
        while order_id in used_ids:
            order_id = _order_id(rng)
        used_ids.add(order_id)
        n_items = 1 if rng.random() < 0.75 else rng.choice((2, 2, 3))
        if self.story == "partial_seller_cancel":
            n_items = max(2, n_items)
        low, high = PRICES[self.market.currency]
        items = tuple(
            SimItem(
                f"{rng.randint(10**13, 10**14 - 1)}",
                f"B0{rng.randint(10**7, 10**8 - 1)}",
                f"SKU-{rng.randint(1, 60):03d}",
                f"Simulated product {rng.randint(1, 999)}",
                rng.choice((1, 1, 1, 2)),
                f"{rng.uniform(low, high):.2f}"
                if self.market.currency != "JPY"
                else str(rng.randint(low, high)),
            )
            for _ in range(n_items)
        )
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, state = CITIES[self.market.country]
        buyer = Buyer(
            f"{first} {last}",
            f"{rng.getrandbits(48):012x}@marketplace.amazon.com",
            f"+0 555 01{rng.randint(0, 99):02d}",
            f"{rng.randint(1, 999)} Example Street",
            city,
            state,
            f"{rng.randint(10000, 99999)}",
            self.market.country,
        )
        self.order = SimOrder(
            seller,
            marketplace_id,
            order_id,
            "AFN" if self.story == "fba" else "MFN",
            purchased,
            purchased + timedelta(hours=rng.choice((24, 24, 48))) - timedelta(hours=20),
            purchased + timedelta(days=2),
            items,
            buyer,
            self.story,
            [],
            is_prime=rng.random() < 0.3,
        )
        self.items = [ItemState() for _ in items]
        self.status = PENDING

    # --- building blocks -----------------------------------------------------------------------------

    def _lag(self) -> timedelta:
        roll = self.rng.random()
        if roll < 0.85:
            return timedelta(seconds=self.rng.uniform(1, 60))
        if roll < 0.97:
            return timedelta(seconds=self.rng.uniform(60, 110))
        return timedelta(seconds=self.rng.uniform(180, 720))  # a late update: beyond the 2-minute rule

    def change(self, after: timedelta, *, change_type: str = "OrderStatusChange", reason: str = "") -> None:
        at = self.order.purchased_at + after
        self.order.versions.append(
            Version(
                at,
                at + self._lag(),
                self.status,
                tuple(self.items),
                change_type,
                reason or f"Order status changed to {self.status}",
            )
        )

    def ship(self, after: timedelta, which: list[int] | None = None) -> None:
        for i in which if which is not None else range(len(self.items)):
            if not self.items[i].cancelled_by:
                self.items[i] = _with(self.items[i], shipped=self.order.items[i].quantity)
        live = [i for i, s in enumerate(self.items) if not s.cancelled_by]
        done = [i for i in live if self.items[i].shipped >= self.order.items[i].quantity]
        self.status = SHIPPED if len(done) == len(live) else PARTIALLY_SHIPPED
        self.change(after)

    def cancel(self, after: timedelta, by: str, reason: str, which: list[int] | None = None) -> None:
        chosen = list(which if which is not None else range(len(self.items)))
        for i in chosen:
            self.items[i] = _with(self.items[i], cancelled_by=by, cancel_reason=reason)
        if all(s.cancelled_by for s in self.items):
            self.status = CANCELED
        self.change(
            after, reason="Order status changed to Canceled" if self.status == CANCELED else "Item cancelled"
        )
        if by == MERCHANT:
            o = self.order
            self.world.seller_cancels.append(
                SellerCancel(
                    o.seller_id,
                    o.marketplace_id,
                    o.amazon_order_id,
                    o.purchased_at + after,
                    reason,
                    tuple(o.items[i].order_item_id for i in chosen),
                )
            )

    def request(self, after: timedelta) -> None:
        reason = self.rng.choice(BUYER_REASONS)
        for i in range(len(self.items)):
            self.items[i] = _with(self.items[i], requested=True, request_reason=reason)
        self.change(after, change_type="BuyerRequestedChange", reason="Buyer Requested Cancel")

    def message(self, after: timedelta, asks_to_cancel: bool) -> None:
        texts = MESSAGES.get(self.market.language, MESSAGES["en"])
        o = self.order
        self.world.messages.append(
            BuyerMessage(
                f"msg-{o.amazon_order_id}-{int(after.total_seconds())}",
                o.seller_id,
                o.marketplace_id,
                o.amazon_order_id,
                o.purchased_at + after,
                texts[0 if asks_to_cancel else 1].format(order=o.amazon_order_id),
                asks_to_cancel,
            )
        )

    def label(self, after: timedelta) -> None:
        self.order.label_at = self.order.purchased_at + after

    # --- the stories -----------------------------------------------------------------------------------

    def tell(self) -> None:
        h, m, rng = timedelta(hours=1), timedelta(minutes=1), self.rng
        self.change(timedelta(0))  # Pending
        story = self.story
        if story == "self_cancel_pending":  # inside every marketplace's self-cancel window
            self.cancel(rng.uniform(1, 4) * m, BUYER, BUYER_SELF_CANCEL_REASON)
        elif story == "payment_declined_pending":
            self.cancel(rng.uniform(20, 28) * m, AMAZON, AMAZON_REASON_PAYMENT)
        else:
            self.status = UNSHIPPED
            self.change(35 * m)
            self._after_payment(story, h, rng)
        self.world.add(self.order)

    def _after_payment(self, story: str, h: timedelta, rng: random.Random) -> None:
        ship_at = rng.uniform(18, 30) * h
        if story in (SHIPPED_STORY, "fba"):
            if rng.random() < 0.1:
                self.message(rng.uniform(2, 12) * h, asks_to_cancel=False)  # a question, not a request
            if story == SHIPPED_STORY and rng.random() < 0.7:
                self.label(ship_at - 2 * h)
            if len(self.items) > 1 and rng.random() < 0.3:
                self.ship(ship_at, [0])
                self.ship(ship_at + rng.uniform(6, 20) * h)
            else:
                self.ship(ship_at)
        elif story == "formal_request_cancelled":
            requested = rng.uniform(1, 10) * h
            self.request(requested)
            self.cancel(requested + rng.uniform(0.5, 6) * h, MERCHANT, "BuyerCanceled")
        elif story == "formal_request_open":  # nobody acts: Amazon cancels it after the ship-by date
            self.request(rng.uniform(1, 10) * h)
            self.cancel(timedelta(days=5), AMAZON, AMAZON_REASON_NOT_SHIPPED)
        elif story == "formal_request_after_label":
            self.label(rng.uniform(2, 6) * h)
            self.request(rng.uniform(7, 12) * h)
            self.ship(ship_at)
        elif story == "formal_request_shipped_anyway":
            self.request(rng.uniform(1, 6) * h)
            self.ship(ship_at)
        elif story == "informal_request_open":  # the seller ships it anyway, later
            self.message(rng.uniform(1, 6) * h, asks_to_cancel=True)
            self.ship(ship_at + 10 * h)
        elif story == "informal_request_cancelled":
            asked = rng.uniform(1, 6) * h
            self.message(asked, asks_to_cancel=True)
            reason = "BuyerCanceled" if rng.random() < 0.5 else self.reasons.next()
            self.cancel(asked + rng.uniform(1, 4) * h, MERCHANT, reason)
        elif story == "seller_cancelled":
            self.cancel(rng.uniform(2, 20) * h, MERCHANT, self.reasons.next())
        elif story == "partial_seller_cancel":
            self.cancel(rng.uniform(2, 10) * h, MERCHANT, "NoInventory", [0])
            self.ship(ship_at)
        elif story == "amazon_auto_cancel":  # never ship-confirmed: latest ship date + 3 days
            self.cancel(timedelta(days=5) + rng.uniform(0, 6) * h, AMAZON, AMAZON_REASON_NOT_SHIPPED)
        elif story == "amazon_fraud_cancel":
            self.cancel(rng.uniform(1, 8) * h, AMAZON, AMAZON_REASON_FRAUD)
        elif story == "request_after_shipment":
            self.ship(ship_at)
            self.message(ship_at + rng.uniform(1, 10) * h, asks_to_cancel=True)
        else:
            raise AssertionError(f"story {story} has no script")


def _with(state: ItemState, **changes: object) -> ItemState:
    from dataclasses import replace

    return replace(state, **changes)  # type: ignore[arg-type]


def _order_id(rng: random.Random) -> str:
    return f"{rng.randint(111, 114)}-{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}"
