"""What-if and roll-off (issue item 7)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from cancelguard.domain.model import Channel
from cancelguard.domain.policy import policy_for
from cancelguard.domain.projection import CountedCancellation, leaves_window_at, roll_off, what_if
from cancelguard.domain.windows import (
    Bucket,
    RateStatus,
    WindowKind,
    amazon_window,
    cancellation_rate,
    live_window,
    window_for,
)

from .builders import IN, US, D, H, buckets_of, story

POLICY = policy_for(US)
AS_OF = datetime(2024, 3, 11, 8, 0, tzinfo=UTC)  # Amazon window: 2024-03-03 .. 2024-03-09
WINDOW_DAY = datetime(2024, 3, 5, 12, tzinfo=UTC)
NOW = AS_OF


def _unshipped(i: int, at: datetime = WINDOW_DAY, **kw):
    return story(order_id=f"o{i}", purchased_at=at, **kw).unshipped(H(1))


def _window_of_orders(n: int, cancelled: int):
    """n orders in the window, the first `cancelled` cancelled by the seller (NoInventory)."""
    orders = []
    for i in range(n):
        s = _unshipped(i)
        if i < cancelled:
            s.seller_cancel(H(2), "NoInventory").canceled(H(3))
        orders.append(s.order())
    window = window_for(WindowKind.AMAZON_ALIGNED, AS_OF, POLICY)
    return orders, cancellation_rate(window, buckets_of(orders, POLICY), POLICY)


# --- what-if -------------------------------------------------------------------------------------------


def test_what_if_no_inventory_cancels_count() -> None:
    orders, current = _window_of_orders(100, 1)
    assert (current.numerator, current.denominator, current.status) == (1, 100, RateStatus.GOOD)
    result = what_if(current, orders[10:12], cancel_reason="NoInventory", at=NOW, policy=POLICY)
    assert (result.projected.numerator, result.projected.denominator) == (3, 100)
    assert result.projected.status is RateStatus.AT_RISK
    assert result.current == current
    assert [(e.numerator_delta, e.denominator_delta) for e in result.effects] == [(1, 0), (1, 0)]
    # the projection is what the buckets would say after the cancels really happened
    after = [
        *orders[:10],
        *(_unshipped(i).seller_cancel(H(2)).canceled(H(3)).order() for i in (10, 11)),
        *orders[12:],
    ]
    assert what_if_matches(result.projected, after)


def what_if_matches(projected, orders) -> bool:
    actual = cancellation_rate(projected.window, buckets_of(orders, POLICY), POLICY)
    return (actual.numerator, actual.denominator) == (projected.numerator, projected.denominator)


def test_what_if_buyer_canceled_on_formal_requests_costs_nothing() -> None:
    _, current = _window_of_orders(50, 0)
    requested = _unshipped(90).formal(H(2)).order()
    result = what_if(current, [requested], cancel_reason="BuyerCanceled", at=NOW, policy=POLICY)
    assert result.projected.numerator == current.numerator
    assert result.effects[0].after.verdict.value == "EXCLUDED"


def test_what_if_buyer_canceled_without_request_counts() -> None:
    _, current = _window_of_orders(50, 0)
    plain = _unshipped(90).order()
    result = what_if(current, [plain], cancel_reason="BuyerCanceled", at=NOW, policy=POLICY)
    assert result.projected.numerator == current.numerator + 1
    assert "BuyerCanceled" in result.effects[0].explanation


@pytest.mark.parametrize(
    ("build", "why"),
    [
        (lambda: _unshipped(1).shipped(D(1)), "shipped"),
        (lambda: _unshipped(1).label(H(2)), "labelled"),
        (lambda: story(order_id="o1", purchased_at=WINDOW_DAY).pending(H(0)), "Pending"),
        (lambda: _unshipped(1).seller_cancel(H(2)).canceled(H(3)), "already cancelled"),
    ],
    ids=["shipped", "label", "pending", "cancelled"],
)
def test_what_if_orders_that_cannot_be_cancelled_change_nothing(build, why: str) -> None:
    _, current = _window_of_orders(50, 1)
    result = what_if(current, [build().order()], cancel_reason="NoInventory", at=NOW, policy=POLICY)
    assert result.projected.numerator == current.numerator
    assert result.projected.denominator == current.denominator
    assert why in result.effects[0].explanation


def test_what_if_ignores_orders_outside_the_window_and_afn() -> None:
    _, current = _window_of_orders(50, 1)
    later = _unshipped(1, at=AS_OF - H(2)).order()  # today: the live window's, not this one's
    afn = _unshipped(2, channel=Channel.AFN).order()
    result = what_if(current, [later, afn], cancel_reason="NoInventory", at=NOW, policy=POLICY)
    assert (result.projected.numerator, result.projected.denominator) == (1, 50)


def test_what_if_counts_an_order_listed_twice_once() -> None:
    orders, current = _window_of_orders(50, 0)
    result = what_if(current, [orders[5], orders[5]], cancel_reason="NoInventory", at=NOW, policy=POLICY)
    assert result.projected.numerator == 1


# --- roll-off ------------------------------------------------------------------------------------------


def _day(d: int, hour: int = 12) -> datetime:
    return datetime(2024, 3, d, hour, tzinfo=UTC)


def _amazon_scenario():
    # window 03-03 .. 03-09 at 100 orders a day; 03-10 known too; 03-11 has 30 orders so far
    cancels = {3: 4, 4: 4, 9: 10}  # 18 / 700 = 2.57%
    buckets = [Bucket(_day(d), 100, cancels.get(d, 0)) for d in range(3, 11)]
    buckets.append(Bucket(_day(11, 5), 30, 0))
    counted = [CountedCancellation(f"d{d}-{i}", _day(d)) for d, n in cancels.items() for i in range(n)]
    counted.append(CountedCancellation("before-window", _day(2)))
    return buckets, counted


def test_roll_off_amazon_window() -> None:
    buckets, counted = _amazon_scenario()
    result = roll_off(AS_OF, buckets, counted, POLICY)
    assert (result.current.numerator, result.current.denominator) == (18, 700)
    assert result.current.status is RateStatus.AT_RISK
    assert result.assumed_daily_orders == Decimal(100)
    # 03-12: 03-03 has left -> 14/700 = 2.0%: under the threshold, at the warning level
    # 03-13: 03-04 has left -> 10/(600 + 30 + 63 expected for the rest of 03-11) -> GOOD
    assert result.under_threshold_on == date(2024, 3, 12)
    assert result.under_warning_on == date(2024, 3, 13)
    rates = {d.day: d.rate for d in result.days}
    assert (rates[date(2024, 3, 12)].numerator, rates[date(2024, 3, 12)].denominator) == (14, 700)
    assert rates[date(2024, 3, 12)].status is RateStatus.WARNING
    assert (rates[date(2024, 3, 13)].numerator, rates[date(2024, 3, 13)].denominator) == (10, 693)
    assert result.days[0].rate == result.current


def test_roll_off_says_when_each_counted_cancellation_leaves() -> None:
    buckets, counted = _amazon_scenario()
    result = roll_off(AS_OF, buckets, counted, POLICY)
    assert "before-window" not in {x.amazon_order_id for x in result.leaving}
    assert len(result.leaving) == 18
    assert [x.leaves_on for x in result.leaving] == sorted(x.leaves_on for x in result.leaving)
    for leaving in result.leaving:
        # checked against the window itself: in it just before, out of it from then on
        assert leaving.at in amazon_window(leaving.leaves_on - timedelta(microseconds=1))
        assert leaving.at not in amazon_window(leaving.leaves_on)
    assert result.leaving[0].leaves_on == datetime(2024, 3, 12, tzinfo=UTC)


def test_roll_off_with_no_expected_orders() -> None:
    buckets, counted = _amazon_scenario()
    result = roll_off(AS_OF, buckets, counted, POLICY, expected_daily_orders=Decimal(0))
    rates = {d.day: d.rate for d in result.days}
    assert rates[date(2024, 3, 13)].denominator == 630  # 03-05 .. 03-10 plus the 30 of 03-11


def test_roll_off_already_good_is_today() -> None:
    buckets = [Bucket(_day(d), 100, 0) for d in range(3, 11)]
    result = roll_off(AS_OF, buckets, [], POLICY)
    assert result.under_threshold_on == result.under_warning_on == AS_OF.date()
    assert result.leaving == ()


def test_roll_off_live_window_finds_the_hour_not_just_the_day() -> None:
    as_of = datetime(2024, 3, 11, 10, 30, tzinfo=UTC)  # live window 03-04 11:00 .. 03-11 11:00
    buckets = [Bucket(_day(4), 100, 30)] + [Bucket(_day(d), 100, 0) for d in range(5, 11)]
    buckets.append(Bucket(_day(11, 9), 100, 0))
    counted = [CountedCancellation(f"c{i}", _day(4)) for i in range(30)]
    result = roll_off(as_of, buckets, counted, POLICY, kind=WindowKind.LIVE)
    assert result.current.status is RateStatus.AT_RISK
    # the 30 leave at 03-11 12:00, later the same day
    assert {x.leaves_on for x in result.leaving} == {datetime(2024, 3, 11, 12, tzinfo=UTC)}
    assert result.under_threshold_on == result.under_warning_on == date(2024, 3, 11)
    for leaving in result.leaving:
        assert leaving.at in live_window(leaving.leaves_on - timedelta(microseconds=1))
        assert leaving.at not in live_window(leaving.leaves_on)


@pytest.mark.parametrize("days", [7, 30])
def test_leaves_window_at_for_india(days: int) -> None:
    policy = policy_for(IN)
    ts = datetime(2024, 2, 28, 23, 30, tzinfo=UTC)
    leaves = leaves_window_at(WindowKind.AMAZON_ALIGNED, ts, policy, days)
    assert ts in window_for(WindowKind.AMAZON_ALIGNED, leaves - timedelta(microseconds=1), policy, days)
    assert ts not in window_for(WindowKind.AMAZON_ALIGNED, leaves, policy, days)
