"""Amazon's reported rate on the order-events topic: the metrics store keeps it per window beside our own
figure for the same window (no order row, no bucket), with the order events of the same batch."""

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
    only_rates = await store.apply_batch("g", [PartitionBatch("t", 0, [(0, reported_rate(1))])])
    assert (only_rates.events_applied, only_rates.orders_written, only_rates.buckets_written) == (1, 0, 0)
    mixed = await store.apply_batch(
        "g", [PartitionBatch("t", 0, [(1, reported_rate(2)), (2, order), (3, reported_rate(3))])]
    )
    assert (mixed.events_applied, mixed.orders_written) == (3, 1)
    assert await store.load_offsets("g", "t") == {0: 4}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders") == 1
        assert await conn.fetchval("SELECT sum(orders) FROM cr_buckets") == 1
    [figure] = await store.amazon_figures(SELLER, US, datetime(2026, 11, 1, tzinfo=UTC))
    assert (figure.window_start, figure.window_end) == (
        datetime(2026, 11, 18, tzinfo=UTC),
        datetime(2026, 11, 25, tzinfo=UTC),
    )
    assert (figure.amazon_orders, figure.amazon_cancellations, figure.amazon_rate) == (
        200,
        3,
        Decimal("0.015"),
    )
    assert (figure.our_orders, figure.our_cancellations) == (0, 0)  # its one order was purchased after it
    assert figure.difference == Decimal("-0.015")


async def test_the_latest_report_of_a_window_wins_whatever_the_arrival_order(pool: asyncpg.Pool) -> None:
    store = Store(pool, PolicyBook())
    newer = reported_rate(2)
    newer = AccountEvent(
        newer.event_id,
        newer.key,
        newer.source,
        NOW.replace(hour=13),
        NOW,
        AmazonReportedRate(**{**_fields(newer.body), "cancellation_count": 5, "rate": Decimal("0.025")}),
    )
    await store.apply_batch("g", [PartitionBatch("t", 0, [(0, newer), (1, reported_rate(1))])])
    await store.apply_batch("g", [PartitionBatch("t", 0, [(2, reported_rate(3))])])
    [figure] = await store.amazon_figures(SELLER, US, datetime(2026, 11, 1, tzinfo=UTC))
    assert (figure.amazon_cancellations, figure.amazon_rate) == (5, Decimal("0.025"))


def _fields(body: AmazonReportedRate) -> dict[str, object]:
    return {name: getattr(body, name) for name in AmazonReportedRate.__dataclass_fields__}
