"""The seeded scenario covers what it promises, is reproducible, and its truth is self-consistent."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from cancelguard.amazon.feed_xml import CancelReason
from cancelguard.simulator.spapi.generator import ScenarioSpec, generate_world
from cancelguard.simulator.spapi.truth import COUNTED_RULES, order_truths, window_truths

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SPEC = ScenarioSpec(NOW)  # 7 days x 3 sellers x 4 marketplaces


@pytest.fixture(scope="module")
def truths():  # type: ignore[no-untyped-def]
    world = generate_world(SPEC)
    return world, order_truths(world, NOW)


def test_same_seed_same_world() -> None:
    a, b = generate_world(SPEC), generate_world(SPEC)
    assert [(k, o.versions) for k, o in a.orders.items()] == [(k, o.versions) for k, o in b.orders.items()]
    assert generate_world(ScenarioSpec(NOW, seed=8)).orders.keys() != a.orders.keys()


def test_every_rule_and_reason_occurs(truths) -> None:  # type: ignore[no-untyped-def]
    world, orders = truths
    rules = Counter(o.rule for o in orders)
    for rule in (
        "NOT_CANCELLED",
        "AFN_NOT_IN_CR",
        "SELLER_CANCEL_UNSHIPPED",
        "FORMAL_REQUEST_BEFORE_CANCEL",
        "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST",
        "INFORMAL_REQUEST_ONLY",
        "BUYER_SELF_CANCEL",
        "CANCELLED_WHILE_PENDING",
        "AMAZON_PAYMENT_OR_FRAUD",
        "AMAZON_AUTO_CANCEL_NOT_SHIPPED",
        "PARTIAL_SELLER_CANCEL",
    ):
        assert rules[rule] > 0, rule
    assert "UNKNOWN_CANCELLER" not in rules  # with Amazon's cancelledBy nothing is unexplained
    assert Counter(o.rule_v0 for o in orders)["UNKNOWN_CANCELLER"] > 0  # v0 cannot tell
    reasons = {c.reason for c in world.seller_cancels}
    assert {r.value for r in CancelReason} <= reasons
    assert any(len(o.items) > 1 for o in world.orders.values())
    assert any(o.label_at for o in world.orders.values())
    assert any(
        v.visible_at - v.at > timedelta(minutes=2) for o in world.orders.values() for v in o.versions
    )  # some updates reach the API late
    assert {o.open_request for o in orders} >= {"FORMAL", "INFORMAL"}


def test_windows_add_up(truths) -> None:  # type: ignore[no-untyped-def]
    world, orders = truths
    windows = window_truths(world, NOW, orders)
    assert len(windows) == 3 * 4 * 2
    for w in windows:
        inside = [
            o
            for o in orders
            if (o.seller_id, o.marketplace_id) == (w.seller_id, w.marketplace_id)
            and w.start <= o.purchased_at < w.end
        ]
        assert w.cancellations == sum(o.rule in COUNTED_RULES for o in inside if o.channel == "MFN")
        assert 0 < w.orders <= len(inside)
    aligned = [w for w in windows if w.kind == "AMAZON_ALIGNED"]
    assert {(w.start.isoformat(), w.end.isoformat()) for w in aligned} == {
        ("2026-11-12T00:00:00+00:00", "2026-11-19T00:00:00+00:00")
    }
