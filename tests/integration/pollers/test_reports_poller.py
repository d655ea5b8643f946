"""The reports poller against the simulator: the Unshipped Orders flat file through the same reader as
`cancelguard import-report`, as of the report's createdTime, and Amazon's own cancellation rate from
the seller performance report, one event per marketplace; each report type's cursor in Postgres."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pollers_harness import accounts_for, on_sim_time, read_topic, stack

from cancelguard.accounts import OrdersApi
from cancelguard.amazon.reports import SELLER_PERFORMANCE_REPORT, UNSHIPPED_ORDERS_REPORT
from cancelguard.config import Settings
from cancelguard.domain.model import AccountEvent, OrderEvent, OrderSnapshot, OrderStatus, Source
from cancelguard.events import codec
from cancelguard.ingestion.pollers.reports import ReportsPoller
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.server import build_simulator
from cancelguard.simulator.spapi.testing import SimulatedTime, serving
from cancelguard.simulator.spapi.truth import window_truths

pytestmark = pytest.mark.integration

WALL = datetime.now(UTC).replace(microsecond=0)
SELLER = "A3SIMSELLER03"
MARKETS = ("A1PA6795UKMFR9", "A1F83G8C2ARO7P")


async def test_unshipped_and_performance_reports_become_events(settings: Settings) -> None:
    sim = build_simulator(
        ScenarioSpec(
            WALL - timedelta(hours=2), seed=12, sellers=(SELLER,), marketplaces=MARKETS, orders_per_day=20
        ),
        frozen=True,
    )
    on_sim_time(sim)
    async with serving(sim) as base, stack(settings) as s:
        accounts, _ = accounts_for(sim, base, {SELLER: OrdersApi.V2026})
        [account] = accounts.accounts
        client = await s.client(account, SimulatedTime(sim))
        poller = ReportsPoller(
            account,
            client,
            s.cursors,
            s.route,
            s.sender,
            unshipped_every=timedelta(hours=1),
            performance_every=timedelta(hours=6),
            report_poll_interval_s=15,
            now=sim.clock.now,
        )
        assert await poller.due() == [
            (UNSHIPPED_ORDERS_REPORT, (MARKETS[0],)),
            (UNSHIPPED_ORDERS_REPORT, (MARKETS[1],)),
            (SELLER_PERFORMANCE_REPORT, MARKETS),
        ]
        results = await poller.run_due(asyncio.Event())
        assert [r.error for r in results] == ["", "", ""]
        assert await poller.due() == []  # the cursors say when each was read
        events = [codec.decode(r.value) for r in await read_topic(settings, settings.order_events_topic)]
        done_at = sim.clock.now()

    unshipped = [e for e in events if isinstance(e, OrderEvent) and e.source is Source.ORDER_REPORT]
    by_order = {e.key.amazon_order_id: e for e in unshipped if isinstance(e.body, OrderSnapshot)}
    created = {r.marketplace_ids[0]: r.created_at for r in results[:2]}
    expected = {}
    for o in sim.world.orders_of(SELLER):
        at = created[o.marketplace_id]
        assert at is not None
        v = o.visible(at + timedelta(seconds=2))  # the report is done processing_seconds after it was asked
        if o.channel == "MFN" and v is not None and v.status in ("Unshipped", "PartiallyShipped"):
            expected[o.amazon_order_id] = (v.status, any(i.requested for i in v.items))
    assert set(by_order) == set(expected)
    for order_id, (status, requested) in expected.items():
        e = by_order[order_id]
        assert e.occurred_at == created[e.key.marketplace_id]  # as of the report's createdTime
        # a partly shipped order's file rows are its unshipped items only: it reads as Unshipped, which
        # the fold never lets move a status back
        assert isinstance(e.body, OrderSnapshot) and e.body.status in (
            OrderStatus.UNSHIPPED,
            OrderStatus(status),
        )
        assert any(i.buyer_requested_cancel for i in e.body.items) == requested
    assert any(r for _, r in expected.values()), "no open request in the world: the flags are not tested"

    rates = {e.key.marketplace_id: e.body for e in events if isinstance(e, AccountEvent)}
    truth = {
        w.marketplace_id: w
        for w in window_truths(sim.world, done_at)
        if w.seller_id == SELLER and w.kind == "AMAZON_ALIGNED" and w.days == 7
    }
    assert set(rates) == set(MARKETS)
    for m, rate in rates.items():
        assert (rate.order_count, rate.cancellation_count) == (truth[m].orders, truth[m].cancellations)
    assert all(c.balanced and c.dead_lettered == 0 for c in s.route.counts.values())
