"""`make bench-api`: the API's read RPCs against an empty grpc.aio handler, with ghz, in one run.

Not a test. On this machine, in one run:
1. a Kafka and a Postgres of its own (local processes on free ports, a throwaway directory);
2. orders written through the metrics service's own write path (`Store.apply_batch`): a seller account
   with 1,000 orders and one with 100,000 (a twentieth with an open formal request, a fiftieth cancelled);
3. the API (`cancelguard serve api`, on uvloop's event loop, its default) and the empty handler
   (`bench/empty_server.py`: the same methods, decoding and encoding the same messages, doing nothing, a
   plain grpc.aio server on asyncio's own loop) as processes;
4. ghz (a protoset built by grpcio-tools: ghz v0.93.0 cannot parse proto3 `optional`), concurrency 8,
   on a core of its own, the servers on the others (`pinned`; BENCH_PIN=0: not), rounds interleaved
   empty / API so that the machine's drift hits both alike:
   - GetCancellationRate and GetOrder (a random one of the 100,000) at full speed: QPS ratio, and the
     CPU each call cost the server's event loop's thread (which runs all of a call's Python and, at full
     speed, limits QPS) and its whole process (from /proc);
   - the same at half the API's full speed, the empty handler at that same rate: p99, and the CPU per
     call (steadier than QPS at full speed, which moves with how the cores are shared);
   - the same two reads on the 1,000-order account: read cost flat from 1,000 to 100,000 orders;
   - GetCancellationRate from an empty handler that sends the API's own answer (its bytes, nothing
     computed) instead of an empty message: what gRPC costs to carry that answer, a floor for the API;
   - both reads from the empty handler on uvloop's event loop, as the API runs: what the API's own code
     costs beside gRPC on the same loop (the goal's ratio is against the plain grpc.aio server);
   - both reads from the empty handlers inside the API's own process (`bench/empty_in_api.py`: its pool,
     producer, read-cache listener, probes and options, without the gate and the servicers), at full
     speed and at half load: what the process costs a call apart from what the API does for it;
   - ListCancellationRequests, a page of 100 open requests at 100,000 orders: p99, beside the same
     handler sending that page's bytes (what gRPC and ghz cost to carry a page of that size); and both
     again from a client that takes the page's bytes as they come (`paced_bytes`): ghz decodes every
     answer into a dynamic message, which for a page of 100 orders costs more than the server's part.
The last line: `rate/empty ratio R, p99 at half load P ms` (GetCancellationRate).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import grpc

ROOT = Path(__file__).resolve().parents[1]
GHZ = ROOT / ".local" / "bin" / "ghz"
SELLER, MKT = "A1DEMOSELLERUS", "ATVPDKIKX0DER"
SMALL = "A2DEMOSELLERJP"  # the 1,000-order account (any marketplace: US here too)
BIG_ORDERS = int(os.environ.get("BENCH_ORDERS", "100000"))  # fewer for a quick look, never for figures
SMALL_ORDERS = 1_000
ROUND_S = int(os.environ.get("BENCH_ROUND_S", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONCURRENCY = 8
PIN = os.environ.get("BENCH_PIN", "1") != "0"  # 0: servers and ghz share every core, as they come


def pinned() -> tuple[tuple[str, ...], int] | None:
    """With two cores or more (and PIN): a command prefix that runs a server on a core of its own, and the
    core that ghz (with this process) keeps. Unpinned on this 2-core machine, a server's QPS at full speed
    in one run's 5-second rounds lay from 15% below to 19% above its median, with where the scheduler put
    its threads and ghz's; pinned, mostly within 6% of it (now and then a round 12-17% below)."""
    cores = sorted(os.sched_getaffinity(0))
    if not PIN or len(cores) < 2 or shutil.which("taskset") is None:
        return None
    return ("taskset", "-c", ",".join(map(str, cores[1:]))), cores[0]


def say(line: str) -> None:
    print(line, flush=True)


def order_id(n: int) -> str:
    return f"111-{n // 10_000_000:07d}-{n % 10_000_000:07d}"


async def populate(dsn: str, schema: str, seller: str, orders: int, first_offset: int) -> int:
    from cancelguard import db
    from cancelguard.domain.model import (
        CancellationRequested,
        Channel,
        ItemObservation,
        OrderEvent,
        OrderKey,
        OrderSnapshot,
        OrderStatus,
        RequestKind,
        SellerCancellationSubmitted,
        Source,
    )
    from cancelguard.domain.policy import PolicyBook
    from cancelguard.metrics.store import PartitionBatch, Store

    pool = await db.create_pool(dsn=dsn, schema=schema, max_size=2)
    store = Store(pool, PolicyBook())
    now = datetime.now(UTC)
    offset = first_offset
    batch: list[tuple[int, Any]] = []

    async def flush() -> None:
        if batch:
            await store.apply_batch("bench", [PartitionBatch("bench-events", 0, list(batch))])
            batch.clear()

    for n in range(orders):
        key = OrderKey(seller, MKT, order_id(n))
        bought = now - timedelta(minutes=(n * 7919) % (6 * 24 * 60) + 60)
        item = ItemObservation(
            f"{n:014d}", seller_sku=f"SKU-{n % 500}", quantity_ordered=1, quantity_shipped=0
        )
        snap = OrderSnapshot(OrderStatus.UNSHIPPED, Channel.MFN, bought, bought + timedelta(days=2), (item,))
        events: list[Any] = [OrderEvent(f"b:{n}:s", key, Source.ORDER_CHANGE, bought, now, snap)]
        if n % 20 == 0:
            request = CancellationRequested(RequestKind.FORMAL, reason="Ordered by mistake")
            events.append(
                OrderEvent(f"b:{n}:r", key, Source.ORDER_CHANGE, bought + timedelta(minutes=30), now, request)
            )
        elif n % 50 == 1:
            at = bought + timedelta(minutes=90)
            events.append(
                OrderEvent(
                    f"b:{n}:c", key, Source.SELLER, at, now, SellerCancellationSubmitted("NoInventory")
                )
            )
            events.append(
                OrderEvent(f"b:{n}:x", key, Source.ORDER_CHANGE, at, now, OrderSnapshot(OrderStatus.CANCELED))
            )
        for event in events:
            batch.append((offset, event))
            offset += 1
        if len(batch) >= 5000:
            await flush()
    await flush()
    await pool.close()
    return offset


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=out, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def protoset(out: Path) -> Path:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{ROOT / 'proto'}",
        f"-I{well_known}",
        "--include_imports",
        f"--descriptor_set_out={out}",
    ]
    args += [str(p) for p in sorted((ROOT / "proto" / "cancelguard" / "v1").glob("*.proto"))]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return out


def ghz(
    address: str,
    protoset_file: Path,
    call: str,
    data: dict[str, Any],
    token: str,
    *,
    rate: int = 0,
    seconds: int = ROUND_S,
    calls: int = 0,
    concurrency: int = CONCURRENCY,
) -> dict[str, Any]:
    """ghz's figures: for `seconds`, or until `calls` calls are answered when given."""
    args = [
        str(GHZ),
        "--insecure",
        "--protoset",
        str(protoset_file),
        "--call",
        call,
        "-d",
        json.dumps(data),
        "--metadata",
        json.dumps({"authorization": f"Bearer {token}"}),
        "-c",
        str(concurrency),
        *(("-n", str(calls)) if calls else ("-z", f"{seconds}s")),
        "--format",
        "json",
        "--connections",
        "1",
    ]
    if rate:
        args += ["-r", str(rate)]
    timeout = 3600 if calls else seconds + 60
    out = subprocess.run([*args, address], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"ghz failed: {out.stderr[-2000:]}")
    report = json.loads(out.stdout)
    # ghz ends the calls still in flight when the duration is up ("transport is closing"): not an answer
    errors = {e: n for e, n in (report.get("errorDistribution") or {}).items() if "is closing" not in e}
    if errors:
        raise SystemExit(f"{call} answered {report.get('statusCodeDistribution')}: {errors}")
    p99 = next((d["latency"] for d in report.get("latencyDistribution") or [] if d["percentage"] == 99), 0)
    return {"qps": report["rps"], "p99_ms": p99 / 1e6, "p50_ms": _pct(report, 50), "calls": report["count"]}


def paced_bytes(
    address: str, token: str, method: str, request: Any, *, rate: int, seconds: int
) -> dict[str, float]:
    """p50 and p99 of `rate` calls a second for `seconds`, one at a time, each answer taken as its bytes
    (nothing decoded: what the server and gRPC take, without ghz's decoding). Each call is timed from when
    it was due, so a slow answer also counts against the calls it held up."""
    latencies = []
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            f"/cancelguard.v1.{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=None,
        )
        metadata = (("authorization", f"Bearer {token}"),)
        call(request, metadata=metadata, timeout=30)  # the channel connected
        started = time.perf_counter()
        for n in range(rate * seconds):
            due = started + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            call(request, metadata=metadata, timeout=30)
            latencies.append(time.perf_counter() - due)
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


def answer(address: str, token: str, method: str, request: Any) -> bytes:
    """The API's answer to `request` (a call of `method`, as `Service/Method`), its bytes as they came."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            f"/cancelguard.v1.{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=None,  # the bytes as they came
        )
        raw: bytes = call(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
    return raw


def the_answers(api: str, token: str) -> dict[str, bytes]:
    """The API's own answers to the reads measured, by method: an empty handler sending them as they are
    shows what gRPC costs to carry them (a floor for the API)."""
    from cancelguard.v1 import metrics_pb2, orders_pb2

    live = metrics_pb2.WINDOW_KIND_LIVE
    return {
        "GetCancellationRate": answer(
            api,
            token,
            "MetricsService/GetCancellationRate",
            metrics_pb2.GetCancellationRateRequest(
                seller_account=SELLER, marketplace_id=MKT, window_kind=live
            ),
        ),
        "GetOrder": answer(
            api,
            token,
            "OrderService/GetOrder",
            orders_pb2.GetOrderRequest(
                seller_account=SELLER, marketplace_id=MKT, amazon_order_id=order_id(1)
            ),
        ),
        "ListCancellationRequests": answer(
            api,
            token,
            "OrderService/ListCancellationRequests",
            orders_pb2.ListCancellationRequestsRequest(
                seller_account=SELLER, marketplace_id=MKT, page_size=100
            ),
        ),
    }


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


class Split(NamedTuple):
    """What a server spent (CPU, instructions): its main thread's share (the event loop, which runs all the
    Python of a call and, at full speed, limits QPS) and its whole process's (gRPC's own threads too)."""

    event_loop: float
    process: float


def cpu_s(pid: int) -> Split:
    """CPU seconds (user and system) so far."""

    def used(stat: str) -> float:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()  # after the command's name
        return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime

    return Split(used(f"/proc/{pid}/task/{pid}/stat"), used(f"/proc/{pid}/stat"))


def with_cpu(pid: int, run: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """`run(*args, **kwargs)`'s figures (a ghz run against the server `pid`) with `cpu_us`, a Split: the
    CPU each call cost that server, in µs."""
    before = cpu_s(pid)
    result = run(*args, **kwargs)
    after = cpu_s(pid)
    result["cpu_us"] = Split(*((b - a) * 1e6 / result["calls"] for a, b in zip(before, after, strict=True)))
    return result


def _pct(report: dict[str, Any], pct: int) -> float:
    return (
        next((d["latency"] for d in report.get("latencyDistribution") or [] if d["percentage"] == pct), 0)
        / 1e6
    )


async def wait_serving(address: str, timeout: float = 120) -> None:
    from grpc_health.v1 import health_pb2

    from cancelguard.processes import health_status

    deadline = time.monotonic() + timeout
    while await health_status(address) != health_pb2.HealthCheckResponse.SERVING:
        if time.monotonic() > deadline:
            raise SystemExit(f"{address} not SERVING after {timeout:.0f}s")
        await asyncio.sleep(0.3)


@dataclass
class Populated:
    """Kafka and Postgres of the run's own, the orders written, a caller's credentials: what the servers
    measured by a benchmark need. `start` runs a server as a process (`wrapper`: a command it runs under,
    such as valgrind), stopped with the rest."""

    work: Path
    settings: Any  # cancelguard.config.Settings, with the API's port and the caller file
    protoset: Path
    token: str
    procs: Processes
    pids: dict[str, int] = field(default_factory=dict)  # a server's process by its address

    def start(
        self, args: list[str], log: str, wrapper: tuple[str, ...] = (), settings: Any = None
    ) -> subprocess.Popen[bytes]:
        from cancelguard.processes import settings_env

        env = settings_env(settings or self.settings)
        return self.procs.start([*wrapper, *args], env, self.work / log)

    def start_api(self, wrapper: tuple[str, ...] = ()) -> str:
        return self._serve_api([sys.executable, "-m", "cancelguard", "serve", "api"], "api.log", wrapper)

    def start_empty_in_api(self, wrapper: tuple[str, ...] = ()) -> str:
        """The API's own process with the empty handlers (`bench/empty_in_api.py`), on a port of its own: its
        address."""
        from cancelguard.localstack import find_free_port

        args = [sys.executable, str(ROOT / "bench" / "empty_in_api.py")]
        return self._serve_api(args, "empty-in-api.log", wrapper, api_port=find_free_port())

    def _serve_api(self, args: list[str], log: str, wrapper: tuple[str, ...], **changed: Any) -> str:
        """A process started with the API's settings (`changed`: those that differ): its address."""
        settings = self.settings.model_copy(update=changed)
        address = f"127.0.0.1:{settings.api_port}"
        self.pids[address] = self.start(args, log, wrapper, settings).pid
        return address

    def start_empty(
        self, wrapper: tuple[str, ...] = (), answers: dict[str, bytes] | None = None, loop: str = "asyncio"
    ) -> str:
        """The empty handler (answering the bytes `answers` gives for a method's calls; on the event loop
        `loop`): its address."""
        from cancelguard.localstack import find_free_port

        port = find_free_port()
        args = [sys.executable, str(ROOT / "bench" / "empty_server.py"), str(port), f"--loop={loop}"]
        for method, raw in (answers or {}).items():
            (self.work / f"{method}-{port}.bin").write_bytes(raw)
            args.append(f"{method}={self.work / f'{method}-{port}.bin'}")
        address = f"127.0.0.1:{port}"
        self.pids[address] = self.start(args, f"empty-{port}.log", wrapper).pid
        return address


@contextlib.contextmanager
def populated(orders: int = BIG_ORDERS) -> Iterator[Populated]:
    """Kafka and Postgres started, SMALL_ORDERS orders on one account and `orders` on another; everything
    stopped and removed at the end."""
    from cancelguard import db
    from cancelguard.config import Settings
    from cancelguard.demo_credentials import DEMO_TOKEN, callers_toml
    from cancelguard.localstack import KafkaDist, LocalKafka, LocalPostgres, find_free_port

    work = Path(tempfile.mkdtemp(prefix="cancelguard-bench-"))
    work.chmod(0o755)  # Postgres runs unprivileged when we are root
    kafka = LocalKafka(
        work / "kafka",
        port=find_free_port(),
        controller_port=find_free_port(),
        dist=KafkaDist(say=say),
        say=say,
    )
    postgres = LocalPostgres(work / "postgres", port=find_free_port(), say=say)
    procs = Processes()
    # stopped by SIGTERM too, not only Ctrl-C: everything it started is stopped and removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bootstrap, dsn = kafka.start(), postgres.start()
        schema = "bench"
        asyncio.run(db.migrate(dsn=dsn, schema=schema))
        started = time.monotonic()
        offset = asyncio.run(populate(dsn, schema, SMALL, SMALL_ORDERS, 0))
        asyncio.run(populate(dsn, schema, SELLER, orders, offset))
        say(f"populated {SMALL_ORDERS:,} + {orders:,} orders in {time.monotonic() - started:.0f}s")
        callers = work / "callers.toml"
        callers.write_text(callers_toml({"bench": (DEMO_TOKEN, [SELLER, SMALL])}))
        settings = Settings(
            kafka_bootstrap=bootstrap,
            postgres_dsn=dsn,
            postgres_schema=schema,
            topic_prefix="bench.",
            api_port=find_free_port(),
            api_metrics_port=0,
            api_callers_file=str(callers),
            log_level="WARNING",
        )
        yield Populated(work, settings, protoset(work / "cancelguard.protoset"), DEMO_TOKEN, procs)
    except BaseException:
        for log in sorted(work.glob("*.log")):  # the servers' own words, before the directory goes
            say(f"--- the end of {log.name}:")
            say("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        raise
    finally:
        procs.stop()
        for service in (kafka, postgres):
            if service.is_running():
                service.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if not GHZ.exists():
        print("ghz is missing: `make ghz` installs it (needs Go)", file=sys.stderr)
        return 2
    with populated() as run:
        server, load = pinned() or ((), None)
        if load is not None:  # ghz runs from here: on the core left to it
            os.sched_setaffinity(0, {load})
            say(f"servers on cores {server[-1]}, ghz on core {load} (BENCH_PIN=0: unpinned)")
        api, empty, in_api = run.start_api(server), run.start_empty(server), run.start_empty_in_api(server)
        empty_uvloop = run.start_empty(server, loop="uvloop")
        for address in (api, in_api):
            asyncio.run(wait_serving(address))
        for address in (empty, empty_uvloop):
            with grpc.insecure_channel(address) as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
        time.sleep(1)

        def anchor(answers: dict[str, bytes]) -> str:
            """An empty handler sending the `answers` bytes to those methods' calls: its address."""
            address = run.start_empty(server, answers=answers)
            with grpc.insecure_channel(address) as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
            return address

        return measure(api, empty, empty_uvloop, in_api, run.protoset, run.token, anchor, run.pids)


def measure(
    api: str,
    empty: str,
    empty_uvloop: str,
    in_api: str,
    files: Path,
    token: str,
    anchor: Callable[[dict[str, bytes]], str],
    pids: dict[str, int],
) -> int:
    rate_call = "cancelguard.v1.MetricsService/GetCancellationRate"
    order_call = "cancelguard.v1.OrderService/GetOrder"
    list_call = "cancelguard.v1.OrderService/ListCancellationRequests"
    big_rate = {"seller_account": SELLER, "marketplace_id": MKT, "window_kind": "WINDOW_KIND_LIVE"}
    small_rate = {**big_rate, "seller_account": SMALL}
    # ghz's template: a random order of the account on every call
    big_order = {
        "seller_account": SELLER,
        "marketplace_id": MKT,
        "amazon_order_id": f"111-0000000-{{{{printf `%07d` (randomInt 0 {BIG_ORDERS})}}}}",
    }
    small_order = {
        **big_order,
        "seller_account": SMALL,
        "amazon_order_id": f"111-0000000-{{{{printf `%07d` (randomInt 0 {SMALL_ORDERS})}}}}",
    }
    page = {"seller_account": SELLER, "marketplace_id": MKT, "page_size": 100}

    say("warm-up: every order of both accounts listed once (ListOrders fills the read cache)")
    from cancelguard.client import Client
    from cancelguard.v1 import orders_pb2

    started = time.monotonic()
    with Client(api, token=token, deadline_s=60) as client:
        for seller in (SELLER, SMALL):
            listed = sum(1 for _ in client.orders_list(seller, marketplace_id=MKT, page_size=1000))
            say(f"  {seller}: {listed:,} orders listed")
    say(f"  in {time.monotonic() - started:.0f}s")
    for call, data in ((order_call, small_order), (rate_call, big_rate), (list_call, page)):
        ghz(api, files, call, data, token, seconds=3)

    # the API's own answers, sent as they are by an empty handler: what gRPC costs to carry them
    answers = the_answers(api, token)
    carrier = anchor(answers)

    results: dict[str, list[dict[str, Any]]] = {}
    for n in range(ROUNDS):
        for name, target, call, data in (
            ("empty rate", empty, rate_call, big_rate),
            ("api rate 100k", api, rate_call, big_rate),
            ("empty rate, the API's answer", carrier, rate_call, big_rate),
            ("empty rate, in the API's process", in_api, rate_call, big_rate),
            ("empty rate, on uvloop", empty_uvloop, rate_call, big_rate),
            ("empty order", empty, order_call, big_order),
            ("empty order, on uvloop", empty_uvloop, order_call, big_order),
            ("empty order, the API's answer", carrier, order_call, big_order),
            ("empty order, in the API's process", in_api, order_call, big_order),
            ("api order 100k", api, order_call, big_order),
            ("api rate 1k", api, rate_call, small_rate),
            ("api order 1k", api, order_call, small_order),
        ):
            results.setdefault(name, []).append(with_cpu(pids[target], ghz, target, files, call, data, token))
        say(f"round {n + 1}/{ROUNDS}: " + ", ".join(f"{k} {v[-1]['qps']:.0f}" for k, v in results.items()))

    def qps(name: str) -> float:
        return statistics.median(r["qps"] for r in results[name])

    def cpu_per_call(name: str) -> Split:
        rounds = [r["cpu_us"] for r in results[name]]
        return Split(*(statistics.median(part) for part in zip(*rounds, strict=True)))

    # the same offered rate for the API and the empty handler: p99, and a CPU per call that moves far less
    # from round to round than QPS at full speed (every call is handled as it comes, nothing queues)
    half = {}
    for name, target, call, data, full in (
        ("rate", api, rate_call, big_rate, qps("api rate 100k")),
        ("empty rate", empty, rate_call, big_rate, qps("api rate 100k")),
        ("empty rate, in the API's process", in_api, rate_call, big_rate, qps("api rate 100k")),
        ("order", api, order_call, big_order, qps("api order 100k")),
        ("empty order", empty, order_call, big_order, qps("api order 100k")),
        ("empty order, in the API's process", in_api, order_call, big_order, qps("api order 100k")),
    ):
        half[name] = with_cpu(
            pids[target], ghz, target, files, call, data, token, rate=int(full / 2), seconds=ROUND_S * 2
        )
    listing = ghz(api, files, list_call, page, token, rate=100, seconds=ROUND_S * 2, concurrency=4)
    listing_empty = ghz(carrier, files, list_call, page, token, rate=100, seconds=ROUND_S * 2, concurrency=4)
    listing_full = ghz(api, files, list_call, page, token, seconds=ROUND_S)
    page_request = orders_pb2.ListCancellationRequestsRequest(
        seller_account=SELLER, marketplace_id=MKT, page_size=100
    )
    as_bytes = {
        target: paced_bytes(
            target,
            token,
            "OrderService/ListCancellationRequests",
            page_request,
            rate=100,
            seconds=ROUND_S * 2,
        )
        for target in (api, carrier)
    }

    say("")
    say(f"{'':<34} {'QPS':>8} {'ratio':>6}")
    for name, empty_name in (("api rate 100k", "empty rate"), ("api order 100k", "empty order")):
        say(
            f"{name:<34} {qps(name):>8.0f} {qps(name) / qps(empty_name):>6.2f}"
            f"  (empty handler {qps(empty_name):.0f})"
        )
    for read, method in (("rate", "GetCancellationRate"), ("order", "GetOrder")):
        name, size, api_name = f"empty {read}, the API's answer", len(answers[method]), f"api {read} 100k"
        say(
            f"{name:<34} {qps(name):>8.0f} {qps(name) / qps(f'empty {read}'):>6.2f}"
            f"  ({size} bytes instead of none; the API at {qps(api_name) / qps(name):.2f} of it)"
        )
    for read in ("rate", "order"):
        name, api_name = f"empty {read}, in the API's process", f"api {read} 100k"
        say(
            f"{name:<34} {qps(name):>8.0f} {qps(name) / qps(f'empty {read}'):>6.2f}"
            f"  (its pool, producer, listener, probes; the API at {qps(api_name) / qps(name):.2f} of it)"
        )
    for read in ("rate", "order"):
        name, api_name = f"empty {read}, on uvloop", f"api {read} 100k"
        say(
            f"{name:<34} {qps(name):>8.0f} {qps(name) / qps(f'empty {read}'):>6.2f}"
            f"  (the API's event loop; the API at {qps(api_name) / qps(name):.2f} of it)"
        )
    say("CPU per call at full speed (median), the event loop's thread / the whole process:")
    for name, empty_name in (("api rate 100k", "empty rate"), ("api order 100k", "empty order")):
        ours, theirs = cpu_per_call(name), cpu_per_call(empty_name)
        say(
            f"  {name:<32} {ours.event_loop:5.0f} / {ours.process:3.0f} µs"
            f"  (empty handler {theirs.event_loop:.0f} / {theirs.process:.0f} µs;"
            f" ratio {ours.event_loop / theirs.event_loop:.2f} / {ours.process / theirs.process:.2f})"
        )
    for small, big in (("api rate 1k", "api rate 100k"), ("api order 1k", "api order 100k")):
        say(f"{small:<34} {qps(small):>8.0f}  100k/1k cost ratio {qps(small) / qps(big):.2f}")
    for name, r in half.items():
        say(f"half load ({name}, {int(r['qps'])}/s): p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    say("CPU per call at half load, the same offered rate, the event loop's thread / the whole process:")
    for read in ("rate", "order"):
        theirs = half[f"empty {read}"]["cpu_us"]
        in_process = f"empty {read}, in the API's process"
        for label, key in ((f"api {read}", read), (in_process, in_process)):
            ours = half[key]["cpu_us"]
            say(
                f"  {label:<34} {ours.event_loop:5.0f} / {ours.process:3.0f} µs"
                f"  (empty handler {theirs.event_loop:.0f} / {theirs.process:.0f} µs;"
                f" extra {ours.event_loop - theirs.event_loop:.0f} / {ours.process - theirs.process:.0f} µs)"
            )
    say(
        "ListCancellationRequests page of 100 at 100k orders, 100/s: "
        f"p50 {listing['p50_ms']:.2f} ms, p99 {listing['p99_ms']:.2f} ms"
    )
    say(
        "  the same page's bytes from an empty handler, 100/s: "
        f"p50 {listing_empty['p50_ms']:.2f} ms, p99 {listing_empty['p99_ms']:.2f} ms (what gRPC and ghz cost)"
    )
    say(
        "  taken as bytes (no decoding), 100/s: "
        f"p50 {as_bytes[api]['p50_ms']:.2f} ms, p99 {as_bytes[api]['p99_ms']:.2f} ms;"
        f" the same page's bytes from an empty handler: p50 {as_bytes[carrier]['p50_ms']:.2f} ms,"
        f" p99 {as_bytes[carrier]['p99_ms']:.2f} ms"
    )
    say(
        "ListCancellationRequests page of 100, full speed: "
        f"{listing_full['qps']:.0f}/s, p99 {listing_full['p99_ms']:.2f} ms"
    )
    ratio = qps("api rate 100k") / qps("empty rate")
    say(f"rate/empty ratio {ratio:.2f}, p99 at half load {half['rate']['p99_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
