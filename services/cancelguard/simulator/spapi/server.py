"""`cancelguard simulator`: an aiohttp server on loopback that stands in for Amazon.

Serves, in SP-API's shapes (see `render.py` and the model files it cites): Login with Amazon
(`POST /auth/o2/token`), Orders API v0 (getOrders, getOrder, getOrderItems), Orders API v2026-01-01
(searchOrders, getOrder), Reports 2021-06-30 (createReport, getReport, getReportDocument) and Feeds
2021-06-30 (createFeedDocument, createFeed, getFeed, getFeedDocument), with presigned document URLs
under `/_sim/documents/`. Every operation is rate limited per seller by its usage plan (429 with
`x-amzn-RateLimit-Limit` when exceeded); errors come as `{"errors": [{code, message, details}]}`.

Admin endpoints (dev only, no auth, loopback):
    GET  /_sim/sellers                 seller ids, marketplaces, the fake refresh tokens, the LWA app
    GET|POST /_sim/faults              error_500_rate, error_503_rate, throttle_rate, slow_rate,
                                       slow_seconds, rate_limits (bool), token_endpoint_down (bool),
                                       report_outcome (DONE|FATAL|CANCELLED), processing_seconds
    GET|POST /_sim/rate-limits         {"operation": "ordersV0.getOrders", "rate": 5, "burst": 50}
    GET|POST /_sim/clock               {"advance_seconds": 180} | {"now": ISO} | {"frozen": true}
    GET  /_sim/truth[?as_of=ISO]       the ground truth (see truth.py)
    GET  /_sim/notifications?after=N   ORDER_CHANGE notifications published so far (as SQS would hold)
    GET  /_sim/buyer-messages?after=N  buyer messages sent so far (as the helpdesk would forward them)
    GET  /_sim/stats                   requests per operation and status, LWA token requests
    GET  /_sim/queries?operation=KEY   the query parameters of the latest calls of an operation
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import hmac
import itertools
import json
import logging
import random
import secrets
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from cancelguard.amazon.errors import FeedFormatError
from cancelguard.amazon.feed_xml import (
    ORDER_ACKNOWLEDGEMENT_FEED,
    CancelReason,
    ProcessingReport,
    ProcessingResult,
    build_processing_report,
    parse_order_acknowledgement_feed,
)
from cancelguard.amazon.operations import (
    CREATE_FEED,
    CREATE_FEED_DOCUMENT,
    CREATE_REPORT,
    GET_FEED,
    GET_FEED_DOCUMENT,
    GET_ORDER_2026,
    GET_ORDER_ITEMS,
    GET_ORDER_V0,
    GET_ORDERS,
    GET_REPORT,
    GET_REPORT_DOCUMENT,
    SEARCH_ORDERS,
    Operation,
    UsagePlan,
)
from cancelguard.amazon.orders_2026 import FULFILLED_BY, FULFILLMENT_STATUSES, INCLUDED_DATA
from cancelguard.amazon.orders_v0 import FULFILLMENT_CHANNELS, ORDER_STATUSES
from cancelguard.amazon.ratelimit import TokenBucket
from cancelguard.amazon.reports import (
    ALL_ORDERS_BY_LAST_UPDATE_REPORT,
    SELLER_PERFORMANCE_REPORT,
    UNSHIPPED_ORDERS_REPORT,
)
from cancelguard.simulator.spapi import render
from cancelguard.simulator.spapi.generator import (
    DEFAULT_MARKETPLACES,
    DEFAULT_SELLERS,
    ScenarioSpec,
    generate_world,
)
from cancelguard.simulator.spapi.truth import ground_truth, window_truths
from cancelguard.simulator.spapi.world import MARKETPLACES, UNSHIPPED, SimOrder, Version, World

log = logging.getLogger("cancelguard.simulator")

TWO_MINUTES = timedelta(minutes=2)
PAGINATION_TOKEN_LIFETIME = timedelta(hours=24)
DOCUMENT_URL_LIFETIME = timedelta(minutes=5)
ACCESS_TOKEN_LIFETIME_S = 3600
DEFAULT_CLIENT_ID = "amzn1.application-oa2-client.cancelguard-simulator"
DEFAULT_CLIENT_SECRET = "simulator-client-secret"  # fake, like everything here


class SimClock:
    """Simulated time: the wall clock plus an offset, or frozen. Admin endpoints move it."""

    def __init__(self, start: datetime, *, frozen: bool = False) -> None:
        self._offset = start - datetime.now(UTC)
        self._frozen: datetime | None = start if frozen else None

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        if self._frozen is not None:
            self._frozen += timedelta(seconds=seconds)
        self._offset += timedelta(seconds=seconds)

    def set(self, now: datetime) -> None:
        if self._frozen is not None:
            self._frozen = now
        self._offset = now - datetime.now(UTC)

    def freeze(self, frozen: bool) -> None:
        current = self.now()
        self._frozen = current if frozen else None
        self._offset = current - datetime.now(UTC)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


@dataclass
class Faults:
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    throttle_rate: float = 0.0  # 429s on top of the usage plans
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    rate_limits: bool = True  # off for benchmarks
    token_endpoint_down: bool = False
    report_outcome: str = "DONE"  # DONE | FATAL | CANCELLED
    processing_seconds: float = 2.0  # simulated seconds a report or feed takes
    gzip_documents: bool = True

    def update(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(
                    f"unknown fault setting {name!r}; known: {sorted(self.__dataclass_fields__)}"
                )
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif isinstance(current, float):
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                value = float(value)
                if name.endswith("_rate") and value > 1:
                    raise ValueError(f"{name} is a probability: 0..1")
            elif name == "report_outcome" and value not in ("DONE", "FATAL", "CANCELLED"):
                raise ValueError("report_outcome must be DONE, FATAL or CANCELLED")
            setattr(self, name, value)


class ApiError(Exception):
    """An SP-API error answer: status + Amazon's error list."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def invalid(message: str, details: str = "") -> ApiError:
    return ApiError(400, "InvalidInput", message, details)


@dataclass
class SimDocument:
    document_id: str
    seller_id: str
    content_type: str
    content: bytes | None = None  # None: a feed document not uploaded yet
    compressed: bool = False


@dataclass
class SimJob:
    """A report or a feed being processed."""

    job_id: str
    seller_id: str
    kind: str  # reportType or feedType
    marketplace_ids: list[str]
    created_at: datetime
    outcome: str
    processing_seconds: float
    data_start: datetime | None = None
    data_end: datetime | None = None
    input_document_id: str = ""
    document_id: str | None = None
    finished: bool = False

    def status(self, now: datetime) -> str:
        if self.finished:
            return self.outcome
        elapsed = (now - self.created_at).total_seconds()
        if elapsed < self.processing_seconds / 2:
            return "IN_QUEUE"
        return "IN_PROGRESS" if elapsed < self.processing_seconds else "READY"


@dataclass
class Published:
    """An append-only log of what was pushed so far (notifications, messages)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    pending: list[tuple[datetime, int, dict[str, Any]]] = field(default_factory=list)

    def publish_until(self, now: datetime) -> None:
        self.pending.sort(key=lambda p: (p[0], p[1]))
        while self.pending and self.pending[0][0] <= now:
            self.entries.append(self.pending.pop(0)[2])


def _parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Invalid {name}: {value!r} is not an ISO 8601 date-time", name) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _list(query: Any, name: str) -> list[str]:
    """An array parameter: comma-separated (swagger csv) and/or repeated."""
    return [v for raw in query.getall(name, []) for v in raw.split(",") if v]


class Simulator:
    def __init__(
        self,
        world: World,
        clock: SimClock,
        *,
        faults: Faults | None = None,
        seed: int = 7,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        monotonic: Callable[[], float] = time.monotonic,
        order_items_page_size: int = 30,
    ) -> None:
        self.world = world
        self.clock = clock
        self.faults = faults or Faults()
        self.seed = seed
        self.rng = random.Random(seed)
        self.client_id, self.client_secret = client_id, client_secret
        self.monotonic = monotonic
        self.order_items_page_size = order_items_page_size
        self.plans: dict[tuple[str | None, str], UsagePlan] = {}  # (seller or None for all, op key)
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.tokens: dict[str, tuple[str, datetime]] = {}  # access token -> (seller, expiry)
        self.documents: dict[str, SimDocument] = {}
        self.reports: dict[str, SimJob] = {}
        self.feeds: dict[str, SimJob] = {}
        self.stats: Counter[str] = Counter()
        # what each operation was asked, newest last (tests check where a poller resumed from)
        self.queries: deque[tuple[str, str, dict[str, str]]] = deque(maxlen=20000)
        # tests of bad input: (operation key, answer body) -> the body to send instead
        self.tamper: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
        self._key = secrets.token_bytes(32)  # signs pagination tokens and document URLs
        self._ids = itertools.count(50001)
        self.notifications = Published()
        self.messages = Published()
        self._queued: dict[tuple[str, str], int] = {}  # versions already queued as notifications, per order
        self._queue_new_changes()
        for m in world.messages:
            self.messages.pending.append((m.sent_at, len(self.messages.pending), m.as_record()))

    # --- shared pieces -------------------------------------------------------------------------------

    def _queue_new_changes(self) -> None:
        """Queue an ORDER_CHANGE for every version not queued yet: after the API lag plus a delivery delay
        (a few are late, so they arrive out of order, and a few twice: SQS delivers at least once)."""
        for key, order in self.world.orders.items():
            done = self._queued.get(key, 0)
            for v in order.versions[done:]:
                rng = random.Random(f"{self.seed}|{order.amazon_order_id}|{v.at.isoformat()}")
                delay = timedelta(seconds=rng.uniform(1, 90))
                if rng.random() < 0.03:
                    delay += timedelta(minutes=rng.uniform(10, 30))
                doc = render.order_change(order, v)
                self.notifications.pending.append((v.at + delay, len(self.notifications.pending), doc))
                if rng.random() < 0.02:
                    self.notifications.pending.append(
                        (
                            v.at + delay + timedelta(seconds=rng.uniform(1, 60)),
                            len(self.notifications.pending),
                            doc,
                        )
                    )
            self._queued[key] = len(order.versions)

    def plan(self, seller: str, op: Operation) -> UsagePlan:
        return self.plans.get((seller, op.key)) or self.plans.get((None, op.key)) or op.plan

    def _signature(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def _token(self, state: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()
        return f"{body}.{self._signature(body)}"

    def _untoken(self, token: str, name: str) -> dict[str, Any]:
        body, _, signature = token.partition(".")
        if not body or not hmac.compare_digest(signature, self._signature(body)):
            raise invalid(f"Invalid {name}", f"the {name} was not issued by this service or was altered")
        state: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body))
        return state

    def next_id(self) -> str:
        return str(next(self._ids))

    def document_url(self, request: web.Request, document_id: str, method: str) -> str:
        expires = int((self.clock.now() + DOCUMENT_URL_LIFETIME).timestamp())
        signature = self._signature(f"{method}|{document_id}|{expires}")
        base = f"{request.scheme}://{request.host}"
        return f"{base}/_sim/documents/{document_id}?X-Amz-Expires={expires}&X-Amz-Signature={signature}"

    # --- request plumbing ----------------------------------------------------------------------------

    async def _faulty(self) -> None:
        f = self.faults
        if f.slow_rate and self.rng.random() < f.slow_rate:
            await asyncio.sleep(f.slow_seconds)
        if f.error_500_rate and self.rng.random() < f.error_500_rate:
            raise ApiError(500, "InternalFailure", "We encountered an internal error. Please try again.")
        if f.error_503_rate and self.rng.random() < f.error_503_rate:
            raise ApiError(503, "ServiceUnavailable", "Service temporarily unavailable. Please try again.")

    def _seller(self, request: web.Request) -> str:
        token = request.headers.get("x-amz-access-token", "")
        found = self.tokens.get(token)
        if not token or found is None:
            raise ApiError(
                403, "Unauthorized", "Access to requested resource is denied.",
                "The access token you provided is revoked, malformed or invalid." if token else "",
            )  # fmt: skip
        seller, expires = found
        if self.clock.now() >= expires:
            raise ApiError(
                403,
                "Unauthorized",
                "Access to requested resource is denied.",
                "The access token you provided has expired.",
            )
        return seller

    def _rate_limit(self, seller: str, op: Operation) -> str:
        plan = self.plan(seller, op)
        key = (seller, op.key)
        bucket = self.buckets.get(key)
        if bucket is None or (bucket.rate, bucket.burst) != (plan.rate, plan.burst):
            bucket = self.buckets[key] = TokenBucket(plan, self.monotonic())
        header = f"{plan.rate:g}"
        throttled = (self.faults.rate_limits and not bucket.try_take(self.monotonic())) or (
            self.faults.throttle_rate and self.rng.random() < self.faults.throttle_rate
        )
        if throttled:
            raise ApiError(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
        return header

    def endpoint(
        self, op: Operation, handler: Callable[[web.Request, str], Awaitable[tuple[int, dict[str, Any]]]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            headers = {"x-amzn-RequestId": str(uuid.uuid4())}
            status = 500
            try:
                seller = self._seller(request)
                headers["x-amzn-RateLimit-Limit"] = f"{self.plan(seller, op).rate:g}"
                self._rate_limit(seller, op)
                await self._faulty()
                self._tick()
                self.queries.append((op.key, seller, dict(request.query)))
                status, body = await handler(request, seller)
                if self.tamper is not None and status < 300:
                    body = self.tamper(op.key, body)
            except ApiError as exc:
                status = exc.status
                error: dict[str, str] = {"code": exc.code, "message": exc.message}
                if exc.details:
                    error["details"] = exc.details
                body = {"errors": [error]}
            self.stats[f"{op.key} {status}"] += 1
            return web.json_response(body, status=status, headers=headers)

        return serve

    def _tick(self) -> None:
        """Let time act: finish reports and feeds whose processing time has passed, publish."""
        now = self.clock.now()
        for job in self.reports.values():
            if not job.finished and job.status(now) == "READY":
                self._finish_report(job)
        for job in self.feeds.values():
            if not job.finished and job.status(now) == "READY":
                self._finish_feed(job)
        self._queue_new_changes()
        self.notifications.publish_until(now)
        self.messages.publish_until(now)

    def order_of(self, seller: str, order_id: str) -> tuple[SimOrder, Version]:
        order = self.world.orders.get((seller, order_id))
        version = order.visible(self.clock.now()) if order is not None else None
        if order is None or version is None:
            raise ApiError(404, "NotFound", f"Order {order_id} not found.", "orderId")
        return order, version

    def _marketplaces(self, seller: str, ids: list[str], name: str, *, required: bool) -> list[str]:
        if not ids:
            if required:
                raise invalid(f"Missing required parameter {name}.", name)
            return list(self.world.sellers[seller].marketplace_ids)
        if len(ids) > 50:
            raise invalid(f"{name} accepts at most 50 values; got {len(ids)}.", name)
        mine = self.world.sellers[seller].marketplace_ids
        unknown = [m for m in ids if m not in mine]
        if unknown:
            raise invalid(
                f"Invalid {name}: {', '.join(unknown)}; this seller sells in {', '.join(mine)}.", name
            )
        return ids

    # --- LWA -------------------------------------------------------------------------------------------

    async def lwa_token(self, request: web.Request) -> web.Response:
        self.stats["lwa.token"] += 1
        if self.faults.token_endpoint_down:
            return web.json_response(
                {"error": "server_error", "error_description": "Service unavailable"}, status=503
            )
        form = await request.post()

        def refuse(status: int, error: str, description: str) -> web.Response:
            return web.json_response({"error": error, "error_description": description}, status=status)

        if form.get("grant_type") != "refresh_token":
            return refuse(400, "unsupported_grant_type", "The authorization grant type is not supported.")
        for name in ("refresh_token", "client_id", "client_secret"):
            if not form.get(name):
                return refuse(400, "invalid_request", f"The request is missing a required parameter : {name}")
        if form.get("client_id") != self.client_id or not hmac.compare_digest(
            str(form.get("client_secret")), self.client_secret
        ):
            return refuse(401, "invalid_client", "Client authentication failed")
        seller = next(
            (s for s, a in self.world.sellers.items() if a.refresh_token == form.get("refresh_token")), None
        )
        if seller is None:
            return refuse(400, "invalid_grant", "The request has an invalid grant parameter : refresh_token")
        token = "Atza|sim." + secrets.token_urlsafe(24)
        self.tokens[token] = (seller, self.clock.now() + timedelta(seconds=ACCESS_TOKEN_LIFETIME_S))
        return web.json_response(
            {"access_token": token, "refresh_token": form.get("refresh_token"), "token_type": "bearer",
             "expires_in": ACCESS_TOKEN_LIFETIME_S}
        )  # fmt: skip

    # --- order searches (v0 getOrders and v2026 searchOrders share the rules) ------------------------

    def _search(self, seller: str, query: Any, names: dict[str, str], token_name: str) -> dict[str, Any]:
        """Validate the time filters (the models' rules) and return the search state kept in the token."""
        now = self.clock.now()
        created_after, created_before = query.get(names["created_after"]), query.get(names["created_before"])
        updated_after, updated_before = query.get(names["updated_after"]), query.get(names["updated_before"])
        if (created_after or created_before) and (updated_after or updated_before):
            raise invalid(
                f"{names['created_after']}/{names['created_before']} cannot be combined with "
                f"{names['updated_after']}/{names['updated_before']}.",
                "the Created and LastUpdated filters are mutually exclusive",
            )
        if not created_after and not updated_after:
            raise invalid(f"Either {names['created_after']} or {names['updated_after']} is required.")
        family = "created" if created_after else "updated"
        after_name, before_name = (
            (names["created_after"], names["created_before"]) if family == "created"
            else (names["updated_after"], names["updated_before"])
        )  # fmt: skip
        after = _parse_time(after_name, created_after or updated_after)
        given_before = created_before if family == "created" else updated_before
        if after > now:
            raise invalid(f"{after_name} is in the future.", after_name)
        if given_before:
            before = _parse_time(before_name, given_before)
            if before < after:
                raise invalid(f"{before_name} must be equal to or after {after_name}.", before_name)
            if before > now - TWO_MINUTES:
                raise invalid(
                    f"{before_name} must be at least two minutes before the current time.", before_name
                )
        else:
            before = max(after, now - TWO_MINUTES)
        return {"family": family, "after": after.isoformat(), "before": before.isoformat(),
                "as_of": now.isoformat(), "offset": 0}  # fmt: skip

    def _matches(self, seller: str, state: dict[str, Any]) -> list[tuple[SimOrder, Version]]:
        as_of = datetime.fromisoformat(state["as_of"])
        after, before = datetime.fromisoformat(state["after"]), datetime.fromisoformat(state["before"])
        out = []
        for order in self.world.orders_of(seller):
            if order.marketplace_id not in state["marketplaces"]:
                continue
            v = order.visible(as_of)
            if v is None:
                continue
            when = order.purchased_at if state["family"] == "created" else v.at
            if not after <= when <= before:
                continue
            if state["statuses"] and v.status not in state["statuses"]:
                continue
            if state["channels"] and order.channel not in state["channels"]:
                continue
            if state.get("order_ids") and order.amazon_order_id not in state["order_ids"]:
                continue
            out.append((order, v))
        key = (
            (lambda ov: (ov[0].purchased_at, ov[0].amazon_order_id))
            if state["family"] == "created"
            else (lambda ov: (ov[1].at, ov[0].amazon_order_id))
        )
        out.sort(key=key)
        return out

    @staticmethod
    def _page_size(query: Any, name: str) -> int:
        raw = query.get(name)
        if raw is None:
            return 100
        try:
            size = int(raw)
        except ValueError:
            raise invalid(f"{name} must be an integer between 1 and 100.", name) from None
        if not 1 <= size <= 100:
            raise invalid(f"{name} must be an integer between 1 and 100.", name)
        return size

    @staticmethod
    def _choices(values: list[str], allowed: tuple[str, ...], name: str) -> list[str]:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise invalid(f"Invalid {name}: {', '.join(bad)}. Valid values: {', '.join(allowed)}.", name)
        return values

    def _page(
        self, seller: str, query: Any, token_name: str, build: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], list[tuple[SimOrder, Version]], str | None]:
        token = query.get(token_name)
        if token:
            state = self._untoken(token, token_name)
            if self.clock.now() - datetime.fromisoformat(state["as_of"]) > PAGINATION_TOKEN_LIFETIME:
                raise invalid(f"{token_name} has expired.", f"a {token_name} is valid for 24 hours")
        else:
            state = build()
        matches = self._matches(seller, state)
        start = state["offset"]
        page = matches[start : start + state["size"]]
        more = start + state["size"] < len(matches)
        next_token = self._token({**state, "offset": start + state["size"]}) if more else None
        return state, page, next_token

    async def get_orders(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        q = request.query
        marketplaces = self._marketplaces(seller, _list(q, "MarketplaceIds"), "MarketplaceIds", required=True)

        def build() -> dict[str, Any]:
            state = self._search(
                seller,
                q,
                {
                    "created_after": "CreatedAfter",
                    "created_before": "CreatedBefore",
                    "updated_after": "LastUpdatedAfter",
                    "updated_before": "LastUpdatedBefore",
                },
                "NextToken",
            )
            order_ids = _list(q, "AmazonOrderIds")
            if len(order_ids) > 50:
                raise invalid("AmazonOrderIds accepts at most 50 values.", "AmazonOrderIds")
            return {
                **state,
                "marketplaces": marketplaces,
                "statuses": self._choices(_list(q, "OrderStatuses"), ORDER_STATUSES, "OrderStatuses"),
                "channels": self._choices(
                    _list(q, "FulfillmentChannels"), FULFILLMENT_CHANNELS, "FulfillmentChannels"
                ),
                "order_ids": order_ids,
                "size": self._page_size(q, "MaxResultsPerPage"),
            }

        state, page, next_token = self._page(seller, q, "NextToken", build)
        payload: dict[str, Any] = {"Orders": [render.v0_order(o, v) for o, v in page]}
        if next_token:
            payload["NextToken"] = next_token
        bound = render.iso(datetime.fromisoformat(state["before"]))
        payload["CreatedBefore" if state["family"] == "created" else "LastUpdatedBefore"] = bound
        return 200, {"payload": payload}

    async def get_order_v0(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        order, v = self.order_of(seller, request.match_info["orderId"])
        return 200, {"payload": render.v0_order(order, v)}

    async def get_order_items(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        order_id = request.match_info["orderId"]
        order, v = self.order_of(seller, order_id)
        items = render.v0_order_items(order, v)
        start = 0
        token = request.query.get("NextToken")
        if token:
            state = self._untoken(token, "NextToken")
            if state.get("order") != order_id:
                raise invalid("Invalid NextToken", "the NextToken belongs to another order")
            start = state["offset"]
        size = self.order_items_page_size
        payload: dict[str, Any] = {"AmazonOrderId": order_id, "OrderItems": items[start : start + size]}
        if start + size < len(items):
            payload["NextToken"] = self._token({"order": order_id, "offset": start + size})
        return 200, {"payload": payload}

    async def search_orders(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        q = request.query
        included = self._choices(_list(q, "includedData"), INCLUDED_DATA, "includedData")

        def build() -> dict[str, Any]:
            state = self._search(
                seller,
                q,
                {
                    "created_after": "createdAfter",
                    "created_before": "createdBefore",
                    "updated_after": "lastUpdatedAfter",
                    "updated_before": "lastUpdatedBefore",
                },
                "paginationToken",
            )
            statuses = self._choices(
                _list(q, "fulfillmentStatuses"), FULFILLMENT_STATUSES, "fulfillmentStatuses"
            )
            by = self._choices(_list(q, "fulfilledBy"), FULFILLED_BY, "fulfilledBy")
            v0_status = {v: k for k, v in render.V2026_STATUS.items() if k != "InvoiceUnconfirmed"}
            channel = {v: k for k, v in render.V2026_FULFILLED_BY.items()}
            return {
                **state,
                "marketplaces": self._marketplaces(
                    seller, _list(q, "marketplaceIds"), "marketplaceIds", required=False
                ),
                "statuses": [v0_status[s] for s in statuses],
                "channels": [channel[b] for b in by],
                "size": self._page_size(q, "maxResultsPerPage"),
            }

        state, page, next_token = self._page(seller, q, "paginationToken", build)
        body: dict[str, Any] = {"orders": [render.v2026_order(o, v, included) for o, v in page]}
        if next_token:
            body["pagination"] = {"nextToken": next_token}
        bound = render.iso(datetime.fromisoformat(state["before"]))
        body["createdBefore" if state["family"] == "created" else "lastUpdatedBefore"] = bound
        return 200, body

    async def get_order_2026(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        included = self._choices(_list(request.query, "includedData"), INCLUDED_DATA, "includedData")
        order, v = self.order_of(seller, request.match_info["orderId"])
        return 200, {"order": render.v2026_order(order, v, included)}

    # --- reports ------------------------------------------------------------------------------------

    REPORT_TYPES = (UNSHIPPED_ORDERS_REPORT, ALL_ORDERS_BY_LAST_UPDATE_REPORT, SELLER_PERFORMANCE_REPORT)

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise invalid("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        return body

    async def create_report(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        spec = await self._json_body(request)
        report_type = spec.get("reportType")
        if not isinstance(report_type, str) or not report_type:
            raise invalid("Missing required field reportType.", "reportType")
        if report_type not in self.REPORT_TYPES:
            raise invalid(
                f"Report type {report_type} is not supported.",
                f"the simulator serves {', '.join(self.REPORT_TYPES)}",
            )
        marketplaces = self._body_marketplaces(seller, spec)
        now = self.clock.now()
        start = _parse_time("dataStartTime", spec["dataStartTime"]) if spec.get("dataStartTime") else None
        end = _parse_time("dataEndTime", spec["dataEndTime"]) if spec.get("dataEndTime") else None
        for name, value in (("dataStartTime", start), ("dataEndTime", end)):
            if value is not None and value > now:
                raise invalid(f"{name} must be prior to or equal to the current date and time.", name)
        if start and end and end < start:
            raise invalid("dataEndTime must be after dataStartTime.", "dataEndTime")
        job = SimJob(
            self.next_id(),
            seller,
            report_type,
            marketplaces,
            now,
            self.faults.report_outcome,
            self.faults.processing_seconds,
            start,
            end,
        )
        self.reports[job.job_id] = job
        return 202, {"reportId": job.job_id}

    def _body_marketplaces(self, seller: str, spec: dict[str, Any]) -> list[str]:
        ids = spec.get("marketplaceIds")
        if not isinstance(ids, list) or not all(isinstance(m, str) for m in ids):
            raise invalid("Missing required field marketplaceIds.", "marketplaceIds")
        return self._marketplaces(seller, ids, "marketplaceIds", required=True)

    def _job(self, jobs: dict[str, SimJob], job_id: str, seller: str, what: str) -> SimJob:
        job = jobs.get(job_id)
        if job is None or job.seller_id != seller:
            raise ApiError(404, "NotFound", f"The {what} {job_id} was not found.", what)
        return job

    def _store(self, seller: str, content: bytes, content_type: str) -> str:
        doc_id = f"amzn1.tortuga.4.sim.{uuid.uuid4()}"
        compressed = self.faults.gzip_documents
        self.documents[doc_id] = SimDocument(
            doc_id,
            seller,
            content_type,
            gzip.compress(content, mtime=0) if compressed else content,
            compressed,
        )
        return doc_id

    def _finish_report(self, job: SimJob) -> None:
        job.finished = True
        done_at = job.created_at + timedelta(seconds=job.processing_seconds)
        if job.outcome == "FATAL":
            job.document_id = self._store(
                job.seller_id,
                json.dumps({"errorDetails": "The report could not be generated."}).encode(),
                "application/json",
            )
            return
        if job.outcome != "DONE":
            return
        orders = [o for o in self.world.orders_of(job.seller_id) if o.marketplace_id in job.marketplace_ids]
        if job.kind == SELLER_PERFORMANCE_REPORT:
            windows = {
                w.marketplace_id: w
                for w in window_truths(self.world, done_at)
                if w.seller_id == job.seller_id
                and w.marketplace_id in job.marketplace_ids
                and w.kind == "AMAZON_ALIGNED"
                and w.days == 7
            }
            doc = render.seller_performance_report(windows, done_at)
            job.document_id = self._store(job.seller_id, json.dumps(doc).encode(), "application/json")
            return
        visible = [(o, v) for o in orders if (v := o.visible(done_at)) is not None]
        if job.kind == UNSHIPPED_ORDERS_REPORT:
            text = render.unshipped_orders_report(visible, done_at)
        else:
            start = job.data_start or done_at - timedelta(days=30)
            end = job.data_end or done_at
            text = render.all_orders_report((o, v) for o, v in visible if start <= v.at <= end)
        # Amazon's flat files come in the marketplace's legacy code page (Content-Type says which)
        charsets = {"ja": "Windows-31J"}
        languages = {MARKETPLACES[m].language for m in job.marketplace_ids}
        charset = charsets.get(languages.pop(), "Cp1252") if len(languages) == 1 else "UTF-8"
        codec = {"Windows-31J": "cp932", "Cp1252": "cp1252", "UTF-8": "utf-8"}[charset]
        job.document_id = self._store(
            job.seller_id, text.encode(codec, errors="replace"), f"text/plain;charset={charset}"
        )

    def _report_doc(self, job: SimJob) -> dict[str, Any]:
        now = self.clock.now()
        status = job.status(now)
        doc: dict[str, Any] = {
            "reportId": job.job_id,
            "reportType": job.kind,
            "marketplaceIds": job.marketplace_ids,
            "createdTime": render.iso(job.created_at),
            "processingStatus": status,
        }
        if job.data_start:
            doc["dataStartTime"] = render.iso(job.data_start)
        if job.data_end:
            doc["dataEndTime"] = render.iso(job.data_end)
        if status != "IN_QUEUE":
            doc["processingStartTime"] = render.iso(
                job.created_at + timedelta(seconds=job.processing_seconds / 2)
            )
        if job.finished:
            doc["processingEndTime"] = render.iso(job.created_at + timedelta(seconds=job.processing_seconds))
            if job.document_id:
                doc["reportDocumentId"] = job.document_id
        return doc

    async def get_report(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        return 200, self._report_doc(
            self._job(self.reports, request.match_info["reportId"], seller, "report")
        )

    def _document_info(self, request: web.Request, doc_id: str, seller: str, name: str) -> dict[str, Any]:
        doc = self.documents.get(doc_id)
        if doc is None or doc.seller_id != seller or doc.content is None:
            raise ApiError(404, "NotFound", f"The document {doc_id} was not found.", name)
        info: dict[str, Any] = {name: doc_id, "url": self.document_url(request, doc_id, "GET")}
        if doc.compressed:
            info["compressionAlgorithm"] = "GZIP"
        return info

    async def get_report_document(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        doc_id = request.match_info["reportDocumentId"]
        return 200, self._document_info(request, doc_id, seller, "reportDocumentId")

    # --- feeds -------------------------------------------------------------------------------------------

    async def create_feed_document(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        spec = await self._json_body(request)
        content_type = spec.get("contentType")
        if not isinstance(content_type, str) or not content_type:
            raise invalid("Missing required field contentType.", "contentType")
        doc_id = f"amzn1.tortuga.4.sim.{uuid.uuid4()}"
        self.documents[doc_id] = SimDocument(doc_id, seller, content_type)
        return 201, {"feedDocumentId": doc_id, "url": self.document_url(request, doc_id, "PUT")}

    async def create_feed(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        spec = await self._json_body(request)
        feed_type = spec.get("feedType")
        if not isinstance(feed_type, str) or not feed_type:
            raise invalid("Missing required field feedType.", "feedType")
        if feed_type != ORDER_ACKNOWLEDGEMENT_FEED:
            raise invalid(
                f"Feed type {feed_type} is not supported.",
                f"the simulator accepts {ORDER_ACKNOWLEDGEMENT_FEED}",
            )
        marketplaces = self._body_marketplaces(seller, spec)
        doc_id = spec.get("inputFeedDocumentId")
        doc = self.documents.get(doc_id) if isinstance(doc_id, str) else None
        if doc is None or doc.seller_id != seller:
            raise invalid(f"Invalid inputFeedDocumentId {doc_id!r}.", "inputFeedDocumentId")
        if doc.content is None:
            raise invalid(
                "The feed document has no content: upload it before calling createFeed.",
                "inputFeedDocumentId",
            )
        job = SimJob(
            self.next_id(),
            seller,
            feed_type,
            marketplaces,
            self.clock.now(),
            "DONE",
            self.faults.processing_seconds,
            input_document_id=doc.document_id,
        )
        self.feeds[job.job_id] = job
        return 202, {"feedId": job.job_id}

    def _finish_feed(self, job: SimJob) -> None:
        """Apply the acknowledgements at the end of processing and write the processing report."""
        job.finished = True
        at = job.created_at + timedelta(seconds=job.processing_seconds)
        content = self.documents[job.input_document_id].content or b""
        try:
            merchant, messages = parse_order_acknowledgement_feed(content)
            if merchant != job.seller_id:
                raise FeedFormatError(f"MerchantIdentifier {merchant} is not the seller {job.seller_id}")
        except FeedFormatError as exc:
            job.outcome = "FATAL"
            report = ProcessingReport(
                job.job_id, "Complete", 0, 0, 1, 0, (ProcessingResult("0", "Error", "90001", str(exc)),)
            )
            job.document_id = self._store(
                job.seller_id, build_processing_report(job.seller_id, report), "text/xml; charset=UTF-8"
            )
            return
        results: list[ProcessingResult] = []
        ok = 0
        reasons = {r.value for r in CancelReason}
        for message in messages:
            found = self._apply_acknowledgement(job, message, at, reasons)
            results += found
            ok += not found
        report = ProcessingReport(
            job.job_id, "Complete", len(messages), ok, len(messages) - ok, 0, tuple(results)
        )
        job.document_id = self._store(
            job.seller_id, build_processing_report(job.seller_id, report), "text/xml; charset=UTF-8"
        )
        self._queue_new_changes()

    def _apply_acknowledgement(
        self, job: SimJob, message: Any, at: datetime, reasons: set[str]
    ) -> list[ProcessingResult]:
        def error(code: str, text: str, item: str = "") -> list[ProcessingResult]:
            return [ProcessingResult(message.message_id, "Error", code, text, message.amazon_order_id, item)]

        order = self.world.orders.get((job.seller_id, message.amazon_order_id))
        if order is None or order.marketplace_id not in job.marketplace_ids:
            return error(
                "90101", f"Order {message.amazon_order_id} was not found for this seller and marketplace."
            )
        if message.status_code == "Success":
            return []  # an acknowledgement: nothing changes
        if message.status_code != "Failure":
            return error("90105", f"StatusCode must be Success or Failure, not {message.status_code!r}.")
        if not message.items:
            return error("90104", "A cancel (StatusCode Failure) needs an Item with a CancelReason per item.")
        current = order.current(at)
        assert current is not None
        if current.status != UNSHIPPED:
            return error(
                "90102",
                f"Order {order.amazon_order_id} is {current.status}: only Unshipped orders can be cancelled.",
            )
        ids = {i.order_item_id: n for n, i in enumerate(order.items)}
        cancels: dict[str, str] = {}
        for item in message.items:
            code = item.amazon_order_item_code
            if code not in ids:
                return error("90103", f"Item {code} is not part of order {order.amazon_order_id}.", code)
            if item.cancel_reason not in reasons:
                return error(
                    "90104",
                    f"CancelReason {item.cancel_reason!r} is not valid; valid values: "
                    + ", ".join(sorted(reasons))
                    + ".",
                    code,
                )
            if current.items[ids[code]].cancelled_by:
                return error("90106", f"Item {code} is already cancelled.", code)
            cancels[code] = item.cancel_reason
        lag = timedelta(seconds=random.Random(f"{job.job_id}|{order.amazon_order_id}").uniform(1, 60))
        self.world.cancel_by_seller(order, cancels, at, lag, job.job_id)
        return []

    async def get_feed(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        job = self._job(self.feeds, request.match_info["feedId"], seller, "feed")
        status = job.status(self.clock.now())
        doc: dict[str, Any] = {
            "feedId": job.job_id,
            "feedType": job.kind,
            "marketplaceIds": job.marketplace_ids,
            "createdTime": render.iso(job.created_at),
            "processingStatus": status,
        }
        if status != "IN_QUEUE":
            doc["processingStartTime"] = render.iso(
                job.created_at + timedelta(seconds=job.processing_seconds / 2)
            )
        if job.finished:
            doc["processingEndTime"] = render.iso(job.created_at + timedelta(seconds=job.processing_seconds))
            if job.document_id:
                doc["resultFeedDocumentId"] = job.document_id
        return 200, doc

    async def get_feed_document(self, request: web.Request, seller: str) -> tuple[int, dict[str, Any]]:
        doc_id = request.match_info["feedDocumentId"]
        return 200, self._document_info(request, doc_id, seller, "feedDocumentId")

    # --- presigned documents (S3's role) ----------------------------------------------------------------

    def _check_url(self, request: web.Request, method: str) -> SimDocument:
        doc_id = request.match_info["documentId"]
        try:
            expires = int(request.query.get("X-Amz-Expires", ""))
        except ValueError:
            expires = 0
        signature = request.query.get("X-Amz-Signature", "")
        doc = self.documents.get(doc_id)
        if doc is None or not hmac.compare_digest(signature, self._signature(f"{method}|{doc_id}|{expires}")):
            raise web.HTTPForbidden(
                text="<Error><Code>SignatureDoesNotMatch</Code></Error>", content_type="application/xml"
            )
        if self.clock.now().timestamp() > expires:
            raise web.HTTPForbidden(
                text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                content_type="application/xml",
            )
        return doc

    async def document_get(self, request: web.Request) -> web.Response:
        doc = self._check_url(request, "GET")
        await self._faulty_document()
        content_type = "application/octet-stream" if doc.compressed else doc.content_type
        return web.Response(body=doc.content or b"", headers={"Content-Type": content_type})

    async def document_put(self, request: web.Request) -> web.Response:
        doc = self._check_url(request, "PUT")
        await self._faulty_document()
        if request.headers.get("Content-Type", "") != doc.content_type:
            raise web.HTTPForbidden(
                text="<Error><Code>SignatureDoesNotMatch</Code><Message>Content-Type differs "
                "from the one given to createFeedDocument</Message></Error>",
                content_type="application/xml",
            )
        doc.content = await request.read()
        return web.Response(status=200)

    async def _faulty_document(self) -> None:
        try:
            await self._faulty()
        except ApiError as exc:
            raise (
                web.HTTPServiceUnavailable() if exc.status == 503 else web.HTTPInternalServerError()
            ) from None

    # --- admin -------------------------------------------------------------------------------------------

    async def admin_sellers(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return web.json_response({
            "endpoint": base,
            "lwa_endpoint": f"{base}/auth/o2/token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "sellers": [{"seller_id": a.seller_id, "marketplace_ids": list(a.marketplace_ids),
                         "refresh_token": a.refresh_token} for a in self.world.sellers.values()],
        })  # fmt: skip

    async def admin_faults(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                self.faults.update(await request.json())
            except (ValueError, TypeError, AttributeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.faults))

    async def admin_rate_limits(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                spec = await request.json()
                op = spec["operation"]
                from cancelguard.amazon.operations import OPERATIONS

                if op not in OPERATIONS:
                    raise ValueError(f"unknown operation {op!r}; known: {sorted(OPERATIONS)}")
                self.plans[(spec.get("seller_id"), op)] = UsagePlan(float(spec["rate"]), int(spec["burst"]))
            except (KeyError, ValueError, TypeError) as exc:
                return web.json_response({"error": f"bad rate limit: {exc}"}, status=400)
        return web.json_response({
            "enabled": self.faults.rate_limits,
            "overrides": [{"seller_id": s, "operation": op, "rate": p.rate, "burst": p.burst}
                          for (s, op), p in self.plans.items()],
        })  # fmt: skip

    async def admin_clock(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                spec = await request.json()
                if "now" in spec:
                    self.clock.set(_parse_time("now", spec["now"]))
                if "advance_seconds" in spec:
                    self.clock.advance(float(spec["advance_seconds"]))
                if "frozen" in spec:
                    self.clock.freeze(bool(spec["frozen"]))
            except (ValueError, TypeError, ApiError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            self._tick()
        return web.json_response({"now": render.iso(self.clock.now()), "frozen": self.clock.frozen})

    async def admin_truth(self, request: web.Request) -> web.Response:
        as_of = _parse_time("as_of", request.query["as_of"]) if "as_of" in request.query else self.clock.now()
        return web.json_response(ground_truth(self.world, as_of, seed=self.seed))

    def _log_page(self, log: Published, request: web.Request, key: str) -> web.Response:
        self._tick()
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "1000"))
        entries = log.entries[after : after + limit]
        return web.json_response({key: entries, "next": after + len(entries)})

    async def admin_notifications(self, request: web.Request) -> web.Response:
        return self._log_page(self.notifications, request, "notifications")

    async def admin_messages(self, request: web.Request) -> web.Response:
        return self._log_page(self.messages, request, "messages")

    async def admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(sorted(self.stats.items())))

    async def admin_queries(self, request: web.Request) -> web.Response:
        op = request.query.get("operation")
        found = [{"operation": k, "seller_id": s, "query": q} for k, s, q in self.queries if op in (None, k)]
        return web.json_response({"queries": found[-int(request.query.get("limit", "100")) :]})

    # --- the app ----------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        routes: list[
            tuple[Operation, Callable[[web.Request, str], Awaitable[tuple[int, dict[str, Any]]]]]
        ] = [
            (GET_ORDERS, self.get_orders),
            (GET_ORDER_V0, self.get_order_v0),
            (GET_ORDER_ITEMS, self.get_order_items),
            (SEARCH_ORDERS, self.search_orders),
            (GET_ORDER_2026, self.get_order_2026),
            (CREATE_REPORT, self.create_report),
            (GET_REPORT, self.get_report),
            (GET_REPORT_DOCUMENT, self.get_report_document),
            (CREATE_FEED_DOCUMENT, self.create_feed_document),
            (CREATE_FEED, self.create_feed),
            (GET_FEED, self.get_feed),
            (GET_FEED_DOCUMENT, self.get_feed_document),
        ]
        for op, handler in routes:
            app.router.add_route(op.method, op.path, self.endpoint(op, handler))
        app.router.add_post("/auth/o2/token", self.lwa_token)
        app.router.add_get("/_sim/documents/{documentId}", self.document_get)
        app.router.add_put("/_sim/documents/{documentId}", self.document_put)
        app.router.add_get("/_sim/sellers", self.admin_sellers)
        app.router.add_route("*", "/_sim/faults", self.admin_faults)
        app.router.add_route("*", "/_sim/rate-limits", self.admin_rate_limits)
        app.router.add_route("*", "/_sim/clock", self.admin_clock)
        app.router.add_get("/_sim/truth", self.admin_truth)
        app.router.add_get("/_sim/notifications", self.admin_notifications)
        app.router.add_get("/_sim/buyer-messages", self.admin_messages)
        app.router.add_get("/_sim/stats", self.admin_stats)
        app.router.add_get("/_sim/queries", self.admin_queries)
        app.router.add_get("/_sim/health", _ok)
        return app


async def _ok(_: web.Request) -> web.Response:
    return web.json_response({"status": "SERVING"})


def build_simulator(
    spec: ScenarioSpec, *, frozen: bool = False, faults: Faults | None = None, **kwargs: Any
) -> Simulator:
    """A simulator whose clock starts at the scenario's `now`."""
    return Simulator(
        generate_world(spec), SimClock(spec.now, frozen=frozen), faults=faults, seed=spec.seed, **kwargs
    )


# --- command line ------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cancelguard simulator",
        description="A stand-in for Amazon's SP-API on loopback (dev and tests only).\n\n"
        + (__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8700, help="port (0: any free one; default 8700)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--days", type=int, default=7, help="days of purchases before --now")
    p.add_argument(
        "--sellers",
        default=",".join(DEFAULT_SELLERS),
        help="comma-separated seller ids",
    )
    p.add_argument(
        "--marketplaces",
        default=",".join(DEFAULT_MARKETPLACES),
        help="comma-separated marketplace ids, known: " + ",".join(MARKETPLACES),
    )
    p.add_argument("--orders-per-day", type=int, default=12, help="per seller x marketplace")
    p.add_argument("--now", help="the simulated time at start (ISO 8601; default: the wall clock)")
    p.add_argument(
        "--frozen", action="store_true", help="stop the simulated clock (advance it via /_sim/clock)"
    )
    p.add_argument("--no-rate-limits", action="store_true", help="do not enforce usage plans (benchmarks)")
    p.add_argument("--error-500-rate", type=float, default=0.0)
    p.add_argument("--error-503-rate", type=float, default=0.0)
    p.add_argument("--throttle-rate", type=float, default=0.0, help="extra random 429s")
    p.add_argument("--slow-rate", type=float, default=0.0)
    p.add_argument("--slow-seconds", type=float, default=0.0)
    p.add_argument("--token-endpoint-down", action="store_true")
    p.add_argument("--processing-seconds", type=float, default=2.0, help="how long reports and feeds take")
    p.add_argument("--write-truth", type=Path, help="write the ground truth (as of start) to this JSON file")
    p.add_argument(
        "--write-notifications",
        type=Path,
        help="write every ORDER_CHANGE published by start as JSON lines (for `cancelguard publish`)",
    )
    p.add_argument("--write-messages", type=Path, help="the same for buyer messages")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    now = _parse_time("--now", args.now) if args.now else datetime.now(UTC).replace(microsecond=0)
    try:
        spec = ScenarioSpec(
            now,
            seed=args.seed,
            days=args.days,
            sellers=tuple(args.sellers.split(",")),
            marketplaces=tuple(args.marketplaces.split(",")),
            orders_per_day=args.orders_per_day,
        )
        faults = Faults()
        faults.update({
            "rate_limits": not args.no_rate_limits, "error_500_rate": args.error_500_rate,
            "error_503_rate": args.error_503_rate, "throttle_rate": args.throttle_rate,
            "slow_rate": args.slow_rate, "slow_seconds": args.slow_seconds,
            "token_endpoint_down": args.token_endpoint_down, "processing_seconds": args.processing_seconds,
        })  # fmt: skip
    except (ValueError, ApiError) as exc:
        print(f"cancelguard simulator: {exc}", file=sys.stderr)
        return 2
    sim = build_simulator(spec, frozen=args.frozen, faults=faults)
    sim._tick()
    if args.write_truth:
        args.write_truth.write_text(json.dumps(ground_truth(sim.world, now, seed=args.seed), indent=1))
    for path, log in ((args.write_notifications, sim.notifications), (args.write_messages, sim.messages)):
        if path:
            path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in log.entries))
    print(
        f"cancelguard simulator: {len(sim.world.orders)} orders, {len(spec.sellers)} sellers x "
        f"{len(spec.marketplaces)} marketplaces, clock at {render.iso(now)}; "
        f"SP-API on http://{args.host}:{args.port}, LWA at /auth/o2/token, sellers and their (fake) refresh "
        f"tokens at /_sim/sellers",
        file=sys.stderr,
    )
    web.run_app(
        sim.app(),
        host=args.host,
        port=args.port,
        print=lambda line: print(line, file=sys.stderr),
        access_log=None,
    )
    return 0
