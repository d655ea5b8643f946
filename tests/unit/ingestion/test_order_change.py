"""ORDER_CHANGE notification -> order event: Amazon's example, the quirks, and bad input."""

import contextlib
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.model import Channel, InvalidInput, OrderSnapshot, OrderStatus, Source
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
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


_DELETE = object()
S = "Payload.OrderChangeNotification.Summary"


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "JSON object"),
        (_set("NotificationType", "ANY_OFFER_CHANGED"), "expected NotificationType ORDER_CHANGE"),
        (_set("NotificationMetadata.NotificationId", _DELETE), "NotificationMetadata.NotificationId"),
        (
            _set("Payload.OrderChangeNotification.AmazonOrderId", ""),
            "AmazonOrderId must be a non-empty string",
        ),
        (_set(f"{S}.OrderStatus", "Lost"), "unknown order status 'Lost'"),
        (_set(f"{S}.FulfillmentType", "DROPSHIP"), "unknown fulfilment channel"),
        (_set(f"{S}.PurchaseDate", "yesterday"), "Summary.PurchaseDate"),
        (_set(f"{S}.PurchaseDate", "2022-07-13T19:42:04"), "no time zone"),
        (_set(f"{S}.OrderItems", {}), "must be a list"),
        (_set(f"{S}.OrderItems.0.Quantity", -1), "Quantity must be a whole number"),
        (_set(f"{S}.OrderItems.0.IsBuyerRequestedCancel", "maybe"), "expected a boolean"),
        (_set(f"{S}.MarketplaceId", _DELETE), "Summary.MarketplaceId"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input_says_what_is_wrong(doc: Any, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_order_change(doc, observed_at=NOW)
    assert says in str(err.value)


def test_v2026_status_spelling_is_accepted_too() -> None:
    body = parse_order_change(_set(f"{S}.OrderStatus", "CANCELLED"), observed_at=NOW).body
    assert isinstance(body, OrderSnapshot)
    assert body.status is OrderStatus.CANCELED


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
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
    with contextlib.suppress(InvalidInput):  # refused with a reason is fine; any other exception fails
        parse_order_change(json.dumps(doc), observed_at=NOW)
