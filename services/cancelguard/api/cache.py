"""The API's read cache: CR bucket sums, ready-made order messages and each account's list of open
requests with the pages asked of it, kept until a commit changes them.

Postgres tells us (migration 0005): triggers on `cr_buckets`, `amazon_rates`, `orders`,
`request_answers`, `request_changes` and `generations` send one
notification per statement on channel `cancelguard_reads`, delivered when the writing transaction
commits, naming the accounts or orders it changed. The listener drops those entries (a list of open
requests: when a request of the seller opened, changed or closed, or a listed order changed or went).
So a cached value
is never older than the notification of the commit that changed it (milliseconds), well inside the
freshness goal (event -> API, p99 <= 100 ms).

What keeps that promise when things go wrong:
- the cache is used only while the listening connection is known to be alive: it sends itself a
  heartbeat notification every `HEARTBEAT_S` and the cache turns itself off when one has not come back
  within `ALIVE_S` (a connection that hangs silently cannot leave stale values in use for longer);
- a lost connection turns the cache off at once; on reconnect it starts empty;
- a read that raced a notification is not stored: every fill carries the notification count seen
  before the read, and is dropped if any notification arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

log = logging.getLogger("cancelguard.api.cache")

CHANNEL = "cancelguard_reads"
HEARTBEAT_S = 0.5
ALIVE_S = 2.0

AccountKey = tuple[str, str]  # (seller_account, marketplace_id)


@dataclass(frozen=True, slots=True)
class CachedOrder:
    """An order's API message, serialized, and what list filters need without parsing it."""

    message: bytes
    action_code: int
    needs_review: bool


PageKey = tuple[str, int]  # (page token, page size) of a request for a page of open requests


@dataclass(frozen=True, slots=True)
class OpenRequests:
    """An account's orders with an open request, in list order (the database's: order ids are never
    compared here, so its collation does not matter). `complete` False: too many to hold, the list is
    read from the database page by page.

    `pages`: the answers to requests for pages of this list (`ReadCache.put_page`), each with the number of
    orders in it, which it counts toward the cache's bound (a page holds those orders' bytes again). They
    are held with the list and dropped with it: whatever would change a page drops the list."""

    rows: tuple[Any, ...]  # metrics.store.ListedOrder
    ats: tuple[Any, ...]  # each row's request time, for bisection
    index: dict[str, int]  # order id -> its position in rows
    complete: bool = True
    pages: dict[PageKey, tuple[bytes, int]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, rows: list[Any]) -> OpenRequests:
        return cls(tuple(rows), tuple(r.at for r in rows), {r.amazon_order_id: n for n, r in enumerate(rows)})

    def entries(self) -> int:
        """What this list counts toward the cache's bound: its rows and the orders of its pages."""
        return len(self.rows) + sum(orders for _, orders in self.pages.values())


class ReadCache:
    def __init__(self, *, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._rates: dict[AccountKey, dict[tuple[Any, ...], Any]] = {}  # bucket sums, Amazon's figures
        self._orders: dict[AccountKey, dict[str, CachedOrder]] = {}
        self._open: dict[AccountKey, OpenRequests] = {}
        self._entries = 0
        self._seq = 0  # notifications seen: a fill started before the latest one is not stored
        self._alive_until = 0.0  # monotonic time until which the listener is known to be alive
        self.on_request_changes: Callable[[str], None] = lambda seller: None
        self.on_generation: Callable[[], None] = lambda: None

    # --- reads and fills ---

    @property
    def usable(self) -> bool:
        return time.monotonic() < self._alive_until

    def token(self) -> int:
        return self._seq

    def rate(self, account: AccountKey, window: tuple[Any, ...]) -> Any:
        if not self.usable:
            return None
        found = self._rates.get(account)
        return found.get(window) if found is not None else None

    def put_rate(self, account: AccountKey, window: tuple[Any, ...], totals: Any, token: int) -> None:
        if token == self._seq and self.usable:
            self._room()
            table = self._rates.setdefault(account, {})
            self._entries += window not in table
            table[window] = totals

    def order(self, account: AccountKey, order_id: str) -> CachedOrder | None:
        if not self.usable:
            return None
        found = self._orders.get(account)
        return found.get(order_id) if found is not None else None

    def put_order(self, account: AccountKey, order_id: str, entry: CachedOrder, token: int) -> None:
        if token == self._seq and self.usable:
            self._room()
            table = self._orders.setdefault(account, {})
            self._entries += order_id not in table
            table[order_id] = entry

    def open_requests(self, account: AccountKey) -> OpenRequests | None:
        return self._open.get(account) if self.usable else None

    def put_open_requests(self, account: AccountKey, found: OpenRequests, token: int) -> None:
        if token == self._seq and self.usable:
            self._drop_open(account)
            adding = found.entries()
            self._room(adding)
            self._entries += adding
            self._open[account] = found

    def page(self, account: AccountKey, key: PageKey) -> bytes | None:
        """The answer held for a request for a page of the account's open requests."""
        listed = self.open_requests(account)
        found = listed.pages.get(key) if listed is not None else None
        return found[0] if found is not None else None

    def put_page(
        self, account: AccountKey, listed: OpenRequests, key: PageKey, page: bytes, order_ids: list[str]
    ) -> None:
        """Holds `page`, the answer of the orders `order_ids` cut from `listed`, if `listed` is the account's
        list still: it was held all along then (a list dropped is never held again), so nothing that would
        change the page came while it was made; and each of its orders is on the list, so a change to any
        of them drops the list, and the page with it."""
        if (
            self.open_requests(account) is listed
            and listed.complete
            and key not in listed.pages  # (two calls made it at once: the same bytes, from the same list)
            and all(order_id in listed.index for order_id in order_ids)
        ):
            self._room(len(order_ids))
            if self._open.get(account) is listed:  # (making room may have dropped it)
                self._entries += len(order_ids)
                listed.pages[key] = (page, len(order_ids))

    def _room(self, adding: int = 1) -> None:
        # over the bound with `adding` more: drop the account cached first (its entries are the oldest as a
        # group)
        while self._entries + adding > self.max_entries:
            table: dict[AccountKey, Any] = max((self._orders, self._rates, self._open), key=len)
            if not table:
                self._entries = 0
                return
            dropped = table.pop(next(iter(table)))
            self._entries -= dropped.entries() if type(dropped) is OpenRequests else len(dropped)

    def _drop_open(self, account: AccountKey) -> None:
        dropped = self._open.pop(account, None)
        if dropped is not None:
            self._entries -= dropped.entries()

    # --- invalidation ---

    def clear(self) -> None:
        self._seq += 1
        self._rates.clear()
        self._orders.clear()
        self._open.clear()
        self._entries = 0

    def notified(self, payload: str) -> None:
        """One notification from the triggers of migration 0005."""
        self._seq += 1
        kind, _, keys = payload.partition(" ")
        if kind == "r":
            for key in keys.split():
                seller, _, mkt = key.partition("|")
                self._entries -= len(self._rates.pop((seller, mkt), ()))
        elif kind == "o":
            for key in keys.split():
                seller, mkt, order_id = [*key.split("|", 2), "", ""][:3]
                found = self._orders.get((seller, mkt))
                if found is not None and found.pop(order_id, None) is not None:
                    self._entries -= 1
                listed = self._open.get((seller, mkt))
                if listed is not None and order_id in listed.index:  # a listed order changed or went
                    self._drop_open((seller, mkt))
        elif kind == "O":
            for key in keys.split():
                seller, _, mkt = key.partition("|")
                self._entries -= len(self._orders.pop((seller, mkt), ()))
                self._drop_open((seller, mkt))
        elif kind == "c":  # requests opened, changed or closed: those sellers' lists of open requests
            sellers = keys.split()
            for account in [a for a in self._open if a[0] in sellers or "*" in sellers]:
                self._drop_open(account)
            for seller in sellers:
                self.on_request_changes(seller)
        elif kind == "g":  # another generation is active: every figure and order may differ
            self.clear()
            self.on_generation()
        elif kind == "h":
            self._seq -= 1  # a heartbeat changes nothing
            self._alive_until = time.monotonic() + ALIVE_S
        else:  # "*", or anything this version does not know: drop everything
            self.clear()

    def lost(self) -> None:
        self._alive_until = 0.0
        self.clear()


class Listener:
    """LISTENs on a connection of its own, feeds the cache, reconnects with backoff."""

    def __init__(self, cache: ReadCache, connect: Callable[[], Any]) -> None:
        self.cache = cache
        self.connect = connect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="read-cache-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.25
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.connect()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: self.cache.notified(payload))
                self.cache.clear()  # whatever was cached before may have missed notifications
                self.connected.set()
                delay = 0.25
                while not lost.is_set():
                    async with asyncio.timeout(ALIVE_S):
                        await conn.execute(f"NOTIFY {CHANNEL}, 'h'")
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HEARTBEAT_S):
                            await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres away: the cache is off until we are back
                log.debug("read cache listener: %s", exc)
            finally:
                self.cache.lost()
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
