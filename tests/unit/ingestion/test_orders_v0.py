"""Orders API v0 Order (+ OrderItems) -> order snapshot: Amazon's own examples, the quirks, bad input."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.bounds import check_event
from cancelguard.domain.model import Channel, InvalidInput, OrderEvent, OrderSnapshot, OrderStatus, Source
from cancelguard.events import codec
from cancelguard.ingestion.adapters.orders_v0 import parse_order_v0

from .documents import DELETE, assert_valid_or_refused, changed, fixture, json_values, mangled, nested

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
SELLER = "A3TH9S8BH6GOGM"
SANDBOX_ORDER = fixture("orders_v0_get_orders_example.json")["payload"]["Orders"][0]
SANDBOX_ITEMS = fixture("orders_v0_get_order_items_example.json")["payload"]["OrderItems"]
RESTRICTED_ORDER = fixture("orders_v0_get_orders_with_buyer_info_example.json")["payload"]["Orders"][0]
JP_ITEMS = fixture("orders_v0_get_order_items_jp_example.json")["payload"]["OrderItems"]


def redated(doc: Any) -> Any:
    """Amazon's sandbox dates its orders 1970-01-19 (outside the bounds): the same order in 2026."""
    return json.loads(json.dumps(doc).replace("1970-01-19", "2026-11-19"))


ORDER = redated(SANDBOX_ORDER)
ITEMS = redated(SANDBOX_ITEMS)


def parse(order: Any = ORDER, items: Any = None, **kw: Any) -> OrderEvent:
    return parse_order_v0(order, items, seller_account=SELLER, observed_at=NOW, **kw)


def snapshot(order: Any = ORDER, items: Any = None, **kw: Any) -> OrderSnapshot:
    body = parse(order, items, **kw).body
    assert isinstance(body, OrderSnapshot)
    return body


def test_the_sandbox_order_with_its_items_becomes_a_snapshot_with_the_string_request_flag() -> None:
    event = parse(ORDER, ITEMS)
    assert event.event_id == "orders-v0:902-1845936-5435065:2026-11-19T03:58:32+00:00:items"
    assert (event.key.seller_account, event.key.marketplace_id, event.key.amazon_order_id) == (
        SELLER,
        "ATVPDKIKX0DER",
        "902-1845936-5435065",
    )
    assert event.source is Source.ORDERS_V0
    assert event.occurred_at == datetime(2026, 11, 19, 3, 58, 32, tzinfo=UTC)  # LastUpdateDate
    body = event.body
    assert isinstance(body, OrderSnapshot)
    assert (body.status, body.channel) == (OrderStatus.UNSHIPPED, Channel.MFN)
    assert body.purchased_at == datetime(2026, 11, 19, 3, 58, 30, tzinfo=UTC)
    assert body.latest_ship_at == datetime(2026, 11, 19, 4, 5, 13, tzinfo=UTC)
    [item] = body.items
    assert (item.order_item_id, item.seller_sku, item.quantity_ordered, item.quantity_shipped) == (
        "05015851154158",
        "NABetaASINB00551Q3CS",
        1,
        0,
    )
    assert item.buyer_requested_cancel is True  # "true", a string in v0
    assert item.buyer_cancel_reason == "Found cheaper somewhere else."
    assert item.cancelled_by is None  # v0 never says who cancelled
    check_event(event, now=NOW)
    assert codec.decode(codec.encode(event)) == event


def test_the_sandbox_as_amazon_dates_it_is_refused_like_any_time_before_2000() -> None:
    with pytest.raises(InvalidInput) as err:
        parse(SANDBOX_ORDER, SANDBOX_ITEMS)
    assert err.value.reason == "TIME_OUT_OF_RANGE"
    assert "LastUpdateDate 1970-01-19T03:58:32+00:00 is outside 2000-01-01" in str(err.value)


def test_an_order_without_items_says_nothing_about_them_and_has_its_own_event_id() -> None:
    without, empty = parse(ORDER), parse(ORDER, [])
    assert without.body == empty.body and snapshot().items == ()
    assert without.event_id == "orders-v0:902-1845936-5435065:2026-11-19T03:58:32+00:00"
    assert empty.event_id == without.event_id + ":items"


def test_the_event_id_is_the_same_instant_however_amazon_spells_it() -> None:
    other = changed(ORDER, "LastUpdateDate", "2026-11-19T04:58:32+01:00")
    assert parse(other).event_id == parse(ORDER).event_id


def test_buyer_personal_data_never_reaches_the_event() -> None:
    event = parse(RESTRICTED_ORDER, JP_ITEMS)
    shown = repr(event)
    for personal in ("John Doe", "user@example.com", "48817", "1 Cross St.", "A Company Name", "For you!"):
        assert personal not in shown
    assert [i.buyer_requested_cancel for i in snapshot(RESTRICTED_ORDER, JP_ITEMS).items] == [True, True]


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("true", True),
        ("false", False),
        ("TRUE", True),
        (True, True),
        (False, False),
        ("", None),
        (None, None),
    ],
)
def test_the_request_flag_in_every_spelling_and_empty_means_unknown(flag: Any, expected: bool | None) -> None:
    items = changed(ITEMS, "0.BuyerRequestedCancel.IsBuyerRequestedCancel", flag)
    assert snapshot(items=items).items[0].buyer_requested_cancel is expected


def test_an_item_without_buyer_requested_cancel_does_not_say() -> None:
    items = changed(ITEMS, "0.BuyerRequestedCancel", DELETE)
    item = snapshot(items=items).items[0]
    assert (item.buyer_requested_cancel, item.buyer_cancel_reason) == (None, "")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("PendingAvailability", OrderStatus.PENDING_AVAILABILITY),
        ("Pending", OrderStatus.PENDING),
        ("Unshipped", OrderStatus.UNSHIPPED),
        ("PartiallyShipped", OrderStatus.PARTIALLY_SHIPPED),
        ("Shipped", OrderStatus.SHIPPED),
        ("InvoiceUnconfirmed", OrderStatus.INVOICE_UNCONFIRMED),
        ("Canceled", OrderStatus.CANCELED),
        ("Unfulfillable", OrderStatus.UNFULFILLABLE),
    ],
)
def test_every_v0_status(status: str, expected: OrderStatus) -> None:
    assert snapshot(changed(ORDER, "OrderStatus", status)).status is expected


def test_fulfilled_by_amazon_and_an_absent_channel() -> None:
    assert snapshot(changed(ORDER, "FulfillmentChannel", "AFN")).channel is Channel.AFN
    assert snapshot(changed(ORDER, "FulfillmentChannel", DELETE)).channel is None


def test_the_polled_marketplace_stands_in_only_when_the_order_has_none() -> None:
    assert parse(ORDER, marketplace_id="A1PA6795UKMFR9").key.marketplace_id == "ATVPDKIKX0DER"
    no_marketplace = changed(ORDER, "MarketplaceId", DELETE)
    assert parse(no_marketplace, marketplace_id="A1PA6795UKMFR9").key.marketplace_id == "A1PA6795UKMFR9"


def _item(path: str, value: Any) -> tuple[Any, Any]:
    return ORDER, changed(ITEMS, path, value)


def _order(path: str, value: Any) -> tuple[Any, Any]:
    return changed(ORDER, path, value), ITEMS


# ((order, items), the reason code, what the message says)
BAD_INPUT = [
    ((b"{not json", None), "NOT_JSON", "not JSON"),
    ((b"[]", None), "NOT_AN_OBJECT", "JSON object"),
    ((nested(100_000), None), "TOO_DEEP", "nested too deeply"),
    (_order("AmazonOrderId", DELETE), "MISSING_FIELD", "has no AmazonOrderId"),
    (_order("AmazonOrderId", "902-1845936\x005435065"), "BAD_IDENTIFIER", "control characters"),
    (_order("AmazonOrderId", "902\ud800"), "BAD_IDENTIFIER", "printable ASCII"),
    (_order("AmazonOrderId", "9" * 65), "BAD_IDENTIFIER", "at most 64"),
    (_order("AmazonOrderId", 902), "BAD_IDENTIFIER", "must be a string"),
    (_order("MarketplaceId", "ATVPDKIKX0DER "), "BAD_IDENTIFIER", "MarketplaceId"),
    (_order("MarketplaceId", DELETE), "MISSING_FIELD", "no marketplace was given"),
    (_order("OrderStatus", "Lost"), "UNKNOWN_VALUE", "OrderStatus: unknown order status 'Lost'"),
    (_order("OrderStatus", DELETE), "MISSING_FIELD", "has no OrderStatus"),
    (_order("FulfillmentChannel", "FBA"), "UNKNOWN_VALUE", "FulfillmentChannel: unknown fulfilment channel"),
    (_order("PurchaseDate", DELETE), "MISSING_FIELD", "has no PurchaseDate"),
    (_order("PurchaseDate", "yesterday"), "BAD_TIME", "PurchaseDate"),
    (_order("PurchaseDate", 1657741324), "BAD_TIME", "ISO 8601 time string"),
    (_order("PurchaseDate", "2026-11-19T03:58:30"), "BAD_TIME", "no time zone"),
    (_order("PurchaseDate", "0001-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "outside 2000-01-01"),
    (_order("PurchaseDate", "0001-01-01T00:00:00+01:00"), "TIME_OUT_OF_RANGE", "out of range"),
    (_order("PurchaseDate", "1970-01-19T03:58:30Z"), "TIME_OUT_OF_RANGE", "PurchaseDate"),
    (_order("PurchaseDate", "2999-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "PurchaseDate"),
    (_order("PurchaseDate", "2026-11-19T03:58:30Z\ud800"), "BAD_TEXT", "lone surrogate"),
    (_order("LastUpdateDate", DELETE), "MISSING_FIELD", "has no LastUpdateDate"),
    (_order("LatestShipDate", "2999-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "LatestShipDate"),
    ((ORDER, {"OrderItems": ITEMS}), "WRONG_TYPE", "OrderItems must be a list"),
    ((ORDER, [{}] * 1001), "OUT_OF_RANGE", "at most 1000"),
    ((ORDER, ["item"]), "NOT_AN_OBJECT", "OrderItems[0] must be an object"),
    (_item("0.OrderItemId", DELETE), "MISSING_FIELD", "OrderItems[0] has no OrderItemId"),
    (_item("0.OrderItemId", "0501 5851"), "BAD_IDENTIFIER", "without spaces"),
    (_item("0.QuantityOrdered", 2**31), "OUT_OF_RANGE", "QuantityOrdered is 2147483648"),
    (_item("0.QuantityOrdered", -1), "OUT_OF_RANGE", "expected 0 to 1,000,000"),
    (_item("0.QuantityOrdered", "1"), "OUT_OF_RANGE", "whole number"),
    (_item("0.QuantityShipped", True), "OUT_OF_RANGE", "whole number"),
    (_item("0.SellerSKU", "SKU\ud800"), "BAD_TEXT", "lone surrogate"),
    (_item("0.SellerSKU", "SKU\x00"), "BAD_TEXT", "control character"),
    (_item("0.BuyerRequestedCancel", "true"), "NOT_AN_OBJECT", "BuyerRequestedCancel must be an object"),
    (_item("0.BuyerRequestedCancel.IsBuyerRequestedCancel", "maybe"), "UNKNOWN_VALUE", "expected a boolean"),
    (_item("0.BuyerRequestedCancel.BuyerCancelReason", "x" * 1001), "BAD_TEXT", "at most 1000"),
    (_item("0.BuyerRequestedCancel.BuyerCancelReason", "\ud83d"), "BAD_TEXT", "lone surrogate"),
]


@pytest.mark.parametrize(("doc", "reason", "says"), BAD_INPUT, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_says_what_is_wrong(doc: tuple[Any, Any], reason: str, says: str) -> None:
    order, items = doc
    with pytest.raises(InvalidInput) as err:
        parse(order, items)
    assert err.value.reason == reason, str(err.value)
    assert says in str(err.value)


def test_a_bad_seller_account_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_order_v0(ORDER, seller_account="A3TH 9S8", observed_at=NOW)
    assert err.value.reason == "BAD_IDENTIFIER"


@given(
    value=json_values,
    where=st.sampled_from(
        ["", "AutomatedShippingSettings", "OrderTotal", "items", "items.0", "items.0.BuyerRequestedCancel"]
    ),
    key=st.sampled_from(
        [
            "AmazonOrderId",
            "OrderStatus",
            "PurchaseDate",
            "LastUpdateDate",
            "LatestShipDate",
            "MarketplaceId",
            "FulfillmentChannel",
            "OrderItemId",
            "QuantityOrdered",
            "QuantityShipped",
            "SellerSKU",
            "IsBuyerRequestedCancel",
            "BuyerCancelReason",
            "BuyerRequestedCancel",
            "other",
        ]
    ),
)
@settings(max_examples=400, deadline=None)
def test_any_mangled_order_is_parsed_into_a_valid_event_or_refused_with_a_reason(
    value: Any, where: str, key: str
) -> None:
    doc = mangled({**ORDER, "items": ITEMS}, where, key, value)
    items = doc.pop("items")
    assert_valid_or_refused(lambda: parse(doc, items if isinstance(items, list) else None), now=NOW)
