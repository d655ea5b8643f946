"""Kafka plumbing shared by the services: topics, the idempotent producer, the dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code

from cancelguard.config import Settings
from cancelguard.dead_letters import DeadLetter
from cancelguard.runtime import Shutdown, connect_with_retry

log = logging.getLogger("cancelguard.kafka")

SEND_TIMEOUT_S = 30.0  # every send and stop is bounded: a dead broker must not hang a shutdown
STOP_TIMEOUT_S = 10.0

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(bootstrap: str, topics: list[str], *, partitions: int, replication: int) -> None:
    """Create the topics that do not exist yet (aiokafka's admin client works on Kafka 4.1)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing]
        )
        for topic, code, message in (e[:3] for e in response.topic_errors):
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise for_code(code)(f"cannot create topic {topic}: {message}")
        log.info("created topics", extra={"topics": missing, "partitions": partitions})
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition ids of a topic ([] when it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        for found in await admin.describe_topics([topic]):
            if found.get("topic") == topic and not found.get("error_code"):
                return sorted(p.get("partition", p.get("partition_index")) for p in found["partitions"])
        return []
    finally:
        await admin.close()


async def connect(
    settings: Settings, *clients: AIOKafkaProducer | AIOKafkaConsumer, stop: asyncio.Event
) -> None:
    """Create the missing topics, then start each client, retrying while Kafka does not answer (for at
    most settings.startup_timeout_s)."""
    s = settings

    async def topics() -> None:
        await ensure_topics(
            s.kafka_bootstrap, s.all_topics, partitions=s.topic_partitions, replication=s.topic_replication
        )

    for step in (topics, *(c.start for c in clients)):
        await connect_with_retry("Kafka", s.kafka_bootstrap, step, timeout_s=s.startup_timeout_s, stop=stop)


async def publish(
    settings: Settings,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None]],
    *,
    client_id: str,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Send (key, value) records with the idempotent producer; returns once all are acknowledged."""
    await ensure_topics(
        settings.kafka_bootstrap,
        settings.all_topics,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
    producer = new_producer(settings.kafka_bootstrap, client_id=client_id)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        for n, sent in enumerate(asyncio.as_completed(futures), 1):
            await sent
            if progress is not None and (n % 1000 == 0 or n == len(futures)):
                progress(n, len(futures))
    finally:
        await stop_producer(producer)


async def take_all_partitions(consumer: AIOKafkaConsumer, timeout_s: float = 10.0) -> list[TopicPartition]:
    """Every partition of the one topic a started consumer without a group is subscribed to, assigned
    to it by hand: a subscription would deal them again on a metadata update and reset their positions.
    A topic not known by then is an error (the services create theirs at start), raised as a
    TimeoutError so that callers retry."""
    deadline = time.monotonic() + timeout_s
    while not (found := sorted(consumer.assignment())):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no partitions of {consumer.subscription()} known after {timeout_s:.0f}s")
        await asyncio.sleep(0.05)
    consumer.unsubscribe()
    consumer.assign(found)
    return found


def new_producer(bootstrap: str, *, client_id: str, max_batch_size: int = 16384) -> AIOKafkaProducer:
    """acks=all + idempotence: a retried send is written once, in order, per partition. A bulk sender
    whose records share one key (one partition) wants bigger batches: one round trip per batch."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=max_batch_size,
        request_timeout_ms=int(SEND_TIMEOUT_S * 1000),
    )


async def renew_producer(
    old: AIOKafkaProducer, bootstrap: str, *, client_id: str, max_batch_size: int = 16384
) -> AIOKafkaProducer:
    """A fresh idempotent producer in place of one whose send failed.

    After a batch expires during an outage, an idempotent producer's sequence numbers have a gap the
    broker refuses for good (OutOfOrderSequenceNumber), so retrying with it would fail forever. A new
    producer has a new producer id; the records it re-sends are events with deterministic ids, which
    the metrics service folds in idempotently. Raises KafkaError while the broker is still away."""
    try:
        async with asyncio.timeout(2.0):
            await old.stop()
    except Exception as exc:  # its unsent records are re-sent by the caller; nothing to keep
        log.info("abandoned a producer that could not flush: %s", exc)
    producer = new_producer(bootstrap, client_id=client_id, max_batch_size=max_batch_size)
    try:
        await producer.start()
    except BaseException:
        await stop_producer(producer)
        raise
    return producer


async def stop_producer(producer: AIOKafkaProducer) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await producer.stop()
    except TimeoutError:
        log.warning("producer did not stop in time; unsent records will be re-read from the source")


async def close_clients(
    shutdown: Shutdown,
    consumer: AIOKafkaConsumer | None,
    producer: AIOKafkaProducer | None,
    probe: KafkaProbe,
) -> None:
    """A service's Kafka clients, closed one after another within its shutdown's budget."""
    if consumer is not None:
        await shutdown.step("the Kafka consumer", consumer.stop())
    if producer is not None:
        await shutdown.step("the Kafka producer", stop_producer(producer))
    await shutdown.step("the Kafka probe", probe.close())


async def send_dead_letter(producer: AIOKafkaProducer, topic: str, letter: DeadLetter) -> asyncio.Future:
    """Queue a dead letter; the caller awaits the returned future before committing past the record."""
    return await producer.send(topic, value=letter.value, key=letter.key, headers=letter.headers)


class KafkaProbe:
    """Asks the cluster for its metadata: the health probe of every service that uses Kafka.

    The service's own consumer does not raise while the broker is away (it returns empty batches), so
    health asks the broker directly, with a client of its own.
    """

    def __init__(self, bootstrap: str) -> None:
        self.client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        self._bootstrapped = False

    async def __call__(self) -> None:
        if not self._bootstrapped:
            await self.client.bootstrap()
            self._bootstrapped = True
        await self.client.fetch_all_metadata()

    async def close(self) -> None:
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self.client.close()
        except Exception as exc:  # closing a client to a dead broker may fail in many ways; nothing to keep
            log.info("kafka probe did not close cleanly: %s", exc)
