"""`cancelguard rebuild`: compute orders and buckets again from the events topic into a new generation,
while the API keeps serving the active one, and switch to it once it has caught up.

Why: the numbers follow the policy they were computed with (a generation records it). After a change of
CANCELGUARD_POLICY_OVERRIDES, or a fix to a rule, every order must be placed again; this does it from
the events themselves, with the policy configured for this command.

- From the beginning (default): every partition of the events topic is read from its first offset.
- From a time (`--from 2026-11-01T00:00:00Z`): the facts of the active generation are copied first
  (placed with the new policy), then the topic is read from that time on. The fold is idempotent, so
  events the copied facts already hold change nothing; use it when the topic no longer reaches back.

Progress goes to stderr as JSON log lines (`rebuild progress`, with events applied and the records
still behind). The switch happens once the new generation has applied, on every partition, at least what
the live metrics service has: live batches wait for the switch, then continue on the new generation
from its offsets. As a Kubernetes Job: exit 0 once switched, 2 if Kafka or Postgres cannot be reached,
3 on a long outage, 4 if it did not catch up within `--timeout`, 1 on anything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from cancelguard import db, kafka
from cancelguard.config import Settings
from cancelguard.metrics.service import GROUP_ID, decode_partitions
from cancelguard.metrics.store import Store
from cancelguard.runtime import connect_with_retry

log = logging.getLogger("cancelguard.rebuild")

PROGRESS_EVERY_S = 2.0


class NotCaughtUp(RuntimeError):
    """The rebuild did not catch up with the live service in the time allowed: nothing was switched."""


async def rebuild(
    settings: Settings,
    *,
    from_time: datetime | None = None,
    timeout_s: float | None = None,
    stop: asyncio.Event | None = None,
    before_switch: object = None,
) -> int:
    """Build a new generation and switch to it; returns the generation. `before_switch`, an async
    callable, runs once the new generation has caught up and just before the switch (tests use it to
    look at both generations)."""
    s = settings
    stop = stop or asyncio.Event()
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
    consumer = AIOKafkaConsumer(
        s.order_events_topic,  # without a group: every partition, positioned by hand below
        bootstrap_servers=s.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=s.batch_max_records,
        client_id="cancelguard-rebuild",
    )
    try:
        store = Store(pool, s.policies)  # this command's policy: the one to apply
        active = await store.active_generation(refresh=True)
        generation = await store.new_generation(from_time=from_time)
        log.info(
            "rebuild started",
            extra={
                "generation": generation,
                "replaces": active.generation,
                "from": str(from_time or "beginning"),
            },
        )
        if from_time is not None:
            copied = await store.seed_generation(active.generation, generation)
            log.info("facts copied from the active generation", extra={"orders": copied})
        await kafka.connect(s, consumer, stop=stop)  # the topics too, as every service makes sure of them
        partitions = await kafka.take_all_partitions(consumer)
        if from_time is None:
            await consumer.seek_to_beginning(*partitions)
        else:
            found = await consumer.offsets_for_times(
                {tp: int(from_time.timestamp() * 1000) for tp in partitions}
            )
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        await _catch_up(store, consumer, partitions, generation, s, stop, timeout_s, before_switch)
        log.info("switched", extra={"generation": generation, "retired": active.generation})
        return generation
    finally:
        async with asyncio.timeout(kafka.STOP_TIMEOUT_S):
            await consumer.stop()
        async with asyncio.timeout(10):
            await pool.close()


async def _catch_up(
    store: Store,
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    generation: int,
    s: Settings,
    stop: asyncio.Event,
    timeout_s: float | None,
    before_switch: object,
) -> None:
    started = time.monotonic()
    applied = 0
    last_report = 0.0
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=s.batch_timeout_ms, max_records=s.batch_max_records)
        if batch:
            # a record that does not decode was dead-lettered by the live service already: skipped here
            parts, _ = decode_partitions(batch, datetime.now(UTC))
            result = await store.apply_batch(GROUP_ID, parts, generation=generation)
            applied += result.events_applied
        ends = await consumer.end_offsets(partitions)
        behind = 0
        for tp in partitions:
            behind += max(0, ends[tp] - await consumer.position(tp))
        clock = time.monotonic()
        if clock - last_report >= PROGRESS_EVERY_S or not behind:
            last_report = clock
            log.info(
                "rebuild progress", extra={"generation": generation, "applied": applied, "behind": behind}
            )
        if not batch and not behind:
            if callable(before_switch):
                await before_switch()  # type: ignore[misc]
                before_switch = None
            if await store.switch_to(generation, GROUP_ID, s.order_events_topic):
                return
            # the live service has applied records we have not read yet: read on
        if timeout_s is not None and clock - started > timeout_s:
            raise NotCaughtUp(f"generation {generation} did not catch up within {timeout_s:.0f}s")
    raise NotCaughtUp("stopped before the switch")
