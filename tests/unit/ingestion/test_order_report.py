"""Order report flat files -> order events: both report types, each quirk (column spellings, empty cells,
encodings, grouping), bad rows with their line and reason, and a file that is never loaded whole."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.bounds import MAX_ITEMS, Reason, check_event
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import (
    CancellationRequested,
    Channel,
    InvalidInput,
    OrderSnapshot,
    OrderStatus,
    RequestKind,
    Source,
)
from cancelguard.events import codec
from cancelguard.ingestion.adapters.order_report import (
    MAX_LINE_BYTES,
    BadRow,
    OrderReportReader,
    ReportKind,
    ReportOrder,
)

from .documents import FIXTURES

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
AS_OF = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
SELLER = "A1SELLERTEST"
US, CA, DE, JP = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2", "A1PA6795UKMFR9", "A1VC38T7YXB528"
UNSHIPPED_FILE = (FIXTURES / "unshipped_orders_report_example.txt").read_bytes()
ALL_ORDERS_FILE = (FIXTURES / "all_orders_report_example.cp1252.txt").read_bytes()
HEADER = UNSHIPPED_FILE.split(b"\r\n")[0].decode().split("\t")
ALL_ORDERS_HEADER = ALL_ORDERS_FILE.split(b"\n")[0].decode().split("\t")
BASE_ROW = dict(zip(HEADER, UNSHIPPED_FILE.split(b"\r\n")[3].decode().split("\t"), strict=True))  # one item


def row(**cells: str) -> dict[str, str]:
    """The fixture's order 111-0000002-0000002 with some cells changed (`order_id=` for `order-id`)."""
    return {**BASE_ROW, **{name.replace("_", "-"): value for name, value in cells.items()}}


def report(
    rows: Sequence[dict[str, str] | bytes],
    header: list[str] = HEADER,
    *,
    encoding: str = "utf-8",
    newline: bytes = b"\r\n",
    prefix: bytes = b"",
) -> io.BufferedReader:
    lines = ["\t".join(header).encode(encoding)]
    for r in rows:
        lines.append(r if isinstance(r, bytes) else "\t".join(r.get(c, "") for c in header).encode(encoding))
    return io.BufferedReader(io.BytesIO(prefix + newline.join(lines) + newline))  # type: ignore[arg-type]


def reader(data: bytes | io.BufferedReader, **kw: Any) -> OrderReportReader:
    stream = io.BufferedReader(io.BytesIO(data)) if isinstance(data, bytes) else data  # type: ignore[arg-type]
    args: dict[str, Any] = {
        "seller_account": SELLER,
        "source_id": "sha256-0123456789abcdef",
        "observed_at": NOW,
        "marketplace_id": US,
        "as_of": AS_OF,
    }
    return OrderReportReader(stream, **{**args, **kw})


def read(data: bytes | io.BufferedReader, **kw: Any) -> tuple[list[ReportOrder], list[BadRow]]:
    records = list(reader(data, **kw))
    return [r for r in records if isinstance(r, ReportOrder)], [r for r in records if isinstance(r, BadRow)]


def snapshots(data: bytes | io.BufferedReader, **kw: Any) -> list[OrderSnapshot]:
    orders, bad = read(data, **kw)
    assert bad == []
    found = [e.body for o in orders for e in o.events if isinstance(e.body, OrderSnapshot)]
    return found  # type: ignore[return-value]


def item_of(data: bytes | io.BufferedReader, **kw: Any) -> Any:
    [snapshot] = snapshots(data, **kw)
    [item] = snapshot.items
    return item


# --- the two report types, as Amazon writes them ----------------------------------------------------


def test_an_unshipped_orders_report() -> None:
    orders, bad = read(UNSHIPPED_FILE)
    assert bad == []
    events = [e for o in orders for e in o.events]
    assert [e.event_id for e in events] == [
        "order-report:sha256-0123456789abcdef:111-0000001-0000001:2",
        "order-report:sha256-0123456789abcdef:111-0000002-0000002:4",
        "order-report:sha256-0123456789abcdef:111-0000003-0000003:5",
        "order-report:sha256-0123456789abcdef:702-0000004-0000004:6",
    ]
    assert [o.lines for o in orders] == [(2, 3), (4,), (5,), (6,)]
    assert {e.source for e in events} == {Source.ORDER_REPORT}
    assert {e.occurred_at for e in events} == {AS_OF}  # the report's time: it has none of its own
    assert [e.key.marketplace_id for e in events] == [US, US, US, CA]  # the last row is Amazon.ca
    first, _, partial, _ = (e.body for e in events)
    assert isinstance(first, OrderSnapshot) and isinstance(partial, OrderSnapshot)
    assert (first.status, first.channel) == (OrderStatus.UNSHIPPED, Channel.MFN)
    assert first.purchased_at == datetime(2026, 11, 20, 9, 15, 2, tzinfo=UTC)
    assert [(i.order_item_id, i.seller_sku, i.quantity_ordered, i.quantity_shipped) for i in first.items] == [
        ("10000000000011", "MUG-BLUE", 1, 0),
        ("10000000000012", "MUG-RED", 2, 0),
    ]
    assert [(i.buyer_requested_cancel, i.buyer_cancel_reason) for i in first.items] == [
        (True, "Found cheaper somewhere else."),
        (False, ""),
    ]
    assert partial.status is OrderStatus.PARTIALLY_SHIPPED  # 1 of 3 shipped
    for event in events:
        check_event(event, now=NOW)
        assert codec.decode(codec.encode(event)) == event
    shown = repr(orders)
    for personal in ("Jane Example", "jane.example", "62701", "1 Example Street", "555 0100", "Springfield"):
        assert personal not in shown


def test_an_all_orders_report_in_windows_1252() -> None:
    orders, bad = read(ALL_ORDERS_FILE, encoding="windows-1252", marketplace_id=None, as_of=None)
    assert bad == []
    events = [e for o in orders for e in o.events]
    assert [(e.key.amazon_order_id, e.key.marketplace_id) for e in events] == [
        ("302-0000001-0000001", DE),
        ("302-0000002-0000002", DE),
        ("302-0000003-0000003", DE),
        ("302-0000004-0000004", DE),
    ]
    bodies = [e.body for e in events]
    assert [(b.status, b.channel, b.items) for b in bodies] == [  # type: ignore[union-attr]
        (OrderStatus.SHIPPED, Channel.MFN, ()),
        (OrderStatus.CANCELED, Channel.MFN, ()),  # "Cancelled"; two rows, one order
        (OrderStatus.PENDING, Channel.AFN, ()),  # "Amazon"
        (OrderStatus.PARTIALLY_SHIPPED, Channel.MFN, ()),  # "Shipping"
    ]
    assert events[1].occurred_at == datetime(2026, 11, 21, 10, 30, tzinfo=UTC)  # last-updated-date


def test_an_all_orders_report_read_as_utf_8_falls_back_line_by_line() -> None:
    r = reader(ALL_ORDERS_FILE, marketplace_id=None, as_of=None)
    assert r.kind is ReportKind.ALL_ORDERS and r.as_of is None
    assert len([x for x in r if isinstance(x, ReportOrder)]) == 4
    assert r.fallback_lines == 5  # "für Küche" in every row's product name


def test_an_unshipped_report_needs_the_time_amazon_produced_it() -> None:
    with pytest.raises(InvalidInput) as err:
        reader(UNSHIPPED_FILE, as_of=None)
    assert err.value.reason == "MISSING_FIELD"
    assert "say when Amazon produced it (as_of)" in str(err.value)


# --- quirks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("TRUE", True), ("true", True), ("True", True), ("FALSE", False), ("false", False), ("", None)],
)
def test_the_request_flag_and_an_empty_cell_that_means_unknown(cell: str, expected: bool | None) -> None:
    item = item_of(report([row(is_buyer_requested_cancellation=cell)]))
    assert item.buyer_requested_cancel is expected


@pytest.mark.parametrize(
    "column",
    ["is-buyer-requested-cancellation", "is-buyer-requested-cancelation", "IS-BUYER-REQUESTED-CANCELATION"],
)
def test_both_spellings_of_the_request_column_in_any_case(column: str) -> None:
    header = [column if c == "is-buyer-requested-cancellation" else c.upper() for c in HEADER]
    cells = {h: BASE_ROW[c] for h, c in zip(header, HEADER, strict=True)}
    item = item_of(report([{**cells, column: "TRUE"}], header))
    assert item.buyer_requested_cancel is True


def test_a_report_without_the_request_column_does_not_say() -> None:
    header = [
        c for c in HEADER if c not in ("is-buyer-requested-cancellation", "buyer-requested-cancel-reason")
    ]
    assert item_of(report([row()], header)).buyer_requested_cancel is None


def test_a_bom_means_utf_8_and_is_not_part_of_the_first_column() -> None:
    data = report([row(sku="TASSE-GRÜN")], prefix=b"\xef\xbb\xbf")
    assert item_of(data, encoding="windows-1252").seller_sku == "TASSE-GRÜN"


@pytest.mark.parametrize(
    ("sku", "file_encoding", "options", "fallbacks"),
    [
        ("TASSE-GRÜN-€", "cp1252", {"encoding": "windows-1252"}, 0),
        ("TASSE-GRÜN-€", "cp1252", {"encoding": "ISO-8859-1"}, 0),  # Amazon's name; its superset reads €
        ("TASSE-GRÜN-€", "cp1252", {}, 1),  # UTF-8 by default: that line falls back to Windows-1252
        ("TASSE-GRÜN-€", "utf-8", {}, 0),
        ("マグカップ-①", "cp932", {"encoding": "Shift_JIS"}, 0),  # Windows-31J: ① is an NEC character
        ("マグカップ-①", "cp932", {"encoding": "windows-31j"}, 0),
        ("マグカップ-①", "cp932", {"marketplace_id": JP}, 1),  # Japan's fallback is Windows-31J
        ("マグカップ-①", "utf-8", {"marketplace_id": JP}, 0),
    ],
)
def test_the_encodings_amazon_uses(
    sku: str, file_encoding: str, options: dict[str, Any], fallbacks: int
) -> None:
    r = reader(report([row(sku=sku, sales_channel="")], encoding=file_encoding), **options)
    [order] = list(r)
    assert isinstance(order, ReportOrder)
    assert order.events[0].body.items[0].seller_sku == sku  # type: ignore[union-attr]
    assert r.fallback_lines == fallbacks


def test_a_line_that_is_text_in_no_encoding_is_a_bad_row_and_the_file_goes_on() -> None:
    broken = (
        "\t".join(row(order_id="111-0000009-0000009").values())
        .encode()
        .replace(b"Example product", b"\x81\x8d")
    )
    orders, bad = read(report([broken, row()]), encoding="windows-1252")
    assert [(b.line, b.reason, b.order_id) for b in bad] == [(2, "BAD_ENCODING", "111-0000009-0000009")]
    assert "Unshipped Orders report line 2 is not cp1252 text" in bad[0].message
    assert [o.lines for o in orders] == [(3,)]


def test_rows_of_one_order_become_one_snapshot_within_the_window() -> None:
    a1 = row(order_id="111-0000001-0000001", order_item_id="11")
    b1 = row(order_id="111-0000002-0000002", order_item_id="21")
    a2 = row(order_id="111-0000001-0000001", order_item_id="12")
    orders, _ = read(report([a1, b1, a2]))
    assert [o.lines for o in orders] == [(2, 4), (3,)]
    assert [i.order_item_id for i in orders[0].events[0].body.items] == ["11", "12"]  # type: ignore[union-attr]


def test_rows_further_apart_than_the_window_are_two_snapshots_that_fold_into_the_same_order() -> None:
    rows = [
        row(order_id="111-0000001-0000001", order_item_id="11", is_buyer_requested_cancellation="TRUE"),
        row(order_id="111-0000002-0000002", order_item_id="21"),
        row(order_id="111-0000001-0000001", order_item_id="12"),
    ]
    split, _ = read(report(rows), window=1)
    whole, _ = read(report(rows))
    assert [o.lines for o in split] == [(2,), (3,), (4,)]  # nothing lost, one extra event

    def facts(orders: list[ReportOrder]) -> Any:
        order = fold(e for o in orders for e in o.events if e.key.amazon_order_id == "111-0000001-0000001")
        assert order is not None
        items = sorted((i.order_item_id, i.sku, i.has_formal_request) for i in order.items.values())
        return order.status, order.channel, order.purchased_at, items

    assert facts(split) == facts(whole)


def test_an_order_with_more_rows_than_an_event_may_carry_is_split() -> None:
    rows: list[dict[str, str] | bytes] = [row(order_item_id=str(n)) for n in range(MAX_ITEMS + 1)]
    orders, bad = read(report(rows))
    assert bad == [] and [len(o.lines) for o in orders] == [MAX_ITEMS, 1]


def test_event_ids_are_the_same_for_the_same_file_and_differ_between_files() -> None:
    once = [e.event_id for o in read(UNSHIPPED_FILE)[0] for e in o.events]
    assert once == [e.event_id for o in read(UNSHIPPED_FILE)[0] for e in o.events]
    other = [
        e.event_id for o in read(UNSHIPPED_FILE, source_id="amzn1.spdoc.1.4.na.doc-42")[0] for e in o.events
    ]
    assert set(once).isdisjoint(other)


def test_the_marketplace_from_the_sales_channel_or_the_callers() -> None:
    orders, bad = read(
        report([row(sales_channel="Amazon.co.uk"), row(order_id="111-2", sales_channel="Non-Amazon")])
    )
    assert [o.events[0].key.marketplace_id for o in orders] == ["A1F83G8C2ARO7P", US]
    orders, bad = read(report([row(sales_channel="Non-Amazon")]), marketplace_id=None)
    assert orders == [] and [b.reason for b in bad] == ["UNKNOWN_MARKETPLACE"]
    assert (
        "sales-channel 'Non-Amazon' names no Amazon marketplace, and no marketplace was given"
        in bad[0].message
    )


def test_an_all_orders_request_without_item_ids_is_a_request_on_the_whole_order() -> None:
    header = [*ALL_ORDERS_HEADER, "is-buyer-requested-cancellation", "buyer-requested-cancel-reason"]
    cells = dict(
        zip(ALL_ORDERS_HEADER, ALL_ORDERS_FILE.split(b"\n")[1].decode("cp1252").split("\t"), strict=True)
    )
    cells |= {"order-status": "Unshipped", "is-buyer-requested-cancellation": "true"}
    cells["buyer-requested-cancel-reason"] = "Ordered twice"
    [order] = read(report([cells], header, encoding="cp1252"), encoding="cp1252")[0]
    snapshot, request = order.events
    assert isinstance(snapshot.body, OrderSnapshot) and snapshot.body.items == ()
    assert request.body == CancellationRequested(RequestKind.FORMAL, (), "Ordered twice")
    assert request.event_id == snapshot.event_id + ":request"
    with_items = read(
        report([{**cells, "order-item-id": "31"}], [*header, "order-item-id"]), encoding="cp1252"
    )
    [only] = with_items[0][0].events  # with item ids the flag rides on the item
    assert only.body.items[0].buyer_requested_cancel is True  # type: ignore[union-attr]


# --- files that cannot be read at all ---------------------------------------------------------------

HEADER_LINE = "\t".join(HEADER).encode()
CANNOT_READ = [
    (b"", {}, "EMPTY_RECORD", "the file is empty"),
    (b"\r\n", {}, "EMPTY_RECORD", "the file is empty"),
    (b"sku\tquantity\r\n", {}, "MISSING_FIELD", "neither order-id"),
    (HEADER_LINE.replace(b"purchase-date", b"purchased"), {}, "MISSING_FIELD", "no purchase-date column"),
    (HEADER_LINE + b"\tSKU", {}, "BAD_ROW", "names sku 2 times"),
    (b"order-id\t" + b"x" * MAX_LINE_BYTES, {}, "TOO_LARGE", "header is longer"),
    (b"order-id\torder-item-id\tpurchase-date\xff\r\n", {}, "BAD_ENCODING", "header is not utf-8"),
    (HEADER_LINE, {"kind": ReportKind.ALL_ORDERS}, "MISSING_FIELD", "not an All Orders report"),
    (HEADER_LINE, {"encoding": "ebcdic"}, "UNKNOWN_VALUE", "unknown report encoding 'ebcdic'"),
    (HEADER_LINE, {"marketplace_id": "AMAZON.COM"}, "UNKNOWN_MARKETPLACE", "unknown marketplace id"),
    (HEADER_LINE, {"seller_account": "A1 SELLER"}, "BAD_IDENTIFIER", "seller account"),
    (HEADER_LINE, {"as_of": datetime(1999, 12, 31, tzinfo=UTC)}, "TIME_OUT_OF_RANGE", "the report's time"),
]


@pytest.mark.parametrize(
    ("data", "kw", "reason", "says"), CANNOT_READ, ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_file_that_cannot_be_read_at_all_says_why(
    data: bytes, kw: dict[str, Any], reason: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        reader(data, **kw)
    assert err.value.reason == reason, str(err.value)
    assert says in str(err.value)


# --- bad rows ---------------------------------------------------------------------------------------

L2 = "Unshipped Orders report line 2"
BAD_ROWS = [
    (row(order_id=""), "MISSING_FIELD", f"{L2} has no order-id"),
    (row(order_id="111-0000002 0000002"), "BAD_IDENTIFIER", "without spaces"),
    (row(order_id="111-0000002\x000000002"), "BAD_IDENTIFIER", "control characters"),
    (row(order_id="9" * 65), "BAD_IDENTIFIER", "at most 64"),
    (row(order_item_id=""), "MISSING_FIELD", f"{L2} has no order-item-id"),
    (row(purchase_date=""), "MISSING_FIELD", f"{L2} has no purchase-date"),
    (row(purchase_date="yesterday"), "BAD_TIME", f"{L2}: purchase-date"),
    (row(purchase_date="2026-11-20 09:15:02 PST"), "BAD_TIME", "not an ISO 8601 time"),
    (row(purchase_date="2026-11-20T09:15:02"), "BAD_TIME", "no time zone"),
    (row(purchase_date="0001-01-01T00:00:00+00:00"), "TIME_OUT_OF_RANGE", "outside 2000-01-01"),
    (row(purchase_date="1970-01-19T03:58:30+00:00"), "TIME_OUT_OF_RANGE", "purchase-date"),
    (row(purchase_date="2999-01-01T00:00:00+00:00"), "TIME_OUT_OF_RANGE", "purchase-date"),
    (row(quantity_purchased="2147483648"), "OUT_OF_RANGE", "quantity-purchased is 2147483648"),
    (row(quantity_purchased="1.5"), "OUT_OF_RANGE", "whole number"),
    (row(quantity_purchased="-1"), "OUT_OF_RANGE", "whole number"),
    (row(quantity_shipped="9" * 40), "OUT_OF_RANGE", "quantity-shipped"),
    (row(sku="MUG\x07"), "BAD_TEXT", "control character"),
    (row(sku="M" * 201), "BAD_TEXT", "at most 200"),
    (
        row(is_buyer_requested_cancellation="maybe"),
        "UNKNOWN_VALUE",
        "is-buyer-requested-cancellation: expected",
    ),
    (row(buyer_requested_cancel_reason="\x00"), "BAD_TEXT", "control character"),
    (row(sales_channel="Amazon.com\x1b"), "BAD_TEXT", "sales-channel"),
    (row() | {"extra": "cell"}, "BAD_ROW", f"{L2} has {len(HEADER) + 1} cells; the header has {len(HEADER)}"),
    (b"111-0000002-0000002\t10000000000021", "BAD_ROW", "has 2 cells"),
    (b"x" * (MAX_LINE_BYTES + 10), "TOO_LARGE", f"{L2} is longer than {MAX_LINE_BYTES} bytes"),
]


@pytest.mark.parametrize(("bad", "reason", "says"), BAD_ROWS, ids=lambda v: v if isinstance(v, str) else "")
def test_a_bad_row_says_its_line_and_why_and_the_next_row_is_read(
    bad: dict[str, str] | bytes, reason: str, says: str
) -> None:
    if isinstance(bad, dict) and "extra" in bad:  # the extra cell is only in the bad row
        bad = b"\t".join(bad[c].encode() for c in [*HEADER, "extra"])
    r = reader(report([bad, row(order_id="111-0000009-0000009")]))
    records = list(r)
    bad_rows = [x for x in records if isinstance(x, BadRow)]
    assert [(b.line, b.reason) for b in bad_rows] == [(2, reason)], bad_rows
    assert says in bad_rows[0].message
    assert [x.lines for x in records if isinstance(x, ReportOrder)] == [(3,)]
    assert r.rows_read == 2


ALL_ORDERS_L2 = "All Orders report line 2"


@pytest.mark.parametrize(
    ("cells", "reason", "says"),
    [
        ({"order-status": "Lost"}, "UNKNOWN_VALUE", f"{ALL_ORDERS_L2}: order-status: unknown order status"),
        ({"order-status": ""}, "MISSING_FIELD", "has no order-status"),
        ({"fulfillment-channel": "FBA"}, "UNKNOWN_VALUE", "fulfillment-channel: unknown fulfilment channel"),
        ({"last-updated-date": ""}, "MISSING_FIELD", "has no last-updated-date"),
        ({"last-updated-date": "2999-01-01T00:00:00+00:00"}, "TIME_OUT_OF_RANGE", "last-updated-date"),
    ],
)
def test_bad_all_orders_rows(cells: dict[str, str], reason: str, says: str) -> None:
    base = dict(
        zip(ALL_ORDERS_HEADER, ALL_ORDERS_FILE.split(b"\n")[1].decode("cp1252").split("\t"), strict=True)
    )
    _, [bad] = read(report([base | cells], ALL_ORDERS_HEADER, encoding="cp1252"), encoding="cp1252")
    assert (bad.line, bad.reason, bad.order_id) == (2, reason, "302-0000001-0000001")
    assert says in bad.message


# --- a file is streamed, never loaded ---------------------------------------------------------------


class GeneratedReport(io.RawIOBase):
    """A report of `rows` rows made up as it is read: it counts how much the reader asked for."""

    def __init__(self, rows: int) -> None:
        self._chunks = self._lines(rows)
        self._pending = b""
        self.bytes_read = 0

    @staticmethod
    def _lines(rows: int) -> Iterator[bytes]:
        yield ("\t".join(HEADER) + "\r\n").encode()
        for n in range(rows):
            yield ("\t".join(row(order_id=f"111-{n:07d}-0000001").values()) + "\r\n").encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._pending) < len(buffer):
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._pending += chunk
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.bytes_read += n
        return n


def test_the_reader_streams_a_file_it_never_loads_whole() -> None:
    source = GeneratedReport(rows=1_000_000)  # about 500 MB if it were all read
    records = iter(reader(io.BufferedReader(source)))
    first = next(records)
    assert isinstance(first, ReportOrder) and first.lines == (2,)
    # the first order comes out once the window is full: 256 rows read, not the file
    assert source.bytes_read < 300 * 1024


# --- anything in a cell -----------------------------------------------------------------------------

READ_COLUMNS = [
    "order-id",
    "order-item-id",
    "purchase-date",
    "sku",
    "quantity-purchased",
    "quantity-shipped",
    "is-buyer-requested-cancellation",
    "buyer-requested-cancel-reason",
    "sales-channel",
]


@given(
    cells=st.lists(
        st.tuples(
            st.sampled_from(READ_COLUMNS),
            st.binary(max_size=12) | st.sampled_from([b"", b"TRUE", b"\xef\xbb\xbf"]),
        ),
        max_size=6,
    ),
    encoding=st.sampled_from(["utf-8", "windows-1252", "shift_jis"]),
    rows=st.integers(min_value=1, max_value=4),
)
@settings(max_examples=300, deadline=None)
def test_random_bytes_in_cells_give_valid_events_or_bad_rows_with_a_reason(
    cells: list[tuple[str, bytes]], encoding: str, rows: int
) -> None:
    lines: list[dict[str, str] | bytes] = []
    for n in range(rows):
        cells_of_row = {c: v.encode() for c, v in row(order_item_id=f"{n}").items()}
        for column, value in cells[n::rows]:
            cells_of_row[column] = value
        lines.append(b"\t".join(cells_of_row[c] for c in HEADER))
    r = reader(report(lines), encoding=encoding)
    accepted = rejected = 0
    for record in r:
        if isinstance(record, BadRow):
            assert record.reason in {x.value for x in Reason}
            rejected += 1
            continue
        accepted += len(record.lines)
        for event in record.events:
            check_event(event, now=NOW)
            assert codec.decode(codec.encode(event)) == event
    assert accepted + rejected == r.rows_read  # blank lines are not rows
