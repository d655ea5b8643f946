"""The XML of the order acknowledgement feed that cancels orders, and of its processing report.

`POST_ORDER_ACKNOWLEDGEMENT_DATA`: an `AmazonEnvelope` with `MessageType` `OrderAcknowledgement`, one
`Message` per order; to cancel, `StatusCode` `Failure` and one `Item` (`AmazonOrderItemCode` +
`CancelReason`) per item to cancel (Amazon's `OrderAcknowledgement.xsd`, release_1_9; see
docs/domain.md §3). `StatusCode` `Success` acknowledges an order instead.

The result document of an XML feed is a `ProcessingReport` envelope: a summary (messages processed,
successful, with error, with warning) and one `Result` per message that had an error or a warning. DONE
does not mean every message succeeded (feeds_2021-06-30.json: "Examine the contents of the result
document"). The simulator reads and writes the same formats through this module.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cancelguard.amazon.errors import FeedFormatError

ORDER_ACKNOWLEDGEMENT_FEED = "POST_ORDER_ACKNOWLEDGEMENT_DATA"
FEED_CONTENT_TYPE = "text/xml; charset=UTF-8"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


class CancelReason(enum.Enum):
    """`CancelReason` of OrderAcknowledgement.xsd, exactly."""

    NO_INVENTORY = "NoInventory"
    SHIPPING_ADDRESS_UNDELIVERABLE = "ShippingAddressUndeliverable"
    CUSTOMER_EXCHANGE = "CustomerExchange"
    BUYER_CANCELED = "BuyerCanceled"
    GENERAL_ADJUSTMENT = "GeneralAdjustment"
    CARRIER_CREDIT_DECISION = "CarrierCreditDecision"
    RISK_ASSESSMENT_INFORMATION_NOT_VALID = "RiskAssessmentInformationNotValid"
    CARRIER_COVERAGE_FAILURE = "CarrierCoverageFailure"
    CUSTOMER_RETURN = "CustomerReturn"
    MERCHANDISE_NOT_RECEIVED = "MerchandiseNotReceived"


@dataclass(frozen=True, slots=True)
class ItemCancel:
    amazon_order_item_code: str
    reason: CancelReason


@dataclass(frozen=True, slots=True)
class OrderCancel:
    amazon_order_id: str
    items: tuple[ItemCancel, ...]

    def __post_init__(self) -> None:
        if not self.amazon_order_id:
            raise ValueError("amazon_order_id is empty")
        if not self.items:
            raise ValueError(f"order {self.amazon_order_id}: a cancel names at least one item")


# --- the feed --------------------------------------------------------------------------------------


def _envelope(merchant_identifier: str, message_type: str, document_version: str) -> ET.Element:
    root = ET.Element("AmazonEnvelope")
    root.set("xmlns:xsi", _XSI)
    root.set("xsi:noNamespaceSchemaLocation", "amzn-envelope.xsd")
    header = ET.SubElement(root, "Header")
    ET.SubElement(header, "DocumentVersion").text = document_version
    ET.SubElement(header, "MerchantIdentifier").text = merchant_identifier
    ET.SubElement(root, "MessageType").text = message_type
    return root


def _serialise(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def build_cancel_feed(merchant_identifier: str, cancels: Sequence[OrderCancel]) -> bytes:
    """The POST_ORDER_ACKNOWLEDGEMENT_DATA document that cancels these items (MessageID 1, 2, ...)."""
    if not merchant_identifier:
        raise ValueError("merchant_identifier (the seller id) is empty")
    if not cancels:
        raise ValueError("no orders to cancel")
    root = _envelope(merchant_identifier, "OrderAcknowledgement", "1.01")
    for n, cancel in enumerate(cancels, 1):
        message = ET.SubElement(root, "Message")
        ET.SubElement(message, "MessageID").text = str(n)
        ack = ET.SubElement(message, "OrderAcknowledgement")
        ET.SubElement(ack, "AmazonOrderID").text = cancel.amazon_order_id
        ET.SubElement(ack, "StatusCode").text = "Failure"
        for item in cancel.items:
            element = ET.SubElement(ack, "Item")
            ET.SubElement(element, "AmazonOrderItemCode").text = item.amazon_order_item_code
            ET.SubElement(element, "CancelReason").text = item.reason.value
    return _serialise(root)


@dataclass(frozen=True, slots=True)
class AcknowledgedItem:
    amazon_order_item_code: str
    cancel_reason: str  # as written; "" when absent (the receiver validates it against CancelReason)


@dataclass(frozen=True, slots=True)
class AcknowledgementMessage:
    message_id: str
    amazon_order_id: str
    status_code: str  # Success | Failure (as written)
    items: tuple[AcknowledgedItem, ...]


def _parse(data: bytes, what: str) -> ET.Element:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise FeedFormatError(f"{what}: DOCTYPE and ENTITY declarations are not accepted")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise FeedFormatError(f"{what}: not well-formed XML: {exc}") from None


def _text(element: ET.Element, tag: str, where: str, *, required: bool = True) -> str:
    found = element.find(tag)
    if found is None or not (found.text or "").strip():
        if required:
            raise FeedFormatError(f"{where}: missing {tag}")
        return ""
    return (found.text or "").strip()


def parse_order_acknowledgement_feed(data: bytes) -> tuple[str, list[AcknowledgementMessage]]:
    """(merchant identifier, messages) of an order acknowledgement feed; FeedFormatError names the
    element when the envelope itself is unreadable. Per-message problems are left to the receiver."""
    root = _parse(data, "order acknowledgement feed")
    if root.tag != "AmazonEnvelope":
        raise FeedFormatError(f"root element is {root.tag}, expected AmazonEnvelope")
    header = root.find("Header")
    if header is None:
        raise FeedFormatError("AmazonEnvelope: missing Header")
    merchant = _text(header, "MerchantIdentifier", "AmazonEnvelope/Header")
    message_type = _text(root, "MessageType", "AmazonEnvelope")
    if message_type != "OrderAcknowledgement":
        raise FeedFormatError(f"AmazonEnvelope/MessageType is {message_type}, expected OrderAcknowledgement")
    messages = []
    for n, message in enumerate(root.findall("Message"), 1):
        where = f"AmazonEnvelope/Message[{n}]"
        ack = message.find("OrderAcknowledgement")
        if ack is None:
            raise FeedFormatError(f"{where}: missing OrderAcknowledgement")
        items = tuple(
            AcknowledgedItem(
                _text(item, "AmazonOrderItemCode", f"{where}/OrderAcknowledgement/Item[{i}]"),
                _text(item, "CancelReason", f"{where}/OrderAcknowledgement/Item[{i}]", required=False),
            )
            for i, item in enumerate(ack.findall("Item"), 1)
        )
        messages.append(
            AcknowledgementMessage(
                _text(message, "MessageID", where),
                _text(ack, "AmazonOrderID", f"{where}/OrderAcknowledgement"),
                _text(ack, "StatusCode", f"{where}/OrderAcknowledgement"),
                items,
            )
        )
    if not messages:
        raise FeedFormatError("AmazonEnvelope: no Message")
    return merchant, messages


# --- the processing report ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessingResult:
    message_id: str
    result_code: str  # Error | Warning
    message_code: str  # ResultMessageCode
    description: str
    amazon_order_id: str = ""
    amazon_order_item_code: str = ""


@dataclass(frozen=True, slots=True)
class ProcessingReport:
    document_transaction_id: str
    status_code: str  # Complete
    messages_processed: int
    messages_successful: int
    messages_with_error: int
    messages_with_warning: int
    results: tuple[ProcessingResult, ...]

    def errors_for(self, message_id: str) -> list[ProcessingResult]:
        return [r for r in self.results if r.message_id == message_id and r.result_code == "Error"]


def build_processing_report(merchant_identifier: str, report: ProcessingReport) -> bytes:
    root = _envelope(merchant_identifier, "ProcessingReport", "1.02")
    message = ET.SubElement(root, "Message")
    ET.SubElement(message, "MessageID").text = "1"
    pr = ET.SubElement(message, "ProcessingReport")
    ET.SubElement(pr, "DocumentTransactionID").text = report.document_transaction_id
    ET.SubElement(pr, "StatusCode").text = report.status_code
    summary = ET.SubElement(pr, "ProcessingSummary")
    for tag, value in (
        ("MessagesProcessed", report.messages_processed),
        ("MessagesSuccessful", report.messages_successful),
        ("MessagesWithError", report.messages_with_error),
        ("MessagesWithWarning", report.messages_with_warning),
    ):
        ET.SubElement(summary, tag).text = str(value)
    for result in report.results:
        element = ET.SubElement(pr, "Result")
        ET.SubElement(element, "MessageID").text = result.message_id
        ET.SubElement(element, "ResultCode").text = result.result_code
        ET.SubElement(element, "ResultMessageCode").text = result.message_code
        ET.SubElement(element, "ResultDescription").text = result.description
        if result.amazon_order_id or result.amazon_order_item_code:
            info = ET.SubElement(element, "AdditionalInfo")
            if result.amazon_order_id:
                ET.SubElement(info, "AmazonOrderID").text = result.amazon_order_id
            if result.amazon_order_item_code:
                ET.SubElement(info, "AmazonOrderItemCode").text = result.amazon_order_item_code
    return _serialise(root)


def _int(element: ET.Element, tag: str, where: str) -> int:
    text = _text(element, tag, where)
    try:
        return int(text)
    except ValueError:
        raise FeedFormatError(f"{where}/{tag}: {text!r} is not an integer") from None


def parse_processing_report(data: bytes) -> ProcessingReport:
    root = _parse(data, "processing report")
    where = "AmazonEnvelope/Message/ProcessingReport"
    pr = root.find("Message/ProcessingReport")
    if root.tag != "AmazonEnvelope" or pr is None:
        raise FeedFormatError(f"missing {where}")
    summary = pr.find("ProcessingSummary")
    if summary is None:
        raise FeedFormatError(f"{where}: missing ProcessingSummary")
    results = []
    for n, result in enumerate(pr.findall("Result"), 1):
        at = f"{where}/Result[{n}]"
        info = result.find("AdditionalInfo")
        results.append(
            ProcessingResult(
                _text(result, "MessageID", at),
                _text(result, "ResultCode", at),
                _text(result, "ResultMessageCode", at, required=False),
                _text(result, "ResultDescription", at, required=False),
                _text(info, "AmazonOrderID", at, required=False) if info is not None else "",
                _text(info, "AmazonOrderItemCode", at, required=False) if info is not None else "",
            )
        )
    s = f"{where}/ProcessingSummary"
    return ProcessingReport(
        _text(pr, "DocumentTransactionID", where, required=False),
        _text(pr, "StatusCode", where),
        _int(summary, "MessagesProcessed", s),
        _int(summary, "MessagesSuccessful", s),
        _int(summary, "MessagesWithError", s),
        _int(summary, "MessagesWithWarning", s),
        tuple(results),
    )


def cancels_by_order(items: Iterable[tuple[str, str, CancelReason]]) -> list[OrderCancel]:
    """(order id, item id, reason) rows -> one OrderCancel per order, in first-seen order."""
    grouped: dict[str, list[ItemCancel]] = {}
    for order_id, item_id, reason in items:
        grouped.setdefault(order_id, []).append(ItemCancel(item_id, reason))
    return [OrderCancel(order_id, tuple(found)) for order_id, found in grouped.items()]
