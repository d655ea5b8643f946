"""`make bench-api-loop`: the Python a held read costs the API per call, beside the empty handler's, in a
tight loop in this process (no gRPC core, no network, no other process).

Not a test. Each call goes the way the server takes it: the generic handler picks the method's handler
from the call's path and metadata, the request is decoded, the handler's coroutine runs to its end (it
never waits: the answer is held), and the answer is encoded. The API's side is its real wiring (the gate
with a caller's bearer token, the telemetry, the servicers' held answers from a read cache filled as a
warm replica has it); the anchor is `bench/empty_server.py`'s handlers for the same methods. Rounds are
interleaved, ROUNDS of CALLS calls each; the figure is each side's fastest round, in µs per call (other
work on the machine only ever slows a loop down, and this one's rounds vary by half on a busy machine).
Three reads: the same rate, and the same order, asked again and again (a dashboard's); and orders asked
for the first time, each round FIRST_TIME other ones of ROUNDS * FIRST_TIME held, in a random order
(`make bench-api`'s GetOrder asks for a random one of 100,000, so most of its calls are first ones).

What this leaves out is what `make bench-api` and `make bench-api-instr` measure: gRPC's own work for a
call, and what the same code costs when it runs once per call between other threads' work (more than in
a loop, where the processor's caches stay warm). So it tells a change in the API's own Python apart from
the machine's noise quickly, not what a caller will see.

Last line: `api/empty per call in a loop: rate R (A µs vs E µs), order O (A' µs vs E' µs), order first
time F (A" µs vs E" µs)`.
"""

from __future__ import annotations

import os
import random
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import empty_server
import grpc

from cancelguard.api.auth import CallerRegistry, parse_callers
from cancelguard.api.cache import CachedOrder, ReadCache
from cancelguard.api.reads import Reads
from cancelguard.api.server import SERVICES
from cancelguard.api.servicers import MetricsService, OrderService
from cancelguard.api.wiring import Gate, InFlight, add_services
from cancelguard.demo_credentials import callers_toml
from cancelguard.v1 import metrics_pb2, orders_pb2

CALLS = int(os.environ.get("BENCH_CALLS", "50000"))  # a second or so: within the cache's heartbeat
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
FIRST_TIME = int(os.environ.get("BENCH_FIRST_TIME", "20000"))  # orders asked for the first time, a round
SELLER, MKT = "A1DEMOSELLERUS", "ATVPDKIKX0DER"
AGAIN = ROUNDS * FIRST_TIME  # the order asked again and again (those before it: each asked once)
TOKEN = "bench-token"
# what ghz sends besides the token, as the server hands it to the generic handler
METADATA = (("authorization", f"Bearer {TOKEN}"), ("user-agent", "grpc-go/1.59.0"))


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class _Server:
    """What `add_generic_rpc_handlers` is given, kept."""

    def __init__(self) -> None:
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.handlers += handlers


Service = Callable[[_Details], grpc.RpcMethodHandler | None]  # a generic handler's `service`


def order_id(n: int) -> str:
    return f"111-0000000-{n:07d}"


def api_handler(cache: ReadCache) -> Service:
    """The API's wiring and servicers, over `cache` filled with one rate and AGAIN + 1 orders (a warm
    replica's)."""
    registry = CallerRegistry(None)
    registry.callers = parse_callers(callers_toml({"bench": (TOKEN, [SELLER])}))
    cache.notified("h")  # the listener's heartbeat: the cache is in use (for ALIVE_S)
    reads = Reads(types.SimpleNamespace(forget_active=lambda: None), cache)  # type: ignore[arg-type]
    account = (SELLER, MKT)
    rate = metrics_pb2.CancellationRate(seller_account=SELLER, marketplace_id=MKT, total_orders=100_000)
    held_until = time.time_ns() + 3600 * 10**9
    answer_key = ("answer", metrics_pb2.WINDOW_KIND_LIVE, 0)
    cache.put_rate(account, answer_key, (rate.SerializeToString(), held_until), cache.token())
    for n in range(AGAIN + 1):
        order = orders_pb2.Order(seller_account=SELLER, marketplace_id=MKT, amazon_order_id=order_id(n))
        cache.put_order(account, order_id(n), CachedOrder(order.SerializeToString(), 1, False), cache.token())
    no_io: Any = None  # a held answer touches no store, writer or watcher
    servicers = (
        OrderService(reads, no_io, no_io, no_io, no_io),
        MetricsService(reads, no_io, no_io, no_io),
    )
    server = _Server()
    add_services(server, zip(SERVICES, servicers, strict=True), Gate(registry, InFlight(limit=1000)))  # type: ignore[arg-type]
    [handler] = server.handlers
    return handler.service


def empty_handler() -> Service:
    handlers = empty_server.handlers({})

    def service(details: _Details) -> grpc.RpcMethodHandler | None:
        for handler in handlers:  # as the server does: each generic handler in turn, until one has it
            found: grpc.RpcMethodHandler | None = handler.service(details)
            if found is not None:
                return found
        return None

    return service


def calls(service: Service, path: str, requests: list[bytes]) -> Callable[[], int]:
    """A run of a call for each of `requests` (the bytes of each): how many calls it made."""
    details = _Details(path, METADATA)

    def run() -> int:
        for raw in requests:
            handler = service(details)
            assert handler is not None
            decode = handler.request_deserializer  # None: the handler takes the bytes (as gRPC does)
            coroutine = handler.unary_unary(raw if decode is None else decode(raw), None)
            try:
                coroutine.send(None)
            except StopIteration as done:
                handler.response_serializer(done.value)
            else:
                raise SystemExit(f"{path} waited: its answer is not held")
        return len(requests)

    return run


def per_call_us(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    made = run()
    return (time.perf_counter() - started) / made * 1e6


def main() -> int:
    cache = ReadCache()
    api, empty = api_handler(cache), empty_handler()
    rate_path = f"/{SERVICES[1].full_name}/GetCancellationRate"
    order_path = f"/{SERVICES[0].full_name}/GetOrder"

    def order_request(n: int) -> bytes:
        request = orders_pb2.GetOrderRequest(
            seller_account=SELLER, marketplace_id=MKT, amazon_order_id=order_id(n)
        )
        return request.SerializeToString()

    rate = metrics_pb2.GetCancellationRateRequest(
        seller_account=SELLER, marketplace_id=MKT, window_kind=metrics_pb2.WINDOW_KIND_LIVE
    ).SerializeToString()
    first_times = list(range(AGAIN))
    random.shuffle(first_times)
    # each read's requests a round: the same bytes CALLS times, or FIRST_TIME orders not asked before
    reads: dict[str, tuple[str, Callable[[int], list[bytes]]]] = {
        "rate": (rate_path, lambda n: [rate] * CALLS),
        "order": (order_path, lambda n: [order_request(AGAIN)] * CALLS),
        "order first time": (
            order_path,
            lambda n: [order_request(k) for k in first_times[n * FIRST_TIME : (n + 1) * FIRST_TIME]],
        ),
    }
    sides = (("api", api), ("empty", empty))
    for read in ("rate", "order"):  # warm-up, and a held answer is checked to be one (first ones: as they go)
        path, requests = reads[read]
        for _, service in sides:
            calls(service, path, requests(0)[:1])()
    results: dict[tuple[str, str], list[float]] = {(read, side): [] for read in reads for side, _ in sides}
    for n in range(ROUNDS):
        for read, (path, requests) in reads.items():
            asked = requests(n)
            for side, service in sides:
                cache.notified("h")  # the heartbeat that keeps the cache in use, as the listener sends it
                results[read, side].append(per_call_us(calls(service, path, asked)))
        print(
            f"round {n + 1}/{ROUNDS}: "
            + ", ".join(f"{read} {side} {v[-1]:.2f} µs" for (read, side), v in results.items()),
            flush=True,
        )
    fastest = {key: min(v) for key, v in results.items()}
    parts = [
        f"{read} {fastest[(read, 'api')] / fastest[(read, 'empty')]:.2f}"
        f" ({fastest[(read, 'api')]:.2f} µs vs {fastest[(read, 'empty')]:.2f} µs)"
        for read in reads
    ]
    print(f"api/empty per call in a loop: {', '.join(parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
