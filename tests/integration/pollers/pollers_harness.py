"""The pieces of the pollers service, wired to a real Kafka, a real Postgres and the real simulator.

The simulator runs in this process on a loopback port with its clock frozen; the pollers' SP-API clients
run on `SimulatedTime` (their waits move the simulator's clock) and the simulator meters its usage plans
on simulated time too, so rate limits hold exactly as they would, without waiting.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from cancelguard import db, kafka
from cancelguard.accounts import Accounts, OrdersApi, SellerAccount, parse_accounts
from cancelguard.amazon import Backoff, SpApiClient
from cancelguard.amazon.operations import MARKETPLACE_REGIONS
from cancelguard.config import Settings
from cancelguard.ingestion.pollers.cursors import CursorStore
from cancelguard.ingestion.pollers.enrichment import Enricher, EnrichmentQueue
from cancelguard.ingestion.pollers.orders import OrdersPoller
from cancelguard.ingestion.routing import Route, Sender
from cancelguard.runtime import Dependencies
from cancelguard.simulator.spapi.server import Simulator
from cancelguard.simulator.spapi.testing import SimulatedTime

OVERLAP = timedelta(minutes=15)
BACKFILL = timedelta(days=30)
FAST = Backoff(base_s=0.01, cap_s=0.5, max_attempts=25)  # simulated seconds: a storm is ridden out


def on_sim_time(sim: Simulator) -> None:
    """Amazon's buckets on the simulator's clock (the clients' waits move it)."""
    start = sim.clock.now()
    sim.monotonic = lambda: (sim.clock.now() - start).total_seconds()


def accounts_for(sim: Simulator, base: str, apis: dict[str, OrdersApi]) -> tuple[Accounts, dict[str, str]]:
    """An accounts document for these simulator sellers (one entry per seller and region, as Amazon
    authorises an app per region), credentials by environment reference, read by the real loader;
    returns the accounts and the environment it read (the secrets)."""
    environ = {"SIM_LWA_CLIENT_ID": sim.client_id, "SIM_LWA_CLIENT_SECRET": sim.client_secret}
    entries = []
    for n, (seller, api) in enumerate(apis.items()):
        environ[f"SIM_REFRESH_TOKEN_{n}"] = sim.world.sellers[seller].refresh_token
        by_region: dict[str, list[str]] = {}
        for m in sim.world.sellers[seller].marketplace_ids:
            by_region.setdefault(MARKETPLACE_REGIONS[m], []).append(m)
        for region, markets in by_region.items():
            entries.append(
                {
                    "seller_id": seller,
                    "region": region,
                    "marketplaces": markets,
                    "orders_api": api.value,
                    "refresh_token": f"env:SIM_REFRESH_TOKEN_{n}",
                    "endpoint": base,
                    "lwa_endpoint": f"{base}/auth/o2/token",
                }
            )
    doc = {
        "defaults": {"client_id": "env:SIM_LWA_CLIENT_ID", "client_secret": "env:SIM_LWA_CLIENT_SECRET"},
        "accounts": entries,
    }
    return parse_accounts(doc, source="test", environ=environ), environ


@dataclass
class Stack:
    settings: Settings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    dependencies: Dependencies
    route: Route
    sender: Sender
    cursors: CursorStore
    queue: EnrichmentQueue
    exits: AsyncExitStack
    health: list[bool] = field(default_factory=list)

    async def client(self, account: SellerAccount, clock: Any, **options: Any) -> SpApiClient:
        client = SpApiClient(account.connection(backoff=FAST, **options), clock=clock)
        await self.exits.enter_async_context(client)
        return client

    async def poller(
        self,
        sim: Simulator,
        account: SellerAccount,
        *,
        page_size: int = 100,
        client: SpApiClient | None = None,
    ) -> OrdersPoller:
        client = client or await self.client(account, SimulatedTime(sim))
        return OrdersPoller(
            account,
            client,
            self.cursors,
            self.route,
            self.sender,
            overlap=OVERLAP,
            backfill=BACKFILL,
            now=sim.clock.now,
            page_size=page_size,
        )

    async def enricher(self, sim: Simulator, account: SellerAccount, client: SpApiClient) -> Enricher:
        return Enricher(account, client, self.queue, self.route, self.sender, now=sim.clock.now)


@asynccontextmanager
async def stack(settings: Settings, *, producer_timeout_ms: int | None = None) -> AsyncIterator[Stack]:
    await kafka.ensure_topics(
        settings.kafka_bootstrap, settings.all_topics, partitions=settings.topic_partitions, replication=1
    )
    await db.migrate(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    async with AsyncExitStack() as exits:
        pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
        exits.push_async_callback(pool.close)
        producer = kafka.new_producer(settings.kafka_bootstrap, client_id="test-pollers")
        if producer_timeout_ms is not None:
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap,
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=producer_timeout_ms,
            )
        await producer.start()
        exits.push_async_callback(kafka.stop_producer, producer)
        health: list[bool] = []

        async def on_health(serving: bool) -> None:
            health.append(serving)

        deps = Dependencies({}, on_health, outage_limit_s=300)
        yield Stack(
            settings,
            pool,
            producer,
            deps,
            Route(settings, stage="pollers"),
            Sender(producer, deps),
            CursorStore(pool),
            EnrichmentQueue(pool),
            exits,
            health,
        )


async def read_topic(
    settings: Settings, topic: str, *, idle_s: float = 2.0, timeout: float = 60
) -> list[Any]:
    """Every record of a topic, read until it stays quiet for `idle_s`."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records += part
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return records


def visible_versions(
    sim: Simulator, seller: str, after: datetime, *, mfn_only: bool = True
) -> dict[str, str]:
    """order id -> the lastUpdatedTime a LastUpdated poll after `after` shows now (2-minute rule)."""
    now = sim.clock.now()
    out = {}
    for order in sim.world.orders_of(seller):
        v = order.visible(now)
        if v is None or (mfn_only and order.channel != "MFN"):
            continue
        if after < v.at <= now - timedelta(minutes=2):
            out[order.amazon_order_id] = v.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


async def sim_json(base: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{base}{path}") as resp:
        resp.raise_for_status()
        return await resp.json()


async def eventually(check: Any, *, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.2)


def dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)
