"""Bad input through the real services, against a real Kafka broker and a real Postgres server.

Each table row is one bad record. On its partition it is followed by a good record of its own order, so
the test shows, per row: the dead letter (reason code, message, stage, where it came from), that the
record after it was still processed, and that published + dead-lettered = records read.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf.timestamp_pb2 import Timestamp

from cancelguard import db, dead_letters, kafka
from cancelguard.config import Settings
from cancelguard.domain import model as m
from cancelguard.events import codec
from cancelguard.events.v1 import order_event_pb2 as pb
from cancelguard.ingestion.service import IngestionService
from cancelguard.metrics.service import MetricsService
from cancelguard.metrics.store import PartitionBatch
from cancelguard.simulator.order_change import NotificationItem, amazon_time, order_change_notification

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
SELLER, MARKET = "A1DEMOSELLERUS", "ATVPDKIKX0DER"


@asynccontextmanager
async def running(*services: IngestionService | MetricsService) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in services]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)  # a clean stop: no exception


def notification(order_id: str, **changes: Any) -> dict[str, Any]:
    doc = order_change_notification(
        seller_id=SELLER,
        amazon_order_id=order_id,
        marketplace_id=MARKET,
        change_type="OrderStatusChange",
        change_reason="Order status changed to Unshipped",
        time_of_change=NOW - timedelta(hours=2),
        order_status="Unshipped",
        purchase_date=NOW - timedelta(hours=3),
        fulfillment_type="MFN",
        latest_ship_date=NOW + timedelta(days=2),
        items=[NotificationItem(f"{order_id}-1", "SKU-1", 1)],
    )
    for path, value in changes.items():
        node = doc
        *parents, last = path.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return doc


DELETE = object()
ONC = "Payload__OrderChangeNotification"
SUM = f"{ONC}__Summary"
ITEM = f"{SUM}__OrderItems__0"


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _huge(order_id: str) -> bytes:
    """Just under the broker's 1 MiB record limit: its dead-letter copy would exceed it."""
    doc = notification(order_id, **{f"{SUM}__OrderStatus": "Lost"})
    doc["Padding"] = "x" * (1_040_000 - len(_raw(doc)))
    return _raw(doc)


# name -> (raw record bytes for a fresh order id, reason code, what the message says)
ORDER_CHANGE_CASES: dict[str, tuple[Callable[[str], bytes | None], str, str]] = {
    "not JSON": (lambda o: b"{not json", "NOT_JSON", "not JSON"),
    "invalid UTF-8": (lambda o: b'{"a": "\xff\xfe"}', "NOT_JSON", "not JSON"),
    "a JSON array": (lambda o: b"[1, 2]", "NOT_AN_OBJECT", "JSON object"),
    "no value": (lambda o: None, "EMPTY_RECORD", "empty record"),
    "deep nesting": (lambda o: b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "TOO_DEEP", "too deeply"),
    "another notification type": (
        lambda o: _raw(notification(o, NotificationType="ANY_OFFER_CHANGED")),
        "WRONG_TYPE",
        "ORDER_CHANGE",
    ),
    "unknown marketplace": (
        lambda o: _raw(notification(o, **{f"{SUM}__MarketplaceId": "XX_NOT_A_MARKETPLACE"})),
        "UNKNOWN_MARKETPLACE",
        "unknown marketplace",
    ),
    "lone surrogate in the seller id": (
        lambda o: _raw(notification(o, **{f"{ONC}__SellerId": "A1\ud800"})),
        "BAD_IDENTIFIER",
        "SellerId",
    ),
    "lone surrogate in the SKU": (
        lambda o: _raw(notification(o, **{f"{ITEM}__SellerSKU": "SKU-\udfff"})),
        "BAD_TEXT",
        "lone surrogate",
    ),
    "NUL byte in the order id": (
        lambda o: _raw(notification(o, **{f"{ONC}__AmazonOrderId": "114-\x00-1"})),
        "BAD_IDENTIFIER",
        "AmazonOrderId",
    ),
    "order id with a trailing space": (
        lambda o: _raw(notification(o, **{f"{ONC}__AmazonOrderId": f"{o} "})),
        "BAD_IDENTIFIER",
        "without spaces",
    ),
    "512 KiB order id": (
        lambda o: _raw(notification(o, **{f"{ONC}__AmazonOrderId": "9" * 2**19})),
        "BAD_IDENTIFIER",
        "at most 64",
    ),
    "quantity of 2^31": (
        lambda o: _raw(notification(o, **{f"{ITEM}__Quantity": 2**31})),
        "OUT_OF_RANGE",
        "Quantity",
    ),
    "negative quantity": (
        lambda o: _raw(notification(o, **{f"{ITEM}__QuantityShipped": -3})),
        "OUT_OF_RANGE",
        "",
    ),
    "no PurchaseDate": (
        lambda o: _raw(notification(o, **{f"{SUM}__PurchaseDate": DELETE})),
        "MISSING_FIELD",
        "PurchaseDate",
    ),
    "PurchaseDate in year 1": (
        lambda o: _raw(notification(o, **{f"{SUM}__PurchaseDate": "0001-01-01T00:00:00Z"})),
        "TIME_OUT_OF_RANGE",
        "PurchaseDate",
    ),
    "PurchaseDate in 1970": (
        lambda o: _raw(notification(o, **{f"{SUM}__PurchaseDate": "1970-01-19T03:58:30Z"})),
        "TIME_OUT_OF_RANGE",
        "PurchaseDate",
    ),
    "PurchaseDate in 2999": (
        lambda o: _raw(notification(o, **{f"{SUM}__PurchaseDate": "2999-01-01T00:00:00Z"})),
        "TIME_OUT_OF_RANGE",
        "PurchaseDate",
    ),
    "time of change not a time": (
        lambda o: _raw(notification(o, **{f"{ONC}__OrderChangeTrigger__TimeOfOrderChange": "soon"})),
        "BAD_TIME",
        "TimeOfOrderChange",
    ),
    "dead letter would exceed 1 MB": (_huge, "UNKNOWN_VALUE", "unknown order status"),
}

BUYER_MESSAGE_CASES: dict[str, tuple[Callable[[str], bytes | None], str, str]] = {
    "missing fields": (lambda o: b'{"message_id": "m1"}', "MISSING_FIELD", "seller_account"),
    "NUL byte in the order id": (
        lambda o: _message(o, amazon_order_id="114\x00"),
        "BAD_IDENTIFIER",
        "amazon_order_id",
    ),
    "lone surrogate in the text": (lambda o: _message(o, text="cancel \ud800 please"), "BAD_TEXT", "text"),
    "sent in 2999": (lambda o: _message(o, sent_at="2999-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", "sent_at"),
    "unknown marketplace": (lambda o: _message(o, marketplace_id="NOPE"), "UNKNOWN_MARKETPLACE", "NOPE"),
}


def _message(order_id: str, **changes: Any) -> bytes:
    doc = {
        "message_id": f"msg-{order_id}",
        "seller_account": SELLER,
        "marketplace_id": MARKET,
        "amazon_order_id": order_id,
        "sent_at": amazon_time(NOW - timedelta(hours=1)),
        "text": "Please cancel my order, I ordered it by mistake.",
        **changes,
    }
    return json.dumps(doc).encode()


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def _event(order_id: str, **changes: Any) -> pb.OrderEvent:
    """A well-formed order event as ingestion writes it, then changed."""
    event = m.OrderEvent(
        event_id=f"test:{order_id}",
        key=m.OrderKey(SELLER, MARKET, order_id),
        source=m.Source.ORDER_CHANGE,
        occurred_at=NOW - timedelta(hours=2),
        observed_at=NOW,
        body=m.OrderSnapshot(
            status=m.OrderStatus.UNSHIPPED,
            channel=m.Channel.MFN,
            purchased_at=NOW - timedelta(hours=3),
            items=(m.ItemObservation(f"{order_id}-1", "SKU-1", 1, 0),),
        ),
    )
    msg = pb.OrderEvent.FromString(codec.encode(event))
    for name, value in changes.items():
        if name == "occurred_at":
            msg.occurred_at.CopyFrom(value)
        elif name == "purchased_at":
            msg.snapshot.ClearField("purchased_at") if value is None else msg.snapshot.purchased_at.CopyFrom(
                value
            )
        elif name == "quantity_ordered":
            msg.snapshot.items[0].quantity_ordered = value
        else:
            setattr(msg, name, value)
    return msg


EVENT_CASES: dict[str, tuple[Callable[[str], bytes | None], str, str]] = {
    "not an OrderEvent": (lambda o: b"\x08\x96\x01garbage", "NOT_AN_EVENT", "OrderEvent"),
    "no value": (lambda o: None, "EMPTY_RECORD", "empty record"),
    "NUL byte in the order id": (
        lambda o: _event(o, amazon_order_id=f"{o}\x00").SerializeToString(),
        "BAD_IDENTIFIER",
        "amazon_order_id",
    ),
    "timestamp beyond year 9999": (
        lambda o: _event(o, occurred_at=_ts(2**40)).SerializeToString(),
        "TIME_OUT_OF_RANGE",
        "timestamp out of range",
    ),
    "occurred in 1970": (
        lambda o: _event(o, occurred_at=_ts(86_400)).SerializeToString(),
        "TIME_OUT_OF_RANGE",
        "",
    ),
    "snapshot without purchase date": (
        lambda o: _event(o, purchased_at=None).SerializeToString(),
        "MISSING_FIELD",
        "purchase date",
    ),
    "quantity of 2^31 - 1": (
        lambda o: _event(o, quantity_ordered=2**31 - 1).SerializeToString(),
        "OUT_OF_RANGE",
        "quantity_ordered",
    ),
    "unknown marketplace": (
        lambda o: _event(o, marketplace_id="ZZ").SerializeToString(),
        "UNKNOWN_MARKETPLACE",
        "ZZ",
    ),
}


def _good_event(order_id: str) -> bytes:
    return _event(order_id).SerializeToString()


async def _produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    """In this order, on one partition (one key), so each good record comes right after its bad one."""
    await kafka.ensure_topics(
        settings.kafka_bootstrap, settings.all_topics, partitions=settings.topic_partitions, replication=1
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=1_100_000,
    )
    await producer.start()
    try:
        for key, value in records:  # one at a time: keeps the order whatever the batching
            await (await producer.send(topic, value, key=key))
    finally:
        await producer.stop()


async def _read(settings: Settings, topic: str, count: int, timeout: float = 90) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
    finally:
        await consumer.stop()
    return records


async def _orders_in_postgres(settings: Settings, want: set[str], timeout: float = 90) -> set[str]:
    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = {r[0] for r in await pool.fetch("SELECT amazon_order_id FROM orders")}
            except asyncpg.UndefinedTableError:  # the metrics service has not migrated yet
                found = set()
            if want <= found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await pool.close()


def _check_dead_letters(
    cases: dict[str, tuple[Callable[[str], bytes | None], str, str]],
    sent: dict[int, str],
    letters: list[Any],
    source_topic: str,
    stage: str,
) -> list[str]:
    """Failures, one line per table row that did not end as it should."""
    by_offset = {}
    for letter in letters:
        d = dead_letters.describe(
            letter.partition, letter.offset, letter.timestamp, letter.key, letter.value, letter.headers
        )
        if d.origin is not None and d.origin.topic == source_topic:
            by_offset[d.origin.offset] = d
    failures = []
    for offset, name in sent.items():
        _, code, says = cases[name]
        d = by_offset.get(offset)
        if d is None:
            failures.append(f"{name}: no dead letter")
        elif (d.reason_code, d.stage) != (code, stage) or says not in d.reason:
            failures.append(f"{name}: got {d.reason_code} at {d.stage}: {d.reason[:200]}")
        elif d.value is not None and len(d.value) > dead_letters.MAX_VALUE:
            failures.append(f"{name}: dead letter of {len(d.value)} bytes")
    assert len(by_offset) == len(sent), "a dead letter for a record that was not bad"
    return failures


async def test_every_bad_raw_record_is_dead_lettered_and_the_next_one_is_processed(
    settings: Settings,
) -> None:
    for round_, (topic_name, cases, make_good) in enumerate(
        (
            ("order_change_topic", ORDER_CHANGE_CASES, lambda o: _raw(notification(o))),
            ("buyer_messages_topic", BUYER_MESSAGE_CASES, lambda o: _message(o)),
        )
    ):
        # topics of their own per table, so that each dead-letter topic holds one table's letters
        settings = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{round_}."})
        topic = getattr(settings, topic_name)
        records: list[tuple[bytes, bytes | None]] = []
        bad_at: dict[int, str] = {}
        good_orders = set()
        for name, (make_bad, _, _) in cases.items():
            order_id = f"114-{uuid.uuid4().int % 10**7:07d}-{len(records):07d}"
            bad_at[len(records)] = name
            records.append((b"one-partition", make_bad(order_id)))
            good_id = f"{order_id[:-1]}9"
            records.append((b"one-partition", make_good(good_id)))
            good_orders.add(good_id)
        await _produce(settings, topic, records)
        # the partition holds only these records, from offset 0
        async with running(IngestionService(settings), MetricsService(settings)):
            found = await _orders_in_postgres(settings, good_orders)
            letters = await _read(settings, settings.dead_letter_topic, len(bad_at))
        failures = _check_dead_letters(cases, bad_at, letters, topic, "ingestion")
        assert not failures, "\n".join(failures)
        assert good_orders <= found, f"{topic}: the records after the bad ones were not all applied"
        # every raw record is accounted for: published (one event each) + dead-lettered = read
        events = await _read(settings, settings.order_events_topic, len(good_orders), timeout=10)
        assert len({codec.decode(e.value).key.amazon_order_id for e in events} & good_orders) == len(
            good_orders
        )


async def test_personal_data_never_reaches_a_dead_letter(settings: Settings) -> None:
    order_id = "114-0000000-0000001"
    bad_notification = _raw(notification(order_id, **{f"{SUM}__OrderStatus": "Lost"}))
    bad_message = _message(order_id, marketplace_id="NOPE", text="Cancel, I live at 12 Privet Drive, 48110")
    await _produce(settings, settings.order_change_topic, [(b"k", bad_notification)])
    await _produce(settings, settings.buyer_messages_topic, [(b"k", bad_message)])
    async with running(IngestionService(settings)):
        letters = await _read(settings, settings.dead_letter_topic, 2)
    assert len(letters) == 2
    for letter in letters:
        assert b"48110" not in letter.value and b"Privet" not in letter.value
        d = dead_letters.describe(0, 0, 0, letter.key, letter.value, letter.headers)
        assert not d.whole and d.original_size > len(letter.value)
    assert (
        json.loads(next(x for x in letters if b"Lost" in x.value).value)["NotificationType"] == "ORDER_CHANGE"
    )


async def test_every_bad_event_is_dead_lettered_by_the_metrics_service(settings: Settings) -> None:
    records: list[tuple[bytes, bytes | None]] = []
    bad_at: dict[int, str] = {}
    good = set()
    for name, (make_bad, _, _) in EVENT_CASES.items():
        order_id = f"114-{len(records):07d}-0000001"
        bad_at[len(records)] = name
        records.append((b"one-partition", make_bad(order_id)))
        good_id = f"114-{len(records):07d}-0000002"
        records.append((b"one-partition", _good_event(good_id)))
        good.add(good_id)
    await _produce(settings, settings.order_events_topic, records)
    async with running(MetricsService(settings)):
        found = await _orders_in_postgres(settings, good)
        letters = await _read(settings, settings.dead_letter_topic, len(bad_at))
    assert good <= found
    assert not found - good, "a bad event reached Postgres"
    failures = _check_dead_letters(EVENT_CASES, bad_at, letters, settings.order_events_topic, "metrics")
    assert not failures, "\n".join(failures)


async def test_an_event_postgres_refuses_is_dead_lettered_and_the_rest_of_its_batch_applied(
    settings: Settings,
) -> None:
    """The store's own defence, behind the bounds: an event that got past them (here built by hand
    with a NUL byte, which Postgres refuses in text) is found among the batch, dead-lettered with
    STORE_REJECTED, and the batch's other events are applied."""
    service = MetricsService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        deadline = time.monotonic() + 60
        while service.dependencies is None or not service.dependencies.all_up:
            assert time.monotonic() < deadline, "the metrics service did not start"
            await asyncio.sleep(0.1)
        good = [codec.decode(_good_event(f"114-0000000-000000{n}")) for n in range(3)]
        poison = codec.decode(_event("114-0000000-0000009").SerializeToString())
        poison = m.OrderEvent(
            poison.event_id,
            m.OrderKey(SELLER, MARKET, "114\x00poison"),
            poison.source,
            poison.occurred_at,
            poison.observed_at,
            poison.body,
        )
        batch = PartitionBatch(
            settings.order_events_topic, 0, [(0, good[0]), (1, poison), (2, good[1]), (3, good[2])]
        )
        result = await service._apply([batch], [], stop)
        assert result is not None and result.events_applied == 3
        letters = await _read(settings, settings.dead_letter_topic, 1)
        [letter] = [dead_letters.describe(0, 0, 0, x.key, x.value, x.headers) for x in letters]
        assert (letter.reason_code, letter.stage, letter.origin) == (
            "STORE_REJECTED",
            "metrics",
            dead_letters.Origin(settings.order_events_topic, 0, 1),
        )
        found = await _orders_in_postgres(settings, {e.key.amazon_order_id for e in good}, timeout=5)
        assert found == {e.key.amazon_order_id for e in good}
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
