"""The order acknowledgement (cancel) feed and the processing report: build, parse, refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cancelguard.amazon.errors import FeedFormatError
from cancelguard.amazon.feed_xml import (
    CancelReason,
    ItemCancel,
    OrderCancel,
    ProcessingReport,
    ProcessingResult,
    build_cancel_feed,
    build_processing_report,
    cancels_by_order,
    parse_order_acknowledgement_feed,
    parse_processing_report,
)

FIXTURE = Path(__file__).parents[2] / "fixtures/amazon/order_acknowledgement_cancel.xml"


def test_the_cancel_reasons_are_the_xsds() -> None:
    assert [r.value for r in CancelReason] == [
        "NoInventory",
        "ShippingAddressUndeliverable",
        "CustomerExchange",
        "BuyerCanceled",
        "GeneralAdjustment",
        "CarrierCreditDecision",
        "RiskAssessmentInformationNotValid",
        "CarrierCoverageFailure",
        "CustomerReturn",
        "MerchandiseNotReceived",
    ]


def test_reads_the_documented_example() -> None:
    merchant, messages = parse_order_acknowledgement_feed(FIXTURE.read_bytes())
    assert merchant == "SELLER_ID"
    assert [(m.message_id, m.amazon_order_id, m.status_code) for m in messages] == [
        ("1", "114-1234567-1234567", "Failure")
    ]
    assert [(i.amazon_order_item_code, i.cancel_reason) for i in messages[0].items] == [
        ("12345678901234", "BuyerCanceled")
    ]


def test_builds_the_documented_shape() -> None:
    xml = build_cancel_feed(
        "SELLER_ID",
        [OrderCancel("114-1234567-1234567", (ItemCancel("12345678901234", CancelReason.BUYER_CANCELED),))],
    )
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert parse_order_acknowledgement_feed(xml) == parse_order_acknowledgement_feed(FIXTURE.read_bytes())
    text = xml.decode()
    for fragment in (
        "<MessageType>OrderAcknowledgement</MessageType>",
        "<StatusCode>Failure</StatusCode>",
        "<DocumentVersion>1.01</DocumentVersion>",
        'xsi:noNamespaceSchemaLocation="amzn-envelope.xsd"',
    ):
        assert fragment in text


ids = st.text(alphabet="0123456789-", min_size=1, max_size=19)


@given(
    st.lists(
        st.tuples(ids, st.lists(st.tuples(ids, st.sampled_from(list(CancelReason))), min_size=1, max_size=4)),
        min_size=1,
        max_size=8,
    )
)
def test_round_trip(orders: list) -> None:
    cancels = [OrderCancel(o, tuple(ItemCancel(i, r) for i, r in items)) for o, items in orders]
    merchant, messages = parse_order_acknowledgement_feed(build_cancel_feed("A1SELLER & <co>", cancels))
    assert merchant == "A1SELLER & <co>"
    assert [m.message_id for m in messages] == [str(n) for n in range(1, len(cancels) + 1)]
    assert [
        (m.amazon_order_id, [(i.amazon_order_item_code, i.cancel_reason) for i in m.items]) for m in messages
    ] == [(c.amazon_order_id, [(i.amazon_order_item_code, i.reason.value) for i in c.items]) for c in cancels]


@pytest.mark.parametrize(
    ("document", "names"),
    [
        (b"not xml", "not well-formed"),
        (b"<Foo/>", "root element is Foo"),
        (
            b"<AmazonEnvelope><MessageType>OrderAcknowledgement</MessageType></AmazonEnvelope>",
            "missing Header",
        ),
        (
            b"<AmazonEnvelope><Header><MerchantIdentifier>A</MerchantIdentifier></Header>"
            b"<MessageType>OrderFulfillment</MessageType></AmazonEnvelope>",
            "expected OrderAcknowledgement",
        ),
        (
            b"<AmazonEnvelope><Header><MerchantIdentifier>A</MerchantIdentifier></Header>"
            b"<MessageType>OrderAcknowledgement</MessageType></AmazonEnvelope>",
            "no Message",
        ),
        (
            b"<AmazonEnvelope><Header><MerchantIdentifier>A</MerchantIdentifier></Header>"
            b"<MessageType>OrderAcknowledgement</MessageType><Message><MessageID>1</MessageID><OrderAcknowledgement>"
            b"<StatusCode>Failure</StatusCode></OrderAcknowledgement></Message></AmazonEnvelope>",
            r"Message\[1\]/OrderAcknowledgement: missing AmazonOrderID",
        ),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><AmazonEnvelope/>', "DOCTYPE"),
    ],
)
def test_unreadable_feeds_name_the_problem(document: bytes, names: str) -> None:
    with pytest.raises(FeedFormatError, match=names):
        parse_order_acknowledgement_feed(document)


def test_processing_report_round_trip() -> None:
    report = ProcessingReport(
        "50001",
        "Complete",
        3,
        1,
        2,
        0,
        (
            ProcessingResult("2", "Error", "90102", "Order is Shipped", "111-1-1"),
            ProcessingResult("3", "Error", "90103", "Item 9 is not part of the order", "111-1-2", "9"),
        ),
    )
    parsed = parse_processing_report(build_processing_report("A1SELLER", report))
    assert parsed == report
    assert [r.message_code for r in parsed.errors_for("3")] == ["90103"]
    assert parsed.errors_for("1") == []


@pytest.mark.parametrize(
    ("document", "names"),
    [
        (b"<AmazonEnvelope/>", "missing AmazonEnvelope/Message/ProcessingReport"),
        (
            b"<AmazonEnvelope><Message><ProcessingReport><StatusCode>Complete</StatusCode></ProcessingReport>"
            b"</Message></AmazonEnvelope>",
            "missing ProcessingSummary",
        ),
        (
            b"<AmazonEnvelope><Message><ProcessingReport><StatusCode>Complete</StatusCode><ProcessingSummary>"
            b"<MessagesProcessed>x</MessagesProcessed></ProcessingSummary></ProcessingReport></Message></AmazonEnvelope>",
            "MessagesProcessed: 'x' is not an integer",
        ),
    ],
)
def test_unreadable_processing_reports_name_the_element(document: bytes, names: str) -> None:
    with pytest.raises(FeedFormatError, match=names):
        parse_processing_report(document)


def test_cancels_group_by_order_and_a_cancel_needs_an_item() -> None:
    grouped = cancels_by_order(
        [
            ("A", "1", CancelReason.NO_INVENTORY),
            ("B", "2", CancelReason.BUYER_CANCELED),
            ("A", "3", CancelReason.NO_INVENTORY),
        ]
    )
    assert [(c.amazon_order_id, [i.amazon_order_item_code for i in c.items]) for c in grouped] == [
        ("A", ["1", "3"]),
        ("B", ["2"]),
    ]
    with pytest.raises(ValueError):
        OrderCancel("A", ())
