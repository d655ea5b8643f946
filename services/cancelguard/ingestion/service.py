"""The ingestion service: raw topics in, normalised order events out.

Reads what Amazon pushes (ORDER_CHANGE notifications, bridged from SQS/EventBridge onto a raw topic) and
what buyers write (helpdesk messages), turns each record into an order event with the adapters, and
publishes it with an idempotent producer keyed by seller account + marketplace. A record it cannot read
goes to the dead-letter topic with the reason. Raw offsets are committed only after every event and
dead letter of the batch is acknowledged (acks=all): nothing is lost, and a replay after a crash
re-publishes the same event ids, which the metrics service folds in idempotently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Histogram

from cancelguard import kafka
from cancelguard.config import Settings
from cancelguard.domain.model import InvalidInput, OrderEvent
from cancelguard.domain.policy import marketplace
from cancelguard.events import codec
from cancelguard.ingestion.adapters.buyer_messages import parse_buyer_message
from cancelguard.ingestion.adapters.order_change import parse_order_change
from cancelguard.runtime import HealthServer

log = logging.getLogger("cancelguard.ingestion")

GROUP_ID = "cancelguard-ingestion"

RECORDS_IN = Counter("cancelguard_ingestion_records_total", "Raw records read", ["topic"])
EVENTS_OUT = Counter("cancelguard_ingestion_events_total", "Order events published", ["source"])
DEAD_LETTERS = Counter(
    "cancelguard_ingestion_dead_letters_total", "Raw records sent to the dead-letter topic", ["topic"]
)
NOT_REQUESTS = Counter(
    "cancelguard_ingestion_buyer_messages_not_requests_total", "Buyer messages that do not ask to cancel"
)
BATCH_SECONDS = Histogram("cancelguard_ingestion_batch_seconds", "Time to publish and commit one batch")

Adapter = Callable[[bytes, datetime], OrderEvent | None]


def _order_change(value: bytes, now: datetime) -> OrderEvent | None:
    return parse_order_change(value, observed_at=now)


def _buyer_message(value: bytes, now: datetime) -> OrderEvent | None:
    event, _ = parse_buyer_message(value, observed_at=now)
    if event is None:
        NOT_REQUESTS.inc()
    return event


def adapters_for(settings: Settings) -> dict[str, Adapter]:
    return {settings.order_change_topic: _order_change, settings.buyer_messages_topic: _buyer_message}


def normalise(adapter: Adapter, value: bytes | None, now: datetime) -> OrderEvent | None:
    """Raw record -> order event; InvalidInput says why it cannot be read."""
    if value is None:
        raise InvalidInput("empty record (no value)")
    event = adapter(value, now)
    if event is not None:
        marketplace(event.key.marketplace_id)  # an unknown marketplace is bad input, not a default
    return event


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, InvalidInput) else f"internal error {type(exc).__name__}: {exc}"


class IngestionService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.adapters = adapters_for(settings)
        self.health = HealthServer(
            "cancelguard.ingestion", settings.bind_host, settings.ingestion_health_port
        )
        self.producer = kafka.new_producer(settings.kafka_bootstrap, client_id="cancelguard-ingestion")
        self.consumer = AIOKafkaConsumer(
            *self.adapters,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=GROUP_ID,
            client_id="cancelguard-ingestion",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        await self.health.start()
        try:
            await kafka.connect(s, self.producer, self.consumer, stop=stop)
            await self.health.set(True)
            log.info("ingesting", extra={"topics": list(self.adapters), "publishes_to": s.order_events_topic})
            while not stop.is_set():
                batch = await self.consumer.getmany(
                    timeout_ms=s.batch_timeout_ms, max_records=s.batch_max_records
                )
                if batch:
                    await self.process(batch)
        finally:
            await self.health.set(False)
            await self._close()

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        with BATCH_SECONDS.time():
            now = datetime.now(UTC)
            pending = []
            for tp, records in batch.items():
                adapter = self.adapters[tp.topic]
                RECORDS_IN.labels(tp.topic).inc(len(records))
                for record in records:
                    pending.append(await self._publish(adapter, record, now))
            # every send must be acknowledged before the raw offsets move past it
            await asyncio.wait_for(
                asyncio.gather(*(p for p in pending if p is not None)), kafka.SEND_TIMEOUT_S
            )
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            try:
                await self.consumer.commit(offsets)
            except CommitFailedError:
                # partitions moved to another instance: it re-reads them; the events are idempotent
                log.warning(
                    "commit refused after a rebalance; the new owner will re-read",
                    extra={"partitions": [f"{tp.topic}/{tp.partition}" for tp in offsets]},
                )

    async def _publish(
        self, adapter: Adapter, record: ConsumerRecord, now: datetime
    ) -> asyncio.Future | None:
        s = self.settings
        try:
            event = normalise(adapter, record.value, now)
        except Exception as exc:
            # InvalidInput is bad input; anything else is a bug of ours on this record. Either way the
            # record is kept, with the reason, and the stream goes on.
            if not isinstance(exc, InvalidInput):
                log.exception(
                    "adapter failed on a record", extra={"topic": record.topic, "offset": record.offset}
                )
            DEAD_LETTERS.labels(record.topic).inc()
            origin = kafka.Origin(record.topic, record.partition, record.offset)
            return await kafka.send_dead_letter(
                self.producer,
                s.dead_letter_topic,
                value=record.value,
                key=record.key,
                reason=_reason(exc),
                origin=origin,
                stage="ingestion",
            )
        if event is None:
            return None
        EVENTS_OUT.labels(event.source.value).inc()
        return await self.producer.send(
            s.order_events_topic, value=codec.encode(event), key=event.key.partition_key.encode()
        )

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self.consumer.stop(), kafka.STOP_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            log.warning("consumer did not stop cleanly: %s", exc)
        await kafka.stop_producer(self.producer)
        await self.health.stop(self.settings.shutdown_grace_s)
