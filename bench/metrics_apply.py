"""The metrics service's exactly-once apply vs a raw decode-only consume of the same topic.

    python bench/metrics_apply.py [--events 200000] [--rounds 3] [--kafka HOST:PORT --postgres DSN]
    python bench/metrics_apply.py --profile apply.prof    (one apply in this process, under cProfile)

A realistic mix is published once to an events topic of its own: many seller accounts x marketplaces,
skewed (a few big shops, a long tail), orders placed over nine days that go Pending -> Unshipped ->
(label) -> Shipped, 5% cancelled (seller cancels with and without a request, Amazon's auto-cancels,
buyer self-cancels), polls that observe the same order again, 1% of events arriving a day late.

Then, in interleaved rounds (so a noisy neighbour on the machine slows both sides alike):
  (a) raw: an aiokafka consumer reads every partition from the start and decodes each record (no work);
  (b) apply: `cancelguard serve metrics` (a process, as deployed) applies the same topic into a fresh
      schema, exactly once; timed from its first committed batch to its last.
Medians are reported with Postgres' own count of the rows written (pg_stat_user_tables). Kafka and
Postgres are local processes started for the run (cancelguard.localstack) unless addresses are given.
The last line is `apply/raw ratio R, applied E events/s, bucket writes W/event`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

import asyncpg  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from cancelguard import kafka  # noqa: E402
from cancelguard.config import Settings  # noqa: E402
from cancelguard.domain import model as m  # noqa: E402
from cancelguard.events import codec  # noqa: E402
from cancelguard.localstack import KafkaDist, LocalKafka, LocalPostgres, find_free_port  # noqa: E402

MARKETPLACES = (
    "ATVPDKIKX0DER",
    "A1PA6795UKMFR9",
    "A1F83G8C2ARO7P",
    "A13V1IB3VIYZZH",
    "APJ6JRA9NG5V4",
    "A1RKKUPIHCS9HS",
    "A2EUQ1WTGCTBG2",
    "A21TJRUUN4KGV",
)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- the mix ----------------------------------------------------------------------------------------


def _snapshot(
    key: m.OrderKey,
    n: int,
    at: datetime,
    source: m.Source,
    status: m.OrderStatus,
    purchased: datetime,
    skus: list[str],
    *,
    shipped: bool = False,
    requested: bool | None = None,
    cancelled_by: m.CancelledBy | None = None,
    cancel_reason: str = "",
) -> m.OrderEvent:
    items = tuple(
        m.ItemObservation(
            order_item_id=f"{key.amazon_order_id[-7:]}{i:02d}",
            seller_sku=sku,
            quantity_ordered=1,
            quantity_shipped=1 if shipped else 0,
            buyer_requested_cancel=requested,
            cancelled_by=cancelled_by,
            cancel_reason=cancel_reason,
        )
        for i, sku in enumerate(skus)
    )
    return m.OrderEvent(
        f"bench:{key.amazon_order_id}:{n}",
        key,
        source,
        at,
        at,
        m.OrderSnapshot(
            status=status,
            channel=m.Channel.MFN,
            purchased_at=purchased,
            latest_ship_at=purchased + timedelta(days=2),
            items=items,
        ),
    )


def order_events(rng: random.Random, key: m.OrderKey, purchased: datetime, skus: list[str]) -> list:
    """One order's events, in Amazon's time order."""
    out: list[m.OrderEvent] = []

    def snap(at: datetime, source: m.Source, status: m.OrderStatus, **kw: object) -> None:
        out.append(_snapshot(key, len(out), at, source, status, purchased, skus, **kw))  # type: ignore[arg-type]

    snap(purchased, m.Source.ORDER_CHANGE, m.OrderStatus.PENDING)
    released = purchased + timedelta(minutes=rng.randint(5, 90))
    snap(released, m.Source.ORDER_CHANGE, m.OrderStatus.UNSHIPPED)
    if rng.random() < 0.5:  # a poll sees it again
        snap(released + timedelta(minutes=rng.randint(1, 30)), m.Source.ORDERS_V0, m.OrderStatus.UNSHIPPED)
    fate = rng.random()
    if fate < 0.05:  # cancelled: who and why varies
        at = released + timedelta(hours=rng.randint(1, 40))
        kind = rng.random()
        if kind < 0.35:  # formal request, then a BuyerCanceled seller cancel (excluded)
            out.append(
                m.OrderEvent(
                    f"bench:{key.amazon_order_id}:{len(out)}",
                    key,
                    m.Source.ORDER_CHANGE,
                    at - timedelta(minutes=30),
                    at - timedelta(minutes=30),
                    m.CancellationRequested(m.RequestKind.FORMAL, reason="changed mind"),
                )
            )
            reason = m.REASON_BUYER_CANCELED
            by = m.CancelledBy.MERCHANT
        elif kind < 0.7:  # out of stock (counts)
            reason, by = m.REASON_NO_INVENTORY, m.CancelledBy.MERCHANT
        else:  # Amazon's auto-cancel (counts)
            reason, by = "ShipByDatePassed", m.CancelledBy.AMAZON
        if by is m.CancelledBy.MERCHANT:
            out.append(
                m.OrderEvent(
                    f"bench:{key.amazon_order_id}:{len(out)}",
                    key,
                    m.Source.SELLER,
                    at - timedelta(minutes=1),
                    at - timedelta(minutes=1),
                    m.SellerCancellationSubmitted(reason, feed_id=f"F{rng.randint(1, 10**9)}"),
                )
            )
        snap(at, m.Source.ORDERS_V2026, m.OrderStatus.CANCELED, cancelled_by=by, cancel_reason=reason)
        return out
    if rng.random() < 0.6:
        at = released + timedelta(hours=rng.randint(1, 20))
        out.append(
            m.OrderEvent(
                f"bench:{key.amazon_order_id}:{len(out)}",
                key,
                m.Source.SELLER,
                at,
                at,
                m.ShippingLabelPurchased(),
            )
        )
    shipped_at = released + timedelta(hours=rng.randint(2, 30))
    snap(shipped_at, m.Source.ORDER_CHANGE, m.OrderStatus.SHIPPED, shipped=True)
    if rng.random() < 0.6:
        snap(shipped_at + timedelta(hours=2), m.Source.ORDERS_V2026, m.OrderStatus.SHIPPED, shipped=True)
    return out


def mix(events: int, accounts: int, seed: int, now: datetime) -> tuple[list[tuple[bytes, bytes]], int]:
    """(key, value) records in publish order, and how many orders they are about."""
    rng = random.Random(seed)
    pairs = [(f"A{n:03d}BENCHSELLER", MARKETPLACES[n % len(MARKETPLACES)]) for n in range(accounts)]
    weights = [1 / (rank + 1) ** 0.8 for rank in range(accounts)]  # a few big shops, a long tail
    sku_pools = {
        pair: [f"SKU-{n:03d}-{s:04d}" for s in range(rng.randint(20, 400))] for n, pair in enumerate(pairs)
    }
    timed: list[tuple[datetime, int, m.OrderEvent]] = []
    orders = 0
    while len(timed) < events:
        seller, mkt = rng.choices(pairs, weights)[0]
        key = m.OrderKey(seller, mkt, f"{rng.randint(100, 999)}-{orders:07d}-{rng.randint(0, 9999999):07d}")
        purchased = now - timedelta(days=9) + timedelta(seconds=rng.randint(0, 7 * 86400))
        pool = sku_pools[(seller, mkt)]
        skus = [
            pool[min(int(rng.paretovariate(1.2)) - 1, len(pool) - 1)] for _ in range(rng.choice((1, 1, 1, 2)))
        ]
        orders += 1
        for event in order_events(rng, key, purchased, sorted(set(skus))):
            delivered = event.occurred_at + (timedelta(days=1) if rng.random() < 0.01 else timedelta(0))
            timed.append((delivered, len(timed), event))
    timed.sort(key=lambda t: (t[0], t[1]))
    records = [(e.key.partition_key.encode(), codec.encode(e)) for _, _, e in timed[:events]]
    return records, len({e.key for _, _, e in timed[:events]})


# --- the two sides ----------------------------------------------------------------------------------


async def raw_consume(bootstrap: str, topic: str, total: int, max_records: int) -> float:
    """Events/s of a consumer that only decodes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, max_poll_records=max_records
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = 0.0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000)
            if batch and not started:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    codec.decode(record.value)
                    seen += 1
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Applied:
    rate: float  # events/s
    order_writes: float  # rows inserted or updated per event
    bucket_writes: float
    cpu_us: float  # the service process's CPU per event
    postgres_cpu_us: float | None  # the Postgres server's, when it is ours (a local process)
    peak_rss_mb: float  # the service process's peak resident memory (batches in hand bound it)


def _postgres_cpu_s(postmaster: int | None) -> float | None:
    """CPU of the local Postgres' processes (the postmaster and its children: backends, writers)."""
    if postmaster is None:
        return None
    pids = [postmaster, *map(int, Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split())]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # a backend that just exited
            total += _process_cpu_s(pid)
    return total


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _applied(conn: asyncpg.Connection, schema: str) -> int:
    try:
        return int(
            await conn.fetchval(f'SELECT COALESCE(sum(applied_records), 0) FROM "{schema}".consumer_offsets')
        )
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return 0


async def _writes(conn: asyncpg.Connection, schema: str) -> dict[str, int]:
    """Rows inserted + updated per table, once Postgres' statistics have settled."""
    last: dict[str, int] = {}
    for _ in range(50):
        rows = await conn.fetch(
            "SELECT relname, n_tup_ins + n_tup_upd AS writes FROM pg_stat_user_tables WHERE schemaname = $1",
            schema,
        )
        found = {r["relname"]: int(r["writes"]) for r in rows}
        if found == last and found:
            return found
        last = found
        await asyncio.sleep(0.3)
    return last


async def apply_round(
    settings: Settings, total: int, log: Path, spy: str | None = None, postmaster: int | None = None
) -> Applied:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"postgres_schema": schema, "metrics_health_port": find_free_port()})
    env = {**os.environ, **{f"CANCELGUARD_{k.upper()}": str(v) for k, v in s.model_dump().items()}}
    env["PYTHONPATH"] = str(ROOT / "services")
    conn = await asyncpg.connect(settings.postgres_dsn)
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cancelguard", "serve", "metrics", env=env, stdout=out, stderr=out
        )
    sampler = None
    pg_started: float | None = None
    try:
        first = 0
        started = 0.0
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the metrics service exited {proc.returncode}; see {log}")
            done = await _applied(conn, schema)
            if done and not started:
                first, started = done, time.perf_counter()
                pg_started = _postgres_cpu_s(postmaster)
                if spy:  # sample the service while it applies (py-spy: pip install py-spy)
                    sampler = await asyncio.create_subprocess_exec(
                        str(Path(sys.executable).parent / "py-spy"),
                        *(
                            "record",
                            "-p",
                            str(proc.pid),
                            "-f",
                            "raw",
                            "-o",
                            spy,
                            "-r",
                            "200",
                            "--nonblocking",
                        ),
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
            if done >= total:
                elapsed = time.perf_counter() - started
                break
            await asyncio.sleep(0.02)
        cpu = _process_cpu_s(proc.pid)
        rss = _peak_rss_mb(proc.pid)
        pg_end = _postgres_cpu_s(postmaster)
        pg_cpu = (
            None if pg_end is None or pg_started is None else (pg_end - pg_started) / (total - first) * 1e6
        )
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            await asyncio.wait_for(sampler.wait(), 60)
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)
        writes = await _writes(conn, schema)
        return Applied(
            (total - first) / elapsed,
            writes.get("orders", 0) / total,
            writes.get("cr_buckets", 0) / total,
            cpu / total * 1e6,
            pg_cpu,
            rss,
        )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def profile_apply(settings: Settings, total: int, out: Path) -> None:
    """One apply in this process under cProfile; prints the top of the profile."""
    from cancelguard.metrics.service import MetricsService

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"postgres_schema": schema, "metrics_health_port": find_free_port()})
    conn = await asyncpg.connect(settings.postgres_dsn)
    stop = asyncio.Event()
    service = MetricsService(s)
    profiler = cProfile.Profile()
    profiler.enable()
    task = asyncio.create_task(service.run(stop))
    started = time.perf_counter()
    try:
        while await _applied(conn, schema) < total:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        say(f"profiled apply: {total / (time.perf_counter() - started):,.0f} events/s (start-up included)")
    finally:
        stop.set()
        await task
        profiler.disable()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    profiler.dump_stats(out)
    stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs().sort_stats("tottime")
    stats.print_stats(25)


# --- the run ----------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, bootstrap: str, dsn: str, work: Path, postmaster: int | None) -> None:
    now = datetime.now(UTC)
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = Settings(
        kafka_bootstrap=bootstrap,
        postgres_dsn=dsn,
        topic_prefix=prefix,
        topic_partitions=args.partitions,
        api_metrics_port=0,
        ingestion_metrics_port=0,
        metrics_metrics_port=0,
        batch_max_records=args.batch,
        log_level="WARNING",
    )
    say(f"generating {args.events:,} events for {args.accounts} seller account x marketplace pairs ...")
    records, orders = mix(args.events, args.accounts, args.seed, now)
    say(f"  {orders:,} orders; publishing to {settings.order_events_topic} ({args.partitions} partitions)")
    await kafka.publish(settings, settings.order_events_topic, records, client_id="bench")
    if args.profile:
        await profile_apply(settings, len(records), Path(args.profile))
        return
    raws, applies = [], []
    for n in range(args.rounds):
        raw = await raw_consume(bootstrap, settings.order_events_topic, len(records), args.batch)
        applied = await apply_round(settings, len(records), work / "metrics.log", args.py_spy, postmaster)
        raws.append(raw)
        applies.append(applied)
        say(
            f"round {n + 1}: raw {raw:,.0f} events/s; apply {applied.rate:,.0f} events/s "
            f"({applied.rate / raw:.2f}x), CPU/event: service {applied.cpu_us:.1f} us, Postgres "
            f"{'-' if applied.postgres_cpu_us is None else f'{applied.postgres_cpu_us:.1f} us'}; "
            f"writes/event: orders {applied.order_writes:.3f}, buckets {applied.bucket_writes:.4f}; "
            f"peak RSS {applied.peak_rss_mb:.0f} MB"
        )
    raw = statistics.median(raws)
    rate = statistics.median(a.rate for a in applies)
    ratio = statistics.median(a.rate / r for a, r in zip(applies, raws, strict=True))
    orders_w = statistics.median(a.order_writes for a in applies)
    buckets_w = statistics.median(a.bucket_writes for a in applies)
    print(f"events {len(records):,}, orders {orders:,}, pairs {args.accounts}, partitions {args.partitions}")
    print(f"raw decode-only consume {raw:,.0f} events/s (median of {args.rounds})")
    print(f"order row writes {orders_w:.3f}/event ({orders_w * len(records) / orders:.2f}/order)")
    print(f"apply/raw ratio {ratio:.2f}, applied {rate:,.0f} events/s, bucket writes {buckets_w:.3f}/event")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=150)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch",
        type=int,
        default=Settings.model_fields["batch_max_records"].default,
        help="max records per batch (both sides; default: the service's)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kafka", help="host:port of a Kafka to use instead of a local process")
    parser.add_argument("--postgres", help="DSN of a Postgres to use instead of a local process")
    parser.add_argument("--profile", help="run one apply in this process under cProfile, save it here")
    parser.add_argument(
        "--py-spy", help="sample the service process with py-spy while it applies (raw stacks)"
    )
    args = parser.parse_args()
    # stopped with SIGTERM: still stop the Kafka and Postgres it started (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="cancelguard-bench-"))
    work.chmod(0o755)  # Postgres runs unprivileged when we are root: it must enter this directory
    started: list[LocalKafka | LocalPostgres] = []
    try:
        bootstrap = args.kafka
        if not bootstrap:
            say("starting a local Kafka ...")
            local_kafka = LocalKafka(
                work / "kafka",
                port=find_free_port(),
                controller_port=find_free_port(),
                dist=KafkaDist(say=say),
                say=say,
            )
            started.append(local_kafka)
            bootstrap = local_kafka.start()
        dsn = args.postgres
        postmaster = None
        if not dsn:
            say("starting a local Postgres ...")
            local_pg = LocalPostgres(work / "postgres", port=find_free_port(), say=say)
            started.append(local_pg)
            dsn = local_pg.start()
            postmaster = local_pg.running_pid()
        asyncio.run(run(args, bootstrap, dsn, work, postmaster))
    finally:
        for service in reversed(started):
            service.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
