"""CR windows computed from time buckets.

Orders are counted in hourly buckets keyed by purchase time (see attribution.contribution), per seller
account x marketplace. A window's rate is a sum over its buckets, so a late cancel changes exactly the past
windows it belongs to, and reading a rate costs the same however many orders there are.

- Amazon-aligned window: N whole UTC days (7 by default), ending `lag` days before today, as
  GET_V2_SELLER_PERFORMANCE_REPORT reports it (e.g. 2020-11-12T00:00Z .. 2020-11-18T23:59Z).
- Live window: the last 168 hours, in whole hours (the current hour included), for early warning.

All times are UTC; naive datetimes are refused, so a seller's daylight-saving change cannot move a window.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cancelguard.domain.model import InvalidInput
from cancelguard.domain.policy import CancellationPolicy

BUCKET = timedelta(hours=1)
DAY = timedelta(days=1)


class WindowKind(enum.Enum):
    AMAZON_ALIGNED = "AMAZON_ALIGNED"
    LIVE = "LIVE"


class RateStatus(enum.Enum):
    GOOD = "GOOD"
    WARNING = "WARNING"  # at or above the warning level
    AT_RISK = "AT_RISK"  # at or above Amazon's policy threshold: deactivation risk


@dataclass(frozen=True, slots=True)
class Window:
    kind: WindowKind
    start: datetime  # inclusive
    end: datetime  # exclusive

    def __contains__(self, ts: datetime) -> bool:
        return self.start <= ts < self.end

    @property
    def last_instant(self) -> datetime:
        """The end as Amazon prints it (23:59), for display."""
        return self.end - timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime  # hour-aligned UTC
    orders: int  # denominator
    cancellations: int  # numerator (counted cancellations)


@dataclass(frozen=True, slots=True)
class CancellationRate:
    window: Window
    numerator: int
    denominator: int
    status: RateStatus

    @property
    def rate(self) -> Decimal:
        return Decimal(self.numerator) / Decimal(self.denominator) if self.denominator else Decimal(0)


def utc(ts: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are an error, not a guess."""
    if ts.tzinfo is UTC:  # every stored and decoded time: no conversion
        return ts
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidInput(f"time {ts.isoformat()} has no time zone; cancelguard works in UTC")
    return ts.astimezone(UTC)


def bucket_start(ts: datetime) -> datetime:
    return utc(ts).replace(minute=0, second=0, microsecond=0)


def day_start(ts: datetime) -> datetime:
    return utc(ts).replace(hour=0, minute=0, second=0, microsecond=0)


def amazon_window(as_of: datetime, *, days: int = 7, lag_days: int = 1) -> Window:
    end = day_start(as_of) - lag_days * DAY
    return Window(WindowKind.AMAZON_ALIGNED, end - days * DAY, end)


def live_window(as_of: datetime, *, hours: int = 168) -> Window:
    end = bucket_start(as_of) + BUCKET
    return Window(WindowKind.LIVE, end - hours * BUCKET, end)


def window_for(
    kind: WindowKind, as_of: datetime, policy: CancellationPolicy, days: int | None = None
) -> Window:
    if kind is WindowKind.LIVE:
        return live_window(as_of, hours=policy.live_window_hours)
    days = days or policy.primary_window_days
    if days not in policy.window_days:
        raise InvalidInput(f"this marketplace's policy has windows of {policy.window_days} days, not {days}")
    return amazon_window(as_of, days=days, lag_days=policy.amazon_window_lag_days)


def window_moves_at(kind: WindowKind, as_of: datetime) -> datetime:
    """When the window `window_for(kind, as_of, ...)` is next another one: the next hour (live) or the
    next day (Amazon-aligned), whatever the policy's lengths and lag."""
    return bucket_start(as_of) + BUCKET if kind is WindowKind.LIVE else day_start(as_of) + DAY


def rate_status(numerator: int, denominator: int, policy: CancellationPolicy) -> RateStatus:
    # exact comparison: numerator / denominator >= threshold  <=>  numerator >= threshold * denominator
    if denominator and Decimal(numerator) >= policy.threshold * denominator:
        return RateStatus.AT_RISK
    if denominator and Decimal(numerator) >= policy.warning * denominator:
        return RateStatus.WARNING
    return RateStatus.GOOD


def cancellation_rate(
    window: Window, buckets: Iterable[Bucket], policy: CancellationPolicy
) -> CancellationRate:
    numerator = denominator = 0
    for b in buckets:
        if b.start in window:
            numerator += b.cancellations
            denominator += b.orders
    return CancellationRate(window, numerator, denominator, rate_status(numerator, denominator, policy))
