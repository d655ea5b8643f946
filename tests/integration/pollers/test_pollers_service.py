"""The pollers service as a whole, in this process: accounts file, health, token endpoint outages,
reports, ORDER_CHANGE enrichment, and credentials that never leave the process.

The simulator's clock runs with the wall clock here (the service waits on real time).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pollers_harness import read_topic

from cancelguard import kafka
from cancelguard.accounts import load_accounts
from cancelguard.amazon import Backoff
from cancelguard.config import Settings
from cancelguard.domain.model import AccountEvent, OrderEvent, OrderSnapshot
from cancelguard.events import codec
from cancelguard.ingestion.pollers.service import AMAZON, PollersService
from cancelguard.processes import health_status
from cancelguard.runtime import LIVENESS, NOT_SERVING, SERVING
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.render import order_change
from cancelguard.simulator.spapi.server import Simulator, build_simulator
from cancelguard.simulator.spapi.testing import SimulatedTime, serving

pytestmark = pytest.mark.integration

WALL = datetime.now(UTC).replace(microsecond=0)
V2026_SELLER, V0_SELLER = "A1SIMSELLER01", "A2SIMSELLER02"
EU = ("A1F83G8C2ARO7P", "A1PA6795UKMFR9")
QUICK = {"backoff": Backoff(base_s=0.05, cap_s=0.2, max_attempts=3), "token_failure_cooldown_s": 1.0}


def write_accounts(sim: Simulator, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The accounts file: the app's secret in a file (as a Kubernetes Secret mounts it), the rest by
    environment variable."""
    secret = tmp_path / "lwa-client-secret"
    secret.write_text(sim.client_secret + "\n")
    monkeypatch.setenv("SVC_LWA_CLIENT_ID", sim.client_id)
    for n, seller in enumerate((V2026_SELLER, V0_SELLER)):
        monkeypatch.setenv(f"SVC_REFRESH_{n}", sim.world.sellers[seller].refresh_token)
    path = tmp_path / "accounts.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {
                    "client_id": "env:SVC_LWA_CLIENT_ID",
                    "client_secret": f"file:{secret}",
                    "region": "eu",
                    "endpoint": base,
                    "lwa_endpoint": f"{base}/auth/o2/token",
                },
                "accounts": [
                    {
                        "seller_id": V2026_SELLER,
                        "marketplaces": list(EU),
                        "orders_api": "v2026",
                        "refresh_token": "env:SVC_REFRESH_0",
                    },
                    {
                        "seller_id": V0_SELLER,
                        "marketplaces": list(EU),
                        "orders_api": "v0",
                        "refresh_token": "env:SVC_REFRESH_1",
                    },
                ],
            }
        )
    )
    return path


@asynccontextmanager
async def running(service: PollersService) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.1)
    return found


def world() -> Simulator:
    sim = build_simulator(
        ScenarioSpec(WALL, seed=3, sellers=(V2026_SELLER, V0_SELLER), marketplaces=EU, orders_per_day=4),
        faults=None,
    )
    sim.faults.update({"processing_seconds": 1.0})
    return sim


async def test_reports_enrichment_and_polls_and_no_credential_leaves_the_process(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = world()
    async with serving(sim) as base:
        s = settings.model_copy(
            update={
                "accounts_file": str(write_accounts(sim, base, tmp_path, monkeypatch)),
                "poll_interval_s": 0.5,
                "report_poll_interval_s": 0.3,
                "probe_interval_s": 0.2,
            }
        )
        secrets = [sim.client_secret, *(a.refresh_token for a in sim.world.sellers.values())]
        service = PollersService(s, connection_options=QUICK)
        # a Canceled notification of a v2026 seller's order: the enricher asks getOrder who cancelled
        cancelled = next(
            o for o in sim.world.orders_of(V2026_SELLER)
            if o.channel == "MFN" and (v := o.visible(sim.clock.now())) is not None and v.status == "Canceled"
            and any(i.cancelled_by == "MERCHANT" for i in v.items)
        )  # fmt: skip
        version = cancelled.visible(sim.clock.now())
        assert version is not None
        await kafka.ensure_topics(
            s.kafka_bootstrap, s.all_topics, partitions=s.topic_partitions, replication=1
        )
        notification = json.dumps(order_change(cancelled, version)).encode()
        await kafka.publish(s, s.order_change_topic, [(None, notification)], client_id="test")
        async with running(service):
            address = f"127.0.0.1:{s.pollers_health_port}"
            assert await wait_for(lambda: _is(address, SERVING), "SERVING")

            async def everything() -> list[Any]:
                events = [
                    codec.decode(r.value) for r in await read_topic(s, s.order_events_topic, idle_s=0.5)
                ]
                reported = {e.key.marketplace_id for e in events if isinstance(e, AccountEvent)}
                from_reports = [e for e in events if e.event_id.startswith("order-report:")]
                enriched = [e for e in _orders(events) if e.key.amazon_order_id == cancelled.amazon_order_id]
                done = reported == set(EU) and from_reports and enriched
                return events if done else []

            events = await wait_for(everything, "performance reports, unshipped reports and enrichment", 90)
        assert service.reader is not None and service.reader.totals.queued >= 1
    performance = [e for e in events if isinstance(e, AccountEvent)]
    assert {(e.key.seller_account, e.key.marketplace_id) for e in performance} == {
        (seller, m) for seller in (V2026_SELLER, V0_SELLER) for m in EU
    }
    snapshots = [e for e in _orders(events) if e.key.amazon_order_id == cancelled.amazon_order_id]
    assert any(
        isinstance(e.body, OrderSnapshot) and any(i.cancelled_by is not None for i in e.body.items)
        for e in snapshots
    )
    # the credentials went to the token endpoint and nowhere else
    records = []
    for topic in s.all_topics:
        records += await read_topic(s, topic, idle_s=0.5)
    blobs = [r.value or b"" for r in records] + [r.key or b"" for r in records]
    blobs += [v for r in records for _, v in (r.headers or [])]
    for secret in secrets:
        assert not any(secret.encode() in b for b in blobs), "a credential reached Kafka"
        assert secret not in caplog.text, "a credential reached the logs"
        assert secret not in repr(load_accounts(s.accounts_file))


def _orders(events: list[Any]) -> list[OrderEvent]:
    return [e for e in events if isinstance(e, OrderEvent)]


async def _is(address: str, status: int) -> bool:
    return await health_status(address) == status


async def test_health_is_not_serving_while_the_token_endpoint_is_down_and_it_is_not_hammered(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token providers run on the simulator's clock, frozen here: however often the loops try while
    it stands still, no account asks the endpoint again within its cool-down; each move of the clock
    past it allows one more round of at most 3 attempts per account. (With no cool-down, the first
    check fails: 12 requests where 6 may be.)"""
    sim = world()
    sim.clock.freeze(True)
    sim.faults.token_endpoint_down = True
    async with serving(sim) as base:
        s = settings.model_copy(
            update={
                "accounts_file": str(write_accounts(sim, base, tmp_path, monkeypatch)),
                "poll_interval_s": 0.05,
                "probe_interval_s": 0.1,
                "outage_limit_s": 1.0,  # Amazon's outage must not make the service exit
            }
        )
        service = PollersService(s, connection_options=QUICK, clock=SimulatedTime(sim), now=sim.clock.now)
        address = f"127.0.0.1:{s.pollers_health_port}"
        accounts, attempts = 2, 3  # QUICK's backoff: 3 attempts, then the cool-down
        cooldown = QUICK["token_failure_cooldown_s"]
        assert isinstance(cooldown, float)
        async with running(service) as task:
            await wait_for(lambda: _down(service), "Amazon's token endpoint reported down")
            assert await wait_for(lambda: _is(address, NOT_SERVING), "NOT_SERVING")

            async def every_account_tried() -> bool:  # each account's first round: its attempts, then
                return sim.stats["lwa.token"] >= accounts * attempts  # its cool-down

            await wait_for(every_account_tried, "every account's first round of attempts")
            first = sim.stats["lwa.token"]
            assert first == accounts * attempts
            for _ in range(3):
                tries = _failed_steps()
                await wait_for(lambda t=tries: _more_failed_steps(t, 20), "the loops try again, failing fast")
                assert sim.stats["lwa.token"] == first, "the endpoint was asked within the cool-down"
                sim.clock.advance(cooldown + 0.1)
                await wait_for(
                    lambda f=first: _asked_again(sim, f), "one more round once the cool-down is over"
                )
                tries = _failed_steps()
                await wait_for(lambda t=tries: _more_failed_steps(t, 20), "that round over")
                assert sim.stats["lwa.token"] - first <= accounts * attempts
                first = sim.stats["lwa.token"]
            # longer than the outage limit, and still up: a restart would not bring Amazon back
            assert service.dependencies is not None
            since = service.dependencies.down_since[AMAZON]
            await wait_for(lambda: _later_than(since + s.outage_limit_s), "past the outage limit")
            assert not task.done() and await health_status(address) == NOT_SERVING
            # what the liveness probe asks (deploy/k8s/base/pollers.yaml): alive, so not restarted
            assert await health_status(address, service=LIVENESS) == SERVING
            sim.faults.token_endpoint_down = False
            sim.clock.advance(cooldown + 0.1)
            assert await wait_for(lambda: _is(address, SERVING), "SERVING again", timeout=30)
            assert await wait_for(lambda: _polled(sim), "both accounts polled", timeout=30)


def _failed_steps() -> float:
    from prometheus_client import REGISTRY

    return sum(
        REGISTRY.get_sample_value("cancelguard_pollers_steps_total", {"kind": k, "outcome": "failed"}) or 0.0
        for k in ("orders", "reports", "enrichment")
    )


async def _more_failed_steps(before: float, more: int) -> bool:
    return _failed_steps() >= before + more


async def _asked_again(sim: Simulator, before: int) -> bool:
    return sim.stats["lwa.token"] > before


async def _later_than(deadline: float) -> bool:
    return time.monotonic() > deadline


async def _down(service: PollersService) -> bool:
    return service.dependencies is not None and AMAZON in service.dependencies.down_since


async def _polled(sim: Simulator) -> bool:
    return sim.stats["orders2026.searchOrders 200"] > 0 and sim.stats["ordersV0.getOrders 200"] > 0
