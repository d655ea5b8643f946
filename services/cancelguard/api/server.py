"""The gRPC API server: OrderService, MetricsService, health, reflection.

Health starts NOT_SERVING and turns SERVING once Postgres answers. On SIGTERM it turns NOT_SERVING (so
Kubernetes stops routing to it), then `server.stop(grace)` lets in-flight RPCs finish.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cancelguard import db
from cancelguard.api.servicers import MetricsService, OrderService
from cancelguard.config import Settings
from cancelguard.domain.policy import PolicyBook
from cancelguard.metrics.store import Store
from cancelguard.runtime import NOT_SERVING, SERVING, StartupError, connect_with_retry
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

log = logging.getLogger("cancelguard.api")

SERVICE_NAMES = (
    orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
)


def build_server(store: Store, policies: PolicyBook) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server()
    orders_pb2_grpc.add_OrderServiceServicer_to_server(OrderService(store, policies), server)
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsService(store, policies), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    return server, health_servicer


async def set_health(servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = SERVING if serving else NOT_SERVING
    for name in ("", *SERVICE_NAMES):
        await servicer.set(name, status)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    # The pool is created lazily (min_size=0) so the server can listen, report NOT_SERVING, and wait
    # for Postgres; the first successful query flips health to SERVING.
    pool = await db.create_pool(dsn=settings.postgres_dsn, schema=settings.postgres_schema, min_size=0)
    server, health_servicer = build_server(Store(pool, settings.policies), settings.policies)
    address = f"{settings.bind_host}:{settings.api_port}"
    if server.add_insecure_port(address) == 0:
        raise StartupError(f"cannot listen on {address}: is the port taken? (set CANCELGUARD_API_PORT)")
    await set_health(health_servicer, False)
    await server.start()
    log.info("gRPC API on %s", address, extra={"address": address})
    try:

        async def ping() -> None:
            async with pool.acquire(timeout=db.ACQUIRE_TIMEOUT_S) as conn:
                await conn.fetchval("SELECT 1")

        await connect_with_retry(
            "Postgres", settings.redacted_dsn, ping, timeout_s=settings.startup_timeout_s, stop=stop
        )
        await set_health(health_servicer, True)
        log.info("serving")
        await stop.wait()
    finally:
        await health_servicer.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace_s)
        await asyncio.wait_for(pool.close(), 10)
        log.info("stopped")
