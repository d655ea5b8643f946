"""The client's rate limiter never exceeds an operation's usage plan, and follows Amazon's header."""

from __future__ import annotations

import asyncio

import pytest
from fakes import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.amazon.operations import GET_ORDERS, OPERATIONS, SEARCH_ORDERS, Operation, UsagePlan
from cancelguard.amazon.ratelimit import RateLimiter, TokenBucket, parse_rate_limit_header


def conforms(times: list[float], plan: UsagePlan) -> bool:
    """Token-bucket conformance: any k consecutive requests span at least (k - burst) / rate seconds."""
    times = sorted(times)
    for i in range(len(times)):
        for j in range(i + plan.burst, len(times)):
            if times[j] - times[i] < (j - i + 1 - plan.burst) / plan.rate - 1e-6:
                return False
    return True


async def hammer(
    limiter: RateLimiter, clock: FakeClock, op: Operation, callers: int, calls: int
) -> list[float]:
    sent: list[float] = []

    async def caller() -> None:
        for _ in range(calls):
            await limiter.acquire("A1SELLER", op)
            sent.append(clock.monotonic())

    await asyncio.gather(*(caller() for _ in range(callers)))
    return sent


@pytest.mark.parametrize("op", list(OPERATIONS.values()), ids=list(OPERATIONS))
async def test_no_operation_exceeds_its_usage_plan(op: Operation) -> None:
    clock = FakeClock()
    sent = await hammer(RateLimiter(clock), clock, op, callers=4, calls=op.plan.burst)
    assert len(sent) == 4 * op.plan.burst
    assert conforms(sent, op.plan)
    # the burst goes at once, the rest at the plan's rate
    assert sorted(sent)[op.plan.burst - 1] == sent[0]
    expected_span = (len(sent) - op.plan.burst) / op.plan.rate
    assert max(sent) - min(sent) == pytest.approx(expected_span, rel=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=200), min_size=1, max_size=60),
    rate=st.sampled_from([0.0056, 0.0167, 0.5, 2.0]),
    burst=st.integers(min_value=1, max_value=30),
)
async def test_any_arrival_pattern_conforms(gaps: list[float], rate: float, burst: int) -> None:
    clock = FakeClock()
    op = Operation("test.op", "op", "GET", "/op", UsagePlan(rate, burst))
    limiter = RateLimiter(clock)
    sent = []
    for gap in gaps:
        clock.now += gap  # the caller's own pauses between calls
        await limiter.acquire("A1SELLER", op)
        sent.append(clock.now)
    assert conforms(sent, op.plan)


async def test_sellers_and_operations_have_separate_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    for seller in ("A", "B"):
        for _ in range(GET_ORDERS.plan.burst):
            await limiter.acquire(seller, GET_ORDERS)
        for _ in range(SEARCH_ORDERS.plan.burst):
            await limiter.acquire(seller, SEARCH_ORDERS)
    assert clock.slept == []  # every bucket had its own burst


async def test_the_rate_limit_header_replaces_the_plan_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    for _ in range(GET_ORDERS.plan.burst):
        await limiter.acquire("A", GET_ORDERS)
    limiter.observe_limit("A", GET_ORDERS, "2.0")  # this seller has a bigger plan
    await limiter.acquire("A", GET_ORDERS)
    assert clock.slept == [pytest.approx(0.5)]


async def test_a_429_empties_the_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    await limiter.acquire("A", GET_ORDERS)
    limiter.throttled("A", GET_ORDERS)
    await limiter.acquire("A", GET_ORDERS)
    assert clock.slept == [pytest.approx(1 / 0.0167)]


@pytest.mark.parametrize(
    ("header", "rate"),
    [
        ("0.0167", 0.0167),
        (" 2 ", 2.0),
        ("", None),
        (None, None),
        ("abc", None),
        ("0", None),
        ("-1", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_rate_limit_header_parsing(header: str | None, rate: float | None) -> None:
    assert parse_rate_limit_header(header) == rate


def test_bucket_refills_to_burst_only() -> None:
    bucket = TokenBucket(UsagePlan(1.0, 3), now=0.0)
    assert [bucket.try_take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time(0.0) == pytest.approx(1.0)
    assert [bucket.try_take(100.0) for _ in range(4)] == [True, True, True, False]


def test_usage_plans_are_the_models() -> None:
    plans = {key: (op.plan.rate, op.plan.burst) for key, op in OPERATIONS.items()}
    assert plans == {
        "ordersV0.getOrders": (0.0167, 20),
        "ordersV0.getOrder": (0.5, 30),
        "ordersV0.getOrderItems": (0.5, 30),
        "orders2026.searchOrders": (0.0056, 20),
        "orders2026.getOrder": (0.5, 30),
        "reports.createReport": (0.0167, 15),
        "reports.getReport": (2, 15),
        "reports.getReportDocument": (0.0167, 15),
        "feeds.createFeedDocument": (0.5, 15),
        "feeds.createFeed": (0.0083, 15),
        "feeds.getFeed": (2, 15),
        "feeds.getFeedDocument": (0.0222, 10),
    }
