"""The metrics service's cyclic-collector threshold rests on a measured budget: the tracked objects a
batch keeps alive per record, from decoding to the rows to write. A change that makes a batch hold more
must raise the budget (or the collector walks each batch again and again while it is applied)."""

from __future__ import annotations

import gc
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from cancelguard.config import Settings
from cancelguard.domain.bounds import check_event
from cancelguard.domain.model import CancelledBy, OrderEvent
from cancelguard.events import codec
from cancelguard.metrics import service
from cancelguard.metrics.store import Store, _BatchFold

from .builders import D, H, story


def _records(orders: int) -> list[bytes]:
    """Each order's life as the topic carries it: placed, unshipped, a label, shipped or cancelled."""
    out = []
    for n in range(orders):
        s = story(order_id=f"111-{n:07d}-0000001", items=("ITEM-1", "ITEM-2"))
        s.pending().unshipped().label(H(3))
        if n % 20 == 0:
            s.canceled_v2026(CancelledBy.MERCHANT, "NoInventory")
        else:
            s.shipped(D(1))
        out += [codec.encode(e) for e in s.events]
    return out


@pytest.mark.parametrize("orders", [200, 1000])
def test_a_batch_keeps_fewer_tracked_objects_per_record_than_the_threshold_assumes(orders: int) -> None:
    values = _records(orders)
    now = datetime(2030, 1, 2, tzinfo=UTC)  # after the stories' arrival time
    book = Settings().policies
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        events = [check_event(codec.decode(v), now=now) for v in values]  # as the service decodes
        fold = _BatchFold(book, [e for e in events if isinstance(e, OrderEvent)], set(), defaultdict(set))
        updates: list = []
        inserts: list = []
        fold.keys(fold.ids, {}, updates, inserts)
        columns = Store._order_columns(inserts)
        alive = len(gc.get_objects()) - before
        assert columns and len(inserts) == orders
    finally:
        gc.enable()
    per_record = alive / len(values)
    assert per_record <= service._TRACKED_PER_RECORD, f"{per_record:.1f} tracked objects per record"


@pytest.mark.parametrize(
    ("batch", "threshold"), [(1, 50_000), (1000, 50_000), (10_000, 300_000), (20_000, 600_000)]
)
def test_the_young_generation_holds_two_batches(batch: int, threshold: int) -> None:
    assert service.young_generation_size(batch) == threshold
