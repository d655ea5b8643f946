"""All SQL: the write model the metrics service commits (orders, CR buckets, offsets, Amazon's figure,
alerts), the reads the API makes, and the housekeeping (generations, retention).

A batch is applied in one transaction: take the generation (the active one, or the one a rebuild
fills), lock the partitions' stored offsets (fencing out a second instance that still holds them after a
rebalance), skip records already applied, fold the rest into the stored orders with the domain rules
(`domain.lifecycle`, `domain.placement`), write each changed order once and each changed bucket once,
store Amazon's reported figures, raise the alerts the batch caused into the outbox, move the offsets,
commit. The fold goes through the batch's orders in chunks of keys, in key order, and Python folds one
chunk while Postgres reads the next and writes the one before, in the same transaction: the buckets are
written once, after the last chunk.

Orders are written with compare-and-set: a batch reads the rows of its orders with their version (the
row's `xmin`), folds, and updates each row only if its version is unchanged; new orders are inserted
only if no one else inserted them. A batch that loses a race with another (one order on two
partitions, after a partition count change or with a producer that keys by order) rolls back and is
applied again on top of what the other committed: no lost update, and no row lock beyond the write.

The store only reads and writes rows: what an order's events mean, where it counts and what to alert are
domain rules.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, TypeVar

import asyncpg

from cancelguard.config import dump_policy_overrides, parse_policy_overrides
from cancelguard.db import ACQUIRE_TIMEOUT_S, is_record_error
from cancelguard.domain import alerts as rules
from cancelguard.domain.lifecycle import apply
from cancelguard.domain.model import (
    AccountEvent,
    AmazonReportedRate,
    Event,
    Order,
    OrderEvent,
    OrderKey,
)
from cancelguard.domain.placement import NOT_COUNTED, Buckets, Placement, bucket_moves, place
from cancelguard.domain.policy import CancellationPolicy, PolicyBook
from cancelguard.domain.projection import CountedCancellation
from cancelguard.domain.suppression import SuppressionRisk, suppression_explanation
from cancelguard.domain.windows import Bucket, RateStatus, rate_status
from cancelguard.metrics import alert_messages, state_codec

log = logging.getLogger("cancelguard.metrics.store")

# the active generation, inside any read: a switch is atomic for every statement
_ACTIVE = "(SELECT generation FROM generations WHERE state = 'active')"
_CONFLICT_RETRIES = 50
_key_fields = attrgetter("seller_account", "marketplace_id", "amazon_order_id")
# A batch's fold goes in chunks of keys, so that Postgres reads and writes one chunk while Python folds
# another (`Store._fold`); between slices of a chunk the event loop sends the next statement.
_FOLD_CHUNK = 1000
_FOLD_SLICE = 200
_T = TypeVar("_T")


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
    alerts_raised: int = 0


@dataclass(frozen=True, slots=True)
class AlertOptions:
    """How the store raises alerts (the metrics service's settings)."""

    grace: timedelta = timedelta(0)
    amazon_tolerance: Decimal = Decimal("0.005")  # |ours - Amazon's| above this: DIVERGED


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One order as the batch writes it: the named row between the fold and SQL."""

    key: OrderKey
    version: int | None  # the row's xmin when read; None for a new order
    fact: bytes
    placement: Placement


@dataclass(frozen=True, slots=True)
class AmazonFigure:
    """Amazon's reported rate for a window, beside ours for the same window from the buckets."""

    window_start: datetime
    window_end: datetime  # exclusive
    amazon_orders: int
    amazon_cancellations: int
    amazon_rate: Decimal
    amazon_status: str
    reported_at: datetime
    our_orders: int
    our_cancellations: int

    @property
    def our_rate(self) -> Decimal:
        return Decimal(self.our_cancellations) / Decimal(self.our_orders) if self.our_orders else Decimal(0)

    @property
    def difference(self) -> Decimal:
        """Ours minus Amazon's: positive when we count a higher rate than Amazon does."""
        return self.our_rate - self.amazon_rate


@dataclass(frozen=True, slots=True)
class Generation:
    generation: int
    state: str
    policies: PolicyBook


# Order rows as a batch writes them (`Store._order_columns`): the parameters $2..$12 of an unnest
_ORDER_ROWS = (
    "unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::timestamptz[],"
    " $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::timestamptz[]"
)
_ORDER_ROW_NAMES = "s, m, i, fact, open_request, request_at, den, num, skus, cancelled, purchased_at"
_SKUS = "string_to_array(k.skus, E'\\n')"
_CANCELLED_SKUS = "string_to_array(k.cancelled, E'\\n')"


# Every statement of a batch finds its rows by key. Postgres knows neither how many rows an unnest gives
# nor how they spread, and for a batch of one big account it chose to merge-join the batch against all of
# that account's orders, which grows with the square (11 s for 5,000 keys among 40,000 orders of one
# account); a hash join reads every order of the generation. Without either, each key is one lookup in
# the primary key, whatever the size of the account or the table, once the table has statistics
# (`Store._gather_statistics`).
KEY_LOOKUPS = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
FOLD_READ = (
    "SELECT o.seller_account, o.marketplace_id, o.amazon_order_id, o.xmin::text::bigint, o.fact,"
    " o.state, o.denominator_bucket, o.numerator_bucket, o.seller_cancelled_skus"
    " FROM unnest($2::text[], $3::text[], $4::text[]) AS k(s, m, i)"
    " JOIN orders o ON o.generation = $1 AND o.seller_account = k.s AND o.marketplace_id = k.m"
    " AND o.amazon_order_id = k.i"
)
FOLD_UPDATE = (
    f"WITH k AS (SELECT * FROM {_ORDER_ROWS}, $13::bigint[]) AS k({_ORDER_ROW_NAMES}, version)),"
    " u AS (UPDATE orders o SET fact = k.fact, state = NULL, open_request = k.open_request,"
    " request_at = k.request_at, denominator_bucket = k.den, numerator_bucket = k.num,"
    f" skus = {_SKUS}, seller_cancelled_skus = {_CANCELLED_SKUS}, purchased_at = k.purchased_at,"
    " changed_at = now() FROM k WHERE o.generation = $1 AND o.seller_account = k.s AND o.marketplace_id = k.m"
    " AND o.amazon_order_id = k.i AND o.xmin = k.version::text::xid RETURNING 1)"
    " SELECT count(*) FROM u"
)


class _Conflict(Exception):
    """Another transaction changed an order this batch read: apply the batch again."""


class _Rollback(Exception):
    """Ends a trial transaction (`Store.rejected`) without keeping anything."""


def _lines(values: tuple[str, ...]) -> str | None:
    # arrays per row cannot travel through unnest: SKUs go as one text (bounds forbid control characters)
    return "\n".join(values) if values else None


# (seller, marketplace, bucket start) -> [orders, cancellations] a batch adds: written once per batch
_Deltas = dict[tuple[str, str, datetime], list[int]]


def _add_moves(deltas: _Deltas, key: OrderKey, was: Buckets, now: Buckets) -> bool:
    """The bucket moves of an order going from `was` to `now`, added to `deltas`; True if any."""
    moved = False
    for move in bucket_moves(was, now):
        d = deltas[(key.seller_account, key.marketplace_id, move.start)]
        d[0] += move.orders
        d[1] += move.cancellations
        moved = True
    return moved


class _InOrder:
    """Statements of one transaction, each in a task that starts when the one before it has finished:
    asyncpg runs one operation at a time on a connection, and Postgres executes it while the caller runs
    Python (the reply waits in the socket). A failed statement fails the ones after it unrun."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []

    def run(self, statement: Callable[..., Awaitable[_T]], *args: Any) -> asyncio.Task[_T]:
        previous = self._tasks[-1] if self._tasks else None

        async def after_previous() -> _T:
            if previous is not None:
                await previous
            return await statement(*args)

        task = asyncio.ensure_future(after_previous())
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        """Stop what has not run (the caller failed), and wait until the connection is free."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _BatchFold:
    """The Python half of a batch's fold: the events grouped by order, folded into the rows read, and
    what changes (rows to write, bucket moves, accounts touched, SKUs newly seller-cancelled)."""

    def __init__(
        self,
        book: PolicyBook,
        events: list[OrderEvent],
        touched: set[tuple[str, str]],
        newly_cancelled: dict[tuple[str, str], set[str]],
    ) -> None:
        # grouped by the key's fields as a tuple: hashed, compared and sorted in C (not by a dataclass
        # method call per event); sorted, they are OrderKey's order
        self.by_key: dict[tuple[str, str, str], list[OrderEvent]] = defaultdict(list)
        for event in events:
            self.by_key[_key_fields(event.key)].append(event)
        self.ids = sorted(self.by_key)
        self.book = book
        self.touched = touched
        self.newly_cancelled = newly_cancelled
        self.deltas: _Deltas = defaultdict(lambda: [0, 0])
        self._policies: dict[str, CancellationPolicy] = {}

    def keys(
        self,
        ids: Sequence[tuple[str, str, str]],
        before: dict[tuple[str, str, str], asyncpg.Record],
        updates: list[OrderRow],
        inserts: list[OrderRow],
    ) -> None:
        """Fold these orders (`before`: their stored rows), appending the rows to write."""
        for ident in ids:
            row = before.get(ident)
            group = self.by_key[ident]
            key = group[0].key
            order: Order | None = None if row is None else state_codec.decode_stored(key, row[4], row[5])
            for event in group:
                order = apply(order, event)
            assert order is not None
            policy = self._policies.get(key.marketplace_id)
            if policy is None:
                policy = self._policies[key.marketplace_id] = self.book.for_marketplace(key.marketplace_id)
            fact = state_codec.encode(order)
            if row is not None and row[4] == fact:
                continue  # nothing new (duplicates): no write
            placement = place(order, policy)
            buckets = placement.buckets
            # an order still in the buckets it was in moves nothing
            if row is None or row[6] != buckets.denominator or row[7] != buckets.numerator:
                was = NOT_COUNTED if row is None else Buckets(row[6], row[7])
                if _add_moves(self.deltas, key, was, buckets):
                    self.touched.add((key.seller_account, key.marketplace_id))
            if placement.seller_cancelled_skus:
                cancelled_before = set(row[8] or ()) if row is not None else set()
                if new := set(placement.seller_cancelled_skus) - cancelled_before:
                    self.newly_cancelled[(key.seller_account, key.marketplace_id)] |= new
            (inserts if row is None else updates).append(
                OrderRow(key, None if row is None else row[3], fact, placement)
            )


class Store:
    def __init__(
        self, pool: asyncpg.Pool, policies: PolicyBook, *, alerts: AlertOptions | None = None
    ) -> None:
        self.pool = pool
        self.policies = policies  # this process's configuration; a generation's own policy rules
        self.alerts = alerts  # None: this store raises no alerts (the API, a rebuild)
        self._books: dict[int, PolicyBook] = {}
        self._active: tuple[float, Generation] | None = None
        self._orders_have_statistics = False

    async def _fetch(self, sql: str, *args: object, timeout: float | None = None) -> list[asyncpg.Record]:
        """`timeout`: seconds the statement may run (the API passes what is left of a call's deadline)."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            return await conn.fetch(sql, *args, timeout=timeout)

    # --- generations -----------------------------------------------------------------------------

    def _book(self, generation: int, policy: Any) -> PolicyBook:
        book = self._books.get(generation)
        if book is None:
            book = self.policies if policy is None else parse_policy_overrides(json.dumps(policy))
            self._books[generation] = book
        return book

    async def adopt_policy(self) -> Generation:
        """The active generation, with this process's policy recorded on it if it has none yet. A
        generation keeps the policy it was computed with: a different configured policy is reported
        (apply it with `cancelguard rebuild`), never mixed in."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            row = await conn.fetchrow(
                "UPDATE generations SET policy = $1::jsonb WHERE state = 'active' AND policy IS NULL"
                " RETURNING generation",
                dump_policy_overrides(self.policies),
            )
            gen = await self.active_generation(refresh=True)
        if row is None and dump_policy_overrides(gen.policies) != dump_policy_overrides(self.policies):
            log.warning(
                "the configured policy differs from the one the numbers were computed with; run"
                " `cancelguard rebuild` to apply it",
                extra={"generation": gen.generation},
            )
        return gen

    async def active_generation(self, *, refresh: bool = False, max_age_s: float = 1.0) -> Generation:
        now = time.monotonic()
        if not refresh and self._active is not None and now - self._active[0] < max_age_s:
            return self._active[1]
        [row] = await self._fetch("SELECT generation, state, policy FROM generations WHERE state = 'active'")
        gen = Generation(row["generation"], row["state"], self._book(row["generation"], row["policy"]))
        self._active = (now, gen)
        return gen

    def forget_active(self) -> None:
        """Another generation became active (a notification said so): read it again on the next call."""
        self._active = None

    async def policy_book(self) -> PolicyBook:
        """The policy the served numbers follow (the active generation's)."""
        return (await self.active_generation()).policies

    async def new_generation(self, *, from_time: datetime | None) -> int:
        """A generation to rebuild into, with this store's policy. Only one builds at a time."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await conn.execute("LOCK TABLE generations IN EXCLUSIVE MODE")
            stale = await conn.fetch("SELECT generation FROM generations WHERE state = 'building'")
            if stale:  # an earlier rebuild that did not finish: its rows are cleared by retention
                await conn.execute("UPDATE generations SET state = 'retired' WHERE state = 'building'")
            generation = await conn.fetchval("SELECT max(generation) + 1 FROM generations")
            await conn.execute(
                "INSERT INTO generations (generation, state, policy, from_time) VALUES ($1, 'building',"
                " $2, $3)",
                generation,
                dump_policy_overrides(self.policies),
                from_time,
            )
        return int(generation)

    async def seed_generation(self, source: int, target: int, *, chunk: int = 5000) -> int:
        """Copy the facts (order states) of `source` into `target`, placing them with `target`'s
        policy: the start of a rebuild from a time. Returns the orders copied."""
        copied = 0
        after = ("", "", "")
        while True:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT seller_account, marketplace_id, amazon_order_id, fact, state FROM orders"
                    " WHERE generation = $1 AND (seller_account, marketplace_id, amazon_order_id) >"
                    " ($2, $3, $4)"
                    " ORDER BY seller_account, marketplace_id, amazon_order_id LIMIT $5",
                    source,
                    *after,
                    chunk,
                )
                if not rows:
                    return copied
                orders = [state_codec.decode_stored(OrderKey(r[0], r[1], r[2]), r[3], r[4]) for r in rows]
                book = await self._generation_book(conn, target)
                written = [
                    OrderRow(
                        o.key,
                        None,
                        state_codec.encode(o),
                        place(o, book.for_marketplace(o.key.marketplace_id)),
                    )
                    for o in orders
                ]
                await self._insert_orders(conn, target, written)
                deltas: _Deltas = defaultdict(lambda: [0, 0])
                for row in written:
                    _add_moves(deltas, row.key, NOT_COUNTED, row.placement.buckets)
                await self._write_buckets(conn, target, deltas)
                copied += len(rows)
                after = (rows[-1][0], rows[-1][1], rows[-1][2])

    async def _generation_book(self, conn: asyncpg.Connection, generation: int) -> PolicyBook:
        book = self._books.get(generation)
        if book is None:
            policy = await conn.fetchval("SELECT policy FROM generations WHERE generation = $1", generation)
            book = self._book(generation, policy)
        return book

    async def switch_to(self, generation: int, group: str, topic: str) -> bool:
        """Make `generation` the active one if it has applied at least what the active one has on every
        partition; False (nothing changed) if not yet. Live batches wait while the switch runs, then
        apply to the new generation from its offsets."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            active = await conn.fetchval(
                "SELECT generation FROM generations WHERE state = 'active' FOR UPDATE"
            )
            state = await conn.fetchval(
                "SELECT state FROM generations WHERE generation = $1 FOR UPDATE", generation
            )
            if state != "building":
                raise RuntimeError(f"generation {generation} is {state}, not building")
            offsets = await conn.fetch(
                "SELECT generation, partition, next_offset FROM consumer_offsets"
                " WHERE consumer_group = $1 AND topic = $2 AND generation = ANY($3::int[])",
                group,
                topic,
                [active, generation],
            )
            theirs = {r["partition"]: r["next_offset"] for r in offsets if r["generation"] == active}
            ours = {r["partition"]: r["next_offset"] for r in offsets if r["generation"] == generation}
            if behind := {p: offset for p, offset in theirs.items() if ours.get(p, -1) < offset}:
                log.info("not switching yet: the live service has applied more", extra={"partitions": behind})
                return False
            await conn.execute("UPDATE generations SET state = 'retired' WHERE generation = $1", active)
            await conn.execute(
                "UPDATE generations SET state = 'active', switched_at = now() WHERE generation = $1",
                generation,
            )
        self._active = None
        return True

    async def offsets_of(self, generation: int, group: str, topic: str) -> dict[int, int]:
        rows = await self._fetch(
            "SELECT partition, next_offset FROM consumer_offsets"
            " WHERE generation = $1 AND consumer_group = $2 AND topic = $3",
            generation,
            group,
            topic,
        )
        return {r["partition"]: r["next_offset"] for r in rows}

    # --- metrics service: writes -----------------------------------------------------------------

    async def load_offsets(self, group: str, topic: str) -> dict[int, int]:
        rows = await self._fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2"
            f" AND generation = {_ACTIVE}",
            group,
            topic,
        )
        return {r["partition"]: r["next_offset"] for r in rows}

    async def apply_batch(
        self,
        group: str,
        batches: Sequence[PartitionBatch],
        *,
        generation: int | None = None,
        now: datetime | None = None,
    ) -> BatchResult:
        """Apply the batch exactly once to `generation` (default: the active one)."""
        if not batches:
            return BatchResult(0, 0, 0, 0)
        for _ in range(_CONFLICT_RETRIES):
            try:
                async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                    async with conn.transaction():
                        result = await self._apply(conn, group, batches, generation, now)
                    if result.orders_written and not self._orders_have_statistics:
                        await self._gather_statistics(conn)
                    return result
            except _Conflict:
                continue  # rolled back: read again what the other batch committed
        raise RuntimeError(f"a batch lost {_CONFLICT_RETRIES} races in a row for the same orders")

    async def _gather_statistics(self, conn: asyncpg.Connection) -> None:
        """ANALYZE the orders table once if it has never been. Without statistics Postgres takes an
        account's orders to be few, and finds a batch's orders through the purchase-time index, each key
        a scan of its whole account (38 s per batch at 100,000 orders of one account); autovacuum first
        looks a minute after the start, when a backfill may be far along. Once it has statistics the
        order id is known to be unique, and stays so as the table grows."""
        self._orders_have_statistics = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_stats WHERE schemaname = current_schema()"
            " AND tablename = 'orders' AND attname = 'amazon_order_id')"
        )
        if not self._orders_have_statistics:
            await conn.execute("ANALYZE orders")
            self._orders_have_statistics = True

    async def _apply(
        self,
        conn: asyncpg.Connection,
        group: str,
        batches: Sequence[PartitionBatch],
        generation: int | None,
        now: datetime | None,
    ) -> BatchResult:
        topic = batches[0].topic
        partitions = [b.partition for b in batches]
        await conn.execute(KEY_LOOKUPS)
        # The generation first, shared: a switch (which takes it exclusively) waits for this batch, and
        # the next batch sees the new one.
        if generation is None:
            gen = await conn.fetchrow(
                "SELECT generation, state, policy FROM generations WHERE state = 'active' FOR SHARE"
            )
        else:
            gen = await conn.fetchrow(
                "SELECT generation, state, policy FROM generations WHERE generation = $1 FOR SHARE",
                generation,
            )
        if gen is None:
            raise RuntimeError(f"no generation {generation if generation is not None else '(active)'}")
        g = gen["generation"]
        book = self._book(g, gen["policy"])
        # Make sure every partition has an offset row, then lock the rows: a second instance still
        # holding these partitions after a rebalance waits here, then sees our offsets and skips.
        # (Locking alone would not fence a partition's first batch: there is no row to lock yet.)
        await conn.execute(
            "INSERT INTO consumer_offsets (generation, consumer_group, topic, partition, next_offset)"
            " SELECT $1, $2, $3, p, 0 FROM unnest($4::int[]) AS p ON CONFLICT DO NOTHING",
            g,
            group,
            topic,
            partitions,
        )
        stored = {
            r["partition"]: r["next_offset"]
            for r in await conn.fetch(
                "SELECT partition, next_offset FROM consumer_offsets"
                " WHERE generation = $1 AND consumer_group = $2 AND topic = $3 AND partition = ANY($4::int[])"
                " ORDER BY partition FOR UPDATE",
                g,
                group,
                topic,
                partitions,
            )
        }
        events: list[OrderEvent] = []
        reports: list[AccountEvent] = []
        skipped = 0
        applied: dict[int, int] = {}
        for b in batches:
            start = stored.get(b.partition, 0)
            fresh = [r for r in b.records if r[0] >= start]
            skipped += len(b.records) - len(fresh)
            if fresh:
                applied[b.partition] = applied.get(b.partition, 0) + len(fresh)
            for _, event in fresh:
                if isinstance(event, OrderEvent):
                    events.append(event)
                elif isinstance(event, AccountEvent):
                    reports.append(event)

        orders_written = buckets_written = alerts = 0
        touched: set[tuple[str, str]] = set()
        newly_cancelled: dict[tuple[str, str], set[str]] = defaultdict(set)
        if events:
            orders_written, buckets_written = await self._fold(
                conn, g, book, events, touched, newly_cancelled
            )
        if reports:
            await self._store_reports(conn, reports)
            touched |= {(r.key.seller_account, r.key.marketplace_id) for r in reports}
        if self.alerts is not None and gen["state"] == "active" and (touched or newly_cancelled):
            alerts = await self._raise_alerts(conn, g, book, touched, newly_cancelled, now)

        await conn.executemany(
            "UPDATE consumer_offsets SET next_offset = GREATEST(next_offset, $5),"
            " applied_records = applied_records + $6, updated_at = now()"
            " WHERE generation = $1 AND consumer_group = $2 AND topic = $3 AND partition = $4",
            [(g, group, topic, b.partition, b.next_offset, applied.get(b.partition, 0)) for b in batches],
        )
        return BatchResult(len(events) + len(reports), skipped, orders_written, buckets_written, alerts)

    async def _fold(
        self,
        conn: asyncpg.Connection,
        generation: int,
        book: PolicyBook,
        events: list[OrderEvent],
        touched: set[tuple[str, str]],
        newly_cancelled: dict[tuple[str, str], set[str]],
    ) -> tuple[int, int]:
        """Fold the events into their orders, a chunk of keys at a time, in key order. Python and
        Postgres work side by side in the batch's one transaction: while Python folds chunk k, Postgres
        writes chunk k-1 and reads chunk k+1 (`_InOrder`). The keys of the chunks are disjoint, so a
        read ahead of a write sees nothing the write changes."""
        fold = _BatchFold(book, events, touched, newly_cancelled)
        chunks = [fold.ids[i : i + _FOLD_CHUNK] for i in range(0, len(fold.ids), _FOLD_CHUNK)]
        statements = _InOrder()
        try:
            reads = [statements.run(conn.fetch, FOLD_READ, generation, *zip(*chunks[0], strict=True))]
            written = 0
            for n, chunk in enumerate(chunks):
                if n + 1 < len(chunks):
                    ahead = chunks[n + 1]
                    reads.append(statements.run(conn.fetch, FOLD_READ, generation, *zip(*ahead, strict=True)))
                before = {(r[0], r[1], r[2]): r for r in await reads[n]}
                updates: list[OrderRow] = []
                inserts: list[OrderRow] = []
                for start in range(0, len(chunk), _FOLD_SLICE):
                    fold.keys(chunk[start : start + _FOLD_SLICE], before, updates, inserts)
                    await asyncio.sleep(0)  # the statement in flight gets its reply, the next one goes
                if updates:
                    statements.run(self._update_orders, conn, generation, updates)
                if inserts:
                    statements.run(self._insert_orders, conn, generation, inserts)
                written += len(updates) + len(inserts)
            # each bucket once per batch, after every chunk
            buckets = await statements.run(self._write_buckets, conn, generation, fold.deltas)
        finally:
            await statements.close()
        return written, buckets

    @staticmethod
    def _order_columns(rows: Sequence[OrderRow]) -> list[Sequence[Any]]:
        table = []
        for r in rows:
            p = r.placement
            request = p.open_request
            table.append(
                (
                    r.key.seller_account,
                    r.key.marketplace_id,
                    r.key.amazon_order_id,
                    r.fact,
                    request.kind.value if request else None,
                    request.requested_at if request else None,
                    p.buckets.denominator,
                    p.buckets.numerator,
                    _lines(p.skus),
                    _lines(p.seller_cancelled_skus),
                    p.purchased_at,
                )
            )
        return list(zip(*table, strict=True)) if table else [() for _ in range(11)]  # rows -> columns, in C

    async def _update_orders(self, conn: asyncpg.Connection, generation: int, rows: list[OrderRow]) -> None:
        updated = await conn.fetchval(
            FOLD_UPDATE,
            generation,
            *self._order_columns(rows),
            [r.version for r in rows],
        )
        if updated != len(rows):
            raise _Conflict

    async def _insert_orders(self, conn: asyncpg.Connection, generation: int, rows: list[OrderRow]) -> None:
        inserted = await conn.fetchval(
            "WITH i AS (INSERT INTO orders (generation, seller_account, marketplace_id, amazon_order_id,"
            " fact, open_request, request_at, denominator_bucket, numerator_bucket, skus,"
            " seller_cancelled_skus, purchased_at)"
            " SELECT $1, k.s, k.m, k.i, k.fact, k.open_request, k.request_at, k.den, k.num,"
            f" {_SKUS}, {_CANCELLED_SKUS}, k.purchased_at FROM {_ORDER_ROWS}) AS k({_ORDER_ROW_NAMES})"
            " ORDER BY k.s, k.m, k.i ON CONFLICT DO NOTHING RETURNING 1)"
            " SELECT count(*) FROM i",
            generation,
            *self._order_columns(rows),
        )
        if inserted != len(rows):
            raise _Conflict  # another batch inserted one of these orders first

    async def _write_buckets(self, conn: asyncpg.Connection, generation: int, deltas: _Deltas) -> int:
        changed = sorted((s, m, b, d[0], d[1]) for (s, m, b), d in deltas.items() if d != [0, 0])
        if changed:
            await conn.execute(
                "INSERT INTO cr_buckets (generation, seller_account, marketplace_id, bucket_start, orders,"
                " cancellations)"
                " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::int[])"
                " ON CONFLICT (generation, seller_account, marketplace_id, bucket_start) DO UPDATE SET"
                " orders = cr_buckets.orders + EXCLUDED.orders,"
                " cancellations = cr_buckets.cancellations + EXCLUDED.cancellations",
                generation,
                *[list(column) for column in zip(*changed, strict=True)],
            )
        return len(changed)

    async def _store_reports(self, conn: asyncpg.Connection, reports: list[AccountEvent]) -> None:
        """Amazon's reported figures: per window, the latest report wins (a replay changes nothing)."""
        latest: dict[tuple[str, str, datetime, datetime], AccountEvent] = {}
        for r in reports:
            body: AmazonReportedRate = r.body
            key = (r.key.seller_account, r.key.marketplace_id, body.window_from, _window_end(body))
            if key not in latest or (latest[key].occurred_at, latest[key].event_id) < (
                r.occurred_at,
                r.event_id,
            ):
                latest[key] = r
        rows = sorted(
            (
                *key,
                r.body.order_count,
                r.body.cancellation_count,
                r.body.rate,
                r.body.status.value,
                r.occurred_at,
                r.event_id,
            )
            for key, r in latest.items()
        )
        await conn.executemany(
            "INSERT INTO amazon_rates (seller_account, marketplace_id, window_start, window_end, orders,"
            " cancellations, rate, status, reported_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7,"
            " $8, $9, $10)"
            " ON CONFLICT (seller_account, marketplace_id, window_start, window_end) DO UPDATE SET"
            " orders = EXCLUDED.orders, cancellations = EXCLUDED.cancellations, rate = EXCLUDED.rate,"
            " status = EXCLUDED.status, reported_at = EXCLUDED.reported_at, event_id = EXCLUDED.event_id"
            " WHERE (amazon_rates.reported_at, amazon_rates.event_id) < (EXCLUDED.reported_at,"
            " EXCLUDED.event_id)",
            rows,
        )

    async def rejected(self, events: Sequence[Event]) -> list[tuple[Event, Exception]]:
        """The events Postgres refuses when each is applied alone, with the error; nothing is kept.

        Called only after a batch failed on its data (`db.is_record_error`), to find the poison record
        among the good ones; a failure that is not the record's fault is raised."""
        refused: list[tuple[Event, Exception]] = []
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            gen = await self.active_generation(refresh=True)
            for event in events:
                try:
                    async with conn.transaction():
                        if isinstance(event, OrderEvent):
                            await self._fold(
                                conn, gen.generation, gen.policies, [event], set(), defaultdict(set)
                            )
                        else:
                            await self._store_reports(conn, [event])
                        raise _Rollback
                except (_Rollback, _Conflict):
                    pass
                except Exception as exc:
                    if not is_record_error(exc):
                        raise
                    refused.append((event, exc))
        return refused

    # --- alerts ------------------------------------------------------------------------------------

    async def _raise_alerts(
        self,
        conn: asyncpg.Connection,
        generation: int,
        book: PolicyBook,
        accounts: Iterable[tuple[str, str]],
        newly_cancelled: dict[tuple[str, str], set[str]],
        now: datetime | None,
    ) -> int:
        assert self.alerts is not None
        at = now or await conn.fetchval("SELECT now()")
        outbox: list[tuple[str, str, bytes]] = []
        accounts = sorted(set(accounts))
        if accounts:
            outbox += await self._rate_alerts(conn, generation, book, accounts, at)
            outbox += await self._difference_alerts(conn, generation, accounts, at)
        if newly_cancelled:
            outbox += await self._suppression_alerts(conn, generation, book, newly_cancelled, at)
        if not outbox:
            return 0
        await conn.execute(
            "INSERT INTO alert_outbox (alert_id, partition_key, payload)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) ON CONFLICT (alert_id) DO NOTHING",
            *[list(c) for c in zip(*outbox, strict=True)],
        )
        return len(outbox)

    async def _levels(
        self, conn: asyncpg.Connection, subjects: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], rules.AlertState]:
        """The alert state of these subjects, locked in key order (a sweep and a batch may meet)."""
        subjects = sorted(subjects)
        rows = await conn.fetch(
            "SELECT l.seller_account, l.marketplace_id, l.window_name, l.status, l.seq, l.pending_status,"
            " l.pending_since FROM alert_levels l JOIN unnest($1::text[], $2::text[], $3::text[]) AS"
            " k(s, m, w)"
            " ON l.seller_account = k.s AND l.marketplace_id = k.m AND l.window_name = k.w"
            " ORDER BY 1, 2, 3 FOR UPDATE OF l",
            *[list(c) for c in zip(*subjects, strict=True)],
        )
        return {(r[0], r[1], r[2]): rules.AlertState(r[3], r[4], r[5], r[6]) for r in rows}

    async def _save_levels(
        self, conn: asyncpg.Connection, changed: list[tuple[tuple[str, str, str], rules.AlertState]]
    ) -> None:
        if not changed:
            return
        await conn.executemany(
            "INSERT INTO alert_levels (seller_account, marketplace_id, window_name, status, seq,"
            " pending_status, pending_since) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (seller_account, marketplace_id, window_name) DO UPDATE SET status ="
            " EXCLUDED.status,"
            " seq = EXCLUDED.seq, pending_status = EXCLUDED.pending_status, pending_since ="
            " EXCLUDED.pending_since",
            sorted((*k, s.status, s.seq, s.pending_status, s.pending_since) for k, s in changed),
        )

    async def _rate_alerts(
        self,
        conn: asyncpg.Connection,
        generation: int,
        book: PolicyBook,
        accounts: list[tuple[str, str]],
        now: datetime,
    ) -> list[tuple[str, str, bytes]]:
        assert self.alerts is not None
        watched = {}
        for seller, mkt in accounts:
            policy = book.for_marketplace(mkt)
            for w in rules.watched_windows(policy, now):
                watched[(seller, mkt, w.name)] = (w, policy)
        subjects = sorted(watched)
        totals = await self._window_totals(conn, generation, accounts, watched)
        states = await self._levels(conn, subjects)
        changed = []
        outbox = []
        for subject in subjects:
            w, policy = watched[subject]
            orders, cancellations = totals.get(subject, (0, 0))
            observed = rate_status(cancellations, orders, policy).value
            state = states.get(subject, rules.AlertState("GOOD", 0))
            settled = rules.settle(state, observed, now, self.alerts.grace)
            if settled.state != state:
                changed.append((subject, settled.state))
            if settled.alerted_from is None:
                continue
            seller, mkt, name = subject
            for level, direction in rules.crossings(RateStatus(settled.alerted_from), RateStatus(observed)):
                alert_id = rules.alert_id(
                    seller, mkt, name, settled.state.seq, f"{level.value}_{direction.value}"
                )
                payload = alert_messages.rate_crossing(
                    alert_id, seller, mkt, now, w, level, direction, cancellations, orders, policy
                )
                outbox.append((alert_id, f"{seller}|{mkt}", payload))
        await self._save_levels(conn, changed)
        return outbox

    @staticmethod
    async def _window_totals(
        conn: asyncpg.Connection,
        generation: int,
        accounts: list[tuple[str, str]],
        watched: dict[tuple[str, str, str], tuple[rules.Watched, CancellationPolicy]],
    ) -> dict[tuple[str, str, str], tuple[int, int]]:
        """(orders, cancellations) of each watched window. An account's windows overlap (the live week,
        Amazon's 7 and 30 days): its buckets are read once, over the span of its windows, and summed per
        window, instead of a range scan per window (a third to a half fewer bucket rows). Measured: the
        largest statement of a batch, 230-310 ms -> 130 ms per batch of 10,000 events for 150 accounts.
        One statement per number of windows an account has."""
        of_account: dict[tuple[str, str], list[rules.Watched]] = defaultdict(list)
        for (seller, mkt, _), (w, _) in watched.items():
            of_account[(seller, mkt)].append(w)
        by_count: dict[int, list[tuple[str, str, list[rules.Watched]]]] = defaultdict(list)
        for seller, mkt in accounts:
            windows = of_account[(seller, mkt)]
            by_count[len(windows)].append((seller, mkt, windows))
        totals: dict[tuple[str, str, str], tuple[int, int]] = {}
        for count, group in by_count.items():
            bounds = ", ".join(
                f"${6 + 2 * i}::timestamptz[], ${7 + 2 * i}::timestamptz[]" for i in range(count)
            )
            names = ", ".join(f"lo{i}, hi{i}" for i in range(count))
            sums = ", ".join(
                f"COALESCE(sum(b.{column}) FILTER (WHERE b.bucket_start >= k.lo{i}"
                f" AND b.bucket_start < k.hi{i}), 0)"
                for i in range(count)
                for column in ("orders", "cancellations")
            )
            rows = await conn.fetch(
                f"SELECT k.s, k.m, {sums} FROM unnest($2::text[], $3::text[], $4::timestamptz[],"
                f" $5::timestamptz[], {bounds}) AS k(s, m, lo, hi, {names})"
                " LEFT JOIN cr_buckets b ON b.generation = $1 AND b.seller_account = k.s"
                " AND b.marketplace_id = k.m AND b.bucket_start >= k.lo AND b.bucket_start < k.hi"
                f" GROUP BY k.s, k.m, k.lo, k.hi, {', '.join(f'k.lo{i}, k.hi{i}' for i in range(count))}",
                generation,
                [a[0] for a in group],
                [a[1] for a in group],
                [min(w.window.start for w in a[2]) for a in group],
                [max(w.window.end for w in a[2]) for a in group],
                *[
                    [getattr(a[2][i].window, end) for a in group]
                    for i in range(count)
                    for end in ("start", "end")
                ],
            )
            found = {(r[0], r[1]): r for r in rows}
            for seller, mkt, windows in group:
                r = found[(seller, mkt)]
                for n, w in enumerate(windows):
                    totals[(seller, mkt, w.name)] = (int(r[2 + 2 * n]), int(r[3 + 2 * n]))
        return totals

    async def _difference_alerts(
        self, conn: asyncpg.Connection, generation: int, accounts: list[tuple[str, str]], now: datetime
    ) -> list[tuple[str, str, bytes]]:
        """Our figure vs Amazon's for every window Amazon reported in the last 60 days."""
        assert self.alerts is not None
        figures = await self._amazon_figures(conn, generation, accounts, now - timedelta(days=60))
        if not figures:
            return []
        subjects = {
            (s, m, f"AMAZON_DIFFERENCE {f.window_start:%Y-%m-%d}..{f.window_end:%Y-%m-%d}"): f
            for s, m, f in figures
        }
        states = await self._levels(conn, list(subjects))
        changed = []
        outbox = []
        for subject, f in sorted(subjects.items(), key=lambda kv: kv[0]):
            diverged = rules.diverges(
                f.our_cancellations, f.our_orders, f.amazon_rate, self.alerts.amazon_tolerance
            )
            observed = rules.DIVERGED if diverged else rules.WITHIN
            state = states.get(subject, rules.AlertState(rules.WITHIN, 0))
            settled = rules.settle(state, observed, now, self.alerts.grace)
            if settled.state != state:
                changed.append((subject, settled.state))
            if settled.alerted_from is None:
                continue
            seller, mkt, name = subject
            direction = rules.Direction.UP if diverged else rules.Direction.DOWN
            alert_id = rules.alert_id(seller, mkt, name, settled.state.seq, direction.value)
            payload = alert_messages.amazon_difference(
                alert_id, seller, mkt, now, f, self.alerts.amazon_tolerance, direction
            )
            outbox.append((alert_id, f"{seller}|{mkt}", payload))
        await self._save_levels(conn, changed)
        return outbox

    async def _suppression_alerts(
        self,
        conn: asyncpg.Connection,
        generation: int,
        book: PolicyBook,
        newly_cancelled: dict[tuple[str, str], set[str]],
        now: datetime,
    ) -> list[tuple[str, str, bytes]]:
        outbox = []
        for (seller, mkt), skus in sorted(newly_cancelled.items()):
            policy = book.for_marketplace(mkt)
            risks = await self._suppression(
                conn,
                generation,
                seller,
                mkt,
                now - timedelta(days=policy.suppression_days),
                now,
                sorted(skus),
            )
            if not risks:
                continue
            fresh = await conn.fetch(
                "INSERT INTO suppression_alerts (seller_account, marketplace_id, seller_sku, first_order,"
                " second_order) SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[])"
                " ON CONFLICT DO NOTHING RETURNING seller_sku, first_order, second_order",
                seller,
                mkt,
                [r[0] for r in risks],
                [r[1] for r in risks],
                [r[2] for r in risks],
            )
            for sku, first, second in sorted((r[0], r[1], r[2]) for r in fresh):
                alert_id = rules.alert_id(seller, mkt, f"SUPPRESSION {sku}", 1, f"{first}+{second}")
                outbox.append(
                    (
                        alert_id,
                        f"{seller}|{mkt}",
                        alert_messages.suppression_risk(alert_id, seller, mkt, now, sku, first, second),
                    )
                )
        return outbox

    async def sweep_alerts(self, now: datetime | None = None) -> int:
        """Alerts no batch raises: windows that move with time (an hour, a day passes), and statuses
        whose grace period has run out. Returns the alerts raised."""
        if self.alerts is None:
            return 0
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            gen = await conn.fetchrow(
                "SELECT generation, policy FROM generations WHERE state = 'active' FOR SHARE"
            )
            at = now or await conn.fetchval("SELECT now()")
            accounts = [
                (r[0], r[1])
                for r in await conn.fetch(
                    "SELECT seller_account, marketplace_id FROM alert_levels"
                    " UNION SELECT seller_account, marketplace_id FROM cr_buckets"
                    " WHERE generation = $1 AND bucket_start >= $2",
                    gen["generation"],
                    at - timedelta(days=40),
                )
            ]
            if not accounts:
                return 0
            return await self._raise_alerts(
                conn, gen["generation"], self._book(gen["generation"], gen["policy"]), accounts, {}, at
            )

    # --- the outbox --------------------------------------------------------------------------------

    async def unsent_alerts(self, conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT id, alert_id, partition_key, payload, attempts, created_at FROM alert_outbox"
            " WHERE sent_at IS NULL ORDER BY id LIMIT $1",
            limit,
        )

    @staticmethod
    async def note_attempt(conn: asyncpg.Connection, ids: list[int]) -> None:
        await conn.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1 WHERE id = ANY($1::bigint[])", ids
        )

    @staticmethod
    async def mark_sent(conn: asyncpg.Connection, ids: list[int]) -> None:
        await conn.execute(
            "UPDATE alert_outbox SET sent_at = now() WHERE id = ANY($1::bigint[]) AND sent_at IS NULL", ids
        )

    # --- housekeeping ------------------------------------------------------------------------------

    async def delete_expired(self, before: datetime, *, chunk: int = 5000) -> dict[str, int]:
        """Delete facts and buckets older than `before`, and every row of retired generations, in chunks
        of `chunk` rows, each in its own short transaction (no long lock). Returns rows deleted."""
        deleted: dict[str, int] = defaultdict(int)
        statements = {
            "orders": "DELETE FROM orders WHERE ctid = ANY(ARRAY(SELECT ctid FROM orders WHERE"
            " generation IN (SELECT generation FROM generations WHERE state = 'retired') OR purchased_at < $1"
            " OR (purchased_at IS NULL AND changed_at < $1) LIMIT $2))",  # never dated by Amazon: by change
            "cr_buckets": "DELETE FROM cr_buckets WHERE ctid = ANY(ARRAY(SELECT ctid FROM cr_buckets WHERE"
            " generation IN (SELECT generation FROM generations WHERE state = 'retired') OR bucket_start < $1"
            " LIMIT $2))",
            "consumer_offsets": "DELETE FROM consumer_offsets WHERE ctid = ANY(ARRAY(SELECT ctid FROM"
            " consumer_offsets WHERE generation IN (SELECT generation FROM generations WHERE state ="
            " 'retired')"
            " AND $1::timestamptz IS NOT NULL LIMIT $2))",
            "amazon_rates": "DELETE FROM amazon_rates WHERE ctid = ANY(ARRAY(SELECT ctid FROM amazon_rates"
            " WHERE window_end < $1 LIMIT $2))",
            "alert_outbox": "DELETE FROM alert_outbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM alert_outbox"
            " WHERE sent_at < $1 LIMIT $2))",
        }
        for table, sql in statements.items():
            while True:
                async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                    status = await conn.execute(sql, before, chunk)
                n = int(status.split()[-1])
                deleted[table] += n
                if n < chunk:
                    break
        return dict(deleted)

    # --- API: reads (always the active generation) -------------------------------------------------

    async def get_order(self, key: OrderKey) -> Order | None:
        found = await self.get_orders(key.seller_account, key.marketplace_id, [key.amazon_order_id])
        return found.get(key.amazon_order_id)

    async def bucket_totals(
        self,
        seller_account: str,
        marketplace_id: str,
        start: datetime,
        end: datetime,
        *,
        timeout: float | None = None,
    ) -> tuple[int, int]:
        """(orders, cancellations) summed over the hour buckets in [start, end)."""
        [row] = await self._fetch(
            "SELECT COALESCE(SUM(orders), 0) AS orders, COALESCE(SUM(cancellations), 0) AS cancellations"
            f" FROM cr_buckets WHERE generation = {_ACTIVE} AND seller_account = $1 AND marketplace_id = $2"
            " AND bucket_start >= $3 AND bucket_start < $4",
            seller_account,
            marketplace_id,
            start,
            end,
            timeout=timeout,
        )
        return int(row["orders"]), int(row["cancellations"])

    async def buckets(
        self, seller_account: str, marketplace_id: str, start: datetime, end: datetime
    ) -> list[Bucket]:
        rows = await self._fetch(
            f"SELECT bucket_start, orders, cancellations FROM cr_buckets WHERE generation = {_ACTIVE}"
            " AND seller_account = $1 AND marketplace_id = $2 AND bucket_start >= $3 AND bucket_start < $4"
            " ORDER BY bucket_start",
            seller_account,
            marketplace_id,
            start,
            end,
        )
        return [Bucket(r[0], r[1], r[2]) for r in rows]

    async def get_orders(
        self, seller_account: str, marketplace_id: str, order_ids: Sequence[str]
    ) -> dict[str, Order]:
        rows = await self._fetch(
            f"SELECT amazon_order_id, fact, state FROM orders WHERE generation = {_ACTIVE}"
            " AND seller_account = $1 AND marketplace_id = $2 AND amazon_order_id = ANY($3::text[])",
            seller_account,
            marketplace_id,
            list(order_ids),
        )
        return {
            r[0]: state_codec.decode_stored(OrderKey(seller_account, marketplace_id, r[0]), r[1], r[2])
            for r in rows
        }

    async def counted_cancellations(
        self, seller_account: str, marketplace_id: str, start: datetime, end: datetime
    ) -> list[CountedCancellation]:
        """The orders in the CR numerator whose bucket lies in [start, end)."""
        rows = await self._fetch(
            f"SELECT amazon_order_id, numerator_bucket FROM orders WHERE generation = {_ACTIVE}"
            " AND seller_account = $1 AND marketplace_id = $2 AND numerator_bucket >= $3"
            " AND numerator_bucket < $4 ORDER BY numerator_bucket, amazon_order_id",
            seller_account,
            marketplace_id,
            start,
            end,
        )
        return [CountedCancellation(r[0], r[1]) for r in rows]

    async def suppression_risks(
        self, seller_account: str, marketplace_id: str, as_of: datetime, days: int
    ) -> list[SuppressionRisk]:
        """SKUs whose two consecutive orders of the last `days` days were both seller-cancelled, worked
        out in Postgres from the SKUs each order row carries (`domain.placement`)."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            generation = await conn.fetchval(f"SELECT {_ACTIVE}")
            found = await self._suppression(
                conn, generation, seller_account, marketplace_id, as_of - timedelta(days=days), as_of, None
            )
        return [
            SuppressionRisk(sku, (a, b), (ta, tb), suppression_explanation(sku, a, b, days))
            for sku, a, b, ta, tb in found
        ]

    @staticmethod
    async def _suppression(
        conn: asyncpg.Connection,
        generation: int,
        seller_account: str,
        marketplace_id: str,
        since: datetime,
        until: datetime,
        skus: list[str] | None,
    ) -> list[tuple[str, str, str, datetime, datetime]]:
        """(sku, first order, second order, their purchase times): the first such pair per SKU."""
        rows = await conn.fetch(
            "WITH per_order AS ("
            "  SELECT sku, amazon_order_id, purchased_at, sku = ANY(COALESCE(seller_cancelled_skus,"
            " '{}')) AS c"
            "  FROM orders, unnest(skus) AS sku"
            "  WHERE generation = $1 AND seller_account = $2 AND marketplace_id = $3"
            "  AND purchased_at >= $4 AND purchased_at <= $5 AND skus IS NOT NULL"
            "  AND ($6::text[] IS NULL OR sku = ANY($6::text[]))),"
            " paired AS ("
            "  SELECT sku, amazon_order_id, purchased_at, c,"
            "  lag(c) OVER w AS prev_c, lag(amazon_order_id) OVER w AS prev_id, lag(purchased_at) OVER"
            " w AS prev_at"
            "  FROM per_order WINDOW w AS (PARTITION BY sku ORDER BY purchased_at, amazon_order_id))"
            " SELECT DISTINCT ON (sku) sku, prev_id, amazon_order_id, prev_at, purchased_at FROM paired"
            " WHERE c AND prev_c ORDER BY sku, purchased_at, amazon_order_id",
            generation,
            seller_account,
            marketplace_id,
            since,
            until,
            skus,
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def amazon_figures(
        self, seller_account: str, marketplace_id: str, since: datetime
    ) -> list[AmazonFigure]:
        """Amazon's reported figures for windows ending after `since`, each beside ours, newest first."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            generation = await conn.fetchval(f"SELECT {_ACTIVE}")
            found = await self._amazon_figures(conn, generation, [(seller_account, marketplace_id)], since)
        return sorted((f for _, _, f in found), key=lambda f: f.window_start, reverse=True)

    @staticmethod
    async def _amazon_figures(
        conn: asyncpg.Connection, generation: int, accounts: list[tuple[str, str]], since: datetime
    ) -> list[tuple[str, str, AmazonFigure]]:
        rows = await conn.fetch(
            "SELECT a.seller_account, a.marketplace_id, a.window_start, a.window_end, a.orders,"
            " a.cancellations,"
            " a.rate, a.status, a.reported_at,"
            " (SELECT COALESCE(sum(b.orders), 0) FROM cr_buckets b WHERE b.generation = $1"
            "  AND b.seller_account = a.seller_account AND b.marketplace_id = a.marketplace_id"
            "  AND b.bucket_start >= a.window_start AND b.bucket_start < a.window_end),"
            " (SELECT COALESCE(sum(b.cancellations), 0) FROM cr_buckets b WHERE b.generation = $1"
            "  AND b.seller_account = a.seller_account AND b.marketplace_id = a.marketplace_id"
            "  AND b.bucket_start >= a.window_start AND b.bucket_start < a.window_end)"
            " FROM amazon_rates a JOIN unnest($2::text[], $3::text[]) AS k(s, m)"
            " ON a.seller_account = k.s AND a.marketplace_id = k.m WHERE a.window_end >= $4",
            generation,
            [a[0] for a in accounts],
            [a[1] for a in accounts],
            since,
        )
        return [
            (r[0], r[1], AmazonFigure(r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9]), int(r[10])))
            for r in rows
        ]


def _window_end(body: AmazonReportedRate) -> datetime:
    """Amazon writes a window's end as its last minute (23:59Z); ours are exclusive."""
    return body.window_to.replace(second=0, microsecond=0) + timedelta(minutes=1)


# --- API reads (issue 9) ------------------------------------------------------------------------------
# Read-only queries of the API over the tables above. `request_answers` is the API's own table
# (migration 0005), joined in here so that an order is read in one round trip.


@dataclass(frozen=True, slots=True)
class ListedOrder:
    """An order as a list query returns it: its sort time, and its state when asked for."""

    amazon_order_id: str
    at: datetime  # request_at (open requests) or purchased_at (the others)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order: Order
    answered_at: datetime | None
    answered_by: str


@dataclass(frozen=True, slots=True)
class After:
    """A keyset position inside one marketplace's list: rows strictly after it in the list's order.
    `at` None: from the start. `ties` False: nothing more at `at` itself. `order_id` None: every order at
    `at` (another marketplace's position lies between them)."""

    at: datetime | None = None
    ties: bool = True
    order_id: str | None = None


class ApiReads:
    """The API's read model over the metrics service's tables. `timeout` (seconds) is what is left of
    the call's deadline: the statement is cancelled on the server when it runs out."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def accounts(self, sellers: Sequence[str], *, timeout: float | None) -> list[tuple[str, str]]:
        """The (seller account, marketplace) pairs that have any CR bucket, of these sellers."""
        rows = await self.store._fetch(
            "SELECT DISTINCT seller_account, marketplace_id FROM cr_buckets"
            f" WHERE generation = {_ACTIVE} AND seller_account = ANY($1::text[]) ORDER BY 1, 2",
            list(sellers),
            timeout=timeout,
        )
        return [(r[0], r[1]) for r in rows]

    async def records(
        self, seller: str, marketplace_id: str, order_ids: Sequence[str], *, timeout: float | None
    ) -> dict[str, OrderRecord]:
        rows = await self.store._fetch(
            "SELECT o.amazon_order_id, o.fact, o.state, a.answered_at, a.answered_by FROM orders o"
            " LEFT JOIN request_answers a ON a.seller_account = o.seller_account"
            " AND a.marketplace_id = o.marketplace_id AND a.amazon_order_id = o.amazon_order_id"
            f" WHERE o.generation = {_ACTIVE} AND o.seller_account = $1 AND o.marketplace_id = $2"
            " AND o.amazon_order_id = ANY($3::text[])",
            seller,
            marketplace_id,
            list(order_ids),
            timeout=timeout,
        )
        return {
            r[0]: OrderRecord(
                state_codec.decode_stored(OrderKey(seller, marketplace_id, r[0]), r[1], r[2]),
                r[3],
                r[4] or "",
            )
            for r in rows
        }

    async def amazon_rate(
        self, seller: str, marketplace_id: str, start: datetime, end: datetime, *, timeout: float | None
    ) -> tuple[int, int, Decimal, str, datetime] | None:
        """Amazon's reported (orders, cancellations, rate, status, reported_at) for exactly this window."""
        rows = await self.store._fetch(
            "SELECT orders, cancellations, rate, status, reported_at FROM amazon_rates"
            " WHERE seller_account = $1 AND marketplace_id = $2 AND window_start = $3 AND window_end = $4",
            seller,
            marketplace_id,
            start,
            end,
            timeout=timeout,
        )
        return (rows[0][0], rows[0][1], rows[0][2], rows[0][3], rows[0][4]) if rows else None

    async def open_requests(
        self,
        seller: str,
        marketplace_id: str,
        after: After,
        limit: int,
        *,
        purchased: tuple[datetime | None, datetime | None] = (None, None),
        timeout: float | None,
    ) -> list[ListedOrder]:
        """Orders with an open request, oldest request first (index orders_open_requests)."""
        return await self._listed(
            f"SELECT amazon_order_id, request_at FROM orders WHERE generation = {_ACTIVE}"
            " AND seller_account = $1 AND marketplace_id = $2"
            " AND open_request IS NOT NULL",
            ("request_at", ">", "ORDER BY request_at, amazon_order_id"),
            seller,
            marketplace_id,
            after,
            limit,
            purchased,
            timeout,
        )

    async def other_orders(
        self,
        seller: str,
        marketplace_id: str,
        after: After,
        limit: int,
        *,
        purchased: tuple[datetime | None, datetime | None] = (None, None),
        timeout: float | None,
    ) -> list[ListedOrder]:
        """Orders without an open request, latest purchase first (index orders_purchased). Orders not
        seen from Amazon yet (no purchase time) are not listed."""
        return await self._listed(
            f"SELECT amazon_order_id, purchased_at FROM orders WHERE generation = {_ACTIVE}"
            " AND seller_account = $1"
            " AND marketplace_id = $2 AND open_request IS NULL AND purchased_at IS NOT NULL",
            ("purchased_at", "<", "ORDER BY purchased_at DESC, amazon_order_id DESC"),
            seller,
            marketplace_id,
            after,
            limit,
            purchased,
            timeout,
        )

    async def _listed(
        self,
        select: str,
        order: tuple[str, str, str],
        seller: str,
        marketplace_id: str,
        after: After,
        limit: int,
        purchased: tuple[datetime | None, datetime | None],
        timeout: float | None,
    ) -> list[ListedOrder]:
        # Only the conditions that apply, each a plain range on an indexed column: a generic plan of
        # "$3 IS NULL OR ..." cannot scan the index from the position and stop at the limit, and sorts
        # every open request of the account instead.
        column, past, order_by = order
        sql = [select]
        args: list[object] = [seller, marketplace_id]
        if after.at is not None:
            args.append(after.at)
            at = f"${len(args)}"
            sql.append(f" AND {column} {past}= {at}")  # the index range starts at the position
            if not after.ties:
                sql.append(f" AND {column} <> {at}")
            elif after.order_id is not None:
                args.append(after.order_id)
                sql.append(f" AND ({column} <> {at} OR amazon_order_id {past} ${len(args)})")
        for bound, op in zip(purchased, (">=", "<"), strict=True):
            if bound is not None:
                args.append(bound)
                sql.append(f" AND purchased_at {op} ${len(args)}")
        args.append(limit)
        sql.append(f" {order_by} LIMIT ${len(args)}")
        rows = await self.store._fetch("".join(sql), *args, timeout=timeout)
        return [ListedOrder(r[0], r[1]) for r in rows]
