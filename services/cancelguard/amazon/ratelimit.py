"""Token buckets per (seller, operation), from the operation's usage plan.

SP-API meters each operation per selling partner and application with a token bucket: a bucket of
`burst` tokens refilled at `rate` per second (Amazon, "Usage Plans and Rate Limits in the Selling Partner
API"). The client waits for a token before each call, so it never sends what Amazon would throttle; the
`x-amzn-RateLimit-Limit` response header, when present, replaces the rate with the one Amazon applies to
this seller, and a 429 empties the bucket (Amazon's count is the one that matters).

`TokenBucket` is pure arithmetic on times passed in; `RateLimiter` adds waiting on an injectable clock.
The simulator enforces its limits with the same bucket.
"""

from __future__ import annotations

import asyncio
import math

from cancelguard.amazon.clock import SYSTEM_CLOCK, Clock
from cancelguard.amazon.operations import Operation, UsagePlan


class TokenBucket:
    """Starts full. Times are seconds on any monotonic scale; they must not go backwards."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, plan: UsagePlan, now: float) -> None:
        self.rate = plan.rate
        self.burst = plan.burst
        self.tokens = float(plan.burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def try_take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def wait_time(self, now: float) -> float:
        """Seconds from `now` until a token is there (0 if one is)."""
        self._refill(now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= 1e-9 else missing / self.rate

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self.rate = rate

    def empty(self, now: float) -> None:
        self._refill(now)
        self.tokens = 0.0


def parse_rate_limit_header(value: str | None) -> float | None:
    """`x-amzn-RateLimit-Limit: 0.0167` -> 0.0167; anything unusable -> None (keep the plan)."""
    if not value:
        return None
    try:
        rate = float(value.strip())
    except ValueError:
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


class RateLimiter:
    """One bucket per (seller, operation key). Share one instance per process and seller account."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, plans: dict[str, UsagePlan] | None = None) -> None:
        self.clock = clock
        self._plans = dict(plans or {})  # overrides of the model's defaults, by operation key
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def bucket(self, seller_id: str, operation: Operation) -> TokenBucket:
        key = (seller_id, operation.key)
        found = self._buckets.get(key)
        if found is None:
            plan = self._plans.get(operation.key, operation.plan)
            found = self._buckets[key] = TokenBucket(plan, self.clock.monotonic())
        return found

    async def acquire(self, seller_id: str, operation: Operation) -> None:
        """Wait until this seller may call this operation; callers are served first come, first served."""
        key = (seller_id, operation.key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            bucket = self.bucket(seller_id, operation)
            while not bucket.try_take(self.clock.monotonic()):
                await self.clock.sleep(bucket.wait_time(self.clock.monotonic()))

    def observe_limit(self, seller_id: str, operation: Operation, header: str | None) -> None:
        rate = parse_rate_limit_header(header)
        if rate is not None:
            self.bucket(seller_id, operation).set_rate(rate, self.clock.monotonic())

    def throttled(self, seller_id: str, operation: Operation) -> None:
        self.bucket(seller_id, operation).empty(self.clock.monotonic())
