"""One validation layer for every request: the same bounds as the event stream (`domain.bounds`), each
failure an INVALID_ARGUMENT naming the field, with a stable reason. Nothing is trimmed: an id with a
stray space is refused, not silently found or not found.

Page tokens are opaque and tamper-evident (AIP-158): the position and the query it belongs to, signed
with HMAC-SHA256 under the API's secret, so a token cannot be forged, edited, or reused for another
query, and a hostile one is refused before anything parses it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cancelguard.api.errors import ApiError, invalid
from cancelguard.domain import bounds
from cancelguard.domain.model import InvalidInput
from cancelguard.domain.policy import CancellationPolicy, PolicyBook

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_TOKEN = 1024
MAX_ORDER_IDS = 1000


def _from_bounds(field: str, exc: InvalidInput) -> ApiError:
    message = str(exc)
    # bounds name the field themselves; keep the message about this request's field
    return invalid(field, message.removeprefix(f"{field} ").removeprefix(f"{field}: "), reason=exc.reason)


def identifier(value: str, field: str) -> str:
    try:
        return bounds.identifier(value, field)
    except InvalidInput as exc:
        if exc.reason == bounds.Reason.MISSING_FIELD.value:
            raise invalid(field, "is required", reason="MISSING_FIELD") from None
        raise _from_bounds(field, exc) from None


def text(value: str, field: str, *, max_len: int = bounds.MAX_TEXT) -> str:
    try:
        return bounds.text(value, field, max_len=max_len)
    except InvalidInput as exc:
        raise _from_bounds(field, exc) from None


def policy(policies: PolicyBook, marketplace_id: str, field: str = "marketplace_id") -> CancellationPolicy:
    identifier(marketplace_id, field)
    try:
        return policies.for_marketplace(marketplace_id)
    except InvalidInput as exc:
        raise invalid(field, str(exc), reason="UNKNOWN_MARKETPLACE") from None


def order_ids(values: Sequence[str], field: str = "amazon_order_ids") -> list[str]:
    """Distinct, in the order given; at least one, at most MAX_ORDER_IDS."""
    if not values:
        raise invalid(field, "give one or more order ids", reason="MISSING_FIELD")
    if len(values) > MAX_ORDER_IDS:
        raise invalid(field, f"at most {MAX_ORDER_IDS} orders per call", reason="OUT_OF_RANGE")
    return list(dict.fromkeys(identifier(v, f"{field}[{n}]") for n, v in enumerate(values)))


def page_size(value: int) -> int:
    if not 0 <= value <= MAX_PAGE_SIZE:
        raise invalid("page_size", f"must be between 0 and {MAX_PAGE_SIZE}", reason="OUT_OF_RANGE")
    return value or DEFAULT_PAGE_SIZE


def timestamp(request: Any, field: str, now: datetime) -> datetime | None:
    """An optional Timestamp field: unset -> None; from 2000 to a day ahead of now."""
    if not request.HasField(field):
        return None
    ts = getattr(request, field)
    try:
        value = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise invalid(field, f"not a valid time: {exc}", reason="BAD_TIME") from None
    try:
        return bounds.event_time(value, field, now=now)
    except InvalidInput as exc:
        raise _from_bounds(field, exc) from None


def count(value: float, field: str, *, most: float = 1e9) -> float:
    if not math.isfinite(value) or not 0 <= value < most:
        raise invalid(field, f"must be a number from 0 to {most:g}", reason="OUT_OF_RANGE")
    return value


class PageTokens:
    """Signs and checks page tokens. Every API replica must share the secret (a Kubernetes Secret)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"cancelguard page token\0" + secret).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, query: dict[str, str], position: dict[str, str]) -> str:
        payload = json.dumps({"q": query, "p": position}, separators=(",", ":"), sort_keys=True).encode()
        return _b64(payload) + "." + _b64(self._sign(payload))

    def decode(self, token: str, query: dict[str, str]) -> dict[str, str]:
        """The position a token holds, if it is one of ours for this very query."""
        bad = invalid(
            "page_token", "not a token from a previous response of this query", reason="BAD_PAGE_TOKEN"
        )
        if len(token) > MAX_PAGE_TOKEN or token.count(".") != 1:
            raise bad
        body, signature = token.split(".")
        try:
            payload, mac = _unb64(body), _unb64(signature)
        except (ValueError, binascii.Error):
            raise bad from None
        if not hmac.compare_digest(mac, self._sign(payload)):
            raise bad
        doc = json.loads(payload)  # ours: signed, so well formed
        if doc["q"] != query:
            raise bad
        position: dict[str, str] = doc["p"]
        return position


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
