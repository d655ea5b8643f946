"""Cancellation Rate policy per marketplace.

Amazon's rules (Seller Central help 200285210): CR = seller-cancelled orders / all orders over 7 days,
MFN only, target under 2.5%; India: under 2%, with 7- and 30-day windows. The buyer's self-cancel window
is 30 minutes (5 in Japan). Rules marked INFERENCE in docs are switches here, so a seller can align them
with what Amazon shows them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from cancelguard.domain.model import InvalidInput


class UnknownMarketplace(InvalidInput):
    pass


@dataclass(frozen=True, slots=True)
class Marketplace:
    id: str  # Amazon's marketplace id, e.g. ATVPDKIKX0DER
    country: str  # ISO 3166 alpha-2 as Amazon uses it (UK, not GB)
    domain: str
    language: str  # the language replies default to (ISO 639-1)


# Amazon's SP-API marketplace ids.
MARKETPLACES: dict[str, Marketplace] = {
    m.id: m
    for m in (
        Marketplace("A2EUQ1WTGCTBG2", "CA", "amazon.ca", "en"),
        Marketplace("ATVPDKIKX0DER", "US", "amazon.com", "en"),
        Marketplace("A1AM78C64UM0Y8", "MX", "amazon.com.mx", "es"),
        Marketplace("A2Q3Y263D00KWC", "BR", "amazon.com.br", "pt"),
        Marketplace("A28R8C7NBKEWEA", "IE", "amazon.ie", "en"),
        Marketplace("A1RKKUPIHCS9HS", "ES", "amazon.es", "es"),
        Marketplace("A1F83G8C2ARO7P", "UK", "amazon.co.uk", "en"),
        Marketplace("A13V1IB3VIYZZH", "FR", "amazon.fr", "fr"),
        Marketplace("AMEN7PMS3EDWL", "BE", "amazon.com.be", "fr"),
        Marketplace("A1805IZSGTT6HS", "NL", "amazon.nl", "nl"),
        Marketplace("A1PA6795UKMFR9", "DE", "amazon.de", "de"),
        Marketplace("APJ6JRA9NG5V4", "IT", "amazon.it", "it"),
        Marketplace("A2NODRKZP88ZB9", "SE", "amazon.se", "sv"),
        Marketplace("AE08WJ6YKNBMC", "ZA", "amazon.co.za", "en"),
        Marketplace("A1C3SOZRARQ6R3", "PL", "amazon.pl", "pl"),
        Marketplace("ARBP9OOSHTCHU", "EG", "amazon.eg", "ar"),
        Marketplace("A33AVAJ2PDY3EV", "TR", "amazon.com.tr", "tr"),
        Marketplace("A17E79C6D8DWNP", "SA", "amazon.sa", "ar"),
        Marketplace("A2VIGQ35RCS4UG", "AE", "amazon.ae", "ar"),
        Marketplace("A21TJRUUN4KGV", "IN", "amazon.in", "en"),
        Marketplace("A19VAU5U5O7RUS", "SG", "amazon.sg", "en"),
        Marketplace("A39IBJ37TRP1C6", "AU", "amazon.com.au", "en"),
        Marketplace("A1VC38T7YXB528", "JP", "amazon.co.jp", "ja"),
    )
}


def marketplace(marketplace_id: str) -> Marketplace:
    found = MARKETPLACES.get(marketplace_id)
    if found is None:
        raise UnknownMarketplace(
            f"unknown marketplace id {marketplace_id!r}; expected an Amazon marketplace id such as "
            "ATVPDKIKX0DER (US) or A1PA6795UKMFR9 (DE)",
            "UNKNOWN_MARKETPLACE",
        )
    return found


_BY_DOMAIN = {m.domain: m for m in MARKETPLACES.values()}


def marketplace_for_sales_channel(sales_channel: str) -> Marketplace | None:
    """The marketplace a report's `sales-channel` names ("Amazon.co.uk": its domain, any case); None for
    channels that are no Amazon marketplace ("Non-Amazon": Multi-Channel Fulfillment orders)."""
    return _BY_DOMAIN.get(sales_channel.strip().casefold())


class WindowPlacement(enum.Enum):
    """Which time puts an order in a window. Amazon does not say; its CR report lists the order date."""

    PURCHASE_DATE = "PURCHASE_DATE"  # default (INFERENCE), numerator and denominator alike
    CANCEL_DATE = "CANCEL_DATE"  # the numerator by cancel time; the denominator stays by purchase date


@dataclass(frozen=True, slots=True)
class CancellationPolicy:
    threshold: Decimal = Decimal("0.025")  # at or above: Amazon may deactivate (AT_RISK)
    warning: Decimal = Decimal("0.020")  # at or above: WARNING
    window_days: tuple[int, ...] = (7,)  # Amazon-aligned windows, whole UTC days
    amazon_window_lag_days: int = 1  # Amazon's CR figure lags about a day behind its other metrics
    live_window_hours: int = 168
    self_cancel_window: timedelta = timedelta(minutes=30)
    window_placement: WindowPlacement = WindowPlacement.PURCHASE_DATE
    pending_in_denominator: bool = False  # orders that never left Pending (INFERENCE: excluded)
    exclude_payment_fraud_cancels: bool = True  # Amazon's payment/fraud cancels (third-party source)
    # India excludes buyer requests only when the seller cancels with reason BuyerCanceled
    formal_request_needs_buyer_canceled_reason: bool = False
    suppression_days: int = 30  # two consecutive seller cancels of one SKU within this many days

    def __post_init__(self) -> None:
        # configuration may give "0.03" or 0.03: keep rates exact
        for name in ("threshold", "warning"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                try:
                    object.__setattr__(self, name, Decimal(str(value)))
                except ArithmeticError as exc:
                    raise InvalidInput(f"policy {name} must be a number, got {value!r}") from exc
        # the warning level is *below* the threshold, else WARNING could never show
        if not (Decimal(0) < self.warning < self.threshold < Decimal(1)):
            raise InvalidInput(
                f"policy needs 0 < warning < threshold < 1, got warning={self.warning} "
                f"threshold={self.threshold}"
            )
        if not isinstance(self.self_cancel_window, timedelta) or self.self_cancel_window < timedelta(0):
            raise InvalidInput(
                f"self_cancel_window must be a non-negative timedelta, got {self.self_cancel_window!r}"
            )
        if not self.window_days or any(d < 1 for d in self.window_days):
            raise InvalidInput(f"window_days must be whole days >= 1, got {self.window_days}")
        if self.amazon_window_lag_days < 0 or self.live_window_hours < 1:
            raise InvalidInput("amazon_window_lag_days must be >= 0 and live_window_hours >= 1")

    @property
    def primary_window_days(self) -> int:
        return self.window_days[0]


DEFAULT_POLICY = CancellationPolicy()

# Marketplace-specific differences from the default.
_MARKETPLACE_POLICY: dict[str, dict[str, Any]] = {
    "A21TJRUUN4KGV": {  # India
        "threshold": Decimal("0.020"),
        "warning": Decimal("0.015"),
        "window_days": (7, 30),
        "formal_request_needs_buyer_canceled_reason": True,
    },
    "A1VC38T7YXB528": {"self_cancel_window": timedelta(minutes=5)},  # Japan
}


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """The policy for every marketplace: Amazon's defaults plus a seller's own overrides."""

    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # marketplace id -> field -> value
    default_overrides: dict[str, Any] = field(default_factory=dict)  # applied to every marketplace

    def __post_init__(self) -> None:
        # a typo in a marketplace id or a field must fail when the book is made, not stay silently unused
        for marketplace_id in self.overrides:
            self.for_marketplace(marketplace_id)
        if self.default_overrides:
            for marketplace_id in MARKETPLACES:
                self.for_marketplace(marketplace_id)

    def for_marketplace(self, marketplace_id: str) -> CancellationPolicy:
        marketplace(marketplace_id)  # unknown ids are an error, never a default
        changes = {
            **_MARKETPLACE_POLICY.get(marketplace_id, {}),
            **self.default_overrides,
            **self.overrides.get(marketplace_id, {}),
        }
        try:
            return replace(DEFAULT_POLICY, **changes)
        except TypeError as exc:
            raise InvalidInput(f"bad policy override for {marketplace_id}: {exc}") from exc


def policy_for(marketplace_id: str) -> CancellationPolicy:
    return PolicyBook().for_marketplace(marketplace_id)
