"""The gRPC servicers: validate, read (through the cache) or write, apply the domain rules, convert.

Handlers stay thin: the rules live in cancelguard.domain, the SQL in cancelguard.metrics.store (reads)
and api.records (the API's own tables); authentication, authorization, errors and telemetry are the
wiring's (`api.wiring`), for every method alike.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf.message import Message

from cancelguard.amazon.feed_xml import (
    ORDER_ACKNOWLEDGEMENT_FEED,
    CancelReason,
    build_cancel_feed,
    cancels_by_order,
    check_order_acknowledgement_feed,
)
from cancelguard.api import convert, errors, validation
from cancelguard.api.alerts import AlertWatchers
from cancelguard.api.cache import AccountKey, CachedOrder, PageKey
from cancelguard.api.errors import ApiError, invalid, not_found
from cancelguard.api.feeds import FeedSubmitter
from cancelguard.api.reads import Cursor, Reads
from cancelguard.api.records import NewRequest, PendingFeed, Records
from cancelguard.api.watch import Watchers
from cancelguard.api.wiring import Held, current_call
from cancelguard.api.writes import Writes, fingerprint
from cancelguard.domain import bounds, lifecycle
from cancelguard.domain.actions import Intent, recommend
from cancelguard.domain.decisions import CancelRefused, decide_cancellation
from cancelguard.domain.model import (
    InvalidInput,
    ItemObservation,
    Order,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    SellerCancellationSubmitted,
    ShippingLabelPurchased,
    Source,
)
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.projection import roll_off, what_if
from cancelguard.domain.windows import (
    BUCKET,
    DAY,
    CancellationRate,
    RateStatus,
    Window,
    WindowKind,
    amazon_window,
    bucket_start,
    cancellation_rate,
    day_start,
    live_window,
    window_for,
    window_moves_at,
)
from cancelguard.ingestion.adapters.buyer_messages import MAX_MESSAGE_TEXT, parse_buyer_message
from cancelguard.metrics.store import AmazonFigure, OrderRecord, Store
from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

log = logging.getLogger("cancelguard.api")

CANCEL_REASONS = tuple(r.value for r in CancelReason)
LIST_SCAN = 2000  # orders one ListOrders call reads at most: a filtered page may come back short
_SEVERITY = {RateStatus.AT_RISK: 0, RateStatus.WARNING: 1, RateStatus.GOOD: 2}


def deadline(context: grpc.aio.ServicerContext) -> float | None:
    """What is left of the call's deadline, for the store: the statement is cancelled when it runs out."""
    left = context.time_remaining()
    return None if left is None else max(0.001, left)


class OrderService(orders_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        reads: Reads,
        records: Records,
        writes: Writes,
        watchers: Watchers,
        page_tokens: validation.PageTokens,
        feeds: FeedSubmitter | None = None,
    ) -> None:
        self.reads = reads
        self.records = records
        self.writes = writes
        self.watchers = watchers
        self.page_tokens = page_tokens
        self.feeds = feeds  # None: no accounts file, so no feeds submitted for callers
        # the answers it may hold, which the wiring gives before it calls the method (`api.wiring`)
        cache = reads.cache
        self.held = {
            "GetOrder": Held(_order_place, lambda place: _message(cache.order(*place))),
            "ListCancellationRequests": Held(_page_place, lambda place: cache.page(*place)),
        }

    async def _key(self, request: Any) -> tuple[CancellationPolicy, OrderKey]:
        policy = validation.policy(await self.reads.policies(), request.marketplace_id)
        return policy, OrderKey(
            validation.identifier(request.seller_account, "seller_account"),
            request.marketplace_id,
            validation.identifier(request.amazon_order_id, "amazon_order_id"),
        )

    async def _record(self, key: OrderKey, context: grpc.aio.ServicerContext) -> OrderRecord:
        record = await self.reads.record(key, timeout=deadline(context))
        if record is None:
            raise _order_not_found(key)
        return record

    async def GetOrder(self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext) -> bytes:
        # not held (`held`, asked first by the wiring): read, and held for the next call
        _, key = await self._key(request)
        found = await self.reads.entries(
            key.seller_account, key.marketplace_id, [key.amazon_order_id], timeout=deadline(context)
        )
        entry = found.get(key.amazon_order_id)
        if entry is None:
            raise _order_not_found(key)
        return entry.message

    async def ListCancellationRequests(
        self, request: orders_pb2.ListCancellationRequestsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        # not held (`held`, asked first by the wiring): cut from the list, and held with it
        validation.policy(await self.reads.policies(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        size = validation.page_size(request.page_size)
        mkt = request.marketplace_id
        query = {"rpc": "ListCancellationRequests", "seller": seller, "marketplace": mkt}
        cursor = None
        if request.page_token:
            position = self.page_tokens.decode(request.page_token, query)
            cursor = Cursor("A", datetime.fromisoformat(position["at"]), mkt, position["id"])
        timeout = deadline(context)
        held = self.reads.cache.open_requests((seller, mkt))  # what `listed` cuts the page from, if held
        listed = []
        async for _, _, row in self.reads.listed(
            seller, [mkt], cursor, phases="A", chunk=size + 1, timeout=timeout
        ):
            listed.append(row)
            if len(listed) > size:
                break
        page = listed[:size]
        order_ids = [r.amazon_order_id for r in page]
        entries = await self.reads.entries(seller, mkt, order_ids, timeout=timeout)
        out = b"".join(
            convert.embedded(1, entries[r.amazon_order_id].message)
            for r in page
            if r.amazon_order_id in entries
        )
        if len(listed) > size:
            last = page[-1]
            token = self.page_tokens.encode(query, {"at": last.at.isoformat(), "id": last.amazon_order_id})
            out += convert.embedded(2, token.encode())
        if held is not None:
            account, key = _page_place(request)
            self.reads.cache.put_page(account, held, key, out, order_ids)
        return out

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        seller = validation.identifier(request.seller_account, "seller_account")
        size = validation.page_size(request.page_size)
        now = datetime.now(UTC)
        if request.marketplace_id:
            validation.policy(await self.reads.policies(), request.marketplace_id)
        actions = []
        for n, code in enumerate(request.actions):
            if code not in orders_pb2.RecommendedAction.Code.values() or code == 0:
                raise invalid(f"actions[{n}]", f"unknown action {code}", reason="UNKNOWN_VALUE")
            actions.append(code)
        wanted = frozenset(actions)
        review = request.needs_review if request.HasField("needs_review") else None
        after = validation.timestamp(request, "purchased_after", now)
        before = validation.timestamp(request, "purchased_before", now)
        query = {
            "rpc": "ListOrders",
            "seller": seller,
            "marketplace": request.marketplace_id,
            "actions": ",".join(map(str, sorted(wanted))),
            "review": str(review),
            "after": after.isoformat() if after else "",
            "before": before.isoformat() if before else "",
        }
        cursor = None
        if request.page_token:
            p = self.page_tokens.decode(request.page_token, query)
            cursor = Cursor(p["ph"], datetime.fromisoformat(p["at"]), p["m"], p["id"])
        timeout = deadline(context)
        marketplaces = (
            [request.marketplace_id] if request.marketplace_id else await self._marketplaces(seller, timeout)
        )
        chosen: list[bytes] = []
        scanned = 0
        last: tuple[str, str, Any] | None = None
        more = True
        stream = self.reads.listed(seller, marketplaces, cursor, purchased=(after, before), timeout=timeout)
        while more and len(chosen) < size and scanned < LIST_SCAN:
            want = min(100, LIST_SCAN - scanned)
            batch: list[tuple[str, str, Any]] = []
            while len(batch) < want and (item := await anext(stream, None)) is not None:
                batch.append(item)
            scanned += len(batch)
            more = len(batch) == want  # a short batch: the list ended
            looked = await self._pick(seller, batch, wanted, review, chosen, size, timeout)
            if looked:
                last = batch[looked - 1]
            if looked < len(batch):  # the page filled up inside the batch
                more = True
                break
        out = b"".join(convert.embedded(1, m) for m in chosen)
        if more and last is not None:
            phase, mkt, row = last
            token = self.page_tokens.encode(
                query, {"ph": phase, "at": row.at.isoformat(), "m": mkt, "id": row.amazon_order_id}
            )
            out += convert.embedded(2, token.encode())
        return out

    async def _pick(
        self,
        seller: str,
        batch: list[tuple[str, str, Any]],
        wanted: frozenset[int],
        review: bool | None,
        chosen: list[bytes],
        size: int,
        timeout: float | None,
    ) -> int:
        """Add the batch's orders that pass the filters to `chosen` (up to `size`); returns how many of
        the batch were looked at."""
        by_mkt: dict[str, list[str]] = {}
        for _, mkt, row in batch:
            by_mkt.setdefault(mkt, []).append(row.amazon_order_id)
        entries: dict[tuple[str, str], CachedOrder] = {}
        for mkt, ids in by_mkt.items():
            for order_id, entry in (await self.reads.entries(seller, mkt, ids, timeout=timeout)).items():
                entries[(mkt, order_id)] = entry
        looked = 0
        for item in batch:
            if len(chosen) >= size:
                break
            looked += 1
            found = entries.get((item[1], item[2].amazon_order_id))
            if found is None:
                continue
            entry = found
            if wanted and entry.action_code not in wanted:
                continue
            if review is not None and entry.needs_review is not review:
                continue
            chosen.append(entry.message)
        return looked

    async def _marketplaces(self, seller: str, timeout: float | None) -> list[str]:
        return [m for s, m in await self.reads.api.accounts([seller], timeout=timeout) if s == seller]

    async def EvaluateCancellation(
        self, request: orders_pb2.EvaluateCancellationRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.CancellationEvaluation:
        intent = _INTENTS.get(request.intent)
        if intent is None:
            raise invalid("intent", f"unknown value {request.intent}")
        policy, key = await self._key(request)
        order = (await self._record(key, context)).order
        now = datetime.now(UTC)
        window = live_window(now, hours=policy.live_window_hours)
        current = await self.reads.rate(
            key.seller_account, key.marketplace_id, window, timeout=deadline(context)
        )
        action = recommend(order, policy, intent=intent, current_rate=current, now=now)
        response = orders_pb2.CancellationEvaluation(action=convert.action_message(action))
        if action.projected_rate is not None and action.current_rate is not None:
            response.current_rate.CopyFrom(_rate_message(key, action.current_rate, policy, now))
            response.projected_rate.CopyFrom(_rate_message(key, action.projected_rate, policy, now))
        return response

    # --- the write side ---

    async def DecideCancellation(
        self, request: orders_pb2.DecideCancellationRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        policy, key = await self._key(request)
        reason = validation.one_of(request.cancel_reason, "cancel_reason", CANCEL_REASONS)
        items = validation.item_ids(request.order_item_ids)
        validation.request_id(request.request_id)
        timeout = deadline(context)
        if request.submit_feed and (
            self.feeds is None or not self.feeds.configured(key.seller_account, key.marketplace_id)
        ):
            raise errors.failed_precondition(
                "FEEDS_NOT_CONFIGURED",
                f"cancelguard cannot submit feeds for {key.seller_account} in {key.marketplace_id}: add the"
                " account to the API's accounts file (CANCELGUARD_ACCOUNTS_FILE), or submit feed_document"
                " yourself",
            )

        async def decide() -> tuple[Message, OrderEvent]:
            order = (await self._record(key, context)).order
            now = datetime.now(UTC)
            window = live_window(now, hours=policy.live_window_hours)
            current = await self.reads.rate(key.seller_account, key.marketplace_id, window, timeout=timeout)
            try:
                decision = decide_cancellation(
                    order, policy, cancel_reason=reason, order_item_ids=items, current_rate=current, at=now
                )
            except CancelRefused as refused:
                raise _refusal(key, refused, policy, now) from None
            feed = build_cancel_feed(
                key.seller_account,
                cancels_by_order(
                    (key.amazon_order_id, i, CancelReason(reason)) for i in decision.order_item_ids
                ),
            )
            problems = check_order_acknowledgement_feed(feed)
            if problems:  # our own document: a bug, never the caller's fault
                raise RuntimeError(f"the cancel feed breaks the schema: {problems}")
            event = _seller_event(
                key,
                now,
                "decision",
                request.request_id,
                SellerCancellationSubmitted(reason, decision.order_item_ids),
            )
            response = orders_pb2.DecideCancellationResponse(
                cancel_reason=reason,
                order_item_ids=decision.order_item_ids,
                counts_against_cr=decision.counts_against_cr,
                explanation=decision.explanation,
                current_rate=_rate_message(key, decision.current_rate, policy, now),
                projected_rate=_rate_message(key, decision.projected_rate, policy, now),
                feed_type=ORDER_ACKNOWLEDGEMENT_FEED,
                feed_document=feed.decode(),
                decided_at=convert.timestamp(now),
                event_id=event.event_id,
            )
            if request.submit_feed:
                response.feed_submission.CopyFrom(
                    orders_pb2.FeedSubmission(
                        seller_account=key.seller_account,
                        marketplace_id=key.marketplace_id,
                        amazon_order_id=key.amazon_order_id,
                        event_id=event.event_id,
                        state=orders_pb2.FeedSubmission.STATE_PENDING,
                        created_at=convert.timestamp(now),
                        updated_at=convert.timestamp(now),
                    )
                )
            return response, event

        def feed_for(response: Message) -> PendingFeed:
            assert isinstance(response, orders_pb2.DecideCancellationResponse)
            return PendingFeed(
                response.event_id,
                key.seller_account,
                key.marketplace_id,
                key.amazon_order_id,
                response.feed_document.encode(),
            )

        return await self.writes.once(
            current_call(),
            request,
            decide,
            timeout=timeout,
            feed_for=feed_for if request.submit_feed else None,
        )

    async def GetFeedSubmission(
        self, request: orders_pb2.GetFeedSubmissionRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.FeedSubmission:
        seller = validation.identifier(request.seller_account, "seller_account")
        event_id = validation.text(request.event_id, "event_id", max_len=bounds.MAX_EVENT_ID)
        if not event_id:
            raise invalid("event_id", "give the event_id DecideCancellation answered", reason="MISSING_FIELD")
        row = await self.records.feed(seller, event_id, timeout=deadline(context))
        if row is None:
            raise not_found(f"feed submission of event {event_id}", {"seller_account": seller})
        return convert.feed_submission_message(row)

    async def RecordLabelPurchased(
        self, request: orders_pb2.RecordLabelPurchasedRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        _, key = await self._key(request)
        validation.request_id(request.request_id)
        now = datetime.now(UTC)
        at = validation.timestamp(request, "purchased_at", now) or now
        timeout = deadline(context)

        async def record() -> tuple[Message, OrderEvent]:
            current = await self._record(key, context)
            event = _seller_event(key, at, "label", request.request_id, ShippingLabelPurchased())
            order = self.reads.entry(_applied(current, event), await self.reads.policies())
            response = orders_pb2.RecordLabelPurchasedResponse(event_id=event.event_id)
            response.order.ParseFromString(order.message)
            return response, event

        return await self.writes.once(current_call(), request, record, timeout=timeout)

    async def RecordShipment(
        self, request: orders_pb2.RecordShipmentRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        _, key = await self._key(request)
        validation.request_id(request.request_id)
        now = datetime.now(UTC)
        at = validation.timestamp(request, "shipped_at", now) or now
        asked = {}
        for n, item in enumerate(request.items):
            item_id = validation.identifier(item.order_item_id, f"items[{n}].order_item_id")
            if not 0 <= item.quantity_shipped <= 1_000_000:
                raise invalid(f"items[{n}].quantity_shipped", "must be 0 to 1,000,000", reason="OUT_OF_RANGE")
            asked[item_id] = item.quantity_shipped
        timeout = deadline(context)

        async def record() -> tuple[Message, OrderEvent]:
            current = await self._record(key, context)
            order = current.order
            if order.purchased_at is None or not order.items:
                raise errors.failed_precondition(
                    "ORDER_NOT_SEEN",
                    "cancelguard has not seen this order's purchase and items from Amazon yet",
                )
            unknown = [i for i in asked if i not in order.items]
            if unknown:
                raise invalid(
                    "items", f"not items of this order: {', '.join(unknown[:5])}", reason="UNKNOWN_ITEM"
                )
            chosen = asked or dict.fromkeys(order.items, 0)
            observed = tuple(
                ItemObservation(i, quantity_shipped=q or order.items[i].quantity_ordered or 1)
                for i, q in sorted(chosen.items())
            )
            event = _seller_event(
                key,
                at,
                "shipment",
                request.request_id,
                OrderSnapshot(purchased_at=order.purchased_at, items=observed),
            )
            response = orders_pb2.RecordShipmentResponse(event_id=event.event_id)
            shipped = self.reads.entry(_applied(current, event), await self.reads.policies())
            response.order.ParseFromString(shipped.message)
            return response, event

        return await self.writes.once(current_call(), request, record, timeout=timeout)

    async def SubmitBuyerMessage(
        self, request: orders_pb2.SubmitBuyerMessageRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        policy, key = await self._key(request)
        message_id = validation.identifier(request.message_id, "message_id", max_len=128)
        validation.text(request.text, "text", max_len=MAX_MESSAGE_TEXT)
        if not request.text.strip():
            raise invalid("text", "is empty", reason="MISSING_FIELD")
        validation.request_id(request.request_id)
        now = datetime.now(UTC)
        sent_at = validation.timestamp(request, "sent_at", now) or now
        timeout = deadline(context)

        async def classify() -> tuple[Message, OrderEvent | None]:
            # the ingestion adapter's rule, so that the helpdesk's two ways in (topic, API) agree
            event, verdict = parse_buyer_message(
                {
                    "message_id": message_id,
                    "seller_account": key.seller_account,
                    "marketplace_id": key.marketplace_id,
                    "amazon_order_id": key.amazon_order_id,
                    "sent_at": sent_at.isoformat(),
                    "text": request.text,
                },
                observed_at=now,
            )
            current = await self.reads.record(key, timeout=timeout)
            order = current.order if current is not None else Order(key)
            if event is not None:
                order = lifecycle.apply(order, event)
            response = orders_pb2.SubmitBuyerMessageResponse(
                is_cancel_request=verdict.is_cancel_request,
                language=verdict.language,
                # not the classifier's own explanation: it quotes the text, and responses are stored
                explanation=(
                    "asks to cancel or stop the order: an informal request (it counts if you cancel on it)"
                    if verdict.is_cancel_request
                    else "does not ask to cancel this order"
                ),
                recommended_action=convert.action_message(recommend(order, policy)),
                event_id=event.event_id if event is not None else "",
            )
            return response, event

        return await self.writes.once(current_call(), request, classify, timeout=timeout, without=("text",))

    async def MarkRequestAnswered(
        self, request: orders_pb2.MarkRequestAnsweredRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        _, key = await self._key(request)
        request_id = validation.request_id(request.request_id)
        now = datetime.now(UTC)
        answered_at = validation.timestamp(request, "answered_at", now) or now
        call = current_call()
        timeout = deadline(context)
        print_ = fingerprint(request)
        stored = await self.records.find(call.caller.name, request_id, timeout=timeout)
        if stored is None:
            order = (await self._record(key, context)).order
            answered = convert.cancellation_request(
                order, answered_at=answered_at, answered_by=call.caller.name
            )
            if answered is None:
                raise errors.failed_precondition(
                    "NO_REQUEST", f"order {key.amazon_order_id} has no cancellation request to answer"
                )
            response = orders_pb2.MarkRequestAnsweredResponse(cancellation_request=answered)
            new = NewRequest(call.caller.name, request_id, call.method, print_, response.SerializeToString())
            if await self.records.answer(
                new, key.seller_account, key.marketplace_id, key.amazon_order_id, answered_at, timeout=timeout
            ):
                return new.response
        return await self.writes.once(call, request, _never, timeout=timeout)  # a retry: the stored answer

    async def WatchCancellationRequests(
        self, request: orders_pb2.WatchCancellationRequestsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orders_pb2.WatchCancellationRequestsResponse]:
        sellers, keepalive, query = await _watch_of(request, "WatchCancellationRequests", self.reads)
        async for message in self.watchers.watch(
            sellers, request.marketplace_id, query, request.resume_token, keepalive
        ):
            yield message


async def _watch_of(request: Any, rpc: str, reads: Reads) -> tuple[list[str], int, dict[str, str]]:
    """A watch's seller accounts (the one asked for, or all of the caller's), keepalive and resume query."""
    caller = current_call().caller
    sellers = [request.seller_account] if request.seller_account else sorted(caller.seller_accounts)
    if request.marketplace_id:
        validation.policy(await reads.policies(), request.marketplace_id)
    keepalive = validation.in_range(request.keepalive_seconds, "keepalive_seconds", 1, 300, 30)
    query = {
        "rpc": rpc,
        "caller": caller.name,
        "seller": request.seller_account,
        "marketplace": request.marketplace_id,
    }
    return sellers, keepalive, query


async def _never() -> tuple[Message, OrderEvent | None]:
    raise AssertionError("a recorded request is answered from its record")


_INTENTS = {
    orders_pb2.EvaluateCancellationRequest.INTENT_UNSPECIFIED: Intent.NONE,
    orders_pb2.EvaluateCancellationRequest.INTENT_NO_INVENTORY: Intent.CANCEL_NO_INVENTORY,
    orders_pb2.EvaluateCancellationRequest.INTENT_BUYER_CANCELED: Intent.CANCEL_BUYER_CANCELED,
}


# Where the read cache holds the answer to a read (`wiring.Held.place`), from the request alone: the account,
# and the answer's key in the account's table.


def _account(request: Any) -> AccountKey:
    # interned: the wiring keeps many places (`_Method.seen`), most of them of a few accounts
    return sys.intern(request.seller_account), sys.intern(request.marketplace_id)


def _order_place(request: orders_pb2.GetOrderRequest) -> tuple[AccountKey, str]:
    return _account(request), request.amazon_order_id


def _page_place(request: orders_pb2.ListCancellationRequestsRequest) -> tuple[AccountKey, PageKey]:
    # a page token is held only once it was found good for the list the page is cut from
    return _account(request), (request.page_token, request.page_size)


def _rate_place(request: metrics_pb2.GetCancellationRateRequest) -> tuple[AccountKey, tuple[Any, ...]] | None:
    if request.HasField("as_of"):
        return None  # as of another time than now: never held
    return _account(request), ("answer", request.window_kind, request.window_days)


def _message(order: CachedOrder | None) -> bytes | None:
    return None if order is None else order.message


def _order_not_found(key: OrderKey) -> ApiError:
    return not_found(
        f"order {key.amazon_order_id}",
        {"seller_account": key.seller_account, "marketplace_id": key.marketplace_id},
    )


def seller_event_id(what: str, caller: str, request_id: str) -> str:
    """The id of the order event a write publishes. It follows from the request, so an event sent again
    is the same event; and it names the caller, because a request_id is unique per caller only (two
    services may both count their requests from 1). The caller's name comes with its length: names may
    hold a colon, and ("a:b", "c") must not read as ("a", "b:c")."""
    return f"api-{what}:{len(caller)}:{caller}:{request_id}"


def _seller_event(key: OrderKey, at: datetime, what: str, request_id: str, body: Any) -> OrderEvent:
    event_id = seller_event_id(what, current_call().caller.name, request_id)
    return OrderEvent(event_id, key, Source.SELLER, at, at, body)


def _applied(record: OrderRecord, event: OrderEvent) -> OrderRecord:
    return OrderRecord(lifecycle.apply(record.order, event), record.answered_at, record.answered_by)


def _rate_message(
    key: OrderKey, rate: Any, policy: CancellationPolicy, now: datetime
) -> metrics_pb2.CancellationRate:
    return convert.rate_message(key.seller_account, key.marketplace_id, rate, policy, now)


def _rate_with_amazon(
    seller: str,
    marketplace_id: str,
    rate: CancellationRate,
    policy: CancellationPolicy,
    amazon: AmazonFigure | None,
    now: datetime | None,
) -> metrics_pb2.CancellationRate:
    """Our rate, with Amazon's own figure for the same window when a report has it."""
    message = convert.rate_message(seller, marketplace_id, rate, policy, now)
    if amazon is not None:
        message.amazon.CopyFrom(convert.amazon_message(amazon))
    return message


def _refusal(key: OrderKey, refused: CancelRefused, policy: CancellationPolicy, now: datetime) -> ApiError:
    metadata = {"amazon_order_id": key.amazon_order_id}
    if refused.current_rate is not None and refused.projected_rate is not None:
        for name, rate in (("current", refused.current_rate), ("projected", refused.projected_rate)):
            metadata[f"{name}_cancelled_orders"] = str(rate.numerator)
            metadata[f"{name}_total_orders"] = str(rate.denominator)
            metadata[f"{name}_rate"] = f"{rate.rate:.6f}"
    if refused.invalid:
        return ApiError(
            grpc.StatusCode.INVALID_ARGUMENT, refused.reason, refused.message, field="order_item_ids"
        )
    return errors.failed_precondition(refused.reason, refused.message, metadata)


def _window(
    policy: CancellationPolicy,
    window_kind: int,
    window_days: int,
    as_of: datetime,
    default: WindowKind = WindowKind.AMAZON_ALIGNED,
) -> Window:
    if window_kind != 0 and window_kind not in convert.WINDOW_FROM_PB:
        raise invalid("window_kind", f"unknown value {window_kind}")
    kind = convert.WINDOW_FROM_PB.get(window_kind, default)
    if window_days < 0:
        raise invalid("window_days", "must be >= 0")
    if window_days and kind is WindowKind.LIVE:
        raise invalid("window_days", "applies to Amazon-aligned windows only (the live window is 168 hours)")
    try:
        return window_for(kind, as_of, policy, window_days or None)
    except InvalidInput as exc:
        raise invalid("window_days", str(exc)) from None


def _as_of(request: Any, now: datetime) -> datetime:
    return validation.timestamp(request, "as_of", now) or now


RATE_MESSAGES = 10_000  # serialized rate messages kept (by account, window and figures)


class MetricsService(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(
        self,
        reads: Reads,
        store: Store,
        page_tokens: validation.PageTokens,
        alerts: AlertWatchers,
    ) -> None:
        self.alerts = alerts
        self.reads = reads
        self.store = store
        self.page_tokens = page_tokens
        self._rate_messages: dict[tuple[Any, ...], bytes] = {}
        self.held = {"GetCancellationRate": Held(_rate_place, self.held_rate)}

    def held_rate(self, place: tuple[AccountKey, tuple[Any, ...]]) -> bytes | None:
        # The answer as of now, held with the account's figures in the read cache (so dropped with them,
        # and by a generation switch) until its window moves.
        now_ns = time.time_ns()
        held = self.reads.cache.rate(*place)
        return held[0] + convert.rate_computed_at(now_ns) if held is not None and now_ns < held[1] else None

    async def GetCancellationRate(
        self, request: metrics_pb2.GetCancellationRateRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        # not held (`held`, asked first by the wiring): computed, and held when it is as of now
        now_ns = time.time_ns()
        computed_at = convert.rate_computed_at(now_ns)
        place = _rate_place(request)  # None: as of another time, never held
        now = convert.from_epoch_ns(now_ns)
        token = self.reads.cache.token()
        policy = validation.policy(await self.reads.policies(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        window = _window(policy, request.window_kind, request.window_days, _as_of(request, now))
        timeout = deadline(context)
        rate = await self.reads.rate(seller, request.marketplace_id, window, timeout=timeout)
        amazon = await self.reads.amazon_figure(seller, request.marketplace_id, rate, timeout=timeout)
        # the message but its computed_at, by what it says: the same figures give the same bytes (the
        # levels are in it: a generation with another policy gives other bytes)
        key = (seller, request.marketplace_id, window, rate.numerator, rate.denominator, amazon, policy)
        message = self._rate_messages.get(key)
        if message is None:
            built = _rate_with_amazon(seller, request.marketplace_id, rate, policy, amazon, None)
            if len(self._rate_messages) >= RATE_MESSAGES:
                self._rate_messages.clear()
            message = self._rate_messages[key] = built.SerializeToString()
        if place is not None:
            moves_at = convert.epoch_ns(window_moves_at(window.kind, now))
            self.reads.cache.put_rate(*place, (message, moves_at), token)
        return message + computed_at

    async def ListCancellationRates(
        self, request: metrics_pb2.ListCancellationRatesRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.ListCancellationRatesResponse:
        caller = current_call().caller
        sellers = [request.seller_account] if request.seller_account else sorted(caller.seller_accounts)
        size = validation.page_size(request.page_size)
        now = datetime.now(UTC)
        as_of = _as_of(request, now)
        if request.window_kind != 0 and request.window_kind not in convert.WINDOW_FROM_PB:
            raise invalid("window_kind", f"unknown value {request.window_kind}")
        if request.window_days < 0:
            raise invalid("window_days", "must be >= 0")
        query = {
            "rpc": "ListCancellationRates",
            "caller": caller.name,
            "seller": request.seller_account,
            "kind": str(request.window_kind),
            "days": str(request.window_days),
            "as_of": as_of.isoformat() if request.HasField("as_of") else "",
        }
        offset = int(self.page_tokens.decode(request.page_token, query)["o"]) if request.page_token else 0
        timeout = deadline(context)
        policies = await self.reads.policies()
        rates = []
        for seller, mkt in await self.reads.api.accounts(sellers, timeout=timeout):
            try:
                policy = policies.for_marketplace(mkt)
                window = _window(policy, request.window_kind, request.window_days, as_of)
            except (InvalidInput, ApiError):  # a marketplace we do not know, or without such a window
                continue
            rate = await self.reads.rate(seller, mkt, window, timeout=timeout)
            rates.append((seller, mkt, rate, policy))
        rates.sort(key=lambda r: (_SEVERITY[r[2].status], -r[2].rate, r[0], r[1]))
        response = metrics_pb2.ListCancellationRatesResponse()
        for seller, mkt, rate, policy in rates[offset : offset + size]:
            amazon = await self.reads.amazon_figure(seller, mkt, rate, timeout=timeout)
            response.rates.append(_rate_with_amazon(seller, mkt, rate, policy, amazon, now))
        if offset + size < len(rates):
            response.next_page_token = self.page_tokens.encode(query, {"o": str(offset + size)})
        return response

    async def GetCancellationRateHistory(
        self, request: metrics_pb2.GetCancellationRateHistoryRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.GetCancellationRateHistoryResponse:
        policy = validation.policy(await self.reads.policies(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        mkt = request.marketplace_id
        days = validation.in_range(request.days, "days", 1, 400, 30)
        now = datetime.now(UTC)
        as_of = _as_of(request, now)
        window_days = request.window_days or policy.primary_window_days
        _window(policy, metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED, window_days, as_of)  # the length exists here
        last_day = day_start(as_of)
        first_day = last_day - (days - 1) * DAY
        windows = [
            (
                first_day + n * DAY,
                amazon_window(first_day + n * DAY, days=window_days, lag_days=policy.amazon_window_lag_days),
            )
            for n in range(days)
        ]
        buckets = await self.store.buckets(seller, mkt, windows[0][1].start, windows[-1][1].end)
        reported = {
            (f.window_start, f.window_end): f
            for f in await self.store.amazon_figures(seller, mkt, windows[0][1].end)
        }
        response = metrics_pb2.GetCancellationRateHistoryResponse()
        for day, window in windows:
            rate = cancellation_rate(window, buckets, policy)
            amazon = reported.get((window.start, window.end))
            response.days.add(
                day=convert.timestamp(day), rate=_rate_with_amazon(seller, mkt, rate, policy, amazon, now)
            )
        return response

    async def ProjectCancellationRate(
        self, request: metrics_pb2.ProjectCancellationRateRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.CancellationRateProjection:
        policy = validation.policy(await self.reads.policies(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        order_ids = validation.order_ids(request.amazon_order_ids)
        reason = (
            validation.text(request.cancel_reason, "cancel_reason", max_len=64)
            or CancelReason.NO_INVENTORY.value
        )
        now = datetime.now(UTC)
        at = _as_of(request, now)
        window = _window(policy, request.window_kind, request.window_days, at, default=WindowKind.LIVE)
        timeout = deadline(context)
        current = await self.reads.rate(seller, request.marketplace_id, window, timeout=timeout)
        found = await self.reads.api.records(seller, request.marketplace_id, order_ids, timeout=timeout)
        result = what_if(
            current,
            [found[i].order for i in order_ids if i in found],
            cancel_reason=reason,
            at=at,
            policy=policy,
        )
        mkt = request.marketplace_id
        response = metrics_pb2.CancellationRateProjection(
            current=convert.rate_message(seller, mkt, result.current, policy, now),
            projected=convert.rate_message(seller, mkt, result.projected, policy, now),
        )
        effects = {e.key.amazon_order_id: e for e in result.effects}
        for order_id in order_ids:
            effect = effects.get(order_id)
            if effect is None:
                response.effects.add(
                    amazon_order_id=order_id, found=False, explanation="cancelguard has not seen this order"
                )
            else:
                response.effects.add(
                    amazon_order_id=order_id,
                    found=True,
                    cancelled_orders_delta=effect.numerator_delta,
                    total_orders_delta=effect.denominator_delta,
                    rule=effect.after.rule.value,
                    explanation=effect.explanation,
                    in_window=effect.in_window,
                    counts=effect.counts,
                )
        return response

    async def GetRollOff(
        self, request: metrics_pb2.GetRollOffRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.RollOff:
        policy = validation.policy(await self.reads.policies(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        now = datetime.now(UTC)
        as_of = _as_of(request, now)
        window = _window(policy, request.window_kind, request.window_days, as_of)
        expected = None
        if request.HasField("expected_daily_orders"):
            expected = Decimal(str(validation.count(request.expected_daily_orders, "expected_daily_orders")))
        mkt = request.marketplace_id
        buckets = await self.store.buckets(seller, mkt, window.start, bucket_start(as_of) + BUCKET)
        counted = await self.store.counted_cancellations(seller, mkt, window.start, window.end)
        result = roll_off(
            as_of,
            buckets,
            counted,
            policy,
            kind=window.kind,
            days=request.window_days or None,
            expected_daily_orders=expected,
        )
        response = metrics_pb2.RollOff(
            current=convert.rate_message(seller, mkt, result.current, policy, now),
            under_warning_on=convert.day_timestamp(result.under_warning_on),
            under_threshold_on=convert.day_timestamp(result.under_threshold_on),
            assumed_daily_orders=float(result.assumed_daily_orders),
        )
        for leaving in result.leaving:
            response.leaving.add(
                amazon_order_id=leaving.amazon_order_id,
                counted_at=convert.timestamp(leaving.at),
                leaves_at=convert.timestamp(leaving.leaves_on),
            )
        for day in result.days:
            response.days.add(
                day=convert.day_timestamp(day.day),
                rate=convert.rate_message(seller, mkt, day.rate, policy, now),
            )
        return response

    async def ListSuppressionRisks(
        self, request: metrics_pb2.ListSuppressionRisksRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.ListSuppressionRisksResponse:
        policy = validation.policy(await self.reads.policies(), request.marketplace_id)
        seller = validation.identifier(request.seller_account, "seller_account")
        as_of = _as_of(request, datetime.now(UTC))
        risks = await self.store.suppression_risks(
            seller, request.marketplace_id, as_of, policy.suppression_days
        )
        response = metrics_pb2.ListSuppressionRisksResponse()
        for risk in risks:
            response.risks.add(
                seller_sku=risk.seller_sku,
                amazon_order_ids=risk.amazon_order_ids,
                explanation=risk.explanation,
            )
        return response

    async def WatchAlerts(
        self, request: metrics_pb2.WatchAlertsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[metrics_pb2.WatchAlertsResponse]:
        sellers, keepalive, query = await _watch_of(request, "WatchAlerts", self.reads)
        async for message in self.alerts.watch(
            sellers, request.marketplace_id, query, request.resume_token, keepalive
        ):
            yield message
