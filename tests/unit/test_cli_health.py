"""`cancelguard health NAME`, the Compose health check: exit 0 only while that service says SERVING."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from cancelguard.localstack import find_free_port
from cancelguard.runtime import HealthServer


async def _health(service: str, env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cancelguard", "health", service, env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await asyncio.wait_for(proc.wait(), 60)


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("pollers", "CANCELGUARD_POLLERS_HEALTH_PORT"),
        ("ingestion", "CANCELGUARD_INGESTION_HEALTH_PORT"),
        ("metrics", "CANCELGUARD_METRICS_HEALTH_PORT"),
    ],
)
async def test_health_exits_0_only_while_the_service_is_serving(service: str, variable: str) -> None:
    port = find_free_port()
    env = {variable: str(port)}
    assert await _health(service, env) == 1  # nothing listens
    server = HealthServer(f"cancelguard.{service}", "127.0.0.1", port)
    await server.start()
    try:
        assert await _health(service, env) == 1  # NOT_SERVING
        await server.set(True)
        assert await _health(service, env) == 0
    finally:
        await server.stop(0)
