"""Order events survive the order-events topic unchanged; garbage is refused with a reason."""

from datetime import UTC, datetime, timedelta

import pytest

from cancelguard.domain.model import (
    CancellationRequested,
    CancelledBy,
    Channel,
    InvalidInput,
    ItemObservation,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    RequestKind,
    SellerCancellationSubmitted,
    ShippingLabelPurchased,
    Source,
)
from cancelguard.events import codec
from cancelguard.events.v1 import order_event_pb2

T = datetime(2026, 11, 20, 10, 30, 15, 123000, tzinfo=UTC)
KEY = OrderKey("A1SELLER", "A1PA6795UKMFR9", "302-1234567-7654321")

BODIES = {
    "full snapshot": OrderSnapshot(
        status=OrderStatus.PARTIALLY_SHIPPED,
        channel=Channel.MFN,
        purchased_at=T - timedelta(days=1),
        latest_ship_at=T + timedelta(days=2),
        items=(
            ItemObservation("1", "SKU-1", 2, 1, True, "changed mind"),
            ItemObservation("2", "", None, None, None, "", CancelledBy.MERCHANT, "NoInventory"),
            ItemObservation("3", "SKU-3", 0, 0, False),
        ),
    ),
    "empty snapshot": OrderSnapshot(),
    "formal request": CancellationRequested(RequestKind.FORMAL, ("1", "2"), "found it cheaper"),
    "informal request": CancellationRequested(RequestKind.INFORMAL, (), "", "de", "msg-9"),
    "seller cancel": SellerCancellationSubmitted("NoInventory", ("1",), "feed-77"),
    "label": ShippingLabelPurchased(),
}


@pytest.mark.parametrize("name", BODIES)
@pytest.mark.parametrize("source", list(Source))
def test_round_trip(name: str, source: Source) -> None:
    event = OrderEvent(f"e-{name}", KEY, source, T, T + timedelta(seconds=3), BODIES[name])
    assert codec.decode(codec.encode(event)) == event


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xff\xff\xff", "not a cancelguard.events.v1.OrderEvent"),
        (order_event_pb2.OrderEvent(event_id="x").SerializeToString(), "missing seller_account"),
        (
            order_event_pb2.OrderEvent(
                event_id="x", seller_account="s", marketplace_id="m", amazon_order_id="o"
            ).SerializeToString(),
            "has no source",
        ),
        (
            order_event_pb2.OrderEvent(
                event_id="x", seller_account="s", marketplace_id="m", amazon_order_id="o", source=1
            ).SerializeToString(),
            "no occurred_at",
        ),
    ],
)
def test_undecodable_records_say_why(data: bytes, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        codec.decode(data)
    assert says in str(err.value)


def test_an_event_without_a_body_is_refused() -> None:
    msg = order_event_pb2.OrderEvent(
        event_id="x", seller_account="s", marketplace_id="m", amazon_order_id="o", source=1
    )
    msg.occurred_at.FromDatetime(T)
    with pytest.raises(InvalidInput, match="has no body"):
        codec.decode(msg.SerializeToString())
