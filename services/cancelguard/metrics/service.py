"""The metrics service: order events in, orders and CR buckets in Postgres, exactly once.

Offsets live in Postgres, written in the same transaction as the facts they produced (the pattern in
aiokafka's docs for a database sink). On partition assignment the consumer seeks to the stored offsets;
Kafka's own committed offsets are written after each batch only so that lag shows in Kafka's tools.
A record that does not decode goes to the dead-letter topic (acknowledged before the batch commits) and
never stops the consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

from cancelguard import db, kafka
from cancelguard.config import Settings
from cancelguard.domain.model import Event, InvalidInput
from cancelguard.domain.policy import marketplace
from cancelguard.events import codec
from cancelguard.metrics.store import PartitionBatch, Store
from cancelguard.runtime import HealthServer, connect_with_retry

log = logging.getLogger("cancelguard.metrics")

GROUP_ID = "cancelguard-metrics"

EVENTS_APPLIED = Counter("cancelguard_metrics_events_applied_total", "Order events folded into Postgres")
RECORDS_SKIPPED = Counter(
    "cancelguard_metrics_records_skipped_total",
    "Records already applied (replayed after a crash or rebalance)",
)
DEAD_LETTERS = Counter("cancelguard_metrics_dead_letters_total", "Order events that could not be decoded")
ROW_WRITES = Counter("cancelguard_metrics_row_writes_total", "Order and bucket rows upserted", ["table"])
BATCH_SECONDS = Histogram("cancelguard_metrics_batch_seconds", "Time to apply one batch")
ASSIGNED = Gauge("cancelguard_metrics_assigned_partitions", "Partitions this instance owns")


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, service: MetricsService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        pass  # every batch is committed to Postgres before the next getmany: nothing in flight to flush

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.service.seek_to_stored(list(assigned))


def decode(record: ConsumerRecord) -> Event:
    if record.value is None:
        raise InvalidInput("empty record (no value)")
    event = codec.decode(record.value)
    marketplace(event.key.marketplace_id)
    return event


class MetricsService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.health = HealthServer("cancelguard.metrics", settings.bind_host, settings.metrics_health_port)
        self.producer = kafka.new_producer(settings.kafka_bootstrap, client_id="cancelguard-metrics")
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=GROUP_ID,
            client_id="cancelguard-metrics",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_max_records,
        )
        self.store: Store | None = None

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        await self.health.start()
        pool = None
        try:
            await connect_with_retry(
                "Postgres",
                s.redacted_dsn,
                lambda: db.migrate(dsn=s.postgres_dsn, schema=s.postgres_schema),
                timeout_s=s.startup_timeout_s,
                stop=stop,
            )
            pool = await connect_with_retry(
                "Postgres",
                s.redacted_dsn,
                lambda: db.create_pool(dsn=s.postgres_dsn, schema=s.postgres_schema),
                timeout_s=s.startup_timeout_s,
                stop=stop,
            )
            self.store = Store(pool, s.policies)
            self.consumer.subscribe([s.order_events_topic], listener=_SeekToStoredOffsets(self))
            await kafka.connect(s, self.producer, self.consumer, stop=stop)
            await self.health.set(True)
            log.info(
                "applying order events", extra={"topic": s.order_events_topic, "schema": s.postgres_schema}
            )
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=s.batch_timeout_ms)
                if batch:
                    await self.process(batch)
        finally:
            await self.health.set(False)
            await self._close()
            if pool is not None:
                await asyncio.wait_for(pool.close(), 10)

    async def seek_to_stored(self, assigned: list[TopicPartition]) -> None:
        assert self.store is not None
        ASSIGNED.set(len(self.consumer.assignment()))
        stored = await self.store.load_offsets(GROUP_ID, self.settings.order_events_topic)
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            else:
                await self.consumer.seek_to_beginning(tp)
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(tp.partition for tp in assigned), "stored_offsets": stored},
        )

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self.store is not None
        with BATCH_SECONDS.time():
            parts = []
            dead = []
            for tp, records in sorted(batch.items(), key=lambda kv: kv[0].partition):
                decoded: list[tuple[int, Event | None]] = []
                for record in records:
                    try:
                        decoded.append((record.offset, decode(record)))
                    except InvalidInput as exc:
                        DEAD_LETTERS.inc()
                        decoded.append((record.offset, None))
                        dead.append(
                            await kafka.send_dead_letter(
                                self.producer,
                                self.settings.dead_letter_topic,
                                value=record.value,
                                key=record.key,
                                reason=str(exc),
                                origin=kafka.Origin(tp.topic, tp.partition, record.offset),
                                stage="metrics",
                            )
                        )
                parts.append(PartitionBatch(tp.topic, tp.partition, decoded))
            if dead:  # dead letters are safe in Kafka before the offsets move past them
                await asyncio.wait_for(asyncio.gather(*dead), kafka.SEND_TIMEOUT_S)
            result = await self.store.apply_batch(GROUP_ID, parts)
        EVENTS_APPLIED.inc(result.events_applied)
        RECORDS_SKIPPED.inc(result.records_skipped)
        ROW_WRITES.labels("orders").inc(result.orders_written)
        ROW_WRITES.labels("cr_buckets").inc(result.buckets_written)
        try:  # for lag monitoring only: Postgres holds the offsets that count
            await self.consumer.commit({TopicPartition(p.topic, p.partition): p.next_offset for p in parts})
        except (CommitFailedError, KafkaError) as exc:
            log.info("kafka offset commit skipped: %s", exc)

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self.consumer.stop(), kafka.STOP_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            log.warning("consumer did not stop cleanly: %s", exc)
        await kafka.stop_producer(self.producer)
        await self.health.stop(self.settings.shutdown_grace_s)
