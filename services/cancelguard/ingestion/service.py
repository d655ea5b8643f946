"""The ingestion service: raw topics in, normalised order events out.

Reads what Amazon pushes (ORDER_CHANGE notifications, bridged from SQS/EventBridge onto a raw topic) and
what buyers write (helpdesk messages), turns each record into an order event with the adapters, checks
it against the bounds (`domain.bounds.check_event`), and publishes it with an idempotent producer keyed
by seller account + marketplace.

One rule for bad input: a record that cannot be parsed, checked or encoded goes to the dead-letter
topic with a reason code and a message (`dead_letters`), is counted, and the next record is processed;
per raw topic, published + ignored + dead-lettered = records read. Raw offsets are committed only after
every event and dead letter of the batch is acknowledged (acks=all): nothing is lost, and a replay after
a crash re-publishes the same event ids, which the metrics service folds in idempotently. While Kafka is
away the batch in hand is re-sent with backoff and health says NOT_SERVING (`runtime.Dependencies`).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Histogram

from cancelguard import dead_letters, kafka
from cancelguard.config import Settings
from cancelguard.domain.bounds import Reason
from cancelguard.domain.model import InvalidInput, OrderEvent
from cancelguard.ingestion.adapters import buyer_messages, order_change
from cancelguard.ingestion.routing import KAFKA, Outgoing, Route, Sender, checked
from cancelguard.runtime import Dependencies, HealthServer, Shutdown

log = logging.getLogger("cancelguard.ingestion")

GROUP_ID = CLIENT_ID = "cancelguard-ingestion"

RECORDS = Counter(
    "cancelguard_ingestion_records_total",
    "Raw records read, by what became of them (published, ignored, dead_lettered)",
    ["topic", "outcome"],
)
EVENTS_OUT = Counter("cancelguard_ingestion_events_total", "Order events published", ["source"])
DEAD_LETTERS = Counter(
    "cancelguard_ingestion_dead_letters_total",
    "Raw records sent to the dead-letter topic",
    ["topic", "reason"],
)
BATCH_SECONDS = Histogram("cancelguard_ingestion_batch_seconds", "Time to publish and commit one batch")
BATCH_BYTES = 512 * 1024  # well under the broker's 1 MB message limit


@dataclass(frozen=True, slots=True)
class RawSource:
    """One raw topic's adapter, and the personal fields its format has (removed from dead letters)."""

    adapt: Callable[[bytes, datetime], OrderEvent | None]
    personal_fields: tuple[str, ...]


def _order_change(value: bytes, now: datetime) -> OrderEvent | None:
    return order_change.parse_order_change(value, observed_at=now)


def _buyer_message(value: bytes, now: datetime) -> OrderEvent | None:
    event, _ = buyer_messages.parse_buyer_message(value, observed_at=now)
    return event  # None: the message does not ask to cancel


def sources_for(settings: Settings) -> dict[str, RawSource]:
    return {
        settings.order_change_topic: RawSource(_order_change, order_change.PERSONAL_FIELDS),
        settings.buyer_messages_topic: RawSource(_buyer_message, buyer_messages.PERSONAL_FIELDS),
    }


def tune_garbage_collector() -> None:
    """Every record allocates a hundred small objects (its JSON, its event, its protobuf) that reference
    counting frees at once; the cycle collector's default (a young collection every 700 allocations)
    then runs thousands of times a second for nothing. Collect young objects 70 times less often, and
    leave everything the process built at start out of the collections."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def normalise(source: RawSource, value: bytes | None, now: datetime) -> OrderEvent | None:
    """Raw record -> a checked order event (None: nothing to publish); InvalidInput says why not."""
    if value is None:
        raise InvalidInput("empty record (no value)", Reason.EMPTY_RECORD.value)
    event = source.adapt(value, now)
    if event is None:
        return None
    return checked(event, now)


class IngestionService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sources = sources_for(settings)
        self.health = HealthServer(
            "cancelguard.ingestion", settings.bind_host, settings.ingestion_health_port
        )
        self.kafka_probe = kafka.KafkaProbe(settings.kafka_bootstrap)
        self.dependencies = Dependencies(
            {KAFKA: self.kafka_probe},
            self.health.set,
            outage_limit_s=settings.outage_limit_s,
            interval_s=settings.probe_interval_s,
        )
        # big batches: one produce request carries a whole partition's share of a consumed batch
        self.producer = kafka.new_producer(
            settings.kafka_bootstrap, client_id=CLIENT_ID, max_batch_size=BATCH_BYTES
        )
        self.sender = Sender(self.producer, self.dependencies, renew=self._renew_producer)
        self._route = Route(settings, stage="ingestion")
        self._counters: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        self._tally: collections.Counter[tuple[Any, ...]] = collections.Counter()  # (family, *labels) -> n
        self.consumer = AIOKafkaConsumer(
            *self.sources,
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
            tune_garbage_collector()
            await self.dependencies.probe_once()
            self.dependencies.start()
            log.info("ingesting", extra={"topics": list(self.sources), "publishes_to": s.order_events_topic})
            await self._ingest(stop)
        finally:
            shutdown = Shutdown()
            await shutdown.step("the dependency probes", self.dependencies.stop())
            await shutdown.step("health NOT_SERVING", self.health.set(False))
            await kafka.close_clients(shutdown, self.consumer, self.producer, self.kafka_probe)
            await shutdown.step("the health server", self.health.stop(self.settings.shutdown_grace_s))
            shutdown.finished()

    def route(self, record: ConsumerRecord, now: datetime) -> Outgoing | None:
        """What one raw record becomes: an event, nothing, or a dead letter. Never raises. Counted in
        the batch's tally (`flush_counts` adds it to the counters)."""
        source = self.sources[record.topic]
        tally = self._tally
        try:
            event = normalise(source, record.value, now)
            if event is None:
                tally[(RECORDS, record.topic, "ignored")] += 1
                return None
            out = self._route.event(event)
        except Exception as exc:
            # InvalidInput is bad input; anything else is a bug of ours on this record. Either way the
            # record is kept, with the reason, and the stream goes on.
            return self._dead_letter(record, exc, source.personal_fields)
        tally[(RECORDS, record.topic, "published")] += 1
        tally[(EVENTS_OUT, event.source.value)] += 1
        return out

    def flush_counts(self) -> None:
        """The batch's tally into the Prometheus counters: one `inc` per label set and batch, not one per
        record (an `inc` takes a lock: 0.6 µs, twice per record)."""
        for (family, *labels), n in self._tally.items():
            self._counter(family, *labels).inc(n)
        self._tally.clear()

    def _counter(self, family: Counter, *labels: str) -> Any:
        """A labelled Prometheus counter, looked up once (`labels()` costs more than the count)."""
        found = self._counters.get((family, labels))
        if found is None:
            found = self._counters[(family, labels)] = family.labels(*labels)
        return found

    def _dead_letter(
        self, record: ConsumerRecord, exc: BaseException, personal_fields: Sequence[str]
    ) -> Outgoing:
        letter, code = self._route.refused(
            exc,
            value=record.value,
            key=record.key,
            origin=dead_letters.Origin(record.topic, record.partition, record.offset),
            personal_fields=personal_fields,
        )
        self._tally[(RECORDS, record.topic, "dead_lettered")] += 1
        self._tally[(DEAD_LETTERS, record.topic, code)] += 1
        log.warning(
            "dead-lettered a record",
            extra={
                "reason_code": code,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        )
        return letter

    async def _ingest(self, stop: asyncio.Event) -> None:
        """Read, route and deliver batches until `stop`, one at a time. (Routing a batch while the one
        before it was in flight measured no faster here: routing is CPU work, and on a busy 2-core
        machine the broker wants that CPU too.)"""
        s = self.settings
        while not stop.is_set():
            self.dependencies.check_limit()
            batch = await self.consumer.getmany(
                timeout_ms=s.batch_timeout_ms, max_records=s.batch_max_records
            )
            if batch:
                outgoing = self.route_batch(batch)
                offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
                await self.deliver(outgoing, offsets, stop)

    def route_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> list[Outgoing]:
        """What a batch's records become (events and dead letters), counted."""
        now = datetime.now(UTC)
        route = self.route
        outgoing = [o for records in batch.values() for r in records if (o := route(r, now)) is not None]
        self.flush_counts()
        return outgoing

    async def deliver(
        self, outgoing: Sequence[Outgoing], offsets: dict[TopicPartition, int], stop: asyncio.Event
    ) -> bool:
        """Send a batch's events and dead letters, wait for every acknowledgement, then commit its raw
        offsets. False: stopped during an outage before they were acknowledged."""
        with BATCH_SECONDS.time():
            if not await self.send_all(outgoing, stop):
                return False  # nothing committed: the batch is re-read after restart
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:
                # a rebalance moved the partitions, or the broker went away between send and commit: the
                # records are re-read and re-published with the same event ids, which fold in idempotently
                log.warning(
                    "raw offsets not committed; the records will be re-read",
                    extra={"error": str(exc), "partitions": [f"{tp.topic}/{tp.partition}" for tp in offsets]},
                )
            return True

    async def send_all(self, outgoing: Sequence[Outgoing], stop: asyncio.Event) -> bool:
        return await self.sender.send_all(outgoing, stop)

    async def _renew_producer(self, old: AIOKafkaProducer) -> AIOKafkaProducer:
        self.producer = await kafka.renew_producer(
            old, self.settings.kafka_bootstrap, client_id=CLIENT_ID, max_batch_size=BATCH_BYTES
        )
        return self.producer
