"""Kafka plumbing shared by the services: topics, the idempotent producer, the dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from cancelguard.config import Settings
from cancelguard.runtime import connect_with_retry

log = logging.getLogger("cancelguard.kafka")

SEND_TIMEOUT_S = 30.0  # every send and stop is bounded: a dead broker must not hang a shutdown
STOP_TIMEOUT_S = 10.0

# Dead-letter records keep the original bytes as value and say why in headers (as Kafka Connect does).
DLQ_REASON = "cancelguard.dlq.reason"
DLQ_SOURCE_TOPIC = "cancelguard.dlq.source.topic"
DLQ_SOURCE_PARTITION = "cancelguard.dlq.source.partition"
DLQ_SOURCE_OFFSET = "cancelguard.dlq.source.offset"
DLQ_STAGE = "cancelguard.dlq.stage"
DLQ_REASON_CODE = "cancelguard.dlq.reason.code"  # the stable code (bounds.Reason), beside the message
DLQ_SOURCE_FILE = "cancelguard.dlq.source.file"  # for lines of imported files (order reports) ...
DLQ_SOURCE_LINE = "cancelguard.dlq.source.line"  # ... instead of topic, partition and offset

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


async def stop_producer(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("producer did not stop in time; unsent records will be re-read from the source")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: written on its dead letter so it can be found and replayed."""

    topic: str
    partition: int
    offset: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (DLQ_SOURCE_TOPIC, self.topic.encode()),
            (DLQ_SOURCE_PARTITION, str(self.partition).encode()),
            (DLQ_SOURCE_OFFSET, str(self.offset).encode()),
        ]

    def log_fields(self) -> dict[str, object]:
        return {"source_topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class FileOrigin:
    """A line of a file someone imported (an order report): its name, never its path on their machine."""

    file: str
    line: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [(DLQ_SOURCE_FILE, self.file.encode()[:1000]), (DLQ_SOURCE_LINE, str(self.line).encode())]

    def log_fields(self) -> dict[str, object]:
        return {"source_file": self.file, "line": self.line}


def dead_letter_headers(
    reason: str, origin: Origin | FileOrigin, stage: str, *, code: str = ""
) -> list[tuple[str, bytes]]:
    return [
        (DLQ_REASON, reason.encode()[:4000]),
        *origin.headers(),
        (DLQ_STAGE, stage.encode()),
        *([(DLQ_REASON_CODE, code.encode())] if code else []),
    ]


async def send_dead_letter(
    producer: AIOKafkaProducer,
    topic: str,
    *,
    value: bytes | None,
    key: bytes | None,
    reason: str,
    origin: Origin | FileOrigin,
    stage: str,
    code: str = "",
    log_it: bool = True,
) -> asyncio.Future:
    """Queue a dead letter; the caller awaits the returned future before committing past the record.
    `log_it=False` for callers that report dead letters themselves (a file import sums them up)."""
    if log_it:
        log.warning(
            "dead-lettered a record",
            extra={
                "reason": reason,
                **origin.log_fields(),
                "stage": stage,
                **({"code": code} if code else {}),
            },
        )
    return await producer.send(
        topic, value=value, key=key, headers=dead_letter_headers(reason, origin, stage, code=code)
    )
