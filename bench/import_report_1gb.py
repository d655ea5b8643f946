"""A ~1 GB Unshipped Orders report through `cancelguard import-report`: its peak memory and its rate.

Not a test: `make import-report-1gb`. Writes the file once into .local/bench/ (rows shaped like the
example report's, tests/fixtures/amazon/unshipped_orders_report_example.txt: one to three items per
order, a formal request on 3% of them, one bad row in 1,000), starts its own Kafka on free ports (never
another stack's), runs the command as a process and prints its summary, the wall time and the peak
resident memory of that process (ru_maxrss of the child).

    .venv/bin/python bench/import_report_1gb.py [--size-mb 1000] [--regenerate]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cancelguard.localstack import KafkaDist, LocalKafka, find_free_port, repo_root

ROOT = repo_root()
EXAMPLE = ROOT / "tests/fixtures/amazon/unshipped_orders_report_example.txt"
SELLER, US = "A1BENCHSELLER", "ATVPDKIKX0DER"
AS_OF = datetime(2026, 11, 20, 12, tzinfo=UTC)


def generate(path: Path, size: int, *, seed: int = 7) -> int:
    """Rows until the file reaches `size` bytes; returns the number of data rows."""
    header, _, _, template_line, *_ = EXAMPLE.read_bytes().decode().split("\r\n")
    columns = header.split("\t")
    template = dict(zip(columns, template_line.split("\t"), strict=True))
    rnd = random.Random(seed)
    start = AS_OF - timedelta(days=3)
    rows = order = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(header + "\r\n")
        written = len(header) + 2
        while written < size:
            order += 1
            purchased = (start + timedelta(seconds=order * 7 % 250_000)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
            requested = rnd.random() < 0.03
            for item in range(rnd.choice((1, 1, 2, 3))):
                rows += 1
                cells = template | {
                    "order-id": f"{100 + order % 900}-{order:07d}-{order * 7919 % 10_000_000:07d}",
                    "order-item-id": f"{order:010d}{item:04d}",
                    "purchase-date": purchased if rows % 1000 else "yesterday",
                    "sku": f"SKU-{rnd.randrange(5000):05d}",
                    "quantity-purchased": str(1 + item),
                    "quantity-to-ship": str(1 + item),
                    "is-buyer-requested-cancellation": "true" if requested else "false",
                    "buyer-requested-cancel-reason": "Found cheaper somewhere else." if requested else "",
                }
                line = "\t".join(cells[c] for c in columns) + "\r\n"
                out.write(line)
                written += len(line)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()
    path = ROOT / ".local/bench" / f"unshipped-orders-{args.size_mb}mb.txt"
    if args.regenerate or not path.exists() or path.stat().st_size < args.size_mb * 1_000_000:
        started = time.monotonic()
        rows = generate(path, args.size_mb * 1_000_000)
        took = time.monotonic() - started
        print(f"wrote {path.name}: {path.stat().st_size / 1e6:,.0f} MB, {rows:,} rows in {took:.0f}s")

    home = Path(tempfile.mkdtemp(prefix="cancelguard-bench-kafka-"))
    kafka = LocalKafka(
        home, port=find_free_port(), controller_port=find_free_port(), dist=KafkaDist().ensure()
    )
    try:
        bootstrap = kafka.start()
        env = {**os.environ, "CANCELGUARD_KAFKA_BOOTSTRAP": bootstrap, "CANCELGUARD_TOPIC_PREFIX": "bench."}
        command = [
            str(Path(sys.executable).with_name("cancelguard")),
            "import-report",
            str(path),
            "--seller",
            SELLER,
            "--marketplace",
            US,
            "--as-of",
            AS_OF.isoformat(),
        ]
        print("$ cancelguard", " ".join(command[1:]), flush=True)
        started = time.monotonic()
        child = subprocess.Popen(command, env=env)
        # wait4: the resource usage of this one process (Kafka's JVM is a child of ours too)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
        child.returncode = exit_code = os.waitstatus_to_exitcode(status)
    finally:
        kafka.stop()
        shutil.rmtree(home, ignore_errors=True)
    size = path.stat().st_size
    print(
        f"import-report: exit {exit_code}; {size / 1e6:,.0f} MB in {seconds:,.0f}s "
        f"({size / 1e6 / seconds:,.1f} MB/s); peak memory (ru_maxrss) {usage.ru_maxrss / 1024:,.0f} MiB"
    )
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
