"""Amazon's reported rate on the order-events topic: the metrics store acknowledges it (its offset moves)
and ignores it for now (no order row, no bucket), beside the order events of the same batch."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio

from cancelguard import db
from cancelguard.domain.model import (
    AccountEvent,
    AccountKey,
    AmazonRateStatus,
    AmazonReportedRate,
    Channel,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    Source,
    TargetCondition,
)
from cancelguard.domain.policy import PolicyBook
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


def reported_rate(n: int) -> AccountEvent:
    body = AmazonReportedRate(
        window_from=datetime(2026, 11, 18, tzinfo=UTC),
        window_to=datetime(2026, 11, 24, 23, 59, tzinfo=UTC),
        order_count=200,
        cancellation_count=3,
        rate=Decimal("0.015"),
        status=AmazonRateStatus.GOOD,
        target_value=Decimal("0.025"),
        target_condition=TargetCondition.LESS_THAN,
    )
    return AccountEvent(
        f"seller-performance:{n}:{US}",
        AccountKey(SELLER, US),
        Source.SELLER_PERFORMANCE_REPORT,
        NOW,
        NOW,
        body,
    )


async def test_a_reported_rate_moves_the_offset_and_creates_no_order(pool: asyncpg.Pool) -> None:
    store = Store(pool, PolicyBook())
    order = OrderEvent(
        "o-1",
        OrderKey(SELLER, US, "111-0000001-0000001"),
        Source.ORDERS_V2026,
        NOW,
        NOW,
        OrderSnapshot(OrderStatus.UNSHIPPED, Channel.MFN, purchased_at=datetime(2026, 11, 25, tzinfo=UTC)),
    )
    only_rates = await store.apply_batch("g", [PartitionBatch("t", 0, [(0, reported_rate(1))])])
    assert (only_rates.events_applied, only_rates.orders_written, only_rates.buckets_written) == (0, 0, 0)
    mixed = await store.apply_batch(
        "g", [PartitionBatch("t", 0, [(1, reported_rate(2)), (2, order), (3, reported_rate(3))])]
    )
    assert (mixed.events_applied, mixed.orders_written) == (1, 1)
    assert await store.load_offsets("g", "t") == {0: 4}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders") == 1
        assert await conn.fetchval("SELECT sum(orders) FROM cr_buckets") == 1
