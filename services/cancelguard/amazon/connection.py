"""How to reach one seller account: endpoints and Login with Amazon credentials.

The caller supplies the credentials (a separate piece loads them from a file or an environment variable
by reference). `Secret` keeps them out of reprs, logs and tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cancelguard.amazon.backoff import Backoff
from cancelguard.amazon.operations import LWA_TOKEN_ENDPOINT


class Secret:
    """A credential. `str()`/`repr()` never show it; `reveal()` does, for the one request that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a secret is a string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class LwaCredentials:
    client_id: str  # the app's LWA client identifier (not secret, but not logged either)
    client_secret: Secret
    refresh_token: Secret  # the seller's authorisation of the app

    def __post_init__(self) -> None:
        missing = [
            name
            for name, value in (
                ("client_id", self.client_id),
                ("client_secret", self.client_secret),
                ("refresh_token", self.refresh_token),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"LWA credentials: {', '.join(missing)} empty")


@dataclass(frozen=True, slots=True)
class SellerConnection:
    seller_id: str
    endpoint: str  # e.g. https://sellingpartnerapi-eu.amazon.com, or the simulator's http://127.0.0.1:PORT
    credentials: LwaCredentials
    lwa_endpoint: str = LWA_TOKEN_ENDPOINT
    request_timeout_s: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    # LWA: refresh this long before the token's expiry; after the endpoint failed, do not ask again sooner
    token_refresh_margin_s: float = 300.0
    token_failure_cooldown_s: float = 30.0
    user_agent: str = "cancelguard/0.1 (Language=Python)"

    def __post_init__(self) -> None:
        if not self.seller_id:
            raise ValueError("seller_id is empty")
        for name in ("endpoint", "lwa_endpoint"):
            url = getattr(self, name)
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{name} must be an http(s) URL, got {url!r}")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be positive")
