"""The metrics service: order events in, orders and CR buckets in Postgres, exactly once.

Offsets live in Postgres, written in the same transaction as the facts they produced (the pattern in
aiokafka's docs for a database sink). On partition assignment the consumer seeks to the stored offsets;
Kafka's own committed offsets are written after each batch only so that lag shows in Kafka's tools.

No single record stops it. A record that does not decode or breaks the bounds (`domain.bounds`) goes to
the dead-letter topic, and so does one whose data Postgres refuses (found by trying the batch's events
one at a time); each dead letter is acknowledged before the batch commits, and the next record is
applied. While Postgres or Kafka is away the batch in hand is retried with backoff and health says
NOT_SERVING (`runtime.Dependencies`); past `outage_limit_s` the service exits with the reason.

The loop overlaps Python with Postgres: a reader task fetches and decodes the next batch (as many
records as are ready, up to `batch_max_records`) while the current one is in Postgres; one batch waits
at most, so memory stays bounded whatever the backlog; inside a batch the store folds one chunk of
orders while Postgres reads and writes the others (`store.py`). Between batches: alerts the batches
wrote to the outbox are published (`outbox.py`), the windows that move with time are checked for
alerts every `alert_sweep_s`, and facts and buckets past `retention_days` are deleted in small chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram

from cancelguard import db, dead_letters, faults, kafka
from cancelguard.config import Settings
from cancelguard.domain.bounds import Reason, check_event
from cancelguard.domain.model import Event, InvalidInput, OrderEvent
from cancelguard.domain.policy import marketplace
from cancelguard.events import codec
from cancelguard.metrics.outbox import OutboxPublisher
from cancelguard.metrics.store import AlertOptions, BatchResult, PartitionBatch, Store
from cancelguard.runtime import (
    Dependencies,
    HealthServer,
    Shutdown,
    backoff_delays,
    connect_with_retry,
    freeze_startup_heap,
)

log = logging.getLogger("cancelguard.metrics")

GROUP_ID = "cancelguard-metrics"
_DECODE_SLICE = 200  # records decoded between two turns of the event loop: a few milliseconds
KAFKA, POSTGRES = "Kafka", "Postgres"

EVENTS_APPLIED = Counter("cancelguard_metrics_events_applied_total", "Order events folded into Postgres")
RECORDS_SKIPPED = Counter(
    "cancelguard_metrics_records_skipped_total",
    "Records already applied (replayed after a crash or rebalance)",
)
DEAD_LETTERS = Counter(
    "cancelguard_metrics_dead_letters_total", "Records sent to the dead-letter topic", ["reason"]
)
ROW_WRITES = Counter("cancelguard_metrics_row_writes_total", "Order and bucket rows upserted", ["table"])
BATCH_SECONDS = Histogram("cancelguard_metrics_batch_seconds", "Time to apply one batch")
ALERTS = Counter("cancelguard_metrics_alerts_published_total", "Alerts published to the alerts topic")
RETAINED = Counter("cancelguard_metrics_rows_deleted_total", "Rows deleted by retention", ["table"])
ASSIGNED = Gauge("cancelguard_metrics_assigned_partitions", "Partitions this instance owns")


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A fetched batch, decoded: the events per partition, and the dead letters of what did not read."""

    parts: list[PartitionBatch]
    letters: list[dead_letters.DeadLetter]


class _KafkaDown(Exception):
    """Sending dead letters failed: Kafka, not Postgres, is the dependency that is away."""


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, service: MetricsService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        pass  # a batch still in hand for them is fenced by the stored offsets: nothing to flush

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.service.seek_to_stored(list(assigned))


def decode(record: ConsumerRecord, now: datetime) -> Event:
    """One record of the events topic -> a checked event; InvalidInput says why not."""
    if record.value is None:
        raise InvalidInput("empty record (no value)", Reason.EMPTY_RECORD.value)
    event = codec.decode(record.value)
    marketplace(event.key.marketplace_id)
    return check_event(event, now=now)


Refusal = tuple[TopicPartition, ConsumerRecord, Exception]

# Tracked (container) objects a batch keeps alive per record until it is applied: about 8.5 measured
# (events decoded, then their orders folded), rounded up.
_TRACKED_PER_RECORD = 15


def young_generation_size(batch_max_records: int) -> int:
    """The cyclic collector's first threshold: above what two batches keep alive (one in Postgres, one
    decoded ahead). The count is of objects alive, so below that a young collection walks a batch's live
    objects again and again, to free nothing. Measured with gc callbacks in the service under
    `bench/metrics_apply.py --rounds 1` (batches of 10,000, three runs each): 0.8-1.0 s of collections
    per 200,000 events at 50,000, 0.06-0.14 s at 300,000. Above it, collections come between batches,
    when a batch's objects are gone."""
    return max(50_000, 2 * _TRACKED_PER_RECORD * batch_max_records)


def decode_partitions(
    batch: dict[TopicPartition, list[ConsumerRecord]], now: datetime
) -> tuple[list[PartitionBatch], list[Refusal]]:
    """A fetched batch as events per partition in partition order (None for a record that does not
    decode), and each refused record with the reason."""
    parts = []
    refused: list[Refusal] = []
    for tp, records in sorted(batch.items(), key=lambda kv: kv[0].partition):
        decoded: list[tuple[int, Event | None]] = []
        for record in records:
            try:
                decoded.append((record.offset, decode(record, now)))
            except Exception as exc:
                decoded.append((record.offset, None))
                refused.append((tp, record, exc))
        parts.append(PartitionBatch(tp.topic, tp.partition, decoded))
    return parts, refused


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
        self.kafka_probe = kafka.KafkaProbe(settings.kafka_bootstrap)
        self.store: Store | None = None
        self.outbox: OutboxPublisher | None = None
        self.dependencies: Dependencies | None = None
        self._lag_offsets: dict[TopicPartition, int] = {}
        self.renew_producer = False
        self._lag_committed_at = time.monotonic()
        self._unpublished = False  # a batch raised alerts that are not on the topic yet
        self._next_sweep = 0.0
        self._next_retention = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        await self.health.start()
        pool = None
        try:
            await connect_with_retry(
                POSTGRES,
                s.redacted_dsn,
                lambda: db.migrate(dsn=s.postgres_dsn, schema=s.postgres_schema),
                timeout_s=s.startup_timeout_s,
                stop=stop,
            )
            pool = await connect_with_retry(
                POSTGRES,
                s.redacted_dsn,
                lambda: db.create_pool(dsn=s.postgres_dsn, schema=s.postgres_schema),
                timeout_s=s.startup_timeout_s,
                stop=stop,
            )
            self.store = Store(
                pool,
                s.policies,
                alerts=AlertOptions(timedelta(seconds=s.alert_grace_s), s.amazon_tolerance),
            )
            await self.store.adopt_policy()
            self.outbox = OutboxPublisher(self.store, self.producer, s.kafka_bootstrap, s.alerts_topic)
            ready_pool = pool
            self.dependencies = Dependencies(
                {KAFKA: self.kafka_probe, POSTGRES: lambda: db.ping(ready_pool)},
                self.health.set,
                outage_limit_s=s.outage_limit_s,
                interval_s=s.probe_interval_s,
            )
            self.consumer.subscribe([s.order_events_topic], listener=_SeekToStoredOffsets(self))
            await kafka.connect(s, self.producer, self.consumer, stop=stop)
            await self.dependencies.probe_once()
            self.dependencies.start()
            log.info(
                "applying order events", extra={"topic": s.order_events_topic, "schema": s.postgres_schema}
            )
            await self._housekeeping(force_publish=True)  # alerts a killed predecessor committed
            # Decoding and folding make millions of short-lived objects, none in a cycle: let the cyclic
            # collector run less often, and never over what start-up left behind.
            freeze_startup_heap()
            gc.set_threshold(young_generation_size(s.batch_max_records), 20, 20)
            ready: asyncio.Queue[_Decoded] = asyncio.Queue(maxsize=1)
            reader = asyncio.create_task(self._read_ahead(ready, stop))
            try:
                while not stop.is_set():
                    self.dependencies.check_limit()
                    if reader.done():
                        reader.result()  # raises what stopped it
                        break
                    try:
                        async with asyncio.timeout(s.batch_timeout_ms / 1000):
                            decoded = await ready.get()
                    except TimeoutError:
                        decoded = None
                    if decoded is not None:
                        await self.process(decoded, stop)
                    await self._housekeeping()
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        finally:
            shutdown = Shutdown()
            if self.dependencies is not None:
                await shutdown.step("the dependency probes", self.dependencies.stop())
            await shutdown.step("health NOT_SERVING", self.health.set(False))
            await shutdown.step("the lag offsets' commit", self._commit_lag_offsets())
            await kafka.close_clients(shutdown, self.consumer, self.producer, self.kafka_probe)
            await shutdown.step("the health server", self.health.stop(self.settings.shutdown_grace_s))
            if pool is not None:
                await shutdown.step("the Postgres pool", pool.close())
            shutdown.finished()

    async def seek_to_stored(self, assigned: list[TopicPartition]) -> None:
        assert self.store is not None
        ASSIGNED.set(len(self.consumer.assignment()))
        for delay in backoff_delays():  # Postgres may be away during a rebalance too
            try:
                stored = await self.store.load_offsets(GROUP_ID, self.settings.order_events_topic)
                break
            except Exception as exc:
                if not db.is_transient(exc) or self.dependencies is None:
                    raise
                await self.dependencies.down(POSTGRES, exc)
                self.dependencies.check_limit()
                await asyncio.sleep(delay)
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            else:
                await self.consumer.seek_to_beginning(tp)
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(tp.partition for tp in assigned), "stored_offsets": stored},
        )

    async def _read_ahead(self, ready: asyncio.Queue[_Decoded], stop: asyncio.Event) -> None:
        """Fetch and decode batches while the previous one is in Postgres; `ready` holds one at most."""
        s = self.settings
        while not stop.is_set():
            batch = await self.consumer.getmany(
                timeout_ms=s.batch_timeout_ms, max_records=s.batch_max_records
            )
            count = sum(len(r) for r in batch.values())
            while batch and count < s.batch_max_records:  # what else is fetched already: bigger batches
                more = await self.consumer.getmany(timeout_ms=0, max_records=s.batch_max_records - count)
                if not more:
                    break
                for tp, records in more.items():
                    batch.setdefault(tp, []).extend(records)
                count += sum(len(r) for r in more.values())
            if batch:
                await ready.put(await self.decode_batch(batch))

    async def decode_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> _Decoded:
        """The batch decoded a slice at a time, the loop running between slices: decoding a whole batch
        at once would hold up the replies of the batch in Postgres, so the two would not overlap."""
        now = datetime.now(UTC)
        parts = []
        letters = []
        for tp, records in sorted(batch.items(), key=lambda kv: kv[0].partition):
            decoded: list[tuple[int, Event | None]] = []
            for start in range(0, len(records), _DECODE_SLICE):
                [part], refused = decode_partitions({tp: records[start : start + _DECODE_SLICE]}, now)
                decoded += part.records
                letters += [self._dead_letter(r.value, r.key, exc, tp, r.offset) for tp, r, exc in refused]
                await asyncio.sleep(0)
            parts.append(PartitionBatch(tp.topic, tp.partition, decoded))
        return _Decoded(parts, letters)

    async def process(self, decoded: _Decoded, stop: asyncio.Event) -> None:
        with BATCH_SECONDS.time():
            result = await self._apply(decoded.parts, decoded.letters, stop)
        if result is None:
            return  # stopped during an outage: nothing committed; the batch is re-read after a restart
        EVENTS_APPLIED.inc(result.events_applied)
        RECORDS_SKIPPED.inc(result.records_skipped)
        ROW_WRITES.labels("orders").inc(result.orders_written)
        ROW_WRITES.labels("cr_buckets").inc(result.buckets_written)
        if result.alerts_raised:
            faults.reached(faults.ALERTS_COMMITTED)
            self._unpublished = True
        self._lag_offsets.update({TopicPartition(p.topic, p.partition): p.next_offset for p in decoded.parts})
        if time.monotonic() - self._lag_committed_at >= self.settings.kafka_commit_interval_s:
            await self._commit_lag_offsets()

    async def _commit_lag_offsets(self) -> None:
        """Kafka's committed offsets are for lag monitoring only (Postgres holds the ones that count), so
        they are written at most every `kafka_commit_interval_s`, not per batch."""
        self._lag_committed_at = time.monotonic()
        if not self._lag_offsets:
            return
        try:
            # bounded: while the group's coordinator moves, a commit may retry for minutes, and it must
            # hold up neither the batches nor a shutdown for a figure that only monitoring reads
            async with asyncio.timeout(kafka.STOP_TIMEOUT_S):
                await self.consumer.commit(dict(self._lag_offsets))
            self._lag_offsets.clear()
        except (KafkaError, TimeoutError) as exc:
            log.info("kafka offset commit skipped: %s", exc)

    async def _housekeeping(self, *, force_publish: bool = False) -> None:
        """Alerts to publish, windows to sweep, rows past retention: each when due. A failure (Kafka or
        Postgres away) is logged and tried again later; the outbox keeps what was not sent."""
        assert self.store is not None and self.outbox is not None and self.dependencies is not None
        if not self.dependencies.all_up:
            return  # during an outage: the batch retry reports it; the outbox keeps what is unsent
        s = self.settings
        clock = time.monotonic()
        try:
            if clock >= self._next_sweep:
                self._next_sweep = clock + s.alert_sweep_s
                if await self.store.sweep_alerts():
                    self._unpublished = True
            if self._unpublished or force_publish:
                await self._renew_producer_if_broken()
                ALERTS.inc(await self.outbox.publish())
                self._unpublished = False
            if s.retention_days and clock >= self._next_retention:
                self._next_retention = clock + s.retention_interval_s
                horizon = datetime.now(UTC) - timedelta(days=s.retention_days)
                for table, n in (await self.store.delete_expired(horizon)).items():
                    RETAINED.labels(table).inc(n)
        except (KafkaError, TimeoutError) as exc:  # one warning per outage, as for the batches
            self.renew_producer = True  # an expired batch leaves the producer unusable: see kafka
            await self.dependencies.down(KAFKA, exc)
        except Exception as exc:
            if not db.is_transient(exc):
                raise
            await self.dependencies.down(POSTGRES, exc)

    async def _apply(
        self, parts: list[PartitionBatch], letters: list[dead_letters.DeadLetter], stop: asyncio.Event
    ) -> BatchResult | None:
        """Dead letters out, then the batch into Postgres, retrying through outages; None: stopped."""
        assert self.store is not None and self.dependencies is not None
        for delay in backoff_delays():
            try:
                if letters:  # dead letters are safe in Kafka before the offsets move past them
                    await self._send(letters)
                    letters = []
                result = await self.store.apply_batch(GROUP_ID, parts)
            except _KafkaDown as down:
                await self.dependencies.down(KAFKA, down.__cause__ or down)
                self.renew_producer = True
            except Exception as exc:
                if db.is_record_error(exc):
                    parts, letters = await self._isolate(parts, exc)
                    continue
                if not db.is_transient(exc):
                    raise
                await self.dependencies.down(POSTGRES, exc)
                await self.store.pool.expire_connections()  # dead after a restart: see db.ping
            else:
                await self.dependencies.up(POSTGRES)
                return result
            self.dependencies.check_limit()
            await self.dependencies.wait_retry(delay, stop)
            if stop.is_set():
                return None
        raise AssertionError("backoff_delays never ends")

    async def _isolate(
        self, parts: list[PartitionBatch], error: Exception
    ) -> tuple[list[PartitionBatch], list[dead_letters.DeadLetter]]:
        """The batch without the events Postgres refuses, and their dead letters."""
        assert self.store is not None
        events = [e for p in parts for _, e in p.records if isinstance(e, OrderEvent)]
        refused = await self.store.rejected(events)
        if not refused:
            raise error  # the batch fails, yet no event alone does: not a poison record; let it crash
        bad = {id(e) for e, _ in refused}
        letters = []
        kept = []
        for p in parts:
            records: list[tuple[int, Event | None]] = []
            for offset, event in p.records:
                if event is not None and id(event) in bad:
                    exc = next(x for e, x in refused if e is event)
                    tp = TopicPartition(p.topic, p.partition)
                    store_error = InvalidInput(
                        f"Postgres refused the event: {exc}", Reason.STORE_REJECTED.value
                    )
                    letters.append(self._dead_letter(codec.encode(event), None, store_error, tp, offset))
                    event = None
                records.append((offset, event))
            kept.append(PartitionBatch(p.topic, p.partition, records))
        return kept, letters

    def _dead_letter(
        self, value: bytes | None, key: bytes | None, exc: Exception, tp: TopicPartition, offset: int
    ) -> dead_letters.DeadLetter:
        code, message = dead_letters.refusal(exc)
        if code == Reason.INTERNAL_ERROR.value:
            log.error(
                "could not read an event", exc_info=exc, extra={"partition": tp.partition, "offset": offset}
            )
        DEAD_LETTERS.labels(code).inc()
        log.warning(
            "dead-lettered a record", extra={"reason_code": code, "partition": tp.partition, "offset": offset}
        )
        return dead_letters.build(
            value=value,
            key=key,
            reason_code=code,
            message=message,
            origin=dead_letters.Origin(tp.topic, tp.partition, offset),
            stage="metrics",
        )

    async def _send(self, letters: list[dead_letters.DeadLetter]) -> None:
        topic = self.settings.dead_letter_topic
        try:
            await self._renew_producer_if_broken()
            futures = [await kafka.send_dead_letter(self.producer, topic, letter) for letter in letters]
            async with asyncio.timeout(kafka.SEND_TIMEOUT_S):
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            raise _KafkaDown from exc

    async def _renew_producer_if_broken(self) -> None:
        if self.renew_producer:  # a send failed before: see kafka.renew_producer
            self.producer = await kafka.renew_producer(
                self.producer, self.settings.kafka_bootstrap, client_id="cancelguard-metrics"
            )
            if self.outbox is not None:
                self.outbox.producer = self.producer
            self.renew_producer = False
