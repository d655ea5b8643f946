"""`cancelguard import-report`: order report files -> order events on Kafka; bad rows -> dead letters.

Per file: one streaming pass hashes it (SHA-256; the event ids' source id, so importing the same file
twice publishes the same ids), a second one reads it with `OrderReportReader`. Every event is checked
with `bounds.check_event` before `codec.encode`, and published keyed like ingestion's (seller account |
marketplace) with the idempotent producer. Every bad row goes to the dead-letter topic with its reason
code, message, line number and file name in headers (`dead_letters.FileOrigin`); its value keeps only
the order id, the line and the reason (a report row holds the buyer's name and address). In-flight
sends are bounded, so memory stays flat on any file size. Gzip files (the Reports API's
`compressionAlgorithm: GZIP`) are read as is.

A file that cannot be read at all (missing, empty, not an order report) is reported and the next file
is imported; the command then exits non-zero. Bad rows never do.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from aiokafka import AIOKafkaProducer

from cancelguard import dead_letters, kafka
from cancelguard.config import Settings
from cancelguard.domain.model import InvalidInput
from cancelguard.events import codec
from cancelguard.ingestion.adapters.order_report import BadRow, OrderReportReader, ReportKind, ReportOrder
from cancelguard.ingestion.routing import checked

STAGE = "import-report"
MAX_IN_FLIGHT = 5000  # sends queued before waiting for their acknowledgements
BATCH_BYTES = 1 << 20  # a file's events mostly share one key, so one partition: few, big batches
SHOWN_BAD_ROWS = 20  # bad rows listed in the summary; all of them are in the dead-letter topic
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class FileResult:
    name: str
    kind: ReportKind | None = None
    encoding: str = ""
    as_of: datetime | None = None
    rows_read: int = 0
    orders: int = 0
    events_published: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # rows by reason code
    fallback_lines: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)  # the first SHOWN_BAD_ROWS
    error: str = ""  # why the file could not be read at all
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Progress:
    name: str
    bytes_done: int
    bytes_total: int
    rows_read: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ImportOptions:
    seller_account: str
    marketplace_id: str | None = None
    kind: ReportKind | None = None
    encoding: str = "utf-8"
    as_of: datetime | None = None  # None: each file's modification time (Unshipped Orders reports)


async def import_reports(
    settings: Settings,
    paths: list[Path],
    options: ImportOptions,
    *,
    progress: Callable[[Progress], None] | None = None,
) -> list[FileResult]:
    await kafka.ensure_topics(
        settings.kafka_bootstrap,
        settings.all_topics,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
    producer = kafka.new_producer(
        settings.kafka_bootstrap, client_id="cancelguard-import-report", max_batch_size=BATCH_BYTES
    )
    await producer.start()
    try:
        return [await _import_file(settings, producer, path, options, progress) for path in paths]
    finally:
        await kafka.stop_producer(producer)


@dataclass(frozen=True, slots=True)
class _FileFacts:
    source_id: str  # a digest of the bytes: the same file always gives the same event ids
    modified_at: datetime
    size: int


def _file_facts(path: Path) -> _FileFacts:
    # Blocking reads, here and in the reader: this command does one thing at a time, and the producer's
    # sender runs whenever a send or the in-flight wait yields.
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    stat = path.stat()
    return _FileFacts(
        f"sha256-{sha.hexdigest()[:32]}", datetime.fromtimestamp(stat.st_mtime, UTC), stat.st_size
    )


def _open_report(raw: io.BufferedReader) -> BinaryIO:
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


async def _import_file(
    settings: Settings,
    producer: AIOKafkaProducer,
    path: Path,
    options: ImportOptions,
    progress: Callable[[Progress], None] | None,
) -> FileResult:
    result = FileResult(path.name)
    started = time.monotonic()
    try:
        facts = _file_facts(path)
        as_of = options.as_of or facts.modified_at
        with path.open("rb") as raw:
            now = datetime.now(UTC)
            reader = OrderReportReader(
                _open_report(raw),
                seller_account=options.seller_account,
                source_id=facts.source_id,
                observed_at=now,
                marketplace_id=options.marketplace_id,
                kind=options.kind,
                encoding=options.encoding,
                as_of=as_of,
            )
            result.kind, result.encoding = reader.kind, reader.encoding
            result.as_of = as_of if reader.kind is ReportKind.UNSHIPPED else None
            await _publish(
                settings, producer, reader, result, now, _reporter(raw, facts.size, result, progress)
            )
            result.rows_read, result.fallback_lines = reader.rows_read, reader.fallback_lines
    except (OSError, InvalidInput, EOFError, zlib.error) as exc:  # EOFError, zlib: a broken gzip file
        result.error = str(exc) or type(exc).__name__
    result.seconds = time.monotonic() - started
    return result


def _reporter(
    raw: io.BufferedReader, total: int, result: FileResult, progress: Callable[[Progress], None] | None
) -> Callable[[int], None]:
    started = time.monotonic()

    def report(rows_read: int) -> None:
        if progress is not None:
            progress(Progress(result.name, raw.tell(), total, rows_read, time.monotonic() - started))

    return report


async def _publish(
    settings: Settings,
    producer: AIOKafkaProducer,
    reader: OrderReportReader,
    result: FileResult,
    now: datetime,
    report: Callable[[int], None],
) -> None:
    in_flight: list[asyncio.Future] = []
    last_report = time.monotonic()

    async def reject(row: BadRow) -> None:
        result.rejected[row.reason] += 1
        if len(result.bad_rows) < SHOWN_BAD_ROWS:
            result.bad_rows.append(row)
        letter = bad_row_letter(row, result.name, STAGE)
        # no log line per row (a large file would flood the log): the summary counts them by reason
        in_flight.append(await kafka.send_dead_letter(producer, settings.dead_letter_topic, letter))

    for record in reader:
        if isinstance(record, ReportOrder):
            await _send_order(settings, producer, record, result, now, in_flight, reject)
        else:
            await reject(record)
        if len(in_flight) >= MAX_IN_FLIGHT:
            async with asyncio.timeout(kafka.SEND_TIMEOUT_S):
                await asyncio.gather(*in_flight)
            in_flight.clear()
        if time.monotonic() - last_report >= 0.2:
            last_report = time.monotonic()
            report(reader.rows_read)
    async with asyncio.timeout(kafka.SEND_TIMEOUT_S):
        await asyncio.gather(*in_flight)
    report(reader.rows_read)


def bad_row_letter(row: BadRow, file_name: str, stage: str) -> dead_letters.DeadLetter:
    """A bad report row's dead letter: the row holds the buyer's name and address, so nothing of it is
    kept but its order id, its line and why."""
    return dead_letters.build(
        value=None,
        key=None,
        reason_code=row.reason,
        message=row.message,
        origin=dead_letters.FileOrigin(file_name, row.line),
        stage=stage,
        replacement=json.dumps({"order_id": row.order_id, "line": row.line, "reason": row.reason}).encode(),
    )


async def _send_order(
    settings: Settings,
    producer: AIOKafkaProducer,
    order: ReportOrder,
    result: FileResult,
    now: datetime,
    in_flight: list[asyncio.Future],
    reject: Callable[[BadRow], Awaitable[None]],
) -> None:
    try:
        encoded = [(e.key.partition_key.encode(), codec.encode(checked(e, now))) for e in order.events]
    except InvalidInput as exc:  # the reader checked them already: a bug of ours, still not a crash
        order_id = order.events[0].key.amazon_order_id
        for line in order.lines:
            await reject(BadRow(line, exc.reason, f"line {line}: {exc}", order_id))
        return
    result.orders += 1
    for key, value in encoded:
        in_flight.append(await producer.send(settings.order_events_topic, value=value, key=key))
        result.events_published += 1


# --- what a person sees ----------------------------------------------------------------------------


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal (a plain line every 5 s otherwise)."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_plain = 0.0
        self._drawn = False

    def __call__(self, p: Progress) -> None:
        share = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
        rate = p.rows_read / p.seconds if p.seconds > 0 else 0.0
        text = (
            f"{p.name}: {share:6.1%}  {p.bytes_done / 1e6:,.1f} of {p.bytes_total / 1e6:,.1f} MB  "
            f"{p.rows_read:,} rows  {rate:,.0f} rows/s"
        )
        if self.tty:
            bar = "#" * int(share * 24)
            self.out.write(f"\r[{bar:<24}] {text}\033[K")
            self._drawn = True
        elif time.monotonic() - self._last_plain >= 5 or share >= 1:
            self._last_plain = time.monotonic()
            self.out.write(text + "\n")
        self.out.flush()

    def done(self) -> None:
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False


def summary(results: list[FileResult]) -> str:
    lines = []
    for r in results:
        if r.error:
            lines.append(f"{r.name}: not imported: {r.error}")
            continue
        assert r.kind is not None
        as_of = f", as of {r.as_of.isoformat()}" if r.as_of else ""
        rate = r.rows_read / r.seconds if r.seconds > 0 else 0.0
        lines.append(f"{r.name}: {r.kind.title} ({r.kind.value}), read as {r.encoding}{as_of}")
        lines.append(
            f"  rows read {r.rows_read:,}; events published {r.events_published:,} ({r.orders:,} orders); "
            f"rows rejected {sum(r.rejected.values()):,}; {r.seconds:,.1f} s, {rate:,.0f} rows/s"
        )
        if r.fallback_lines:
            lines.append(f"  {r.fallback_lines:,} lines were not UTF-8 and were read in the legacy encoding")
        if r.rejected:
            by_reason = ", ".join(f"{reason} {n:,}" for reason, n in r.rejected.most_common())
            lines.append(f"  rejected by reason: {by_reason}")
            for row in r.bad_rows:
                lines.append(f"    {row.reason}: {row.message}")
            if sum(r.rejected.values()) > len(r.bad_rows):
                lines.append("    ... the rest are in the dead-letter topic")
    if len(results) > 1:
        ok = [r for r in results if not r.error]
        lines.append(
            f"total: {len(ok)} of {len(results)} files imported; rows read {sum(r.rows_read for r in ok):,}; "
            f"events published {sum(r.events_published for r in ok):,}; "
            f"rows rejected {sum(sum(r.rejected.values()) for r in ok):,}"
        )
    return "\n".join(lines)
