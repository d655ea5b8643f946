"""Where an order stands in the numbers: which hour buckets count it, what request is open, which SKUs
it cancelled. The store keeps this beside the order's state, so that reads never re-attribute and a
change of an order moves exactly one count out of its old bucket and into its new one.

`place(order, policy)` is the only place the store learns an order's attribution; `bucket_moves` is the
only rule for how counts move when an order changes. Both are pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from cancelguard.domain.attribution import Attribution, attribute, contribution
from cancelguard.domain.model import CancelledBy, Channel, Order
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.requests import OpenRequest, open_request
from cancelguard.domain.windows import bucket_start


@dataclass(frozen=True, slots=True)
class Buckets:
    """The hour buckets an order is counted in (None: not in that part of the rate)."""

    denominator: datetime | None
    numerator: datetime | None


NOT_COUNTED = Buckets(None, None)


@dataclass(frozen=True, slots=True)
class Placement:
    buckets: Buckets
    open_request: OpenRequest | None
    skus: tuple[str, ...]  # every SKU of the order (suppression risk looks at consecutive orders of one)
    seller_cancelled_skus: tuple[str, ...]  # those the seller cancelled (a subset)
    purchased_at: datetime | None


def seller_cancelled_skus(order: Order, attribution: Attribution) -> tuple[str, ...]:
    """The SKUs of an order the seller cancelled: all of them for a whole-order cancel that counts; in a
    partial cancel only the cancelled items' SKUs (and not those the buyer cancelled)."""
    if not attribution.counts:
        return ()
    return tuple(
        sorted(
            {
                item.sku
                for item in order.items.values()
                if item.sku
                and (
                    order.is_canceled
                    or (
                        item.cancellation is not None
                        and item.cancellation.cancelled_by is not CancelledBy.BUYER
                    )
                )
            }
        )
    )


def place(order: Order, policy: CancellationPolicy) -> Placement:
    attribution = attribute(order, policy)
    where = contribution(order, policy, attribution)
    buckets = Buckets(
        bucket_start(where.denominator_at) if where.denominator_at else None,
        bucket_start(where.numerator_at) if where.numerator_at else None,
    )
    # suppression risk looks at the seller's own (MFN) orders with a purchase date only
    in_scope = order.channel is Channel.MFN and order.purchased_at is not None
    skus = tuple(sorted({i.sku for i in order.items.values() if i.sku})) if in_scope else ()
    return Placement(
        buckets, open_request(order), skus, seller_cancelled_skus(order, attribution), order.purchased_at
    )


@dataclass(frozen=True, slots=True)
class BucketMove:
    """Add `orders` and `cancellations` (each -1, 0 or +1) to the bucket starting at `start`."""

    start: datetime
    orders: int
    cancellations: int


def bucket_moves(before: Buckets, after: Buckets) -> Iterator[BucketMove]:
    """The counts to move when an order goes from `before` to `after` (NOT_COUNTED for a new order)."""
    if before.denominator != after.denominator:
        if before.denominator is not None:
            yield BucketMove(before.denominator, -1, 0)
        if after.denominator is not None:
            yield BucketMove(after.denominator, 1, 0)
    if before.numerator != after.numerator:
        if before.numerator is not None:
            yield BucketMove(before.numerator, 0, -1)
        if after.numerator is not None:
            yield BucketMove(after.numerator, 0, 1)
