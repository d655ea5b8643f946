"""The Orders API pollers against the real simulator, a real Kafka and a real Postgres.

Each poll's events are on the order-events topic, every visible MFN order version once; the cursor is
in Postgres, moves only after Kafka acknowledged, and a new poller (a restarted process) resumes from it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pollers_harness import OVERLAP, accounts_for, on_sim_time, read_topic, stack, visible_versions

from cancelguard.accounts import OrdersApi
from cancelguard.config import Settings
from cancelguard.domain.model import OrderSnapshot
from cancelguard.events import codec
from cancelguard.ingestion.pollers.orders import SOURCE
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.server import build_simulator
from cancelguard.simulator.spapi.testing import serving

pytestmark = pytest.mark.integration

WALL = datetime.now(UTC).replace(microsecond=0)
EU = ("A1F83G8C2ARO7P", "A1PA6795UKMFR9", "A13V1IB3VIYZZH")


def world(seed: int = 5, **spec: object):
    sim = build_simulator(
        ScenarioSpec(WALL - timedelta(days=7), seed=seed, marketplaces=EU, **spec),  # type: ignore[arg-type]
        frozen=True,
    )
    sim.clock.set(WALL - timedelta(hours=1))  # every story has ended
    on_sim_time(sim)
    return sim


@pytest.mark.parametrize("api", [OrdersApi.V2026, OrdersApi.V0])
async def test_a_poll_publishes_every_visible_mfn_order_once_then_resumes_from_its_cursor(
    settings: Settings, api: OrdersApi
) -> None:
    sim = world(sellers=("A1SIMSELLER01",), orders_per_day=9)
    seller = "A1SIMSELLER01"
    async with serving(sim) as base, stack(settings) as s:
        accounts, _ = accounts_for(sim, base, {seller: api})
        [account] = accounts.accounts
        poller = await s.poller(sim, account, page_size=20)
        asked_at = sim.clock.now()
        first = await poller.poll_once(asyncio.Event())
        assert first.read_until == asked_at - timedelta(minutes=2)  # Amazon's bound, from its answer
        assert first.pages > 3 and first.repeats == 0
        want = visible_versions(sim, seller, datetime(2000, 1, 1, tzinfo=UTC))
        events = [codec.decode(r.value) for r in await read_topic(settings, settings.order_events_topic)]
        got: dict[str, list[str]] = {}
        for e in events:
            got.setdefault(e.key.amazon_order_id, []).append(e.event_id)
        assert set(got) == set(want), "missing or extra orders"
        assert all(len(ids) == 1 for ids in got.values()), "an order version published twice"
        assert all(isinstance(e.body, OrderSnapshot) for e in events)
        if api is OrdersApi.V0:  # items only for what needs them
            needing = {
                o
                for o in want
                if sim.world.orders[(seller, o)].visible(sim.clock.now()).status  # type: ignore[union-attr]
                in ("Pending", "Unshipped", "Canceled")
            }
            assert first.items_fetched == len(needing) > 0
            assert {e.key.amazon_order_id for e in events if e.event_id.endswith(":items")} == needing
        counts = s.route.counts[SOURCE[api]]
        assert counts.balanced and counts.read == first.documents and counts.dead_lettered == 0

        # the same process again: the overlap re-reads, nothing is sent twice
        sim.clock.advance(600)
        again = await poller.poll_once(asyncio.Event())
        assert again.documents == again.repeats
        # a new process (no memory): resumes from the cursor in Postgres, minus the overlap
        restarted = await s.poller(sim, account, page_size=20)
        sim.queries.clear()
        await restarted.poll_once(asyncio.Event())
        op = "ordersV0.getOrders" if api is OrdersApi.V0 else "orders2026.searchOrders"
        after = next(q for k, _, q in sim.queries if k == op)
        name = "LastUpdatedAfter" if api is OrdersApi.V0 else "lastUpdatedAfter"
        assert datetime.fromisoformat(after[name]) == again.read_until - OVERLAP  # type: ignore[operator]


async def test_the_cursor_moves_only_after_kafka_acknowledged(settings: Settings) -> None:
    """Sends that Kafka never acknowledges (the events topic does not exist yet) leave the cursor where
    it was; once they are acknowledged it moves."""
    sim = world(sellers=("A2SIMSELLER02",), orders_per_day=4)
    seller = "A2SIMSELLER02"
    async with serving(sim) as base, stack(settings, producer_timeout_ms=1500) as s:
        missing = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}later."})
        s.route.events_topic = missing.order_events_topic
        accounts, _ = accounts_for(sim, base, {seller: OrdersApi.V2026})
        [account] = accounts.accounts
        poller = await s.poller(sim, account)
        stop = asyncio.Event()
        s.health.clear()
        task = asyncio.create_task(poller.poll_once(stop))
        while not s.dependencies.down_since:  # Kafka said no: the sender retries, health would say so
            await asyncio.sleep(0.05)
        stop.set()
        unfinished = await asyncio.wait_for(task, 30)
        assert unfinished.read_until is None and unfinished.pages == 1
        assert await s.cursors.load(seller, SOURCE[OrdersApi.V2026]) == {}
        from cancelguard import kafka

        await kafka.ensure_topics(
            settings.kafka_bootstrap, [missing.order_events_topic], partitions=1, replication=1
        )
        done = await poller.poll_once(asyncio.Event())
        assert done.read_until is not None
        assert await s.cursors.load(seller, SOURCE[OrdersApi.V2026]) == dict.fromkeys(EU, done.read_until)
        assert len(await read_topic(missing, missing.order_events_topic)) == len(
            visible_versions(sim, seller, datetime(2000, 1, 1, tzinfo=UTC))
        )
