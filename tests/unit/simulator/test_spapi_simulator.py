"""The simulator follows the models: each rule's bad parameters get SP-API's error shape, answers match
the contracts derived from Amazon's models, usage plans give 429 with x-amzn-RateLimit-Limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from contract_check import load, violations

from cancelguard.amazon.operations import GET_ORDERS
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.server import Faults, Simulator, build_simulator
from cancelguard.simulator.spapi.testing import serving

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SELLER = "A1SIMSELLER01"
US, DE = "ATVPDKIKX0DER", "A1PA6795UKMFR9"
AFTER = "2026-11-12T00:00:00Z"


class Api:
    def __init__(self, sim: Simulator, base: str, session: aiohttp.ClientSession) -> None:
        self.sim, self.base, self.session = sim, base, session
        self.token = ""

    async def login(self, **form: str) -> tuple[int, dict[str, Any]]:
        data = {
            "grant_type": "refresh_token",
            "refresh_token": self.sim.world.sellers[SELLER].refresh_token,
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
            **form,
        }
        async with self.session.post(f"{self.base}/auth/o2/token", data=data) as resp:
            return resp.status, await resp.json()

    async def call(
        self, method: str, path: str, *, params: dict | None = None, json: Any = None
    ) -> tuple[int, dict[str, Any], Any]:
        if not self.token:
            self.token = (await self.login())[1]["access_token"]
        async with self.session.request(
            method, self.base + path, params=params, json=json, headers={"x-amz-access-token": self.token}
        ) as resp:
            return resp.status, await resp.json(), resp.headers


@pytest_asyncio.fixture(loop_scope="session")
async def api() -> AsyncIterator[Api]:
    sim = build_simulator(
        ScenarioSpec(NOW, orders_per_day=4),
        frozen=True,
        faults=Faults(rate_limits=False, processing_seconds=0),
    )
    async with serving(sim) as base, aiohttp.ClientSession() as session:
        yield Api(sim, base, session)


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    assert set(body) == {"errors"}, body
    (error,) = body["errors"]
    assert set(error) <= {"code", "message", "details"} and error["message"]
    return error["code"], error["message"]


GET_ORDERS_BAD = [
    ({"CreatedAfter": AFTER}, "MarketplaceIds"),
    ({"MarketplaceIds": US}, "Either CreatedAfter or LastUpdatedAfter"),
    ({"MarketplaceIds": US, "CreatedAfter": AFTER, "LastUpdatedAfter": AFTER}, "cannot be combined"),
    (
        {"MarketplaceIds": US, "CreatedAfter": AFTER, "LastUpdatedBefore": "2026-11-13T00:00:00Z"},
        "cannot be combined",
    ),
    (
        {"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "LastUpdatedBefore": "2026-11-20T11:59:00Z"},
        "two minutes",
    ),
    ({"MarketplaceIds": US, "CreatedAfter": AFTER, "CreatedBefore": "2026-11-20T11:58:30Z"}, "two minutes"),
    (
        {"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "LastUpdatedBefore": "2026-11-11T00:00:00Z"},
        "equal to or after",
    ),
    ({"MarketplaceIds": US, "LastUpdatedAfter": "yesterday"}, "not an ISO 8601"),
    ({"MarketplaceIds": US, "LastUpdatedAfter": "2026-11-21T00:00:00Z"}, "in the future"),
    ({"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "MaxResultsPerPage": "0"}, "between 1 and 100"),
    ({"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "MaxResultsPerPage": "101"}, "between 1 and 100"),
    (
        {"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "OrderStatuses": "Cancelled"},
        "Invalid OrderStatuses",
    ),
    (
        {"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "FulfillmentChannels": "MERCHANT"},
        "Invalid FulfillmentChannels",
    ),
    ({"MarketplaceIds": ",".join(["ATVPDKIKX0DER"] * 51), "LastUpdatedAfter": AFTER}, "at most 50"),
    ({"MarketplaceIds": "A1AM78C64UM0Y8", "LastUpdatedAfter": AFTER}, "Invalid MarketplaceIds"),
    ({"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "NextToken": "forged.token"}, "Invalid NextToken"),
]


@pytest.mark.parametrize(("params", "message"), GET_ORDERS_BAD)
async def test_get_orders_rules(api: Api, params: dict[str, str], message: str) -> None:
    status, body, headers = await api.call("GET", "/orders/v0/orders", params=params)
    assert status == 400
    code, text = error_of(body)
    assert code == "InvalidInput" and message in text
    assert headers["x-amzn-RateLimit-Limit"] == "0.0167" and headers["x-amzn-RequestId"]


SEARCH_ORDERS_BAD = [
    ({}, "Either createdAfter or lastUpdatedAfter"),
    ({"createdAfter": AFTER, "lastUpdatedAfter": AFTER}, "cannot be combined"),
    ({"lastUpdatedAfter": AFTER, "lastUpdatedBefore": "2026-11-20T11:59:00Z"}, "two minutes"),
    ({"lastUpdatedAfter": AFTER, "fulfillmentStatuses": "Canceled"}, "Invalid fulfillmentStatuses"),
    ({"lastUpdatedAfter": AFTER, "fulfilledBy": "MFN"}, "Invalid fulfilledBy"),
    ({"lastUpdatedAfter": AFTER, "includedData": "CANCELATION"}, "Invalid includedData"),
    ({"lastUpdatedAfter": AFTER, "maxResultsPerPage": "x"}, "between 1 and 100"),
    ({"lastUpdatedAfter": AFTER, "paginationToken": "x.y"}, "Invalid paginationToken"),
]


@pytest.mark.parametrize(("params", "message"), SEARCH_ORDERS_BAD)
async def test_search_orders_rules(api: Api, params: dict[str, str], message: str) -> None:
    status, body, _ = await api.call("GET", "/orders/2026-01-01/orders", params=params)
    assert status == 400
    assert message in error_of(body)[1]


async def test_unknown_orders_are_404_in_both_versions(api: Api) -> None:
    for path in (
        "/orders/v0/orders/111-0000000-0000000",
        "/orders/v0/orders/111-0000000-0000000/orderItems",
        "/orders/2026-01-01/orders/111-0000000-0000000",
    ):
        status, body, _ = await api.call("GET", path)
        assert status == 404 and error_of(body)[0] == "NotFound"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "amzn1.application-oa2-client.other"}, 401, "invalid_client"),
        ({"refresh_token": "Atzr|revoked"}, 400, "invalid_grant"),
        ({"refresh_token": ""}, 400, "invalid_request"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
    ],
)
async def test_lwa_refusals_have_amazons_shape(
    api: Api, form: dict[str, str], status: int, error: str
) -> None:
    got_status, body = await api.login(**form)
    assert got_status == status and body["error"] == error and body["error_description"]


async def test_lwa_grants_an_expiring_token(api: Api) -> None:
    status, body = await api.login()
    assert status == 200 and body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("Atza|")


@pytest.mark.parametrize(("token", "details"), [("", ""), ("Atza|forged", "revoked, malformed or invalid")])
async def test_calls_without_a_valid_token_are_403(api: Api, token: str, details: str) -> None:
    async with api.session.get(
        f"{api.base}/orders/2026-01-01/orders",
        headers={"x-amz-access-token": token},
        params={"lastUpdatedAfter": AFTER},
    ) as resp:
        body = await resp.json()
    assert resp.status == 403 and error_of(body)[0] == "Unauthorized"
    assert details in body["errors"][0].get("details", "")


async def test_answers_follow_the_models(api: Api) -> None:
    params = {"MarketplaceIds": f"{US},{DE}", "LastUpdatedAfter": AFTER, "MaxResultsPerPage": "100"}
    status, body, _ = await api.call("GET", "/orders/v0/orders", params=params)
    assert status == 200 and body["payload"]["Orders"]
    assert violations(body, load("orders_v0_get_orders_contract.json")) == []
    items_contract = load("orders_v0_get_order_items_contract.json")
    assert violations(load("orders_v0_get_order_items_example.json")["example"], items_contract) == []
    for order in body["payload"]["Orders"][:40]:
        status, items, _ = await api.call("GET", f"/orders/v0/orders/{order['AmazonOrderId']}/orderItems")
        assert status == 200 and violations(items, items_contract) == []
        for item in items["payload"]["OrderItems"]:
            assert item["BuyerRequestedCancel"]["IsBuyerRequestedCancel"] in ("true", "false")  # strings
    contract = load("orders_2026_search_orders_contract.json")
    assert violations(load("orders_2026_search_orders_example.json")["example"], contract) == []
    every = ",".join(["BUYER", "RECIPIENT", "PROCEEDS", "CANCELLATION", "FULFILLMENT", "PACKAGES"])
    status, body, _ = await api.call(
        "GET", "/orders/2026-01-01/orders", params={"lastUpdatedAfter": AFTER, "includedData": every}
    )
    assert status == 200 and body["orders"] and violations(body, contract) == []
    statuses = {o["fulfillment"]["fulfillmentStatus"] for o in body["orders"]}
    assert "CANCELLED" in statuses and "Canceled" not in statuses
    assert {o["fulfillment"]["fulfilledBy"] for o in body["orders"]} == {"MERCHANT", "AMAZON"}


async def test_included_data_decides_the_blocks(api: Api) -> None:
    _, body, _ = await api.call("GET", "/orders/2026-01-01/orders", params={"lastUpdatedAfter": AFTER})
    order = body["orders"][0]
    assert not {"fulfillment", "buyer", "recipient", "packages"} & set(order)
    assert all("cancellation" not in i and "fulfillment" not in i for i in order["orderItems"])


async def test_pages_keep_the_first_requests_snapshot(api: Api) -> None:
    params = {"MarketplaceIds": US, "LastUpdatedAfter": AFTER, "MaxResultsPerPage": "7"}
    seen, token = [], None
    while True:
        status, body, _ = await api.call(
            "GET", "/orders/v0/orders", params={**params, **({"NextToken": token} if token else {})}
        )
        assert status == 200
        seen += [o["AmazonOrderId"] for o in body["payload"]["Orders"]]
        assert body["payload"]["LastUpdatedBefore"] == "2026-11-20T11:58:00Z"
        token = body["payload"].get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) > 7


async def test_usage_plans_give_429_with_the_rate_header() -> None:
    ticks = [0.0]
    sim = build_simulator(ScenarioSpec(NOW, orders_per_day=1), frozen=True, monotonic=lambda: ticks[0])
    async with serving(sim) as base, aiohttp.ClientSession() as session:
        api = Api(sim, base, session)
        params = {"MarketplaceIds": US, "LastUpdatedAfter": AFTER}
        statuses = [
            (await api.call("GET", "/orders/v0/orders", params=params))[0]
            for _ in range(GET_ORDERS.plan.burst + 1)
        ]
        assert statuses == [200] * GET_ORDERS.plan.burst + [429]
        status, body, headers = await api.call("GET", "/orders/v0/orders", params=params)
        assert status == 429 and error_of(body)[0] == "QuotaExceeded"
        assert headers["x-amzn-RateLimit-Limit"] == "0.0167"
        ticks[0] += 1 / 0.0167  # one token back
        assert (await api.call("GET", "/orders/v0/orders", params=params))[0] == 200
        # another seller has its own bucket
        other = Api(sim, base, session)
        other_token = sim.world.sellers["A2SIMSELLER02"].refresh_token
        other.token = (await other.login(refresh_token=other_token))[1]["access_token"]
        assert (await other.call("GET", "/orders/v0/orders", params=params))[0] == 200


REPORT_BAD = [
    ({"marketplaceIds": [US]}, "reportType"),
    ({"reportType": "GET_FLAT_FILE_OPEN_LISTINGS_DATA", "marketplaceIds": [US]}, "not supported"),
    ({"reportType": "GET_V2_SELLER_PERFORMANCE_REPORT"}, "marketplaceIds"),
    (
        {
            "reportType": "GET_V2_SELLER_PERFORMANCE_REPORT",
            "marketplaceIds": [US],
            "dataStartTime": "2030-01-01T00:00:00Z",
        },
        "prior to or equal to the current",
    ),
]


@pytest.mark.parametrize(("spec", "message"), REPORT_BAD)
async def test_create_report_rules(api: Api, spec: dict[str, Any], message: str) -> None:
    status, body, _ = await api.call("POST", "/reports/2021-06-30/reports", json=spec)
    assert status == 400 and message in error_of(body)[1]


async def test_create_feed_rules(api: Api) -> None:
    status, body, _ = await api.call("POST", "/feeds/2021-06-30/documents", json={})
    assert status == 400 and "contentType" in error_of(body)[1]
    status, doc, _ = await api.call("POST", "/feeds/2021-06-30/documents", json={"contentType": "text/xml"})
    assert status == 201
    feed = {
        "feedType": "POST_ORDER_ACKNOWLEDGEMENT_DATA",
        "marketplaceIds": [US],
        "inputFeedDocumentId": doc["feedDocumentId"],
    }
    status, body, _ = await api.call("POST", "/feeds/2021-06-30/feeds", json=feed)
    assert status == 400 and "upload it before" in error_of(body)[1]
    status, body, _ = await api.call(
        "POST", "/feeds/2021-06-30/feeds", json={**feed, "feedType": "POST_PRODUCT_DATA"}
    )
    assert status == 400 and "not supported" in error_of(body)[1]
    async with api.session.put(doc["url"], data=b"<x/>", headers={"Content-Type": "application/xml"}) as resp:
        assert resp.status == 403  # the presigned URL was signed for text/xml
    async with api.session.put(doc["url"] + "0", data=b"<x/>", headers={"Content-Type": "text/xml"}) as resp:
        assert resp.status == 403  # a tampered signature


async def test_faults_and_clock_are_settable(api: Api) -> None:
    async with api.session.post(f"{api.base}/_sim/faults", json={"error_503_rate": 2}) as resp:
        assert resp.status == 400
    async with api.session.post(f"{api.base}/_sim/faults", json={"error_503_rate": 1.0}) as resp:
        assert resp.status == 200
    status, body, _ = await api.call("GET", "/orders/2026-01-01/orders", params={"lastUpdatedAfter": AFTER})
    assert status == 503 and error_of(body)[0] == "ServiceUnavailable"
    async with api.session.post(f"{api.base}/_sim/faults", json={"error_503_rate": 0.0}) as resp:
        assert resp.status == 200
    async with api.session.post(f"{api.base}/_sim/clock", json={"advance_seconds": 90}) as resp:
        assert (await resp.json())["now"] == "2026-11-20T12:01:30Z"
    api.sim.clock.set(NOW)


async def test_notifications_and_messages_are_published_as_time_passes(api: Api) -> None:
    async with api.session.get(f"{api.base}/_sim/notifications", params={"limit": "100000"}) as resp:
        first = await resp.json()
    assert first["notifications"] and all(
        n["NotificationType"] == "ORDER_CHANGE" for n in first["notifications"]
    )
    contract = load("order_change_contract.json")
    assert all(violations(n, contract) == [] for n in first["notifications"])
    api.sim.clock.advance(timedelta(days=3).total_seconds())
    async with api.session.get(
        f"{api.base}/_sim/notifications", params={"after": str(first["next"])}
    ) as resp:
        later = await resp.json()
    assert later["notifications"]  # shipments and auto-cancels after "now"
    async with api.session.get(f"{api.base}/_sim/buyer-messages") as resp:
        assert (await resp.json())["messages"]
    api.sim.clock.set(NOW)
