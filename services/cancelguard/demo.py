"""`cancelguard demo` and `cancelguard run`: the whole pipeline on this machine, fed a demo scenario.

1. Kafka and Postgres: the addresses in CANCELGUARD_KAFKA_BOOTSTRAP / CANCELGUARD_POSTGRES_DSN when set,
   else the local stack (`cancelguard up`), started here if it is not running (and stopped again after).
2. A clean demo namespace (its own topics and schema), so a second run shows the same numbers.
3. The three services as child processes, until their gRPC health says SERVING.
4. The scenario's ORDER_CHANGE notifications and buyer messages, published to the raw topics as Amazon's
   bridge and the helpdesk would.
5. The result, read through the gRPC API with the generated stubs: the CR per seller account and
   marketplace, checked against the scenario's own ground truth, and the open cancellation requests.
6. Amazon's own figure: a seller performance report per shop (GET_V2_SELLER_PERFORMANCE_REPORT, read
   by the same adapter as a real one) goes on the events topic; the API shows it beside ours, and the
   alerts the metrics service raised (levels crossed, SKUs at suppression risk, our figure and Amazon's
   apart) are read back from the alerts topic.
`run` then keeps everything up until Ctrl-C and prints how to query it with grpcurl.

`demo --attach` is for services that run already (Compose, a Kubernetes port-forward): it skips 1-3,
uses the services' own namespace (CANCELGUARD_TOPIC_PREFIX, CANCELGUARD_POSTGRES_SCHEMA or their
defaults), waits until each answers SERVING on its health port on 127.0.0.1, then does 4 to 6.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from cancelguard import kafka
from cancelguard.config import Settings
from cancelguard.domain.policy import marketplace
from cancelguard.events import codec
from cancelguard.events.v1 import alert_pb2
from cancelguard.ingestion.adapters.seller_performance import parse_seller_performance
from cancelguard.metrics import alert_messages
from cancelguard.processes import SERVICES, ServiceProcesses, health_port, health_status
from cancelguard.runtime import SERVING, install_stop_signals
from cancelguard.simulator.scenario import Expected, Scenario, generate
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

DEMO_DEFAULTS = {
    "topic_prefix": "cancelguard-demo.",
    "postgres_schema": "cancelguard_demo",
    # the scenario arrives in a burst: alert on what holds for 3 s, not on every step on the way
    "alert_grace_s": 3.0,
    "alert_sweep_s": 1.0,
}


def demo_settings() -> Settings:
    """Settings from the environment, with the demo's own namespace unless the environment sets one."""
    chosen = {k: v for k, v in DEMO_DEFAULTS.items() if f"CANCELGUARD_{k.upper()}" not in os.environ}
    return Settings(**chosen)  # type: ignore[arg-type]


def say(line: str = "") -> None:
    print(line, flush=True)


async def reset_namespace(settings: Settings) -> None:
    """Drop the demo's topics and schema so every run starts from nothing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = [t for t in await admin.list_topics() if t in settings.all_topics]
        if existing:
            await admin.delete_topics(existing)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and set(await admin.list_topics()) & set(existing):
                await asyncio.sleep(0.3)
    finally:
        await admin.close()
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.postgres_schema}" CASCADE')
    finally:
        await conn.close()


async def publish(settings: Settings, scenario: Scenario) -> None:
    """As Amazon's SQS bridge and the helpdesk would: raw JSON on the raw topics, keyed by order."""
    notifications = [
        (n["Payload"]["OrderChangeNotification"]["AmazonOrderId"].encode(), json.dumps(n).encode())
        for n in scenario.notifications
    ]
    messages = [(m["amazon_order_id"].encode(), json.dumps(m).encode()) for m in scenario.messages]
    await kafka.publish(settings, settings.order_change_topic, notifications, client_id="cancelguard-demo")
    await kafka.publish(settings, settings.buyer_messages_topic, messages, client_id="cancelguard-demo")


async def wait_for_results(
    settings: Settings, expected: dict[tuple[str, str], Expected], timeout: float = 120.0
) -> dict[tuple[str, str], metrics_pb2.CancellationRate]:
    """Poll the API until every shop shows as many orders as the scenario placed, with progress."""
    want = sum(e.orders for e in expected.values())
    deadline = time.monotonic() + timeout
    last_seen = -1
    async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.api_port}") as channel:
        stub = metrics_pb2_grpc.MetricsServiceStub(channel)
        while True:
            rates = {}
            for seller, mkt in expected:
                rates[(seller, mkt)] = await stub.GetCancellationRate(
                    metrics_pb2.GetCancellationRateRequest(
                        seller_account=seller, marketplace_id=mkt, window_kind=metrics_pb2.WINDOW_KIND_LIVE
                    ),
                    timeout=5,
                )
            seen = sum(r.total_orders for r in rates.values())
            if seen != last_seen:
                say(f"  applied: {seen}/{want} orders in the live windows")
                last_seen = seen
            if seen >= want and all(
                rates[k].cancelled_orders >= e.cancellations for k, e in expected.items()
            ):
                return rates
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {seen}/{want} orders visible through the API after {timeout:.0f}s; "
                    "see the service logs"
                )
            await asyncio.sleep(0.3)


async def print_results(
    settings: Settings,
    expected: dict[tuple[str, str], Expected],
    live: dict[tuple[str, str], metrics_pb2.CancellationRate],
) -> bool:
    ok = True
    async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.api_port}") as channel:
        metrics = metrics_pb2_grpc.MetricsServiceStub(channel)
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        say()
        say("Cancellation Rate per seller account and marketplace")
        header = (
            f"  {'seller account':<16} {'mkt':<4} {'window (UTC)':<40} {'orders':>6} {'cancelled':>9} "
            f"{'rate':>7}  status"
        )
        say(header)
        say("  " + "-" * (len(header) - 2))
        for (seller, mkt), rate in sorted(live.items()):
            amazon = await metrics.GetCancellationRate(
                metrics_pb2.GetCancellationRateRequest(seller_account=seller, marketplace_id=mkt), timeout=5
            )
            country = marketplace(mkt).country
            for r, label in ((rate, "live 168 h"), (amazon, "Amazon 7 days")):
                # printed as Amazon prints its report range: first minute to last minute, UTC
                start = r.window_start.ToDatetime().strftime("%m-%d %H:%M")
                end = (r.window_end.ToDatetime() - timedelta(minutes=1)).strftime("%m-%d %H:%M")
                status = metrics_pb2.RateStatus.Name(r.status).removeprefix("RATE_STATUS_")
                say(
                    f"  {seller:<16} {country:<4} {label:<14} {start}..{end}  {r.total_orders:>6} "
                    f"{r.cancelled_orders:>9} {r.rate:>7.2%}  {status}"
                )
            want = expected[(seller, mkt)]
            match = (rate.total_orders, rate.cancelled_orders) == (want.orders, want.cancellations)
            ok &= match
            say(
                f"  {'':<21} scenario ground truth (live): {want.orders} orders, {want.cancellations} "
                f"cancelled -> {'matches' if match else 'MISMATCH'}"
            )
        say()
        say("Open cancellation requests, with the action to take")
        for seller, mkt in sorted(expected):
            reply = await orders.ListCancellationRequests(
                orders_pb2.ListCancellationRequestsRequest(
                    seller_account=seller, marketplace_id=mkt, page_size=100
                ),
                timeout=5,
            )
            country = marketplace(mkt).country
            for o in reply.orders:
                kind = orders_pb2.CancellationRequest.Kind.Name(o.cancellation_request.kind).removeprefix(
                    "KIND_"
                )
                action = o.recommended_action
                code = orders_pb2.RecommendedAction.Code.Name(action.code).removeprefix("CODE_")
                say(
                    f"  {seller:<16} {country:<4} {o.amazon_order_id}  {kind:<8} -> {code}"
                    + (f" ({action.cancel_reason})" if action.cancel_reason else "")
                )
                if action.reply_text:
                    say(f"  {'':<21}reply ({action.reply_language}): {action.reply_text[:100]}...")
            ok &= len(reply.orders) == expected[(seller, mkt)].open_requests
    return ok


def performance_report(figures: dict[str, metrics_pb2.CancellationRate], more: dict[str, int]) -> dict:
    """A seller performance report document in Amazon's shape (accountHealthReport-2020-11-18) for one
    seller's marketplaces. The demo's stand-in for Amazon: its counts are ours for the same window, plus
    `more` cancellations where Amazon counts some that we do not."""
    metrics = []
    for mkt, r in figures.items():
        cancellations = min(r.total_orders, r.cancelled_orders + more.get(mkt, 0))
        rate = cancellations / r.total_orders if r.total_orders else 0.0
        start = r.window_start.ToDatetime(tzinfo=UTC)
        end = r.window_end.ToDatetime(tzinfo=UTC) - timedelta(minutes=1)
        metrics.append(
            {
                "marketplaceId": mkt,
                "preFulfillmentCancellationRate": {
                    "reportingDateRange": {
                        "reportingDateFrom": start.strftime("%Y-%m-%dT%H:%MZ"),
                        "reportingDateTo": end.strftime("%Y-%m-%dT%H:%MZ"),
                    },
                    "orderCount": r.total_orders,
                    "cancellationCount": cancellations,
                    "status": "GOOD" if rate < r.threshold else "BAD",
                    "rate": round(rate, 6),
                    "targetValue": r.threshold,
                    "targetCondition": "LESS_THAN",
                },
            }
        )
    return {"performanceMetrics": metrics}


async def amazon_and_alerts(settings: Settings, shops: list[tuple[str, str]]) -> bool:
    """Amazon's figure beside ours, and the alerts raised, read back from the alerts topic."""
    now = datetime.now(UTC)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.api_port}") as channel:
        stub = metrics_pb2_grpc.MetricsServiceStub(channel)

        async def amazon_window(seller: str, mkt: str) -> metrics_pb2.CancellationRate:
            return await stub.GetCancellationRate(
                metrics_pb2.GetCancellationRateRequest(seller_account=seller, marketplace_id=mkt), timeout=5
            )

        events = []
        say()
        for seller in sorted({s for s, _ in shops}):
            figures = {mkt: await amazon_window(seller, mkt) for s, mkt in shops if s == seller}
            # for the first shop, the stand-in counts 1% more cancellations than we do: the figures part
            more = {}
            if seller == shops[0][0]:
                first = figures[shops[0][1]]
                more[shops[0][1]] = max(1, -(-first.total_orders // 100))
                say(
                    f"  (the demo's stand-in for Amazon counts {more[shops[0][1]]} more cancellations"
                    " than we do "
                    f"for {seller} {marketplace(shops[0][1]).country}, to show the alert when the"
                    " figures part)"
                )
            doc = performance_report(figures, more)
            events += parse_seller_performance(
                json.dumps(doc),
                seller_account=seller,
                report_id=f"DEMO{seller}",
                reported_at=now,
                observed_at=now,
            )
        say(f"Amazon's own figure arrives (a seller performance report per seller: {len(events)} windows)")
        await kafka.publish(
            settings,
            settings.order_events_topic,
            [(e.key.partition_key.encode(), codec.encode(e)) for e in events],
            client_id="cancelguard-demo",
        )
        deadline = time.monotonic() + 60
        rates: dict[tuple[str, str], metrics_pb2.CancellationRate] = {}
        while len(rates) < len(shops):
            for seller, mkt in shops:
                r = await amazon_window(seller, mkt)
                if r.HasField("amazon"):
                    rates[(seller, mkt)] = r
            if time.monotonic() > deadline:
                say("  Amazon's figures did not show through the API in time; see the metrics log")
                return False
            await asyncio.sleep(0.3)
        say(
            f"  {'seller account':<16} {'mkt':<4} {'Amazon 7 days (UTC)':<24} {'ours':>14}"
            f" {'Amazon':>14}  difference"
        )
        for (seller, mkt), r in sorted(rates.items()):
            start = r.window_start.ToDatetime().strftime("%m-%d")
            end = (r.window_end.ToDatetime() - timedelta(minutes=1)).strftime("%m-%d")
            ours = f"{r.cancelled_orders}/{r.total_orders} {r.rate:.2%}"
            a = r.amazon
            theirs = f"{a.cancelled_orders}/{a.total_orders} {float(a.rate):.2%}"
            say(
                f"  {seller:<16} {marketplace(mkt).country:<4} {start}..{end:<17} {ours:>14} {theirs:>14}"
                f"  {float(a.difference):+.2%}"
            )
    alerts = await read_alerts(settings, want_difference=True)
    say()
    say(f"Alerts on {settings.alerts_topic} ({len(alerts)})")
    for alert in alerts:
        country = marketplace(alert.marketplace_id).country
        say(f"  {alert.seller_account:<16} {country:<4} {alert_messages.describe(alert)}")
    return any(a.WhichOneof("body") == "amazon_difference" for a in alerts)


async def read_alerts(
    settings: Settings, *, want_difference: bool, timeout: float = 30.0
) -> list[alert_pb2.Alert]:
    """Every alert on the topic, once the difference alert (published last) is among them."""
    consumer = AIOKafkaConsumer(
        settings.alerts_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: dict[str, alert_pb2.Alert] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    alert = alert_messages.decode(record.value)
                    found.setdefault(alert.alert_id, alert)  # a re-published duplicate: the same id
            if not want_difference or any(
                a.WhichOneof("body") == "amazon_difference" for a in found.values()
            ):
                break
    finally:
        await consumer.stop()
    return list(found.values())


def grpcurl_hints(settings: Settings) -> None:
    a = f"127.0.0.1:{settings.api_port}"
    say()
    say("The API is up. Try it with grpcurl (`make grpcurl` installs it into .local/bin):")
    say(f"  grpcurl -plaintext {a} list")
    say(
        f'  grpcurl -plaintext -d \'{{"seller_account":"A1DEMOSELLERUS","marketplace_id":"ATVPDKIKX0DER",'
        f'"window_kind":"WINDOW_KIND_LIVE"}}\' {a} cancelguard.v1.MetricsService/GetCancellationRate'
    )
    say(
        "  grpcurl -plaintext -d "
        '\'{"seller_account":"A1DEMOSELLERUS","marketplace_id":"A1PA6795UKMFR9"}\' '
        f"{a} cancelguard.v1.OrderService/ListCancellationRequests"
    )
    say(f"  grpcurl -plaintext {a} grpc.health.v1.Health/Check")
    say("Press Ctrl-C to stop everything.")


async def show_scenario(settings: Settings) -> bool:
    """Publish the scenario, wait until the API shows all of it, print the result; True if it matches."""
    now = datetime.now(UTC)
    scenario = generate(now)
    expected = scenario.expected()
    say(
        f"publishing the demo scenario: {len(scenario.notifications)} ORDER_CHANGE notifications and "
        f"{len(scenario.messages)} buyer messages for {len(scenario.stories)} orders"
    )
    started = time.monotonic()
    await publish(settings, scenario)
    live = await wait_for_results(settings, expected)
    say(f"  all visible through the API {time.monotonic() - started:.1f}s after publishing started")
    ok = await print_results(settings, expected, live)
    return await amazon_and_alerts(settings, sorted(expected)) and ok


async def run_attached(timeout: float = 120.0) -> int:
    """The demo against services that run already, in their own namespace."""
    settings = Settings()
    say(f"attaching: Kafka at {settings.kafka_bootstrap}, the API at 127.0.0.1:{settings.api_port}")
    deadline = time.monotonic() + timeout
    for name in SERVICES:
        address = f"127.0.0.1:{health_port(settings, name)}"
        while await health_status(address) != SERVING:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {name} service at {address} is not SERVING after {timeout:.0f}s")
            await asyncio.sleep(0.5)
        say(f"  {name} at {address}: SERVING")
    return 0 if await show_scenario(settings) else 1


async def run(*, keep_running: bool, log_dir: Path) -> int:
    settings = demo_settings()
    stack = None
    stop_after: list[str] = []
    if "CANCELGUARD_KAFKA_BOOTSTRAP" not in os.environ or "CANCELGUARD_POSTGRES_DSN" not in os.environ:
        from cancelguard.localstack import stack as local_stack

        stack = local_stack
        already = {s.name for s in stack.status() if s.running}
        addresses = stack.up()
        stop_after = [name for name in addresses if name not in already]  # leave what the user started
        settings = settings.model_copy(
            update={"kafka_bootstrap": addresses["kafka"], "postgres_dsn": addresses["postgres"]}
        )
    else:
        say(f"using Kafka at {settings.kafka_bootstrap} and Postgres at {settings.redacted_dsn}")
    services = ServiceProcesses(settings, log_dir)
    ok = False
    try:
        say(
            f"resetting the demo namespace (topics {settings.topic_prefix}*, "
            f"schema {settings.postgres_schema})"
        )
        await reset_namespace(settings)
        say(f"starting ingestion, metrics and api (logs in {log_dir})")
        services.start()
        await services.wait_healthy()
        ok = await show_scenario(settings)
        if keep_running:
            grpcurl_hints(settings)
            stop = asyncio.Event()
            install_stop_signals(stop)
            await stop.wait()
    finally:
        say("stopping the services (SIGTERM)")
        codes = services.stop()
        say("  exit codes: " + ", ".join(f"{k}={v}" for k, v in codes.items()))
        ok &= all(code == 0 for code in codes.values())
        if stack is not None and stop_after:
            stack.down(stop_after)
    return 0 if ok else 1


def main(keep_running: bool, attach: bool = False) -> int:
    log_dir = Path(os.environ.get("CANCELGUARD_DEMO_LOGS", ".local/demo-logs")).resolve()
    try:
        if attach:
            return asyncio.run(run_attached())
        return asyncio.run(run(keep_running=keep_running, log_dir=log_dir))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"cancelguard demo: {exc}", file=sys.stderr)
        return 1
