"""`cancelguard demo` and `cancelguard run`: the whole pipeline on this machine, Amazon's side included.

1. Kafka and Postgres: the addresses in CANCELGUARD_KAFKA_BOOTSTRAP / CANCELGUARD_POSTGRES_DSN when set,
   else the local stack (`cancelguard up`), started here if it is not running (and stopped again after).
2. The SP-API simulator, in this process on a loopback port: two seller accounts (one polled with
   Orders API v0, one with v2026-01-01) with a week of orders, and an accounts file that points the
   pollers at it, its credentials by reference (a file and environment variables).
3. A clean demo namespace (its own topics and schema), so a second run shows the same numbers.
4. The four services as child processes (ingestion, metrics, api, pollers), until their health says SERVING.
5. The week replayed: the simulator's clock moves on a step at a time while the pollers read the Orders
   APIs (and the reports), and its ORDER_CHANGE notifications and buyer messages go onto the raw topics
   as Amazon's bridge and the helpdesk would; an Unshipped Orders report is imported beside them.
6. The result, read through the gRPC API with the generated stubs: per account x marketplace, the CR
   (live and Amazon's window) and the count of cancellations per attribution rule, each checked against
   the simulator's own truth; then the open cancellation requests. `--json` prints the same as JSON.
`run` then keeps everything up until Ctrl-C and prints how to query it with grpcurl.
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
from aiokafka.admin import AIOKafkaAdminClient

from cancelguard import kafka
from cancelguard.accounts import OrdersApi
from cancelguard.amazon import SpApiClient
from cancelguard.amazon.operations import OPERATIONS, UsagePlan
from cancelguard.amazon.reports import UNSHIPPED_ORDERS_REPORT
from cancelguard.config import Settings
from cancelguard.domain.model import parse_time
from cancelguard.domain.policy import marketplace
from cancelguard.processes import POLLERS, SERVICES, ServiceProcesses
from cancelguard.runtime import install_stop_signals
from cancelguard.simulator.scenario import Scenario
from cancelguard.simulator.spapi.bridge import SimulatorBridge
from cancelguard.simulator.spapi.generator import ScenarioSpec, generate_world
from cancelguard.simulator.spapi.server import SimClock, Simulator
from cancelguard.simulator.spapi.testing import serving
from cancelguard.simulator.spapi.truth import ground_truth
from cancelguard.simulator.spapi.world import World
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

DEMO_DEFAULTS = {"topic_prefix": "cancelguard-demo.", "postgres_schema": "cancelguard_demo"}


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


def grpcurl_hints(settings: Settings) -> None:
    a = f"127.0.0.1:{settings.api_port}"
    say()
    say("The API is up. Try it with grpcurl (`make grpcurl` installs it into .local/bin):")
    say(f"  grpcurl -plaintext {a} list")
    say(
        f'  grpcurl -plaintext -d \'{{"seller_account":"{V2026_SELLER}","marketplace_id":"A1PA6795UKMFR9",'
        f'"window_kind":"WINDOW_KIND_LIVE"}}\' {a} cancelguard.v1.MetricsService/GetCancellationRate'
    )
    say(
        "  grpcurl -plaintext -d "
        f'\'{{"seller_account":"{V0_SELLER}","marketplace_id":"ATVPDKIKX0DER"}}\' '
        f"{a} cancelguard.v1.OrderService/ListCancellationRequests"
    )
    say(f"  grpcurl -plaintext {a} grpc.health.v1.Health/Check")
    say("Press Ctrl-C to stop everything.")


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
    open_requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return (
            self.live["matches"]
            and self.amazon_window["matches"]
            and self.missing == 0
            and all(r["api"] == r["truth"] for r in self.rules.values())
        )


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
    async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.api_port}") as channel:
        metrics = metrics_pb2_grpc.MetricsServiceStub(channel)
        orders = orders_pb2_grpc.OrderServiceStub(channel)
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


async def wait_for_results(settings: Settings, sim: Simulator, bridge: SimulatorBridge) -> list[ShopResult]:
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
            if all(shop.matches for shop in results) or time.monotonic() > deadline:
                return results
            await asyncio.sleep(1.0)


def print_results(results: list[ShopResult]) -> None:
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


def results_json(results: list[ShopResult], report_import: str) -> dict[str, Any]:
    return {
        "matches": all(s.matches for s in results),
        "accounts": [{**asdict(s), "matches": s.matches} for s in results],
        "report_import": report_import.splitlines(),
    }


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
        settings = settings.model_copy(
            update={
                "accounts_file": str(write_accounts(sim, base, log_dir)),
                "poll_interval_s": 0.5,
                "report_poll_interval_s": 0.5,
                "unshipped_report_interval_s": 3600.0,
                "performance_report_interval_s": 3600.0,
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
            results = await wait_for_results(settings, sim, bridge)
            say(f"  all read back through the API {time.monotonic() - started:.1f}s after the replay started")
            ok = all(shop.matches for shop in results)
            if as_json:
                print(json.dumps(results_json(results, imported), indent=2))
            else:
                print_results(results)
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


def main(keep_running: bool, as_json: bool = False) -> int:
    global say
    log_dir = Path(os.environ.get("CANCELGUARD_DEMO_LOGS", ".local/demo-logs")).resolve()
    if as_json:  # stdout is the JSON document; the story goes to stderr
        say = _say_to_stderr
    try:
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
