"""The client on a canned loopback server: malformed answers raise MalformedResponse naming the JSON
path; query encoding; secrets stay hidden."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from fakes import FakeClock

from cancelguard.amazon import (
    Backoff,
    LwaCredentials,
    MalformedResponse,
    Secret,
    SellerConnection,
    SpApiClient,
    amazon_timestamp,
)
from cancelguard.amazon.client import encode_query

AFTER = datetime(2026, 11, 1, tzinfo=UTC)


async def canned(body: Any, token_body: Any = None) -> AsyncIterator[SpApiClient]:
    async def token(_: web.Request) -> web.Response:
        return web.json_response(token_body or {"access_token": "Atza|t", "expires_in": 3600})

    async def answer(_: web.Request) -> web.Response:
        return web.Response(
            text=body if isinstance(body, str) else json.dumps(body), content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/auth/o2/token", token)
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    conn = SellerConnection(
        "A1SELLER",
        base,
        LwaCredentials("client", Secret("secret"), Secret("Atzr|r")),
        lwa_endpoint=f"{base}/auth/o2/token",
        backoff=Backoff(0.001, 0.002, 2),
    )
    try:
        async with SpApiClient(conn, clock=FakeClock()) as client:
            yield client
    finally:
        await runner.cleanup()


ORDER = {"AmazonOrderId": "111-1-1", "LastUpdateDate": "x", "OrderStatus": "Shipped", "PurchaseDate": "x"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("not json", "$"),
        ([], "$"),
        ({}, "$.payload"),
        ({"payload": []}, "$.payload"),
        ({"payload": {}}, "$.payload.Orders"),
        ({"payload": {"Orders": {}}}, "$.payload.Orders"),
        ({"payload": {"Orders": [ORDER], "NextToken": 5}}, "$.payload.NextToken"),
    ],
)
async def test_malformed_get_orders_pages_name_the_path(body: Any, path: str) -> None:
    async for client in canned(body):
        with pytest.raises(MalformedResponse) as caught:
            async for _ in client.orders_v0.get_orders(
                marketplace_ids=["ATVPDKIKX0DER"], last_updated_after=AFTER
            ):
                pass
        assert caught.value.path == path and caught.value.operation == "getOrders"


async def test_a_page_with_malformed_orders_comes_back_whole() -> None:
    """One bad order must not hold back its page: the adapters check each order and dead-letter the
    bad ones with their path (tests/integration/pollers/test_bad_pages.py)."""
    bad = [1, {**ORDER, "AmazonOrderId": None}, {k: v for k, v in ORDER.items() if k != "OrderStatus"}]
    async for client in canned({"payload": {"Orders": [ORDER, *bad]}}):
        pages = [
            p
            async for p in client.orders_v0.get_orders(
                marketplace_ids=["ATVPDKIKX0DER"], last_updated_after=AFTER
            )
        ]
        assert [p.orders for p in pages] == [[ORDER, *bad]]
    async for client in canned({"orders": [{"orderId": "1"}, "x"]}):
        pages26 = [p async for p in client.orders_2026.search_orders(last_updated_after=AFTER)]
        assert [p.orders for p in pages26] == [[{"orderId": "1"}, "x"]]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "$.orders"),
        ({"orders": {}}, "$.orders"),
        ({"orders": [], "pagination": []}, "$.pagination"),
    ],
)
async def test_malformed_search_orders_pages_name_the_path(body: Any, path: str) -> None:
    async for client in canned(body):
        with pytest.raises(MalformedResponse) as caught:
            async for _ in client.orders_2026.search_orders(last_updated_after=AFTER):
                pass
        assert caught.value.path == path


@pytest.mark.parametrize(
    ("token_body", "path"),
    [({"expires_in": 3600}, "$.access_token"), ({"access_token": "a", "expires_in": "soon"}, "$.expires_in")],
)
async def test_a_malformed_token_answer_names_the_path(token_body: Any, path: str) -> None:
    async for client in canned({}, token_body):
        with pytest.raises(MalformedResponse) as caught:
            await client.orders_v0.get_order("111-1-1")
        assert caught.value.path == path and caught.value.operation == "lwa.token"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"last_updated_after": AFTER, "created_after": AFTER}, "mutually exclusive"),
        ({}, "either created_after or last_updated_after"),
        ({"last_updated_after": AFTER, "last_updated_before": AFTER - timedelta(1)}, "equal to or after"),
        ({"last_updated_after": AFTER, "order_statuses": ["Cancelled"]}, "unknown order status"),
        ({"last_updated_after": AFTER, "max_results_per_page": 0}, "1-100"),
    ],
)
async def test_bad_filters_are_refused_before_spending_a_token(kwargs: dict, message: str) -> None:
    async for client in canned({}):
        with pytest.raises(ValueError, match=message):
            async for _ in client.orders_v0.get_orders(marketplace_ids=["ATVPDKIKX0DER"], **kwargs):
                pass
        assert client.tokens.requests_sent == 0


def test_query_encoding() -> None:
    assert encode_query(
        {
            "MarketplaceIds": ["A", "B"],
            "CreatedAfter": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "MaxResultsPerPage": 50,
            "IsISPU": False,
            "NextToken": None,
            "OrderStatuses": [],
        }
    ) == {
        "MarketplaceIds": "A,B",
        "CreatedAfter": "2026-01-02T01:04:05Z",
        "MaxResultsPerPage": "50",
        "IsISPU": "false",
    }
    with pytest.raises(ValueError, match="no time zone"):
        amazon_timestamp(datetime(2026, 1, 1))


def test_secrets_never_show() -> None:
    creds = LwaCredentials("client", Secret("top-secret"), Secret("Atzr|refresh"))
    conn = SellerConnection("A1SELLER", "https://sellingpartnerapi-eu.amazon.com", creds)
    for text in (repr(creds), str(conn), repr(conn), f"{creds.client_secret}"):
        assert "top-secret" not in text and "Atzr|refresh" not in text
    assert creds.client_secret.reveal() == "top-secret"
    with pytest.raises(ValueError, match="client_secret"):
        LwaCredentials("client", Secret(""), Secret("x"))
