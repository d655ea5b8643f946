"""What every service process shares: retries at start, health, outages, Prometheus metrics, SIGTERM.

Kubernetes sends SIGTERM and waits `terminationGracePeriodSeconds`: each service flips its gRPC health
to NOT_SERVING, finishes the batch in hand, closes its clients within a budget (`Shutdown`) and exits 0.

While a dependency (Kafka, Postgres) is down, a service stays up, reports NOT_SERVING, retries with
backoff and logs one warning when the outage starts and one line when it ends (`Dependencies`). Only an
outage longer than `settings.outage_limit_s` makes it exit, with the reason (`OutageTooLong`), so that
the orchestrator can restart it somewhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator
from typing import Any, TypeVar

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


class OutageTooLong(RuntimeError):
    """A dependency stayed down longer than the outage limit: the service exits with this reason."""


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


def run_on_loop(main: Coroutine[Any, Any, T], event_loop: str = "asyncio") -> T:
    """`main` run to its end on a new event loop of the kind named: "asyncio" (its own) or "uvloop"."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if event_loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    elif event_loop != "asyncio":
        raise ValueError(f"no event loop named {event_loop!r}: use asyncio or uvloop")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def event_loop_name() -> str:
    """The kind of the running event loop, as `run_on_loop` names it."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`; SIGUSR1 logs where every task is waiting (`log_task_stacks`)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    loop.add_signal_handler(signal.SIGUSR1, log_task_stacks)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.info("received %s: shutting down", sig.name, extra={"signal": sig.name})
    stop.set()


def task_stack(task: asyncio.Future[object], depth: int = 30) -> str:
    """Where a task waits: its coroutine and what each one awaits, one frame a line, innermost last
    (empty for a future that is not a task). `Task.get_stack` gives only the outermost frame of a
    suspended task, and `print_stack` fails on frames without a line number (gRPC's Cython ones)."""
    lines: list[str] = []
    step: Any = task.get_coro() if isinstance(task, asyncio.Task) else None
    while step is not None and len(lines) < depth:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is None:
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return "\n".join(lines)


def log_task_stacks() -> None:
    """One log line per task, with where it waits: `kill -USR1 <pid>` on a service that seems stuck."""
    for task in asyncio.all_tasks():
        log.warning("task %s", task.get_name(), extra={"task": task.get_name(), "stack": task_stack(task)})


CLOSE_BUDGET_S = 10.0  # for closing clients, after `shutdown_grace_s` for the work in flight


class Shutdown:
    """A service's closing steps (consumer, producer, pool, servers), one after another, all within one
    budget: with `shutdown_grace_s` for the work in flight before them, they end before Kubernetes'
    SIGKILL (`terminationGracePeriodSeconds`, 30 s in deploy/k8s) whatever each client does.

    A step that fails or runs out of time is logged by name, with where it was waiting, and the next
    step runs: a client that does not close must not keep the others open. A step out of time is
    cancelled and not waited for, since a client that ignores cancellation would hold the shutdown
    just as long as one that was never asked."""

    def __init__(self, budget_s: float = CLOSE_BUDGET_S, least_s: float = 0.2) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + budget_s
        self.least_s = least_s  # even a late step gets a moment: most close at once
        self.abandoned: list[str] = []

    async def step(self, name: str, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        began = time.monotonic()
        done, _ = await asyncio.wait({task}, timeout=max(self.least_s, self.deadline - began))
        if not done:
            self.abandoned.append(name)
            log.warning(
                "shutdown: %s did not finish in %.1fs; abandoned",
                name,
                time.monotonic() - began,
                extra={"step": name, "stack": task_stack(task)},
            )
            task.cancel()
        elif not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("shutdown: %s failed: %s", name, exc, extra={"step": name, "error": repr(exc)})

    def finished(self) -> None:
        """The last line a service logs."""
        took = round(time.monotonic() - self.started, 2)
        log.info("stopped", extra={"close_s": took, "abandoned": self.abandoned})


def freeze_startup_heap() -> None:
    """What start-up made (modules, settings, pools, servers) lives as long as the process: the cyclic
    collector's full collections need not walk it again and again while the service works."""
    gc.collect()
    gc.freeze()


def start_metrics_endpoint(port: int, host: str = "0.0.0.0") -> None:
    """Prometheus /metrics on its own port (0: off)."""
    if port:
        start_http_server(port, addr=host)
        log.info("prometheus metrics on :%d/metrics", port, extra={"port": port})


LIVENESS = "liveness"  # a health service name that is SERVING while the process answers at all


class HealthServer:
    """A gRPC server with only health checking and reflection, for services that serve no other RPCs.

    Starts NOT_SERVING; the service flips it once its dependencies answer. The service name `liveness`
    (LIVENESS) is SERVING from start to shutdown whatever the dependencies say: a liveness probe on it
    restarts a process that no longer answers, not one that waits out an outage a restart cannot end.
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
        await self.servicer.set(LIVENESS, SERVING)
        await self.server.start()
        log.info("health on %s", self.address, extra={"address": self.address})

    async def set(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        await self.servicer.set("", status)
        await self.servicer.set(self.service_name, status)

    async def stop(self, grace_s: float) -> None:
        await self.servicer.enter_graceful_shutdown()
        await self.server.stop(grace_s)


# --- outages -------------------------------------------------------------------------------------

Probe = Callable[[], Awaitable[object]]
PROBE_TIMEOUT_S = 5.0


class Dependencies:
    """What a service needs (Kafka, Postgres), whether each answers now, and the health that follows.

    A probe loop asks each dependency every `interval_s`; the work loops also report what they see
    (`down` on a failed call, `up` on a successful one), so health turns at once, not a probe later.
    Health is SERVING only while every dependency answers. Logs one warning per outage and one line
    when it ends, whatever the number of failed calls in between.
    """

    def __init__(
        self,
        probes: dict[str, Probe],
        on_health: Callable[[bool], Awaitable[None]],
        *,
        outage_limit_s: float,
        interval_s: float = 1.0,
        unlimited: Collection[str] = (),
    ) -> None:
        self.probes = probes
        self.on_health = on_health
        self.outage_limit_s = outage_limit_s
        # dependencies whose outage never makes the service exit: a restart cannot bring back a service
        # outside the cluster (Amazon's token endpoint), and restarting would only ask it again sooner
        self.unlimited = frozenset(unlimited)
        self.interval_s = interval_s
        self.down_since: dict[str, float] = {}
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()  # set whenever a dependency comes back: a waiting retry may go

    @property
    def all_up(self) -> bool:
        return not self.down_since

    async def down(self, name: str, error: BaseException | str) -> None:
        if name not in self.down_since:
            self.down_since[name] = time.monotonic()
            log.warning(
                "%s is unreachable: reporting NOT_SERVING and retrying until it answers",
                name,
                extra={"dependency": name, "error": str(error)[:500]},
            )
        await self._publish()

    async def up(self, name: str) -> None:
        since = self.down_since.pop(name, None)
        if since is not None:
            log.warning(
                "%s answers again after %.1fs",
                name,
                time.monotonic() - since,
                extra={"dependency": name, "outage_s": round(time.monotonic() - since, 1)},
            )
            self.changed.set()
        await self._publish()

    def check_limit(self) -> None:
        """Raise OutageTooLong when a dependency has been down longer than the limit."""
        now = time.monotonic()
        for name, since in self.down_since.items():
            if name not in self.unlimited and now - since > self.outage_limit_s:
                raise OutageTooLong(
                    f"{name} has been unreachable for {now - since:.0f}s (CANCELGUARD_OUTAGE_LIMIT_S="
                    f"{self.outage_limit_s:.0f}): giving up so the orchestrator can restart this service"
                )

    async def probe_once(self) -> None:
        for name, probe in self.probes.items():
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self.down(name, str(exc) or type(exc).__name__)
            else:
                await self.up(name)

    async def _publish(self) -> None:
        serving = self.all_up
        if serving != self._serving:
            self._serving = serving
            await self.on_health(serving)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="dependency-probes")

    async def _loop(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_retry(self, delay: float, stop: asyncio.Event) -> None:
        """Back off before a retry: `delay`, or less if the dependency comes back or we are stopped."""
        self.changed.clear()
        waits = [asyncio.ensure_future(e.wait()) for e in (self.changed, stop)]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


def backoff_delays(first: float = 0.25, most: float = 5.0) -> Iterator[float]:
    """0.25 s doubling to 5 s, each jittered to 50-150%."""
    delay = first
    while True:
        yield delay * (0.5 + random.random())
        delay = min(delay * 2, most)


class RepeatFilter(logging.Filter):
    """Passes the first of a run of identical lines from a client library, then at most one per
    `every_s`.

    Client libraries (aiokafka) log every failed reconnect; during an outage that is thousands of
    lines saying the same thing. Our own `Dependencies` says it once. Our own lines all pass.
    """

    def __init__(self, every_s: float = 60.0, libraries: tuple[str, ...] = ("aiokafka", "asyncpg")) -> None:
        super().__init__()
        self.every_s = every_s
        self.libraries = libraries
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.libraries):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            return False
        if len(self._last) > 1000:  # bounded: a flood of distinct messages must not grow memory
            self._last.clear()
        self._last[key] = now
        return True
