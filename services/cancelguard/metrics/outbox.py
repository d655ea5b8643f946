"""Publishes the alert outbox to the alerts topic, after the batches that wrote it committed.

Exactly once on the topic, even when a process dies in the middle: one instance publishes at a time
(a Postgres advisory lock); before publishing, it counts an attempt on each alert in its own commit;
an unsent alert that already has an attempt may have reached the topic before the crash, so the topic
is read back from that alert's time, and an alert found there is marked sent instead of sent again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from cancelguard import faults, kafka
from cancelguard.db import ACQUIRE_TIMEOUT_S
from cancelguard.metrics import alert_messages
from cancelguard.metrics.store import Store

log = logging.getLogger("cancelguard.metrics.outbox")

_LOCK_KEY = 0x616C7274  # "alrt": one publisher at a time across instances
_BATCH = 500
_CLOCK_SKEW = timedelta(minutes=5)  # read the topic back from a little before the alert was written


async def _unlock(conn: asyncpg.Connection) -> None:
    """Give the publisher's lock back. On a connection that just failed (Postgres went away, or a
    statement was cut off and its connection is still busy) the unlock fails too: end the session then,
    which ends its lock, and never let the unlock hide the failure that brought us here (the service
    treats that one as the outage it is)."""
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    except Exception:
        conn.terminate()


class OutboxPublisher:
    def __init__(self, store: Store, producer: AIOKafkaProducer, bootstrap: str, topic: str) -> None:
        self.store = store
        self.producer = producer
        self.bootstrap = bootstrap
        self.topic = topic

    async def publish(self) -> int:
        """Send every unsent alert; returns how many went out. Kafka or Postgres errors propagate."""
        sent = 0
        async with self.store.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
                return 0  # another instance is publishing
            try:
                while rows := await self.store.unsent_alerts(conn, _BATCH):
                    sent += await self._publish(conn, rows)
                    if len(rows) < _BATCH:
                        break
            finally:
                await _unlock(conn)
        return sent

    async def _publish(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> int:
        retried = [r for r in rows if r["attempts"] > 0]
        if retried:
            since = min(r["created_at"] for r in retried) - _CLOCK_SKEW
            on_topic = await self._ids_on_topic(
                int(since.timestamp() * 1000), {r["alert_id"] for r in retried}
            )
            already = [r["id"] for r in retried if r["alert_id"] in on_topic]
            if already:
                await self.store.mark_sent(conn, already)
                log.info("alerts found on the topic after a restart", extra={"alerts": len(already)})
            rows = [r for r in rows if r["alert_id"] not in on_topic]
        if not rows:
            return 0
        await self.store.note_attempt(conn, [r["id"] for r in rows])
        futures = [
            await self.producer.send(self.topic, value=r["payload"], key=r["partition_key"].encode())
            for r in rows
        ]
        async with asyncio.timeout(kafka.SEND_TIMEOUT_S):
            await asyncio.gather(*futures)
        faults.reached(faults.ALERTS_PUBLISHED)
        await self.store.mark_sent(conn, [r["id"] for r in rows])
        for r in rows:
            log.info("alert", extra={"alert": alert_messages.describe(alert_messages.decode(r["payload"]))})
        return len(rows)

    async def _ids_on_topic(self, since_ms: int, wanted: set[str]) -> set[str]:
        """Which of `wanted` are on the alerts topic, reading every partition from `since_ms` to its end."""
        # subscribed without a group: it is given every partition once the topic's metadata is in
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = await kafka.take_all_partitions(consumer)
            starts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                found = starts.get(tp)
                if found is None:
                    consumer.seek(tp, ends[tp])
                else:
                    consumer.seek(tp, found.offset)
            seen: set[str] = set()
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        alert_id = alert_messages.decode(record.value).alert_id
                        if alert_id in wanted:
                            seen.add(alert_id)
            return seen
        finally:
            async with asyncio.timeout(kafka.STOP_TIMEOUT_S):
                await consumer.stop()
