"""The gRPC API server: OrderService, MetricsService, health, reflection.

Health starts NOT_SERVING and is SERVING only while Postgres and Kafka answer (`runtime.Dependencies`).
On SIGTERM it turns NOT_SERVING at once (so Kubernetes stops routing to it), tells watch streams to end
(clients resume elsewhere with their resume token), lets every call in flight finish
(`wiring.InFlight`), then stops within `shutdown_grace_s` and exits 0.

Every RPC of the two services needs a caller's bearer token (`api.auth`); health and reflection do not.
TLS, and mutual TLS, are on when the certificate settings are given. Beyond `api_max_concurrent_rpcs`
calls at once, new ones are refused with RESOURCE_EXHAUSTED at once (load shedding) instead of queueing;
health and reflection are never refused (`wiring.InFlight`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from cancelguard import db, kafka
from cancelguard.accounts import Accounts, load_accounts
from cancelguard.api.alerts import AlertWatchers
from cancelguard.api.auth import CallerRegistry
from cancelguard.api.cache import Listener, ReadCache
from cancelguard.api.feeds import FeedSubmitter
from cancelguard.api.reads import Reads
from cancelguard.api.records import Records
from cancelguard.api.servicers import MetricsService, OrderService
from cancelguard.api.validation import PageTokens
from cancelguard.api.watch import Watchers
from cancelguard.api.wiring import Gate, InFlight, add_services
from cancelguard.api.writes import Writes
from cancelguard.config import Settings
from cancelguard.metrics.store import Store
from cancelguard.runtime import (
    NOT_SERVING,
    SERVING,
    Dependencies,
    Shutdown,
    StartupError,
    connect_with_retry,
    event_loop_name,
    freeze_startup_heap,
)
from cancelguard.v1 import metrics_pb2, orders_pb2

log = logging.getLogger("cancelguard.api")

SERVICES = (
    orders_pb2.DESCRIPTOR.services_by_name["OrderService"],
    metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"],
)
SERVICE_NAMES = tuple(s.full_name for s in SERVICES)

# HTTP/2 keepalive: pings keep idle watch streams open through proxies and find dead peers
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
)


@dataclass
class ApiServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    in_flight: InFlight
    cache: ReadCache
    writes: Writes
    feeds: FeedSubmitter | None

    async def set_health(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)


def build_server(
    settings: Settings,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    callers: CallerRegistry,
    page_tokens: PageTokens,
    accounts: Accounts | None = None,
) -> ApiServer:
    """`accounts`: the seller accounts whose cancel feeds the API submits (None: it submits none)."""
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    in_flight = InFlight(limit=settings.api_max_concurrent_rpcs)
    store = Store(pool, settings.policies)
    cache = ReadCache(max_entries=settings.api_cache_entries)
    reads = Reads(store, cache)
    records = Records(pool)
    feeds = (
        FeedSubmitter(records, accounts, poll_s=settings.api_feed_poll_s) if accounts is not None else None
    )
    writes = Writes(records, producer, settings.order_events_topic)
    watchers = Watchers(records, reads, page_tokens, in_flight, limit=settings.api_max_watches)
    cache.on_request_changes = watchers.changed
    gate = Gate(callers, in_flight)
    servicers = (
        OrderService(reads, records, writes, watchers, page_tokens, feeds),
        MetricsService(
            reads,
            store,
            page_tokens,
            AlertWatchers(
                settings.kafka_bootstrap,
                settings.alerts_topic,
                page_tokens,
                in_flight,
                limit=settings.api_max_watches,
            ),
        ),
    )
    add_services(server, zip(SERVICES, servicers, strict=True), gate, seen_limit=settings.api_cache_entries)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, _GenericOnly(server))
    names = (
        *SERVICE_NAMES,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(names), _GenericOnly(server)
    )
    return ApiServer(server, health_servicer, in_flight, cache, writes, feeds)


class _GenericOnly:
    """The server, as generated code sees it: what it registers is served through its generic handler only.
    gRPC waits on one pending call per registered method besides the generic one, and every call of the
    API (generic) pays for waiting on all of them; health and reflection are seldom called."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        pass  # the generic handler the same code adds serves these methods


def page_tokens(settings: Settings) -> PageTokens:
    secret = settings.api_page_token_secret.get_secret_value()
    if not secret:
        log.warning(
            "CANCELGUARD_API_PAGE_TOKEN_SECRET is not set: page and resume tokens are signed with a key of "
            "this process only, so they do not survive a restart or cross replicas; set it (the same for "
            "every replica)"
        )
        return PageTokens(secrets.token_bytes(32))
    return PageTokens(secret.encode())


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from the certificate settings (None: plaintext); with a client CA, clients must present a
    certificate it signed (mutual TLS)."""
    if not (settings.api_tls_cert_file or settings.api_tls_key_file):
        if settings.api_tls_client_ca_file:
            raise StartupError(
                "CANCELGUARD_API_TLS_CLIENT_CA_FILE needs the server's certificate and key too"
            )
        return None
    if not (settings.api_tls_cert_file and settings.api_tls_key_file):
        raise StartupError("TLS needs both CANCELGUARD_API_TLS_CERT_FILE and CANCELGUARD_API_TLS_KEY_FILE")
    try:
        chain = Path(settings.api_tls_cert_file).read_bytes()
        key = Path(settings.api_tls_key_file).read_bytes()
        ca = Path(settings.api_tls_client_ca_file).read_bytes() if settings.api_tls_client_ca_file else None
    except OSError as exc:
        raise StartupError(f"cannot read a TLS file: {exc}") from None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=ca, require_client_auth=ca is not None
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    callers = CallerRegistry(
        Path(settings.api_callers_file) if settings.api_callers_file else None,
        reload_s=settings.api_callers_reload_s,
    )
    callers.reload()  # missing or broken: no caller gets in until it is fixed, and health still answers
    # The pool is created lazily (min_size=0) so the server can listen, report NOT_SERVING, and wait
    # for Postgres; health follows the dependencies from then on.
    pool = await db.create_pool(
        dsn=settings.postgres_dsn,
        schema=settings.postgres_schema,
        min_size=0,
        max_size=20,
        statement_timeout_s=settings.api_statement_timeout_s,
        reset_on_release=False,  # the API leaves no session state: save the reset round trip
    )
    producer = kafka.new_producer(settings.kafka_bootstrap, client_id="cancelguard-api")
    # with an accounts file, the API submits the cancel feeds of decisions that ask for it; a file that
    # cannot be used stops the start with what to fix (accounts.AccountsError)
    accounts = load_accounts(settings.accounts_file) if settings.accounts_file else None
    api = build_server(settings, pool, producer, callers, page_tokens(settings), accounts)
    address = f"{settings.bind_host}:{settings.api_port}"
    credentials = server_credentials(settings)
    bound = (
        api.server.add_secure_port(address, credentials)
        if credentials is not None
        else api.server.add_insecure_port(address)
    )
    if bound == 0:
        raise StartupError(f"cannot listen on {address}: is the port taken? (set CANCELGUARD_API_PORT)")
    await api.set_health(False)
    await api.server.start()
    log.info(
        "gRPC API on %s",
        address,
        extra={"address": address, "tls": credentials is not None, "event_loop": event_loop_name()},
    )
    kafka_probe = kafka.KafkaProbe(settings.kafka_bootstrap)
    dependencies = Dependencies(
        # Kafka: the API publishes what sellers decide (the write side)
        {"Postgres": lambda: db.ping(pool), "Kafka": kafka_probe},
        api.set_health,
        outage_limit_s=settings.outage_limit_s,
        interval_s=settings.probe_interval_s,
    )
    schema = settings.postgres_schema
    listener = Listener(
        api.cache,
        lambda: asyncpg.connect(settings.postgres_dsn, server_settings={"search_path": schema}, timeout=10),
    )
    callers.start()
    producer_started = False
    try:
        await connect_with_retry(
            "Postgres",
            settings.redacted_dsn,
            lambda: db.ping(pool),
            timeout_s=settings.startup_timeout_s,
            stop=stop,
        )
        await kafka.connect(settings, producer, stop=stop)
        producer_started = True
        listener.start()
        api.writes.start()
        if api.feeds is not None:
            api.feeds.start()
        await dependencies.probe_once()
        dependencies.start()
        freeze_startup_heap()
        log.info("serving")
        await stop.wait()
    finally:
        await dependencies.stop()
        await api.set_health(False)  # at once: load balancers stop sending new calls
        started = time.monotonic()
        drained = await api.in_flight.drain(settings.shutdown_grace_s)  # streams are told to end
        left = max(0.0, settings.shutdown_grace_s - (time.monotonic() - started))
        await api.health.enter_graceful_shutdown()
        await api.server.stop(left)
        if not drained:
            log.warning("calls still running at the end of the grace period were cancelled")
        shutdown = Shutdown()
        await shutdown.step("the write sweeper", api.writes.stop())
        if api.feeds is not None:
            await shutdown.step("the feed submitter", api.feeds.stop())
        await shutdown.step("the cache listener", listener.stop())
        await shutdown.step("the credentials reloader", callers.stop())
        await kafka.close_clients(shutdown, None, producer if producer_started else None, kafka_probe)
        await shutdown.step("the Postgres pool", pool.close())
        shutdown.finished()
