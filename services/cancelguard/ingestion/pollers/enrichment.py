"""ORDER_CHANGE enrichment: the reason and the canceller a notification does not carry.

An ORDER_CHANGE notification says that the buyer asked to cancel, or that the order is Canceled, but
never why, nor who cancelled (domain.md §2). For those, one Orders API call tells: v2026 `getOrder`
with `includedData=CANCELLATION` (who cancelled, both reasons) or v0 `getOrderItems` (the buyer's
reason; v0 never says who cancelled), through the account's client, so the same rate limiter and usage
plan govern it as the poller's calls. The answer is published as its own event, on the same route as
everything else; the notification's own event is published by the ingestion service regardless.

Nothing here can hold back the raw topic. `NotificationReader` reads it with a consumer group of its
own, writes one `enrichment_requests` row per order that needs a call, and commits its offsets once
the rows exist: a slow or failing Amazon only makes rows wait. `Enricher` takes the due rows of one
account, calls, publishes, and deletes a row once Kafka acknowledged its event. A failed call (Amazon
unavailable, throttled past the retries, the order not in the API's index yet) or an answer that does
not show the change yet (the index lags behind notifications) is retried later with backoff, counted,
and given up after `MAX_ATTEMPTS`, by which time the pollers have read the order anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from cancelguard import dead_letters
from cancelguard.accounts import Accounts, OrdersApi, SellerAccount
from cancelguard.amazon import (
    LwaAuthError,
    MalformedResponse,
    SpApiClient,
    SpApiError,
    SpApiUnavailable,
)
from cancelguard.amazon.operations import GET_ORDER_2026, GET_ORDER_ITEMS
from cancelguard.db import ACQUIRE_TIMEOUT_S
from cancelguard.domain.model import InvalidInput, OrderEvent, OrderKey, OrderSnapshot, OrderStatus
from cancelguard.ingestion.adapters import order_change, orders_v0, orders_v2026
from cancelguard.ingestion.pollers.orders import malformed
from cancelguard.ingestion.routing import Outgoing, Route, Sender

log = logging.getLogger("cancelguard.pollers.enrichment")

GROUP_ID = "cancelguard-enrichment"
SOURCE = "order-change-enrichment"
MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)

ENRICHMENTS = Counter(
    "cancelguard_pollers_enrichments_total",
    "ORDER_CHANGE enrichment: notifications queued, calls published, retried, given up",
    ["outcome"],
)


@dataclass(frozen=True, slots=True)
class EnrichmentRequest:
    key: OrderKey
    purchased_at: datetime
    changed_at: datetime
    canceled: bool  # who cancelled, and why?
    requested: bool  # why did the buyer ask?
    attempts: int = 0


def needs_enrichment(event: OrderEvent) -> EnrichmentRequest | None:
    """What a notification's event leaves unsaid, as a request for one Orders API call (None: nothing)."""
    body = event.body
    if not isinstance(body, OrderSnapshot) or body.purchased_at is None:
        return None
    canceled = body.status is OrderStatus.CANCELED
    requested = any(i.buyer_requested_cancel for i in body.items)
    if not (canceled or requested):
        return None
    return EnrichmentRequest(event.key, body.purchased_at, event.occurred_at, canceled, requested)


def answered(request: EnrichmentRequest, snapshot: OrderSnapshot, api: OrdersApi) -> bool:
    """Whether an answer shows what the notification announced, or the index has not caught up yet."""
    if request.requested and not any(i.buyer_requested_cancel for i in snapshot.items):
        return False
    if request.canceled and api is OrdersApi.V2026:  # v0 cannot say who cancelled: nothing to wait for
        return snapshot.status is OrderStatus.CANCELED and any(i.cancelled_by for i in snapshot.items)
    return True


def retry_delay(attempts: int) -> timedelta:
    """After the `attempts`-th failure: 30 s doubling to an hour."""
    return min(LAST_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))


class EnrichmentQueue:
    """The `enrichment_requests` rows: one per order, the latest notification's facts OR-ed in."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(self, requests: Sequence[EnrichmentRequest], now: datetime) -> None:
        if not requests:
            return
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(
                "INSERT INTO enrichment_requests AS r (seller_account, marketplace_id, amazon_order_id,"
                " purchased_at, changed_at, canceled, requested, due_at)"
                " SELECT *, $8::timestamptz FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::timestamptz[], $5::timestamptz[], $6::boolean[], $7::boolean[])"
                " ON CONFLICT (seller_account, marketplace_id, amazon_order_id) DO UPDATE SET"
                " purchased_at = LEAST(r.purchased_at, EXCLUDED.purchased_at),"
                " changed_at = GREATEST(r.changed_at, EXCLUDED.changed_at),"
                " canceled = r.canceled OR EXCLUDED.canceled, requested = r.requested OR EXCLUDED.requested,"
                " due_at = LEAST(r.due_at, EXCLUDED.due_at)",
                [r.key.seller_account for r in requests],
                [r.key.marketplace_id for r in requests],
                [r.key.amazon_order_id for r in requests],
                [r.purchased_at for r in requests],
                [r.changed_at for r in requests],
                [r.canceled for r in requests],
                [r.requested for r in requests],
                now,
            )

    async def due(self, seller_account: str, now: datetime, limit: int) -> list[EnrichmentRequest]:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            rows = await conn.fetch(
                "SELECT * FROM enrichment_requests WHERE seller_account = $1 AND due_at <= $2"
                " ORDER BY due_at, amazon_order_id LIMIT $3",
                seller_account,
                now,
                limit,
            )
        return [
            EnrichmentRequest(
                OrderKey(r["seller_account"], r["marketplace_id"], r["amazon_order_id"]),
                r["purchased_at"],
                r["changed_at"],
                r["canceled"],
                r["requested"],
                r["attempts"],
            )
            for r in rows
        ]

    async def done(self, request: EnrichmentRequest) -> None:
        """Delete the row, unless a newer notification arrived meanwhile (then it is asked again)."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(
                "DELETE FROM enrichment_requests WHERE seller_account = $1 AND marketplace_id = $2"
                " AND amazon_order_id = $3 AND changed_at = $4",
                *_key(request),
                request.changed_at,
            )

    async def retry(self, request: EnrichmentRequest, due_at: datetime, error: str) -> None:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(
                "UPDATE enrichment_requests SET attempts = attempts + 1, due_at = $4, last_error = $5"
                " WHERE seller_account = $1 AND marketplace_id = $2 AND amazon_order_id = $3",
                *_key(request),
                due_at,
                error[:500],
            )

    async def drop(self, request: EnrichmentRequest) -> None:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(
                "DELETE FROM enrichment_requests WHERE seller_account = $1 AND marketplace_id = $2"
                " AND amazon_order_id = $3",
                *_key(request),
            )

    async def pending(self) -> int:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            return int(await conn.fetchval("SELECT count(*) FROM enrichment_requests"))


def _key(request: EnrichmentRequest) -> tuple[str, str, str]:
    k = request.key
    return k.seller_account, k.marketplace_id, k.amazon_order_id


@dataclass
class ReadResult:
    records: int = 0
    queued: int = 0
    unreadable: int = 0  # the ingestion service dead-letters these: nothing to ask Amazon
    unconfigured: int = 0  # a seller not in the accounts file: no credentials to ask with


class NotificationReader:
    """The raw ORDER_CHANGE topic -> enrichment rows, with a consumer group of its own."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        queue: EnrichmentQueue,
        accounts: Accounts,
        *,
        now: Callable[[], datetime],
        on_queued: Callable[[str], None] = lambda seller: None,
    ) -> None:
        self.consumer = consumer
        self.queue = queue
        self.accounts = accounts
        self.now = now
        self.on_queued = on_queued
        self.totals = ReadResult()

    async def read_once(self, timeout_ms: int = 200) -> ReadResult:
        """One batch: rows written, then offsets committed (asyncpg and Kafka errors go to the caller,
        which retries: nothing is committed before its rows exist)."""
        batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        result = ReadResult()
        if not batch:
            return result
        now = self.now()
        requests: dict[OrderKey, EnrichmentRequest] = {}
        for records in batch.values():
            for record in records:
                result.records += 1
                request = self._request(record, now, result)
                if request is not None:
                    requests[request.key] = _merged(requests.get(request.key), request)
        try:
            await self.queue.add(list(requests.values()), now)
        except BaseException:  # Postgres away: read the batch again when it is back
            for tp, records in batch.items():
                self.consumer.seek(tp, records[0].offset)
            raise
        result.queued = len(requests)
        ENRICHMENTS.labels("queued").inc(len(requests))
        offsets: dict[TopicPartition, int] = {tp: rs[-1].offset + 1 for tp, rs in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # re-read after a rebalance: the rows merge, nothing is asked twice
            log.warning("enrichment offsets not committed; records re-read", extra={"error": str(exc)})
        for seller in {k.seller_account for k in requests}:
            self.on_queued(seller)
        for name in ("records", "queued", "unreadable", "unconfigured"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(result, name))
        return result

    def _request(self, record: ConsumerRecord, now: datetime, result: ReadResult) -> EnrichmentRequest | None:
        if record.value is None:
            result.unreadable += 1
            return None
        try:
            event = order_change.parse_order_change(record.value, observed_at=now)
        except (InvalidInput, RecursionError):
            result.unreadable += 1
            return None
        request = needs_enrichment(event)
        key = event.key
        if (
            request is not None
            and self.accounts.for_marketplace(key.seller_account, key.marketplace_id) is None
        ):
            result.unconfigured += 1
            return None
        return request


def _merged(a: EnrichmentRequest | None, b: EnrichmentRequest) -> EnrichmentRequest:
    if a is None:
        return b
    return EnrichmentRequest(
        a.key,
        min(a.purchased_at, b.purchased_at),
        max(a.changed_at, b.changed_at),
        a.canceled or b.canceled,
        a.requested or b.requested,
    )


@dataclass
class EnrichResult:
    calls: int = 0
    published: int = 0  # answers that showed the change: their rows are done
    retried: int = 0
    given_up: int = 0


class Enricher:
    """One account's due enrichment rows -> one Orders API call each -> an event each."""

    def __init__(
        self,
        account: SellerAccount,
        client: SpApiClient,
        queue: EnrichmentQueue,
        route: Route,
        sender: Sender,
        *,
        now: Callable[[], datetime],
        batch: int = 50,
    ) -> None:
        self.account = account
        self.client = client
        self.queue = queue
        self.route = route
        self.sender = sender
        self.now = now
        self.batch = batch
        self._key = account.seller_id.encode()

    async def drain_once(self, stop: asyncio.Event) -> EnrichResult:
        """The rows due now, one call each. TokenEndpointUnavailable goes to the caller (health), with
        the rows left as they are."""
        result = EnrichResult()
        for request in await self.queue.due(self.account.seller_id, self.now(), self.batch):
            if stop.is_set():
                break
            result.calls += 1
            try:
                outgoing, complete = await self._call(request)
            except (SpApiUnavailable, SpApiError, LwaAuthError) as exc:
                await self._retry(request, f"{type(exc).__name__}: {exc}", result)
                continue
            if not await self.sender.send_all(outgoing, stop):
                break
            if complete:
                await self.queue.done(request)
                result.published += 1
                ENRICHMENTS.labels("published").inc()
            else:
                await self._retry(request, "the Orders API does not show the notified change yet", result)
        return result

    async def _retry(self, request: EnrichmentRequest, error: str, result: EnrichResult) -> None:
        attempts = request.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self.queue.drop(request)
            result.given_up += 1
            ENRICHMENTS.labels("given_up").inc()
            log.warning(
                "gave up enriching an order notification; the pollers read the order",
                extra={"seller_account": request.key.seller_account, "order": request.key.amazon_order_id,
                       "attempts": attempts, "error": error},
            )  # fmt: skip
            return
        await self.queue.retry(request, self.now() + retry_delay(attempts), error)
        result.retried += 1
        ENRICHMENTS.labels("retried").inc()

    async def _call(self, request: EnrichmentRequest) -> tuple[list[Outgoing], bool]:
        """(what to send, whether the answer shows the notified change)."""
        order_id = request.key.amazon_order_id
        api = self.account.orders_api
        parsed: list[OrderEvent] = []
        answer: Any
        try:
            if api is OrdersApi.V2026:
                answer = await self.client.orders_2026.get_order(
                    order_id, included_data=("CANCELLATION", "FULFILLMENT")
                )
            else:
                answer = await self.client.orders_v0.get_order_items(order_id)
        except MalformedResponse as exc:
            problem = malformed(exc)
            operation = GET_ORDER_2026.key if api is OrdersApi.V2026 else GET_ORDER_ITEMS.key
            letter, _ = self.route.refused(
                problem,
                value=None,
                key=self._key,
                origin=dead_letters.ApiOrigin(operation, "", exc.path),
                personal_fields=(),
            )
            return [letter], True  # nothing to gain from asking again for the same broken answer
        now = self.now()

        def build() -> list[OrderEvent]:
            if api is OrdersApi.V2026:
                event = orders_v2026.parse_order_v2026(
                    answer,
                    seller_account=request.key.seller_account,
                    observed_at=now,
                    marketplace_id=request.key.marketplace_id,
                )
            else:
                event = orders_v0.parse_order_items_v0(
                    answer, key=request.key, purchased_at=request.purchased_at, observed_at=now
                )
            parsed.append(event)
            return [event]

        v2026 = api is OrdersApi.V2026
        document = answer if v2026 else {"AmazonOrderId": order_id, "OrderItems": answer}
        outgoing = self.route.document(
            SOURCE,
            build,
            now=now,
            original=lambda: json.dumps(document).encode(),
            origin=dead_letters.ApiOrigin(
                (GET_ORDER_2026 if v2026 else GET_ORDER_ITEMS).key, "", "$.order" if v2026 else "$.payload"
            ),
            key=self._key,
            personal_fields=orders_v2026.PERSONAL_FIELDS if v2026 else orders_v0.PERSONAL_FIELDS,
        )
        dead_lettered = not outgoing or outgoing[0].topic == self.route.dead_letter_topic
        snapshot = parsed[0].body if parsed else None
        complete = dead_lettered or (isinstance(snapshot, OrderSnapshot) and answered(request, snapshot, api))
        return outgoing, complete
