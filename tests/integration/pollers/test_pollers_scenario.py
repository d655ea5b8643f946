"""Days of a simulated world through the real pollers, end to end, checked against the simulator's truth.

Three sellers in four marketplaces, seven days of purchases and the days after them (auto-cancels come
five days after purchase), an hour of simulated time per step. Each step, as a deployment would: the
pollers poll (v0 or v2026, every account), the simulator's ORDER_CHANGE notifications and buyer messages
go onto the raw topics (as the SQS bridge and the helpdesk would), the real ingestion service reads
them, the enrichment reader queues the notifications that need a call and the enrichers make them.
The real metrics service applies everything to Postgres. Then every order as the store holds it
(status and attribution rule, through the domain's own `attribute`) and every window's counts must
equal the simulator's truth, which is computed without the domain code: `rule` for v2026 accounts (what
cancellationExecution says), `rule_v0` for v0 (no canceller). The usage plans are Amazon's, metered on
simulated time: no operation may be throttled.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from pollers_harness import Stack, accounts_for, eventually, on_sim_time, stack

from cancelguard.accounts import OrdersApi
from cancelguard.config import Settings
from cancelguard.domain.attribution import attribute
from cancelguard.domain.policy import PolicyBook
from cancelguard.ingestion.pollers.enrichment import NotificationReader
from cancelguard.ingestion.service import IngestionService
from cancelguard.metrics.service import MetricsService
from cancelguard.metrics.store import Store
from cancelguard.simulator.spapi.bridge import SimulatorBridge
from cancelguard.simulator.spapi.generator import DEFAULT_SELLERS, ScenarioSpec
from cancelguard.simulator.spapi.server import Simulator, build_simulator
from cancelguard.simulator.spapi.testing import SimulatedTime, serving
from cancelguard.simulator.spapi.truth import ground_truth

pytestmark = pytest.mark.integration

WALL = datetime.now(UTC).replace(microsecond=0)
EU4 = ("A1F83G8C2ARO7P", "A1PA6795UKMFR9", "A13V1IB3VIYZZH", "A21TJRUUN4KGV")  # one region: UK DE FR IN
STEP = timedelta(hours=1)


@asynccontextmanager
async def running(*services: IngestionService | MetricsService) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in services]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


def scenario(seed: int, days: int = 7, **spec: Any) -> Simulator:
    """Purchases in the `days` before WALL - 7 days; the clock starts an hour before the first one."""
    purchases_end = WALL - timedelta(days=7)
    sim = build_simulator(
        ScenarioSpec(purchases_end, seed=seed, days=days, marketplaces=EU4, **spec), frozen=True
    )
    sim.clock.set(purchases_end - timedelta(days=days, hours=1))
    on_sim_time(sim)
    return sim


async def run_world(
    settings: Settings, s: Stack, sim: Simulator, base: str, api: OrdersApi, *, until: datetime
) -> dict[str, Any]:
    """Steps the world to `until` through pollers, bridge, enrichment; returns facts for the checks."""
    stop = asyncio.Event()
    accounts, _ = accounts_for(sim, base, dict.fromkeys(sim.world.sellers, api))
    clock = SimulatedTime(sim)
    pollers, enrichers = [], []
    for account in accounts.accounts:
        client = await s.client(account, clock)
        pollers.append(await s.poller(sim, account, page_size=4, client=client))
        enrichers.append(await s.enricher(sim, account, client))
    consumer = AIOKafkaConsumer(
        settings.order_change_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.topic_prefix}enrichment",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    s.exits.push_async_callback(consumer.stop)
    reader = NotificationReader(consumer, s.queue, accounts, now=sim.clock.now)
    bridge = SimulatorBridge(base, settings, s.producer)
    polls = Counter[str]()
    async with aiohttp.ClientSession() as session:
        while sim.clock.now() < until:
            sim.clock.advance(min(STEP, until - sim.clock.now()).total_seconds())
            for poller in pollers:
                result = await poller.poll_once(stop)
                polls["polls"] += 1
                polls["pages"] += result.pages
                polls["items"] += result.items_fetched
            await bridge.forward(session)
            await reader.read_once(timeout_ms=0)
            for enricher in enrichers:
                done = await enricher.drain_once(stop)
                polls["enrichment calls"] += done.calls
        # the last notifications, and the enrichment calls still due (retries included)
        while reader.totals.records < bridge.totals.notifications:
            await reader.read_once(timeout_ms=500)
        for _ in range(40):
            for enricher in enrichers:
                polls["enrichment calls"] += (await enricher.drain_once(stop)).calls
            if not await s.queue.pending():
                break
            sim.clock.advance(600)
    polls["notifications"] = bridge.totals.notifications
    polls["messages"] = bridge.totals.messages
    return {"polls": polls, "reader": reader.totals}


async def compare(settings: Settings, sim: Simulator, api: OrdersApi, as_of: datetime) -> list[str]:
    """Every difference between what landed in the store and the simulator's truth, one line each."""
    truth = ground_truth(sim.world, as_of)
    rule_of = "rule" if api is OrdersApi.V2026 else "rule_v0"
    suffix = "" if api is OrdersApi.V2026 else "_v0"
    policies = PolicyBook()
    from cancelguard import db

    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    problems = []
    try:
        store = Store(pool, policies)
        by_shop: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for o in truth["orders"]:
            by_shop.setdefault((o["seller_id"], o["marketplace_id"]), []).append(o)
        for (seller, mkt), orders in by_shop.items():
            found = await store.get_orders(seller, mkt, [o["amazon_order_id"] for o in orders])
            for o in orders:
                order = found.get(o["amazon_order_id"])
                if order is None:
                    problems.append(f"{seller} {mkt} {o['amazon_order_id']} ({o['story']}): missing")
                    continue
                rule = attribute(order, policies.for_marketplace(mkt)).rule.value
                status = order.status.value if order.status else None
                if (status, rule) != (o["status"], o[rule_of]):
                    problems.append(
                        f"{seller} {mkt} {o['amazon_order_id']} ({o['story']}): store {status}/{rule}, "
                        f"truth {o['status']}/{o[rule_of]}"
                    )
        for w in truth["windows"]:
            start, end = (datetime.fromisoformat(w[k].replace("Z", "+00:00")) for k in ("start", "end"))
            got = await store.bucket_totals(w["seller_id"], w["marketplace_id"], start, end)
            want = (w[f"orders{suffix}"], w[f"cancellations{suffix}"])
            if got != want:
                problems.append(
                    f"window {w['seller_id']} {w['marketplace_id']} {w['kind']} {w['days']}d: {got} != {want}"
                )
    finally:
        await pool.close()
    return problems


async def equals_truth(settings: Settings, sim: Simulator, api: OrdersApi, as_of: datetime) -> None:
    """Waits (the metrics service applies asynchronously) until the store equals the truth."""
    problems: list[str] = []

    async def matches() -> bool:
        problems[:] = await compare(settings, sim, api, as_of)
        return not problems

    try:
        await eventually(matches, timeout=90, what="the store equals the truth")
    except AssertionError:
        raise AssertionError(f"{len(problems)} differences:\n" + "\n".join(problems[:40])) from None


async def rules_in_store(settings: Settings, truth: dict[str, Any]) -> Counter[str]:
    """The attribution rule of every stored order of the truth, as the API would give it."""
    from cancelguard import db

    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    policies = PolicyBook()
    rules: Counter[str] = Counter()
    try:
        store = Store(pool, policies)
        by_shop: dict[tuple[str, str], list[str]] = {}
        for o in truth["orders"]:
            by_shop.setdefault((o["seller_id"], o["marketplace_id"]), []).append(o["amazon_order_id"])
        for (seller, mkt), ids in by_shop.items():
            policy = policies.for_marketplace(mkt)
            found = await store.get_orders(seller, mkt, ids)
            rules.update(attribute(order, policy).rule.value for order in found.values())
    finally:
        await pool.close()
    return rules


@pytest.mark.timeout(600)
@pytest.mark.parametrize("api", [OrdersApi.V2026, OrdersApi.V0])
async def test_a_week_of_three_sellers_in_four_marketplaces_ends_as_the_truth(
    settings: Settings, api: OrdersApi
) -> None:
    sim = scenario(seed=21 if api is OrdersApi.V2026 else 22, orders_per_day=6)
    until = WALL - timedelta(hours=1)  # every story has ended (the last auto-cancels: purchase + 5.25 days)
    async with serving(sim) as base, stack(settings) as s:
        async with running(IngestionService(settings), MetricsService(settings)):
            facts = await run_world(settings, s, sim, base, api, until=until)
            await equals_truth(settings, sim, api, until)
        truth = ground_truth(sim.world, until)
        rules = await rules_in_store(settings, truth)
    assert len(truth["orders"]) > 3 * 4 * 7 * 4, "the world is smaller than the test means"
    want = Counter(o["rule" if api is OrdersApi.V2026 else "rule_v0"] for o in truth["orders"])
    assert rules == want
    if api is OrdersApi.V2026:  # the source said who cancelled: nothing is left unexplained
        assert rules["UNKNOWN_CANCELLER"] == 0 and rules["SELLER_CANCEL_UNSHIPPED"] > 0
        assert (
            rules["AMAZON_AUTO_CANCEL_NOT_SHIPPED"] > 0 and rules["BUYER_CANCELED_WITHOUT_FORMAL_REQUEST"] > 0
        )
    else:
        assert rules["UNKNOWN_CANCELLER"] > 0 and rules["FORMAL_REQUEST_BEFORE_CANCEL"] > 0
    throttled = {k: v for k, v in sim.stats.items() if k.endswith(" 429")}
    assert not throttled, f"the pollers went over a usage plan: {throttled}"
    polls = facts["polls"]
    assert polls["pages"] > polls["polls"] and polls["enrichment calls"] > 0, polls
    assert all(c.balanced and c.dead_lettered == 0 for c in s.route.counts.values()), s.route.counts


@pytest.mark.timeout(600)
async def test_a_429_storm_and_503s_delay_the_pollers_but_lose_nothing(settings: Settings) -> None:
    sim = scenario(seed=23, days=2, orders_per_day=8, sellers=DEFAULT_SELLERS[:2])
    sim.faults.update({"throttle_rate": 0.3, "error_503_rate": 0.15, "error_500_rate": 0.05})
    until = WALL - timedelta(hours=1)
    async with (
        serving(sim) as base,
        stack(settings) as s,
        running(IngestionService(settings), MetricsService(settings)),
    ):
        await run_world(settings, s, sim, base, OrdersApi.V0, until=until)
        await equals_truth(settings, sim, OrdersApi.V0, until)
    for op in ("ordersV0.getOrders", "ordersV0.getOrderItems"):
        assert sim.stats[f"{op} 429"] > 20 and sim.stats[f"{op} 503"] > 10, dict(sim.stats)
