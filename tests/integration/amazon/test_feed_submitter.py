"""The API's cancel-feed submitter against the simulator over HTTP and a real Postgres: Amazon away delays
a feed and loses nothing; Amazon refusing it fails it with Amazon's words; a leased feed is nobody else's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest_asyncio

from cancelguard import db
from cancelguard.accounts import Accounts, OrdersApi, SellerAccount
from cancelguard.amazon.backoff import Backoff
from cancelguard.amazon.connection import LwaCredentials, Secret
from cancelguard.amazon.feed_xml import CancelReason, build_cancel_feed, cancels_by_order
from cancelguard.api.feeds import FeedSubmitter
from cancelguard.api.records import NewRequest, PendingFeed, Records
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.server import Simulator, build_simulator
from cancelguard.simulator.spapi.testing import serving

SELLER = "A2DEMOSELLERJP"
UK, DE = "A1F83G8C2ARO7P", "A1PA6795UKMFR9"
NOW = datetime.now(UTC).replace(microsecond=0)
FAST = {"backoff": Backoff(base_s=0.001, cap_s=0.01, max_attempts=3)}  # the client's own retries


@pytest_asyncio.fixture
async def pool(postgres_dsn: str, pg_schema: str) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate(dsn=postgres_dsn, schema=pg_schema)
    pool = await db.create_pool(dsn=postgres_dsn, schema=pg_schema)
    yield pool
    await pool.close()


def _accounts(sim: Simulator, base: str, marketplaces: tuple[str, ...]) -> Accounts:
    credentials = LwaCredentials(
        sim.client_id, Secret(sim.client_secret), Secret(sim.world.sellers[SELLER].refresh_token)
    )
    account = SellerAccount(
        SELLER, "eu", marketplaces, OrdersApi.V2026, credentials, base, f"{base}/auth/o2/token"
    )
    return Accounts("test", (account,))


def _unshipped(sim: Simulator) -> tuple[str, list[str]]:
    for o in sim.world.orders_of(SELLER):
        c = o.current(NOW + timedelta(hours=6))
        v = o.visible(NOW)
        unshipped = v is not None and c is not None and v.status == c.status == "Unshipped"
        if o.channel == "MFN" and unshipped and not any(i.cancelled_by for i in c.items):  # type: ignore[union-attr]
            return o.amazon_order_id, [i.order_item_id for i in o.items]
    raise AssertionError("the scenario has an Unshipped MFN order")


async def _decided(records: Records, order_id: str, items: list[str], marketplace_id: str = UK) -> str:
    """Record a decision with its feed, as DecideCancellation does; returns its event id."""
    event_id = f"api-decision:{uuid.uuid4()}"
    document = build_cancel_feed(
        SELLER, cancels_by_order((order_id, i, CancelReason.NO_INVENTORY) for i in items)
    )
    new = NewRequest(
        "test",
        event_id.split(":", 1)[1],
        "DecideCancellation",
        b"print",
        b"",
        feed=PendingFeed(event_id, SELLER, marketplace_id, order_id, document),
    )
    assert await records.insert(new, timeout=10)
    return event_id


async def _due_now(pool: asyncpg.Pool) -> None:
    """Time passes: every feed's next look is due."""
    await pool.execute("UPDATE feed_submissions SET next_at = now()")


async def test_amazon_away_delays_a_feed_and_loses_nothing(pool: asyncpg.Pool) -> None:
    sim = build_simulator(ScenarioSpec(NOW, seed=11, days=2, sellers=(SELLER,), marketplaces=(UK,)))
    order_id, items = _unshipped(sim)
    records = Records(pool)
    async with serving(sim) as base:
        submitter = FeedSubmitter(records, _accounts(sim, base, (UK,)), poll_s=0.01, connection_options=FAST)
        try:
            event_id = await _decided(records, order_id, items)

            sim.faults.update({"error_503_rate": 1.0})  # longer than the client's own retries
            assert await submitter.run_once() == 1
            row = await records.feed(SELLER, event_id, timeout=10)
            assert row is not None
            assert (row.state, row.attempts, row.feed_id) == ("PENDING", 1, None)
            assert row.error and "503" in row.error
            assert await submitter.run_once() == 0, "retried before its backoff"

            sim.faults.update({"error_503_rate": 0.0})
            await _due_now(pool)
            assert await submitter.run_once() == 1
            row = await records.feed(SELLER, event_id, timeout=10)
            assert row is not None and row.state == "SUBMITTED" and row.feed_id and row.error is None

            sim.clock.advance(10)  # Amazon processes it
            await _due_now(pool)
            await submitter.run_once()
            row = await records.feed(SELLER, event_id, timeout=10)
            assert row is not None and row.state == "DONE", row
            assert row.report is not None and row.report["messages_successful"] == 1
            assert sum(v for k, v in sim.stats.items() if k.startswith("feeds.createFeed 2")) == 1
        finally:
            await submitter.stop()


async def test_a_feed_amazon_refuses_fails_with_amazons_words(pool: asyncpg.Pool) -> None:
    sim = build_simulator(ScenarioSpec(NOW, seed=12, days=2, sellers=(SELLER,), marketplaces=(UK,)))
    order_id, items = _unshipped(sim)
    records = Records(pool)
    async with serving(sim) as base:
        # the accounts file says the seller sells in DE; Amazon knows better
        submitter = FeedSubmitter(records, _accounts(sim, base, (UK, DE)), connection_options=FAST)
        try:
            event_id = await _decided(records, order_id, items, marketplace_id=DE)
            assert await submitter.run_once() == 1
            row = await records.feed(SELLER, event_id, timeout=10)
            assert row is not None and row.state == "FAILED" and row.attempts == 0
            assert row.error and DE in row.error
            await _due_now(pool)
            assert await submitter.run_once() == 0, "a failed feed is final"
        finally:
            await submitter.stop()


async def test_a_leased_feed_is_not_taken_by_another_replica(pool: asyncpg.Pool) -> None:
    records = Records(pool)
    event_id = await _decided(records, "111-0000000-0000001", ["1"])
    [mine] = await records.claim_feeds(timedelta(minutes=5), 10)
    assert mine.event_id == event_id
    assert await records.claim_feeds(timedelta(minutes=5), 10) == []  # the other replica's look
    await _due_now(pool)  # the lease ran out (its replica died)
    assert [r.event_id for r in await records.claim_feeds(timedelta(minutes=5), 10)] == [event_id]
