"""`cancelguard dead-letters list|replay` against a real Kafka broker: the original comes back from the
source topic (checked against its digest), a whole dead-letter copy stands in when the source has lost
it, and a redacted copy is never passed off as the original."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from cancelguard import dead_letter_tools as tools
from cancelguard import kafka
from cancelguard.config import Settings
from cancelguard.ingestion.service import IngestionService
from cancelguard.processes import settings_env

pytestmark = pytest.mark.integration

NOT_JSON = b"{not json"
WITH_POSTAL_CODE = json.dumps(
    {
        "NotificationType": "ORDER_CHANGE",
        "Payload": {"OrderChangeNotification": {"Summary": {"DestinationPostalCode": "48110"}}},
    }
).encode()


async def _dead_letters_for(settings: Settings, count: int) -> list[tools.Described]:
    deadline = time.monotonic() + 60
    while len(found := await tools.read_dead_letters(settings)) < count:
        assert time.monotonic() < deadline, f"{len(found)} dead letters, expected {count}"
        await asyncio.sleep(0.3)
    return found


async def _source_records(settings: Settings) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(settings.order_change_topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                values += [r.value for r in records]
        return values
    finally:
        await consumer.stop()


async def test_replay_sends_the_original_back_and_says_when_it_cannot(settings: Settings) -> None:
    settings = settings.model_copy(update={"topic_partitions": 1})
    await kafka.publish(
        settings, settings.order_change_topic, [(b"k", NOT_JSON), (b"k", WITH_POSTAL_CODE)], client_id="test"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(IngestionService(settings).run(stop))
    try:
        letters = await _dead_letters_for(settings, 2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    by_value = {d.original_size: d for d in letters}
    whole, redacted = by_value[len(NOT_JSON)], by_value[len(WITH_POSTAL_CODE)]
    assert whole.whole and not redacted.whole and b"48110" not in (redacted.value or b"")

    # 1. the source still holds both: each comes back byte for byte, from the source
    results = await tools.replay(settings, letters)
    assert {r.letter.offset: r.sent_from for r in results} == {d.offset: "source" for d in letters}
    assert (await _source_records(settings))[2:] == [NOT_JSON, WITH_POSTAL_CODE]

    # 2. the source loses them (retention): the whole copy stands in, the redacted one is refused
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(settings.order_change_topic, 0): RecordsToDelete(4)})
    finally:
        await admin.close()
    results = await tools.replay(settings, letters)
    sent = {r.letter.original_size: (r.sent_from, r.why_not) for r in results}
    assert sent[len(NOT_JSON)] == ("dead-letter", "")
    assert sent[len(WITH_POSTAL_CODE)][0] == "" and "retention" in sent[len(WITH_POSTAL_CODE)][1]
    assert (await _source_records(settings)) == [NOT_JSON]  # only the whole copy went back

    # the command itself: list as JSON, and replay exits 1 when a record could not be replayed
    env = settings_env(settings)
    listed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cancelguard", "dead-letters", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["reason_code"] for r in rows} == {"NOT_JSON", "MISSING_FIELD"}
    replayed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cancelguard", "dead-letters", "replay", "--reason", "MISSING_FIELD"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replayed.returncode == 1 and "not replayed" in replayed.stdout, replayed.stdout + replayed.stderr
