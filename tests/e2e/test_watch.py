"""A watcher of cancellation requests sees every change exactly once across an API restart, resuming
from the resume token of the last message it got: changes made while the API was down come after it."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from pydantic import SecretStr

from cancelguard.client import AsyncClient
from cancelguard.config import Settings
from cancelguard.demo import publish
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.processes import ServiceProcesses
from cancelguard.simulator.order_change import NotificationItem, order_change_notification
from cancelguard.simulator.scenario import Scenario
from cancelguard.v1 import orders_pb2

pytestmark = pytest.mark.e2e

SELLER, MKT = "A1DEMOSELLERUS", "A1F83G8C2ARO7P"
Kind = orders_pb2.CancellationRequestChange


def _batch(
    n: int, tag: str, now: datetime, status: str = "Unshipped"
) -> tuple[list[str], list[dict[str, Any]]]:
    ids = [f"204-{tag}{k:05d}-{uuid.uuid4().hex[:6]}" for k in range(n)]
    return ids, [_note(order_id, status, now) for order_id in ids]


def _note(order_id: str, status: str, now: datetime) -> dict[str, Any]:
    bought = now - timedelta(hours=2)
    return order_change_notification(
        seller_id=SELLER,
        amazon_order_id=order_id,
        marketplace_id=MKT,
        change_type="BuyerRequestedChange",
        change_reason="BuyerRequestedCancel",
        time_of_change=bought + timedelta(minutes=50 if status == "Unshipped" else 90),
        order_status=status,
        purchase_date=bought,
        fulfillment_type="MFN",
        latest_ship_date=bought + timedelta(days=2),
        items=[NotificationItem(f"{order_id}-1", "SKU", 1, 0, status == "Unshipped")],
    )


async def _read(watch: Any, seen: list[tuple[str, int, str]], want: int, timeout: float = 60) -> str:
    """Read changes into `seen` until it holds `want`; the last resume token."""
    token = ""
    deadline = time.monotonic() + timeout
    while len(seen) < want:
        assert time.monotonic() < deadline, f"only {len(seen)} of {want} changes"
        message = await asyncio.wait_for(watch.read(), timeout)
        assert message is not grpc.aio.EOF
        token = message.resume_token
        if message.HasField("change"):
            seen.append((message.change.order.amazon_order_id, message.change.kind, token))
    return token


async def test_a_watcher_sees_every_change_exactly_once_across_an_api_restart(
    namespace_settings: Callable[..., Settings], postgres_dsn: str, tmp_path: Path
) -> None:
    settings = namespace_settings(
        api_page_token_secret=SecretStr("test-secret-shared-by-the-api-before-and-after-its-restart")
    )
    namespace = settings.postgres_schema
    services = ServiceProcesses(settings, tmp_path)
    services.start()
    now = datetime.now(UTC)
    seen: list[tuple[str, int, str]] = []
    request = orders_pb2.WatchCancellationRequestsRequest(seller_account=SELLER, keepalive_seconds=1)
    try:
        await services.wait_healthy(timeout=120)
        first, first_notes = _batch(10, "A", now)
        async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as api:
            watch = api.orders.WatchCancellationRequests(request)
            await asyncio.wait_for(watch.read(), 20)  # the first keepalive: watching from now
            await publish(settings, Scenario(notifications=first_notes))
            token = await _read(watch, seen, 10)
            # the API goes away (SIGTERM: the watch is told to reconnect); changes go on meanwhile
            services.procs["api"].send_signal(signal.SIGTERM)
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                while True:
                    message = await asyncio.wait_for(watch.read(), 20)
                    assert message is not grpc.aio.EOF
                    if message.HasField("change"):  # sent before the shutdown reached the stream
                        seen.append(
                            (message.change.order.amazon_order_id, message.change.kind, message.resume_token)
                        )
                        token = message.resume_token
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await asyncio.to_thread(services.procs["api"].wait, 30) == 0
        second, second_notes = _batch(10, "B", now)
        shipped = [_note(order_id, "Shipped", now) for order_id in first[:5]]  # closes 5 requests
        await publish(settings, Scenario(notifications=second_notes + shipped))
        await asyncio.sleep(2)  # applied while the API is down
        services.start(("api",))
        await services.wait_healthy(timeout=60)
        third, third_notes = _batch(10, "C", now)
        async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as api:
            resumed = api.orders.WatchCancellationRequests(
                orders_pb2.WatchCancellationRequestsRequest(
                    seller_account=SELLER, keepalive_seconds=1, resume_token=token
                )
            )
            await publish(settings, Scenario(notifications=third_notes))
            await _read(resumed, seen, 35)
            # nothing more comes: a keepalive, not a change
            extra = await asyncio.wait_for(resumed.read(), 20)
            resumed.cancel()
        assert extra.HasField("keepalive"), extra
    finally:
        codes = services.stop()
        conn = await asyncpg.connect(postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        await conn.close()
    changes = [(order_id, kind) for order_id, kind, _ in seen]
    assert len(changes) == len(set(changes)), "a change was seen twice"
    opened = {o for o, k in changes if k == Kind.KIND_OPENED}
    closed = {o for o, k in changes if k == Kind.KIND_CLOSED}
    assert opened == set(first + second + third)
    assert closed == set(first[:5])
    assert all(code == 0 for code in codes.values()), {n: services.log_tail(n) for n in codes}
