"""Property-based tests (hypothesis) over random histories of several orders.

Each generated order follows one scenario whose CR treatment is known from the table in architecture.md §3
(the oracle below). The code under test folds the scenario's events in any arrival order, with duplicates
and re-observations, attributes each order, puts it in hourly buckets and sums windows; the oracle counts
the scenarios straight from the order list. The two must agree.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cancelguard.domain.attribution import Verdict, attribute, contribution
from cancelguard.domain.lifecycle import apply
from cancelguard.domain.model import (
    CancelledBy,
    Channel,
    Order,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    Source,
)
from cancelguard.domain.policy import CancellationPolicy, policy_for
from cancelguard.domain.windows import Window, WindowKind, cancellation_rate, window_for

from .builders import US, D, H, M, OrderStory, buckets_of

BASE = datetime(2024, 2, 20, tzinfo=UTC)  # the histories run across 2024-02-29
SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


class Kind(enum.Enum):
    # value: (name, in the numerator, in the denominator by default); the name keeps values distinct, or
    # enum would make kinds with the same treatment aliases of each other
    OPEN_UNSHIPPED = ("OPEN_UNSHIPPED", False, True)
    SHIPPED = ("SHIPPED", False, True)
    PENDING_FOREVER = ("PENDING_FOREVER", False, False)
    SELF_CANCEL_PENDING = ("SELF_CANCEL_PENDING", False, False)
    SELF_CANCEL_WINDOW = ("SELF_CANCEL_WINDOW", False, False)
    SELLER_NO_INVENTORY = ("SELLER_NO_INVENTORY", True, True)
    SELLER_BUYER_CANCELED_NO_REQUEST = ("SELLER_BUYER_CANCELED_NO_REQUEST", True, True)
    FORMAL_REQUEST_THEN_CANCEL = ("FORMAL_REQUEST_THEN_CANCEL", False, True)
    FORMAL_REQUEST_CLEARED_AFTER_CANCEL = ("FORMAL_REQUEST_CLEARED_AFTER_CANCEL", False, True)
    FORMAL_REQUEST_CLEARED_BEFORE_CANCEL = ("FORMAL_REQUEST_CLEARED_BEFORE_CANCEL", True, True)
    INFORMAL_REQUEST_THEN_CANCEL = ("INFORMAL_REQUEST_THEN_CANCEL", True, True)
    FORMAL_REQUEST_THEN_SHIPPED = ("FORMAL_REQUEST_THEN_SHIPPED", False, True)
    AMAZON_AUTO_CANCEL = ("AMAZON_AUTO_CANCEL", True, True)
    AMAZON_PAYMENT_CANCEL = ("AMAZON_PAYMENT_CANCEL", False, True)
    AMAZON_CANCEL_WHILE_PENDING = ("AMAZON_CANCEL_WHILE_PENDING", False, False)
    V0_UNKNOWN_CANCEL = ("V0_UNKNOWN_CANCEL", True, True)
    PARTIAL_SELLER_CANCEL = ("PARTIAL_SELLER_CANCEL", True, True)
    AFN_CANCELLED = ("AFN_CANCELLED", False, False)
    AFN_SHIPPED = ("AFN_SHIPPED", False, False)

    @property
    def counted(self) -> bool:
        return self.value[1]

    @property
    def in_denominator(self) -> bool:
        return self.value[2]

    @property
    def pending_like(self) -> bool:
        """Out of the denominator by default only because of the Pending switch."""
        return self in (
            Kind.PENDING_FOREVER,
            Kind.SELF_CANCEL_PENDING,
            Kind.SELF_CANCEL_WINDOW,
            Kind.AMAZON_CANCEL_WHILE_PENDING,
        )


assert len(Kind) == 19  # no aliases


@dataclass(frozen=True)
class Scenario:
    order_id: str
    kind: Kind
    purchased_at: datetime
    delay: timedelta  # how long after purchase things happen (varies the buckets the events fall in)


def oracle_counts(scenarios: list[Scenario], window: Window, policy: CancellationPolicy) -> tuple[int, int]:
    """Numerator and denominator straight from the order list: purchase date places both."""
    numerator = denominator = 0
    for s in scenarios:
        if not window.start <= s.purchased_at < window.end:
            continue
        if s.kind in (Kind.AFN_CANCELLED, Kind.AFN_SHIPPED):
            continue
        if s.kind.in_denominator or (s.kind.pending_like and policy.pending_in_denominator):
            denominator += 1
        numerator += s.kind.counted
    return numerator, denominator


def events_for(s: Scenario) -> list[OrderEvent]:
    p = s.delay  # Unshipped at p; everything else after it
    afn = s.kind in (Kind.AFN_CANCELLED, Kind.AFN_SHIPPED)
    o = OrderStory(
        order_id=s.order_id,
        marketplace_id=US,
        purchased_at=s.purchased_at,
        channel=Channel.AFN if afn else Channel.MFN,
        items=("A", "B"),
    )
    k = s.kind
    if k is Kind.SELF_CANCEL_WINDOW:
        return o.canceled(M(29)).events  # inside the 30-minute window: no Pending seen, no feed
    o.pending(M(0))
    if k is Kind.PENDING_FOREVER:
        return o.events
    if k is Kind.SELF_CANCEL_PENDING:
        return o.canceled(p + H(1)).events
    if k is Kind.AMAZON_CANCEL_WHILE_PENDING:
        return o.canceled_v2026(CancelledBy.AMAZON, "", at=p + H(1)).events
    o.unshipped(p)
    if k is Kind.OPEN_UNSHIPPED:
        return o.events
    if k in (Kind.SHIPPED, Kind.AFN_SHIPPED):
        return o.shipped(p + D(1)).events
    if k is Kind.SELLER_NO_INVENTORY:
        return o.seller_cancel(p + H(1), "NoInventory").canceled(p + H(2)).events
    if k is Kind.SELLER_BUYER_CANCELED_NO_REQUEST:
        return o.seller_cancel(p + H(1), "BuyerCanceled").canceled(p + H(2)).events
    if k is Kind.FORMAL_REQUEST_THEN_CANCEL:
        return (
            o.formal(p + H(1), items=("B",))
            .flag(True, p + H(1) + M(3), item="B", reason="Changed mind")
            .seller_cancel(p + H(2), "BuyerCanceled")
            .canceled(p + H(3))
            .events
        )
    if k is Kind.FORMAL_REQUEST_CLEARED_AFTER_CANCEL:
        return (
            o.flag(True, p + H(1), item="A")
            .canceled(p + H(3))
            .flag(False, p + H(4), item="A", status=OrderStatus.CANCELED)
            .events
        )
    if k is Kind.FORMAL_REQUEST_CLEARED_BEFORE_CANCEL:
        return (
            o.flag(True, p + H(1), item="B")
            .flag(False, p + H(2), item="B")
            .seller_cancel(p + H(3), "NoInventory")
            .canceled(p + H(4))
            .events
        )
    if k is Kind.INFORMAL_REQUEST_THEN_CANCEL:
        return (
            o.informal(p + H(1), language="de")
            .seller_cancel(p + H(2), "NoInventory")
            .canceled(p + H(3))
            .events
        )
    if k is Kind.FORMAL_REQUEST_THEN_SHIPPED:
        return o.formal(p + H(1)).shipped(p + D(1)).events
    if k is Kind.AMAZON_AUTO_CANCEL:
        return o.canceled_v2026(CancelledBy.AMAZON, "Not shipped in time", at=p + D(8)).events
    if k is Kind.AMAZON_PAYMENT_CANCEL:
        return o.canceled_v2026(CancelledBy.AMAZON, "Payment declined", at=p + H(3)).events
    if k is Kind.V0_UNKNOWN_CANCEL:
        return o.canceled(p + D(2)).events
    if k is Kind.PARTIAL_SELLER_CANCEL:
        return (
            o.canceled_v2026(
                CancelledBy.MERCHANT, "NoInventory", at=p + H(2), items=("A",), status=OrderStatus.UNSHIPPED
            )
            .shipped(p + D(1))
            .events
        )
    if k is Kind.AFN_CANCELLED:
        return o.canceled_v2026(CancelledBy.MERCHANT, "NoInventory", at=p + H(2)).events
    raise AssertionError(k)


def reobserved(events: list[OrderEvent], rnd: random.Random) -> list[OrderEvent]:
    """The same changes also reported by another source (a new event id, the same Amazon time), some
    about the last item alone (an item-level notification), so an order may learn of its items in any
    order."""
    out = list(events)
    for e in events:
        if rnd.random() < 0.2:
            body = e.body
            if isinstance(body, OrderSnapshot) and body.items and rnd.random() < 0.5:
                body = replace(body, items=body.items[-1:])
            out.append(replace(e, event_id=e.event_id + ":report", source=Source.ORDER_REPORT, body=body))
    return out


def redelivered(events: list[OrderEvent], rnd: random.Random) -> list[OrderEvent]:
    """At-least-once, out-of-order delivery: shuffled, some events delivered again (same id, later
    arrival)."""
    out = events + [
        replace(e, observed_at=e.observed_at + H(rnd.randint(1, 100))) for e in events if rnd.random() < 0.3
    ]
    rnd.shuffle(out)
    return out


def fold_all(events: list[OrderEvent]) -> dict[OrderKey, Order]:
    orders: dict[OrderKey, Order] = {}
    for e in events:
        orders[e.key] = apply(orders.get(e.key), e)
    return orders


scenarios_st = st.lists(
    st.builds(
        lambda kind, minutes, delay: (kind, BASE + M(minutes), M(delay)),
        st.sampled_from(Kind),
        st.integers(0, 14 * 24 * 60),
        st.integers(31, 3 * 24 * 60),
    ),
    min_size=1,
    max_size=12,
).map(lambda rows: [Scenario(f"o{i}", k, at, d) for i, (k, at, d) in enumerate(rows)])

as_of_st = st.integers(0, 26 * 24 * 60).map(lambda m: BASE + M(m))


def windows_at(as_of: datetime, policy: CancellationPolicy) -> list[Window]:
    return [window_for(WindowKind.AMAZON_ALIGNED, as_of, policy), window_for(WindowKind.LIVE, as_of, policy)]


@SETTINGS
@given(scenarios=scenarios_st, seed=st.integers(0, 2**32 - 1), as_of=as_of_st)
def test_any_arrival_order_with_duplicates_gives_the_same_states_and_cr(scenarios, seed, as_of) -> None:
    policy = policy_for(US)
    rnd = random.Random(seed)
    history = reobserved([e for s in scenarios for e in events_for(s)], rnd)
    expected = fold_all(history)
    expected_rates = [
        cancellation_rate(w, buckets_of(expected.values(), policy), policy) for w in windows_at(as_of, policy)
    ]
    expected_verdicts = {k: attribute(o, policy) for k, o in expected.items()}
    for _ in range(3):
        again = fold_all(redelivered(history, rnd))
        assert again == expected
        # the state compares equal whatever order its items arrived in; so must everything read from it
        assert {k: attribute(o, policy) for k, o in again.items()} == expected_verdicts
        assert [
            cancellation_rate(w, buckets_of(again.values(), policy), policy)
            for w in windows_at(as_of, policy)
        ] == expected_rates


@SETTINGS
@given(
    scenarios=scenarios_st,
    seed=st.integers(0, 2**32 - 1),
    as_of=as_of_st,
    pending_in_denominator=st.booleans(),
)
def test_cr_from_buckets_equals_cr_recounted_from_the_order_list(
    scenarios, seed, as_of, pending_in_denominator
) -> None:
    policy = replace(policy_for(US), pending_in_denominator=pending_in_denominator)
    rnd = random.Random(seed)
    orders = fold_all(redelivered(reobserved([e for s in scenarios for e in events_for(s)], rnd), rnd))
    buckets = buckets_of(orders.values(), policy)
    for window in windows_at(as_of, policy):
        rate = cancellation_rate(window, buckets, policy)
        assert (rate.numerator, rate.denominator) == oracle_counts(scenarios, window, policy)
        assert 0 <= rate.numerator <= rate.denominator


@SETTINGS
@given(scenarios=scenarios_st, as_of=as_of_st, pending_in_denominator=st.booleans())
def test_excluded_orders_never_change_the_numerator(scenarios, as_of, pending_in_denominator) -> None:
    policy = replace(policy_for(US), pending_in_denominator=pending_in_denominator)
    orders = list(fold_all([e for s in scenarios for e in events_for(s)]).values())
    not_counted = [o for o in orders if attribute(o, policy).verdict is not Verdict.COUNTED]
    for order in not_counted:
        assert contribution(order, policy).numerator_at is None
    kept = [o for o in orders if o not in not_counted]
    for window in windows_at(as_of, policy):
        with_all = cancellation_rate(window, buckets_of(orders, policy), policy)
        without = cancellation_rate(window, buckets_of(kept, policy), policy)
        assert with_all.numerator == without.numerator
        assert with_all.numerator <= with_all.denominator


@SETTINGS
@given(scenarios=scenarios_st)
def test_verdicts_match_the_table(scenarios) -> None:
    policy = policy_for(US)
    orders = fold_all([e for s in scenarios for e in events_for(s)])
    for s in scenarios:
        order = orders[OrderKey("A3TH9S8BH6GOGM", US, s.order_id)]
        assert attribute(order, policy).counts is s.kind.counted, s.kind
