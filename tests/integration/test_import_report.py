"""`cancelguard import-report` against a real Kafka broker: the orders of a report file become order events
keyed like ingestion's, every bad row becomes a dead letter (reason code, line, file name; no buyer data),
and the summary says so. The CLI itself runs as a process for its exit code and its output.
"""

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from cancelguard import dead_letters
from cancelguard.config import Settings
from cancelguard.domain.model import OrderEvent, OrderSnapshot
from cancelguard.events import codec
from cancelguard.ingestion.report_import import ImportOptions, import_reports, summary

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures/amazon/unshipped_orders_report_example.txt"
SELLER = "A1SELLERTEST"
US, CA = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"
AS_OF = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
BUYER_DATA = (b"Jane Example", b"jane.example", b"62701", b"1 Example Street", b"555 0100")


def _cells_of(line: bytes, header: list[bytes], **changes: bytes) -> bytes:
    cells = line.split(b"\t")
    for column, value in changes.items():
        cells[header.index(column.replace("_", "-").encode())] = value
    return b"\t".join(cells)


def report_with_bad_rows(tmp_path: Path) -> Path:
    """Amazon-shaped rows 2-6 (four orders), then one bad row per reason, lines 7-12."""
    head, *rows = FIXTURE.read_bytes().rstrip(b"\r\n").split(b"\r\n")
    header = head.split(b"\t")
    template = rows[2]  # order 111-0000002-0000002, one item
    bad = [
        _cells_of(template, header, order_id=b"111-0000007-0000007", purchase_date=b"yesterday"),
        _cells_of(template, header, order_id=b"111-0000008-0000008", quantity_purchased=b"2147483648"),
        _cells_of(
            template, header, order_id=b"111-0000009-0000009", is_buyer_requested_cancellation=b"maybe"
        ),
        b"111-0000010-0000010\t10000000000101\t2026-11-20T09:15:02+00:00",
        _cells_of(template, header, order_id=b"111-0000011-0000011", product_name=b"Tasse \x81 blau"),
        _cells_of(template, header, order_id=b"111-0000\x0012-0000012"),
    ]
    path = tmp_path / "unshipped-2026-11-20.txt"
    path.write_bytes(b"\r\n".join([head, *rows, *bad]) + b"\r\n")
    return path


async def read_topic(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Everything on the topic up to its end offsets when called."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        while True:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end for tp, end in ends.items()):
                return records
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += batch
    finally:
        await consumer.stop()


async def test_orders_become_events_and_bad_rows_dead_letters(settings: Settings, tmp_path: Path) -> None:
    path = report_with_bad_rows(tmp_path)
    options = ImportOptions(SELLER, marketplace_id=US, as_of=AS_OF)
    [result] = await import_reports(settings, [path], options)

    assert result.error == ""
    assert (result.rows_read, result.orders, result.events_published) == (11, 4, 4)
    assert result.rejected == Counter(
        {
            "BAD_TIME": 1,
            "OUT_OF_RANGE": 1,
            "UNKNOWN_VALUE": 1,
            "BAD_ROW": 1,
            "BAD_ENCODING": 1,
            "BAD_IDENTIFIER": 1,
        }
    )

    published = await read_topic(settings, settings.order_events_topic)
    events = {e.event_id: (r.key, e) for r in published if isinstance(e := codec.decode(r.value), OrderEvent)}
    assert len(published) == len(events) == 4  # one snapshot per order; two rows of order 1 make one
    by_order = {e.key.amazon_order_id: (key, e.body) for key, e in events.values()}
    assert set(by_order) == {
        "111-0000001-0000001",
        "111-0000002-0000002",
        "111-0000003-0000003",
        "702-0000004-0000004",
    }
    key, first = by_order["111-0000001-0000001"]
    assert key == f"{SELLER}|{US}".encode()
    assert isinstance(first, OrderSnapshot)
    assert [(i.order_item_id, i.buyer_requested_cancel) for i in first.items] == [
        ("10000000000011", True),
        ("10000000000012", False),
    ]
    second = by_order["111-0000002-0000002"][1]
    assert isinstance(second, OrderSnapshot) and second.items[0].buyer_requested_cancel is None  # empty cell
    assert by_order["702-0000004-0000004"][0] == f"{SELLER}|{CA}".encode()  # sales-channel Amazon.ca
    assert all(e.occurred_at == AS_OF for _, e in events.values())

    dead = await read_topic(settings, settings.dead_letter_topic)
    headers = [dict(r.headers) for r in dead]
    assert sorted((int(h[dead_letters.SOURCE_LINE]), h[dead_letters.REASON_CODE]) for h in headers) == [
        (7, b"BAD_TIME"),
        (8, b"OUT_OF_RANGE"),
        (9, b"UNKNOWN_VALUE"),
        (10, b"BAD_ROW"),
        (11, b"BAD_ENCODING"),
        (12, b"BAD_IDENTIFIER"),
    ]
    assert {h[dead_letters.SOURCE_FILE] for h in headers} == {path.name.encode()}
    assert {h[dead_letters.STAGE] for h in headers} == {b"import-report"}
    values = {json.loads(r.value)["line"]: json.loads(r.value) for r in dead}
    assert values[8] == {"order_id": "111-0000008-0000008", "line": 8, "reason": "OUT_OF_RANGE"}
    assert values[12]["order_id"] == ""  # not an order id: nothing of the row is kept
    for record in dead:
        for data in (record.value, *dict(record.headers).values()):
            assert not any(personal in data for personal in BUYER_DATA)

    text = summary([result])
    assert "rows read 11; events published 4 (4 orders); rows rejected 6" in text
    assert "OUT_OF_RANGE: Unshipped Orders report line 8: quantity-purchased is 2147483648" in text

    # the same file again: the same event ids (the fold absorbs them)
    await import_reports(settings, [path], options)
    again = await read_topic(settings, settings.order_events_topic)
    assert {codec.decode(r.value).event_id for r in again} == set(events)


def test_the_command_exits_non_zero_only_for_a_file_it_cannot_read(
    settings: Settings, tmp_path: Path
) -> None:
    good = report_with_bad_rows(tmp_path)
    env = {
        **os.environ,
        "CANCELGUARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "CANCELGUARD_TOPIC_PREFIX": settings.topic_prefix,
        "CANCELGUARD_TOPIC_PARTITIONS": str(settings.topic_partitions),
    }
    command = [sys.executable, "-m", "cancelguard", "import-report", "--seller", SELLER, "--marketplace", US]
    ok = subprocess.run([*command, str(good)], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "rows read 11; events published 4 (4 orders); rows rejected 6" in ok.stdout
    assert "rejected by reason: " in ok.stdout
    assert "unshipped-2026-11-20.txt: " in ok.stderr  # the progress line

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.txt"
    failed = subprocess.run(
        [*command, str(empty), str(good), str(missing)], env=env, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 1
    assert "empty.txt: not imported: the file is empty" in failed.stdout
    assert "missing.txt: not imported:" in failed.stdout
    assert "total: 1 of 3 files imported" in failed.stdout

    usage = subprocess.run(
        [*command[:-1], "NOT-A-MARKETPLACE", str(good)], env=env, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2
    assert "unknown marketplace id 'NOT-A-MARKETPLACE'" in usage.stderr
