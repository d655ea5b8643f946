"""SIGKILL the pollers process in the middle of a poll: the next process resumes from the cursor in
Postgres, and no order version is missing from the order-events topic.

`cancelguard serve pollers` runs as a process with an accounts file (credentials by environment
reference) pointing at the simulator, served by this test on loopback with its clock frozen and slow
answers, so a poll of many pages takes seconds. The kill is placed by progress: after the first poll
has saved its cursor, the test moves the simulator's clock on by days (many orders change), waits for
the second poll's fourth page to be served, and kills. The cursor must still be the first poll's (the
kill landed mid-poll); the restarted process must start from it, minus the overlap; and every order's
latest version must be on the topic once the restarted process has saved its cursor.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from cancelguard.config import Settings
from cancelguard.events import codec
from cancelguard.processes import POLLERS, ServiceProcesses
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.server import build_simulator
from cancelguard.simulator.spapi.testing import serving

pytestmark = pytest.mark.e2e

WALL = datetime.now(UTC).replace(microsecond=0)
SELLER = "A1SIMSELLER01"
MARKETS = ("A1F83G8C2ARO7P", "A1PA6795UKMFR9", "A13V1IB3VIYZZH")
OVERLAP_S = 900


async def _cursor(settings: Settings) -> datetime | None:
    conn = await asyncpg.connect(
        settings.postgres_dsn, server_settings={"search_path": settings.postgres_schema}
    )
    try:
        return await conn.fetchval(
            "SELECT min(read_until) FROM poll_cursors WHERE seller_account = $1 AND source = 'orders-v2026'",
            SELLER,
        )
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def _until(what: str, check, timeout: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.05)
    return found


async def _event_ids(settings: Settings) -> set[str]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.order_events_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    ids: set[str] = set()
    try:
        quiet = time.monotonic()
        while time.monotonic() - quiet < 3:
            for part in (await consumer.getmany(timeout_ms=300)).values():
                ids |= {codec.decode(r.value).event_id for r in part}
                quiet = time.monotonic()
    finally:
        await consumer.stop()
    return ids


@pytest.mark.timeout(300)
async def test_a_poller_killed_mid_poll_resumes_from_its_cursor_with_no_gap(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ScenarioSpec(
        WALL - timedelta(days=7), seed=31, sellers=(SELLER,), marketplaces=MARKETS, orders_per_day=50
    )
    sim = build_simulator(spec, frozen=True)
    first_at = spec.now - timedelta(days=2)
    sim.clock.set(first_at)
    sim.faults.update({"rate_limits": False, "slow_rate": 1.0, "slow_seconds": 0.25})
    async with serving(sim) as base:
        monkeypatch.setenv("KILLTEST_LWA_ID", sim.client_id)
        monkeypatch.setenv("KILLTEST_LWA_SECRET", sim.client_secret)
        monkeypatch.setenv("KILLTEST_REFRESH", sim.world.sellers[SELLER].refresh_token)
        accounts = tmp_path / "accounts.json"
        accounts.write_text(
            json.dumps(
                {
                    "defaults": {
                        "client_id": "env:KILLTEST_LWA_ID",
                        "client_secret": "env:KILLTEST_LWA_SECRET",
                    },
                    "accounts": [
                        {
                            "seller_id": SELLER,
                            "region": "eu",
                            "marketplaces": list(MARKETS),
                            "orders_api": "v2026",
                            "refresh_token": "env:KILLTEST_REFRESH",
                            "endpoint": base,
                            "lwa_endpoint": f"{base}/auth/o2/token",
                        }
                    ],
                }
            )
        )
        s = settings.model_copy(
            update={
                "accounts_file": str(accounts),
                "poll_interval_s": 0.2,
                "poll_overlap_s": OVERLAP_S,
                # reports and their wait do not matter here: not before the test is over
                "unshipped_report_interval_s": 86400.0,
                "performance_report_interval_s": 86400.0,
            }
        )
        services = ServiceProcesses(s, tmp_path / "logs")
        try:
            services.start((POLLERS,))
            await services.wait_healthy()
            first_cursor = await _until("the first poll's cursor", lambda: _cursor(s))
            assert first_cursor == first_at - timedelta(minutes=2)

            # days later, many orders changed: the next poll reads many slow pages
            served = sim.stats["orders2026.searchOrders 200"]
            sim.clock.set(WALL - timedelta(hours=1))

            async def fourth_page() -> bool:
                return sim.stats["orders2026.searchOrders 200"] >= served + 4

            await _until("the second poll's fourth page", fourth_page)
            services.kill(POLLERS)
            killed_at = len(sim.queries)
            assert await _cursor(s) == first_cursor, "the kill did not land mid-poll"

            services.start((POLLERS,))
            final = sim.clock.now() - timedelta(minutes=2)
            await _until("the restarted poller's cursor", lambda: _cursor_is(s, final), timeout=120)
        finally:
            codes = services.stop()
        assert codes[POLLERS] == 0, services.log_tail(POLLERS)

        resumed = next(q for k, _, q in list(sim.queries)[killed_at:] if k == "orders2026.searchOrders")
        assert datetime.fromisoformat(resumed["lastUpdatedAfter"]) == first_cursor - timedelta(
            seconds=OVERLAP_S
        )
        published = await _event_ids(s)
        now = sim.clock.now()
        want = {
            f"orders-v2026:{o.amazon_order_id}:{v.at.replace(microsecond=0).isoformat()}"
            for o in sim.world.orders_of(SELLER)
            if o.channel == "MFN" and (v := o.visible(now)) is not None and v.at <= final
        }
        missing = want - published
        assert not missing, (
            f"{len(missing)} of {len(want)} order versions never published, e.g. {sorted(missing)[:3]}"
        )


async def _cursor_is(settings: Settings, at: datetime) -> bool:
    return await _cursor(settings) == at
