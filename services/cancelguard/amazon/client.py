"""The one SP-API client: every call cancelguard makes to Amazon goes through `SpApiClient.call`.

Per call: get the LWA access token, wait for the (seller, operation) rate limiter, attach the token
(`x-amz-access-token`), send, follow `x-amzn-RateLimit-Limit`, and retry 429, 5xx, timeouts and
connection errors with exponential backoff and jitter up to the connection's budget. A 403 saying the
token expired or is invalid gets one fresh token. Other 4xx raise `SpApiError` with Amazon's
`{"errors": [{code, message, details}]}`; an answer that is not the JSON its model promises raises
`MalformedResponse` with the JSON path. Nothing here logs a credential, a token or a response body.

The sub-APIs (`orders_v0`, `orders_2026`, `reports`, `feeds`) return Amazon's JSON documents as dicts;
turning them into order events is the adapters' job.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from cancelguard.amazon.clock import SYSTEM_CLOCK, Clock
from cancelguard.amazon.connection import SellerConnection
from cancelguard.amazon.errors import MalformedResponse, SpApiError, SpApiUnavailable
from cancelguard.amazon.lwa import LwaTokenProvider
from cancelguard.amazon.operations import Operation
from cancelguard.amazon.ratelimit import RateLimiter

log = logging.getLogger("cancelguard.amazon")

QueryValue = str | int | bool | datetime | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class SpApiResponse:
    status: int
    body: dict[str, Any]
    request_id: str
    rate_limit: str | None  # x-amzn-RateLimit-Limit as sent


def amazon_timestamp(ts: datetime) -> str:
    """ISO 8601 in UTC with a Z, as SP-API's date parameters take it; naive datetimes are refused."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"time {ts.isoformat()} has no time zone; SP-API times are UTC")
    text = ts.astimezone(UTC).isoformat(timespec="milliseconds" if ts.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def encode_query(params: Mapping[str, QueryValue]) -> dict[str, str]:
    """SP-API query encoding: arrays comma-separated (swagger `csv`), booleans lower case, times ISO."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[name] = amazon_timestamp(value)
        elif isinstance(value, int | str):
            out[name] = str(value)
        else:
            values = [str(v) for v in value]
            if values:
                out[name] = ",".join(values)
    return out


def _errors(body: Any) -> tuple[str, str, str]:
    """The first (code, message, details) of an SP-API error body, tolerating odd shapes."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return str(first.get("code", "")), str(first.get("message", "")), str(first.get("details", "") or "")
    return "", "", ""


def _token_problem(status: int, message: str, details: str) -> bool:
    """A 403 about the access token itself (expired, revoked, malformed), as opposed to missing roles."""
    return status == 403 and "token" in f"{message} {details}".lower()


class SpApiClient:
    """One seller account's connection to SP-API. Use as `async with SpApiClient(conn) as client:`."""

    def __init__(
        self,
        connection: SellerConnection,
        *,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        from cancelguard.amazon.feeds import Feeds
        from cancelguard.amazon.orders_2026 import Orders2026
        from cancelguard.amazon.orders_v0 import OrdersV0
        from cancelguard.amazon.reports import Reports

        self.connection = connection
        self.clock = clock
        self.rng = rng or random.Random()
        self.limiter = limiter or RateLimiter(clock)
        self._session = session
        self._owns_session = session is None
        self.tokens = LwaTokenProvider(connection, self.session, clock=clock, rng=self.rng)
        self.orders_v0 = OrdersV0(self)
        self.orders_2026 = Orders2026(self)
        self.reports = Reports(self)
        self.feeds = Feeds(self)

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()  # created in the running loop, never at import
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> SpApiClient:
        await self.session()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def call(
        self,
        operation: Operation,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, QueryValue] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> SpApiResponse:
        conn = self.connection
        url = conn.endpoint.rstrip("/") + operation.url_path(**(path_params or {}))
        params = encode_query(query or {})
        data = json.dumps(body).encode() if body is not None else None
        attempts = conn.backoff.max_attempts
        refreshed_token = False
        last_error = ""
        failures = 0
        while failures < attempts:
            # the token before the usage plan: while Login with Amazon is away no call goes out, so none
            # of the plan is spent; asked again after the wait, when a cached token costs nothing
            await self.tokens.token()
            await self.limiter.acquire(conn.seller_id, operation)
            token = await self.tokens.token()
            headers = {
                "x-amz-access-token": token,
                "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
                "Accept": "application/json",
                "User-Agent": conn.user_agent,
            }
            if data is not None:
                headers["Content-Type"] = "application/json"
            session = await self.session()
            try:
                async with session.request(
                    operation.method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=conn.request_timeout_s),
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                    request_id = resp.headers.get("x-amzn-RequestId", "")
                    rate_limit = resp.headers.get("x-amzn-RateLimit-Limit")
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                self.limiter.observe_limit(conn.seller_id, operation, rate_limit)
                parsed = _json(raw)
                if 200 <= status < 300:
                    if not isinstance(parsed, dict):
                        raise MalformedResponse(operation.operation_id, "$", "expected a JSON object")
                    return SpApiResponse(status, parsed, request_id, rate_limit)
                code, message, details = _errors(parsed)
                if status == 429 or status >= 500:
                    if status == 429:
                        self.limiter.throttled(conn.seller_id, operation)
                    last_error = f"HTTP {status} {code}".strip()
                elif _token_problem(status, message, details) and not refreshed_token:
                    refreshed_token = True  # one fresh token, then a 403 is an answer
                    self.tokens.invalidate()
                    continue
                else:
                    raise SpApiError(
                        operation.operation_id,
                        status,
                        code or "Unknown",
                        message or (raw[:200].decode(errors="replace") if raw else "no body"),
                        details,
                        request_id,
                    )
            failures += 1
            if failures < attempts:
                delay = conn.backoff.delay(failures, self.rng)
                log.warning(
                    "SP-API call failed; retrying",
                    extra={
                        "operation": operation.key,
                        "seller_account": conn.seller_id,
                        "attempt": failures,
                        "error": last_error,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await self.clock.sleep(delay)
        raise SpApiUnavailable(operation.operation_id, attempts, last_error)

    async def download(self, url: str, *, what: str) -> bytes:
        """GET a presigned document URL (no SP-API token, no SP-API rate limit), retrying like `call`."""
        chunks = [chunk async for chunk in self.stream(url, what=what)]
        return b"".join(chunks)

    async def stream(self, url: str, *, what: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        """The body of a presigned URL in chunks, so a 1 GB report never sits in memory whole. Retries
        happen only before the first chunk is handed out."""
        conn = self.connection
        last_error = ""
        yielded = False
        for failure in range(1, conn.backoff.max_attempts + 1):
            session = await self.session()
            try:
                async with session.get(
                    url, timeout=aiohttp.ClientTimeout(total=None, sock_read=conn.request_timeout_s)
                ) as resp:
                    if resp.status == 200:
                        async for chunk in resp.content.iter_chunked(chunk_size):
                            yielded = True
                            yield chunk
                        return
                    if resp.status < 500 and resp.status != 429:
                        text = (await resp.read())[:200].decode(errors="replace")
                        raise SpApiError(what, resp.status, "DocumentUnavailable", text)
                    last_error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                if yielded:  # part of the body is already with the caller: a retry would repeat it
                    raise SpApiUnavailable(what, failure, f"broke off mid-download: {last_error}") from exc
            if failure < conn.backoff.max_attempts:
                await self.clock.sleep(conn.backoff.delay(failure, self.rng))
        raise SpApiUnavailable(what, conn.backoff.max_attempts, last_error)


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
