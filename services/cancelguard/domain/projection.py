"""What-if and roll-off: the rate if some orders were cancelled, and when counted cancellations leave.

- `what_if`: cancel these orders with this reason now: what does the window become?
- `roll_off`: for the current window, when each counted cancellation leaves it, and the first day the
  rate is back under the warning level and under Amazon's threshold. Future days are assumed to bring no
  new cancellations and the current window's average daily order volume (or the volume given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from cancelguard.domain.attribution import Attribution, attribute, contribution
from cancelguard.domain.lifecycle import apply
from cancelguard.domain.model import (
    Order,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    SellerCancellationSubmitted,
    Source,
)
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.windows import (
    BUCKET,
    DAY,
    Bucket,
    CancellationRate,
    RateStatus,
    Window,
    WindowKind,
    bucket_start,
    cancellation_rate,
    day_start,
    rate_status,
    utc,
    window_for,
)


@dataclass(frozen=True, slots=True)
class OrderEffect:
    key: OrderKey
    before: Attribution
    after: Attribution
    numerator_delta: int  # -1, 0 or +1 in the window
    denominator_delta: int
    explanation: str
    in_window: bool  # the order lies in the window (else the cancel changes another window)
    counts: bool  # the cancel would count against the seller, in whatever window the order lies


@dataclass(frozen=True, slots=True)
class WhatIf:
    current: CancellationRate
    projected: CancellationRate
    effects: tuple[OrderEffect, ...]


def simulate_seller_cancel(order: Order, cancel_reason: str, at: datetime) -> Order:
    """The order as it would be if the seller cancelled it now and Amazon confirmed it."""
    feed = OrderEvent(
        f"what-if:feed:{order.key.amazon_order_id}",
        order.key,
        Source.SELLER,
        at,
        at,
        SellerCancellationSubmitted(cancel_reason),
    )
    confirmed = OrderEvent(
        f"what-if:status:{order.key.amazon_order_id}",
        order.key,
        Source.SELLER,
        at,
        at,
        OrderSnapshot(status=OrderStatus.CANCELED),
    )
    return apply(apply(order, feed), confirmed)


def what_if(
    current: CancellationRate,
    orders: Sequence[Order],
    *,
    cancel_reason: str,
    at: datetime,
    policy: CancellationPolicy,
) -> WhatIf:
    window = current.window
    numerator, denominator = current.numerator, current.denominator
    effects = []
    seen: set[OrderKey] = set()
    for order in orders:
        if order.key in seen:  # an order listed twice is still cancelled once
            continue
        seen.add(order.key)
        before = attribute(order, policy)
        old = contribution(order, policy, before)
        if order.is_shipped or order.has_label or order.is_canceled or order.is_pending:
            why = (
                "already cancelled"
                if order.is_canceled
                else "Pending: the seller cannot cancel it"
                if order.is_pending
                else "shipped or labelled: it cannot be cancelled, only refunded"
            )
            inside = bool(_in(window, old.denominator_at or old.numerator_at))
            effects.append(OrderEffect(order.key, before, before, 0, 0, why, inside, False))
            continue
        simulated = simulate_seller_cancel(order, cancel_reason, utc(at))
        after = attribute(simulated, policy)
        new = contribution(simulated, policy, after)
        dn = _in(window, new.numerator_at) - _in(window, old.numerator_at)
        dd = _in(window, new.denominator_at) - _in(window, old.denominator_at)
        numerator += dn
        denominator += dd
        placed = new.numerator_at or new.denominator_at
        inside = bool(_in(window, placed))
        explanation = after.explanation
        if placed is None:
            explanation += "; the order is in no Cancellation Rate window, so no window changes"
        elif not inside:
            explanation += (
                f"; the order lies outside this window (it is counted in the hour of "
                f"{utc(placed):%Y-%m-%d %H:00} UTC), so this window does not change"
            )
        effects.append(OrderEffect(order.key, before, after, dn, dd, explanation, inside, after.counts))
    projected = CancellationRate(window, numerator, denominator, rate_status(numerator, denominator, policy))
    return WhatIf(current, projected, tuple(effects))


def _in(window: Window, ts: datetime | None) -> int:
    return 1 if ts is not None and ts in window else 0


# --- roll-off -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountedCancellation:
    amazon_order_id: str
    at: datetime  # the time that places it in windows (its contribution's numerator_at)


@dataclass(frozen=True, slots=True)
class Leaving:
    amazon_order_id: str
    at: datetime
    leaves_on: datetime  # the first moment a window computed then no longer holds it


@dataclass(frozen=True, slots=True)
class RollOffDay:
    day: date
    rate: CancellationRate


@dataclass(frozen=True, slots=True)
class RollOff:
    current: CancellationRate
    leaving: tuple[Leaving, ...]
    days: tuple[RollOffDay, ...]
    under_warning_on: date | None  # None: not within the horizon
    under_threshold_on: date | None
    assumed_daily_orders: Decimal


def leaves_window_at(
    kind: WindowKind, ts: datetime, policy: CancellationPolicy, days: int | None = None
) -> datetime:
    """The first `as_of` whose window no longer contains `ts`."""
    if kind is WindowKind.LIVE:
        return bucket_start(ts) + policy.live_window_hours * BUCKET
    days = days or policy.primary_window_days
    return day_start(ts) + (days + policy.amazon_window_lag_days + 1) * DAY


def roll_off(
    as_of: datetime,
    buckets: Sequence[Bucket],
    counted: Sequence[CountedCancellation],
    policy: CancellationPolicy,
    *,
    kind: WindowKind = WindowKind.AMAZON_ALIGNED,
    days: int | None = None,
    expected_daily_orders: Decimal | None = None,
) -> RollOff:
    as_of = utc(as_of)
    current_window = window_for(kind, as_of, policy, days)
    current = cancellation_rate(current_window, buckets, policy)
    window_days = Decimal((current_window.end - current_window.start) / DAY)
    if expected_daily_orders is None:
        expected_daily_orders = (Decimal(current.denominator) / window_days) if window_days else Decimal(0)
    known_until = bucket_start(as_of) + BUCKET  # buckets from here on are the future

    leaving = tuple(
        sorted(
            (
                Leaving(c.amazon_order_id, c.at, leaves_window_at(kind, c.at, policy, days))
                for c in counted
                if utc(c.at) in current_window
            ),
            key=lambda x: (x.leaves_on, x.amazon_order_id),
        )
    )

    def projected(moment: datetime) -> CancellationRate:
        window = window_for(kind, moment, policy, days)
        past = cancellation_rate(window, (b for b in buckets if b.start < known_until), policy)
        future_hours = max(timedelta(0), window.end - max(window.start, known_until)) / BUCKET
        expected = expected_daily_orders * Decimal(future_hours) / 24
        future_orders = int(expected.to_integral_value(ROUND_HALF_UP))
        denominator = past.denominator + future_orders
        return CancellationRate(
            window, past.numerator, denominator, rate_status(past.numerator, denominator, policy)
        )

    horizon = int(window_days) + policy.amazon_window_lag_days + 2
    projected_days = tuple(
        RollOffDay((as_of + step * DAY).date(), projected(as_of + step * DAY)) for step in range(horizon + 1)
    )
    # An Amazon-aligned window changes once a day, so the daily samples are exact; a live window changes
    # every hour, so look hour by hour for the first moment it is under.
    if kind is WindowKind.LIVE:
        first_hour = bucket_start(as_of) + BUCKET
        checks = [(as_of, projected_days[0].rate)] + [
            (first_hour + i * BUCKET, projected(first_hour + i * BUCKET)) for i in range(horizon * 24)
        ]
    else:
        checks = [(as_of + step * DAY, d.rate) for step, d in enumerate(projected_days)]
    under_warning = under_threshold = None
    for moment, rate in checks:
        if under_threshold is None and rate.status is not RateStatus.AT_RISK:
            under_threshold = moment.date()
        if under_warning is None and rate.status is RateStatus.GOOD:
            under_warning = moment.date()
    return RollOff(current, leaving, projected_days, under_warning, under_threshold, expected_daily_orders)
