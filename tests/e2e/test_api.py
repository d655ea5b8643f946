"""End to end: the three services as processes, fed raw Amazon-shaped input, asked through the gRPC API
with the generated stubs, stopped with SIGTERM.
"""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from cancelguard.config import Settings
from cancelguard.demo import publish  # keyed by order id, as Amazon's bridge should be
from cancelguard.localstack import find_free_port
from cancelguard.processes import ServiceProcesses, settings_env
from cancelguard.simulator.scenario import Scenario, Story, generate
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

pytestmark = pytest.mark.e2e


class Pipeline:
    def __init__(
        self, settings: Settings, services: ServiceProcesses, scenario: Scenario, now: datetime
    ) -> None:
        self.settings = settings
        self.services = services
        self.scenario = scenario
        self.now = now
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{settings.api_port}")
        self.orders = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.metrics = metrics_pb2_grpc.MetricsServiceStub(self.channel)

    def order_with(self, story: Story) -> tuple[str, str, str]:
        return next(k for k, s in sorted(self.scenario.stories.items()) if s is story)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pipeline(
    kafka_bootstrap: str, postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    """The services once for this module, in their own topics and schema."""
    namespace = f"e2e{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_dsn,
        postgres_schema=namespace,
        topic_prefix=f"{namespace}.",
        topic_partitions=3,
        api_port=find_free_port(),
        ingestion_health_port=find_free_port(),
        metrics_health_port=find_free_port(),
        api_metrics_port=0,
        ingestion_metrics_port=0,
        metrics_metrics_port=0,
        batch_timeout_ms=50,
    )
    services = ServiceProcesses(settings, tmp_path_factory.mktemp("logs"))
    services.start()
    try:
        await services.wait_healthy(timeout=120)
        now = datetime.now(UTC)
        scenario = generate(now, seed=21)
        await publish(settings, scenario)
        p = Pipeline(settings, services, scenario, now)
        # wait until everything is visible through the API
        want = scenario.expected()
        deadline = time.monotonic() + 90
        while True:
            seen = {}
            for seller, mkt in want:
                r = await p.metrics.GetCancellationRate(
                    metrics_pb2.GetCancellationRateRequest(
                        seller_account=seller, marketplace_id=mkt, window_kind=metrics_pb2.WINDOW_KIND_LIVE
                    ),
                    timeout=5,
                )
                seen[(seller, mkt)] = (r.total_orders, r.cancelled_orders)
            if seen == {k: (e.orders, e.cancellations) for k, e in want.items()}:
                break
            assert time.monotonic() < deadline, f"API shows {seen}, scenario says {want}"
            await asyncio.sleep(0.3)
        yield p
        await p.channel.close()
    finally:
        codes = services.stop()
        conn = await asyncpg.connect(postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        await conn.close()
    # SIGTERM: every service drained and exited 0
    assert codes == {"ingestion": 0, "metrics": 0, "api": 0}, {n: services.log_tail(n) for n in codes}


async def test_cr_per_seller_and_marketplace_matches_the_scenario(pipeline: Pipeline) -> None:
    for (seller, mkt), want in pipeline.scenario.expected().items():
        live = await pipeline.metrics.GetCancellationRate(
            metrics_pb2.GetCancellationRateRequest(
                seller_account=seller, marketplace_id=mkt, window_kind=metrics_pb2.WINDOW_KIND_LIVE
            )
        )
        assert (live.total_orders, live.cancelled_orders) == (want.orders, want.cancellations)
        assert live.rate == pytest.approx(want.cancellations / want.orders)
        assert live.window_end.ToDatetime(tzinfo=UTC) > pipeline.now
        status = metrics_pb2.RateStatus.Name(live.status)
        expected_status = (
            "RATE_STATUS_AT_RISK"
            if live.rate >= 0.025
            else "RATE_STATUS_WARNING"
            if live.rate >= 0.02
            else "RATE_STATUS_GOOD"
        )
        assert status == expected_status
        amazon = await pipeline.metrics.GetCancellationRate(
            metrics_pb2.GetCancellationRateRequest(seller_account=seller, marketplace_id=mkt)
        )
        assert amazon.window_kind == metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED
        start = amazon.window_start.ToDatetime(tzinfo=UTC)
        end = amazon.window_end.ToDatetime(tzinfo=UTC)
        assert (end - start).days == 7 and start.hour == 0 and end.date() < pipeline.now.date()
        assert amazon.total_orders <= live.total_orders


async def test_open_requests_come_with_the_right_action(pipeline: Pipeline) -> None:
    for (seller, mkt), want in pipeline.scenario.expected().items():
        listed = []
        token = ""
        while True:  # page through two at a time
            page = await pipeline.orders.ListCancellationRequests(
                orders_pb2.ListCancellationRequestsRequest(
                    seller_account=seller, marketplace_id=mkt, page_size=2, page_token=token
                )
            )
            listed += page.orders
            token = page.next_page_token
            if not token:
                break
        assert len(listed) == want.open_requests
        for order in listed:
            story = pipeline.scenario.stories[(seller, mkt, order.amazon_order_id)]
            action = order.recommended_action
            if story is Story.FORMAL_REQUEST_OPEN:
                assert action.code == orders_pb2.RecommendedAction.CODE_CANCEL_BUYER_CANCELED
                assert action.cancel_reason == "BuyerCanceled" and not action.counts_against_cr
                assert order.cancellation_request.kind == orders_pb2.CancellationRequest.KIND_FORMAL
            else:
                assert story is Story.INFORMAL_REQUEST_OPEN
                assert action.code == orders_pb2.RecommendedAction.CODE_ASK_FOR_FORMAL_REQUEST
                assert action.reply_text and order.amazon_order_id in action.reply_text
                assert order.cancellation_request.kind == orders_pb2.CancellationRequest.KIND_INFORMAL


@pytest.mark.parametrize(
    ("story", "verdict", "rule"),
    [
        (Story.FORMAL_REQUEST_CANCELLED, "VERDICT_EXCLUDED", "FORMAL_REQUEST_BEFORE_CANCEL"),
        (Story.INFORMAL_REQUEST_CANCELLED, "VERDICT_COUNTED", "INFORMAL_REQUEST_ONLY"),
        (Story.SELLER_CANCELLED, "VERDICT_COUNTED", "UNKNOWN_CANCELLER"),
        (Story.SELF_CANCEL_PENDING, "VERDICT_EXCLUDED", "BUYER_SELF_CANCEL"),
        (Story.FBA, "VERDICT_NOT_APPLICABLE", "AFN_NOT_IN_CR"),
        (Story.SHIPPED, "VERDICT_NOT_CANCELLED", "NOT_CANCELLED"),
    ],
)
async def test_get_order_explains_the_attribution(
    pipeline: Pipeline, story: Story, verdict: str, rule: str
) -> None:
    seller, mkt, order_id = pipeline.order_with(story)
    order = await pipeline.orders.GetOrder(
        orders_pb2.GetOrderRequest(seller_account=seller, marketplace_id=mkt, amazon_order_id=order_id)
    )
    assert order.amazon_order_id == order_id
    assert orders_pb2.Attribution.Verdict.Name(order.attribution.verdict) == verdict
    assert order.attribution.rule == rule
    assert order.attribution.explanation
    assert order.items


async def test_a_shipped_order_with_a_request_gets_return_advice(pipeline: Pipeline) -> None:
    seller, mkt, order_id = pipeline.order_with(Story.REQUEST_AFTER_SHIPMENT)
    order = await pipeline.orders.GetOrder(
        orders_pb2.GetOrderRequest(seller_account=seller, marketplace_id=mkt, amazon_order_id=order_id)
    )
    assert order.recommended_action.code == orders_pb2.RecommendedAction.CODE_ADVISE_RETURN
    assert order_id in order.recommended_action.reply_text


@pytest.mark.parametrize(
    ("request_", "code", "reason", "field"),
    [
        (
            orders_pb2.GetOrderRequest(seller_account="s", marketplace_id="NOPE", amazon_order_id="1"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNKNOWN_MARKETPLACE",
            "marketplace_id",
        ),
        (
            orders_pb2.GetOrderRequest(marketplace_id="ATVPDKIKX0DER", amazon_order_id="1"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "seller_account",
        ),
        (
            orders_pb2.GetOrderRequest(
                seller_account="s", marketplace_id="ATVPDKIKX0DER", amazon_order_id="404-0-0"
            ),
            grpc.StatusCode.NOT_FOUND,
            "NOT_FOUND",
            "",
        ),
        (
            metrics_pb2.GetCancellationRateRequest(
                seller_account="s", marketplace_id="ATVPDKIKX0DER", window_days=30
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "window_days",
        ),
        (
            orders_pb2.ListCancellationRequestsRequest(
                seller_account="s", marketplace_id="ATVPDKIKX0DER", page_token="bm90IGEgdG9rZW4="
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "page_token",
        ),
    ],
    ids=["unknown-marketplace", "missing-seller", "not-found", "no-30-day-window-in-us", "bad-page-token"],
)
async def test_errors_say_what_is_wrong_with_an_error_info(
    pipeline: Pipeline, request_: object, code: grpc.StatusCode, reason: str, field: str
) -> None:
    call = {
        orders_pb2.GetOrderRequest: pipeline.orders.GetOrder,
        orders_pb2.ListCancellationRequestsRequest: pipeline.orders.ListCancellationRequests,
        metrics_pb2.GetCancellationRateRequest: pipeline.metrics.GetCancellationRate,
    }[type(request_)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request_)
    assert err.value.code() == code
    status = rpc_status.from_call(err.value)
    assert status is not None and status.message == err.value.details()
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert [i.reason for i in infos] == [reason]
    assert infos[0].domain == "cancelguard.api"
    if field:
        assert field in err.value.details()


async def test_reflection_lists_the_services(pipeline: Pipeline) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(pipeline.channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for reply in stub.ServerReflectionInfo(requests()):
        names |= {s.name for s in reply.list_services_response.service}
    assert {
        "cancelguard.v1.OrderService",
        "cancelguard.v1.MetricsService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names


def test_the_cli_asks_the_api_for_a_rate(pipeline: Pipeline) -> None:
    (seller, mkt), want = next(iter(sorted(pipeline.scenario.expected().items())))
    out = subprocess.run(
        [sys.executable, "-m", "cancelguard", "cr", seller, mkt, "--live"],
        capture_output=True,
        text=True,
        env=settings_env(pipeline.settings),
        timeout=60,
        check=True,
    )
    assert f"{want.cancellations}/{want.orders}" in out.stdout


def test_the_demo_runs_end_to_end(settings: Settings, tmp_path: Path) -> None:
    """What `make demo` runs, against the test stack: it must print the table and exit 0."""
    env = {**settings_env(settings), "CANCELGUARD_DEMO_LOGS": str(tmp_path)}
    for name in ("CANCELGUARD_TOPIC_PREFIX", "CANCELGUARD_POSTGRES_SCHEMA"):
        env[name] = f"{settings.topic_prefix}demo." if "TOPIC" in name else f"{settings.postgres_schema}_demo"
    out = subprocess.run(
        [sys.executable, "-m", "cancelguard", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.count("-> matches") == 3
    assert "Open cancellation requests" in out.stdout
    assert "Amazon's own figure arrives" in out.stdout and "differs from Amazon's" in out.stdout  # an alert
    assert "exit codes: ingestion=0, metrics=0, api=0" in out.stdout
    assert os.listdir(tmp_path)


def _evaluate(intent: int, seller: str, mkt: str, order_id: str) -> orders_pb2.EvaluateCancellationRequest:
    return orders_pb2.EvaluateCancellationRequest(
        seller_account=seller, marketplace_id=mkt, amazon_order_id=order_id, intent=intent
    )


Intent = orders_pb2.EvaluateCancellationRequest
Code = orders_pb2.RecommendedAction


@pytest.mark.parametrize(
    ("story", "intent", "code", "counts"),
    [
        (Story.UNSHIPPED, Intent.INTENT_NO_INVENTORY, Code.CODE_CANCEL_NO_INVENTORY, True),
        (Story.UNSHIPPED, Intent.INTENT_BUYER_CANCELED, Code.CODE_REFUSE_BUYER_CANCELED_REASON, True),
        (Story.FORMAL_REQUEST_OPEN, Intent.INTENT_NO_INVENTORY, Code.CODE_CANCEL_BUYER_CANCELED, False),
        (Story.INFORMAL_REQUEST_OPEN, Intent.INTENT_UNSPECIFIED, Code.CODE_ASK_FOR_FORMAL_REQUEST, False),
        (Story.SHIPPED, Intent.INTENT_NO_INVENTORY, Code.CODE_CANNOT_CANCEL_SHIPPED, False),
    ],
)
async def test_evaluate_cancellation_says_what_it_would_cost(
    pipeline: Pipeline, story: Story, intent: int, code: int, counts: bool
) -> None:
    seller, mkt, order_id = pipeline.order_with(story)
    reply = await pipeline.orders.EvaluateCancellation(_evaluate(intent, seller, mkt, order_id))
    assert reply.action.code == code
    assert reply.action.counts_against_cr is counts
    assert reply.action.explanation
    if code == Code.CODE_CANCEL_NO_INVENTORY:
        assert reply.action.cancel_reason == "NoInventory"
    if code == Code.CODE_REFUSE_BUYER_CANCELED_REASON:
        assert "formal" in reply.action.explanation and not reply.action.cancel_reason
    if counts or code == Code.CODE_ASK_FOR_FORMAL_REQUEST:
        # what a cancel would cause (for an informal request: if the seller cancelled against the advice);
        # the order is recent, so it sits in the live window: one more cancellation, same orders
        assert reply.projected_rate.cancelled_orders == reply.current_rate.cancelled_orders + 1
        assert reply.projected_rate.total_orders == reply.current_rate.total_orders
        assert reply.projected_rate.rate > reply.current_rate.rate
    else:
        assert not reply.HasField("projected_rate")


async def test_what_if_projects_the_rate_for_a_set_of_orders(pipeline: Pipeline) -> None:
    stories = sorted(pipeline.scenario.stories.items())
    seller, mkt = "A1DEMOSELLERUS", "ATVPDKIKX0DER"
    unshipped = [o for (s, m, o), st in stories if (s, m) == (seller, mkt) and st is Story.UNSHIPPED][:2]
    shipped = next(o for (s, m, o), st in stories if (s, m) == (seller, mkt) and st is Story.SHIPPED)
    reply = await pipeline.metrics.ProjectCancellationRate(
        metrics_pb2.ProjectCancellationRateRequest(
            seller_account=seller,
            marketplace_id=mkt,
            amazon_order_ids=[*unshipped, shipped, "999-0000000-0000000"],
            cancel_reason="NoInventory",
        )
    )
    assert reply.current.window_kind == metrics_pb2.WINDOW_KIND_LIVE
    assert reply.projected.cancelled_orders == reply.current.cancelled_orders + len(unshipped)
    assert reply.projected.total_orders == reply.current.total_orders
    effects = {e.amazon_order_id: e for e in reply.effects}
    assert all(effects[o].cancelled_orders_delta == 1 for o in unshipped)
    assert effects[shipped].found and effects[shipped].cancelled_orders_delta == 0
    assert not effects["999-0000000-0000000"].found


async def test_roll_off_lists_the_counted_cancellations_and_when_the_rate_recovers(
    pipeline: Pipeline,
) -> None:
    for (seller, mkt), want in pipeline.scenario.expected().items():
        reply = await pipeline.metrics.GetRollOff(
            metrics_pb2.GetRollOffRequest(
                seller_account=seller, marketplace_id=mkt, window_kind=metrics_pb2.WINDOW_KIND_LIVE
            )
        )
        assert reply.current.cancelled_orders == want.cancellations
        assert len(reply.leaving) == want.cancellations
        for leaving in reply.leaving:
            assert leaving.leaves_at.ToDatetime() > leaving.counted_at.ToDatetime()
            assert pipeline.scenario.stories[(seller, mkt, leaving.amazon_order_id)] in (
                Story.SELLER_CANCELLED,
                Story.INFORMAL_REQUEST_CANCELLED,
            )
        assert reply.days and reply.days[0].rate.cancelled_orders == want.cancellations
        # no new cancellations are assumed: once every counted one has left, the rate is under both levels
        assert reply.HasField("under_threshold_on") and reply.HasField("under_warning_on")
        last_leaves = max(x.leaves_at.ToDatetime() for x in reply.leaving)
        assert reply.under_warning_on.ToDatetime() <= last_leaves


async def test_suppression_risk_needs_two_consecutive_seller_cancels_of_a_sku(pipeline: Pipeline) -> None:
    from datetime import timedelta

    from cancelguard.simulator.order_change import NotificationItem, order_change_notification

    seller, mkt = "A9SUPPRESSION", "A1PA6795UKMFR9"
    base = pipeline.now - timedelta(days=5)
    # SKU-X: cancelled, cancelled -> at risk. SKU-Y: cancelled, shipped, cancelled -> not consecutive.
    plan = [
        ("X1", "SKU-X", "Canceled"),
        ("Y1", "SKU-Y", "Canceled"),
        ("X2", "SKU-X", "Canceled"),
        ("Y2", "SKU-Y", "Shipped"),
        ("Y3", "SKU-Y", "Canceled"),
    ]
    notifications = []
    for n, (order, sku, final) in enumerate(plan):
        bought = base + timedelta(hours=n)
        for hours, status in ((0, "Pending"), (1, "Unshipped"), (6, final)):
            notifications.append(
                order_change_notification(
                    seller_id=seller,
                    amazon_order_id=f"302-000000{n}-{order}",
                    marketplace_id=mkt,
                    change_type="OrderStatusChange",
                    change_reason="status",
                    time_of_change=bought + timedelta(hours=hours),
                    order_status=status,
                    purchase_date=bought,
                    fulfillment_type="MFN",
                    latest_ship_date=bought + timedelta(days=2),
                    items=[NotificationItem(f"item-{order}", sku, 1, 1 if status == "Shipped" else 0)],
                )
            )
    await publish(pipeline.settings, Scenario(notifications=notifications))
    deadline = time.monotonic() + 30
    while True:
        rate = await pipeline.metrics.GetCancellationRate(
            metrics_pb2.GetCancellationRateRequest(
                seller_account=seller, marketplace_id=mkt, window_kind=metrics_pb2.WINDOW_KIND_LIVE
            )
        )
        if rate.total_orders == len(plan) and rate.cancelled_orders == 4:
            break
        assert time.monotonic() < deadline, rate
        await asyncio.sleep(0.2)
    reply = await pipeline.metrics.ListSuppressionRisks(
        metrics_pb2.ListSuppressionRisksRequest(seller_account=seller, marketplace_id=mkt)
    )
    assert [(r.seller_sku, [o[-2:] for o in r.amazon_order_ids]) for r in reply.risks] == [
        ("SKU-X", ["X1", "X2"])
    ]
    assert "SKU-X" in reply.risks[0].explanation


async def test_kill_9_of_the_metrics_service_loses_and_doubles_nothing(
    kafka_bootstrap: str, settings: Settings, tmp_path: Path
) -> None:
    """The scenario is published once; the metrics service is killed with SIGKILL five times while it
    applies it, and restarted each time. The rates must still equal the scenario's ground truth."""
    # small batches: many transactions, so the kills land between and inside them
    settings = settings.model_copy(update={"batch_max_records": 40})
    services = ServiceProcesses(settings, tmp_path)
    services.start()
    try:
        await services.wait_healthy(timeout=120)
        scenario = generate(datetime.now(UTC), seed=22)
        want = {k: (e.orders, e.cancellations) for k, e in scenario.expected().items()}
        total = sum(orders for orders, _ in want.values())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.api_port}") as channel:
            stub = metrics_pb2_grpc.MetricsServiceStub(channel)

            async def seen_now() -> dict[tuple[str, str], tuple[int, int]]:
                seen = {}
                for seller, mkt in want:
                    r = await stub.GetCancellationRate(
                        metrics_pb2.GetCancellationRateRequest(
                            seller_account=seller,
                            marketplace_id=mkt,
                            window_kind=metrics_pb2.WINDOW_KIND_LIVE,
                        )
                    )
                    seen[(seller, mkt)] = (r.total_orders, r.cancelled_orders)
                return seen

            await publish(settings, scenario)
            applied_at_kill = []
            for _ in range(5):
                await asyncio.sleep(0.6)
                services.kill("metrics")
                applied_at_kill.append(sum(orders for orders, _ in (await seen_now()).values()))
                services.start(("metrics",))
            assert any(0 < n < total for n in applied_at_kill), (
                f"no kill landed mid-stream: {applied_at_kill}"
            )
            deadline = time.monotonic() + 90
            while (seen := await seen_now()) != want:
                # more than the truth would be a double count: fail at once
                assert all(seen[k][0] <= want[k][0] and seen[k][1] <= want[k][1] for k in want), (seen, want)
                assert time.monotonic() < deadline, (seen, want)
                await asyncio.sleep(0.3)
            await asyncio.sleep(2)  # and it stays there once the stream is drained
            assert await seen_now() == want
    finally:
        codes = services.stop()
    assert codes == {"ingestion": 0, "metrics": 0, "api": 0}, {n: services.log_tail(n) for n in codes}
