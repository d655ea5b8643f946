"""The SP-API operations cancelguard calls, each with its path and default usage plan.

Rates and bursts are the "Usage Plan" tables in each operation's description in Amazon's models
(amzn/selling-partner-api-models, version of 2026-08-05): `models/orders-api-model/ordersV0.json`,
`models/orders-api-model/orders_2026-01-01.json`, `models/reports-api-model/reports_2021-06-30.json`,
`models/feeds-api-model/feeds_2021-06-30.json`. A seller's real plan may be higher: the
`x-amzn-RateLimit-Limit` response header says the rate applied, and the limiter follows it.

The client and the simulator both read this table, so they cannot disagree about a plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UsagePlan:
    rate: float  # sustained requests per second
    burst: int  # bucket size: requests that may go at once after a quiet period

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError(f"a usage plan needs rate > 0 and burst >= 1, got {self.rate}/{self.burst}")


@dataclass(frozen=True, slots=True)
class Operation:
    key: str  # unique across APIs: "<api>.<operationId>" (v0 and v2026 both have a getOrder)
    operation_id: str  # as in the model
    method: str
    path: str  # template, e.g. /orders/v0/orders/{orderId}
    plan: UsagePlan

    def url_path(self, **params: str) -> str:
        from urllib.parse import quote

        return self.path.format(**{k: quote(v, safe="") for k, v in params.items()})


def _op(api: str, operation_id: str, method: str, path: str, rate: float, burst: int) -> Operation:
    return Operation(f"{api}.{operation_id}", operation_id, method, path, UsagePlan(rate, burst))


GET_ORDERS = _op("ordersV0", "getOrders", "GET", "/orders/v0/orders", 0.0167, 20)
GET_ORDER_V0 = _op("ordersV0", "getOrder", "GET", "/orders/v0/orders/{orderId}", 0.5, 30)
GET_ORDER_ITEMS = _op("ordersV0", "getOrderItems", "GET", "/orders/v0/orders/{orderId}/orderItems", 0.5, 30)
SEARCH_ORDERS = _op("orders2026", "searchOrders", "GET", "/orders/2026-01-01/orders", 0.0056, 20)
GET_ORDER_2026 = _op("orders2026", "getOrder", "GET", "/orders/2026-01-01/orders/{orderId}", 0.5, 30)
CREATE_REPORT = _op("reports", "createReport", "POST", "/reports/2021-06-30/reports", 0.0167, 15)
GET_REPORT = _op("reports", "getReport", "GET", "/reports/2021-06-30/reports/{reportId}", 2, 15)
GET_REPORT_DOCUMENT = _op(
    "reports", "getReportDocument", "GET", "/reports/2021-06-30/documents/{reportDocumentId}", 0.0167, 15
)
CREATE_FEED_DOCUMENT = _op("feeds", "createFeedDocument", "POST", "/feeds/2021-06-30/documents", 0.5, 15)
CREATE_FEED = _op("feeds", "createFeed", "POST", "/feeds/2021-06-30/feeds", 0.0083, 15)
GET_FEED = _op("feeds", "getFeed", "GET", "/feeds/2021-06-30/feeds/{feedId}", 2, 15)
GET_FEED_DOCUMENT = _op(
    "feeds", "getFeedDocument", "GET", "/feeds/2021-06-30/documents/{feedDocumentId}", 0.0222, 10
)

OPERATIONS: dict[str, Operation] = {
    op.key: op
    for op in (
        GET_ORDERS,
        GET_ORDER_V0,
        GET_ORDER_ITEMS,
        SEARCH_ORDERS,
        GET_ORDER_2026,
        CREATE_REPORT,
        GET_REPORT,
        GET_REPORT_DOCUMENT,
        CREATE_FEED_DOCUMENT,
        CREATE_FEED,
        GET_FEED,
        GET_FEED_DOCUMENT,
    )
}

# Regional endpoints (SP-API "Endpoints" page); tests and the demo point a connection at the simulator.
REGION_ENDPOINTS = {
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}
LWA_TOKEN_ENDPOINT = "https://api.amazon.com/auth/o2/token"

# Which regional endpoint serves each marketplace (SP-API "Endpoints" and "Marketplace IDs" pages): a
# seller account is authorised per region, and a call for another region's marketplace is refused.
_NA = ("A2EUQ1WTGCTBG2", "ATVPDKIKX0DER", "A1AM78C64UM0Y8", "A2Q3Y263D00KWC")
_EU = [
    "A28R8C7NBKEWEA",
    "A1RKKUPIHCS9HS",
    "A1F83G8C2ARO7P",
    "A13V1IB3VIYZZH",
    "AMEN7PMS3EDWL",
    "A1805IZSGTT6HS",
    "A1PA6795UKMFR9",
    "APJ6JRA9NG5V4",
    "A2NODRKZP88ZB9",
    "AE08WJ6YKNBMC",
    "A1C3SOZRARQ6R3",
    "ARBP9OOSHTCHU",
    "A33AVAJ2PDY3EV",
    "A17E79C6D8DWNP",
    "A2VIGQ35RCS4UG",
    "A21TJRUUN4KGV",
]
_FE = ("A19VAU5U5O7RUS", "A39IBJ37TRP1C6", "A1VC38T7YXB528")
MARKETPLACE_REGIONS = {**dict.fromkeys(_NA, "na"), **dict.fromkeys(_EU, "eu"), **dict.fromkeys(_FE, "fe")}
