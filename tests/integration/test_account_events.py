"""Amazon's reported rate on the order-events topic: the metrics store keeps it per window beside our own
figure for the same window (no order row, no bucket), with the order events of the same batch."""

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from cancelguard import db
from cancelguard.domain.model import (
    AccountEvent,
    Channel,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    Source,
)
from cancelguard.domain.policy import PolicyBook
from cancelguard.ingestion.adapters.seller_performance import parse_seller_performance
from cancelguard.metrics.store import PartitionBatch, Store

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SELLER, US = "A1SELLERTEST", "ATVPDKIKX0DER"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(postgres_dsn: str, pg_schema: str) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate(dsn=postgres_dsn, schema=pg_schema)
    pool = await db.create_pool(dsn=postgres_dsn, schema=pg_schema)
    yield pool
    await pool.close()


AMAZONS_EXAMPLE = json.loads(
    (Path(__file__).parents[1] / "fixtures/amazon/account_health_report_example.json").read_text()
)["example"]


def reported_rate(report_id: str) -> AccountEvent:
    [event] = parse_seller_performance(
        AMAZONS_EXAMPLE, seller_account=SELLER, report_id=report_id, reported_at=NOW, observed_at=NOW
    )
    return event


async def test_a_reported_rate_is_kept_beside_ours_and_creates_no_order(pool: asyncpg.Pool) -> None:
    store = Store(pool, PolicyBook())
    order = OrderEvent(
        "o-1",
        OrderKey(SELLER, US, "111-0000001-0000001"),
        Source.ORDERS_V2026,
        NOW,
        NOW,
        OrderSnapshot(OrderStatus.UNSHIPPED, Channel.MFN, purchased_at=datetime(2026, 11, 25, tzinfo=UTC)),
    )
    only_rates = await store.apply_batch("g", [PartitionBatch("t", 0, [(0, reported_rate("1"))])])
    assert (only_rates.events_applied, only_rates.orders_written, only_rates.buckets_written) == (1, 0, 0)
    mixed = await store.apply_batch(
        "g", [PartitionBatch("t", 0, [(1, reported_rate("2")), (2, order), (3, reported_rate("3"))])]
    )
    assert (mixed.events_applied, mixed.orders_written) == (3, 1)
    assert await store.load_offsets("g", "t") == {0: 4}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders") == 1
        assert await conn.fetchval("SELECT sum(orders) FROM cr_buckets") == 1
    [figure] = await store.amazon_figures(SELLER, US, datetime(2020, 11, 1, tzinfo=UTC))
    assert (figure.window_start, figure.window_end) == (  # Amazon's 23:59Z end, made exclusive
        datetime(2020, 11, 12, tzinfo=UTC),
        datetime(2020, 11, 19, tzinfo=UTC),
    )
    assert (figure.amazon_orders, figure.amazon_cancellations, figure.amazon_rate) == (
        17197,
        551,
        Decimal("0.005"),
    )
    assert (figure.our_orders, figure.our_cancellations) == (0, 0)  # we saw no order of that week
    assert figure.difference == Decimal("-0.005")


async def test_the_latest_report_of_a_window_wins_whatever_the_arrival_order(pool: asyncpg.Pool) -> None:
    store = Store(pool, PolicyBook())
    first = reported_rate("1")
    newer = replace(
        reported_rate("2"),
        occurred_at=NOW + timedelta(hours=1),
        body=replace(first.body, cancellation_count=600, rate=Decimal("0.006")),
    )
    await store.apply_batch("g", [PartitionBatch("t", 0, [(0, newer), (1, first)])])
    await store.apply_batch("g", [PartitionBatch("t", 0, [(2, reported_rate("3"))])])
    [figure] = await store.amazon_figures(SELLER, US, datetime(2020, 11, 1, tzinfo=UTC))
    assert (figure.amazon_cancellations, figure.amazon_rate) == (600, Decimal("0.006"))
