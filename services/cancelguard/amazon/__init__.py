"""The one SP-API client: Login with Amazon, rate limits per operation, retries, Orders v0 and
v2026-01-01, Reports, Feeds, and the order acknowledgement XML. The only package that knows Amazon's
wire formats; the simulator serves the same shapes.

    conn = SellerConnection("A1SELLER", REGION_ENDPOINTS["eu"], LwaCredentials(cid, Secret(s), Secret(rt)))
    async with SpApiClient(conn) as amazon:
        async for page in amazon.orders_2026.search_orders(last_updated_after=cursor, marketplace_ids=[m]):
            ...
"""

from cancelguard.amazon.backoff import Backoff
from cancelguard.amazon.client import SpApiClient, SpApiResponse, amazon_timestamp
from cancelguard.amazon.connection import LwaCredentials, Secret, SellerConnection
from cancelguard.amazon.errors import (
    AmazonError,
    FeedFormatError,
    LwaAuthError,
    MalformedResponse,
    ProcessingFailed,
    SpApiError,
    SpApiUnavailable,
    TokenEndpointUnavailable,
)
from cancelguard.amazon.feed_xml import CancelReason, ItemCancel, OrderCancel
from cancelguard.amazon.operations import LWA_TOKEN_ENDPOINT, OPERATIONS, REGION_ENDPOINTS, UsagePlan
from cancelguard.amazon.ratelimit import RateLimiter

__all__ = [
    "LWA_TOKEN_ENDPOINT",
    "OPERATIONS",
    "REGION_ENDPOINTS",
    "AmazonError",
    "Backoff",
    "CancelReason",
    "FeedFormatError",
    "ItemCancel",
    "LwaAuthError",
    "LwaCredentials",
    "MalformedResponse",
    "OrderCancel",
    "ProcessingFailed",
    "RateLimiter",
    "Secret",
    "SellerConnection",
    "SpApiClient",
    "SpApiError",
    "SpApiResponse",
    "SpApiUnavailable",
    "TokenEndpointUnavailable",
    "UsagePlan",
    "amazon_timestamp",
]
