"""The stored order state: version 2 round-trips every field exactly; version 1 rows (the previous
release's JSON) still read; an unknown version is refused, never guessed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import CancelledBy, Order
from cancelguard.metrics import state_codec

from .builders import D, H, M, OrderStory
from .test_properties import Scenario, events_for, scenarios_st


def rich_order() -> Order:
    story = (
        OrderStory(items=("A", "B"))
        .pending(M(0))
        .unshipped(H(1))
        .formal(H(2))
        .informal(H(3), language="de", message_id="msg-1")
        .seller_cancel(H(4), "NoInventory")
        .label(H(5))
        .canceled_v2026(CancelledBy.MERCHANT, "NoInventory", at=H(6))
        .shipped(D(1))
    )
    order = story.order()
    assert order.items and order.informal_requests and order.seller_cancels and order.formal_requests()
    return order


def test_version_2_round_trips_every_field() -> None:
    order = rich_order()
    data = state_codec.encode(order)
    assert data[0] == state_codec.VERSION
    assert state_codec.decode(order.key, data) == order


def test_version_2_is_smaller_than_the_json_of_version_1() -> None:
    import json

    order = rich_order()
    assert len(state_codec.encode(order)) < 0.7 * len(json.dumps(state_codec.order_to_json(order)))


def test_rows_of_the_previous_release_still_read() -> None:
    order = rich_order()
    legacy = state_codec.order_to_json(order)  # what the previous release stored in orders.state
    assert state_codec.decode_stored(order.key, None, legacy) == order
    assert state_codec.decode_stored(order.key, state_codec.encode(order), None) == order


def test_a_newer_version_is_refused() -> None:
    order = rich_order()
    with pytest.raises(state_codec.UnknownStateVersion):
        state_codec.decode(order.key, bytes([9]) + state_codec.encode(order)[1:])


@settings(max_examples=60, deadline=None)
@given(scenarios_st, st.integers(0, 1000))
def test_any_folded_order_round_trips(scenarios: list[Scenario], seed: int) -> None:
    rnd = random.Random(seed)
    for s in scenarios:
        events = events_for(s)
        rnd.shuffle(events)
        order = fold(events)
        assert order is not None
        assert state_codec.decode(order.key, state_codec.encode(order)) == order
        assert state_codec.order_from_json(order.key, state_codec.order_to_json(order)) == order
