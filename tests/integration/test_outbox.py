"""The alerts outbox when Postgres fails under it: the failure it reports is the one that happened (so the
service treats an outage as an outage and retries), and the publisher's lock never outlives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from cancelguard import db, kafka
from cancelguard.config import Settings
from cancelguard.domain.policy import PolicyBook
from cancelguard.metrics import outbox as outbox_module
from cancelguard.metrics.outbox import OutboxPublisher
from cancelguard.metrics.store import Store


@pytest_asyncio.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    await db.migrate(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema)
    yield Store(pool, PolicyBook())
    await pool.close()


async def _lock_is_free(settings: Settings, within_s: float = 5.0) -> bool:
    """The publisher's lock can be taken, now or once an ended session's backend is gone (a backend
    finishes the statement in hand, here at most a pg_sleep of 0.5 s, before it notices its client left)."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        deadline = asyncio.get_running_loop().time() + within_s
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", outbox_module._LOCK_KEY):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True
    finally:
        await conn.close()


@pytest.mark.parametrize("failure", ["timeout", "terminated", "busy"])
async def test_a_failure_mid_publish_is_reported_as_itself_and_frees_the_lock(
    store: Store, settings: Settings, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy: list[asyncio.Task[str]] = []

    async def failing(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
        if failure == "timeout":  # a statement cut off by its deadline, its cancel still on the way
            await asyncio.wait_for(conn.execute("SELECT pg_sleep(5)"), 0.05)
        elif failure == "busy":  # the connection failed with a statement of it still in progress
            busy.append(asyncio.create_task(conn.execute("SELECT pg_sleep(0.5)")))
            await asyncio.sleep(0.05)
            raise ConnectionResetError("the connection broke")
        else:  # the server ends the session (a restart, an administrator)
            other = await asyncpg.connect(settings.postgres_dsn)
            try:
                await other.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            finally:
                await other.close()
            await conn.fetch("SELECT 1")
        raise AssertionError("the statement above fails")

    monkeypatch.setattr(store, "unsent_alerts", failing)
    producer = kafka.new_producer(settings.kafka_bootstrap, client_id="test-outbox")
    publisher = OutboxPublisher(store, producer, settings.kafka_bootstrap, settings.alerts_topic)
    with pytest.raises(Exception) as raised:
        await publisher.publish()
    assert db.is_transient(raised.value), repr(raised.value)  # the service retries it as an outage
    if failure == "busy":
        assert isinstance(raised.value, ConnectionResetError), repr(raised.value)  # not the unlock's
        await asyncio.gather(*busy, return_exceptions=True)
    assert await _lock_is_free(settings)
