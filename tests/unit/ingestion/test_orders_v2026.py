"""Orders API v2026-01-01 Order -> order snapshot that says who cancelled: Amazon's own examples, the
quirks, bad input, and what attribution makes of it through the real fold."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.attribution import Rule, Verdict, attribute
from cancelguard.domain.bounds import check_event
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import (
    CancelledBy,
    Channel,
    InvalidInput,
    OrderEvent,
    OrderSnapshot,
    OrderStatus,
    Source,
)
from cancelguard.domain.policy import policy_for
from cancelguard.events import codec
from cancelguard.ingestion.adapters.orders_v0 import parse_order_v0
from cancelguard.ingestion.adapters.orders_v2026 import parse_order_v2026

from .documents import DELETE, assert_valid_or_refused, changed, fixture, json_values, mangled, nested

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
SELLER = "A3TH9S8BH6GOGM"
EXAMPLE = fixture("orders_2026_search_orders_example.json")["orders"][0]
JP_SANDBOX = fixture("orders_2026_search_orders_sandbox_jp.json")["orders"][0]
I0 = "orderItems.0"


def parse(order: Any = EXAMPLE, **kw: Any) -> OrderEvent:
    return parse_order_v2026(order, seller_account=SELLER, observed_at=NOW, **kw)


def snapshot(order: Any = EXAMPLE, **kw: Any) -> OrderSnapshot:
    body = parse(order, **kw).body
    assert isinstance(body, OrderSnapshot)
    return body


def test_amazons_example_says_who_cancelled_and_that_the_buyer_asked() -> None:
    event = parse()
    assert event.event_id == "orders-v2026:123-4567890-1234567:2024-12-25T14:45:00+00:00"
    assert (event.key.seller_account, event.key.marketplace_id, event.key.amazon_order_id) == (
        SELLER,
        "ATVPDKIKX0DER",
        "123-4567890-1234567",
    )
    assert event.source is Source.ORDERS_V2026
    assert event.occurred_at == datetime(2024, 12, 25, 14, 45, tzinfo=UTC)  # lastUpdatedTime
    body = event.body
    assert isinstance(body, OrderSnapshot)
    assert (body.status, body.channel) == (OrderStatus.SHIPPED, Channel.MFN)  # fulfilledBy MERCHANT
    assert body.purchased_at == datetime(2024, 12, 25, 10, 30, tzinfo=UTC)  # createdTime
    assert body.latest_ship_at == datetime(2024, 12, 27, 23, 59, 59, tzinfo=UTC)  # shipByWindow
    first, second = body.items
    assert (first.order_item_id, first.seller_sku, first.quantity_ordered, first.quantity_shipped) == (
        "12345678901234",
        "ECHO-DOT-4-CHARCOAL",
        2,
        2,
    )
    assert (first.buyer_requested_cancel, first.buyer_cancel_reason) == (True, "Changed mind about purchase")
    assert (first.cancelled_by, first.cancel_reason) == (CancelledBy.MERCHANT, "Buyer requested cancellation")
    # CANCELLATION was requested: no cancellationRequest means no request
    assert (second.buyer_requested_cancel, second.cancelled_by) == (False, None)
    check_event(event, now=NOW)
    assert codec.decode(codec.encode(event)) == event


def test_the_sandbox_order_fulfilled_by_amazon() -> None:
    body = snapshot(JP_SANDBOX)
    assert (body.status, body.channel) == (OrderStatus.SHIPPED, Channel.AFN)
    assert parse(JP_SANDBOX).key.marketplace_id == "A1VC38T7YXB528"
    assert [i.buyer_requested_cancel for i in body.items] == [False, False]


def test_without_cancellation_included_a_missing_request_reads_as_unknown() -> None:
    event = parse(cancellation_included=False)
    first, second = event.body.items  # type: ignore[union-attr]
    assert (first.buyer_requested_cancel, second.buyer_requested_cancel) == (True, None)
    assert event.event_id.endswith(":without-cancellation")  # another observation, another id


def test_buyer_personal_data_never_reaches_the_event() -> None:
    shown = repr(parse()) + repr(parse(JP_SANDBOX))
    for personal in (
        "John Smith",
        "buyer-email@",
        "123 Main Street",
        "98101",
        "555-123-4567",
        "Happy Holidays",
    ):
        assert personal not in shown
    for personal in ("Smith Industries", "PO-2024-12345", "front desk", "amazon.com/custom"):
        assert personal.casefold() not in shown.casefold()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("PENDING_AVAILABILITY", OrderStatus.PENDING_AVAILABILITY),
        ("PENDING", OrderStatus.PENDING),
        ("UNSHIPPED", OrderStatus.UNSHIPPED),
        ("PARTIALLY_SHIPPED", OrderStatus.PARTIALLY_SHIPPED),
        ("SHIPPED", OrderStatus.SHIPPED),
        ("CANCELLED", OrderStatus.CANCELED),  # v2026 spells it with two l's
        ("UNFULFILLABLE", OrderStatus.UNFULFILLABLE),
    ],
)
def test_every_v2026_status(status: str, expected: OrderStatus) -> None:
    assert snapshot(changed(EXAMPLE, "fulfillment.fulfillmentStatus", status)).status is expected


@pytest.mark.parametrize("by", ["BUYER", "MERCHANT", "AMAZON", "amazon"])
def test_every_canceller(by: str) -> None:
    doc = changed(EXAMPLE, f"{I0}.cancellation.cancellationExecution.cancelledBy", by)
    assert snapshot(doc).items[0].cancelled_by is CancelledBy(by.upper())


def test_a_cancel_without_a_request() -> None:
    doc = changed(EXAMPLE, f"{I0}.cancellation.cancellationRequest", DELETE)
    item = snapshot(doc).items[0]
    assert (item.buyer_requested_cancel, item.buyer_cancel_reason, item.cancelled_by) == (
        False,
        "",
        CancelledBy.MERCHANT,
    )


def test_the_polled_marketplace_stands_in_only_when_the_order_has_none() -> None:
    no_marketplace = changed(EXAMPLE, "salesChannel.marketplaceId", DELETE)
    assert parse(no_marketplace, marketplace_id="A1PA6795UKMFR9").key.marketplace_id == "A1PA6795UKMFR9"
    assert parse(marketplace_id="A1PA6795UKMFR9").key.marketplace_id == "ATVPDKIKX0DER"


REQUEST, EXECUTION = f"{I0}.cancellation.cancellationRequest", f"{I0}.cancellation.cancellationExecution"

# (order, the reason code, what the message says)
BAD_INPUT = [
    (b"{not json", "NOT_JSON", "not JSON"),
    (b"[]", "NOT_AN_OBJECT", "JSON object"),
    (nested(100_000), "TOO_DEEP", "nested too deeply"),
    (changed(EXAMPLE, "orderId", DELETE), "MISSING_FIELD", "has no orderId"),
    (changed(EXAMPLE, "orderId", "123-4567890\x001234567"), "BAD_IDENTIFIER", "control characters"),
    (changed(EXAMPLE, "orderId", "\udfff"), "BAD_IDENTIFIER", "printable ASCII"),
    (changed(EXAMPLE, "orderId", ["123"]), "BAD_IDENTIFIER", "must be a string"),
    (changed(EXAMPLE, "salesChannel", "AMAZON"), "NOT_AN_OBJECT", "salesChannel must be an object"),
    (changed(EXAMPLE, "salesChannel.marketplaceId", DELETE), "MISSING_FIELD", "no marketplace was given"),
    (changed(EXAMPLE, "createdTime", DELETE), "MISSING_FIELD", "has no createdTime"),
    (changed(EXAMPLE, "createdTime", "0001-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "outside 2000-01-01"),
    (changed(EXAMPLE, "createdTime", "1970-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "createdTime"),
    (changed(EXAMPLE, "createdTime", "2999-12-25T10:30:00Z"), "TIME_OUT_OF_RANGE", "createdTime"),
    (changed(EXAMPLE, "createdTime", "2024-12-25T10:30:00"), "BAD_TIME", "no time zone"),
    (changed(EXAMPLE, "lastUpdatedTime", None), "MISSING_FIELD", "has no lastUpdatedTime"),
    (changed(EXAMPLE, "lastUpdatedTime", "9999-12-31T23:59:59-01:00"), "TIME_OUT_OF_RANGE", "out of range"),
    (changed(EXAMPLE, "fulfillment", DELETE), "MISSING_FIELD", "includedData=FULFILLMENT"),
    (
        changed(EXAMPLE, "fulfillment.fulfillmentStatus", "CANCELED_BY_BUYER"),
        "UNKNOWN_VALUE",
        "unknown order status",
    ),
    (
        changed(EXAMPLE, "fulfillment.fulfillmentStatus", DELETE),
        "MISSING_FIELD",
        "fulfillment.fulfillmentStatus",
    ),
    (changed(EXAMPLE, "fulfillment.fulfilledBy", "SELLER_PARTNER"), "UNKNOWN_VALUE", "fulfilment channel"),
    (changed(EXAMPLE, "fulfillment.shipByWindow", "soon"), "NOT_AN_OBJECT", "shipByWindow must be an object"),
    (
        changed(EXAMPLE, "fulfillment.shipByWindow.latestDateTime", "2999-01-01T00:00:00Z"),
        "TIME_OUT_OF_RANGE",
        "shipByWindow.latestDateTime",
    ),
    (changed(EXAMPLE, "orderItems", DELETE), "MISSING_FIELD", "has no orderItems"),
    (changed(EXAMPLE, "orderItems", {"0": {}}), "WRONG_TYPE", "orderItems must be a list"),
    (changed(EXAMPLE, "orderItems", [{}] * 1001), "OUT_OF_RANGE", "at most 1000"),
    (changed(EXAMPLE, I0, 7), "NOT_AN_OBJECT", "orderItems[0] must be an object"),
    (changed(EXAMPLE, f"{I0}.orderItemId", ""), "MISSING_FIELD", "orderItemId is empty"),
    (changed(EXAMPLE, f"{I0}.quantityOrdered", 2**31), "OUT_OF_RANGE", "quantityOrdered is 2147483648"),
    (changed(EXAMPLE, f"{I0}.quantityOrdered", 2.5), "OUT_OF_RANGE", "whole number"),
    (changed(EXAMPLE, f"{I0}.fulfillment.quantityFulfilled", -2), "OUT_OF_RANGE", "quantityFulfilled is -2"),
    (changed(EXAMPLE, f"{I0}.product", "ECHO"), "NOT_AN_OBJECT", "product must be an object"),
    (changed(EXAMPLE, f"{I0}.product.sellerSku", "ECHO\x1b"), "BAD_TEXT", "control character"),
    (changed(EXAMPLE, f"{I0}.cancellation", []), "NOT_AN_OBJECT", "cancellation must be an object"),
    (changed(EXAMPLE, REQUEST, "BUYER"), "NOT_AN_OBJECT", "cancellationRequest must be an object"),
    (changed(EXAMPLE, f"{REQUEST}.requester", "MERCHANT"), "UNKNOWN_VALUE", "expected BUYER"),
    (changed(EXAMPLE, f"{REQUEST}.requester", DELETE), "MISSING_FIELD", "cancellationRequest.requester"),
    (changed(EXAMPLE, f"{REQUEST}.cancelReason", "\ud800"), "BAD_TEXT", "lone surrogate"),
    (changed(EXAMPLE, f"{EXECUTION}.cancelledBy", "SELLER"), "UNKNOWN_VALUE", "unknown cancelledBy 'SELLER'"),
    (
        changed(EXAMPLE, f"{EXECUTION}.cancelledBy", "UNKNOWN"),
        "UNKNOWN_VALUE",
        "unknown cancelledBy 'UNKNOWN'",
    ),
    (
        changed(EXAMPLE, f"{EXECUTION}.cancelledBy", DELETE),
        "MISSING_FIELD",
        "cancellationExecution.cancelledBy",
    ),
    (changed(EXAMPLE, f"{EXECUTION}.cancelReason", "No\x00Inventory"), "BAD_TEXT", "control character"),
]


@pytest.mark.parametrize(("doc", "reason", "says"), BAD_INPUT, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_says_what_is_wrong(doc: Any, reason: str, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(doc)
    assert err.value.reason == reason, str(err.value)
    assert says in str(err.value)


@given(
    value=json_values,
    where=st.sampled_from(
        [
            "",
            "salesChannel",
            "fulfillment",
            "fulfillment.shipByWindow",
            "orderItems",
            I0,
            f"{I0}.product",
            f"{I0}.cancellation",
            REQUEST,
            EXECUTION,
            f"{I0}.fulfillment",
            "orderItems.1",
        ]
    ),
    key=st.sampled_from(
        [
            "orderId",
            "createdTime",
            "lastUpdatedTime",
            "marketplaceId",
            "fulfillmentStatus",
            "fulfilledBy",
            "latestDateTime",
            "orderItemId",
            "quantityOrdered",
            "quantityFulfilled",
            "sellerSku",
            "requester",
            "cancelledBy",
            "cancelReason",
            "cancellationRequest",
            "cancellationExecution",
            "other",
        ]
    ),
)
@settings(max_examples=400, deadline=None)
def test_any_mangled_order_is_parsed_into_a_valid_event_or_refused_with_a_reason(
    value: Any, where: str, key: str
) -> None:
    assert_valid_or_refused(lambda: parse(mangled(EXAMPLE, where, key, value)), now=NOW)


# --- attribution through the real fold: what v2026 tells apart that v0 could not ---------------------

PURCHASED = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
H, DAY = timedelta(hours=1), timedelta(days=1)


def v2026_order(
    at: timedelta, status: str, *, request: str | None = None, by: str | None = None, reason: str = ""
) -> OrderEvent:
    """Amazon's example as the order's state at purchase + `at`: one item, its request and its cancel."""
    item: dict[str, Any] = {
        "orderItemId": "12345678901234",
        "quantityOrdered": 1,
        "product": {"sellerSku": "MUG"},
    }
    cancellation: dict[str, Any] = {}
    if request is not None:
        cancellation["cancellationRequest"] = {"requester": "BUYER", "cancelReason": request}
    if by is not None:
        cancellation["cancellationExecution"] = {"cancelledBy": by, "cancelReason": reason}
    if cancellation:
        item["cancellation"] = cancellation
    doc = changed(EXAMPLE, "orderItems", [item])
    doc = changed(doc, "createdTime", PURCHASED.isoformat())
    doc = changed(doc, "lastUpdatedTime", (PURCHASED + at).isoformat())
    doc = changed(doc, "fulfillment.shipByWindow.latestDateTime", (PURCHASED + 2 * DAY).isoformat())
    return parse(changed(doc, "fulfillment.fulfillmentStatus", status))


UNSHIPPED = v2026_order(H, "UNSHIPPED")
REQUESTED = v2026_order(2 * H, "UNSHIPPED", request="Changed mind about purchase")

# the order's v2026 history -> (rule, verdict, who)
ATTRIBUTION = {
    "MERCHANT NoInventory": (
        [UNSHIPPED, v2026_order(5 * H, "CANCELLED", by="MERCHANT", reason="NoInventory")],
        Rule.SELLER_CANCEL_UNSHIPPED,
        Verdict.COUNTED,
        CancelledBy.MERCHANT,
    ),
    "MERCHANT BuyerCanceled, no request": (
        [UNSHIPPED, v2026_order(5 * H, "CANCELLED", by="MERCHANT", reason="BuyerCanceled")],
        Rule.BUYER_CANCELED_WITHOUT_FORMAL_REQUEST,
        Verdict.COUNTED,
        CancelledBy.MERCHANT,
    ),
    "request, then MERCHANT as Amazon's example words it": (
        [
            UNSHIPPED,
            REQUESTED,
            v2026_order(
                5 * H,
                "CANCELLED",
                request="Changed mind",
                by="MERCHANT",
                reason="Buyer requested cancellation",
            ),
        ],
        Rule.FORMAL_REQUEST_BEFORE_CANCEL,
        Verdict.EXCLUDED,
        CancelledBy.MERCHANT,
    ),
    "request, then MERCHANT BuyerCanceled, the request gone from the cancelled order": (
        [UNSHIPPED, REQUESTED, v2026_order(5 * H, "CANCELLED", by="MERCHANT", reason="BuyerCanceled")],
        Rule.FORMAL_REQUEST_BEFORE_CANCEL,
        Verdict.EXCLUDED,
        CancelledBy.MERCHANT,
    ),
    "AMAZON, not shipped in time": (
        [
            UNSHIPPED,
            v2026_order(8 * DAY, "CANCELLED", by="AMAZON", reason="Not shipped by the ship-by date"),
        ],
        Rule.AMAZON_AUTO_CANCEL_NOT_SHIPPED,
        Verdict.COUNTED,
        CancelledBy.AMAZON,
    ),
    "AMAZON, payment": (
        [UNSHIPPED, v2026_order(3 * H, "CANCELLED", by="AMAZON", reason="Payment authorization failed")],
        Rule.AMAZON_PAYMENT_OR_FRAUD,
        Verdict.EXCLUDED,
        CancelledBy.AMAZON,
    ),
    "BUYER": (
        [UNSHIPPED, v2026_order(5 * H, "CANCELLED", by="BUYER", reason="Ordered by mistake")],
        Rule.BUYER_SELF_CANCEL,
        Verdict.EXCLUDED,
        CancelledBy.BUYER,
    ),
}


@pytest.mark.parametrize("case", ATTRIBUTION)
def test_v2026_events_give_the_rule_through_the_real_fold(case: str) -> None:
    events, rule, verdict, by = ATTRIBUTION[case]
    for arrival in (events, events[::-1]):  # whatever order the polls land in
        order = fold(arrival)
        assert order is not None
        got = attribute(order, policy_for("ATVPDKIKX0DER"))
        assert (got.rule, got.verdict, got.cancelled_by) == (rule, verdict, by), got.explanation
        assert not got.needs_review


def test_the_same_cancel_seen_through_v0_is_unknown_and_flagged_for_review() -> None:
    cancelled = v2026_order(5 * H, "CANCELLED", by="MERCHANT", reason="NoInventory")
    v0 = {
        "AmazonOrderId": cancelled.key.amazon_order_id,
        "PurchaseDate": PURCHASED.isoformat(),
        "LastUpdateDate": cancelled.occurred_at.isoformat(),
        "OrderStatus": "Canceled",
        "FulfillmentChannel": "MFN",
        "MarketplaceId": "ATVPDKIKX0DER",
    }
    order = fold([UNSHIPPED, parse_order_v0(v0, seller_account=SELLER, observed_at=NOW)])
    assert order is not None
    got = attribute(order, policy_for("ATVPDKIKX0DER"))
    assert (got.rule, got.needs_review) == (Rule.UNKNOWN_CANCELLER, True)
