"""Amazon's reported rate on the order-events topic: the metrics store acknowledges it (its offset moves)
and ignores it for now (no order row, no bucket), beside the order events of the same batch."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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
    only_rates = await store.apply_batch("g", [PartitionBatch("t", 0, [(0, reported_rate("1"))])])
    assert (only_rates.events_applied, only_rates.orders_written, only_rates.buckets_written) == (0, 0, 0)
    mixed = await store.apply_batch(
        "g", [PartitionBatch("t", 0, [(1, reported_rate("2")), (2, order), (3, reported_rate("3"))])]
    )
    assert (mixed.events_applied, mixed.orders_written) == (1, 1)
    assert await store.load_offsets("g", "t") == {0: 4}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders") == 1
        assert await conn.fetchval("SELECT sum(orders) FROM cr_buckets") == 1
