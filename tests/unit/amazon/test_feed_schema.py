"""The order acknowledgement feed checked against OrderAcknowledgement.xsd's rules."""

import pytest

from cancelguard.amazon.feed_xml import (
    CancelReason,
    ItemCancel,
    OrderCancel,
    build_cancel_feed,
    check_order_acknowledgement_feed,
)

GOOD = build_cancel_feed(
    "A3TH9S8BH6GOGM",
    [OrderCancel("114-1234567-1234567", (ItemCancel("12345678901234", CancelReason.BUYER_CANCELED),))],
)


def test_the_feed_we_build_keeps_the_schema() -> None:
    assert check_order_acknowledgement_feed(GOOD) == []


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ((b"<StatusCode>Failure</StatusCode>", b"<StatusCode>Cancel</StatusCode>"), "Success or Failure"),
        ((b"BuyerCanceled", b"PricingError"), "CancelReason"),
        ((b"<MessageID>1</MessageID>", b"<MessageID>x</MessageID>"), "MessageID"),
        ((b"<CancelReason>BuyerCanceled</CancelReason>", b""), "needs a CancelReason"),
        (
            (b"<MessageType>OrderAcknowledgement</MessageType>", b"<MessageType>Order</MessageType>"),
            "MessageType",
        ),
        ((b"<AmazonOrderID>114-1234567-1234567</AmazonOrderID>", b""), "AmazonOrderID"),
        ((b"<Item>", b"<Item><Extra/>"), "unexpected element Extra"),
    ],
)
def test_each_broken_rule_is_named(edit: tuple[bytes, bytes], says: str) -> None:
    problems = check_order_acknowledgement_feed(GOOD.replace(*edit))
    assert any(says in p for p in problems), problems


def test_not_xml_or_with_entities_is_refused() -> None:
    assert check_order_acknowledgement_feed(b"<AmazonEnvelope>")
    assert check_order_acknowledgement_feed(b'<!DOCTYPE x [<!ENTITY a "b">]><AmazonEnvelope/>')
