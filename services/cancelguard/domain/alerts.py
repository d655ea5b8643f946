"""When to alert: a window's rate crossing the warning level or Amazon's threshold (either way), a SKU at
offer suppression risk, our figure straying from Amazon's own. Pure rules; the store keeps the state
(the status last alerted, per seller account x marketplace x window) and the outbox.

Each subject has a sequence number that grows by one per alerted change, so an alert's id is the same
however often the change is computed again (a batch re-applied after a crash, a rebalance): the outbox
keeps one row per id, and a consumer drops an id it has seen.

Grace: late observations can make a rate jump for a moment (the cancel arrives before the shipment it
raced). With a grace period, a new status is alerted only once it has held that long; a status that
goes back before then is never alerted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.windows import RateStatus, Window, WindowKind, window_for


class Level(enum.Enum):
    WARNING = "WARNING"
    THRESHOLD = "THRESHOLD"


class Direction(enum.Enum):
    UP = "UP"
    DOWN = "DOWN"


# The levels in the order a rising rate reaches them, with the status at and above each.
_LEVELS = ((Level.WARNING, RateStatus.WARNING), (Level.THRESHOLD, RateStatus.AT_RISK))
_RANK = {RateStatus.GOOD: 0, RateStatus.WARNING: 1, RateStatus.AT_RISK: 2}


def crossings(before: RateStatus, after: RateStatus) -> list[tuple[Level, Direction]]:
    """The levels crossed going from `before` to `after`, in the order they were crossed."""
    low, high = _RANK[before], _RANK[after]
    if high > low:
        return [(level, Direction.UP) for level, status in _LEVELS if low < _RANK[status] <= high]
    return [(level, Direction.DOWN) for level, status in reversed(_LEVELS) if high < _RANK[status] <= low]


@dataclass(frozen=True, slots=True)
class Watched:
    """A window whose status is alerted on, and its name in the alert state."""

    name: str  # LIVE, AMAZON_7, AMAZON_30
    window: Window
    days: int  # Amazon-aligned windows; 0 for the live one


def watched_windows(policy: CancellationPolicy, now: datetime) -> list[Watched]:
    out = [Watched("LIVE", window_for(WindowKind.LIVE, now, policy), 0)]
    for days in policy.window_days:
        out.append(Watched(f"AMAZON_{days}", window_for(WindowKind.AMAZON_ALIGNED, now, policy, days), days))
    return out


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the store remembers of one subject (None fields: nothing pending)."""

    status: str  # last alerted
    seq: int
    pending_status: str | None = None
    pending_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    state: AlertState
    alerted_from: str | None  # set when this evaluation raises an alert: the status it leaves


def settle(state: AlertState, observed: str, now: datetime, grace: timedelta) -> Settled:
    """The subject's state after observing `observed` at `now`, and whether that raises an alert."""
    if observed == state.status:
        if state.pending_status is None:
            return Settled(state, None)
        return Settled(AlertState(state.status, state.seq), None)  # a transient change: never alerted
    if grace <= timedelta(0) or (
        state.pending_status == observed
        and state.pending_since is not None
        and now - state.pending_since >= grace
    ):
        return Settled(AlertState(observed, state.seq + 1), state.status)
    if state.pending_status == observed:
        return Settled(state, None)  # still within the grace period
    return Settled(AlertState(state.status, state.seq, observed, now), None)


def diverges(our_numerator: int, our_denominator: int, amazon_rate: Decimal, tolerance: Decimal) -> bool:
    """Our rate and Amazon's differ by more than `tolerance` (exact: no float)."""
    ours = Decimal(our_numerator) / Decimal(our_denominator) if our_denominator else Decimal(0)
    return abs(ours - amazon_rate) > tolerance


WITHIN = "WITHIN"
DIVERGED = "DIVERGED"


def alert_id(seller_account: str, marketplace_id: str, subject: str, seq: int, what: str) -> str:
    return f"{seller_account}|{marketplace_id}|{subject}|{seq}|{what}"
