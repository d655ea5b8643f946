"""Normalisers: every spelling Amazon uses for the same thing reads as one value; anything else is an error
that says what was expected (issue item 1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cancelguard.domain.model import (
    CancelledBy,
    Channel,
    InvalidInput,
    OrderEvent,
    OrderSnapshot,
    OrderStatus,
    Source,
    Stamp,
    is_buyer_canceled_reason,
    parse_bool,
    parse_cancelled_by,
    parse_channel,
    parse_status,
)

from .builders import T0, key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Canceled", OrderStatus.CANCELED),  # Orders API v0
        ("CANCELLED", OrderStatus.CANCELED),  # Orders API v2026-01-01
        ("Cancelled", OrderStatus.CANCELED),
        ("canceled", OrderStatus.CANCELED),
        ("Pending", OrderStatus.PENDING),
        ("PENDING", OrderStatus.PENDING),
        ("PendingAvailability", OrderStatus.PENDING_AVAILABILITY),
        ("PENDING_AVAILABILITY", OrderStatus.PENDING_AVAILABILITY),
        ("Unshipped", OrderStatus.UNSHIPPED),
        ("UNSHIPPED", OrderStatus.UNSHIPPED),
        ("PartiallyShipped", OrderStatus.PARTIALLY_SHIPPED),
        ("PARTIALLY_SHIPPED", OrderStatus.PARTIALLY_SHIPPED),
        ("Shipped", OrderStatus.SHIPPED),
        ("SHIPPED", OrderStatus.SHIPPED),
        ("InvoiceUnconfirmed", OrderStatus.INVOICE_UNCONFIRMED),
        ("Unfulfillable", OrderStatus.UNFULFILLABLE),
        ("UNFULFILLABLE", OrderStatus.UNFULFILLABLE),
        (" Shipped ", OrderStatus.SHIPPED),  # report cells carry stray spaces
        (OrderStatus.SHIPPED, OrderStatus.SHIPPED),
    ],
)
def test_parse_status(raw: object, expected: OrderStatus) -> None:
    assert parse_status(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MFN", Channel.MFN),
        ("mfn", Channel.MFN),
        ("MERCHANT", Channel.MFN),  # v2026 fulfilledBy
        ("Merchant", Channel.MFN),  # order reports' display value
        ("AFN", Channel.AFN),
        ("AMAZON", Channel.AFN),
        ("Amazon", Channel.AFN),
        (Channel.AFN, Channel.AFN),
    ],
)
def test_parse_channel(raw: object, expected: Channel) -> None:
    assert parse_channel(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),  # ORDER_CHANGE: JSON boolean
        (False, False),
        ("true", True),  # Orders API v0: a string
        ("false", False),
        ("TRUE", True),  # report files
        ("FALSE", False),
        ("True", True),
        (" true ", True),
    ],
)
def test_parse_bool(raw: object, expected: bool) -> None:
    assert parse_bool(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BUYER", CancelledBy.BUYER),
        ("MERCHANT", CancelledBy.MERCHANT),
        ("AMAZON", CancelledBy.AMAZON),
        ("merchant", CancelledBy.MERCHANT),
        (CancelledBy.AMAZON, CancelledBy.AMAZON),
    ],
)
def test_parse_cancelled_by(raw: object, expected: CancelledBy) -> None:
    assert parse_cancelled_by(raw) is expected


@pytest.mark.parametrize(
    ("parser", "raw", "mentions"),
    [
        (parse_status, "Delivered", "Canceled"),
        (parse_status, "", "Canceled"),
        (parse_status, None, "Canceled"),
        (parse_status, 3, "Canceled"),
        (parse_channel, "FBA", "MFN"),
        (parse_channel, "", "MFN"),
        (parse_channel, None, "MFN"),
        (parse_bool, "maybe", "true"),
        (parse_bool, None, "true"),
        (parse_bool, 2, "true"),
        (parse_bool, "tru", "true"),
        (parse_cancelled_by, "SELLER_CENTRAL", "MERCHANT"),
        (parse_cancelled_by, None, "MERCHANT"),
        (parse_cancelled_by, "UNKNOWN", "MERCHANT"),  # ours, for "nobody says": no source may send it
    ],
)
def test_bad_input_is_an_error_that_says_what_was_expected(parser, raw: object, mentions: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parser(raw)
    assert mentions in str(err.value)
    assert isinstance(err.value, ValueError)  # callers that catch ValueError still catch it


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("BuyerCanceled", True),  # OrderAcknowledgement.xsd
        ("Buyer Canceled", True),  # Seller Central's label
        ("Buyer Cancelled", True),
        ("BUYER_CANCELED", True),
        ("Buyer requested cancellation", True),  # v2026 cancellationExecution.cancelReason, model example
        ("NoInventory", False),
        ("", False),
        ("ShippingAddressUndeliverable", False),
    ],
)
def test_buyer_canceled_reason_spellings(reason: str, expected: bool) -> None:
    assert is_buyer_canceled_reason(reason) is expected


def test_status_rank_follows_the_lifecycle() -> None:
    ranks = [
        s.rank
        for s in (
            OrderStatus.PENDING_AVAILABILITY,
            OrderStatus.PENDING,
            OrderStatus.UNSHIPPED,
            OrderStatus.PARTIALLY_SHIPPED,
            OrderStatus.SHIPPED,
        )
    ]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    # terminal statuses share a rank: between them Amazon's later timestamp decides
    assert OrderStatus.CANCELED.rank == OrderStatus.SHIPPED.rank == OrderStatus.INVOICE_UNCONFIRMED.rank


def test_status_predicates() -> None:
    assert {s for s in OrderStatus if s.is_pending} == {OrderStatus.PENDING, OrderStatus.PENDING_AVAILABILITY}
    assert {s for s in OrderStatus if s.is_shipped} == {
        OrderStatus.PARTIALLY_SHIPPED,
        OrderStatus.SHIPPED,
        OrderStatus.INVOICE_UNCONFIRMED,
    }


def test_partition_key_is_seller_and_marketplace() -> None:
    assert key("A", "ATVPDKIKX0DER", "S1").partition_key == key("B", "ATVPDKIKX0DER", "S1").partition_key
    assert key("A", "ATVPDKIKX0DER", "S1").partition_key != key("A", "A1PA6795UKMFR9", "S1").partition_key


def test_stamp_orders_by_amazon_time_then_event_id() -> None:
    assert Stamp(T0, "b") < Stamp(T0.replace(minute=1), "a")
    assert Stamp(T0, "a") < Stamp(T0, "b")


@pytest.mark.parametrize("field", ["occurred_at", "observed_at"])
def test_event_times_without_a_time_zone_are_refused(field: str) -> None:
    times = {"occurred_at": T0, "observed_at": T0, field: datetime(2024, 3, 4, 10, 0)}
    with pytest.raises(InvalidInput, match="time zone"):
        OrderEvent("e1", key(), Source.ORDERS_V0, body=OrderSnapshot(status=OrderStatus.PENDING), **times)


def test_snapshot_purchase_time_without_a_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        OrderSnapshot(status=OrderStatus.PENDING, purchased_at=datetime(2024, 3, 4))


def test_event_with_a_time_zone_is_accepted() -> None:
    event = OrderEvent("e1", key(), Source.ORDERS_V0, T0, T0.astimezone(UTC), OrderSnapshot())
    assert event.stamp == Stamp(T0, "e1")
