"""What every service process shares: retries at start, health, Prometheus metrics, SIGTERM.

Kubernetes sends SIGTERM and waits `terminationGracePeriodSeconds`: each service flips its gRPC health
to NOT_SERVING, finishes the batch in hand, closes its clients and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

log = logging.getLogger("cancelguard.runtime")
T = TypeVar("T")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class StartupError(RuntimeError):
    """A dependency could not be reached in the time allowed. The message says which and where."""


async def connect_with_retry(
    what: str,
    where: str,
    connect: Callable[[], Awaitable[T]],
    *,
    timeout_s: float,
    stop: asyncio.Event | None = None,
) -> T:
    """Call `connect` until it succeeds, backing off (0.25 s doubling to 5 s, jittered), for `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        try:
            return await connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                raise StartupError(
                    f"could not reach {what} at {where} after {attempt} attempts in {timeout_s:.0f}s: {exc}. "
                    f"Is it running? (`make up` starts the local Kafka and Postgres)"
                ) from exc
            log.warning(
                "waiting for %s",
                what,
                extra={"dependency": what, "address": where, "attempt": attempt, "error": str(exc)},
            )
            await asyncio.sleep(min(delay * (0.5 + random.random()), left))
            delay = min(delay * 2, 5.0)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.info("received %s: shutting down", sig.name, extra={"signal": sig.name})
    stop.set()


def start_metrics_endpoint(port: int, host: str = "0.0.0.0") -> None:
    """Prometheus /metrics on its own port (0: off)."""
    if port:
        start_http_server(port, addr=host)
        log.info("prometheus metrics on :%d/metrics", port, extra={"port": port})


class HealthServer:
    """A gRPC server with only health checking and reflection, for services that serve no other RPCs.

    Starts NOT_SERVING; the service flips it once its dependencies answer.
    """

    def __init__(self, service_name: str, host: str, port: int) -> None:
        self.service_name = service_name
        self.address = f"{host}:{port}"
        self.servicer = health.aio.HealthServicer()
        self.server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        reflection.enable_server_reflection(
            (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), self.server
        )
        self.bound_port = self.server.add_insecure_port(self.address)
        if self.bound_port == 0:
            raise StartupError(f"cannot listen on {self.address} for health checks: is the port taken?")

    async def start(self) -> None:
        await self.set(False)
        await self.server.start()
        log.info("health on %s", self.address, extra={"address": self.address})

    async def set(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        await self.servicer.set("", status)
        await self.servicer.set(self.service_name, status)

    async def stop(self, grace_s: float) -> None:
        await self.servicer.enter_graceful_shutdown()
        await self.server.stop(grace_s)
