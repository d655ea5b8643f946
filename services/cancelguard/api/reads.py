"""Reads for the servicers: rates and orders through the read cache, lists in keyset pages.

An order is kept as its serialized API message (with what list filters need), built once from the
stored state with the domain rules: a cache hit costs a dictionary lookup, not a JSON decode, an
attribution and a recommendation.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cancelguard.api import convert
from cancelguard.api.cache import CachedOrder, OpenRequests, ReadCache
from cancelguard.api.validation import Policies
from cancelguard.domain.actions import recommend
from cancelguard.domain.attribution import attribute
from cancelguard.domain.model import OrderKey
from cancelguard.domain.windows import CancellationRate, Window, WindowKind, rate_status
from cancelguard.metrics.store import After, AmazonFigure, ApiReads, ListedOrder, OrderRecord, Store

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
CHUNK = 200  # rows a list reads from one marketplace at a time
OPEN_LIST_MAX = 10_000  # an account's open requests the cache holds whole (more: read page by page)
_TOO_MANY = OpenRequests((), (), {}, complete=False)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a list stopped: the last order given, in the list's order (phase A: open requests by
    request time; phase B: the others by purchase time, latest first)."""

    phase: str
    at: datetime
    marketplace_id: str
    order_id: str

    def after_in(self, marketplace_id: str, phase: str) -> After:
        """This position as seen from one marketplace's list (marketplaces break ties of time)."""
        if phase != self.phase:  # the cursor is in phase A and this is phase B: from its start
            return After()
        if marketplace_id == self.marketplace_id:
            return After(self.at, True, self.order_id)
        later = marketplace_id > self.marketplace_id
        return After(self.at, later, None)


class Reads:
    def __init__(self, store: Store, cache: ReadCache) -> None:
        self.store = store
        self.api = ApiReads(store)
        self.cache = cache
        self._policies: dict[int, Policies] = {}
        cache.on_generation = store.forget_active

    async def policies(self) -> Policies:
        """The policy the served numbers were computed with: the active generation's, so that what the
        API attributes and what the buckets count never disagree (a new policy comes with a rebuild)."""
        gen = await self.store.active_generation()
        found = self._policies.get(gen.generation)
        if found is None:
            found = self._policies[gen.generation] = Policies(gen.policies)
        return found

    async def totals(
        self, seller: str, marketplace_id: str, window: Window, *, timeout: float | None
    ) -> tuple[int, int]:
        """(orders, cancellations) of a window."""
        account = (seller, marketplace_id)
        key = (window.start, window.end)
        found = self.cache.rate(account, key)
        if found is not None:
            return found
        token = self.cache.token()
        totals = await self.store.bucket_totals(
            seller, marketplace_id, window.start, window.end, timeout=timeout
        )
        self.cache.put_rate(account, key, totals, token)
        return totals

    async def rate(
        self, seller: str, marketplace_id: str, window: Window, *, timeout: float | None
    ) -> CancellationRate:
        orders, cancellations = await self.totals(seller, marketplace_id, window, timeout=timeout)
        policy = (await self.policies()).for_marketplace(marketplace_id)
        return CancellationRate(window, cancellations, orders, rate_status(cancellations, orders, policy))

    async def amazon_figure(
        self, seller: str, marketplace_id: str, rate: CancellationRate, *, timeout: float | None
    ) -> AmazonFigure | None:
        """Amazon's own figure for the rate's window (Amazon-aligned windows only), beside ours."""
        window = rate.window
        if window.kind is not WindowKind.AMAZON_ALIGNED:
            return None
        account = (seller, marketplace_id)
        key = ("amazon", window.start, window.end)
        found = self.cache.rate(account, key)  # () when known to have none
        if found is None:
            token = self.cache.token()
            reported = await self.api.amazon_rate(
                seller, marketplace_id, window.start, window.end, timeout=timeout
            )
            found = () if reported is None else (reported,)
            self.cache.put_rate(account, key, found, token)
        if not found:
            return None
        orders, cancellations, amazon_rate, status, reported_at = found[0]
        return AmazonFigure(
            window.start,
            window.end,
            orders,
            cancellations,
            amazon_rate,
            status,
            reported_at,
            our_orders=rate.denominator,
            our_cancellations=rate.numerator,
        )

    async def record(self, key: OrderKey, *, timeout: float | None) -> OrderRecord | None:
        """The stored order itself (not cached: the write side decides on it)."""
        found = await self.api.records(
            key.seller_account, key.marketplace_id, [key.amazon_order_id], timeout=timeout
        )
        return found.get(key.amazon_order_id)

    def entry(self, record: OrderRecord, policies: Policies) -> CachedOrder:
        order = record.order
        policy = policies.for_marketplace(order.key.marketplace_id)
        attribution = attribute(order, policy)
        action = recommend(order, policy)
        message = convert.order_message(
            order, attribution, action, answered_at=record.answered_at, answered_by=record.answered_by
        )
        return CachedOrder(
            message.SerializeToString(), message.recommended_action.code, attribution.needs_review
        )

    async def entries(
        self, seller: str, marketplace_id: str, order_ids: Sequence[str], *, timeout: float | None
    ) -> dict[str, CachedOrder]:
        """The orders found among `order_ids`, as cached API messages."""
        account = (seller, marketplace_id)
        found: dict[str, CachedOrder] = {}
        missing = []
        for order_id in order_ids:
            entry = self.cache.order(account, order_id)
            if entry is None:
                missing.append(order_id)
            else:
                found[order_id] = entry
        if missing:
            token = self.cache.token()  # before the policy: a generation switch meanwhile drops the fill
            policies = await self.policies()
            for order_id, record in (
                await self.api.records(seller, marketplace_id, missing, timeout=timeout)
            ).items():
                entry = found[order_id] = self.entry(record, policies)
                self.cache.put_order(account, order_id, entry, token)
        return found

    # --- lists ---

    async def open_requests(
        self, seller: str, marketplace_id: str, *, timeout: float | None
    ) -> OpenRequests | None:
        """The account's open requests, whole, from the cache or read once into it; None when they are
        too many to hold or the cache is off (then pages are read from the database)."""
        account = (seller, marketplace_id)
        found = self.cache.open_requests(account)
        if found is None and self.cache.usable:
            token = self.cache.token()
            rows = await self.api.open_requests(
                seller, marketplace_id, After(), OPEN_LIST_MAX + 1, timeout=timeout
            )
            found = OpenRequests.of(rows) if len(rows) <= OPEN_LIST_MAX else _TOO_MANY
            self.cache.put_open_requests(account, found, token)
        return found if found is not None and found.complete else None

    async def listed(
        self,
        seller: str,
        marketplaces: Sequence[str],
        cursor: Cursor | None,
        *,
        phases: str = "AB",
        purchased: tuple[datetime | None, datetime | None] = (None, None),
        chunk: int = CHUNK,
        timeout: float | None,
    ) -> AsyncIterator[tuple[str, str, ListedOrder]]:
        """(phase, marketplace, order) after `cursor`, across marketplaces, in list order: phase A (open
        requests, oldest request first), then phase B (the other orders, latest purchase first)."""
        start = phases.index(cursor.phase) if cursor is not None else 0
        for phase in phases[start:]:
            streams = [
                self._one_marketplace(seller, mkt, phase, cursor, purchased, chunk, timeout)
                for mkt in marketplaces
            ]
            merged = streams[0] if len(streams) == 1 else _merge(streams, descending=phase == "B")
            async for mkt, row in merged:  # one marketplace: its own order, no merge to pay for
                yield phase, mkt, row
            cursor = None

    async def _one_marketplace(
        self,
        seller: str,
        marketplace_id: str,
        phase: str,
        cursor: Cursor | None,
        purchased: tuple[datetime | None, datetime | None],
        chunk: int,
        timeout: float | None,
    ) -> AsyncIterator[tuple[str, ListedOrder]]:
        after = cursor.after_in(marketplace_id, phase) if cursor is not None else After()
        if phase == "A" and purchased == (None, None):
            listed = await self.open_requests(seller, marketplace_id, timeout=timeout)
            if listed is not None and (start := _start_after(listed, after)) is not None:
                for row in listed.rows[start:]:
                    yield marketplace_id, row
                return
        read = self.api.open_requests if phase == "A" else self.api.other_orders
        while True:
            rows = await read(seller, marketplace_id, after, chunk, purchased=purchased, timeout=timeout)
            for row in rows:
                yield marketplace_id, row
            if len(rows) < chunk:
                return
            after = After(rows[-1].at, True, rows[-1].amazon_order_id)


def _start_after(listed: OpenRequests, after: After) -> int | None:
    """Where the rows after `after` begin in the list; None when only the database can tell: the
    position's order is no longer listed and others share its time (their order is the collation's)."""
    if after.at is None:
        return 0
    first = bisect_left(listed.ats, after.at)
    past = bisect_right(listed.ats, after.at, first)
    if not after.ties or first == past:
        return past
    if after.order_id is None:
        return first
    n = listed.index.get(after.order_id)
    return n + 1 if n is not None and first <= n < past else None


async def _merge(
    streams: list[AsyncIterator[tuple[str, ListedOrder]]], *, descending: bool
) -> AsyncIterator[tuple[str, ListedOrder]]:
    """Merge per-marketplace lists by (time, marketplace); within a marketplace the database's order
    stands (order ids are never compared here, so its collation does not matter)."""
    heads: list[tuple[tuple[int, str], int, tuple[str, ListedOrder]]] = []

    def key(item: tuple[str, ListedOrder]) -> tuple[int, str]:
        micros = (item[1].at - _EPOCH) // _US
        return (-micros if descending else micros, item[0])

    for n, stream in enumerate(streams):
        item = await anext(stream, None)
        if item is not None:
            heapq.heappush(heads, (key(item), n, item))
    while heads:
        _, n, item = heapq.heappop(heads)
        yield item
        following = await anext(streams[n], None)
        if following is not None:
            heapq.heappush(heads, (key(following), n, following))
