"""Outage handling: health follows the dependencies, one warning per outage, and a bounded patience."""

import asyncio
import logging

import pytest

from cancelguard.runtime import Dependencies, OutageTooLong


async def test_health_follows_the_dependencies_and_each_outage_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health: list[bool] = []

    async def record(serving: bool) -> None:
        health.append(serving)

    deps = Dependencies({}, record, outage_limit_s=60)
    caplog.set_level(logging.WARNING, "cancelguard.runtime")
    await deps.up("Postgres")
    for _ in range(100):  # a hundred failed calls during one outage
        await deps.down("Postgres", ConnectionRefusedError("refused"))
    await deps.down("Kafka", TimeoutError())
    await deps.up("Postgres")
    assert health == [True, False]  # Kafka is still away
    await deps.up("Kafka")
    assert health == [True, False, True]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("Postgres is unreachable" in line for line in lines) == 1
    assert sum("Postgres answers again" in line for line in lines) == 1
    assert len(lines) == 4  # Postgres down and back, Kafka down and back


async def test_an_outage_past_the_limit_stops_the_service_with_the_reason() -> None:
    async def ignore(serving: bool) -> None:
        pass

    deps = Dependencies({}, ignore, outage_limit_s=0.05)
    await deps.down("Postgres", OSError("gone"))
    deps.check_limit()  # within the limit: carry on
    await asyncio.sleep(0.06)
    with pytest.raises(OutageTooLong, match="Postgres has been unreachable"):
        deps.check_limit()


async def test_probes_turn_health_without_any_call() -> None:
    health: list[bool] = []
    up = {"Kafka": True}

    async def kafka() -> None:
        if not up["Kafka"]:
            raise ConnectionError("no broker")

    async def record(serving: bool) -> None:
        health.append(serving)

    deps = Dependencies({"Kafka": kafka}, record, outage_limit_s=60)
    await deps.probe_once()
    up["Kafka"] = False
    await deps.probe_once()
    up["Kafka"] = True
    await deps.probe_once()
    assert health == [True, False, True]


def test_migration_versions_are_unique() -> None:
    """Two branches may each add "the next" migration; their numbers must not clash."""
    from cancelguard import db

    versions = [version for version, _, _ in db.migration_files()]
    assert len(versions) == len(set(versions)), versions


async def test_liveness_is_serving_while_the_dependencies_are_not() -> None:
    from cancelguard.localstack import find_free_port
    from cancelguard.processes import health_status
    from cancelguard.runtime import LIVENESS, NOT_SERVING, SERVING, HealthServer

    port = find_free_port()
    server = HealthServer("cancelguard.test", "127.0.0.1", port)
    await server.start()
    try:
        address = f"127.0.0.1:{port}"
        assert await health_status(address) == NOT_SERVING
        assert await health_status(address, service="cancelguard.test") == NOT_SERVING
        assert await health_status(address, service=LIVENESS) == SERVING
        await server.set(True)
        assert await health_status(address) == SERVING
        assert await health_status(address, service=LIVENESS) == SERVING
    finally:
        await server.stop(0)
