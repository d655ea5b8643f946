"""Buyer messages from the seller's helpdesk -> informal cancellation requests.

Amazon's API cannot read buyer messages (domain §7), so the helpdesk forwards them as JSON:
`{"message_id", "seller_account", "marketplace_id", "amazon_order_id", "sent_at", "text"}`.
The text is classified here and dropped: only the verdict and the language travel on (and a dead
letter drops it too: `PERSONAL_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cancelguard.domain import bounds
from cancelguard.domain.buyer_messages import MessageClassification, classify_message
from cancelguard.domain.model import (
    CancellationRequested,
    OrderEvent,
    OrderKey,
    RequestKind,
    Source,
)
from cancelguard.ingestion.adapters import identifier_at, load_json_object, text_at, time_at

WHAT = "buyer message"
MAX_MESSAGE_TEXT = 20_000
PERSONAL_FIELDS = ("text",)


def parse_buyer_message(
    raw: bytes | str | Mapping[str, Any], *, observed_at: datetime
) -> tuple[OrderEvent | None, MessageClassification]:
    """The informal request event (None when the message does not ask to cancel) and the classification."""
    doc = load_json_object(raw, WHAT)
    message_id = identifier_at(doc, "message_id", WHAT, max_len=128)
    key = OrderKey(
        identifier_at(doc, "seller_account", WHAT),
        identifier_at(doc, "marketplace_id", WHAT),
        identifier_at(doc, "amazon_order_id", WHAT),
    )
    sent_at = time_at(doc, "sent_at", WHAT, now=observed_at)
    assert sent_at is not None
    text = text_at(doc, "text", WHAT, max_len=MAX_MESSAGE_TEXT)
    if not text.strip():
        raise bounds.invalid(bounds.Reason.MISSING_FIELD, f"{WHAT}: text is empty")
    verdict = classify_message(text)
    if not verdict.is_cancel_request:
        return None, verdict
    event = OrderEvent(
        event_id=f"buyer-message:{message_id}",
        key=key,
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
