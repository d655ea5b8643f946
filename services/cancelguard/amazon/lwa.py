"""Login with Amazon: a seller's refresh token -> a short-lived access token for SP-API calls.

`POST {lwa_endpoint}` with `grant_type=refresh_token`, `refresh_token`, `client_id`, `client_secret`
(form-encoded) answers `{"access_token", "token_type": "bearer", "expires_in": 3600, ...}`; a refusal is
`{"error", "error_description"}` with a 4xx (Amazon, "Connecting to the Selling Partner API", step 1).

The token is cached and refreshed `token_refresh_margin_s` before it expires, one refresh at a time.
Refusals raise `LwaAuthError` at once; an unreachable endpoint is retried with backoff a bounded number
of times, then `TokenEndpointUnavailable`, and for `token_failure_cooldown_s` after that every call
fails fast without contacting the endpoint, so no number of callers can hammer it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from cancelguard.amazon.clock import SYSTEM_CLOCK, Clock
from cancelguard.amazon.connection import SellerConnection
from cancelguard.amazon.errors import LwaAuthError, MalformedResponse, TokenEndpointUnavailable

log = logging.getLogger("cancelguard.amazon.lwa")
OPERATION = "lwa.token"


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # on the provider's clock

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at:.0f})"


def parse_token_response(body: object) -> tuple[str, float]:
    """(access_token, expires_in seconds) from LWA's JSON, or MalformedResponse naming the path."""
    if not isinstance(body, dict):
        raise MalformedResponse(OPERATION, "$", f"expected an object, got {type(body).__name__}")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise MalformedResponse(OPERATION, "$.access_token", "missing or not a non-empty string")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        raise MalformedResponse(OPERATION, "$.expires_in", f"expected a positive number, got {expires_in!r}")
    return token, float(expires_in)


class LwaTokenProvider:
    def __init__(
        self,
        connection: SellerConnection,
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._conn = connection
        self._session = session
        self._clock = clock
        self._rng = rng or random.Random()
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self._failed: TokenEndpointUnavailable | None = None
        self._failed_at = 0.0
        self.requests_sent = 0  # for health reporting and tests

    @property
    def healthy(self) -> bool:
        """False while the endpoint is known to be unreachable (the pollers' health reads it)."""
        return self._failed is None

    def invalidate(self) -> None:
        """Forget the token (Amazon said it expired or is invalid)."""
        self._token = None

    async def token(self) -> str:
        current = self._token
        if current is not None and self._fresh(current):
            return current.value
        async with self._lock:  # one refresh at a time; the others reuse its result
            current = self._token
            if current is not None and self._fresh(current):
                return current.value
            self._token = await self._refresh()
            return self._token.value

    def _fresh(self, token: AccessToken) -> bool:
        return self._clock.monotonic() < token.expires_at - self._conn.token_refresh_margin_s

    async def _refresh(self) -> AccessToken:
        conn = self._conn
        failed = self._failed
        if failed is not None and self._clock.monotonic() - self._failed_at < conn.token_failure_cooldown_s:
            raise TokenEndpointUnavailable(
                failed.endpoint, failed.attempts, failed.last_error, cooling_down=True
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": conn.credentials.refresh_token.reveal(),
            "client_id": conn.credentials.client_id,
            "client_secret": conn.credentials.client_secret.reveal(),
        }
        session = await self._session()
        last_error = ""
        attempts = conn.backoff.max_attempts
        for attempt in range(1, attempts + 1):
            started = self._clock.monotonic()
            self.requests_sent += 1
            try:
                async with session.post(
                    conn.lwa_endpoint,
                    data=form,
                    headers={"Accept": "application/json", "User-Agent": conn.user_agent},
                    timeout=aiohttp.ClientTimeout(total=conn.request_timeout_s),
                ) as resp:
                    status = resp.status
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if status == 200:
                    try:
                        body = json.loads(text)
                    except ValueError:
                        raise MalformedResponse(OPERATION, "$", "not JSON") from None
                    value, expires_in = parse_token_response(body)
                    self._failed = None
                    return AccessToken(value, started + expires_in)
                if 400 <= status < 500 and status != 429:
                    error, description = _lwa_error(text)
                    raise LwaAuthError(conn.lwa_endpoint, status, error, description)
                last_error = f"HTTP {status}"
            if attempt < attempts:
                delay = conn.backoff.delay(attempt, self._rng)
                log.warning(
                    "LWA token endpoint failed; retrying",
                    extra={
                        "endpoint": conn.lwa_endpoint,
                        "attempt": attempt,
                        "error": last_error,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await self._clock.sleep(delay)
        self._failed = TokenEndpointUnavailable(conn.lwa_endpoint, attempts, last_error)
        self._failed_at = self._clock.monotonic()
        raise self._failed


def _lwa_error(text: str) -> tuple[str, str]:
    try:
        body = json.loads(text)
    except ValueError:
        return "unknown_error", text[:200]
    if not isinstance(body, dict):
        return "unknown_error", text[:200]
    return str(body.get("error") or "unknown_error"), str(body.get("error_description") or "")
