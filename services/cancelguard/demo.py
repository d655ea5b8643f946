"""`cancelguard demo` and `cancelguard run`: the whole pipeline on this machine, Amazon's side included.

1. Kafka and Postgres: the addresses in CANCELGUARD_KAFKA_BOOTSTRAP / CANCELGUARD_POSTGRES_DSN when set,
   else the local stack (`cancelguard up`), started here if it is not running (and stopped again after).
2. The SP-API simulator, in this process on a loopback port: two seller accounts (one polled with
   Orders API v0, one with v2026-01-01) with a week of orders, and an accounts file that points the
   pollers at it, its credentials by reference (a file and environment variables).
3. A clean demo namespace (its own topics and schema), so a second run shows the same numbers.
4. The four services as child processes (ingestion, metrics, api, pollers), until their health says SERVING.
5. The week replayed: the simulator's clock moves on a step at a time while the pollers read the Orders
   APIs and the reports, and its ORDER_CHANGE notifications and buyer messages go onto the raw topics
   as Amazon's bridge and the helpdesk would; an Unshipped Orders report is imported beside them.
6. The result, read through the gRPC API with the generated stubs: per account x marketplace, the CR
   (live and Amazon's window) and the count of cancellations per attribution rule, each checked against
   the simulator's own truth; Amazon's own figure (the seller performance report the pollers fetched)
   beside ours; the open cancellation requests; the alerts read back from the alerts topic. `--json`
   prints the same as JSON.
`run` then keeps everything up until Ctrl-C and prints how to query it with grpcurl.

`demo --attach` is for services that run already (Compose, a Kubernetes port-forward), with no pollers
pointed at this process: it uses the services' own namespace (CANCELGUARD_TOPIC_PREFIX,
CANCELGUARD_POSTGRES_SCHEMA or their defaults), waits until each answers SERVING on its health port on
127.0.0.1, then publishes an ORDER_CHANGE scenario (simulator/scenario.py) and a stand-in seller
performance report, and reads the result, Amazon's figure and the alerts back through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from cancelguard import kafka
from cancelguard.accounts import OrdersApi
from cancelguard.amazon import SpApiClient
from cancelguard.amazon.operations import OPERATIONS, UsagePlan
from cancelguard.amazon.reports import UNSHIPPED_ORDERS_REPORT
from cancelguard.client import AsyncClient
from cancelguard.config import Settings
from cancelguard.demo_credentials import DEMO_SELLERS, DEMO_TOKEN, write_demo_callers
from cancelguard.domain.model import parse_time
from cancelguard.domain.policy import marketplace
from cancelguard.events import codec
from cancelguard.events.v1 import alert_pb2
from cancelguard.ingestion.adapters.seller_performance import parse_seller_performance
from cancelguard.metrics import alert_messages
from cancelguard.processes import POLLERS, SERVICES, ServiceProcesses, health_port, health_status
from cancelguard.runtime import SERVING, install_stop_signals
from cancelguard.simulator.scenario import Expected, Scenario, generate
from cancelguard.simulator.spapi.bridge import SimulatorBridge
from cancelguard.simulator.spapi.generator import ScenarioSpec, generate_world
from cancelguard.simulator.spapi.server import SimClock, Simulator
from cancelguard.simulator.spapi.testing import serving
from cancelguard.simulator.spapi.truth import ground_truth
from cancelguard.simulator.spapi.world import World
from cancelguard.v1 import metrics_pb2, orders_pb2

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
    async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as client:
        stub = client.metrics
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
    async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as client:
        metrics = client.metrics
        orders = client.orders
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
    async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as client:
        stub = client.metrics

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


# --- the Amazon side: two seller accounts served by the SP-API simulator -----------------------------

V0_SELLER, V2026_SELLER = "A2DEMOSELLERV0", "A1DEMOSELLER26"
# seller -> (region, marketplaces, Orders API version the poller reads)
SHOPS: dict[str, tuple[str, tuple[str, ...], OrdersApi]] = {
    V0_SELLER: ("na", ("ATVPDKIKX0DER",), OrdersApi.V0),
    V2026_SELLER: ("eu", ("A1PA6795UKMFR9", "A1F83G8C2ARO7P"), OrdersApi.V2026),
}
QUIET = timedelta(minutes=40)  # the world's stories stop this long before now: the truth is then final
STEP = timedelta(hours=2)  # simulated time per step while the week is replayed
ORDERS_PER_DAY = 14


def demo_world(now: datetime) -> Simulator:
    """A week of orders for both accounts up to `now - QUIET`, on a simulator whose clock starts before
    the first purchase (the demo moves it), with a big usage plan (Amazon's header tells the client)."""
    horizon = now - QUIET
    worlds = [
        generate_world(
            ScenarioSpec(
                horizon,
                seed=17 + n,
                days=7,
                sellers=(seller,),
                marketplaces=markets,
                orders_per_day=ORDERS_PER_DAY,
                horizon=horizon,
            )
        )
        for n, (seller, (_, markets, _)) in enumerate(SHOPS.items())
    ]
    world = World({s: a for w in worlds for s, a in w.sellers.items()})
    for w in worlds:
        world.orders.update(w.orders)
        world.messages += w.messages
        world.seller_cancels += w.seller_cancels
    sim = Simulator(world, SimClock(horizon - timedelta(days=7, hours=1), frozen=True), seed=17)
    for key in OPERATIONS:
        sim.plans[(None, key)] = UsagePlan(1000.0, 1000)
    sim.faults.update({"processing_seconds": 1.0})
    return sim


def write_accounts(sim: Simulator, base: str, directory: Path) -> Path:
    """The accounts file, as an operator would write it: credentials by reference only. The simulator's
    (fake) app secret goes in a file, as a Kubernetes Secret would mount it; the refresh tokens in
    environment variables of the pollers' process."""
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    client_secret = secrets / "lwa-client-secret"
    client_secret.write_text(sim.client_secret + "\n")
    os.environ["CANCELGUARD_DEMO_LWA_CLIENT_ID"] = sim.client_id
    accounts = []
    for seller, (region, markets, api) in SHOPS.items():
        os.environ[f"CANCELGUARD_DEMO_REFRESH_{seller}"] = sim.world.sellers[seller].refresh_token
        accounts.append(
            {
                "seller_id": seller,
                "region": region,
                "marketplaces": list(markets),
                "orders_api": api.value,
                "refresh_token": f"env:CANCELGUARD_DEMO_REFRESH_{seller}",
                "endpoint": base,
                "lwa_endpoint": f"{base}/auth/o2/token",
            }
        )
    path = directory / "accounts.json"
    doc = {
        "defaults": {
            "client_id": "env:CANCELGUARD_DEMO_LWA_CLIENT_ID",
            "client_secret": f"file:{client_secret}",
        },
        "accounts": accounts,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


async def replay_week(sim: Simulator, bridge: SimulatorBridge, until: datetime) -> None:
    """Moves the simulator's clock to `until` a step at a time, forwarding what Amazon pushes (the pollers
    poll on their own meanwhile); from then on the simulated clock is the wall clock."""
    async with aiohttp.ClientSession() as session:
        while sim.clock.now() < until:
            sim.clock.advance(min(STEP, until - sim.clock.now()).total_seconds())
            await bridge.forward(session)
            await asyncio.sleep(0.1)
        sim.clock.freeze(False)
        sim.clock.set(datetime.now(UTC))
        await bridge.forward(session)


async def import_unshipped_report(settings: Settings, sim: Simulator, base: str, directory: Path) -> str:
    """`cancelguard import-report`, beside the pollers: the Unshipped Orders report of the v2026 account's
    first marketplace, fetched from the simulator as a seller would download it, imported as a file."""
    from cancelguard.ingestion.report_import import ImportOptions, import_reports, summary
    from cancelguard.simulator.spapi.testing import connection_for

    seller, markets = V2026_SELLER, SHOPS[V2026_SELLER][1]
    async with SpApiClient(connection_for(sim, base, seller)) as amazon:
        report_id = await amazon.reports.create_report(UNSHIPPED_ORDERS_REPORT, [markets[0]])
        report = await amazon.reports.wait_for_report(report_id, poll_interval_s=0.3, timeout_s=60)
        document = await amazon.reports.get_report_document(report["reportDocumentId"])
        content = await amazon.reports.download_document(document)
    path = directory / f"unshipped-{marketplace(markets[0]).country}.txt"
    path.write_bytes(content)
    options = ImportOptions(seller, markets[0], as_of=parse_time(report["createdTime"], "createdTime"))
    results = await import_reports(settings, [path], options)
    return summary(results)


# --- the result, through the gRPC API ----------------------------------------------------------------


@dataclass
class ShopResult:
    seller_account: str
    orders_api: str
    marketplace_id: str
    live: dict[str, Any]
    amazon_window: dict[str, Any]
    rules: dict[str, dict[str, int]]  # rule -> {"api": n, "truth": n}
    missing: int
    # Amazon's own figure for the Amazon-aligned window, beside ours (from the seller performance
    # report the pollers fetched): None until it has arrived
    amazon: dict[str, Any] | None = None
    open_requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return (
            self.live["matches"]
            and self.amazon_window["matches"]
            and self.missing == 0
            and all(r["api"] == r["truth"] for r in self.rules.values())
        )


def _amazon(rate: metrics_pb2.CancellationRate) -> dict[str, Any] | None:
    if not rate.HasField("amazon"):
        return None
    a = rate.amazon
    return {
        "orders": a.total_orders,
        "cancelled": a.cancelled_orders,
        "rate": a.rate,
        "status": a.status,
        "difference": a.difference,
    }


def _window(rate: metrics_pb2.CancellationRate, truth: dict[str, Any], suffix: str) -> dict[str, Any]:
    want = (truth[f"orders{suffix}"], truth[f"cancellations{suffix}"])
    return {
        "start": rate.window_start.ToJsonString(),
        "end": rate.window_end.ToJsonString(),
        "orders": rate.total_orders,
        "cancelled": rate.cancelled_orders,
        "rate": round(rate.rate, 6),
        "status": metrics_pb2.RateStatus.Name(rate.status).removeprefix("RATE_STATUS_"),
        "truth": {"orders": want[0], "cancelled": want[1]},
        "matches": (rate.total_orders, rate.cancelled_orders) == want,
    }


async def read_results(settings: Settings, truth: dict[str, Any]) -> list[ShopResult]:
    """Per account x marketplace: the CR (live and Amazon's window) and each order's rule, read through the
    API (GetCancellationRate, GetOrder), beside the simulator's truth (`rule` for the v2026 account: what
    cancellationExecution says; `rule_v0` for the v0 account)."""
    out = []
    async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as client:
        metrics = client.metrics
        orders = client.orders
        for seller, (_, markets, api) in SHOPS.items():
            rule_of, suffix = ("rule", "") if api is OrdersApi.V2026 else ("rule_v0", "_v0")
            for mkt in markets:
                windows = {
                    (w["kind"], w["days"]): w
                    for w in truth["windows"]
                    if (w["seller_id"], w["marketplace_id"]) == (seller, mkt)
                }
                rates = {}
                for kind in (metrics_pb2.WINDOW_KIND_LIVE, metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED):
                    rates[kind] = await metrics.GetCancellationRate(
                        metrics_pb2.GetCancellationRateRequest(
                            seller_account=seller, marketplace_id=mkt, window_kind=kind
                        ),
                        timeout=5,
                    )
                rules: dict[str, dict[str, int]] = {}
                missing = 0
                for o in truth["orders"]:
                    if (o["seller_id"], o["marketplace_id"]) != (seller, mkt):
                        continue
                    rules.setdefault(o[rule_of], {"api": 0, "truth": 0})["truth"] += 1
                    try:
                        got = await orders.GetOrder(
                            orders_pb2.GetOrderRequest(
                                seller_account=seller,
                                marketplace_id=mkt,
                                amazon_order_id=o["amazon_order_id"],
                            ),
                            timeout=5,
                        )
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() != grpc.StatusCode.NOT_FOUND:
                            raise
                        missing += 1
                        continue
                    rules.setdefault(got.attribution.rule, {"api": 0, "truth": 0})["api"] += 1
                out.append(
                    ShopResult(
                        seller,
                        api.value,
                        mkt,
                        _window(rates[metrics_pb2.WINDOW_KIND_LIVE], windows[("LIVE", 7)], suffix),
                        _window(
                            rates[metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED],
                            windows[("AMAZON_ALIGNED", 7)],
                            suffix,
                        ),
                        dict(sorted(rules.items())),
                        missing,
                        _amazon(rates[metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED]),
                    )
                )
        for shop in out:
            reply = await orders.ListCancellationRequests(
                orders_pb2.ListCancellationRequestsRequest(
                    seller_account=shop.seller_account, marketplace_id=shop.marketplace_id, page_size=100
                ),
                timeout=5,
            )
            for o in reply.orders:
                action = o.recommended_action
                shop.open_requests.append(
                    {
                        "amazon_order_id": o.amazon_order_id,
                        "kind": orders_pb2.CancellationRequest.Kind.Name(
                            o.cancellation_request.kind
                        ).removeprefix("KIND_"),
                        "action": orders_pb2.RecommendedAction.Code.Name(action.code).removeprefix("CODE_"),
                        "cancel_reason": action.cancel_reason,
                        "reply_language": action.reply_language,
                        "reply": action.reply_text,
                    }
                )
    return out


async def wait_for_attribution(
    settings: Settings, sim: Simulator, bridge: SimulatorBridge
) -> list[ShopResult]:
    """Reads the API until it agrees with the truth, or a minute passes (then it shows what differs)."""
    deadline = time.monotonic() + 60
    last = ""
    async with aiohttp.ClientSession() as session:
        while True:
            await bridge.forward(session)
            truth = ground_truth(sim.world, datetime.now(UTC))
            results = await read_results(settings, truth)
            agreed = sum(
                r["api"] for shop in results for name, r in shop.rules.items() if r["api"] <= r["truth"]
            )
            total = len(truth["orders"])
            line = f"  attributed through the API: {min(agreed, total)}/{total} orders"
            if line != last:
                say(line)
                last = line
            complete = all(shop.matches and shop.amazon is not None for shop in results)
            if complete or time.monotonic() > deadline:
                return results
            await asyncio.sleep(1.0)


def print_attribution(results: list[ShopResult]) -> None:
    say()
    say("Cancellation Rate per seller account and marketplace, and how its cancellations were attributed")
    for shop in results:
        country = marketplace(shop.marketplace_id).country
        say()
        say(f"  {shop.seller_account} {country} ({shop.marketplace_id}): Orders API {shop.orders_api}")
        for label, w in (("live 168 h", shop.live), ("Amazon 7 days", shop.amazon_window)):
            truth = w["truth"]
            say(
                f"    {label:<14} {w['cancelled']:>3}/{w['orders']:<4} = {w['rate']:>7.2%}  {w['status']:<8} "
                f"truth {truth['cancelled']}/{truth['orders']}{'' if w['matches'] else '  <- differs'}"
            )
        say(f"    {'rule':<40} {'API':>5} {'truth':>6}")
        for rule, n in shop.rules.items():
            mark = "" if n["api"] == n["truth"] else "  <- differs"
            say(f"    {rule:<40} {n['api']:>5} {n['truth']:>6}{mark}")
        if shop.missing:
            say(f"    {shop.missing} orders of the truth are not in cancelguard")
        verdict = "matches" if shop.matches else "MISMATCH"
        say(f"    the rates and every order's rule, against the simulator's ground truth -> {verdict}")
    say()
    reported = [shop for shop in results if shop.amazon is not None]
    say(
        "Amazon's own figure arrives (the seller performance reports the pollers fetched: "
        f"{len(reported)} windows), beside ours for the same 7 days"
    )
    for shop in reported:
        a = shop.amazon
        assert a is not None
        country = marketplace(shop.marketplace_id).country
        ours = f"{shop.amazon_window['cancelled']}/{shop.amazon_window['orders']}"
        say(
            f"  {shop.seller_account} {country:<3} ours {ours:<7} Amazon's {a['cancelled']}/{a['orders']:<5} "
            f"difference {float(a['difference']):+.2%}"
            + (
                "  (Orders API v0 cannot say who cancelled)"
                if shop.orders_api == "v0" and a["difference"]
                else ""
            )
        )
    say()
    say("Open cancellation requests, with the action to take")
    for shop in results:
        country = marketplace(shop.marketplace_id).country
        for o in shop.open_requests:
            reason = f" ({o['cancel_reason']})" if o["cancel_reason"] else ""
            say(
                f"  {shop.seller_account} {country:<3} {o['amazon_order_id']}  {o['kind']:<8} "
                f"-> {o['action']}{reason}"
            )
            if o["reply"]:
                say(f"  {'':<20}reply ({o['reply_language']}): {o['reply'][:100]}...")


def results_json(
    results: list[ShopResult], report_import: str, alerts: list[alert_pb2.Alert]
) -> dict[str, Any]:
    return {
        "matches": all(s.matches for s in results),
        "accounts": [{**asdict(s), "matches": s.matches} for s in results],
        "report_import": report_import.splitlines(),
        "alerts": [
            {
                "seller_account": a.seller_account,
                "marketplace_id": a.marketplace_id,
                "kind": a.WhichOneof("body"),
                "says": alert_messages.describe(a),
            }
            for a in alerts
        ],
    }


def grpcurl_hints(settings: Settings) -> None:
    a = f"127.0.0.1:{settings.api_port}"
    auth = f"-H 'authorization: Bearer {DEMO_TOKEN}'"
    say()
    say("The API is up. Try it with grpcurl (`make grpcurl` installs it into .local/bin); the token is the")
    say("demo's FAKE one (cancelguard/demo_credentials.py):")
    say(f"  grpcurl -plaintext {a} list")
    say(
        f"  grpcurl -plaintext {auth} -d "
        f'\'{{"seller_account":"{V0_SELLER}","marketplace_id":"ATVPDKIKX0DER",'
        '"window_kind":"WINDOW_KIND_LIVE"}\' '
        f"{a} cancelguard.v1.MetricsService/GetCancellationRate"
    )
    say(
        f"  grpcurl -plaintext {auth} -d "
        f'\'{{"seller_account":"{V2026_SELLER}","marketplace_id":"A1PA6795UKMFR9"}}\' '
        f"{a} cancelguard.v1.OrderService/ListCancellationRequests"
    )
    say(
        "  or the CLI (it uses the demo token by default): "
        f"cancelguard cr {V0_SELLER} ATVPDKIKX0DER --history"
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


async def run(*, keep_running: bool, log_dir: Path, as_json: bool = False) -> int:
    settings = demo_settings()
    stack = None
    stop_after: list[str] = []
    if "CANCELGUARD_KAFKA_BOOTSTRAP" not in os.environ or "CANCELGUARD_POSTGRES_DSN" not in os.environ:
        from cancelguard.localstack import stack as local_stack

        stack = local_stack
        already = {s.name for s in stack.status() if s.running}
        with _story_out():
            addresses = stack.up()
        stop_after = [name for name in addresses if name not in already]  # leave what the user started
        settings = settings.model_copy(
            update={"kafka_bootstrap": addresses["kafka"], "postgres_dsn": addresses["postgres"]}
        )
    else:
        say(f"using Kafka at {settings.kafka_bootstrap} and Postgres at {settings.redacted_dsn}")
    now = datetime.now(UTC).replace(microsecond=0)
    sim = demo_world(now)
    ok = False
    async with serving(sim) as base:
        # the demo's FAKE caller (cancelguard/demo_credentials.py), whatever callers file is configured
        callers = write_demo_callers(log_dir / "demo-callers.toml", (*DEMO_SELLERS, *SHOPS))
        settings = settings.model_copy(
            update={
                "api_callers_file": str(callers),
                "accounts_file": str(write_accounts(sim, base, log_dir)),
                "poll_interval_s": 0.5,
                "report_poll_interval_s": 0.5,
                # the reports poller asks again every few seconds: the last report, after the replay,
                # is the one of the whole week (Amazon's figure beside ours)
                "unshipped_report_interval_s": 5.0,
                "performance_report_interval_s": 5.0,
            }
        )
        services = ServiceProcesses(settings, log_dir)
        producer = kafka.new_producer(settings.kafka_bootstrap, client_id="cancelguard-demo-bridge")
        try:
            say(
                f"resetting the demo namespace (topics {settings.topic_prefix}*, "
                f"schema {settings.postgres_schema})"
            )
            await reset_namespace(settings)
            say(f"the SP-API simulator on {base}: {len(sim.world.orders)} orders of two seller accounts")
            for seller, (_, markets, api) in SHOPS.items():
                countries = ", ".join(marketplace(m).country for m in markets)
                say(f"  {seller} in {countries}, polled with Orders API {api.value}")
            say(f"starting ingestion, metrics, api and pollers (logs and the accounts file in {log_dir})")
            services.start((*SERVICES, POLLERS))
            await services.wait_healthy()
            await producer.start()
            bridge = SimulatorBridge(base, settings, producer)
            started = time.monotonic()
            say("replaying the week: the pollers read the Orders APIs; ORDER_CHANGE notifications and buyer")
            say("messages go onto the raw topics as Amazon's bridge and the helpdesk would put them")
            await replay_week(sim, bridge, now)
            say(
                f"  {bridge.totals.notifications} notifications and {bridge.totals.messages} buyer messages "
                f"in {time.monotonic() - started:.1f}s"
            )
            say("importing an Unshipped Orders report beside them (cancelguard import-report):")
            imported = await import_unshipped_report(settings, sim, base, log_dir)
            for line in imported.splitlines():
                say(f"  {line}")
            results = await wait_for_attribution(settings, sim, bridge)
            say(f"  all read back through the API {time.monotonic() - started:.1f}s after the replay started")
            ok = all(shop.matches for shop in results)
            alerts = await read_alerts(settings, want_difference=True)
            if as_json:
                print(json.dumps(results_json(results, imported, alerts), indent=2))
            else:
                print_attribution(results)
                say()
                say(f"Alerts on {settings.alerts_topic} ({len(alerts)})")
                for alert in alerts:
                    country = marketplace(alert.marketplace_id).country
                    say(f"  {alert.seller_account:<16} {country:<4} {alert_messages.describe(alert)}")
            if keep_running:
                grpcurl_hints(settings)
                stop = asyncio.Event()
                install_stop_signals(stop)
                await stop.wait()
        finally:
            await kafka.stop_producer(producer)
            say("stopping the services (SIGTERM)")
            codes = services.stop()
            say("  exit codes: " + ", ".join(f"{k}={v}" for k, v in codes.items()))
            ok &= all(code == 0 for code in codes.values())
            if stack is not None and stop_after:
                with _story_out():
                    stack.down(stop_after)
    return 0 if ok else 1


def main(keep_running: bool, attach: bool = False, as_json: bool = False) -> int:
    global say
    log_dir = Path(os.environ.get("CANCELGUARD_DEMO_LOGS", ".local/demo-logs")).resolve()
    if as_json:  # stdout is the JSON document; the story goes to stderr
        say = _say_to_stderr
    try:
        if attach:
            return asyncio.run(run_attached())
        return asyncio.run(run(keep_running=keep_running, log_dir=log_dir, as_json=as_json))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"cancelguard demo: {exc}", file=sys.stderr)
        return 1


def _story_out() -> contextlib.AbstractContextManager[object]:
    """Where the local stack's progress lines go: stderr when stdout is the JSON document."""
    return contextlib.redirect_stdout(sys.stderr) if say is _say_to_stderr else contextlib.nullcontext()


def _say_to_stderr(line: str = "") -> None:
    print(line, file=sys.stderr, flush=True)
