"""`make bench-api-instr`: what a read RPC costs the API, in instructions per call, beside the empty handler.

Not a test. QPS on this machine moves by about 10% from one run to the next, too much to see a change of
5% in what a call costs; an instruction count repeats to about 2%. In one run:
1. the same Kafka, Postgres and orders as `make bench-api` (`api_reads.populated`);
2. the API, the empty handler (`bench/empty_server.py`, on the API's event loop, uvloop's by default: the
   loops differ in cost, which `make bench-api` shows), the same handler sending the API's own answers
   as they are (what gRPC costs to carry them), and the empty handlers inside the API's own process
   (`bench/empty_in_api.py`: what that process costs a call), each under valgrind's callgrind, which
   counts the instructions of every thread of the process (Python, gRPC's core, the user side of kernel
   calls), each thread apart: the event loop's thread (the main one) runs all the Python of a call, and
   at full speed it is the one that limits QPS, while gRPC's own threads do their share beside it;
3. rounds interleaved empty / answers / in the API's process / API: for each read, callgrind's counters
   zeroed, CALLS calls with ghz (concurrency 8, one connection), the counters dumped; then the same over
   IDLE_S seconds of no calls, the process's own background (the API's probes, Kafka's metadata, timers),
   which is taken off in proportion to the calls' duration: under valgrind it is a large share of a
   slowed-down call, at full speed a negligible one;
4. the median per call of each, and their ratio.
Counted: GetCancellationRate on the 100,000-order account, GetOrder on the 1,000-order one (whose orders
are read once first, as a warm replica has them). Not counted: time spent waiting, in the kernel, or on
cache misses, which QPS (`make bench-api`) shows.
The last line: `api/empty instructions per call: rate R, order O; on the event loop's thread: rate R',
order O'`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import api_reads
import grpc
from api_reads import GHZ, MKT, SELLER, SMALL, SMALL_ORDERS, Split, ghz, say, the_answers, wait_serving

CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
IDLE_S = 8.0
ORDERS = int(os.environ.get("BENCH_ORDERS", "100000"))
RATE_CALL = "cancelguard.v1.MetricsService/GetCancellationRate"
ORDER_CALL = "cancelguard.v1.OrderService/GetOrder"


class Callgrind:
    """A process under callgrind: its instruction counts since the last `zero`, read from a dump (one file
    per thread: `<out>.<pid>.<dump>-<thread>`, thread 01 the main one)."""

    def __init__(self, out_dir: Path, name: str) -> None:
        self.out = out_dir / f"callgrind-{name}"
        self.wrapper = (
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={self.out}.%p",
        )
        self.pid = 0

    def _control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.pid)], check=True, capture_output=True)

    def zero(self) -> None:
        self._control("-z")

    def dumped(self) -> Split:
        """Instructions since the last zero (a dump zeroes the counters too)."""
        before = set(self.out.parent.glob(f"{self.out.name}.{self.pid}.*"))
        self._control("-d")  # returns once the dump is written
        deadline = time.monotonic() + 60
        while True:
            new = set(self.out.parent.glob(f"{self.out.name}.{self.pid}.*")) - before
            by_thread = {f.name.rsplit("-", 1)[-1]: _summary(f) for f in new}
            written = {thread: n for thread, n in by_thread.items() if n is not None}
            if "01" in written and len(written) == len(by_thread):
                for f in new:
                    f.unlink()
                return Split(written["01"], sum(written.values()))
            if time.monotonic() > deadline:
                raise SystemExit(f"callgrind wrote no complete dump for pid {self.pid} within 60s")
            time.sleep(0.2)


def _summary(dump: Path) -> int | None:
    match = re.search(r"^summary: (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
    return int(match.group(1)) if match else None


def per_call(
    meter: Callgrind, run: api_reads.Populated, address: str, call: str, data: dict[str, str]
) -> Split:
    """Instructions per call of `call`, the process's idle rate taken off (each count's own)."""
    meter.zero()
    time.sleep(IDLE_S)
    idle = meter.dumped()
    started = time.monotonic()
    ghz(address, run.protoset, call, data, run.token, calls=CALLS)
    busy = meter.dumped()
    took = time.monotonic() - started
    return Split(*((b - i / IDLE_S * took) / CALLS for b, i in zip(busy, idle, strict=True)))


def main() -> int:
    for tool, how in ((GHZ, "`make ghz` installs it (needs Go)"), ("valgrind", "apt-get install valgrind")):
        if not shutil.which(str(tool)):
            print(f"{tool} is missing: {how}", file=sys.stderr)
            return 2
    rate = {"seller_account": SELLER, "marketplace_id": MKT, "window_kind": "WINDOW_KIND_LIVE"}
    order = {
        "seller_account": SMALL,
        "marketplace_id": MKT,
        "amazon_order_id": f"111-0000000-{{{{printf `%07d` (randomInt 0 {SMALL_ORDERS})}}}}",
    }
    with api_reads.populated(ORDERS) as run:
        meters = {name: Callgrind(run.work, name) for name in ("api", "empty", "carrier", "in_api")}
        addresses = {"api": run.start_api(meters["api"].wrapper)}
        meters["api"].pid = run.pids[addresses["api"]]  # valgrind runs the tool in the process it is
        say("the servers start under valgrind (a few minutes)")
        addresses["in_api"] = run.start_empty_in_api(meters["in_api"].wrapper)
        meters["in_api"].pid = run.pids[addresses["in_api"]]
        for server in ("api", "in_api"):
            asyncio.run(wait_serving(addresses[server], timeout=900))
        # the empty handler, and the same sending the API's own answers (what gRPC costs to carry them)
        for name, answers in (("empty", {}), ("carrier", the_answers(addresses["api"], run.token))):
            # on the API's own event loop: what is counted is the API's code beside gRPC's, not the loops'
            addresses[name] = run.start_empty(meters[name].wrapper, answers, run.settings.api_event_loop)
            meters[name].pid = run.pids[addresses[name]]
            with grpc.insecure_channel(addresses[name]) as channel:  # it has no health service
                grpc.channel_ready_future(channel).result(timeout=900)
        from cancelguard.client import Client

        with Client(addresses["api"], token=run.token, deadline_s=600) as client:
            listed = sum(1 for _ in client.orders_list(SMALL, marketplace_id=MKT, page_size=1000))
        say(f"warm-up: {listed:,} orders of {SMALL} listed; {CALLS // 4} calls of each read on each server")
        for address in addresses.values():
            for call, data in ((RATE_CALL, rate), (ORDER_CALL, order)):
                ghz(address, run.protoset, call, data, run.token, calls=CALLS // 4)

        results: dict[str, list[Split]] = {}
        for n in range(ROUNDS):
            for read, call, data in (("rate", RATE_CALL, rate), ("order", ORDER_CALL, order)):
                for server in ("empty", "carrier", "in_api", "api"):
                    results.setdefault(f"{server} {read}", []).append(
                        per_call(meters[server], run, addresses[server], call, data)
                    )
            say(
                f"round {n + 1}/{ROUNDS}: "
                + ", ".join(
                    f"{k} {v[-1].process / 1e3:.1f}k ({v[-1].event_loop / 1e3:.1f}k)"
                    for k, v in results.items()
                )
            )

    say("")
    say(f"instructions per call, median of {ROUNDS} rounds of {CALLS:,} calls (concurrency 8):")
    ratios: dict[str, dict[str, float]] = {}
    for part, title in (("process", "the whole process"), ("event_loop", "the event loop's thread")):
        say(f"  {title}:")
        ratios[part] = {}
        for read in ("rate", "order"):
            api, empty, carrier, in_api = (
                statistics.median(getattr(c, part) for c in results[f"{server} {read}"])
                for server in ("api", "empty", "carrier", "in_api")
            )
            ratios[part][read] = api / empty
            say(
                f"    {read:<6} api {api / 1e3:7.1f}k  empty handler {empty / 1e3:7.1f}k"
                f"  ratio {api / empty:.3f};"
                f"  the empty handler sending the API's answer {carrier / 1e3:7.1f}k ({carrier / empty:.3f}),"
                f" in the API's process {in_api / 1e3:7.1f}k ({in_api / empty:.3f})"
            )
    whole, loop = ratios["process"], ratios["event_loop"]
    say(
        f"api/empty instructions per call: rate {whole['rate']:.3f}, order {whole['order']:.3f}; "
        f"on the event loop's thread: rate {loop['rate']:.3f}, order {loop['order']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
