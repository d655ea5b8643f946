"""The real SP-API client against the real simulator over loopback HTTP (no Kafka, no Postgres).

The simulator's clock is frozen; the client runs on `SimulatedTime`, so its rate-limit waits, backoff
and polling move simulated time instead of waiting.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from cancelguard.amazon import (
    Backoff,
    CancelReason,
    ItemCancel,
    LwaAuthError,
    LwaCredentials,
    OrderCancel,
    ProcessingFailed,
    Secret,
    SellerConnection,
    SpApiClient,
    SpApiError,
    TokenEndpointUnavailable,
)
from cancelguard.amazon.operations import OPERATIONS, UsagePlan
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.render import V2026_STATUS
from cancelguard.simulator.spapi.server import Faults, Simulator, build_simulator
from cancelguard.simulator.spapi.testing import SimulatedTime, connection_for, serving
from cancelguard.simulator.spapi.truth import ground_truth, window_truths

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SPEC = ScenarioSpec(NOW, days=7, orders_per_day=10)  # 3 sellers x 4 marketplaces
AFTER = NOW - timedelta(days=8)
STORM = Backoff(base_s=0.01, cap_s=0.5, max_attempts=25)


def fast_plans(sim: Simulator) -> None:
    """A seller with a big usage plan: the header tells the client, which then goes fast."""
    for key in OPERATIONS:
        sim.plans[(None, key)] = UsagePlan(1000.0, 1000)


@pytest_asyncio.fixture(loop_scope="session")
async def world() -> AsyncIterator[tuple[Simulator, str]]:
    sim = build_simulator(SPEC, frozen=True, faults=Faults(processing_seconds=60))
    fast_plans(sim)
    async with serving(sim) as base:
        yield sim, base


def expected_v0(sim: Simulator, seller: str) -> dict[str, tuple[str, str]]:
    """What a LastUpdated poll of everything should return: order id -> (status, LastUpdateDate)."""
    as_of = sim.clock.now()
    out = {}
    for order in sim.world.orders_of(seller):
        v = order.visible(as_of)
        if v is not None and AFTER <= v.at <= as_of - timedelta(minutes=2):
            out[order.amazon_order_id] = (v.status, v.at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


async def test_v0_pages_through_every_order_with_items(world: tuple[Simulator, str]) -> None:
    sim, base = world
    for seller, account in sim.world.sellers.items():
        clock = SimulatedTime(sim)
        async with SpApiClient(connection_for(sim, base, seller), clock=clock) as amazon:
            got: dict[str, tuple[str, str]] = {}
            cursor = None
            async for page in amazon.orders_v0.get_orders(
                marketplace_ids=list(account.marketplace_ids),
                last_updated_after=AFTER,
                max_results_per_page=50,
            ):
                for order in page.orders:
                    assert order["AmazonOrderId"] not in got
                    got[order["AmazonOrderId"]] = (order["OrderStatus"], order["LastUpdateDate"])
                cursor = page.last_updated_before
            assert got == expected_v0(sim, seller)
            assert cursor == "2026-11-20T11:58:00Z"
            for order_id in list(got)[:: max(1, len(got) // 60)]:
                items = await amazon.orders_v0.get_order_items(order_id)
                sim_order = sim.world.orders[(seller, order_id)]
                state = sim_order.visible(sim.clock.now())
                assert state is not None
                assert [i["OrderItemId"] for i in items] == [i.order_item_id for i in sim_order.items]
                assert [i["BuyerRequestedCancel"]["IsBuyerRequestedCancel"] for i in items] == [
                    "true" if s.requested else "false" for s in state.items
                ]


async def test_item_pages_are_followed(world: tuple[Simulator, str]) -> None:
    sim, base = world
    seller = "A1SIMSELLER01"
    multi = next(o for o in sim.world.orders_of(seller) if len(o.items) == 3 and o.visible(sim.clock.now()))
    sim.order_items_page_size = 1
    try:
        async with SpApiClient(connection_for(sim, base, seller), clock=SimulatedTime(sim)) as amazon:
            pages = [p async for p in amazon.orders_v0.get_order_items_pages(multi.amazon_order_id)]
    finally:
        sim.order_items_page_size = 30
    assert [len(p.order_items) for p in pages] == [1, 1, 1]
    assert [p.order_items[0]["OrderItemId"] for p in pages] == [i.order_item_id for i in multi.items]


async def test_v2026_pages_through_every_order_with_who_cancelled(world: tuple[Simulator, str]) -> None:
    sim, base = world
    for seller in sim.world.sellers:
        async with SpApiClient(connection_for(sim, base, seller), clock=SimulatedTime(sim)) as amazon:
            got = {}
            async for page in amazon.orders_2026.search_orders(
                last_updated_after=AFTER, max_results_per_page=100
            ):
                got.update({o["orderId"]: o for o in page.orders})
        expected = expected_v0(sim, seller)
        assert {k: (o["fulfillment"]["fulfillmentStatus"], o["lastUpdatedTime"]) for k, o in got.items()} == {
            k: (V2026_STATUS[status], at) for k, (status, at) in expected.items()
        }
        for order_id, order in got.items():
            state = sim.world.orders[(seller, order_id)].visible(sim.clock.now())
            assert state is not None
            executions = [i.get("cancellation", {}).get("cancellationExecution") for i in order["orderItems"]]
            assert executions == [
                {"cancelledBy": s.cancelled_by, "cancelReason": s.cancel_reason} if s.cancelled_by else None
                for s in state.items
            ]


async def test_a_429_storm_and_503s_delay_but_lose_nothing(world: tuple[Simulator, str]) -> None:
    sim, base = world
    seller = "A2SIMSELLER02"
    sim.stats.clear()
    sim.faults.update({"throttle_rate": 0.35, "error_503_rate": 0.15, "error_500_rate": 0.05})
    try:
        async with SpApiClient(
            connection_for(sim, base, seller, backoff=STORM), clock=SimulatedTime(sim)
        ) as amazon:
            v0 = {}
            async for page in amazon.orders_v0.get_orders(
                marketplace_ids=list(sim.world.sellers[seller].marketplace_ids),
                last_updated_after=AFTER,
                max_results_per_page=10,
            ):
                v0.update({o["AmazonOrderId"]: (o["OrderStatus"], o["LastUpdateDate"]) for o in page.orders})
            v2026 = set()
            async for p in amazon.orders_2026.search_orders(
                last_updated_after=AFTER, max_results_per_page=10
            ):
                v2026 |= {o["orderId"] for o in p.orders}
    finally:
        sim.faults.update({"throttle_rate": 0.0, "error_503_rate": 0.0, "error_500_rate": 0.0})
    assert v0 == expected_v0(sim, seller)
    assert v2026 == set(v0)
    assert sim.stats["ordersV0.getOrders 429"] > 5 and sim.stats["ordersV0.getOrders 503"] > 2
    assert sim.stats["orders2026.searchOrders 429"] > 5


async def test_the_client_keeps_to_the_plan_amazon_announces() -> None:
    """With the model's own plans (no overrides), the simulator never has to throttle the client."""
    sim = build_simulator(ScenarioSpec(NOW, orders_per_day=6, sellers=("A1SIMSELLER01",)), frozen=True)
    sim.monotonic = lambda: (sim.clock.now() - NOW).total_seconds()  # Amazon's buckets on simulated time
    async with serving(sim) as base:
        clock = SimulatedTime(sim)
        async with SpApiClient(connection_for(sim, base, "A1SIMSELLER01"), clock=clock) as amazon:
            pages = 0
            async for _ in amazon.orders_v0.get_orders(
                marketplace_ids=["ATVPDKIKX0DER", "A1PA6795UKMFR9"],
                last_updated_after=AFTER,
                max_results_per_page=1,
            ):
                pages += 1
    assert pages > 20  # past the burst of 20
    assert sim.stats["ordersV0.getOrders 200"] == pages and sim.stats["ordersV0.getOrders 429"] == 0
    # the client waited 1/0.0167 s per call past the burst, in simulated time
    assert sum(clock.slept) == pytest.approx((pages - 20) / 0.0167, rel=0.01)


async def test_a_cancel_feed_shows_up_as_cancelled_by_merchant(world: tuple[Simulator, str]) -> None:
    sim, base = world
    seller = "A3SIMSELLER03"
    markets = list(sim.world.sellers[seller].marketplace_ids)
    now = sim.clock.now()
    candidates = [
        o for o in sim.world.orders_of(seller)
        if o.channel == "MFN" and (v := o.current(now)) is not None
        and v.status == "Unshipped" and o.visible(now) is not None and o.visible(now).status == "Unshipped"
    ]  # fmt: skip
    target, partial = candidates[0], next(o for o in candidates[1:] if len(o.items) > 1)
    shipped = next(
        o for o in sim.world.orders_of(seller) if (v := o.current(now)) is not None and v.status == "Shipped"
    )

    def cancel(order_id: str, item_ids: list[str], reason: CancelReason) -> OrderCancel:
        return OrderCancel(order_id, tuple(ItemCancel(i, reason) for i in item_ids))

    cancels = [
        cancel(target.amazon_order_id, [i.order_item_id for i in target.items], CancelReason.NO_INVENTORY),
        cancel(partial.amazon_order_id, [partial.items[0].order_item_id], CancelReason.CUSTOMER_EXCHANGE),
        cancel(shipped.amazon_order_id, [shipped.items[0].order_item_id], CancelReason.NO_INVENTORY),
        cancel("999-0000000-0000000", ["1"], CancelReason.NO_INVENTORY),  # no such order
    ]
    async with SpApiClient(connection_for(sim, base, seller), clock=SimulatedTime(sim)) as amazon:
        feed_id = await amazon.feeds.submit_cancellations(cancels, markets)
        report = await amazon.feeds.processing_report(feed_id, poll_interval_s=30)
        assert (report.messages_processed, report.messages_successful, report.messages_with_error) == (
            4,
            2,
            2,
        )
        assert [r.message_code for r in report.errors_for("3")] == ["90102"]  # Shipped: cannot cancel
        assert [r.message_code for r in report.errors_for("4")] == ["90101"]
        sim.clock.advance(180)  # past the API's lag
        order = await amazon.orders_2026.get_order(target.amazon_order_id)
        assert order["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
        assert {i["cancellation"]["cancellationExecution"]["cancelledBy"] for i in order["orderItems"]} == {
            "MERCHANT"
        }
        assert {i["cancellation"]["cancellationExecution"]["cancelReason"] for i in order["orderItems"]} == {
            "NoInventory"
        }
        assert (await amazon.orders_v0.get_order(target.amazon_order_id))["OrderStatus"] == "Canceled"
        half = await amazon.orders_2026.get_order(partial.amazon_order_id)
        assert half["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
        assert half["orderItems"][0]["cancellation"]["cancellationExecution"] == {
            "cancelledBy": "MERCHANT", "cancelReason": "CustomerExchange"}  # fmt: skip
        # and it is found by a poll of changes since the cancel
        found = [o async for p in amazon.orders_2026.search_orders(
            last_updated_after=now, marketplace_ids=[target.marketplace_id]) for o in p.orders]  # fmt: skip
        assert target.amazon_order_id in {o["orderId"] for o in found}
    truth = {o["amazon_order_id"]: o for o in ground_truth(sim.world, sim.clock.now())["orders"]}
    assert truth[target.amazon_order_id]["rule"] == "SELLER_CANCEL_UNSHIPPED"
    assert truth[partial.amazon_order_id]["rule"] == "PARTIAL_SELLER_CANCEL"


async def test_reports_round_trip(world: tuple[Simulator, str]) -> None:
    sim, base = world
    seller = "A1SIMSELLER01"
    async with SpApiClient(connection_for(sim, base, seller), clock=SimulatedTime(sim)) as amazon:
        unshipped = await amazon.reports.fetch(
            "GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING", ["A1VC38T7YXB528"], poll_interval_s=15
        )
        lines = unshipped.decode("cp932").splitlines()
        header = lines[0].split("\t")
        assert header[0] == "order-id" and "is-buyer-requested-cancellation" in header
        assert "buyer-requested-cancel-reason" in header
        now = sim.clock.now()
        expected = {
            o.amazon_order_id
            for o in sim.world.orders_of(seller)
            if o.marketplace_id == "A1VC38T7YXB528"
            and o.channel == "MFN"
            and (v := o.visible(now)) is not None
            and v.status == "Unshipped"
        }
        assert {line.split("\t")[0] for line in lines[1:]} == expected
        sim.faults.gzip_documents = False
        try:
            performance = json.loads(
                await amazon.reports.fetch(
                    "GET_V2_SELLER_PERFORMANCE_REPORT",
                    ["ATVPDKIKX0DER", "A1PA6795UKMFR9"],
                    poll_interval_s=15,
                )
            )
        finally:
            sim.faults.gzip_documents = True
        done_at = sim.clock.now()
        truth = {
            (w.marketplace_id): w
            for w in window_truths(sim.world, done_at)
            if w.seller_id == seller and w.kind == "AMAZON_ALIGNED" and w.days == 7
        }
        for metrics in performance["performanceMetrics"]:
            rate = metrics["preFulfillmentCancellationRate"]
            w = truth[metrics["marketplaceId"]]
            assert (rate["orderCount"], rate["cancellationCount"]) == (w.orders, w.cancellations)
            assert rate["reportingDateRange"] == {
                "reportingDateFrom": "2026-11-12T00:00Z",
                "reportingDateTo": "2026-11-18T23:59Z",
            }
        everything = await amazon.reports.fetch(
            "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL",
            ["ATVPDKIKX0DER"],
            poll_interval_s=15,
            data_start_time=AFTER,
        )
        rows = [line.split("\t") for line in everything.decode("cp1252").splitlines()]
        assert rows[0][0] == "amazon-order-id"
        assert {r[rows[0].index("fulfillment-channel")] for r in rows[1:]} == {"Merchant", "Amazon"}
        sim.faults.report_outcome = "FATAL"
        try:
            with pytest.raises(ProcessingFailed, match="FATAL"):
                await amazon.reports.fetch(
                    "GET_V2_SELLER_PERFORMANCE_REPORT", ["ATVPDKIKX0DER"], poll_interval_s=15
                )
        finally:
            sim.faults.report_outcome = "DONE"


async def test_a_refused_call_names_the_operation_and_amazons_code(world: tuple[Simulator, str]) -> None:
    sim, base = world
    async with SpApiClient(connection_for(sim, base, "A1SIMSELLER01"), clock=SimulatedTime(sim)) as amazon:
        with pytest.raises(SpApiError) as caught:
            async for _ in amazon.orders_v0.get_orders(
                marketplace_ids=["A1AM78C64UM0Y8"], last_updated_after=AFTER
            ):
                pass
    assert caught.value.operation == "getOrders" and caught.value.code == "InvalidInput"
    assert caught.value.status == 400 and "A1AM78C64UM0Y8" in str(caught.value)


async def test_an_expired_token_is_refreshed_once(world: tuple[Simulator, str]) -> None:
    sim, base = world
    sim.stats.clear()
    async with SpApiClient(connection_for(sim, base, "A1SIMSELLER01"), clock=StepClock()) as amazon:
        await amazon.orders_2026.get_order(next(iter(sim.world.orders_of("A1SIMSELLER01"))).amazon_order_id)
        sim.clock.advance(2 * 3600)  # the simulator's token expired; the client's clock did not see it
        await amazon.orders_2026.get_order(next(iter(sim.world.orders_of("A1SIMSELLER01"))).amazon_order_id)
    sim.clock.advance(-2 * 3600)
    assert sim.stats["lwa.token"] == 2 and sim.stats["orders2026.getOrder 403"] == 1


async def test_wrong_credentials_say_so_without_the_secret(world: tuple[Simulator, str], caplog) -> None:
    sim, base = world
    sim.stats.clear()
    conn = connection_for(sim, base, "A1SIMSELLER01")
    bad = SellerConnection(
        conn.seller_id, conn.endpoint,
        LwaCredentials(conn.credentials.client_id, Secret("s3cr3t-wrong"), conn.credentials.refresh_token),
        lwa_endpoint=conn.lwa_endpoint, backoff=conn.backoff,
    )  # fmt: skip
    caplog.set_level(logging.DEBUG)
    async with SpApiClient(bad, clock=SimulatedTime(sim)) as amazon:
        with pytest.raises(LwaAuthError, match=r"invalid_client.*client id or client secret") as caught:
            await amazon.orders_2026.get_order("111-0000000-0000000")
    assert sim.stats["lwa.token"] == 1  # not retried
    for text in (str(caught.value), repr(bad), caplog.text):
        assert "s3cr3t-wrong" not in text and sim.world.sellers["A1SIMSELLER01"].refresh_token not in text


async def test_an_unreachable_token_endpoint_is_not_hammered(world: tuple[Simulator, str]) -> None:
    sim, base = world
    sim.stats.clear()
    sim.faults.token_endpoint_down = True
    clock = SimulatedTime(sim)
    backoff = Backoff(base_s=1.0, cap_s=8.0, max_attempts=4)
    try:
        async with SpApiClient(
            connection_for(sim, base, "A1SIMSELLER01", backoff=backoff), clock=clock
        ) as amazon:
            with pytest.raises(TokenEndpointUnavailable, match=r"unreachable after 4 attempts: HTTP 503"):
                await amazon.orders_2026.get_order("111-0000000-0000000")
            for _ in range(20):  # many callers, right after: all fail fast, none reaches the endpoint
                with pytest.raises(TokenEndpointUnavailable, match="cooling down"):
                    await amazon.orders_2026.get_order("111-0000000-0000000")
            assert not amazon.tokens.healthy
            assert sim.stats["lwa.token"] == 4
            assert [round(s) for s in clock.slept] == [1, 2, 4] or all(
                0.5 * 2**i <= s <= 2**i for i, s in enumerate(clock.slept)
            )
            clock.sim.clock.advance(31)  # the cool-down is over, the endpoint is back
            sim.faults.token_endpoint_down = False
            await amazon.orders_2026.get_order(
                next(iter(sim.world.orders_of("A1SIMSELLER01"))).amazon_order_id
            )
            assert amazon.tokens.healthy
    finally:
        sim.faults.token_endpoint_down = False


class StepClock:
    """Sleeping moves time at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_closed_port_is_a_clear_error_after_bounded_attempts() -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = SellerConnection(
        "A1SELLER", f"http://127.0.0.1:{port}",
        LwaCredentials("client", Secret("secret"), Secret("Atzr|x")),
        lwa_endpoint=f"http://127.0.0.1:{port}/auth/o2/token", backoff=Backoff(0.5, 4.0, 5),
    )  # fmt: skip
    clock = StepClock()
    async with SpApiClient(conn, clock=clock) as amazon:
        with pytest.raises(
            TokenEndpointUnavailable, match=rf"127.0.0.1:{port}/auth/o2/token is unreachable after 5"
        ):
            await amazon.orders_v0.get_order("111-0000000-0000000")
        assert amazon.tokens.requests_sent == 5 and len(clock.slept) == 4
        assert all(0.25 * 2**i <= d <= min(4.0, 0.5 * 2**i) for i, d in enumerate(clock.slept))
        with pytest.raises(TokenEndpointUnavailable, match="cooling down"):
            await amazon.orders_v0.get_order("111-0000000-0000000")
        assert amazon.tokens.requests_sent == 5


def test_documents_are_gzip_when_the_model_says_so() -> None:
    assert gzip.decompress(gzip.compress(b"x", mtime=0)) == b"x"
