"""Each new source's PERSONAL_FIELDS really take the buyer's data out of its dead letters (Amazon's own
examples), and a report line's dead letter keeps only what identifies it."""

import json
from typing import Any

import pytest

from cancelguard import dead_letters
from cancelguard.ingestion.adapters import orders_v0, orders_v2026, seller_performance

from .documents import fixture

V0_ORDER = fixture("orders_v0_get_orders_with_buyer_info_example.json")["payload"]["Orders"][0]
V0_ITEMS = fixture("orders_v0_get_order_items_jp_example.json")["payload"]
V2026_ORDER = fixture("orders_2026_search_orders_example.json")["orders"][0]

CASES = {
    "v0 Order": (
        V0_ORDER,
        orders_v0.PERSONAL_FIELDS,
        ("John Doe", "user@example.com", "1 Cross St.", "48817"),
    ),
    "v0 getOrderItems payload": (V0_ITEMS, orders_v0.PERSONAL_FIELDS, ("For you!", "zme-caps.amazon.com")),
    "v2026 Order": (
        V2026_ORDER,
        orders_v2026.PERSONAL_FIELDS,
        ("John Smith", "buyer-email@", "123 Main Street", "555-123-4567", "Happy Holidays", "custom/view"),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_personal_fields_of_a_source_leave_its_dead_letter(case: str) -> None:
    doc, fields, personal = CASES[case]
    raw = json.dumps(doc).encode()
    assert all(p.encode() in raw for p in personal)
    letter = dead_letters.build(
        value=raw, key=None, reason_code="BAD_TIME", message="m", origin=dead_letters.Origin("t", 0, 1),
        stage="ingestion", personal_fields=fields,
    )  # fmt: skip
    assert letter.value is not None
    assert not any(p.encode() in letter.value for p in personal)
    kept: Any = json.loads(letter.value)
    assert kept.get("AmazonOrderId", kept.get("orderId")) in (
        "902-3159896-1390916",
        "903-1671087-0812628",
        "123-4567890-1234567",
    )
    assert dict(letter.headers)[dead_letters.REDACTED] == b"true"


def test_the_seller_performance_report_holds_no_personal_data() -> None:
    assert seller_performance.PERSONAL_FIELDS == ()


def test_a_report_lines_dead_letter_names_the_file_and_line_and_keeps_only_the_replacement() -> None:
    row = b"111-0000001-0000001\t10000000000011\tyesterday\tJane Example\t1 Example Street"
    summary = json.dumps({"order_id": "111-0000001-0000001", "line": 7, "reason": "BAD_TIME"}).encode()
    letter = dead_letters.build(
        value=row, key=None, reason_code="BAD_TIME", message="line 7: purchase-date ...",
        origin=dead_letters.FileOrigin("unshipped.txt", 7), stage="import-report", replacement=summary,
    )  # fmt: skip
    assert letter.value == summary
    headers = dict(letter.headers)
    assert (headers[dead_letters.SOURCE_FILE], headers[dead_letters.SOURCE_LINE]) == (b"unshipped.txt", b"7")
    assert dead_letters.SOURCE_TOPIC not in headers
    assert headers[dead_letters.ORIGINAL_SIZE] == str(len(row)).encode()  # the original's, not the copy's
    described = dead_letters.describe(0, 3, 0, letter.key, letter.value, letter.headers)
    assert described.origin == dead_letters.FileOrigin("unshipped.txt", 7)
    assert not described.whole  # nothing to replay it from but the file itself
    assert described.as_json()["source"] == {"file": "unshipped.txt", "line": 7}
