"""Ingestion and metrics, in this process, against a real Kafka broker and a real Postgres server.

Raw ORDER_CHANGE notifications and buyer messages go in on the raw topics; the CR buckets in Postgres must
equal the scenario's ground truth. Bad input must end in the dead-letter topic, with its reason, and
never stop a service. Kafka's own console consumer reads the order-events topic independently.
"""

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import grpc
import pytest
from aiokafka import AIOKafkaConsumer

from cancelguard import db, kafka
from cancelguard.config import Settings
from cancelguard.domain.policy import PolicyBook
from cancelguard.domain.windows import live_window
from cancelguard.events import codec
from cancelguard.ingestion.service import IngestionService
from cancelguard.localstack import CONSOLE_CONSUMER, KafkaDist
from cancelguard.metrics.service import MetricsService
from cancelguard.metrics.store import Store
from cancelguard.processes import health_status
from cancelguard.runtime import NOT_SERVING, StartupError
from cancelguard.simulator.scenario import Scenario, generate

pytestmark = pytest.mark.integration


@asynccontextmanager
async def running(service: IngestionService | MetricsService) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)  # a clean stop: no exception


async def publish_raw(settings: Settings, topic: str, values: list[bytes | None]) -> None:
    await kafka.ensure_topics(
        settings.kafka_bootstrap, settings.all_topics, partitions=settings.topic_partitions, replication=1
    )
    producer = kafka.new_producer(settings.kafka_bootstrap, client_id="test")
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, v, key=b"k") for v in values])
    finally:
        await producer.stop()


async def publish_scenario(settings: Settings, scenario: Scenario) -> None:
    await publish_raw(
        settings, settings.order_change_topic, [json.dumps(n).encode() for n in scenario.notifications]
    )
    await publish_raw(
        settings, settings.buyer_messages_topic, [json.dumps(m).encode() for m in scenario.messages]
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.2)


async def live_totals(
    settings: Settings, scenario: Scenario, now: datetime
) -> dict[tuple[str, str], tuple[int, int]]:
    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    try:
        store = Store(pool, PolicyBook())
        window = live_window(now)
        return {k: await store.bucket_totals(*k, window.start, window.end) for k in scenario.expected()}
    finally:
        await pool.close()


def truth(scenario: Scenario) -> dict[tuple[str, str], tuple[int, int]]:
    return {k: (e.orders, e.cancellations) for k, e in scenario.expected().items()}


async def read_all(settings: Settings, topic: str, count: int, timeout: float = 30) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
    finally:
        await consumer.stop()
    return records


async def test_raw_notifications_and_messages_become_exact_cr_buckets(settings: Settings) -> None:
    now = datetime.now(UTC)
    scenario = generate(now, seed=11)
    async with running(IngestionService(settings)), running(MetricsService(settings)):
        await publish_scenario(settings, scenario)
        want = truth(scenario)

        async def done() -> bool:
            return await live_totals(settings, scenario, now) == want

        await eventually(done, what=f"buckets equal {want}")


async def test_a_restarted_metrics_service_applies_everything_exactly_once(settings: Settings) -> None:
    now = datetime.now(UTC)
    scenario = generate(now, seed=13)
    async with running(IngestionService(settings)):
        await publish_scenario(settings, scenario)
        # stop and restart the metrics service several times while the events flow
        for _ in range(3):
            async with running(MetricsService(settings)):
                await asyncio.sleep(0.7)
        async with running(MetricsService(settings)):

            async def done() -> bool:
                return await live_totals(settings, scenario, now) == truth(scenario)

            await eventually(done, what="exact totals after restarts")


async def test_a_service_that_cannot_reach_kafka_says_so_and_gives_up(settings: Settings) -> None:
    from cancelguard.localstack import find_free_port

    nowhere = f"127.0.0.1:{find_free_port()}"
    broken = settings.model_copy(update={"kafka_bootstrap": nowhere, "startup_timeout_s": 3.0})
    service = IngestionService(broken)
    task = asyncio.create_task(service.run(asyncio.Event()))
    await asyncio.sleep(1.0)
    # while it retries, health says NOT_SERVING
    assert await health_status(f"127.0.0.1:{broken.ingestion_health_port}") == NOT_SERVING
    started = time.monotonic()
    with pytest.raises(StartupError) as err:
        await asyncio.wait_for(task, 30)
    assert time.monotonic() - started < 15
    assert "Kafka" in str(err.value) and nowhere in str(err.value)
    # and the health port is released
    with pytest.raises(grpc.aio.AioRpcError):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{broken.ingestion_health_port}") as channel:
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)


async def test_a_service_that_cannot_reach_postgres_says_so_and_gives_up(settings: Settings) -> None:
    from cancelguard.localstack import find_free_port

    dsn = f"postgresql://postgres@127.0.0.1:{find_free_port()}/postgres"
    broken = settings.model_copy(update={"postgres_dsn": dsn, "startup_timeout_s": 3.0})
    with pytest.raises(StartupError) as err:
        await asyncio.wait_for(MetricsService(broken).run(asyncio.Event()), 30)
    assert "Postgres" in str(err.value) and "127.0.0.1" in str(err.value)


async def test_kafkas_own_console_consumer_reads_order_events_that_decode(
    settings: Settings, kafka_tools: KafkaDist
) -> None:
    now = datetime.now(UTC)
    scenario = generate(now, seed=14)
    notifications = scenario.notifications[:25]
    async with running(IngestionService(settings)):
        await publish_raw(
            settings, settings.order_change_topic, [json.dumps(n).encode() for n in notifications]
        )
        await eventually(lambda: _count(settings, len(notifications)), what="25 order events published")
    separator = "\n--cancelguard-record-end--\n"
    cmd = kafka_tools.java_command(
        CONSOLE_CONSUMER,
        "--bootstrap-server",
        settings.kafka_bootstrap,
        "--topic",
        settings.order_events_topic,
        "--from-beginning",
        "--max-messages",
        str(len(notifications)),
        "--timeout-ms",
        "30000",
        "--property",
        f"line.separator={separator}",
    )
    out = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, timeout=120, check=True)
    raw = [r for r in out.stdout.split(separator.encode()) if r]
    assert len(raw) == len(notifications), out.stderr.decode()[-2000:]
    decoded = {codec.decode(r).event_id for r in raw}
    want = {"order-change:" + n["NotificationMetadata"]["NotificationId"] for n in notifications}
    assert decoded == want


async def _count(settings: Settings, n: int) -> bool:
    return len(await read_all(settings, settings.order_events_topic, n, timeout=2)) >= n
