"""Folding events into an order: `apply(order, event) -> order`.

Events arrive at least once and out of order (polls, push notifications and report files overlap).
Every field of `Order` is merged with a join (min, max, union, or last-writer-wins on Amazon's own
timestamp with the event id as tie-break), so:
- applying an event twice changes nothing (idempotent);
- the final state does not depend on arrival order (commutative, associative);
- a status never moves backwards: the status register keeps the furthest lifecycle rank, and only
  between terminal statuses (Shipped vs Canceled) does the later Amazon timestamp decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from cancelguard.domain.model import (
    AttributionSource,
    CancellationRequested,
    FormalRequest,
    InformalRequest,
    Item,
    ItemCancellation,
    ItemObservation,
    Order,
    OrderEvent,
    OrderSnapshot,
    OrderStatus,
    RequestKind,
    SellerCancel,
    SellerCancellationSubmitted,
    ShippingLabelPurchased,
    Source,
    Stamp,
    Stamped,
    build_item,
    build_order,
    build_stamp,
    build_stamped,
)

T = TypeVar("T")

# How much to trust each way of knowing who cancelled an item: Amazon's own field beats our feed log.
_ATTRIBUTION_AUTHORITY = {
    AttributionSource.AMAZON_CANCELLED_BY: 3,
    AttributionSource.SELLER_FEED: 2,
    AttributionSource.STATUS_HISTORY: 1,
    AttributionSource.NONE: 0,
}


def apply(order: Order | None, event: OrderEvent) -> Order:
    """The order after `event`. `order` is None for an order not seen before."""
    if order is None:
        order = Order(key=event.key)
    elif order.key != event.key:
        raise ValueError(f"event {event.event_id} is for {event.key}, not {order.key}")
    body = event.body
    stamp = build_stamp(event.occurred_at, event.event_id)
    if isinstance(body, OrderSnapshot):
        return _apply_snapshot(order, body, stamp, event.source)
    if isinstance(body, CancellationRequested):
        return _apply_request(order, body, stamp, event.source)
    if isinstance(body, SellerCancellationSubmitted):
        cancel = SellerCancel(stamp.at, body.cancel_reason, tuple(sorted(body.order_item_ids)), body.feed_id)
        return _evolve(order, seller_cancels=_union(order.seller_cancels, (cancel,)))
    if isinstance(body, ShippingLabelPurchased):
        return _evolve(order, label_purchased_at=_min(order.label_purchased_at, stamp.at))
    raise TypeError(f"unknown event body {type(body).__name__}")


def fold(events: Iterable[OrderEvent], order: Order | None = None) -> Order | None:
    for event in events:
        order = apply(order, event)
    return order


def _evolve(order: Order, **changes: object) -> Order:
    """`dataclasses.replace` for the one hot type: a direct call, several times faster (the fold runs
    for every event)."""
    get = changes.get
    return build_order(
        order.key,
        get("channel_obs", order.channel_obs),  # type: ignore[arg-type]
        get("status_obs", order.status_obs),  # type: ignore[arg-type]
        get("ship_by_obs", order.ship_by_obs),  # type: ignore[arg-type]
        get("purchased_at", order.purchased_at),  # type: ignore[arg-type]
        get("seen_pending_at", order.seen_pending_at),  # type: ignore[arg-type]
        get("left_pending_at", order.left_pending_at),  # type: ignore[arg-type]
        get("canceled_at", order.canceled_at),  # type: ignore[arg-type]
        get("label_purchased_at", order.label_purchased_at),  # type: ignore[arg-type]
        get("order_formal_request", order.order_formal_request),  # type: ignore[arg-type]
        get("items", order.items),  # type: ignore[arg-type]
        get("informal_requests", order.informal_requests),  # type: ignore[arg-type]
        get("seller_cancels", order.seller_cancels),  # type: ignore[arg-type]
    )


# --- joins ----------------------------------------------------------------------------------------


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _lww(a: Stamped[T] | None, b: Stamped[T] | None) -> Stamped[T] | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.stamp > a.stamp else a


def _status_join(
    a: Stamped[OrderStatus] | None, b: Stamped[OrderStatus] | None
) -> Stamped[OrderStatus] | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if (b.value.rank, b.stamp) > (a.value.rank, a.stamp) else a


def _union(a: tuple[T, ...], b: tuple[T, ...]) -> tuple[T, ...]:
    if all(x in a for x in b):
        return a
    return tuple(sorted(set(a) | set(b)))  # type: ignore[type-var]


def _join_optional(a: T | None, b: T | None, join: Callable[[T, T], T]) -> T | None:
    if a is None:
        return b
    if b is None:
        return a
    return join(a, b)


def _join_request(a: FormalRequest, b: FormalRequest) -> FormalRequest:
    flag = _lww(a.flag, b.flag)
    assert flag is not None
    return FormalRequest(
        flag=flag,
        first_requested_at=_min(a.first_requested_at, b.first_requested_at),
        reason=_lww(a.reason, b.reason),
        sources=a.sources | b.sources,
    )


def _join_cancellation(a: ItemCancellation, b: ItemCancellation) -> ItemCancellation:
    rank_a = (_ATTRIBUTION_AUTHORITY[a.source], a.stamp)
    rank_b = (_ATTRIBUTION_AUTHORITY[b.source], b.stamp)
    return b if rank_b > rank_a else a


def _join_item(a: Item, b: Item) -> Item:
    qa, qb = a.quantity_shipped, b.quantity_shipped
    return build_item(
        a.order_item_id,
        _lww(a.seller_sku, b.seller_sku),
        _join_optional(a.quantity_ordered, b.quantity_ordered, max),
        qb if qb > qa else qa,
        _join_optional(a.formal_request, b.formal_request, _join_request),
        _join_optional(a.cancellation, b.cancellation, _join_cancellation),
    )


def _merged_items(order: Order, new_items: Iterable[Item]) -> dict[str, Item]:
    items = dict(order.items)
    for item in new_items:
        old = items.get(item.order_item_id)
        items[item.order_item_id] = item if old is None else _join_item(old, item)
    return items


# --- event bodies ---------------------------------------------------------------------------------


def _formal_request(flag: bool, reason: str, stamp: Stamp, source: Source) -> FormalRequest:
    return FormalRequest(
        flag=Stamped(flag, stamp),
        first_requested_at=stamp.at if flag else None,
        reason=Stamped(reason, stamp) if reason else None,
        sources=frozenset((source,)),
    )


def _item_from_observation(obs: ItemObservation, stamp: Stamp, source: Source) -> Item:
    request = None
    if obs.buyer_requested_cancel is not None:
        request = _formal_request(obs.buyer_requested_cancel, obs.buyer_cancel_reason, stamp, source)
    cancellation = None
    if obs.cancelled_by is not None:
        cancellation = ItemCancellation(
            obs.cancelled_by, obs.cancel_reason, stamp, AttributionSource.AMAZON_CANCELLED_BY
        )
    return build_item(
        obs.order_item_id,
        build_stamped(obs.seller_sku, stamp) if obs.seller_sku else None,
        obs.quantity_ordered,
        obs.quantity_shipped or 0,
        request,
        cancellation,
    )


def _apply_snapshot(order: Order, snap: OrderSnapshot, stamp: Stamp, source: Source) -> Order:
    at = stamp.at
    status = snap.status
    seen_pending_at = order.seen_pending_at
    left_pending_at = order.left_pending_at
    canceled_at = order.canceled_at
    status_obs = order.status_obs
    if status is not None:
        if status.is_pending:
            seen_pending_at = _min(seen_pending_at, at)
        elif status is OrderStatus.CANCELED:
            canceled_at = _min(canceled_at, at)
        elif status is not OrderStatus.UNFULFILLABLE:
            left_pending_at = _min(left_pending_at, at)
        status_obs = _status_join(status_obs, build_stamped(status, stamp))
    items = order.items
    if snap.items:
        if any((i.quantity_shipped or 0) > 0 for i in snap.items):
            left_pending_at = _min(left_pending_at, at)
        items = _merged_items(order, [_item_from_observation(o, stamp, source) for o in snap.items])
    # the registers, joined with _lww's rule without building a value that loses
    channel_obs, ship_by_obs = order.channel_obs, order.ship_by_obs
    if snap.channel is not None and (channel_obs is None or stamp > channel_obs.stamp):
        channel_obs = build_stamped(snap.channel, stamp)
    if snap.latest_ship_at is not None and (ship_by_obs is None or stamp > ship_by_obs.stamp):
        ship_by_obs = build_stamped(snap.latest_ship_at, stamp)
    return build_order(
        order.key,
        channel_obs,
        status_obs,
        ship_by_obs,
        _min(order.purchased_at, snap.purchased_at),
        seen_pending_at,
        left_pending_at,
        canceled_at,
        order.label_purchased_at,
        order.order_formal_request,
        items,
        order.informal_requests,
        order.seller_cancels,
    )


def _apply_request(order: Order, body: CancellationRequested, stamp: Stamp, source: Source) -> Order:
    if body.kind is RequestKind.INFORMAL:
        request = InformalRequest(
            stamp.at, body.message_id or stamp.event_id, body.language, tuple(sorted(body.order_item_ids))
        )
        return _evolve(order, informal_requests=_union(order.informal_requests, (request,)))
    formal = _formal_request(True, body.reason, stamp, source)
    if not body.order_item_ids:
        joined = _join_optional(order.order_formal_request, formal, _join_request)
        return _evolve(order, order_formal_request=joined)
    items = _merged_items(order, (Item(order_item_id=i, formal_request=formal) for i in body.order_item_ids))
    return _evolve(order, items=items)
