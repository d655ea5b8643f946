"""The read cache: dropped by the notifications that name what changed, off when the listener is not
known alive, and never filled by a read that raced a notification."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cancelguard.api.cache import ALIVE_S, CachedOrder, OpenRequests, ReadCache
from cancelguard.metrics.store import ListedOrder

A, B = ("S1", "M1"), ("S2", "M1")
W = ("start", "end")


def _alive() -> ReadCache:
    cache = ReadCache()
    cache.notified("h")
    return cache


def test_a_bucket_notification_drops_that_accounts_rates_only() -> None:
    cache = _alive()
    cache.put_rate(A, W, (10, 1), cache.token())
    cache.put_rate(B, W, (20, 2), cache.token())
    cache.notified("r S1|M1")
    assert cache.rate(A, W) is None and cache.rate(B, W) == (20, 2)


def test_order_notifications_drop_one_order_or_a_whole_account() -> None:
    cache = _alive()
    entry = CachedOrder(b"x", 1, False)
    for order_id in ("o1", "o2"):
        cache.put_order(A, order_id, entry, cache.token())
    cache.put_order(B, "o3", entry, cache.token())
    cache.notified("o S1|M1|o1")
    assert cache.order(A, "o1") is None and cache.order(A, "o2") == entry
    cache.notified("O S2|M1")
    assert cache.order(B, "o3") is None
    cache.notified("*")
    assert cache.order(A, "o2") is None


def test_a_read_that_raced_a_notification_is_not_stored() -> None:
    cache = _alive()
    token = cache.token()
    cache.notified("r S1|M1")  # a commit landed while the read ran
    cache.put_rate(A, W, (10, 1), token)
    assert cache.rate(A, W) is None


def test_without_a_live_listener_nothing_is_served_or_stored() -> None:
    cache = ReadCache()  # no heartbeat yet
    cache.put_rate(A, W, (10, 1), cache.token())
    assert cache.rate(A, W) is None
    cache = _alive()
    cache.put_rate(A, W, (10, 1), cache.token())
    cache.lost()
    assert cache.rate(A, W) is None
    cache = _alive()
    cache._alive_until = time.monotonic() - ALIVE_S  # heartbeats stopped coming back
    assert not cache.usable


def test_the_cache_stays_within_its_bound() -> None:
    cache = ReadCache(max_entries=10)
    cache.notified("h")
    for n in range(50):
        cache.put_order((f"S{n}", "M"), "o", CachedOrder(b"", 0, False), cache.token())
    assert cache._entries <= 10


def test_request_changes_wake_the_watchers_of_that_seller() -> None:
    woken = []
    cache = _alive()
    cache.on_request_changes = woken.append
    cache.notified("c S1 S2")
    assert woken == ["S1", "S2"]


def _listed(*ids: str) -> OpenRequests:
    return OpenRequests.of(
        [ListedOrder(i, datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=n)) for n, i in enumerate(ids)]
    )


def test_a_list_of_open_requests_is_dropped_by_request_changes_of_its_seller() -> None:
    cache = _alive()
    cache.put_open_requests(A, _listed("o1", "o2"), cache.token())
    cache.put_open_requests(B, _listed("o3"), cache.token())
    cache.notified("c S1")
    assert cache.open_requests(A) is None and cache.open_requests(B) is not None
    cache.notified("c *")
    assert cache.open_requests(B) is None


def test_a_list_of_open_requests_is_dropped_when_a_listed_order_changes_or_goes() -> None:
    cache = _alive()
    cache.put_open_requests(A, _listed("o1", "o2"), cache.token())
    cache.notified("o S1|M1|o9")  # not listed, and no request change came with it: the list stands
    assert cache.open_requests(A) is not None
    cache.notified("o S1|M1|o2")  # e.g. deleted by retention, which logs no request change
    assert cache.open_requests(A) is None
    cache.put_open_requests(A, _listed("o1"), cache.token())
    cache.notified("O S1|M1")
    assert cache.open_requests(A) is None
    cache.put_open_requests(A, _listed("o1"), cache.token())
    cache.notified("g")
    assert cache.open_requests(A) is None


def test_lists_of_open_requests_count_toward_the_bound() -> None:
    cache = ReadCache(max_entries=3)
    cache.notified("h")
    cache.put_open_requests(A, _listed("o1", "o2", "o3"), cache.token())
    cache.put_order(B, "o4", CachedOrder(b"x", 1, False), cache.token())  # over the bound: A's list goes
    assert cache.open_requests(A) is None and cache.order(B, "o4") is not None


FIRST = ("", 2)  # the first page of two orders: (page token, page size)


def _with_page(cache: ReadCache, *ids: str) -> OpenRequests:
    """A's list of `ids`, held, and its first page held with it."""
    listed = _listed(*ids)
    cache.put_open_requests(A, listed, cache.token())
    cache.put_page(A, listed, FIRST, b"page", list(ids[:2]))
    return listed


def test_a_page_is_held_with_its_list_for_the_same_request_only() -> None:
    cache = _alive()
    _with_page(cache, "o1", "o2", "o3")
    assert cache.page(A, FIRST) == b"page"
    assert (
        cache.page(A, ("", 3)) is None
        and cache.page(A, ("token", 2)) is None
        and cache.page(B, FIRST) is None
    )


@pytest.mark.parametrize(
    "notification",
    [
        "c S1",  # a request of the seller opened, changed or closed
        "c *",
        "o S1|M1|o2",  # an order on the page changed
        "o S1|M1|o3",  # an order of the list, not on the page: the list, and what follows from it, may differ
        "O S1|M1",
        "g",
        "*",
    ],
)
def test_a_held_page_goes_with_its_list(notification: str) -> None:
    cache = _alive()
    _with_page(cache, "o1", "o2", "o3")
    cache.notified(notification)
    assert cache.page(A, FIRST) is None
    assert cache._entries == 0


@pytest.mark.parametrize(
    "notification",
    ["c S2", "o S1|M1|o9", "o S2|M1|o1", "r S1|M1", "h"],  # another seller's, an unlisted order's, a rate's
)
def test_a_held_page_stays_through_what_does_not_change_it(notification: str) -> None:
    cache = _alive()
    _with_page(cache, "o1", "o2", "o3")
    cache.notified(notification)
    assert cache.page(A, FIRST) == b"page"


def _replaced(cache: ReadCache, listed: OpenRequests) -> list[str]:
    cache.put_open_requests(A, _listed("o1", "o2"), cache.token())  # a new list read meanwhile
    return ["o1", "o2"]


def _dropped(cache: ReadCache, listed: OpenRequests) -> list[str]:
    cache.notified("c S1")
    return ["o1", "o2"]


def _off_the_list(cache: ReadCache, listed: OpenRequests) -> list[str]:
    return ["o1", "o9"]  # (a page the database gave, with an order the list does not have)


def _listener_lost(cache: ReadCache, listed: OpenRequests) -> list[str]:
    cache.lost()
    return ["o1", "o2"]


@pytest.mark.parametrize("meanwhile", [_replaced, _dropped, _off_the_list, _listener_lost])
def test_a_page_is_not_held_unless_cut_from_the_list_held_all_along(meanwhile: Any) -> None:
    cache = _alive()
    listed = _listed("o1", "o2", "o3")
    cache.put_open_requests(A, listed, cache.token())
    order_ids = meanwhile(cache, listed)  # while the page was being made
    cache.put_page(A, listed, FIRST, b"page", order_ids)
    assert cache.page(A, FIRST) is None
    assert not listed.pages


def test_a_list_too_long_to_hold_holds_no_pages() -> None:
    cache = _alive()
    too_many = OpenRequests((), (), {}, complete=False)
    cache.put_open_requests(A, too_many, cache.token())
    cache.put_page(A, too_many, FIRST, b"page", [])
    assert not too_many.pages


def test_held_pages_count_toward_the_bound() -> None:
    cache = ReadCache(max_entries=6)
    cache.notified("h")
    listed = _with_page(cache, "o1", "o2", "o3")
    assert cache._entries == 3 + 2  # the rows, and the orders of the page
    cache.put_page(A, listed, FIRST, b"page again", ["o1", "o2"])  # the same request: held once
    assert cache.page(A, FIRST) == b"page" and cache._entries == 5
    cache.put_page(A, listed, ("", 3), b"bigger", ["o1", "o2", "o3"])  # over the bound: the list goes
    assert cache.page(A, FIRST) is None and cache._entries == 0
