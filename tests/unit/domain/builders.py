"""Terse builders for order events and orders, so each test reads as the order's story.

    o = OrderStory().pending(M(0)).unshipped(H(1)).formal(H(2)).seller_cancel(H(3)).canceled(H(4))
    order = o.order()

Times are offsets from the purchase time; Amazon's time (`occurred_at`) is what the domain orders by, so
`observed_at` defaults to a fixed, unrelated arrival time unless a test sets it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cancelguard.domain.attribution import contribution
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import (
    CancellationRequested,
    CancelledBy,
    Channel,
    EventBody,
    ItemObservation,
    Order,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    RequestKind,
    SellerCancellationSubmitted,
    ShippingLabelPurchased,
    Source,
)
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.windows import Bucket, bucket_start

US = "ATVPDKIKX0DER"
DE = "A1PA6795UKMFR9"
FR = "A13V1IB3VIYZZH"
JP = "A1VC38T7YXB528"
IN = "A21TJRUUN4KGV"
UK = "A1F83G8C2ARO7P"
SELLER = "A3TH9S8BH6GOGM"

# A Monday, so that windows in tests are easy to read.
T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
ARRIVAL = datetime(2030, 1, 1, tzinfo=UTC)  # arrival time far from Amazon's: it must never matter


def M(n: float) -> timedelta:
    return timedelta(minutes=n)


def H(n: float) -> timedelta:
    return timedelta(hours=n)


def D(n: float) -> timedelta:
    return timedelta(days=n)


_0M, _1H, _2H, _3H, _5H, _1D = M(0), H(1), H(2), H(3), H(5), D(1)  # default offsets in the stories


def key(order_id: str = "111-0000001-0000001", marketplace_id: str = US, seller: str = SELLER) -> OrderKey:
    return OrderKey(seller, marketplace_id, order_id)


@dataclass
class OrderStory:
    """The events of one order, in the order the test writes them."""

    order_id: str = "111-0000001-0000001"
    marketplace_id: str = US
    purchased_at: datetime = T0
    channel: Channel = Channel.MFN
    items: tuple[str, ...] = ("ITEM-1",)
    skus: dict[str, str] = field(default_factory=dict)  # item id -> SKU (default SKU-<item id>)
    events: list[OrderEvent] = field(default_factory=list)

    @property
    def key(self) -> OrderKey:
        return key(self.order_id, self.marketplace_id)

    def _add(
        self,
        body: EventBody,
        at: timedelta,
        source: Source,
        event_id: str | None = None,
        observed_at: datetime | None = None,
    ) -> OrderStory:
        eid = event_id or f"{self.order_id}:{len(self.events)}"
        self.events.append(
            OrderEvent(eid, self.key, source, self.purchased_at + at, observed_at or ARRIVAL, body)
        )
        return self

    def item_obs(self, **kw: object) -> tuple[ItemObservation, ...]:
        return tuple(
            ItemObservation(i, seller_sku=self.skus.get(i, f"SKU-{i}"), quantity_ordered=1, **kw)
            for i in self.items
        )  # type: ignore[arg-type]

    # --- Amazon's word on the order ---

    def snapshot(
        self,
        status: OrderStatus | None,
        at: timedelta,
        *,
        source: Source = Source.ORDERS_V0,
        items: tuple[ItemObservation, ...] | None = None,
        channel: Channel | None = None,
        event_id: str | None = None,
        observed_at: datetime | None = None,
        latest_ship_at: datetime | None = None,
    ) -> OrderStory:
        body = OrderSnapshot(
            status=status,
            channel=channel or self.channel,
            purchased_at=self.purchased_at,
            latest_ship_at=latest_ship_at,
            items=self.item_obs() if items is None else items,
        )
        return self._add(body, at, source, event_id, observed_at)

    def pending(self, at: timedelta = _0M, **kw: object) -> OrderStory:
        return self.snapshot(OrderStatus.PENDING, at, **kw)  # type: ignore[arg-type]

    def unshipped(self, at: timedelta = _1H, **kw: object) -> OrderStory:
        return self.snapshot(OrderStatus.UNSHIPPED, at, **kw)  # type: ignore[arg-type]

    def shipped(self, at: timedelta = _1D, **kw: object) -> OrderStory:
        items = tuple(
            ItemObservation(
                i, seller_sku=self.skus.get(i, f"SKU-{i}"), quantity_ordered=1, quantity_shipped=1
            )
            for i in self.items
        )
        kw.setdefault("items", items)
        return self.snapshot(OrderStatus.SHIPPED, at, **kw)  # type: ignore[arg-type]

    def canceled(self, at: timedelta = _5H, **kw: object) -> OrderStory:
        return self.snapshot(OrderStatus.CANCELED, at, **kw)  # type: ignore[arg-type]

    def canceled_v2026(
        self,
        by: CancelledBy,
        reason: str,
        at: timedelta = _5H,
        *,
        status: OrderStatus = OrderStatus.CANCELED,
        items: tuple[str, ...] | None = None,
        requested: bool | None = None,
    ) -> OrderStory:
        """Orders API v2026-01-01 with includedData=CANCELLATION: who cancelled each (given) item."""
        cancelled = self.items if items is None else items
        obs = tuple(
            ItemObservation(
                i,
                seller_sku=self.skus.get(i, f"SKU-{i}"),
                quantity_ordered=1,
                buyer_requested_cancel=requested,
                cancelled_by=by if i in cancelled else None,
                cancel_reason=reason if i in cancelled else "",
            )
            for i in self.items
        )
        return self.snapshot(status, at, source=Source.ORDERS_V2026, items=obs)

    # --- requests, our feeds, labels ---

    def formal(
        self,
        at: timedelta = _2H,
        *,
        items: tuple[str, ...] | None = None,
        reason: str = "",
        source: Source = Source.ORDER_CHANGE,
    ) -> OrderStory:
        body = CancellationRequested(RequestKind.FORMAL, self.items if items is None else items, reason)
        return self._add(body, at, source)

    def flag(
        self,
        value: bool,
        at: timedelta,
        *,
        item: str | None = None,
        reason: str = "",
        source: Source = Source.ORDERS_V0,
        status: OrderStatus | None = None,
    ) -> OrderStory:
        """v0 getOrderItems: IsBuyerRequestedCancel for one item (may flip back to false)."""
        obs = (
            ItemObservation(item or self.items[0], buyer_requested_cancel=value, buyer_cancel_reason=reason),
        )
        return self.snapshot(status, at, source=source, items=obs)

    def informal(self, at: timedelta = _2H, *, language: str = "", message_id: str = "") -> OrderStory:
        body = CancellationRequested(RequestKind.INFORMAL, (), "", language, message_id or f"msg-{at}")
        return self._add(body, at, Source.BUYER_MESSAGE)

    def seller_cancel(
        self, at: timedelta = _3H, reason: str = "NoInventory", *, items: tuple[str, ...] = ()
    ) -> OrderStory:
        return self._add(SellerCancellationSubmitted(reason, items, f"feed-{at}"), at, Source.SELLER)

    def label(self, at: timedelta = _3H) -> OrderStory:
        return self._add(ShippingLabelPurchased(), at, Source.SELLER)

    # --- results ---

    def order(self) -> Order:
        result = fold(self.events)
        assert result is not None
        return result


def story(**kw: object) -> OrderStory:
    return OrderStory(**kw)  # type: ignore[arg-type]


def buckets_of(orders: Iterable[Order], policy: CancellationPolicy) -> list[Bucket]:
    """Hourly buckets from each order's contribution, as the metrics store keeps them."""
    counts: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    for order in orders:
        share = contribution(order, policy)
        if share.denominator_at is not None:
            counts[bucket_start(share.denominator_at)][0] += 1
        if share.numerator_at is not None:
            counts[bucket_start(share.numerator_at)][1] += 1
    return [Bucket(start, d, n) for start, (d, n) in sorted(counts.items())]
