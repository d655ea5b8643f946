"""A demo scenario: realistic order flows for a few seller accounts and marketplaces.

Each order follows one story (shipped, formal request then cancelled, informal request by message, out of
stock, buyer self-cancel while Pending, FBA, ...). The scenario renders what Amazon and the helpdesk
would send (ORDER_CHANGE notifications, buyer messages) and keeps its own ground truth: the CR each
(seller account, marketplace) should show in the live window, counted from the stories alone, without
the domain code, so tests can check the pipeline against it.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cancelguard.simulator.order_change import NotificationItem, amazon_time, order_change_notification


class Story(enum.Enum):
    SHIPPED = "shipped"
    UNSHIPPED = "unshipped"  # recent, not shipped yet
    FORMAL_REQUEST_CANCELLED = "formal_request_cancelled"  # excluded from CR
    FORMAL_REQUEST_OPEN = "formal_request_open"  # action: cancel with BuyerCanceled
    INFORMAL_REQUEST_OPEN = "informal_request_open"  # action: ask for a formal request
    INFORMAL_REQUEST_CANCELLED = "informal_request_cancelled"  # counted
    SELLER_CANCELLED = "seller_cancelled"  # out of stock: counted
    SELF_CANCEL_PENDING = "self_cancel_pending"  # excluded, not in the denominator
    REQUEST_AFTER_SHIPMENT = "request_after_shipment"  # action: advise a return
    FBA = "fba"  # AFN: not in CR


COUNTED = {Story.INFORMAL_REQUEST_CANCELLED, Story.SELLER_CANCELLED}
NOT_IN_DENOMINATOR = {Story.SELF_CANCEL_PENDING, Story.FBA}
OPEN_REQUESTS = {Story.FORMAL_REQUEST_OPEN, Story.INFORMAL_REQUEST_OPEN}


@dataclass(frozen=True, slots=True)
class Shop:
    seller_id: str
    marketplace_id: str
    orders: int
    # share of orders per story; the rest ship normally
    mix: dict[Story, float]
    language: str


DEFAULT_SHOPS = (
    Shop(
        "A1DEMOSELLERUS",
        "ATVPDKIKX0DER",
        400,
        {
            Story.SELLER_CANCELLED: 0.010,
            Story.INFORMAL_REQUEST_CANCELLED: 0.005,
            Story.FORMAL_REQUEST_CANCELLED: 0.03,
            Story.FORMAL_REQUEST_OPEN: 0.01,
            Story.INFORMAL_REQUEST_OPEN: 0.01,
            Story.SELF_CANCEL_PENDING: 0.02,
            Story.REQUEST_AFTER_SHIPMENT: 0.005,
            Story.FBA: 0.10,
            Story.UNSHIPPED: 0.05,
        },
        "en",
    ),
    Shop(
        "A1DEMOSELLERUS",
        "A1PA6795UKMFR9",
        200,
        {
            Story.SELLER_CANCELLED: 0.02,
            Story.INFORMAL_REQUEST_CANCELLED: 0.005,
            Story.FORMAL_REQUEST_CANCELLED: 0.02,
            Story.FORMAL_REQUEST_OPEN: 0.01,
            Story.INFORMAL_REQUEST_OPEN: 0.015,
            Story.SELF_CANCEL_PENDING: 0.02,
            Story.FBA: 0.05,
            Story.UNSHIPPED: 0.05,
        },
        "de",
    ),
    Shop(
        "A2DEMOSELLERJP",
        "A1VC38T7YXB528",
        150,
        {
            Story.SELLER_CANCELLED: 0.02,
            Story.FORMAL_REQUEST_CANCELLED: 0.04,
            Story.INFORMAL_REQUEST_OPEN: 0.02,
            Story.SELF_CANCEL_PENDING: 0.02,
            Story.UNSHIPPED: 0.05,
        },
        "ja",
    ),
)

MESSAGES = {
    "en": (
        "Hi, please cancel my order {order}, I ordered the wrong size. Thanks",
        "Where is my package? Order {order} was supposed to arrive yesterday.",
    ),
    "de": (
        "Hallo, bitte stornieren Sie meine Bestellung {order}. Danke!",
        "Wann wird meine Bestellung {order} geliefert?",
    ),
    "ja": ("注文{order}をキャンセルしてください。よろしくお願いします。", "注文{order}はいつ届きますか？"),
}


@dataclass(frozen=True, slots=True)
class Expected:
    """Ground truth for one seller account x marketplace, from the stories alone."""

    orders: int  # denominator
    cancellations: int  # numerator
    open_requests: int


@dataclass
class Scenario:
    notifications: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    stories: dict[tuple[str, str, str], Story] = field(default_factory=dict)  # (seller, mkt, order) -> story

    def expected(self) -> dict[tuple[str, str], Expected]:
        """Live-window truth: every demo order is placed within the last 168 hours."""
        per: dict[tuple[str, str], Counter[str]] = {}
        for (seller, mkt, _), story in self.stories.items():
            c = per.setdefault((seller, mkt), Counter())
            if story not in NOT_IN_DENOMINATOR:
                c["orders"] += 1
            if story in COUNTED:
                c["cancellations"] += 1
            if story in OPEN_REQUESTS:
                c["open"] += 1
        return {k: Expected(c["orders"], c["cancellations"], c["open"]) for k, c in per.items()}


def _order_id(rng: random.Random) -> str:
    return f"{rng.randint(111, 114)}-{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}"


def generate(now: datetime, *, seed: int = 7, shops: tuple[Shop, ...] = DEFAULT_SHOPS) -> Scenario:
    """Orders purchased between 6.5 days and 2 hours ago, with every event at or before `now`."""
    rng = random.Random(seed)
    scenario = Scenario()
    for shop in shops:
        stories = []
        for story, share in shop.mix.items():
            stories += [story] * round(shop.orders * share)
        stories += [Story.SHIPPED] * (shop.orders - len(stories))
        rng.shuffle(stories)
        for story in stories:
            _render(scenario, shop, story, now, rng)
    return scenario


def _render(scenario: Scenario, shop: Shop, story: Story, now: datetime, rng: random.Random) -> None:
    order_id = _order_id(rng)
    while (shop.seller_id, shop.marketplace_id, order_id) in scenario.stories:
        order_id = _order_id(rng)
    scenario.stories[(shop.seller_id, shop.marketplace_id, order_id)] = story

    recent = story in (Story.UNSHIPPED, Story.FORMAL_REQUEST_OPEN, Story.INFORMAL_REQUEST_OPEN)
    age = timedelta(hours=rng.uniform(2, 20)) if recent else timedelta(hours=rng.uniform(30, 156))
    purchased = (now - age).replace(microsecond=0)
    ship_by = purchased + timedelta(days=2)
    n_items = 1 if rng.random() < 0.8 else 2
    items = [
        NotificationItem(
            f"{rng.randint(10**13, 10**14 - 1)}", f"SKU-{rng.randint(1, 40):03d}", rng.choice((1, 1, 1, 2))
        )
        for _ in range(n_items)
    ]
    channel = "AFN" if story is Story.FBA else "MFN"

    def notify(
        at: timedelta,
        status: str,
        *,
        requested: bool = False,
        shipped: bool = False,
        change: str = "OrderStatusChange",
        reason: str = "",
    ) -> None:
        when = purchased + at
        assert when <= now, "a scenario event in the future"
        scenario.notifications.append(
            order_change_notification(
                seller_id=shop.seller_id,
                amazon_order_id=order_id,
                marketplace_id=shop.marketplace_id,
                change_type=change,
                change_reason=reason or f"Order status changed to {status}",
                time_of_change=when,
                order_status=status,
                purchase_date=purchased,
                fulfillment_type=channel,
                latest_ship_date=ship_by,
                items=[
                    NotificationItem(
                        i.order_item_id, i.seller_sku, i.quantity, i.quantity if shipped else 0, requested
                    )
                    for i in items
                ],
            )
        )

    def message(at: timedelta, asks_to_cancel: bool) -> None:
        text = MESSAGES[shop.language][0 if asks_to_cancel else 1].format(order=order_id)
        scenario.messages.append(
            {
                "message_id": f"msg-{order_id}-{int(at.total_seconds())}",
                "seller_account": shop.seller_id,
                "marketplace_id": shop.marketplace_id,
                "amazon_order_id": order_id,
                "sent_at": amazon_time(purchased + at),
                "text": text,
            }
        )

    notify(timedelta(0), "Pending")
    if story is Story.SELF_CANCEL_PENDING:
        notify(timedelta(minutes=10), "Canceled")
        return
    notify(timedelta(minutes=35), "Unshipped")
    h = timedelta(hours=1)
    if story is Story.SHIPPED or story is Story.FBA:
        if rng.random() < 0.1:
            message(20 * h, asks_to_cancel=False)  # a question, not a request
        notify(24 * h, "Shipped", shipped=True)
    elif story is Story.FORMAL_REQUEST_CANCELLED:
        notify(
            3 * h, "Unshipped", requested=True, change="BuyerRequestedChange", reason="Buyer Requested Cancel"
        )
        notify(5 * h, "Canceled", requested=True)
    elif story is Story.FORMAL_REQUEST_OPEN:
        notify(
            1 * h, "Unshipped", requested=True, change="BuyerRequestedChange", reason="Buyer Requested Cancel"
        )
    elif story is Story.INFORMAL_REQUEST_OPEN:
        message(1 * h, asks_to_cancel=True)
    elif story is Story.INFORMAL_REQUEST_CANCELLED:
        message(2 * h, asks_to_cancel=True)
        notify(4 * h, "Canceled")
    elif story is Story.SELLER_CANCELLED:
        notify(6 * h, "Canceled")
    elif story is Story.REQUEST_AFTER_SHIPMENT:
        notify(24 * h, "Shipped", shipped=True)
        message(26 * h, asks_to_cancel=True)
