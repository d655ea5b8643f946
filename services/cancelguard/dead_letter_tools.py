"""`cancelguard dead-letters list|replay`: read the dead-letter topic, and re-send chosen records to the
topic they came from once the cause is fixed (a new adapter, a corrected configuration).

Replay sends the original bytes, read back from the source topic at the dead letter's source offset
and checked against its SHA-256; when the source no longer holds it (retention), the dead letter's own
copy is sent if it is whole (not cut, nothing removed). A record that is neither is reported, not sent.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from cancelguard import dead_letters, kafka
from cancelguard.config import Settings
from cancelguard.dead_letters import Described

READ_TIMEOUT_S = 10.0


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=2 * 1024 * 1024,
    )


async def read_dead_letters(
    settings: Settings, *, progress: Callable[[int, int], None] | None = None
) -> list[Described]:
    """Every dead letter now in the topic, oldest first per partition."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        topic = settings.dead_letter_topic
        tps = [TopicPartition(topic, p) for p in await kafka.partitions_of(settings.kafka_bootstrap, topic)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        starts = {tp: await consumer.position(tp) for tp in tps}
        total = sum(ends[tp] - starts[tp] for tp in tps)
        found: list[Described] = []
        done = {tp for tp in tps if starts[tp] >= ends[tp]}
        while len(done) < len(tps):
            batch = await consumer.getmany(*[tp for tp in tps if tp not in done], timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        found.append(
                            dead_letters.describe(
                                r.partition, r.offset, r.timestamp, r.key, r.value, r.headers
                            )
                        )
                if await consumer.position(tp) >= ends[tp]:
                    done.add(tp)
            if progress is not None:
                progress(len(found), total)
        return found
    finally:
        await consumer.stop()


async def _original(
    consumer: AIOKafkaConsumer, letter: Described
) -> tuple[bytes | None, bytes | None] | None:
    """(key, value) of the record at the dead letter's source offset, if the source still holds it."""
    assert isinstance(letter.origin, dead_letters.Origin)
    tp = TopicPartition(letter.origin.topic, letter.origin.partition)
    consumer.assign([tp])
    begin = (await consumer.beginning_offsets([tp]))[tp]
    if letter.origin.offset < begin:
        return None
    consumer.seek(tp, letter.origin.offset)
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            record = await consumer.getone(tp)
    except TimeoutError:
        return None
    return (record.key, record.value) if record.offset == letter.origin.offset else None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    letter: Described
    sent_from: str  # "source" (the original), "dead-letter" (its whole copy), or "" (not sent)
    why_not: str = ""


async def replay(
    settings: Settings, letters: Iterable[Described], *, dry_run: bool = False
) -> list[ReplayResult]:
    consumer = _consumer(settings)
    producer = kafka.new_producer(settings.kafka_bootstrap, client_id="cancelguard-dead-letters")
    await consumer.start()
    await producer.start()
    results = []
    try:
        for letter in letters:
            if isinstance(letter.origin, dead_letters.FileOrigin):
                where = f"line {letter.origin.line} of {letter.origin.file}"
                why = f"it came from {where}: import the fixed file again"
                results.append(ReplayResult(letter, "", why))
                continue
            if isinstance(letter.origin, dead_letters.ApiOrigin):
                why = f"it came from Amazon's answer ({letter.origin}): the pollers read it again once fixed"
                results.append(ReplayResult(letter, "", why))
                continue
            if letter.origin is None:
                results.append(ReplayResult(letter, "", "the dead letter does not say where it came from"))
                continue
            origin = letter.origin
            original = await _original(consumer, letter)
            if original is not None and dead_letters.is_original(original[1], letter.original_sha256):
                key, value, sent_from = original[0], original[1], "source"
            elif letter.whole:
                key, value, sent_from = letter.key, letter.value, "dead-letter"
            else:
                results.append(
                    ReplayResult(
                        letter,
                        "",
                        f"{origin.topic} no longer holds offset {origin.offset} (retention) "
                        "and the dead letter keeps only a redacted or cut copy",
                    )
                )
                continue
            if not dry_run:
                await (await producer.send(origin.topic, value, key=key))
            results.append(ReplayResult(letter, sent_from))
    finally:
        await consumer.stop()
        await kafka.stop_producer(producer)
    return results


def select(
    letters: list[Described], *, ids: list[str], reason: str | None, stage: str | None
) -> list[Described]:
    """The dead letters named by PARTITION:OFFSET, or matching the reason code and stage."""
    if ids:
        wanted = set(ids)
        chosen = [d for d in letters if f"{d.partition}:{d.offset}" in wanted]
        missing = wanted - {f"{d.partition}:{d.offset}" for d in chosen}
        if missing:
            raise ValueError(
                f"no such dead letter: {', '.join(sorted(missing))} (see `cancelguard dead-letters list`)"
            )
        return chosen
    return [
        d
        for d in letters
        if (reason is None or d.reason_code == reason) and (stage is None or d.stage == stage)
    ]


def print_table(letters: list[Described]) -> None:
    print(f"{'dead letter':<12} {'stage':<9} {'reason code':<20} {'source':<44} {'size':>8}  reason")
    for d in letters:
        o = d.origin
        source = (
            f"{o.topic}/{o.partition}@{o.offset}"
            if isinstance(o, dead_letters.Origin)
            else f"{o.file}:{o.line}"
            if isinstance(o, dead_letters.FileOrigin)
            else f"{o.operation} {o.path}"
            if isinstance(o, dead_letters.ApiOrigin)
            else "?"
        )
        print(
            f"{d.partition}:{d.offset:<10} {d.stage:<9} {d.reason_code:<20} {source:<44} "
            f"{d.original_size:>8}  {d.reason[:120]}"
        )


def say_progress(done: int, total: int) -> None:
    if total and (done == total or done % 1000 == 0):
        print(f"read {done}/{total} dead letters", file=sys.stderr)
