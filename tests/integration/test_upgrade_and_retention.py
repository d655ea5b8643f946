"""Against a real Postgres: rows the previous release wrote read the same after the upgrade and fold on;
retention removes old facts and buckets in small chunks and leaves every read inside it unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from cancelguard import db
from cancelguard.domain.attribution import attribute, contribution
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import (
    CancellationRequested,
    CancelledBy,
    Channel,
    ItemObservation,
    Order,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    RequestKind,
    Source,
)
from cancelguard.domain.policy import PolicyBook, policy_for
from cancelguard.domain.requests import open_request
from cancelguard.domain.windows import bucket_start, live_window
from cancelguard.metrics.state_codec import order_to_json
from cancelguard.metrics.store import After, ApiReads, PartitionBatch, Store

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
SELLER, US = "A1UPGRADESELLER", "ATVPDKIKX0DER"


def snapshot(order_id: str, n: int, bought: datetime, status: OrderStatus, sku: str = "SKU-1") -> OrderEvent:
    at = bought + timedelta(hours=n)
    cancelled = status is OrderStatus.CANCELED
    return OrderEvent(
        f"upgrade:{order_id}:{n}",
        OrderKey(SELLER, US, order_id),
        Source.ORDERS_V2026,
        at,
        at,
        OrderSnapshot(
            status=status,
            channel=Channel.MFN,
            purchased_at=bought,
            items=(
                ItemObservation(
                    f"{order_id}-1",
                    seller_sku=sku,
                    quantity_ordered=1,
                    buyer_requested_cancel=True if n == 2 and not cancelled else None,
                    cancelled_by=CancelledBy.MERCHANT if cancelled else None,
                    cancel_reason="NoInventory" if cancelled else "",
                ),
            ),
        ),
    )


async def previous_release_schema(dsn: str, schema: str) -> asyncpg.Connection:
    """The schema as the previous release left it: migrations 0001 and 0002 only."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    await conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, name, sql in db.migration_files()[:2]:
        await conn.execute(sql)
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
    return conn


async def write_as_previous_release(conn: asyncpg.Connection, order: Order) -> None:
    """One order row and its bucket counts, exactly as the previous release's fold wrote them."""
    policy = policy_for(order.key.marketplace_id)
    verdict = attribute(order, policy)
    place = contribution(order, policy, verdict)
    den = bucket_start(place.denominator_at) if place.denominator_at else None
    num = bucket_start(place.numerator_at) if place.numerator_at else None
    request = open_request(order)
    await conn.execute(
        "INSERT INTO orders (seller_account, marketplace_id, amazon_order_id, state, status,"
        " fulfillment_channel, purchased_at, verdict, rule, needs_review, open_request, request_at,"
        " denominator_bucket,"
        " numerator_bucket) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        *(order.key.seller_account, order.key.marketplace_id, order.key.amazon_order_id),
        json.dumps(order_to_json(order)),
        order.status.value if order.status else None,
        order.channel.value if order.channel else None,
        order.purchased_at,
        verdict.verdict.value,
        verdict.rule.value,
        verdict.needs_review,
        request.kind.value if request else None,
        request.requested_at if request else None,
        den,
        num,
    )
    for bucket, column in ((den, "orders"), (num, "cancellations")):
        if bucket is not None:
            await conn.execute(
                f"INSERT INTO cr_buckets (seller_account, marketplace_id, bucket_start, {column})"
                f" VALUES ($1, $2, $3, 1) ON CONFLICT (seller_account, marketplace_id, bucket_start)"
                f" DO UPDATE SET {column} = cr_buckets.{column} + 1",
                order.key.seller_account,
                order.key.marketplace_id,
                bucket,
            )


@pytest_asyncio.fixture(loop_scope="session")
async def pool(postgres_dsn: str, pg_schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(dsn=postgres_dsn, schema=pg_schema)
    yield pool
    await pool.close()


async def test_rows_of_the_previous_release_read_the_same_and_fold_on(
    postgres_dsn: str, pg_schema: str, pool: asyncpg.Pool
) -> None:
    bought = NOW - timedelta(days=2)
    cancelled = [snapshot(f"111-000000{n}-0000001", 1, bought, OrderStatus.UNSHIPPED) for n in (1, 2)]
    cancelled += [snapshot(f"111-000000{n}-0000001", 3, bought, OrderStatus.CANCELED) for n in (1, 2)]
    requested = [
        snapshot("111-0000003-0000001", 1, bought, OrderStatus.UNSHIPPED),
        snapshot("111-0000003-0000001", 2, bought, OrderStatus.UNSHIPPED),
    ]
    orders = {}
    for e in cancelled + requested:
        orders.setdefault(e.key, []).append(e)
    folded = {k: fold(v) for k, v in orders.items()}
    conn = await previous_release_schema(postgres_dsn, pg_schema)
    try:
        for order in folded.values():
            assert order is not None
            await write_as_previous_release(conn, order)
    finally:
        await conn.close()

    assert await db.migrate(dsn=postgres_dsn, schema=pg_schema) == [
        "0003_generations_alerts_amazon.sql",
        "0004_poll_cursors_enrichment.sql",
        "0005_api_writes_watch_notify.sql",
        "0006_feed_submissions.sql",
        "0007_orders_changed_at.sql",
    ]
    store = Store(pool, PolicyBook())
    window = live_window(NOW)
    assert await store.bucket_totals(SELLER, US, window.start, window.end) == (3, 2)
    for key, order in folded.items():
        assert await store.get_order(key) == order  # read from the old JSON
    [listed] = await ApiReads(store).open_requests(SELLER, US, After(), 10, timeout=None)
    assert listed.amazon_order_id == "111-0000003-0000001"
    # suppression risk is read in SQL now: the migration gave the old rows their SKUs
    [risk] = await store.suppression_risks(SELLER, US, NOW, 30)
    assert risk.amazon_order_ids == ("111-0000001-0000001", "111-0000002-0000001")

    # the next event for an old row folds into it, moves its counts, and rewrites it in the new format
    late_cancel = snapshot("111-0000003-0000001", 4, bought, OrderStatus.CANCELED)
    await store.apply_batch("g", [PartitionBatch("t", 0, [(0, late_cancel)])])
    assert await store.bucket_totals(SELLER, US, window.start, window.end) == (3, 2)  # requested: excluded
    row = await pool.fetchrow(
        "SELECT fact, state FROM orders WHERE amazon_order_id = $1", late_cancel.key.amazon_order_id
    )
    assert row["fact"] is not None and row["state"] is None
    assert await store.get_order(late_cancel.key) == fold([*requested, late_cancel])


async def test_retention_deletes_orders_amazon_never_dated_once_unchanged_past_the_setting(
    postgres_dsn: str, pg_schema: str, pool: asyncpg.Pool
) -> None:
    """An order known only from a buyer's message has no purchase date; it goes when it has not changed
    for the retention period (its row's changed_at), and a change keeps it."""
    await db.migrate(dsn=postgres_dsn, schema=pg_schema)
    store = Store(pool, PolicyBook())

    def message(order_id: str, n: int) -> OrderEvent:
        request = CancellationRequested(RequestKind.INFORMAL, reason="please cancel")
        key = OrderKey(SELLER, US, order_id)
        return OrderEvent(f"msg:{order_id}:{n}", key, Source.BUYER_MESSAGE, NOW, NOW, request)

    undated = ["113-0000001-0000001", "113-0000002-0000001", "113-0000003-0000001"]
    await store.apply_batch(
        "g", [PartitionBatch("t", 0, [(n, message(o, 0)) for n, o in enumerate(undated)])]
    )
    # the first two last changed 40 days ago; the second changes again now
    await pool.execute(
        "UPDATE orders SET changed_at = now() - interval '40 days' WHERE amazon_order_id = ANY($1::text[])",
        undated[:2],
    )
    await store.apply_batch("g", [PartitionBatch("t", 0, [(3, message(undated[1], 1))])])

    deleted = await store.delete_expired(NOW - timedelta(days=30))

    assert deleted["orders"] == 1
    left = await pool.fetch("SELECT amazon_order_id FROM orders ORDER BY amazon_order_id")
    assert [r[0] for r in left] == undated[1:]


async def test_retention_deletes_old_facts_and_buckets_and_changes_nothing_inside(
    postgres_dsn: str, pg_schema: str, pool: asyncpg.Pool
) -> None:
    await db.migrate(dsn=postgres_dsn, schema=pg_schema)
    store = Store(pool, PolicyBook())
    events = []
    for n, days in enumerate((45, 40, 38, 20, 5, 2, 1)):
        bought = NOW - timedelta(days=days)
        order_id = f"112-{n:07d}-0000001"
        events.append(snapshot(order_id, 1, bought, OrderStatus.UNSHIPPED))
        if n % 2:
            events.append(snapshot(order_id, 3, bought, OrderStatus.CANCELED))
    await store.apply_batch("g", [PartitionBatch("t", 0, list(enumerate(events)))])
    inside = (NOW - timedelta(days=25), NOW + timedelta(hours=1))
    totals = await store.bucket_totals(SELLER, US, *inside)
    counted = await store.counted_cancellations(SELLER, US, *inside)
    recent = await store.get_orders(SELLER, US, [f"112-{n:07d}-0000001" for n in range(3, 7)])

    deleted = await store.delete_expired(NOW - timedelta(days=30), chunk=2)  # chunks smaller than the work

    assert (deleted["orders"], deleted["cr_buckets"]) == (3, 3)
    assert await pool.fetchval("SELECT min(purchased_at) FROM orders") >= NOW - timedelta(days=30)
    assert await pool.fetchval("SELECT min(bucket_start) FROM cr_buckets") >= NOW - timedelta(days=31)
    assert await store.bucket_totals(SELLER, US, *inside) == totals
    assert await store.counted_cancellations(SELLER, US, *inside) == counted
    assert await store.get_orders(SELLER, US, list(recent)) == recent
    assert await store.delete_expired(NOW - timedelta(days=30)) == {
        "orders": 0,
        "cr_buckets": 0,
        "consumer_offsets": 0,
        "amazon_rates": 0,
        "alert_outbox": 0,
    }
