"""Order events survive the order-events topic unchanged; garbage is refused with a reason."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cancelguard.domain.model import (
    AccountEvent,
    AccountKey,
    AmazonRateStatus,
    AmazonReportedRate,
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
    TargetCondition,
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


RATE = AmazonReportedRate(
    window_from=datetime(2026, 11, 12, tzinfo=UTC),
    window_to=datetime(2026, 11, 18, 23, 59, tzinfo=UTC),
    order_count=17197,
    cancellation_count=551,
    rate=Decimal("0.0320"),
    status=AmazonRateStatus.BAD,
    target_value=Decimal("0.025"),
    target_condition=TargetCondition.LESS_THAN,
)


@pytest.mark.parametrize("status", list(AmazonRateStatus))
@pytest.mark.parametrize("condition", list(TargetCondition))
def test_amazons_reported_rate_round_trips_exactly(
    status: AmazonRateStatus, condition: TargetCondition
) -> None:
    body = replace(RATE, status=status, target_condition=condition)
    event = AccountEvent(
        "r-1", AccountKey("A1SELLER", "ATVPDKIKX0DER"), Source.SELLER_PERFORMANCE_REPORT, T, T, body
    )
    decoded = codec.decode(codec.encode(event))
    assert decoded == event
    assert isinstance(decoded, AccountEvent) and str(decoded.body.rate) == "0.0320"  # trailing zero kept


def _rate_record(amazon_order_id: str = "") -> order_event_pb2.OrderEvent:
    msg = order_event_pb2.OrderEvent(
        event_id="r",
        seller_account="s",
        marketplace_id="m",
        amazon_order_id=amazon_order_id,
        source=order_event_pb2.SOURCE_SELLER_PERFORMANCE_REPORT,
    )
    msg.occurred_at.FromDatetime(T)
    r = msg.amazon_reported_rate
    r.window_from.FromDatetime(T)
    r.window_to.FromDatetime(T)
    r.rate, r.target_value = "0.01", "0.025"
    r.status, r.target_condition = (
        order_event_pb2.AMAZON_RATE_STATUS_GOOD,
        order_event_pb2.TARGET_CONDITION_EQUALS,
    )
    return msg


def test_an_account_level_record_names_no_order_and_an_order_record_needs_one() -> None:
    assert isinstance(codec.decode(_rate_record().SerializeToString()), AccountEvent)
    with pytest.raises(InvalidInput, match="names an order"):
        codec.decode(_rate_record(amazon_order_id="111-0000001-0000001").SerializeToString())
    snapshot = order_event_pb2.OrderEvent(
        event_id="x", seller_account="s", marketplace_id="m", source=order_event_pb2.SOURCE_ORDERS_V2026
    )
    snapshot.occurred_at.FromDatetime(T)
    snapshot.snapshot.SetInParent()
    with pytest.raises(InvalidInput, match="missing amazon_order_id"):
        codec.decode(snapshot.SerializeToString())


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: setattr(r, "rate", "half"), "'half' is not a number"),
        (lambda r: setattr(r, "target_value", "NaN"), "not a finite number"),
        (lambda r: setattr(r, "status", 0), "no status or target"),
        (lambda r: setattr(r, "target_condition", 9), "no status or target"),
        (lambda r: r.ClearField("window_to"), "has no window"),
    ],
)
def test_a_broken_reported_rate_is_refused(change, says: str) -> None:
    msg = _rate_record()
    change(msg.amazon_reported_rate)
    with pytest.raises(InvalidInput, match=says):
        codec.decode(msg.SerializeToString())
