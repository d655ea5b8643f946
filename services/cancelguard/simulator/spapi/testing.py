"""Running the simulator inside a test or a demo process, and pointing a client at it.

    sim = build_simulator(ScenarioSpec(now), frozen=True)
    async with serving(sim) as base_url:
        async with SpApiClient(connection_for(sim, base_url, "A1SIMSELLER01")) as amazon:
            ...

`SimulatedTime` is a client clock whose sleeps move the simulator's clock instead of waiting, so rate
limits, backoff and report/feed polling run at full speed against simulated time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from cancelguard.amazon.backoff import Backoff
from cancelguard.amazon.connection import LwaCredentials, Secret, SellerConnection
from cancelguard.simulator.spapi.server import Simulator


@asynccontextmanager
async def serving(sim: Simulator, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve the simulator on a free loopback port; yields its base URL."""
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def connection_for(
    sim: Simulator, base_url: str, seller_id: str, *, backoff: Backoff | None = None, **kwargs: object
) -> SellerConnection:
    """A connection with the simulator's (fake) LWA app credentials and the seller's refresh token."""
    account = sim.world.sellers[seller_id]
    return SellerConnection(
        seller_id,
        base_url,
        LwaCredentials(sim.client_id, Secret(sim.client_secret), Secret(account.refresh_token)),
        lwa_endpoint=f"{base_url}/auth/o2/token",
        backoff=backoff or Backoff(base_s=0.001, cap_s=0.01, max_attempts=6),
        **kwargs,  # type: ignore[arg-type]
    )


class SimulatedTime:
    """A client `Clock` on the simulator's time: `sleep` advances the simulated clock and yields."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.slept: list[float] = []
        self._start = sim.clock.now()
        self._wall = time.monotonic()

    def monotonic(self) -> float:
        return (self.sim.clock.now() - self._start).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sim.clock.advance(max(0.0, seconds))
        await asyncio.sleep(0)
