"""End to end: the three services as processes, fed raw Amazon-shaped input, asked through the gRPC API
with the generated stubs, stopped with SIGTERM.
"""

import asyncio
import json
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

from cancelguard import kafka
from cancelguard.config import Settings
from cancelguard.localstack import find_free_port
from cancelguard.processes import ServiceProcesses, settings_env
from cancelguard.simulator.scenario import Scenario, Story, generate
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

pytestmark = pytest.mark.e2e


async def publish(settings: Settings, scenario: Scenario) -> None:
    await kafka.ensure_topics(
        settings.kafka_bootstrap, settings.all_topics, partitions=settings.topic_partitions, replication=1
    )
    producer = kafka.new_producer(settings.kafka_bootstrap, client_id="e2e")
    await producer.start()
    try:
        sends = [
            await producer.send(settings.order_change_topic, json.dumps(n).encode())
            for n in scenario.notifications
        ]
        sends += [
            await producer.send(settings.buyer_messages_topic, json.dumps(m).encode())
            for m in scenario.messages
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


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
    assert "exit codes: ingestion=0, metrics=0, api=0" in out.stdout
    assert os.listdir(tmp_path)
