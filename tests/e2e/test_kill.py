"""SIGKILL the metrics service again and again while it applies a large stream: nothing lost, nothing
applied twice.

The kills are placed by progress, not by time: the test watches the offsets the service has committed
to Postgres and kills it each time they pass the next mark, so every kill lands mid-stream, whatever the
machine's speed. At the end, every CR bucket equals a batch recomputation from the raw events (the same
events folded in memory, from nothing), and the per-partition audit says each record was applied
exactly once. Sizes: CANCELGUARD_SOAK_EVENTS (default 100,000) and CANCELGUARD_SOAK_KILLS (default 5);
`make soak` runs 1,000,000 events and 20 kills.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from cancelguard import kafka
from cancelguard.config import Settings
from cancelguard.domain.attribution import attribute, contribution
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import OrderEvent, OrderKey
from cancelguard.domain.policy import PolicyBook
from cancelguard.domain.windows import bucket_start
from cancelguard.events import codec
from cancelguard.ingestion.adapters.buyer_messages import parse_buyer_message
from cancelguard.ingestion.adapters.order_change import parse_order_change
from cancelguard.metrics.service import GROUP_ID
from cancelguard.processes import ServiceProcesses
from cancelguard.simulator.scenario import DEFAULT_SHOPS, generate

pytestmark = pytest.mark.e2e

EVENTS = int(os.environ.get("CANCELGUARD_SOAK_EVENTS", "100000"))
KILLS = int(os.environ.get("CANCELGUARD_SOAK_KILLS", "5"))
EVENTS_PER_SCALE = 2287  # records of the default scenario at scale 1 (notifications + buyer messages)


def stream(now: datetime, events: int) -> list[OrderEvent]:
    """Realistic order events, about `events` of them, as ingestion would publish them."""
    scale = math.ceil(events / EVENTS_PER_SCALE)
    scenario = generate(now, seed=41, shops=tuple(replace(s, orders=s.orders * scale) for s in DEFAULT_SHOPS))
    out = [parse_order_change(n, observed_at=now) for n in scenario.notifications]
    for message in scenario.messages:
        event, _ = parse_buyer_message(message, observed_at=now)
        if event is not None:
            out.append(event)
    return out


def recompute(
    events: list[OrderEvent], policies: PolicyBook
) -> dict[tuple[str, str, datetime], tuple[int, int]]:
    """Every (seller, marketplace, hour) bucket, from the raw events folded in memory."""
    by_order: dict[OrderKey, list[OrderEvent]] = {}
    for event in events:
        by_order.setdefault(event.key, []).append(event)
    counts: Counter[tuple[str, str, datetime, int]] = Counter()
    for key, order_events in by_order.items():
        order = fold(order_events)
        assert order is not None
        policy = policies.for_marketplace(key.marketplace_id)
        place = contribution(order, policy, attribute(order, policy))
        for column, at in ((0, place.denominator_at), (1, place.numerator_at)):
            if at is not None:
                counts[(key.seller_account, key.marketplace_id, bucket_start(at), column)] += 1
    buckets: dict[tuple[str, str, datetime], tuple[int, int]] = {}
    for (seller, mkt, hour, column), n in counts.items():
        orders, cancels = buckets.get((seller, mkt, hour), (0, 0))
        buckets[(seller, mkt, hour)] = (orders + n, cancels) if column == 0 else (orders, cancels + n)
    return buckets


async def applied(conn: asyncpg.Connection, topic: str) -> int:
    try:
        return int(
            await conn.fetchval(
                "SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets"
                " WHERE consumer_group = $1 AND topic = $2",
                GROUP_ID,
                topic,
            )
        )
    except asyncpg.UndefinedTableError:  # not migrated yet
        return 0


async def test_kill_9_of_the_metrics_service_mid_stream_loses_and_doubles_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    events = stream(now, EVENTS)
    total = len(events)
    settings = settings.model_copy(update={"batch_max_records": 2000})
    topic = settings.order_events_topic
    await kafka.publish(
        settings,
        topic,
        [(e.key.partition_key.encode(), codec.encode(e)) for e in events],
        client_id="test-kill",
    )
    services = ServiceProcesses(settings, tmp_path)
    conn = await asyncpg.connect(
        settings.postgres_dsn, server_settings={"search_path": settings.postgres_schema}
    )
    killed_at = []
    try:
        services.start(("metrics",))
        for k in range(1, KILLS + 1):
            mark = total * k // (KILLS + 1)
            deadline = time.monotonic() + 300
            while (progress := await applied(conn, topic)) < mark:
                assert services.procs["metrics"].poll() is None, services.log_tail("metrics")
                assert time.monotonic() < deadline, f"stuck at {progress} of {total} before kill {k}"
                await asyncio.sleep(0.02)
            services.kill("metrics")
            killed_at.append(await applied(conn, topic))
            services.start(("metrics",))
        deadline = time.monotonic() + 600
        while (progress := await applied(conn, topic)) < total:
            assert time.monotonic() < deadline, f"stuck at {progress} of {total} after the kills"
            await asyncio.sleep(0.2)
    finally:
        codes = services.stop()
    assert codes == {"metrics": 0}, services.log_tail("metrics")
    assert len(killed_at) == KILLS and all(0 < n < total for n in killed_at), (
        f"kills at {killed_at} of {total}"
    )

    # exactly once, per partition: every record applied once, by whichever instance held it
    audit = await conn.fetch(
        "SELECT partition, next_offset, applied_records FROM consumer_offsets"
        " WHERE consumer_group = $1 AND topic = $2",
        GROUP_ID,
        topic,
    )
    assert sum(r["next_offset"] for r in audit) == total
    doubled = {
        r["partition"]: (r["applied_records"], r["next_offset"])
        for r in audit
        if r["applied_records"] != r["next_offset"]
    }
    assert not doubled, f"partitions whose records were applied more (or less) than once: {doubled}"

    stored = {
        (r["seller_account"], r["marketplace_id"], r["bucket_start"]): (r["orders"], r["cancellations"])
        for r in await conn.fetch("SELECT * FROM cr_buckets")
        if (r["orders"], r["cancellations"]) != (0, 0)
    }
    await conn.close()
    want = recompute(events, settings.policies)
    assert stored == want, {
        k: (stored.get(k), want.get(k)) for k in set(stored) | set(want) if stored.get(k) != want.get(k)
    }
