"""Buyer messages from the seller's helpdesk -> informal cancellation requests.

Amazon's API cannot read buyer messages (domain §7), so the helpdesk forwards them as JSON:
`{"message_id", "seller_account", "marketplace_id", "amazon_order_id", "sent_at", "text"}`.
The text is classified here and dropped: only the verdict and the language travel on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cancelguard.domain.buyer_messages import MessageClassification, classify_message
from cancelguard.domain.model import (
    CancellationRequested,
    InvalidInput,
    OrderEvent,
    OrderKey,
    RequestKind,
    Source,
    parse_time,
)
from cancelguard.ingestion.adapters import load_json_object

REQUIRED = ("message_id", "seller_account", "marketplace_id", "amazon_order_id", "sent_at", "text")


def parse_buyer_message(
    raw: bytes | str | Mapping[str, Any], *, observed_at: datetime
) -> tuple[OrderEvent | None, MessageClassification]:
    """The informal request event (None when the message does not ask to cancel) and the classification."""
    doc = load_json_object(raw, "buyer message")
    missing = [f for f in REQUIRED if not isinstance(doc.get(f), str) or not doc[f].strip()]
    if missing:
        raise InvalidInput(f"buyer message is missing {', '.join(missing)} (each a non-empty string)")
    verdict = classify_message(doc["text"])
    if not verdict.is_cancel_request:
        return None, verdict
    message_id = doc["message_id"].strip()
    sent_at = parse_time(doc["sent_at"], "sent_at")
    event = OrderEvent(
        event_id=f"buyer-message:{message_id}",
        key=OrderKey(
            doc["seller_account"].strip(), doc["marketplace_id"].strip(), doc["amazon_order_id"].strip()
        ),
        source=Source.BUYER_MESSAGE,
        occurred_at=sent_at,
        observed_at=observed_at,
        body=CancellationRequested(
            kind=RequestKind.INFORMAL,
            language=verdict.language if verdict.language != "und" else "",
            message_id=message_id,
        ),
    )
    return event, verdict
