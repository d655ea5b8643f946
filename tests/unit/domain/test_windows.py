"""Windows (issue item 5): the Amazon-aligned window (7 whole UTC days ending at a lag) and the live window
(last 168 hours), from buckets; edges at midnight UTC, the lag, DST in the seller's zone, leap days."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cancelguard.domain.model import InvalidInput
from cancelguard.domain.policy import policy_for
from cancelguard.domain.windows import (
    Bucket,
    RateStatus,
    WindowKind,
    amazon_window,
    bucket_start,
    cancellation_rate,
    live_window,
    rate_status,
    window_for,
    window_moves_at,
)

from .builders import IN, US

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_amazon_window_matches_the_seller_performance_report_example() -> None:
    # accountHealthReport example: reportingDateFrom 2020-11-12T00:00Z, reportingDateTo 2020-11-18T23:59Z,
    # while the report's other metrics end a day later (the lag)
    window = amazon_window(utc(2020, 11, 20, 9, 15), days=7, lag_days=1)
    assert window.start == utc(2020, 11, 12)
    assert window.end == utc(2020, 11, 19)
    assert window.last_instant == utc(2020, 11, 18, 23, 59)
    assert window.end - window.start == timedelta(days=7)
    assert window.kind is WindowKind.AMAZON_ALIGNED


@pytest.mark.parametrize(
    ("as_of", "start"),
    [
        (utc(2024, 3, 11, 0, 0), utc(2024, 3, 3)),  # exactly midnight: the new day has begun
        (utc(2024, 3, 10, 23, 59, 59, 999999), utc(2024, 3, 2)),  # one microsecond before
        (utc(2024, 3, 11, 23, 59), utc(2024, 3, 3)),
    ],
)
def test_amazon_window_turns_at_midnight_utc(as_of: datetime, start: datetime) -> None:
    window = amazon_window(as_of, days=7, lag_days=1)
    assert window.start == start and window.end == start + timedelta(days=7)


@pytest.mark.parametrize(("lag", "end"), [(0, utc(2024, 3, 11)), (1, utc(2024, 3, 10)), (3, utc(2024, 3, 8))])
def test_amazon_window_ends_at_the_lag(lag: int, end: datetime) -> None:
    window = amazon_window(utc(2024, 3, 11, 8), days=7, lag_days=lag)
    assert window.end == end and window.start == end - timedelta(days=7)


def test_window_bounds_are_start_inclusive_end_exclusive() -> None:
    window = amazon_window(utc(2024, 3, 11, 8), days=7, lag_days=1)
    assert utc(2024, 3, 3) in window
    assert utc(2024, 3, 9, 23, 59, 59, 999999) in window
    assert utc(2024, 3, 10) not in window
    assert utc(2024, 3, 2, 23, 59, 59) not in window


def test_leap_day_is_a_whole_day_of_the_window() -> None:
    # as of 2024-03-02 with the lag, the window is 2024-02-23 .. 2024-02-29 inclusive
    window = amazon_window(utc(2024, 3, 2, 12), days=7, lag_days=1)
    assert (window.start, window.end) == (utc(2024, 2, 23), utc(2024, 3, 1))
    buckets = [Bucket(utc(2024, 2, 29, h), 10, 1 if h == 23 else 0) for h in range(24)]
    buckets.append(Bucket(utc(2024, 3, 1, 0), 5, 5))  # the day after: outside
    rate = cancellation_rate(window, buckets, policy_for(US))
    assert (rate.numerator, rate.denominator) == (1, 240)
    # and the window a day earlier ends right before the leap day
    earlier = amazon_window(utc(2024, 3, 1, 12), days=7, lag_days=1)
    assert earlier.end == utc(2024, 2, 29)
    assert cancellation_rate(earlier, buckets, policy_for(US)).denominator == 0


def test_thirty_day_window_across_february_in_a_leap_year() -> None:
    window = window_for(WindowKind.AMAZON_ALIGNED, utc(2024, 3, 16, 10), policy_for(IN), days=30)
    assert (window.start, window.end) == (utc(2024, 2, 14), utc(2024, 3, 15))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # Europe/Berlin springs forward 2024-03-31 02:00 -> 03:00 (UTC 01:00)
        (datetime(2024, 3, 31, 1, 30, tzinfo=BERLIN), datetime(2024, 3, 31, 3, 30, tzinfo=BERLIN)),
        # Europe/Berlin falls back 2024-10-27 03:00 -> 02:00: 02:30 happens twice
        (
            datetime(2024, 10, 27, 2, 30, fold=0, tzinfo=BERLIN),
            datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN),
        ),
        # America/New_York springs forward 2024-03-10 02:00 -> 03:00 (UTC 07:00)
        (datetime(2024, 3, 10, 1, 30, tzinfo=NEW_YORK), datetime(2024, 3, 10, 3, 30, tzinfo=NEW_YORK)),
        # America/New_York falls back 2024-11-03 02:00 -> 01:00: 01:30 EDT and 01:30 EST
        (
            datetime(2024, 11, 3, 1, 30, fold=0, tzinfo=NEW_YORK),
            datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),
        ),
    ],
    ids=["berlin-spring", "berlin-autumn", "new-york-spring", "new-york-autumn"],
)
def test_dst_in_the_sellers_zone_does_not_move_utc_windows(before: datetime, after: datetime) -> None:
    policy = policy_for(US)
    for local in (before, after):
        as_utc = local.astimezone(UTC)
        window = window_for(WindowKind.AMAZON_ALIGNED, local, policy)
        assert window == window_for(WindowKind.AMAZON_ALIGNED, as_utc, policy)
        assert window.start.utcoffset() == timedelta(0)
        assert window.start.hour == 0 and window.end - window.start == timedelta(days=7)
        live = window_for(WindowKind.LIVE, local, policy)
        assert live == window_for(WindowKind.LIVE, as_utc, policy)
        assert live.end - live.start == timedelta(hours=168)  # never 167 or 169 across a DST change
    # the two local times straddle the change: the same UTC day, so the same Amazon window
    assert window_for(WindowKind.AMAZON_ALIGNED, before, policy) == window_for(
        WindowKind.AMAZON_ALIGNED, after, policy
    )


def test_local_midnight_is_not_utc_midnight() -> None:
    # 00:30 in Berlin on 2024-03-11 is still 2024-03-10 in UTC: the window follows UTC
    local = datetime(2024, 3, 11, 0, 30, tzinfo=BERLIN)
    same_instant = utc(2024, 3, 10, 23, 30)
    assert amazon_window(local, days=7, lag_days=1) == amazon_window(same_instant, days=7, lag_days=1)
    assert amazon_window(local, days=7, lag_days=1).end == utc(2024, 3, 9)


def test_live_window_is_the_last_168_hours_including_the_current_hour() -> None:
    window = live_window(utc(2024, 3, 11, 10, 30))
    assert window.kind is WindowKind.LIVE
    assert (window.start, window.end) == (utc(2024, 3, 4, 11), utc(2024, 3, 11, 11))
    assert utc(2024, 3, 11, 10, 59) in window
    assert utc(2024, 3, 4, 10, 59) not in window


def test_bucket_start_is_the_utc_hour() -> None:
    kolkata = datetime(2024, 3, 11, 10, 45, 12, tzinfo=ZoneInfo("Asia/Kolkata"))  # +05:30
    assert bucket_start(kolkata) == utc(2024, 3, 11, 5)


@pytest.mark.parametrize("fn", [lambda t: amazon_window(t), live_window, bucket_start])
def test_naive_times_are_refused(fn) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        fn(datetime(2024, 3, 11, 10))


def test_window_for_uses_the_marketplace_windows() -> None:
    as_of = utc(2024, 3, 11, 8)
    assert window_for(WindowKind.AMAZON_ALIGNED, as_of, policy_for(IN), days=30).start == utc(2024, 2, 9)
    with pytest.raises(InvalidInput, match="30"):
        window_for(WindowKind.AMAZON_ALIGNED, as_of, policy_for(US), days=30)
    lagless = replace(policy_for(US), amazon_window_lag_days=0, live_window_hours=24)
    assert window_for(WindowKind.AMAZON_ALIGNED, as_of, lagless).end == utc(2024, 3, 11)
    assert window_for(WindowKind.LIVE, as_of, lagless).start == utc(2024, 3, 10, 9)


# --- the rate ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "marketplace_id", "status"),
    [
        (0, 0, US, RateStatus.GOOD),
        (19, 1000, US, RateStatus.GOOD),
        (20, 1000, US, RateStatus.WARNING),  # exactly the warning level
        (24, 1000, US, RateStatus.WARNING),
        (25, 1000, US, RateStatus.AT_RISK),  # exactly 2.5%: Amazon's target is LESS_THAN 2.5%
        (1, 3, US, RateStatus.AT_RISK),
        (19, 1000, IN, RateStatus.WARNING),
        (20, 1000, IN, RateStatus.AT_RISK),  # India: 2%
        (14, 1000, IN, RateStatus.GOOD),
    ],
)
def test_rate_status(numerator: int, denominator: int, marketplace_id: str, status: RateStatus) -> None:
    assert rate_status(numerator, denominator, policy_for(marketplace_id)) is status


def test_rate_from_buckets_counts_only_the_window() -> None:
    window = amazon_window(utc(2024, 3, 11, 8), days=7, lag_days=1)  # 03-03 .. 03-09
    buckets = [
        Bucket(utc(2024, 3, 2, 23), 100, 50),  # before
        Bucket(utc(2024, 3, 3, 0), 40, 1),
        Bucket(utc(2024, 3, 9, 23), 60, 2),
        Bucket(utc(2024, 3, 10, 0), 100, 50),  # after
    ]
    rate = cancellation_rate(window, buckets, policy_for(US))
    assert (rate.numerator, rate.denominator) == (3, 100)
    assert rate.rate == Decimal("0.03")
    assert rate.status is RateStatus.AT_RISK
    assert rate.window == window


def test_empty_window_has_rate_zero() -> None:
    rate = cancellation_rate(live_window(utc(2024, 3, 11)), [], policy_for(US))
    assert (rate.numerator, rate.denominator, rate.rate, rate.status) == (0, 0, Decimal(0), RateStatus.GOOD)


def test_a_late_cancel_changes_exactly_the_past_windows_that_hold_its_order() -> None:
    policy = policy_for(US)
    purchased = utc(2024, 3, 5, 12, 40)
    before = [Bucket(utc(2024, 3, d, 12), 10, 0) for d in range(1, 20)]
    after = [replace(b, cancellations=1) if b.start == bucket_start(purchased) else b for b in before]
    changed = []
    for day in range(1, 22):
        as_of = utc(2024, 3, day, 6)
        w = window_for(WindowKind.AMAZON_ALIGNED, as_of, policy)
        if cancellation_rate(w, before, policy) != cancellation_rate(w, after, policy):
            changed.append(day)
    # windows computed on 03-07 .. 03-13 hold 03-05 (7 days, lagging one day)
    assert changed == list(range(7, 14))


@pytest.mark.parametrize("kind", [WindowKind.LIVE, WindowKind.AMAZON_ALIGNED])
@pytest.mark.parametrize(
    "as_of",
    [
        datetime(2026, 11, 20, 0, 0, tzinfo=UTC),  # on an edge
        datetime(2026, 11, 20, 13, 59, 59, 999999, tzinfo=UTC),  # a moment before one
        datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # a year's end
        datetime(2028, 2, 28, 23, 59, tzinfo=UTC),  # a leap day next
    ],
)
def test_a_window_stays_the_same_until_it_moves(kind: WindowKind, as_of: datetime) -> None:
    """What the API holds a rate answer by: the window of any later moment before `window_moves_at` is
    the window of `as_of`, and at that moment it is another."""
    policy = policy_for("ATVPDKIKX0DER")
    moves_at = window_moves_at(kind, as_of)
    window = window_for(kind, as_of, policy)
    assert as_of < moves_at
    for later in (as_of + (moves_at - as_of) / 2, moves_at - timedelta(microseconds=1)):
        assert window_for(kind, later, policy) == window
    assert window_for(kind, moves_at, policy) != window
