"""Outages: Postgres, then Kafka, stopped for 30 s in the middle of the stream.

Every service stays up, reports NOT_SERVING while a dependency it needs is away, says so once (not a
line per retry), comes back to SERVING by itself, and the numbers end exact. Each test runs its own
Kafka broker or Postgres server (local processes on free ports), since it stops them.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from cancelguard.client import AsyncClient
from cancelguard.config import Settings
from cancelguard.demo import publish
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.localstack import KafkaDist, LocalKafka, LocalPostgres, LocalStackError, find_free_port
from cancelguard.processes import ServiceProcesses, health_port, health_status
from cancelguard.simulator.scenario import Scenario, generate
from cancelguard.v1 import metrics_pb2

pytestmark = pytest.mark.e2e

OUTAGE_S = 30
SERVING = health_pb2.HealthCheckResponse.SERVING


def _outage_settings(settings: Settings, **where: str) -> Settings:
    """The test's settings pointed at its own Kafka or Postgres, with quick probes."""
    return settings.model_copy(update={**where, "probe_interval_s": 0.5, "outage_limit_s": 120})


async def _health(settings: Settings, names: tuple[str, ...]) -> dict[str, int | None]:
    return {n: await health_status(f"127.0.0.1:{health_port(settings, n)}") for n in names}


async def _until_health(settings: Settings, names: tuple[str, ...], want: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await _health(settings, names)) != dict.fromkeys(names, want):
        assert time.monotonic() < deadline, f"health {seen}, wanted {want} for {names}"
        await asyncio.sleep(0.2)


async def _rates(settings: Settings, scenario: Scenario) -> dict[tuple[str, str], tuple[int, int]]:
    async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as api:
        stub = api.metrics
        seen = {}
        for seller, mkt in scenario.expected():
            r = await stub.GetCancellationRate(
                metrics_pb2.GetCancellationRateRequest(
                    seller_account=seller, marketplace_id=mkt, window_kind=metrics_pb2.WINDOW_KIND_LIVE
                ),
                timeout=5,
            )
            seen[(seller, mkt)] = (r.total_orders, r.cancelled_orders)
        return seen


async def _until_exact(
    settings: Settings, scenario: Scenario, services: ServiceProcesses, timeout: float = 120
) -> None:
    want = {k: (e.orders, e.cancellations) for k, e in scenario.expected().items()}
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = await _rates(settings, scenario)
        except grpc.aio.AioRpcError:
            seen = {}
        if seen == want:
            return
        logs = "\n".join(f"--- {n}:\n{services.log_tail(n, 25)}" for n in services.procs)
        assert time.monotonic() < deadline, f"API shows {seen}, scenario says {want}\n{logs}"
        await asyncio.sleep(0.3)


async def _outage(services: ServiceProcesses, seconds: float) -> None:
    """The dependency is away for `seconds`: every service must stay up all along."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        exited = {n: p.poll() for n, p in services.procs.items() if p.poll() is not None}
        assert not exited, f"exited during the outage: {exited}; " + services.log_tail(next(iter(exited)))
        await asyncio.sleep(0.5)


def _outage_lines(services: ServiceProcesses, name: str, dependency: str) -> tuple[int, int]:
    """(lines saying the dependency went away, all our own warning and error lines) in a service's log.

    Our own: a client library's lines vary with what it was doing when the broker went (its repeats
    are limited by `runtime.RepeatFilter`); what must not grow with the outage's length is ours."""
    went, loud = 0, 0
    for doc in services.log_records(name):
        if doc.get("level") in ("warning", "error") and doc.get("logger", "").startswith("cancelguard"):
            loud += 1
            went += doc.get("msg", "").startswith(f"{dependency} is unreachable")
    return went, loud


def _halves(scenario: Scenario) -> tuple[Scenario, Scenario]:
    n, m = len(scenario.notifications) // 2, len(scenario.messages) // 2
    first = replace(scenario, notifications=scenario.notifications[:n], messages=scenario.messages[:m])
    return first, replace(scenario, notifications=scenario.notifications[n:], messages=scenario.messages[m:])


@pytest.fixture
def own_dir() -> Iterator[Path]:
    # not pytest's tmp_path: its parents are private, and Postgres runs as an unprivileged user as root
    path = Path(tempfile.mkdtemp(prefix="cancelguard-outage-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_postgres_away_for_30s_the_services_stay_up_not_serving_and_end_exact(
    settings: Settings, own_dir: Path
) -> None:
    postgres = LocalPostgres(own_dir / "postgres", port=find_free_port(), say=lambda _: None)
    dsn = postgres.start()
    settings = _outage_settings(settings, postgres_dsn=dsn)
    services = ServiceProcesses(settings, own_dir / "logs")
    scenario = generate(datetime.now(UTC), seed=31)
    first, second = _halves(scenario)
    services.start()
    try:
        await services.wait_healthy(timeout=120)
        await publish(settings, first)
        postgres.stop()
        await _until_health(settings, ("metrics", "api"), health_pb2.HealthCheckResponse.NOT_SERVING)
        assert (await _health(settings, ("ingestion",)))["ingestion"] == SERVING  # it needs no Postgres
        await publish(settings, second)  # the stream goes on while Postgres is away
        await _outage(services, OUTAGE_S)
        postgres.start()
        await _until_health(settings, ("ingestion", "metrics", "api"), SERVING)
        await _until_exact(settings, scenario, services)
    finally:
        codes = services.stop()
        if postgres.is_running():
            postgres.stop()
    assert codes == {"ingestion": 0, "metrics": 0, "api": 0}, {
        n: services.log_tail(n, 40) for n, code in codes.items() if code != 0
    }
    for name in ("metrics", "api"):
        went, loud = _outage_lines(services, name, "Postgres")
        assert went == 1, f"{name} said {went} times that Postgres went away"
        assert loud < 20, f"{name} wrote {loud} warning/error lines for one outage"


async def test_kafka_away_for_30s_every_service_reports_not_serving_then_recovers_exact(
    settings: Settings, own_dir: Path
) -> None:
    try:
        dist = KafkaDist(say=lambda _: None).ensure()
    except LocalStackError as err:
        pytest.skip(f"this test runs a broker of its own from Kafka's jars, unavailable here: {err}")
    port = find_free_port()
    broker = LocalKafka(
        own_dir / "kafka", port=port, controller_port=find_free_port(), dist=dist, say=lambda _: None
    )
    bootstrap = broker.start()
    settings = _outage_settings(settings, kafka_bootstrap=bootstrap)
    services = ServiceProcesses(settings, own_dir / "logs")
    scenario = generate(datetime.now(UTC), seed=32)
    first, second = _halves(scenario)
    services.start()
    try:
        await services.wait_healthy(timeout=120)
        await publish(settings, first)
        broker.stop()
        await _until_health(
            settings, ("ingestion", "metrics", "api"), health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await _outage(services, OUTAGE_S)
        broker.start()  # same port, same data: the topics and the records so far are still there
        await _until_health(settings, ("ingestion", "metrics", "api"), SERVING, timeout=120)
        await publish(settings, second)
        await _until_exact(settings, scenario, services)
    finally:
        codes = services.stop()
        if broker.is_running():
            broker.stop()
    assert codes == {"ingestion": 0, "metrics": 0, "api": 0}, {
        n: services.log_tail(n, 40) for n, code in codes.items() if code != 0
    }
    for name in ("ingestion", "metrics", "api"):
        went, loud = _outage_lines(services, name, "Kafka")
        assert went == 1, f"{name} said {went} times that Kafka went away"
        assert loud < 20, f"{name} wrote {loud} warning/error lines for one outage"
