"""Alerts on the alerts topic, against a real Kafka broker and a real Postgres server.

A scripted stream for one seller account takes its rate across the warning level and Amazon's threshold,
up and back down, in the live and the Amazon-aligned window; cancels a SKU twice in a row; and brings
Amazon's own figure, first far from ours, then close. Each crossing must be on the topic exactly once:
with a service that runs through, one killed (SIGKILL) right after the commit that raised alerts and
before it published them, one killed after publishing and before marking them sent, and across a
rebalance between two instances.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from cancelguard import db, faults, kafka
from cancelguard.config import Settings
from cancelguard.domain import model as m
from cancelguard.events import codec
from cancelguard.events.v1 import alert_pb2 as pb
from cancelguard.metrics.service import MetricsService
from cancelguard.processes import settings_env

pytestmark = pytest.mark.integration

SELLER, US = "A1ALERTSELLER", "ATVPDKIKX0DER"
NOW = datetime.now(UTC)
BOUGHT = NOW - timedelta(hours=48)  # inside the live window and Amazon's 7 days (which end yesterday)


def _snapshot(order: str, n: int, status: m.OrderStatus, *, sku: str = "SKU-PLAIN") -> m.OrderEvent:
    at = BOUGHT + timedelta(minutes=n)
    return m.OrderEvent(
        f"alert-test:{order}:{n}",
        m.OrderKey(SELLER, US, order),
        m.Source.ORDERS_V2026,
        at,
        at,
        m.OrderSnapshot(
            status=status,
            channel=m.Channel.MFN,
            purchased_at=BOUGHT,
            items=(
                m.ItemObservation(
                    f"{order}-1",
                    seller_sku=sku,
                    quantity_ordered=1,
                    cancelled_by=m.CancelledBy.MERCHANT if status is m.OrderStatus.CANCELED else None,
                    cancel_reason="NoInventory" if status is m.OrderStatus.CANCELED else "",
                ),
            ),
        ),
    )


def _order(n: int, *, sku: str = "SKU-PLAIN") -> m.OrderEvent:
    return _snapshot(f"111-{n:07d}-0000001", 1, m.OrderStatus.UNSHIPPED, sku=sku)


def _cancel(n: int, *, sku: str = "SKU-PLAIN") -> m.OrderEvent:
    return _snapshot(f"111-{n:07d}-0000001", 2, m.OrderStatus.CANCELED, sku=sku)


def _amazon_report(n: int, rate: str, cancellations: int) -> m.AccountEvent:
    end = NOW.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return m.AccountEvent(
        f"alert-test:report:{n}",
        m.AccountKey(SELLER, US),
        m.Source.SELLER_PERFORMANCE_REPORT,
        NOW - timedelta(minutes=10 - n),
        NOW,
        m.AmazonReportedRate(
            window_from=end - timedelta(days=7),
            window_to=end - timedelta(minutes=1),
            order_count=200,
            cancellation_count=cancellations,
            rate=Decimal(rate),
            status=m.AmazonRateStatus.GOOD,
            target_value=Decimal("0.025"),
            target_condition=m.TargetCondition.LESS_THAN,
        ),
    )


# the script: (events of a step, the alerts it raises as (subject, what))
STEPS: list[tuple[list[m.Event], set[tuple[str, str]]]] = [
    ([_order(n) for n in range(100)], set()),  # 0 of 100: good
    (  # 2 of 100 = 2%: the warning level
        [_cancel(0, sku="SKU-TWICE"), _cancel(1, sku="SKU-TWICE")],
        {("LIVE", "WARNING_UP"), ("AMAZON_7", "WARNING_UP"), ("SUPPRESSION SKU-TWICE", "SUPPRESSION")},
    ),
    ([_cancel(2)], {("LIVE", "THRESHOLD_UP"), ("AMAZON_7", "THRESHOLD_UP")}),  # 3%: the threshold
    (  # Amazon says 0.5% for the same window, we say 3%
        [_amazon_report(1, "0.005", 1)],
        {("AMAZON_DIFFERENCE", "UP")},
    ),
    (  # 3 of 200 = 1.5%: under both levels again
        [_order(n) for n in range(100, 200)],
        {
            ("LIVE", "THRESHOLD_DOWN"),
            ("LIVE", "WARNING_DOWN"),
            ("AMAZON_7", "THRESHOLD_DOWN"),
            ("AMAZON_7", "WARNING_DOWN"),
        },
    ),
    ([_amazon_report(2, "0.015", 3)], {("AMAZON_DIFFERENCE", "DOWN")}),  # Amazon agrees: 1.5%
]


def subject_of(alert: pb.Alert) -> tuple[str, str]:
    which = alert.WhichOneof("body")
    if which == "rate_crossing":
        c = alert.rate_crossing
        name = "LIVE" if c.window == pb.ALERT_WINDOW_LIVE else f"AMAZON_{c.window_days}"
        what = f"{pb.Level.Name(c.level).removeprefix('LEVEL_')}_{pb.Direction.Name(c.direction)[10:]}"
        return name, what
    if which == "suppression_risk":
        return f"SUPPRESSION {alert.suppression_risk.seller_sku}", "SUPPRESSION"
    return "AMAZON_DIFFERENCE", pb.Direction.Name(alert.amazon_difference.direction)[10:]


async def publish(settings: Settings, events: list[m.Event]) -> None:
    await kafka.publish(
        settings,
        settings.order_events_topic,
        [(e.key.partition_key.encode(), codec.encode(e)) for e in events],
        client_id="test",
    )


async def read_alerts(settings: Settings, count: int, timeout: float = 60) -> list[pb.Alert]:
    """Every record of the alerts topic once `count` are there (and a moment more, for duplicates)."""
    consumer = AIOKafkaConsumer(
        settings.alerts_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    out: list[pb.Alert] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    alert = pb.Alert()
                    alert.ParseFromString(record.value)
                    out.append(alert)
            if len(out) >= count:
                break
        # duplicates would have been sent with the originals: the end offsets hold them by now
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for record in records:
                alert = pb.Alert()
                alert.ParseFromString(record.value)
                out.append(alert)
    finally:
        await consumer.stop()
    return out


async def outbox(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(
        settings.postgres_dsn, server_settings={"search_path": settings.postgres_schema}
    )
    try:
        return await conn.fetch("SELECT alert_id, attempts, sent_at FROM alert_outbox ORDER BY id")
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()


async def until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60, settings: Settings | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            found = (
                [(r["alert_id"], r["sent_at"] is not None) for r in await outbox(settings)]
                if settings
                else []
            )
            raise AssertionError(f"not within {timeout}s: {what}; the outbox holds {found}")
        await asyncio.sleep(0.1)


async def applied(settings: Settings) -> int:
    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    try:
        return int(await pool.fetchval("SELECT COALESCE(sum(applied_records), 0) FROM consumer_offsets"))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await pool.close()


def expected_through(step: int) -> Counter[tuple[str, str]]:
    return Counter(a for _, alerts in STEPS[: step + 1] for a in alerts)


@asynccontextmanager
async def running(*services: MetricsService) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in services]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def run_script(settings: Settings, start: int = 0) -> None:
    """Publish the steps one by one, each once the previous one's alerts are all in the outbox."""
    total = sum(len(events) for events, _ in STEPS[:start])
    for n, (events, _) in enumerate(STEPS[start:], start):
        await publish(settings, events)
        total += len(events)

        async def done(total: int = total) -> bool:
            return await applied(settings) >= total

        await until(done, f"step {n} applied")


def assert_exactly_once(alerts: list[pb.Alert], want: Counter[tuple[str, str]]) -> None:
    ids = Counter(a.alert_id for a in alerts)
    assert [i for i, c in ids.items() if c > 1] == [], "an alert is on the topic twice"
    assert Counter(subject_of(a) for a in alerts) == want


async def test_each_crossing_is_alerted_exactly_once(settings: Settings) -> None:
    async with running(MetricsService(settings)):
        await run_script(settings)
        want = expected_through(len(STEPS) - 1)

        async def all_sent() -> bool:
            rows = await outbox(settings)
            return len(rows) == sum(want.values()) and all(r["sent_at"] is not None for r in rows)

        await until(all_sent, "every alert published", settings=settings)
    alerts = await read_alerts(settings, sum(want.values()))
    assert_exactly_once(alerts, want)
    # one partition key per seller account x marketplace; the rates say what was crossed
    crossing = next(a for a in alerts if subject_of(a) == ("LIVE", "THRESHOLD_UP"))
    assert (crossing.rate_crossing.cancelled_orders, crossing.rate_crossing.total_orders) == (3, 100)
    assert crossing.rate_crossing.level_rate == pytest.approx(0.025)


def start_service(settings: Settings, log: Path, fault: str | None) -> subprocess.Popen[bytes]:
    env = settings_env(settings)
    env.pop(faults.ENV, None)
    if fault:
        env[faults.ENV] = fault
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cancelguard", "serve", "metrics"], env=env, stdout=out, stderr=out
        )


@pytest.mark.parametrize("fault", [faults.ALERTS_COMMITTED, faults.ALERTS_PUBLISHED])
async def test_a_kill_between_commit_and_publish_loses_and_doubles_no_alert(
    settings: Settings, tmp_path: Path, fault: str
) -> None:
    """SIGKILL at the fault point of the first batch that raised alerts, then a restart."""
    log = tmp_path / "metrics.log"
    await publish(settings, STEPS[0][0] + STEPS[1][0])  # one batch: the warning crossings
    want = expected_through(1)
    proc = start_service(settings, log, fault)
    try:
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 120)
        assert code == -9, log.read_text()[-3000:]  # it reached the point and died there
        rows = await outbox(settings)
        assert len(rows) == sum(want.values())
        assert all(r["sent_at"] is None for r in rows)  # committed; the crash kept them from being marked
        if fault == faults.ALERTS_COMMITTED:
            assert await read_alerts(settings, 1, timeout=3) == []  # ... and from being published
        else:
            assert len(await read_alerts(settings, sum(want.values()), timeout=10)) == sum(want.values())
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = start_service(settings, log, None)
    try:

        async def all_sent() -> bool:
            rows = await outbox(settings)
            return bool(rows) and all(r["sent_at"] is not None for r in rows)

        await until(all_sent, "the restarted service published the outbox", timeout=90, settings=settings)
        await publish(settings, STEPS[2][0])  # and goes on raising new ones

        async def threshold_sent() -> bool:
            rows = await outbox(settings)
            return len(rows) == sum(expected_through(2).values()) and all(r["sent_at"] for r in rows)

        await until(threshold_sent, "the threshold crossings published", timeout=90, settings=settings)
    finally:
        proc.terminate()
        await asyncio.wait_for(asyncio.to_thread(proc.wait), 60)
    assert_exactly_once(await read_alerts(settings, sum(expected_through(2).values())), expected_through(2))


async def test_alerts_are_raised_once_across_a_rebalance(settings: Settings) -> None:
    settings = settings.model_copy(update={"topic_partitions": 3, "alert_sweep_s": 0.2})
    first = MetricsService(settings)
    second = MetricsService(settings.model_copy(update={"metrics_health_port": _free_port()}))
    stop_first = asyncio.Event()
    task = asyncio.create_task(first.run(stop_first))
    try:
        await run_script(settings, 0)
        # a second instance joins (the partitions are dealt again), then the first one leaves
        async with running(second):
            await until(lambda: _assigned(second), "the second instance got partitions")
            stop_first.set()
            await asyncio.wait_for(task, 60)
            await publish(settings, [_cancel(n) for n in range(150, 154)])  # 7 of 200 = 3.5%: up again
            want = expected_through(len(STEPS) - 1) + Counter(
                {("LIVE", "WARNING_UP"): 1, ("LIVE", "THRESHOLD_UP"): 1, ("AMAZON_7", "WARNING_UP"): 1}
                | {("AMAZON_7", "THRESHOLD_UP"): 1, ("AMAZON_DIFFERENCE", "UP"): 1}
                | {("SUPPRESSION SKU-PLAIN", "SUPPRESSION"): 1}  # orders 150 and 151 follow each other
            )

            async def all_sent() -> bool:
                rows = await outbox(settings)
                return len(rows) == sum(want.values()) and all(r["sent_at"] for r in rows)

            await until(all_sent, "the alerts after the rebalance published", timeout=90, settings=settings)
    finally:
        stop_first.set()
        await asyncio.wait_for(task, 60)
    assert_exactly_once(await read_alerts(settings, sum(want.values())), want)


async def _assigned(service: MetricsService) -> bool:
    return bool(service.consumer.assignment())


def _free_port() -> int:
    from cancelguard.localstack import find_free_port

    return find_free_port()


def test_the_fault_hook_is_off_unless_named() -> None:
    assert os.environ.get(faults.ENV) is None
    faults.reached(faults.ALERTS_COMMITTED)  # does nothing: this test process is still alive
