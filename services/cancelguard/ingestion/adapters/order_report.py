"""Order report flat files -> order events, streamed row by row: constant memory whatever the file's size.

Two report types (Reports API; domain.md §4), one row per order item:
- Unshipped Orders, `GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING`: MFN orders not yet ship-confirmed,
  keyed `order-id` + `order-item-id`, with the buyer's request in `is-buyer-requested-cancellation`
  (`-cancelation` as Seller Central's help spells it) and `buyer-requested-cancel-reason`. The file has
  no time of its own: the caller says when Amazon produced it (`as_of`: the report's createdTime), and
  that is the snapshot's time.
- All Orders by last update, `GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL`: keyed
  `amazon-order-id`, with `order-status`, `fulfillment-channel` (display values Amazon/Merchant) and
  `last-updated-date` (the snapshot's time). Its documented columns have no order-item-id, so its
  snapshots carry items only when the file has that column; without it, a request flag it carries is
  published as a formal request on the whole order.

The file: tab-separated, no quoting, a header row matched case-insensitively. An empty cell means the
report does not say (None), never "no": `TRUE`/`true`/`FALSE` are the flag's values. Reports name no
seller: the caller passes the seller account. The marketplace is the row's `sales-channel` when it
names an Amazon marketplace (its domain: "Amazon.co.uk" -> A1F83G8C2ARO7P), else the caller's.

Encodings (`ENCODINGS`): UTF-8 by default (a BOM is skipped, and a BOM always means UTF-8), Windows-1252
for Amazon's ISO-8859-1 files (EU; its superset for printable text, e.g. the euro sign), Windows-31J for
its Shift_JIS files (JP; the superset Amazon's files use, with NEC/IBM characters). In the default
UTF-8, a line that is not valid UTF-8 is read in the marketplace's legacy encoding (Windows-31J for
Japan, else Windows-1252): an ASCII line reads the same in all three, and legacy text almost never
forms valid UTF-8, so a legacy file read as UTF-8 still comes out right; `fallback_lines` counts them.
A line that decodes in neither is a bad row (BAD_ENCODING).

Rows of one order are adjacent in Amazon's files, but this reader does not rely on it beyond a window:
it keeps up to `window` orders open (default 256) and closes the oldest when a new one arrives. An order
whose rows lie further apart, or with more than MAX_ITEMS rows, becomes two snapshots, which the fold
merges (one extra event, nothing lost). So memory is bounded by window x MAX_ITEMS rows, and a line is
read at most MAX_LINE_BYTES at a time.

Every cell is checked as it is read (`domain.bounds`, through the shared readers), so the events yielded
keep every bound; every bad row is yielded as a `BadRow` (line number, `bounds.Reason`, message) and the
file goes on;
only a file whose header cannot be read is refused whole (InvalidInput). Event ids are the source id
(the report document id, or a digest of the file) + order id + the line of its first row.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from cancelguard.domain import bounds
from cancelguard.domain.bounds import Reason, invalid
from cancelguard.domain.model import (
    CancellationRequested,
    Channel,
    InvalidInput,
    ItemObservation,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    RequestKind,
    Source,
    parse_channel,
    parse_status,
)
from cancelguard.domain.policy import marketplace, marketplace_for_sales_channel
from cancelguard.ingestion.adapters import (
    flag_at,
    identifier_at,
    optional,
    parsed_at,
    quantity_text_at,
    text_at,
    time_at,
)


class ReportKind(enum.Enum):
    UNSHIPPED = "GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING"
    ALL_ORDERS = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"

    @property
    def title(self) -> str:
        return "Unshipped Orders report" if self is ReportKind.UNSHIPPED else "All Orders report"


# The names people and Amazon's Content-Type headers use -> the codec that reads them.
ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "cp1252": "cp1252",
    "windows-1252": "cp1252",
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "cp932": "cp932",
    "windows-31j": "cp932",
    "ms932": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
}
JAPAN = "A1VC38T7YXB528"
MAX_LINE_BYTES = 64 * 1024  # Amazon's rows are a few hundred bytes; a longer line is refused, not read
DEFAULT_WINDOW = 256
_BOM = b"\xef\xbb\xbf"

# Columns, by the name this reader uses; the first spelling is the one error messages give.
_SPELLINGS = {
    "is-buyer-requested-cancellation": ("is-buyer-requested-cancellation", "is-buyer-requested-cancelation"),
    "quantity": ("quantity", "quantity-purchased"),  # All Orders; some of Amazon's help pages use the latter
}
_KEY = {ReportKind.UNSHIPPED: "order-id", ReportKind.ALL_ORDERS: "amazon-order-id"}
_QUANTITY = {ReportKind.UNSHIPPED: "quantity-purchased", ReportKind.ALL_ORDERS: "quantity"}
_REQUIRED = {
    ReportKind.UNSHIPPED: ("order-id", "order-item-id", "purchase-date"),
    ReportKind.ALL_ORDERS: (
        "amazon-order-id",
        "purchase-date",
        "last-updated-date",
        "order-status",
        "fulfillment-channel",
    ),
}
_OPTIONAL = (
    "order-item-id",
    "sku",
    "quantity-purchased",
    "quantity",
    "quantity-shipped",
    "is-buyer-requested-cancellation",
    "buyer-requested-cancel-reason",
    "sales-channel",
)


# All Orders display values that are not Orders API spellings. INFERENCE: "Shipping" is an order part
# way through shipping; read as PartiallyShipped, which a later Shipped or Cancelled still overrides.
_REPORT_STATUS = {"shipping": OrderStatus.PARTIALLY_SHIPPED}


def _report_status(value: object) -> OrderStatus:
    found = _REPORT_STATUS.get(value.strip().casefold()) if isinstance(value, str) else None
    return found if found is not None else parse_status(value)


def codec_for(encoding: str) -> str:
    """An encoding name (any case, `_` or `-`) -> the codec this reader uses; InvalidInput if unknown."""
    found = ENCODINGS.get(encoding.strip().casefold().replace("_", "-"))
    if found is None:
        raise invalid(
            Reason.UNKNOWN_VALUE,
            f"unknown report encoding {encoding!r}; expected one of {', '.join(sorted(ENCODINGS))}",
        )
    return found


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str  # a bounds.Reason value
    message: str
    order_id: str = ""  # when the row's order id could be read: all a dead letter keeps of the row


@dataclass(frozen=True, slots=True)
class ReportOrder:
    """The events read from the rows of one order (a snapshot, and for All Orders rows that flag a
    request without item ids, the formal request)."""

    events: tuple[OrderEvent, ...]
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    key: OrderKey
    purchased_at: datetime
    updated_at: datetime | None  # All Orders: last-updated-date
    status: OrderStatus | None
    channel: Channel | None
    item: ItemObservation | None
    requested: bool | None  # the flag, when the row has no item id to carry it
    request_reason: str


class OrderReportReader:
    """Iterate over `ReportOrder`s and `BadRow`s of one report file. The header is read (and checked)
    when the reader is made; `kind` is detected from it unless given."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        seller_account: str,
        source_id: str,
        observed_at: datetime,
        marketplace_id: str | None = None,
        kind: ReportKind | None = None,
        encoding: str = "utf-8",
        as_of: datetime | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self._stream = stream
        self.seller_account = bounds.identifier(seller_account, "seller account")
        self.source_id = bounds.identifier(source_id, "report source id", max_len=100)
        self.observed_at = observed_at
        self.marketplace_id = marketplace(marketplace_id).id if marketplace_id is not None else None
        self.encoding = codec_for(encoding)
        self.fallback_encoding = "cp932" if self.marketplace_id == JAPAN else "cp1252"
        self._window = max(1, window)
        self.rows_read = 0
        self.fallback_lines = 0  # lines read in the fallback encoding (UTF-8 mode only)
        self._line = 0
        self.kind, self._columns, self._width = self._read_header(kind)
        self._what = self.kind.title
        self.as_of = None if as_of is None else bounds.event_time(as_of, "the report's time", now=observed_at)
        if self.kind is ReportKind.UNSHIPPED and self.as_of is None:
            raise invalid(
                Reason.MISSING_FIELD,
                "an Unshipped Orders report has no time of its own: say when Amazon produced it (as_of)",
            )
        self._has_item_ids = "order-item-id" in self._columns

    # --- the header ---

    def _read_header(self, kind: ReportKind | None) -> tuple[ReportKind, dict[str, int], int]:
        raw = self._stream.readline(MAX_LINE_BYTES + 1)
        self._line = 1
        if not raw.strip():
            raise invalid(Reason.EMPTY_RECORD, "the file is empty: no header row")
        if len(raw) > MAX_LINE_BYTES:
            raise invalid(Reason.TOO_LARGE, f"the header is longer than {MAX_LINE_BYTES} bytes")
        if raw.startswith(_BOM):
            raw, self.encoding = raw[len(_BOM) :], "utf-8"
        try:
            text = raw.rstrip(b"\r\n").decode(self.encoding)
        except UnicodeDecodeError:
            raise invalid(Reason.BAD_ENCODING, f"the header is not {self.encoding} text") from None
        names = [name.strip().casefold() for name in text.split("\t")]
        if kind is None:
            kind = next((k for k, key in _KEY.items() if key in names), None)
            if kind is None:
                raise invalid(
                    Reason.MISSING_FIELD,
                    "the header has neither order-id (Unshipped Orders report) nor amazon-order-id "
                    "(All Orders report): not an order report?",
                )
        columns: dict[str, int] = {}
        for column in (*_REQUIRED[kind], *_OPTIONAL):
            found = [i for i, name in enumerate(names) if name in _SPELLINGS.get(column, (column,))]
            if len(found) > 1:
                raise invalid(Reason.BAD_ROW, f"the header names {column} {len(found)} times")
            if found:
                columns[column] = found[0]
        missing = [c for c in _REQUIRED[kind] if c not in columns]
        if missing:
            raise invalid(
                Reason.MISSING_FIELD,
                f"the header has no {', '.join(missing)} column: not an {kind.title} ({kind.value})?",
            )
        return kind, columns, len(names)

    # --- rows ---

    def __iter__(self) -> Iterator[ReportOrder | BadRow]:
        open_orders: OrderedDict[OrderKey, list[_Row]] = OrderedDict()  # oldest first
        for line, raw in self._raw_lines():
            row = self._row(line, raw)
            if row is None:
                continue
            if isinstance(row, BadRow):
                yield row
                continue
            rows = open_orders.get(row.key)
            if rows is not None and len(rows) >= bounds.MAX_ITEMS:
                yield self._close(open_orders.pop(row.key))
                rows = None
            if rows is None:
                if len(open_orders) >= self._window:
                    yield self._close(open_orders.popitem(last=False)[1])
                rows = open_orders[row.key] = []
            rows.append(row)
        while open_orders:
            yield self._close(open_orders.popitem(last=False)[1])

    def _raw_lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes) per line after the header; None for a line longer than MAX_LINE_BYTES,
        whose rest is skipped in bounded reads."""
        read = self._stream.readline
        while raw := read(MAX_LINE_BYTES + 1):
            self._line += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := read(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield self._line, None
            else:
                yield self._line, raw

    def _decode(self, raw: bytes) -> str | None:
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            if self.encoding != "utf-8":
                return None
        try:
            text = raw.decode(self.fallback_encoding)
        except UnicodeDecodeError:
            return None
        self.fallback_lines += 1
        return text

    def _row(self, line: int, raw: bytes | None) -> _Row | BadRow | None:
        """One line -> a row, a bad row, or None for a blank line (not a row)."""
        what = f"{self._what} line {line}"
        if raw is None:
            self.rows_read += 1
            return BadRow(line, Reason.TOO_LARGE.value, f"{what} is longer than {MAX_LINE_BYTES} bytes")
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            return None
        self.rows_read += 1
        text = self._decode(raw)
        if text is None:
            encodings = self.encoding if self.encoding != "utf-8" else f"utf-8 nor {self.fallback_encoding}"
            cells = raw.decode("latin-1").split("\t")  # only to find the order id, which is ASCII
            return BadRow(
                line, Reason.BAD_ENCODING.value, f"{what} is not {encodings} text", self._order_id(cells)
            )
        cells = text.split("\t")
        if len(cells) != self._width:
            return BadRow(
                line,
                Reason.BAD_ROW.value,
                f"{what} has {len(cells)} cells; the header has {self._width}",
                self._order_id(cells),
            )
        cell = {column: cells[i] for column, i in self._columns.items() if cells[i]}
        try:
            return self._read(what, line, cell)
        except InvalidInput as exc:
            return BadRow(line, exc.reason, str(exc), self._order_id(cells))

    def _order_id(self, cells: list[str]) -> str:
        """The row's order id if it is one (a dead letter keeps nothing else of the row)."""
        index = self._columns[_KEY[self.kind]]
        if index >= len(cells):
            return ""
        try:
            return bounds.identifier(cells[index], "order id")
        except InvalidInput:
            return ""

    def _read(self, what: str, line: int, cell: dict[str, str]) -> _Row:
        now = self.observed_at
        order_id = identifier_at(cell, _KEY[self.kind], what)
        key = OrderKey(self.seller_account, self._marketplace_of(cell, what), order_id)
        purchased_at = time_at(cell, "purchase-date", what, now=now)
        assert purchased_at is not None
        flag = flag_at(cell, "is-buyer-requested-cancellation", what)
        reason = text_at(cell, "buyer-requested-cancel-reason", what)
        item = None
        if self._has_item_ids:
            item = ItemObservation(
                order_item_id=identifier_at(cell, "order-item-id", what),
                seller_sku=text_at(cell, "sku", what, max_len=bounds.MAX_SKU),
                quantity_ordered=quantity_text_at(cell, _QUANTITY[self.kind], what),
                quantity_shipped=quantity_text_at(cell, "quantity-shipped", what),
                buyer_requested_cancel=flag,
                buyer_cancel_reason=reason,
            )
        if self.kind is ReportKind.UNSHIPPED:
            return _Row(line, key, purchased_at, None, None, Channel.MFN, item, None, "")
        return _Row(
            line,
            key,
            purchased_at,
            time_at(cell, "last-updated-date", what, now=now),
            parsed_at(cell, "order-status", what, _report_status),
            parsed_at(cell, "fulfillment-channel", what, parse_channel),
            item,
            None if self._has_item_ids else flag,
            "" if self._has_item_ids else reason,
        )

    def _marketplace_of(self, cell: dict[str, str], what: str) -> str:
        channel = text_at(cell, "sales-channel", what)
        named = marketplace_for_sales_channel(channel) if channel else None
        if named is not None:
            return named.id
        if self.marketplace_id is not None:
            return self.marketplace_id
        raise invalid(
            Reason.UNKNOWN_MARKETPLACE,
            f"{what}: sales-channel {bounds.shown(optional(cell, 'sales-channel'))} names no Amazon "
            "marketplace, and no marketplace was given",
        )

    # --- one order's rows -> its events ---

    def _close(self, rows: list[_Row]) -> ReportOrder:
        first = rows[0]
        lines = tuple(r.line for r in rows)
        items = tuple(r.item for r in rows if r.item is not None)
        status: OrderStatus | None
        if self.kind is ReportKind.UNSHIPPED:
            assert self.as_of is not None
            occurred_at = self.as_of
            shipped_some = any((i.quantity_shipped or 0) > 0 for i in items)
            status = OrderStatus.PARTIALLY_SHIPPED if shipped_some else OrderStatus.UNSHIPPED
        else:
            occurred_at = max(r.updated_at for r in rows if r.updated_at is not None)
            status = first.status
        event_id = f"order-report:{self.source_id}:{first.key.amazon_order_id}:{first.line}"
        events = [
            OrderEvent(
                event_id=event_id,
                key=first.key,
                source=Source.ORDER_REPORT,
                occurred_at=occurred_at,
                observed_at=self.observed_at,
                body=OrderSnapshot(
                    status=status, channel=first.channel, purchased_at=first.purchased_at, items=items
                ),
            )
        ]
        requests = [r for r in rows if r.requested]
        if requests:
            events.append(
                OrderEvent(
                    event_id=f"{event_id}:request",
                    key=first.key,
                    source=Source.ORDER_REPORT,
                    occurred_at=occurred_at,
                    observed_at=self.observed_at,
                    body=CancellationRequested(RequestKind.FORMAL, (), requests[0].request_reason),
                )
            )
        return ReportOrder(tuple(events), lines)
