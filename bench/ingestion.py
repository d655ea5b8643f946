"""The ingestion service's publish rate against its anchors, side by side in one run (not a test).

    make bench-ingestion        (.venv/bin/python bench/ingestion.py [--records 100000] [--rounds 3])

Starts its own Kafka and Postgres on free ports (never another stack's). Then, in interleaved rounds:
- ingestion: N ORDER_CHANGE notifications (the demo scenario's stories, scaled up) are put on a fresh
  raw topic first; the ingestion service (this process) reads them, turns each into an order event
  (adapter, bounds, encode) and publishes it with its idempotent producer (acks=all); timed from the
  first batch it reads until every raw offset is committed (checked against Kafka's committed offsets);
- raw aiokafka: the same N events, already serialized, sent by a bare aiokafka producer with the same
  settings (acks=all, idempotence, keyed the same), from the first send to the last acknowledgement;
- Kafka's own producer performance tool (org.apache.kafka.tools.ProducerPerformance, on the jars
  `KafkaDist` fetched), N records of the events' mean size, acks=all, idempotence.
Medians over the rounds. Then the pollers' throughput against the SP-API simulator with its rate
limits off: one account's orders from a backfill through one poll, v2026 and v0.

`--profile` runs one more ingestion round under cProfile and prints where the time goes.
The last line is `ingestion/raw ratio R, E records/s, kafka perf tool K records/s`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import math
import pstats
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from cancelguard import db, kafka
from cancelguard.config import Settings
from cancelguard.ingestion.routing import checked
from cancelguard.ingestion.service import BATCH_BYTES, IngestionService, sources_for
from cancelguard.localstack import PRODUCER_PERF_TEST, KafkaDist, LocalKafka, LocalPostgres, find_free_port
from cancelguard.simulator.scenario import DEFAULT_SHOPS, generate


class Timed(NamedTuple):
    """One round: wall seconds, and this process's CPU seconds in them (less at the mercy of a busy
    machine than the wall clock)."""

    seconds: float
    cpu_seconds: float

    def cpu_us(self, records: int) -> float:
        return self.cpu_seconds / records * 1e6


NOTIFICATIONS_PER_SCALE = 2200  # about the default demo scenario's notifications at scale 1
PARTITIONS = 6


def notifications(count: int, now: datetime) -> list[bytes]:
    scale = math.ceil(count / NOTIFICATIONS_PER_SCALE)
    shops = tuple(replace(s, orders=s.orders * scale) for s in DEFAULT_SHOPS)
    docs = generate(now, seed=51, shops=shops).notifications
    while len(docs) < count:
        docs = docs + docs
    return [json.dumps(d).encode() for d in docs[:count]]


def serialized_events(settings: Settings, raw: list[bytes], now: datetime) -> list[tuple[bytes, bytes]]:
    """What the ingestion service publishes for these records, serialized once, for the raw producer."""
    from cancelguard.events import codec

    source = sources_for(settings)[settings.order_change_topic]
    out = []
    for value in raw:
        event = source.adapt(value, now)
        assert event is not None
        event = checked(event, now)
        out.append((event.key.partition_key.encode(), codec.encode(event)))
    return out


def bench_settings(bootstrap: str, dsn: str) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        postgres_dsn=dsn,
        postgres_schema=f"bench_{uuid.uuid4().hex[:8]}",
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        topic_partitions=PARTITIONS,
        ingestion_health_port=find_free_port(),
        ingestion_metrics_port=0,
        pollers_health_port=find_free_port(),
        pollers_metrics_port=0,
    )


async def fill_raw_topic(settings: Settings, raw: list[bytes]) -> None:
    await kafka.ensure_topics(
        settings.kafka_bootstrap, settings.all_topics, partitions=PARTITIONS, replication=1
    )
    producer = kafka.new_producer(settings.kafka_bootstrap, client_id="bench-fill", max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(settings.order_change_topic, v) for v in raw]
        await asyncio.gather(*futures)
    finally:
        await kafka.stop_producer(producer)


async def ingestion_round(
    bootstrap: str, dsn: str, raw: list[bytes], *, profile: cProfile.Profile | None = None
) -> Timed:
    """From the first batch the service reads until every raw offset is committed."""
    settings = bench_settings(bootstrap, dsn)
    await fill_raw_topic(settings, raw)
    service = IngestionService(settings)
    route_batch, deliver = service.route_batch, service.deliver
    done = asyncio.Event()
    seen: dict[str, float] = {"first": 0.0, "last": 0.0, "cpu_first": 0.0, "cpu_last": 0.0}
    committed: dict[TopicPartition, int] = {}  # the raw topic is fresh: an offset is a count of records

    def first(batch: Any) -> Any:
        if not seen["first"]:
            seen["first"], seen["cpu_first"] = time.perf_counter(), time.process_time()
            if profile is not None:
                profile.enable()
        return route_batch(batch)

    async def last(outgoing: Any, offsets: dict[TopicPartition, int], stop: asyncio.Event) -> bool:
        delivered = await deliver(outgoing, offsets, stop)
        committed.update(offsets)
        if sum(committed.values()) >= len(raw) and not done.is_set():
            seen["last"], seen["cpu_last"] = time.perf_counter(), time.process_time()
            if profile is not None:
                profile.disable()
            done.set()
        return delivered

    service.route_batch = first  # type: ignore[method-assign]
    service.deliver = last  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(done.wait(), 600)
    stop.set()
    await task
    await _check_committed(settings, len(raw))
    return Timed(seen["last"] - seen["first"], seen["cpu_last"] - seen["cpu_first"])


async def _check_committed(settings: Settings, count: int) -> None:
    from cancelguard.ingestion.service import GROUP_ID

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=GROUP_ID)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.order_change_topic, p) for p in range(PARTITIONS)]
        committed = [await consumer.committed(tp) or 0 for tp in partitions]
        end = await consumer.end_offsets(partitions)
        assert sum(committed) == count == sum(end.values()), (committed, end)
    finally:
        await consumer.stop()


async def raw_producer_round(bootstrap: str, dsn: str, events: list[tuple[bytes, bytes]]) -> Timed:
    settings = bench_settings(bootstrap, dsn)
    await kafka.ensure_topics(bootstrap, [settings.order_events_topic], partitions=PARTITIONS, replication=1)
    # the service's own producer settings (acks=all, idempotence, linger, batch size)
    producer = kafka.new_producer(bootstrap, client_id="bench-raw", max_batch_size=BATCH_BYTES)
    await producer.start()
    try:
        topic = settings.order_events_topic
        started, cpu = time.perf_counter(), time.process_time()
        futures = [await producer.send(topic, value, key=key) for key, value in events]
        await asyncio.gather(*futures)
        return Timed(time.perf_counter() - started, time.process_time() - cpu)
    finally:
        await kafka.stop_producer(producer)


def perf_tool_round(dist: KafkaDist, bootstrap: str, count: int, size: int) -> float:
    """Kafka's own producer: records/s as it reports them."""
    topic = f"bench-perf-{uuid.uuid4().hex[:8]}"
    asyncio.run(kafka.ensure_topics(bootstrap, [topic], partitions=PARTITIONS, replication=1))
    out = dist.run_tool(
        PRODUCER_PERF_TEST,
        [
            "--topic", topic, "--num-records", str(count), "--record-size", str(size), "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", "enable.idempotence=true",
            "linger.ms=5",
        ],
        timeout=300,
    )  # fmt: skip
    found = re.findall(r"([\d.]+) records/sec", out.stdout)
    if not found:
        raise RuntimeError(f"no rate in the perf tool's output:\n{out.stdout[-2000:]}")
    return float(found[-1])


# --- the pollers against the simulator -------------------------------------------------------------


async def poller_round(bootstrap: str, dsn: str, api: str, orders_per_day: int) -> tuple[int, float]:
    """(orders, seconds) of one backfill poll of one account, rate limits off."""
    from cancelguard.accounts import OrdersApi, parse_accounts
    from cancelguard.amazon import SpApiClient
    from cancelguard.amazon.operations import OPERATIONS, UsagePlan
    from cancelguard.ingestion.pollers.cursors import CursorStore
    from cancelguard.ingestion.pollers.orders import OrdersPoller
    from cancelguard.ingestion.routing import Route, Sender
    from cancelguard.runtime import Dependencies
    from cancelguard.simulator.spapi.generator import ScenarioSpec
    from cancelguard.simulator.spapi.server import build_simulator
    from cancelguard.simulator.spapi.testing import serving

    settings = bench_settings(bootstrap, dsn)
    await kafka.ensure_topics(bootstrap, settings.all_topics, partitions=PARTITIONS, replication=1)
    await db.migrate(dsn=dsn, schema=settings.postgres_schema)
    now = datetime.now(UTC).replace(microsecond=0)
    seller, markets = "A1SIMSELLER01", ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A13V1IB3VIYZZH")
    sim = build_simulator(
        ScenarioSpec(
            now - timedelta(days=1), sellers=(seller,), marketplaces=markets, orders_per_day=orders_per_day
        ),
        frozen=True,
    )
    # rate limits off: the simulator enforces none and announces a big plan, which the client follows
    sim.faults.update({"rate_limits": False})
    for key in OPERATIONS:
        sim.plans[(None, key)] = UsagePlan(1000.0, 1000)
    pool = await db.create_pool(dsn=dsn, schema=settings.postgres_schema)
    producer = kafka.new_producer(bootstrap, client_id="bench-pollers")
    await producer.start()

    async def no_health(_: bool) -> None:
        return None

    try:
        async with serving(sim) as base:
            environ = {
                "ID": sim.client_id,
                "SECRET": sim.client_secret,
                "TOKEN": sim.world.sellers[seller].refresh_token,
            }
            entry = {
                "seller_id": seller,
                "region": "eu",
                "marketplaces": list(markets),
                "orders_api": api,
                "client_id": "env:ID",
                "client_secret": "env:SECRET",
                "refresh_token": "env:TOKEN",
                "endpoint": base,
                "lwa_endpoint": f"{base}/auth/o2/token",
            }
            [account] = parse_accounts({"accounts": [entry]}, source="bench", environ=environ).accounts
            deps = Dependencies({}, no_health, outage_limit_s=300)
            async with SpApiClient(account.connection()) as client:
                poller = OrdersPoller(
                    account,
                    client,
                    CursorStore(pool),
                    Route(settings, stage="pollers"),
                    Sender(producer, deps),
                    overlap=timedelta(minutes=15),
                    backfill=timedelta(days=30),
                    now=lambda: datetime.now(UTC),
                )
                started = time.perf_counter()
                result = await poller.poll_once(asyncio.Event())
                seconds = time.perf_counter() - started
                assert account.orders_api is OrdersApi(api) and result.read_until is not None
                return result.documents, seconds
    finally:
        await kafka.stop_producer(producer)
        await pool.close()


# --- the run ----------------------------------------------------------------------------------------

KEY_FUNCTIONS = {
    "producer.send": "aiokafka/producer/producer.py:.*\\(send\\)",
    "producer.send_batch + batch appends": "routing.py:.*\\(_send\\)",
    "the adapter (parse_order_change)": "order_change.py:.*\\(parse_order_change\\)",
    "bounds (check_event)": "bounds.py:.*\\(check_event\\)",
    "the encode (codec.encode)": "codec.py:.*\\(encode\\)",
    "route (adapter + bounds + encode)": "service.py:.*\\(route\\)",
    "deliver (send, acks, commit)": "service.py:.*\\(deliver\\)",
    "consumer.getmany": "consumer.py:.*\\(getmany\\)",
    "raw offsets commit": "consumer.py:.*\\(commit\\)",
}


def profile_report(profile: cProfile.Profile, seconds: float, top: int = 18) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    total = sum(t for (_, _, t, _, _) in stats.stats.values())  # type: ignore[attr-defined]
    lines = [f"profile of one ingestion round ({seconds:.1f}s wall under cProfile; shares of profiled time):"]
    for label, pattern in KEY_FUNCTIONS.items():
        cum = sum(
            ct
            for (file, line, name), (_, _, _, ct, _) in stats.stats.items()  # type: ignore[attr-defined]
            if re.search(pattern, f"{file}:{line}({name})")
        )
        lines.append(f"  {label:<36} {cum / total:6.1%} cumulative")
    stats.sort_stats("tottime").print_stats(top)
    body = [ln for ln in out.getvalue().splitlines() if re.match(r"\s+\d", ln) or "ncalls" in ln]
    return "\n".join([*lines, "  top functions by own time:", *("  " + ln for ln in body)])


def main() -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a fresh broker's coordinator chatter
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one more ingestion round under cProfile")
    parser.add_argument("--skip-pollers", action="store_true")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop our Kafka and Postgres on the way out
    now = datetime.now(UTC)
    home = Path(tempfile.mkdtemp(prefix="cancelguard-bench-"))
    home.chmod(0o755)  # Postgres runs as an unprivileged user when we are root: it must enter this directory
    dist = KafkaDist().ensure()
    broker = LocalKafka(home / "kafka", port=find_free_port(), controller_port=find_free_port(), dist=dist)
    postgres = LocalPostgres(home / "postgres", port=find_free_port())
    try:
        bootstrap = broker.start()
        dsn = postgres.start()
        print(
            f"Kafka {bootstrap}, Postgres on a free port; {args.records:,} records, {args.rounds} rounds",
            flush=True,
        )
        raw = notifications(args.records, now)
        events = serialized_events(bench_settings(bootstrap, dsn), raw, now)
        mean_size = round(statistics.mean(len(v) for _, v in events))
        print(
            f"  raw notifications: mean {statistics.mean(map(len, raw)):,.0f} bytes; "
            f"events: mean {mean_size} bytes"
        )
        ingestion, raw_rates, perf = [], [], []
        for n in range(1, args.rounds + 1):
            ours = asyncio.run(ingestion_round(bootstrap, dsn, raw))
            anchor = asyncio.run(raw_producer_round(bootstrap, dsn, events))
            ingestion.append(args.records / ours.seconds)
            raw_rates.append(args.records / anchor.seconds)
            perf.append(perf_tool_round(dist, bootstrap, args.records, mean_size))
            print(
                f"  round {n}: ingestion {ingestion[-1]:,.0f}/s, raw aiokafka {raw_rates[-1]:,.0f}/s, "
                f"kafka perf tool {perf[-1]:,.0f}/s (ratio {ingestion[-1] / raw_rates[-1]:.2f}); "
                f"this process's CPU per record: ingestion {ours.cpu_us(args.records):.1f} µs, "
                f"raw aiokafka {anchor.cpu_us(args.records):.1f} µs",
                flush=True,
            )
        if args.profile:
            profile = cProfile.Profile()
            seconds = asyncio.run(ingestion_round(bootstrap, dsn, raw, profile=profile)).seconds
            print(profile_report(profile, seconds))
        if not args.skip_pollers:
            # the simulator scans its orders for each page: a few thousand orders keep it off the clock
            for api, per_day in (("v2026", 200), ("v0", 100)):
                orders, seconds = asyncio.run(poller_round(bootstrap, dsn, api, per_day))
                print(
                    f"  pollers, Orders API {api}, rate limits off: {orders:,} orders in {seconds:.1f}s, "
                    f"{orders / seconds:,.0f} orders/s"
                    + (" (getOrderItems for each open or cancelled one)" if api == "v0" else ""),
                    flush=True,
                )
    finally:
        postgres.stop()
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)
    e, r, k = statistics.median(ingestion), statistics.median(raw_rates), statistics.median(perf)
    print(f"ingestion/raw ratio {e / r:.2f}, {e:,.0f} records/s, kafka perf tool {k:,.0f} records/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
