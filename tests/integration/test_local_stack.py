"""The test stack is real: Kafka topics, idempotent produce, group consume with manual commits, Kafka's own
console consumer, and Postgres with a schema per test. Runs against whichever provider conftest chose."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cancelguard.localstack import (
    CONSOLE_CONSUMER,
    KafkaDist,
    LocalKafka,
    LocalPostgres,
    LocalStackError,
    find_free_port,
)

integration = pytest.mark.integration
PARTITIONS = 3
RECORDS = 30


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
        assert all(error_code == 0 for _, error_code, *_ in response.topic_errors), response
        # the broker's metadata cache follows the controller a moment later
        deadline = time.monotonic() + 10
        while True:
            [described] = await admin.describe_topics([topic])
            if described["error_code"] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert described["error_code"] == 0, described
        assert len(described["partitions"]) == partitions
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> dict[bytes, set[int]]:
    """Send keyed records with the producer settings ingestion uses; returns the partitions seen per key."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    partitions: dict[bytes, set[int]] = defaultdict(set)
    try:
        for key, value in records:
            meta = await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), timeout=15)
            partitions[key].add(meta.partition)
    finally:
        await asyncio.wait_for(producer.stop(), timeout=15)
    return partitions


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


@integration
async def test_group_consumer_resumes_after_explicit_commit(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic, group = f"{topic_prefix}orders", f"{topic_prefix}metrics"
    await _create_topic(kafka_bootstrap, topic, PARTITIONS)
    sent = [(f"seller-{i % 5}".encode(), f"event-{i}".encode()) for i in range(RECORDS)]
    partitions_by_key = await _produce(kafka_bootstrap, topic, sent)
    # keyed records stay in one partition per key: what makes a seller's window owned by one consumer
    assert all(len(p) == 1 for p in partitions_by_key.values()), partitions_by_key

    # first consumer processes part of the stream and commits exactly what it processed
    first: list[ConsumerRecord[bytes, bytes]] = []
    committed: dict[TopicPartition, int] = {}
    consumer = _consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while len(first) < 12 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records[: 12 - len(first)]:
                    first.append(record)
                    committed[tp] = record.offset + 1
        assert len(first) == 12
        await consumer.commit(committed)
        for tp, offset in committed.items():
            assert await consumer.committed(tp) == offset
    finally:
        await consumer.stop()

    # a second member of the same group starts where the commits say, and reads the rest once
    second: list[ConsumerRecord[bytes, bytes]] = []
    consumer = _consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while len(first) + len(second) < RECORDS and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                second.extend(records)
    finally:
        await consumer.stop()

    for record in second:
        tp = TopicPartition(record.topic, record.partition)
        assert record.offset >= committed.get(tp, 0), "read again below the committed offset"
    seen = [(r.key, r.value) for r in first + second]
    assert len(seen) == RECORDS and sorted(seen) == sorted(sent), "lost or duplicated records"


@integration
async def test_kafka_console_consumer_reads_what_aiokafka_wrote(
    kafka_bootstrap: str, kafka_tools: KafkaDist, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}console"
    await _create_topic(kafka_bootstrap, topic, 1)
    values = [f"value-{i}" for i in range(5)]
    await _produce(kafka_bootstrap, topic, [(b"k", v.encode()) for v in values])

    # Kafka's own reader, independent of aiokafka; one partition, so the order is the send order
    out = await asyncio.to_thread(
        kafka_tools.run_tool,
        CONSOLE_CONSUMER,
        [
            "--bootstrap-server",
            kafka_bootstrap,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            str(len(values)),
            "--timeout-ms",
            "30000",
        ],
        timeout=90,
    )
    assert out.stdout.splitlines() == values, out.stderr


_schemas_seen: list[str] = []


@integration
@pytest.mark.parametrize("run", [1, 2])
async def test_pg_schema_is_fresh_and_isolated(postgres_dsn: str, pg_schema: str, run: int) -> None:
    conn = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema}, timeout=10)
    try:
        assert await conn.fetchval("SELECT current_schema()") == pg_schema
        # same unqualified table name in every run: it only works if each test has its own, empty schema
        await conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        await conn.executemany("INSERT INTO orders VALUES ($1)", [(i,) for i in range(run * 3)])
        assert await conn.fetchval("SELECT count(*) FROM orders") == run * 3
        assert await conn.fetchval("SELECT to_regclass('public.orders')") is None
        # the schema of the previous run was dropped by the fixture
        for old in _schemas_seen:
            assert await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", old) is None
    finally:
        await conn.close()
    _schemas_seen.append(pg_schema)


def test_port_already_taken_is_reported_clearly(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        kafka = LocalKafka(
            tmp_path / "kafka", port=port, controller_port=find_free_port(), say=lambda _: None
        )
        with pytest.raises(LocalStackError) as kafka_err:
            kafka.start()
        message = str(kafka_err.value)
        assert f"127.0.0.1:{port} is already in use" in message
        assert "CANCELGUARD_LOCAL_KAFKA_PORT" in message
        assert str(tmp_path / "kafka") in message

        postgres = LocalPostgres(tmp_path / "postgres", port=port, say=lambda _: None)
        with pytest.raises(
            LocalStackError, match=f"127.0.0.1:{port} is already in use.*CANCELGUARD_LOCAL_POSTGRES_PORT"
        ):
            postgres.start()
    assert not (tmp_path / "kafka" / "kafka.pid").exists()


@integration
def test_local_postgres_start_and_stop_are_idempotent() -> None:
    # its own directory under /tmp (not tmp_path): when we are root the server user must be able to enter it
    home = Path(tempfile.mkdtemp(prefix="cancelguard-pg-"))
    home.chmod(0o755)
    postgres = LocalPostgres(home / "pg", port=find_free_port(), say=lambda _: None)
    try:
        dsn = postgres.start()
        pid = postgres.running_pid()
        assert postgres.start() == dsn and postgres.running_pid() == pid
        assert postgres.status().running
        postgres.stop()
        assert not postgres.status().running
        postgres.stop()  # no-op
    finally:
        postgres.stop()
        shutil.rmtree(home, ignore_errors=True)
