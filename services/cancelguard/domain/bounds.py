"""The bounds every value must keep before it enters the event stream, defined once.

One record that breaks them must never stop a service or block a partition: the adapters check each
field as they read it (so the error names the field's JSON path), ingestion checks every finished event
with `check_event` before it is encoded, and the metrics service checks every decoded event the same
way before it touches Postgres. A broken bound raises `InvalidInput` with a stable reason code
(`Reason`), which becomes the dead letter's reason or the API's error reason.

The bounds, and why:
- identifiers (seller, marketplace, order, item, message ids) are printable ASCII without spaces, at
  most 64 characters: Amazon's are 10-20; a NUL byte or a lone surrogate would be refused later by
  Postgres or by the protobuf encoder, far from the record that carried it; whitespace is never
  trimmed, because a trimmed id silently finds nothing;
- free text (SKUs, reasons) has no control characters and no lone surrogates, and a length cap;
- quantities are whole numbers from 0 to 1,000,000 (the event field is an int32); counts of orders in
  Amazon's reports from 0 to 1,000,000,000; rates and targets are finite fractions from 0 to 1;
- times of things that happened lie between 2000-01-01 and a day ahead of now (clock skew); dates
  that are planned (ship-by) may lie up to a year ahead.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeGuard, TypeVar

from cancelguard.domain import model as m


class Reason(enum.Enum):
    """Why a record or a request was refused. Stable: dead letters, metrics and clients key on it."""

    EMPTY_RECORD = "EMPTY_RECORD"
    NOT_JSON = "NOT_JSON"
    NOT_AN_OBJECT = "NOT_AN_OBJECT"
    TOO_DEEP = "TOO_DEEP"
    TOO_LARGE = "TOO_LARGE"
    WRONG_TYPE = "WRONG_TYPE"  # e.g. NotificationType is not ORDER_CHANGE
    MISSING_FIELD = "MISSING_FIELD"
    BAD_IDENTIFIER = "BAD_IDENTIFIER"
    BAD_TEXT = "BAD_TEXT"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    BAD_TIME = "BAD_TIME"
    TIME_OUT_OF_RANGE = "TIME_OUT_OF_RANGE"
    UNKNOWN_VALUE = "UNKNOWN_VALUE"  # a status, channel, enum value we do not know
    UNKNOWN_MARKETPLACE = "UNKNOWN_MARKETPLACE"
    BAD_ENCODING = "BAD_ENCODING"  # a report line that is not text in the file's encoding
    BAD_ROW = "BAD_ROW"  # a report line whose cells do not match the header
    NOT_AN_EVENT = "NOT_AN_EVENT"  # bytes on the events topic that are not an OrderEvent
    STORE_REJECTED = "STORE_REJECTED"  # Postgres refused the record's data
    INTERNAL_ERROR = "INTERNAL_ERROR"  # a bug of ours on this record: logged with its traceback


def invalid(reason: Reason, message: str) -> m.InvalidInput:
    return m.InvalidInput(message, reason.value)


MAX_IDENTIFIER = 64
MAX_EVENT_ID = 200  # a source prefix plus an id, e.g. "order-change:<NotificationId>"
MAX_SKU = 200
MAX_TEXT = 1000
MAX_QUANTITY = 1_000_000
MAX_COUNT = 1_000_000_000  # orders of one seller account x marketplace in one of Amazon's windows
MAX_ITEMS = 1000  # items of one order in one observation
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
EVENT_SKEW = timedelta(days=1)  # how far ahead of our clock an event's time may be
PLANNED_AHEAD = timedelta(days=366)  # how far ahead a planned date (ship-by) may be

_IDENTIFIER = re.compile(r"[!-~]+")  # printable ASCII, no space
# C0/C1 controls and lone surrogates (json.loads accepts "\ud800"; UTF-8 and Postgres do not)
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


# The predicates: the common case checked without building the field names an error message needs.


def _printable_ascii(*values: object, spaces: bool = True) -> bool:
    """Every value is a string of printable ASCII, read in one pass: the bound of identifiers (no
    spaces) and the common case of text, for several fields at once."""
    try:
        joined = "".join(values)  # type: ignore[arg-type]
    except TypeError:  # not all strings
        return False
    return joined.isascii() and joined.isprintable() and (spaces or " " not in joined)


def is_identifier(value: object, max_len: int = MAX_IDENTIFIER) -> TypeGuard[str]:
    # printable ASCII without a space is _IDENTIFIER, said with str methods (faster than the regex)
    return isinstance(value, str) and 0 < len(value) <= max_len and _printable_ascii(value, spaces=False)


def is_text(value: object, max_len: int = MAX_TEXT) -> TypeGuard[str]:
    # printable ASCII holds no _BAD_CHAR: the regex only reads the rest
    return (
        isinstance(value, str)
        and len(value) <= max_len
        and (_printable_ascii(value) or _BAD_CHAR.search(value) is None)
    )


def is_quantity(value: object) -> bool:
    """None (the source does not say) or a quantity within the bounds."""
    return value is None or (type(value) is int and 0 <= value <= MAX_QUANTITY)


def identifier(value: object, field: str, *, max_len: int = MAX_IDENTIFIER) -> str:
    if is_identifier(value, max_len):
        return value
    if not isinstance(value, str):
        raise invalid(Reason.BAD_IDENTIFIER, f"{field} must be a string, got {shown(value)}")
    if not value:
        raise invalid(Reason.MISSING_FIELD, f"{field} is empty")
    if len(value) > max_len:
        raise invalid(Reason.BAD_IDENTIFIER, f"{field} is {len(value)} characters long (at most {max_len})")
    if not _IDENTIFIER.fullmatch(value):
        raise invalid(
            Reason.BAD_IDENTIFIER,
            f"{field} {shown(value)} must be printable ASCII without spaces or control characters",
        )
    return value


def text(value: object, field: str, *, max_len: int = MAX_TEXT) -> str:
    """Free text; empty is allowed."""
    if not isinstance(value, str):
        raise invalid(Reason.BAD_TEXT, f"{field} must be a string, got {shown(value)}")
    if len(value) > max_len:
        raise invalid(Reason.BAD_TEXT, f"{field} is {len(value)} characters long (at most {max_len})")
    if bad := _BAD_CHAR.search(value):
        raise invalid(
            Reason.BAD_TEXT, f"{field} holds a control character or lone surrogate ({bad.group()!r})"
        )
    return value


def quantity(value: object, field: str) -> int:
    return _whole(value, field, MAX_QUANTITY)


def count(value: object, field: str) -> int:
    """A count of orders (Amazon's reported figures)."""
    return _whole(value, field, MAX_COUNT)


def _whole(value: object, field: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(Reason.OUT_OF_RANGE, f"{field} must be a whole number, got {shown(value)}")
    if not 0 <= value <= high:
        raise invalid(Reason.OUT_OF_RANGE, f"{field} is {shown(value)}; expected 0 to {high:,}")
    return value


def fraction(value: object, field: str) -> Decimal:
    """A rate or target: a finite number from 0 to 1, kept exact (a JSON float reads as its shortest
    decimal spelling, which is what the document said)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise invalid(Reason.OUT_OF_RANGE, f"{field} must be a number, got {shown(value)}")
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not exact.is_finite() or not 0 <= exact <= 1:
        raise invalid(Reason.OUT_OF_RANGE, f"{field} is {shown(value)}; expected a fraction from 0 to 1")
    return exact


def event_time(value: datetime, field: str, *, now: datetime) -> datetime:
    """A time something happened: from 2000 to a day ahead of `now`."""
    return _within(value, field, EARLIEST, now + EVENT_SKEW)


def planned_time(value: datetime, field: str, *, now: datetime) -> datetime:
    """A planned date (ship-by): from 2000 to a year ahead of `now`."""
    return _within(value, field, EARLIEST, now + PLANNED_AHEAD)


def _is_utc_within(value: object, high: datetime) -> bool:
    return isinstance(value, datetime) and value.tzinfo is UTC and EARLIEST <= value <= high


def _within(value: datetime, field: str, low: datetime, high: datetime) -> datetime:
    if value.tzinfo is not UTC and (
        value.tzinfo is None or value.utcoffset() is None
    ):  # UTC: the common case
        raise invalid(Reason.BAD_TIME, f"{field} {value.isoformat()} has no time zone")
    if not low <= value <= high:
        raise invalid(
            Reason.TIME_OUT_OF_RANGE,
            f"{field} {value.isoformat()} is outside {low.date().isoformat()} .. {high.date().isoformat()}",
        )
    return value


def shown(value: object) -> str:
    """A value for an error message: short, and safe to log."""
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown)} characters)"


# --- whole events ---------------------------------------------------------------------------------


def check_key(key: m.OrderKey | m.AccountKey) -> None:
    identifier(key.seller_account, "seller_account")
    identifier(key.marketplace_id, "marketplace_id")
    if isinstance(key, m.OrderKey):
        identifier(key.amazon_order_id, "amazon_order_id")


def _ids(values: tuple[str, ...], field: str) -> None:
    if len(values) > MAX_ITEMS:
        raise invalid(Reason.OUT_OF_RANGE, f"{field} lists {len(values)} items (at most {MAX_ITEMS})")
    for n, value in enumerate(values):
        identifier(value, f"{field}[{n}]")


def _check_snapshot(body: m.OrderSnapshot, now: datetime) -> None:
    # Every source that sends a whole-order snapshot carries the purchase date (ORDER_CHANGE's
    # Summary.PurchaseDate is required): without it the order would belong to no window, and its
    # cancellation would silently leave the CR.
    if body.purchased_at is None:
        raise invalid(Reason.MISSING_FIELD, "the order's purchase date is missing")
    event_time(body.purchased_at, "purchased_at", now=now)
    if body.latest_ship_at is not None:
        planned_time(body.latest_ship_at, "latest_ship_at", now=now)
    if len(body.items) > MAX_ITEMS:
        raise invalid(Reason.OUT_OF_RANGE, f"the order has {len(body.items)} items (at most {MAX_ITEMS})")
    for n, item in enumerate(body.items):
        # the common case checked without building the field names the messages would need
        item_id, sku, buyer_reason, reason = (
            item.order_item_id,
            item.seller_sku,
            item.buyer_cancel_reason,
            item.cancel_reason,
        )
        if (
            is_identifier(item_id)
            and _printable_ascii(sku, buyer_reason, reason)  # so each is text
            and len(sku) <= MAX_SKU
            and len(buyer_reason) <= MAX_TEXT
            and len(reason) <= MAX_TEXT
            and is_quantity(item.quantity_ordered)
            and is_quantity(item.quantity_shipped)
            and item.cancelled_by is not m.CancelledBy.UNKNOWN
        ):
            continue
        where = f"items[{n}]"
        identifier(item.order_item_id, f"{where}.order_item_id")
        text(item.seller_sku, f"{where}.seller_sku", max_len=MAX_SKU)
        text(item.buyer_cancel_reason, f"{where}.buyer_cancel_reason")
        text(item.cancel_reason, f"{where}.cancel_reason")
        for name in ("quantity_ordered", "quantity_shipped"):
            value = getattr(item, name)
            if value is not None:
                quantity(value, f"{where}.{name}")
        if item.cancelled_by is m.CancelledBy.UNKNOWN:  # ours, for "nobody says": no source may claim it
            raise invalid(Reason.UNKNOWN_VALUE, f"{where}.cancelled_by is UNKNOWN: say who, or nothing")


def _check_reported_rate(body: m.AmazonReportedRate, now: datetime) -> None:
    event_time(body.window_from, "window_from", now=now)
    event_time(body.window_to, "window_to", now=now)
    if body.window_to < body.window_from:
        raise invalid(Reason.OUT_OF_RANGE, "the window ends before it starts")
    orders = count(body.order_count, "order_count")
    if count(body.cancellation_count, "cancellation_count") > orders:
        raise invalid(Reason.OUT_OF_RANGE, f"cancellation_count exceeds order_count ({orders})")
    fraction(body.rate, "rate")
    fraction(body.target_value, "target_value")


EventT = TypeVar("EventT", bound=m.Event)


def check_event(event: EventT, *, now: datetime) -> EventT:
    """Every bound on one event, whatever its source; returns it unchanged or raises InvalidInput."""
    event_id, key, high = event.event_id, event.key, now + EVENT_SKEW
    if not (  # the common case in one pass; the checks below name what is wrong
        type(key) is m.OrderKey
        and _printable_ascii(
            event_id, key.seller_account, key.marketplace_id, key.amazon_order_id, spaces=False
        )
        and 0 < len(event_id) <= MAX_EVENT_ID
        and 0 < len(key.seller_account) <= MAX_IDENTIFIER
        and 0 < len(key.marketplace_id) <= MAX_IDENTIFIER
        and 0 < len(key.amazon_order_id) <= MAX_IDENTIFIER
        and _is_utc_within(event.occurred_at, high)
        and _is_utc_within(event.observed_at, high)
    ):
        identifier(event_id, "event_id", max_len=MAX_EVENT_ID)
        check_key(key)
        event_time(event.occurred_at, "occurred_at", now=now)
        event_time(event.observed_at, "observed_at", now=now)
    if isinstance(event, m.AccountEvent):
        _check_reported_rate(event.body, now)
        return event
    body = event.body
    if isinstance(body, m.OrderSnapshot):
        _check_snapshot(body, now)
    elif isinstance(body, m.CancellationRequested):
        _ids(body.order_item_ids, "order_item_ids")
        text(body.reason, "reason")
        text(body.language, "language", max_len=16)
        if body.message_id:
            identifier(body.message_id, "message_id", max_len=MAX_EVENT_ID)
    elif isinstance(body, m.SellerCancellationSubmitted):
        text(body.cancel_reason, "cancel_reason")
        _ids(body.order_item_ids, "order_item_ids")
        if body.feed_id:
            identifier(body.feed_id, "feed_id")
    return event
