"""All SQL for orders, CR buckets and consumer offsets: batch writes for the metrics service, reads for
the API.

A batch is applied in one transaction: lock the partitions' stored offsets (fencing out a second
instance that still holds them after a rebalance), skip records already applied, lock the batch's order
rows, fold the rest into the stored orders with the domain rules, move each changed order's counts
between hour buckets, upsert the orders, the bucket deltas and the new offsets, commit. One upsert per
order and per bucket per batch.

Locks are always taken in key order (offsets by partition, orders by key, buckets by key), so two
batches that share orders (one order on two partitions, after a partition count change or a producer
that keys by order) wait for each other instead of deadlocking, and the second folds into what the
first committed: no lost update.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from cancelguard.db import ACQUIRE_TIMEOUT_S, is_record_error
from cancelguard.domain.attribution import attribute, contribution
from cancelguard.domain.lifecycle import apply
from cancelguard.domain.model import Event, Order, OrderEvent, OrderKey, OrderStatus, RequestKind
from cancelguard.domain.policy import PolicyBook
from cancelguard.domain.projection import CountedCancellation
from cancelguard.domain.windows import Bucket, bucket_start
from cancelguard.metrics.state_codec import order_from_json, order_to_json


@dataclass(frozen=True, slots=True)
class PartitionBatch:
    """Records of one partition, in offset order; `event` is None for a record that was dead-lettered."""

    topic: str
    partition: int
    records: Sequence[tuple[int, Event | None]]

    @property
    def next_offset(self) -> int:
        return self.records[-1][0] + 1


@dataclass(frozen=True, slots=True)
class BatchResult:
    events_applied: int
    records_skipped: int  # already applied by an earlier run (replay after a crash or rebalance)
    orders_written: int
    buckets_written: int


class _Rollback(Exception):
    """Ends a trial transaction (`Store.rejected`) without keeping anything."""


def open_request(order: Order) -> tuple[RequestKind, datetime] | None:
    """The request the ops team still has to act on, if any: not cancelled, not fully shipped."""
    if order.is_canceled or order.status in (OrderStatus.SHIPPED, OrderStatus.INVOICE_UNCONFIRMED):
        return None
    if order.has_open_formal_request:
        at = order.first_formal_request_at
        assert at is not None
        return RequestKind.FORMAL, at
    if order.informal_requests:
        return RequestKind.INFORMAL, order.informal_requests[0].requested_at
    return None


class Store:
    def __init__(self, pool: asyncpg.Pool, policies: PolicyBook) -> None:
        self.pool = pool
        self.policies = policies

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            return await conn.fetch(sql, *args)

    # --- metrics service: writes ---

    async def load_offsets(self, group: str, topic: str) -> dict[int, int]:
        rows = await self._fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
            group,
            topic,
        )
        return {r["partition"]: r["next_offset"] for r in rows}

    async def apply_batch(self, group: str, batches: Sequence[PartitionBatch]) -> BatchResult:
        if not batches:
            return BatchResult(0, 0, 0, 0)
        topic = batches[0].topic
        partitions = [b.partition for b in batches]
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            # Make sure every partition has an offset row, then lock the rows: a second instance still
            # holding these partitions after a rebalance waits here, then sees our offsets and skips.
            # (Locking alone would not fence a partition's first batch: there is no row to lock yet.)
            await conn.execute(
                "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)"
                " SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p ON CONFLICT DO NOTHING",
                group,
                topic,
                partitions,
            )
            stored = {
                r["partition"]: r["next_offset"]
                for r in await conn.fetch(
                    "SELECT partition, next_offset FROM consumer_offsets"
                    " WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])"
                    " ORDER BY partition FOR UPDATE",
                    group,
                    topic,
                    partitions,
                )
            }
            events: list[OrderEvent] = []
            skipped = 0
            applied: dict[int, int] = {}
            for b in batches:
                start = stored.get(b.partition, 0)
                for offset, event in b.records:
                    if offset < start:
                        skipped += 1
                        continue
                    applied[b.partition] = applied.get(b.partition, 0) + 1
                    if isinstance(event, OrderEvent):  # account events (Amazon's rate): not stored yet
                        events.append(event)

            orders_written = buckets_written = 0
            if events:
                orders_written, buckets_written = await self._fold(conn, events)

            await conn.executemany(
                "UPDATE consumer_offsets SET next_offset = GREATEST(next_offset, $4),"
                " applied_records = applied_records + $5, updated_at = now()"
                " WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
                [(group, topic, b.partition, b.next_offset, applied.get(b.partition, 0)) for b in batches],
            )
        return BatchResult(len(events), skipped, orders_written, buckets_written)

    async def _fold(self, conn: asyncpg.Connection, events: list[OrderEvent]) -> tuple[int, int]:
        by_key: dict[OrderKey, list[OrderEvent]] = defaultdict(list)
        for event in events:
            by_key[event.key].append(event)
        keys = sorted(by_key)
        columns = (
            [k.seller_account for k in keys],
            [k.marketplace_id for k in keys],
            [k.amazon_order_id for k in keys],
        )
        # Lock every order of the batch, in key order. A new order gets a placeholder row first (state
        # NULL, never committed: the upsert below replaces it), so that it too has a row to lock; a
        # batch inserting the same new order waits here for this one to commit, then sees its state.
        await conn.execute(
            "INSERT INTO orders (seller_account, marketplace_id, amazon_order_id, state, verdict, rule)"
            " SELECT s, m, i, 'null'::jsonb, '', '' FROM unnest($1::text[], $2::text[], $3::text[])"
            " AS k(s, m, i) ORDER BY s, m, i ON CONFLICT DO NOTHING",
            *columns,
        )
        rows = await conn.fetch(
            "SELECT o.seller_account, o.marketplace_id, o.amazon_order_id, o.state,"
            " o.denominator_bucket, o.numerator_bucket"
            " FROM orders o JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(s, m, i)"
            " ON o.seller_account = k.s AND o.marketplace_id = k.m AND o.amazon_order_id = k.i"
            " ORDER BY o.seller_account, o.marketplace_id, o.amazon_order_id FOR UPDATE OF o",
            *columns,
        )
        before = {OrderKey(r[0], r[1], r[2]): r for r in rows if r["state"] is not None}

        deltas: dict[tuple[str, str, datetime], list[int]] = defaultdict(lambda: [0, 0])
        out = []
        for key in keys:
            order_events = by_key[key]
            row = before.get(key)
            order = order_from_json(key, row["state"]) if row is not None else None
            for event in order_events:
                order = apply(order, event)
            assert order is not None
            policy = self.policies.for_marketplace(key.marketplace_id)
            verdict = attribute(order, policy)
            place = contribution(order, policy, verdict)
            new_d = bucket_start(place.denominator_at) if place.denominator_at else None
            new_n = bucket_start(place.numerator_at) if place.numerator_at else None
            old_d = row["denominator_bucket"] if row is not None else None
            old_n = row["numerator_bucket"] if row is not None else None
            for old, new, column in ((old_d, new_d, 0), (old_n, new_n, 1)):
                if old != new:
                    if old is not None:
                        deltas[(key.seller_account, key.marketplace_id, old)][column] -= 1
                    if new is not None:
                        deltas[(key.seller_account, key.marketplace_id, new)][column] += 1
            request = open_request(order)
            out.append(
                (
                    key.seller_account,
                    key.marketplace_id,
                    key.amazon_order_id,
                    order_to_json(order),
                    order.status.value if order.status else None,
                    order.channel.value if order.channel else None,
                    order.purchased_at,
                    verdict.verdict.value,
                    verdict.rule.value,
                    verdict.needs_review,
                    request[0].value if request else None,
                    request[1] if request else None,
                    new_d,
                    new_n,
                )
            )

        await conn.execute(
            "INSERT INTO orders (seller_account, marketplace_id, amazon_order_id, state, status,"
            " fulfillment_channel, purchased_at, verdict, rule, needs_review, open_request, request_at,"
            " denominator_bucket, numerator_bucket)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::text[],"
            " $7::timestamptz[], $8::text[], $9::text[], $10::bool[], $11::text[], $12::timestamptz[],"
            " $13::timestamptz[], $14::timestamptz[])"
            " ON CONFLICT (seller_account, marketplace_id, amazon_order_id) DO UPDATE SET"
            " state = EXCLUDED.state, status = EXCLUDED.status,"
            " fulfillment_channel = EXCLUDED.fulfillment_channel, purchased_at = EXCLUDED.purchased_at,"
            " verdict = EXCLUDED.verdict, rule = EXCLUDED.rule, needs_review = EXCLUDED.needs_review,"
            " open_request = EXCLUDED.open_request, request_at = EXCLUDED.request_at,"
            " denominator_bucket = EXCLUDED.denominator_bucket, numerator_bucket = EXCLUDED.numerator_bucket,"
            " updated_at = now()",
            *[list(column) for column in zip(*out, strict=True)],
        )

        changed = sorted((s, m, b, d[0], d[1]) for (s, m, b), d in deltas.items() if d != [0, 0])
        if changed:
            await conn.execute(
                "INSERT INTO cr_buckets (seller_account, marketplace_id, bucket_start, orders, cancellations)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::int[])"
                " ON CONFLICT (seller_account, marketplace_id, bucket_start) DO UPDATE SET"
                " orders = cr_buckets.orders + EXCLUDED.orders,"
                " cancellations = cr_buckets.cancellations + EXCLUDED.cancellations",
                *[list(column) for column in zip(*changed, strict=True)],
            )
        return len(out), len(changed)

    async def rejected(self, events: Sequence[OrderEvent]) -> list[tuple[OrderEvent, Exception]]:
        """The events Postgres refuses when each is applied alone, with the error; nothing is kept.

        Called only after a batch failed on its data (`db.is_record_error`), to find the poison record
        among the good ones; a failure that is not the record's fault is raised."""
        refused = []
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            for event in events:
                try:
                    async with conn.transaction():
                        await self._fold(conn, [event])
                        raise _Rollback
                except _Rollback:
                    pass
                except Exception as exc:
                    if not is_record_error(exc):
                        raise
                    refused.append((event, exc))
        return refused

    # --- API: reads ---

    async def get_order(self, key: OrderKey) -> Order | None:
        found = await self.get_orders(key.seller_account, key.marketplace_id, [key.amazon_order_id])
        return found.get(key.amazon_order_id)

    async def bucket_totals(
        self, seller_account: str, marketplace_id: str, start: datetime, end: datetime
    ) -> tuple[int, int]:
        """(orders, cancellations) summed over the hour buckets in [start, end)."""
        [row] = await self._fetch(
            "SELECT COALESCE(SUM(orders), 0) AS orders, COALESCE(SUM(cancellations), 0) AS cancellations"
            " FROM cr_buckets WHERE seller_account = $1 AND marketplace_id = $2"
            " AND bucket_start >= $3 AND bucket_start < $4",
            seller_account,
            marketplace_id,
            start,
            end,
        )
        return int(row["orders"]), int(row["cancellations"])

    async def buckets(
        self, seller_account: str, marketplace_id: str, start: datetime, end: datetime
    ) -> list[Bucket]:
        rows = await self._fetch(
            "SELECT bucket_start, orders, cancellations FROM cr_buckets WHERE seller_account = $1"
            " AND marketplace_id = $2 AND bucket_start >= $3 AND bucket_start < $4 ORDER BY bucket_start",
            seller_account,
            marketplace_id,
            start,
            end,
        )
        return [Bucket(r[0], r[1], r[2]) for r in rows]

    async def open_requests(
        self, seller_account: str, marketplace_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        """Orders with an open request, oldest request first; `after` is the last (request_at, order id)."""
        after_at, after_id = after if after else (None, "")
        rows = await self._fetch(
            "SELECT amazon_order_id, state FROM orders"
            " WHERE seller_account = $1 AND marketplace_id = $2 AND open_request IS NOT NULL"
            " AND ($3::timestamptz IS NULL OR (request_at, amazon_order_id) > ($3, $4))"
            " ORDER BY request_at, amazon_order_id LIMIT $5",
            seller_account,
            marketplace_id,
            after_at,
            after_id,
            limit,
        )
        return [order_from_json(OrderKey(seller_account, marketplace_id, r[0]), r[1]) for r in rows]

    async def get_orders(
        self, seller_account: str, marketplace_id: str, order_ids: Sequence[str]
    ) -> dict[str, Order]:
        rows = await self._fetch(
            "SELECT amazon_order_id, state FROM orders WHERE seller_account = $1 AND marketplace_id = $2"
            " AND amazon_order_id = ANY($3::text[])",
            seller_account,
            marketplace_id,
            list(order_ids),
        )
        return {r[0]: order_from_json(OrderKey(seller_account, marketplace_id, r[0]), r[1]) for r in rows}

    async def counted_cancellations(
        self, seller_account: str, marketplace_id: str, start: datetime, end: datetime
    ) -> list[CountedCancellation]:
        """The orders in the CR numerator whose bucket lies in [start, end)."""
        rows = await self._fetch(
            "SELECT amazon_order_id, numerator_bucket FROM orders WHERE seller_account = $1"
            " AND marketplace_id = $2 AND numerator_bucket >= $3 AND numerator_bucket < $4"
            " ORDER BY numerator_bucket, amazon_order_id",
            seller_account,
            marketplace_id,
            start,
            end,
        )
        return [CountedCancellation(r[0], r[1]) for r in rows]

    async def orders_purchased(
        self, seller_account: str, marketplace_id: str, start: datetime, end: datetime
    ) -> list[Order]:
        rows = await self._fetch(
            "SELECT amazon_order_id, state FROM orders WHERE seller_account = $1 AND marketplace_id = $2"
            " AND purchased_at >= $3 AND purchased_at < $4",
            seller_account,
            marketplace_id,
            start,
            end,
        )
        return [order_from_json(OrderKey(seller_account, marketplace_id, r[0]), r[1]) for r in rows]
