"""Where an order counts, and how counts move when it changes; the one open-request rule."""

from __future__ import annotations

from cancelguard.domain.model import CancelledBy, RequestKind
from cancelguard.domain.placement import NOT_COUNTED, BucketMove, Buckets, bucket_moves, place
from cancelguard.domain.policy import policy_for
from cancelguard.domain.requests import open_request
from cancelguard.domain.windows import bucket_start

from .builders import US, D, H, M, OrderStory

POLICY = policy_for(US)


def test_a_new_order_adds_one_to_its_buckets_and_a_change_moves_exactly_one_count() -> None:
    bought = OrderStory().pending(M(0)).unshipped(H(1)).order()
    cancelled = (
        OrderStory().pending(M(0)).unshipped(H(1)).seller_cancel(H(2), "NoInventory").canceled(H(3)).order()
    )
    first = place(bought, POLICY).buckets
    hour = bucket_start(bought.purchased_at)  # type: ignore[arg-type]
    assert list(bucket_moves(NOT_COUNTED, first)) == [BucketMove(hour, 1, 0)]
    assert list(bucket_moves(first, place(cancelled, POLICY).buckets)) == [BucketMove(hour, 0, 1)]
    assert list(bucket_moves(first, first)) == []
    assert list(bucket_moves(Buckets(hour, hour), NOT_COUNTED)) == [
        BucketMove(hour, -1, 0),
        BucketMove(hour, 0, -1),
    ]


def test_skus_and_the_ones_the_seller_cancelled() -> None:
    both = (
        OrderStory(items=("A", "B"))
        .unshipped(H(1))
        .canceled_v2026(CancelledBy.MERCHANT, "NoInventory", at=H(2))
    )
    placed = place(both.order(), POLICY)
    assert placed.skus == placed.seller_cancelled_skus and len(placed.skus) == 2
    shipped = place(OrderStory(items=("A",)).unshipped(H(1)).shipped(D(1)).order(), POLICY)
    assert shipped.skus and shipped.seller_cancelled_skus == ()


def test_an_open_request_closes_when_the_order_ships_or_is_cancelled_not_when_labelled() -> None:
    formal = OrderStory().pending(M(0)).unshipped(H(1)).formal(H(2))
    request = open_request(formal.order())
    assert request is not None and request.kind is RequestKind.FORMAL
    assert open_request(formal.label(H(3)).order()) is not None  # a label: still cancellable
    assert open_request(formal.shipped(D(1)).order()) is None
    informal = OrderStory().pending(M(0)).unshipped(H(1)).informal(H(2))
    request = open_request(informal.order())
    assert request is not None and request.kind is RequestKind.INFORMAL
    assert open_request(informal.seller_cancel(H(3), "NoInventory").canceled(H(4)).order()) is None
