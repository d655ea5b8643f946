"""SIGTERM, as Kubernetes sends it: the API turns NOT_SERVING, lets every call in flight finish, closes its
clients within the shutdown budget and exits 0. SIGUSR1 logs where each task waits, and changes nothing."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cancelguard import db
from cancelguard.client import AsyncClient
from cancelguard.config import Settings
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.localstack import find_free_port
from cancelguard.processes import ServiceProcesses
from cancelguard.v1 import metrics_pb2

pytestmark = pytest.mark.e2e

CALLS = 200


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])  # the default, and the way back
async def test_sigterm_lets_200_calls_in_flight_finish_and_exits_0(
    kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path, callers_file: Path, event_loop: str
) -> None:
    schema = f"e2e{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_dsn,
        postgres_schema=schema,
        topic_prefix=f"{schema}.",
        api_port=find_free_port(),
        api_metrics_port=0,
        shutdown_grace_s=20,
        api_callers_file=str(callers_file),
        api_event_loop=event_loop,
    )
    await db.migrate(dsn=postgres_dsn, schema=schema)
    services = ServiceProcesses(settings, tmp_path)
    services.start(("api",))
    try:
        await services.wait_healthy(timeout=60)
        [started] = [r for r in services.log_records("api") if r.get("msg", "").startswith("gRPC API on")]
        assert started["event_loop"] == event_loop, started
        services.procs["api"].send_signal(signal.SIGUSR1)
        stacks = await _until_logged(services, "api", lambda line: "stack" in line and "task" in line)
        assert any(" in serve" in line["stack"] for line in stacks), stacks[:3]  # the API's main task
        async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as api:
            stub = api.metrics
            request = metrics_pb2.GetRollOffRequest(
                seller_account="A1DEMOSELLERUS", marketplace_id="ATVPDKIKX0DER"
            )
            await stub.GetRollOff(request, timeout=10)  # the channel is connected
            calls = [asyncio.ensure_future(stub.GetRollOff(request, timeout=30)) for _ in range(CALLS)]
            await asyncio.sleep(0)  # let the calls go out
            finished_before = sum(c.done() for c in calls)
            services.procs["api"].send_signal(signal.SIGTERM)
            results = await asyncio.gather(*calls, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert finished_before < CALLS, "every call had finished before SIGTERM: nothing was in flight"
        assert not failed, f"{len(failed)} of {CALLS} calls failed: {failed[0]!r}"
        code = await asyncio.to_thread(services.procs["api"].wait, 30)
        assert code == 0, services.log_tail("api")
        [stopped] = [r for r in services.log_records("api") if r.get("msg") == "stopped"]
        assert stopped["abandoned"] == [], stopped  # every client closed within the budget
    finally:
        services.stop()
        conn = await asyncpg.connect(postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def _until_logged(
    services: ServiceProcesses, name: str, wanted: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not (found := [r for r in services.log_records(name) if wanted(r)]):
        assert time.monotonic() < deadline, f"not logged in {timeout}s: see {services.log_dir / name}.log"
        await asyncio.sleep(0.1)
    return found
