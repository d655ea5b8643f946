"""ORDER_CHANGE notification -> order event: Amazon's example, the quirks, and bad input."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.bounds import Reason, check_event
from cancelguard.domain.model import Channel, InvalidInput, OrderSnapshot, OrderStatus, Source
from cancelguard.events import codec
from cancelguard.ingestion.adapters.order_change import parse_order_change

EXAMPLE = json.loads((Path(__file__).parents[2] / "fixtures/amazon/order_change_example.json").read_text())
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def test_amazons_example_becomes_a_snapshot_with_the_request_flag() -> None:
    event = parse_order_change(json.dumps(EXAMPLE).encode(), observed_at=NOW)
    assert event.event_id == "order-change:d0e9e693-c3ad-4373-979f-ed4ec98dd746"
    assert (event.key.seller_account, event.key.marketplace_id, event.key.amazon_order_id) == (
        "A3TH9S8BH6GOGM",
        "ATVPDKIKX0DER",
        "903-8868176-2219830",
    )
    assert event.source is Source.ORDER_CHANGE
    assert event.occurred_at == datetime(2022, 11, 29, 19, 42, 4, 284000, tzinfo=UTC)  # TimeOfOrderChange
    assert event.observed_at == NOW
    body = event.body
    assert isinstance(body, OrderSnapshot)
    assert body.status is OrderStatus.UNSHIPPED
    assert body.channel is Channel.MFN
    assert body.purchased_at == datetime(2022, 7, 13, 19, 42, 4, 284000, tzinfo=UTC)
    [item] = body.items
    assert (item.order_item_id, item.seller_sku, item.quantity_ordered, item.quantity_shipped) == (
        "OIID34853450",
        "SellerSKUID1",
        10,
        0,
    )
    assert item.buyer_requested_cancel is True


def test_the_postal_code_does_not_travel() -> None:
    event = parse_order_change(EXAMPLE, observed_at=NOW)
    assert "48110" not in repr(event)


def test_a_null_time_of_change_falls_back_to_event_time() -> None:
    doc = example()
    doc["Payload"]["OrderChangeNotification"]["OrderChangeTrigger"]["TimeOfOrderChange"] = None
    assert parse_order_change(doc, observed_at=NOW).occurred_at == datetime(
        2020, 1, 11, 0, 9, 53, 109000, tzinfo=UTC
    )


def test_a_missing_request_flag_means_the_source_does_not_say() -> None:
    doc = example()
    del doc["Payload"]["OrderChangeNotification"]["Summary"]["OrderItems"][0]["IsBuyerRequestedCancel"]
    body = parse_order_change(doc, observed_at=NOW).body
    assert isinstance(body, OrderSnapshot)
    assert body.items[0].buyer_requested_cancel is None


def _set(path: str, value: Any) -> dict[str, Any]:
    doc = example()
    node = doc
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    index: Any = int(last) if last.isdigit() else last
    if value is _DELETE:
        del node[index]
    else:
        node[index] = value
    return doc


_DELETE = object()
S = "Payload.OrderChangeNotification.Summary"


def _nested(depth: int) -> bytes:
    return b'{"NotificationType": "ORDER_CHANGE", "x": ' + b"[" * depth + b"]" * depth + b"}"


OCN = "Payload.OrderChangeNotification"

# (input, the dead-letter reason code, what the message says)
BAD_INPUT = [
    (b"{not json", "NOT_JSON", "not JSON"),
    (b"\xff\xfe", "NOT_JSON", "not JSON"),
    (b"[]", "NOT_AN_OBJECT", "JSON object"),
    (_nested(100_000), "TOO_DEEP", "nested too deeply"),
    (_set("NotificationType", "ANY_OFFER_CHANGED"), "WRONG_TYPE", "expected NotificationType ORDER_CHANGE"),
    (
        _set("NotificationMetadata.NotificationId", _DELETE),
        "MISSING_FIELD",
        "NotificationMetadata.NotificationId",
    ),
    (_set(f"{OCN}.AmazonOrderId", ""), "MISSING_FIELD", f"{OCN}.AmazonOrderId is empty"),
    (_set(f"{OCN}.AmazonOrderId", "903-8868176-2219830 "), "BAD_IDENTIFIER", "without spaces"),
    (_set(f"{OCN}.AmazonOrderId", "903\x008868176"), "BAD_IDENTIFIER", "control characters"),
    (_set(f"{OCN}.AmazonOrderId", "\ud800"), "BAD_IDENTIFIER", "printable ASCII"),
    (_set(f"{OCN}.AmazonOrderId", "9" * 65), "BAD_IDENTIFIER", "at most 64"),
    (_set(f"{OCN}.AmazonOrderId", 903), "BAD_IDENTIFIER", "must be a string"),
    (_set(f"{OCN}.SellerId", "A3TH\ud800"), "BAD_IDENTIFIER", "SellerId"),
    (_set(f"{S}.OrderStatus", "Lost"), "UNKNOWN_VALUE", "unknown order status 'Lost'"),
    (_set(f"{S}.FulfillmentType", "DROPSHIP"), "UNKNOWN_VALUE", "unknown fulfilment channel"),
    (_set(f"{S}.PurchaseDate", _DELETE), "MISSING_FIELD", "Summary.PurchaseDate"),
    (_set(f"{S}.PurchaseDate", None), "MISSING_FIELD", "Summary.PurchaseDate"),
    (_set(f"{S}.PurchaseDate", "yesterday"), "BAD_TIME", "Summary.PurchaseDate"),
    (_set(f"{S}.PurchaseDate", 1657741324), "BAD_TIME", "ISO 8601 time string"),
    (_set(f"{S}.PurchaseDate", "2022-07-13T19:42:04"), "BAD_TIME", "no time zone"),
    (_set(f"{S}.PurchaseDate", "0001-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "outside 2000-01-01"),
    (_set(f"{S}.PurchaseDate", "0001-01-01T00:00:00+01:00"), "TIME_OUT_OF_RANGE", "out of range"),
    (_set(f"{S}.PurchaseDate", "1970-01-19T03:58:30Z"), "TIME_OUT_OF_RANGE", "Summary.PurchaseDate"),
    (_set(f"{S}.PurchaseDate", "2999-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "Summary.PurchaseDate"),
    (_set(f"{S}.LatestShipDate", "2999-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "Summary.LatestShipDate"),
    (
        _set(f"{OCN}.OrderChangeTrigger.TimeOfOrderChange", "9999-12-31T23:59:59-01:00"),
        "TIME_OUT_OF_RANGE",
        "",
    ),
    (_set(f"{S}.OrderItems", {}), "WRONG_TYPE", "must be a list"),
    (_set(f"{S}.OrderItems", [{}] * 1001), "OUT_OF_RANGE", "at most 1000"),
    (_set(f"{S}.OrderItems.0", "item"), "NOT_AN_OBJECT", "OrderItems[0] must be an object"),
    (_set(f"{S}.OrderItems.0.Quantity", -1), "OUT_OF_RANGE", "Quantity is -1"),
    (_set(f"{S}.OrderItems.0.Quantity", 2**31), "OUT_OF_RANGE", "expected 0 to 1,000,000"),
    (_set(f"{S}.OrderItems.0.Quantity", 1.5), "OUT_OF_RANGE", "whole number"),
    (_set(f"{S}.OrderItems.0.OrderItemId", _DELETE), "MISSING_FIELD", "OrderItems[0] has no OrderItemId"),
    (_set(f"{S}.OrderItems.0.SellerSKU", "SKU\ud800"), "BAD_TEXT", "lone surrogate"),
    (_set(f"{S}.OrderItems.0.SellerSKU", "SKU\x07"), "BAD_TEXT", "control character"),
    (_set(f"{S}.OrderItems.0.IsBuyerRequestedCancel", "maybe"), "UNKNOWN_VALUE", "expected a boolean"),
    (_set(f"{S}.MarketplaceId", _DELETE), "MISSING_FIELD", "Summary.MarketplaceId"),
]


@pytest.mark.parametrize(("doc", "reason", "says"), BAD_INPUT, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_says_what_is_wrong(doc: Any, reason: str, says: str) -> None:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(InvalidInput) as err:
        parse_order_change(raw, observed_at=NOW)
    assert err.value.reason == reason, str(err.value)
    assert says in str(err.value)


def test_v2026_status_spelling_is_accepted_too() -> None:
    body = parse_order_change(_set(f"{S}.OrderStatus", "CANCELLED"), observed_at=NOW).body
    assert isinstance(body, OrderSnapshot)
    assert body.status is OrderStatus.CANCELED


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.integers(min_value=2**31 - 2, max_value=2**63),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


@given(
    mutation=json_values,
    where=st.sampled_from(
        [
            "",
            "Payload",
            "Payload.OrderChangeNotification",
            f"{S}",
            f"{S}.OrderItems",
            f"{S}.OrderItems.0",
            "NotificationMetadata",
            "Payload.OrderChangeNotification.OrderChangeTrigger",
        ]
    ),
    key=st.text(max_size=25),
)
@settings(max_examples=300, deadline=None)
def test_any_mangled_notification_is_parsed_or_refused_with_invalid_input(
    mutation: Any, where: str, key: str
) -> None:
    doc = example()
    node: Any = doc
    for part in filter(None, where.split(".")):
        node = node[int(part)] if part.isdigit() else node[part]
    if isinstance(node, dict):
        node[key if key else "OrderStatus"] = mutation
    elif isinstance(node, list):
        node.append(mutation)
    try:
        event = parse_order_change(json.dumps(doc), observed_at=NOW)
    except InvalidInput as refused:  # refused with a reason is fine; any other exception fails
        assert refused.reason in {r.value for r in Reason}
        return
    # what is accepted keeps every bound and encodes
    check_event(event, now=NOW)
    codec.encode(event)
