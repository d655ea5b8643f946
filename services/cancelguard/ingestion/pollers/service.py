"""`cancelguard serve pollers`: Amazon's APIs -> order events, for the seller accounts of one shard.

Per account of this process's shard (`CANCELGUARD_POLLER_SHARD` of `CANCELGUARD_POLLER_SHARDS`, by a
stable hash of the seller id, so several processes split the accounts and each account is polled by
exactly one): the Orders API poller (`orders.py`), the reports poller (`reports.py`) and the ORDER_CHANGE
enricher (`enrichment.py`), all through one SP-API client, so one rate limiter per (seller, operation)
keeps every call within the account's usage plans. One `NotificationReader` per process reads the raw
ORDER_CHANGE topic (its consumer group splits the partitions between the processes).

Health is SERVING only while Kafka, Postgres and Amazon's token endpoint answer (`runtime.Dependencies`).
The token endpoint's outage never makes the process exit (a restart would not bring it back, only ask
it sooner); each account's token provider stops asking it for a cool-down after bounded retries, so no
number of pollers hammers it. Kafka and Postgres outages are retried, and past the outage limit exit
with the reason, as in the other services. On SIGTERM the loops stop where they are: nothing sent but
unacknowledged moves a cursor, so the next process re-reads from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter

from cancelguard import db, kafka
from cancelguard.accounts import Accounts, AccountsError, SellerAccount, load_accounts
from cancelguard.amazon import (
    LwaAuthError,
    MalformedResponse,
    SpApiClient,
    SpApiError,
    SpApiUnavailable,
    TokenEndpointUnavailable,
)
from cancelguard.amazon.clock import SYSTEM_CLOCK, Clock
from cancelguard.config import Settings
from cancelguard.ingestion.pollers.cursors import CursorStore
from cancelguard.ingestion.pollers.enrichment import GROUP_ID, Enricher, EnrichmentQueue, NotificationReader
from cancelguard.ingestion.pollers.orders import OrdersPoller
from cancelguard.ingestion.pollers.reports import ReportsPoller
from cancelguard.ingestion.routing import KAFKA, Route, Sender
from cancelguard.runtime import (
    Dependencies,
    HealthServer,
    OutageTooLong,
    Shutdown,
    backoff_delays,
    connect_with_retry,
)

log = logging.getLogger("cancelguard.pollers")

POSTGRES, AMAZON = "Postgres", "Amazon's token endpoint"
CLIENT_ID = "cancelguard-pollers"
REPORTS_CHECK_S = 60.0  # how often the reports poller looks whether a report is due
ENRICH_IDLE_S = 5.0  # how often an enricher looks for rows due again (new rows wake it at once)
MORE = object()  # what a step returns when more work is due at once

DOCUMENTS = Counter(
    "cancelguard_pollers_documents_total",
    "Amazon documents read, by source and fate (published, ignored, dead_lettered)",
    ["source", "outcome"],
)
POLLS = Counter(
    "cancelguard_pollers_steps_total",
    "Poller steps (orders polls, report runs, enrichment rounds) by kind and outcome",
    ["kind", "outcome"],
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AccountPollers:
    account: SellerAccount
    client: SpApiClient
    orders: OrdersPoller
    reports: ReportsPoller
    enricher: Enricher
    wake: asyncio.Event


class PollersService:
    def __init__(
        self,
        settings: Settings,
        *,
        accounts: Accounts | None = None,
        clock: Clock = SYSTEM_CLOCK,
        now: Callable[[], datetime] = utc_now,
        connection_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.connection_options = connection_options or {}  # SellerConnection tuning (tests: fast backoff)
        if accounts is None:
            if not settings.accounts_file:
                raise AccountsError(
                    "no seller accounts: set CANCELGUARD_ACCOUNTS_FILE to the accounts file "
                    '(see README, "Seller accounts")'
                )
            accounts = load_accounts(settings.accounts_file)
        self.all_accounts = accounts
        self.accounts = accounts.shard(settings.poller_shard, settings.poller_shards)
        self.clock = clock
        self.now = now
        self.health = HealthServer("cancelguard.pollers", settings.bind_host, settings.pollers_health_port)
        self.producer = kafka.new_producer(settings.kafka_bootstrap, client_id=CLIENT_ID)
        self.consumer = AIOKafkaConsumer(
            settings.order_change_topic,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=GROUP_ID,
            client_id=CLIENT_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.kafka_probe = kafka.KafkaProbe(settings.kafka_bootstrap)
        self.route = Route(settings, stage="pollers", telemetry=DOCUMENTS)
        self.pollers: list[AccountPollers] = []
        self.reader: NotificationReader | None = None
        self.dependencies: Dependencies | None = None

    async def _amazon_probe(self) -> None:
        """The health probe for Amazon: reads the token providers' state, never calls the endpoint."""
        down = [p.account.seller_id for p in self.pollers if not p.client.tokens.healthy]
        if down:
            raise TokenEndpointUnavailable(self.pollers[0].account.lwa_endpoint, 0, f"for {', '.join(down)}")

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        await self.health.start()
        pool = None
        session: aiohttp.ClientSession | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            await connect_with_retry(
                POSTGRES,
                s.redacted_dsn,
                lambda: db.migrate(dsn=s.postgres_dsn, schema=s.postgres_schema),
                timeout_s=s.startup_timeout_s,
                stop=stop,
            )
            pool = await connect_with_retry(
                POSTGRES,
                s.redacted_dsn,
                lambda: db.create_pool(dsn=s.postgres_dsn, schema=s.postgres_schema),
                timeout_s=s.startup_timeout_s,
                stop=stop,
            )
            ready = pool
            self.dependencies = deps = Dependencies(
                {KAFKA: self.kafka_probe, POSTGRES: lambda: db.ping(ready), AMAZON: self._amazon_probe},
                self.health.set,
                outage_limit_s=s.outage_limit_s,
                interval_s=s.probe_interval_s,
                unlimited=(AMAZON,),
            )
            await kafka.connect(s, self.producer, self.consumer, stop=stop)
            session = aiohttp.ClientSession()
            self._build(pool, session, deps)
            await deps.probe_once()
            deps.start()
            log.info(
                "polling",
                extra={
                    "accounts": [p.account.seller_id for p in self.pollers],
                    "shard": f"{s.poller_shard}/{s.poller_shards}",
                    "publishes_to": s.order_events_topic,
                },
            )
            tasks = self._start(stop)
            await self._supervise(tasks, stop)
        finally:
            shutdown = Shutdown()
            for task in tasks:
                task.cancel()
            await shutdown.step("the poll loops", asyncio.gather(*tasks, return_exceptions=True))
            if self.dependencies is not None:
                await shutdown.step("the dependency probes", self.dependencies.stop())
            await shutdown.step("health NOT_SERVING", self.health.set(False))
            if session is not None:
                await shutdown.step("the HTTP session", session.close())
            await kafka.close_clients(shutdown, self.consumer, self.producer, self.kafka_probe)
            await shutdown.step("the health server", self.health.stop(self.settings.shutdown_grace_s))
            if pool is not None:
                await shutdown.step("the Postgres pool", pool.close())
            shutdown.finished()

    def _build(self, pool: asyncpg.Pool, session: aiohttp.ClientSession, deps: Dependencies) -> None:
        s = self.settings
        sender = Sender(self.producer, deps, renew=self._renew_producer)
        cursors = CursorStore(pool)
        queue = EnrichmentQueue(pool)
        for account in self.accounts.accounts:
            client = SpApiClient(
                account.connection(**self.connection_options), session=session, clock=self.clock
            )
            self.pollers.append(
                AccountPollers(
                    account,
                    client,
                    OrdersPoller(
                        account,
                        client,
                        cursors,
                        self.route,
                        sender,
                        overlap=timedelta(seconds=s.poll_overlap_s),
                        backfill=timedelta(days=s.poll_backfill_days),
                        now=self.now,
                    ),
                    ReportsPoller(
                        account,
                        client,
                        cursors,
                        self.route,
                        sender,
                        unshipped_every=timedelta(seconds=s.unshipped_report_interval_s),
                        performance_every=timedelta(seconds=s.performance_report_interval_s),
                        report_poll_interval_s=s.report_poll_interval_s,
                        now=self.now,
                    ),
                    Enricher(account, client, queue, self.route, sender, now=self.now),
                    asyncio.Event(),
                )
            )
        wakes = {p.account.seller_id: p.wake for p in self.pollers}
        self.reader = NotificationReader(
            self.consumer,
            queue,
            self.all_accounts,
            now=self.now,
            on_queued=lambda seller: wakes[seller].set() if seller in wakes else None,
        )

    def _start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        s = self.settings
        tasks = []
        for p in self.pollers:
            seller = p.account.seller_id
            orders, reports = _step(p.orders.poll_once, stop), _step(p.reports.run_due, stop)
            # look for due reports at least as often as the shortest report interval asks
            reports_every = min(
                REPORTS_CHECK_S, s.unshipped_report_interval_s, s.performance_report_interval_s
            )
            tasks += [
                asyncio.create_task(
                    self._loop("orders", p, orders, s.poll_interval_s, stop), name=f"orders {seller}"
                ),
                asyncio.create_task(
                    self._loop("reports", p, reports, reports_every, stop), name=f"reports {seller}"
                ),
                asyncio.create_task(
                    self._loop("enrichment", p, partial(self._enrich, p, stop), ENRICH_IDLE_S, stop, p.wake),
                    name=f"enrichment {seller}",
                ),
            ]
        tasks.append(asyncio.create_task(self._read_notifications(stop), name="notifications"))
        return tasks

    async def _supervise(self, tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
        """Until stopped; a loop that died (an outage past the limit, a bug) stops the service with it."""
        assert self.dependencies is not None
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                done, _ = await asyncio.wait(
                    [*tasks, stopped], timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task is not stopped and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                self.dependencies.check_limit()
        finally:
            stopped.cancel()

    async def _loop(
        self,
        kind: str,
        p: AccountPollers,
        step: Callable[[], Awaitable[object]],
        interval_s: float,
        stop: asyncio.Event,
        wake: asyncio.Event | None = None,
    ) -> None:
        """`step`, then a pause of `interval_s` (or less if woken; none if the step returned MORE), and
        again; a failed step is logged by kind and waited out (`_failed`)."""
        while not stop.is_set():
            if wake is not None:
                wake.clear()
            delay = interval_s
            try:
                if await step() is MORE:
                    delay = 0.0
                POLLS.labels(kind, "ok").inc()
            except OutageTooLong:
                raise
            except Exception as exc:
                POLLS.labels(kind, "failed").inc()
                delay = await self._failed(kind, p, exc, interval_s)
            if delay:
                await _wait(delay, stop, wake)

    async def _failed(self, kind: str, p: AccountPollers, exc: Exception, interval_s: float) -> float:
        """Log and classify a failed step; how long to wait before the next one."""
        assert self.dependencies is not None
        where = {"seller_account": p.account.seller_id, "step": kind, "error": str(exc)[:500]}
        if isinstance(exc, TokenEndpointUnavailable):
            await self.dependencies.down(AMAZON, exc)  # the provider cools down; the probe sees it end
            return max(interval_s, p.client.connection.token_failure_cooldown_s)
        if isinstance(exc, LwaAuthError):
            log.error("Login with Amazon refused this account's credentials", extra=where)
            return max(interval_s, 300.0)
        if isinstance(exc, SpApiUnavailable | MalformedResponse | SpApiError):
            log.warning("an Amazon call failed; trying again next time", extra=where)
            return interval_s
        if db.is_transient(exc):
            await self.dependencies.down(POSTGRES, exc)
            return next(backoff_delays())
        log.error("a poller step failed", exc_info=exc, extra=where)
        return interval_s

    async def _enrich(self, p: AccountPollers, stop: asyncio.Event) -> object:
        result = await p.enricher.drain_once(stop)
        return MORE if result.calls >= p.enricher.batch else None

    async def _read_notifications(self, stop: asyncio.Event) -> None:
        assert self.reader is not None and self.dependencies is not None
        delays = backoff_delays()
        while not stop.is_set():
            try:
                await self.reader.read_once(self.settings.batch_timeout_ms)
            except Exception as exc:
                if not db.is_transient(exc):
                    raise
                await self.dependencies.down(POSTGRES, exc)
                await self.dependencies.wait_retry(next(delays), stop)
            else:
                delays = backoff_delays()

    async def _renew_producer(self, old: AIOKafkaProducer) -> AIOKafkaProducer:
        """After a failed send (see kafka.renew_producer); the one producer all loops share."""
        self.producer = await kafka.renew_producer(old, self.settings.kafka_bootstrap, client_id=CLIENT_ID)
        return self.producer


def _step(
    run: Callable[[asyncio.Event], Awaitable[object]], stop: asyncio.Event
) -> Callable[[], Awaitable[object]]:
    return lambda: run(stop)


async def _wait(seconds: float, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
    """Sleep `seconds`, or less if stopped (or woken)."""
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
