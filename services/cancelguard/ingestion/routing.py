"""The one route from what a source says to the order-events topic, for every source.

Raw records (ORDER_CHANGE, buyer messages), polled Orders API documents, report documents: each goes
adapter -> `checked` (a known marketplace, then every bound: `domain.bounds.check_event`) -> `codec.encode`,
keyed by seller account + marketplace. A document that fails anywhere on the way becomes a dead letter
with its reason code and message (`dead_letters`), never an exception, so the next one is processed:
per source, published + ignored + dead-lettered = documents read (`SourceCounts`).

`Sender` sends what the route produced and waits for every acknowledgement (acks=all), retrying through
a Kafka outage while health says NOT_SERVING. Callers move their own position (raw offsets, poll
cursors) only after it returns True.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Counter as PromCounter

from cancelguard import dead_letters, kafka
from cancelguard.config import Settings
from cancelguard.domain.bounds import Reason, check_event
from cancelguard.domain.model import Event
from cancelguard.domain.policy import marketplace
from cancelguard.events import codec
from cancelguard.runtime import Dependencies, backoff_delays

log = logging.getLogger("cancelguard.ingestion")

KAFKA = "Kafka"


EventT = TypeVar("EventT", bound=Event)


def checked(event: EventT, now: datetime) -> EventT:
    """An event ready to publish, or InvalidInput: an unknown marketplace is bad input, not a default."""
    marketplace(event.key.marketplace_id)
    return check_event(event, now=now)


class Outgoing(NamedTuple):
    """One record to send: an event, or a dead letter (a tuple: one is made for every record read)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


@dataclass
class SourceCounts:
    """What became of the documents of one source: published + ignored + dead_lettered = read."""

    read: int = 0
    published: int = 0  # documents that gave at least one event (`events` counts those)
    ignored: int = 0  # documents with nothing to publish (a duplicate, a message that asks nothing)
    dead_lettered: int = 0
    events: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def balanced(self) -> bool:
        return self.published + self.ignored + self.dead_lettered == self.read


OUTCOMES = ("published", "ignored", "dead_lettered")


class Route:
    """Events and dead letters for one stage (`ingestion`, `pollers`), counted per source (and in
    `telemetry`, a Prometheus counter labelled source and outcome, when given)."""

    def __init__(self, settings: Settings, *, stage: str, telemetry: PromCounter | None = None) -> None:
        self.events_topic = settings.order_events_topic
        self.dead_letter_topic = settings.dead_letter_topic
        self.stage = stage
        self.telemetry = telemetry
        self.counts: dict[str, SourceCounts] = {}

    def count(self, source: str) -> SourceCounts:
        found = self.counts.get(source)
        if found is None:
            found = self.counts[source] = SourceCounts()
        return found

    def tally(self, source: str, outcome: str, *, events: int = 0, reason: str = "") -> None:
        """One document of `source` read, and what became of it (one of OUTCOMES)."""
        counts = self.count(source)
        counts.read += 1
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        counts.events += events
        if reason:
            counts.reasons[reason] += 1
        if self.telemetry is not None:
            self.telemetry.labels(source, outcome).inc()

    def event(self, event: Event) -> Outgoing:
        return Outgoing(self.events_topic, event.key.partition_key.encode(), codec.encode(event))

    def refused(
        self,
        exc: BaseException,
        *,
        value: bytes | None,
        key: bytes | None,
        origin: dead_letters.Origin | dead_letters.FileOrigin | dead_letters.ApiOrigin,
        personal_fields: Sequence[str],
    ) -> tuple[Outgoing, str]:
        """The dead letter for a document that failed with `exc`, and its reason code."""
        code, message = dead_letters.refusal(exc)
        if code == Reason.INTERNAL_ERROR.value:  # a bug of ours on this document: keep the traceback
            where = {"stage": self.stage, "origin": str(origin)}
            log.error("failed on a document", exc_info=exc, extra=where)
        letter = dead_letters.build(
            value=value,
            key=key,
            reason_code=code,
            message=message,
            origin=origin,
            stage=self.stage,
            personal_fields=personal_fields,
        )
        return Outgoing(self.dead_letter_topic, letter.key, letter.value, letter.headers), code

    def document(
        self,
        source: str,
        build: Callable[[], Iterable[Event]],
        *,
        now: datetime,
        original: Callable[[], bytes],
        origin: dead_letters.ApiOrigin | dead_letters.FileOrigin,
        key: bytes | None,
        personal_fields: Sequence[str] = (),
    ) -> list[Outgoing]:
        """One document -> its events, or one dead letter (`original`: its bytes, made only then).

        A document is taken or refused whole: an order whose second item is bad is not half-published."""
        try:
            out = [self.event(checked(e, now)) for e in build()]
        except Exception as exc:
            letter, code = self.refused(
                exc, value=_bytes_of(original), key=key, origin=origin, personal_fields=personal_fields
            )
            self.tally(source, "dead_lettered", reason=code)
            log.warning(
                "dead-lettered a document",
                extra={"stage": self.stage, "source": source, "reason_code": code, "origin": str(origin)},
            )
            return [letter]
        self.tally(source, "published" if out else "ignored", events=len(out))
        return out


def _bytes_of(original: Callable[[], bytes]) -> bytes | None:
    try:
        return original()
    except Exception:  # a document we cannot even serialise back: the dead letter says why without it
        return None


class Sender:
    """Sends records through one idempotent producer and waits for every acknowledgement.

    Records go into one batch per topic partition (`create_batch`/`send_batch`), in their order, instead
    of one `send` each: a send costs a future, a partitioner call and the accumulator's bookkeeping per
    record, and on the ingestion path that was a third of the time. The partition of a key is Kafka's
    default partitioner's (murmur2, as `send` would pick it), kept per key while the topic's partition
    count stays the same: keys are seller account + marketplace, so there are few.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        dependencies: Dependencies,
        *,
        renew: Callable[[AIOKafkaProducer], Awaitable[AIOKafkaProducer]] | None = None,
    ) -> None:
        self.producer = producer
        self.dependencies = dependencies
        # after a failed send the idempotent producer may refuse every later one: see kafka.renew_producer
        self.renew = renew
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}  # topic -> its partitions, as last seen
        self._of_key: dict[tuple[str, bytes], int] = {}

    async def send_all(self, outgoing: Sequence[Outgoing], stop: asyncio.Event) -> bool:
        """Send every record and wait for every acknowledgement, retrying through a Kafka outage.
        False: stopped before they were all acknowledged."""
        if not outgoing:
            return True
        for delay in backoff_delays():
            try:
                futures = await self._send(outgoing)
                async with asyncio.timeout(kafka.SEND_TIMEOUT_S):
                    await asyncio.gather(*futures)
            except (KafkaError, TimeoutError) as exc:
                await self.dependencies.down(KAFKA, exc)
                self.dependencies.check_limit()
                await self.dependencies.wait_retry(delay, stop)
                if stop.is_set():
                    return False
                if self.renew is not None:
                    with contextlib.suppress(KafkaError):  # still away: the next round waits longer
                        self.producer = await self.renew(self.producer)
                continue
            await self.dependencies.up(KAFKA)
            return True
        raise AssertionError("backoff_delays never ends")

    async def _send(self, outgoing: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
        producer = self.producer
        for topic in {o.topic for o in outgoing}:
            await self._refresh(topic)
        of_key = self._of_key
        builders: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for o in outgoing:
            topic, key = o.topic, o.key
            partition = of_key.get((topic, key)) if key is not None else None
            if partition is None:
                partition = self._partition(topic, key)
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[(topic, partition)] = producer.create_batch()
            headers = o.headers or []
            if builder.append(timestamp=None, key=key, value=o.value, headers=headers) is None:
                futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[(topic, partition)] = producer.create_batch()
                builder.append(timestamp=None, key=key, value=o.value, headers=headers)  # fits: it is alone
        for (topic, partition), builder in builders.items():
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        return futures

    async def _refresh(self, topic: str) -> None:
        partitions = sorted(await self.producer.partitions_for(topic))
        if partitions != self._partitions.get(topic):
            self._partitions[topic] = partitions
            self._of_key = {k: p for k, p in self._of_key.items() if k[0] != topic}

    def _partition(self, topic: str, key: bytes | None) -> int:
        partitions = self._partitions[topic]
        partition: int = self._partitioner(key, partitions, partitions)
        if key is not None:
            self._of_key[(topic, key)] = partition
        return partition
