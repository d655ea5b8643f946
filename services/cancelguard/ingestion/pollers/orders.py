"""The Orders API pollers: one seller account's changed orders -> order events, from a cursor.

One query per poll covers every marketplace of the account (`MarketplaceIds` takes up to 50): the
usage plans are per seller and operation, and searchOrders allows one call every 180 s, so a query per
marketplace would leave a seller with twelve marketplaces polled every 36 minutes. The cursors are
still kept per marketplace; they move together.

A poll (domain.md §1, Implications 4-5):
- starts at the oldest cursor of the account's marketplaces minus `poll_overlap_s` (Amazon's search
  index lags behind its orders, sometimes by minutes, so a change dated before the last bound can show
  up after it), or `poll_backfill_days` back for an account never polled;
- asks with `LastUpdatedAfter` and no `LastUpdatedBefore`: Amazon applies "now minus two minutes" and
  says so in the answer's `LastUpdatedBefore`, which becomes the next cursor;
- reads only MFN orders (the Cancellation Rate's scope): v0 `FulfillmentChannels=MFN` (then
  `getOrderItems` for the orders whose `LastUpdateDate` changed while Pending or Unshipped, or that are
  Canceled: only the items say whether the buyer asked to cancel), v2026 `fulfilledBy=MERCHANT` with
  `includedData=CANCELLATION,FULFILLMENT` (who cancelled and why, inline: no item fan-out);
- sends each page's events (or dead letters: one malformed order never holds back its page) and waits
  for Kafka's acknowledgements before reading the next page; the cursors move once the last page is
  acknowledged. A crash in between re-reads the poll from the old cursor: repeats, never a gap.

Orders already published with the same last-update time (the overlap re-reads them) are skipped, so
neither Kafka nor getOrderItems' scarce budget is spent on them twice; after a restart that memory is
empty and they are re-published with the same event ids, which the fold absorbs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cancelguard import dead_letters
from cancelguard.accounts import OrdersApi, SellerAccount
from cancelguard.amazon import MalformedResponse, SpApiClient, SpApiError
from cancelguard.amazon.operations import GET_ORDER_ITEMS, GET_ORDERS, SEARCH_ORDERS
from cancelguard.domain.bounds import Reason, invalid
from cancelguard.domain.model import InvalidInput, OrderEvent, parse_time
from cancelguard.ingestion.adapters import orders_v0, orders_v2026
from cancelguard.ingestion.pollers.cursors import CursorStore
from cancelguard.ingestion.routing import Outgoing, Route, Sender

log = logging.getLogger("cancelguard.pollers")

SOURCE = {OrdersApi.V0: "orders-v0", OrdersApi.V2026: "orders-v2026"}
# v0 statuses whose items are read when the order changed: a request can stand on them (Pending,
# Unshipped), or a cancel happened and the request flags say whether it was the buyer's (Canceled)
ITEMS_NEEDED = frozenset({"Pending", "Unshipped", "Canceled"})
PAGE_SIZE = 100


def malformed(exc: MalformedResponse) -> InvalidInput:
    """An answer without the shape its model promises, as bad input for a dead letter."""
    reason = Reason.MISSING_FIELD if exc.problem == "required field missing" else Reason.WRONG_TYPE
    return invalid(reason, str(exc))


@dataclass
class PollResult:
    pages: int = 0
    documents: int = 0  # orders read, repeats included
    repeats: int = 0  # skipped: already published with the same last-update time
    items_fetched: int = 0  # v0 getOrderItems calls
    read_until: datetime | None = None  # the cursor saved (None: the poll did not finish)


class OrdersPoller:
    """Polls one seller account's orders (all its marketplaces) with the Orders API it is configured for."""

    def __init__(
        self,
        account: SellerAccount,
        client: SpApiClient,
        cursors: CursorStore,
        route: Route,
        sender: Sender,
        *,
        overlap: timedelta,
        backfill: timedelta,
        now: Callable[[], datetime],
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.account = account
        self.page_size = page_size
        self.client = client
        self.cursors = cursors
        self.route = route
        self.sender = sender
        self.overlap = overlap
        self.backfill = backfill
        self.now = now
        self.source = SOURCE[account.orders_api]
        # (order id, last-update time as Amazon wrote it) -> that time: what this process published
        self._published: dict[tuple[str, str], datetime] = {}
        # an order without a marketplace of its own belongs to the one polled, when only one is
        self._fallback_marketplace = account.marketplaces[0] if len(account.marketplaces) == 1 else None
        self._key = account.seller_id.encode()  # a dead letter's key: whose document it was

    async def start_time(self) -> datetime:
        """Where the next poll starts: the oldest cursor minus the overlap (backfill for a new account)."""
        saved = await self.cursors.load(self.account.seller_id, self.source)
        first = self.now() - self.backfill
        return min(saved.get(m, first) for m in self.account.marketplaces) - self.overlap

    async def poll_once(self, stop: asyncio.Event) -> PollResult:
        """One poll: every page, sent and acknowledged, then the cursors. Raises what the client raises
        (the caller backs off); returns with `read_until` None if stopped before the end."""
        after = await self.start_time()
        result = PollResult()
        bound: datetime | None = None
        latest: datetime | None = None
        async for page_orders, request_id, page_bound in self._pages(after):
            result.pages += 1
            outgoing, published = await self._page(page_orders, request_id, result)
            if not await self.sender.send_all(outgoing, stop):
                return result
            self._published.update(published)
            if published:
                latest = max(latest or after, *published.values())
            if page_bound is not None:
                bound = _amazon_time(page_bound, "LastUpdatedBefore")
        # Amazon always says the bound it applied; should it not, the newest change read is a safe one
        read_until = bound or latest
        if read_until is not None:
            account = self.account
            await self.cursors.save(account.seller_id, account.marketplaces, self.source, read_until)
            self._forget_before(read_until - self.overlap - timedelta(minutes=5))
        result.read_until = read_until
        return result

    def _forget_before(self, horizon: datetime) -> None:
        self._published = {k: at for k, at in self._published.items() if at >= horizon}

    async def _pages(self, after: datetime) -> Any:
        """(orders, request id, the answer's LastUpdatedBefore) per page of this account's query."""
        markets = list(self.account.marketplaces)
        if self.account.orders_api is OrdersApi.V0:
            async for p in self.client.orders_v0.get_orders(
                marketplace_ids=markets,
                last_updated_after=after,
                fulfillment_channels=["MFN"],
                max_results_per_page=self.page_size,
            ):
                yield p.orders, p.request_id, p.last_updated_before
        else:
            async for q in self.client.orders_2026.search_orders(
                marketplace_ids=markets,
                last_updated_after=after,
                fulfilled_by=["MERCHANT"],
                included_data=("CANCELLATION", "FULFILLMENT"),
                max_results_per_page=self.page_size,
            ):
                yield q.orders, q.request_id, q.last_updated_before

    async def _page(
        self, orders: Sequence[Any], request_id: str, result: PollResult
    ) -> tuple[list[Outgoing], dict[tuple[str, str], datetime]]:
        outgoing: list[Outgoing] = []
        published: dict[tuple[str, str], datetime] = {}
        v0 = self.account.orders_api is OrdersApi.V0
        id_field, time_field = ("AmazonOrderId", "LastUpdateDate") if v0 else ("orderId", "lastUpdatedTime")
        for n, order in enumerate(orders):
            result.documents += 1
            seen = _version(order, id_field, time_field)
            if seen is not None and seen[0] in self._published:
                result.repeats += 1
                self.route.tally(self.source, "ignored")
                continue
            if v0:
                path = f"$.payload.Orders[{n}]"
                outgoing += await self._v0_order(order, request_id, path, result)
            else:
                outgoing += self._v2026_order(order, request_id, f"$.orders[{n}]")
            if seen is not None:
                published[seen[0]] = seen[1]
        return outgoing, published

    async def _v0_order(self, order: Any, request_id: str, path: str, result: PollResult) -> list[Outgoing]:
        origin = dead_letters.ApiOrigin(GET_ORDERS.key, request_id, path)
        items: list[Any] | None = None
        problem: InvalidInput | None = None
        if isinstance(order, dict) and order.get("OrderStatus") in ITEMS_NEEDED:
            order_id = order.get("AmazonOrderId")
            if isinstance(order_id, str) and order_id:
                try:
                    items = await self.client.orders_v0.get_order_items(order_id)
                    result.items_fetched += 1
                except MalformedResponse as exc:
                    problem = malformed(exc)
                    origin = dead_letters.ApiOrigin(GET_ORDER_ITEMS.key, "", f"{exc.path} (order {path})")
                except SpApiError as exc:
                    if exc.status in (401, 403):  # the app's access, not this order: the poll fails
                        raise
                    if exc.status != 404:  # Amazon refuses this order's items: keep the order, say why
                        problem = invalid(Reason.UNKNOWN_VALUE, f"getOrderItems refused: {exc}")
                    # 404: gone from the API between the two calls; the order is still worth publishing
        document = order if items is None else {**order, "OrderItems": items}

        def build() -> list[OrderEvent]:
            if problem is not None:
                raise problem
            event = orders_v0.parse_order_v0(
                _object(order, orders_v0.WHAT),
                items,
                seller_account=self.account.seller_id,
                observed_at=self.now(),
                marketplace_id=self._fallback_marketplace,
            )
            return [event]

        return self.route.document(
            self.source,
            build,
            now=self.now(),
            original=lambda: json.dumps(document).encode(),
            origin=origin,
            key=self._key,
            personal_fields=orders_v0.PERSONAL_FIELDS,
        )

    def _v2026_order(self, order: Any, request_id: str, path: str) -> list[Outgoing]:
        return self.route.document(
            self.source,
            lambda: [
                orders_v2026.parse_order_v2026(
                    _object(order, orders_v2026.WHAT),
                    seller_account=self.account.seller_id,
                    observed_at=self.now(),
                    marketplace_id=self._fallback_marketplace,
                )
            ],
            now=self.now(),
            original=lambda: json.dumps(order).encode(),
            origin=dead_letters.ApiOrigin(SEARCH_ORDERS.key, request_id, path),
            key=self._key,
            personal_fields=orders_v2026.PERSONAL_FIELDS,
        )


def _object(doc: Any, what: str) -> dict[str, Any]:
    """A page's entry as an order object (the adapters would read a string as JSON text)."""
    if not isinstance(doc, dict):
        raise invalid(Reason.NOT_AN_OBJECT, f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def _version(order: Any, id_field: str, time_field: str) -> tuple[tuple[str, str], datetime] | None:
    """(order id, last-update text) and its time, when the order has both in a readable form."""
    if not isinstance(order, dict):
        return None
    order_id, updated = order.get(id_field), order.get(time_field)
    if not isinstance(order_id, str) or not isinstance(updated, str):
        return None
    try:
        return (order_id, updated), parse_time(updated, time_field)
    except InvalidInput:
        return None


def _amazon_time(value: str, name: str) -> datetime:
    try:
        return parse_time(value, name)
    except InvalidInput as exc:
        raise MalformedResponse("poll", f"$.{name}", str(exc)) from None
