"""The write side: what the seller's systems decide and do, recorded once per request_id (AIP-155) and
published as order events on the order-events topic, where the metrics service folds them in like any
other source's.

A write is computed, then recorded with its response and its event in one row; then the event is sent
with the idempotent producer and the row marked published. A retry with the same request_id gets the
stored response (and sends the event again if it is not known to be on the topic); a crash between the
record and the send is mended by the sweeper, which sends what stayed unpublished. An event sent twice
changes nothing: its id and content are the same, and the order fold is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from google.protobuf.message import Message

from cancelguard.api import errors
from cancelguard.api.errors import ApiError
from cancelguard.api.records import NewRequest, PendingFeed, Records, StoredRequest
from cancelguard.api.wiring import Call
from cancelguard.domain import bounds
from cancelguard.domain.model import OrderEvent
from cancelguard.events import codec
from cancelguard.kafka import SEND_TIMEOUT_S

log = logging.getLogger("cancelguard.api.writes")

SWEEP_EVERY_S = 5.0
SWEEP_AFTER = timedelta(seconds=10)  # a write older than this and still unpublished: its call died
RETENTION = timedelta(days=7)  # request ids and the request change log are kept this long

Compute = Callable[[], Awaitable[tuple[Message, OrderEvent | None]]]


def fingerprint(request: Message, *, without: tuple[str, ...] = ()) -> bytes:
    """What identifies a request besides its request_id (and fields that must not be kept, such as a
    buyer message's text): a retry must be the same request."""
    copy = type(request)()
    copy.CopyFrom(request)
    for name in ("request_id", *without):
        copy.ClearField(name)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


class Writes:
    def __init__(self, records: Records, producer: AIOKafkaProducer, topic: str) -> None:
        self.records = records
        self.producer = producer
        self.topic = topic
        self._task: asyncio.Task[None] | None = None

    async def once(
        self,
        call: Call,
        request: Message,
        compute: Compute,
        *,
        timeout: float | None,
        without: tuple[str, ...] = (),
        feed_for: Callable[[Message], PendingFeed] | None = None,
    ) -> bytes:
        """The serialized response of this write, computed and published once per request_id;
        `feed_for`: the cancel feed to submit to Amazon for this response, recorded with it."""
        request_id = getattr(request, "request_id")  # noqa: B009 (every write request has one)
        print_ = fingerprint(request, without=without)
        stored = await self.records.find(call.caller.name, request_id, timeout=timeout)
        if stored is not None:
            return await self._again(call, request_id, stored, print_, timeout)
        response, event = await compute()
        new = self._new(call, request_id, print_, response, event)
        if feed_for is not None:
            new = replace(new, feed=feed_for(response))
        if not await self.records.insert(new, timeout=timeout):  # a concurrent retry recorded it first
            stored = await self.records.find(call.caller.name, request_id, timeout=timeout)
            assert stored is not None
            return await self._again(call, request_id, stored, print_, timeout)
        log.info("recorded", extra={"request": request_id, "event": event.event_id if event else None})
        if new.event is not None and new.partition_key is not None:
            await self._publish(call.caller.name, request_id, new.event, new.partition_key, timeout)
        return new.response

    def _new(
        self, call: Call, request_id: str, print_: bytes, response: Message, event: OrderEvent | None
    ) -> NewRequest:
        encoded = None
        if event is not None:
            encoded = codec.encode(bounds.check_event(event, now=datetime.now(UTC)))
        return NewRequest(
            call.caller.name,
            request_id,
            call.method,
            print_,
            response.SerializeToString(),
            encoded,
            event.key.partition_key if event is not None else None,
        )

    async def _again(
        self, call: Call, request_id: str, stored: StoredRequest, print_: bytes, timeout: float | None
    ) -> bytes:
        if stored.method != call.method or stored.fingerprint != print_:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "REQUEST_ID_REUSED",
                f"request_id: {request_id!r} was used for another request ({stored.method}); "
                "use a new id for a new request",
                field="request_id",
            )
        if stored.event is not None and stored.partition_key is not None and not stored.published:
            await self._publish(call.caller.name, request_id, stored.event, stored.partition_key, timeout)
        return stored.response

    async def _publish(
        self, caller: str, request_id: str, event: bytes, partition_key: str, timeout: float | None
    ) -> None:
        limit = SEND_TIMEOUT_S if timeout is None else min(timeout, SEND_TIMEOUT_S)
        try:
            async with asyncio.timeout(limit):
                sent = await self.producer.send(self.topic, event, key=partition_key.encode())
            async with asyncio.timeout(limit):
                await sent
        except (KafkaError, TimeoutError) as exc:
            log.warning(
                "event not sent yet (the sweeper or a retry sends it)", extra={"error": str(exc)[:200]}
            )
            raise errors.EVENTS_UNAVAILABLE from None
        await self.records.mark_published(caller, request_id)

    # --- the sweeper ---

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(), name="write-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep(self) -> int:
        """Send the events of writes whose call died before sending them; drop expired records."""
        sent = 0
        now = datetime.now(UTC)
        for caller, request_id, event, key in await self.records.unpublished(now - SWEEP_AFTER, 500):
            with contextlib.suppress(ApiError):  # Kafka away: next round
                await self._publish(caller, request_id, event, key, None)
                sent += 1
        await self.records.prune(now - RETENTION)
        return sent

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                if sent := await self.sweep():
                    log.info("sent the events of interrupted writes", extra={"events": sent})
            except Exception as exc:  # Postgres away: health says so; try again next round
                log.debug("sweep failed: %s", exc)
