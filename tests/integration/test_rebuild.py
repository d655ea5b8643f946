"""`cancelguard rebuild` against a real Kafka broker and a real Postgres server, while the metrics service
and the gRPC API run: a policy override changes, the rebuild recomputes everything from the events
topic into a new generation, the API keeps the old numbers until the switch, then shows the new ones,
which equal a batch recomputation from the same events; the live service goes on, on the new one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from cancelguard import kafka
from cancelguard.api.server import serve
from cancelguard.client import AsyncClient
from cancelguard.config import Settings
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.domain.attribution import contribution
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import OrderEvent, OrderKey
from cancelguard.domain.policy import PolicyBook
from cancelguard.domain.windows import live_window
from cancelguard.events import codec
from cancelguard.ingestion.adapters.buyer_messages import parse_buyer_message
from cancelguard.ingestion.adapters.order_change import parse_order_change
from cancelguard.metrics.rebuild import rebuild
from cancelguard.metrics.service import MetricsService
from cancelguard.processes import settings_env
from cancelguard.simulator.scenario import Scenario, generate
from cancelguard.v1 import metrics_pb2

pytestmark = pytest.mark.integration

NEW_POLICY = {"*": {"pending_in_denominator": True}}  # buyer self-cancels join the denominator


def scenario_events(scenario: Scenario, now: datetime) -> list[OrderEvent]:
    events = [parse_order_change(n, observed_at=now) for n in scenario.notifications]
    for m in scenario.messages:
        event, _ = parse_buyer_message(m, observed_at=now)
        if event is not None:
            events.append(event)
    return events


def recomputed(
    events: list[OrderEvent], policies: PolicyBook, now: datetime
) -> dict[tuple[str, str], tuple[int, int]]:
    """The live window per seller account x marketplace, from the events alone: no store, no buckets."""
    by_order: dict[OrderKey, list[OrderEvent]] = {}
    for e in events:
        by_order.setdefault(e.key, []).append(e)
    window = live_window(now)
    out: dict[tuple[str, str], list[int]] = {}
    for key, order_events in by_order.items():
        order = fold(order_events)
        assert order is not None
        place = contribution(order, policies.for_marketplace(key.marketplace_id))
        totals = out.setdefault((key.seller_account, key.marketplace_id), [0, 0])
        totals[0] += place.denominator_at is not None and place.denominator_at in window
        totals[1] += place.numerator_at is not None and place.numerator_at in window
    return {k: (v[0], v[1]) for k, v in out.items()}


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(MetricsService(settings).run(stop)),
        asyncio.create_task(serve(settings, stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def api_rates(
    settings: Settings, accounts: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int]]:
    async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as api:
        stub = api.metrics
        out = {}
        for seller, mkt in accounts:
            r = await stub.GetCancellationRate(
                metrics_pb2.GetCancellationRateRequest(
                    seller_account=seller, marketplace_id=mkt, window_kind=metrics_pb2.WINDOW_KIND_LIVE
                ),
                timeout=5,
            )
            out[(seller, mkt)] = (r.total_orders, r.cancelled_orders)
        return out


async def until_api_shows(settings: Settings, want: dict[tuple[str, str], tuple[int, int]]) -> None:
    deadline = time.monotonic() + 90
    while (seen := await api_rates(settings, sorted(want))) != want:
        assert time.monotonic() < deadline, f"the API shows {seen}, want {want}"
        await asyncio.sleep(0.2)


async def publish(settings: Settings, events: list[OrderEvent]) -> None:
    await kafka.publish(
        settings,
        settings.order_events_topic,
        [(e.key.partition_key.encode(), codec.encode(e)) for e in events],
        client_id="test",
    )


async def test_a_rebuild_applies_a_new_policy_and_switches_while_the_api_serves(settings: Settings) -> None:
    now = datetime.now(UTC)
    scenario = generate(now, seed=31)
    events = scenario_events(scenario, now)
    old_policy, new_policy = PolicyBook(), Settings(policy_overrides=json.dumps(NEW_POLICY)).policies
    old, new = recomputed(events, old_policy, now), recomputed(events, new_policy, now)
    assert old != new, "the scenario must be one the policy change shows in"
    async with services(settings):
        await publish(settings, events)
        await until_api_shows(settings, old)
        seen_before_switch = {}

        async def before_switch() -> None:
            # the new generation has caught up: the API still serves the old one
            seen_before_switch.update(await api_rates(settings, sorted(old)))

        changed = settings.model_copy(update={"policy_overrides": json.dumps(NEW_POLICY)})
        await rebuild(changed, timeout_s=120, before_switch=before_switch)
        assert seen_before_switch == old
        # the new numbers within the freshness goal of the switch (the API's read cache hears of it by
        # a notification at its commit), and never the old ones again once they showed
        deadline = time.monotonic() + 1.0
        while (seen := await api_rates(settings, sorted(new))) != new:
            assert time.monotonic() < deadline, f"the API still serves {seen} 1 s after the switch"
        for _ in range(5):
            assert await api_rates(settings, sorted(new)) == new

        # the live service goes on applying, to the new generation, with the new policy
        later = generate(now, seed=32)
        more = scenario_events(later, now)
        await publish(settings, more)
        await until_api_shows(settings, recomputed(events + more, new_policy, now))


def test_the_rebuild_command_runs_as_a_job(settings: Settings) -> None:
    """`cancelguard rebuild` as a Kubernetes Job runs it: JSON lines on stderr, exit code 0 once switched."""
    out = subprocess.run(
        [sys.executable, "-m", "cancelguard", "rebuild", "--timeout", "120"],
        env=settings_env(settings),
        capture_output=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    lines = [json.loads(line) for line in out.stderr.decode().splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert "rebuild started" in messages and "switched" in messages
    assert any(line["msg"] == "rebuild progress" and "behind" in line for line in lines)


async def test_a_rebuild_from_a_time_starts_from_the_facts_and_reads_on_from_there(
    settings: Settings,
) -> None:
    """`--from`: the facts of the active generation are copied and placed with the new policy, and the
    topic is read from that time on; the result is the same as a rebuild from the beginning."""
    now = datetime.now(UTC)
    events = scenario_events(generate(now, seed=33), now)
    half = len(events) // 2
    new_policy = Settings(policy_overrides=json.dumps(NEW_POLICY)).policies
    async with services(settings):
        await publish(settings, events[:half])
        from_time = datetime.now(UTC)  # records published from now on carry later timestamps
        await publish(settings, events[half:])
        await until_api_shows(settings, recomputed(events, PolicyBook(), now))
        changed = settings.model_copy(update={"policy_overrides": json.dumps(NEW_POLICY)})
        await rebuild(changed, from_time=from_time, timeout_s=120)
        want = recomputed(events, new_policy, now)
        assert await api_rates(settings, sorted(want)) == want
