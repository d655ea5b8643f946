"""SIGTERM, as Kubernetes sends it: the API turns NOT_SERVING, lets every call in flight finish, exits 0."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest

from cancelguard import db
from cancelguard.config import Settings
from cancelguard.localstack import find_free_port
from cancelguard.processes import ServiceProcesses
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc

pytestmark = pytest.mark.e2e

CALLS = 200


async def test_sigterm_lets_200_calls_in_flight_finish_and_exits_0(
    kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path
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
    )
    await db.migrate(dsn=postgres_dsn, schema=schema)
    services = ServiceProcesses(settings, tmp_path)
    services.start(("api",))
    try:
        await services.wait_healthy(timeout=60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.api_port}") as channel:
            stub = metrics_pb2_grpc.MetricsServiceStub(channel)
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
    finally:
        services.stop()
        conn = await asyncpg.connect(postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
