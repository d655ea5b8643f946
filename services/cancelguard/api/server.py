"""The gRPC API server: OrderService, MetricsService, health, reflection.

Health starts NOT_SERVING and is SERVING only while Postgres and Kafka answer (`runtime.Dependencies`).
On SIGTERM it turns NOT_SERVING at once (so Kubernetes stops routing to it), lets every call in flight
finish (`wiring.InFlight`), then stops within `shutdown_grace_s` and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cancelguard import db, kafka
from cancelguard.api.servicers import MetricsService, OrderService
from cancelguard.api.validation import PageTokens
from cancelguard.api.wiring import InFlight, add_service
from cancelguard.config import Settings
from cancelguard.domain.policy import PolicyBook
from cancelguard.metrics.store import Store
from cancelguard.runtime import NOT_SERVING, SERVING, Dependencies, StartupError, connect_with_retry
from cancelguard.v1 import metrics_pb2, orders_pb2

log = logging.getLogger("cancelguard.api")

SERVICES = (
    orders_pb2.DESCRIPTOR.services_by_name["OrderService"],
    metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"],
)
SERVICE_NAMES = tuple(s.full_name for s in SERVICES)


@dataclass
class ApiServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    in_flight: InFlight

    async def set_health(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)


def build_server(store: Store, policies: PolicyBook, page_tokens: PageTokens) -> ApiServer:
    server = grpc.aio.server()
    in_flight = InFlight()
    servicers = (OrderService(store, policies, page_tokens), MetricsService(store, policies))
    for service, servicer in zip(SERVICES, servicers, strict=True):
        add_service(server, service, servicer, in_flight)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    return ApiServer(server, health_servicer, in_flight)


def page_tokens(settings: Settings) -> PageTokens:
    secret = settings.api_page_token_secret.get_secret_value()
    if not secret:
        log.warning(
            "CANCELGUARD_API_PAGE_TOKEN_SECRET is not set: page tokens are signed with a key of this process "
            "only, so they do not survive a restart or cross replicas; set it (the same for every replica)"
        )
        return PageTokens(secrets.token_bytes(32))
    return PageTokens(secret.encode())


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    # The pool is created lazily (min_size=0) so the server can listen, report NOT_SERVING, and wait
    # for Postgres; health follows the dependencies from then on.
    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema, min_size=0)
    api = build_server(Store(pool, settings.policies), settings.policies, page_tokens(settings))
    address = f"{settings.bind_host}:{settings.api_port}"
    if api.server.add_insecure_port(address) == 0:
        raise StartupError(f"cannot listen on {address}: is the port taken? (set CANCELGUARD_API_PORT)")
    await api.set_health(False)
    await api.server.start()
    log.info("gRPC API on %s", address, extra={"address": address})
    kafka_probe = kafka.KafkaProbe(settings.kafka_bootstrap)
    dependencies = Dependencies(
        # Kafka: the API publishes what sellers decide (the write side) and streams alerts
        {"Postgres": lambda: db.ping(pool), "Kafka": kafka_probe},
        api.set_health,
        outage_limit_s=settings.outage_limit_s,
        interval_s=settings.probe_interval_s,
    )
    try:
        await connect_with_retry(
            "Postgres",
            settings.redacted_dsn,
            lambda: db.ping(pool),
            timeout_s=settings.startup_timeout_s,
            stop=stop,
        )
        await dependencies.probe_once()
        dependencies.start()
        log.info("serving")
        await stop.wait()
    finally:
        await dependencies.stop()
        await api.set_health(False)  # at once: load balancers stop sending new calls
        started = time.monotonic()
        drained = await api.in_flight.drain(settings.shutdown_grace_s)
        left = max(0.0, settings.shutdown_grace_s - (time.monotonic() - started))
        await api.health.enter_graceful_shutdown()
        await api.server.stop(left)
        if not drained:
            log.warning("calls still running at the end of the grace period were cancelled")
        await kafka_probe.close()
        await asyncio.wait_for(pool.close(), 10)
        log.info("stopped")
